//! A trained VAE on disk: the file `vae.json` of a run directory (`microdiff train --objective
//! vae` writes it, `microdiff export` reads it), holding the configuration, every parameter,
//! the data's name and shape and the map from the VAE's space to data units.
//!
//! # Promises
//!
//! * Written atomically ([`crate::files::write_atomic`]): a crash leaves the old file or the
//!   new one, never half of one.
//! * What both VAE run files (this one and the two-level VAE's `hvae.json`,
//!   [`super::hvae_run`]) store alike is written and checked here once: the file I/O, the
//!   likelihood's name, the data's shape and map, the parameters' bit patterns.
//! * Read back exactly: parameters are stored as their IEEE-754 bit patterns (`u64`), so the
//!   model reloaded is the model saved, bit for bit.
//! * A missing, truncated, edited or foreign file is a [`VaeRunError`] naming the file and what
//!   is wrong; nothing panics.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Activation, Likelihood, Vae, VaeConfig, VaeError};

/// The file name inside a run directory.
pub const FILE: &str = "vae.json";

/// The `format` field of the file.
const FORMAT: &str = "microdiff-vae-run/1";

/// Largest VAE run file read: far above any model the command trains (a `MAX_WIDTH`-wide
/// network on 784 values is ~100 MB of text), far below what would exhaust memory.
const MAX_BYTES: u64 = 1 << 30;

/// Writes a run file's `text` to `path` in `dir` atomically (creating `dir`).
pub(super) fn write_file(dir: &Path, path: &Path, text: &str) -> Result<(), VaeRunError> {
    let io = |source| VaeRunError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    crate::files::write_atomic(path, text.as_bytes()).map_err(io)
}

/// The bytes of the run file at `path` (at most [`MAX_BYTES`]).
pub(super) fn read_file(path: &Path) -> Result<Vec<u8>, VaeRunError> {
    crate::files::read_limited(path, MAX_BYTES).map_err(|source| VaeRunError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The stored name of a likelihood.
pub(super) fn likelihood_name(l: Likelihood) -> &'static str {
    match l {
        Likelihood::Gaussian => "gaussian",
        Likelihood::Bernoulli => "bernoulli",
    }
}

/// The likelihood stored as `name`.
pub(super) fn likelihood(name: &str) -> Result<Likelihood, String> {
    [Likelihood::Gaussian, Likelihood::Bernoulli]
        .into_iter()
        .find(|&l| likelihood_name(l) == name)
        .ok_or_else(|| format!("unknown likelihood {name:?}"))
}

/// That `shape` holds `x_dim` values and `scale` / `offset` are a map to data units (0, 1 or
/// `x_dim` finite values each), or what is wrong.
pub(super) fn check_data(
    shape: &[usize],
    x_dim: usize,
    scale: &[f32],
    offset: &[f32],
) -> Result<(), String> {
    let elems = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    if elems != Some(x_dim) {
        return Err(format!("shape {shape:?} does not hold {x_dim} values"));
    }
    for (what, v) in [("scale", scale), ("offset", offset)] {
        if !(v.is_empty() || v.len() == 1 || v.len() == x_dim) {
            return Err(format!(
                "{what} has {} values; expected 0, 1 or {x_dim}",
                v.len()
            ));
        }
        if v.iter().any(|x| !x.is_finite()) {
            return Err(format!("{what} is not finite"));
        }
    }
    Ok(())
}

/// The parameters stored as `f64` bit patterns, or the first that is not finite.
pub(super) fn params_from_bits(bits: &[u64]) -> Result<Vec<f64>, String> {
    let params: Vec<f64> = bits.iter().map(|&b| f64::from_bits(b)).collect();
    match params.iter().position(|p| !p.is_finite()) {
        Some(i) => Err(format!("parameter {i} is not finite")),
        None => Ok(params),
    }
}

/// A trained VAE with what export needs to know about its data.
#[derive(Debug, Clone, PartialEq)]
pub struct VaeRun {
    /// The model.
    pub vae: Vae,
    /// The data it was trained on (a built-in name or a file name).
    pub dataset: String,
    /// The shape of one sample (product = the VAE's data dimension).
    pub shape: Vec<usize>,
    /// Map from the VAE's space to data units, `data = x · scale + offset` (one value, one per
    /// element, or empty for the identity).
    pub scale: Vec<f32>,
    /// See [`scale`](Self::scale).
    pub offset: Vec<f32>,
    /// Optimiser steps trained.
    pub steps: usize,
    /// Mean negative ELBO over the last 100 steps (nats per example, in the VAE's space).
    pub loss: f64,
    /// The device that trained it when it was not the f64 trainer on the CPU
    /// (`--device cuda`: the GPU as the training line named it); `None` (and nothing in the
    /// file, so CPU runs keep their bytes) for the f64 trainer.
    pub trained_on: Option<String>,
}

/// Why a VAE run could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaeRunError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// The file is not a VAE run this version reads.
    #[error("{path}: not a microdiff VAE run: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The stored configuration or parameters do not make a model.
    #[error("{path}: {source}")]
    Model {
        /// The file.
        path: PathBuf,
        /// Why.
        source: VaeError,
    },
    /// A command-line setting or a step of `train` / `export` refused, in words
    /// ([`super::command`]).
    #[error("{0}")]
    Setting(String),
    /// `export --dtype w8a8` of a two-level VAE, which has no full-integer path yet.
    #[error(
        "--dtype w8a8: a two-level VAE has no full-integer (W8A8) export yet (its blob, two \
         networks with noise between them, runs in f32 arithmetic only); use f32, f16 or i8"
    )]
    NoW8a8,
}

impl From<crate::zoo::command::Refusal> for VaeRunError {
    fn from(r: crate::zoo::command::Refusal) -> Self {
        use crate::zoo::command::Refusal;
        match r {
            Refusal::Setting(m) => VaeRunError::Setting(m),
            Refusal::Io { path, source } => VaeRunError::Io { path, source },
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    format: String,
    dataset: String,
    shape: Vec<usize>,
    scale: Vec<f32>,
    offset: Vec<f32>,
    steps: usize,
    loss: f64,
    x_dim: usize,
    z_dim: usize,
    classes: usize,
    hidden: Vec<usize>,
    activation: String,
    likelihood: String,
    seed: u64,
    /// `f64::to_bits` of every parameter (JSON numbers would not round-trip every f64).
    param_bits: Vec<u64>,
    /// [`VaeRun::trained_on`]; absent for the f64 trainer (and in files written before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trained_on: Option<String>,
}

/// The name of a host activation, as `activation` reads it back.
pub(super) fn activation_name(a: Activation) -> &'static str {
    match a {
        Activation::Tanh => "tanh",
        Activation::Relu => "relu",
        Activation::Silu => "silu",
    }
}

/// The host activation called `name` (relu, silu or tanh).
pub fn activation(name: &str) -> Option<Activation> {
    [Activation::Relu, Activation::Silu, Activation::Tanh]
        .into_iter()
        .find(|&a| activation_name(a) == name)
}

impl VaeRun {
    /// The file of the run in `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(FILE)
    }

    /// Whether `dir` holds a VAE run.
    pub fn exists(dir: &Path) -> bool {
        Self::path(dir).is_file()
    }

    /// Writes `dir/vae.json` atomically (creating `dir`).
    pub fn save(&self, dir: &Path) -> Result<(), VaeRunError> {
        let path = Self::path(dir);
        let c = self.vae.config();
        let stored = Stored {
            format: FORMAT.into(),
            dataset: self.dataset.clone(),
            shape: self.shape.clone(),
            scale: self.scale.clone(),
            offset: self.offset.clone(),
            steps: self.steps,
            loss: self.loss,
            x_dim: c.x_dim,
            z_dim: c.z_dim,
            classes: c.classes,
            hidden: c.hidden.clone(),
            activation: activation_name(c.activation).into(),
            likelihood: likelihood_name(c.likelihood).into(),
            seed: c.seed,
            param_bits: self.vae.params().iter().map(|p| p.to_bits()).collect(),
            trained_on: self.trained_on.clone(),
        };
        let text = serde_json::to_string(&stored).map_err(|e| VaeRunError::Format {
            path: path.clone(),
            message: e.to_string(),
        })?;
        write_file(dir, &path, &text)
    }

    /// Reads `dir/vae.json`.
    pub fn load(dir: &Path) -> Result<Self, VaeRunError> {
        let path = Self::path(dir);
        let bytes = read_file(&path)?;
        let bad = |message: String| VaeRunError::Format {
            path: path.clone(),
            message,
        };
        let s: Stored = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        if s.format != FORMAT {
            return Err(bad(format!("format {:?}, expected {FORMAT:?}", s.format)));
        }
        let activation = activation(&s.activation)
            .ok_or_else(|| bad(format!("unknown activation {:?}", s.activation)))?;
        let likelihood = likelihood(&s.likelihood).map_err(bad)?;
        check_data(&s.shape, s.x_dim, &s.scale, &s.offset).map_err(bad)?;
        let model = |source| VaeRunError::Model {
            path: path.clone(),
            source,
        };
        let mut vae = Vae::new(VaeConfig {
            x_dim: s.x_dim,
            z_dim: s.z_dim,
            classes: s.classes,
            hidden: s.hidden,
            activation,
            likelihood,
            seed: s.seed,
        })
        .map_err(model)?;
        let params = params_from_bits(&s.param_bits).map_err(bad)?;
        vae.set_params(&params).map_err(model)?;
        Ok(VaeRun {
            vae,
            dataset: s.dataset,
            shape: s.shape,
            scale: s.scale,
            offset: s.offset,
            steps: s.steps,
            loss: s.loss,
            trained_on: s.trained_on,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zoo::command::testing;

    fn run() -> VaeRun {
        let vae = Vae::new(VaeConfig {
            x_dim: 4,
            z_dim: 2,
            classes: 2,
            hidden: vec![3],
            activation: Activation::Silu,
            likelihood: Likelihood::Gaussian,
            seed: 1,
        })
        .unwrap();
        VaeRun {
            vae,
            dataset: "toy".into(),
            shape: vec![2, 2],
            scale: vec![2.0],
            offset: vec![0.5],
            steps: 10,
            loss: 1.25,
            trained_on: None,
        }
    }

    fn scratch(name: &str) -> PathBuf {
        testing::scratch("vae", name)
    }

    /// A saved run loads back equal, parameters bit for bit.
    #[test]
    fn a_run_round_trips() {
        let dir = scratch("round-trip");
        let r = run();
        r.save(&dir).unwrap();
        assert!(VaeRun::exists(&dir));
        assert_eq!(VaeRun::load(&dir).unwrap(), r);
        // The f64 trainer's file names no device; a backend's names it and reads back.
        assert!(
            !std::fs::read_to_string(VaeRun::path(&dir))
                .unwrap()
                .contains("trained_on")
        );
        let gpu = VaeRun {
            trained_on: Some("a GPU".into()),
            ..run()
        };
        gpu.save(&dir).unwrap();
        assert_eq!(VaeRun::load(&dir).unwrap(), gpu);
        std::fs::remove_dir_all(&dir).ok();
    }

    /// Missing, truncated, foreign and inconsistent files are typed errors.
    #[test]
    fn bad_files_are_typed_errors() {
        let dir = scratch("bad");
        assert!(matches!(VaeRun::load(&dir), Err(VaeRunError::Io { .. })));
        run().save(&dir).unwrap();
        let path = VaeRun::path(&dir);
        let good = std::fs::read_to_string(&path).unwrap();
        let cases = [
            good[..good.len() / 2].to_string(),
            good.replace(FORMAT, "other/1"),
            good.replace("\"silu\"", "\"swish\""),
            good.replace("\"shape\":[2,2]", "\"shape\":[3,2]"),
            good.replace("\"param_bits\":[", "\"param_bits\":[1,"),
            good.replace("\"z_dim\":2", "\"z_dim\":0"),
            // Checks the two-level VAE's file had and this one lacked until they shared them.
            good.replace("\"scale\":[2.0]", "\"scale\":[2.0,1.0]"),
            good.replace("\"gaussian\"", "\"poisson\""),
            testing::nan_first_param(&good),
        ];
        for (i, text) in cases.iter().enumerate() {
            assert_ne!(text, &good, "case {i} did not change the file");
            std::fs::write(&path, text).unwrap();
            let e = VaeRun::load(&dir);
            assert!(
                matches!(
                    e,
                    Err(VaeRunError::Format { .. } | VaeRunError::Model { .. })
                ),
                "case {i}: {e:?}"
            );
            if i >= 6 {
                // The shared checks name what they refuse.
                let m = e.unwrap_err().to_string();
                assert!(
                    [
                        "scale has 2 values",
                        "unknown likelihood",
                        "parameter 0 is not finite"
                    ]
                    .iter()
                    .any(|w| m.contains(w)),
                    "case {i}: {m}"
                );
            }
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
