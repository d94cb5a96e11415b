//! One block of samples run through a whole sampler program on one thread.
//!
//! The arena is the device's plan with every slot widened to `lanes` f32 (slot `s`, sample `l`
//! at `s * lanes + l`), so the planner's placement — registers, value offsets, in-place
//! results — carries over unchanged. The program is interpreted exactly as
//! [`Sampler`](crate::Sampler) does; each instruction runs for every sample of the block.
//!
//! Values that are the same for every sample (the time embedding and what is computed from it
//! alone; also the class embedding when the block shares one class) are computed once, in a
//! one-lane arena with the same plan, and then copied to every lane: the same operations on the
//! same inputs, so the same bits, done once.
//!
//! Everything is `#[inline(always)]` so that [`super::isa`] compiles the whole executor once
//! per instruction set; `K` is that instruction set's matrix kernel.

use core::ops::Range;
use std::vec;
use std::vec::Vec;

use microdiff_kernels as k;

use super::lanes::{self, Kernels};
use super::prepare::{BatchModel, PreparedOp};
use crate::SampleRequest;
use crate::blob::graph::{MAX_VALUES, Op, time_row};
use crate::blob::program::{ClassSel, Instr, Program, Terms};
use crate::error::{Error, Fault, Rule};
use crate::network::read_write;
use crate::noise::{Domain, NoiseStream};

/// The error for a broken invariant of the plan (only reachable if the plan and the arena
/// disagree, which the batched executor's sizing rules out).
fn broken(what: Rule) -> Error {
    Fault(what).into()
}

/// The state of one block: its arenas and each sample's fate.
pub(crate) struct Block<'s> {
    specs: &'s [SampleRequest],
    lanes: usize,
    /// The widened arena: `total_slots * lanes`.
    slots: Vec<f32>,
    /// The one-lane arena for values shared by every sample.
    uniform: Vec<f32>,
    /// Per-sample noise of the current `LIN`: `lanes * data_len`.
    noise: Vec<f32>,
    /// Per-sample class of the current `EVAL`.
    classes: Vec<u16>,
    /// The first error of each sample (a failed sample keeps computing, harmlessly).
    failed: Vec<Option<Error>>,
}

impl<'s> Block<'s> {
    pub(crate) fn new(bm: &BatchModel<'_, '_>, specs: &'s [SampleRequest]) -> Result<Self, Error> {
        let lanes = specs.len();
        let total = bm.model.plan().total_slots();
        let wide = total.checked_mul(lanes).ok_or(Error::ArenaTooSmall {
            needed: usize::MAX,
            provided: 0,
        })?;
        Ok(Block {
            specs,
            lanes,
            slots: vec![0.0; wide],
            uniform: vec![0.0; total],
            noise: vec![0.0; lanes * bm.model.data_len()],
            classes: vec![0; lanes],
            failed: vec![None; lanes],
        })
    }

    /// The first failed sample of the block and its error.
    pub(crate) fn first_failure(&self) -> Option<(usize, Error)> {
        self.failed
            .iter()
            .enumerate()
            .find_map(|(i, e)| e.map(|e| (i, e)))
    }
}

/// Runs `program` for every sample of `block` and writes each sample, in data units, into
/// `out` (`lanes * data_len`, sample-major). Errors that concern every sample (a broken plan)
/// are returned; a sample's own failure (non-finite values) is recorded in the block.
#[inline(always)]
pub(crate) fn run_block<K: Kernels>(
    kern: K,
    bm: &BatchModel<'_, '_>,
    program: Program<'_>,
    block: &mut Block<'_>,
    out: &mut [f32],
) -> Result<(), Error> {
    let model = bm.model;
    let plan = model.plan();
    let lanes = block.lanes;
    let d = plan.data_len as usize;
    let null_class = model.meta().null_class.unwrap_or(0);
    let reg = |r: u8| plan.register_start(r) * lanes..(plan.register_start(r) + d) * lanes;
    let mut pc = 0usize;
    let mut step = 0u16;
    let mut draw = 0u32;
    while pc < program.code.len() {
        let at = pc;
        let (instr, next) = program.instr(at)?;
        pc = next;
        match instr {
            Instr::Eval {
                dst,
                src,
                class,
                time,
            } => {
                for (c, s) in block.classes.iter_mut().zip(block.specs) {
                    *c = match class {
                        ClassSel::Caller => s.class,
                        ClassSel::Null => null_class,
                    };
                }
                let first = block.classes.first().copied().unwrap_or(0);
                let same = block.classes.iter().all(|&c| c == first);
                forward(kern, bm, block, src, dst, time, same)?;
                check_finite(block, reg(dst), step, at);
            }
            Instr::Lin { dst, noise, terms } => {
                let this_draw = draw;
                if let Some(cz) = noise {
                    draw = draw.wrapping_add(1);
                    for (z, s) in block.noise.chunks_exact_mut(d.max(1)).zip(block.specs) {
                        NoiseStream::new(s.seed, s.stream, Domain::Sampler)
                            .fill_normal(this_draw, z);
                    }
                    lin(block, plan, dst, terms, Some(cz), d);
                } else {
                    lin(block, plan, dst, terms, None, d);
                }
                check_finite(block, reg(dst), step, at);
            }
            Instr::Clamp { reg: r, lo, hi } => {
                if let Some(xs) = block.slots.get_mut(reg(r)) {
                    for x in xs {
                        *x = x.max(lo).min(hi);
                    }
                }
            }
            Instr::Step => step = step.saturating_add(1),
        }
    }
    let meta = model.meta();
    let raw = block.slots.get(reg(program.out_reg)).unwrap_or(&[]);
    let rows = out.chunks_exact_mut(d.max(1)).zip(block.failed.iter_mut());
    for (l, (row, failed)) in rows.enumerate().take(lanes) {
        for (i, o) in row.iter_mut().enumerate() {
            let x = raw.get(i * lanes + l).copied().unwrap_or(f32::NAN);
            *o = meta.to_data_units(i, x);
            // As `Sampler::output`: a finished sample that overflows in data units fails.
            if !o.is_finite() && failed.is_none() {
                *failed = Some(Error::OutputNotFinite { element: i as u32 });
            }
        }
    }
    Ok(())
}

/// `LIN` for every sample: per element `acc = 0; acc = acc + cₖ·rₖ[i]` in term order, then
/// `acc = acc + c_z·zᵢ`; all sources of element `i` are read before `dst[i]` is written.
#[inline(always)]
fn lin(
    block: &mut Block<'_>,
    plan: &crate::Plan,
    dst: u8,
    terms: Terms<'_>,
    noise: Option<f32>,
    d: usize,
) {
    let lanes = block.lanes;
    let mut acc = vec![0.0f32; lanes];
    for i in 0..d {
        acc.fill(0.0);
        for (r, c) in terms.iter() {
            let at = (plan.register_start(r) + i) * lanes;
            match block.slots.get(at..at + lanes) {
                Some(xs) => acc.iter_mut().zip(xs).for_each(|(a, &x)| *a += c * x),
                // A register outside the arena reads as NaN, like the device's.
                None => acc.iter_mut().for_each(|a| *a += c * f32::NAN),
            }
        }
        if let Some(cz) = noise {
            for (a, z) in acc.iter_mut().zip(block.noise.chunks_exact(d)) {
                *a += cz * z.get(i).copied().unwrap_or(f32::NAN);
            }
        }
        let at = (plan.register_start(dst) + i) * lanes;
        if let Some(out) = block.slots.get_mut(at..at + lanes) {
            out.copy_from_slice(&acc);
        }
    }
}

/// Marks every sample whose register `range` holds a NaN or infinity as failed at
/// (`step`, `pc`), unless it failed before.
#[inline(always)]
fn check_finite(block: &mut Block<'_>, range: Range<usize>, step: u16, pc: usize) {
    let lanes = block.lanes;
    let Some(xs) = block.slots.get(range) else {
        return;
    };
    let mut bad = vec![false; lanes];
    for row in xs.chunks_exact(lanes) {
        for (b, x) in bad.iter_mut().zip(row) {
            *b |= !x.is_finite();
        }
    }
    for (f, b) in block.failed.iter_mut().zip(bad) {
        if b && f.is_none() {
            *f = Some(Error::NonFinite {
                step,
                pc: pc as u32,
            });
        }
    }
}

/// One network evaluation for every sample: register `src` → register `dst` at `time`.
#[inline(always)]
fn forward<K: Kernels>(
    kern: K,
    bm: &BatchModel<'_, '_>,
    block: &mut Block<'_>,
    src: u8,
    dst: u8,
    time: f32,
    same_class: bool,
) -> Result<(), Error> {
    let model = bm.model;
    let plan = model.plan();
    let s = &model.graph().structure;
    let lanes = block.lanes;
    let d = plan.data_len as usize;
    let uniform: &[bool; MAX_VALUES] = if same_class {
        &bm.uniform_same_class
    } else {
        &bm.uniform_mixed_class
    };
    let src0 = plan.register_start(src);
    // Slot range of value v, widened to `lanes`.
    let place = |v: u16, lanes: usize| -> Range<usize> {
        let (start, len) = if v == 0 {
            (src0, d)
        } else {
            (plan.value_start(v), s.len[v as usize] as usize)
        };
        start * lanes..(start + len) * lanes
    };
    for (k, op) in bm.ops.iter().enumerate() {
        let v = (k + 1) as u16;
        if uniform[v as usize] {
            let class = block.classes.first().copied().unwrap_or(0);
            run_op(
                kern,
                op,
                model,
                &mut block.uniform,
                1,
                &place,
                v,
                time,
                &[class],
            )?;
            // Copy the shared value to every sample.
            let (one, wide) = (place(v, 1), place(v, lanes));
            let (Some(one), Some(wide)) = (block.uniform.get(one), block.slots.get_mut(wide))
            else {
                return Err(broken(Rule::ValueOutsideArena));
            };
            for (&x, row) in one.iter().zip(wide.chunks_exact_mut(lanes)) {
                row.fill(x);
            }
        } else {
            run_op(
                kern,
                op,
                model,
                &mut block.slots,
                lanes,
                &place,
                v,
                time,
                &block.classes,
            )?;
        }
    }
    // The output value into the destination register.
    let out = place(s.output, lanes);
    let target = plan.register_start(dst) * lanes..(plan.register_start(dst) + d) * lanes;
    if out != target {
        if out.end > block.slots.len() || target.end > block.slots.len() {
            return Err(broken(Rule::ValueOutsideArena));
        }
        block.slots.copy_within(out, target.start);
    }
    Ok(())
}

/// Value `v` at evaluation time `time`, when it is computed from the time alone (no input, no
/// class): the shared ops up to `v` run in a one-lane arena with the portable kernels — the
/// same arithmetic as the device's, so the same bits. For folding such a subgraph into a
/// `TIME_TABLE` on the host.
pub(crate) fn time_value(bm: &BatchModel<'_, '_>, v: u16, time: f32) -> Result<Vec<f32>, Error> {
    let model = bm.model;
    let plan = model.plan();
    let s = &model.graph().structure;
    if v == 0 || v >= s.values || !bm.uniform_mixed_class[v as usize] {
        return Err(broken(Rule::NotTimeOnly));
    }
    let mut buf = vec![0.0f32; plan.total_slots()];
    let place = |u: u16, _lanes: usize| -> Range<usize> {
        let start = plan.value_start(u);
        start..start + s.len[u as usize] as usize
    };
    for (k, op) in bm.ops.iter().enumerate().take(v as usize) {
        let u = (k + 1) as u16;
        if bm.uniform_mixed_class[u as usize] {
            run_op(
                lanes::Portable,
                op,
                model,
                &mut buf,
                1,
                &place,
                u,
                time,
                &[0],
            )?;
        }
    }
    Ok(buf.get(place(v, 1)).ok_or(broken(Rule::BadRange))?.to_vec())
}

/// Op `v − 1` over `buf` widened to `lanes` samples.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn run_op<K: Kernels>(
    kern: K,
    op: &PreparedOp,
    model: &crate::Model<'_>,
    buf: &mut [f32],
    lanes: usize,
    place: &impl Fn(u16, usize) -> Range<usize>,
    v: u16,
    time: f32,
    classes: &[u16],
) -> Result<(), Error> {
    let dst = place(v, lanes);
    match op {
        PreparedOp::Linear { a, w, scale, bias } => {
            let (x, y) = read_write(buf, place(*a, lanes), dst)?;
            kern.gemv(w, scale.as_deref(), bias.as_deref(), x, y, lanes);
        }
        PreparedOp::LayerNorm {
            a,
            gamma,
            beta,
            eps,
        } => {
            let n = dst.len() / lanes.max(1);
            let (x, y) = read_write(buf, place(*a, lanes), dst)?;
            lanes::layer_norm(x, gamma.as_deref(), beta.as_deref(), *eps, y, n, lanes);
        }
        PreparedOp::Plain(Op::Activation { a, act }) => {
            let src = place(*a, lanes);
            if src != dst {
                let (x, y) = read_write(buf, src, dst.clone())?;
                y.copy_from_slice(x);
            }
            lanes::activation(*act, buf.get_mut(dst).ok_or(broken(Rule::BadRange))?);
        }
        PreparedOp::Plain(Op::Add { a, b }) => {
            let (ra, rb) = (place(*a, lanes), place(*b, lanes));
            if ra.end > buf.len() || rb.end > buf.len() || dst.end > buf.len() {
                return Err(broken(Rule::ValueOutsideArena));
            }
            if dst == ra && (rb.end <= dst.start || dst.end <= rb.start) {
                // In place on a (the planner's usual case), b elsewhere.
                let (b, d) = read_write(buf, rb, dst)?;
                d.iter_mut().zip(b).for_each(|(d, &b)| *d += b);
            } else {
                // Any other placement: each element is read before it is written.
                for i in 0..dst.len() {
                    buf[dst.start + i] = buf[ra.start + i] + buf[rb.start + i];
                }
            }
        }
        PreparedOp::Plain(Op::Concat { a, b }) => {
            // Element-major, so `[a; b]` is a's whole block followed by b's.
            let (ra, rb) = (place(*a, lanes), place(*b, lanes));
            let split = dst.start + ra.len();
            let (x, y) = read_write(buf, ra, dst.start..split)?;
            y.copy_from_slice(x);
            let (x, y) = read_write(buf, rb, split..dst.end)?;
            y.copy_from_slice(x);
        }
        PreparedOp::Plain(Op::TimeEmbed { max_period }) => {
            // Always a shared value: computed in the one-lane arena (lanes == 1).
            let y = buf.get_mut(dst).ok_or(broken(Rule::BadRange))?;
            k::time_embedding(time, *max_period, y)?;
        }
        PreparedOp::Plain(Op::ClassEmbed { table }) => {
            let m = model.tensors().get(*table)?.matrix()?;
            let y = buf.get_mut(dst).ok_or(broken(Rule::BadRange))?;
            if lanes == 1 {
                k::embedding_row(&m, classes.first().copied().unwrap_or(0) as usize, y)?;
            } else {
                let mut row = vec![0.0f32; m.cols()];
                for (l, &c) in classes.iter().enumerate().take(lanes) {
                    k::embedding_row(&m, c as usize, &mut row)?;
                    for (i, &x) in row.iter().enumerate() {
                        if let Some(o) = y.get_mut(i * lanes + l) {
                            *o = x;
                        }
                    }
                }
            }
        }
        PreparedOp::Plain(Op::TimeTable { rows, times }) => {
            // Always a shared value: computed in the one-lane arena (lanes == 1).
            if lanes != 1 {
                return Err(broken(Rule::TimeTableOutside));
            }
            let m = model.tensors().get(*rows)?.matrix()?;
            let times = model.tensors().get(*times)?.data;
            let r = time_row(times, time).ok_or(broken(Rule::TimeRowMissing))?;
            let y = buf.get_mut(dst).ok_or(broken(Rule::BadRange))?;
            k::embedding_row(&m, r, y)?;
        }
        PreparedOp::Plain(Op::Linear { .. } | Op::LayerNorm { .. }) => {
            return Err(broken(Rule::OpNotPrepared));
        }
        // Integer graphs, and graphs with the other families' ops, run sample by sample through
        // the device executor (`BatchModel::sample`).
        PreparedOp::Plain(
            Op::Quantize { .. }
            | Op::Dequantize { .. }
            | Op::QLinear { .. }
            | Op::QLut { .. }
            | Op::QAdd { .. }
            | Op::QLayerNorm { .. }
            | Op::QGather { .. }
            | Op::Slice { .. }
            | Op::Mul { .. }
            | Op::Noise { .. }
            | Op::Bernoulli { .. }
            | Op::QBernoulli { .. },
        ) => {
            return Err(broken(Rule::IntegerOpInLanes));
        }
    }
    Ok(())
}
