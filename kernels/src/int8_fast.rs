//! The integer kernels the runtime calls: drop-in replacements of [`crate::int8`]'s portable
//! reference kernels, chosen by target at compile time (TFLite Micro's `kernels/cmsis_nn/`
//! convention). Every function here has the signature, the exact output bits and the exact
//! errors of its reference (nothing is written on `Err`); only the speed differs.
//!
//! The fast kernels are for the paired weight layout ([`crate::int8::pair_index`]), which the
//! exporter writes; the tiled layout of older blobs runs the reference on every target.
//!
//! * Targets with the Arm DSP extension (`cfg(microdiff_dsp)`, set by the crate's build script
//!   for `thumbv7em*` — Cortex-M4, M7 — and for `thumbv8m.main*` with `+dsp`): `SMLAD` /
//!   `SXTB16` kernels in assembly (`int8_fast/dsp.rs`): 14 instructions per 16
//!   multiply-accumulates in the loop, 1.11 per MAC with the requantization on the digits
//!   model's layers (the check firmware prints the portable reference's figure next to it).
//!   They fall back to the reference for inputs they do not cover (a misaligned buffer, a zero
//!   multiplier, more than [`int8::PAIR_SUM_COLS`](crate::int8::PAIR_SUM_COLS) columns).
//! * Armv6-M (`cfg(microdiff_armv6m)`: Cortex-M0, M0+, and Armv8-M Baseline): a `MULS` tile
//!   kernel in assembly (`int8_fast/armv6m.rs`) for `qlinear_pairs`' sums, 66 instructions per
//!   16 multiply-accumulates in its loop; with the requantization 5.7 per MAC on the digits
//!   model's layers; `widen` is the reference.
//! * Every other target (RISC-V, Cortex-M3, the host): the same sums in Rust
//!   (`int8_fast/portable.rs`), the weights viewed as i16.
//!
//! `dsp.rs`, `armv6m.rs` and `portable.rs` hold the crate's only `unsafe`.
//!
//! The assembly is checked against the reference under QEMU on the M4F, the M7 and (the
//! Armv6-M build) an MPS2 board (`firmware-examples/qemu-kernel-check`, a step of
//! `cargo xtask test`); the DSP requantization arithmetic is also modelled and checked on the
//! host (this module's tests).

use crate::error::KernelError;

#[cfg(microdiff_armv6m)]
mod armv6m;
#[cfg(microdiff_dsp)]
mod dsp;
#[cfg(test)]
mod model;
#[cfg(not(any(microdiff_dsp, microdiff_armv6m)))]
mod portable;

// The kernels of this target. The tiled layout (blobs exported before the paired one) runs
// the reference everywhere.
#[cfg(not(any(microdiff_dsp, microdiff_armv6m)))]
mod imp {
    pub use super::portable::{qlinear_pairs, qlinear_pairs_validated};
    pub use crate::int8::{qlinear, qlinear_validated, widen};
}
#[cfg(microdiff_dsp)]
mod imp {
    pub use super::dsp::{qlinear_pairs, qlinear_pairs_validated, widen};
    pub use crate::int8::{qlinear, qlinear_validated};
}
#[cfg(microdiff_armv6m)]
mod imp {
    pub use super::armv6m::{qlinear_pairs, qlinear_pairs_validated};
    pub use crate::int8::{qlinear, qlinear_validated, widen};
}

/// [`int8::widen`](crate::int8::widen), bit for bit.
pub fn widen(x: &[i8], zp: i32, out: &mut [i16]) -> Result<(), KernelError> {
    imp::widen(x, zp, out)
}

/// [`int8::qlinear`](crate::int8::qlinear), bit for bit.
pub fn qlinear(
    w: &[u8],
    xw: &[i16],
    params: &[u8],
    y_zp: i32,
    y: &mut [i8],
) -> Result<(), KernelError> {
    imp::qlinear(w, xw, params, y_zp, y)
}

/// [`int8::qlinear_validated`](crate::int8::qlinear_validated), bit for bit: [`qlinear`]
/// without the per-call record check, for records the caller checked once with
/// [`int8::qlinear_records_nonzero`](crate::int8::qlinear_records_nonzero).
pub fn qlinear_validated(
    w: &[u8],
    xw: &[i16],
    params: &[u8],
    y_zp: i32,
    y: &mut [i8],
) -> Result<(), KernelError> {
    imp::qlinear_validated(w, xw, params, y_zp, y)
}

/// [`int8::qlinear_pairs`](crate::int8::qlinear_pairs), bit for bit.
pub fn qlinear_pairs(
    w: &[u8],
    xw: &[i16],
    params: &[u8],
    y_zp: i32,
    y: &mut [i8],
) -> Result<(), KernelError> {
    imp::qlinear_pairs(w, xw, params, y_zp, y)
}

/// [`int8::qlinear_pairs_validated`](crate::int8::qlinear_pairs_validated), bit for bit:
/// [`qlinear_pairs`] without the per-call record check (the contract of
/// [`qlinear_validated`]).
pub fn qlinear_pairs_validated(
    w: &[u8],
    xw: &[i16],
    params: &[u8],
    y_zp: i32,
    y: &mut [i8],
) -> Result<(), KernelError> {
    imp::qlinear_pairs_validated(w, xw, params, y_zp, y)
}

/// Whether `p` is 4-byte aligned: the assembly kernels' word loads need it.
#[cfg(any(microdiff_dsp, microdiff_armv6m))]
fn is_word_aligned<T>(p: *const T) -> bool {
    (p as usize).is_multiple_of(4)
}

/// Whether this build runs the DSP kernels (for reports and tests that measure them).
pub const DSP: bool = cfg!(microdiff_dsp);

/// Whether this build runs the Armv6-M `MULS` kernel (for reports and tests that measure it).
pub const ARMV6M: bool = cfg!(microdiff_armv6m);

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    use super::*;
    use crate::int8::{self, QLINEAR_ROW_BYTES, pad4};

    fn xorshift(s: &mut u32) -> u32 {
        *s ^= *s << 13;
        *s ^= *s >> 17;
        *s ^= *s << 5;
        *s
    }

    fn record(bias: i32, m: i32, s: i32) -> [u8; QLINEAR_ROW_BYTES] {
        let mut r = [0u8; QLINEAR_ROW_BYTES];
        r[0..4].copy_from_slice(&bias.to_le_bytes());
        r[4..8].copy_from_slice(&m.to_le_bytes());
        r[8..12].copy_from_slice(&s.to_le_bytes());
        r
    }

    /// Both kernels on the same arguments: same result, same bytes in `y` (also on `Err`).
    fn same_qlinear(w: &[u8], xw: &[i16], p: &[u8], y_zp: i32, rows: usize) {
        let (mut a, mut b) = (vec![0x5Ai8; rows], vec![0x5Ai8; rows]);
        let ra = qlinear(w, xw, p, y_zp, &mut a);
        let rb = int8::qlinear(w, xw, p, y_zp, &mut b);
        assert_eq!(ra, rb);
        assert_eq!(a, b);
        let (mut a, mut b) = (vec![0x5Ai8; rows], vec![0x5Ai8; rows]);
        let ra = qlinear_pairs(w, xw, p, y_zp, &mut a);
        let rb = int8::qlinear_pairs(w, xw, p, y_zp, &mut b);
        assert_eq!(ra, rb);
        assert_eq!(a, b);
        if int8::qlinear_records_nonzero(p) {
            let (mut a, mut b) = (vec![0x5Ai8; rows], vec![0x5Ai8; rows]);
            let ra = qlinear_pairs_validated(w, xw, p, y_zp, &mut a);
            let rb = int8::qlinear_pairs_validated(w, xw, p, y_zp, &mut b);
            assert_eq!(ra, rb);
            assert_eq!(a, b);
        }
    }

    #[test]
    fn qlinear_equals_the_reference_on_every_shape_class_and_error() {
        let mut s = 0xC0FF_EE11u32;
        for rows in 0..9 {
            for cols in 1..10 {
                let (rp, cp) = (pad4(rows).unwrap(), pad4(cols).unwrap());
                let w: Vec<u8> = (0..rp * cp).map(|_| xorshift(&mut s) as u8).collect();
                let x: Vec<i8> = (0..cols).map(|_| xorshift(&mut s) as i8).collect();
                let zp = xorshift(&mut s) as i8 as i32;
                let mut xw = vec![0i16; cp];
                widen(&x, zp, &mut xw).unwrap();
                let mut p = Vec::new();
                for _ in 0..rows {
                    let m = (1 << 30) | (xorshift(&mut s) >> 2) as i32;
                    let sh = (xorshift(&mut s) % 62) as i32 - 31;
                    p.extend_from_slice(&record(xorshift(&mut s) as i32 >> 8, m, sh));
                }
                let y_zp = xorshift(&mut s) as i8 as i32;
                same_qlinear(&w, &xw, &p, y_zp, rows);
                // Bad arguments: the same error, nothing written.
                same_qlinear(&w, &xw, &p, 128, rows);
                same_qlinear(&w, &xw[..cp - 1], &p, y_zp, rows);
                if !w.is_empty() {
                    same_qlinear(&w[1..], &xw, &p, y_zp, rows);
                }
                if rows > 0 {
                    same_qlinear(&w, &xw, &p[1..], y_zp, rows);
                    let last = p.len() - QLINEAR_ROW_BYTES;
                    let mut bad = p.clone();
                    bad[last..].copy_from_slice(&record(0, 1 << 30, 31));
                    same_qlinear(&w, &xw, &bad, y_zp, rows);
                    bad[last..].copy_from_slice(&record(0, 5, -3));
                    same_qlinear(&w, &xw, &bad, y_zp, rows);
                    bad[last..].copy_from_slice(&record(7, 0, -3));
                    same_qlinear(&w, &xw, &bad, y_zp, rows);
                }
            }
        }
    }

    #[test]
    fn widen_equals_the_reference_including_errors() {
        let mut s = 0x0BAD_5EEDu32;
        for n in 0..23 {
            let x: Vec<i8> = (0..n).map(|_| xorshift(&mut s) as i8).collect();
            for zp in [-129, -128, -5, 0, 127, 128] {
                for len in [pad4(n).unwrap(), n + 5] {
                    let (mut a, mut b) = (vec![9i16; len], vec![9i16; len]);
                    assert_eq!(widen(&x, zp, &mut a), int8::widen(&x, zp, &mut b));
                    assert_eq!(a, b, "n {n} zp {zp} len {len}");
                }
            }
        }
    }
}
