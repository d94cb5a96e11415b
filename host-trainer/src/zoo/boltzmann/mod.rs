//! Boltzmann machines (issue #14): the fully visible machine ([`fvbm`]), the restricted one
//! ([`rbm`], trained by CD-k, persistent CD or replica exchange in [`train`](mod@train)),
//! replica exchange sampling ([`tempering`]) and annealed importance sampling of the partition
//! function ([`ais`]). Host-side, in f64; [`backend_train`] runs CD-k and persistent CD on a
//! [`Backend`](crate::backend::Backend) in f32 instead (the CUDA path of `--device cuda`). A trained RBM on disk is [`run`] (`rbm.json`), what
//! `microdiff train --objective rbm` and its export do is [`command`].
//!
//! # Conventions
//!
//! Every unit takes values in {0, 1}; a data set is a [`BinaryData`] (rows of exact `0.0` /
//! `1.0`; [`binarize`] thresholds real-valued data such as the 8×8 digits). A model is a Gibbs
//! distribution `p(x) = exp(−E(x)) / Z` with
//!
//! * fully visible: `E(s) = −bᵀs − Σ_{i<j} W_ij s_i s_j`, `W` symmetric with a zero diagonal;
//! * restricted: `E(v, h) = −bᵀv − cᵀh − hᵀWv`, `W` of shape `(nh, nv)` row-major, and the
//!   free energy `F(v) = −log Σ_h exp(−E(v, h)) = −bᵀv − Σ_j softplus(c_j + W_j·v)`.
//!
//! Log-likelihoods are in nats, averaged over the rows of a data set. Exact partition functions
//! enumerate at most [`MAX_EXACT_UNITS`] binary units (2²⁰ states); beyond that the exact
//! routines return [`BoltzmannError::TooManyUnits`] and [`ais`] gives an estimate.
//!
//! # Promises
//!
//! * No panics on user input: shapes, finiteness, binarity and hyper-parameters are checked and
//!   reported as [`BoltzmannError`]; size arithmetic is checked.
//! * Determinism: every random number comes from the runtime's counter-based
//!   [`NoiseStream`](microdiff_runtime::noise::NoiseStream) (domain `TrainNoise`; mini-batch
//!   shuffles from `TrainData`), addressed as described in the private `noise` module:
//!   `stream` = the chain (a data row's index for CD, a persistent chain or an AIS run
//!   otherwise), `draw` = a purpose base plus the chain's sweep number, `element` =
//!   `replica·(nv + nh) + unit` (visible units first, then hidden; swap uniforms after all
//!   replicas). Loops run in a fixed order on one thread, so a run is a pure function of its
//!   inputs and seed, to the bit.

pub mod ais;
pub mod backend_train;
pub mod command;
mod data;
pub mod export;
pub mod fvbm;
mod math;
mod noise;
pub mod rbm;
pub mod run;
pub mod tempering;
pub mod train;

pub use ais::{AisBase, AisConfig, AisEstimate, ais_log_partition};
pub use data::{BinaryData, binarize};
pub use fvbm::{FitConfig, FitReport, Fvbm, FvbmGradient, Moments};
pub use rbm::Rbm;
pub use tempering::{Ladder, ParallelTempering, TemperingSamples};
pub use train::{EpochStats, NegativePhase, TrainConfig, Trained, train, train_updates};

/// Largest number of binary units an exact partition function enumerates (2²⁰ ≈ 10⁶ states,
/// well under a second in release).
pub const MAX_EXACT_UNITS: usize = 20;

/// What went wrong building, evaluating or training a Boltzmann machine.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BoltzmannError {
    // --- shapes ---
    /// A buffer has the wrong length.
    #[error("{what}: expected {expected} values, found {found}")]
    Shape {
        /// Which buffer.
        what: &'static str,
        /// Length the shape asks for.
        expected: usize,
        /// Length given.
        found: usize,
    },
    /// A model layer or a data row has no units.
    #[error("{what}: needs at least one unit")]
    NoUnits {
        /// Which layer.
        what: &'static str,
    },
    /// A data buffer's length is not a positive multiple of its row length.
    #[error("data: {len} values do not form rows of {dim}")]
    Ragged {
        /// Number of values.
        len: usize,
        /// Row length.
        dim: usize,
    },
    /// A size computation (states, elements, counters) overflows.
    #[error("{what}: size overflows")]
    Overflow {
        /// What was being sized.
        what: &'static str,
    },
    /// Exact enumeration was asked for more units than [`MAX_EXACT_UNITS`].
    #[error("{what}: {units} units to enumerate, at most {max} supported")]
    TooManyUnits {
        /// Which layer.
        what: &'static str,
        /// Units it has.
        units: usize,
        /// The limit.
        max: usize,
    },

    // --- values ---
    /// A value is NaN or infinite.
    #[error("{what}[{index}] = {value} is not finite")]
    NonFinite {
        /// Which buffer.
        what: &'static str,
        /// Index in it.
        index: usize,
        /// The value.
        value: f64,
    },
    /// A data value is neither 0 nor 1.
    #[error("data[{index}] = {value} is not 0 or 1")]
    NotBinary {
        /// Index in the data buffer.
        index: usize,
        /// The value.
        value: f64,
    },
    /// The coupling matrix of a fully visible machine is not symmetric.
    #[error("W[{i}][{j}] != W[{j}][{i}]")]
    NotSymmetric {
        /// Row.
        i: usize,
        /// Column.
        j: usize,
    },
    /// The coupling matrix of a fully visible machine has a non-zero diagonal entry.
    #[error("W[{i}][{i}] = {value}, the diagonal must be zero")]
    Diagonal {
        /// The unit.
        i: usize,
        /// The value.
        value: f64,
    },

    // --- hyper-parameters and runs ---
    /// A hyper-parameter is out of range.
    #[error("{name} = {value}: expected {expected}")]
    BadParameter {
        /// Which parameter.
        name: &'static str,
        /// The value given (counts converted to f64).
        value: f64,
        /// The valid range, in words.
        expected: &'static str,
    },
    /// Training produced non-finite parameters (learning rate too large).
    #[error("training diverged at epoch {epoch}: parameters are no longer finite")]
    Diverged {
        /// 1-based epoch.
        epoch: usize,
    },
}

/// Result alias of this module.
pub type Result<T> = std::result::Result<T, BoltzmannError>;
