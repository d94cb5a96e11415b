//! The full-integer (W8A8) export: calibration on the sampler's own trajectories, then the
//! residual MLP as the runtime's integer ops.
//!
//! # Calibration
//! Every program of the export is run on the host ([`Program::run`], the runtime's noise and
//! `LIN` order) with the trained f32 network, `samples` trajectories per program (classes in
//! turn for a conditional model, the null class where the program asks for it). Each network
//! evaluation records the range of every value of the graph, so the ranges come from the
//! inputs the sampler actually produces at each of its steps (Q-Diffusion's point: activation
//! ranges move with `t`), not from training data or noise alone. One scale per value, over all
//! steps: docs/integer.md reports what a per-step input scale changed when measured.
//!
//! # Quantization (TFLite's conventions, docs/integer.md)
//! * Activations: affine int8, `real = scale·(q − zp)`, range `[min(lo, 0), max(hi, 0)]` over
//!   the calibration, `scale = (hi − lo)/255`.
//! * Weights: symmetric int8 per output row (`scale = max|w|/127`), stored in the kernels'
//!   paired layout (`int8::pair_index`); biases int32 in accumulator units `round(b / (s_x·s_w))`; the per-row
//!   multiplier `s_x·s_w/s_y` as a Q31 significand and shift (`quantize_multiplier`).
//! * Activation functions: 256-entry tables `quantize(act(dequantize(q)))`, computed here.
//! * Layer norm: γ as int8 codes with one scale, β in output codes (the kernels' `qlayer_norm`).
//! * The time MLP becomes a table of int8 rows, one per time the programs evaluate; the class
//!   table is quantized row by row with one scale.

use std::cell::RefCell;

use super::BuildError;
use microdiff_kernels::int8::{self, QAdd, Requant, WeightLayout};
use microdiff_runtime::blob::graph::GatherKey;
use microdiff_runtime::blob::program::Instr;
use microdiff_runtime::blob::{BlobBuilder, Value};

use crate::model::{LN_EPS, Layout, MAX_PERIOD, MlpConfig, Slot};
use crate::process::Process;
use crate::sampler::simulate::Program;

use super::ExportSpec;

/// How the W8A8 export calibrates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Calibration {
    /// Trajectories per program; `None`: [`Calibration::auto_samples`] of the data's width.
    pub samples: Option<usize>,
    /// Noise seed of the calibration trajectories (streams `0..samples`).
    pub seed: u64,
}

impl Default for Calibration {
    fn default() -> Self {
        Calibration {
            samples: None,
            seed: 0x00CA_11B8,
        }
    }
}

impl Calibration {
    /// The default trajectories per program for samples of `data_dim` values: 64, or
    /// `2048 / data_dim` when that is more (1024 for 2-D data). A sample of few values gives
    /// each trajectory few activations to measure: with 64 trajectories a 2-D model's W8A8
    /// samples scored 3.0× the sliced-W2 floor, with 1024 1.6× (docs/integer.md §6); the
    /// digits (64 values) keep 64.
    pub fn auto_samples(data_dim: usize) -> usize {
        (2048 / data_dim.max(1)).max(64)
    }
}

/// What the calibration saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Network evaluations recorded.
    pub evaluations: usize,
    /// Trajectories run (all programs).
    pub trajectories: usize,
    /// Distinct evaluation times (rows of the int8 time table).
    pub times: usize,
}

fn fail(what: &'static str) -> BuildError {
    BuildError::Refused(what)
}

/// Affine int8 quantization of one value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Q {
    pub(crate) scale: f32,
    pub(crate) zp: i8,
}

/// The range of one value over the calibration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Range {
    lo: f32,
    hi: f32,
}

impl Range {
    pub(crate) const EMPTY: Range = Range { lo: 0.0, hi: 0.0 };

    pub(crate) fn add(&mut self, xs: &[f32]) {
        for &x in xs {
            if x.is_finite() {
                self.lo = self.lo.min(x);
                self.hi = self.hi.max(x);
            }
        }
    }

    /// `scale = (hi − lo)/255` over a range that contains 0, `zp = round(−128 − lo/scale)`.
    pub(crate) fn q(&self) -> Q {
        let (lo, hi) = (f64::from(self.lo.min(0.0)), f64::from(self.hi.max(0.0)));
        let scale = ((hi - lo) / 255.0).max(1e-8);
        let zp = (-128.0 - lo / scale).round().clamp(-128.0, 127.0);
        Q {
            scale: scale as f32,
            zp: zp as i8,
        }
    }
}

/// Indices of the recorded values.
mod id {
    pub const X: usize = 0;
    pub const H0: usize = 1;
    pub const TE: usize = 2;
    pub const H1: usize = 3;
    pub const CE: usize = 4;
    pub const H2: usize = 5;
    pub const LNF: usize = 6;
    pub const AF: usize = 7;
    pub const OUT: usize = 8;
    pub const BLOCK0: usize = 9;
    /// Per block: layer norm, first linear, activation, second linear, residual sum.
    pub const PER_BLOCK: usize = 5;
}

/// The trained f32 network, evaluated on the host for calibration (plain f32 arithmetic: the
/// ranges, not the bits, matter here).
struct Net<'a> {
    c: &'a MlpConfig,
    l: Layout,
    p: &'a [f32],
}

impl Net<'_> {
    fn slice(&self, s: Slot) -> &[f32] {
        &self.p[s.offset..s.offset + s.len()]
    }

    fn linear(&self, w: Slot, b: Slot, x: &[f32]) -> Vec<f32> {
        let (w, b) = (self.slice(w), self.slice(b));
        w.chunks_exact(x.len())
            .zip(b)
            .map(|(row, &bi)| row.iter().zip(x).map(|(a, b)| a * b).sum::<f32>() + bi)
            .collect()
    }

    fn layer_norm(&self, x: &[f32], g: Slot, b: Slot) -> Vec<f32> {
        let n = x.len() as f32;
        let mean = x.iter().sum::<f32>() / n;
        let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
        let inv = 1.0 / (var + LN_EPS).sqrt();
        x.iter()
            .zip(self.slice(g).iter().zip(self.slice(b)))
            .map(|(v, (g, b))| (v - mean) * inv * g + b)
            .collect()
    }

    fn time_mlp(&self, t: f32) -> Result<Vec<f32>, BuildError> {
        let mut e = vec![0.0f32; self.c.temb];
        microdiff_kernels::time_embedding(t, MAX_PERIOD, &mut e)?;
        let mut u = self.linear(self.l.w_t1, self.l.b_t1, &e);
        microdiff_kernels::Activation::Silu.apply_slice(&mut u);
        Ok(self.linear(self.l.w_t2, self.l.b_t2, &u))
    }

    /// ε̂ (or the model's prediction) at `x`, recording every value's range.
    fn forward(&self, x: &[f32], te: &[f32], class: Option<usize>, r: &mut [Range]) -> Vec<f32> {
        r[id::X].add(x);
        let mut h = self.linear(self.l.w_in, self.l.b_in, x);
        r[id::H0].add(&h);
        r[id::TE].add(te);
        h.iter_mut().zip(te).for_each(|(a, b)| *a += b);
        r[id::H1].add(&h);
        if let (Some(t), Some(c)) = (self.l.table, class) {
            let row = &self.p[t.offset + c * t.cols..t.offset + (c + 1) * t.cols];
            r[id::CE].add(row);
            h.iter_mut().zip(row).for_each(|(a, b)| *a += b);
            r[id::H2].add(&h);
        }
        for (i, blk) in self.l.blocks.iter().enumerate() {
            let at = id::BLOCK0 + id::PER_BLOCK * i;
            let ln = self.layer_norm(&h, blk.ln_g, blk.ln_b);
            r[at].add(&ln);
            let mut u = self.linear(blk.w1, blk.b1, &ln);
            r[at + 1].add(&u);
            self.c.act.apply_slice(&mut u);
            r[at + 2].add(&u);
            let o = self.linear(blk.w2, blk.b2, &u);
            r[at + 3].add(&o);
            h.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
            r[at + 4].add(&h);
        }
        let mut o = self.layer_norm(&h, self.l.ln_g, self.l.ln_b);
        r[id::LNF].add(&o);
        self.c.act.apply_slice(&mut o);
        r[id::AF].add(&o);
        let out = self.linear(self.l.w_out, self.l.b_out, &o);
        r[id::OUT].add(&out);
        out
    }
}

/// Every distinct `EVAL` time of the programs, in increasing bit order (the table order).
fn eval_times(programs: &[Program]) -> Vec<f32> {
    let mut bits: Vec<u32> = programs
        .iter()
        .flat_map(|p| p.instrs())
        .filter_map(|i| match i {
            Instr::Eval { time, .. } => Some(time.to_bits()),
            _ => None,
        })
        .collect();
    bits.sort_unstable();
    bits.dedup();
    bits.into_iter().map(f32::from_bits).collect()
}

/// Runs every program `samples` times (noise seed `seed`) with the f32 network and records
/// the ranges.
fn calibrate(
    net: &Net<'_>,
    programs: &[Program],
    times: &[f32],
    te_rows: &[Vec<f32>],
    (samples, seed): (usize, u64),
) -> Result<(Vec<Range>, Report), BuildError> {
    let n_ranges = id::BLOCK0 + id::PER_BLOCK * net.c.blocks;
    let ranges = RefCell::new(vec![Range::EMPTY; n_ranges]);
    let evals = RefCell::new(0usize);
    let classes = net.c.classes;
    let mut trajectories = 0;
    for p in programs {
        for s in 0..samples {
            let class = (classes > 0).then_some(s % classes.max(1));
            let model = |x: &[f64], t: f32, null: bool| -> Vec<f64> {
                let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
                let row = times
                    .binary_search_by(|u| u.to_bits().cmp(&t.to_bits()))
                    .unwrap_or(0);
                let c = if null { Some(classes) } else { class };
                *evals.borrow_mut() += 1;
                net.forward(&xf, &te_rows[row], c, &mut ranges.borrow_mut())
                    .into_iter()
                    .map(f64::from)
                    .collect()
            };
            p.run(model, net.c.data_dim, seed, s as u32)
                .map_err(|_| fail("calibration: a program failed on the host"))?;
            trajectories += 1;
        }
    }
    let report = Report {
        evaluations: evals.into_inner(),
        trajectories,
        times: times.len(),
    };
    Ok((ranges.into_inner(), report))
}

/// The tensors of one `QLINEAR`: int8 weights in the paired layout (`int8::pair_index`) and
/// `[bias, multiplier, shift]` rows.
pub(crate) fn qlinear_tensors(
    b: &mut BlobBuilder,
    w: &[f32],
    bias: &[f32],
    rows: usize,
    cols: usize,
    x: Q,
    y: Q,
) -> Result<((u16, WeightLayout), u16), BuildError> {
    let (rp, cp) = (rows.div_ceil(4) * 4, cols.div_ceil(4) * 4);
    let mut codes = vec![0i8; rows * cols];
    let mut params = Vec::with_capacity(3 * rows);
    for (r, row) in w.chunks_exact(cols).enumerate() {
        let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        // An all-zero row keeps scale 1 so its bias still reaches the output.
        let sw = if max > 0.0 {
            f64::from(max) / 127.0
        } else {
            1.0
        };
        for (c, &v) in row.iter().enumerate() {
            let q = (f64::from(v) / sw).round().clamp(-127.0, 127.0) as i8;
            codes[r * cols + c] = q;
        }
        let acc_scale = f64::from(x.scale) * sw;
        let bq = (f64::from(bias[r]) / acc_scale).round();
        if bq.abs() >= 2f64.powi(31) {
            return Err(fail(
                "W8A8: a bias does not fit int32 at the calibrated scales",
            ));
        }
        let rq = int8::quantize_multiplier(acc_scale / f64::from(y.scale))
            .map_err(|_| fail("W8A8: a requantization multiplier is out of range"))?;
        params.extend([bq as i32, rq.multiplier, i32::from(rq.shift)]);
    }
    let mut packed = vec![0u8; rp * cp];
    int8::pack_pairs(&codes, rows, cols, &mut packed)
        .map_err(|_| fail("W8A8: the weight codes do not pack into pairs"))?;
    let packed: Vec<i8> = packed.iter().map(|&v| v as i8).collect();
    let wt = (
        b.tensor_q8(rp as u32, cp as u32, &packed)?,
        WeightLayout::Pairs,
    );
    let pt = b.tensor_i32(rows as u32, 3, &params)?;
    Ok((wt, pt))
}

/// `[c, ma, mb, s]` of a `QADD` from `a`, `b` to `y` (the kernels' `QAdd`).
pub(crate) fn qadd_consts(a: Q, bq: Q, y: Q) -> Result<[i32; 4], BuildError> {
    let ra = f64::from(a.scale) / f64::from(y.scale);
    let rb = f64::from(bq.scale) / f64::from(y.scale);
    let max = ra.max(rb);
    // The largest shift keeping both multipliers below 2^19 (precision 2^-18 or better).
    let mut s = 31;
    while s > 0 && max * 2f64.powi(s) >= 2f64.powi(19) {
        s -= 1;
    }
    let p = 2f64.powi(s);
    let (ma, mb) = ((ra * p).round(), (rb * p).round());
    let half = if s > 0 { 2f64.powi(s - 1) } else { 0.0 };
    let c = (f64::from(y.zp) * p - f64::from(a.zp) * ma - f64::from(bq.zp) * mb).round() + half;
    let k = [c as i64, ma as i64, mb as i64, i64::from(s)];
    let k32 = k.map(|v| v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32);
    QAdd::new(k32[0], k32[1], k32[2], k32[3])
        .map_err(|_| fail("W8A8: residual add scales too far apart"))?;
    Ok(k32)
}

/// The channel and constant tensors of a `QLAYER_NORM` from `x` to `y`.
fn qnorm_tensors(
    b: &mut BlobBuilder,
    gamma: &[f32],
    beta: &[f32],
    x: Q,
    y: Q,
) -> Result<(u16, u16), BuildError> {
    let n = gamma.len();
    let gmax = gamma.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let sg = if gmax > 0.0 {
        f64::from(gmax) / 127.0
    } else {
        1.0
    };
    let mut ch = Vec::with_capacity(2 * n);
    for (&g, &bt) in gamma.iter().zip(beta) {
        let gq = (f64::from(g) / sg).round().clamp(-127.0, 127.0) as i32;
        let bq = (f64::from(bt) / f64::from(y.scale)).round();
        if bq.abs() >= 2f64.powi(24) {
            return Err(fail("W8A8: a layer-norm shift is out of range"));
        }
        ch.extend([gq, bq as i32]);
    }
    let e = (f64::from(LN_EPS) * (n * n) as f64 / (f64::from(x.scale) * f64::from(x.scale)))
        .round()
        .clamp(1.0, f64::from(i32::MAX)) as i32;
    let rq: Requant = int8::quantize_multiplier(sg / f64::from(y.scale))
        .map_err(|_| fail("W8A8: a layer-norm multiplier is out of range"))?;
    let cht = b.tensor_i32(n as u32, 2, &ch)?;
    let kt = b.tensor_i32(
        4,
        1,
        &[e, rq.multiplier, i32::from(rq.shift), i32::from(y.zp)],
    )?;
    Ok((cht, kt))
}

/// The 256-entry table of `act` from codes of `x` to codes of `y`.
pub(crate) fn lut(act: microdiff_kernels::Activation, x: Q, y: Q) -> Vec<i8> {
    (-128..=127i32)
        .map(|q| {
            let real = int8::dequantize(q as i8, x.scale, i32::from(x.zp));
            int8::quantize(act.apply(real), y.scale, i32::from(y.zp))
        })
        .collect()
}

/// int8 rows of `rows` (row-major, `cols` wide) at one scale.
pub(crate) fn table(rows: &[f32], q: Q) -> Vec<i8> {
    rows.iter()
        .map(|&v| int8::quantize(v, q.scale, i32::from(q.zp)))
        .collect()
}

/// Rewrites a W8A8 blob whose `QLINEAR` weights are in the tiled layout (what microdiff
/// exported before 2026-12-05; `int8::tile_index`) into the paired layout the exporter writes
/// now (`int8::pair_index`): the same weights and therefore the same samples, bit for bit, at
/// the paired kernels' speed. Each matrix keeps its place and size; the op's layout byte and
/// the CRC change. A blob with no tiled `QLINEAR` comes back unchanged.
///
/// Refused (the blob is left as it is): a blob `Model::parse` refuses, and a tiled matrix with
/// a code of −128 (the paired layout stores `−127..=127`; the exporter never wrote −128).
pub fn repack_pairs(blob: &[u8]) -> Result<Vec<u8>, BuildError> {
    let model = microdiff_runtime::Model::parse(blob)?;
    let mut out = blob.to_vec();
    let offset = |s: &[u8]| s.as_ptr() as usize - blob.as_ptr() as usize;
    let g = model.graph();
    for k in 0..g.op_count() {
        let microdiff_runtime::blob::graph::Op::QLinear {
            a,
            weight,
            layout: WeightLayout::Tiles,
            ..
        } = g.op(k)?
        else {
            continue;
        };
        let w = model.tensors().get(weight)?;
        let (rp, cp) = (w.rows as usize, w.cols as usize);
        // The op's rows and columns; the padding stays zero (its products are dropped or meet
        // zero inputs, whatever the old blob held there).
        let rows = g.structure.len_of(usize::from(k) + 1) as usize;
        let cols = g.structure.len_of(a as usize) as usize;
        let mut codes = vec![0i8; rp * cp];
        for r in 0..rows {
            for c in 0..cols {
                let i = int8::tile_index(r, c, cp);
                codes[r * cp + c] = w.data.get(i).map_or(0, |&v| v as i8);
            }
        }
        let mut packed = vec![0u8; rp * cp];
        int8::pack_pairs(&codes, rp, cp, &mut packed).map_err(|_| {
            fail("a tiled QLINEAR weight is -128, which the paired layout cannot hold")
        })?;
        let at = offset(w.data);
        out[at..at + packed.len()].copy_from_slice(&packed);
        // PARAM byte 2: the layout.
        let rec = offset(g.record(k)?);
        out[rec + microdiff_runtime::blob::graph::field::PARAM.start + 2] =
            WeightLayout::Pairs.code();
    }
    use microdiff_runtime::blob::{crc::crc32, field};
    let t = &out[field::TOTAL_LEN];
    let total = u32::from_le_bytes([t[0], t[1], t[2], t[3]]) as usize;
    let crc = crc32(&out[field::CRC_START..total]);
    out[field::CRC].copy_from_slice(&crc.to_le_bytes());
    microdiff_runtime::Model::parse(&out)?;
    Ok(out)
}

/// Builds the W8A8 blob of the model (the float export's metadata, schedule and programs).
pub fn blob(
    config: &MlpConfig,
    params: &[f32],
    process: &Process,
    spec: &ExportSpec,
    cal: Calibration,
) -> Result<(Vec<u8>, Report), BuildError> {
    let l = Layout::new(config);
    if params.len() != l.len {
        return Err(fail(
            "parameter count does not match the model configuration",
        ));
    }
    let samples = cal
        .samples
        .unwrap_or_else(|| Calibration::auto_samples(config.data_dim));
    if samples == 0 {
        return Err(fail("W8A8 calibration needs at least one trajectory"));
    }
    let net = Net {
        c: config,
        l: l.clone(),
        p: params,
    };
    let programs: Vec<Program> = spec
        .programs
        .iter()
        .map(Program::decode)
        .collect::<Result<_, _>>()
        .map_err(|_| fail("a sampler program is not accepted by the runtime"))?;
    let times = eval_times(&programs);
    let te_rows: Vec<Vec<f32>> = times
        .iter()
        .map(|&t| net.time_mlp(t))
        .collect::<Result<_, _>>()?;
    let (ranges, report) = calibrate(&net, &programs, &times, &te_rows, (samples, cal.seed))?;
    let q = |i: usize| ranges[i].q();
    let slice = |s: Slot| &params[s.offset..s.offset + s.len()];

    let prediction = spec.prediction.unwrap_or_else(|| process.prediction());
    let mut b = BlobBuilder::new(&spec.shape, process.objective(), prediction);
    if config.classes > 0 {
        b.classes(config.classes as u16, Some(config.classes as u16));
    }
    b.normalization(&spec.scale, &spec.offset);
    if spec.schedule {
        b.schedule(&process.schedule_rows());
    }

    let (d, hdim) = (config.data_dim, config.hidden);
    let x_scale = b.tensor(microdiff_kernels::Dtype::F32, 1, 1, &[q(id::X).scale])?;
    let x = b.input();
    let xq = b.quantize(x, q(id::X).zp, x_scale, None);
    let (w, p) = qlinear_tensors(
        &mut b,
        slice(l.w_in),
        slice(l.b_in),
        hdim,
        d,
        q(id::X),
        q(id::H0),
    )?;
    let h0 = b.qlinear(xq, w, p, q(id::X).zp, q(id::H0).zp);
    let te_flat: Vec<f32> = te_rows.concat();
    let te_t = b.tensor_q8(times.len() as u32, hdim as u32, &table(&te_flat, q(id::TE)))?;
    let times_t = b.tensor(microdiff_kernels::Dtype::F32, times.len() as u32, 1, &times)?;
    let te = b.qgather(te_t, GatherKey::Time(times_t));
    let k = qadd_consts(q(id::H0), q(id::TE), q(id::H1))?;
    let k = b.tensor_i32(4, 1, &k)?;
    let mut h: Value = b.qadd(h0, te, k);
    let mut hq = q(id::H1);
    if let Some(t) = l.table {
        let ct = b.tensor_q8(t.rows as u32, t.cols as u32, &table(slice(t), q(id::CE)))?;
        let ce = b.qgather(ct, GatherKey::Class);
        let k = qadd_consts(hq, q(id::CE), q(id::H2))?;
        let k = b.tensor_i32(4, 1, &k)?;
        h = b.qadd(h, ce, k);
        hq = q(id::H2);
    }
    for (i, blk) in l.blocks.iter().enumerate() {
        let at = id::BLOCK0 + id::PER_BLOCK * i;
        let (ln_q, u_q, a_q, r_q, h_q) = (q(at), q(at + 1), q(at + 2), q(at + 3), q(at + 4));
        let (ch, kn) = qnorm_tensors(&mut b, slice(blk.ln_g), slice(blk.ln_b), hq, ln_q)?;
        let ln = b.qlayer_norm(h, ch, kn);
        let (w, p) = qlinear_tensors(
            &mut b,
            slice(blk.w1),
            slice(blk.b1),
            config.ff,
            hdim,
            ln_q,
            u_q,
        )?;
        let u = b.qlinear(ln, w, p, ln_q.zp, u_q.zp);
        let tl = b.tensor_q8(256, 1, &lut(config.act, u_q, a_q))?;
        let a = b.qlut(u, tl);
        let (w, p) = qlinear_tensors(
            &mut b,
            slice(blk.w2),
            slice(blk.b2),
            hdim,
            config.ff,
            a_q,
            r_q,
        )?;
        let r = b.qlinear(a, w, p, a_q.zp, r_q.zp);
        let k = qadd_consts(hq, r_q, h_q)?;
        let k = b.tensor_i32(4, 1, &k)?;
        h = b.qadd(h, r, k);
        hq = h_q;
    }
    let (lnf_q, af_q, out_q) = (q(id::LNF), q(id::AF), q(id::OUT));
    let (ch, kn) = qnorm_tensors(&mut b, slice(l.ln_g), slice(l.ln_b), hq, lnf_q)?;
    let o = b.qlayer_norm(h, ch, kn);
    let tl = b.tensor_q8(256, 1, &lut(config.act, lnf_q, af_q))?;
    let o = b.qlut(o, tl);
    let (w, p) = qlinear_tensors(&mut b, slice(l.w_out), slice(l.b_out), d, hdim, af_q, out_q)?;
    let o = b.qlinear(o, w, p, af_q.zp, out_q.zp);
    let out = b.dequantize(o, out_q.zp, out_q.scale);
    b.output(out);
    for p in &spec.programs {
        b.program(p);
    }
    let bytes = b.build()?;
    microdiff_runtime::Model::parse(&bytes)?;
    Ok((bytes, report))
}

#[cfg(test)]
mod tests {
    use microdiff_runtime::{Model, SampleRequest, sample};

    use super::*;

    const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/golden/");

    fn read(file: &str) -> Vec<u8> {
        std::fs::read(format!("{GOLDEN}{file}")).expect("golden blob")
    }

    /// The digits golden as exported before the paired layout, repacked: exactly today's
    /// golden, which samples the same bits (the weights did not change, only their order).
    #[test]
    fn a_tiled_blob_repacks_into_the_paired_golden_with_the_same_samples() {
        let old = read("compat/digits-w8a8-tiles.mdfb");
        let new = repack_pairs(&old).unwrap();
        assert_eq!(
            new,
            read("digits-w8a8.mdfb"),
            "repacked = the checked-in golden"
        );
        assert_eq!(repack_pairs(&new).unwrap(), new, "nothing left to repack");
        let (a, b) = (Model::parse(&old).unwrap(), Model::parse(&new).unwrap());
        let mut arena = vec![0u8; a.arena_bytes().max(b.arena_bytes())];
        for stream in 0..3 {
            let req = SampleRequest {
                seed: 11,
                stream,
                class: stream as u16,
            };
            let mut out = [[0f32; 64]; 2];
            for (m, o) in [&a, &b].into_iter().zip(&mut out) {
                let p = m.program("ddim10-cfg").unwrap();
                sample(m, p, &mut arena, req, o).unwrap();
            }
            assert_eq!(out[0].map(f32::to_bits), out[1].map(f32::to_bits));
        }
        let mut corrupt = old.clone();
        corrupt[100] ^= 1;
        assert!(repack_pairs(&corrupt).is_err(), "a corrupt blob is refused");
    }
}
