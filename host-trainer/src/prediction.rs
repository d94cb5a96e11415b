//! What a network may output for each noise process, and the affine map from that output to
//! what the sampler builders consume (ε for DDPM, VP and VE; the velocity for flow).
//!
//! microdiff trains each process's own target ([`Process::prediction`]). A network trained
//! elsewhere (`microdiff import`) may predict something else; the builders then fold
//! [`to_target`]'s map into the `LIN` coefficients that follow each `EVAL`, so the device runs
//! the same instructions and no extra arithmetic. With `x = α·x₀ + σ·ε`:
//!
//! | process | prediction | target = a·x + b·output |
//! |---|---|---|
//! | DDPM, VP, VE | `epsilon` | `ε` (a = 0, b = 1) |
//! | DDPM, VP, VE | `sample` (x̂₀) | `ε = (x − α·x̂₀)/σ` |
//! | DDPM, VP, VE | `score` (ŝ) | `ε = −σ·ŝ` |
//! | DDPM, VP | `v` (v̂ = α·ε − σ·x₀) | `ε = σ·x + α·v̂` (uses α² + σ² = 1) |
//! | flow | `velocity` | `u` (a = 0, b = 1) |
//! | flow | `sample` (x̂₀) | `u = (x̂₀ − x)/σ` (σ = 1 − t) |
//!
//! Everything else is refused ([`PredictionError`]): `v` on VE (α² + σ² ≠ 1), ε or `v` or the
//! score on flow (the map divides by α = t, which is 0 where flow sampling starts).

use microdiff_runtime::blob::meta::Prediction;

use crate::process::Process;

/// Every prediction, in the order of their names' listing.
pub const ALL: [Prediction; 5] = [
    Prediction::Epsilon,
    Prediction::Velocity,
    Prediction::Sample,
    Prediction::V,
    Prediction::Score,
];

/// A prediction a process's samplers cannot be built for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a {process} network predicting {} cannot be sampled: microdiff's {process} samplers take {}",
    prediction.name(),
    names(accepted)
)]
pub struct PredictionError {
    /// The process's name.
    pub process: &'static str,
    /// The prediction declared.
    pub prediction: Prediction,
    /// What the process's samplers take ([`accepted`]).
    pub accepted: Vec<Prediction>,
}

/// `"epsilon, sample"`.
fn names(ps: &[Prediction]) -> String {
    ps.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ")
}

/// The prediction called `name` (`epsilon`, `velocity`, `sample`, `v`, `score`).
pub fn from_name(name: &str) -> Option<Prediction> {
    ALL.into_iter().find(|p| p.name() == name)
}

/// The predictions `process`'s samplers can be built for, its own target first.
pub fn accepted(process: &Process) -> Vec<Prediction> {
    match process {
        Process::Flow => vec![Prediction::Velocity, Prediction::Sample],
        Process::Ve { .. } => vec![Prediction::Epsilon, Prediction::Sample, Prediction::Score],
        Process::Ddpm { .. } | Process::Vp { .. } => vec![
            Prediction::Epsilon,
            Prediction::Sample,
            Prediction::V,
            Prediction::Score,
        ],
    }
}

/// `Ok` when `process`'s samplers can be built for a network predicting `prediction`.
pub fn check(process: &Process, prediction: Prediction) -> Result<(), PredictionError> {
    if accepted(process).contains(&prediction) {
        Ok(())
    } else {
        Err(PredictionError {
            process: process.name(),
            prediction,
            accepted: accepted(process),
        })
    }
}

/// `(a, b)` with `target = a·x + b·output` at a time where the process has `alpha` and `sigma`
/// (the table in the module doc), or `None` when [`check`] refuses the pair. The process's own
/// prediction gives `(0, 1)`.
pub fn to_target(
    process: &Process,
    prediction: Prediction,
    alpha: f64,
    sigma: f64,
) -> Option<(f64, f64)> {
    check(process, prediction).ok()?;
    Some(match (process, prediction) {
        (Process::Flow, Prediction::Sample) => (-1.0 / sigma, 1.0 / sigma),
        (_, Prediction::Sample) => (1.0 / sigma, -alpha / sigma),
        (_, Prediction::Score) => (0.0, -sigma),
        (_, Prediction::V) => (sigma, alpha),
        _ => (0.0, 1.0),
    })
}

/// Serde of an optional prediction as its name (`"sample"`), for [`crate::train::TrainConfig`].
pub(crate) mod serde_name {
    use microdiff_runtime::blob::meta::Prediction;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(p: &Option<Prediction>, s: S) -> Result<S::Ok, S::Error> {
        match p {
            Some(p) => s.serialize_some(p.name()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Prediction>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(name) => super::from_name(&name)
                .map(Some)
                .ok_or_else(|| D::Error::custom(format!("unknown prediction {name:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each map inverts the prediction's definition: feeding it the exact prediction of a
    /// known (x₀, ε) gives back the exact target.
    #[test]
    fn each_map_recovers_the_target_from_the_exact_prediction() {
        let (x0, eps) = (0.7_f64, -1.3_f64);
        for process in [
            Process::ddpm_default(),
            Process::vp_default(),
            Process::ve_default(20.0),
            Process::Flow,
        ] {
            for t in [0.05, 0.3, 0.9] {
                let (alpha, sigma) = if process.is_discrete() {
                    let step = (t * 1000.0) as usize;
                    (process.alpha(step as f64), process.sigma(step as f64))
                } else {
                    (process.alpha(t), process.sigma(t))
                };
                let x = alpha * x0 + sigma * eps;
                let target = match process {
                    Process::Flow => x0 - eps,
                    _ => eps,
                };
                for p in accepted(&process) {
                    let output = match p {
                        Prediction::Epsilon => eps,
                        Prediction::Velocity => x0 - eps,
                        Prediction::Sample => x0,
                        Prediction::V => alpha * eps - sigma * x0,
                        Prediction::Score => -eps / sigma,
                    };
                    let (a, b) = to_target(&process, p, alpha, sigma).unwrap();
                    let got = a * x + b * output;
                    assert!(
                        (got - target).abs() < 1e-9 * (1.0 + target.abs()),
                        "{} {} t={t}: {got} vs {target}",
                        process.name(),
                        p.name()
                    );
                }
            }
        }
    }

    #[test]
    fn refused_pairs_name_what_is_accepted() {
        for (process, p) in [
            (Process::Flow, Prediction::Epsilon),
            (Process::Flow, Prediction::Score),
            (Process::Flow, Prediction::V),
            (Process::ve_default(20.0), Prediction::V),
            (Process::ddpm_default(), Prediction::Velocity),
        ] {
            let e = check(&process, p).unwrap_err().to_string();
            assert!(e.contains(p.name()) && e.contains(process.name()), "{e}");
            assert!(to_target(&process, p, 0.5, 0.5).is_none());
        }
        let e = check(&Process::Flow, Prediction::Epsilon)
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("take velocity, sample"), "{e}");
    }
}
