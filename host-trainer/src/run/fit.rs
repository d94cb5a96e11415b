//! The training loop ([`fit`], the only one: `microdiff train` and the demo both step through
//! it) and a run that trains into its directory ([`Run`]): metrics, periodic checkpoints,
//! `run.json` with the first checkpoint, the loss curve at the end.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{RUN_FILES, RunDir, RunError, RunInfo, Settings};
use crate::backend::Backend;
use crate::checkpoint::Checkpoint;
use crate::train::{RunHeader, TrainConfig, TrainData, TrainError, Trainer};

/// One finished optimiser step, as [`fit`] reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// Steps completed.
    pub step: u64,
    /// Steps the run trains to.
    pub steps: u64,
    /// This step's loss.
    pub loss: f32,
    /// The loss smoothed over about the last 50 steps (an EMA with decay 0.98), for display.
    pub smoothed: f32,
}

/// Steps `trainer` until its configured step count, calling `after` after every step (to log,
/// checkpoint, or show progress; its error stops the loop). Returns the last smoothed loss.
pub fn fit<B: Backend, E: From<TrainError>>(
    trainer: &mut Trainer<B>,
    mut after: impl FnMut(&mut Trainer<B>, &Step) -> Result<(), E>,
) -> Result<f32, E> {
    let steps = trainer.config().steps;
    let mut smoothed = None::<f32>;
    while trainer.step_count() < steps {
        let loss = trainer.step()?;
        let s = smoothed.map_or(loss, |m| 0.98 * m + 0.02 * loss);
        smoothed = Some(s);
        let step = Step {
            step: trainer.step_count(),
            steps,
            loss,
            smoothed: s,
        };
        after(trainer, &step)?;
    }
    Ok(smoothed.unwrap_or(f32::NAN))
}

/// How [`Run::prepare`] treats the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// A fresh run; a directory that already holds one is refused.
    Fresh,
    /// A fresh run; a run already there is deleted first.
    Force,
    /// Continue the run there, with its own settings (only `steps` may grow).
    Resume,
}

/// What [`Run::train`] reports as it goes.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A step finished.
    Step(&'a Step),
    /// A checkpoint was saved after this step.
    Checkpoint(&'a Step),
}

/// What a finished run did.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Steps trained by this call (not counting those before a resume).
    pub trained: u64,
    /// The last smoothed loss.
    pub loss: f32,
    /// Wall-clock seconds of the loop.
    pub seconds: f64,
    /// The checkpoint.
    pub checkpoint: PathBuf,
    /// The loss curve.
    pub loss_curve: PathBuf,
}

/// A run ready to train into its directory, which it holds locked until dropped.
pub struct Run {
    dir: RunDir,
    config: TrainConfig,
    data: TrainData,
    info: RunInfo,
    resumed: Option<Checkpoint<RunHeader>>,
    _lock: crate::files::RunLock,
}

/// One JSONL metrics record.
#[derive(serde::Serialize)]
struct Metric {
    step: u64,
    loss: f32,
    lr: f32,
    steps_per_sec: f64,
}

impl Run {
    /// Resolves `settings` (or, with [`Start::Resume`], the run in `dir` and the settings given
    /// against it), loads the data, takes the directory's lock and clears or refuses an old
    /// run as `start` says.
    pub fn prepare(dir: &Path, settings: &Settings, start: Start) -> Result<Run, RunError> {
        let run_dir = RunDir::new(dir);
        let (resolved, resumed) = if start == Start::Resume {
            let (r, ckpt) = settings.resume(&run_dir)?;
            (r, Some(ckpt))
        } else {
            (settings.resolve()?, None)
        };
        // One writer per run directory, for the whole run (released however the process ends).
        let lock = crate::files::RunLock::acquire(dir).map_err(|e| {
            if e.kind() == std::io::ErrorKind::WouldBlock {
                RunError::Busy {
                    dir: dir.to_path_buf(),
                }
            } else {
                RunError::Io {
                    path: dir.to_path_buf(),
                    source: e,
                }
            }
        })?;
        if start != Start::Resume {
            let present: Vec<&'static str> = RUN_FILES
                .into_iter()
                .filter(|f| dir.join(f).exists())
                .collect();
            if !present.is_empty() && start == Start::Fresh {
                return Err(RunError::Exists {
                    dir: dir.to_path_buf(),
                    files: present,
                });
            }
            // Checkpoint first: a crash in between leaves no checkpoint beside the new settings.
            for f in present {
                let path = dir.join(f);
                std::fs::remove_file(&path).map_err(|source| RunError::Io { path, source })?;
            }
        }
        Ok(Run {
            dir: run_dir,
            config: resolved.config,
            data: resolved.data,
            info: resolved.info,
            resumed,
            _lock: lock,
        })
    }

    /// The configuration it trains with.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }
    /// The data facts `run.json` records.
    pub fn info(&self) -> &RunInfo {
        &self.info
    }
    /// Training examples.
    pub fn examples(&self) -> usize {
        self.data.x.len() / self.data.dim.max(1)
    }
    /// Steps already trained (a resumed run's checkpoint).
    pub fn start_step(&self) -> u64 {
        self.resumed.as_ref().map_or(0, |c| c.header.step)
    }
    /// The directory.
    pub fn dir(&self) -> &RunDir {
        &self.dir
    }

    /// Trains on `be` to the configured step count: a metrics row every 10 steps, a checkpoint
    /// every `checkpoint_every` steps and at the end, the loss curve last. A resumed run drops
    /// the metrics rows past its checkpoint first (the killed run had logged them).
    pub fn train<B: Backend>(
        self,
        be: B,
        checkpoint_every: u64,
        report: &mut dyn FnMut(Event<'_>),
    ) -> Result<Summary, RunError> {
        if checkpoint_every == 0 {
            return Err(RunError::Setting {
                flag: "checkpoint-every",
                message: "0: expected a step count of at least 1".into(),
            });
        }
        let resume = self.resumed.is_some();
        let ckpt_path = self.dir.checkpoint_path();
        let mut trainer = match self.resumed {
            // `Settings::resume` read the checkpoint and checked the settings and data against it.
            Some(ckpt) => Trainer::resume(be, self.config.clone(), self.data, ckpt, &ckpt_path)?,
            None => Trainer::new(be, self.config.clone(), self.data)?,
        };
        let metrics_path = self.dir.metrics_path();
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RunError::Io { path, source }
        };
        if resume {
            prune_metrics(&metrics_path, trainer.step_count())?;
        }
        let mut metrics = std::fs::OpenOptions::new()
            .create(true)
            .append(resume)
            .write(true)
            .truncate(!resume)
            .open(&metrics_path)
            .map_err(io(&metrics_path))?;
        let start_step = trainer.step_count();
        let started = Instant::now();
        let (dir, info, config) = (&self.dir, &self.info, &self.config);
        let loss = fit(&mut trainer, |trainer, step| -> Result<(), RunError> {
            let s = step.step;
            if s % 10 == 0 || s == step.steps {
                let rate = (s - start_step) as f64 / started.elapsed().as_secs_f64().max(1e-9);
                let rec = Metric {
                    step: s,
                    loss: step.loss,
                    lr: config.optim.lr_at(s, step.steps),
                    steps_per_sec: rate,
                };
                let line = serde_json::to_string(&rec).map_err(|e| RunError::Io {
                    path: metrics_path.clone(),
                    source: e.into(),
                })?;
                writeln!(metrics, "{line}").map_err(io(&metrics_path))?;
            }
            report(Event::Step(step));
            if s % checkpoint_every == 0 || s == step.steps {
                let ckpt = trainer.checkpoint();
                // A device error while downloading must not reach the checkpoint file.
                trainer
                    .backend()
                    .check()
                    .map_err(|source| TrainError::Backend { step: s, source })?;
                // A fresh run's run.json goes in with its first checkpoint, not at start-up: a
                // crash before the first checkpoint leaves no settings that another run's
                // checkpoint could be read with.
                if !resume && !dir.info_path().exists() {
                    dir.write_info(info)?;
                }
                ckpt.save(&ckpt_path)?;
                report(Event::Checkpoint(step));
            }
            Ok(())
        })?;
        let png = self.dir.loss_curve_path();
        crate::viz::loss_curve_png(&png, trainer.losses(), &crate::viz::CurveOptions::default())?;
        Ok(Summary {
            trained: trainer.step_count() - start_step,
            loss,
            seconds: started.elapsed().as_secs_f64(),
            checkpoint: ckpt_path,
            loss_curve: png,
        })
    }
}

/// Drops the rows of `metrics.jsonl` past `step` (the checkpoint a resumed run starts from):
/// rows logged between that checkpoint and a kill are logged again by the resumed run, and
/// were duplicated. A torn last line goes too. Replaced atomically.
fn prune_metrics(path: &Path, step: u64) -> Result<(), RunError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(RunError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
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
    crate::files::write_atomic(path, kept.as_bytes()).map_err(|source| RunError::Io {
        path: path.to_path_buf(),
        source,
    })
}
