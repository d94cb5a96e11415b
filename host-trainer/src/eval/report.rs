//! Sample quality of a blob's program against data, each metric next to its noise floor (the
//! same metric between independent held-out draws of the same size): what `microdiff eval`
//! prints. One draw's luck moves a distance by ±50 %, so floors and values are averaged.
//!
//! * 2-D sets ([`toy`]): sliced Wasserstein-2 (128 projections), RBF-MMD², energy distance,
//!   each the mean over [`REFERENCE_DRAWS`] held-out draws.
//! * The user's data of any dimension ([`data()`]): the same three, against two random halves.
//! * A class-conditional model is sampled with the data's mixture of classes: on a 2-D set the
//!   generator's labels, on the user's data the labels of the held-out rows compared with
//!   (so its samples are judged as a whole, not as one class against all of the data).
//! * `digits` ([`digits()`]): class accuracy by the [`DigitsJudge`] and the Fréchet distance in
//!   its feature space; for an unconditional model ([`unconditional_digits`]) the Fréchet
//!   distance only.
//! * [`likelihood`]: the negative log-likelihood of held-out data under a run's model (EMA
//!   weights, f32) through the probability-flow ODE; [`vae_likelihood`] and
//!   [`hvae_likelihood`] by the IWAE bound, [`rbm_likelihood`] by annealed importance
//!   sampling, for the zoo's runs.

use serde::Serialize;

use super::judge::{DigitsJudge, JudgeError};
use super::nll::{self, NllConfig, Trace};
use super::{EvalError, energy_distance, mmd_rbf, sliced_w2};
use crate::data::{self, DataError, Dataset, Source, Toy};
use crate::run::Trained;
use crate::sampling::{self, SampleError};

/// Projections of the sliced Wasserstein distance.
pub const PROJECTIONS: usize = 128;
/// Independent held-out draws the 2-D metrics are averaged over.
pub const REFERENCE_DRAWS: u64 = 8;
/// Dimensions up to which `Trace` `auto` computes the divergence exactly.
pub const MAX_EXACT_TRACE_DIM: usize = 8;

/// Why an evaluation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// Drawing the samples.
    #[error(transparent)]
    Sample(#[from] SampleError),
    /// The digits judge.
    #[error(transparent)]
    Judge(#[from] JudgeError),
    /// Loading the reference data.
    #[error("--data {0}")]
    Data(#[from] DataError),
    /// A metric.
    #[error(transparent)]
    Eval(#[from] EvalError),
    /// The model and the data or request do not fit together.
    #[error("{0}")]
    Mismatch(String),
}

/// A metric and its noise floor.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Metric {
    /// The samples' score (lower is better).
    pub value: f64,
    /// What a perfect sampler scores at this size.
    pub noise_floor: f64,
    /// `value / noise_floor` (for the sliced W2, whose targets are stated as ratios).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
}

/// The distances between samples and data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Distances {
    /// Samples compared.
    pub samples: usize,
    /// Sliced Wasserstein-2.
    pub sliced_w2: Metric,
    /// RBF maximum mean discrepancy, squared.
    pub mmd2_rbf: Metric,
    /// Energy distance.
    pub energy: Metric,
}

/// The digits judge's verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Digits {
    /// Samples judged.
    pub samples: usize,
    /// The judge's own accuracy on held-out real digits.
    pub classifier_test_accuracy: f64,
    /// Fraction of samples classified as the class they were conditioned on (`None` for an
    /// unconditional model).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class_accuracy: Option<f64>,
    /// The judge's class shares of the samples, classes 0…9 (an unconditional model's
    /// balance; the real digits are about 0.1 each; `None` for a conditional model).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class_shares: Option<Vec<f64>>,
    /// Fréchet distance in the judge's feature space.
    pub frechet: f64,
    /// The same distance between two halves of the real digits.
    pub frechet_noise_floor: f64,
}

/// A likelihood estimate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Likelihood {
    /// Mean negative log-likelihood, nats per sample, in model space.
    pub value: f64,
    /// Its standard error.
    pub stderr: f64,
    /// The same in data units.
    pub data_units_nats: f64,
    /// Bits per dimension in data units.
    pub bits_per_dim: f64,
    /// Held-out points.
    pub points: usize,
    /// How it was estimated: `probability-flow ODE` (diffusion runs, exact up to the ODE's
    /// discretisation and the trace estimator), `IWAE, k = K` (VAE and two-level VAE runs: the
    /// importance-weighted bound with K samples, so an upper bound on the NLL) or `AIS, …`
    /// (RBM runs: the exact free energy and log Z by annealed importance sampling, whose
    /// standard error is included in `stderr`).
    pub estimator: String,
    /// What the held-out data is a density or mass over: `data units` (a density over the
    /// data's values, the map's Jacobian included), or for an RBM the binarised data (a
    /// probability mass over `{0, 1}` per value, so the figures are the same in model space
    /// and "data units").
    pub representation: String,
    /// The divergence trace used (diffusion runs; empty for a VAE).
    pub trace: String,
    /// Runge–Kutta steps (diffusion runs; 0 for a VAE).
    pub ode_steps: usize,
}

/// The metrics of one evaluation (serialised without a tag: the fields of the kind measured).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Report {
    /// 2-D sets or the user's data.
    Distances(Distances),
    /// The digits judge.
    Digits(Digits),
}

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The blob.
    pub blob: &'a [u8],
    /// Its program.
    pub program: &'a str,
    /// The reference data.
    pub data: &'a Source,
    /// Samples (per class for digits).
    pub n: usize,
    /// Noise seed of the samples.
    pub seed: u64,
}

/// An evaluation's metrics, and whether the samples left the data's range by far.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The metrics.
    pub report: Report,
    /// Samples far outside the data ([`sampling::far_out`]).
    pub far_out: Option<sampling::FarOut>,
}

/// Draws `request.n` samples and scores them against `request.data`; `progress` gets the
/// samples drawn so far.
pub fn evaluate(
    request: &Request<'_>,
    progress: &dyn Fn(usize),
) -> Result<Evaluation, ReportError> {
    let Request {
        blob,
        program,
        data,
        n,
        seed,
    } = *request;
    if n < 2 {
        return Err(ReportError::Mismatch(format!(
            "-n {n}: the distances compare two point sets of at least 2 samples each"
        )));
    }
    let model = microdiff_runtime::Model::parse(blob).map_err(SampleError::Blob)?;
    let classes = usize::from(model.meta().classes);
    // A thermometer-coded RBM (`--levels`) samples `units` per value: sum them back.
    // The user's file is read once, here.
    let file = match data {
        Source::File(path) => Some(data::load(path)?),
        _ => None,
    };
    let data_shape: Vec<usize> = match (data, &file) {
        (Source::Digits, _) => vec![8, 8],
        (_, Some(ds)) => ds.shape.clone(),
        _ => vec![2],
    };
    let units = sampling::thermometer_units(&model, &data_shape);
    let len = model.data_len() / units;
    let host = Sampling { units };
    match data {
        Source::Digits => {
            if len != 64 || !matches!(classes, 0 | 10) {
                return Err(ReportError::Mismatch(
                    "--data digits needs a 10-class or unconditional model of 8x8 samples".into(),
                ));
            }
            let judge = DigitsJudge::new()?;
            if classes == 0 {
                // As many samples as a conditional model's n per class; no class to check.
                let total = n.saturating_mul(10);
                let x = sampling::draw(blob, program, 0, total, seed, 0, progress)?;
                return Ok(Evaluation {
                    report: Report::Digits(unconditional_digits(&judge, &x)?),
                    far_out: sampling::far_out(&model, &x),
                });
            }
            let (x, y) = sampling::per_class(blob, program, 10, n, seed, progress)?;
            Ok(Evaluation {
                report: Report::Digits(digits(&judge, &x, &y)?),
                far_out: sampling::far_out(&model, &x),
            })
        }
        Source::Toy(kind) => {
            if len != 2 {
                return Err(ReportError::Mismatch(format!(
                    "--data {data}: the model makes {len} values per sample, not 2"
                )));
            }
            let samples = if classes == 0 {
                host.draw(blob, program, n, seed, progress)?
            } else {
                // The generator's own mixture of classes (its labels of a fresh draw).
                let ds = data::toy_labelled(*kind, n, seed ^ CLASS_DRAW_SEED);
                let labels = conditional_labels(&ds, classes, data)?;
                host.with_classes(blob, program, labels, seed, progress)?
            };
            Ok(Evaluation {
                report: Report::Distances(toy(*kind, &samples, seed)),
                far_out: host.far_out(&model, &samples),
            })
        }
        Source::File(_) => {
            // Read above for a file source; the error is never met.
            let ds =
                file.ok_or_else(|| ReportError::Mismatch(format!("--data {data}: not read")))?;
            if ds.dim != len {
                return Err(ReportError::Mismatch(format!(
                    "--data {data}: {} values per example, the model makes {len}",
                    ds.dim
                )));
            }
            let samples = if classes == 0 {
                host.draw(blob, program, n, seed, progress)?
            } else {
                // The classes of the held-out rows the samples are compared with.
                let (a, b) = halves(&ds, seed);
                let m = n.min(a.len()).min(b.len());
                let labels = conditional_labels(&a, classes, data)?;
                host.with_classes(blob, program, &labels[..m], seed, progress)?
            };
            Ok(Evaluation {
                report: Report::Distances(self::data(&ds, &samples, seed)?),
                far_out: host.far_out(&model, &samples),
            })
        }
    }
}

/// The host sampler, summing a thermometer-coded RBM's units back to values.
struct Sampling {
    units: usize,
}

impl Sampling {
    fn decode(&self, x: Vec<f32>) -> Vec<f32> {
        sampling::sum_units(x, self.units)
    }

    fn draw(
        &self,
        blob: &[u8],
        program: &str,
        n: usize,
        seed: u64,
        progress: &dyn Fn(usize),
    ) -> Result<Vec<f32>, ReportError> {
        Ok(self.decode(sampling::draw(blob, program, 0, n, seed, 0, progress)?))
    }

    fn with_classes(
        &self,
        blob: &[u8],
        program: &str,
        labels: &[u16],
        seed: u64,
        progress: &dyn Fn(usize),
    ) -> Result<Vec<f32>, ReportError> {
        Ok(self.decode(sampling::with_classes(
            blob, program, labels, seed, progress,
        )?))
    }

    /// [`sampling::far_out`] of plain samples (a decoded sum has no per-unit range to check).
    fn far_out(&self, model: &microdiff_runtime::Model<'_>, x: &[f32]) -> Option<sampling::FarOut> {
        (self.units == 1)
            .then(|| sampling::far_out(model, x))
            .flatten()
    }
}

/// The 2-D metrics of `samples`, each the mean over [`REFERENCE_DRAWS`] independent held-out
/// draws of the same size, next to its noise floor: the mean of the same metric between
/// consecutive pairs of those draws.
pub fn toy(kind: Toy, samples: &[f32], seed: u64) -> Distances {
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
    distances(n, scored, 2, seed)
}

/// The metrics of `samples` against the user's own data `ds` (data units, any dimension):
/// the data is split at random into two disjoint halves A and B, all cut to `m` examples
/// (the fewest of samples, A and B); each metric is the mean of samples against A and against
/// B, and its noise floor is A against B.
pub fn data(ds: &Dataset, samples: &[f32], seed: u64) -> Result<Distances, ReportError> {
    let d = ds.dim.max(1);
    let (a, b) = halves(ds, seed);
    let m = (samples.len() / d).min(a.len()).min(b.len());
    if m < 2 {
        return Err(ReportError::Mismatch(format!(
            "the data has {} examples: at least 4 are needed for two halves to compare",
            ds.len()
        )));
    }
    let take = |x: &[f32]| x.get(..m * d).unwrap_or(x).to_vec();
    let (a, b, s) = (take(&a.x), take(&b.x), take(samples));
    let scored = |metric: &dyn Fn(&[f32], &[f32]) -> f64| {
        ((metric(&s, &a) + metric(&s, &b)) / 2.0, metric(&a, &b))
    };
    Ok(distances(m, scored, d, seed))
}

/// The two random halves [`data()`] compares samples with (a stratified split).
fn halves(ds: &Dataset, seed: u64) -> (Dataset, Dataset) {
    ds.split(0.5, seed.wrapping_add(1_000_003))
}

/// Seed offset of the class draw of a conditional model's samples on a 2-D set.
const CLASS_DRAW_SEED: u64 = 0x0063_6c61_7373_6573; // "classes" in ASCII

/// The labels of `ds`, which a conditional model of `classes` classes samples with, so that its
/// samples mix the classes as the data does; an error when `ds` has no labels or other classes.
fn conditional_labels<'d>(
    ds: &'d Dataset,
    classes: usize,
    data: &Source,
) -> Result<&'d [u16], ReportError> {
    match &ds.labels {
        Some(l) if ds.classes == classes => Ok(l),
        Some(_) => Err(ReportError::Mismatch(format!(
            "--data {data} has {} classes, the model {classes}",
            ds.classes
        ))),
        None => Err(ReportError::Mismatch(format!(
            "the model is class-conditional ({classes} classes) and --data {data} has no labels to mix its samples' classes by"
        ))),
    }
}

/// The three distances, each scored by `scored(metric) → (value, floor)`.
fn distances(
    samples: usize,
    scored: impl Fn(&dyn Fn(&[f32], &[f32]) -> f64) -> (f64, f64),
    d: usize,
    seed: u64,
) -> Distances {
    let metric = |(value, noise_floor): (f64, f64)| Metric {
        value,
        noise_floor,
        ratio: None,
    };
    let swd = scored(&|x, y| sliced_w2(x, y, d, PROJECTIONS, seed));
    Distances {
        samples,
        sliced_w2: Metric {
            ratio: Some(swd.0 / swd.1),
            ..metric(swd)
        },
        mmd2_rbf: metric(scored(&|x, y| mmd_rbf(x, y, d, None))),
        energy: metric(scored(&|x, y| energy_distance(x, y, d))),
    }
}

/// The judge's verdict on digits `x` (pixel units) conditioned on classes `y`.
pub fn digits(judge: &DigitsJudge, x: &[f32], y: &[u16]) -> Result<Digits, JudgeError> {
    Ok(Digits {
        samples: x.len() / 64,
        classifier_test_accuracy: judge.classifier_test_accuracy,
        class_accuracy: Some(judge.class_accuracy(x, y)),
        class_shares: None,
        frechet: judge.frechet(x)?,
        frechet_noise_floor: judge.frechet_noise_floor,
    })
}

/// The judge's verdict on digits `x` (pixel units) of an unconditional model: the Fréchet
/// distance and the judge's class shares (no class to check).
pub fn unconditional_digits(judge: &DigitsJudge, x: &[f32]) -> Result<Digits, JudgeError> {
    Ok(Digits {
        samples: x.len() / 64,
        classifier_test_accuracy: judge.classifier_test_accuracy,
        class_accuracy: None,
        class_shares: Some(judge.class_histogram(x)),
        frechet: judge.frechet(x)?,
        frechet_noise_floor: judge.frechet_noise_floor,
    })
}

/// `auto` (exact up to [`MAX_EXACT_TRACE_DIM`] dimensions), `exact`, `hutchinson` or
/// `hutchinson:K`.
pub fn parse_trace(s: &str, dim: usize) -> Result<Trace, ReportError> {
    let bad = || {
        ReportError::Mismatch(format!(
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

/// The likelihood of held-out data under the trained run's model: the digits' test split, a
/// fresh draw of `n` points of a 2-D set, or the first `n` examples of the user's file;
/// conditioned on the true class for a class-conditional model.
pub fn likelihood(
    run: &Trained,
    data: &Source,
    n: usize,
    config: NllConfig,
) -> Result<Likelihood, ReportError> {
    let cfg = run.config();
    let dim = cfg.model.data_dim;
    if n == 0 {
        return Err(ReportError::Mismatch(
            "--nll-n 0: the likelihood needs at least one held-out point".into(),
        ));
    }
    let held_out = held_out(data, n, config.seed)?;
    if held_out.dim != dim {
        return Err(ReportError::Mismatch(format!(
            "--run: the model makes {dim} values per sample, --data {data} has {}",
            held_out.dim
        )));
    }
    let mut x = held_out.x.clone();
    run.info.normalizer.to_model(&mut x);
    let rows = x.len() / dim;
    let classes: Vec<f32> = match (&held_out.labels, cfg.model.classes) {
        (_, 0) => vec![0.0; rows],
        (Some(l), _) => l.iter().map(|&c| c as f32).collect(),
        (None, _) => {
            return Err(ReportError::Mismatch(
                "--run: a class-conditional model needs labelled data for the likelihood".into(),
            ));
        }
    };
    let mut net = nll::Network::new(
        cfg.model,
        run.weights().to_vec(),
        cfg.process.clone(),
        classes,
    )
    .predicting(cfg.prediction());
    let per_row = nll::nll(&cfg.process, &mut net, &x, &config)?;
    let mut l = Likelihood::of_rows(&per_row, &run.info.normalizer.scale, dim);
    l.estimator = "probability-flow ODE".into();
    l.trace = format!("{:?}", config.trace);
    l.ode_steps = config.steps;
    Ok(l)
}

impl Likelihood {
    /// Mean and standard error of per-point NLLs (nats, model space), with the data-unit
    /// figures for the map `data = x·scale + offset`; the estimator fields are left empty.
    fn of_rows(per_row: &[f64], scale: &[f32], dim: usize) -> Likelihood {
        let rows = per_row.len().max(1);
        let mean = per_row.iter().sum::<f64>() / rows as f64;
        let var =
            per_row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (rows.max(2) - 1) as f64;
        let data_nats = mean + nll::data_space_offset(scale, dim);
        Likelihood {
            value: mean,
            stderr: (var / rows as f64).sqrt(),
            data_units_nats: data_nats,
            bits_per_dim: data_nats / (dim as f64 * std::f64::consts::LN_2),
            points: per_row.len(),
            estimator: String::new(),
            representation: "data units".into(),
            trace: String::new(),
            ode_steps: 0,
        }
    }
}

/// The held-out points of a likelihood: the digits' test split, `n` fresh draws of a 2-D set,
/// or the first `n` rows of the user's file.
fn held_out(data: &Source, n: usize, seed: u64) -> Result<data::Dataset, ReportError> {
    Ok(match data {
        Source::Digits => data::digits_split()?.1,
        // Labelled, for a class-conditional model (the points are `toy`'s).
        Source::Toy(kind) => data::toy_labelled(*kind, n, 2_000_003 + seed),
        Source::File(path) => {
            let ds = data::load(path)?;
            let rows: Vec<usize> = (0..ds.len().min(n)).collect();
            ds.subset(&rows)
        }
    })
}

/// Samples per point of the VAE likelihood's importance-weighted bound.
pub const IWAE_K: usize = 64;

/// The negative log-likelihood of held-out data under a VAE run, by the importance-weighted
/// bound with [`IWAE_K`] samples (an upper bound on the NLL, tight as `k` grows), in the same
/// units and on the same held-out points as [`likelihood`] gives for a diffusion run.
pub fn vae_likelihood(
    run: &crate::zoo::vae::run::VaeRun,
    data: &Source,
    n: usize,
    seed: u64,
) -> Result<Likelihood, ReportError> {
    let dim = run.vae.config().x_dim;
    let held_out = zoo_held_out(data, n, seed, dim)?;
    let x = model_space(&held_out, &run.scale, &run.offset);
    let labels = match (&held_out.labels, run.vae.config().classes) {
        (_, 0) => None,
        (Some(l), _) => Some(l.as_slice()),
        (None, _) => {
            return Err(ReportError::Mismatch(
                "--run: a class-conditional model needs labelled data for the likelihood".into(),
            ));
        }
    };
    iwae_likelihood(run.vae.iwae(&x, labels, IWAE_K, seed), &run.scale, dim)
}

/// Held-out rows (data units) in a zoo model's space, `(x − offset) / scale`, widened to f64.
fn model_space(held_out: &data::Dataset, scale: &[f32], offset: &[f32]) -> Vec<f64> {
    let mut x = held_out.x.clone();
    crate::data::Normalizer {
        scale: scale.to_vec(),
        offset: offset.to_vec(),
    }
    .to_model(&mut x);
    x.iter().map(|&v| f64::from(v)).collect()
}

/// The NLL figures of per-point IWAE bounds (nats, model space) of a model mapped to data
/// units by `scale`.
fn iwae_likelihood(
    bounds: Result<Vec<f64>, crate::zoo::vae::VaeError>,
    scale: &[f32],
    dim: usize,
) -> Result<Likelihood, ReportError> {
    let bounds = bounds.map_err(|e| ReportError::Mismatch(format!("--run: {e}")))?;
    let per_row: Vec<f64> = bounds.iter().map(|b| -b).collect();
    let mut l = Likelihood::of_rows(&per_row, scale, dim);
    l.estimator = format!("IWAE, k = {IWAE_K}");
    Ok(l)
}

/// The held-out points of [`likelihood`] for a zoo model of `dim` values per sample.
fn zoo_held_out(
    data: &Source,
    n: usize,
    seed: u64,
    dim: usize,
) -> Result<data::Dataset, ReportError> {
    if n == 0 {
        return Err(ReportError::Mismatch(
            "--nll-n 0: the likelihood needs at least one held-out point".into(),
        ));
    }
    let held_out = held_out(data, n, seed)?;
    if held_out.dim != dim {
        return Err(ReportError::Mismatch(format!(
            "--run: the model makes {dim} values per sample, --data {data} has {}",
            held_out.dim
        )));
    }
    Ok(held_out)
}

/// The negative log-likelihood of held-out data under a two-level VAE run, by the
/// importance-weighted bound with [`IWAE_K`] samples, as [`vae_likelihood`] for a VAE.
pub fn hvae_likelihood(
    run: &crate::zoo::vae::hvae_run::HvaeRun,
    data: &Source,
    n: usize,
    seed: u64,
) -> Result<Likelihood, ReportError> {
    let dim = run.hvae.config().x_dim;
    let held_out = zoo_held_out(data, n, seed, dim)?;
    let x = model_space(&held_out, &run.scale, &run.offset);
    iwae_likelihood(run.hvae.iwae(&x, IWAE_K, seed), &run.scale, dim)
}

/// Intermediate distributions of the RBM likelihood's annealed importance sampling, spaced as
/// `AisConfig::schedule` does (Salakhutdinov & Murray's proportions; they used 14 500).
pub const AIS_STEPS: usize = 10_000;
/// Independent AIS runs (Salakhutdinov & Murray's 100).
pub const AIS_RUNS: usize = 100;

/// The negative log-likelihood of held-out data under an RBM run: the data binarised as the
/// run binarised its training set, `−log p(v) = F(v) + log Z` with the exact free energy `F`
/// and `log Z` estimated by annealed importance sampling ([`AIS_STEPS`] intermediate
/// distributions, [`AIS_RUNS`] runs, base model at the machine's visible biases). The
/// standard error combines the spread over the held-out points and the AIS standard error of
/// `log Z` (shared by every point). The figures are of a probability mass over the binarised
/// values, so nats in "model space" and in "data units" are the same number (no Jacobian):
/// bits per dimension are bits per binary value.
pub fn rbm_likelihood(
    run: &crate::zoo::boltzmann::run::RbmRun,
    data: &Source,
    n: usize,
    seed: u64,
) -> Result<Likelihood, ReportError> {
    use crate::zoo::boltzmann::{AisBase, AisConfig, ais_log_partition};
    let nv = run.rbm.nv();
    let dim = nv / run.units_per_value();
    let held_out = zoo_held_out(data, n, seed, dim)?;
    let fail =
        |e: crate::zoo::boltzmann::BoltzmannError| ReportError::Mismatch(format!("--run: {e}"));
    let bits = run.binarize(&held_out.x, dim).map_err(fail)?;
    let ais = ais_log_partition(
        &run.rbm,
        &AisConfig {
            betas: AisConfig::schedule(AIS_STEPS),
            runs: AIS_RUNS,
            base: AisBase::VisibleBiases,
            seed,
        },
    )
    .map_err(fail)?;
    let per_row = bits
        .iter()
        .map(|v| Ok(run.rbm.free_energy(v).map_err(fail)? + ais.log_z))
        .collect::<Result<Vec<f64>, ReportError>>()?;
    let mut l = Likelihood::of_rows(&per_row, &[], nv);
    l.stderr = l.stderr.hypot(ais.std_error);
    l.estimator = format!(
        "AIS, {AIS_STEPS} intermediate distributions × {AIS_RUNS} runs: log Z = {:.4} ± {:.4}",
        ais.log_z, ais.std_error
    );
    l.representation = if run.levels == 2 {
        format!(
            "binarised data (1 where a value is ≥ {} in data units)",
            run.threshold()
        )
    } else {
        format!(
            "each value as {} thermometer units ({} levels from {} to {} in data units); \
             bits per unit",
            run.units_per_value(),
            run.levels,
            run.data_min,
            run.data_max
        )
    };
    Ok(l)
}
