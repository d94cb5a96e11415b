//! `microdiff train`: settings from defaults, then a TOML file, then the command line; a
//! progress bar; JSONL metrics; periodic atomic checkpoints; `--resume`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use microdiff_kernels::Activation;
use microdiff_trainer::backend::Backend;
use microdiff_trainer::backend::cpu::{Cpu, hot_pool};
use microdiff_trainer::checkpoint::Checkpoint;
use microdiff_trainer::model::MlpConfig;
use microdiff_trainer::optim::OptimConfig;
use microdiff_trainer::schedule::Process;
use microdiff_trainer::train::{RunHeader, TrainConfig, TrainData, Trainer};
use serde::Deserialize;

use super::device::{self, DeviceChoice, Selected};
use super::run::{self, RunInfo};
use super::{CliError, msg};

/// Settings that can come from `--config FILE` (TOML) or the command line (which wins).
#[derive(Debug, Default, Clone, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Training data: a built-in 2-D set (moons, 8gaussians, swissroll, checkerboard, rings),
    /// `digits` (8×8 handwritten digits), or a .csv / .npy file or a folder of grayscale PNGs.
    #[arg(long)]
    pub data: Option<String>,
    /// Objective: ddpm, vp (score, VP SDE), ve (score, VE SDE) or flow (flow matching).
    #[arg(long)]
    pub objective: Option<String>,
    /// Condition on the data's labels (class-conditional model with classifier-free guidance).
    #[arg(long)]
    pub conditional: Option<bool>,
    /// Probability of dropping a label to the null class during training (guidance).
    #[arg(long)]
    pub cfg_dropout: Option<f32>,
    /// Optimiser steps.
    #[arg(long)]
    pub steps: Option<u64>,
    /// Examples per step.
    #[arg(long)]
    pub batch: Option<usize>,
    /// Peak learning rate.
    #[arg(long)]
    pub lr: Option<f32>,
    /// Warm-up steps.
    #[arg(long)]
    pub warmup: Option<u64>,
    /// EMA decay of the exported weights (0 disables).
    #[arg(long)]
    pub ema_decay: Option<f32>,
    /// Residual stream width.
    #[arg(long)]
    pub hidden: Option<usize>,
    /// Block inner width.
    #[arg(long)]
    pub ff: Option<usize>,
    /// Residual blocks.
    #[arg(long)]
    pub blocks: Option<usize>,
    /// Time-embedding width (even).
    #[arg(long)]
    pub temb: Option<usize>,
    /// Activation: silu, gelu_tanh, relu.
    #[arg(long)]
    pub act: Option<String>,
    /// Seed of the weights and every random draw.
    #[arg(long)]
    pub seed: Option<u64>,
    /// σ_max of the VE SDE, finite and above σ_min (default: 1.5 × the data's largest
    /// per-dimension range).
    #[arg(long, allow_negative_numbers = true)]
    pub sigma_max: Option<f64>,
}

/// `microdiff train` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    settings: Settings,
    /// TOML file with any of the settings above (command-line flags override it).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Run directory (checkpoint, metrics, pictures).
    #[arg(long, default_value = "runs/latest")]
    out: PathBuf,
    /// Save a checkpoint every N steps (and at the end), N ≥ 1.
    #[arg(long, default_value_t = 500)]
    checkpoint_every: u64,
    /// Continue the run in --out from its checkpoint (bit-identical to not stopping), with the
    /// settings it was trained with: only --steps may change; other settings, if given, must
    /// match.
    #[arg(long)]
    resume: bool,
    /// Worker threads of the CPU backend, 1..=256 (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Backend: auto (a GPU if usable, else the CPU, said in one line), cpu, cuda or cuda:N.
    #[arg(long, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    /// No progress bar (logs one line per checkpoint instead).
    #[arg(long)]
    quiet: bool,
    /// Start a fresh run in a directory that already holds one, deleting its checkpoint,
    /// run.json, metrics and loss curve first (without it that is refused).
    #[arg(long, conflicts_with = "resume")]
    force: bool,
}

/// The files of a run in its directory (what `--force` deletes before a fresh run).
const RUN_FILES: [&str; 4] = ["checkpoint.mdck", "run.json", "metrics.jsonl", "loss.png"];

fn merge(cli: Settings, file: Settings) -> Settings {
    macro_rules! pick { ($($f:ident),*) => { Settings { $($f: cli.$f.or(file.$f)),* } } }
    pick!(
        data,
        objective,
        conditional,
        cfg_dropout,
        steps,
        batch,
        lr,
        warmup,
        ema_decay,
        hidden,
        ff,
        blocks,
        temb,
        act,
        seed,
        sigma_max
    )
}

fn activation(name: &str) -> Result<Activation, CliError> {
    (0..=255u8)
        .filter_map(Activation::from_code)
        .find(|a| a.name() == name)
        .ok_or_else(|| {
            CliError::Msg(format!(
                "--act {name:?}: expected silu, gelu_tanh, relu or identity"
            ))
        })
}

/// Resolves the settings into a training configuration and the data.
fn resolve(s: &Settings) -> Result<(TrainConfig, TrainData, RunInfo), CliError> {
    let data_spec = s.data.clone().unwrap_or_else(|| "moons".into());
    let conditional = s.conditional.unwrap_or(false);
    let seed = s.seed.unwrap_or(0);
    let (ds, norm) = run::dataset(&data_spec, conditional, seed)?;
    // A blob stores the sample shape as at most four 16-bit dimensions: refuse now what could
    // never be exported, rather than after training.
    if ds.shape.len() > 4 || ds.shape.iter().any(|&d| d > usize::from(u16::MAX)) {
        return Err(CliError::Msg(format!(
            "{data_spec}: samples of shape {:?}: a blob holds at most 4 dimensions of at most \
             65535 each; reshape the data (e.g. an NPY of shape (N, 250, 280) for 70000 values)",
            ds.shape
        )));
    }
    let digits = data_spec == "digits";
    let objective = s.objective.clone().unwrap_or_else(|| "ddpm".into());
    let process = match objective.as_str() {
        "ddpm" => Process::ddpm_default(),
        "vp" => Process::vp_default(),
        "ve" => {
            // Song & Ermon's rule of thumb: σ_max about the largest distance between examples.
            let range = (0..ds.dim)
                .map(|j| {
                    let col = (0..ds.len()).map(|i| ds.x[i * ds.dim + j]);
                    let (lo, hi) =
                        col.fold((f32::MAX, f32::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
                    (hi - lo) as f64
                })
                .fold(0.0, f64::max);
            Process::ve_default(s.sigma_max.unwrap_or(1.5 * range * (ds.dim as f64).sqrt()))
        }
        "flow" => Process::Flow,
        other => {
            return Err(CliError::Msg(format!(
                "--objective {other:?}: expected ddpm, vp, ve or flow"
            )));
        }
    };
    let model = MlpConfig {
        data_dim: ds.dim,
        hidden: s.hidden.unwrap_or(if digits { 256 } else { 128 }),
        ff: s.ff.unwrap_or(if digits { 512 } else { 256 }),
        temb: s.temb.unwrap_or(32),
        blocks: s.blocks.unwrap_or(3),
        classes: if conditional { ds.classes } else { 0 },
        act: activation(s.act.as_deref().unwrap_or("silu"))?,
    };
    let steps = s.steps.unwrap_or(if digits { 4000 } else { 3000 });
    let optim = OptimConfig {
        lr: s.lr.unwrap_or(2e-3),
        warmup: s.warmup.unwrap_or(100.min(steps / 10)),
        ema_decay: s.ema_decay.unwrap_or(0.999),
        ..OptimConfig::default()
    };
    let config = TrainConfig {
        model,
        process,
        optim,
        steps,
        batch: s.batch.unwrap_or(if digits { 256 } else { 128 }),
        seed,
        cfg_dropout: s.cfg_dropout.unwrap_or(if conditional { 0.1 } else { 0.0 }),
    };
    config.validate().map_err(msg("settings"))?;
    let info = RunInfo {
        dataset: data_spec,
        shape: ds.shape.clone(),
        normalizer: norm,
        classes: model.classes,
    };
    let data = TrainData {
        x: ds.x,
        dim: ds.dim,
        labels: ds.labels,
    };
    Ok((config, data, info))
}

/// The settings of the run in `dir`, for `--resume`: its saved configuration and data, with
/// `--steps` (the one setting a resumed run may change, to train longer) applied. Any other
/// setting given (on the command line or in `--config`) must equal the saved one; those that
/// differ are named. Returns the checkpoint too, read once.
fn resume_settings(
    dir: &Path,
    s: &Settings,
) -> Result<(TrainConfig, TrainData, RunInfo, Checkpoint<RunHeader>), CliError> {
    let ckpt_path = run::checkpoint_path(dir);
    let ckpt =
        Checkpoint::<RunHeader>::load(&ckpt_path).map_err(|e| CliError::Msg(e.to_string()))?;
    let saved = ckpt.header.config.clone();
    let info = RunInfo::load(dir)?;
    let (m, o) = (&saved.model, &saved.optim);
    let sigma_max = match saved.process {
        Process::Ve { sigma_max, .. } => Some(sigma_max),
        _ => None,
    };
    let mut differ = Vec::new();
    let mut check = |flag: &str, given: Option<String>, was: String| {
        if let Some(g) = given
            && g != was
        {
            differ.push(format!("--{flag} {g} (the run has {was})"));
        }
    };
    check("data", s.data.clone(), info.dataset.clone());
    check(
        "objective",
        s.objective.clone(),
        saved.process.name().to_string(),
    );
    check(
        "conditional",
        str_of(s.conditional),
        (m.classes > 0).to_string(),
    );
    check(
        "cfg-dropout",
        str_of(s.cfg_dropout),
        saved.cfg_dropout.to_string(),
    );
    check("batch", str_of(s.batch), saved.batch.to_string());
    check("lr", str_of(s.lr), o.lr.to_string());
    check("warmup", str_of(s.warmup), o.warmup.to_string());
    check("ema-decay", str_of(s.ema_decay), o.ema_decay.to_string());
    check("hidden", str_of(s.hidden), m.hidden.to_string());
    check("ff", str_of(s.ff), m.ff.to_string());
    check("blocks", str_of(s.blocks), m.blocks.to_string());
    check("temb", str_of(s.temb), m.temb.to_string());
    check("act", s.act.clone(), m.act.name().to_string());
    check("seed", str_of(s.seed), saved.seed.to_string());
    if let Some(g) = s.sigma_max {
        check(
            "sigma-max",
            Some(g.to_string()),
            sigma_max.map_or("none".into(), |v| v.to_string()),
        );
    }
    if !differ.is_empty() {
        return Err(CliError::Msg(format!(
            "--resume: {} keeps the settings it was trained with (only --steps may change): {}",
            dir.display(),
            differ.join(", ")
        )));
    }
    let steps = s.steps.unwrap_or(saved.steps);
    if steps < ckpt.header.step {
        return Err(CliError::Msg(format!(
            "--resume --steps {steps}: {} has already trained {} steps",
            dir.display(),
            ckpt.header.step
        )));
    }
    let (ds, norm) = run::dataset(&info.dataset, m.classes > 0, saved.seed)?;
    let now = RunInfo {
        dataset: info.dataset.clone(),
        shape: ds.shape.clone(),
        normalizer: norm,
        classes: m.classes,
    };
    if now != info {
        return Err(CliError::Msg(format!(
            "--resume: the data {} has changed since {} started (shape, normalisation or classes)",
            info.dataset,
            dir.display()
        )));
    }
    let data = TrainData {
        x: ds.x,
        dim: ds.dim,
        labels: ds.labels,
    };
    let config = TrainConfig { steps, ..saved };
    config.validate().map_err(msg("settings"))?;
    Ok((config, data, info, ckpt))
}

/// Drops the rows of `metrics.jsonl` past `step` (the checkpoint a resumed run starts from):
/// rows logged between that checkpoint and a kill are logged again by the resumed run, and
/// were duplicated. A torn last line goes too. Replaced atomically (temporary file + rename).
fn prune_metrics(path: &Path, step: u64) -> Result<(), CliError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(CliError::io(path)(e)),
    };
    let kept: String = text
        .lines()
        .filter(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v["step"].as_u64())
                .is_some_and(|s| s <= step)
        })
        .flat_map(|line| [line, "\n"])
        .collect();
    if kept == text {
        return Ok(());
    }
    let tmp = path.with_extension(format!("jsonl.tmp-{}", std::process::id()));
    std::fs::write(&tmp, kept).map_err(CliError::io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        CliError::io(path)(e)
    })
}

/// A TOML error in one line: `FILE: line L, column C: message` (the parser's own report spans
/// several lines with a source excerpt).
fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> CliError {
    let at = e.span().map_or(String::new(), |span| {
        let before = text.get(..span.start).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        format!(" line {line}, column {column}:")
    });
    let message = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
    CliError::Msg(format!("{}:{at} {message}", path.display()))
}

/// A setting given as text, for [`resume_settings`]'s comparisons.
fn str_of<T: ToString>(v: Option<T>) -> Option<String> {
    v.map(|v| v.to_string())
}

/// One JSONL metrics record.
#[derive(serde::Serialize)]
struct Metric {
    step: u64,
    loss: f32,
    lr: f32,
    steps_per_sec: f64,
}

pub fn run(a: Args) -> Result<(), CliError> {
    let file = match &a.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(CliError::io(p))?;
            toml::from_str::<Settings>(&text).map_err(|e| toml_error(p, &text, &e))?
        }
        None => Settings::default(),
    };
    let settings = merge(a.settings.clone(), file);
    if a.checkpoint_every == 0 {
        return Err(CliError::Msg(
            "--checkpoint-every 0: expected a step count of at least 1".into(),
        ));
    }
    if let Some(n) = a.threads
        && !(1..=super::MAX_THREADS).contains(&n)
    {
        return Err(CliError::Msg(format!(
            "--threads {n}: expected 1..={}",
            super::MAX_THREADS
        )));
    }
    if let Some(n) = a.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .map_err(msg("--threads"))?;
    }
    let (config, data, info, resumed) = if a.resume {
        let (config, data, info, ckpt) = resume_settings(&a.out, &settings)?;
        (config, data, info, Some(ckpt))
    } else {
        let (config, data, info) = resolve(&settings)?;
        (config, data, info, None)
    };
    // One writer per run directory, for the whole run (released however the process ends).
    let _lock = microdiff_trainer::files::RunLock::acquire(&a.out).map_err(|e| {
        if e.kind() == std::io::ErrorKind::WouldBlock {
            CliError::Msg(format!(
                "--out {}: another microdiff process is training into it",
                a.out.display()
            ))
        } else {
            CliError::io(&a.out)(e)
        }
    })?;
    if !a.resume {
        let present: Vec<&str> = RUN_FILES
            .into_iter()
            .filter(|f| a.out.join(f).exists())
            .collect();
        if !present.is_empty() && !a.force {
            return Err(CliError::Msg(format!(
                "--out {} already holds a run ({}): --resume continues it, --force starts over \
                 (deleting it), or choose another --out",
                a.out.display(),
                present.join(", ")
            )));
        }
        // Checkpoint first: a crash in between leaves no checkpoint beside the new settings.
        for f in present {
            let p = a.out.join(f);
            std::fs::remove_file(&p).map_err(CliError::io(&p))?;
        }
    }
    let selected = device::select(a.device)?;
    let on = selected.describe();
    match selected {
        // On one of rayon's workers, with the others polling for work: the backend's parallel
        // operations are then shared without waking sleeping workers (see `hot_pool`).
        Selected::Cpu => hot_pool(|| train_on(Cpu, &on, &a, config, data, info, resumed)),
        Selected::Cuda(be) => train_on(*be, &on, &a, config, data, info, resumed),
    }
}

/// The run itself, on backend `be` (described as `on`).
fn train_on<B: Backend>(
    be: B,
    on: &str,
    a: &Args,
    config: TrainConfig,
    data: TrainData,
    info: RunInfo,
    resumed: Option<Checkpoint<RunHeader>>,
) -> Result<(), CliError> {
    let examples = data.x.len() / data.dim.max(1);
    let ckpt_path = run::checkpoint_path(&a.out);
    // `resume_settings` read the checkpoint and checked the settings and data against it.
    let mut trainer = if let Some(ckpt) = resumed {
        Trainer::resume(be, config.clone(), data, ckpt, &ckpt_path).map_err(msg("--resume"))?
    } else {
        Trainer::new(be, config.clone(), data).map_err(msg("train"))?
    };
    let metrics_path = a.out.join("metrics.jsonl");
    if a.resume {
        prune_metrics(&metrics_path, trainer.step_count())?;
    }
    let mut metrics = std::fs::OpenOptions::new()
        .create(true)
        .append(a.resume)
        .write(true)
        .truncate(!a.resume)
        .open(&metrics_path)
        .map_err(CliError::io(&metrics_path))?;
    eprintln!(
        "microdiff: training {} on {} ({} examples of {:?}, {} parameters) for {} steps, batch {}, on {}, into {}",
        config.process.name(),
        info.dataset,
        examples,
        info.shape,
        config.model.parameter_count(),
        config.steps,
        config.batch,
        on,
        a.out.display()
    );
    let start_step = trainer.step_count();
    let bar = if a.quiet {
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
    bar.set_position(start_step);
    let started = Instant::now();
    let mut smooth = None::<f32>;
    while trainer.step_count() < config.steps {
        let loss = trainer.step().map_err(msg("train"))?;
        let s = trainer.step_count();
        smooth = Some(smooth.map_or(loss, |m| 0.98 * m + 0.02 * loss));
        if s % 10 == 0 || s == config.steps {
            let rate = (s - start_step) as f64 / started.elapsed().as_secs_f64().max(1e-9);
            let rec = Metric {
                step: s,
                loss,
                lr: config.optim.lr_at(s, config.steps),
                steps_per_sec: rate,
            };
            writeln!(
                metrics,
                "{}",
                serde_json::to_string(&rec).map_err(msg("metrics"))?
            )
            .map_err(CliError::io(&metrics_path))?;
            bar.set_message(format!("{:.4}", smooth.unwrap_or(loss)));
        }
        bar.set_position(s);
        if s % a.checkpoint_every == 0 || s == config.steps {
            let ckpt = trainer.checkpoint();
            // A device error while downloading must not reach the checkpoint file.
            trainer.backend().check().map_err(msg("train"))?;
            // A fresh run's run.json goes in with its first checkpoint, not at start-up: a
            // crash before the first checkpoint leaves no settings that another run's
            // checkpoint could be read with.
            if !a.resume && !run::info_path(&a.out).exists() {
                info.save(&a.out)?;
            }
            ckpt.save(&ckpt_path)
                .map_err(|e| CliError::Msg(e.to_string()))?;
            if a.quiet {
                eprintln!(
                    "microdiff: step {s}/{}: loss {:.4}, checkpoint saved",
                    config.steps,
                    smooth.unwrap_or(loss)
                );
            }
        }
    }
    bar.finish();
    let losses: Vec<f64> = trainer.losses().iter().map(|l| l.1 as f64).collect();
    let png = a.out.join("loss.png");
    microdiff_trainer::viz::curve_png(&png, &[("loss", &losses)], (800, 400), true)
        .map_err(msg("loss.png"))?;
    eprintln!(
        "microdiff: done in {:.1} s; checkpoint {}, loss curve {}",
        started.elapsed().as_secs_f64(),
        ckpt_path.display(),
        png.display()
    );
    Ok(())
}

/// Run directory of a checkpoint argument: the directory itself, or a checkpoint file's parent.
pub fn run_dir(p: &Path) -> Result<PathBuf, CliError> {
    if p.is_dir() {
        return Ok(p.to_path_buf());
    }
    // A file must be the run's own checkpoint: `DIR/backup.mdck` silently meant
    // `DIR/checkpoint.mdck` before.
    if p.file_name().is_some_and(|n| n != "checkpoint.mdck") {
        return Err(CliError::Msg(format!(
            "{}: give a run directory (or its checkpoint.mdck); a run reads only \
             DIR/checkpoint.mdck, so copy a backup there to use it",
            p.display()
        )));
    }
    Ok(p.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf))
}
