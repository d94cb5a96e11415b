//! `microdiff export`: a run's weights → a weight blob with sampler programs (the library's
//! [`from_run`]), written atomically.

use std::path::PathBuf;

use microdiff_trainer::export::TimeTable;
use microdiff_trainer::export::from_run::{Options, Storage, from_run};
use microdiff_trainer::export::w8a8::Calibration;
use microdiff_trainer::run::RunDir;

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
    /// euler:32, heun:16, em:100, pc:100 (repeatable) [default: the best of ≤ 20 evaluations
    /// in docs/samplers.md for the objective: dpmpp2m:16:clip=3, or heun:8 for flow matching].
    #[arg(long = "sampler")]
    samplers: Vec<String>,
    /// Classifier-free guidance weight w (ε̃ = ε(∅) + w·(ε(c) − ε(∅))), 0..=100, applied to every
    /// program of a class-conditional model [default: none, i.e. 1].
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

pub fn run(a: Args) -> Result<(), CliError> {
    let trained = RunDir::locate(&a.run)?.open()?;
    let storage: Storage = a
        .dtype
        .parse()
        .map_err(|e| CliError::Msg(format!("--dtype {e}")))?;
    let options = Options {
        storage,
        samplers: a.samplers.clone(),
        guidance: a.guidance,
        time_table: a.time_table,
        calibration: Calibration {
            samples: a.calibration_samples as usize,
            ..Default::default()
        },
    };
    let exported = from_run(&trained, &options)?;
    if let Some(report) = &exported.calibration {
        eprintln!(
            "microdiff: calibrated on {} network evaluations ({} trajectories, {} evaluation times)",
            report.evaluations, report.trajectories, report.times
        );
    }
    let bytes = exported.bytes;
    microdiff_trainer::files::write_atomic(&a.out, &bytes).map_err(CliError::io(&a.out))?;
    let model = microdiff_runtime::Model::parse(&bytes).map_err(msg("export"))?;
    eprintln!(
        "microdiff: wrote {} ({} bytes, {}, arena {} bytes, programs: {})",
        a.out.display(),
        bytes.len(),
        match storage {
            Storage::W8a8 => "full-integer w8a8 network".to_string(),
            Storage::Float(_) => format!("{} weights", a.dtype),
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
