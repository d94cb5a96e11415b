//! A trained VAE on disk: the file `vae.json` of a run directory (`microdiff train --objective
//! vae` writes it, `microdiff export` reads it), holding the configuration, every parameter,
//! the data's name and shape and the map from the VAE's space to data units.
//!
//! # Promises
//!
//! * Written atomically (a temporary file renamed over the old one): a crash leaves the old
//!   file or the new one, never half of one.
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
        let io = |source| VaeRunError::Io {
            path: path.clone(),
            source,
        };
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
            likelihood: match c.likelihood {
                Likelihood::Gaussian => "gaussian",
                Likelihood::Bernoulli => "bernoulli",
            }
            .into(),
            seed: c.seed,
            param_bits: self.vae.params().iter().map(|p| p.to_bits()).collect(),
        };
        let text = serde_json::to_string(&stored).map_err(|e| VaeRunError::Format {
            path: path.clone(),
            message: e.to_string(),
        })?;
        std::fs::create_dir_all(dir).map_err(io)?;
        let tmp = dir.join(format!("{FILE}.tmp"));
        std::fs::write(&tmp, text).map_err(|source| VaeRunError::Io {
            path: tmp.clone(),
            source,
        })?;
        std::fs::rename(&tmp, &path).map_err(io)
    }

    /// Reads `dir/vae.json`.
    pub fn load(dir: &Path) -> Result<Self, VaeRunError> {
        let path = Self::path(dir);
        let text = std::fs::read_to_string(&path).map_err(|source| VaeRunError::Io {
            path: path.clone(),
            source,
        })?;
        let bad = |message: String| VaeRunError::Format {
            path: path.clone(),
            message,
        };
        let s: Stored = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if s.format != FORMAT {
            return Err(bad(format!("format {:?}, expected {FORMAT:?}", s.format)));
        }
        let activation = activation(&s.activation)
            .ok_or_else(|| bad(format!("unknown activation {:?}", s.activation)))?;
        let likelihood = match s.likelihood.as_str() {
            "gaussian" => Likelihood::Gaussian,
            "bernoulli" => Likelihood::Bernoulli,
            other => return Err(bad(format!("unknown likelihood {other:?}"))),
        };
        let elems = s.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if elems != Some(s.x_dim) {
            return Err(bad(format!(
                "shape {:?} does not hold {} values",
                s.shape, s.x_dim
            )));
        }
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
        let params: Vec<f64> = s.param_bits.iter().map(|&b| f64::from_bits(b)).collect();
        vae.set_params(&params).map_err(model)?;
        Ok(VaeRun {
            vae,
            dataset: s.dataset,
            shape: s.shape,
            scale: s.scale,
            offset: s.offset,
            steps: s.steps,
            loss: s.loss,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("microdiff-vae-run-{name}-{}", std::process::id()));
        std::fs::remove_dir_all(&d).ok();
        d
    }

    /// A saved run loads back equal, parameters bit for bit.
    #[test]
    fn a_run_round_trips() {
        let dir = scratch("round-trip");
        let r = run();
        r.save(&dir).unwrap();
        assert!(VaeRun::exists(&dir));
        assert_eq!(VaeRun::load(&dir).unwrap(), r);
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
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
