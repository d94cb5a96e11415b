//! Sampler specifications as strings (`ddim:10:eta=0.5`), their canonical form, evaluation
//! counts and default program names.
//!
//! Grammar: `KIND[:STEPS][:KEY=VALUE]…`
//!
//! | kind | steps | options (default) |
//! |---|---|---|
//! | `ddpm` | optional (1000) | `var=beta\|tilde` (beta), `clip=c` (none) |
//! | `ddim` | required | `eta=η` (0), `clip=c` (none), `spacing=leading\|trailing\|linspace` (trailing) |
//! | `dpmpp2m` (also `dpm++2m`) | required | `clip=c` (none) |
//! | `euler`, `heun` | required | — |
//! | `em` | required | — |
//! | `pc` | required | `corrector=M` (1), `snr=r` (0.16) |
//!
//! Guidance is not part of the string; set [`SamplerSpec::guidance`].

use std::fmt;
use std::str::FromStr;

use super::{AncestralVariance, SamplerError, SamplerKind, SamplerSpec, Spacing};

/// DDPM ancestral steps when the string gives none (Ho et al.'s T).
pub const DEFAULT_DDPM_STEPS: usize = 1000;
/// Langevin steps per time step (Song et al. 2021 use one).
pub const DEFAULT_CORRECTOR_STEPS: usize = 1;
/// Langevin signal-to-noise ratio (Song et al. 2021: 0.16 for CIFAR-10 VE; score_sde default).
pub const DEFAULT_SNR: f64 = 0.16;

const KINDS: &str = "ddpm, ddim, dpmpp2m, euler, heun, em, pc";

impl SamplerKind {
    /// The short name used in strings and messages.
    pub fn name(&self) -> &'static str {
        match self {
            SamplerKind::DdpmAncestral { .. } => "ddpm",
            SamplerKind::Ddim { .. } => "ddim",
            SamplerKind::DpmSolverPp2M { .. } => "dpmpp2m",
            SamplerKind::Euler => "euler",
            SamplerKind::Heun => "heun",
            SamplerKind::EulerMaruyama => "em",
            SamplerKind::PredictorCorrector { .. } => "pc",
        }
    }

    /// Whether the sampler injects noise after the initial draw.
    pub fn is_stochastic(&self) -> bool {
        match self {
            SamplerKind::DdpmAncestral { .. }
            | SamplerKind::EulerMaruyama
            | SamplerKind::PredictorCorrector { .. } => true,
            SamplerKind::Ddim { eta, .. } => *eta > 0.0,
            _ => false,
        }
    }
}

impl Spacing {
    fn name(self) -> &'static str {
        match self {
            Spacing::Leading => "leading",
            Spacing::Trailing => "trailing",
            Spacing::Linspace => "linspace",
        }
    }
}

impl SamplerSpec {
    /// An unguided spec.
    pub fn new(kind: SamplerKind, steps: usize) -> Self {
        SamplerSpec {
            kind,
            steps,
            guidance: None,
        }
    }

    /// The same spec with guidance weight `w`.
    pub fn with_guidance(mut self, w: f64) -> Self {
        self.guidance = Some(w);
        self
    }

    /// Network evaluations of the whole program, counting both branches of guidance.
    pub fn evaluations(&self) -> usize {
        let n = self.steps;
        let per_guidance = if self.guidance.is_some() { 2 } else { 1 };
        let calls = match self.kind {
            SamplerKind::Heun => (2 * n).saturating_sub(1),
            SamplerKind::PredictorCorrector {
                corrector_steps, ..
            } => n * (corrector_steps + 1),
            _ => n,
        };
        calls * per_guidance
    }

    /// A program name: at most 16 printable ASCII characters, e.g. `ddim10`, `heun16-cfg`,
    /// `ddim10e0.5c1`, `pc100c2`. Long parameter combinations are cut at 16 characters and may
    /// then collide: give such programs a name of your own.
    pub fn default_name(&self) -> String {
        let n = self.steps;
        let mut s = match &self.kind {
            SamplerKind::DdpmAncestral { variance, clip } => {
                let mut s = match variance {
                    AncestralVariance::Beta => format!("ddpm{n}"),
                    AncestralVariance::BetaTilde => format!("ddpm{n}t"),
                };
                if let Some(c) = clip {
                    s += &format!("c{c}");
                }
                s
            }
            SamplerKind::Ddim { eta, spacing, clip } => {
                let mut s = format!("ddim{n}");
                if *eta != 0.0 {
                    s += &format!("e{eta}");
                }
                if let Some(c) = clip {
                    s += &format!("c{c}");
                }
                match spacing {
                    Spacing::Trailing => {}
                    Spacing::Leading => s += "-lead",
                    Spacing::Linspace => s += "-lin",
                }
                s
            }
            SamplerKind::DpmSolverPp2M { clip } => match clip {
                Some(c) => format!("dpmpp2m{n}c{c}"),
                None => format!("dpmpp2m{n}"),
            },
            SamplerKind::Euler => format!("euler{n}"),
            SamplerKind::Heun => format!("heun{n}"),
            SamplerKind::EulerMaruyama => format!("em{n}"),
            SamplerKind::PredictorCorrector {
                corrector_steps,
                snr,
            } => {
                let mut s = format!("pc{n}c{corrector_steps}");
                if *snr != DEFAULT_SNR {
                    s += &format!("s{snr}");
                }
                s
            }
        };
        if self.guidance.is_some() {
            s += "-cfg";
        }
        s.retain(|c| c.is_ascii_graphic());
        s.truncate(microdiff_runtime::blob::program::NAME_LEN);
        s
    }

    /// Checks the parameters' ranges.
    pub fn validate(&self) -> Result<(), SamplerError> {
        let bad = |name, value: f64, why| {
            Err(SamplerError::BadParameter {
                name,
                value: value.to_string(),
                why,
            })
        };
        if self.steps == 0 {
            return Err(SamplerError::BadParameter {
                name: "steps",
                value: "0".into(),
                why: "a sampler needs at least one step",
            });
        }
        if let Some(w) = self.guidance.filter(|w| !w.is_finite()) {
            return bad("guidance", w, "the guidance weight must be finite");
        }
        let clip = match self.kind {
            SamplerKind::Ddim { clip, .. }
            | SamplerKind::DdpmAncestral { clip, .. }
            | SamplerKind::DpmSolverPp2M { clip } => clip,
            _ => None,
        };
        if let Some(c) = clip.filter(|c| !(c.is_finite() && *c > 0.0)) {
            return bad("clip", c, "the clipping bound must be finite and > 0");
        }
        match self.kind {
            SamplerKind::Ddim { eta, .. } if !(0.0..=1.0).contains(&eta) => {
                return bad("eta", eta, "DDIM's η must be in [0, 1]");
            }
            SamplerKind::PredictorCorrector { snr, .. } if !(snr.is_finite() && snr > 0.0) => {
                return bad(
                    "snr",
                    snr,
                    "the Langevin signal-to-noise ratio must be finite and > 0",
                );
            }
            _ => {}
        }
        Ok(())
    }
}

impl fmt::Display for SamplerSpec {
    /// The canonical string: options at their defaults are left out; guidance is not shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind.name(), self.steps)?;
        match &self.kind {
            SamplerKind::DdpmAncestral { variance, clip } => {
                if *variance == AncestralVariance::BetaTilde {
                    write!(f, ":var=tilde")?;
                }
                if let Some(c) = clip {
                    write!(f, ":clip={c}")?;
                }
            }
            SamplerKind::Ddim { eta, spacing, clip } => {
                if *eta != 0.0 {
                    write!(f, ":eta={eta}")?;
                }
                if let Some(c) = clip {
                    write!(f, ":clip={c}")?;
                }
                if *spacing != Spacing::Trailing {
                    write!(f, ":spacing={}", spacing.name())?;
                }
            }
            SamplerKind::DpmSolverPp2M { clip: Some(c) } => write!(f, ":clip={c}")?,
            SamplerKind::PredictorCorrector {
                corrector_steps,
                snr,
            } => {
                if *corrector_steps != DEFAULT_CORRECTOR_STEPS {
                    write!(f, ":corrector={corrector_steps}")?;
                }
                if *snr != DEFAULT_SNR {
                    write!(f, ":snr={snr}")?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl FromStr for SamplerSpec {
    type Err = SamplerError;

    fn from_str(input: &str) -> Result<Self, SamplerError> {
        let fail = |why: String| SamplerError::Parse {
            input: input.into(),
            why,
        };
        let mut parts = input.trim().split(':');
        let kind_name = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let rest: Vec<&str> = parts.map(str::trim).collect();
        let (steps, options) = match rest.first() {
            Some(first) if !first.contains('=') => {
                let n = first
                    .parse::<usize>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| {
                        fail(format!("step count `{first}` is not a positive integer"))
                    })?;
                (Some(n), &rest[1..])
            }
            _ => (None, &rest[..]),
        };
        let mut opts: Vec<(&str, &str)> = Vec::new();
        for o in options {
            let (k, v) = o
                .split_once('=')
                .ok_or_else(|| fail(format!("option `{o}` must be KEY=VALUE")))?;
            let (k, v) = (k.trim(), v.trim());
            if opts.iter().any(|(k0, _)| *k0 == k) {
                return Err(fail(format!("option `{k}` is given twice")));
            }
            opts.push((k, v));
        }
        let allowed: &[&str] = match kind_name.as_str() {
            "ddpm" => &["var", "clip"],
            "ddim" => &["eta", "clip", "spacing"],
            "pc" => &["corrector", "snr"],
            "dpmpp2m" | "dpm++2m" => &["clip"],
            "euler" | "heun" | "em" => &[],
            "" => return Err(fail(format!("no sampler named; expected one of {KINDS}"))),
            other => {
                return Err(fail(format!(
                    "unknown sampler `{other}`; expected one of {KINDS}"
                )));
            }
        };
        if let Some((k, _)) = opts.iter().find(|(k, _)| !allowed.contains(k)) {
            let list = if allowed.is_empty() {
                "none".to_string()
            } else {
                allowed.join(", ")
            };
            return Err(fail(format!(
                "`{kind_name}` has no option `{k}` (options: {list})"
            )));
        }
        let get = |k: &str| opts.iter().find(|(k0, _)| *k0 == k).map(|(_, v)| *v);
        let num = |k: &str| -> Result<Option<f64>, SamplerError> {
            get(k)
                .map(|v| {
                    v.parse::<f64>()
                        .ok()
                        .filter(|x| x.is_finite())
                        .ok_or_else(|| fail(format!("{k} = `{v}` is not a number")))
                })
                .transpose()
        };
        let steps_or_required = |steps: Option<usize>| {
            steps.ok_or_else(|| {
                fail(format!(
                    "`{kind_name}` needs a step count, e.g. `{kind_name}:10`"
                ))
            })
        };
        let (kind, steps) = match kind_name.as_str() {
            "ddpm" => {
                let variance = match get("var") {
                    None | Some("beta") => AncestralVariance::Beta,
                    Some("tilde" | "beta-tilde" | "betatilde") => AncestralVariance::BetaTilde,
                    Some(v) => return Err(fail(format!("var = `{v}`: expected beta or tilde"))),
                };
                (
                    SamplerKind::DdpmAncestral {
                        variance,
                        clip: num("clip")?,
                    },
                    steps.unwrap_or(DEFAULT_DDPM_STEPS),
                )
            }
            "ddim" => {
                let spacing = match get("spacing") {
                    None | Some("trailing") => Spacing::Trailing,
                    Some("leading") => Spacing::Leading,
                    Some("linspace") => Spacing::Linspace,
                    Some(v) => {
                        return Err(fail(format!(
                            "spacing = `{v}`: expected leading, trailing or linspace"
                        )));
                    }
                };
                (
                    SamplerKind::Ddim {
                        eta: num("eta")?.unwrap_or(0.0),
                        spacing,
                        clip: num("clip")?,
                    },
                    steps_or_required(steps)?,
                )
            }
            "pc" => {
                let corrector_steps = match get("corrector") {
                    None => DEFAULT_CORRECTOR_STEPS,
                    Some(v) => v.parse::<usize>().map_err(|_| {
                        fail(format!("corrector = `{v}` is not a non-negative integer"))
                    })?,
                };
                (
                    SamplerKind::PredictorCorrector {
                        corrector_steps,
                        snr: num("snr")?.unwrap_or(DEFAULT_SNR),
                    },
                    steps_or_required(steps)?,
                )
            }
            "dpmpp2m" | "dpm++2m" => (
                SamplerKind::DpmSolverPp2M { clip: num("clip")? },
                steps_or_required(steps)?,
            ),
            "euler" => (SamplerKind::Euler, steps_or_required(steps)?),
            "heun" => (SamplerKind::Heun, steps_or_required(steps)?),
            _ => (SamplerKind::EulerMaruyama, steps_or_required(steps)?),
        };
        let spec = SamplerSpec::new(kind, steps);
        spec.validate()?;
        Ok(spec)
    }
}
