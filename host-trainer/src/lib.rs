//! microdiff host side: data, noise processes, sampler builders, evaluation, pictures; training,
//! export and the `microdiff` CLI build on these.
//!
//! * [`schedule`] — the noise processes (DDPM β schedules, VP and VE SDEs, the flow path) as
//!   Gaussian paths `x_t = α_t·x₀ + σ_t·ε`, and the time value the network sees.
//! * [`sampler`] — sampler builders: f64 mathematics → runtime programs.
//! * [`data`] — built-in 2-D sets, the 8×8 digits, CSV / NPY / PNG-folder loaders.
//! * [`eval`] — sample-quality metrics with their noise floors, the digits classifier, Fréchet distance.
//! * [`viz`] — PNG pictures: 2-D scatter plots, digit grids, loss curves.
//! * [`model`] — the residual-MLP network: parameter layout, initialisation, forward/backward.
//! * [`backend`] — the operations training runs on, and the CPU reference backend.
//! * [`objective`] — DDPM, score (VE/VP) and flow-matching training targets.
//! * [`train`] — the training loop; [`optim`] — learning rate, EMA, clipping;
//!   [`checkpoint`] — atomic, versioned, bit-exact resumable checkpoints.
//! * [`export`] — trained parameters → a weight blob (f32 / f16 / int8, or the full-integer
//!   W8A8 network calibrated on the sampler's trajectories) with sampler programs.
//! * [`files`] — reading a user's file whole, with a size limit.
#![deny(missing_docs)]

pub use microdiff_runtime as runtime;

pub mod backend;
pub mod checkpoint;
pub mod data;
pub mod eval;
pub mod export;
pub mod files;
pub mod model;
pub mod objective;
pub mod optim;
pub mod sampler;
pub mod schedule;
pub mod train;
pub mod viz;
