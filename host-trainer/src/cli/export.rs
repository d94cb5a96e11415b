//! `microdiff export`: a run's weights → a weight blob with sampler programs (the library's
//! [`from_run`]), or with `--format safetensors` → a safetensors file of the PyTorch reference
//! module's state_dict ([`to_safetensors`], docs/interop.md); either written atomically.

use std::path::PathBuf;

use microdiff_trainer::export::TimeTable;
use microdiff_trainer::export::from_run::{Options, Storage, from_run};
use microdiff_trainer::export::w8a8::Calibration;
use microdiff_trainer::interop::to_safetensors;
use microdiff_trainer::run::RunDir;
use microdiff_trainer::zoo::boltzmann::command as rbm_command;
use microdiff_trainer::zoo::boltzmann::run::RbmRun;
use microdiff_trainer::zoo::vae::command as vae_command;
use microdiff_trainer::zoo::vae::hvae_run::HvaeRun;
use microdiff_trainer::zoo::vae::run::VaeRun;

use super::{CliError, msg};

/// `microdiff export` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Training run directory (or its checkpoint file). A VAE or two-level VAE run (`train
    /// --objective vae | hvae`) exports its generative path (program `decode`), an RBM run
    /// (`--objective rbm`) its Gibbs chains (programs `gibbsK`, see --sweeps): docs/zoo.md.
    run: PathBuf,
    /// What to write: blob (a weight blob with sampler programs, for the runtime) or
    /// safetensors (the weights as the PyTorch reference module's state_dict, f32, with
    /// microdiff's metadata: docs/interop.md; the blob's options below are refused with it).
    #[arg(long, default_value = "blob", value_parser = ["blob", "safetensors"])]
    format: String,
    /// Weight storage: f32, f16, i8 (per-output-channel int8 weights, f32 arithmetic) or w8a8
    /// (the full-integer network: int8 weights and activations, int32 accumulation,
    /// calibrated on the exported programs' own trajectories; see docs/integer.md; not for
    /// two-level VAE and RBM runs) [default: i8].
    #[arg(long)]
    dtype: Option<String>,
    /// RBM runs only: the Gibbs sweep counts K to write as programs gibbsK, comma-separated,
    /// each 1..=10000 (the chain starts from all-zero visible units; the sample is the last
    /// sweep's visible probabilities) [default: 10,100].
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    sweeps: Option<Vec<u16>>,
    /// W8A8 only: calibration trajectories per program [default: 64, or 2048 / the values per
    /// example when more (1024 for 2-D data)].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    calibration_samples: Option<u32>,
    /// A sampler program to include, e.g. ddpm, ddim:10, ddim:10:eta=0.5:clip=1, dpmpp2m:8,
    /// euler:32, heun:16, em:100, pc:100 (repeatable) [default: the best of ≤ 20 evaluations
    /// in docs/samplers.md for the objective: dpmpp2m:16:clip=3, or heun:8 for flow matching].
    #[arg(long = "sampler")]
    samplers: Vec<String>,
    /// Classifier-free guidance weight w (ε̃ = ε(∅) + w·(ε(c) − ε(∅))), 0..=100, applied to every
    /// program of a class-conditional model [default: none, i.e. 1].
    #[arg(long, allow_negative_numbers = true)]
    guidance: Option<f64>,
    /// Output file [default: model.mdfb, or model.safetensors with --format safetensors].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Store the time-embedding MLP as a table of its outputs, one row per time the programs
    /// evaluate (same samples bit for bit; no sin/cos and fewer products on the device): auto
    /// (when the table is no larger than the weights it replaces), always or never
    /// [default: auto].
    #[arg(long, value_parser = clap::value_parser!(TimeTable))]
    time_table: Option<TimeTable>,
}

/// The kind of a zoo run in a directory, if it holds one.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Zoo {
    Vae,
    Hvae,
    Rbm,
}

impl Zoo {
    fn of(dir: &std::path::Path) -> Option<Zoo> {
        if VaeRun::exists(dir) {
            Some(Zoo::Vae)
        } else if HvaeRun::exists(dir) {
            Some(Zoo::Hvae)
        } else if RbmRun::exists(dir) {
            Some(Zoo::Rbm)
        } else {
            None
        }
    }
}

pub fn run(a: Args) -> Result<(), CliError> {
    let zoo = Zoo::of(&a.run);
    if zoo != Some(Zoo::Rbm) && a.sweeps.is_some() {
        return Err(CliError::Msg(
            "--sweeps applies to an RBM run only (train --objective rbm): its programs gibbsK"
                .into(),
        ));
    }
    if let Some(zoo) = zoo {
        return export_zoo(&a, zoo);
    }
    if a.format == "safetensors" {
        return safetensors(a);
    }
    let out = a.out.clone().unwrap_or_else(|| "model.mdfb".into());
    let trained = RunDir::locate(&a.run)?.open()?;
    let dtype = a.dtype.as_deref().unwrap_or("i8");
    let storage: Storage = dtype
        .parse()
        .map_err(|e| CliError::Msg(format!("--dtype {e}")))?;
    let options = Options {
        storage,
        samplers: a.samplers.clone(),
        guidance: a.guidance,
        time_table: a.time_table.unwrap_or(TimeTable::Auto),
        calibration: Calibration {
            samples: a.calibration_samples.map(|n| n as usize),
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
    microdiff_trainer::files::write_atomic(&out, &bytes).map_err(CliError::io(&out))?;
    let model = microdiff_runtime::Model::parse(&bytes).map_err(msg("export"))?;
    eprintln!(
        "microdiff: wrote {} ({} bytes, {}, arena {} bytes, programs: {})",
        out.display(),
        bytes.len(),
        match storage {
            Storage::W8a8 => "full-integer w8a8 network".to_string(),
            Storage::Float(_) => format!("{dtype} weights"),
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

/// A zoo run's blob: the VAE's decoder, the two-level VAE's generative path (program
/// `decode`), or the RBM's Gibbs chains (programs `gibbsK`). The diffusion samplers' options
/// mean nothing here and are refused.
fn export_zoo(a: &Args, zoo: Zoo) -> Result<(), CliError> {
    let (what, programs) = match zoo {
        Zoo::Vae => ("a VAE run", "the one program decode"),
        Zoo::Hvae => ("a two-level VAE run", "the one program decode"),
        Zoo::Rbm => ("an RBM run", "the programs gibbsK of --sweeps"),
    };
    let given = [
        ("--format safetensors", a.format == "safetensors"),
        ("--sampler", !a.samplers.is_empty()),
        ("--guidance", a.guidance.is_some()),
        ("--time-table", a.time_table.is_some()),
    ];
    if let Some((flag, _)) = given.iter().find(|(_, on)| *on) {
        return Err(CliError::Msg(format!(
            "{flag} does not apply to {what} (its blob has {programs}: docs/zoo.md)"
        )));
    }
    if zoo != Zoo::Vae && a.calibration_samples.is_some() {
        return Err(CliError::Msg(format!(
            "--calibration-samples applies to a VAE's --dtype w8a8 only ({what} has none, or calibrates on a fixed 64 chains)"
        )));
    }
    let out = a.out.clone().unwrap_or_else(|| "model.mdfb".into());
    let dtype = a.dtype.as_deref().unwrap_or("i8");
    let (bytes, made) = match zoo {
        Zoo::Vae => (
            vae_command::export_blob(
                &a.run,
                dtype,
                a.calibration_samples.map(|n| n as usize),
                &out,
            )?,
            "the VAE's decoder",
        ),
        Zoo::Hvae => (
            vae_command::export_hvae_blob(&a.run, dtype, &out)?,
            "the two-level VAE's generative path",
        ),
        Zoo::Rbm => (
            rbm_command::export_blob(&a.run, dtype, a.sweeps.as_deref(), &out)?,
            "the RBM's Gibbs chains",
        ),
    };
    let model = microdiff_runtime::Model::parse(&bytes).map_err(msg("export"))?;
    eprintln!(
        "microdiff: wrote {} ({} bytes, {dtype}): {made}, arena {} bytes, programs: {}",
        out.display(),
        bytes.len(),
        model.arena_bytes(),
        model
            .programs()
            .iter()
            .flatten()
            .map(|p| p.name().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// `--format safetensors`: the run's exported weights (the EMA when kept) and metadata. The
/// blob's options mean nothing here, so one given is refused rather than silently ignored.
fn safetensors(a: Args) -> Result<(), CliError> {
    let blob_only = [
        ("--dtype", a.dtype.is_some()),
        ("--sampler", !a.samplers.is_empty()),
        ("--guidance", a.guidance.is_some()),
        ("--time-table", a.time_table.is_some()),
        ("--calibration-samples", a.calibration_samples.is_some()),
    ];
    let given: Vec<&str> = blob_only
        .iter()
        .filter(|(_, g)| *g)
        .map(|(flag, _)| *flag)
        .collect();
    if !given.is_empty() {
        return Err(CliError::Msg(format!(
            "--format safetensors writes the weights only, without the blob's options: remove {} \
             (or use --format blob)",
            given.join(", ")
        )));
    }
    let out = a.out.unwrap_or_else(|| "model.safetensors".into());
    let trained = RunDir::locate(&a.run)?.open()?;
    let bytes = to_safetensors(&trained)?;
    microdiff_trainer::files::write_atomic(&out, &bytes).map_err(CliError::io(&out))?;
    let cfg = trained.config();
    eprintln!(
        "microdiff: wrote {} ({} bytes, {} parameters as float32, {} weights; {}, {} prediction)",
        out.display(),
        bytes.len(),
        cfg.model.parameter_count(),
        if cfg.optim.ema_decay > 0.0 {
            "EMA"
        } else {
            "trained"
        },
        cfg.process.name(),
        cfg.prediction().name()
    );
    Ok(())
}
