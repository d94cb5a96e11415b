//! A model made ready for batched execution: every op decoded once, weights decoded to f32 and
//! packed for the lane kernels, and which values are the same for every sample of a block.
//!
//! Decoding is exact (f32 bytes, f16 widened, int8 codes as integers-valued f32 with the row
//! scale kept apart), so the packed weights enter the same products as the device's in-place
//! reads.

use microdiff_kernels::{Dtype, Matrix};
use std::vec::Vec;

use super::lanes::Packed;
use crate::blob::graph::{GatherKey, MAX_VALUES, Op};
use crate::blob::ops::Elem;
use crate::error::{Error, Fault, Rule};
use crate::model::Model;

/// One op with its parameters decoded.
#[derive(Debug, Clone)]
pub(crate) enum PreparedOp {
    /// `W·a (· scale) (+ bias)`.
    Linear {
        a: u16,
        w: Packed,
        /// Row scales of int8 weights.
        scale: Option<Vec<f32>>,
        bias: Option<Vec<f32>>,
    },
    /// Layer norm with decoded γ / β.
    LayerNorm {
        a: u16,
        gamma: Option<Vec<f32>>,
        beta: Option<Vec<f32>>,
        eps: f32,
    },
    /// Every other op, as the graph stores it (no parameters worth decoding).
    Plain(Op),
}

/// A model prepared for [`sample_batch`](super::sample_batch); shareable between threads.
#[derive(Debug, Clone)]
pub struct BatchModel<'m, 'b> {
    pub(crate) model: &'m Model<'b>,
    pub(crate) ops: Vec<PreparedOp>,
    /// Values that are equal for every sample when all samples share the class (the time
    /// embedding and everything computed from it and the class embedding alone).
    pub(crate) uniform_same_class: [bool; MAX_VALUES],
    /// The same when samples have different classes (the class embedding varies).
    pub(crate) uniform_mixed_class: [bool; MAX_VALUES],
    /// The graph has integer (W8A8) ops or ops of the other generator families (SLICE, MUL,
    /// NOISE, BERNOULLI): samples then run one by one through the device's own executor,
    /// threads across samples (the lane executor has kernels for the f32 diffusion ops only).
    pub(crate) integer: bool,
}

/// Little-endian f32 values.
fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The stored elements of `m` as f32, row-major: f32 as is, f16 widened, int8 codes unscaled.
fn decode(m: &Matrix<'_>) -> Result<Vec<f32>, Error> {
    let mut out = Vec::with_capacity(m.rows() * m.cols());
    for r in 0..m.rows() {
        let row = m.row_bytes(r)?;
        match m.dtype() {
            Dtype::F32 => out.extend(f32s(row)),
            Dtype::F16 => out.extend(
                row.chunks_exact(2)
                    .map(|c| half::f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32()),
            ),
            Dtype::I8 => out.extend(row.iter().map(|&b| f32::from(b as i8))),
            // `Matrix::new` refuses them.
            Dtype::Q8 | Dtype::I32 => return Err(Fault(Rule::IntegerMatrix).into()),
        }
    }
    Ok(out)
}

impl<'m, 'b> BatchModel<'m, 'b> {
    /// Decodes and packs every op of `model`.
    pub fn new(model: &'m Model<'b>) -> Result<Self, Error> {
        let g = model.graph();
        let tensors = model.tensors();
        let f32_tensor = |t: Option<u16>| -> Result<Option<Vec<f32>>, Error> {
            Ok(match t {
                Some(t) => Some(f32s(tensors.get(t)?.data)),
                None => None,
            })
        };
        let mut ops = Vec::with_capacity(g.op_count() as usize);
        let mut integer = false;
        let mut same = [false; MAX_VALUES];
        let mut mixed = [false; MAX_VALUES];
        for k in 0..g.op_count() {
            let op = g.op(k)?;
            let v = k as usize + 1;
            let u = |flags: &[bool; MAX_VALUES], a: u16| flags.get(a as usize) == Some(&true);
            (same[v], mixed[v]) = match op {
                Op::TimeEmbed { .. } | Op::TimeTable { .. } => (true, true),
                Op::ClassEmbed { .. } => (true, false),
                Op::Linear { a, .. } | Op::Activation { a, .. } | Op::LayerNorm { a, .. } => {
                    (u(&same, a), u(&mixed, a))
                }
                Op::Add { a, b }
                | Op::Concat { a, b }
                | Op::QAdd { a, b, .. }
                | Op::Mul { a, b } => (u(&same, a) && u(&same, b), u(&mixed, a) && u(&mixed, b)),
                Op::Quantize { a, .. }
                | Op::Dequantize { a, .. }
                | Op::QLinear { a, .. }
                | Op::QLut { a, .. }
                | Op::QLayerNorm { a, .. }
                | Op::Slice { a, .. } => (u(&same, a), u(&mixed, a)),
                // Each sample's own draws.
                Op::Noise { .. } | Op::Bernoulli { .. } | Op::QBernoulli { .. } => (false, false),
                Op::QGather { key, .. } => (true, key != GatherKey::Class),
            };
            // Integer ops and the other families' ops (SLICE, MUL, NOISE, BERNOULLI) have no
            // lane kernels: such a graph runs sample by sample through the device executor.
            integer |= op.spec().output == Elem::I8
                || matches!(
                    op,
                    Op::Slice { .. } | Op::Mul { .. } | Op::Noise { .. } | Op::Bernoulli { .. }
                );
            ops.push(match op {
                Op::Linear { a, weight, bias } => {
                    let m = tensors.get(weight)?.matrix()?;
                    let scale = match m.dtype() {
                        Dtype::I8 => Some(
                            (0..m.rows())
                                .map(|r| m.scale(r))
                                .collect::<Result<_, _>>()?,
                        ),
                        _ => None,
                    };
                    let w =
                        Packed::new(&decode(&m)?, m.rows(), m.cols()).ok_or(Error::Malformed {
                            section: crate::error::Section::Tensors,
                            what: Rule::WeightSize,
                        })?;
                    PreparedOp::Linear {
                        a,
                        w,
                        scale,
                        bias: f32_tensor(bias)?,
                    }
                }
                Op::LayerNorm {
                    a,
                    gamma,
                    beta,
                    eps,
                } => PreparedOp::LayerNorm {
                    a,
                    gamma: f32_tensor(gamma)?,
                    beta: f32_tensor(beta)?,
                    eps,
                },
                other => PreparedOp::Plain(other),
            });
        }
        Ok(BatchModel {
            model,
            ops,
            uniform_same_class: same,
            uniform_mixed_class: mixed,
            integer,
        })
    }

    /// The model.
    pub fn model(&self) -> &'m Model<'b> {
        self.model
    }
}
