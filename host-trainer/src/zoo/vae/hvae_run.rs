//! A trained two-level VAE on disk: the file `hvae.json` of a run directory (`microdiff train
//! --objective hvae` writes it; `microdiff export` and `eval --run` read it), holding the
//! configuration, every parameter, the data's name and shape and the map from the model's
//! space to data units. The layout follows `vae.json` ([`super::run`]).
//!
//! # Promises
//!
//! * Written atomically ([`crate::files::write_atomic`]): a crash leaves the old file or the
//!   new one, never half of one.
//! * Read back exactly: parameters are stored as their IEEE-754 bit patterns (`u64`), so the
//!   model reloaded is the model saved, bit for bit.
//! * A missing, truncated, edited or foreign file is a [`VaeRunError`] naming the file and what
//!   is wrong; nothing panics.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::run::{
    VaeRunError, activation, activation_name, check_data, likelihood, likelihood_name,
    params_from_bits, read_file, write_file,
};
use super::{Hvae, HvaeConfig};

/// The file name inside a run directory.
pub const FILE: &str = "hvae.json";

/// The `format` field of the file.
const FORMAT: &str = "microdiff-hvae-run/1";

/// A trained two-level VAE with what export needs to know about its data.
#[derive(Debug, Clone, PartialEq)]
pub struct HvaeRun {
    /// The model.
    pub hvae: Hvae,
    /// The data it was trained on (a built-in name or a file name).
    pub dataset: String,
    /// The shape of one sample (product = the model's data dimension).
    pub shape: Vec<usize>,
    /// Map from the model's space to data units, `data = x · scale + offset` (one value, one
    /// per element, or empty for the identity).
    pub scale: Vec<f32>,
    /// See [`scale`](Self::scale).
    pub offset: Vec<f32>,
    /// Optimiser steps trained.
    pub steps: usize,
    /// Mean negative ELBO over the last 100 steps (nats per example, in the model's space).
    pub loss: f64,
    /// The device that trained it when it was not the f64 trainer on the CPU (as
    /// [`VaeRun::trained_on`](super::run::VaeRun::trained_on)); `None` for the f64 trainer.
    pub trained_on: Option<String>,
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
    z1_dim: usize,
    z2_dim: usize,
    hidden: Vec<usize>,
    activation: String,
    likelihood: String,
    seed: u64,
    /// `f64::to_bits` of every parameter in the layout of `Hvae::params` (JSON numbers would
    /// not round-trip every f64).
    param_bits: Vec<u64>,
    /// [`HvaeRun::trained_on`]; absent for the f64 trainer (and in files written before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trained_on: Option<String>,
}

impl HvaeRun {
    /// The file of the run in `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(FILE)
    }

    /// Whether `dir` holds a two-level VAE run.
    pub fn exists(dir: &Path) -> bool {
        Self::path(dir).is_file()
    }

    /// Writes `dir/hvae.json` atomically (creating `dir`).
    pub fn save(&self, dir: &Path) -> Result<(), VaeRunError> {
        let path = Self::path(dir);
        let c = self.hvae.config();
        let stored = Stored {
            format: FORMAT.into(),
            dataset: self.dataset.clone(),
            shape: self.shape.clone(),
            scale: self.scale.clone(),
            offset: self.offset.clone(),
            steps: self.steps,
            loss: self.loss,
            x_dim: c.x_dim,
            z1_dim: c.z1_dim,
            z2_dim: c.z2_dim,
            hidden: c.hidden.clone(),
            activation: activation_name(c.activation).into(),
            likelihood: likelihood_name(c.likelihood).into(),
            seed: c.seed,
            param_bits: self.hvae.params().iter().map(|p| p.to_bits()).collect(),
            trained_on: self.trained_on.clone(),
        };
        let text = serde_json::to_string(&stored).map_err(|e| VaeRunError::Format {
            path: path.clone(),
            message: e.to_string(),
        })?;
        write_file(dir, &path, &text)
    }

    /// Reads `dir/hvae.json`.
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
        let mut hvae = Hvae::new(HvaeConfig {
            x_dim: s.x_dim,
            z1_dim: s.z1_dim,
            z2_dim: s.z2_dim,
            hidden: s.hidden,
            activation,
            likelihood,
            seed: s.seed,
        })
        .map_err(model)?;
        let params = params_from_bits(&s.param_bits).map_err(bad)?;
        hvae.set_params(&params).map_err(model)?;
        Ok(HvaeRun {
            hvae,
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
    use crate::zoo::vae::{Activation, Likelihood};

    fn run() -> HvaeRun {
        let hvae = Hvae::new(HvaeConfig {
            x_dim: 4,
            z1_dim: 3,
            z2_dim: 2,
            hidden: vec![5],
            activation: Activation::Silu,
            likelihood: Likelihood::Gaussian,
            seed: 1,
        })
        .unwrap();
        HvaeRun {
            hvae,
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
        testing::scratch("hvae", name)
    }

    /// A saved run loads back equal, parameters bit for bit, and saving it again writes the
    /// same bytes.
    #[test]
    fn a_run_round_trips() {
        let dir = scratch("round-trip");
        let r = run();
        r.save(&dir).unwrap();
        assert!(HvaeRun::exists(&dir));
        let first = std::fs::read(HvaeRun::path(&dir)).unwrap();
        let back = HvaeRun::load(&dir).unwrap();
        assert_eq!(back, r);
        back.save(&dir).unwrap();
        assert_eq!(std::fs::read(HvaeRun::path(&dir)).unwrap(), first);
        assert!(crate::files::temporaries(&dir).is_empty());
        std::fs::remove_dir_all(&dir).ok();
    }

    /// Missing, truncated, foreign and inconsistent files are typed errors.
    #[test]
    fn bad_files_are_typed_errors() {
        let dir = scratch("bad");
        assert!(matches!(HvaeRun::load(&dir), Err(VaeRunError::Io { .. })));
        run().save(&dir).unwrap();
        let path = HvaeRun::path(&dir);
        let good = std::fs::read_to_string(&path).unwrap();
        let nan = testing::nan_first_param(&good);
        let cases = [
            String::new(),
            good[..good.len() / 2].to_string(),
            good.replace(FORMAT, "microdiff-vae-run/1"),
            good.replace("\"silu\"", "\"swish\""),
            good.replace("\"gaussian\"", "\"poisson\""),
            good.replace("\"shape\":[2,2]", "\"shape\":[3,2]"),
            good.replace("\"param_bits\":[", "\"param_bits\":[1,"),
            nan,
            good.replace("\"z2_dim\":2", "\"z2_dim\":0"),
            good.replace("\"scale\":[2.0]", "\"scale\":[2.0,1.0]"),
            good.replace("\"loss\"", "\"extra\":1,\"loss\""),
        ];
        for (i, text) in cases.iter().enumerate() {
            assert_ne!(text, &good, "case {i} did not change the file");
            std::fs::write(&path, text).unwrap();
            let e = HvaeRun::load(&dir);
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
