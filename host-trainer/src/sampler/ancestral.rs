//! DDPM ancestral sampling (Ho et al. 2020, Algorithm 2; `references/002_…`, eqs. 23–29),
//! on any sub-grid of a variance-preserving process.
//!
//! For a step from `t` to `s < t` of a VP path (`α² + σ² = 1`) write `α_{t|s} = α_t/α_s` and
//! `β_{t|s} = 1 − α_{t|s}²`. The posterior `q(x_s | x_t, x₀)` has mean
//! `(x_t − β_{t|s}/σ_t·ε)/α_{t|s}` once x₀ is expressed through ε (Ho et al., eq. 11) and
//! variance `β̃ = β_{t|s}·σ_s²/σ_t²` (eq. 7), so
//!
//! `x_s = x_t/α_{t|s} − β_{t|s}/(σ_t·α_{t|s})·ε̂ + σ_anc·z`, `σ_anc² = β_{t|s}` or `β̃`,
//!
//! with no noise on the last step (Ho et al.: `z = 0` at t = 1). On DDPM's full grid
//! (`s = t − 1`) `β_{t|s}` is the schedule's `β_t` itself and this is Algorithm 2 exactly; on a
//! sub-grid it is the respaced chain of Nichol & Dhariwal 2021, §4. VP is run on its uniform
//! time grid, with ᾱ = α(t)².
//!
//! With clipping (`clip = c`) x̂₀ = (x_t − σ_t·ε̂)/α_t is formed, clamped to `[−c, c]`, and ε
//! re-derived from it, `ε̃ = (x_t − α_t·x̂₀)/σ_t`, before the same update: that is the posterior
//! mean `μ̃(x_t, x̂₀)` of Ho et al. (eq. 7) with the clipped x̂₀, as their reference code computes
//! it (`clip_denoised`). It keeps the first steps, where `1/α_t` is ~160, from throwing rare
//! samples far outside the data.
//!
//! Registers: r0 = x, r1 (r2) = ε; with clipping r3 = ε̃, r2 = x̂₀.

use super::asm::{Asm, Lin};
use super::{AncestralVariance, Path};
use crate::process::Process;

/// The ancestral program over grid `ts` (see [`super::grid`]).
pub(crate) fn build(
    process: &Process,
    ts: &[f64],
    variance: AncestralVariance,
    clip: Option<f64>,
    mut a: Asm,
) -> Asm {
    let path = Path::new(process, ts);
    let betas = match process {
        Process::Ddpm { steps, betas } => betas.betas(*steps),
        _ => Vec::new(),
    };
    a.init(process.prior_std());
    let n = path.steps();
    for i in 0..n {
        let (t, s) = (path.t[i], path.t[i + 1]);
        let (sig_t, sig_s) = (path.sigma[i], path.sigma[i + 1]);
        // β_{t|s}: the schedule's own β on consecutive DDPM steps (bit-compatible with the
        // textbook program), 1 − ᾱ_t/ᾱ_s otherwise.
        let beta = if !betas.is_empty() && t - s == 1.0 {
            betas[t as usize - 1]
        } else {
            1.0 - (path.alpha[i] / path.alpha[i + 1]).powi(2)
        };
        let a_ts = (1.0 - beta).sqrt();
        let eps = a.model(0, path.at(i), 1);
        let terms = match clip {
            None => Lin::of(0, 1.0 / a_ts).plus(&eps, -beta / sig_t / a_ts),
            Some(c) => {
                let at = path.alpha[i];
                a.lin(3, eps, None);
                a.lin(2, Lin::of(0, 1.0 / at).add(3, -sig_t / at), None);
                a.clamp(2, -c, c);
                a.lin(3, Lin::of(0, 1.0 / sig_t).add(2, -at / sig_t), None);
                Lin::of(0, 1.0 / a_ts).add(3, -beta / sig_t / a_ts)
            }
        };
        let noise = (i + 1 < n).then(|| match variance {
            AncestralVariance::Beta => beta.sqrt(),
            AncestralVariance::BetaTilde => (beta * sig_s * sig_s / (sig_t * sig_t)).sqrt(),
        });
        a.lin(0, terms, noise);
        a.step();
    }
    a
}
