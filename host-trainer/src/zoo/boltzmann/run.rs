//! A trained RBM on disk: the file `rbm.json` of a run directory (`microdiff train --objective
//! rbm` writes it; `microdiff export` and `eval --run` read it), holding the machine, how it
//! was trained, the data's name and shape, and the binarisation that links the machine's
//! `{0, 1}` units to data units.
//!
//! # The data map
//!
//! Each value is coded as `L − 1` binary units (`L` = [`RbmRun::levels`], `--levels`, 2 by
//! default), a thermometer code: with `min` and `max` the smallest and largest value of the
//! training set (over every element, in data units), unit `k` (`1 ≤ k < L`) of a value `x` is 1
//! when `x ≥ t_k = (min·(L − k) + max·k) / L` (computed in f64), else 0
//! ([`RbmRun::binarize`]). With `L = 2` that is one unit per value, 1 at or above the midpoint
//! `(min + max) / 2` (exactly). Back to data units, a visible unit's probability `p` (what the
//! exported sampler outputs) is `p·Δ + min/(L − 1)` with `Δ = (max − min)/(L − 1)` (the units
//! of [`RbmRun::units`]), so a value is the sum of its `L − 1` units' outputs,
//! `min + Δ·Σ p_k` ([`RbmRun::decode`]): level `ℓ` (`ℓ` units on) decodes to
//! `min + ℓ·Δ`, from `min` to `max`. The visible units of value `i` are `i·(L − 1) ..
//! (i + 1)·(L − 1)`, so the blob's sample shape is the data's with `L − 1` appended when
//! `L > 2` ([`RbmRun::blob_shape`]).
//!
//! # Promises
//!
//! * Written atomically ([`crate::files::write_atomic`]): a crash leaves the old file or the
//!   new one, never half of one.
//! * Read back exactly: parameters are stored as their IEEE-754 bit patterns (`u64`), so the
//!   machine reloaded is the machine saved, bit for bit.
//! * A missing, truncated, edited or foreign file is an [`RbmRunError`] naming the file and
//!   what is wrong; nothing panics.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{BinaryData, BoltzmannError, Rbm};

/// The file name inside a run directory.
pub const FILE: &str = "rbm.json";

/// The `format` field of the file.
const FORMAT: &str = "microdiff-rbm-run/1";

/// Most levels of the thermometer code (`--levels`).
pub const MAX_LEVELS: u16 = 256;

/// Largest `rbm.json` read: far above any machine the command trains, far below what would
/// exhaust memory.
const MAX_BYTES: u64 = 1 << 30;

/// How the machine was trained (a record: loading does not depend on it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RbmTraining {
    /// Parameter updates (mini-batches).
    pub steps: u64,
    /// Epochs begun (the last may be partial).
    pub epochs: usize,
    /// Rows per update.
    pub batch: usize,
    /// Step size.
    pub lr: f64,
    /// L2 decay of the weights.
    pub weight_decay: f64,
    /// Gibbs sweeps per update.
    pub cd_k: usize,
    /// `cd`, `pcd` or `pt`.
    pub negative: String,
    /// Persistent chains (pcd, pt; 0 for cd).
    pub chains: usize,
    /// Inverse temperatures of each replica-exchange chain (pt; empty otherwise).
    pub ladder: Vec<f64>,
    /// Noise seed.
    pub seed: u64,
}

/// A trained RBM with what export and evaluation need to know about its data.
#[derive(Debug, Clone, PartialEq)]
pub struct RbmRun {
    /// The machine (visible units = the data's values per example).
    pub rbm: Rbm,
    /// The data it was trained on (a built-in name or a file name).
    pub dataset: String,
    /// The shape of one sample (product = visible units).
    pub shape: Vec<usize>,
    /// The smallest value of the training set, data units.
    pub data_min: f32,
    /// The largest value of the training set, data units (above `data_min`).
    pub data_max: f32,
    /// Levels of the thermometer code, 2..=[`MAX_LEVELS`] (`L − 1` units per value).
    pub levels: u16,
    /// How it was trained.
    pub training: RbmTraining,
    /// Mean squared error per unit of the mean-field reconstruction of the binarised training
    /// set after the last update.
    pub reconstruction_error: f64,
}

/// Why an RBM run could not be trained, read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RbmRunError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// The file is not an RBM run this version reads.
    #[error("{path}: not a microdiff RBM run: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The stored parameters do not make a machine.
    #[error("{path}: {source}")]
    Model {
        /// The file.
        path: PathBuf,
        /// Why.
        source: BoltzmannError,
    },
    /// Training failed (a setting the trainer refuses, divergence).
    #[error("training the RBM: {0}")]
    Train(#[source] BoltzmannError),
    /// A command-line setting or a step of `train` / `export` refused, in words
    /// ([`super::command`]).
    #[error("{0}")]
    Setting(String),
}

impl From<crate::zoo::command::Refusal> for RbmRunError {
    fn from(r: crate::zoo::command::Refusal) -> Self {
        use crate::zoo::command::Refusal;
        match r {
            Refusal::Setting(m) => RbmRunError::Setting(m),
            Refusal::Io { path, source } => RbmRunError::Io { path, source },
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    format: String,
    dataset: String,
    shape: Vec<usize>,
    /// `f32::to_bits` of the range (so the threshold is exact after a reload).
    data_min_bits: u32,
    data_max_bits: u32,
    /// The same, readable (informative; the bits are what is read).
    data_min: f32,
    data_max: f32,
    /// Files written before the thermometer code have one unit per value.
    #[serde(default = "two")]
    levels: u16,
    training: RbmTraining,
    reconstruction_error: f64,
    visible: usize,
    hidden: usize,
    /// `f64::to_bits` of `W` (`(hidden, visible)` row-major), then `b` (visible), then `c`
    /// (hidden).
    param_bits: Vec<u64>,
}

fn two() -> u16 {
    2
}

impl RbmRun {
    /// The file of the run in `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(FILE)
    }

    /// Whether `dir` holds an RBM run.
    pub fn exists(dir: &Path) -> bool {
        Self::path(dir).is_file()
    }

    /// The midpoint threshold in data units, `(min + max) / 2` (exact in f64): the one
    /// threshold of a two-level code.
    #[must_use]
    pub fn threshold(&self) -> f64 {
        threshold(self.data_min, self.data_max)
    }

    /// The `L − 1` thresholds `t_k` of the code (see the module doc).
    #[must_use]
    pub fn thresholds(&self) -> Vec<f64> {
        thresholds(self.data_min, self.data_max, self.levels)
    }

    /// Binary units per value, `L − 1`.
    #[must_use]
    pub fn units_per_value(&self) -> usize {
        usize::from(self.levels.max(2) - 1)
    }

    /// `(scale, offset) = ([Δ], [min/(L − 1)])`: a visible unit's probability `p` is
    /// `p·scale + offset` in data units (the `Units` of the export), and a value the sum of its
    /// units' (see the module doc).
    #[must_use]
    pub fn units(&self) -> ([f32; 1], [f32; 1]) {
        let per = (self.levels.max(2) - 1) as f32;
        if per == 1.0 {
            return ([self.data_max - self.data_min], [self.data_min]);
        }
        let span = f64::from(self.data_max) - f64::from(self.data_min);
        let per = f64::from(per);
        (
            [(span / per) as f32],
            [(f64::from(self.data_min) / per) as f32],
        )
    }

    /// The shape of the blob's samples: the data's, with `L − 1` appended when `L > 2`.
    #[must_use]
    pub fn blob_shape(&self) -> Vec<usize> {
        let mut shape = self.shape.clone();
        if self.levels > 2 {
            shape.push(self.units_per_value());
        }
        shape
    }

    /// Samples of the blob (rows of the machine's visible units, in data units as the blob
    /// outputs them) back to values: each value the sum of its `L − 1` units. A length that is
    /// not whole rows is refused.
    pub fn decode(&self, units: &[f32]) -> Result<Vec<f32>, BoltzmannError> {
        let per = self.units_per_value();
        let nv = self.rbm.nv();
        if !units.len().is_multiple_of(nv) {
            // `found` is the length given, `expected` the row length it is not a multiple of.
            return Err(BoltzmannError::Shape {
                what: "samples (whole rows of the visible units)",
                expected: nv,
                found: units.len(),
            });
        }
        Ok(units.chunks(per).map(|g| g.iter().sum()).collect())
    }

    /// `x` (rows of `dim` values, data units) in the machine's units: each value its `L − 1`
    /// thermometer units (see the module doc).
    pub fn binarize(&self, x: &[f32], dim: usize) -> Result<BinaryData, BoltzmannError> {
        binarize_levels(x, dim, &self.thresholds())
    }

    /// Writes `dir/rbm.json` atomically (creating `dir`).
    pub fn save(&self, dir: &Path) -> Result<(), RbmRunError> {
        let path = Self::path(dir);
        let rbm = &self.rbm;
        let stored = Stored {
            format: FORMAT.into(),
            dataset: self.dataset.clone(),
            shape: self.shape.clone(),
            data_min_bits: self.data_min.to_bits(),
            data_max_bits: self.data_max.to_bits(),
            data_min: self.data_min,
            data_max: self.data_max,
            levels: self.levels,
            training: self.training.clone(),
            reconstruction_error: self.reconstruction_error,
            visible: rbm.nv(),
            hidden: rbm.nh(),
            param_bits: rbm
                .weights()
                .iter()
                .chain(rbm.visible_bias())
                .chain(rbm.hidden_bias())
                .map(|p| p.to_bits())
                .collect(),
        };
        let text = serde_json::to_string(&stored).map_err(|e| RbmRunError::Format {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let io = |source| RbmRunError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        crate::files::write_atomic(&path, text.as_bytes()).map_err(io)
    }

    /// Reads `dir/rbm.json`.
    pub fn load(dir: &Path) -> Result<Self, RbmRunError> {
        let path = Self::path(dir);
        let bytes =
            crate::files::read_limited(&path, MAX_BYTES).map_err(|source| RbmRunError::Io {
                path: path.clone(),
                source,
            })?;
        let bad = |message: String| RbmRunError::Format {
            path: path.clone(),
            message,
        };
        let s: Stored = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        if s.format != FORMAT {
            return Err(bad(format!("format {:?}, expected {FORMAT:?}", s.format)));
        }
        if !(2..=MAX_LEVELS).contains(&s.levels) {
            return Err(bad(format!(
                "levels {}: expected 2..={MAX_LEVELS}",
                s.levels
            )));
        }
        let elems = s
            .shape
            .iter()
            .try_fold(usize::from(s.levels - 1), |n, &d| n.checked_mul(d));
        if s.shape.is_empty() || elems != Some(s.visible) {
            return Err(bad(format!(
                "shape {:?} with {} units per value does not hold {} visible units",
                s.shape,
                s.levels - 1,
                s.visible
            )));
        }
        let (lo, hi) = (
            f32::from_bits(s.data_min_bits),
            f32::from_bits(s.data_max_bits),
        );
        if !(lo.is_finite() && hi.is_finite() && lo < hi && (hi - lo).is_finite()) {
            return Err(bad(format!(
                "data range {lo}..{hi}: expected finite values, the first below the second"
            )));
        }
        if lo.to_bits() != s.data_min.to_bits() || hi.to_bits() != s.data_max.to_bits() {
            return Err(bad(format!(
                "data range {}..{} differs from its bit patterns ({lo}..{hi})",
                s.data_min, s.data_max
            )));
        }
        let model = |source| RbmRunError::Model {
            path: path.clone(),
            source,
        };
        let (nv, nh) = (s.visible, s.hidden);
        let weights = nv
            .checked_mul(nh)
            .ok_or_else(|| bad(format!("{nv} × {nh} weights overflow")))?;
        let expected = weights
            .checked_add(nv)
            .and_then(|n| n.checked_add(nh))
            .ok_or_else(|| bad(format!("{nv} × {nh} weights overflow")))?;
        if s.param_bits.len() != expected {
            return Err(bad(format!(
                "{} parameters, expected {expected} ({nh} × {nv} weights and {} biases)",
                s.param_bits.len(),
                nv + nh
            )));
        }
        let p: Vec<f64> = s.param_bits.iter().map(|&b| f64::from_bits(b)).collect();
        let (w, rest) = p.split_at(weights);
        let (b, c) = rest.split_at(nv);
        let rbm = Rbm::from_parts(nv, nh, w.to_vec(), b.to_vec(), c.to_vec()).map_err(model)?;
        Ok(RbmRun {
            rbm,
            dataset: s.dataset,
            shape: s.shape,
            data_min: lo,
            data_max: hi,
            levels: s.levels,
            training: s.training,
            reconstruction_error: s.reconstruction_error,
        })
    }
}

/// `(lo + hi) / 2` in f64 (exact: the sum of two f32 values fits an f64's mantissa).
#[must_use]
pub fn threshold(lo: f32, hi: f32) -> f64 {
    (f64::from(lo) + f64::from(hi)) / 2.0
}

/// The thresholds `t_k = (lo·(L − k) + hi·k) / L`, `k = 1 .. L − 1`, in f64 (for `L = 2`
/// exactly [`threshold`]).
#[must_use]
pub fn thresholds(lo: f32, hi: f32, levels: u16) -> Vec<f64> {
    let l = f64::from(levels);
    (1..levels)
        .map(|k| {
            let k = f64::from(k);
            (f64::from(lo) * (l - k) + f64::from(hi) * k) / l
        })
        .collect()
}

/// `x` (rows of `dim` values) as rows of `dim · t.len()` units: unit `k` of a value is 1 where
/// the value is `≥ t[k]` (`t` ascending: a thermometer code).
pub fn binarize_levels(x: &[f32], dim: usize, t: &[f64]) -> Result<BinaryData, BoltzmannError> {
    if t.len() == 1 {
        return binarize_at(x, dim, t[0]);
    }
    if let Some((index, &v)) = x.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(BoltzmannError::NonFinite {
            what: "x",
            index,
            value: f64::from(v),
        });
    }
    let bits = x
        .iter()
        .flat_map(|&v| {
            t.iter()
                .map(move |&tk| if f64::from(v) >= tk { 1.0 } else { 0.0 })
        })
        .collect();
    let width = dim.checked_mul(t.len()).ok_or(BoltzmannError::Shape {
        what: "units per row",
        expected: usize::MAX,
        found: dim,
    })?;
    BinaryData::new(bits, width)
}

/// `x` (rows of `dim` values) as binary rows: 1 where a value is `≥ threshold`.
pub fn binarize_at(x: &[f32], dim: usize, threshold: f64) -> Result<BinaryData, BoltzmannError> {
    if let Some((index, &v)) = x.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(BoltzmannError::NonFinite {
            what: "x",
            index,
            value: f64::from(v),
        });
    }
    let bits = x
        .iter()
        .map(|&v| if f64::from(v) >= threshold { 1.0 } else { 0.0 })
        .collect();
    BinaryData::new(bits, dim)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zoo::command::testing;

    fn run() -> RbmRun {
        RbmRun {
            rbm: Rbm::random(4, 3, 0.5, 7).unwrap(),
            dataset: "toy".into(),
            shape: vec![2, 2],
            data_min: 0.0,
            data_max: 16.0,
            levels: 2,
            training: RbmTraining {
                steps: 10,
                epochs: 2,
                batch: 5,
                lr: 0.05,
                weight_decay: 0.0,
                cd_k: 1,
                negative: "pt".into(),
                chains: 5,
                ladder: vec![1.0, 0.75, 0.5],
                seed: 3,
            },
            reconstruction_error: 0.125,
        }
    }

    fn scratch(name: &str) -> PathBuf {
        testing::scratch("rbm", name)
    }

    /// The thermometer code: the two-level code is the midpoint rule bit for bit; more levels
    /// set a prefix of each value's units; decoding the units' means sums them back to the
    /// level's value, from min to max.
    #[test]
    fn the_thermometer_code_binarises_and_decodes() {
        let two = thresholds(-3.0, 5.0, 2);
        assert_eq!(two, vec![threshold(-3.0, 5.0)]);
        let t = thresholds(0.0, 4.0, 5);
        assert_eq!(t, vec![0.8, 1.6, 2.4, 3.2]);
        let b = binarize_levels(&[0.0, 1.7, 4.0, 3.2], 2, &t).unwrap();
        assert_eq!(b.dim(), 8);
        let rows: Vec<Vec<f64>> = b.iter().map(<[f64]>::to_vec).collect();
        assert_eq!(rows[0], [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
        assert_eq!(rows[1], [1.0; 8]);
        assert!(binarize_levels(&[f32::NAN, 0.0], 2, &t).is_err());

        let mut r = run();
        r.data_min = 0.0;
        r.data_max = 4.0;
        r.levels = 5;
        r.shape = vec![1];
        assert_eq!(r.blob_shape(), vec![1, 4]);
        let (scale, offset) = r.units();
        assert_eq!((scale[0], offset[0]), (1.0, 0.0));
        // Two levels on (1.0 each in data units): the value is min + 2Δ = 2.
        let out = r.decode(&[1.0, 1.0, 0.0, 0.0]).unwrap();
        assert_eq!(out, vec![2.0]);
        assert!(r.decode(&[1.0, 1.0, 0.0]).is_err());
    }

    /// A saved run loads back equal, parameters bit for bit, and saving it again writes the
    /// same bytes.
    #[test]
    fn a_run_round_trips() {
        let dir = scratch("round-trip");
        let r = run();
        r.save(&dir).unwrap();
        assert!(RbmRun::exists(&dir));
        let first = std::fs::read(RbmRun::path(&dir)).unwrap();
        let back = RbmRun::load(&dir).unwrap();
        assert_eq!(back, r);
        back.save(&dir).unwrap();
        assert_eq!(std::fs::read(RbmRun::path(&dir)).unwrap(), first);
        assert!(crate::files::temporaries(&dir).is_empty());
        std::fs::remove_dir_all(&dir).ok();
    }

    /// The digits' 0..=16 binarise at 8, as `binarize` does for them, and map back to 0..=16.
    #[test]
    fn the_data_map_is_the_midpoint_and_the_range() {
        let r = run();
        assert_eq!(r.threshold(), 8.0);
        assert_eq!(r.units(), ([16.0], [0.0]));
        let x = [0.0, 7.9, 8.0, 16.0];
        assert_eq!(r.binarize(&x, 4).unwrap().as_slice(), &[0.0, 0.0, 1.0, 1.0]);
        assert_eq!(
            r.binarize(&x, 4).unwrap(),
            super::super::binarize(&x, 4, 8.0).unwrap()
        );
        assert!(matches!(
            r.binarize(&[f32::NAN, 0.0], 2),
            Err(BoltzmannError::NonFinite { .. })
        ));
        // Exact for a range whose midpoint no f32 holds.
        let t = threshold(1.0, 1.0 + f32::EPSILON);
        assert!(t > 1.0 && t < f64::from(1.0 + f32::EPSILON));
    }

    /// Missing, truncated, foreign and inconsistent files are typed errors.
    #[test]
    fn bad_files_are_typed_errors() {
        let dir = scratch("bad");
        assert!(matches!(RbmRun::load(&dir), Err(RbmRunError::Io { .. })));
        run().save(&dir).unwrap();
        let path = RbmRun::path(&dir);
        let good = std::fs::read_to_string(&path).unwrap();
        let nan = testing::nan_first_param(&good);
        let sixteen = 16.0f32.to_bits().to_string();
        let cases = [
            String::new(),
            "[]".to_string(),
            good[..good.len() / 2].to_string(),
            good.replace(FORMAT, "microdiff-vae-run/1"),
            good.replace("\"shape\":[2,2]", "\"shape\":[3,2]"),
            good.replace("\"shape\":[2,2]", "\"shape\":[]"),
            good.replace("\"param_bits\":[", "\"param_bits\":[1,"),
            nan,
            good.replace("\"hidden\":3", "\"hidden\":0"),
            good.replace("\"visible\":4", "\"visible\":18446744073709551615"),
            good.replace(
                "\"data_min_bits\":0",
                &format!("\"data_min_bits\":{sixteen}"),
            ),
            good.replace("\"data_max\":16.0", "\"data_max\":15.0"),
            good.replace("\"negative\"", "\"bogus\":1,\"negative\""),
        ];
        for (i, text) in cases.iter().enumerate() {
            assert_ne!(text, &good, "case {i} did not change the file");
            std::fs::write(&path, text).unwrap();
            let e = RbmRun::load(&dir);
            assert!(
                matches!(
                    e,
                    Err(RbmRunError::Format { .. } | RbmRunError::Model { .. })
                ),
                "case {i}: {e:?}"
            );
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
