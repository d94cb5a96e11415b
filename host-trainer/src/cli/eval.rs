//! `microdiff eval`: sample quality of a blob's program against held-out data, each metric next
//! to its noise floor (the same metric between independent held-out draws of the same size);
//! both are averaged over several held-out draws, since one draw's luck moves them by ±50 %.
//!
//! * 2-D sets: sliced Wasserstein-2 (128 projections), RBF-MMD², energy distance.
//! * `digits`: the tool's own classifier (its test accuracy is reported), the class-conditional
//!   accuracy of the samples, and the Fréchet distance in the classifier's feature space.
//! * With `--run`: the negative log-likelihood of held-out data under the run's model (EMA
//!   weights, f32) through the probability-flow ODE (`eval::nll`), conditioned on the true
//!   class for a class-conditional model.

use std::path::{Path, PathBuf};

use microdiff_runtime::Model;
use microdiff_trainer::checkpoint::Checkpoint;
use microdiff_trainer::data::{self, Toy};
use microdiff_trainer::eval::nll::{self, NllConfig, Trace};
use microdiff_trainer::eval::{
    Classifier, ClassifierConfig, energy_distance, frechet_distance, mmd_rbf, sliced_w2,
};
use microdiff_trainer::train::RunHeader;
use serde_json::json;

use super::sample::draw;
use super::{CliError, msg};

/// Projections of the sliced Wasserstein distance.
const PROJECTIONS: usize = 128;

/// `microdiff eval` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The blob.
    blob: PathBuf,
    /// Reference data: a built-in 2-D set (moons, 8gaussians, swissroll, checkerboard, rings),
    /// `digits`, or your own CSV / NPY file or PNG folder (any dimension: the samples are
    /// compared with two random halves of it, and the halves with each other for the floor).
    #[arg(long)]
    data: String,
    /// Program name (default: the blob's first program).
    #[arg(long)]
    program: Option<String>,
    /// Samples (2-D) or samples per class (digits).
    #[arg(long, short, default_value_t = 2000)]
    n: usize,
    /// Noise seed of the samples.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// The training run the blob came from: adds the negative log-likelihood of held-out data
    /// under its model (EMA weights) through the probability-flow ODE.
    #[arg(long)]
    run: Option<PathBuf>,
    /// Held-out points for the likelihood (2-D sets; digits use their whole test split).
    #[arg(long, default_value_t = 1000)]
    nll_n: usize,
    /// Runge–Kutta steps of the likelihood's ODE (4 network evaluations each).
    #[arg(long, default_value_t = 50)]
    nll_steps: usize,
    /// Divergence trace: `exact` (one backward pass per dimension), `hutchinson[:K]` (K random
    /// probes, unbiased) or `auto` (exact up to 8 dimensions).
    #[arg(long, default_value = "auto")]
    trace: String,
}

/// Dimensions up to which `--trace auto` computes the divergence exactly.
const MAX_EXACT_TRACE_DIM: usize = 8;

fn parse_trace(s: &str, dim: usize) -> Result<Trace, CliError> {
    let bad = || {
        CliError::Msg(format!(
            "--trace {s:?}: expected auto, exact or hutchinson[:K]"
        ))
    };
    match s.split_once(':') {
        None if s == "auto" => Ok(Trace::auto(dim, MAX_EXACT_TRACE_DIM)),
        None if s == "exact" => Ok(Trace::Exact),
        None if s == "hutchinson" => Ok(Trace::Hutchinson(1)),
        Some(("hutchinson", k)) => match k.parse::<usize>() {
            Ok(k) if k > 0 => Ok(Trace::Hutchinson(k)),
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

/// The likelihood of held-out data (`data`: a built-in 2-D set or `digits`) under the model of
/// training run `run`.
pub fn nll_metrics(
    run: &Path,
    data: &str,
    n: usize,
    steps: usize,
    trace: &str,
    seed: u64,
) -> Result<serde_json::Value, CliError> {
    let dir = super::train::run_dir(run)?;
    let info = super::run::RunInfo::load(&dir)?;
    let ckpt = Checkpoint::<RunHeader>::load(&super::run::checkpoint_path(&dir))
        .map_err(|e| CliError::Msg(e.to_string()))?;
    let cfg = &ckpt.header.config;
    let dim = cfg.model.data_dim;
    let held_out = if data == "digits" {
        data::digits_split().map_err(msg("digits"))?.1
    } else {
        let kind: Toy = data.parse().map_err(msg("--data"))?;
        data::toy(kind, n, 2_000_003 + seed)
    };
    if held_out.dim != dim {
        return Err(CliError::Msg(format!(
            "--run {}: the model makes {dim} values per sample, --data {data} has {}",
            run.display(),
            held_out.dim
        )));
    }
    let mut x = held_out.x.clone();
    info.normalizer.to_model(&mut x);
    let rows = x.len() / dim;
    let classes: Vec<f32> = match (&held_out.labels, cfg.model.classes) {
        (_, 0) => vec![0.0; rows],
        (Some(l), _) => l.iter().map(|&c| c as f32).collect(),
        (None, _) => {
            return Err(CliError::Msg(format!(
                "--run {}: a class-conditional model needs labelled data for the likelihood",
                run.display()
            )));
        }
    };
    let params = if cfg.optim.ema_decay > 0.0 {
        ckpt.ema.clone()
    } else {
        ckpt.params.clone()
    };
    let trace = parse_trace(trace, dim)?;
    let mut net = nll::Network::new(cfg.model, params, cfg.process.clone(), classes);
    let config = NllConfig { steps, trace, seed };
    let per_row = nll::nll(&cfg.process, &mut net, &x, &config).map_err(msg("likelihood"))?;
    let mean = per_row.iter().sum::<f64>() / rows as f64;
    let var = per_row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (rows.max(2) - 1) as f64;
    let data_nats = mean + nll::data_space_offset(&info.normalizer.scale, dim);
    Ok(json!({
        "value": mean,
        "stderr": (var / rows as f64).sqrt(),
        "data_units_nats": data_nats,
        "bits_per_dim": data_nats / (dim as f64 * std::f64::consts::LN_2),
        "points": rows,
        "trace": format!("{trace:?}"),
        "ode_steps": steps,
    }))
}

/// Independent held-out draws the metrics are averaged over: one draw's sliced W2 against
/// another varies by ±50 % at n = 500 (an unlucky reference draw would scale every ratio).
const REFERENCE_DRAWS: u64 = 8;

/// The 2-D metrics of `samples`, each the mean over [`REFERENCE_DRAWS`] independent held-out
/// draws of the same size, next to its noise floor: the mean of the same metric between
/// consecutive pairs of those draws (what a perfect sampler scores at this size).
pub fn toy_metrics(kind: Toy, samples: &[f32], seed: u64) -> serde_json::Value {
    let n = samples.len() / 2;
    // Held-out seeds no training run uses by default.
    let refs: Vec<Vec<f32>> = (0..REFERENCE_DRAWS)
        .map(|k| data::toy(kind, n, 1_000_003 + 1_000 * k + seed).x)
        .collect();
    let k = refs.len();
    let scored = |metric: &dyn Fn(&[f32], &[f32]) -> f64| {
        let value = refs.iter().map(|r| metric(samples, r)).sum::<f64>() / k as f64;
        let floor = (0..k)
            .map(|i| metric(&refs[i], &refs[(i + 1) % k]))
            .sum::<f64>()
            / k as f64;
        (value, floor)
    };
    let swd = scored(&|a, b| sliced_w2(a, b, 2, PROJECTIONS, seed));
    let mmd = scored(&|a, b| mmd_rbf(a, b, 2, None));
    let energy = scored(&|a, b| energy_distance(a, b, 2));
    json!({
        "samples": n,
        "sliced_w2": {"value": swd.0, "noise_floor": swd.1, "ratio": swd.0 / swd.1},
        "mmd2_rbf": {"value": mmd.0, "noise_floor": mmd.1},
        "energy": {"value": energy.0, "noise_floor": energy.1},
    })
}

/// The metrics of `samples` against the user's own data `ds` (data units, any dimension):
/// the data is split at random into two disjoint halves A and B, all cut to `m` examples
/// (the fewest of samples, A and B);
/// each metric is the mean of samples (first `m`) against A and against B, and its noise floor
/// is A against B — what a perfect sampler scores at this size.
pub fn data_metrics(
    ds: &microdiff_trainer::data::Dataset,
    samples: &[f32],
    seed: u64,
) -> Result<serde_json::Value, CliError> {
    let d = ds.dim.max(1);
    let (a, b) = ds.split(0.5, 1_000_003 + seed);
    let m = (samples.len() / d).min(a.len()).min(b.len());
    if m < 2 {
        return Err(CliError::Msg(format!(
            "the data has {} examples: at least 4 are needed for two halves to compare",
            ds.len()
        )));
    }
    let take = |x: &[f32]| x.get(..m * d).unwrap_or(x).to_vec();
    let (a, b, s) = (take(&a.x), take(&b.x), take(samples));
    let scored = |metric: &dyn Fn(&[f32], &[f32]) -> f64| {
        ((metric(&s, &a) + metric(&s, &b)) / 2.0, metric(&a, &b))
    };
    let swd = scored(&|x, y| sliced_w2(x, y, d, PROJECTIONS, seed));
    let mmd = scored(&|x, y| mmd_rbf(x, y, d, None));
    let energy = scored(&|x, y| energy_distance(x, y, d));
    Ok(json!({
        "samples": m,
        "sliced_w2": {"value": swd.0, "noise_floor": swd.1, "ratio": swd.0 / swd.1},
        "mmd2_rbf": {"value": mmd.0, "noise_floor": mmd.1},
        "energy": {"value": energy.0, "noise_floor": energy.1},
    }))
}

/// The judge of generated digits: the tool's own classifier (trained on the train split) and
/// the real-digit features the Fréchet distance compares against.
pub struct DigitsJudge {
    clf: Classifier,
    /// The classifier's accuracy on the held-out test split.
    pub classifier_test_accuracy: f64,
    reference: Vec<f32>,
    /// Fréchet distance between the two disjoint halves of the real digits.
    pub frechet_noise_floor: f64,
}

impl DigitsJudge {
    /// Trains the classifier and prepares the reference half of the real digits.
    pub fn new() -> Result<Self, CliError> {
        let (train, test) = data::digits_split().map_err(msg("digits"))?;
        let all = data::digits().map_err(msg("digits"))?;
        let labels = |d: &data::Dataset| d.labels.clone().unwrap_or_default();
        let clf = Classifier::train(
            &train.x,
            &labels(&train),
            64,
            10,
            &ClassifierConfig::default(),
        )
        .map_err(msg("classifier"))?;
        let classifier_test_accuracy = clf.accuracy(&test.x, &labels(&test));
        let (half_a, half_b) = all.split(0.5, 0x5EED);
        let reference = clf.features(&half_a.x);
        let mut judge = DigitsJudge {
            clf,
            classifier_test_accuracy,
            reference,
            frechet_noise_floor: 0.0,
        };
        judge.frechet_noise_floor = judge.frechet(&half_b.x)?;
        Ok(judge)
    }

    /// Fréchet distance of digits `x` (pixel units) to the reference half, in feature space.
    pub fn frechet(&self, x: &[f32]) -> Result<f64, CliError> {
        frechet_distance(
            &self.clf.features(x),
            &self.reference,
            self.clf.feature_dim(),
        )
        .map_err(msg("frechet"))
    }

    /// Fraction of digits `x` the classifier assigns to the class they were conditioned on.
    pub fn class_accuracy(&self, x: &[f32], classes: &[u16]) -> f64 {
        self.clf.accuracy(x, classes)
    }
}

/// `per_class` samples of every digit class, class-major, in pixel units, with their classes.
pub fn sample_classes(
    blob: &[u8],
    program: &str,
    per_class: usize,
    seed: u64,
) -> Result<(Vec<f32>, Vec<u16>), CliError> {
    let mut x = Vec::new();
    let mut y = Vec::new();
    for c in 0..10u16 {
        x.extend(draw(
            blob,
            program,
            c,
            per_class,
            seed,
            usize::from(c).saturating_mul(per_class),
        )?);
        y.extend(std::iter::repeat_n(c, per_class));
    }
    Ok((x, y))
}

/// The digits metrics of a class-conditional blob's program.
pub fn digits_metrics(
    blob: &[u8],
    program: &str,
    per_class: usize,
    seed: u64,
) -> Result<serde_json::Value, CliError> {
    let judge = DigitsJudge::new()?;
    let (x, y) = sample_classes(blob, program, per_class, seed)?;
    Ok(json!({
        "samples": x.len() / 64,
        "classifier_test_accuracy": judge.classifier_test_accuracy,
        "class_accuracy": judge.class_accuracy(&x, &y),
        "frechet": judge.frechet(&x)?,
        "frechet_noise_floor": judge.frechet_noise_floor,
    }))
}

pub fn run(a: Args) -> Result<(), CliError> {
    if a.n < 2 {
        return Err(CliError::Msg(format!(
            "-n {}: the distances compare two point sets of at least 2 samples each",
            a.n
        )));
    }
    if a.run.is_some() && a.nll_n == 0 {
        return Err(CliError::Msg(
            "--nll-n 0: the likelihood needs at least one held-out point".into(),
        ));
    }
    let (bytes, program) = super::sample::open(&a.blob, a.program.as_deref())?;
    let model = Model::parse(&bytes).map_err(msg(&a.blob.display().to_string()))?;
    let evals = model
        .program(&program)
        .map_err(msg(&format!("program {program:?}")))?
        .evals;
    let report = if a.data == "digits" {
        if model.data_len() != 64 || model.meta().classes != 10 {
            return Err(CliError::Msg(
                "--data digits needs a 10-class model of 8x8 samples".into(),
            ));
        }
        digits_metrics(&bytes, &program, a.n, a.seed)?
    } else if let Ok(kind) = a.data.parse::<Toy>() {
        if model.data_len() != 2 {
            return Err(CliError::Msg(format!(
                "--data {}: the model makes {} values per sample, not 2",
                a.data,
                model.data_len()
            )));
        }
        let samples = draw(&bytes, &program, 0, a.n, a.seed, 0)?;
        toy_metrics(kind, &samples, a.seed)
    } else {
        let path = std::path::Path::new(&a.data);
        if !path.exists() {
            return Err(CliError::Msg(format!(
                "--data {:?}: not a built-in set (moons, 8gaussians, swissroll, checkerboard, \
                 rings, digits) and no such file or folder",
                a.data
            )));
        }
        let ds = microdiff_trainer::data::load(path).map_err(msg("--data"))?;
        if ds.dim != model.data_len() {
            return Err(CliError::Msg(format!(
                "--data {}: {} values per example, the model makes {}",
                a.data,
                ds.dim,
                model.data_len()
            )));
        }
        let samples = draw(&bytes, &program, 0, a.n, a.seed, 0)?;
        data_metrics(&ds, &samples, a.seed)?
    };
    let mut report = report;
    if let Some(run) = &a.run {
        report["nll"] = nll_metrics(run, &a.data, a.nll_n, a.nll_steps, &a.trace, a.seed)?;
    }
    let doc = json!({"blob": a.blob.display().to_string(), "program": program, "evaluations": evals, "data": a.data, "metrics": report});
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).map_err(msg("json"))?
        );
    } else {
        println!(
            "{} / {program} ({evals} network evaluations) vs {}:",
            a.blob.display(),
            a.data
        );
        if let Some(m) = doc["metrics"].as_object() {
            for (k, v) in m {
                match v {
                    serde_json::Value::Object(o) if k == "nll" => println!(
                        "  {k:<26} {:>12.5}   ± {:.5} nats/sample (model space); {:.4} bits/dim in data units ({} points, {} trace, {} RK4 steps)",
                        o["value"].as_f64().unwrap_or(f64::NAN),
                        o["stderr"].as_f64().unwrap_or(f64::NAN),
                        o["bits_per_dim"].as_f64().unwrap_or(f64::NAN),
                        o["points"],
                        o["trace"].as_str().unwrap_or("?"),
                        o["ode_steps"],
                    ),
                    serde_json::Value::Object(o) => println!(
                        "  {k:<26} {:>12.5}   noise floor {:>10.5}",
                        o.get("value").and_then(|v| v.as_f64()).unwrap_or(f64::NAN),
                        o.get("noise_floor")
                            .and_then(|v| v.as_f64())
                            .unwrap_or(f64::NAN)
                    ),
                    other => println!("  {k:<26} {other}"),
                }
            }
        }
    }
    Ok(())
}
