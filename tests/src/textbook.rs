//! DDPM ancestral sampling and DDIM, twice: as runtime programs whose coefficients are
//! computed here in f64, and as f64 reference samplers written straight from the papers.
//!
//! Conventions (Ho et al. 2020; Song et al. 2021, "Denoising Diffusion Implicit Models"):
//! timesteps `t = 1..=T`, `αₜ = 1 − βₜ`, `ᾱₜ = Π_{s≤t} αₛ`, `ᾱ₀ = 1`; the network sees the
//! time value `t − 1` (0-based, as most implementations). Noise draws are numbered in the
//! order the program draws them: draw 0 is `x_T`, draw `k` the `k`-th injected noise.
//!
//! * DDPM ancestral (Ho et al., Algorithm 2):
//!   `x_{t−1} = (x_t − βₜ/√(1−ᾱₜ) · ε) / √αₜ + σₜ z`, `z = 0` at `t = 1`,
//!   `σₜ² = βₜ` or `β̃ₜ = βₜ (1−ᾱ_{t−1})/(1−ᾱₜ)`.
//! * DDIM (Song et al., eq. 12) from `t` to `s < t`:
//!   `x̂₀ = (x_t − √(1−ᾱₜ) ε)/√ᾱₜ`, `σ = η √((1−ᾱₛ)/(1−ᾱₜ)) √(1 − ᾱₜ/ᾱₛ)`,
//!   `x_s = √ᾱₛ x̂₀ + √(1−ᾱₛ−σ²) ε + σ z`.
//! * Classifier-free guidance (Ho & Salimans 2022): `ε̃ = ε(∅) + w (ε(c) − ε(∅))`.

use microdiff_runtime::blob::ProgramBuilder;
use microdiff_runtime::blob::program::ClassSel;
use microdiff_runtime::noise::{Domain, NoiseStream};

/// A discrete DDPM noise schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// βₜ for t = 1..=T (index t − 1).
    pub beta: Vec<f64>,
    /// ᾱₜ for t = 0..=T (index t; ᾱ₀ = 1).
    pub alpha_bar: Vec<f64>,
}

impl Schedule {
    /// Linear βₜ from `b1` to `bt` over `t` steps (Ho et al.: 1e-4 to 0.02 over 1000).
    pub fn linear(t: usize, b1: f64, bt: f64) -> Self {
        let beta: Vec<f64> = (0..t)
            .map(|i| b1 + (bt - b1) * i as f64 / (t - 1) as f64)
            .collect();
        let mut alpha_bar = vec![1.0];
        for b in &beta {
            let last = *alpha_bar.last().unwrap_or(&1.0);
            alpha_bar.push(last * (1.0 - b));
        }
        Schedule { beta, alpha_bar }
    }

    /// T.
    pub fn steps(&self) -> usize {
        self.beta.len()
    }

    /// The schedule rows stored in a blob: (time value t − 1, ᾱₜ, √(1 − ᾱₜ)).
    pub fn rows(&self) -> Vec<microdiff_runtime::blob::schedule::ScheduleRow> {
        (1..=self.steps())
            .map(|t| microdiff_runtime::blob::schedule::ScheduleRow {
                t: (t - 1) as f32,
                alpha_bar: self.alpha_bar[t] as f32,
                sigma: (1.0 - self.alpha_bar[t]).sqrt() as f32,
            })
            .collect()
    }
}

/// Which σₜ² the ancestral sampler uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AncestralVariance {
    /// σₜ² = βₜ.
    Beta,
    /// σₜ² = β̃ₜ (the posterior variance).
    BetaTilde,
}

fn sigma_ancestral(s: &Schedule, t: usize, v: AncestralVariance) -> f64 {
    let beta = s.beta[t - 1];
    match v {
        AncestralVariance::Beta => beta.sqrt(),
        AncestralVariance::BetaTilde => {
            (beta * (1.0 - s.alpha_bar[t - 1]) / (1.0 - s.alpha_bar[t])).sqrt()
        }
    }
}

/// Guidance weight `w` (None: no guidance, one EVAL per step).
pub type Guidance = Option<f64>;

/// Emits `EVAL`s for ε at time `t` into r1 (and r2 for the null class) and returns the
/// terms `c·ε̃` expands to.
fn eps_terms(p: &mut ProgramBuilder, t: usize, c: f64, g: Guidance) -> Vec<(u8, f32)> {
    let time = (t - 1) as f32;
    p.eval(1, 0, ClassSel::Caller, time);
    match g {
        None => vec![(1, c as f32)],
        Some(w) => {
            p.eval(2, 0, ClassSel::Null, time);
            vec![(1, (c * w) as f32), (2, (c * (1.0 - w)) as f32)]
        }
    }
}

/// DDPM ancestral sampling over all T steps, as a program.
pub fn ddpm_program(name: &str, s: &Schedule, v: AncestralVariance, g: Guidance) -> ProgramBuilder {
    let mut p = ProgramBuilder::new(name, if g.is_some() { 3 } else { 2 });
    p.lin(0, &[], Some(1.0)).step();
    for t in (1..=s.steps()).rev() {
        let alpha = 1.0 - s.beta[t - 1];
        let c_x = 1.0 / alpha.sqrt();
        let c_e = -s.beta[t - 1] / (1.0 - s.alpha_bar[t]).sqrt() / alpha.sqrt();
        let mut terms = vec![(0u8, c_x as f32)];
        terms.extend(eps_terms(&mut p, t, c_e, g));
        let noise = (t > 1).then(|| sigma_ancestral(s, t, v) as f32);
        p.lin(0, &terms, noise).step();
    }
    p
}

/// The DDIM timesteps τ₁ < … < τ_K (trailing spacing: τ_i = round(i·T/K), ties to even,
/// computed exactly).
pub fn ddim_timesteps(t: usize, k: usize) -> Vec<usize> {
    (1..=k)
        .map(|i| {
            let (q, r) = (i * t / k, i * t % k);
            if 2 * r > k || (2 * r == k && q % 2 == 1) {
                q + 1
            } else {
                q
            }
        })
        .collect()
}

fn ddim_sigma(s: &Schedule, t: usize, prev: usize, eta: f64) -> f64 {
    let (at, ap) = (s.alpha_bar[t], s.alpha_bar[prev]);
    eta * ((1.0 - ap) / (1.0 - at)).sqrt() * (1.0 - at / ap).sqrt()
}

/// DDIM with `k` steps and stochasticity `eta`, optionally clipping x̂₀ to `[-clip, clip]`.
pub fn ddim_program(
    name: &str,
    s: &Schedule,
    k: usize,
    eta: f64,
    clip: Option<f32>,
    g: Guidance,
) -> ProgramBuilder {
    let mut p = ProgramBuilder::new(name, if g.is_some() || clip.is_some() { 4 } else { 2 });
    p.lin(0, &[], Some(1.0)).step();
    let taus = ddim_timesteps(s.steps(), k);
    for i in (0..taus.len()).rev() {
        let t = taus[i];
        let prev = if i == 0 { 0 } else { taus[i - 1] };
        let (at, ap) = (s.alpha_bar[t], s.alpha_bar[prev]);
        let sigma = ddim_sigma(s, t, prev, eta);
        let c_dir = (1.0 - ap - sigma * sigma).max(0.0).sqrt();
        let noise = (sigma > 0.0).then_some(sigma as f32);
        match clip {
            None => {
                // x_s = √ᾱₛ/√ᾱₜ · x + (c_dir − √ᾱₛ √(1−ᾱₜ)/√ᾱₜ) · ε̃ + σ z
                let c_x = (ap / at).sqrt();
                let c_e = c_dir - ap.sqrt() * (1.0 - at).sqrt() / at.sqrt();
                let mut terms = vec![(0u8, c_x as f32)];
                terms.extend(eps_terms(&mut p, t, c_e, g));
                p.lin(0, &terms, noise).step();
            }
            Some(c) => {
                // r3 = ε̃, r2... keep ε̃ in r3 so x̂₀ can be clipped before it is used.
                let e = eps_terms(&mut p, t, 1.0, g);
                p.lin(3, &e, None);
                let x0_terms = [
                    (0u8, (1.0 / at.sqrt()) as f32),
                    (3u8, (-(1.0 - at).sqrt() / at.sqrt()) as f32),
                ];
                p.lin(2, &x0_terms, None).clamp(2, -c, c);
                p.lin(0, &[(2, ap.sqrt() as f32), (3, c_dir as f32)], noise)
                    .step();
            }
        }
    }
    p
}

/// An ε-network in f64: `(x, time value, class) → ε`.
pub trait EpsF64 {
    /// Evaluates the network; `null` selects the null class.
    fn eps(&self, x: &[f64], time: f64, null: bool) -> Vec<f64>;
}

fn guided(net: &dyn EpsF64, x: &[f64], t: usize, g: Guidance) -> Vec<f64> {
    let time = (t - 1) as f64;
    let ec = net.eps(x, time, false);
    match g {
        None => ec,
        Some(w) => {
            let eu = net.eps(x, time, true);
            eu.iter().zip(&ec).map(|(u, c)| u + w * (c - u)).collect()
        }
    }
}

/// The runtime's noise for draw `draw`, as f64 (the same numbers the device injects).
pub fn noise(seed: u64, stream: u32, draw: u32, n: usize) -> Vec<f64> {
    let ns = NoiseStream::new(seed, stream, Domain::Sampler);
    (0..n).map(|i| ns.normal(draw, i as u32) as f64).collect()
}

/// Reference DDPM ancestral sampler in f64.
pub fn ddpm_f64(
    net: &dyn EpsF64,
    s: &Schedule,
    v: AncestralVariance,
    g: Guidance,
    n: usize,
    seed: u64,
    stream: u32,
) -> Vec<f64> {
    let mut x = noise(seed, stream, 0, n);
    let mut draw = 1;
    for t in (1..=s.steps()).rev() {
        let e = guided(net, &x, t, g);
        let alpha = 1.0 - s.beta[t - 1];
        let k = s.beta[t - 1] / (1.0 - s.alpha_bar[t]).sqrt();
        let z = if t > 1 {
            let z = noise(seed, stream, draw, n);
            draw += 1;
            z
        } else {
            vec![0.0; n]
        };
        let sigma = sigma_ancestral(s, t, v);
        x = (0..n)
            .map(|i| (x[i] - k * e[i]) / alpha.sqrt() + sigma * z[i])
            .collect();
    }
    x
}

/// Reference DDIM sampler in f64.
#[allow(clippy::too_many_arguments)]
pub fn ddim_f64(
    net: &dyn EpsF64,
    s: &Schedule,
    k: usize,
    eta: f64,
    clip: Option<f64>,
    g: Guidance,
    n: usize,
    seed: u64,
    stream: u32,
) -> Vec<f64> {
    let mut x = noise(seed, stream, 0, n);
    let mut draw = 1;
    let taus = ddim_timesteps(s.steps(), k);
    for i in (0..taus.len()).rev() {
        let t = taus[i];
        let prev = if i == 0 { 0 } else { taus[i - 1] };
        let (at, ap) = (s.alpha_bar[t], s.alpha_bar[prev]);
        let e = guided(net, &x, t, g);
        let mut x0: Vec<f64> = (0..n)
            .map(|j| (x[j] - (1.0 - at).sqrt() * e[j]) / at.sqrt())
            .collect();
        if let Some(c) = clip {
            x0.iter_mut().for_each(|v| *v = v.clamp(-c, c));
        }
        let sigma = ddim_sigma(s, t, prev, eta);
        let z = if sigma > 0.0 {
            let z = noise(seed, stream, draw, n);
            draw += 1;
            z
        } else {
            vec![0.0; n]
        };
        let dir = (1.0 - ap - sigma * sigma).max(0.0).sqrt();
        x = (0..n)
            .map(|j| ap.sqrt() * x0[j] + dir * e[j] + sigma * z[j])
            .collect();
    }
    x
}
