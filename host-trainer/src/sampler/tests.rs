//! Sampler tests on Gaussian data, where the ideal network is known in closed form.
//!
//! # The exact model
//! Let the data be `x₀ ~ N(μ, s²)` (per element, independently) and `x_t = α·x₀ + σ·ε`. Then
//! `x_t ~ N(αμ, v)` with `v = α²s² + σ²`, and `(x₀, ε, x_t)` are jointly Gaussian with
//! `Cov(ε, x_t) = σ`, `Cov(x₀, x_t) = αs²`. Conditional expectations of jointly Gaussian
//! variables are affine, so the minimum-MSE networks are
//! * ε-prediction: `ε̂(x, t) = E[ε | x_t = x] = σ·(x − αμ)/v`
//!   (equivalently the score `∇log p_t(x) = −(x − αμ)/v = −ε̂/σ`);
//! * flow velocity (`α = t`, `σ = 1 − t`): `v̂(x, t) = E[x₀ − ε | x_t = x]
//!   = μ + (αs² − σ)·(x − αμ)/v`.
//!
//! Both are affine in `x`, so every `LIN` and `EVAL` of a program maps Gaussians to
//! Gaussians: [`Program::moments`] pushes mean and variance through a program exactly, with no
//! Monte-Carlo error, and the probability-flow ODE, the reverse SDE and the flow ODE all carry
//! `N(α(t)μ, v(t))` at every t.
//!
//! # How orders are measured
//! A program starts from the exact marginal at its first grid time (overriding its prior
//! draw, so the prior's mismatch — `α(1) ≈ 0.0066` for VP — is not mixed in) and its output is
//! compared with the exact marginal at its last grid time (data for DDPM and flow; `t_min` for
//! VP and VE). The error is `e(N) = |Δmean| + |Δvariance|`; the observed order between `N` and
//! `2N` is `log₂(e(N)/e(2N))` (1 for first order: the error halves; 2: it quarters). Windows of
//! `N` are chosen where the error is well above the f32 floor of the coefficients (≈ 1e-6) and
//! out of the pre-asymptotic range. [`convergence_orders`] prints the full table.
//!
//! Monte-Carlo tests run the same programs with the runtime's noise, check the sample moments
//! against [`Program::moments`] (which validates the noise wiring), and one test runs a
//! program on the real runtime to validate the simulator itself.

use std::collections::HashMap;

use microdiff_kernels::Dtype;
use microdiff_runtime::blob::program::{ClassSel, Instr, Terms};
use microdiff_runtime::blob::{BlobBuilder, ProgramBuilder};

use super::simulate::{Gaussian, Program};
use super::*;
use crate::process::{BetaSchedule, Process};

/// Data mean and standard deviation.
const MU: f64 = 0.7;
const S: f64 = 0.3;

/// The exact network of Gaussian data `N(mu, s²)` for one process.
struct Oracle {
    process: Process,
    /// ᾱ table for DDPM.
    ab: Vec<f64>,
    /// Grid time of each time value the program uses (so the oracle is evaluated at the exact
    /// grid time, not at the f32-rounded `999·t`, which would add an O(1e-7) model error).
    times: HashMap<u32, f64>,
    mu: f64,
    s: f64,
}

impl Oracle {
    fn new(process: &Process, grid: &[f64], mu: f64, s: f64) -> Self {
        Oracle {
            process: process.clone(),
            ab: process.alpha_bars(),
            times: grid
                .iter()
                .map(|&t| (process.time_value(t).to_bits(), t))
                .collect(),
            mu,
            s,
        }
    }

    fn alpha_sigma(&self, t: f64) -> (f64, f64) {
        if self.ab.is_empty() {
            (self.process.alpha(t), self.process.sigma(t))
        } else {
            let ab = self.ab[t as usize];
            (ab.sqrt(), (1.0 - ab).sqrt())
        }
    }

    /// `(gain, offset)` of the exact network at a time value.
    fn affine(&self, time: f32) -> (f64, f64) {
        let t = self
            .times
            .get(&time.to_bits())
            .copied()
            .unwrap_or_else(|| self.process.time_from_value(time));
        let (a, sg) = self.alpha_sigma(t);
        let v = a * a * self.s * self.s + sg * sg;
        match self.process {
            Process::Flow => {
                let k = (a * self.s * self.s - sg) / v;
                (k, self.mu - k * a * self.mu)
            }
            _ => (sg / v, -sg * a * self.mu / v),
        }
    }

    /// The exact network applied to a sample.
    fn eval(&self, x: &[f64], time: f32) -> Vec<f64> {
        let (g, o) = self.affine(time);
        x.iter().map(|x| g * x + o).collect()
    }

    /// The marginal `N(αμ, α²s² + σ²)` at grid time `t`.
    fn marginal(&self, t: f64) -> Gaussian {
        let (a, sg) = self.alpha_sigma(t);
        Gaussian {
            mean: a * self.mu,
            var: a * a * self.s * self.s + sg * sg,
        }
    }
}

fn program(process: &Process, spec: &SamplerSpec) -> Program {
    let b = build(process, spec, &spec.default_name()).unwrap_or_else(|e| panic!("{}: {e}", spec));
    Program::decode(&b).unwrap_or_else(|e| panic!("{spec}: {e}"))
}

/// Output moments of `spec` on `process` for data `N(MU, S²)`, from the exact marginal at the
/// first grid time (`exact_start`) or from the program's own prior, and the exact marginal at
/// the last grid time.
fn run_moments(process: &Process, spec: &SamplerSpec, exact_start: bool) -> (Gaussian, Gaussian) {
    let g = grid(process, spec).unwrap_or_default();
    let o = Oracle::new(process, &g, MU, S);
    let start = o.marginal(g[0]);
    let got = program(process, spec)
        .moments(
            |t, _| o.affine(t),
            exact_start.then_some((start.mean, start.var.sqrt())),
        )
        .unwrap_or_else(|e| panic!("{spec}: {e}"));
    (got, o.marginal(g[g.len() - 1]))
}

/// `e(N) = |Δmean| + |Δvar|` against the exact marginal at the end of the grid.
fn discretisation_error(process: &Process, spec: &SamplerSpec) -> f64 {
    let (got, want) = run_moments(process, spec, true);
    (got.mean - want.mean).abs() + (got.var - want.var).abs()
}

/// The sampler kind of a spec string; a missing step count is filled in.
fn kind(s: &str) -> SamplerKind {
    s.parse::<SamplerSpec>()
        .or_else(|_| format!("{s}:1").parse::<SamplerSpec>())
        .unwrap_or_else(|e| panic!("{e}"))
        .kind
}

fn ve() -> Process {
    // The VE prior N(0, σ_max²) ignores the data's mean and spread; transported to the end,
    // its mean error is about μ·s/σ_max, so σ_max must dwarf the data (Song & Ermon 2020,
    // technique 1: the largest distance between data points; here ≈ 2, and the margin keeps
    // the prior's error at 0.4 %).
    Process::ve_default(50.0)
}

/// One convergence claim: observed orders over consecutive doublings of `ns` in `[lo, hi]`.
struct Claim {
    process: Process,
    sampler: &'static str,
    ns: &'static [usize],
    lo: f64,
    hi: f64,
}

/// First order: the error halves per doubling. The window for each case starts where the
/// observed order has settled to within 0.2 (see the printed table).
const FIRST: (f64, f64) = (0.8, 1.3);
/// Second order: the error quarters per doubling.
const SECOND: (f64, f64) = (1.75, 2.5);

fn claims() -> Vec<Claim> {
    let c = |process: Process, sampler, ns, (lo, hi): (f64, f64)| Claim {
        process,
        sampler,
        ns,
        lo,
        hi,
    };
    const N1: &[usize] = &[32, 64, 128, 256];
    const N2: &[usize] = &[16, 32, 64, 128];
    vec![
        // The continuous processes: clean orders.
        c(Process::vp_default(), "ddim", N1, FIRST),
        c(Process::vp_default(), "euler", N1, FIRST),
        c(Process::vp_default(), "heun", N2, SECOND),
        c(Process::vp_default(), "dpmpp2m", N2, SECOND),
        c(ve(), "euler", N1, FIRST),
        c(ve(), "heun", N2, SECOND),
        c(ve(), "dpmpp2m", N2, SECOND),
        c(Process::Flow, "euler", N1, FIRST),
        c(Process::Flow, "heun", N2, SECOND),
        // Euler–Maruyama: weak order ≥ 1 (on VE the variance error happens to fall like N⁻²:
        // the reverse SDE is linear with additive noise and the leading terms cancel).
        c(Process::vp_default(), "em", N1, (0.8, 3.5)),
        c(ve(), "em", &[32, 64, 128], (0.8, 3.5)),
        // DDPM's grid: the last step always jumps to σ = 0 with one evaluation (x̂₀), whose
        // error is of the size of σ² at the last nonzero grid step, ∝ 1/N for large N. DDIM
        // is first order; Heun and DPM-Solver++ gain over it while the linear schedule's
        // quadratic term dominates that σ² (N ≲ 100) and fall back towards first order beyond.
        c(Process::ddpm_default(), "ddim", N1, (0.75, 1.3)),
        c(Process::ddpm_default(), "euler", N1, (0.75, 1.3)),
        c(
            Process::ddpm_default(),
            "heun",
            &[16, 32, 64, 128],
            (1.0, 2.5),
        ),
        c(
            Process::ddpm_default(),
            "dpmpp2m",
            &[16, 32, 64, 128],
            (1.5, 4.0),
        ),
    ]
}

/// Every sampler/process pair with the error at each N and the observed orders (`cargo test
/// convergence_orders -- --nocapture`), checked against [`claims`].
#[test]
fn convergence_orders() {
    let procs = [
        Process::ddpm_default(),
        Process::vp_default(),
        ve(),
        Process::Flow,
    ];
    let samplers = [
        "ddpm",
        "ddpm:1:var=tilde",
        "ddim",
        "ddim:1:eta=1",
        "dpmpp2m",
        "euler",
        "heun",
        "em",
        "pc",
    ];
    for p in &procs {
        for s in samplers {
            let k = kind(s);
            let mut line = format!("{:4} {:18}", p.name(), s);
            let mut last: Option<f64> = None;
            for n in [8usize, 16, 32, 64, 128, 256, 512] {
                let spec = SamplerSpec::new(k.clone(), n);
                if grid(p, &spec).is_err() {
                    line += " (not applicable)";
                    break;
                }
                let e = discretisation_error(p, &spec);
                let order = last.map_or(String::new(), |l| format!(" ({:.2})", (l / e).log2()));
                line += &format!(" {n}:{e:.1e}{order}");
                last = Some(e);
            }
            eprintln!("{line}");
        }
    }
    for c in claims() {
        let spec = |n| SamplerSpec::new(kind(c.sampler), n);
        let e: Vec<f64> =
            c.ns.iter()
                .map(|&n| discretisation_error(&c.process, &spec(n)))
                .collect();
        for (w, n) in e.windows(2).zip(c.ns) {
            let order = (w[0] / w[1]).log2();
            assert!(
                (c.lo..=c.hi).contains(&order),
                "{} on {}: order {order:.2} from N = {n} to {} (errors {e:?}), expected {}..{}",
                c.sampler,
                c.process.name(),
                2 * n,
                c.lo,
                c.hi
            );
        }
    }
}

/// Largest error in mean or variance allowed at the largest step counts below, relative to
/// the data variance s² = 0.09: the slowest converging samplers (ancestral with β̃ and the
/// PC sampler, both ≈ first order with a large constant) sit at about 5 % at 512 steps.
const CONVERGED: f64 = 0.06 * S * S;

/// Started from their own prior (not the exact marginal), every sampler approaches the data
/// (DDPM, flow) or the data blurred by σ(t_min) (VP, VE), and the discretisation error shrinks
/// with N (also for the samplers without a clean rate: ancestral and predictor–corrector).
#[test]
fn samplers_approach_the_data_distribution() {
    let cases: &[(Process, &str)] = &[
        (Process::ddpm_default(), "ddpm:1000"),
        (Process::ddpm_default(), "ddpm:1000:var=tilde"),
        (Process::ddpm_default(), "ddim:500"),
        (Process::ddpm_default(), "ddim:500:eta=1"),
        (Process::ddpm_default(), "dpmpp2m:128"),
        (Process::ddpm_default(), "heun:128"),
        (Process::vp_default(), "ddpm:512"),
        (Process::vp_default(), "ddim:512:eta=0.5"),
        (Process::vp_default(), "dpmpp2m:64"),
        (Process::vp_default(), "euler:512"),
        (Process::vp_default(), "heun:64"),
        (Process::vp_default(), "em:512"),
        (Process::vp_default(), "pc:512"),
        (ve(), "dpmpp2m:64"),
        (ve(), "euler:512"),
        (ve(), "heun:64"),
        (ve(), "em:512"),
        (ve(), "pc:512:corrector=2"),
        (Process::Flow, "euler:512"),
        (Process::Flow, "heun:64"),
    ];
    for (p, s) in cases {
        let spec: SamplerSpec = s.parse().unwrap_or_else(|e| panic!("{e}"));
        let (got, want) = run_moments(p, &spec, false);
        // The end of the grid is the data, up to σ(t_min)² ≈ 1e-4 for VP and VE.
        assert!((want.mean - MU).abs() < 1e-4 && (want.var - S * S).abs() < 2e-4);
        let err = (got.mean - want.mean).abs().max((got.var - want.var).abs());
        assert!(err < CONVERGED, "{s} on {}: {got:?} vs {want:?}", p.name());
        // The discretisation error (from the exact start) is larger at a quarter of the steps.
        let coarse = SamplerSpec {
            steps: spec.steps / 4,
            ..spec.clone()
        };
        let (fine, rough) = (
            discretisation_error(p, &spec),
            discretisation_error(p, &coarse),
        );
        assert!(
            rough > fine,
            "{s} on {}: {rough:.2e} at N/4 vs {fine:.2e}",
            p.name()
        );
    }
}

/// Monte-Carlo standard errors allowed between sample moments and [`Program::moments`].
const MC_SIGMAS: f64 = 5.0;

/// Sample moments of many runs (the runtime's noise) agree with the exact propagation: the
/// noise draws are wired as the moments assume.
#[test]
fn monte_carlo_matches_exact_moments() {
    // Elements of one draw are independent samples, so one run of 16 384 elements is 16 384
    // samples; two streams make it 32 768.
    const DIM: usize = 16_384;
    let cases: &[(Process, &str)] = &[
        (Process::ddpm_default(), "ddpm:100:var=tilde"),
        (Process::ddpm_default(), "ddim:20:eta=0.5"),
        (Process::vp_default(), "em:50"),
        (ve(), "pc:25:corrector=2"),
        (Process::Flow, "heun:4"),
    ];
    for (p, s) in cases {
        let spec: SamplerSpec = s.parse().unwrap_or_else(|e| panic!("{e}"));
        let g = grid(p, &spec).unwrap_or_default();
        let o = Oracle::new(p, &g, MU, S);
        let prog = program(p, &spec);
        let exact = prog
            .moments(|t, _| o.affine(t), None)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut xs = Vec::new();
        for stream in 0..2 {
            xs.extend(
                prog.run(|x, t, _| o.eval(x, t), DIM, 42, stream)
                    .unwrap_or_else(|e| panic!("{e}")),
            );
        }
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let se_mean = (exact.var / n).sqrt();
        let se_var = exact.var * (2.0 / (n - 1.0)).sqrt();
        assert!(
            (mean - exact.mean).abs() < MC_SIGMAS * se_mean,
            "{s}: mean {mean} vs {}",
            exact.mean
        );
        assert!(
            (var - exact.var).abs() < MC_SIGMAS * se_var,
            "{s}: var {var} vs {}",
            exact.var
        );
    }
}

/// The simulator agrees with the runtime's own interpreter (f32) on a real blob: an affine
/// network `ε = a·x + b` of 4 elements, a guided predictor–corrector program (noisy LINs,
/// null-class EVALs) and a clipped DDIM.
#[test]
fn simulator_matches_the_runtime() {
    const A: f32 = 0.5;
    const B: f32 = 0.1;
    const DIM: usize = 4;
    /// f32 against f64 over a few dozen instructions.
    const TOL: f64 = 1e-4;
    let cases = [
        (
            Process::vp_default(),
            SamplerSpec::new(kind("pc"), 20).with_guidance(1.5),
        ),
        (
            Process::ddpm_default(),
            "ddim:10:eta=0.3:clip=1"
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
        ),
    ];
    for (p, spec) in cases {
        let name = spec.default_name();
        let prog = build(&p, &spec, &name).unwrap_or_else(|e| panic!("{e}"));
        let mut b = BlobBuilder::new(&[DIM as u16], p.objective(), p.prediction());
        b.classes(2, Some(1));
        let mut w = vec![0.0f32; DIM * DIM];
        (0..DIM).for_each(|i| w[i * DIM + i] = A);
        let wt = b
            .tensor(Dtype::F32, DIM as u32, DIM as u32, &w)
            .unwrap_or_else(|e| panic!("{e}"));
        let bt = b
            .tensor(Dtype::F32, DIM as u32, 1, &[B; DIM])
            .unwrap_or_else(|e| panic!("{e}"));
        let out = b.linear(b.input(), wt, Some(bt));
        b.output(out).program(&prog);
        let blob = b.build().unwrap_or_else(|e| panic!("{e}"));
        let model = microdiff_runtime::Model::parse(&blob).unwrap_or_else(|e| panic!("{e}"));
        let sim = Program::decode(&prog).unwrap_or_else(|e| panic!("{e}"));
        for stream in 0..3 {
            let program = model.program(&name).unwrap_or_else(|e| panic!("{e}"));
            let mut arena = vec![0u8; model.arena_bytes()];
            let mut got = vec![0.0f32; DIM];
            let ss = microdiff_runtime::SampleRequest {
                seed: 7,
                stream,
                class: 0,
            };
            microdiff_runtime::sample(&model, program, &mut arena, ss, &mut got)
                .unwrap_or_else(|e| panic!("{e}"));
            let want = sim
                .run(
                    |x, _, _| x.iter().map(|x| A as f64 * x + B as f64).collect(),
                    DIM,
                    7,
                    stream,
                )
                .unwrap_or_else(|e| panic!("{e}"));
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (*g as f64 - w).abs() < TOL * (1.0 + w.abs()),
                    "{name}: {got:?} vs {want:?}"
                );
            }
        }
    }
}

fn all_specs() -> Vec<&'static str> {
    vec![
        "ddpm:50",
        "ddpm:50:var=tilde",
        "ddim:12",
        "ddim:12:eta=0.7",
        "ddim:12:eta=0.7:clip=1",
        "ddpm:12:clip=1",
        "dpmpp2m:12",
        "dpmpp2m:20",
        "euler:12",
        "heun:12",
        "em:12",
        "pc:12:corrector=2",
    ]
}

fn all_processes() -> Vec<Process> {
    vec![
        Process::ddpm_default(),
        Process::vp_default(),
        ve(),
        Process::Flow,
    ]
}

/// Guidance is folded into the coefficients: with `w = 1` the guided program computes exactly
/// what the unguided one does (the null branch gets coefficient 0 and is dropped), and for any
/// `w` the guided program on `(ε_c, ε_∅)` equals the unguided program on
/// `ε̃ = ε_∅ + w(ε_c − ε_∅)` up to the f32 rounding of the folded coefficients.
#[test]
fn guidance_folds_into_the_coefficients() {
    /// Relative difference allowed from rounding `c·w` and `c·(1 − w)` to f32.
    const FOLD_TOL: f64 = 1e-5;
    for p in all_processes() {
        for s in all_specs() {
            let spec: SamplerSpec = s.parse().unwrap_or_else(|e| panic!("{e}"));
            let Ok(g) = grid(&p, &spec) else { continue };
            let cond = Oracle::new(&p, &g, MU, S);
            let null = Oracle::new(&p, &g, -0.2, 0.8);
            let plain = program(&p, &spec);
            // w = 1: bit-identical samples, whatever the null branch returns.
            let one = program(&p, &spec.clone().with_guidance(1.0));
            assert_eq!(one.evals as usize, 2 * plain.evals as usize);
            let net = |x: &[f64], t: f32, is_null: bool| {
                if is_null {
                    vec![1e3; x.len()]
                } else {
                    cond.eval(x, t).iter().map(|e| e + 0.1 * e.sin()).collect()
                }
            };
            let a = plain.run(net, 3, 1, 0).unwrap_or_else(|e| panic!("{e}"));
            let b = one.run(net, 3, 1, 0).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(a, b, "{s} on {}", p.name());
            // w = 2.5 against the unguided program on the guided model.
            let w = 2.5;
            let guided = program(&p, &spec.clone().with_guidance(w));
            let pick = |t: f32, is_null: bool| {
                if is_null {
                    null.affine(t)
                } else {
                    cond.affine(t)
                }
            };
            let mix = |t: f32, _| {
                let ((gc, oc), (gu, ou)) = (cond.affine(t), null.affine(t));
                (gu + w * (gc - gu), ou + w * (oc - ou))
            };
            // Clipping is not affine: compare samples there instead.
            if s.contains("clip") {
                let netw = |x: &[f64], t: f32, is_null: bool| {
                    if is_null {
                        null.eval(x, t)
                    } else {
                        cond.eval(x, t)
                    }
                };
                let mixed = |x: &[f64], t: f32, _| {
                    let (c, u) = (cond.eval(x, t), null.eval(x, t));
                    c.iter().zip(&u).map(|(c, u)| u + w * (c - u)).collect()
                };
                let a = guided.run(netw, 8, 3, 1).unwrap_or_else(|e| panic!("{e}"));
                let b = plain.run(mixed, 8, 3, 1).unwrap_or_else(|e| panic!("{e}"));
                for (x, y) in a.iter().zip(&b) {
                    assert!(
                        (x - y).abs() < FOLD_TOL * (1.0 + y.abs()),
                        "{s}: {a:?} vs {b:?}"
                    );
                }
                continue;
            }
            let a = guided.moments(pick, None).unwrap_or_else(|e| panic!("{e}"));
            let b = plain.moments(mix, None).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                (a.mean - b.mean).abs() < FOLD_TOL * (1.0 + b.mean.abs())
                    && (a.var - b.var).abs() < FOLD_TOL * (1.0 + b.var),
                "{s} on {}: {a:?} vs {b:?}",
                p.name()
            );
        }
    }
}

/// Every buildable program loads in the runtime, stays within 8 registers and 8 terms, starts
/// with `LIN r0 = prior·z` + `STEP`, has one `STEP` per sampler step, and as many `EVAL`s as
/// [`SamplerSpec::evaluations`] says.
#[test]
fn programs_have_the_promised_shape() {
    for p in all_processes() {
        for s in all_specs() {
            for w in [None, Some(3.0)] {
                let spec = SamplerSpec {
                    guidance: w,
                    ..s.parse().unwrap_or_else(|e| panic!("{e}"))
                };
                if grid(&p, &spec).is_err() {
                    continue;
                }
                let prog = program(&p, &spec);
                assert_eq!(prog.steps as usize, spec.steps + 1, "{s}");
                assert_eq!(prog.evals as usize, spec.evaluations(), "{s} {w:?}");
                assert!(prog.regs <= 8);
                assert_eq!(prog.out_reg, 0);
                let head: Vec<Instr<'_>> = prog.instrs().take(2).collect();
                assert_eq!(
                    head,
                    [
                        Instr::Lin {
                            dst: 0,
                            terms: Terms::from_bytes(&[]),
                            noise: Some(p.prior_std() as f32)
                        },
                        Instr::Step
                    ]
                );
                let stochastic = spec.kind.is_stochastic();
                assert_eq!(prog.noise_draws() > 1, stochastic, "{s} on {}", p.name());
            }
        }
    }
}

/// On DDPM's grid, Euler on the probability-flow ODE in (x/α, σ/α) is DDIM with η = 0:
/// the programs agree to the last f32 bit or so.
#[test]
fn euler_is_deterministic_ddim_on_the_ddpm_grid() {
    let p = Process::ddpm_default();
    let a = program(&p, &"euler:25".parse().unwrap_or_else(|e| panic!("{e}")));
    let b = program(&p, &"ddim:25".parse().unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(a.instrs().count(), b.instrs().count());
    for (x, y) in a.instrs().zip(b.instrs()) {
        match (x, y) {
            (Instr::Lin { terms: tx, .. }, Instr::Lin { terms: ty, .. }) => {
                for ((rx, cx), (ry, cy)) in tx.iter().zip(ty.iter()) {
                    let (cx, cy) = (cx as f64, cy as f64);
                    assert_eq!(rx, ry);
                    assert!((cx - cy).abs() <= 2.0 * f32::EPSILON as f64 * cx.abs());
                }
            }
            _ => assert_eq!(x, y),
        }
    }
}

// ---- The textbook programs of `tests/src/textbook.rs`, copied (the conformance crate is not a
// dependency of the trainer), to check the generalised builders reproduce them.

fn textbook_eps_terms(p: &mut ProgramBuilder, t: usize, c: f64, g: Option<f64>) -> Vec<(u8, f32)> {
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

fn textbook_ddpm(beta: &[f64], ab: &[f64], tilde: bool, g: Option<f64>) -> ProgramBuilder {
    let mut p = ProgramBuilder::new("tb", if g.is_some() { 3 } else { 2 });
    p.lin(0, &[], Some(1.0)).step();
    for t in (1..=beta.len()).rev() {
        let alpha = 1.0 - beta[t - 1];
        let c_x = 1.0 / alpha.sqrt();
        let c_e = -beta[t - 1] / (1.0 - ab[t]).sqrt() / alpha.sqrt();
        let mut terms = vec![(0u8, c_x as f32)];
        terms.extend(textbook_eps_terms(&mut p, t, c_e, g));
        let sigma = if tilde {
            (beta[t - 1] * (1.0 - ab[t - 1]) / (1.0 - ab[t])).sqrt()
        } else {
            beta[t - 1].sqrt()
        };
        p.lin(0, &terms, (t > 1).then_some(sigma as f32)).step();
    }
    p
}

fn textbook_ddim(
    ab: &[f64],
    k: usize,
    eta: f64,
    clip: Option<f32>,
    g: Option<f64>,
) -> ProgramBuilder {
    let big_t = ab.len() - 1;
    let mut p = ProgramBuilder::new("tb", if g.is_some() || clip.is_some() { 4 } else { 2 });
    p.lin(0, &[], Some(1.0)).step();
    let taus: Vec<usize> = (1..=k)
        .map(|i| ((i * big_t) as f64 / k as f64).round() as usize)
        .collect();
    for i in (0..taus.len()).rev() {
        let t = taus[i];
        let prev = if i == 0 { 0 } else { taus[i - 1] };
        let (at, ap) = (ab[t], ab[prev]);
        let sigma = eta * ((1.0 - ap) / (1.0 - at)).sqrt() * (1.0 - at / ap).sqrt();
        let c_dir = (1.0 - ap - sigma * sigma).max(0.0).sqrt();
        let noise = (sigma > 0.0).then_some(sigma as f32);
        match clip {
            None => {
                let c_x = (ap / at).sqrt();
                let c_e = c_dir - ap.sqrt() * (1.0 - at).sqrt() / at.sqrt();
                let mut terms = vec![(0u8, c_x as f32)];
                terms.extend(textbook_eps_terms(&mut p, t, c_e, g));
                p.lin(0, &terms, noise).step();
            }
            Some(c) => {
                let e = textbook_eps_terms(&mut p, t, 1.0, g);
                p.lin(3, &e, None);
                let x0_terms = [
                    (0u8, (1.0 / at.sqrt()) as f32),
                    (3u8, (-(1.0 - at).sqrt() / at.sqrt()) as f32),
                ];
                p.lin(2, &x0_terms, None).clamp(2, -c, c);
                // ε recomputed from the clipped x̂₀ (diffusers / guided-diffusion convention).
                let eps_terms = [
                    (0u8, (1.0 / (1.0 - at).sqrt()) as f32),
                    (2u8, (-at.sqrt() / (1.0 - at).sqrt()) as f32),
                ];
                p.lin(3, &eps_terms, None);
                p.lin(0, &[(2, ap.sqrt() as f32), (3, c_dir as f32)], noise)
                    .step();
            }
        }
    }
    p
}

/// Instructions equal up to `ulps` f32 units in the last place on every coefficient.
fn assert_same_program(a: &Program, b: &Program, ulps: f64, what: &str) {
    let close = |x: f64, y: f64| (x - y).abs() <= ulps * f32::EPSILON as f64 * x.abs().max(y.abs());
    // Our assembler drops zero terms; the textbook keeps them.
    let nonzero = |t: &Terms<'_>| -> Vec<(u8, f64)> {
        t.iter()
            .filter(|&(_, c)| c != 0.0)
            .map(|(r, c)| (r, c as f64))
            .collect()
    };
    assert_eq!(a.instrs().count(), b.instrs().count(), "{what}");
    for (k, (x, y)) in a.instrs().zip(b.instrs()).enumerate() {
        let ok = match (x, y) {
            (
                Instr::Lin {
                    dst: dx,
                    terms: tx,
                    noise: nx,
                },
                Instr::Lin {
                    dst: dy,
                    terms: ty,
                    noise: ny,
                },
            ) => {
                let (tx, ty) = (nonzero(&tx), nonzero(&ty));
                dx == dy
                    && tx.len() == ty.len()
                    && tx
                        .iter()
                        .zip(&ty)
                        .all(|((rx, cx), (ry, cy))| rx == ry && close(*cx, *cy))
                    && match (nx, ny) {
                        (Some(p), Some(q)) => close(p as f64, q as f64),
                        (None, None) => true,
                        _ => false,
                    }
            }
            _ => x == y,
        };
        assert!(ok, "{what}: instruction {k}: {x:?} vs {y:?}");
    }
}

#[test]
fn ddpm_and_ddim_reproduce_the_textbook_programs() {
    let p = Process::ddpm_default();
    let Process::Ddpm { betas, steps } = &p else {
        unreachable!()
    };
    let beta = betas.betas(*steps);
    let ab = p.alpha_bars();
    let dec = |b: &ProgramBuilder| Program::decode(b).unwrap_or_else(|e| panic!("{e}"));
    for g in [None, Some(3.0)] {
        for (tilde, v) in [
            (false, AncestralVariance::Beta),
            (true, AncestralVariance::BetaTilde),
        ] {
            let spec = SamplerSpec {
                kind: SamplerKind::DdpmAncestral {
                    variance: v,
                    clip: None,
                },
                steps: 1000,
                guidance: g,
            };
            let ours = program(&p, &spec);
            let theirs = dec(&textbook_ddpm(&beta, &ab, tilde, g));
            // β: the same f64 expressions, so the same f32; β̃ goes through σ² = (√(1−ᾱ))².
            assert_same_program(&ours, &theirs, if tilde { 1.0 } else { 0.0 }, "ddpm");
        }
        for (s, eta, clip) in [
            ("ddim:10", 0.0, None),
            ("ddim:50:eta=0.5", 0.5, None),
            ("ddim:10:eta=1:clip=1", 1.0, Some(1.0)),
        ] {
            let spec = SamplerSpec {
                guidance: g,
                ..s.parse().unwrap_or_else(|e| panic!("{e}"))
            };
            let ours = program(&p, &spec);
            let theirs = dec(&textbook_ddim(&ab, spec.steps, eta, clip, g));
            assert_same_program(&ours, &theirs, 2.0, s);
        }
    }
}

#[test]
fn ddpm_spacings_follow_diffusers() {
    // T = 1000, N = 10 (Lin et al. 2024, Table 2, in 0-based steps: leading 900…0,
    // trailing 999…99, linspace 999…0).
    let zero_based =
        |s| -> Vec<usize> { ddpm_timesteps(1000, 10, s).iter().map(|t| t - 1).collect() };
    assert_eq!(
        zero_based(Spacing::Leading),
        (0..10).map(|i| 100 * i).collect::<Vec<_>>()
    );
    assert_eq!(
        zero_based(Spacing::Trailing),
        (1..=10).map(|i| 100 * i - 1).collect::<Vec<_>>()
    );
    assert_eq!(
        zero_based(Spacing::Linspace),
        vec![0, 111, 222, 333, 444, 555, 666, 777, 888, 999]
    );
    // The full grid is every step.
    assert_eq!(
        ddpm_timesteps(7, 7, Spacing::Trailing),
        (1..=7).collect::<Vec<_>>()
    );
    // Ties round to even, as numpy's `round` in diffusers (`np.round(np.arange(1000, 0,
    // -1000 / N)) - 1` and `np.linspace(0, 999, N).round()`, computed with numpy 2): these N
    // have exact halves, which rounding half away from zero moved up.
    let diffusers_trailing_16 = [
        61, 124, 187, 249, 311, 374, 437, 499, 561, 624, 687, 749, 811, 874, 937, 999,
    ];
    let trailing = |n| -> Vec<usize> {
        ddpm_timesteps(1000, n, Spacing::Trailing)
            .iter()
            .map(|t| t - 1)
            .collect()
    };
    assert_eq!(trailing(16), diffusers_trailing_16);
    let diffusers_trailing_32 = [
        30, 61, 93, 124, 155, 187, 218, 249, 280, 311, 343, 374, 405, 437, 468, 499, 530, 561, 593,
        624, 655, 687, 718, 749, 780, 811, 843, 874, 905, 937, 968, 999,
    ];
    assert_eq!(trailing(32), diffusers_trailing_32);
    let linspace = |n| -> Vec<usize> {
        ddpm_timesteps(1000, n, Spacing::Linspace)
            .iter()
            .map(|t| t - 1)
            .collect()
    };
    assert_eq!(linspace(7), [0, 166, 333, 500, 666, 832, 999]);
    assert_eq!(
        linspace(13),
        [0, 83, 166, 250, 333, 416, 500, 583, 666, 749, 832, 916, 999]
    );
    for (a, b, q) in [
        (5, 2, 2),
        (7, 2, 4),
        (9, 2, 4),
        (11, 2, 6),
        (10, 4, 2),
        (3, 4, 1),
        (0, 3, 0),
    ] {
        assert_eq!(div_round_even(a, b), q, "{a}/{b}");
    }
    let spec = SamplerSpec::new(kind("ddim:1:spacing=leading"), 10);
    let g = grid(&Process::ddpm_default(), &spec).unwrap_or_default();
    assert_eq!(g.first(), Some(&901.0));
    assert_eq!(g.last(), Some(&0.0));
}

#[test]
fn continuous_grids() {
    let spec = |s: &str| s.parse::<SamplerSpec>().unwrap_or_else(|e| panic!("{e}"));
    let vp = Process::vp_default();
    // Uniform in t for DDIM and the SDE samplers.
    let g = grid(&vp, &spec("em:4")).unwrap_or_default();
    for (a, b) in g.iter().zip([1.0, 0.75025, 0.5005, 0.25075, 1e-3]) {
        assert!((a - b).abs() < 1e-15, "{g:?}");
    }
    assert_eq!((g[0], g[4]), (1.0, 1e-3));
    // Uniform in λ for the ODE solvers.
    let g = grid(&vp, &spec("dpmpp2m:4")).unwrap_or_default();
    let l: Vec<f64> = g.iter().map(|&t| vp.lambda(t)).collect();
    for w in l.windows(3) {
        assert!(((w[1] - w[0]) - (w[2] - w[1])).abs() < 1e-9, "{l:?}");
    }
    assert_eq!((g[0], g[4]), (1.0, 1e-3));
    let g = grid(&Process::Flow, &spec("heun:4")).unwrap_or_default();
    assert_eq!(g, vec![0.0, 0.25, 0.5, 0.75, 1.0]);
}

#[test]
fn spec_strings_round_trip() {
    let cases = [
        "ddpm",
        "ddpm:500:var=tilde",
        "ddim:10",
        "ddim:10:eta=0.5:clip=1:spacing=trailing",
        "ddim:7:spacing=leading",
        "ddim:7:eta=1:spacing=linspace",
        "dpmpp2m:8",
        "dpm++2m:8",
        "euler:32",
        "heun:16",
        "em:100",
        "pc:100:corrector=1:snr=0.16",
        "pc:100:corrector=3:snr=0.2",
    ];
    for s in cases {
        let spec: SamplerSpec = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
        let back: SamplerSpec = spec
            .to_string()
            .parse()
            .unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert_eq!(back, spec, "{s} → {spec}");
        let name = spec.default_name();
        assert!(!name.is_empty() && name.len() <= 16 && name.bytes().all(|c| c.is_ascii_graphic()));
    }
    let spec: SamplerSpec = "ddim:10:eta=0.5:clip=1:spacing=trailing"
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        spec,
        SamplerSpec::new(
            SamplerKind::Ddim {
                eta: 0.5,
                spacing: Spacing::Trailing,
                clip: Some(1.0)
            },
            10
        )
    );
    assert_eq!(spec.to_string(), "ddim:10:eta=0.5:clip=1");
    assert_eq!(spec.default_name(), "ddim10e0.5c1");
    let ddpm: SamplerSpec = "ddpm".parse().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ddpm.steps, 1000);
    assert_eq!(ddpm.default_name(), "ddpm1000");
    let pc: SamplerSpec = "pc:100:corrector=1:snr=0.16"
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        pc.kind,
        SamplerKind::PredictorCorrector {
            corrector_steps: 1,
            snr: 0.16
        }
    );
    assert_eq!(pc.evaluations(), 200);
    let heun = SamplerSpec::new(SamplerKind::Heun, 16).with_guidance(2.0);
    assert_eq!(heun.default_name(), "heun16-cfg");
    assert_eq!(heun.evaluations(), 62);
    assert_eq!(
        SamplerSpec::new(kind("ddim:1"), 10).default_name(),
        "ddim10"
    );
    // Long combinations are cut to the name limit.
    let long: SamplerSpec = "ddim:1000:eta=0.25:clip=1.5:spacing=linspace"
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(long.with_guidance(2.0).default_name().len(), 16);
}

#[test]
fn spec_errors_say_what_is_wrong() {
    let err = |s: &str| match s.parse::<SamplerSpec>() {
        Ok(spec) => panic!("{s} parsed as {spec:?}"),
        Err(e) => e.to_string(),
    };
    let has = |s: &str, what: &str| {
        let e = err(s);
        assert!(e.contains(what), "{s}: `{e}` lacks `{what}`");
    };
    has("", "expected one of ddpm, ddim");
    has("dim:10", "unknown sampler `dim`");
    has("ddim", "needs a step count, e.g. `ddim:10`");
    has("ddim:0", "not a positive integer");
    has("ddim:ten", "`ten` is not a positive integer");
    has("ddim:10:eta", "must be KEY=VALUE");
    has(
        "ddim:10:snr=0.1",
        "`ddim` has no option `snr` (options: eta, clip, spacing)",
    );
    has("euler:10:eta=0", "(options: none)");
    has("ddim:10:eta=x", "eta = `x` is not a number");
    has("ddim:10:eta=2", "η must be in [0, 1]");
    has("ddim:10:eta=0.1:eta=0.2", "given twice");
    has("ddim:10:clip=-1", "clipping bound");
    has(
        "ddim:10:spacing=even",
        "expected leading, trailing or linspace",
    );
    has("ddpm:10:var=sigma", "expected beta or tilde");
    has("pc:10:corrector=-1", "not a non-negative integer");
    has("pc:10:snr=0", "signal-to-noise");
}

#[test]
fn build_errors_say_what_is_wrong() {
    let spec = |s: &str| s.parse::<SamplerSpec>().unwrap_or_else(|e| panic!("{e}"));
    let err = |p: &Process, s: &SamplerSpec, name: &str| match build(p, s, name) {
        Ok(_) => panic!("{s} on {} built", p.name()),
        Err(e) => e,
    };
    let e = err(&Process::Flow, &spec("ddim:10"), "x");
    assert!(matches!(e, SamplerError::NotApplicable { .. }));
    assert!(e.to_string().contains("use `euler` or `heun`"), "{e}");
    let e = err(&Process::ddpm_default(), &spec("em:10"), "x");
    assert!(e.to_string().contains("continuous-time process"), "{e}");
    let e = err(&ve(), &spec("ddpm:10"), "x");
    assert!(e.to_string().contains("variance-preserving"), "{e}");
    let e = err(&Process::ddpm_default(), &spec("ddim:1001"), "x");
    assert!(
        matches!(e, SamplerError::TooManySteps { max: 1000, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("only trained at its T steps"), "{e}");
    let e = err(&Process::vp_default(), &spec("pc:40000"), "x");
    assert!(
        matches!(e, SamplerError::TooManySteps { max: 32767, .. }),
        "{e}"
    );
    let e = err(&Process::vp_default(), &spec("euler:10"), "has space");
    assert!(matches!(e, SamplerError::BadName { .. }), "{e}");
    let e = err(
        &Process::vp_default(),
        &spec("euler:10"),
        "seventeen-chars-x",
    );
    assert!(matches!(e, SamplerError::BadName { .. }), "{e}");
    let bad = SamplerSpec::new(SamplerKind::Euler, 10).with_guidance(f64::NAN);
    assert!(matches!(
        err(&Process::Flow, &bad, "x"),
        SamplerError::BadParameter {
            name: "guidance",
            ..
        }
    ));
    let bad_process = Process::Ddpm {
        steps: 0,
        betas: BetaSchedule::Cosine { s: 0.008 },
    };
    let e = err(&bad_process, &spec("ddim:1"), "x");
    assert!(matches!(e, SamplerError::Process(_)), "{e}");
}

/// Clipping really clips: x̂₀ never leaves `[−c, c]`, so with DDIM η = 0, ancestral sampling or
/// DPM-Solver++ on DDPM's grid (the last step returns x̂₀) every sample lands in it.
#[test]
fn clipping_bounds_the_final_sample() {
    for s in [
        "ddim:10:clip=0.5",
        "ddpm:10:clip=0.5",
        "dpmpp2m:10:clip=0.5",
    ] {
        clipping_bounds(s);
    }
}

fn clipping_bounds(s: &str) {
    let p = Process::ddpm_default();
    let spec: SamplerSpec = s.parse().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(spec.to_string(), s);
    let g = grid(&p, &spec).unwrap_or_default();
    let o = Oracle::new(&p, &g, MU, S);
    let prog = program(&p, &spec);
    assert!(matches!(
        prog.moments(|t, _| o.affine(t), None),
        Err(super::simulate::SimError::NotAffine)
    ));
    let xs = prog
        .run(|x, t, _| o.eval(x, t), 1000, 3, 0)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(xs.iter().all(|x| x.abs() <= 0.5 + 1e-6), "{:?}", &xs[..8]);
    // The data mostly lie above 0.5: many samples sit on the bound.
    assert!(xs.iter().filter(|x| (**x - 0.5).abs() < 1e-6).count() > 500);
}

/// A network predicting x₀, v or the score, sampled by `build_for`'s program, gives the samples
/// the ε (velocity) network gives under `build`'s, when both are the same exact network: the
/// prediction map is folded in at each evaluation's own time, and the folded combinations are
/// used before their source register is overwritten. Differences come only from rounding the
/// folded coefficients to f32.
#[test]
fn other_predictions_sample_like_the_process_target() {
    const TOL: f64 = 2e-4;
    const DIM: usize = 64;
    for p in all_processes() {
        for s in all_specs() {
            let spec: SamplerSpec = s.parse().unwrap_or_else(|e| panic!("{e}"));
            let Ok(own) = build(&p, &spec, "own") else {
                continue; // the sampler does not apply to this process
            };
            let own = Program::decode(&own).unwrap();
            let g = grid(&p, &spec).unwrap();
            let o = Oracle::new(&p, &g, MU, S);
            let want = own.run(|x, t, _| o.eval(x, t), DIM, 3, 0).unwrap();
            for pred in crate::prediction::accepted(&p).into_iter().skip(1) {
                let case = format!("{} {s} {}", p.name(), pred.name());
                let prog =
                    build_for(&p, pred, &spec, "other").unwrap_or_else(|e| panic!("{case}: {e}"));
                let prog = Program::decode(&prog).unwrap();
                // The same exact network, answering with `pred`: target = a·x + b·out.
                let network = |x: &[f64], time: f32, _| {
                    let t = o.times[&time.to_bits()];
                    let (alpha, sigma) = o.alpha_sigma(t);
                    let (a, b) = crate::prediction::to_target(&p, pred, alpha, sigma).unwrap();
                    let target = o.eval(x, time);
                    x.iter().zip(target).map(|(x, y)| (y - a * x) / b).collect()
                };
                let got = prog.run(network, DIM, 3, 0).unwrap();
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - w).abs() < TOL * (1.0 + w.abs()), "{case}: {g} vs {w}");
                }
            }
        }
    }
}
