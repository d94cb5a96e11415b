//! Training objectives: what a training example is made of. Each draws a time for a row,
//! and says how to noise the clean sample and what the network must predict:
//! `x_t = α·x₀ + σ·ε`, `target = c₀·x₀ + c_ε·ε` (the coefficients the backend's
//! `noise_and_target` applies), and the loss is the plain mean squared error.
//!
//! | objective | module | time | target |
//! |---|---|---|---|
//! | DDPM, L_simple (Ho et al. 2020, eq. 14) | [`ddpm`] | uniform step 1..=T | ε |
//! | denoising score matching, VE / VP SDE (Song et al. 2021) | [`score`] | uniform in [t_min, 1] | ε (score = −ε̂/σ) |
//! | flow matching, Gaussian path (Lipman et al. 2023; rectified flow) | [`flow`] | uniform in (0, 1) | x₀ − ε |
//!
//! Why plain MSE for score matching: with the λ(t) = σ(t)² weighting of Song et al., the DSM
//! loss `λ‖s_θ(x_t, t) + ε/σ‖²` equals `‖σ·s_θ + ε‖²`; parameterising `s_θ = −ε̂_θ/σ` makes it
//! exactly `‖ε̂_θ − ε‖²`. The network therefore predicts ε for every diffusion objective, and
//! the blob's metadata says so (`Prediction::Epsilon`; flow: `Prediction::Velocity`).

pub mod ddpm;
pub mod flow;
pub mod score;

use crate::schedule::Process;

/// One row's training draw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Draw {
    /// The process time (DDPM: the step as f64).
    pub t: f64,
    /// What the network's time embedding sees.
    pub time_value: f32,
    /// `[α, σ, c₀, c_ε]`.
    pub coef: [f32; 4],
}

/// The draw for a uniform number `u` in (0, 1).
pub fn draw(process: &Process, u: f32) -> Draw {
    let t = match process {
        Process::Ddpm { steps, .. } => ddpm::sample_step(*steps, u),
        Process::Vp { t_min, .. } | Process::Ve { t_min, .. } => score::sample_time(*t_min, u),
        Process::Flow => flow::sample_time(u),
    };
    let (alpha, sigma) = (process.alpha(t) as f32, process.sigma(t) as f32);
    let (c0, ce) = match process {
        Process::Flow => flow::TARGET,
        _ => ddpm::TARGET,
    };
    Draw {
        t,
        time_value: process.time_value(t),
        coef: [alpha, sigma, c0, ce],
    }
}
