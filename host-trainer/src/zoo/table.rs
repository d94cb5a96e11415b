//! docs/zoo.md's comparison table (`microdiff demo --zoo`): every generator family trained on
//! the 8×8 digits by the same library paths `microdiff train` takes, exported, sampled through
//! the no_std runtime, judged, and its likelihood estimated; the device columns from QEMU
//! instruction counts (`cargo xtask size --json`) of the golden blob of the same architecture
//! and program.
//!
//! # What it promises
//!
//! Every cell is measured by this run, except the instruction counts, which are read from the
//! size report the caller names (they need QEMU, which a host command does not run): a row
//! without one says so instead of guessing. The diffusion rows' counts are per sample of the
//! golden 20-evaluation program, scaled to the row's evaluations (the network dominates: a
//! sampler step's `LIN` work is under 0.2 % of an evaluation on every target). Deterministic
//! for a seed, like the training it calls.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::backend::cpu::{Cpu, hot_pool};
use crate::data::Source;
use crate::eval::judge::DigitsJudge;
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
    /// The same distance between two halves of the real digits.
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

/// The RBM's Gibbs sweep counts (the golden RBM's programs).
pub const RBM_SWEEPS: [u16; 2] = [10, 50];

/// Trains, exports, samples and judges every family; `say` hears one line per step.
pub fn run(o: &ZooOptions, say: &dyn Fn(&str)) -> Result<Vec<Row>, ZooError> {
    std::fs::create_dir_all(&o.out).map_err(at("output directory"))?;
    let counts = match &o.size_report {
        Some(p) => Some(SizeReport::read(p)?),
        None => None,
    };
    say("training the judge (the digits classifier)");
    let judge = DigitsJudge::new().map_err(at("judge"))?;
    let mut rows = Vec::new();
    rows.extend(diffusion(o, &judge, say)?);
    rows.extend(vaes(o, &judge, say)?);
    rows.extend(rbm(o, &judge, say)?);
    for r in &mut rows {
        fill_counts(r, counts.as_ref());
    }
    let json = serde_json::to_string_pretty(&rows).map_err(at("zoo.json"))?;
    std::fs::write(o.out.join("zoo.json"), json).map_err(at("zoo.json"))?;
    std::fs::write(o.out.join("zoo.md"), markdown(&rows)).map_err(at("zoo.md"))?;
    Ok(rows)
}

/// Settings of a digits run in `o.out/name`, trained fresh.
fn settings(o: &ZooOptions, objective: &str) -> Settings {
    Settings {
        data: Some("digits".into()),
        objective: Some(objective.into()),
        seed: Some(o.seed),
        ..Settings::default()
    }
}

/// The flags of a fresh CPU run in `dir`.
fn flags(dir: &Path) -> TrainFlags<'_> {
    TrainFlags {
        out: dir,
        resume: false,
        force: true,
        device_is_auto_or_cpu: true,
        threads: false,
        checkpoint_every: false,
    }
}

/// What the judge says of one program's samples.
struct Judged {
    frechet: f64,
    class_accuracy: Option<f64>,
    class_histogram: Option<Vec<f64>>,
}

/// The judge's figures of `blob`'s `program`: conditional models `per_class` samples of each
/// class, unconditional ones ten times `per_class`.
fn judge_blob(
    judge: &DigitsJudge,
    blob: &[u8],
    program: &str,
    conditional: bool,
    o: &ZooOptions,
) -> Result<Judged, ZooError> {
    if conditional {
        let (x, y) = sampling::per_class(blob, program, 10, o.per_class, o.seed, &|_| {})
            .map_err(at("sampling"))?;
        Ok(Judged {
            frechet: judge.frechet(&x).map_err(at("Fréchet"))?,
            class_accuracy: Some(judge.class_accuracy(&x, &y)),
            class_histogram: None,
        })
    } else {
        let classes = vec![0u16; 10 * o.per_class];
        let x = sampling::with_classes(blob, program, &classes, o.seed, &|_| {})
            .map_err(at("sampling"))?;
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

/// The row of `program` (`evaluations` per sample) of `blob`, judged and sampled.
#[allow(clippy::too_many_arguments)]
fn row(
    judge: &DigitsJudge,
    o: &ZooOptions,
    blob: &Blob<'_>,
    program: &str,
    evaluations: u16,
    conditional: bool,
    likelihood: &Likelihood,
    say: &dyn Fn(&str),
) -> Result<Row, ZooError> {
    say(&format!("sampling and judging {} / {program}", blob.family));
    let j = judge_blob(judge, blob.bytes, program, conditional, o)?;
    Ok(Row {
        family: blob.family.into(),
        program: program.into(),
        evaluations,
        blob: blob.file.into(),
        blob_bytes: blob.bytes.len(),
        parameters: blob.parameters,
        frechet: j.frechet,
        frechet_noise_floor: judge.frechet_noise_floor,
        class_accuracy: j.class_accuracy,
        class_histogram: j.class_histogram,
        likelihood: likelihood.clone(),
        instructions_m4f: None,
        instructions_m0: None,
        instructions_from: String::new(),
    })
}

fn diffusion(
    o: &ZooOptions,
    judge: &DigitsJudge,
    say: &dyn Fn(&str),
) -> Result<Vec<Row>, ZooError> {
    let dir = o.out.join("diffusion");
    // The golden digits model's architecture and training (`TrainConfig::digits_demo`).
    let s = Settings {
        conditional: Some(true),
        cfg_dropout: Some(0.1),
        steps: Some(o.diffusion_steps),
        batch: Some(256),
        lr: Some(2e-3),
        warmup: Some(200),
        ema_decay: Some(0.999),
        hidden: Some(96),
        ff: Some(128),
        blocks: Some(2),
        temb: Some(32),
        act: Some("silu".into()),
        ..settings(o, "ddpm")
    };
    say(&format!(
        "training the diffusion model ({} steps)",
        o.diffusion_steps
    ));
    let run = Run::prepare(&dir, &s, Start::Force).map_err(at("diffusion run"))?;
    let every = o.diffusion_steps.max(1);
    hot_pool(|| run.train(Cpu, every, &mut |_| {})).map_err(at("diffusion training"))?;
    let trained = RunDir::locate(&dir)
        .and_then(|d| d.open())
        .map_err(at("diffusion run"))?;
    let options = Options {
        samplers: DIFFUSION_SAMPLERS.iter().map(|s| s.to_string()).collect(),
        ..Options::default()
    };
    let bytes = from_run(&trained, &options)
        .map_err(at("diffusion export"))?
        .bytes;
    let file = "diffusion-i8.mdfb";
    std::fs::write(o.out.join(file), &bytes).map_err(at(file))?;
    say("the diffusion model's likelihood (probability-flow ODE)");
    let nll = NllConfig {
        steps: 50,
        trace: Trace::Hutchinson(1),
        seed: o.seed,
    };
    // On the digits every likelihood takes the whole test split (`n` = 1 is for other data).
    let likelihood = report::likelihood(&trained, &Source::Digits, 1, nll)
        .map_err(at("diffusion likelihood"))?;
    let model = microdiff_runtime::Model::parse(&bytes).map_err(at("diffusion blob"))?;
    let blob = Blob {
        family: "diffusion (DDPM)",
        file,
        bytes: &bytes,
        parameters: trained.config().model.parameter_count(),
    };
    let mut rows = Vec::new();
    for spec in DIFFUSION_SAMPLERS {
        let spec: SamplerSpec = spec.parse().map_err(at("diffusion sampler"))?;
        let name = spec.default_name();
        let evals = model.program(&name).map_err(at("diffusion blob"))?.evals;
        rows.push(row(judge, o, &blob, &name, evals, true, &likelihood, say)?);
    }
    Ok(rows)
}

fn vaes(o: &ZooOptions, judge: &DigitsJudge, say: &dyn Fn(&str)) -> Result<Vec<Row>, ZooError> {
    let mut rows = Vec::new();
    say("training the VAE");
    let dir = o.out.join("vae");
    let s = Settings {
        conditional: Some(true),
        ..settings(o, "vae")
    };
    let t = vae::command::train(&s, &flags(&dir), |_| {}).map_err(at("VAE training"))?;
    let likelihood =
        report::vae_likelihood(&t.run, &Source::Digits, 1, o.seed).map_err(at("VAE likelihood"))?;
    let program = vae::export::PROGRAM;
    for (dtype, family, file) in [
        ("i8", "VAE (i8)", "vae-i8.mdfb"),
        ("w8a8", "VAE (w8a8)", "vae-w8a8.mdfb"),
    ] {
        let bytes = vae::command::export_blob(&dir, dtype, None, &o.out.join(file))
            .map_err(at("VAE export"))?;
        let blob = Blob {
            family,
            file,
            bytes: &bytes,
            parameters: t.run.vae.decoder().params().len(),
        };
        rows.push(row(judge, o, &blob, program, 1, true, &likelihood, say)?);
    }
    say("training the two-level VAE");
    let dir = o.out.join("hvae");
    let t = vae::command::train_hvae(&settings(o, "hvae"), &flags(&dir), |_| {})
        .map_err(at("HVAE training"))?;
    let likelihood = report::hvae_likelihood(&t.run, &Source::Digits, 1, o.seed)
        .map_err(at("HVAE likelihood"))?;
    let file = "hvae-i8.mdfb";
    let bytes =
        vae::command::export_hvae_blob(&dir, "i8", &o.out.join(file)).map_err(at("HVAE export"))?;
    let h = &t.run.hvae;
    let blob = Blob {
        family: "two-level VAE (i8)",
        file,
        bytes: &bytes,
        parameters: h.prior().params().len() + h.decoder().params().len(),
    };
    rows.push(row(judge, o, &blob, program, 1, false, &likelihood, say)?);
    Ok(rows)
}

fn rbm(o: &ZooOptions, judge: &DigitsJudge, say: &dyn Fn(&str)) -> Result<Vec<Row>, ZooError> {
    say("training the RBM");
    let dir = o.out.join("rbm");
    let t = boltzmann::command::train(&settings(o, "rbm"), &flags(&dir), |_| {})
        .map_err(at("RBM training"))?;
    say("the RBM's likelihood (AIS)");
    let likelihood =
        report::rbm_likelihood(&t.run, &Source::Digits, 1, o.seed).map_err(at("RBM likelihood"))?;
    let r = &t.run.rbm;
    let parameters = r.weights().len() + r.visible_bias().len() + r.hidden_bias().len();
    let mut rows = Vec::new();
    for (dtype, family, file) in [
        ("i8", "RBM (i8)", "rbm-i8.mdfb"),
        ("w8a8", "RBM (w8a8)", "rbm-w8a8.mdfb"),
    ] {
        let bytes =
            boltzmann::command::export_blob(&dir, dtype, Some(&RBM_SWEEPS), &o.out.join(file))
                .map_err(at("RBM export"))?;
        let blob = Blob {
            family,
            file,
            bytes: &bytes,
            parameters,
        };
        for k in RBM_SWEEPS {
            let program = boltzmann::export::program_name(k);
            rows.push(row(judge, o, &blob, &program, k, false, &likelihood, say)?);
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
    let scaled = |key: &str, per: f64| Some((key.to_string(), f64::from(row.evaluations) / per));
    match (row.family.as_str(), row.program.as_str()) {
        (f, _) if f.starts_with("diffusion") => {
            scaled("instructions_per_sample_f32_digits_cfg10", 20.0)
        }
        ("VAE (i8)", _) => scaled("instructions_per_sample_vae_digits", 1.0),
        ("VAE (w8a8)", _) => scaled("instructions_per_sample_vae_w8a8_digits", 1.0),
        ("two-level VAE (i8)", _) => scaled("instructions_per_sample_hvae_digits", 1.0),
        ("RBM (i8)", p) => Some((format!("instructions_per_sample_rbm_{p}_digits"), 1.0)),
        ("RBM (w8a8)", p) => Some((format!("instructions_per_sample_rbm_w8a8_{p}_digits"), 1.0)),
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
        format!("{key} (QEMU) × {}/20 evaluations", row.evaluations)
    };
}

/// The table as Markdown (docs/zoo.md's layout).
pub fn markdown(rows: &[Row]) -> String {
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
        s.push_str(&format!(
            "| {} | `{}` | {} | {:.2} ({:.2}) | {} | {:.2} ± {:.2} ({}, {}) | {} | {} | {} | {} |\n",
            r.family,
            r.program,
            r.evaluations,
            r.frechet,
            r.frechet_noise_floor,
            classes,
            l.bits_per_dim,
            l.stderr / (64.0 * std::f64::consts::LN_2),
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
        let r = SizeReport::parse(
            "{\"target\":\"m4f\",\"instructions_per_sample_f32_digits_cfg10\":10000000}",
        )
        .unwrap();
        let mut row = Row {
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
    }
}
