//! What the zoo's commands share (`microdiff train --objective vae | hvae | rbm` and the export
//! of such a run): the flags `train` hands over besides the [`Settings`], the refusal of flags
//! that do not apply to a family, the checks of the settings every family reads the same way,
//! and the replacement of an old run in the output directory.
//!
//! Errors are [`Refusal`]s, phrased for the command line; each family's run error converts
//! them (`VaeRunError`, `RbmRunError`).

use std::path::{Path, PathBuf};

use crate::run::Settings;

/// What `train` hands over besides the settings (`true`: the flag was given).
#[derive(Debug, Clone, Copy)]
pub struct TrainFlags<'a> {
    /// The run directory.
    pub out: &'a Path,
    /// `--resume`.
    pub resume: bool,
    /// `--force`: replace a run in `out`.
    pub force: bool,
    /// `--device` is `auto` or `cpu`.
    pub device_is_auto_or_cpu: bool,
    /// `--threads`.
    pub threads: bool,
    /// `--checkpoint-every`.
    pub checkpoint_every: bool,
}

impl<'a> TrainFlags<'a> {
    /// The flags of a fresh run in `out` on the CPU, replacing one there (`--force`): what the
    /// library's own callers (docs/zoo.md's table, the golden generators) train with.
    pub fn fresh(out: &'a Path) -> Self {
        TrainFlags {
            out,
            resume: false,
            force: true,
            device_is_auto_or_cpu: true,
            threads: false,
            checkpoint_every: false,
        }
    }
}

/// A backend a zoo family trains on instead of its f64 CPU trainer (`--device cuda`), and how
/// to name it in the "training … on X" line.
#[derive(Debug)]
pub struct OnBackend<'a, B> {
    /// The backend.
    pub be: &'a B,
    /// What it is, e.g. the GPU's name.
    pub on: &'a str,
}

// By hand: the derives would ask `B: Copy`, but only a reference to it is copied.
impl<B> Clone for OnBackend<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B> Copy for OnBackend<'_, B> {}

impl<B> OnBackend<'_, B> {
    /// `flags` with the device accepted: a family that trains on a backend takes `--device`.
    pub fn accept_device<'f>(flags: &TrainFlags<'f>) -> TrainFlags<'f> {
        TrainFlags {
            device_is_auto_or_cpu: true,
            ..*flags
        }
    }
}

/// Why a zoo command refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// A setting, in words.
    #[error("{0}")]
    Setting(String),
    /// Removing an old run's file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
}

/// The model files of every kind of run: one present in `--out` means it holds a run.
pub const MODEL_FILES: [&str; 4] = ["vae.json", "hvae.json", "rbm.json", "checkpoint.mdck"];

/// What `--force` deletes before a zoo run is written: the model files of every kind of run
/// and their companions (a diffusion run's settings, metrics and picture; a zoo run's curves).
pub const RUN_FILES: [&str; 9] = [
    "vae.json",
    "hvae.json",
    "rbm.json",
    "checkpoint.mdck",
    "run.json",
    "metrics.jsonl",
    "loss.png",
    "loss.csv",
    "epochs.csv",
];

/// Most optimiser steps, examples per batch, hidden width: far beyond any useful zoo model, far
/// below an allocation that would exhaust memory.
pub const MAX_STEPS: u64 = 10_000_000;
/// See [`MAX_STEPS`].
pub const MAX_BATCH: usize = 65_536;
/// See [`MAX_STEPS`].
pub const MAX_WIDTH: usize = 16_384;

/// The diffusion-only settings and run flags, with whether each was given: none applies to a
/// zoo family, which trains in one go on the CPU.
fn diffusion_flags(s: &Settings, f: &TrainFlags<'_>) -> [(&'static str, bool); 10] {
    [
        ("--cfg-dropout", s.cfg_dropout.is_some()),
        ("--warmup", s.warmup.is_some()),
        ("--ema-decay", s.ema_decay.is_some()),
        ("--ff", s.ff.is_some()),
        ("--temb", s.temb.is_some()),
        ("--sigma-max", s.sigma_max.is_some()),
        ("--resume", f.resume),
        (
            "--device (other than auto or cpu)",
            !f.device_is_auto_or_cpu,
        ),
        ("--threads", f.threads),
        ("--checkpoint-every", f.checkpoint_every),
    ]
}

/// Refuses, for `--objective objective`, the diffusion-only flags and the settings in
/// `others` (`(flag, given, why it does not apply)`, e.g. another zoo family's), naming the
/// first one given.
pub fn refuse_flags(
    objective: &str,
    s: &Settings,
    f: &TrainFlags<'_>,
    others: &[(&'static str, bool, &'static str)],
) -> Result<(), Refusal> {
    if let Some((flag, _)) = diffusion_flags(s, f).iter().find(|(_, on)| *on) {
        return Err(Refusal::Setting(format!(
            "{flag} does not apply to --objective {objective} (it trains in one go on the CPU: \
             docs/zoo.md)"
        )));
    }
    match others.iter().find(|(_, on, _)| *on) {
        Some((flag, _, why)) => Err(Refusal::Setting(format!(
            "{flag} does not apply to --objective {objective} ({why})"
        ))),
        None => Ok(()),
    }
}

/// `value` of `flag` if it lies in `1..=max`.
pub fn count<T: PartialOrd + From<u8> + std::fmt::Display + Copy>(
    flag: &str,
    value: T,
    max: T,
) -> Result<T, Refusal> {
    if value >= T::from(1) && value <= max {
        Ok(value)
    } else {
        Err(Refusal::Setting(format!(
            "{flag} {value}: expected 1..={max}"
        )))
    }
}

/// `--lr` (default `default`) if it is finite and in `(0, 1]`.
pub fn learning_rate(s: &Settings, default: f64) -> Result<f64, Refusal> {
    let lr = s.lr.map_or(default, f64::from);
    if lr.is_finite() && lr > 0.0 && lr <= 1.0 {
        Ok(lr)
    } else {
        Err(Refusal::Setting(format!("--lr {lr}: expected 0 < lr <= 1")))
    }
}

/// Refuses a sample shape a blob cannot hold (at most 4 dimensions of at most 65535 each)
/// before training, rather than at export.
pub fn blob_shape(data: &str, shape: &[usize]) -> Result<(), Refusal> {
    if shape.len() > 4 || shape.iter().any(|&d| d > usize::from(u16::MAX)) {
        return Err(Refusal::Setting(format!(
            "--data {data}: samples of shape {shape:?}: a blob holds at most 4 dimensions of at \
             most 65535 each; reshape the data"
        )));
    }
    Ok(())
}

/// Refuses an `out` that holds a run (of any kind, [`MODEL_FILES`]) unless `force`: called
/// before training, so a refusal costs nothing.
pub fn check_out(out: &Path, force: bool) -> Result<(), Refusal> {
    if !force && MODEL_FILES.iter().any(|f| out.join(f).exists()) {
        return Err(Refusal::Setting(format!(
            "{} already holds a run; --force replaces it",
            out.display()
        )));
    }
    Ok(())
}

/// Deletes an old run's files ([`RUN_FILES`]) from `out`: called once training has succeeded
/// (after [`check_out`]), so a failed training leaves the old run as it was.
pub fn clear_old_run(out: &Path) -> Result<(), Refusal> {
    for old in RUN_FILES {
        let path = out.join(old);
        if path.exists() {
            std::fs::remove_file(&path).map_err(|source| Refusal::Io { path, source })?;
        }
    }
    Ok(())
}

/// Writes a CSV file atomically.
pub fn write_csv(path: &Path, text: &str) -> Result<(), Refusal> {
    crate::files::write_atomic(path, text.as_bytes()).map_err(|source| Refusal::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// What the zoo's run-file tests share.
#[cfg(test)]
pub(crate) mod testing {
    use std::path::PathBuf;

    /// An empty scratch directory for test `name` of run kind `kind` (per process).
    pub(crate) fn scratch(kind: &str, name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "microdiff-{kind}-run-{name}-{}",
            std::process::id()
        ));
        std::fs::remove_dir_all(&d).ok();
        d
    }

    /// A run file's `text` with its first stored parameter (`param_bits`) replaced by a NaN's
    /// bit pattern.
    pub(crate) fn nan_first_param(text: &str) -> String {
        let key = "\"param_bits\":[";
        let at = text.find(key).expect("a run file has param_bits") + key.len();
        let end = at + text[at..].find(',').expect("more than one parameter");
        format!("{}{}{}", &text[..at], f64::NAN.to_bits(), &text[end..])
    }
}
