//! The network executor: runs the graph once, from a source register to a destination
//! register, with every intermediate value at its planned place in the arena.
//!
//! All arithmetic is in the kernels crate; this module only routes slices. Each op's order of
//! operations is the kernel's documented one, so the result is bit-reproducible.

use core::ops::Range;

use microdiff_kernels as k;
use microdiff_kernels::int8::WeightLayout;

use crate::arena::{i8s, i8s_mut, i16s, i16s_mut};
use crate::blob::graph::{GatherKey, Op, time_row};
use crate::error::{Fault, Rule};
use crate::model::Model;
#[cfg(any(feature = "float-net", feature = "int-bernoulli"))]
use crate::noise::{Domain, NoiseStream};
#[cfg(feature = "float-net")]
use crate::noise::{standard_normal, uniform_open};

/// Where the network reads its input and writes its output (slot ranges in the arena).
pub(crate) struct Io {
    pub src: usize,
    pub dst: usize,
}

/// The noise a network's `NOISE`, `BERNOULLI` and `QBERNOULLI` ops draw: element `e` of draw
/// `eval` of the sample's stream in [`Domain::Network`], where `eval` counts the program's
/// `EVAL`s from 0.
///
/// Only the float ops and `QBERNOULLI` draw: a build with neither (a full-integer diffusion
/// application) carries it empty, so the executor's signature costs that build nothing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Draws {
    #[cfg(any(feature = "float-net", feature = "int-bernoulli"))]
    stream: NoiseStream,
    #[cfg(any(feature = "float-net", feature = "int-bernoulli"))]
    eval: u32,
}

impl Draws {
    /// The draws of `EVAL` number `eval` (from 0, in program order) of sample `(seed, stream)`.
    #[cfg_attr(
        not(any(feature = "float-net", feature = "int-bernoulli")),
        allow(unused_variables)
    )]
    pub(crate) const fn new(seed: u64, stream: u32, eval: u32) -> Self {
        Draws {
            #[cfg(any(feature = "float-net", feature = "int-bernoulli"))]
            stream: NoiseStream::new(seed, stream, Domain::Network),
            #[cfg(any(feature = "float-net", feature = "int-bernoulli"))]
            eval,
        }
    }

    /// `y[i] = f(y[i], raw word of element offset + i)`, one Philox block per four elements.
    #[cfg(any(feature = "float-net", feature = "int-bernoulli"))]
    fn fill<T: Copy>(&self, offset: u32, y: &mut [T], f: impl Fn(T, u32) -> T) {
        let mut block = [0u32; 4];
        for (i, yi) in y.iter_mut().enumerate() {
            // `offset + len` fits a u32 (`Graph::parse`).
            let e = offset.wrapping_add(i as u32);
            if i == 0 || e.is_multiple_of(4) {
                block = self.stream.block(self.eval, e / 4);
            }
            let [w0, w1, w2, w3] = block;
            let w = match e % 4 {
                0 => w0,
                1 => w1,
                2 => w2,
                _ => w3,
            };
            *yi = f(*yi, w);
        }
    }
}

fn range(start: usize, len: u32) -> Range<usize> {
    start..start + len as usize
}

/// Split `slots` into a shared view of `src` and a mutable view of `dst` (disjoint ranges).
/// Also the batched executor's (`batch::exec`), over its widened arena.
#[inline]
pub(crate) fn read_write(
    slots: &mut [f32],
    src: Range<usize>,
    dst: Range<usize>,
) -> Result<(&[f32], &mut [f32]), Fault> {
    if src.end > slots.len() || dst.end > slots.len() {
        return Err(Fault(Rule::ValueOutsideArena));
    }
    // `split_at_mut_checked`: the bound is checked above, but a panic path would still be
    // linked into every firmware.
    if src.end <= dst.start {
        let (lo, hi) = slots
            .split_at_mut_checked(dst.start)
            .ok_or(Fault(Rule::BadRange))?;
        let d = hi.get_mut(..dst.len()).ok_or(Fault(Rule::BadRange))?;
        Ok((lo.get(src).ok_or(Fault(Rule::BadRange))?, d))
    } else if dst.end <= src.start {
        let (lo, hi) = slots
            .split_at_mut_checked(src.start)
            .ok_or(Fault(Rule::BadRange))?;
        let s = hi.get(..src.len()).ok_or(Fault(Rule::BadRange))?;
        Ok((s, lo.get_mut(dst).ok_or(Fault(Rule::BadRange))?))
    } else {
        Err(Fault(Rule::ValuesOverlap))
    }
}

/// `y.copy_from_slice(x)` as an error instead of a panic when the lengths differ (they do
/// not for a validated graph; the check keeps the panic path out of the firmware).
fn copy(x: &[f32], y: &mut [f32]) -> Result<(), Fault> {
    if x.len() != y.len() {
        return Err(Fault(Rule::CopyLengths));
    }
    y.copy_from_slice(x);
    Ok(())
}

/// The four little-endian i32 of a validated `(4, 1)` constants tensor (zeros if shorter,
/// which a validated blob never is). Four word reads: a zipped loop became a byte-wise
/// `memcpy` call per op (QEMU trace of the M4F).
fn i32_words(b: &[u8]) -> [i32; 4] {
    let Some(c) = b.first_chunk::<16>() else {
        return [0; 4];
    };
    let w = |i: usize| i32::from_le_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]);
    [w(0), w(4), w(8), w(12)]
}

/// The int8 value at slot range `dst` (`n` codes), holding a copy of the one at `src` unless
/// the op runs in place (`src == dst`): an element-wise integer op then works on it in place.
fn int_copy(
    slots: &mut [f32],
    src: Range<usize>,
    dst: Range<usize>,
    n: usize,
) -> Result<&mut [i8], Fault> {
    if src != dst {
        let (x, y) = read_write(slots, src, dst.clone())?;
        copy(x, y)?;
    }
    let y = slots.get_mut(dst).ok_or(Fault(Rule::BadRange))?;
    i8s_mut(y).get_mut(..n).ok_or(Fault(Rule::BadRange))
}

/// Runs the network on register `io.src` at time `t` for class row `class`, writing
/// register `io.dst`; its noise-drawing ops draw from `draws`. `slots` is the whole
/// arena (registers first).
// One copy: inlined into `evaluate` as well as called from the sampler, it was in flash twice
// (672 bytes on the M4F; the instruction counts are the same either way).
#[inline(never)]
pub(crate) fn forward(
    model: &Model<'_>,
    slots: &mut [f32],
    io: Io,
    t: f32,
    class: u16,
    #[cfg_attr(
        not(any(feature = "float-net", feature = "int-bernoulli")),
        allow(unused_variables)
    )]
    draws: Draws,
) -> Result<(), Fault> {
    let plan = model.plan();
    let s = &model.graph().structure;
    let data_len = model.meta().data_len;
    let place = |v: u16| -> Range<usize> {
        if v == 0 {
            range(io.src, data_len)
        } else {
            range(plan.value_start(v), s.slots(v as usize))
        }
    };
    let len_of = |v: u16| s.len_of(v as usize) as usize;
    for op_index in 0..model.graph().op_count() {
        let v = op_index + 1;
        let dst = place(v);
        match model.graph().op(op_index)? {
            #[cfg(feature = "float-net")]
            Op::Linear { a, weight, bias } => {
                let w = model.tensors().get(weight)?.matrix()?;
                let b = match bias {
                    Some(t) => Some(model.tensors().get(t)?.data),
                    None => None,
                };
                let (x, y) = read_write(slots, place(a), dst)?;
                k::gemv_bias_bytes(&w, x, b, y)?;
            }
            #[cfg(feature = "float-net")]
            Op::Activation { a, act } => {
                let src = place(a);
                if src != dst {
                    let (x, y) = read_write(slots, src, dst.clone())?;
                    copy(x, y)?;
                }
                act.apply_slice(slots.get_mut(dst).ok_or(Fault(Rule::BadRange))?);
            }
            #[cfg(feature = "float-net")]
            Op::Add { a, b } => {
                let (ra, rb) = (place(a), place(b));
                // In place is allowed (dst may be a's or b's slots). IEEE addition commutes, so
                // `y += other` is `a + b` bit for bit whichever input y holds.
                if ra == rb && dst == ra {
                    // ADD(a, a) in place.
                    for y in slots.get_mut(dst).ok_or(Fault(Rule::ValueOutsideArena))? {
                        *y += *y;
                    }
                    continue;
                }
                let other = if dst == ra {
                    rb
                } else if dst == rb {
                    ra
                } else {
                    let (x, y) = read_write(slots, ra, dst.clone())?;
                    copy(x, y)?;
                    rb
                };
                let (x, y) = read_write(slots, other, dst)?;
                if x.len() != y.len() {
                    return Err(Fault(Rule::AddLengths));
                }
                for (yi, &xi) in y.iter_mut().zip(x) {
                    *yi += xi;
                }
            }
            #[cfg(feature = "float-net")]
            Op::Concat { a, b } => {
                let (ra, rb) = (place(a), place(b));
                let split = dst.start + ra.len();
                let (x, y) = read_write(slots, ra, dst.start..split)?;
                copy(x, y)?;
                let (x, y) = read_write(slots, rb, split..dst.end)?;
                copy(x, y)?;
            }
            #[cfg(feature = "float-net")]
            Op::LayerNorm {
                a,
                gamma,
                beta,
                eps,
            } => {
                let g = match gamma {
                    Some(t) => Some(model.tensors().get(t)?.data),
                    None => None,
                };
                let bb = match beta {
                    Some(t) => Some(model.tensors().get(t)?.data),
                    None => None,
                };
                let (x, y) = read_write(slots, place(a), dst)?;
                k::layer_norm_bytes(x, g, bb, eps, y)?;
            }
            #[cfg(feature = "time-embed")]
            Op::TimeEmbed { max_period } => {
                let y = slots.get_mut(dst).ok_or(Fault(Rule::BadRange))?;
                k::time_embedding(t, max_period, y)?;
            }
            // Refused by `Graph::parse` in this build; kept so the match stays exhaustive.
            #[cfg(not(feature = "time-embed"))]
            Op::TimeEmbed { .. } => {
                return Err(Fault(Rule::TimeEmbedNotBuilt));
            }
            // Likewise: an integer-only runtime refuses the float ops at parse time.
            #[cfg(not(feature = "float-net"))]
            Op::Linear { .. }
            | Op::Activation { .. }
            | Op::Add { .. }
            | Op::Concat { .. }
            | Op::LayerNorm { .. }
            | Op::ClassEmbed { .. }
            | Op::TimeTable { .. }
            | Op::Slice { .. }
            | Op::Mul { .. }
            | Op::Noise { .. }
            | Op::Bernoulli { .. } => {
                return Err(Fault(Rule::FloatOpNotBuilt));
            }
            #[cfg(feature = "float-net")]
            Op::Slice { a, start } => {
                let src = place(a);
                let from = src.start + start as usize;
                let (x, y) = read_write(slots, from..from + dst.len(), dst)?;
                copy(x, y)?;
            }
            #[cfg(feature = "float-net")]
            Op::Mul { a, b } => {
                let (ra, rb) = (place(a), place(b));
                // Element-wise, each element read before it is written: any placement works
                // (in place on a or b, or MUL(a, a)). IEEE multiplication commutes.
                for i in 0..dst.len() {
                    let (Some(&x), Some(&y)) = (slots.get(ra.start + i), slots.get(rb.start + i))
                    else {
                        return Err(Fault(Rule::ValueOutsideArena));
                    };
                    let out = slots
                        .get_mut(dst.start + i)
                        .ok_or(Fault(Rule::ValueOutsideArena))?;
                    *out = x * y;
                }
            }
            #[cfg(feature = "float-net")]
            Op::Noise { offset } => {
                let y = slots.get_mut(dst).ok_or(Fault(Rule::BadRange))?;
                draws.fill(offset, y, |_, w| standard_normal(w));
            }
            #[cfg(feature = "float-net")]
            Op::Bernoulli { a, offset } => {
                let src = place(a);
                if src != dst {
                    let (x, y) = read_write(slots, src, dst.clone())?;
                    copy(x, y)?;
                }
                let y = slots.get_mut(dst).ok_or(Fault(Rule::BadRange))?;
                // y holds the probabilities; each becomes its draw. A NaN probability draws 0.
                draws.fill(
                    offset,
                    y,
                    |p, w| if uniform_open(w) < p { 1.0 } else { 0.0 },
                );
            }
            #[cfg(feature = "float-net")]
            Op::ClassEmbed { table } => {
                let m = model.tensors().get(table)?.matrix()?;
                let y = slots.get_mut(dst).ok_or(Fault(Rule::BadRange))?;
                k::embedding_row(&m, class as usize, y)?;
            }
            Op::Quantize {
                a,
                zp,
                scales,
                times,
            } => {
                let row = match times {
                    Some(tt) => time_row(model.tensors().get(tt)?.data, t)
                        .ok_or(Fault(Rule::TimeRowMissing))?,
                    None => 0,
                };
                let sc = model.tensors().get(scales)?.data;
                let scale = sc
                    .get(4 * row..4 * row + 4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .ok_or(Fault(Rule::BadRange))?;
                let (x, y) = read_write(slots, place(a), dst)?;
                let y = i8s_mut(y);
                for (yi, &xi) in y.iter_mut().zip(x) {
                    *yi = k::int8::quantize(xi, scale, i32::from(zp));
                }
            }
            Op::Dequantize { a, zp, scale } => {
                let n = len_of(a);
                let (x, y) = read_write(slots, place(a), dst)?;
                let x = i8s(x).get(..n).ok_or(Fault(Rule::BadRange))?;
                for (yi, &xi) in y.iter_mut().zip(x) {
                    *yi = k::int8::dequantize(xi, scale, i32::from(zp));
                }
            }
            Op::QLinear {
                a,
                weight,
                params,
                x_zp,
                y_zp,
                layout,
            } => {
                let (n, cols_p) = (len_of(a), len_of(a).div_ceil(4) * 4);
                let scratch = plan.scratch();
                let (x, xw) = read_write(slots, place(a), scratch.clone())?;
                let x = i8s(x).get(..n).ok_or(Fault(Rule::BadRange))?;
                let xw = i16s_mut(xw)
                    .get_mut(..cols_p)
                    .ok_or(Fault(Rule::BadRange))?;
                k::int8_fast::widen(x, i32::from(x_zp), xw)?;
                let w = model.tensors().get(weight)?.data;
                let p = model.tensors().get(params)?.data;
                let rows = len_of(v);
                let (xw, y) = read_write(slots, scratch, dst)?;
                let xw = i16s(xw).get(..cols_p).ok_or(Fault(Rule::BadRange))?;
                let y = i8s_mut(y).get_mut(..rows).ok_or(Fault(Rule::BadRange))?;
                // `Graph::parse` checked every record, so the kernels' per-call check is
                // skipped. The fast kernels need non-zero multipliers; a graph with a zero one
                // runs the reference (which is what the checking fast kernel would fall back
                // to, and one kernel fewer in flash).
                let run = match (layout, model.graph().qlinear_records_nonzero()) {
                    (WeightLayout::Pairs, true) => k::int8_fast::qlinear_pairs_validated,
                    (WeightLayout::Pairs, false) => k::int8::qlinear_pairs_validated,
                    #[cfg(feature = "w8a8-tiles")]
                    (WeightLayout::Tiles, true) => k::int8_fast::qlinear_validated,
                    #[cfg(feature = "w8a8-tiles")]
                    (WeightLayout::Tiles, false) => k::int8::qlinear_validated,
                    // Refused by `Graph::parse` in this build.
                    #[cfg(not(feature = "w8a8-tiles"))]
                    (WeightLayout::Tiles, _) => {
                        return Err(Fault(Rule::TilesNotBuilt));
                    }
                };
                run(w, xw, p, i32::from(y_zp), y)?;
            }
            Op::QLut { a, table } => {
                let y = int_copy(slots, place(a), dst, len_of(a))?;
                k::int8::lut(model.tensors().get(table)?.data, y)?;
            }
            Op::QAdd { a, b, consts } => {
                let c = i32_words(model.tensors().get(consts)?.data);
                let q = k::int8::QAdd::new(c[0], c[1], c[2], c[3])?;
                let n = len_of(a);
                int_copy(slots, place(a), dst.clone(), n)?;
                // `structure` refuses QADD(a, a), so b's slots are disjoint from dst's.
                let (bs, y) = read_write(slots, place(b), dst)?;
                let bs = i8s(bs).get(..n).ok_or(Fault(Rule::BadRange))?;
                let y = i8s_mut(y).get_mut(..n).ok_or(Fault(Rule::BadRange))?;
                k::int8::qadd(y, bs, q)?;
            }
            Op::QLayerNorm {
                a,
                channels,
                consts,
            } => {
                let c = i32_words(model.tensors().get(consts)?.data);
                let rq = k::int8::Requant::new(c[1], c[2] as i8)?;
                let ch = model.tensors().get(channels)?.data;
                let y = int_copy(slots, place(a), dst, len_of(a))?;
                k::int8::qlayer_norm_in_place(y, ch, c[0], rq, c[3])?;
            }
            #[cfg(not(feature = "int-bernoulli"))]
            Op::QBernoulli { .. } => return Err(Fault(Rule::QBernoulliNotBuilt)),
            #[cfg(feature = "int-bernoulli")]
            Op::QBernoulli { a, offset } => {
                let y = int_copy(slots, place(a), dst, len_of(a))?;
                // (c + 128)·0x0101_0101 ≤ 255·0x0101_0101 = u32::MAX: no overflow.
                draws.fill(offset, y, |c, w| {
                    i8::from(w < (i32::from(c) + 128) as u32 * 0x0101_0101)
                });
            }
            Op::QGather { table, key } => {
                let row = match key {
                    GatherKey::Time(tt) => time_row(model.tensors().get(tt)?.data, t)
                        .ok_or(Fault(Rule::TimeRowMissing))?,
                    GatherKey::Class => class as usize,
                };
                let n = len_of(v);
                let y = slots.get_mut(dst).ok_or(Fault(Rule::BadRange))?;
                let y = i8s_mut(y).get_mut(..n).ok_or(Fault(Rule::BadRange))?;
                k::int8::table_row(model.tensors().get(table)?.data, row, y)?;
            }
            #[cfg(feature = "float-net")]
            Op::TimeTable { rows, times } => {
                let m = model.tensors().get(rows)?.matrix()?;
                let times = model.tensors().get(times)?.data;
                // `Model::parse` checked every EVAL time is in the table.
                let r = time_row(times, t).ok_or(Fault(Rule::TimeRowMissing))?;
                let y = slots.get_mut(dst).ok_or(Fault(Rule::BadRange))?;
                k::embedding_row(&m, r, y)?;
            }
        }
    }
    // The output value into the destination register.
    let out = place(s.output);
    let target = range(io.dst, data_len);
    if out != target {
        // A network value and a register: disjoint slots (`read_write` checks).
        let (x, y) = read_write(slots, out, target)?;
        copy(x, y)?;
    }
    Ok(())
}
