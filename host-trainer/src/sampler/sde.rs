//! The reverse-time SDE: Euler–Maruyama, and predictor–corrector with an annealed Langevin
//! corrector (Song, Sohl-Dickstein, Kingma, Kumar, Ermon & Poole 2021, "Score-Based Generative
//! Modeling through Stochastic Differential Equations", eq. 6, §4.2, Algorithms 4–5;
//! `references/003_…` and `004_…` for the reverse SDE and Langevin dynamics).
//!
//! The forward SDE is `dx = f(t)·x dt + g(t) dw` ([`Process::sde`]); its reverse
//! (Anderson 1982) is `dx = [f·x − g²·∇log p_t(x)] dt + g dw̄`, run from t = 1 down to
//! `t_min`, with the score `∇log p_t = −ε̂/σ_t`.
//!
//! * **Euler–Maruyama predictor**, step `Δ = t − s > 0` (score_sde's `EulerMaruyamaPredictor`):
//!   `x_s = (1 − f(t)·Δ)·x_t − g(t)²·Δ/σ_t·ε̂ + g(t)·√Δ·z`. The last step adds no noise
//!   (score_sde's `denoise`: it returns the mean of the last update), like DDPM's last step.
//!   Weak order 1.
//! * **Langevin corrector** at time `t` (Algorithms 4–5): `x ← x + δ·∇log p_t + √(2δ)·z`,
//!   `δ = 2·a_t·(r·‖z‖/‖∇log p_t‖)²`, with `a_t = 1` for VE and DDPM's `α_i = 1 − β_i` for VP.
//!   A program cannot measure norms, so the step is precomputed with their expected ratio for a
//!   well-trained model, `‖z‖ ≈ √d` and `‖∇log p_t‖ = ‖ε̂‖/σ_t ≈ √d/σ_t`:
//!   `δ = 2·a_t·(r·σ_t)²`, i.e. `x ← x − 2a_t·r²·σ_t·ε̂ + 2·r·σ_t·√a_t·z`. For VP we use
//!   `a_t = e^{−β(t)·Δ}`, equal to `1 − β(t)·Δ` to first order (score_sde's discrete
//!   `1 − β_i`) and positive for any step count.
//! * **Predictor–corrector** (score_sde's `pc_sampler` order): at each grid time the corrector
//!   runs `M` times, then the predictor steps to the next time. `N(M + 1)` evaluations.
//!
//! Registers: r0 = x, r1 (r2) = ε.

use super::Path;
use super::asm::{Asm, Lin};
use crate::process::Process;

/// Euler–Maruyama (`corrector_steps = 0`) or predictor–corrector over grid `ts`.
pub(crate) fn build(
    process: &Process,
    ts: &[f64],
    corrector_steps: usize,
    snr: f64,
    mut a: Asm,
) -> Asm {
    let path = Path::new(process, ts);
    let n = path.steps();
    a.init(process.prior_std());
    for i in 0..n {
        let (t, s) = (path.t[i], path.t[i + 1]);
        let dt = t - s;
        let st = path.sigma[i];
        // Only VP and VE reach here (the grid rejects the others).
        let (f, g2) = process.sde(t).unwrap_or((f64::NAN, f64::NAN));
        let a_t = match process {
            Process::Vp { .. } => (-g2 * dt).exp(),
            _ => 1.0,
        };
        for _ in 0..corrector_steps {
            let delta = 2.0 * a_t * (snr * st).powi(2);
            let eps = a.model(0, path.at(i), 1);
            a.lin(
                0,
                Lin::of(0, 1.0).plus(&eps, -delta / st),
                Some((2.0 * delta).sqrt()),
            );
        }
        let eps = a.model(0, path.at(i), 1);
        let terms = Lin::of(0, 1.0 - f * dt).plus(&eps, -g2 * dt / st);
        let noise = (i + 1 < n).then(|| (g2 * dt).sqrt());
        a.lin(0, terms, noise);
        a.step();
    }
    a
}
