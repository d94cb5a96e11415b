//! The network graph: a straight-line list of ops over numbered values.
//!
//! Value 0 is the network input (the sample `x`, `data_len` elements). Op `k` defines value
//! `k + 1` and reads only values defined before it, so the graph is in SSA form, topologically
//! ordered, and executes top to bottom. Every op record has the same 20-byte layout; the
//! opcode says which fields it uses, and unused fields must be "none" (`0xFFFF`) or 0.
//!
//! What each opcode's record reads and how its length follows from its inputs is data, in the
//! op table ([`super::ops`]); this module applies it and adds what is not data (each op's
//! tensor checks and its decoded [`Op`]).
//!
//! v1 has the ops of a residual MLP ε-network: linear layers, activations, residual adds,
//! concatenation, layer norm, the sinusoidal time embedding and the class embedding.
//! Opcode 8 (`TIME_TABLE`) came after the first v1 blobs (older runtimes reject it with
//! `UnknownOp`, as reserved codes are meant to be); 9–15 are reserved for further MLP ops and 16–63 for a convolutional family (conv,
//! group norm, up/down-sampling) of a later version; such a version can lengthen the op
//! record through the `RECORD_LEN` field, so v1 blobs stay readable by later runtimes.

use microdiff_kernels::Activation;

use super::bytes::{or, sub, u8_at, u16_at, u32_at};
use super::meta::Meta;
use super::ops::{self, Elem, LenRule, OpSpec};
use super::tensor::{NO_TENSOR, Tensor, Tensors};
use crate::error::{Error, Rule, Section};
use microdiff_kernels::Dtype;
use microdiff_kernels::int8::{self, QAdd, Requant};

/// Most values (input included) a graph may have; fixes the planner's table sizes.
pub const MAX_VALUES: usize = 64;
/// An operand field meaning "no value".
pub const NO_VALUE: u16 = 0xFFFF;

/// Byte ranges of the graph section header and of one op record.
pub mod field {
    use crate::blob::field::Field;
    /// `u16` number of values (op count + 1).
    pub const VALUE_COUNT: Field = 0..2;
    /// `u16` number of ops.
    pub const OP_COUNT: Field = 2..4;
    /// `u16` length of one op record, 20 in v1.
    pub const RECORD_LEN: Field = 4..6;
    /// `u16` value that is the network output (length `data_len`).
    pub const OUTPUT: Field = 6..8;
    /// First op record.
    pub const OPS: usize = 8;
    /// v1 op record length.
    pub const OP_LEN: usize = 20;

    /// `u8` opcode.
    pub const OPCODE: usize = 0;
    /// `u8` op-specific small operand (activation code).
    pub const AUX: usize = 1;
    /// `u16` value defined by the op (= op index + 1).
    pub const DST: Field = 2..4;
    /// `u16` first input value.
    pub const A: Field = 4..6;
    /// `u16` second input value.
    pub const B: Field = 6..8;
    /// `u16` first tensor.
    pub const T0: Field = 8..10;
    /// `u16` second tensor.
    pub const T1: Field = 10..12;
    /// `u32` elements of the defined value.
    pub const LEN: Field = 12..16;
    /// `f32` op parameter (layer-norm ε, time-embedding max period).
    pub const PARAM: Field = 16..20;
}

/// Opcodes.
pub mod opcode {
    /// `dst = W·a (+ bias)`; `T0` = W `(len, len(a))`, `T1` = optional f32 bias `(len, 1)`.
    pub const LINEAR: u8 = 1;
    /// `dst = act(a)`, `AUX` = activation code.
    pub const ACTIVATION: u8 = 2;
    /// `dst = a + b`.
    pub const ADD: u8 = 3;
    /// `dst = [a; b]`.
    pub const CONCAT: u8 = 4;
    /// `dst = layer_norm(a)`; `T0`/`T1` optional f32 γ/β `(len, 1)`, `PARAM` = ε.
    pub const LAYER_NORM: u8 = 5;
    /// `dst = sinusoidal(t)`, `PARAM` = max period; `t` is the EVAL instruction's time.
    pub const TIME_EMBED: u8 = 6;
    /// `dst = table[class]`; `T0` = table `(rows ≥ classes, len)`.
    pub const CLASS_EMBED: u8 = 7;
    /// `dst = T0[r]` where `T1[r]` is the `EVAL`'s time (bit for bit): a time-only subgraph
    /// precomputed on the host for every time the programs evaluate. `T0` = f32 rows
    /// `(K, len)`, `T1` = f32 times `(K, 1)` in strictly increasing bit order.
    pub const TIME_TABLE: u8 = 8;
    /// `dst = quantize(a)` (f32 → int8 codes), `AUX` = zero point (i8). `T0` = f32 scales
    /// `(K, 1)`; `T1` = none (`K = 1`, one scale) or f32 times `(K, 1)` as `TIME_TABLE`'s: the
    /// scale of the `EVAL`'s time (timestep-aware calibration).
    pub const QUANTIZE: u8 = 9;
    /// `dst = (a − zp)·scale` (int8 codes → f32), `AUX` = zero point, `PARAM` = f32 scale.
    pub const DEQUANTIZE: u8 = 10;
    /// W8A8 fully connected: `T0` = q8 weights `(pad4(len), pad4(len(a)))` in the kernels'
    /// tiled (0) or paired (1) layout, `T1` = i32 `(len, 3)` rows `[bias, multiplier, shift]`,
    /// `PARAM` bytes 0 and 1 = input and output zero points (i8), byte 2 the layout, byte 3
    /// zero.
    pub const QLINEAR: u8 = 11;
    /// `dst[i] = T0[a[i] + 128]`: an activation as a q8 `(256, 1)` table.
    pub const QLUT: u8 = 12;
    /// `dst = clamp((c + a·ma + b·mb) >> s)`, `T0` = i32 `(4, 1)` `[c, ma, mb, s]`.
    pub const QADD: u8 = 13;
    /// Integer layer norm: `T0` = i32 `(len, 2)` channels `[γ code, β code]`, `T1` = i32
    /// `(4, 1)` `[e, multiplier, shift, y_zp]` (the kernels' `qlayer_norm`).
    pub const QLAYER_NORM: u8 = 14;
    /// `dst = T0[r]` (int8 codes): `AUX` 0 = the row of the `EVAL`'s time in f32 times `T1`
    /// `(K, 1)`; `AUX` 1 = the row of the class (`T1` none).
    pub const QGATHER: u8 = 15;
    /// `dst = a[PARAM .. PARAM + LEN]`, `PARAM` = the first element (`u32`): a prefix or
    /// part of a value (a latent in a sample-sized register, one head of a layer).
    pub const SLICE: u8 = 16;
    /// `dst = a ⊙ b`, element-wise.
    pub const MUL: u8 = 17;
    /// `dst[i]` = a standard normal: element `PARAM + i` of the `EVAL`'s network draw
    /// (`PARAM` = `u32` first element; see `network`'s noise contract).
    pub const NOISE: u8 = 18;
    /// `dst[i] = 1` if `u < a[i]` else `0`, `u` uniform in (0, 1): element `PARAM + i` of the
    /// `EVAL`'s network draw (`PARAM` = `u32` first element). A Bernoulli draw with
    /// probabilities `a`.
    pub const BERNOULLI: u8 = 19;
    /// The integer `BERNOULLI`: `dst[i] = 1` if `w < (a[i] + 128) · 0x0101_0101` else `0`
    /// (int8 codes), `w` the raw `u32` of element `PARAM + i` of the `EVAL`'s network draw: a
    /// draw with probability `(a[i] + 128) / 255` (times `1 − 2⁻³²`), i.e. `a` holds
    /// probabilities quantized with scale 1/255 and zero point −128.
    pub const QBERNOULLI: u8 = 20;
}

/// What selects the row of a [`Op::QGather`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatherKey {
    /// The row whose time (in this f32 `(K, 1)` tensor) is the `EVAL`'s.
    Time(u16),
    /// The row of the `EVAL`'s class.
    Class,
}

/// A decoded op.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    /// `W·a + bias`.
    Linear {
        /// Input value.
        a: u16,
        /// Weight tensor.
        weight: u16,
        /// Bias tensor.
        bias: Option<u16>,
    },
    /// Element-wise activation.
    Activation {
        /// Input value.
        a: u16,
        /// Function.
        act: Activation,
    },
    /// Element-wise sum.
    Add {
        /// First input.
        a: u16,
        /// Second input.
        b: u16,
    },
    /// Concatenation `[a; b]`.
    Concat {
        /// First part.
        a: u16,
        /// Second part.
        b: u16,
    },
    /// Layer norm over the whole value.
    LayerNorm {
        /// Input value.
        a: u16,
        /// Optional scale γ.
        gamma: Option<u16>,
        /// Optional shift β.
        beta: Option<u16>,
        /// ε added to the variance.
        eps: f32,
    },
    /// Sinusoidal embedding of the evaluation time.
    TimeEmbed {
        /// Max period (10 000 in the transformer convention).
        max_period: f32,
    },
    /// Row `class` of an embedding table.
    ClassEmbed {
        /// Table tensor.
        table: u16,
    },
    /// The row of a precomputed table for the evaluation time.
    TimeTable {
        /// Rows tensor, f32 `(K, len)`.
        rows: u16,
        /// Times tensor, f32 `(K, 1)`, strictly increasing as bit patterns.
        times: u16,
    },
    /// f32 → int8 codes.
    Quantize {
        /// Input value (f32).
        a: u16,
        /// Zero point.
        zp: i8,
        /// f32 scales `(K, 1)`.
        scales: u16,
        /// f32 times `(K, 1)` selecting the scale, or one scale for every time.
        times: Option<u16>,
    },
    /// int8 codes → f32.
    Dequantize {
        /// Input value (int8).
        a: u16,
        /// Zero point.
        zp: i8,
        /// Scale.
        scale: f32,
    },
    /// W8A8 fully connected layer.
    QLinear {
        /// Input value (int8).
        a: u16,
        /// q8 weights, in `layout`.
        weight: u16,
        /// i32 `(len, 3)` row records.
        params: u16,
        /// Input zero point.
        x_zp: i8,
        /// Output zero point.
        y_zp: i8,
        /// How `weight` is stored (PARAM byte 2).
        layout: int8::WeightLayout,
    },
    /// Activation as a 256-entry table.
    QLut {
        /// Input value (int8).
        a: u16,
        /// q8 `(256, 1)` table.
        table: u16,
    },
    /// Integer residual add.
    QAdd {
        /// First input (int8).
        a: u16,
        /// Second input (int8).
        b: u16,
        /// i32 `(4, 1)` constants.
        consts: u16,
    },
    /// Integer layer norm.
    QLayerNorm {
        /// Input value (int8).
        a: u16,
        /// i32 `(len, 2)` channels.
        channels: u16,
        /// i32 `(4, 1)` constants.
        consts: u16,
    },
    /// A row of an int8 table, by time or class.
    QGather {
        /// q8 `(K, len)` rows.
        table: u16,
        /// What selects the row.
        key: GatherKey,
    },
    /// `a[start .. start + len]`.
    Slice {
        /// Input value.
        a: u16,
        /// First element taken.
        start: u32,
    },
    /// `a ⊙ b`.
    Mul {
        /// First input.
        a: u16,
        /// Second input.
        b: u16,
    },
    /// Standard normals from the `EVAL`'s network draw.
    Noise {
        /// Element of the draw that `dst[0]` takes.
        offset: u32,
    },
    /// Bernoulli draws with probabilities `a`, from the `EVAL`'s network draw.
    Bernoulli {
        /// The probabilities.
        a: u16,
        /// Element of the draw that `dst[0]` takes.
        offset: u32,
    },
    /// Integer Bernoulli draws with probability codes `a` (scale 1/255, zero point −128).
    QBernoulli {
        /// The probability codes.
        a: u16,
        /// Element of the draw that `dst[0]` takes.
        offset: u32,
    },
}

const fn opt(v: u16) -> Option<u16> {
    if v == NO_TENSOR { None } else { Some(v) }
}

/// The row of a validated time table's `times` (little-endian f32, strictly increasing bit
/// patterns) holding exactly `t`, by binary search.
pub const fn time_row(times: &[u8], t: f32) -> Option<usize> {
    let key = t.to_bits();
    let (mut lo, mut hi) = (0usize, times.len() / 4);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let Some(bits) = u32_at(times, 4 * mid) else {
            return None;
        };
        if bits == key {
            return Some(mid);
        } else if bits < key {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    None
}

impl Op {
    /// Decodes op record `rec` (op index `k`, for messages).
    pub const fn decode(k: u16, rec: &[u8]) -> Result<Self, Error> {
        let code = or(u8_at(rec, field::OPCODE), 0);
        let aux = or(u8_at(rec, field::AUX), 0);
        let a = or(u16_at(rec, field::A.start), NO_VALUE);
        let b = or(u16_at(rec, field::B.start), NO_VALUE);
        let t0 = or(u16_at(rec, field::T0.start), NO_TENSOR);
        let t1 = or(u16_at(rec, field::T1.start), NO_TENSOR);
        let word = or(u32_at(rec, field::PARAM.start), 0);
        let param = f32::from_bits(word);
        let raw = word.to_le_bytes();
        let op = match code {
            opcode::LINEAR => Op::Linear {
                a,
                weight: t0,
                bias: opt(t1),
            },
            opcode::ACTIVATION => Op::Activation {
                a,
                act: match Activation::from_code(aux) {
                    Some(act) => act,
                    None => return Err(Error::UnknownActivation { op: k, code: aux }),
                },
            },
            opcode::ADD => Op::Add { a, b },
            opcode::CONCAT => Op::Concat { a, b },
            opcode::LAYER_NORM => Op::LayerNorm {
                a,
                gamma: opt(t0),
                beta: opt(t1),
                eps: param,
            },
            opcode::TIME_EMBED => Op::TimeEmbed { max_period: param },
            opcode::CLASS_EMBED => Op::ClassEmbed { table: t0 },
            opcode::TIME_TABLE => Op::TimeTable {
                rows: t0,
                times: t1,
            },
            opcode::QUANTIZE => Op::Quantize {
                a,
                zp: aux as i8,
                scales: t0,
                times: opt(t1),
            },
            opcode::DEQUANTIZE => Op::Dequantize {
                a,
                zp: aux as i8,
                scale: param,
            },
            opcode::QLINEAR => Op::QLinear {
                a,
                weight: t0,
                params: t1,
                x_zp: raw[0] as i8,
                y_zp: raw[1] as i8,
                layout: match int8::WeightLayout::from_code(raw[2]) {
                    Some(layout) => layout,
                    None => return Err(bad_op(k, Rule::QLinearLayout)),
                },
            },
            opcode::QLUT => Op::QLut { a, table: t0 },
            opcode::QADD => Op::QAdd { a, b, consts: t0 },
            opcode::QLAYER_NORM => Op::QLayerNorm {
                a,
                channels: t0,
                consts: t1,
            },
            opcode::QGATHER => Op::QGather {
                table: t0,
                key: match aux {
                    0 => GatherKey::Time(t1),
                    1 => GatherKey::Class,
                    _ => return Err(bad_op(k, Rule::QGatherKey)),
                },
            },
            #[cfg(feature = "float-net")]
            opcode::SLICE => Op::Slice { a, start: word },
            #[cfg(feature = "float-net")]
            opcode::MUL => Op::Mul { a, b },
            #[cfg(feature = "float-net")]
            opcode::NOISE => Op::Noise { offset: word },
            #[cfg(feature = "float-net")]
            opcode::BERNOULLI => Op::Bernoulli { a, offset: word },
            #[cfg(feature = "int-bernoulli")]
            opcode::QBERNOULLI => Op::QBernoulli { a, offset: word },
            #[cfg(not(feature = "int-bernoulli"))]
            opcode::QBERNOULLI => return Err(bad_op(k, Rule::QBernoulliNotBuilt)),
            // An integer-only build decodes none of the other families' float ops.
            #[cfg(not(feature = "float-net"))]
            opcode::SLICE..=opcode::BERNOULLI => {
                return Err(bad_op(k, Rule::FloatOpWithoutFeature));
            }
            _ => {
                return Err(Error::UnknownOp {
                    op: k,
                    opcode: code,
                });
            }
        };
        Ok(op)
    }

    /// The opcode of this op.
    pub const fn code(&self) -> u8 {
        match self {
            Op::Linear { .. } => opcode::LINEAR,
            Op::Activation { .. } => opcode::ACTIVATION,
            Op::Add { .. } => opcode::ADD,
            Op::Concat { .. } => opcode::CONCAT,
            Op::LayerNorm { .. } => opcode::LAYER_NORM,
            Op::TimeEmbed { .. } => opcode::TIME_EMBED,
            Op::ClassEmbed { .. } => opcode::CLASS_EMBED,
            Op::TimeTable { .. } => opcode::TIME_TABLE,
            Op::Quantize { .. } => opcode::QUANTIZE,
            Op::Dequantize { .. } => opcode::DEQUANTIZE,
            Op::QLinear { .. } => opcode::QLINEAR,
            Op::QLut { .. } => opcode::QLUT,
            Op::QAdd { .. } => opcode::QADD,
            Op::QLayerNorm { .. } => opcode::QLAYER_NORM,
            Op::QGather { .. } => opcode::QGATHER,
            Op::Slice { .. } => opcode::SLICE,
            Op::Mul { .. } => opcode::MUL,
            Op::Noise { .. } => opcode::NOISE,
            Op::Bernoulli { .. } => opcode::BERNOULLI,
            Op::QBernoulli { .. } => opcode::QBERNOULLI,
        }
    }

    /// The f32 times tensor this op looks the `EVAL`'s time up in, if any (every `EVAL` time
    /// of every program must be in it).
    pub const fn times(&self) -> Option<u16> {
        match *self {
            Op::TimeTable { times, .. } => Some(times),
            Op::Quantize { times, .. } => times,
            Op::QGather {
                key: GatherKey::Time(times),
                ..
            } => Some(times),
            _ => None,
        }
    }

    /// This op's row of the op table.
    pub const fn spec(&self) -> OpSpec {
        match ops::spec(self.code()) {
            Some(s) => s,
            // Every variant's code has a row (tested in `ops`); an empty row is never read.
            None => OpSpec::EMPTY,
        }
    }

    /// Encodes this op as a v1 record defining value `dst` of `len` elements: the fields its
    /// table row does not use are written as none / 0.
    pub fn encode(&self, dst: u16, len: u32) -> [u8; field::OP_LEN] {
        let (mut aux, mut a, mut b, mut t0, mut t1, mut param) =
            (0, NO_VALUE, NO_VALUE, NO_TENSOR, NO_TENSOR, 0.0f32);
        match *self {
            Op::Linear { a: x, weight, bias } => {
                (a, t0, t1) = (x, weight, bias.unwrap_or(NO_TENSOR));
            }
            Op::Activation { a: x, act } => (a, aux) = (x, act.code()),
            Op::Add { a: x, b: y } | Op::Concat { a: x, b: y } | Op::Mul { a: x, b: y } => {
                (a, b) = (x, y);
            }
            Op::Slice { a: x, start } => (a, param) = (x, f32::from_bits(start)),
            Op::Noise { offset } => param = f32::from_bits(offset),
            Op::Bernoulli { a: x, offset } | Op::QBernoulli { a: x, offset } => {
                (a, param) = (x, f32::from_bits(offset));
            }
            Op::LayerNorm {
                a: x,
                gamma,
                beta,
                eps,
            } => {
                (a, t0, t1, param) = (
                    x,
                    gamma.unwrap_or(NO_TENSOR),
                    beta.unwrap_or(NO_TENSOR),
                    eps,
                );
            }
            Op::TimeEmbed { max_period } => param = max_period,
            Op::ClassEmbed { table } => t0 = table,
            Op::TimeTable { rows, times } => (t0, t1) = (rows, times),
            Op::Quantize {
                a: x,
                zp,
                scales,
                times,
            } => {
                (a, aux, t0, t1) = (x, zp as u8, scales, times.unwrap_or(NO_TENSOR));
            }
            Op::Dequantize { a: x, zp, scale } => (a, aux, param) = (x, zp as u8, scale),
            Op::QLinear {
                a: x,
                weight,
                params,
                x_zp,
                y_zp,
                layout,
            } => {
                (a, t0, t1) = (x, weight, params);
                let bytes = [x_zp as u8, y_zp as u8, layout.code(), 0];
                param = f32::from_bits(u32::from_le_bytes(bytes));
            }
            Op::QLut { a: x, table } => (a, t0) = (x, table),
            Op::QAdd { a: x, b: y, consts } => (a, b, t0) = (x, y, consts),
            Op::QLayerNorm {
                a: x,
                channels,
                consts,
            } => (a, t0, t1) = (x, channels, consts),
            Op::QGather { table, key } => {
                t0 = table;
                match key {
                    GatherKey::Time(times) => t1 = times,
                    GatherKey::Class => aux = 1,
                }
            }
        }
        let code = self.code();
        let mut r = [0u8; field::OP_LEN];
        r[field::OPCODE] = code;
        r[field::AUX] = aux;
        r[field::DST].copy_from_slice(&dst.to_le_bytes());
        r[field::A].copy_from_slice(&a.to_le_bytes());
        r[field::B].copy_from_slice(&b.to_le_bytes());
        r[field::T0].copy_from_slice(&t0.to_le_bytes());
        r[field::T1].copy_from_slice(&t1.to_le_bytes());
        r[field::LEN].copy_from_slice(&len.to_le_bytes());
        r[field::PARAM].copy_from_slice(&param.to_bits().to_le_bytes());
        r
    }
}

/// The value-level structure of a graph: what the arena planner needs, and nothing that
/// requires the tensor table. Built by a `const fn`, so plans can be made at compile time.
#[derive(Debug, Clone, Copy)]
pub struct Structure {
    /// Number of values (input included).
    pub values: u16,
    /// The output value.
    pub output: u16,
    /// Elements of each value.
    pub len: [u32; MAX_VALUES],
    /// Inputs of the op defining each value (`NO_VALUE` where unused); index 0 unused.
    pub inputs: [[u16; 2]; MAX_VALUES],
    /// Opcode defining each value; index 0 unused.
    pub opcode: [u8; MAX_VALUES],
    /// Element type of each value (the input is f32).
    pub elem: [Elem; MAX_VALUES],
    /// Slots of the integer path's scratch: the widened (i16) input of the widest `QLINEAR`.
    pub scratch_slots: u32,
}

impl Structure {
    /// Element count of value `v`, 0 for a value that does not exist (no panic path: callers
    /// pass checked indices, but a bounds-check panic would still be linked into firmware).
    pub const fn len_of(&self, v: usize) -> u32 {
        if v < self.len.len() { self.len[v] } else { 0 }
    }

    /// Arena slots (4 bytes) of value `v`:
    /// 0 for a value that does not exist.
    pub const fn slots(&self, v: usize) -> u32 {
        if v < self.elem.len() && v < self.len.len() {
            self.elem[v].slots(self.len[v])
        } else {
            0
        }
    }
}

const fn same_elem(a: Elem, b: Elem) -> bool {
    matches!((a, b), (Elem::F32, Elem::F32) | (Elem::I8, Elem::I8))
}

const fn bad_op(op: u16, what: Rule) -> Error {
    Error::BadOp { op, what }
}

/// Reads the graph header and op records and checks everything that does not need the
/// tensor table: opcodes, SSA order, operand presence, and the length rules of the
/// element-wise ops. `data_len` is the input's length.
pub const fn structure(b: &[u8], data_len: u32) -> Result<Structure, Error> {
    let (values, ops, rec_len, output) = match (
        u16_at(b, field::VALUE_COUNT.start),
        u16_at(b, field::OP_COUNT.start),
        u16_at(b, field::RECORD_LEN.start),
        u16_at(b, field::OUTPUT.start),
    ) {
        (Some(v), Some(o), Some(r), Some(out)) => (v, o, r as usize, out),
        _ => {
            return Err(Error::Truncated {
                section: Section::Graph,
                needed: field::OPS,
                available: b.len(),
            });
        }
    };
    if rec_len != field::OP_LEN {
        return Err(Error::Malformed {
            section: Section::Graph,
            what: Rule::OpRecordLength,
        });
    }
    if values as usize > MAX_VALUES {
        return Err(Error::TooManyValues {
            count: values,
            max: MAX_VALUES as u16,
        });
    }
    if values == 0 || ops as u32 + 1 != values as u32 {
        return Err(Error::Malformed {
            section: Section::Graph,
            what: Rule::ValueCount,
        });
    }
    if b.len() != field::OPS + ops as usize * field::OP_LEN {
        return Err(Error::Malformed {
            section: Section::Graph,
            what: Rule::GraphSectionLength,
        });
    }
    if output >= values {
        return Err(Error::Malformed {
            section: Section::Graph,
            what: Rule::NoOutputValue,
        });
    }
    let mut s = Structure {
        values,
        output,
        len: [0; MAX_VALUES],
        inputs: [[NO_VALUE; 2]; MAX_VALUES],
        opcode: [0; MAX_VALUES],
        elem: [Elem::F32; MAX_VALUES],
        scratch_slots: 0,
    };
    s.len[0] = data_len;
    let mut k = 0u16;
    while k < ops {
        let at = field::OPS + k as usize * field::OP_LEN;
        let rec = match sub(b, at, field::OP_LEN) {
            Some(r) => r,
            None => {
                return Err(Error::Truncated {
                    section: Section::Graph,
                    needed: at + field::OP_LEN,
                    available: b.len(),
                });
            }
        };
        let (code, dst, a, bb, len) = match (
            u8_at(rec, field::OPCODE),
            u16_at(rec, field::DST.start),
            u16_at(rec, field::A.start),
            u16_at(rec, field::B.start),
            u32_at(rec, field::LEN.start),
        ) {
            (Some(c), Some(d), Some(a), Some(bb), Some(l)) => (c, d, a, bb, l),
            _ => return Err(bad_op(k, Rule::RecordTruncated)),
        };
        let v = k + 1;
        if dst != v {
            return Err(bad_op(k, Rule::OpDefinesValue));
        }
        // Implied by `values <= MAX_VALUES`; said here so that the indexing below carries no
        // bounds-check panic into firmware.
        if v as usize >= MAX_VALUES {
            return Err(bad_op(k, Rule::MoreValuesThanMax));
        }
        if len == 0 || len > super::meta::MAX_DATA_LEN {
            return Err(bad_op(k, Rule::ValueLength));
        }
        let spec = match ops::spec(code) {
            Some(spec) => spec,
            None => {
                return Err(Error::UnknownOp {
                    op: k,
                    opcode: code,
                });
            }
        };
        let (uses_a, uses_b) = (spec.reads_a, spec.reads_b);
        if uses_a && a >= v {
            return Err(bad_op(k, Rule::InputAUndefined));
        }
        if !uses_a && a != NO_VALUE {
            return Err(bad_op(k, Rule::InputAUnused));
        }
        if uses_b && bb >= v {
            return Err(bad_op(k, Rule::InputBUndefined));
        }
        if !uses_b && bb != NO_VALUE {
            return Err(bad_op(k, Rule::InputBUnused));
        }
        // `a < v` and `bb < v` where read (checked above), so below MAX_VALUES.
        let (ai, bi) = ((a as usize) % MAX_VALUES, (bb as usize) % MAX_VALUES);
        if (uses_a && !same_elem(s.elem[ai], spec.input))
            || (uses_b && !same_elem(s.elem[bi], spec.input))
        {
            return Err(bad_op(k, Rule::InputDtype));
        }
        let la = if uses_a { s.len[ai] } else { 0 };
        if code == opcode::QADD && a == bb {
            return Err(bad_op(k, Rule::QAddAliased));
        }
        if code == opcode::QLINEAR {
            if la as usize > microdiff_kernels::int8::MAX_COLS {
                return Err(bad_op(k, Rule::QLinearTooWide));
            }
            // pad4(la) i16 = pad4(la) / 2 slots; la ≤ 2^16.
            let scratch = la.div_ceil(4) * 2;
            if scratch > s.scratch_slots {
                s.scratch_slots = scratch;
            }
        }
        if code == opcode::QLAYER_NORM && la as usize > microdiff_kernels::int8::MAX_NORM_LEN {
            return Err(bad_op(k, Rule::QLayerNormTooLong));
        }
        let lb = if uses_b { s.len[bi] } else { 0 };
        let expected = match spec.len {
            LenRule::SameAsA => Some(la),
            LenRule::SameAsBoth => {
                if la != lb {
                    return Err(Error::ShapeMismatch {
                        op: k,
                        expected: la,
                        found: lb,
                    });
                }
                Some(la)
            }
            LenRule::SumOfBoth => Some(la.saturating_add(lb)),
            LenRule::Stored => None,
        };
        if let Some(e) = expected
            && e != len
        {
            return Err(Error::ShapeMismatch {
                op: k,
                expected: e,
                found: len,
            });
        }
        s.len[v as usize] = len;
        s.inputs[v as usize] = [a, bb];
        s.opcode[v as usize] = code;
        s.elem[v as usize] = spec.output;
        k += 1;
    }
    // `output < values <= MAX_VALUES` (checked above).
    let out = (output as usize) % MAX_VALUES;
    if !same_elem(s.elem[out], Elem::F32) {
        return Err(Error::Malformed {
            section: Section::Graph,
            what: Rule::OutputInt8,
        });
    }
    if s.len[out] != data_len {
        return Err(Error::Malformed {
            section: Section::Graph,
            what: Rule::OutputLength,
        });
    }
    Ok(s)
}

/// A validated graph: structure plus every op checked against its tensors.
#[derive(Debug, Clone, Copy)]
pub struct Graph<'a> {
    records: &'a [u8],
    /// Value lengths and operands.
    pub structure: Structure,
    /// See [`Graph::qlinear_records_nonzero`] (3 % of an evaluation on a Cortex-M4 is the
    /// per-call record check it saves).
    qlinear_nonzero: bool,
}

/// A dtype the float network's matrices may have (q8 and i32 belong to the integer ops).
#[cfg(feature = "float-net")]
const fn is_float_matrix(d: Dtype) -> bool {
    matches!(d, Dtype::F32 | Dtype::F16 | Dtype::I8)
}

/// Rows a class table needs: every class id and the null class.
const fn class_rows(meta: &Meta<'_>) -> u32 {
    match meta.null_class {
        Some(n) if n as u32 + 1 > meta.classes as u32 => n as u32 + 1,
        _ => meta.classes as u32,
    }
}

/// The little-endian i32 at byte `at` of `b` (0 past the end).
const fn i32_at(b: &[u8], at: usize) -> i32 {
    or(u32_at(b, at), 0) as i32
}

/// A `(multiplier, shift)` pair that is a valid [`Requant`].
const fn requant_ok(multiplier: i32, shift: i32) -> bool {
    shift >= -31 && shift <= 30 && Requant::new(multiplier, shift as i8).is_ok()
}

/// Whether tensor `t` is an `(rows, cols)` matrix of `dtype` (`rows` [`ANY_ROWS`]: any row
/// count; a validated tensor has at least one row).
const fn shaped(t: &Tensor<'_>, dtype: Dtype, rows: u32, cols: u32) -> bool {
    t.dtype.code() == dtype.code() && t.cols == cols && (rows == ANY_ROWS || t.rows == rows)
}

/// `rows` of [`shaped`] that accepts any row count.
const ANY_ROWS: u32 = 0;

/// A times tensor of a time-keyed op: f32 `(rows, 1)`, finite, strictly increasing bit
/// patterns (so the device finds a time by binary search on the bits).
const fn check_times(tensors: &Tensors<'_>, k: u16, times: u16, rows: u32) -> Result<(), Error> {
    let t = tri!(tensors.get(times));
    if !(matches!(t.dtype, Dtype::F32) && t.cols == 1 && t.rows == rows) {
        return Err(bad_op(k, Rule::TimesDtype));
    }
    let mut at = 0;
    let mut prev: Option<u32> = None;
    while let Some(bits) = u32_at(t.data, at) {
        if !f32::from_bits(bits).is_finite() || matches!(prev, Some(p) if p >= bits) {
            return Err(bad_op(k, Rule::TimesOrder));
        }
        prev = Some(bits);
        at += 4;
    }
    Ok(())
}

#[cfg(feature = "float-net")]
const fn check_vector(
    tensors: &Tensors<'_>,
    k: u16,
    t: Option<u16>,
    len: u32,
    what: Rule,
) -> Result<(), Error> {
    if let Some(t) = t {
        let tensor = tri!(tensors.get(t));
        if !shaped(&tensor, Dtype::F32, len, 1) {
            return Err(bad_op(k, what));
        }
    }
    Ok(())
}

/// Checks op `k` (defining a value of `len` elements) against its tensors and the metadata:
/// the rules of each op that need the tensor table ([`structure`] checked the rest). Clears
/// `g.qlinear_nonzero` if a `QLINEAR` has a row with a zero multiplier.
const fn check_op(
    g: &mut Graph<'_>,
    op: Op,
    k: u16,
    len: u32,
    param: u32,
    meta: &Meta<'_>,
    tensors: &Tensors<'_>,
) -> Result<(), Error> {
    let structure = &g.structure;
    match op {
        #[cfg(feature = "float-net")]
        Op::Linear { a, weight, bias } => {
            let w = tri!(tensors.get(weight));
            if !is_float_matrix(w.dtype) {
                return Err(bad_op(k, Rule::LinearWeights));
            }
            if w.rows != len {
                return Err(Error::ShapeMismatch {
                    op: k,
                    expected: len,
                    found: w.rows,
                });
            }
            let la = structure.len_of(a as usize);
            if w.cols != la {
                return Err(Error::ShapeMismatch {
                    op: k,
                    expected: la,
                    found: w.cols,
                });
            }
            tri!(check_vector(tensors, k, bias, len, Rule::Bias));
        }
        #[cfg(feature = "float-net")]
        Op::LayerNorm {
            gamma, beta, eps, ..
        } => {
            if !(eps.is_finite() && eps > 0.0) {
                return Err(bad_op(k, Rule::LayerNormEps));
            }
            tri!(check_vector(tensors, k, gamma, len, Rule::Gamma));
            tri!(check_vector(tensors, k, beta, len, Rule::Beta));
        }
        #[cfg(feature = "float-net")]
        Op::TimeEmbed { max_period } => {
            if cfg!(not(feature = "time-embed")) {
                return Err(bad_op(k, Rule::TimeEmbedWithoutFeature));
            }
            if !len.is_multiple_of(2) {
                return Err(bad_op(k, Rule::TimeEmbedOdd));
            }
            if !(max_period.is_finite() && max_period > 0.0) {
                return Err(bad_op(k, Rule::TimeEmbedPeriod));
            }
        }
        #[cfg(feature = "float-net")]
        Op::ClassEmbed { table } => {
            if meta.classes == 0 {
                return Err(bad_op(k, Rule::ClassEmbedUnconditional));
            }
            let t = tri!(tensors.get(table));
            if !is_float_matrix(t.dtype) {
                return Err(bad_op(k, Rule::ClassEmbedTable));
            }
            if t.cols != len {
                return Err(Error::ShapeMismatch {
                    op: k,
                    expected: len,
                    found: t.cols,
                });
            }
            if t.rows < class_rows(meta) {
                return Err(bad_op(k, Rule::ClassTableRows));
            }
        }
        #[cfg(feature = "float-net")]
        Op::TimeTable { rows, times } => {
            let r = tri!(tensors.get(rows));
            if !shaped(&r, Dtype::F32, ANY_ROWS, len) {
                return Err(bad_op(k, Rule::TimeTableRows));
            }
            tri!(check_times(tensors, k, times, r.rows));
        }
        Op::Quantize { scales, times, .. } => {
            let sc = tri!(tensors.get(scales));
            if !shaped(&sc, Dtype::F32, ANY_ROWS, 1) {
                return Err(bad_op(k, Rule::QuantizeScales));
            }
            match times {
                Some(t) => tri!(check_times(tensors, k, t, sc.rows)),
                None if sc.rows != 1 => {
                    return Err(bad_op(k, Rule::QuantizeOneScale));
                }
                None => {}
            }
            let mut at = 0;
            while let Some(bits) = u32_at(sc.data, at) {
                let v = f32::from_bits(bits);
                if !(v.is_finite() && v > 0.0) {
                    return Err(bad_op(k, Rule::QuantizeScaleValue));
                }
                at += 4;
            }
        }
        Op::Dequantize { scale, .. } => {
            if !(scale.is_finite() && scale > 0.0) {
                return Err(bad_op(k, Rule::DequantizeScale));
            }
        }
        Op::QLinear {
            a,
            weight,
            params,
            layout,
            ..
        } => {
            // Byte 2, the layout, was checked by `Op::decode`.
            if param & 0xFF00_0000 != 0 {
                return Err(bad_op(k, Rule::QLinearByte3));
            }
            if matches!(layout, int8::WeightLayout::Tiles) && !cfg!(feature = "w8a8-tiles") {
                return Err(bad_op(k, Rule::QLinearTiles));
            }
            let cols = structure.len_of(a as usize);
            let w = tri!(tensors.get(weight));
            if !shaped(&w, Dtype::Q8, len.div_ceil(4) * 4, cols.div_ceil(4) * 4) {
                return Err(bad_op(k, Rule::QLinearWeights));
            }
            let p = tri!(tensors.get(params));
            if !shaped(&p, Dtype::I32, len, 3) {
                return Err(bad_op(k, Rule::QLinearParams));
            }
            let mut at = 0;
            while at + 12 <= p.data.len() {
                if !requant_ok(i32_at(p.data, at + 4), i32_at(p.data, at + 8)) {
                    return Err(bad_op(k, Rule::QLinearRequant));
                }
                at += 12;
            }
            // The kernels' own statement of `qlinear_validated`'s contract.
            g.qlinear_nonzero = g.qlinear_nonzero && int8::qlinear_records_nonzero(p.data);
        }
        Op::QLut { table, .. } => {
            let t = tri!(tensors.get(table));
            if !shaped(&t, Dtype::Q8, 256, 1) {
                return Err(bad_op(k, Rule::QLutTable));
            }
        }
        Op::QAdd { consts, .. } => {
            let c = tri!(tensors.get(consts));
            if !shaped(&c, Dtype::I32, 4, 1) {
                return Err(bad_op(k, Rule::QAddConsts));
            }
            let d = c.data;
            if QAdd::new(i32_at(d, 0), i32_at(d, 4), i32_at(d, 8), i32_at(d, 12)).is_err() {
                return Err(bad_op(k, Rule::QAddRange));
            }
        }
        Op::QLayerNorm {
            channels, consts, ..
        } => {
            let ch = tri!(tensors.get(channels));
            if !shaped(&ch, Dtype::I32, len, 2) {
                return Err(bad_op(k, Rule::QLayerNormChannels));
            }
            let mut at = 0;
            while at + 8 <= ch.data.len() {
                let (gamma, beta) = (i32_at(ch.data, at), i32_at(ch.data, at + 4));
                if gamma < -127 || gamma > 127 || beta < -(1 << 24) || beta >= 1 << 24 {
                    return Err(bad_op(k, Rule::QLayerNormAffine));
                }
                at += 8;
            }
            let c = tri!(tensors.get(consts));
            if !shaped(&c, Dtype::I32, 4, 1) {
                return Err(bad_op(k, Rule::QLayerNormConsts));
            }
            let (e, y_zp) = (i32_at(c.data, 0), i32_at(c.data, 12));
            if e < 1
                || !requant_ok(i32_at(c.data, 4), i32_at(c.data, 8))
                || y_zp < -128
                || y_zp > 127
            {
                return Err(bad_op(k, Rule::QLayerNormRequant));
            }
        }
        Op::QGather { table, key } => {
            let t = tri!(tensors.get(table));
            if !shaped(&t, Dtype::Q8, ANY_ROWS, len) {
                return Err(bad_op(k, Rule::QGatherTable));
            }
            match key {
                GatherKey::Time(times) => tri!(check_times(tensors, k, times, t.rows)),
                GatherKey::Class => {
                    if meta.classes == 0 {
                        return Err(bad_op(k, Rule::ClassTableUnconditional));
                    }
                    if t.rows < class_rows(meta) {
                        return Err(bad_op(k, Rule::ClassTableRows));
                    }
                }
            }
        }
        #[cfg(feature = "float-net")]
        Op::Slice { a, start } => {
            let la = structure.len_of(a as usize);
            if !matches!(start.checked_add(len), Some(end) if end <= la) {
                return Err(bad_op(k, Rule::SliceRange));
            }
        }
        #[cfg(feature = "float-net")]
        Op::Noise { offset } | Op::Bernoulli { offset, .. } => {
            if offset.checked_add(len).is_none() {
                return Err(bad_op(k, Rule::DrawRange));
            }
        }
        Op::QBernoulli { offset, .. } => {
            if offset.checked_add(len).is_none() {
                return Err(bad_op(k, Rule::DrawRange));
            }
        }
        Op::Activation { .. } | Op::Add { .. } | Op::Concat { .. } | Op::Mul { .. } => {}
        // Refused by `Graph::parse` in an integer-only build; kept out of its flash.
        #[cfg(not(feature = "float-net"))]
        Op::Linear { .. }
        | Op::LayerNorm { .. }
        | Op::TimeEmbed { .. }
        | Op::ClassEmbed { .. }
        | Op::TimeTable { .. }
        | Op::Slice { .. }
        | Op::Noise { .. }
        | Op::Bernoulli { .. } => {}
    }
    Ok(())
}

impl<'a> Graph<'a> {
    /// Parses the graph section and validates every op against the tensors and metadata.
    pub const fn parse(b: &'a [u8], meta: &Meta<'_>, tensors: &Tensors<'_>) -> Result<Self, Error> {
        let structure = tri!(structure(b, meta.data_len));
        let mut g = Graph {
            records: match b.split_at_checked(field::OPS) {
                Some((_, records)) => records,
                None => &[],
            },
            structure,
            qlinear_nonzero: true,
        };
        let mut k = 0;
        while k < structure.values - 1 {
            let rec = tri!(g.record(k));
            let op = tri!(Op::decode(k, rec));
            let len = structure.len_of(k as usize + 1);
            let aux = or(u8_at(rec, field::AUX), 0);
            let t0 = or(u16_at(rec, field::T0.start), NO_TENSOR);
            let t1 = or(u16_at(rec, field::T1.start), NO_TENSOR);
            let param = or(u32_at(rec, field::PARAM.start), 0);
            let spec = op.spec();
            // (Ops 16–19 are float ops too: `Op::decode` refuses them in such a build.)
            if cfg!(not(feature = "float-net")) && op.code() <= opcode::TIME_TABLE {
                return Err(bad_op(k, Rule::FloatOpWithoutFeature));
            }
            if (!spec.uses_aux && aux != 0)
                || (!spec.uses_t0 && t0 != NO_TENSOR)
                || (!spec.uses_t1 && t1 != NO_TENSOR)
                || (!spec.uses_param && param != 0)
            {
                return Err(bad_op(k, Rule::UnusedFields));
            }
            tri!(check_op(&mut g, op, k, len, param, meta, tensors));
            k += 1;
        }
        Ok(g)
    }

    /// Op `k`'s record, a 20-byte slice of the blob (for tools that rewrite a blob in place).
    pub const fn record(&self, k: u16) -> Result<&'a [u8], Error> {
        match sub(self.records, k as usize * field::OP_LEN, field::OP_LEN) {
            Some(r) => Ok(r),
            None => Err(bad_op(k, Rule::RecordTruncated)),
        }
    }

    /// Op `k` (defining value `k + 1`).
    pub const fn op(&self, k: u16) -> Result<Op, Error> {
        Op::decode(k, tri!(self.record(k)))
    }

    /// Whether every `QLINEAR` row record has a non-zero multiplier: then the executor runs
    /// the kernels' `qlinear_validated` (no per-call record check; the parse checked them).
    pub const fn qlinear_records_nonzero(&self) -> bool {
        self.qlinear_nonzero
    }

    /// Number of ops.
    pub const fn op_count(&self) -> u16 {
        self.structure.values - 1
    }

    /// True if the graph has a time table (every `EVAL` time must then be in it).
    pub fn time_table(&self) -> Option<u16> {
        (0..self.op_count()).find_map(|k| match self.op(k) {
            Ok(Op::TimeTable { times, .. }) => Some(times),
            _ => None,
        })
    }

    /// True if the graph reads a class (a class embedding, float or int8).
    pub fn uses_class(&self) -> bool {
        (0..self.op_count()).any(|k| {
            matches!(
                self.op(k),
                Ok(Op::ClassEmbed { .. }
                    | Op::QGather {
                        key: GatherKey::Class,
                        ..
                    })
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `QLINEAR`'s layout byte: 0 and 1 decode and encode back, anything else is a `BadOp`.
    #[test]
    fn qlinear_layout_byte_round_trips_and_unknown_layouts_are_refused() {
        for layout in [int8::WeightLayout::Tiles, int8::WeightLayout::Pairs] {
            let op = Op::QLinear {
                a: 1,
                weight: 2,
                params: 3,
                x_zp: -5,
                y_zp: 7,
                layout,
            };
            let rec = op.encode(2, 8);
            assert_eq!(Op::decode(1, &rec), Ok(op));
            assert_eq!(rec[field::PARAM.start + 2], layout.code());
            let mut bad = rec;
            bad[field::PARAM.start + 2] = 2;
            assert!(matches!(
                Op::decode(1, &bad),
                Err(Error::BadOp { op: 1, what }) if what == Rule::QLinearLayout
            ));
        }
    }

    /// A blob with a tiled `QLINEAR` parses with the `w8a8-tiles` feature and is refused, with
    /// the feature named, without it (`cargo xtask test` runs this file both ways).
    #[cfg(feature = "alloc")]
    #[test]
    fn a_tiled_qlinear_needs_the_w8a8_tiles_feature() {
        use crate::blob::meta::{Objective, Prediction};
        use crate::blob::program::ClassSel;
        use crate::blob::{BlobBuilder, ProgramBuilder};
        let blob = |layout| {
            let mut b = BlobBuilder::new(&[4], Objective::Ddpm, Prediction::Epsilon);
            let s = b.tensor(Dtype::F32, 1, 1, &[0.05]).unwrap();
            let q = b.quantize(b.input(), 0, s, None);
            let w = b.tensor_q8(4, 4, &[1; 16]).unwrap();
            let p: alloc::vec::Vec<i32> = (0..4).flat_map(|_| [0, 1 << 30, -3]).collect();
            let p = b.tensor_i32(4, 3, &p).unwrap();
            let y = b.qlinear(q, (w, layout), p, 0, 0);
            let out = b.dequantize(y, 0, 0.1);
            b.output(out);
            let mut prog = ProgramBuilder::new("p", 2);
            prog.lin(0, &[], Some(1.0)).step();
            prog.eval(1, 0, ClassSel::Caller, 1.0);
            prog.lin(0, &[(1, 1.0)], None).step();
            b.program(&prog);
            b.build().unwrap()
        };
        assert!(crate::Model::parse(&blob(int8::WeightLayout::Pairs)).is_ok());
        let tiled_bytes = blob(int8::WeightLayout::Tiles);
        let tiled = crate::Model::parse(&tiled_bytes);
        if cfg!(feature = "w8a8-tiles") {
            assert!(tiled.is_ok());
        } else {
            assert!(matches!(
                tiled,
                Err(Error::BadOp { what, .. }) if what == Rule::QLinearTiles
            ));
        }
    }
}
