//! The noise processes, all written as Gaussian paths `x_t = α(t)·x₀ + σ(t)·ε`, `ε ~ N(0, I)`.
//!
//! Training draws a time, noises a clean sample with `(α, σ)` and regresses the network onto
//! [`Process::target`]; the samplers in [`crate::sampler`] only ever see the process through
//! `α(t)`, `σ(t)`, the SDE coefficients and [`Process::time_value`].
//!
//! # The processes
//!
//! | process | time | α(t) | σ(t) | network sees | predicts |
//! |---|---|---|---|---|---|
//! | [`Process::Ddpm`] (Ho et al. 2020) | step `t ∈ {0, 1, …, T}` | `√ᾱ_t`, `ᾱ_t = Π_{s≤t}(1 − β_s)`, `ᾱ_0 = 1` | `√(1 − ᾱ_t)` | `t − 1` | ε |
//! | [`Process::Vp`] (Song et al. 2021, eq. 11 and App. B) | `[t_min, 1]` | `exp(−½B(t))`, `B(t) = ∫₀ᵗβ = β_min·t + ½(β_max − β_min)t²` | `√(1 − e^{−B(t)})` | `999·t` | ε |
//! | [`Process::Ve`] (Song et al. 2021, eq. 9 and App. B) | `[t_min, 1]` | `1` | `σ_min·(σ_max/σ_min)^t` | `999·t` | ε |
//! | [`Process::Flow`] (Lipman et al. 2023; Liu et al. 2023) | `[0, 1]`, `t = 1` is data | `t` | `1 − t` | `999·t` | `v = x₀ − ε` |
//!
//! Derivations, in order:
//! * **DDPM.** `q(x_t | x_{t−1}) = N(√(1−β_t)·x_{t−1}, β_t)`; composing `t` Gaussian steps gives
//!   `q(x_t | x₀) = N(√ᾱ_t·x₀, 1 − ᾱ_t)` (Ho et al., eq. 4; `references/001_…`), so `α² + σ² = 1`.
//! * **VP SDE** `dx = −½β(t)·x dt + √β(t) dw`: the mean obeys `ṁ = −½β·m`, so
//!   `m = x₀·exp(−½B)`; the variance obeys `v̇ = −β·v + β`, so `v = 1 − e^{−B}` (Song et al.,
//!   eq. 33). Again `α² + σ² = 1`; near `t = 0`, `σ² ≈ β_min·t → 0`, which is why training and
//!   sampling stop at `t_min` (ε-prediction divides by σ there).
//! * **VE SDE** `dx = √(dσ²/dt) dw`: no drift (`α = 1`), variance `σ²(t) − σ²(0)`; like Song et
//!   al.'s code we take the marginal standard deviation to be `σ(t)` itself (the data are
//!   treated as already blurred by `σ_min`).
//! * **Flow.** The straight conditional path between noise (`t = 0`) and data (`t = 1`), the
//!   `σ_min = 0` case of Lipman et al.'s optimal-transport path; its velocity is
//!   `d/dt x_t = x₀ − ε` (`references/003_…`: `u_t = σ̇/σ·(x − μ) + μ̇` with `μ = t·x₀`,
//!   `σ = 1 − t`).
//!
//! For the three diffusions the score is `∇log p_t(x) = −E[ε | x_t = x]/σ(t)`, and every path
//! is the marginal of the SDE `dx = f(t)·x dt + g(t) dw` with (Kingma et al. 2021, App. A)
//! `f = α̇/α`, `g² = dσ²/dt − 2f·σ²`: VP `f = −½β(t)`, `g² = β(t)`; VE `f = 0`,
//! `g² = 2σ²·ln(σ_max/σ_min)` ([`Process::sde`]). The half log signal-to-noise ratio
//! `λ(t) = ln(α/σ)` ([`Process::lambda`]) is DPM-Solver's time variable.
//!
//! # Time values
//! The network's sinusoidal time embedding sees `t − 1` for DDPM (0-based steps, as most
//! implementations) and `999·t` for the continuous processes, so that both span the same
//! `0 … 999` range and one embedding (max period 10 000) serves all of them.
//!
//! # β schedules (DDPM)
//!
//! | schedule | β_t, t = 1..=T | source |
//! |---|---|---|
//! | [`BetaSchedule::Linear`] | `β_start + (β_end − β_start)·(t−1)/(T−1)` | Ho et al. 2020, §4 (1e-4 … 0.02) |
//! | [`BetaSchedule::Cosine`] | `min(1 − ᾱ_t/ᾱ_{t−1}, 0.999)`, `ᾱ_t = f(t)/f(0)`, `f(t) = cos²(π/2·(t/T + s)/(1 + s))` | Nichol & Dhariwal 2021, eq. 17 (s = 0.008) |
//! | [`BetaSchedule::Sigmoid`] | `min(1 − γ(t/T)/γ((t−1)/T), 0.999)`, `γ(u) = (v_e − sig((u(e − a) + a)/τ))/(v_e − v_s)`, `v_{s,e} = sig({a, e}/τ)` | Chen 2023, "On the importance of noise scheduling for diffusion models", Algorithm 1 (`a = start`, `e = end`; defaults −3, 3, τ = 1; used by Jabri et al. 2023, RIN) |
//!
//! The sigmoid schedule is the γ (= ᾱ) schedule of Chen 2023, not the "sigmoid β" of GeoDiff.
//! Like Chen's code, γ is clipped below at 1e-9 so the last β stays below 1 (then 0.999 applies).

use microdiff_runtime::blob::meta::{Objective, Prediction};
use microdiff_runtime::blob::schedule::ScheduleRow;

/// The time value the network sees at the data end of the continuous processes (`t = 1`).
pub const CONTINUOUS_TIME_SCALE: f64 = 999.0;

/// Number of rows [`Process::schedule_rows`] writes for a continuous process.
pub const CONTINUOUS_ROWS: usize = 1000;

/// Largest β any schedule produces (Nichol & Dhariwal 2021 clip β at 0.999 to avoid the
/// singularity of `1/√(1 − β)` at the end of the cosine schedule).
pub const MAX_BETA: f64 = 0.999;

/// Smallest γ = ᾱ of the sigmoid schedule (Chen 2023, `clip_min`).
const SIGMOID_CLIP_MIN: f64 = 1e-9;

/// A process whose parameters make no sense.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid {process} process: {what}")]
pub struct ProcessError {
    /// Which process.
    pub process: &'static str,
    /// What is wrong.
    pub what: String,
}

/// The discrete DDPM β schedule.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum BetaSchedule {
    /// Linear β from `beta_start` (t = 1) to `beta_end` (t = T) (Ho et al. 2020).
    Linear {
        /// β₁.
        beta_start: f64,
        /// β_T.
        beta_end: f64,
    },
    /// Cosine ᾱ (Nichol & Dhariwal 2021, eq. 17), offset `s` (0.008 in the paper).
    Cosine {
        /// Small offset that keeps β₁ from being tiny.
        s: f64,
    },
    /// Sigmoid γ = ᾱ (Chen 2023, Algorithm 1): `start`, `end` bound the sigmoid's argument,
    /// `tau` is its temperature (paper defaults: −3, 3, 1).
    Sigmoid {
        /// Left end of the sigmoid's argument.
        start: f64,
        /// Right end of the sigmoid's argument.
        end: f64,
        /// Temperature.
        tau: f64,
    },
}

impl BetaSchedule {
    /// `β_t` for `t = 1..=steps` (index `t − 1`).
    pub fn betas(&self, steps: usize) -> Vec<f64> {
        (1..=steps).map(|t| self.beta(t, steps)).collect()
    }

    /// `β_t` for one step `t` in `1..=steps`, without building the table.
    pub fn beta(&self, t: usize, steps: usize) -> f64 {
        match *self {
            BetaSchedule::Linear {
                beta_start,
                beta_end,
            } => {
                if steps == 1 {
                    beta_start
                } else {
                    beta_start + (beta_end - beta_start) * (t - 1) as f64 / (steps - 1) as f64
                }
            }
            _ => (1.0 - self.gamma(t, steps) / self.gamma(t - 1, steps)).min(MAX_BETA),
        }
    }

    /// The unnormalised ᾱ the cosine and sigmoid schedules are defined by, at step `t`
    /// (`f(t)` of Nichol & Dhariwal, `γ(t/T)` of Chen); non-increasing in `t`. 1 for linear.
    fn gamma(&self, t: usize, steps: usize) -> f64 {
        let u = t as f64 / steps as f64;
        match *self {
            BetaSchedule::Linear { .. } => 1.0,
            BetaSchedule::Cosine { s } => {
                let c = ((u + s) / (1.0 + s) * std::f64::consts::FRAC_PI_2).cos();
                c * c
            }
            BetaSchedule::Sigmoid { start, end, tau } => {
                let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
                let (v_start, v_end) = (sig(start / tau), sig(end / tau));
                let out = sig((u * (end - start) + start) / tau);
                ((v_end - out) / (v_end - v_start)).clamp(SIGMOID_CLIP_MIN, 1.0)
            }
        }
    }

    /// `ᾱ_t = Π_{s≤t} (1 − β_s)` for `t` in `0..=steps`, equal to the running product up to
    /// rounding. Linear: the product, O(t). Cosine and sigmoid: O(log T), because the product
    /// telescopes to `γ(t)/γ(0)` except at steps whose β was clipped at [`MAX_BETA`]; a clipped
    /// step has `γ(s) < (1 − MAX_BETA)·γ(s−1) ≤ (1 − MAX_BETA)·γ(0)`, and as γ does not increase
    /// those steps lie in the suffix where that bound holds, found by bisection (a few steps).
    pub fn alpha_bar(&self, t: usize, steps: usize) -> f64 {
        let t = t.min(steps);
        if let BetaSchedule::Linear { .. } = self {
            return (1..=t).fold(1.0, |acc, s| acc * (1.0 - self.beta(s, steps)));
        }
        let g0 = self.gamma(0, steps);
        let bound = (1.0 - MAX_BETA) * g0;
        // First step of the suffix where γ(s) < bound (t + 1 if none up to t).
        let (mut lo, mut hi) = (1usize, t + 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.gamma(mid, steps) < bound {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        (lo..=t).fold(self.gamma(t, steps) / g0, |acc, s| {
            let ratio = self.gamma(s, steps) / self.gamma(s - 1, steps);
            acc * (1.0 - self.beta(s, steps)) / ratio
        })
    }

    fn check(&self) -> Result<(), String> {
        let ok = match *self {
            BetaSchedule::Linear {
                beta_start,
                beta_end,
            } => {
                beta_start > 0.0 && beta_end >= beta_start && beta_end < 1.0 && beta_end.is_finite()
            }
            BetaSchedule::Cosine { s } => s.is_finite() && s >= 0.0,
            BetaSchedule::Sigmoid { start, end, tau } => {
                start.is_finite() && end.is_finite() && end > start && tau.is_finite() && tau > 0.0
            }
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "β schedule {self:?} out of range (linear: 0 < β_start ≤ β_end < 1; \
                 cosine: s ≥ 0; sigmoid: start < end, τ > 0)"
            ))
        }
    }
}

/// Bisection steps of [`Process::t_from_lambda_bisect`]: halves the bracket 80 times, far below
/// f64 resolution of `t`.
pub const BISECTION_STEPS: usize = 80;

/// How [`Process::lambda_grid`] turns a λ back into a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LambdaInverse {
    /// [`Process::t_from_lambda`] (closed form; NaN for DDPM, whose time is discrete).
    ClosedForm,
    /// [`Process::t_from_lambda_bisect`] between the grid's ends (any process).
    Bisection,
}

/// A noise process: a Gaussian path `x_t = α(t)·x₀ + σ(t)·ε` and what the network predicts.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Process {
    /// Discrete DDPM, t = 1..=T; network sees time value t−1; predicts ε.
    Ddpm {
        /// T.
        steps: usize,
        /// β_t.
        betas: BetaSchedule,
    },
    /// VP SDE (Song et al. 2021): β(t) = β_min + t(β_max−β_min), t ∈ [t_min, 1];
    /// α = exp(−½∫β), σ = √(1−α²); predicts ε (score = −ε/σ).
    Vp {
        /// β(0).
        beta_min: f64,
        /// β(1).
        beta_max: f64,
        /// Smallest time trained and sampled.
        t_min: f64,
    },
    /// VE SDE: σ(t) = σ_min (σ_max/σ_min)^t, α = 1, t ∈ [t_min, 1]; predicts ε (score = −ε/σ).
    Ve {
        /// σ(0).
        sigma_min: f64,
        /// σ(1).
        sigma_max: f64,
        /// Smallest time trained and sampled.
        t_min: f64,
    },
    /// Flow matching / rectified flow: x_t = t·x₀ + (1−t)·ε, t ∈ [0, 1], t = 1 is data;
    /// predicts the velocity v = x₀ − ε.
    Flow,
}

impl Process {
    /// Ho et al. 2020: T = 1000, linear β from 1e-4 to 0.02.
    pub fn ddpm_default() -> Self {
        Process::Ddpm {
            steps: 1000,
            betas: BetaSchedule::Linear {
                beta_start: 1e-4,
                beta_end: 0.02,
            },
        }
    }

    /// Song et al. 2021 (VP, "DDPM++" configs): β from 0.1 to 20, t_min = 1e-3 (their
    /// `sampling_eps` for VP; σ(1e-3) ≈ 0.0105).
    pub fn vp_default() -> Self {
        Process::Vp {
            beta_min: 0.1,
            beta_max: 20.0,
            t_min: 1e-3,
        }
    }

    /// VE with σ_min = 0.01 (Song et al. 2021, all VE configs) and the given σ_max (their
    /// "technique 1": about the largest distance between two training points). t_min = 1e-5:
    /// Song et al.'s `sampling_eps` for VE. Unlike VP, σ(0) = σ_min > 0, so nothing is singular
    /// at t = 0; t_min only keeps the endpoint itself out, and σ(1e-5) ≈ σ_min.
    pub fn ve_default(sigma_max: f64) -> Self {
        Process::Ve {
            sigma_min: 0.01,
            sigma_max,
            t_min: 1e-5,
        }
    }

    /// Lower-case name.
    pub fn name(&self) -> &'static str {
        match self {
            Process::Ddpm { .. } => "ddpm",
            Process::Vp { .. } => "vp",
            Process::Ve { .. } => "ve",
            Process::Flow => "flow",
        }
    }

    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), ProcessError> {
        let err = |what: String| {
            Err(ProcessError {
                process: self.name(),
                what,
            })
        };
        match self {
            Process::Ddpm { steps, betas } => {
                if *steps == 0 || *steps > u16::MAX as usize {
                    return err(format!("T = {steps} must be 1..=65535"));
                }
                betas.check().or_else(err)
            }
            &Process::Vp {
                beta_min,
                beta_max,
                t_min,
            } => {
                if !(beta_min > 0.0 && beta_max >= beta_min && beta_max.is_finite()) {
                    return err(format!(
                        "need 0 < β_min ≤ β_max, got β_min = {beta_min}, β_max = {beta_max}"
                    ));
                }
                if !(t_min > 0.0 && t_min < 1.0) {
                    return err(format!("t_min = {t_min} must be in (0, 1)"));
                }
                Ok(())
            }
            &Process::Ve {
                sigma_min,
                sigma_max,
                t_min,
            } => {
                if !(sigma_min > 0.0 && sigma_max > sigma_min && sigma_max.is_finite()) {
                    return err(format!(
                        "need 0 < σ_min < σ_max, got σ_min = {sigma_min}, σ_max = {sigma_max}"
                    ));
                }
                if !(0.0..1.0).contains(&t_min) {
                    return err(format!("t_min = {t_min} must be in [0, 1)"));
                }
                Ok(())
            }
            Process::Flow => Ok(()),
        }
    }

    /// Whether time is the discrete DDPM step.
    pub fn is_discrete(&self) -> bool {
        matches!(self, Process::Ddpm { .. })
    }

    /// The times training draws from and sampling runs over, `(low, high)`: DDPM `(1, T)`,
    /// VP/VE `(t_min, 1)`, flow `(0, 1)`.
    pub fn t_range(&self) -> (f64, f64) {
        match *self {
            Process::Ddpm { steps, .. } => (1.0, steps as f64),
            Process::Vp { t_min, .. } | Process::Ve { t_min, .. } => (t_min, 1.0),
            Process::Flow => (0.0, 1.0),
        }
    }

    /// ᾱ_t for `t = 0..=T` (index t; ᾱ₀ = 1). Empty for the continuous processes.
    pub fn alpha_bars(&self) -> Vec<f64> {
        match self {
            Process::Ddpm { steps, betas } => {
                let mut out = Vec::with_capacity(steps + 1);
                out.push(1.0);
                let mut last = 1.0;
                for b in betas.betas(*steps) {
                    last *= 1.0 - b;
                    out.push(last);
                }
                out
            }
            _ => Vec::new(),
        }
    }

    /// ᾱ at DDPM step `step` (ᾱ₀ = 1; steps past T give ᾱ_T; see [`BetaSchedule::alpha_bar`]
    /// for the cost). For the continuous processes `α(t)²` at `t = step as f64`. Use
    /// [`alpha_bars`](Self::alpha_bars) for tables.
    pub fn alpha_bar(&self, step: usize) -> f64 {
        match self {
            Process::Ddpm { steps, betas } => betas.alpha_bar(step, *steps),
            _ => self.alpha(step as f64).powi(2),
        }
    }

    /// `B(t) = ∫₀ᵗ β` of the VP SDE.
    fn vp_integral(beta_min: f64, beta_max: f64, t: f64) -> f64 {
        beta_min * t + 0.5 * (beta_max - beta_min) * t * t
    }

    /// `ln ᾱ` at a possibly fractional DDPM step: exact at integers, linear in between.
    fn ddpm_log_alpha_bar(&self, t: f64) -> f64 {
        let Process::Ddpm { steps, betas } = self else {
            return 0.0;
        };
        let t = t.clamp(0.0, *steps as f64);
        let lo = t.floor();
        let frac = t - lo;
        let lo = lo as usize;
        let log_lo: f64 = (1..=lo).map(|t| (1.0 - betas.beta(t, *steps)).ln()).sum();
        if frac > 0.0 && lo < *steps {
            log_lo + frac * (1.0 - betas.beta(lo + 1, *steps)).ln()
        } else {
            log_lo
        }
    }

    /// α(t), the signal coefficient. For DDPM, `t` is the step as f64 (`√ᾱ_t`, ᾱ₀ = 1; a
    /// fractional step interpolates ln ᾱ linearly).
    pub fn alpha(&self, t: f64) -> f64 {
        match *self {
            Process::Ddpm { .. } => {
                if t.fract() == 0.0 {
                    self.alpha_bar(t.max(0.0) as usize).sqrt()
                } else {
                    (0.5 * self.ddpm_log_alpha_bar(t)).exp()
                }
            }
            Process::Vp {
                beta_min, beta_max, ..
            } => (-0.5 * Self::vp_integral(beta_min, beta_max, t)).exp(),
            Process::Ve { .. } => 1.0,
            Process::Flow => t,
        }
    }

    /// σ(t), the noise standard deviation. For DDPM `√(1 − ᾱ_t)` at step `t`.
    pub fn sigma(&self, t: f64) -> f64 {
        match *self {
            Process::Ddpm { .. } => {
                if t.fract() == 0.0 {
                    (1.0 - self.alpha_bar(t.max(0.0) as usize)).sqrt()
                } else {
                    (-self.ddpm_log_alpha_bar(t).exp_m1()).sqrt()
                }
            }
            // √(1 − e^{−B}) through expm1, accurate as t → 0.
            Process::Vp {
                beta_min, beta_max, ..
            } => (-(-Self::vp_integral(beta_min, beta_max, t)).exp_m1()).sqrt(),
            Process::Ve {
                sigma_min,
                sigma_max,
                ..
            } => sigma_min * (sigma_max / sigma_min).powf(t),
            Process::Flow => 1.0 - t,
        }
    }

    /// `λ(t) = ln(α/σ)`, half the log signal-to-noise ratio (Lu et al. 2022); `+∞` where σ = 0.
    pub fn lambda(&self, t: f64) -> f64 {
        match *self {
            Process::Vp {
                beta_min, beta_max, ..
            } => {
                // ln α − ln σ = −½B − ½ ln(1 − e^{−B}).
                let b = Self::vp_integral(beta_min, beta_max, t);
                -0.5 * b - 0.5 * (-(-b).exp_m1()).ln()
            }
            _ => self.alpha(t).ln() - self.sigma(t).ln(),
        }
    }

    /// The time with `λ(t) = lambda` (Lu et al. 2022, App. "inverse_lambda"); `None` for DDPM,
    /// whose time is discrete.
    pub fn t_from_lambda(&self, lambda: f64) -> Option<f64> {
        match *self {
            Process::Ddpm { .. } => None,
            Process::Vp {
                beta_min, beta_max, ..
            } => {
                // α²/σ² = e^{2λ} with α² = e^{−B} gives B = ln(1 + e^{−2λ}); then solve
                // ½Δβ·t² + β_min·t − B = 0 in the cancellation-free form.
                let b = (-2.0 * lambda).exp().ln_1p();
                let d = beta_max - beta_min;
                Some(2.0 * b / (beta_min + (beta_min * beta_min + 2.0 * d * b).sqrt()))
            }
            Process::Ve {
                sigma_min,
                sigma_max,
                ..
            } => Some((-lambda - sigma_min.ln()) / (sigma_max / sigma_min).ln()),
            // t/(1 − t) = e^λ.
            Process::Flow => Some(1.0 / (1.0 + (-lambda).exp())),
        }
    }

    /// The time between `a` and `b` where `λ(t) = target`, by bisection ([`BISECTION_STEPS`]
    /// halvings of `[a, b]`; λ is monotone in t for every process). Slower than
    /// [`Process::t_from_lambda`] but needs no closed form.
    pub fn t_from_lambda_bisect(&self, a: f64, b: f64, target: f64) -> f64 {
        let (la, lb) = (self.lambda(a), self.lambda(b));
        let (mut lo, mut hi) = (a, b);
        // Keep λ(lo) on la's side of the target.
        for _ in 0..BISECTION_STEPS {
            let mid = 0.5 * (lo + hi);
            let lm = self.lambda(mid);
            if (lm - target) * (la - lb) > 0.0 {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        0.5 * (lo + hi)
    }

    /// The λ-uniform time grid, the one both the samplers (DPM-Solver++, Euler and Heun on VP)
    /// and the likelihood ODE (`eval::nll`) use: `n + 1` times from `a` to `b`, both ends exact,
    /// time `k` being where `λ = λ(a) + (λ(b) − λ(a))·k/n`, the time found by `inverse`.
    ///
    /// The two callers invert λ differently, and each keeps its own way because its bits are
    /// pinned: the samplers use the closed form ([`LambdaInverse::ClosedForm`]; their grids
    /// feed the golden blobs), the likelihood bisection ([`LambdaInverse::Bisection`]; its
    /// figures were computed with it). The two agree to 1e-12 in t (tested), not bit for bit.
    pub fn lambda_grid(&self, a: f64, b: f64, n: usize, inverse: LambdaInverse) -> Vec<f64> {
        let (la, lb) = (self.lambda(a), self.lambda(b));
        (0..=n)
            .map(|k| match k {
                0 => a,
                k if k == n => b,
                k => {
                    let l = la + (lb - la) * k as f64 / n as f64;
                    match inverse {
                        LambdaInverse::ClosedForm => self.t_from_lambda(l).unwrap_or(f64::NAN),
                        LambdaInverse::Bisection => self.t_from_lambda_bisect(a, b, l),
                    }
                }
            })
            .collect()
    }

    /// The forward SDE's `(f(t), g(t)²)` in `dx = f·x dt + g dw` (see the module doc); `None`
    /// for DDPM (discrete) and flow (no diffusion is trained).
    pub fn sde(&self, t: f64) -> Option<(f64, f64)> {
        match *self {
            Process::Vp {
                beta_min, beta_max, ..
            } => {
                let beta = beta_min + t * (beta_max - beta_min);
                Some((-0.5 * beta, beta))
            }
            Process::Ve {
                sigma_min,
                sigma_max,
                ..
            } => {
                let s = self.sigma(t);
                Some((0.0, 2.0 * s * s * (sigma_max / sigma_min).ln()))
            }
            Process::Ddpm { .. } | Process::Flow => None,
        }
    }

    /// The standard deviation of the prior samplers start from: 1 for DDPM and VP (their
    /// prior N(0, I), Ho et al.; Song et al.), σ_max for VE (Song et al.'s prior N(0, σ_max²I)),
    /// 1 for flow (x at t = 0 is ε).
    pub fn prior_std(&self) -> f64 {
        match *self {
            Process::Ve { sigma_max, .. } => sigma_max,
            _ => 1.0,
        }
    }

    /// What the network's time embedding sees: DDPM `t − 1`; continuous `999·t` (so the
    /// embedding frequencies match DDPM's 0..999 range).
    pub fn time_value(&self, t: f64) -> f32 {
        match self {
            Process::Ddpm { .. } => (t - 1.0) as f32,
            _ => (CONTINUOUS_TIME_SCALE * t) as f32,
        }
    }

    /// The inverse of [`time_value`](Self::time_value) (in f64).
    pub fn time_from_value(&self, value: f32) -> f64 {
        match self {
            Process::Ddpm { .. } => value as f64 + 1.0,
            _ => value as f64 / CONTINUOUS_TIME_SCALE,
        }
    }

    /// What the network outputs: ε, or the velocity for flow.
    pub fn prediction(&self) -> Prediction {
        match self {
            Process::Flow => Prediction::Velocity,
            _ => Prediction::Epsilon,
        }
    }

    /// The blob's objective code.
    pub fn objective(&self) -> Objective {
        match self {
            Process::Ddpm { .. } => Objective::Ddpm,
            Process::Vp { .. } => Objective::ScoreVp,
            Process::Ve { .. } => Objective::ScoreVe,
            Process::Flow => Objective::Flow,
        }
    }

    /// The training grid for the blob, rows `(time value, α², σ)`: DDPM every step
    /// `t = 1..=T` (`(t − 1, ᾱ_t, √(1 − ᾱ_t))`, as `tests/src/textbook.rs`); continuous
    /// processes [`CONTINUOUS_ROWS`] equally spaced times over [`t_range`](Self::t_range).
    pub fn schedule_rows(&self) -> Vec<ScheduleRow> {
        match self {
            Process::Ddpm { .. } => {
                let ab = self.alpha_bars();
                (1..ab.len())
                    .map(|t| ScheduleRow {
                        t: self.time_value(t as f64),
                        alpha_bar: ab[t] as f32,
                        sigma: (1.0 - ab[t]).sqrt() as f32,
                    })
                    .collect()
            }
            _ => {
                let (lo, hi) = self.t_range();
                (0..CONTINUOUS_ROWS)
                    .map(|i| {
                        let t = lo + (hi - lo) * i as f64 / (CONTINUOUS_ROWS - 1) as f64;
                        ScheduleRow {
                            t: self.time_value(t),
                            alpha_bar: self.alpha(t).powi(2) as f32,
                            sigma: self.sigma(t) as f32,
                        }
                    })
                    .collect()
            }
        }
    }

    /// The noised sample `α(t)·x₀ + σ(t)·ε`.
    pub fn noised(&self, t: f64, x0: f32, eps: f32) -> f32 {
        (self.alpha(t) * x0 as f64 + self.sigma(t) * eps as f64) as f32
    }

    /// Training: the regression target given (x₀, ε): ε for diffusion, x₀ − ε for flow.
    pub fn target(&self, x0: f32, eps: f32) -> f32 {
        match self {
            Process::Flow => x0 - eps,
            _ => eps,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// f64 round-off allowed in identities like α² + σ² = 1.
    const F64_TOL: f64 = 1e-12;

    fn processes() -> Vec<Process> {
        vec![
            Process::ddpm_default(),
            Process::Ddpm {
                steps: 1000,
                betas: BetaSchedule::Cosine { s: 0.008 },
            },
            Process::Ddpm {
                steps: 1000,
                betas: BetaSchedule::Sigmoid {
                    start: -3.0,
                    end: 3.0,
                    tau: 1.0,
                },
            },
            Process::vp_default(),
            Process::ve_default(50.0),
            Process::Flow,
        ]
    }

    /// `tests/src/textbook.rs` `Schedule::linear`, copied verbatim (the conformance crate is
    /// not a dependency of the trainer).
    fn textbook_linear(t: usize, b1: f64, bt: f64) -> (Vec<f64>, Vec<f64>) {
        let beta: Vec<f64> = (0..t)
            .map(|i| b1 + (bt - b1) * i as f64 / (t - 1) as f64)
            .collect();
        let mut alpha_bar = vec![1.0];
        for b in &beta {
            let last = *alpha_bar.last().unwrap_or(&1.0);
            alpha_bar.push(last * (1.0 - b));
        }
        (beta, alpha_bar)
    }

    #[test]
    fn ddpm_matches_the_textbook_schedule_bit_for_bit() {
        let p = Process::ddpm_default();
        let (beta, ab) = textbook_linear(1000, 1e-4, 0.02);
        let Process::Ddpm { betas, .. } = &p else {
            unreachable!()
        };
        assert_eq!(betas.betas(1000), beta);
        assert_eq!(p.alpha_bars(), ab);
        for t in [0usize, 1, 2, 500, 999, 1000] {
            assert_eq!(p.alpha_bar(t), ab[t]);
            assert_eq!(p.alpha(t as f64), ab[t].sqrt());
            assert_eq!(p.sigma(t as f64), (1.0 - ab[t]).sqrt());
        }
        // The blob rows are the textbook's rows.
        let rows = p.schedule_rows();
        assert_eq!(rows.len(), 1000);
        for (i, r) in rows.iter().enumerate() {
            assert_eq!(r.t, i as f32);
            assert_eq!(r.alpha_bar, ab[i + 1] as f32);
            assert_eq!(r.sigma, (1.0 - ab[i + 1]).sqrt() as f32);
        }
    }

    #[test]
    fn variance_preserving_paths_have_alpha2_plus_sigma2_one() {
        for p in processes()
            .into_iter()
            .filter(|p| !matches!(p, Process::Ve { .. } | Process::Flow))
        {
            let (lo, hi) = p.t_range();
            for i in 0..=200 {
                let t = lo + (hi - lo) * i as f64 / 200.0;
                let (a, s) = (p.alpha(t), p.sigma(t));
                assert!((a * a + s * s - 1.0).abs() < F64_TOL, "{p:?} at t = {t}");
            }
        }
    }

    #[test]
    fn noise_grows_and_signal_shrinks_towards_the_noise_end() {
        for p in processes() {
            let (lo, hi) = p.t_range();
            // Flow runs the other way: t = 1 is data.
            let sign = if p == Process::Flow { -1.0 } else { 1.0 };
            let mut last: Option<(f64, f64, f64)> = None;
            for i in 0..=400 {
                let t = lo + (hi - lo) * i as f64 / 400.0;
                let t = if p.is_discrete() { t.round() } else { t };
                let (a, s, l) = (p.alpha(t), p.sigma(t), p.lambda(t));
                if let Some((a0, s0, l0)) = last {
                    assert!(sign * (a - a0) <= 0.0, "{p:?}: α not monotone at {t}");
                    assert!(sign * (s - s0) >= 0.0, "{p:?}: σ not monotone at {t}");
                    assert!(sign * (l - l0) <= 0.0, "{p:?}: λ not monotone at {t}");
                }
                last = Some((a, s, l));
            }
        }
    }

    #[test]
    fn vp_noise_vanishes_at_t_zero_like_sqrt_beta_min_t() {
        let p = Process::vp_default();
        for t in [1e-3, 1e-5, 1e-8] {
            let s = p.sigma(t);
            // σ² = 1 − e^{−B} ≈ β_min·t for small t: relative agreement to O(t).
            assert!((s * s / (0.1 * t) - 1.0).abs() < 200.0 * t, "σ({t}) = {s}");
        }
        assert_eq!(p.sigma(0.0), 0.0);
        assert_eq!(p.alpha(0.0), 1.0);
        // At t = 1 the signal is almost gone: α(1) = exp(−½(0.1 + 9.95)).
        assert!((p.alpha(1.0) - (-5.025f64).exp()).abs() < F64_TOL);
    }

    #[test]
    fn ve_and_flow_endpoints() {
        let p = Process::ve_default(50.0);
        assert!((p.sigma(0.0) - 0.01).abs() < F64_TOL);
        assert!((p.sigma(1.0) - 50.0).abs() < 1e-9);
        assert_eq!(p.alpha(0.3), 1.0);
        assert_eq!(p.prior_std(), 50.0);
        let f = Process::Flow;
        assert_eq!((f.alpha(0.0), f.sigma(0.0)), (0.0, 1.0));
        assert_eq!((f.alpha(1.0), f.sigma(1.0)), (1.0, 0.0));
    }

    #[test]
    fn cosine_and_sigmoid_betas_are_valid_and_end_near_pure_noise() {
        for p in &processes()[1..3] {
            let Process::Ddpm { steps, betas } = p else {
                unreachable!()
            };
            let b = betas.betas(*steps);
            assert!(b.iter().all(|&b| b > 0.0 && b <= MAX_BETA), "{p:?}");
            let ab = p.alpha_bars();
            assert!(ab[*steps] < 1e-3, "{p:?}: ᾱ_T = {}", ab[*steps]);
        }
        // Nichol & Dhariwal's cosine: ᾱ_t = f(t)/f(0) until the clip is reached.
        let p = &processes()[1];
        let f = |t: f64| {
            (((t / 1000.0 + 0.008) / 1.008) * std::f64::consts::FRAC_PI_2)
                .cos()
                .powi(2)
        };
        assert!((p.alpha_bar(500) - f(500.0) / f(0.0)).abs() < 1e-12);
    }

    #[test]
    fn telescoped_alpha_bar_equals_the_running_product() {
        /// Relative rounding difference between γ(t)/γ(0) and the product of 1000 ratios.
        const TOL: f64 = 1e-12;
        let cases = [
            (1000, BetaSchedule::Cosine { s: 0.008 }),
            (
                1000,
                BetaSchedule::Sigmoid {
                    start: -3.0,
                    end: 3.0,
                    tau: 1.0,
                },
            ),
            // Steep and short: steps 6 and 7 are clipped, then γ sits at its floor.
            (
                10,
                BetaSchedule::Sigmoid {
                    start: -3.0,
                    end: 3.0,
                    tau: 0.05,
                },
            ),
        ];
        for (steps, betas) in cases {
            let clipped = betas
                .betas(steps)
                .iter()
                .filter(|&&b| b == MAX_BETA)
                .count();
            assert!(clipped >= 1, "{betas:?} exercises no clipping");
            let p = Process::Ddpm { steps, betas };
            let ab = p.alpha_bars();
            for (t, &want) in ab.iter().enumerate() {
                let got = p.alpha_bar(t);
                assert!(
                    (got - want).abs() <= TOL * want,
                    "{p:?} t = {t}: {got} vs {}",
                    want
                );
            }
        }
    }

    #[test]
    fn fractional_ddpm_steps_interpolate_between_integer_steps() {
        let p = Process::ddpm_default();
        let (a10, a11, a) = (p.alpha(10.0), p.alpha(11.0), p.alpha(10.5));
        assert!(a < a10 && a > a11);
        assert!(((a * a) - (a10 * a11)).abs() < 1e-12, "geometric mean of ᾱ");
        let s = p.sigma(10.5);
        assert!((a * a + s * s - 1.0).abs() < F64_TOL);
    }

    #[test]
    fn lambda_inverts() {
        for p in [
            Process::vp_default(),
            Process::ve_default(20.0),
            Process::Flow,
        ] {
            for t in [0.01, 0.2, 0.5, 0.9] {
                let back = p.t_from_lambda(p.lambda(t)).unwrap_or(f64::NAN);
                assert!((back - t).abs() < 1e-9, "{p:?}: t = {t} ↦ {back}");
            }
        }
        assert_eq!(Process::ddpm_default().t_from_lambda(0.0), None);
    }

    #[test]
    fn lambda_grid_inverses_agree() {
        // The closed form and the bisection invert the same λ; they differ only in rounding.
        for p in [
            Process::vp_default(),
            Process::ve_default(20.0),
            Process::Flow,
        ] {
            let (a, b) = (0.9, 0.02);
            let closed = p.lambda_grid(a, b, 17, LambdaInverse::ClosedForm);
            let bisect = p.lambda_grid(a, b, 17, LambdaInverse::Bisection);
            assert_eq!((closed[0], closed[17]), (a, b));
            assert_eq!((bisect[0], bisect[17]), (a, b));
            for (x, y) in closed.iter().zip(&bisect) {
                assert!((x - y).abs() < 1e-12, "{p:?}: {x} vs {y}");
            }
        }
    }

    #[test]
    fn sde_coefficients_reproduce_the_marginal_variance() {
        // d(σ²)/dt = 2f·σ² + g² (the variance ODE of dx = f·x dt + g dw), checked by central
        // differences.
        for p in [Process::vp_default(), Process::ve_default(20.0)] {
            for t in [0.05, 0.3, 0.8] {
                let h = 1e-6;
                let dv = (p.sigma(t + h).powi(2) - p.sigma(t - h).powi(2)) / (2.0 * h);
                let (f, g2) = p.sde(t).unwrap_or((f64::NAN, f64::NAN));
                let rhs = 2.0 * f * p.sigma(t).powi(2) + g2;
                assert!((dv - rhs).abs() < 1e-6 * (1.0 + rhs.abs()), "{p:?} t = {t}");
                let da = (p.alpha(t + h) - p.alpha(t - h)) / (2.0 * h);
                assert!((da / p.alpha(t) - f).abs() < 1e-6, "{p:?} t = {t}");
            }
        }
    }

    #[test]
    fn time_values_targets_and_metadata() {
        let d = Process::ddpm_default();
        assert_eq!(d.time_value(1.0), 0.0);
        assert_eq!(d.time_value(1000.0), 999.0);
        assert_eq!(d.time_from_value(999.0), 1000.0);
        let v = Process::vp_default();
        assert_eq!(v.time_value(1.0), 999.0);
        assert_eq!(v.time_value(0.5), 499.5);
        assert_eq!(d.target(0.5, -1.0), -1.0);
        assert_eq!(Process::Flow.target(0.5, -1.0), 1.5);
        assert_eq!(Process::Flow.prediction(), Prediction::Velocity);
        assert_eq!(v.prediction(), Prediction::Epsilon);
        assert_eq!(v.objective(), Objective::ScoreVp);
        assert_eq!(Process::ve_default(1.0).objective(), Objective::ScoreVe);
        assert_eq!(Process::Flow.objective(), Objective::Flow);
        assert_eq!(d.objective(), Objective::Ddpm);
        assert_eq!(d.noised(1.0, 1.0, 0.0), d.alpha(1.0) as f32);
    }

    #[test]
    fn continuous_rows_cover_the_training_range() {
        for p in [
            Process::vp_default(),
            Process::ve_default(20.0),
            Process::Flow,
        ] {
            let rows = p.schedule_rows();
            assert_eq!(rows.len(), CONTINUOUS_ROWS);
            let (lo, hi) = p.t_range();
            assert_eq!(rows[0].t, p.time_value(lo));
            assert_eq!(rows[CONTINUOUS_ROWS - 1].t, 999.0);
            assert_eq!(rows[CONTINUOUS_ROWS - 1].sigma, p.sigma(hi) as f32);
        }
    }

    #[test]
    fn validation_and_serde() {
        for p in processes() {
            assert_eq!(p.validate(), Ok(()));
            let json = serde_json::to_string(&p).unwrap_or_default();
            let back: Process = serde_json::from_str(&json).unwrap_or(Process::Flow);
            assert_eq!(back, p, "{json}");
        }
        let bad = Process::Vp {
            beta_min: 0.1,
            beta_max: 20.0,
            t_min: 0.0,
        };
        let e = bad
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("t_min"), "{e}");
        let bad = Process::Ddpm {
            steps: 10,
            betas: BetaSchedule::Linear {
                beta_start: 0.1,
                beta_end: 1.5,
            },
        };
        assert!(bad.validate().is_err());
    }
}
