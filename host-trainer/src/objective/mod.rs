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

use crate::process::Process;

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
    draw_at(process, t)
}

/// The draw at process time `t`.
fn draw_at(process: &Process, t: f64) -> Draw {
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

/// [`draw`] with DDPM's draws for every step computed once. `Process::alpha` and
/// `Process::sigma` of the linear schedule are an O(t) product each, which made the batch draw
/// a visible part of a training step; the table holds exactly what [`draw`] returns.
#[derive(Debug, Clone)]
pub struct Drawer {
    process: Process,
    /// DDPM: the draw of step `t` at index `t − 1`; empty for the continuous processes.
    table: Vec<Draw>,
}

impl Drawer {
    /// The drawer of `process`.
    pub fn new(process: &Process) -> Self {
        let table = match process {
            Process::Ddpm { steps, .. } => {
                (1..=*steps).map(|t| draw_at(process, t as f64)).collect()
            }
            _ => Vec::new(),
        };
        Drawer {
            process: process.clone(),
            table,
        }
    }

    /// Same as [`draw`]`(process, u)`.
    pub fn draw(&self, u: f32) -> Draw {
        match &self.process {
            Process::Ddpm { steps, .. } => {
                let t = ddpm::sample_step(*steps, u) as usize;
                // A degenerate `steps = 0` has no table entry: fall back to the formula.
                self.table
                    .get(t.wrapping_sub(1))
                    .copied()
                    .unwrap_or_else(|| draw(&self.process, u))
            }
            p => draw(p, u),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drawer_draws_what_draw_draws() {
        for process in [
            Process::ddpm_default(),
            Process::vp_default(),
            Process::ve_default(5.0),
            Process::Flow,
        ] {
            let drawer = Drawer::new(&process);
            for i in 0..=2000u32 {
                let u = (i as f32 + 0.5) / 2001.0;
                assert_eq!(
                    drawer.draw(u),
                    draw(&process, u),
                    "{} at u = {u}",
                    process.name()
                );
            }
            assert_eq!(drawer.draw(1e-7), draw(&process, 1e-7));
        }
    }
}
