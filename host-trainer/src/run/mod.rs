//! A training run: its directory, the settings it is made from ([`Settings`]) and the training
//! loop that fills it ([`Run`], [`fit`]). `microdiff train` writes a run; `export`, `eval --run`
//! and `--resume` read one ([`RunDir::open`]).
//!
//! ```text
//! DIR/run.json          the data: name, shape, normalisation back to data units, classes
//! DIR/checkpoint.mdck   parameters, EMA, optimiser state, configuration, loss history
//! DIR/metrics.jsonl     one JSON object per logged step: step, loss, lr, steps_per_sec
//! DIR/loss.png          the loss curve
//! DIR/.microdiff.lock   locked by the process training into DIR
//! ```
//!
//! Promises: `run.json` appears with the first checkpoint, never before (a directory with
//! settings but no checkpoint cannot exist); every file is replaced atomically; one process
//! trains into a directory at a time; a resumed run ends bit-identical to one never stopped.

mod fit;
mod settings;

pub use fit::{Event, Run, Start, Step, Summary, fit};
pub use settings::{Resolved, Settings};

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::data::{DataError, Normalizer};
use crate::train::{RunHeader, TrainConfig, TrainError};

/// What can go wrong preparing, training, or reading a run. Messages name the file or the
/// setting (by its flag) they are about.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// A file of the run could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// `run.json` is not what `train` writes.
    #[error("{}: {source}", path.display())]
    Info {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        source: serde_json::Error,
    },
    /// The checkpoint is unreadable or belongs to other settings.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The data set could not be loaded.
    #[error("data: {0}")]
    Data(#[from] DataError),
    /// The loss curve could not be drawn or written.
    #[error(transparent)]
    Picture(#[from] crate::viz::VizError),
    /// The training loop failed (divergence, a device error, a configuration it refuses).
    #[error("train: {0}")]
    Train(#[from] TrainError),
    /// A setting's value is refused; `flag` is its command-line name (and TOML key).
    #[error("--{flag} {message}")]
    Setting {
        /// The flag, without dashes.
        flag: &'static str,
        /// The value and what was expected.
        message: String,
    },
    /// A settings file is not valid TOML or has an unknown key.
    #[error("{}:{at} {message}", path.display())]
    Toml {
        /// The file.
        path: PathBuf,
        /// ` line L, column C:` when the parser knows.
        at: String,
        /// The parser's message, on one line.
        message: String,
    },
    /// The path is not a run.
    #[error("{}: {why}", path.display())]
    NotARun {
        /// The path given.
        path: PathBuf,
        /// What it is instead, and what to give.
        why: &'static str,
    },
    /// Another process trains into the directory.
    #[error("--out {}: another microdiff process is training into it", dir.display())]
    Busy {
        /// The run directory.
        dir: PathBuf,
    },
    /// A fresh run was asked for in a directory that holds one.
    #[error(
        "--out {} already holds a run ({}): --resume continues it, --force starts over \
         (deleting it), or choose another --out",
        dir.display(),
        files.join(", ")
    )]
    Exists {
        /// The run directory.
        dir: PathBuf,
        /// The run's files found there.
        files: Vec<&'static str>,
    },
    /// `--resume` with settings other than the run's own.
    #[error(
        "--resume: {} keeps the settings it was trained with (only --steps may change): {}",
        dir.display(),
        differ.join(", ")
    )]
    ResumeSettings {
        /// The run directory.
        dir: PathBuf,
        /// Each differing setting: `--flag given (the run has saved)`.
        differ: Vec<String>,
    },
    /// `--resume` with fewer steps than already trained.
    #[error("--resume --steps {steps}: {} has already trained {done} steps", dir.display())]
    ResumeSteps {
        /// The run directory.
        dir: PathBuf,
        /// Steps asked for.
        steps: u64,
        /// Steps in the checkpoint.
        done: u64,
    },
    /// The data a run was trained on has changed since.
    #[error(
        "--resume: the data {dataset} has changed since {} started (shape, normalisation or classes)",
        dir.display()
    )]
    DataChanged {
        /// The run directory.
        dir: PathBuf,
        /// The data's name.
        dataset: String,
    },
}

/// The data facts a run needs after training (`DIR/run.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Where the data came from (`moons`, `digits`, a path).
    pub dataset: String,
    /// Shape of one example.
    pub shape: Vec<usize>,
    /// Model space → data units.
    pub normalizer: Normalizer,
    /// Classes the model is conditioned on (0: unconditional).
    pub classes: usize,
    /// The range the data's format fixes for every value, in data units (PNG gray levels
    /// `0..=255`, the digits' `0..=16`): exported programs clamp their output to it. Absent
    /// in runs from before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_range: Option<(f32, f32)>,
}

/// The names of a run's files (what `--force` deletes before a fresh run).
pub const RUN_FILES: [&str; 4] = ["checkpoint.mdck", "run.json", "metrics.jsonl", "loss.png"];

/// A run directory: where each file of a run lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    dir: PathBuf,
}

impl RunDir {
    /// The run directory `dir` (which need not exist yet).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        RunDir { dir: dir.into() }
    }

    /// The run that `p` names: an existing run directory, or its `checkpoint.mdck`.
    pub fn locate(p: &Path) -> Result<Self, RunError> {
        if !p.exists() {
            return Err(RunError::NotARun {
                path: p.to_path_buf(),
                why: "no such training run (give the --out directory of `microdiff train`)",
            });
        }
        if p.is_dir() {
            return Ok(RunDir::new(p));
        }
        // A file must be the run's own checkpoint: `DIR/backup.mdck` silently meant
        // `DIR/checkpoint.mdck` before.
        if p.file_name().is_some_and(|n| n != "checkpoint.mdck") {
            return Err(RunError::NotARun {
                path: p.to_path_buf(),
                why: "give a run directory (or its checkpoint.mdck); a run reads only \
                      DIR/checkpoint.mdck, so copy a backup there to use it",
            });
        }
        Ok(RunDir::new(
            p.parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        ))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }
    /// `DIR/run.json`.
    pub fn info_path(&self) -> PathBuf {
        self.dir.join(RUN_FILES[1])
    }
    /// `DIR/checkpoint.mdck`.
    pub fn checkpoint_path(&self) -> PathBuf {
        self.dir.join(RUN_FILES[0])
    }
    /// `DIR/metrics.jsonl`.
    pub fn metrics_path(&self) -> PathBuf {
        self.dir.join(RUN_FILES[2])
    }
    /// `DIR/loss.png`.
    pub fn loss_curve_path(&self) -> PathBuf {
        self.dir.join(RUN_FILES[3])
    }

    /// Reads `DIR/run.json`.
    pub fn read_info(&self) -> Result<RunInfo, RunError> {
        let path = self.info_path();
        let text = std::fs::read_to_string(&path).map_err(|source| RunError::Io {
            path: path.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| RunError::Info { path, source })
    }

    /// Writes `DIR/run.json` atomically.
    pub fn write_info(&self, info: &RunInfo) -> Result<(), RunError> {
        let path = self.info_path();
        let text = serde_json::to_string_pretty(info).map_err(|source| RunError::Info {
            path: path.clone(),
            source,
        })?;
        crate::files::write_atomic(&path, text.as_bytes())
            .map_err(|source| RunError::Io { path, source })
    }

    /// Reads `DIR/checkpoint.mdck`.
    pub fn read_checkpoint(&self) -> Result<Checkpoint<RunHeader>, RunError> {
        Ok(Checkpoint::load(&self.checkpoint_path())?)
    }

    /// The trained run: its data facts and its last checkpoint.
    pub fn open(&self) -> Result<Trained, RunError> {
        Ok(Trained {
            info: self.read_info()?,
            checkpoint: self.read_checkpoint()?,
        })
    }
}

/// A run as saved: what `export` and the likelihood read.
#[derive(Debug, Clone)]
pub struct Trained {
    /// `run.json`.
    pub info: RunInfo,
    /// The last checkpoint.
    pub checkpoint: Checkpoint<RunHeader>,
}

impl Trained {
    /// The run's configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.checkpoint.header.config
    }

    /// The weights a model is exported with: the EMA when the run keeps one, else the
    /// parameters.
    pub fn weights(&self) -> &[f32] {
        if self.config().optim.ema_decay > 0.0 {
            &self.checkpoint.ema
        } else {
            &self.checkpoint.params
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_takes_a_directory_or_its_checkpoint_only() {
        let dir = std::env::temp_dir();
        assert_eq!(RunDir::locate(&dir).unwrap().path(), dir);
        let e = RunDir::locate(Path::new("/definitely/not/here")).unwrap_err();
        assert!(e.to_string().contains("no such training run"), "{e}");
        let f = dir.join(format!("microdiff-locate-{}.mdck", std::process::id()));
        std::fs::write(&f, b"x").unwrap();
        let e = RunDir::locate(&f).unwrap_err();
        std::fs::remove_file(&f).unwrap();
        assert!(e.to_string().contains("give a run directory"), "{e}");
    }
}
