//! The paired-layout kernel of the targets without assembly (RISC-V, Cortex-M3, the host):
//! [`qlinear_pairs`] with exactly the output bits and the errors of [`int8::qlinear_pairs`],
//! in Rust.
//!
//! # Why `unsafe`
//!
//! A paired-layout word is an i16 `h = 256·w_odd + w_even` per column of a row pair. The
//! kernel takes the odd row as `(Σ h·x − Σ w_even·x) / 256` (exact for at most
//! [`int8::PAIR_SUM_COLS`] columns, as the Cortex-M kernels do), which needs `h` by one 16-bit
//! load. `i16::from_le_bytes` on a byte slice compiles, on a RISC-V core without unaligned
//! access, to two byte loads and two more instructions (the reference's decode of `w_odd`
//! costs as much); so the weights are viewed as i16 with `align_to`, the module's one
//! `unsafe`, where they are 2-byte aligned (blob tensors are word-aligned within the blob).
//! On RISC-V that is six instructions per two multiply-accumulates, as the tiled layout's
//! reference took (`cargo xtask size` measures the network).
//!
//! # What the safe wrappers promise
//!
//! The reference's checks first ([`int8::qlinear_shapes`], and the records in
//! [`qlinear_pairs`]); the reference itself for what this kernel does not take (unaligned
//! weights, more than [`int8::PAIR_SUM_COLS`] padded columns). The host tests of
//! `int8_fast` compare it with the reference on every shape class.
#![allow(unsafe_code)]

use crate::error::KernelError;
use crate::int8::{self, QLINEAR_ROW_BYTES};

/// [`int8::qlinear_pairs`], bit for bit.
pub fn qlinear_pairs(
    w: &[u8],
    xw: &[i16],
    params: &[u8],
    y_zp: i32,
    y: &mut [i8],
) -> Result<(), KernelError> {
    int8::qlinear_shapes(w, xw, params, y_zp, y)?;
    int8::check_records(params)?;
    qlinear_pairs_validated(w, xw, params, y_zp, y)
}

/// [`int8::qlinear_pairs_validated`], bit for bit.
pub fn qlinear_pairs_validated(
    w: &[u8],
    xw: &[i16],
    params: &[u8],
    y_zp: i32,
    y: &mut [i8],
) -> Result<(), KernelError> {
    let (_, cols_p) = int8::qlinear_shapes(w, xw, params, y_zp, y)?;
    // SAFETY: every bit pattern is a valid i16; `align_to` returns an i16-aligned middle
    // inside `w` (shared borrow inherited). Only an empty head and tail are used below.
    let (head, wh, tail) = unsafe { w.align_to::<i16>() };
    if !head.is_empty() || !tail.is_empty() || cols_p > int8::PAIR_SUM_COLS {
        return int8::qlinear_pairs_validated(w, xw, params, y_zp, y);
    }
    // Its own row-tile loop, not `int8::by_row_tiles` with a closure: that measured 7.02
    // instructions per MAC on the RISC-V network against this loop's 6.93.
    let groups = cols_p / 4;
    let xs = xw.as_chunks::<4>().0;
    let records = params.as_chunks::<QLINEAR_ROW_BYTES>().0;
    // Row tiles by `next()`, as the reference takes them; `max` shows the sizes non-zero.
    let mut bytes = w.chunks_exact((16 * groups).max(16));
    let mut halves = wh.chunks_exact((8 * groups).max(8));
    for (rt, ys) in y.chunks_mut(4).enumerate() {
        let (Some(tb), Some(th)) = (bytes.next(), halves.next()) else {
            break;
        };
        let (mut h0, mut e0, mut h1, mut e1) = (0i32, 0i32, 0i32, 0i32);
        let tiles = tb.as_chunks::<16>().0.iter().zip(th.as_chunks::<8>().0);
        for ((b, h), x) in tiles.zip(xs) {
            for j in 0..4 {
                let xj = i32::from(x[j]);
                // `|h·x| ≤ 2^15 · 255`: no product overflows; the `h` sums may wrap.
                h0 = h0.wrapping_add(i32::from(h[j]) * xj);
                e0 = e0.wrapping_add(i32::from(b[2 * j] as i8) * xj);
                h1 = h1.wrapping_add(i32::from(h[4 + j]) * xj);
                e1 = e1.wrapping_add(i32::from(b[8 + 2 * j] as i8) * xj);
            }
        }
        let acc = [e0, h0.wrapping_sub(e0) >> 8, e1, h1.wrapping_sub(e1) >> 8];
        let ps = records.get(4 * rt..).unwrap_or(&[]);
        for ((yr, p), &a) in ys.iter_mut().zip(ps).zip(&acc) {
            *yr = int8::requantize(a, p, y_zp);
        }
    }
    Ok(())
}
