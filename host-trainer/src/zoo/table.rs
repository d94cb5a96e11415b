//! docs/zoo.md's comparison tables (`microdiff demo --zoo`): every generator family trained on
//! the 8×8 digits and on the 2-D set `8gaussians` ([`DATA_SETS`]) by the same library paths
//! `microdiff train` takes, exported, sampled through the no_std runtime, judged, and its
//! likelihood estimated; the device columns from QEMU instruction counts (`cargo xtask size
//! --json`) of the golden blob of the same architecture and program.
//!
//! # What it promises
//!
//! Every cell is measured by this run, except the instruction counts, which are read from the
//! size report the caller names (they need QEMU, which a host command does not run): a row
//! without one says so instead of guessing. The diffusion rows' counts are per sample of the
//! golden program (digits: 20 evaluations; 8gaussians: 10), scaled to the row's evaluations
//! (the network dominates: a sampler step's `LIN` work is under 0.2 % of an evaluation of the
//! digits model on every target). Deterministic for a seed, like the training it calls.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::backend::cpu::{Cpu, hot_pool};
use crate::data::{Source, Toy};
use crate::eval::judge::{DigitsJudge, JudgeError, ToyJudge};
use crate::eval::nll::{NllConfig, Trace};
use crate::eval::report::{self, Likelihood};
use crate::export::from_run::{Options, from_run};
use crate::run::{Run, RunDir, Settings, Start};
use crate::sampler::SamplerSpec;
use crate::sampling;
use crate::zoo::command::TrainFlags;
use crate::zoo::{boltzmann, vae};

/// What [`run`] trains and how much it samples.
#[derive(Debug, Clone)]
pub struct ZooOptions {
    /// Directory of the runs, blobs, `zoo.json` and `zoo.md`.
    pub out: PathBuf,
    /// Training steps of the diffusion model (the golden digits model: 10 000).
    pub diffusion_steps: u64,
    /// Samples per class (conditional) or ten times as many (unconditional) per row.
    pub per_class: usize,
    /// Seed of the training and the samples.
    pub seed: u64,
    /// `cargo xtask size --json` output (one JSON object per target), for the device columns.
    pub size_report: Option<PathBuf>,
}

/// One row of the table.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Row {
    /// The data set (`digits` or `8gaussians`).
    pub data: String,
    /// The model family.
    pub family: String,
    /// The blob's program.
    pub program: String,
    /// Network evaluations per sample.
    pub evaluations: u16,
    /// The blob, in the output directory.
    pub blob: String,
    /// Its size.
    pub blob_bytes: usize,
    /// Trainable parameters of what the blob holds (the decoder or sampler's networks).
    pub parameters: usize,
    /// The judge's Fréchet distance of the samples.
    pub frechet: f64,
    /// The same distance between two halves of the real digits (digits) or two independent
    /// draws of the samples' size (2-D).
    pub frechet_noise_floor: f64,
    /// Fraction classified as the class asked for (conditional models).
    pub class_accuracy: Option<f64>,
    /// The judge's class shares of the samples (unconditional models).
    pub class_histogram: Option<Vec<f64>>,
    /// The held-out likelihood the family reports.
    pub likelihood: Likelihood,
    /// Instructions per sample on the Cortex-M4F and M0 (QEMU count), if a size report was
    /// given and it has the golden blob of this row's architecture and program.
    pub instructions_m4f: Option<u64>,
    /// See [`Row::instructions_m4f`].
    pub instructions_m0: Option<u64>,
    /// Where the instruction counts come from.
    pub instructions_from: String,
}

/// Why the table could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ZooError {
    /// A step failed; the text says which and why.
    #[error("{step}: {message}")]
    Step {
        /// What was being done.
        step: String,
        /// Why it failed.
        message: String,
    },
}

/// `step: error` as a [`ZooError`].
fn at<E: std::fmt::Display>(step: &str) -> impl FnOnce(E) -> ZooError + '_ {
    move |e| ZooError::Step {
        step: step.into(),
        message: e.to_string(),
    }
}

/// The diffusion samplers of the table: the best measured 4-, 10- and 25-evaluation samplers
/// of the digits model (docs/samplers.md), class-conditional without guidance.
pub const DIFFUSION_SAMPLERS: [&str; 3] = ["ddim:4:clip=1", "dpmpp2m:10:clip=1", "ddpm:25"];

/// The 2-D table's diffusion samplers: the same three without clipping (x̂₀ of a 2-D set is
/// not confined to ±1 in model space; clipping it costs a 4-step DDIM a factor 5 in energy
/// distance on 8gaussians).
pub const TOY_DIFFUSION_SAMPLERS: [&str; 3] = ["ddim:4", "dpmpp2m:10", "ddpm:25"];

/// The RBM's Gibbs sweep counts (the golden RBM's programs).
pub const RBM_SWEEPS: [u16; 2] = [10, 50];

/// The 2-D set of the second table: its components have a closed-form classifier (the judge's
/// class accuracy and shares).
pub const TOY_SET: Toy = Toy::EightGaussians;

/// The tables' data sets.
pub const DATA_SETS: [&str; 2] = ["digits", "8gaussians"];

/// Held-out points of a 2-D set's likelihoods.
const TOY_NLL_POINTS: usize = 1000;

/// Thermometer levels of the 2-D RBM (`--levels`): 15 units per coordinate, steps of 1/15 of
/// the range.
pub const TOY_RBM_LEVELS: u16 = 16;

/// What one table is made on.
struct Set {
    /// `digits` or a toy name.
    name: &'static str,
    source: Source,
    judge: Judge,
    /// Classes of a conditional model.
    classes: u16,
    /// Held-out points of the likelihoods (`n` of [`report::likelihood`]).
    nll_points: usize,
}

/// A data set's judge.
enum Judge {
    // Boxed: the classifier is large, the 2-D judge a reference draw.
    Digits(Box<DigitsJudge>),
    Toy(ToyJudge),
}

impl Judge {
    fn frechet(&self, x: &[f32]) -> Result<f64, JudgeError> {
        match self {
            Judge::Digits(j) => j.frechet(x),
            Judge::Toy(j) => j.frechet(x),
        }
    }

    fn floor(&self) -> f64 {
        match self {
            Judge::Digits(j) => j.frechet_noise_floor,
            Judge::Toy(j) => j.frechet_noise_floor,
        }
    }

    fn class_accuracy(&self, x: &[f32], classes: &[u16]) -> f64 {
        match self {
            Judge::Digits(j) => j.class_accuracy(x, classes),
            Judge::Toy(j) => j.class_accuracy(x, classes),
        }
    }

    fn class_histogram(&self, x: &[f32]) -> Vec<f64> {
        match self {
            Judge::Digits(j) => j.class_histogram(x),
            Judge::Toy(j) => j.class_histogram(x),
        }
    }
}

/// Trains, exports, samples and judges every family on each of [`DATA_SETS`]; `say` hears one
/// line per step.
pub fn run(o: &ZooOptions, say: &dyn Fn(&str)) -> Result<Vec<Row>, ZooError> {
    std::fs::create_dir_all(&o.out).map_err(at("output directory"))?;
    let counts = match &o.size_report {
        Some(p) => Some(SizeReport::read(p)?),
        None => None,
    };
    say("training the judge (the digits classifier)");
    let digits = Set {
        name: "digits",
        source: Source::Digits,
        judge: Judge::Digits(Box::new(DigitsJudge::new().map_err(at("judge"))?)),
        classes: 10,
        // The digits' likelihoods take the whole test split (`n` = 1 is for other data).
        nll_points: 1,
    };
    let classes = TOY_SET.classes() as u16;
    let toy = Set {
        name: TOY_SET.name(),
        source: Source::Toy(TOY_SET),
        judge: Judge::Toy(
            ToyJudge::new(TOY_SET, usize::from(classes) * o.per_class).map_err(at("judge"))?,
        ),
        classes,
        nll_points: TOY_NLL_POINTS,
    };
    let mut rows = Vec::new();
    for set in [&digits, &toy] {
        let out = set_dir(o, set);
        std::fs::create_dir_all(&out).map_err(at("output directory"))?;
        rows.extend(diffusion(o, set, say)?);
        rows.extend(vaes(o, set, say)?);
        rows.extend(rbm(o, set, say)?);
    }
    for r in &mut rows {
        fill_counts(r, counts.as_ref());
    }
    let json = serde_json::to_string_pretty(&rows).map_err(at("zoo.json"))?;
    std::fs::write(o.out.join("zoo.json"), json).map_err(at("zoo.json"))?;
    std::fs::write(o.out.join("zoo.md"), markdown(&rows)).map_err(at("zoo.md"))?;
    Ok(rows)
}

/// Where a set's runs and blobs go: the output directory itself for the digits (the layout
/// before the 2-D table), a subdirectory named after a 2-D set.
fn set_dir(o: &ZooOptions, set: &Set) -> PathBuf {
    match set.source {
        Source::Digits => o.out.clone(),
        _ => o.out.join(set.name),
    }
}

/// The settings the table trains `objective` (`ddpm`, `vae`, `hvae` or `rbm`) with on `data`
/// (one of [`DATA_SETS`]), with `seed` and, for the diffusion model, `diffusion_steps`: the
/// defaults of `microdiff train` except where named. The 2-D golden blobs
/// (`examples/golden_zoo.rs`) are trained with the same settings.
pub fn family_settings(data: &str, objective: &str, seed: u64, diffusion_steps: u64) -> Settings {
    let digits = data == "digits";
    let base = Settings {
        data: Some(data.into()),
        objective: Some(objective.into()),
        seed: Some(seed),
        ..Settings::default()
    };
    match objective {
        "ddpm" => {
            let ddpm = Settings {
                conditional: Some(true),
                cfg_dropout: Some(0.1),
                steps: Some(diffusion_steps),
                ema_decay: Some(0.999),
                temb: Some(32),
                act: Some("silu".into()),
                ..base
            };
            if digits {
                // The golden digits model's architecture and training
                // (`TrainConfig::digits_demo`).
                Settings {
                    batch: Some(256),
                    lr: Some(2e-3),
                    warmup: Some(200),
                    hidden: Some(96),
                    ff: Some(128),
                    blocks: Some(2),
                    ..ddpm
                }
            } else {
                Settings {
                    hidden: Some(TOY_DIFFUSION_WIDTH.0),
                    ff: Some(TOY_DIFFUSION_WIDTH.1),
                    blocks: Some(TOY_DIFFUSION_WIDTH.2),
                    ..ddpm
                }
            }
        }
        "vae" => Settings {
            conditional: Some(true),
            ..base
        },
        "rbm" if !digits => Settings {
            levels: Some(TOY_RBM_LEVELS),
            ..base
        },
        _ => base,
    }
}

/// What the judge says of one program's samples.
struct Judged {
    frechet: f64,
    class_accuracy: Option<f64>,
    class_histogram: Option<Vec<f64>>,
}

/// Samples of a blob back to data values (an RBM's thermometer units summed), if they are not.
type Decode<'a> = Option<&'a dyn Fn(&[f32]) -> Result<Vec<f32>, ZooError>>;

/// The judge's figures of `blob`'s `program`: conditional models `per_class` samples of each
/// class, unconditional ones as many in all.
fn judge_blob(
    set: &Set,
    blob: &[u8],
    program: &str,
    conditional: bool,
    decode: Decode<'_>,
    o: &ZooOptions,
) -> Result<Judged, ZooError> {
    let decoded = |x: Vec<f32>| match decode {
        Some(f) => f(&x),
        None => Ok(x),
    };
    let judge = &set.judge;
    if conditional {
        let (x, y) = sampling::per_class(blob, program, set.classes, o.per_class, o.seed, &|_| {})
            .map_err(at("sampling"))?;
        let x = decoded(x)?;
        Ok(Judged {
            frechet: judge.frechet(&x).map_err(at("Fréchet"))?,
            class_accuracy: Some(judge.class_accuracy(&x, &y)),
            class_histogram: None,
        })
    } else {
        let classes = vec![0u16; usize::from(set.classes) * o.per_class];
        let x = sampling::with_classes(blob, program, &classes, o.seed, &|_| {})
            .map_err(at("sampling"))?;
        let x = decoded(x)?;
        Ok(Judged {
            frechet: judge.frechet(&x).map_err(at("Fréchet"))?,
            class_accuracy: None,
            class_histogram: Some(judge.class_histogram(&x)),
        })
    }
}

/// A blob written to the output directory and what it is.
struct Blob<'a> {
    family: &'a str,
    file: &'a str,
    bytes: &'a [u8],
    parameters: usize,
}

/// How a row's samples are made and judged.
struct Sampled<'a> {
    program: &'a str,
    evaluations: u16,
    conditional: bool,
    decode: Decode<'a>,
}

/// The row of `s.program` of `blob` on `set`, judged and sampled.
fn row(
    set: &Set,
    o: &ZooOptions,
    blob: &Blob<'_>,
    s: &Sampled<'_>,
    likelihood: &Likelihood,
    say: &dyn Fn(&str),
) -> Result<Row, ZooError> {
    say(&format!(
        "sampling and judging {} / {} on {}",
        blob.family, s.program, set.name
    ));
    let j = judge_blob(set, blob.bytes, s.program, s.conditional, s.decode, o)?;
    Ok(Row {
        data: set.name.into(),
        family: blob.family.into(),
        program: s.program.into(),
        evaluations: s.evaluations,
        blob: blob.file.into(),
        blob_bytes: blob.bytes.len(),
        parameters: blob.parameters,
        frechet: j.frechet,
        frechet_noise_floor: set.judge.floor(),
        class_accuracy: j.class_accuracy,
        class_histogram: j.class_histogram,
        likelihood: likelihood.clone(),
        instructions_m4f: None,
        instructions_m0: None,
        instructions_from: String::new(),
    })
}

/// A plain row: no decoding.
fn plain(program: &str, evaluations: u16, conditional: bool) -> Sampled<'_> {
    Sampled {
        program,
        evaluations,
        conditional,
        decode: None,
    }
}

/// The diffusion model of `set` ([`family_settings`]).
fn diffusion(o: &ZooOptions, set: &Set, say: &dyn Fn(&str)) -> Result<Vec<Row>, ZooError> {
    let out = set_dir(o, set);
    let dir = out.join("diffusion");
    let s = family_settings(set.name, "ddpm", o.seed, o.diffusion_steps);
    say(&format!(
        "training the diffusion model on {} ({} steps)",
        set.name, o.diffusion_steps
    ));
    let run = Run::prepare(&dir, &s, Start::Force).map_err(at("diffusion run"))?;
    let every = o.diffusion_steps.max(1);
    hot_pool(|| run.train(Cpu, every, &mut |_| {})).map_err(at("diffusion training"))?;
    let trained = RunDir::locate(&dir)
        .and_then(|d| d.open())
        .map_err(at("diffusion run"))?;
    let samplers = match set.source {
        Source::Digits => DIFFUSION_SAMPLERS,
        _ => TOY_DIFFUSION_SAMPLERS,
    };
    let options = Options {
        samplers: samplers.iter().map(|s| s.to_string()).collect(),
        ..Options::default()
    };
    let bytes = from_run(&trained, &options)
        .map_err(at("diffusion export"))?
        .bytes;
    let file = "diffusion-i8.mdfb";
    std::fs::write(out.join(file), &bytes).map_err(at(file))?;
    say("the diffusion model's likelihood (probability-flow ODE)");
    let nll = NllConfig {
        steps: 50,
        trace: if matches!(set.source, Source::Digits) {
            Trace::Hutchinson(1)
        } else {
            Trace::Exact
        },
        seed: o.seed,
    };
    let likelihood = report::likelihood(&trained, &set.source, set.nll_points, nll)
        .map_err(at("diffusion likelihood"))?;
    let model = microdiff_runtime::Model::parse(&bytes).map_err(at("diffusion blob"))?;
    let blob = Blob {
        family: "diffusion (DDPM)",
        file,
        bytes: &bytes,
        parameters: trained.config().model.parameter_count(),
    };
    let mut rows = Vec::new();
    for spec in samplers {
        let spec: SamplerSpec = spec.parse().map_err(at("diffusion sampler"))?;
        let name = spec.default_name();
        let evals = model.program(&name).map_err(at("diffusion blob"))?.evals;
        rows.push(row(
            set,
            o,
            &blob,
            &plain(&name, evals, true),
            &likelihood,
            say,
        )?);
    }
    Ok(rows)
}

/// `(--hidden, --ff, --blocks)` of the 2-D table's diffusion model (and its golden blob).
pub const TOY_DIFFUSION_WIDTH: (usize, usize, usize) = (32, 64, 2);

fn vaes(o: &ZooOptions, set: &Set, say: &dyn Fn(&str)) -> Result<Vec<Row>, ZooError> {
    let out = set_dir(o, set);
    let mut rows = Vec::new();
    say(&format!("training the VAE on {}", set.name));
    let dir = out.join("vae");
    let s = family_settings(set.name, "vae", o.seed, o.diffusion_steps);
    let t =
        vae::command::train(&s, &TrainFlags::fresh(&dir), |_| {}).map_err(at("VAE training"))?;
    let likelihood = report::vae_likelihood(&t.run, &set.source, set.nll_points, o.seed)
        .map_err(at("VAE likelihood"))?;
    let program = vae::export::PROGRAM;
    for (dtype, family, file) in [
        ("i8", "VAE (i8)", "vae-i8.mdfb"),
        ("w8a8", "VAE (w8a8)", "vae-w8a8.mdfb"),
    ] {
        let bytes = vae::command::export_blob(&dir, dtype, None, &out.join(file))
            .map_err(at("VAE export"))?;
        let blob = Blob {
            family,
            file,
            bytes: &bytes,
            parameters: t.run.vae.decoder().params().len(),
        };
        rows.push(row(
            set,
            o,
            &blob,
            &plain(program, 1, true),
            &likelihood,
            say,
        )?);
    }
    say(&format!("training the two-level VAE on {}", set.name));
    let dir = out.join("hvae");
    let t = vae::command::train_hvae(
        &family_settings(set.name, "hvae", o.seed, o.diffusion_steps),
        &TrainFlags::fresh(&dir),
        |_| {},
    )
    .map_err(at("HVAE training"))?;
    let likelihood = report::hvae_likelihood(&t.run, &set.source, set.nll_points, o.seed)
        .map_err(at("HVAE likelihood"))?;
    let file = "hvae-i8.mdfb";
    let bytes =
        vae::command::export_hvae_blob(&dir, "i8", &out.join(file)).map_err(at("HVAE export"))?;
    let h = &t.run.hvae;
    let blob = Blob {
        family: "two-level VAE (i8)",
        file,
        bytes: &bytes,
        parameters: h.prior().params().len() + h.decoder().params().len(),
    };
    rows.push(row(
        set,
        o,
        &blob,
        &plain(program, 1, false),
        &likelihood,
        say,
    )?);
    Ok(rows)
}

fn rbm(o: &ZooOptions, set: &Set, say: &dyn Fn(&str)) -> Result<Vec<Row>, ZooError> {
    let out = set_dir(o, set);
    say(&format!("training the RBM on {}", set.name));
    let dir = out.join("rbm");
    let s = family_settings(set.name, "rbm", o.seed, o.diffusion_steps);
    let t = boltzmann::command::train(&s, &TrainFlags::fresh(&dir), |_| {})
        .map_err(at("RBM training"))?;
    say("the RBM's likelihood (AIS)");
    let likelihood = report::rbm_likelihood(&t.run, &set.source, set.nll_points, o.seed)
        .map_err(at("RBM likelihood"))?;
    let r = &t.run.rbm;
    let parameters = r.weights().len() + r.visible_bias().len() + r.hidden_bias().len();
    let run = &t.run;
    let decode = |x: &[f32]| run.decode(x).map_err(at("RBM samples"));
    let mut rows = Vec::new();
    for (dtype, family, file) in [
        ("i8", "RBM (i8)", "rbm-i8.mdfb"),
        ("w8a8", "RBM (w8a8)", "rbm-w8a8.mdfb"),
    ] {
        let bytes =
            boltzmann::command::export_blob(&dir, dtype, Some(&RBM_SWEEPS), &out.join(file))
                .map_err(at("RBM export"))?;
        let blob = Blob {
            family,
            file,
            bytes: &bytes,
            parameters,
        };
        for k in RBM_SWEEPS {
            let program = boltzmann::export::program_name(k);
            let sampled = Sampled {
                program: &program,
                evaluations: k,
                conditional: false,
                decode: Some(&decode),
            };
            rows.push(row(set, o, &blob, &sampled, &likelihood, say)?);
        }
    }
    Ok(rows)
}

/// The targets' lines of `cargo xtask size --json`.
#[derive(Debug, Clone, Default)]
pub struct SizeReport {
    targets: Vec<(String, serde_json::Value)>,
}

impl SizeReport {
    /// Reads the JSON objects (one per line; other lines are skipped) of `path`.
    pub fn read(path: &Path) -> Result<Self, ZooError> {
        let text = std::fs::read_to_string(path).map_err(at("--size-report"))?;
        Self::parse(&text)
    }

    /// Parses the JSON objects of `text` (one per line, lines not starting with `{` skipped).
    pub fn parse(text: &str) -> Result<Self, ZooError> {
        let mut targets = Vec::new();
        for line in text.lines().map(str::trim).filter(|l| l.starts_with('{')) {
            let v: serde_json::Value = serde_json::from_str(line).map_err(at("--size-report"))?;
            let Some(t) = v.get("target").and_then(|t| t.as_str()) else {
                return Err(ZooError::Step {
                    step: "--size-report".into(),
                    message: format!("a line without a \"target\": {line}"),
                });
            };
            targets.push((t.to_string(), v));
        }
        if targets.is_empty() {
            return Err(ZooError::Step {
                step: "--size-report".into(),
                message: "no target lines (expected the output of `cargo xtask size --json`)"
                    .into(),
            });
        }
        Ok(SizeReport { targets })
    }

    /// Key `key` of target `target`, if both are there and the value is a number.
    pub fn get(&self, target: &str, key: &str) -> Option<f64> {
        self.targets
            .iter()
            .find(|(t, _)| t == target)
            .and_then(|(_, v)| v.get(key)?.as_f64())
    }
}

/// The size-report key and the scale of `row`'s instruction count.
fn count_key(row: &Row) -> Option<(String, f64)> {
    let data = row.data.as_str();
    let scaled = |key: &str, per: f64| Some((key.to_string(), f64::from(row.evaluations) / per));
    let key = |family: &str| format!("instructions_per_sample_{family}_{data}");
    match (row.family.as_str(), row.program.as_str()) {
        (f, _) if f.starts_with("diffusion") => match data {
            "digits" => scaled("instructions_per_sample_f32_digits_cfg10", 20.0),
            _ => scaled(&key("diffusion_dpmpp2m10"), 10.0),
        },
        ("VAE (i8)", _) => scaled(&key("vae"), 1.0),
        ("VAE (w8a8)", _) => scaled(&key("vae_w8a8"), 1.0),
        ("two-level VAE (i8)", _) => scaled(&key("hvae"), 1.0),
        ("RBM (i8)", p) => Some((key(&format!("rbm_{p}")), 1.0)),
        ("RBM (w8a8)", p) => Some((key(&format!("rbm_w8a8_{p}")), 1.0)),
        _ => None,
    }
}

fn fill_counts(row: &mut Row, report: Option<&SizeReport>) {
    let Some(report) = report else {
        row.instructions_from = "no size report given (cargo xtask size --json)".into();
        return;
    };
    let Some((key, scale)) = count_key(row) else {
        row.instructions_from = "no golden blob of this architecture".into();
        return;
    };
    let count = |t: &str| report.get(t, &key).map(|n| (n * scale).round() as u64);
    row.instructions_m4f = count("m4f");
    row.instructions_m0 = count("m0");
    row.instructions_from = if scale == 1.0 {
        format!("{key} (QEMU)")
    } else {
        let golden = (f64::from(row.evaluations) / scale).round();
        format!("{key} (QEMU) × {}/{golden} evaluations", row.evaluations)
    };
}

/// The tables as Markdown (docs/zoo.md's layout): one per data set, each under a line naming
/// it.
pub fn markdown(rows: &[Row]) -> String {
    let mut s = String::new();
    let mut sets: Vec<&str> = Vec::new();
    for r in rows {
        if !sets.contains(&r.data.as_str()) {
            sets.push(&r.data);
        }
    }
    for (i, set) in sets.iter().enumerate() {
        if i > 0 {
            s.push('\n');
        }
        s.push_str(&format!("**{set}**\n\n"));
        s.push_str(&table(rows.iter().filter(|r| r.data == *set)));
    }
    s
}

/// One data set's table.
fn table<'a>(rows: impl Iterator<Item = &'a Row>) -> String {
    let mut s = String::from(
        "| family | program | evaluations | Fréchet (floor) | class accuracy / judge's class shares | NLL, bits/dim (estimator, data) | parameters | blob bytes | instructions M4F | instructions M0 |\n|---|---|---:|---:|---|---|---:|---:|---:|---:|\n",
    );
    let n = |v: Option<u64>| v.map_or("—".to_string(), group);
    for r in rows {
        let classes = match (&r.class_accuracy, &r.class_histogram) {
            (Some(a), _) => format!("{a:.3}"),
            (None, Some(h)) => {
                h.iter()
                    .map(|v| format!("{:.0}", 100.0 * v))
                    .collect::<Vec<_>>()
                    .join("/")
                    + " %"
            }
            _ => "—".into(),
        };
        let l = &r.likelihood;
        // The standard error in bits per dimension: the same scale as the value's.
        let per_dim = if l.data_units_nats != 0.0 {
            l.bits_per_dim / l.data_units_nats
        } else {
            0.0
        };
        s.push_str(&format!(
            "| {} | `{}` | {} | {} ({}) | {} | {:.2} ± {:.2} ({}, {}) | {} | {} | {} | {} |\n",
            r.family,
            r.program,
            r.evaluations,
            distance(r.frechet),
            distance(r.frechet_noise_floor),
            classes,
            l.bits_per_dim,
            l.stderr * per_dim,
            // The estimator's name, not its settings (zoo.json has them).
            l.estimator.split(':').next().unwrap_or_default(),
            l.representation,
            group(r.parameters as u64),
            group(r.blob_bytes as u64),
            n(r.instructions_m4f),
            n(r.instructions_m0),
        ));
    }
    s
}

/// A distance with two decimals, or three significant digits below 1 (the 2-D set's are
/// small).
fn distance(v: f64) -> String {
    if v.abs() >= 1.0 || v == 0.0 {
        format!("{v:.2}")
    } else {
        let decimals = (2.0 - v.abs().log10().floor()).clamp(2.0, 6.0) as usize;
        format!("{v:.decimals$}")
    }
}

/// `1234567` as `1 234 567`.
fn group(v: u64) -> String {
    let d = v.to_string();
    let mut out = String::new();
    for (i, c) in d.chars().enumerate() {
        if i > 0 && (d.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_size_report_is_read_and_bad_ones_refused() {
        let text = "m0 row of the text table\n{\"target\":\"m0\",\"instructions_per_sample_vae_digits\":1797000}\n{\"target\":\"m4f\",\"instructions_per_sample_vae_digits\":77600}\n";
        let r = SizeReport::parse(text).unwrap();
        assert_eq!(
            r.get("m0", "instructions_per_sample_vae_digits"),
            Some(1_797_000.0)
        );
        assert_eq!(r.get("m7", "instructions_per_sample_vae_digits"), None);
        assert!(SizeReport::parse("nothing here").is_err());
        assert!(SizeReport::parse("{\"no_target\":1}").is_err());
        assert!(SizeReport::parse("{not json").is_err());
    }

    #[test]
    fn counts_scale_with_evaluations_and_numbers_are_grouped() {
        assert_eq!(group(1_234_567), "1 234 567");
        assert_eq!(group(12), "12");
        assert_eq!(distance(10.314), "10.31");
        assert_eq!(distance(0.04567), "0.0457");
        assert_eq!(distance(0.5), "0.500");
        let r = SizeReport::parse(
            "{\"target\":\"m4f\",\"instructions_per_sample_f32_digits_cfg10\":10000000}",
        )
        .unwrap();
        let mut row = Row {
            data: "digits".into(),
            family: "diffusion (DDPM)".into(),
            program: "ddim4".into(),
            evaluations: 4,
            blob: String::new(),
            blob_bytes: 0,
            parameters: 0,
            frechet: 0.0,
            frechet_noise_floor: 0.0,
            class_accuracy: None,
            class_histogram: None,
            likelihood: Likelihood {
                value: 0.0,
                stderr: 0.0,
                data_units_nats: 0.0,
                bits_per_dim: 0.0,
                points: 0,
                estimator: String::new(),
                representation: String::new(),
                trace: String::new(),
                ode_steps: 0,
            },
            instructions_m4f: None,
            instructions_m0: None,
            instructions_from: String::new(),
        };
        fill_counts(&mut row, Some(&r));
        assert_eq!(row.instructions_m4f, Some(2_000_000));
        assert_eq!(row.instructions_m0, None);
        assert!(
            row.instructions_from.ends_with("× 4/20 evaluations"),
            "{}",
            row.instructions_from
        );

        // A 2-D row reads its own key (its golden program has 10 evaluations), and the
        // Markdown has one table per data set, each under its name.
        let r = SizeReport::parse(
            "{\"target\":\"m0\",\"instructions_per_sample_diffusion_dpmpp2m10_8gaussians\":1000,\"instructions_per_sample_rbm_w8a8_gibbs50_8gaussians\":77}",
        )
        .unwrap();
        let mut toy = Row {
            data: "8gaussians".into(),
            program: "ddpm25".into(),
            evaluations: 25,
            ..row.clone()
        };
        fill_counts(&mut toy, Some(&r));
        assert_eq!(toy.instructions_m0, Some(2500));
        assert!(
            toy.instructions_from.ends_with("× 25/10 evaluations"),
            "{}",
            toy.instructions_from
        );
        let mut rbm = Row {
            family: "RBM (w8a8)".into(),
            program: "gibbs50".into(),
            ..toy.clone()
        };
        fill_counts(&mut rbm, Some(&r));
        assert_eq!(rbm.instructions_m0, Some(77));
        let md = markdown(&[row, toy, rbm]);
        let digits = md.find("**digits**").unwrap();
        let gaussians = md.find("**8gaussians**").unwrap();
        assert!(digits < gaussians, "{md}");
        assert_eq!(md.matches("| family |").count(), 2, "{md}");
        assert_eq!(
            md[gaussians..].matches("| diffusion (DDPM) |").count(),
            1,
            "{md}"
        );
    }
}
