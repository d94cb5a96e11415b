//! Noise processes by name, their schedules (`alpha_sigma`, `time_value`) and sampler programs
//! (`sampler_program`), over `microdiff_trainer::process` and `microdiff_trainer::sampler`.
//!
//! A process is named `"ddpm"` (Ho et al.'s T = 1000, linear β), `"vp"`, `"flow"` or `"ve"`
//! (with the keyword `sigma_max`), the defaults training uses; or given as the JSON a run's
//! checkpoint stores (`{"Ddpm": {"steps": 1000, "betas": …}}`) for any other parameters.

use microdiff_runtime::blob::program::Program;
use microdiff_trainer::export::from_run::MAX_GUIDANCE;
use microdiff_trainer::process::Process;
use microdiff_trainer::sampler::{self, SamplerSpec};
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::errors::value_error;

/// The process `name` names (see the module doc), validated.
pub fn process(name: &str, sigma_max: Option<f64>) -> PyResult<Process> {
    let p = match (name.trim(), sigma_max) {
        ("ve", Some(s)) => Process::ve_default(s),
        ("ve", None) => {
            return Err(value_error(
                "process \"ve\" needs sigma_max= (about the largest distance between two \
                 training points; training's default is 1.5 x range x sqrt(dim))",
            ));
        }
        (other, Some(_)) if !other.starts_with('{') => {
            return Err(value_error(format!(
                "sigma_max= applies to process \"ve\" only, not {other:?}"
            )));
        }
        ("ddpm", None) => Process::ddpm_default(),
        ("vp", None) => Process::vp_default(),
        ("flow", None) => Process::Flow,
        (json, None) if json.starts_with('{') => {
            serde_json::from_str(json).map_err(|e| value_error(format!("process {json}: {e}")))?
        }
        (other, _) => {
            return Err(value_error(format!(
                "process {other:?}: expected \"ddpm\", \"vp\", \"ve\" (with sigma_max=), \
                 \"flow\" or a process as JSON"
            )));
        }
    };
    p.validate().map_err(value_error)?;
    Ok(p)
}

/// A finite time, else a `ValueError`.
fn finite_time(t: f64) -> PyResult<f64> {
    if t.is_finite() {
        Ok(t)
    } else {
        Err(value_error(format!("t = {t}: expected a finite time")))
    }
}

/// `alpha_sigma(process, t, *, sigma_max=None)`: `(α(t), σ(t))` of the Gaussian path
/// `x_t = α·x₀ + σ·ε`. DDPM's `t` is the step (0 is the data, T = 1000 the prior; a fractional
/// step interpolates ln ᾱ); the continuous processes run over `[0, 1]` (flow: 1 is the data).
#[pyfunction]
#[pyo3(signature = (process, t, *, sigma_max = None))]
pub fn alpha_sigma(process: &str, t: f64, sigma_max: Option<f64>) -> PyResult<(f64, f64)> {
    let p = self::process(process, sigma_max)?;
    let t = finite_time(t)?;
    Ok((p.alpha(t), p.sigma(t)))
}

/// `time_value(process, t, *, sigma_max=None)`: the value the network's time embedding sees
/// at `t` (DDPM `t − 1`, the continuous processes `999·t`), as the f32 the blob stores.
#[pyfunction]
#[pyo3(signature = (process, t, *, sigma_max = None))]
pub fn time_value(process: &str, t: f64, sigma_max: Option<f64>) -> PyResult<f32> {
    let p = self::process(process, sigma_max)?;
    Ok(p.time_value(finite_time(t)?))
}

/// `default_sampler(process, *, sigma_max=None)`: the sampler `microdiff export` writes when
/// given none, e.g. `"dpmpp2m:16:clip=3"`.
#[pyfunction]
#[pyo3(signature = (process, *, sigma_max = None))]
pub fn default_sampler(process: &str, sigma_max: Option<f64>) -> PyResult<&'static str> {
    let p = self::process(process, sigma_max)?;
    Ok(microdiff_trainer::export::from_run::default_sampler(&p))
}

/// `sampler_program(spec, process="ddpm", *, sigma_max=None, guidance=None, name=None,
/// prediction=None)`: the runtime program `spec` (`"ddim:10"`, `"dpmpp2m:16:clip=3"`, … as
/// `microdiff export --sampler`) builds on `process`, as a list of instruction dicts with the
/// keys and values of `microdiff inspect --json`. `guidance` is a classifier-free guidance
/// weight (0..=100); `name` defaults to the spec's default program name (as `export` names
/// it); `prediction` (`"epsilon"`, `"velocity"`, `"sample"`, `"v"`, `"score"`; default: the
/// process's own) is what the network outputs, mapped inside the program (docs/interop.md).
#[pyfunction]
#[pyo3(signature = (spec, process = "ddpm", *, sigma_max = None, guidance = None, name = None, prediction = None))]
pub fn sampler_program<'py>(
    py: Python<'py>,
    spec: &str,
    process: &str,
    sigma_max: Option<f64>,
    guidance: Option<f64>,
    name: Option<&str>,
    prediction: Option<&str>,
) -> PyResult<Bound<'py, PyList>> {
    let p = self::process(process, sigma_max)?;
    let prediction = match prediction {
        None => p.prediction(),
        Some(n) => microdiff_trainer::prediction::from_name(n).ok_or_else(|| {
            value_error(format!(
                "prediction={n:?}: expected one of epsilon, velocity, sample, v, score"
            ))
        })?,
    };
    let mut s: SamplerSpec = spec.parse().map_err(value_error)?;
    if let Some(w) = guidance {
        if !(0.0..=MAX_GUIDANCE).contains(&w) {
            return Err(value_error(format!(
                "guidance={w}: expected 0..={MAX_GUIDANCE} (1 is no guidance)"
            )));
        }
        s = s.with_guidance(w);
    }
    let name = name.map_or_else(|| s.default_name(), str::to_string);
    // Long programs (tens of thousands of steps) take a moment: without the GIL.
    let record = py
        .detach(|| sampler::build_for(&p, prediction, &s, &name).map(|b| b.to_bytes()))
        .map_err(value_error)?;
    // A guided program evaluates the null class; the record is checked on its own here.
    let program = Program::parse(&record, 0, true).map_err(value_error)?;
    crate::blob::instructions(py, &program)
}
