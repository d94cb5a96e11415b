//! The `microdiff` command line: argument parsing and dispatch. Each command lives in its own
//! module, which parses its arguments, calls the library and prints; no command module uses
//! another (what they share — progress display, thread count, errors — is here). Errors reach
//! the user as one clear line (exit code 1), usage errors through clap (exit code 2).

mod demo;
mod eval;
mod export;
mod import;
mod inspect;
mod sample;
mod train;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Train small diffusion models on the host; run them on microcontrollers.
#[derive(Debug, Parser)]
#[command(name = "microdiff", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a model (DDPM, VE/VP score matching or flow matching) and write checkpoints, or a
    /// model of docs/zoo.md (--objective vae, hvae or rbm).
    Train(Box<train::Args>),
    /// Write a weight blob (f32 / f16 / int8) with sampler programs from a training run, or
    /// its weights as safetensors for PyTorch (--format safetensors).
    Export(export::Args),
    /// Make a run directory from a safetensors file of PyTorch weights (docs/interop.md).
    Import(import::Args),
    /// Draw samples from a blob with the no_std runtime (parallel over samples).
    Sample(sample::Args),
    /// Sample quality against held-out data, each metric next to its noise floor.
    Eval(eval::Args),
    /// Print a blob's header, tensors, programs and arena size.
    Inspect(inspect::Args),
    /// The whole pipeline on the 8×8 digits: train, export int8, sample, evaluate, pictures.
    Demo(demo::Args),
}

/// An error for the user: one line, no backtrace.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Anything else, already phrased for the user.
    #[error("{0}")]
    Msg(String),
    /// A training run.
    #[error(transparent)]
    Run(#[from] microdiff_trainer::run::RunError),
    /// Drawing samples.
    #[error(transparent)]
    Sample(#[from] microdiff_trainer::sampling::SampleError),
    /// An evaluation.
    #[error(transparent)]
    Report(#[from] microdiff_trainer::eval::report::ReportError),
    /// The digits judge.
    #[error(transparent)]
    Judge(#[from] microdiff_trainer::eval::judge::JudgeError),
    /// The GPU asked for.
    #[error(transparent)]
    Device(#[from] microdiff_trainer::backend::choice::DeviceError),
    /// An export.
    #[error(transparent)]
    Export(#[from] microdiff_trainer::export::from_run::ExportError),
    /// A safetensors export or import.
    #[error(transparent)]
    Interop(#[from] microdiff_trainer::interop::InteropError),
    /// A VAE or two-level VAE run (`train --objective vae | hvae`, its export).
    #[error(transparent)]
    Vae(#[from] microdiff_trainer::zoo::vae::run::VaeRunError),
    /// An RBM run (`train --objective rbm`, its export).
    #[error(transparent)]
    Rbm(#[from] microdiff_trainer::zoo::boltzmann::run::RbmRunError),
}

impl CliError {
    fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> CliError + '_ {
        move |source| CliError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Most worker threads a command accepts: far more than any machine's cores, far fewer than
/// the thousands of busy-polling workers a typo would start.
const MAX_THREADS: usize = 256;

/// A `--png` path must end in `.png` (the file is PNG whatever its name says).
fn check_png_path(path: &std::path::Path) -> Result<(), CliError> {
    let png = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if png {
        Ok(())
    } else {
        Err(CliError::Msg(format!(
            "--png {}: the picture is a PNG; give a path ending in .png",
            path.display()
        )))
    }
}

/// Shorthand for turning any error into a user message.
fn msg<E: std::fmt::Display>(context: &str) -> impl FnOnce(E) -> CliError + '_ {
    move |e| CliError::Msg(format!("{context}: {e}"))
}

/// `--threads N`: rayon's global pool gets N workers (1..=[`MAX_THREADS`]); `None` keeps one
/// per core.
fn set_threads(n: Option<usize>) -> Result<(), CliError> {
    let Some(n) = n else { return Ok(()) };
    if !(1..=MAX_THREADS).contains(&n) {
        return Err(CliError::Msg(format!(
            "--threads {n}: expected 1..={MAX_THREADS}"
        )));
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
        .map_err(msg("--threads"))
}

/// `--device`: the backend, with the one line `auto` says when it falls back to the CPU.
fn select_device(
    choice: microdiff_trainer::backend::choice::DeviceChoice,
) -> Result<microdiff_trainer::backend::choice::Selected, CliError> {
    Ok(microdiff_trainer::backend::choice::select(choice, |e| {
        eprintln!("microdiff: --device auto: no usable GPU ({e}); training on the CPU");
    })?)
}

/// Whether stderr is a terminal: progress bars there, one line per stage elsewhere.
fn is_terminal() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr())
}

/// A progress bar of `len` units with `template`, drawn only on a terminal (indicatif hides
/// it elsewhere).
fn progress_bar(len: u64, template: &str) -> Result<indicatif::ProgressBar, CliError> {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(indicatif::ProgressStyle::with_template(template).map_err(msg("progress bar"))?);
    Ok(bar)
}

/// The bar of drawn samples.
const SAMPLES_BAR: &str = "{bar:30} {pos}/{len} samples  {per_sec}  ETA {eta}";

/// Network evaluations (samples × evaluations per sample) from which drawing shows progress:
/// about half a second of the digits network on two cores.
const PROGRESS_MIN_EVALS: usize = 100_000;

/// Progress of drawing `n` samples of `evals` network evaluations each: a bar on a terminal
/// when the work is long enough to wait for, else one line saying what is being drawn.
fn sample_progress(n: usize, evals: usize) -> Result<indicatif::ProgressBar, CliError> {
    let long = n.saturating_mul(evals) >= PROGRESS_MIN_EVALS;
    if is_terminal() {
        if long {
            return progress_bar(n as u64, SAMPLES_BAR);
        }
    } else if long {
        eprintln!("microdiff: drawing {n} samples ({evals} network evaluations each)");
    }
    Ok(indicatif::ProgressBar::hidden())
}

/// The warning for samples far outside the data (a broken model or sampler, never silent).
fn warn_far_out(far: &microdiff_trainer::sampling::FarOut, what: &str) {
    eprintln!(
        "microdiff: warning: {what} leave the data's range by far: {} of {} values lie more \
         than {} (up to {:.3e}) standard deviations from the data's centre; the model may be \
         undertrained or too narrow, or the sampler unclipped",
        far.values,
        far.of,
        microdiff_trainer::sampling::FAR,
        far.max
    );
}

/// A reader that stops early (`microdiff inspect m.mdfb | head`) closes the pipe, and std then
/// fails the next print to stdout with a panic. That is the reader's choice, not an error of
/// ours: end quietly with status 0 (as ripgrep does) instead of printing a panic and a backtrace.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

/// Parses arguments, runs the command, maps errors to exit codes.
pub fn main() -> ExitCode {
    quiet_on_broken_pipe();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(a) => train::run(*a),
        Command::Export(a) => export::run(a),
        Command::Import(a) => import::run(a),
        Command::Sample(a) => sample::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Demo(a) => demo::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("microdiff: error: {e}");
            ExitCode::FAILURE
        }
    }
}
