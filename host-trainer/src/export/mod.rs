//! Export: trained parameters → a weight blob the runtime runs.
//!
//! The graph written here is the network of [`crate::model`], op for op: matrices stored as
//! f32, f16 (round to nearest even) or int8 (symmetric, one scale per output row, the kernels
//! crate's `quantize_row_i8`), biases and layer-norm parameters always f32. The metadata carries
//! the data shape, the map back to data units, the objective and prediction type, the classes
//! and the null class used by guidance; the schedule table and the sampler programs follow.
//! [`from_run`] exports a training run with the programs its objective needs.

pub mod from_run;
pub mod w8a8;

use microdiff_kernels::{Activation, Dtype};
use microdiff_runtime::Error as BlobError;
use microdiff_runtime::batch::BatchModel;
use microdiff_runtime::blob::meta::Prediction;
use microdiff_runtime::blob::{BlobBuilder, ProgramBuilder, Value};

use crate::model::{LN_EPS, Layout, MAX_PERIOD, MlpConfig, Slot};
use crate::process::Process;

/// Why the exporter could not build a blob.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The runtime's blob builder or parser refused what was built.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// A kernel the exporter computes with refused its arguments.
    #[error(transparent)]
    Kernel(#[from] microdiff_kernels::KernelError),
    /// The parameters or the calibration cannot be exported; the reason, in words.
    #[error("{0}")]
    Refused(&'static str),
}

/// Whether the time-embedding MLP (sinusoid → linear → SiLU → linear) is stored as weights or
/// folded into a table of its outputs, one row per time the programs evaluate (`TIME_TABLE`:
/// the device then does no `sin`/`cos` and skips those products; the samples are bit for bit
/// the same, because the rows are computed with the device's own arithmetic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeTable {
    /// Fold when the table is no larger than the weights it replaces (few-step programs).
    #[default]
    Auto,
    /// Always fold.
    Always,
    /// Never fold.
    Never,
}

impl std::str::FromStr for TimeTable {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(TimeTable::Auto),
            "always" => Ok(TimeTable::Always),
            "never" => Ok(TimeTable::Never),
            _ => Err(format!("`{s}`: expected auto, always or never")),
        }
    }
}

/// Export settings.
#[derive(Debug, Clone)]
pub struct ExportSpec {
    /// How matrices are stored.
    pub dtype: Dtype,
    /// Data shape (1 to 4 dimensions; product = the model's data_dim).
    pub shape: Vec<u16>,
    /// Model space → data units: `data = x·scale + offset` (one value, or one per element).
    pub scale: Vec<f32>,
    /// See `scale`.
    pub offset: Vec<f32>,
    /// Sampler programs to include (at least one).
    pub programs: Vec<ProgramBuilder>,
    /// Store the time-embedding MLP as weights or as a table of its outputs.
    pub time_table: TimeTable,
    /// Include the noise schedule (one row per training step: what host tools such as the
    /// likelihood evaluation read; the programs carry their own coefficients, so a blob made
    /// only for sampling on a device can leave it out and save 16 bytes per step).
    pub schedule: bool,
    /// What the network outputs, for the blob's `PREDICTION` field, when it is not the
    /// process's own target (an imported network; `programs` must then be built for it with
    /// [`crate::sampler::build_for`]).
    pub prediction: Option<Prediction>,
}

/// Builds the blob.
pub fn blob(
    config: &MlpConfig,
    params: &[f32],
    process: &Process,
    spec: &ExportSpec,
) -> Result<Vec<u8>, BuildError> {
    let (weights, te) = build(config, params, process, spec, None)?;
    if spec.time_table == TimeTable::Never {
        return Ok(weights);
    }
    // The rows: the time MLP's output at every time any program evaluates, computed by the
    // runtime from the blob just built (the device's arithmetic, so the device's bits).
    let model = microdiff_runtime::Model::parse(&weights)?;
    let (rows, times) = BatchModel::new(&model)?.time_table(te.0)?;
    let table_bytes = 4 * (rows.len() + times.len());
    if spec.time_table == TimeTable::Auto && table_bytes > time_mlp_bytes(config, spec.dtype) {
        return Ok(weights);
    }
    Ok(build(config, params, process, spec, Some((&rows, &times)))?.0)
}

/// Bytes the time MLP's tensors take in the blob (weights as stored, f32 biases, int8 scales).
fn time_mlp_bytes(c: &MlpConfig, dtype: Dtype) -> usize {
    let matrix = |rows: usize, cols: usize| {
        rows * cols * dtype.bytes_per_element() + if dtype == Dtype::I8 { 4 * rows } else { 0 }
    };
    matrix(c.hidden, c.temb) + 4 * c.hidden + matrix(c.hidden, c.hidden) + 4 * c.hidden
}

/// The blob, and the value that is the time MLP's output. With `table = Some((rows, times))`
/// that value is a `TIME_TABLE` over them instead of the MLP.
fn build(
    config: &MlpConfig,
    params: &[f32],
    process: &Process,
    spec: &ExportSpec,
    table: Option<(&[f32], &[f32])>,
) -> Result<(Vec<u8>, Value), BuildError> {
    let l = Layout::new(config);
    if params.len() != l.len {
        return Err(BuildError::Refused(
            "parameter count does not match the model configuration",
        ));
    }
    let prediction = spec.prediction.unwrap_or_else(|| process.prediction());
    let mut b = BlobBuilder::new(&spec.shape, process.objective(), prediction);
    if config.classes > 0 {
        b.classes(config.classes as u16, Some(config.classes as u16));
    }
    b.normalization(&spec.scale, &spec.offset);
    if spec.schedule {
        b.schedule(&process.schedule_rows());
    }
    let slice = |s: Slot| &params[s.offset..s.offset + s.len()];
    let mat =
        |b: &mut BlobBuilder, s: Slot| b.tensor(spec.dtype, s.rows as u32, s.cols as u32, slice(s));
    let vec = |b: &mut BlobBuilder, s: Slot| b.tensor(Dtype::F32, s.len() as u32, 1, slice(s));

    let w_in = mat(&mut b, l.w_in)?;
    let b_in = vec(&mut b, l.b_in)?;
    let time_tensors = match table {
        None => {
            let w_t1 = mat(&mut b, l.w_t1)?;
            let b_t1 = vec(&mut b, l.b_t1)?;
            let w_t2 = mat(&mut b, l.w_t2)?;
            let b_t2 = vec(&mut b, l.b_t2)?;
            Err((w_t1, b_t1, w_t2, b_t2))
        }
        Some((rows, times)) => {
            let k = times.len() as u32;
            Ok((
                b.tensor(Dtype::F32, k, config.hidden as u32, rows)?,
                b.tensor(Dtype::F32, k, 1, times)?,
            ))
        }
    };
    let class_table = match l.table {
        Some(t) => Some(mat(&mut b, t)?),
        None => None,
    };
    let x = b.input();
    let mut h = b.linear(x, w_in, Some(b_in));
    let te = match time_tensors {
        Err((w_t1, b_t1, w_t2, b_t2)) => {
            let te = b.time_embed(config.temb as u32, MAX_PERIOD);
            let te = b.linear(te, w_t1, Some(b_t1));
            let te = b.activation(te, Activation::Silu);
            b.linear(te, w_t2, Some(b_t2))
        }
        Ok((rows, times)) => b.time_table(rows, times),
    };
    h = b.add(h, te);
    if let Some(t) = class_table {
        let ce = b.class_embed(t);
        h = b.add(h, ce);
    }
    for blk in &l.blocks {
        let g = vec(&mut b, blk.ln_g)?;
        let beta = vec(&mut b, blk.ln_b)?;
        let w1 = mat(&mut b, blk.w1)?;
        let b1 = vec(&mut b, blk.b1)?;
        let w2 = mat(&mut b, blk.w2)?;
        let b2 = vec(&mut b, blk.b2)?;
        let r = b.layer_norm(h, Some(g), Some(beta), LN_EPS);
        let r = b.linear(r, w1, Some(b1));
        let r = b.activation(r, config.act);
        let r = b.linear(r, w2, Some(b2));
        h = b.add(h, r);
    }
    let g = vec(&mut b, l.ln_g)?;
    let beta = vec(&mut b, l.ln_b)?;
    let w_out = mat(&mut b, l.w_out)?;
    let b_out = vec(&mut b, l.b_out)?;
    let o = b.layer_norm(h, Some(g), Some(beta), LN_EPS);
    let o = b.activation(o, config.act);
    let o = b.linear(o, w_out, Some(b_out));
    b.output(o);
    for p in &spec.programs {
        b.program(p);
    }
    Ok((b.build()?, te))
}
