//! Variational autoencoders: the Gaussian VAE ([`Vae`]) and a two-level hierarchical one
//! ([`Hvae`]), trained by the reparameterised ELBO, with per-point ELBO and IWAE estimators in
//! nats. Section 3-2 of the lecture notes (`003_*.txt`), whose decoder `q_θ(x|z)`, encoder
//! `r_φ(z|x)` and prior `q_Z(z)` are written here, as in Kingma & Welling 2014 and Burda et al.
//! 2016 (IWAE), `p(x|z)`, `q(z|x)` and `p(z)`.
//!
//! # What it owns
//!
//! * [`dense`] — a small MLP ([`Dense`]) with an exact manual backward, and [`Adam`].
//! * [`gaussian`] — [`Vae`]: `q(z|x) = N(μ(x), diag σ²(x))`, `p(z) = N(0, I)`, `p(x|z)` Gaussian
//!   with a learned per-dimension log σ or Bernoulli ([`Likelihood`]); optional one-hot class
//!   conditioning.
//! * [`backend_train`] — [`Vae`]'s training step on any [`Backend`](crate::backend::Backend)
//!   in f32 (the CUDA path of `--device cuda`), tracking [`Vae::train`].
//! * [`hvae`] — [`Hvae`]: `p(z2) p(z1|z2) p(x|z1)` with bottom-up inference
//!   `q(z1|x) q(z2|z1)`.
//! * [`export`] — a [`Vae`]'s decoder as a weight blob the no_std runtime samples (objective
//!   `vae`, program `decode`).
//! * [`hvae_export`] — an [`Hvae`]'s generative path as a weight blob (objective `vae`, program
//!   `decode`; the inner latent's noise drawn inside the network).
//! * [`command`] — what `microdiff train --objective vae | hvae` and `export` of such a run
//!   do.
//! * [`run`] — a trained [`Vae`] on disk (`vae.json`, what `microdiff train --objective vae`
//!   writes and `microdiff export` reads); [`hvae_run`] — a trained [`Hvae`] (`hvae.json`).
//!
//! # Promises
//!
//! * **Deterministic.** Every random number comes from
//!   [`NoiseStream`](microdiff_runtime::noise::NoiseStream) in
//!   [`Domain::TrainNoise`](microdiff_runtime::noise::Domain::TrainNoise) with the seed the
//!   caller passes; there is no other source of randomness and no threading, so parameters,
//!   loss histories, bounds and samples are pure functions of their inputs and seeds (bit for
//!   bit on one platform; across platforms up to `f64::exp`/`ln`/`tanh`, which are libm calls).
//!   The counters (`stream`, `draw`, `element`) are assigned as follows; the draw numbers are
//!   below the data module's `DRAW_BASE`, so data generated with the same seed never shares a
//!   counter with a model:
//!
//!   | what | `stream` | `draw` | `element` |
//!   |---|---|---|---|
//!   | weights of layer `l` of network `k` | `k` (per model, listed on each type) | [`INIT_DRAW`]` + l` | `o·in + i` (weight `(o, i)`) |
//!   | rows of the mini-batch of step `t` | `t` | [`BATCH_DRAW`] | row `r` (its raw `u32` `u` picks example `u·n ≫ 32`) |
//!   | ε of latent level `v` at step `t` | `t` | [`EPS_DRAW`]` + v` | `r·d_v + j` |
//!   | ε of sample `s` of level `v`, bound for data point `i` | `i` | [`EVAL_DRAW`]` + v` | `s·d_v + j` |
//!   | generated sample `i`, level `v` (top level 0) | `i` | [`SAMPLE_DRAW`]` + v` | `j` |
//!   | its observation noise (after the `L` latent levels) | `i` | [`SAMPLE_DRAW`]` + L` | `j` |
//!
//!   Training indices are steps of the whole run, evaluation indices are row numbers of the
//!   data passed in, so a bound for one point does not depend on which other points are
//!   evaluated with it.
//! * **Numerics in f64.** Parameters, activations, gradients and Adam state are `f64`; the
//!   `f32` noise is widened exactly. Sums run in index order.
//! * **Never panics on user input.** Shapes, configurations, labels and data values are checked
//!   and reported as [`VaeError`]; sizes are multiplied with checked arithmetic; a non-finite
//!   loss stops training with [`VaeError::NonFinite`] rather than continuing with NaNs.
//!
//! # Conventions
//!
//! Data are row-major `&[f64]` slices of `n · x_dim` values (`// (n, x_dim)`), labels an
//! optional `&[u16]` of `n` class indices. Bounds are per data point, in nats, as
//! lower bounds on `log p(x)` (higher is better); loss histories are the negative ELBO per
//! example, averaged over the mini-batch.

pub mod backend_train;
pub mod command;
pub mod dense;
pub mod export;
pub mod gaussian;
pub mod hvae;
pub mod hvae_export;
pub mod hvae_run;
pub mod run;

pub use dense::{Activation, Adam, AdamConfig, Dense, Trace};
pub use gaussian::{Likelihood, Output, TrainConfig, Vae, VaeConfig};
pub use hvae::{Hvae, HvaeConfig};

/// First Philox draw of network initialisation: layer `l` uses draw `INIT_DRAW + l`.
pub const INIT_DRAW: u32 = 0x100;
/// Draw of the mini-batch indices of a training step.
pub const BATCH_DRAW: u32 = 0;
/// First draw of the reparameterisation noise of a training step (one per latent level).
pub const EPS_DRAW: u32 = 1;
/// First draw of the importance samples of the ELBO / IWAE estimators (one per latent level).
pub const EVAL_DRAW: u32 = 0x200;
/// First draw of generation (one per latent level, then one for the decoder's noise).
pub const SAMPLE_DRAW: u32 = 0x300;
/// Most layers one network may have, so that init draws stay below [`EVAL_DRAW`].
pub const MAX_LAYERS: usize = (EVAL_DRAW - INIT_DRAW) as usize;

/// What went wrong building, training or evaluating a VAE.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum VaeError {
    // --- configuration ---
    /// A configuration value is out of range.
    #[error("invalid configuration: {field} {reason}")]
    Config {
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A size computation overflowed (or left the `u32` range of the noise counters).
    #[error("size overflow computing {what}")]
    TooLarge {
        /// The quantity being computed.
        what: &'static str,
    },

    // --- data ---
    /// A slice has the wrong length.
    #[error("{what}: expected {expected} values, found {found}")]
    Shape {
        /// Which argument.
        what: &'static str,
        /// Length required.
        expected: usize,
        /// Length given.
        found: usize,
    },
    /// No data points.
    #[error("no data points")]
    Empty,
    /// A data value the likelihood cannot score (non-finite, or outside `[0, 1]` for
    /// Bernoulli).
    #[error("data value {value} at index {index}: {reason}")]
    BadValue {
        /// Index into the flat data slice.
        index: usize,
        /// The value.
        value: f64,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A class label is missing, superfluous or out of range.
    #[error("labels: {reason}")]
    Label {
        /// What is wrong.
        reason: String,
    },

    // --- numerics ---
    /// The loss (or a bound) became NaN or infinite.
    #[error("non-finite {what} at step {step}")]
    NonFinite {
        /// The quantity.
        what: &'static str,
        /// Training step (0 for evaluation).
        step: usize,
    },
}

/// `a · b`, or [`VaeError::TooLarge`] naming `what`.
pub(crate) fn mul(a: usize, b: usize, what: &'static str) -> Result<usize, VaeError> {
    a.checked_mul(b).ok_or(VaeError::TooLarge { what })
}

/// `a + b`, or [`VaeError::TooLarge`] naming `what`.
pub(crate) fn add(a: usize, b: usize, what: &'static str) -> Result<usize, VaeError> {
    a.checked_add(b).ok_or(VaeError::TooLarge { what })
}

/// `a` as a `u32` noise counter, or [`VaeError::TooLarge`] naming `what`.
pub(crate) fn counter(a: usize, what: &'static str) -> Result<u32, VaeError> {
    u32::try_from(a).map_err(|_| VaeError::TooLarge { what })
}

/// `ln(2π)`, the constant of every Gaussian log-density.
pub(crate) const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// `log N(x; m, exp(lv))` for one coordinate.
pub(crate) fn log_normal(x: f64, m: f64, lv: f64) -> f64 {
    let d = x - m;
    -0.5 * (LN_2PI + lv + d * d * (-lv).exp())
}

/// `log mean exp` of `w`, stable (shifts by the maximum); `-∞` for an empty slice.
pub(crate) fn log_mean_exp(w: &[f64]) -> f64 {
    let m = w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !m.is_finite() {
        return m;
    }
    let s: f64 = w.iter().map(|&v| (v - m).exp()).sum();
    m + (s / w.len() as f64).ln()
}
