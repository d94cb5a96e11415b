//! `microdiff train`: settings from defaults, then a TOML file, then the command line; a
//! progress bar (a line per checkpoint when quiet or not on a terminal); `--resume`. The run
//! itself is the library's [`Run`], or for the zoo's families (`--objective vae | hvae | rbm`)
//! their library commands.

use std::io::IsTerminal;
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};
use microdiff_trainer::backend::Backend;
use microdiff_trainer::backend::choice::{DeviceChoice, Selected};
use microdiff_trainer::backend::cpu::{Cpu, hot_pool};
use microdiff_trainer::run::{Event, Run, Settings, Start};
use microdiff_trainer::zoo::boltzmann::command as rbm_command;
use microdiff_trainer::zoo::command::{OnBackend, TrainFlags};
use microdiff_trainer::zoo::vae::command as vae_command;

use super::{CliError, msg};

/// Steps between checkpoints by default.
const CHECKPOINT_EVERY: u64 = 500;

/// `microdiff train` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    settings: Settings,
    /// TOML file with any of the settings above, keys spelled as the flags without dashes
    /// (`ema-decay = 0.99`); command-line flags override it. Example: docs/trainer.md.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Run directory (checkpoint, metrics, pictures).
    #[arg(long, default_value = "runs/latest")]
    out: PathBuf,
    /// Save a checkpoint every N steps (and at the end), N ≥ 1 [default: 500].
    #[arg(long)]
    checkpoint_every: Option<u64>,
    /// Continue the run in --out from its checkpoint (bit-identical to not stopping), with the
    /// settings it was trained with: only --steps may change; other settings, if given, must
    /// match.
    #[arg(long)]
    resume: bool,
    /// Worker threads of the CPU backend, 1..=256 [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    /// Backend: auto (a GPU if usable, else the CPU, said in one line), cpu, cuda or cuda:N.
    #[arg(long, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    /// No progress bar (logs one line per checkpoint instead, as when stderr is not a
    /// terminal).
    #[arg(long)]
    quiet: bool,
    /// Start a fresh run in a directory that already holds one, deleting its checkpoint,
    /// run.json, metrics and loss curve first (without it that is refused).
    #[arg(long, conflicts_with = "resume")]
    force: bool,
}

pub fn run(a: Args) -> Result<(), CliError> {
    let file = match &a.config {
        Some(p) => Settings::from_toml_file(p)?,
        None => Settings::default(),
    };
    let settings = a.settings.clone().or(file);
    let flags = TrainFlags {
        out: &a.out,
        resume: a.resume,
        force: a.force,
        device_is_auto_or_cpu: matches!(a.device, DeviceChoice::Auto | DeviceChoice::Cpu),
        threads: a.threads.is_some(),
        checkpoint_every: a.checkpoint_every.is_some(),
    };
    let announce = |line: &str| eprintln!("microdiff: {line}");
    // `--device cuda[:N]` trains the zoo's families through the CUDA backend (opened as for
    // diffusion: no usable GPU is the same typed error); auto and cpu keep the f64 trainers.
    let objective = settings.objective.as_deref();
    let gpu = match (objective, a.device) {
        (Some("vae" | "hvae" | "rbm"), DeviceChoice::Cuda(_)) => {
            match super::select_device(a.device)? {
                Selected::Cuda(be) => Some(be),
                Selected::Cpu => None,
            }
        }
        _ => None,
    };
    let on = gpu.as_ref().map(|be| {
        use microdiff_trainer::backend::cuda::Device;
        be.device().describe()
    });
    let backend = gpu
        .as_deref()
        .zip(on.as_deref())
        .map(|(be, on)| OnBackend { be, on });
    let (seconds, model, (what, curve), last) = match objective {
        Some("vae") => {
            let done = vae_command::train_with(&settings, &flags, backend, announce)?;
            let last = format!(
                "negative ELBO over the last 100 steps {:.3} nats per example",
                done.run.loss
            );
            (done.seconds, done.model, ("loss curve", done.curve), last)
        }
        Some("hvae") => {
            let done = vae_command::train_hvae_with(&settings, &flags, backend, announce)?;
            let last = format!(
                "negative ELBO over the last 100 steps {:.3} nats per example",
                done.run.loss
            );
            (done.seconds, done.model, ("loss curve", done.curve), last)
        }
        Some("rbm") => {
            let done = rbm_command::train_with(&settings, &flags, backend, announce)?;
            let mut last = format!(
                "reconstruction error after {} updates {:.4} per unit",
                done.run.training.steps, done.run.reconstruction_error
            );
            if let Some(swaps) = done.epochs.last().and_then(|e| e.swap_acceptance.as_ref()) {
                let rates: Vec<String> = swaps.iter().map(|r| format!("{r:.2}")).collect();
                last.push_str(&format!(
                    "; swap acceptance in the last epoch {}",
                    rates.join(", ")
                ));
            }
            (
                done.seconds,
                done.model,
                ("per-epoch curve", done.curve),
                last,
            )
        }
        _ => return train_diffusion(&a, &settings),
    };
    if !a.quiet {
        eprintln!("microdiff: {last}");
    }
    eprintln!(
        "microdiff: done in {seconds:.1} s; model {}, {what} {}",
        model.display(),
        curve.display()
    );
    Ok(())
}

/// `microdiff train` of a diffusion objective.
fn train_diffusion(a: &Args, settings: &Settings) -> Result<(), CliError> {
    let checkpoint_every = a.checkpoint_every.unwrap_or(CHECKPOINT_EVERY);
    if checkpoint_every == 0 {
        return Err(CliError::Msg(
            "--checkpoint-every 0: expected a step count of at least 1".into(),
        ));
    }
    super::set_threads(a.threads)?;
    let start = if a.resume {
        Start::Resume
    } else if a.force {
        Start::Force
    } else {
        Start::Fresh
    };
    let run = Run::prepare(&a.out, settings, start)?;
    let selected = super::select_device(a.device)?;
    let on = selected.describe();
    match selected {
        // On one of rayon's workers, with the others polling for work: the backend's parallel
        // operations are then shared without waking sleeping workers (see `hot_pool`).
        Selected::Cpu => hot_pool(|| train_on(Cpu, &on, a, run)),
        Selected::Cuda(be) => train_on(*be, &on, a, run),
    }
}

/// The run on backend `be` (described as `on`), with its progress shown.
fn train_on<B: Backend>(be: B, on: &str, a: &Args, run: Run) -> Result<(), CliError> {
    let config = run.config().clone();
    eprintln!(
        "microdiff: training {} on {} ({} examples of {:?}, {} parameters) for {} steps, batch {}, on {}, into {}",
        config.process.name(),
        run.info().dataset,
        run.examples(),
        run.info().shape,
        config.model.parameter_count(),
        config.steps,
        config.batch,
        on,
        a.out.display()
    );
    // A bar on a terminal; otherwise (a log file, CI) one line per checkpoint.
    let lines = a.quiet || !std::io::stderr().is_terminal();
    let bar = if lines {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(config.steps)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} steps  {per_sec}  loss {msg}  ETA {eta}",
        )
        .map_err(msg("progress bar"))?,
    );
    bar.set_position(run.start_step());
    let summary = run.train(
        be,
        a.checkpoint_every.unwrap_or(CHECKPOINT_EVERY),
        &mut |event| match event {
            Event::Step(s) => {
                if s.step % 10 == 0 || s.step == s.steps {
                    bar.set_message(format!("{:.4}", s.smoothed));
                }
                bar.set_position(s.step);
            }
            Event::Checkpoint(s) if lines => eprintln!(
                "microdiff: step {}/{}: loss {:.4}, checkpoint saved",
                s.step, s.steps, s.smoothed
            ),
            Event::Checkpoint(_) => {}
        },
    )?;
    bar.finish();
    eprintln!(
        "microdiff: done in {:.1} s; checkpoint {}, loss curve {}",
        summary.seconds,
        summary.checkpoint.display(),
        summary.loss_curve.display()
    );
    Ok(())
}
