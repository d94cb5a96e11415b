//! DDIM (Song, Meng & Ermon 2021, "Denoising Diffusion Implicit Models", eq. 12 and 16),
//! written with α, σ so that it runs on DDPM's grid and on the VP SDE alike.
//!
//! From `t` to `s < t`: `x̂₀ = (x_t − σ_t·ε̂)/α_t`,
//! `σ_η = η·(σ_s/σ_t)·√(1 − α_t²/α_s²)`,
//! `x_s = α_s·x̂₀ + √(σ_s² − σ_η²)·ε̂ + σ_η·z`.
//!
//! Without clipping this is one `LIN`:
//! `x_s = (α_s/α_t)·x_t + (√(σ_s² − σ_η²) − α_s·σ_t/α_t)·ε̂ + σ_η·z`
//! (registers r0 = x, r1 (r2) = ε). With clipping x̂₀ is formed and clamped to `[−c, c]`, then
//! ε is re-derived from the clipped x̂₀, `ε = (x_t − α_t·x̂₀)/σ_t`, before recombining
//! (r3 = ε̃, r2 = x̂₀) — what guided-diffusion (GLIDE) always does and diffusers' `DDIMScheduler`
//! does with `use_clipped_model_output=True` (off by default there). Without that the
//! direction term keeps pointing at the unclipped x̂₀, and quality *falls* as steps grow
//! (digits, 64 evaluations: 91.6 % class accuracy, Fréchet 39 → 99.9 %, 3.3 with it).
//! `tests/src/textbook.rs` keeps the naive form as an independent reference of the runtime. η = 0 is deterministic (and the
//! same map as [`super::ode`]'s Euler step); η = 1 on DDPM's grid is ancestral sampling with β̃.
//! DDIM is first order: it is the Euler method for the probability-flow ODE in the variables
//! `(x/α, σ/α)` (Song et al. 2021, §4.3).

use super::Path;
use super::asm::{Asm, Lin};
use crate::process::Process;

/// The DDIM program over grid `ts`.
pub(crate) fn build(process: &Process, ts: &[f64], eta: f64, clip: Option<f64>, mut a: Asm) -> Asm {
    let path = Path::new(process, ts);
    a.init(process.prior_std());
    for i in 0..path.steps() {
        let (at, sig_t) = (path.alpha[i], path.sigma[i]);
        let (as_, sig_s) = (path.alpha[i + 1], path.sigma[i + 1]);
        let sig_eta = if sig_t > 0.0 {
            eta * (sig_s / sig_t) * (1.0 - (at / as_).powi(2)).max(0.0).sqrt()
        } else {
            0.0
        };
        let c_dir = (sig_s * sig_s - sig_eta * sig_eta).max(0.0).sqrt();
        let noise = Some(sig_eta);
        match clip {
            None => {
                let eps = a.model(0, path.at(i), 1);
                let terms = Lin::of(0, as_ / at).plus(&eps, c_dir - as_ * sig_t / at);
                a.lin(0, terms, noise);
            }
            Some(c) => {
                let eps = a.model(0, path.at(i), 1);
                a.lin(3, eps, None);
                a.lin(2, Lin::of(0, 1.0 / at).add(3, -sig_t / at), None);
                a.clamp(2, -c, c);
                // ε consistent with the clipped x̂₀ (as guided-diffusion does, and diffusers with
                // `use_clipped_model_output`): otherwise the direction term keeps pointing at the
                // unclipped x̂₀.
                if sig_t > 0.0 {
                    a.lin(3, Lin::of(0, 1.0 / sig_t).add(2, -at / sig_t), None);
                }
                a.lin(0, Lin::of(2, as_).add(3, c_dir), noise);
            }
        }
        a.step();
    }
    a
}
