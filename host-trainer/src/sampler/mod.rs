//! Sampler builders: the sampler mathematics in f64, emitted as runtime sampler programs.
//!
//! A program (see `microdiff_runtime::blob::program`) is straight-line code over at most 8
//! registers of one sample each: `EVAL` (one network evaluation), `LIN` (a linear combination
//! of at most 8 registers plus scaled fresh noise), `CLAMP` and `STEP`. Every sampler here is
//! such a program; this module computes its coefficients in f64 from a [`Process`] and writes
//! them as f32.
//!
//! # Program conventions
//! * `r0` is `x`. The program starts with `LIN r0 = prior_std·z` (noise draw 0;
//!   [`Process::prior_std`]) and one `STEP`, then has one `STEP` per sampler step, so a program
//!   of `N` steps reports `N + 1` steps to the runtime.
//! * Model outputs go to `r1` (and `r2` for the null class under guidance); further scratch
//!   registers are listed with each sampler. The output is `r0`.
//! * Classifier-free guidance (Ho & Salimans 2022) evaluates the caller's class and the null
//!   class and folds `ε̃ = ε_∅ + w·(ε_c − ε_∅) = w·ε_c + (1 − w)·ε_∅` into the `LIN`
//!   coefficients: no extra instruction, twice the evaluations. For flow the same is done with
//!   the velocity.
//! * Noise: the k-th noisy `LIN` uses draw k (the runtime numbers them in program order).
//!
//! # Samplers and the processes they apply to
//!
//! | [`SamplerKind`] | string | processes | grid (steps `N`) | evaluations | order |
//! |---|---|---|---|---|---|
//! | DDPM ancestral ([`ancestral`]) | `ddpm[:N][:var=beta\|tilde]` | DDPM, VP | DDPM: trailing, VP: uniform t | N | — (stochastic) |
//! | DDIM ([`ddim`]) | `ddim:N[:eta=η][:clip=c][:spacing=…]` | DDPM, VP | DDPM: `spacing`, VP: uniform t | N | 1 |
//! | DPM-Solver++(2M) ([`dpm_solver`]) | `dpmpp2m:N` | DDPM, VP, VE | DDPM: trailing, VP/VE: uniform λ | N | 2 |
//! | Euler ([`ode`]) | `euler:N` | DDPM, VP, VE, flow | DDPM: trailing, VP/VE: uniform λ, flow: uniform t | N | 1 |
//! | Heun ([`ode`]) | `heun:N` | DDPM, VP, VE, flow | as Euler | 2N − 1 | 2 |
//! | Euler–Maruyama ([`sde`]) | `em:N` | VP, VE | uniform t | N | 1 (weak) |
//! | predictor–corrector ([`sde`]) | `pc:N[:corrector=M][:snr=r]` | VP, VE | uniform t | N(M + 1) | — |
//!
//! Evaluations double with guidance. DDPM's grids end at step 0 (ᾱ₀ = 1, the data); VP and VE
//! grids end at `t_min`, where the sample carries noise of standard deviation σ(t_min)
//! (≈ 0.0105 for [`Process::vp_default`], 0.01 for VE); flow ends at t = 1.
//!
//! The orders are those measured on VP, VE and flow. On DDPM's grid every sampler's last step
//! jumps to σ = 0 with a single evaluation (returning x̂₀), whose error is about σ² at the last
//! nonzero grid step, ∝ 1/N for large N: DDIM/Euler are first order there, Heun and
//! DPM-Solver++ do better (orders ≈ 1.5 and 2–3 for N ≤ 128) but not asymptotically. How the
//! orders are measured without a trained network is in `tests.rs`; [`simulate`] runs programs
//! on the host in f64.

pub mod ancestral;
mod asm;
pub mod ddim;
pub mod dpm_solver;
pub mod ode;
pub mod sde;
pub mod simulate;
mod spec;
#[cfg(test)]
mod tests;

pub use spec::{DEFAULT_CORRECTOR_STEPS, DEFAULT_DDPM_STEPS, DEFAULT_SNR};

use microdiff_runtime::blob::ProgramBuilder;
use microdiff_runtime::blob::program::{self, NAME_LEN};

use crate::process::{LambdaInverse, Process, ProcessError};
use microdiff_runtime::blob::meta::Prediction;

/// How `N` sampling timesteps are picked from DDPM's `T` training steps (diffusers'
/// `timestep_spacing`; Lin et al. 2024, "Common diffusion noise schedules and sample steps are
/// flawed", Table 2). Steps are 1-based here; the final target is always step 0 (ᾱ₀ = 1).
/// Only DDPM's discrete grid is spaced this way; DDIM on the VP SDE uses uniform times.
///
/// Rounding is to the nearest step with ties to even, on the exact quotient ([`div_round_even`]).
/// diffusers rounds ties to even too (numpy's `round`) but of a float quotient, so the grids are
/// equal whenever that quotient is exact — for `T = 1000`, every `N ≤ 200` except trailing
/// `N ∈ {48, 61, 96, 103, 112, 121, 122, 144, 176, 192}` and linspace `N ∈ {27, 31, 47, 53, 61,
/// 93, 103, 105, 107, 121, 185, 191, 199}`, where numpy's `arange` / `linspace` arithmetic moves a
/// value across a half (compared with numpy 2 by hand; the tests pin `N = 7, 13, 16, 32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spacing {
    /// `τ_i = i·⌊T/N⌋ + 1`, i = 0..N−1 (DDIM's and Stable Diffusion's original choice; does not
    /// start at T).
    Leading,
    /// `τ_i = round(i·T/N)`, i = 1..=N (starts at T; Lin et al.'s recommendation; the default,
    /// and what `tests/src/textbook.rs` uses), ties to even.
    Trailing,
    /// `τ_i = round(i·(T − 1)/(N − 1)) + 1`, i = 0..N−1 (numpy `linspace`; starts at T), ties
    /// to even.
    Linspace,
}

/// Which variance the ancestral sampler injects (Ho et al. 2020, §3.2: both give similar
/// results).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AncestralVariance {
    /// `σ² = β_t`.
    Beta,
    /// `σ² = β̃_t = β_t·(1 − ᾱ_{t−1})/(1 − ᾱ_t)`, the posterior variance.
    BetaTilde,
}

/// A sampler and its parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum SamplerKind {
    /// DDPM ancestral sampling (Ho et al. 2020, Algorithm 2), respaced to `N` steps as Nichol &
    /// Dhariwal 2021 §4 when `N < T`.
    DdpmAncestral {
        /// The injected variance.
        variance: AncestralVariance,
        /// Clip the predicted x̂₀ to `[−c, c]` before forming the posterior mean (Ho et al.'s
        /// reference code does, with c = 1, for data scaled to [−1, 1]).
        clip: Option<f64>,
    },
    /// DDIM (Song, Meng & Ermon 2021, eq. 12) with stochasticity `eta` and optional x̂₀
    /// clipping to `[−clip, clip]`.
    Ddim {
        /// η ∈ [0, 1]: 0 deterministic, 1 ancestral with β̃.
        eta: f64,
        /// DDPM timestep spacing.
        spacing: Spacing,
        /// Clip the predicted x̂₀ to `[−c, c]`.
        clip: Option<f64>,
    },
    /// DPM-Solver++(2M), multistep second order in data-prediction form (Lu et al. 2022,
    /// "DPM-Solver++", Algorithm 2), first order on the first and (for `N < 15` or a final
    /// σ = 0) last step.
    DpmSolverPp2M {
        /// Clip each data prediction x̂₀ to `[−c, c]` (Lu et al. 2022 §5 recommend such
        /// thresholding for pixel-space models).
        clip: Option<f64>,
    },
    /// Euler on the probability-flow ODE (diffusions) or the flow ODE.
    Euler,
    /// Heun (explicit trapezoid) on the same ODEs (Karras et al. 2022, Algorithm 1).
    Heun,
    /// Euler–Maruyama on the reverse-time SDE (Song et al. 2021, eq. 6).
    EulerMaruyama,
    /// Reverse-SDE (Euler–Maruyama) predictor + annealed Langevin corrector (Song et al. 2021,
    /// Algorithms 4 and 5).
    PredictorCorrector {
        /// Langevin steps per time step.
        corrector_steps: usize,
        /// Target signal-to-noise ratio `r` of the Langevin step (0.16 in Song et al.).
        snr: f64,
    },
}

/// A sampler with a step count and an optional guidance weight.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerSpec {
    /// Which sampler.
    pub kind: SamplerKind,
    /// Sampler steps `N`.
    pub steps: usize,
    /// Classifier-free guidance weight `w` (`None`: one evaluation per model call, the
    /// caller's class only).
    pub guidance: Option<f64>,
}

/// Why a sampler program cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SamplerError {
    /// The sampler is not defined for this process.
    #[error("sampler `{sampler}` does not apply to the {process} process: {hint}")]
    NotApplicable {
        /// Sampler name.
        sampler: &'static str,
        /// Process name.
        process: &'static str,
        /// Why, and what to use instead.
        hint: &'static str,
    },
    /// The step count is out of range.
    #[error("`{sampler}` with {steps} steps: at most {max} ({why})")]
    TooManySteps {
        /// Sampler name.
        sampler: &'static str,
        /// Steps asked for.
        steps: usize,
        /// The most allowed.
        max: usize,
        /// What limits it.
        why: &'static str,
    },
    /// A parameter is out of range.
    #[error("bad sampler parameter {name} = {value}: {why}")]
    BadParameter {
        /// Parameter.
        name: &'static str,
        /// Value given.
        value: String,
        /// The allowed range.
        why: &'static str,
    },
    /// A sampler string does not parse.
    #[error("cannot parse sampler `{input}`: {why}")]
    Parse {
        /// The string.
        input: String,
        /// What is wrong.
        why: String,
    },
    /// The program name is not 1 to 16 printable ASCII characters without spaces.
    #[error(
        "program name `{name}` must be 1 to {NAME_LEN} printable ASCII characters without spaces"
    )]
    BadName {
        /// The name.
        name: String,
    },
    /// A coefficient came out infinite or NaN (extreme process parameters).
    #[error(
        "`{sampler}`: coefficient of step {step} is not finite (process parameters too extreme?)"
    )]
    NonFinite {
        /// Sampler name.
        sampler: &'static str,
        /// The step (1-based, after the initial draw).
        step: usize,
    },
    /// The process itself is invalid.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// The network's prediction has no map to what the process's samplers take.
    #[error(transparent)]
    Prediction(#[from] crate::prediction::PredictionError),
}

/// A program's instructions as JSON objects, in order — what `microdiff inspect --json` and the
/// Python package's `Blob.instructions` show: `{"op": "eval", "dst", "src", "class": "caller" |
/// "null", "time"}`, `{"op": "lin", "dst", "terms": [[register, coefficient], …], "noise":
/// coefficient | null}`, `{"op": "clamp", "reg", "lo", "hi"}`, `{"op": "step"}`. Coefficients
/// are the stored f32 values, widened exactly.
pub fn instructions_json(
    p: &microdiff_runtime::blob::program::Program<'_>,
) -> Result<Vec<serde_json::Value>, microdiff_runtime::Error> {
    use microdiff_runtime::blob::program::{ClassSel, Instr};
    use serde_json::json;
    p.instructions()
        .map(|i| {
            Ok(match i?.1 {
                Instr::Eval {
                    dst,
                    src,
                    class,
                    time,
                } => {
                    let class = match class {
                        ClassSel::Caller => "caller",
                        ClassSel::Null => "null",
                    };
                    json!({"op": "eval", "dst": dst, "src": src, "class": class, "time": time})
                }
                Instr::Lin { dst, noise, terms } => {
                    let terms: Vec<serde_json::Value> =
                        terms.iter().map(|(r, c)| json!([r, c])).collect();
                    json!({"op": "lin", "dst": dst, "terms": terms, "noise": noise})
                }
                Instr::Clamp { reg, lo, hi } => {
                    json!({"op": "clamp", "reg": reg, "lo": lo, "hi": hi})
                }
                Instr::Step => json!({"op": "step"}),
            })
        })
        .collect()
}

/// Builds the program for `spec` on `process`, called `name`, for a network that predicts the
/// process's own target ([`Process::prediction`]).
pub fn build(
    process: &Process,
    spec: &SamplerSpec,
    name: &str,
) -> Result<ProgramBuilder, SamplerError> {
    build_for(process, process.prediction(), spec, name)
}

/// [`build`] for a network that outputs `prediction` (an imported one): its output is mapped
/// to the process's target inside the program ([`crate::prediction`]), so the program has the
/// same instructions as [`build`]'s with other `LIN` coefficients.
pub fn build_for(
    process: &Process,
    prediction: Prediction,
    spec: &SamplerSpec,
    name: &str,
) -> Result<ProgramBuilder, SamplerError> {
    process.validate()?;
    spec.validate()?;
    check_name(name)?;
    check_size(spec)?;
    crate::prediction::check(process, prediction)?;
    let ts = grid(process, spec)?;
    let a = asm::Asm::new(process, prediction, spec.guidance);
    let prog = match spec.kind {
        SamplerKind::DdpmAncestral { variance, clip } => {
            ancestral::build(process, &ts, variance, clip, a)
        }
        SamplerKind::Ddim { eta, clip, .. } => ddim::build(process, &ts, eta, clip, a),
        SamplerKind::DpmSolverPp2M { clip } => dpm_solver::build(process, &ts, clip, a),
        SamplerKind::Euler => ode::build(process, &ts, false, a),
        SamplerKind::Heun => ode::build(process, &ts, true, a),
        SamplerKind::EulerMaruyama => sde::build(process, &ts, 0, 0.0, a),
        SamplerKind::PredictorCorrector {
            corrector_steps,
            snr,
        } => sde::build(process, &ts, corrector_steps, snr, a),
    };
    prog.finish(name, spec.kind.name())
}

/// Most `STEP`s and `EVAL`s one program may hold (u16 counts in the program header).
const MAX_COUNT: usize = u16::MAX as usize;

/// Rejects specs whose program would not fit the header's u16 step and evaluation counts
/// (checked before anything is built).
fn check_size(spec: &SamplerSpec) -> Result<(), SamplerError> {
    let fits = |n: usize| {
        n < MAX_COUNT
            && SamplerSpec {
                steps: n,
                ..spec.clone()
            }
            .evaluations()
                <= MAX_COUNT
    };
    if fits(spec.steps) {
        return Ok(());
    }
    // Evaluations grow with the steps: bisect for the largest count that fits.
    let (mut lo, mut hi) = (0usize, spec.steps);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Err(SamplerError::TooManySteps {
        sampler: spec.kind.name(),
        steps: spec.steps,
        max: lo,
        why: "a program holds at most 65535 steps (one more than the sampler's) and 65535 \
              network evaluations",
    })
}

/// The runtime's program-name rule ([`program::check_name`]), as a sampler error.
fn check_name(name: &str) -> Result<(), SamplerError> {
    program::check_name(name.as_bytes()).map_err(|_| SamplerError::BadName { name: name.into() })
}

/// The sampler's time grid `t_N, …, t_0`: `steps + 1` times from where sampling starts
/// evaluating to where it ends (DDPM: integer steps ending at 0; VP/VE: ending at `t_min`;
/// flow: 0 → 1). Step `i` goes from `grid[i]` to `grid[i + 1]`.
pub fn grid(process: &Process, spec: &SamplerSpec) -> Result<Vec<f64>, SamplerError> {
    use SamplerKind as K;
    let sampler = spec.kind.name();
    let n = spec.steps;
    if n == 0 {
        return Err(SamplerError::BadParameter {
            name: "steps",
            value: "0".into(),
            why: "a sampler needs at least one step",
        });
    }
    let not = |hint| {
        Err(SamplerError::NotApplicable {
            sampler,
            process: process.name(),
            hint,
        })
    };
    match (process, &spec.kind) {
        (Process::Ddpm { steps: big_t, .. }, kind) => {
            let spacing = match kind {
                K::Ddim { spacing, .. } => *spacing,
                K::EulerMaruyama | K::PredictorCorrector { .. } => {
                    return not(
                        "the reverse SDE needs a continuous-time process (vp or ve); for DDPM use \
                         `ddpm` (ancestral) or `ddim` with eta > 0",
                    );
                }
                _ => Spacing::Trailing,
            };
            if n > *big_t {
                return Err(SamplerError::TooManySteps {
                    sampler,
                    steps: n,
                    max: *big_t,
                    why: "a DDPM model is only trained at its T steps",
                });
            }
            let mut taus = ddpm_timesteps(*big_t, n, spacing);
            taus.reverse();
            taus.push(0);
            Ok(taus.into_iter().map(|t| t as f64).collect())
        }
        (Process::Flow, K::Euler | K::Heun) => Ok(uniform(0.0, 1.0, n)),
        (Process::Flow, _) => not("a flow model predicts a velocity; use `euler` or `heun`"),
        (Process::Ve { .. }, K::DdpmAncestral { .. } | K::Ddim { .. }) => not(
            "DDPM ancestral sampling and DDIM are defined for variance-preserving processes; for \
             VE use `euler` (DDIM's VE form), `heun`, `dpmpp2m`, `em` or `pc`",
        ),
        (Process::Vp { t_min, .. } | Process::Ve { t_min, .. }, kind) => match kind {
            // Lu et al. 2022 step uniformly in λ ("logSNR" skip type) for the ODE solvers:
            // the solution is smooth in λ, so the promised order shows; for VE, λ = −ln σ is
            // linear in t and this is the uniform-t grid.
            K::DpmSolverPp2M { .. } | K::Euler | K::Heun => {
                if matches!(process, Process::Ve { .. }) {
                    return Ok(uniform(1.0, *t_min, n));
                }
                // The closed-form inverse of λ: these grids are pinned by the golden blobs.
                Ok(process.lambda_grid(1.0, *t_min, n, LambdaInverse::ClosedForm))
            }
            // Song et al.'s uniform time steps for DDIM on VP and the SDE samplers.
            _ => Ok(uniform(1.0, *t_min, n)),
        },
    }
}

/// `n + 1` equally spaced points from `a` to `b` (both included).
fn uniform(a: f64, b: f64, n: usize) -> Vec<f64> {
    (0..=n)
        .map(|i| {
            if i == n {
                b
            } else {
                a + (b - a) * i as f64 / n as f64
            }
        })
        .collect()
}

/// The DDPM timesteps `τ_1 < … < τ_N` (1-based, so the network sees `τ − 1`) for `n ≤ t`
/// sampling steps out of `t` (see [`Spacing`]).
pub fn ddpm_timesteps(t: usize, n: usize, spacing: Spacing) -> Vec<usize> {
    match spacing {
        Spacing::Trailing => (1..=n).map(|i| div_round_even(i * t, n)).collect(),
        Spacing::Leading => (0..n).map(|i| i * (t / n) + 1).collect(),
        Spacing::Linspace => (0..n)
            .map(|i| {
                if n == 1 {
                    1
                } else {
                    div_round_even(i * (t - 1), n - 1) + 1
                }
            })
            .collect(),
    }
}

/// `a / b` rounded to the nearest integer, ties to even (numpy's `round`, which diffusers
/// applies), exactly: integer arithmetic, no float quotient to misplace a tie. `b > 0`.
pub fn div_round_even(a: usize, b: usize) -> usize {
    let (q, r) = (a / b, a % b);
    match (2 * r).cmp(&b) {
        std::cmp::Ordering::Greater => q + 1,
        std::cmp::Ordering::Equal => q + (q & 1),
        std::cmp::Ordering::Less => q,
    }
}

/// α, σ and the network time value at each grid point (DDPM from its ᾱ table).
#[derive(Debug, Clone)]
pub(crate) struct Path {
    /// Grid times.
    pub t: Vec<f64>,
    /// α at each grid time.
    pub alpha: Vec<f64>,
    /// σ at each grid time.
    pub sigma: Vec<f64>,
    /// What the network sees at each grid time.
    pub time: Vec<f32>,
}

impl Path {
    pub(crate) fn new(process: &Process, ts: &[f64]) -> Self {
        let ab = process.alpha_bars();
        let (alpha, sigma) = if ab.is_empty() {
            (
                ts.iter().map(|&t| process.alpha(t)).collect(),
                ts.iter().map(|&t| process.sigma(t)).collect(),
            )
        } else {
            let at = |t: f64| ab.get(t as usize).copied().unwrap_or(f64::NAN);
            (
                ts.iter().map(|&t| at(t).sqrt()).collect(),
                ts.iter().map(|&t| (1.0 - at(t)).sqrt()).collect(),
            )
        };
        Path {
            t: ts.to_vec(),
            alpha,
            sigma,
            time: ts.iter().map(|&t| process.time_value(t)).collect(),
        }
    }

    /// Number of steps.
    pub(crate) fn steps(&self) -> usize {
        self.t.len() - 1
    }

    /// Grid point `i` as an evaluation point.
    pub(crate) fn at(&self, i: usize) -> asm::At {
        asm::At {
            time: self.time[i],
            alpha: self.alpha[i],
            sigma: self.sigma[i],
        }
    }
}
