//! Negative log-likelihood of data under a trained model, through the probability-flow ODE
//! (Song et al. 2021, "Score-Based Generative Modeling through SDEs", §4.3 and App. D.2; the
//! instantaneous change of variables of Chen et al. 2018).
//!
//! Every process here noises as `x_t = α(t)·x₀ + σ(t)·ε`. In the scaled variables `x̃ = x/α`,
//! `τ = σ/α` its probability-flow ODE is `dx̃/dτ = ε̂(α·x̃, t)` (the form the ODE samplers use,
//! `sampler/ode.rs`), and along a solution the log-density changes as
//!
//! `d ln p(x̃)/dτ = −div_x̃ ε̂(α·x̃, t) = −α·tr(∂ε̂/∂x)`,
//!
//! so, integrating from the data end `τ₀` to the noise end `τ_N`,
//!
//! `ln p_x(x, t₀) = ln N(α_N·x̃_N; 0, σ_N²I) + d·ln α_N + ∫ α·tr(∂ε̂/∂x) dτ − d·ln α₀`,
//!
//! the two `d·ln α` terms being the Jacobians of `x ↦ x̃` at both ends. The prior is `N(0, σ_N²)`,
//! the noise end's marginal without its signal part (`α_N` is 0.006 for the default DDPM and
//! VP schedules). Flow matching (`α = t`, `σ = 1 − t`, the network predicting the velocity
//! `v̂`) fits the same equations through `ε̂ = x − t·v̂`, `∂ε̂/∂x = I − t·∂v̂/∂x`.
//!
//! * The ODE and the integral, rewritten as `∫ σ·tr(∂ε̂/∂x) d(−λ)`, run together with the
//!   classical Runge–Kutta method in `λ = ln(α/σ)` (Lu et al. 2022), the variable in which the
//!   solution is smoothest: in `τ` the integrand falls like `1/τ` towards the noise end and
//!   second-order methods need ~10× more steps for the same accuracy.
//! * The trace is exact in low dimension (one vector–Jacobian product per dimension) or
//!   Hutchinson's estimate `E[vᵀ·J·v]` with Rademacher `v`, fixed per sample over the whole
//!   trajectory (Grathwohl et al. 2019), which is unbiased.
//! * The density is of the data smoothed by the noise at the data end (`σ(t₀)`: 0.01 for DDPM
//!   step 1, `σ(t_min)` for VP/VE, [`FLOW_DATA_SIGMA`] for flow), as in Song et al.
//!
//! Units: nats per sample in model space; [`data_space_offset`] converts to data units.

use microdiff_runtime::noise::{Domain, NoiseStream};

use super::EvalError;
use crate::backend::Backend;
use crate::backend::cpu::Cpu;
use crate::model::{Activations, Mlp, MlpConfig};
use crate::process::{LambdaInverse, Process};
use microdiff_runtime::blob::meta::Prediction;

/// Noise level at the data end of the flow ODE (`t = 1 − FLOW_DATA_SIGMA`): `σ = 0` there would
/// put `λ = +∞` at the end of the grid.
pub const FLOW_DATA_SIGMA: f64 = 1e-3;

/// A network as the ODE sees it: its raw output (ε̂, or the velocity for flow) for a batch of
/// rows and vector–Jacobian products with respect to its input.
pub trait Field {
    /// Values per row.
    fn dim(&self) -> usize;
    /// The output for the rows of `x` (`rows × dim`) at process time `t`, and for each probe
    /// `v` in `probes` (each `rows × dim`) the products `vᵀ·∂out/∂x`, row by row.
    fn eval(&mut self, x: &[f64], t: f64, probes: &[Vec<f64>]) -> (Vec<f64>, Vec<Vec<f64>>);
}

/// How the divergence's trace is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trace {
    /// Exactly, with one vector–Jacobian product per dimension.
    Exact,
    /// Hutchinson's estimate with this many Rademacher probes per sample.
    Hutchinson(usize),
}

impl Trace {
    /// Exact up to `max_exact_dim` dimensions, one Hutchinson probe above.
    pub fn auto(dim: usize, max_exact_dim: usize) -> Self {
        if dim <= max_exact_dim {
            Trace::Exact
        } else {
            Trace::Hutchinson(1)
        }
    }
}

/// Settings of [`nll`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NllConfig {
    /// Runge–Kutta steps of the ODE (each costs four network evaluations).
    pub steps: usize,
    /// Trace computation.
    pub trace: Trace,
    /// Seed of the Hutchinson probes.
    pub seed: u64,
}

impl Default for NllConfig {
    fn default() -> Self {
        NllConfig {
            steps: 100,
            trace: Trace::Exact,
            seed: 0,
        }
    }
}

/// The data-end and noise-end times of the probability-flow ODE of `process`.
pub fn ode_ends(process: &Process) -> (f64, f64) {
    match process {
        Process::Flow => (1.0 - FLOW_DATA_SIGMA, FLOW_DATA_SIGMA),
        p => p.t_range(),
    }
}

/// `steps + 1` times from the data end to the noise end, uniform in λ
/// ([`Process::lambda_grid`], λ inverted by bisection, which works for every process).
pub fn lambda_grid(process: &Process, steps: usize) -> Vec<f64> {
    let (t0, t1) = ode_ends(process);
    process.lambda_grid(t0, t1, steps, LambdaInverse::Bisection)
}

/// ε̂ and `tr(∂ε̂/∂x)` per row at `(x, t)`; `probes` as [`Field::eval`].
fn eps_and_trace(
    process: &Process,
    field: &mut impl Field,
    x: &[f64],
    t: f64,
    trace: Trace,
    probes: &[Vec<f64>],
) -> (Vec<f64>, Vec<f64>) {
    let d = field.dim();
    let rows = x.len() / d;
    let (out, vjps) = field.eval(x, t, probes);
    let flow = matches!(process, Process::Flow);
    // ε̂ = out, or x − t·v̂ for flow.
    let eps: Vec<f64> = if flow {
        x.iter().zip(&out).map(|(&x, &v)| x - t * v).collect()
    } else {
        out
    };
    let mut tr = vec![0.0; rows];
    for (k, (v, vjp)) in probes.iter().zip(&vjps).enumerate() {
        for r in 0..rows {
            let row = r * d..(r + 1) * d;
            let q: f64 = match trace {
                // Probe k is the unit vector e_k: vᵀJ picks J's row k, whose entry k is J_kk.
                Trace::Exact => vjp[r * d + k],
                Trace::Hutchinson(_) => v[row.clone()]
                    .iter()
                    .zip(&vjp[row])
                    .map(|(a, b)| a * b)
                    .sum(),
            };
            tr[r] += q;
        }
    }
    if let Trace::Hutchinson(n) = trace {
        tr.iter_mut().for_each(|v| *v /= n as f64);
    }
    if flow {
        // tr(I − t·J_v) = d − t·tr(J_v).
        tr.iter_mut().for_each(|v| *v = d as f64 - t * *v);
    }
    (eps, tr)
}

/// The trace probes: unit vectors, or Rademacher vectors fixed per sample.
fn probes(dim: usize, rows: usize, trace: Trace, seed: u64) -> Vec<Vec<f64>> {
    match trace {
        Trace::Exact => (0..dim)
            .map(|k| {
                let mut v = vec![0.0; rows * dim];
                (0..rows).for_each(|r| v[r * dim + k] = 1.0);
                v
            })
            .collect(),
        Trace::Hutchinson(n) => (0..n)
            .map(|k| {
                let s = NoiseStream::new(seed, k as u32, Domain::Sampler);
                (0..rows * dim)
                    .map(|j| {
                        if s.uniform(0, j as u32) < 0.5 {
                            -1.0
                        } else {
                            1.0
                        }
                    })
                    .collect()
            })
            .collect(),
    }
}

/// `−ln p(x)` in nats for each row of `x` (`rows × field.dim()`, model space) under the
/// model's probability-flow ODE.
pub fn nll(
    process: &Process,
    field: &mut impl Field,
    x: &[f32],
    cfg: &NllConfig,
) -> Result<Vec<f64>, EvalError> {
    let d = field.dim();
    if d == 0 || !x.len().is_multiple_of(d) {
        return Err(EvalError::BadShape {
            what: "nll data",
            len: x.len(),
            dim: d,
        });
    }
    if cfg.steps == 0 || matches!(cfg.trace, Trace::Hutchinson(0)) {
        return Err(EvalError::BadNllSetting(
            "at least one ODE step and one trace probe are needed".into(),
        ));
    }
    let rows = x.len() / d;
    // λ-uniform points; odd ones are the midpoints RK4 evaluates at.
    let ts = lambda_grid(process, 2 * cfg.steps);
    let pr = probes(d, rows, cfg.trace, cfg.seed);
    let a0 = process.alpha(ts[0]);
    // State: x̃ = x/α (rows × d), then the log-density integral L (rows).
    let mut y: Vec<f64> = x.iter().map(|&v| v as f64 / a0).collect();
    y.resize(rows * d + rows, 0.0);
    // d/dλ of the state at time t: dx̃/dλ = −τ·ε̂(α·x̃, t), dL/dλ = −σ·tr(∂ε̂/∂x).
    let mut slope = |t: f64, y: &[f64]| -> Vec<f64> {
        let (alpha, sigma) = (process.alpha(t), process.sigma(t));
        let x: Vec<f64> = y[..rows * d].iter().map(|&v| alpha * v).collect();
        let (eps, tr) = eps_and_trace(process, field, &x, t, cfg.trace, &pr);
        let tau = sigma / alpha;
        eps.iter()
            .map(|&e| -tau * e)
            .chain(tr.iter().map(|&tr| -sigma * tr))
            .collect()
    };
    let axpy = |y: &[f64], h: f64, k: &[f64]| -> Vec<f64> {
        y.iter().zip(k).map(|(y, k)| y + h * k).collect()
    };
    for w in ts.windows(3).step_by(2) {
        let (t, mid, s) = (w[0], w[1], w[2]);
        let h = process.lambda(s) - process.lambda(t);
        let k1 = slope(t, &y);
        let k2 = slope(mid, &axpy(&y, 0.5 * h, &k1));
        let k3 = slope(mid, &axpy(&y, 0.5 * h, &k2));
        let k4 = slope(s, &axpy(&y, h, &k3));
        for (i, v) in y.iter_mut().enumerate() {
            *v += h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
        }
    }
    let (xs, integral) = y.split_at(rows * d);
    let t_end = *ts.last().expect("steps ≥ 1");
    let (a_n, s_n) = (process.alpha(t_end), process.sigma(t_end));
    let ln2pi = (2.0 * std::f64::consts::PI).ln();
    Ok((0..rows)
        .map(|r| {
            let row = &xs[r * d..(r + 1) * d];
            let sq: f64 = row.iter().map(|&v| (a_n * v / s_n).powi(2)).sum();
            let prior = -0.5 * sq - d as f64 * (s_n.ln() + 0.5 * ln2pi);
            let ln_p = prior + d as f64 * a_n.ln() + integral[r] - d as f64 * a0.ln();
            -ln_p
        })
        .collect())
}

/// What to add to a model-space NLL (nats) to get it in data units, for the affine map
/// `data = x·scale + offset` with `scale` of 0 (identity), 1 or `dim` entries:
/// `Σ_j ln |scale_j|` (the density divides by the map's Jacobian).
pub fn data_space_offset(scale: &[f32], dim: usize) -> f64 {
    match scale.len() {
        0 => 0.0,
        1 => dim as f64 * (scale[0].abs() as f64).ln(),
        _ => scale.iter().map(|&s| (s.abs() as f64).ln()).sum(),
    }
}

/// A trained network ([`Mlp`] on the CPU backend) as a [`Field`], conditioned on one class per
/// row (or unconditional).
pub struct Network {
    mlp: Mlp,
    params: Vec<f32>,
    grads: Vec<f32>,
    acts: Activations<Cpu>,
    process: Process,
    /// What the network outputs, when not the process's own target (mapped to it in `eval`).
    prediction: Option<Prediction>,
    classes: Vec<f32>,
}

impl Network {
    /// For a network that outputs `prediction` (an imported one; [`crate::prediction`]): its
    /// output and Jacobian are mapped to the process's target.
    pub fn predicting(mut self, prediction: Prediction) -> Self {
        self.prediction = (prediction != self.process.prediction()).then_some(prediction);
        self
    }

    /// The network of `config` with `params`, for batches of `classes.len()` rows (class ids,
    /// ignored when the model is unconditional).
    pub fn new(config: MlpConfig, params: Vec<f32>, process: Process, classes: Vec<f32>) -> Self {
        let mlp = Mlp::new(config);
        let acts = mlp.activations_with_input_grad(&Cpu, classes.len());
        Network {
            grads: vec![0.0; params.len()],
            mlp,
            params,
            acts,
            process,
            prediction: None,
            classes,
        }
    }
}

impl Field for Network {
    fn dim(&self) -> usize {
        self.mlp.config.data_dim
    }

    fn eval(&mut self, x: &[f64], t: f64, probes: &[Vec<f64>]) -> (Vec<f64>, Vec<Vec<f64>>) {
        let rows = self.classes.len();
        let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let tv = vec![self.process.time_value(t); rows];
        self.mlp
            .forward(&Cpu, &self.params, &mut self.acts, &xf, &tv, &self.classes);
        // target = on_x·x + on_out·output, so its vector-Jacobian product is
        // on_x·v + on_out·(Jᵀv).
        let (on_x, on_out) = self
            .prediction
            .and_then(|p| {
                let (a, s) = (self.process.alpha(t), self.process.sigma(t));
                crate::prediction::to_target(&self.process, p, a, s)
            })
            .unwrap_or((0.0, 1.0));
        let out: Vec<f64> = self
            .acts
            .out
            .iter()
            .zip(x)
            .map(|(&o, &x)| on_x * x + on_out * o as f64)
            .collect();
        let vjps = probes
            .iter()
            .map(|v| {
                let dout: Vec<f32> = v.iter().map(|&v| v as f32).collect();
                Cpu.fill_zero(&mut self.grads);
                self.mlp
                    .backward(&Cpu, &self.params, &mut self.acts, &dout, &mut self.grads);
                let dx = self.acts.input_grad().expect("made with input grad");
                dx.iter()
                    .zip(v)
                    .map(|(&d, &v)| on_x * v + on_out * d as f64)
                    .collect()
            })
            .collect();
        (out, vjps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::BetaSchedule;

    /// The exact network for data `N(μ, s²I)`: ε̂ = σ(x − αμ)/(α²s² + σ²), or for flow the
    /// velocity `(x − ε̂)/t`; its Jacobian is a multiple of the identity.
    struct Gaussian {
        process: Process,
        mu: f64,
        s: f64,
        dim: usize,
    }

    impl Field for Gaussian {
        fn dim(&self) -> usize {
            self.dim
        }
        fn eval(&mut self, x: &[f64], t: f64, probes: &[Vec<f64>]) -> (Vec<f64>, Vec<Vec<f64>>) {
            let (a, s) = (self.process.alpha(t), self.process.sigma(t));
            let var = a * a * self.s * self.s + s * s;
            let eps = |x: f64| s * (x - a * self.mu) / var;
            let (out, slope): (Vec<f64>, f64) = if matches!(self.process, Process::Flow) {
                (
                    x.iter().map(|&x| (x - eps(x)) / t).collect(),
                    (1.0 - s / var) / t,
                )
            } else {
                (x.iter().map(|&x| eps(x)).collect(), s / var)
            };
            let vjps = probes
                .iter()
                .map(|v| v.iter().map(|&v| v * slope).collect())
                .collect();
            (out, vjps)
        }
    }

    /// The exact `−ln p` of the data-end marginal `N(α₀μ, α₀²s² + σ₀²)`.
    fn exact(process: &Process, mu: f64, s: f64, x: &[f32], dim: usize) -> Vec<f64> {
        let t0 = ode_ends(process).0;
        let (a, sg) = (process.alpha(t0), process.sigma(t0));
        let var = a * a * s * s + sg * sg;
        x.chunks(dim)
            .map(|row| {
                row.iter()
                    .map(|&v| {
                        let z = v as f64 - a * mu;
                        0.5 * z * z / var + 0.5 * (2.0 * std::f64::consts::PI * var).ln()
                    })
                    .sum()
            })
            .collect()
    }

    fn processes() -> Vec<Process> {
        vec![
            Process::ddpm_default(),
            Process::Ddpm {
                steps: 1000,
                betas: BetaSchedule::Cosine { s: 0.008 },
            },
            Process::vp_default(),
            // The VE prior N(0, σ_max²) ignores the data's mean μ: an error of about μ·|x|/σ_max²
            // nats per dimension at the noise end, so σ_max is large here.
            Process::ve_default(400.0),
            Process::Flow,
        ]
    }

    /// RK4 with 200 λ-uniform steps against the closed form: the discretisation error is below
    /// 1e-4 (it no longer changes from 200 to 800 steps); what remains is the prior's approximation
    /// (the noise end's marginal keeps `α_N·μ` and `α_N²s²`), measured at most 1e-3 nats per
    /// dimension (flow, with μ = 0.3 before the mean was made small).
    const GAUSSIAN_TOL: f64 = 2e-3;

    #[test]
    fn exact_trace_recovers_gaussian_log_density() {
        // A small mean: the priors N(0, σ_N²) ignore α_N·μ (α_N = 0.006 for DDPM and VP), an error
        // of about α_N·μ·|x_N| nats per dimension that is not the ODE's.
        let (mu, s, dim) = (0.05, 0.5, 2);
        let x: Vec<f32> = (0..40).map(|i| (i as f32 * 0.37).sin() * 1.3).collect();
        for process in processes() {
            let mut field = Gaussian {
                process: process.clone(),
                mu,
                s,
                dim,
            };
            let cfg = NllConfig {
                steps: 200,
                ..NllConfig::default()
            };
            let got = nll(&process, &mut field, &x, &cfg).unwrap();
            let want = exact(&process, mu, s, &x, dim);
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() < GAUSSIAN_TOL * dim as f64,
                    "{}: nll {g} vs exact {w}",
                    process.name()
                );
            }
        }
    }

    #[test]
    fn hutchinson_is_exact_for_isotropic_jacobians() {
        // vᵀ(cI)v = c·d exactly for Rademacher v, so one probe already equals the exact trace.
        let process = Process::vp_default();
        let (mu, s, dim) = (-0.2, 0.8, 16);
        let x: Vec<f32> = (0..dim * 6).map(|i| (i as f32 * 0.61).cos()).collect();
        let mut field = Gaussian {
            process: process.clone(),
            mu,
            s,
            dim,
        };
        let cfg = |trace| NllConfig {
            steps: 60,
            trace,
            seed: 5,
        };
        let a = nll(&process, &mut field, &x, &cfg(Trace::Exact)).unwrap();
        let b = nll(&process, &mut field, &x, &cfg(Trace::Hutchinson(1))).unwrap();
        for (a, b) in a.iter().zip(&b) {
            assert!((a - b).abs() < 1e-9 * a.abs().max(1.0), "{a} vs {b}");
        }
    }

    #[test]
    fn grid_is_monotone_and_spans_the_ode() {
        for process in processes() {
            let ts = lambda_grid(&process, 50);
            let (t0, t1) = ode_ends(&process);
            assert_eq!((ts[0], ts[50]), (t0, t1));
            let l: Vec<f64> = ts.iter().map(|&t| process.lambda(t)).collect();
            let step = (l[50] - l[0]) / 50.0;
            for k in 0..50 {
                assert!(
                    ((l[k + 1] - l[k]) - step).abs() < 1e-6 * step.abs(),
                    "{}",
                    process.name()
                );
            }
        }
    }

    #[test]
    fn bad_shapes_and_settings_are_errors() {
        let process = Process::Flow;
        let mut field = Gaussian {
            process: process.clone(),
            mu: 0.0,
            s: 1.0,
            dim: 2,
        };
        let cfg = NllConfig::default();
        assert!(nll(&process, &mut field, &[0.0; 3], &cfg).is_err());
        let zero = NllConfig { steps: 0, ..cfg };
        assert!(nll(&process, &mut field, &[0.0; 2], &zero).is_err());
    }

    #[test]
    fn trained_network_field_matches_its_forward_pass() {
        let config = MlpConfig {
            data_dim: 2,
            hidden: 16,
            ff: 24,
            temb: 8,
            blocks: 1,
            classes: 0,
            act: microdiff_kernels::Activation::Silu,
        };
        let params = config.init(3);
        let process = Process::vp_default();
        let mut net = Network::new(config, params, process.clone(), vec![0.0; 3]);
        let x = [0.1, -0.4, 0.7, 0.2, -1.0, 0.5];
        let probes = probes(2, 3, Trace::Exact, 0);
        let (out, vjps) = net.eval(&x, 0.5, &probes);
        // Central differences of the output against the exact-trace products (diagonal J_kk).
        let h = 1e-2;
        for r in 0..3 {
            for k in 0..2 {
                let mut xp = x;
                xp[r * 2 + k] += h;
                let (op, _) = net.eval(&xp, 0.5, &[]);
                xp[r * 2 + k] -= 2.0 * h;
                let (om, _) = net.eval(&xp, 0.5, &[]);
                let fd = (op[r * 2 + k] - om[r * 2 + k]) / (2.0 * h);
                let got = vjps[k][r * 2 + k];
                assert!((fd - got).abs() < 2e-2 * (1.0 + fd.abs()), "{fd} vs {got}");
            }
        }
        assert_eq!(out.len(), 6);
    }
}
