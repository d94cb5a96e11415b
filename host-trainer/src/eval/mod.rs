//! Evaluation: how close a set of generated samples is to the data, and what "close" means at
//! the sample size at hand.
//!
//! * [`distance`] — distances between two point sets given as flat row-major `&[f32]`
//!   (`n × dim`): [`sliced_w2`], [`mmd_rbf`], [`energy_distance`], and [`with_noise_floor`],
//!   which pairs a metric's value with the same metric between two independent held-out draws
//!   (every finite-sample estimate is biased or noisy; the floor says what "perfect" scores).
//! * [`frechet`] — the Fréchet (2-Wasserstein between fitted Gaussians) distance, in f64, via
//!   symmetric eigendecompositions.
//! * [`classifier`] — the small MLP digits classifier the tool trains itself: accuracy of a
//!   class-conditional model's samples, and the 128-d penultimate features for a Fréchet
//!   distance on digits ("FID" in miniature).
//!
//! * [`nll`] — the negative log-likelihood of data under a trained model through the
//!   probability-flow ODE (exact or Hutchinson trace).
//!
//! * [`judge`] — the digits judge: the classifier and the real digits' features.
//! * [`report`] — what `microdiff eval` measures: a blob's samples against data, each metric
//!   with its noise floor, and the likelihood of a run's model.
//!
//! Everything but [`nll`] and [`report`] (which need the noise process, the network, blobs and
//! runs) takes plain slices and depends on no other part of the trainer but the CPU's one
//! matrix product and one AdamW (in [`crate::backend::cpu`]).
//! Randomness (projection directions, classifier initialisation, shuffling, augmentation) comes
//! from [`NoiseStream`](crate::runtime::noise::NoiseStream) with explicit seeds; parallel sums
//! are collected per item and then added in index order, so results do not depend on the thread
//! count.

pub mod classifier;
pub mod distance;
pub mod frechet;
pub mod judge;
pub mod nll;
pub mod report;

pub use classifier::{Classifier, ClassifierConfig};
pub use distance::{Scored, energy_distance, mmd_rbf, sliced_w2, with_noise_floor};
pub use frechet::frechet_distance;

/// Errors of the evaluation module. Metrics that return a plain `f64` panic on caller bugs
/// (documented per function) instead; these are the failures a caller may want to handle.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    // ---- shapes ----
    /// A flat row-major buffer whose length is not a multiple of `dim` (or `dim` is zero).
    #[error("{what}: buffer of {len} values is not a whole number of rows of dimension {dim}")]
    BadShape {
        /// Which argument.
        what: &'static str,
        /// Its length in values.
        len: usize,
        /// The row dimension it was read with.
        dim: usize,
    },
    /// Too few points for the statistic (e.g. a covariance needs two).
    #[error("{what}: {n} points, need at least {needed}")]
    TooFewPoints {
        /// Which argument.
        what: &'static str,
        /// How many points it has.
        n: usize,
        /// How many the statistic needs.
        needed: usize,
    },
    /// A non-finite input value (NaN or ±inf).
    #[error("{what}: non-finite value at index {index}")]
    NonFinite {
        /// Which argument.
        what: &'static str,
        /// Flat index of the first offending value.
        index: usize,
    },

    // ---- labels ----
    /// The number of labels differs from the number of points.
    #[error("{expected} points but {got} labels")]
    LabelCount {
        /// Number of points.
        expected: usize,
        /// Number of labels.
        got: usize,
    },
    /// A label outside `0..classes`.
    #[error("label {label} at point {index} is not below the class count {classes}")]
    LabelOutOfRange {
        /// Point index.
        index: usize,
        /// The label.
        label: u16,
        /// The class count.
        classes: usize,
    },

    // ---- configuration and numerics ----
    /// A [`ClassifierConfig`] (or argument) value that cannot work.
    #[error("bad classifier configuration: {field} {reason}")]
    BadConfig {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A likelihood-estimation setting that cannot work.
    #[error("bad likelihood setting: {0}")]
    BadNllSetting(String),
    /// Classifier training produced a non-finite loss.
    #[error("classifier training diverged (non-finite loss) at epoch {epoch}, step {step}")]
    Diverged {
        /// Epoch (from 0).
        epoch: usize,
        /// Minibatch step within the epoch (from 0).
        step: usize,
    },
    /// The symmetric eigensolver did not converge.
    #[error("symmetric eigendecomposition of the {what} ({dim}×{dim}) did not converge")]
    EigenFailed {
        /// Which matrix.
        what: &'static str,
        /// Its size.
        dim: usize,
    },
}

/// Number of whole rows of `dim` values in `data`, or [`EvalError::BadShape`].
pub(crate) fn rows(what: &'static str, data: &[f32], dim: usize) -> Result<usize, EvalError> {
    if dim == 0 || !data.len().is_multiple_of(dim) {
        return Err(EvalError::BadShape {
            what,
            len: data.len(),
            dim,
        });
    }
    Ok(data.len() / dim)
}

/// [`rows`] for the metrics that panic on caller bugs.
#[track_caller]
pub(crate) fn rows_or_panic(what: &'static str, data: &[f32], dim: usize) -> usize {
    match rows(what, data, dim) {
        Ok(n) => n,
        Err(e) => panic!("{e}"),
    }
}
