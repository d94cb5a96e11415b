//! The cases: `int8_fast::{widen, qlinear_pairs, qlinear_pairs_validated}` against
//! `int8::{widen, qlinear_pairs}`
//! on the same arguments, compared by result (`Ok` or the same `Err`) and by every byte of the output
//! buffer (which starts as the same sentinel, so "nothing written on `Err`" is compared too).
//!
//! Shape classes: every `rows % 4` and `cols % 4`, every entry point of the kernel's 8×-unrolled
//! column loop (`cols_p / 4 % 8`), one to twelve row tiles, the digits model's layers (96×64,
//! 128×96, 96×128, 64×96), `int8::PAIR_SUM_COLS` columns (the most the assembly takes) and
//! `int8::MAX_COLS` columns (the reference's) at the accumulators' extremes. Values:
//! uniform, ±extreme and constant weights (pairs whose odd weight is ±128 included) and inputs
//! (so `|Σ|` reaches 128·255·65 536), zero points −128 and 127, every shift
//! in −31..=30, multipliers at 2^30 and 2^31 − 1, biases next to the i32 limits (the saturating
//! add), non-zero padding, and arguments the assembly leaves to the reference: misaligned
//! weights, inputs or records, a zero multiplier, and invalid records (an `Err`).

use core::fmt;

use microdiff_kernels::int8::{self, MAX_COLS, PAIR_SUM_COLS, QLINEAR_ROW_BYTES, pad4};
use microdiff_kernels::int8_fast;

use crate::perf::DIGITS_SHAPES;

/// Weight bytes: one row tile of `MAX_COLS` columns, or the largest digits layer; +3 for a
/// misaligned start.
const W_CAP: usize = 4 * MAX_COLS + 3;
/// Widened inputs: `MAX_COLS`, +1 for a misaligned start.
const XW_CAP: usize = MAX_COLS + 1;
const ROWS_CAP: usize = 128;
const P_CAP: usize = ROWS_CAP * QLINEAR_ROW_BYTES + 3;
/// What a kernel's output buffer holds before the call.
const SENTINEL: i8 = 0x5A;

#[repr(C, align(4))]
struct Bytes<const N: usize>([u8; N]);

#[repr(C, align(4))]
struct Signed<const N: usize>([i8; N]);

#[repr(C, align(4))]
struct Halves<const N: usize>([i16; N]);

/// The buffers of one case, each word-aligned at index 0.
struct Buffers {
    w: Bytes<W_CAP>,
    x: Signed<{ MAX_COLS + 3 }>,
    xw_ref: Halves<XW_CAP>,
    xw_fast: Halves<XW_CAP>,
    p: Bytes<P_CAP>,
    y_ref: [i8; ROWS_CAP],
    y_fast: [i8; ROWS_CAP],
}

/// xorshift32: explicit seed, same cases on every run.
pub(crate) struct Rng(pub(crate) u32);

impl Rng {
    pub(crate) fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0
    }

    /// Uniform enough in `0..n` for test data.
    pub(crate) fn below(&mut self, n: u32) -> u32 {
        self.next() % n
    }

    fn one_in(&mut self, n: u32) -> bool {
        self.below(n) == 0
    }
}

/// One case's arguments.
#[derive(Clone, Copy, Debug)]
struct Spec {
    rows: usize,
    cols: usize,
    /// Misalignment of `w` (bytes), `xw` (i16s), the records (bytes) and `x` (bytes).
    w_off: usize,
    xw_off: usize,
    p_off: usize,
    x_off: usize,
}

impl Spec {
    fn aligned(rows: usize, cols: usize) -> Self {
        Spec {
            rows,
            cols,
            w_off: 0,
            xw_off: 0,
            p_off: 0,
            x_off: 0,
        }
    }

    /// Misaligns each buffer with probability 1/6.
    fn shuffled(rows: usize, cols: usize, rng: &mut Rng) -> Self {
        let mut off = |max: u32| {
            if rng.one_in(6) {
                1 + rng.below(max) as usize
            } else {
                0
            }
        };
        Spec {
            rows,
            cols,
            w_off: off(3),
            xw_off: off(1),
            p_off: off(3),
            x_off: off(3),
        }
    }
}

/// The first difference found.
#[derive(Clone, Copy, Debug)]
pub struct Mismatch {
    case: u32,
    kernel: &'static str,
    spec: Spec,
    seed: u32,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.spec;
        write!(
            f,
            "case {} ({}): {}x{} offsets w {} xw {} params {} x {}, seed {:#010x}",
            self.case, self.kernel, s.rows, s.cols, s.w_off, s.xw_off, s.p_off, s.x_off, self.seed
        )
    }
}

/// What [`check_all`] found.
pub struct Tally {
    pub cases: u32,
    /// Cases whose `qlinear` arguments the assembly takes itself (no reference fallback).
    pub fast: u32,
    pub mismatches: u32,
    pub first_mismatch: Option<Mismatch>,
}

impl Tally {
    fn record(&mut self, ok: bool, kernel: &'static str, spec: Spec, seed: u32) {
        if !ok {
            self.mismatches += 1;
            if self.first_mismatch.is_none() {
                self.first_mismatch = Some(Mismatch {
                    case: self.cases,
                    kernel,
                    spec,
                    seed,
                });
            }
        }
    }
}

fn fill_weights(w: &mut [u8], rng: &mut Rng) {
    // Paired-layout extremes `(lo, hi)`: odd weight 128 (even −1), −128 (even −128 or 1).
    const PAIRS: [[u8; 2]; 3] = [[0xFF, 0x7F], [0x80, 0x80], [0x01, 0x80]];
    match rng.below(6) {
        4 => w.chunks_exact_mut(2).for_each(|h| {
            h.copy_from_slice(&PAIRS[rng.below(3) as usize]);
        }),
        5 => {
            let h = PAIRS[rng.below(3) as usize];
            w.chunks_exact_mut(2).for_each(|d| d.copy_from_slice(&h));
        }
        0 => w.iter_mut().for_each(|b| *b = rng.next() as u8),
        1 => w
            .iter_mut()
            .for_each(|b| *b = if rng.next() & 1 == 0 { 0x80 } else { 0x7F }),
        2 => w
            .iter_mut()
            .for_each(|b| *b = (rng.below(7) as i32 - 3) as i8 as u8),
        _ => w.fill(if rng.next() & 1 == 0 { 0x80 } else { 0x7F }),
    }
}

/// Inputs and their zero point; the constant modes make `|x − zp| = 255` everywhere.
fn fill_inputs(x: &mut [i8], rng: &mut Rng) -> i32 {
    match rng.below(4) {
        0 => {
            x.iter_mut().for_each(|v| *v = rng.next() as i8);
            rng.next() as i8 as i32
        }
        1 => {
            x.iter_mut()
                .for_each(|v| *v = if rng.next() & 1 == 0 { -128 } else { 127 });
            if rng.next() & 1 == 0 { -128 } else { 127 }
        }
        2 => {
            x.fill(127);
            -128
        }
        _ => {
            x.fill(-128);
            127
        }
    }
}

pub(crate) fn multiplier(rng: &mut Rng) -> i32 {
    match rng.below(16) {
        0 => 1 << 30,
        1 => i32::MAX,
        _ => (1 << 30) | (rng.next() >> 2) as i32,
    }
}

fn shift(rng: &mut Rng) -> i32 {
    match rng.below(4) {
        // What real layers have: a multiplier well below 1.
        0 | 1 => -(1 + rng.below(12) as i32),
        _ => rng.below(62) as i32 - 31,
    }
}

/// `rows` records; returns whether the assembly takes them all (multipliers ≠ 0).
fn fill_records(p: &mut [u8], rows: usize, rng: &mut Rng) -> bool {
    let bias_mode = rng.below(4);
    let mut all_fast = true;
    for r in p.chunks_exact_mut(QLINEAR_ROW_BYTES).take(rows) {
        let bias = match bias_mode {
            0 => rng.next() as i32,
            1 if rng.next() & 1 == 0 => i32::MAX - rng.below(1 << 16) as i32,
            1 => i32::MIN + rng.below(1 << 16) as i32,
            2 => rng.next() as i32 >> 12,
            _ => 0,
        };
        let (mut m, mut s) = (multiplier(rng), shift(rng));
        // Now and then a record the assembly leaves to the reference: a zero multiplier (valid),
        // or one the reference rejects.
        if rng.one_in(300) {
            all_fast = false;
            match rng.below(8) {
                0 | 1 => m = 0,
                2 => s = 31,
                3 => s = -32,
                4 => s = i32::MIN,
                5 => m = (1 << 30) - 1,
                6 => m = i32::MIN,
                _ => m = -(1 << 30),
            }
        }
        for (dst, v) in r.chunks_exact_mut(4).zip([bias, m, s]) {
            dst.copy_from_slice(&v.to_le_bytes());
        }
    }
    all_fast
}

/// Runs one case; returns whether `qlinear` took the assembly path.
fn run_case(b: &mut Buffers, spec: Spec, rng: &mut Rng, tally: &mut Tally) -> bool {
    let seed = rng.0;
    let Spec { rows, cols, .. } = spec;
    let (Some(rows_p), Some(cols_p)) = (pad4(rows), pad4(cols)) else {
        return false;
    };
    let w = &mut b.w.0[spec.w_off..spec.w_off + rows_p * cols_p];
    fill_weights(w, rng);
    let x = &mut b.x.0[spec.x_off..spec.x_off + cols];
    let x_zp = fill_inputs(x, rng);

    // widen: fast against reference.
    let xw_ref = &mut b.xw_ref.0[spec.xw_off..spec.xw_off + cols_p];
    let xw_fast = &mut b.xw_fast.0[spec.xw_off..spec.xw_off + cols_p];
    xw_ref.fill(7);
    xw_fast.fill(7);
    let x: &[i8] = x;
    let r_ref = int8::widen(x, x_zp, xw_ref);
    let r_fast = int8_fast::widen(x, x_zp, xw_fast);
    tally.record(r_ref == r_fast && xw_ref == xw_fast, "widen", spec, seed);
    // Non-zero padding now and then: the kernels must treat padding columns alike.
    if cols_p > cols && rng.one_in(4) {
        for v in &mut xw_ref[cols..] {
            *v = (rng.below(511) as i32 - 255) as i16;
        }
    }

    let p = &mut b.p.0[spec.p_off..spec.p_off + rows * QLINEAR_ROW_BYTES];
    let records_fast = fill_records(p, rows, rng);
    let y_zp = match rng.below(4) {
        0 => -128,
        1 => 127,
        _ => rng.next() as i8 as i32,
    };
    let (y_ref, y_fast) = (&mut b.y_ref[..rows], &mut b.y_fast[..rows]);
    y_ref.fill(SENTINEL);
    y_fast.fill(SENTINEL);
    let (w, xw, p): (&[u8], &[i16], &[u8]) = (w, xw_ref, p);
    let r_ref = int8::qlinear_pairs(w, xw, p, y_zp, y_ref);
    let r_fast = int8_fast::qlinear_pairs(w, xw, p, y_zp, y_fast);
    tally.record(
        r_ref == r_fast && y_ref == y_fast,
        "qlinear_pairs",
        spec,
        seed,
    );
    // The variant the runtime calls after checking the records at parse time: the same
    // result wherever its contract (valid records, none with a zero multiplier) holds.
    if int8::qlinear_records_nonzero(p) {
        y_fast.fill(SENTINEL);
        let r_valid = int8_fast::qlinear_pairs_validated(w, xw, p, y_zp, y_fast);
        tally.record(
            r_ref == r_valid && y_ref == y_fast,
            "qlinear_pairs_validated",
            spec,
            seed,
        );
    }
    tally.cases += 1;
    let aligned = spec.w_off == 0 && spec.xw_off == 0 && spec.p_off == 0;
    aligned && records_fast && rows > 0 && cols_p <= PAIR_SUM_COLS
}

/// `qlinear`'s inputs: weights, widened input, records, `y_zp`.
type QlinearArgs<'a> = (&'a [u8], &'a [i16], &'a [u8], i32);

/// Arguments every kernel must refuse with the reference's error, writing nothing.
fn error_cases(b: &mut Buffers, tally: &mut Tally) {
    let spec = Spec::aligned(5, 9);
    let mut rng = Rng(0xE770_0001);
    fill_records(&mut b.p.0, 5, &mut rng);
    let w = &b.w.0[..8 * 12];
    let p = &b.p.0[..5 * QLINEAR_ROW_BYTES];
    let xw = &b.xw_ref.0[..12];
    let bad: [QlinearArgs; 5] = [
        (w, xw, p, 128),
        (w, xw, p, -129),
        (&w[1..], xw, p, 0),
        (w, &xw[..11], p, 0),
        (w, xw, &p[4..], 0),
    ];
    for (w, xw, p, y_zp) in bad {
        let (y_ref, y_fast) = (&mut b.y_ref[..5], &mut b.y_fast[..5]);
        y_ref.fill(SENTINEL);
        y_fast.fill(SENTINEL);
        let r_ref = int8::qlinear_pairs(w, xw, p, y_zp, y_ref);
        let r_fast = int8_fast::qlinear_pairs(w, xw, p, y_zp, y_fast);
        let ok = r_ref.is_err() && r_ref == r_fast && y_ref == y_fast;
        tally.record(ok, "qlinear error", spec, 0);
        tally.cases += 1;
    }
    let x = [3i8; 9];
    for (zp, len) in [(0, 11), (0, 13), (128, 12), (-129, 12)] {
        let (a, c) = (&mut b.xw_ref.0[..len], &mut b.xw_fast.0[..len]);
        a.fill(7);
        c.fill(7);
        let (r_ref, r_fast) = (int8::widen(&x, zp, a), int8_fast::widen(&x, zp, c));
        tally.record(
            r_ref.is_err() && r_ref == r_fast && a == c,
            "widen error",
            spec,
            0,
        );
        tally.cases += 1;
    }
}

/// Every case, in a fixed order from fixed seeds.
pub fn check_all() -> Tally {
    let mut b = Buffers {
        w: Bytes([0; W_CAP]),
        x: Signed([0; MAX_COLS + 3]),
        xw_ref: Halves([0; XW_CAP]),
        xw_fast: Halves([0; XW_CAP]),
        p: Bytes([0; P_CAP]),
        y_ref: [0; ROWS_CAP],
        y_fast: [0; ROWS_CAP],
    };
    let mut tally = Tally {
        cases: 0,
        fast: 0,
        mismatches: 0,
        first_mismatch: None,
    };
    let mut rng = Rng(0x6D69_6372);
    let case = |b: &mut Buffers, spec: Spec, rng: &mut Rng, tally: &mut Tally| {
        if run_case(b, spec, rng, tally) {
            tally.fast += 1;
        }
    };
    // Every small shape, twice: every rows % 4 and cols % 4.
    for rows in 0..=12 {
        for cols in 1..=24 {
            case(&mut b, Spec::aligned(rows, cols), &mut rng, &mut tally);
            let spec = Spec::shuffled(rows, cols, &mut rng);
            case(&mut b, spec, &mut rng, &mut tally);
        }
    }
    // Random shapes: every entry of the unrolled column loop, several row tiles.
    for _ in 0..6000 {
        let rows = 1 + rng.below(48) as usize;
        // Past `PAIR_SUM_COLS` now and then: the reference's fallback.
        let cols = 1 + rng.below(288) as usize;
        let spec = Spec::shuffled(rows, cols, &mut rng);
        case(&mut b, spec, &mut rng, &mut tally);
    }
    // The digits layers, one misaligned.
    for (rows, cols) in DIGITS_SHAPES {
        for i in 0..24 {
            let mut spec = Spec::aligned(rows, cols);
            spec.w_off = usize::from(i == 0);
            case(&mut b, spec, &mut rng, &mut tally);
        }
    }
    // The longest rows the accumulator bound allows, at the extremes (modes repeat until each
    // weight and input mode has come up).
    for cols in [PAIR_SUM_COLS, PAIR_SUM_COLS - 3, MAX_COLS, MAX_COLS - 3] {
        for rows in [1, 3, 4] {
            for _ in 0..if cols <= PAIR_SUM_COLS { 12 } else { 3 } {
                case(&mut b, Spec::aligned(rows, cols), &mut rng, &mut tally);
            }
        }
    }
    error_cases(&mut b, &mut tally);
    tally
}
