//! Instructions per call of `int8_fast::{qlinear_pairs, widen}` and of the portable `int8` ones on
//! the digits model's layer shapes. The weights and records are pseudo-random constants in
//! flash, so this part also runs in the micro:bit's 16 KiB of RAM.

use core::hint::black_box;

use microdiff_kernels::int8::{self, QLINEAR_ROW_BYTES};
use microdiff_kernels::int8_fast;

use crate::Counter;

/// The layer shapes `(rows, cols)` of the golden int8 digits model.
pub const DIGITS_SHAPES: [(usize, usize); 4] = [(96, 64), (128, 96), (96, 128), (64, 96)];
/// Most rows and columns of [`DIGITS_SHAPES`].
const MAX_ROWS: usize = 128;
const MAX_COLS: usize = 128;
/// Calls per measurement (the count is per call; SysTick resolves 40 instructions on the
/// MPS2 boards, 62.5 on the micro:bit).
const REPS: u64 = 4;

/// Most instructions the DSP `qlinear_pairs` may take on `(rows, cols)`, from its structure:
/// per 16 multiply-accumulates 14 instructions plus a share of the column loop's 2 per 8
/// groups (0.891 per MAC; the budget allows 29/32 = 0.906), per row 5 for the record check,
/// 11 for the requantization, 1 for the odd rows' difference and 2 for the row tile's share of
/// the tile loop (19; budget 20), per call about 140 for the argument checks and the setup
/// (budget 200). A figure above it is a regression; the whole network must stay within 1.5
/// instructions per MAC on the M4F.
pub const fn dsp_budget(rows: usize, cols: usize) -> u64 {
    ((29 * rows * cols) / 32 + 20 * rows + 200) as u64
}

/// Most instructions the Armv6-M `qlinear_pairs` may take on `(rows, cols)`: per 16
/// multiply-accumulates 66 (4.125 per MAC; budget 4.2), per row the record check and the
/// requantization in compiled Rust with a 16-bit-halves multiply (≈ 110 measured; budget 160),
/// per row tile the call (≈ 45, in the row budget), per call the checks (budget 300). The
/// compiled portable reference takes about 9 per MAC on `96x64`, so a fall back to it fails.
pub const fn armv6m_budget(rows: usize, cols: usize) -> u64 {
    ((42 * rows * cols) / 10 + 160 * rows + 300) as u64
}

#[repr(C, align(4))]
struct Aligned<const N: usize>([u8; N]);

#[repr(C, align(4))]
struct Signed<const N: usize>([i8; N]);

#[repr(C, align(4))]
struct Halves<const N: usize>([i16; N]);

/// `N` bytes of xorshift32 from `seed`.
const fn noise<const N: usize>(seed: u32) -> [u8; N] {
    let (mut out, mut s, mut i) = ([0u8; N], seed, 0);
    while i < N {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        out[i] = s as u8;
        i += 1;
    }
    out
}

/// Records as the exporter writes them for real layers: a small bias, a multiplier in
/// `[2^30, 2^31)`, a shift in `−12..=−1` (a real multiplier below 1).
const fn records<const N: usize>(seed: u32) -> [u8; N] {
    let mut out = noise::<N>(seed);
    let mut i = 0;
    while i + QLINEAR_ROW_BYTES <= N {
        let r = u32::from_le_bytes([out[i], out[i + 1], out[i + 2], out[i + 3]]);
        let bias = (r as i32 >> 14).to_le_bytes();
        let m = ((1 << 30) | (r.rotate_left(7) >> 2)).to_le_bytes();
        let shift = (-1 - (r % 12) as i32).to_le_bytes();
        let mut k = 0;
        while k < 4 {
            out[i + k] = bias[k];
            out[i + 4 + k] = m[k];
            out[i + 8 + k] = shift[k];
            k += 1;
        }
        i += QLINEAR_ROW_BYTES;
    }
    out
}

static WEIGHTS: Aligned<{ MAX_ROWS * MAX_COLS }> = Aligned(noise(0x5EED_0001));
static RECORDS: Aligned<{ MAX_ROWS * QLINEAR_ROW_BYTES }> = Aligned(records(0x5EED_0002));
static INPUTS: Aligned<MAX_COLS> = Aligned(noise(0x5EED_0003));

/// Instructions of one call of each kernel.
pub struct Perf {
    pub fast: u64,
    pub portable: u64,
    pub widen_fast: u64,
    pub widen_portable: u64,
}

/// Measures both kernels on `(rows, cols)` (at most 128 × 128), word-aligned buffers,
/// [`REPS`] calls each; `None` if the counter wrapped.
pub fn measure((rows, cols): (usize, usize), counter: &mut Counter) -> Option<Perf> {
    let w = WEIGHTS.0.get(..rows * cols)?;
    let p = RECORDS.0.get(..rows * QLINEAR_ROW_BYTES)?;
    let mut x = Signed([0i8; MAX_COLS]);
    for (d, &b) in x.0.iter_mut().zip(&INPUTS.0) {
        *d = b as i8;
    }
    let x = x.0.get(..cols)?;
    let mut xw = Halves([0i16; MAX_COLS]);
    let xw = xw.0.get_mut(..cols)?;
    let mut y = [0i8; MAX_ROWS];
    let y = y.get_mut(..rows)?;
    let mut time = |f: &mut dyn FnMut()| {
        counter
            .measure(|| (0..REPS).for_each(|_| f()))
            .map(|n| n / REPS)
    };
    let widen_fast = time(&mut || {
        let _ = int8_fast::widen(black_box(x), -3, xw);
    })?;
    let widen_portable = time(&mut || {
        let _ = int8::widen(black_box(x), -3, xw);
    })?;
    let xw: &[i16] = xw;
    let fast = time(&mut || {
        let _ = int8_fast::qlinear_pairs(black_box(w), xw, p, 5, y);
    })?;
    let portable = time(&mut || {
        let _ = int8::qlinear_pairs(black_box(w), xw, p, 5, y);
    })?;
    Some(Perf {
        fast,
        portable,
        widen_fast,
        widen_portable,
    })
}
