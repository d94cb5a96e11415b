//! A training run → a blob: the run's weights (EMA when kept), shape and normalisation, with
//! sampler programs built for its noise process — what `microdiff export` writes. The default
//! sampler is the one docs/samplers.md measured best for the objective at ≤ 20 evaluations.

use microdiff_kernels::Dtype;

use super::{ExportSpec, TimeTable, blob, w8a8};
use crate::process::Process;
use crate::run::Trained;
use crate::sampler::{self, SamplerError, SamplerSpec};

/// Largest guidance weight accepted: far past any useful one (quality falls beyond ≈ 5), small
/// enough that `w·(ε(c) − ε(∅))` stays far from overflowing f32.
pub const MAX_GUIDANCE: f64 = 100.0;

/// How the network's arithmetic and weights are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// Float arithmetic with weights stored as f32, f16 or int8.
    Float(Dtype),
    /// The full-integer network (docs/integer.md), calibrated on the programs' trajectories.
    W8a8,
}

impl std::str::FromStr for Storage {
    type Err = String;
    fn from_str(name: &str) -> Result<Self, String> {
        if name == "w8a8" {
            return Ok(Storage::W8a8);
        }
        [Dtype::F32, Dtype::F16, Dtype::I8]
            .into_iter()
            .find(|d| d.name() == name || (name == "int8" && *d == Dtype::I8))
            .map(Storage::Float)
            .ok_or_else(|| format!("{name:?}: expected f32, f16, i8 or w8a8"))
    }
}

/// What to export.
#[derive(Debug, Clone)]
pub struct Options {
    /// Storage of the network.
    pub storage: Storage,
    /// Sampler specifications (`ddim:10`, …); empty: [`default_sampler`].
    pub samplers: Vec<String>,
    /// Classifier-free guidance weight for every program (class-conditional models only).
    pub guidance: Option<f64>,
    /// Time-embedding table or weights.
    pub time_table: TimeTable,
    /// W8A8 calibration.
    pub calibration: w8a8::Calibration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            storage: Storage::Float(Dtype::I8),
            samplers: Vec::new(),
            guidance: None,
            time_table: TimeTable::Auto,
            calibration: w8a8::Calibration::default(),
        }
    }
}

/// Why a run could not be exported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// `--guidance` out of range.
    #[error("--guidance {shown}: expected 0..={MAX_GUIDANCE} (1 is no guidance; 1.2 to 3 is usual)", shown = shown(*.0))]
    Guidance(f64),
    /// `--guidance` for a model without classes.
    #[error("--guidance needs a class-conditional model (train with --conditional true)")]
    Unconditional,
    /// A sampler specification that does not parse or apply.
    #[error("--sampler {spec}: {source}")]
    Sampler {
        /// The specification given.
        spec: String,
        /// Why.
        source: SamplerError,
    },
    /// The run's data shape does not fit a blob.
    #[error("samples of shape {0:?}: a blob stores each dimension in 16 bits (at most 65535)")]
    Shape(Vec<usize>),
    /// The blob builder refused.
    #[error("export: {0}")]
    Blob(#[from] microdiff_runtime::Error),
    /// The exporter refused the parameters or the calibration.
    #[error("export: {0}")]
    Build(#[from] super::BuildError),
}

/// Huge values in exponent form: 1e30, not thirty-one digits.
fn shown(w: f64) -> String {
    if w.abs() >= 1e6 {
        format!("{w:e}")
    } else {
        format!("{w}")
    }
}

/// The sampler `export` writes when none is given: the best of ≤ 20 network evaluations on
/// two moons (docs/samplers.md). DPM-Solver++(2M), 16 steps, x̂₀ clipped to ±3 (training data
/// is standardised per dimension, the digits scaled to [−1, 1], so ±3 cuts nothing real but the
/// rare far outliers of a deterministic sampler's first step, which divides by α_T ≈ 0.006):
/// sliced W2 over its floor 1.14× on DDPM and VP, 1.22× on VE (2 000 samples, default training);
/// without the clipping 23× and 2.0×. Heun, 8 steps (15 evaluations), on flow matching: 0.96×.
pub fn default_sampler(process: &Process) -> &'static str {
    match process {
        Process::Flow => "heun:8",
        _ => "dpmpp2m:16:clip=3",
    }
}

/// The model-space range a sample must end in: the run's data range (pixels `0..=255`, the
/// digits' `0..=16`) through its normaliser, when that is one affine map for every value.
fn output_range(run: &Trained) -> Option<(f32, f32)> {
    let (lo, hi) = run.info.data_range?;
    let norm = &run.info.normalizer;
    match (norm.scale.as_slice(), norm.offset.as_slice()) {
        ([s], [o]) if *s > 0.0 => Some(((lo - o) / s, (hi - o) / s)),
        _ => None,
    }
}

/// `program` with its output clamped to `lo..=hi` before its last `STEP`: a sample of pixels
/// stays a picture however far a few-step sampler overshoots (as image pipelines clamp to
/// `[−1, 1]` before converting to pixels).
fn clamp_output(
    program: &microdiff_runtime::blob::ProgramBuilder,
    lo: f32,
    hi: f32,
) -> Result<microdiff_runtime::blob::ProgramBuilder, ExportError> {
    use microdiff_runtime::blob::program::{Instr, Program};
    let record = program.to_bytes();
    let parsed = Program::parse(&record, 0, true)?;
    let mut out = microdiff_runtime::blob::ProgramBuilder::new(parsed.name(), parsed.regs);
    out.out_reg(parsed.out_reg);
    let mut steps_left = parsed.steps;
    for instr in parsed.instructions() {
        let (_, instr) = instr?;
        if let Instr::Step = instr {
            steps_left = steps_left.saturating_sub(1);
            if steps_left == 0 {
                out.clamp(parsed.out_reg, lo, hi);
            }
        }
        out.push(&instr);
    }
    Ok(out)
}

/// The exported blob.
#[derive(Debug, Clone)]
pub struct Exported {
    /// The blob's bytes.
    pub bytes: Vec<u8>,
    /// What the W8A8 calibration saw (W8A8 only).
    pub calibration: Option<w8a8::Report>,
}

/// Builds the blob of `run` as `options` say.
pub fn from_run(run: &Trained, options: &Options) -> Result<Exported, ExportError> {
    let cfg = run.config();
    if let Some(w) = options.guidance {
        if !(0.0..=MAX_GUIDANCE).contains(&w) {
            return Err(ExportError::Guidance(w));
        }
        if cfg.model.classes == 0 {
            return Err(ExportError::Unconditional);
        }
    }
    let names = if options.samplers.is_empty() {
        vec![default_sampler(&cfg.process).to_string()]
    } else {
        options.samplers.clone()
    };
    let mut programs = Vec::new();
    for n in &names {
        let sampler_error = |source| ExportError::Sampler {
            spec: n.clone(),
            source,
        };
        let mut spec: SamplerSpec = n.parse().map_err(sampler_error)?;
        if let Some(w) = options.guidance {
            spec = spec.with_guidance(w);
        }
        let name = spec.default_name();
        let program = sampler::build_for(&cfg.process, cfg.prediction(), &spec, &name)
            .map_err(sampler_error)?;
        programs.push(match output_range(run) {
            Some((lo, hi)) => clamp_output(&program, lo, hi)?,
            None => program,
        });
    }
    // Checked, not `as u16`: a dimension above 65535 was truncated into a wrong blob.
    let shape = run
        .info
        .shape
        .iter()
        .map(|&d| u16::try_from(d))
        .collect::<Result<Vec<u16>, _>>()
        .map_err(|_| ExportError::Shape(run.info.shape.clone()))?;
    let spec = ExportSpec {
        dtype: match options.storage {
            Storage::Float(d) => d,
            Storage::W8a8 => Dtype::F32,
        },
        shape,
        scale: run.info.normalizer.scale.clone(),
        offset: run.info.normalizer.offset.clone(),
        programs,
        time_table: options.time_table,
        schedule: true,
        prediction: cfg.prediction,
    };
    let params = run.weights();
    Ok(match options.storage {
        Storage::W8a8 => {
            let (bytes, report) =
                w8a8::blob(&cfg.model, params, &cfg.process, &spec, options.calibration)?;
            Exported {
                bytes,
                calibration: Some(report),
            }
        }
        Storage::Float(_) => Exported {
            bytes: blob(&cfg.model, params, &cfg.process, &spec)?,
            calibration: None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use microdiff_runtime::blob::program::{Instr, Program};

    #[test]
    fn the_output_clamp_goes_before_the_last_step_only() {
        let process = Process::ddpm_default();
        let spec: SamplerSpec = "ddim:4".parse().unwrap();
        let plain = sampler::build(&process, &spec, "ddim4").unwrap();
        let clamped = clamp_output(&plain, -1.0, 1.0).unwrap();
        let (a, b) = (plain.to_bytes(), clamped.to_bytes());
        let (a, b) = (
            Program::parse(&a, 0, true).unwrap(),
            Program::parse(&b, 0, true).unwrap(),
        );
        assert_eq!((a.steps, a.evals, a.out_reg), (b.steps, b.evals, b.out_reg));
        let ops = |p: &Program| -> Vec<String> {
            p.instructions()
                .map(|i| format!("{:?}", i.unwrap().1))
                .collect()
        };
        let (oa, ob) = (ops(&a), ops(&b));
        assert_eq!(ob.len(), oa.len() + 1);
        assert_eq!(&ob[..oa.len() - 1], &oa[..oa.len() - 1]);
        let last: Vec<Instr> = b.instructions().map(|i| i.unwrap().1).collect();
        match last[last.len() - 2] {
            Instr::Clamp { reg, lo, hi } => assert_eq!((reg, lo, hi), (b.out_reg, -1.0, 1.0)),
            ref other => panic!("expected CLAMP before the last STEP, found {other:?}"),
        }
        assert!(matches!(last[last.len() - 1], Instr::Step));
    }
}
