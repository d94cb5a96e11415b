//! Euler and Heun on the deterministic ODEs: the probability-flow ODE of the diffusions
//! (Song et al. 2021, eq. 13) and the flow ODE `dx/dt = v(x, t)` (Lipman et al. 2023).
//!
//! For a diffusion, the probability-flow ODE in the scaled variables `x̃ = x/α`, `τ = σ/α` is
//! `dx̃/dτ = ε̂(x, t)` (Karras et al. 2022, eq. 4 with `s = α`, `σ_EDM = σ/α`; Song et al. 2021
//! (DDIM), eq. 14). One step from `t` to `s` with the increment `Δτ = τ_s − τ_t` is, back in x,
//!
//! `x_s = A·x_t + B·d`, `A = α_s/α_t`, `B = α_s·Δτ = σ_s − α_s·σ_t/α_t`,
//!
//! with `d = ε̂`. The flow ODE has the same shape with `A = 1`, `B = t_s − t_t`, `d = v̂`.
//! * Euler: `d = d(x_t, t)`. For diffusions this is exactly DDIM with η = 0 (on the same grid).
//! * Heun (Karras et al. 2022, Algorithm 1): `x' = A·x_t + B·d₁`, `d₂ = d(x', s)`,
//!   `x_s = A·x_t + B·(d₁ + d₂)/2`; the last step is an Euler step, as in Karras et al. (it
//!   may end at σ = 0, where ε̂ is not defined), so `N` steps cost `2N − 1` evaluations.
//!
//! Registers: r0 = x, r1 (r2) = d₁, r3 = x', r4 (r5) = d₂.

use super::Path;
use super::asm::{Asm, Lin};
use crate::process::Process;

/// The Euler (`heun = false`) or Heun program over grid `ts`.
pub(crate) fn build(process: &Process, ts: &[f64], heun: bool, mut a: Asm) -> Asm {
    let path = Path::new(process, ts);
    let flow = matches!(process, Process::Flow);
    let n = path.steps();
    a.init(process.prior_std());
    for i in 0..n {
        let (c_a, c_b) = if flow {
            (1.0, path.t[i + 1] - path.t[i])
        } else {
            let (at, st) = (path.alpha[i], path.sigma[i]);
            let (as_, ss) = (path.alpha[i + 1], path.sigma[i + 1]);
            (as_ / at, ss - as_ * st / at)
        };
        let d1 = a.model(0, path.at(i), 1);
        if heun && i + 1 < n {
            a.lin(3, Lin::of(0, c_a).plus(&d1, c_b), None);
            let d2 = a.model(3, path.at(i + 1), 4);
            let terms = Lin::of(0, c_a).plus(&d1, 0.5 * c_b).plus(&d2, 0.5 * c_b);
            a.lin(0, terms, None);
        } else {
            a.lin(0, Lin::of(0, c_a).plus(&d1, c_b), None);
        }
        a.step();
    }
    a
}
