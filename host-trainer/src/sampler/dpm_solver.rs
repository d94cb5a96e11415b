//! DPM-Solver++(2M): the multistep second-order solver of the probability-flow ODE in
//! data-prediction form (Lu, Zhou, Bao, Chen, Li & Zhu 2022, "DPM-Solver++: Fast Solver for
//! Guided Sampling of Diffusion Probabilistic Models", Algorithm 2).
//!
//! With `λ = ln(α/σ)`, `h_i = λ_{t_i} − λ_{t_{i−1}}` and the data prediction
//! `x̂₀ᵢ = (x_{t_i} − σ_{t_i}·ε̂)/α_{t_i}`:
//! * first order (the first step, and see below): `x_{t_i} = (σ_{t_i}/σ_{t_{i−1}})·x_{t_{i−1}}
//!   − α_{t_i}(e^{−h_i} − 1)·x̂₀_{i−1}` (this is DDIM);
//! * second order: `r_i = h_{i−1}/h_i`, `D_i = (1 + 1/(2r_i))·x̂₀_{i−1} − 1/(2r_i)·x̂₀_{i−2}`,
//!   `x_{t_i} = (σ_{t_i}/σ_{t_{i−1}})·x_{t_{i−1}} − α_{t_i}(e^{−h_i} − 1)·D_i`.
//!
//! `−α_{t_i}(e^{−h_i} − 1) = α_{t_i} − σ_{t_i}·α_{t_{i−1}}/σ_{t_{i−1}}`, which stays finite when
//! the last step ends at σ = 0 (DDPM's step 0: the step returns x̂₀). "Lower-order final"
//! (Lu et al.'s and diffusers' `lower_order_final`): the last step is first order when
//! `N < 15`, where it stabilises few-step sampling, and whenever it ends at σ = 0, where
//! `h = ∞` leaves no second-order formula. A single first-order step does not lower the global
//! order.
//!
//! With `clip = c` every x̂₀ is clamped to `[−c, c]` before it enters the update (static
//! thresholding; Lu et al. 2022 §5): the data-prediction form makes that a one-instruction
//! change, and on the digits model it is what keeps the first steps (`1/α ≈ 160`) from
//! producing far-off samples.
//!
//! Registers: r0 = x, r1 (r2) = ε, x̂₀ alternates between r3 and r4 so the previous one
//! survives a step without a copy.

use super::Path;
use super::asm::{Asm, Lin};
use crate::process::Process;

/// Below this many steps the final step is first order (Lu et al. 2022: "lower_order_final …
/// for steps < 15").
pub const LOWER_ORDER_FINAL_BELOW: usize = 15;

/// The DPM-Solver++(2M) program over grid `ts`.
pub(crate) fn build(process: &Process, ts: &[f64], clip: Option<f64>, mut a: Asm) -> Asm {
    let path = Path::new(process, ts);
    let n = path.steps();
    let lambda = |i: usize| (path.alpha[i] / path.sigma[i]).ln();
    a.init(process.prior_std());
    for i in 0..n {
        let (at, st) = (path.alpha[i], path.sigma[i]);
        let (as_, ss) = (path.alpha[i + 1], path.sigma[i + 1]);
        let (cur, prev) = if i % 2 == 0 { (3u8, 4u8) } else { (4, 3) };
        // x̂₀ at t_i into `cur`.
        let eps = a.model(0, path.at(i), 1);
        a.lin(cur, Lin::of(0, 1.0 / at).plus(&eps, -st / at), None);
        if let Some(c) = clip {
            a.clamp(cur, -c, c);
        }
        let c_x = ss / st;
        let c_d = as_ - ss * at / st;
        let last = i + 1 == n;
        let first_order = i == 0 || (last && (n < LOWER_ORDER_FINAL_BELOW || ss == 0.0));
        let d = if first_order {
            Lin::of(cur, 1.0)
        } else {
            let h = lambda(i + 1) - lambda(i);
            let h_prev = lambda(i) - lambda(i - 1);
            let r = h_prev / h;
            Lin::of(cur, 1.0 + 0.5 / r).add(prev, -0.5 / r)
        };
        a.lin(0, Lin::of(0, c_x).plus(&d, c_d), None);
        a.step();
    }
    a
}
