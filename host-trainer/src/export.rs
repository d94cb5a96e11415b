//! Export: trained parameters → a weight blob the runtime runs.
//!
//! The graph written here is the network of [`crate::model`], op for op: matrices stored as
//! f32, f16 (round to nearest even) or int8 (symmetric, one scale per output row, the kernels
//! crate's `quantize_row_i8`), biases and layer-norm parameters always f32. The metadata carries
//! the data shape, the map back to data units, the objective and prediction type, the classes
//! and the null class used by guidance; the schedule table and the sampler programs follow.

use microdiff_kernels::{Activation, Dtype};
use microdiff_runtime::Error as BlobError;
use microdiff_runtime::blob::{BlobBuilder, ProgramBuilder};

use crate::model::{LN_EPS, Layout, MAX_PERIOD, MlpConfig, Slot};
use crate::schedule::Process;

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
}

/// Builds the blob.
pub fn blob(
    config: &MlpConfig,
    params: &[f32],
    process: &Process,
    spec: &ExportSpec,
) -> Result<Vec<u8>, BlobError> {
    let l = Layout::new(config);
    if params.len() != l.len {
        return Err(BlobError::Malformed {
            section: microdiff_runtime::Section::Tensors,
            what: "parameter count does not match the model configuration",
        });
    }
    let mut b = BlobBuilder::new(&spec.shape, process.objective(), process.prediction());
    if config.classes > 0 {
        b.classes(config.classes as u16, Some(config.classes as u16));
    }
    b.normalization(&spec.scale, &spec.offset);
    b.schedule(&process.schedule_rows());
    let slice = |s: Slot| &params[s.offset..s.offset + s.len()];
    let mat =
        |b: &mut BlobBuilder, s: Slot| b.tensor(spec.dtype, s.rows as u32, s.cols as u32, slice(s));
    let vec = |b: &mut BlobBuilder, s: Slot| b.tensor(Dtype::F32, s.len() as u32, 1, slice(s));

    let w_in = mat(&mut b, l.w_in)?;
    let b_in = vec(&mut b, l.b_in)?;
    let w_t1 = mat(&mut b, l.w_t1)?;
    let b_t1 = vec(&mut b, l.b_t1)?;
    let w_t2 = mat(&mut b, l.w_t2)?;
    let b_t2 = vec(&mut b, l.b_t2)?;
    let table = match l.table {
        Some(t) => Some(mat(&mut b, t)?),
        None => None,
    };
    let x = b.input();
    let mut h = b.linear(x, w_in, Some(b_in));
    let te = b.time_embed(config.temb as u32, MAX_PERIOD);
    let te = b.linear(te, w_t1, Some(b_t1));
    let te = b.activation(te, Activation::Silu);
    let te = b.linear(te, w_t2, Some(b_t2));
    h = b.add(h, te);
    if let Some(t) = table {
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
    b.build()
}
