//! `microdiff export`: a run's EMA weights → a weight blob with sampler programs.

use std::path::PathBuf;

use microdiff_kernels::Dtype;
use microdiff_trainer::checkpoint::Checkpoint;
use microdiff_trainer::export::{ExportSpec, TimeTable, blob, w8a8};
use microdiff_trainer::sampler::{self, SamplerSpec};
use microdiff_trainer::train::RunHeader;

use super::run::{self, RunInfo};
use super::train::run_dir;
use super::{CliError, msg};

/// `microdiff export` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Training run directory (or its checkpoint file).
    run: PathBuf,
    /// Weight storage: f32, f16, i8 (per-output-channel int8 weights, f32 arithmetic) or w8a8
    /// (the full-integer network: int8 weights and activations, int32 accumulation,
    /// calibrated on the exported programs' own trajectories; see docs/integer.md).
    #[arg(long, default_value = "i8")]
    dtype: String,
    /// W8A8 only: calibration trajectories per program.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    calibration_samples: u32,
    /// A sampler program to include, e.g. ddpm, ddim:10, ddim:10:eta=0.5:clip=1, dpmpp2m:8,
    /// euler:32, heun:16, em:100, pc:100 (repeatable; default: the best of ≤ 20 evaluations in
    /// docs/samplers.md for the objective: dpmpp2m:16:clip=3, or heun:8 for flow matching).
    #[arg(long = "sampler")]
    samplers: Vec<String>,
    /// Classifier-free guidance weight w (ε̃ = ε(∅) + w·(ε(c) − ε(∅))), 0..=100, applied to every
    /// program of a class-conditional model.
    #[arg(long, allow_negative_numbers = true)]
    guidance: Option<f64>,
    /// Output blob.
    #[arg(long, default_value = "model.mdfb")]
    out: PathBuf,
    /// Store the time-embedding MLP as a table of its outputs, one row per time the programs
    /// evaluate (same samples bit for bit; no sin/cos and fewer products on the device): auto
    /// (when the table is no larger than the weights it replaces), always or never.
    #[arg(long, default_value = "auto", value_parser = clap::value_parser!(TimeTable))]
    time_table: TimeTable,
}

/// The float-arithmetic weight dtype called `name` (`w8a8` is handled by the caller).
/// Largest guidance weight accepted: far past any useful one (quality falls beyond ≈ 5), small
/// enough that `w·(ε(c) − ε(∅))` stays far from overflowing f32.
const MAX_GUIDANCE: f64 = 100.0;

/// The sampler `export` writes when none is given: the best of ≤ 20 network evaluations on
/// two moons (docs/samplers.md). DPM-Solver++(2M), 16 steps, x̂₀ clipped to ±3 (training data
/// is standardised per dimension, the digits scaled to [−1, 1], so ±3 cuts nothing real but the
/// rare far outliers of a deterministic sampler's first step, which divides by α_T ≈ 0.006):
/// sliced W2 over its floor 1.14× on DDPM and VP, 1.22× on VE (2 000 samples, default training);
/// without the clipping 23× and 2.0×. Heun, 8 steps (15 evaluations), on flow matching: 0.96×.
fn default_sampler(process: &microdiff_trainer::schedule::Process) -> &'static str {
    match process {
        microdiff_trainer::schedule::Process::Flow => "heun:8",
        _ => "dpmpp2m:16:clip=3",
    }
}

pub fn dtype(name: &str) -> Result<Dtype, CliError> {
    [Dtype::F32, Dtype::F16, Dtype::I8]
        .into_iter()
        .find(|d| d.name() == name || (name == "int8" && *d == Dtype::I8))
        .ok_or_else(|| CliError::Msg(format!("--dtype {name:?}: expected f32, f16, i8 or w8a8")))
}

pub fn run(a: Args) -> Result<(), CliError> {
    if !a.run.exists() {
        return Err(CliError::Msg(format!(
            "{}: no such training run (give the --out directory of `microdiff train`)",
            a.run.display()
        )));
    }
    let dir = run_dir(&a.run)?;
    let info = RunInfo::load(&dir)?;
    let ckpt_path = run::checkpoint_path(&dir);
    let ckpt =
        Checkpoint::<RunHeader>::load(&ckpt_path).map_err(|e| CliError::Msg(e.to_string()))?;
    let cfg = &ckpt.header.config;
    if let Some(w) = a.guidance
        && !(0.0..=MAX_GUIDANCE).contains(&w)
    {
        // Huge values in exponent form: 1e30, not thirty-one digits.
        let shown = if w.abs() >= 1e6 {
            format!("{w:e}")
        } else {
            format!("{w}")
        };
        return Err(CliError::Msg(format!(
            "--guidance {shown}: expected 0..={MAX_GUIDANCE} (1 is no guidance; 1.2 to 3 is usual)"
        )));
    }
    if a.guidance.is_some() && cfg.model.classes == 0 {
        return Err(CliError::Msg(
            "--guidance needs a class-conditional model (train with --conditional true)".into(),
        ));
    }
    let names = if a.samplers.is_empty() {
        vec![default_sampler(&cfg.process).to_string()]
    } else {
        a.samplers.clone()
    };
    let mut programs = Vec::new();
    for n in &names {
        let mut spec: SamplerSpec = n.parse().map_err(msg(&format!("--sampler {n}")))?;
        if let Some(w) = a.guidance {
            spec = spec.with_guidance(w);
        }
        let name = spec.default_name();
        programs.push(
            sampler::build(&cfg.process, &spec, &name).map_err(msg(&format!("--sampler {n}")))?,
        );
    }
    // Checked, not `as u16`: a dimension above 65535 was truncated into a wrong blob.
    let shape = info
        .shape
        .iter()
        .map(|&d| u16::try_from(d))
        .collect::<Result<Vec<u16>, _>>()
        .map_err(|_| {
            CliError::Msg(format!(
                "samples of shape {:?}: a blob stores each dimension in 16 bits (at most 65535)",
                info.shape
            ))
        })?;
    let w8a8 = a.dtype == "w8a8";
    let spec = ExportSpec {
        dtype: if w8a8 { Dtype::F32 } else { dtype(&a.dtype)? },
        shape,
        scale: info.normalizer.scale.clone(),
        offset: info.normalizer.offset.clone(),
        programs,
        time_table: a.time_table,
        schedule: true,
    };
    let params = if cfg.optim.ema_decay > 0.0 {
        &ckpt.ema
    } else {
        &ckpt.params
    };
    let bytes = if w8a8 {
        let cal = w8a8::Calibration {
            samples: a.calibration_samples as usize,
            ..Default::default()
        };
        let (bytes, report) =
            w8a8::blob(&cfg.model, params, &cfg.process, &spec, cal).map_err(msg("export"))?;
        eprintln!(
            "microdiff: calibrated on {} network evaluations ({} trajectories, {} evaluation times)",
            report.evaluations, report.trajectories, report.times
        );
        bytes
    } else {
        blob(&cfg.model, params, &cfg.process, &spec).map_err(msg("export"))?
    };
    microdiff_trainer::files::write_atomic(&a.out, &bytes).map_err(CliError::io(&a.out))?;
    let model = microdiff_runtime::Model::parse(&bytes).map_err(msg("export"))?;
    eprintln!(
        "microdiff: wrote {} ({} bytes, {}, arena {} bytes, programs: {})",
        a.out.display(),
        bytes.len(),
        if w8a8 {
            "full-integer w8a8 network".to_string()
        } else {
            format!("{} weights", a.dtype)
        },
        model.arena_bytes(),
        model
            .programs()
            .iter()
            .flatten()
            .map(|p| format!("{} ({} evals)", p.name(), p.evals))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
