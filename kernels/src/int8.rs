//! Integer kernels of the full-integer (W8A8) path: int8 activations with a zero point, int8
//! weights with a per-output-row requantization, int32 bias and accumulator — the arithmetic of
//! TensorFlow Lite's integer reference kernels, so a layer can be checked against them.
//!
//! These are the portable reference kernels: every target computes them, and a faster kernel
//! (Cortex-M DSP, host SIMD) must give the same bits. Integer sums are exact, so such a kernel
//! may add in any order as long as the accumulator cannot overflow, which [`MAX_COLS`] bounds.
//!
//! # Formulas (TFLite's conventions)
//! * Real value of an activation code `q`: `scale · (q − zero_point)`; of a weight code:
//!   `scale_r · q` (symmetric, zero point 0, `q ∈ −127..=127`).
//! * [`Requant`]: a real multiplier `M > 0` stored as `M ≈ m · 2^(shift − 31)` with
//!   `m ∈ [2^30, 2^31)` ([`quantize_multiplier`], TFLite's `QuantizeMultiplier`), applied by
//!   [`Requant::apply`] = TFLite's `MultiplyByQuantizedMultiplier` with gemmlowp's
//!   double rounding: `RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x · 2^left, m),
//!   right)`, `left = max(shift, 0)`, `right = max(−shift, 0)`.
//! * [`gemv`] (TFLite's `FullyConnectedPerChannel`): for each row `r`,
//!   `acc = Σᵢ w[r][i] · (x[i] − x_zp)` in i32, `acc += bias[r]` (saturating; TFLite leaves
//!   overflow undefined), `y[r] = clamp(requant[r].apply(acc) + y_zp, lo, hi)`.
//! * [`quantize`]: `clamp(roundf(x / scale) + zp, −128, 127)` in f32 with libm's `roundf` (half
//!   away from zero), TFLite's `AffineQuantize`; [`dequantize`]: `((q − zp) as f32) · scale`,
//!   which equals TFLite's double-precision product rounded to f32 (the exact product rounded
//!   once either way).
//! * [`lut`]: a 256-entry table of int8 → int8 (activations), indexed by `q + 128`.

use crate::error::{KernelError, check_len};

/// Most inputs of one [`gemv`] row. With `|w| ≤ 127` and `|x − x_zp| ≤ 255` every product is at
/// most 32 385 in magnitude, and `2^16 · 32 385 = 2 122 383 360 < 2^31 − 1`: the i32 sum cannot
/// overflow in any order. (`x_zp ∈ −128..=127`, so `x − x_zp ∈ −255..=255`.)
pub const MAX_COLS: usize = 1 << 16;

/// gemmlowp's `SaturatingRoundingDoublingHighMul`: `2·a·b / 2^32` rounded to nearest with ties
/// towards +∞ (its nudge `1 − 2^30` for negative products with C++'s truncating division
/// amounts to that), i.e. `floor((a·b + 2^30) / 2^31)`; `a = b = i32::MIN` (the one overflow)
/// gives `i32::MAX`.
pub const fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = a as i64 * b as i64;
    let nudge: i64 = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
    // `/` truncates towards zero, as C++'s does; the result fits in i32 (|ab| < 2^62).
    ((ab + nudge) / (1 << 31)) as i32
}

/// gemmlowp's `RoundingDivideByPOT`: `x / 2^exponent` rounded to nearest, ties away from zero.
/// `exponent` is taken modulo 32 (callers pass 0..=31).
pub const fn rounding_divide_by_pot(x: i32, exponent: u32) -> i32 {
    let exponent = exponent & 31;
    let mask = ((1i64 << exponent) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + if x < 0 { 1 } else { 0 };
    (x >> exponent) + if remainder > threshold { 1 } else { 0 }
}

/// A real multiplier as TFLite stores it: `m · 2^(shift − 31)`, `m ∈ [2^30, 2^31)` (or 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Requant {
    /// The Q31 significand `m`.
    pub multiplier: i32,
    /// The power-of-two exponent, `−31..=30`.
    pub shift: i8,
}

impl Requant {
    /// Checks the fields: `multiplier` 0 or in `[2^30, 2^31)`, `shift` in `−31..=30`.
    pub const fn new(multiplier: i32, shift: i8) -> Result<Self, KernelError> {
        if !(multiplier == 0 || multiplier >= 1 << 30) || shift < -31 || shift > 30 {
            return Err(KernelError::Invalid {
                arg: "requant",
                requirement: "multiplier 0 or in [2^30, 2^31), shift in -31..=30",
            });
        }
        Ok(Requant { multiplier, shift })
    }

    /// TFLite's `MultiplyByQuantizedMultiplier(x, multiplier, shift)` (double rounding). The
    /// left shift saturates where TFLite's would overflow (undefined there).
    pub const fn apply(self, x: i32) -> i32 {
        let left = if self.shift > 0 { self.shift as u32 } else { 0 };
        let right = if self.shift > 0 {
            0
        } else {
            (-(self.shift as i32)) as u32
        };
        let shifted = x.saturating_mul(1 << left);
        rounding_divide_by_pot(
            saturating_rounding_doubling_high_mul(shifted, self.multiplier),
            right,
        )
    }
}

/// TFLite's `QuantizeMultiplier`: the [`Requant`] nearest `real` (finite, ≥ 0): `frexp` gives
/// `real = q · 2^e`, `q ∈ [0.5, 1)`, and `m = round(q · 2^31)` (half away from zero), carried
/// into the exponent when it rounds up to `2^31`; a multiplier too small for the format is 0.
/// Runs on the host at export time (f64), `no_std` so the device tests can share it.
pub fn quantize_multiplier(real: f64) -> Result<Requant, KernelError> {
    if !(real.is_finite() && real >= 0.0) {
        return Err(KernelError::Invalid {
            arg: "real",
            requirement: "finite and >= 0",
        });
    }
    if real == 0.0 {
        return Ok(Requant {
            multiplier: 0,
            shift: 0,
        });
    }
    let (q, mut e) = libm::frexp(real);
    let mut m = libm::round(q * (1u64 << 31) as f64) as i64;
    if m == 1 << 31 {
        m /= 2;
        e += 1;
    }
    if e < -31 {
        return Ok(Requant {
            multiplier: 0,
            shift: 0,
        });
    }
    if e > 30 {
        return Err(KernelError::Invalid {
            arg: "real",
            requirement: "below 2^30",
        });
    }
    Requant::new(m as i32, e as i8)
}

/// `clamp(roundf(x / scale) + zero_point, −128, 127)`: TFLite's `AffineQuantize` in f32.
/// NaN maps to `zero_point` (clamped); `scale` must be finite and > 0 (the caller's contract:
/// blobs are validated), otherwise the quotient's overflow saturates like any other value.
pub fn quantize(x: f32, scale: f32, zero_point: i32) -> i8 {
    let r = libm::roundf(x / scale);
    // `as i32` saturates (and maps NaN to 0); the sum cannot overflow after the clamp below.
    let q = (r as i32).saturating_add(zero_point);
    q.clamp(-128, 127) as i8
}

/// `((q − zero_point) as f32) · scale`: TFLite's dequantization, bit for bit.
pub fn dequantize(q: i8, scale: f32, zero_point: i32) -> f32 {
    (i32::from(q) - zero_point) as f32 * scale
}

/// `xs[i] = table[xs[i] + 128]`: an activation as a 256-entry table computed on the host.
pub fn lut(table: &[u8], xs: &mut [i8]) -> Result<(), KernelError> {
    check_len("table", table.len(), 256)?;
    for x in xs.iter_mut() {
        let i = (i16::from(*x) + 128) as usize;
        *x = table.get(i).map_or(*x, |&t| t as i8);
    }
    Ok(())
}

/// The W8A8 fully connected layer (TFLite's `FullyConnectedPerChannel`), see the module doc.
///
/// Shapes: `w` (rows, cols) int8 codes as bytes, row-major; `x` (cols); `bias` (rows) if
/// present; `requant` (rows); `y` (rows). `x_zp` and `y_zp` in `−128..=127`, `lo <= hi`,
/// `cols <= MAX_COLS`. Nothing is written on `Err`.
#[allow(clippy::too_many_arguments)]
pub fn gemv(
    w: &[u8],
    x: &[i8],
    x_zp: i32,
    bias: Option<&[i32]>,
    requant: &[Requant],
    y_zp: i32,
    (lo, hi): (i8, i8),
    y: &mut [i8],
) -> Result<(), KernelError> {
    let (rows, cols) = (y.len(), x.len());
    if cols > MAX_COLS {
        return Err(KernelError::Invalid {
            arg: "x",
            requirement: "at most MAX_COLS (65 536) long",
        });
    }
    let w_len = rows
        .checked_mul(cols)
        .ok_or(KernelError::Overflow { arg: "w" })?;
    check_len("w", w.len(), w_len)?;
    check_len("requant", requant.len(), rows)?;
    if let Some(b) = bias {
        check_len("bias", b.len(), rows)?;
    }
    if !(-128..=127).contains(&x_zp) || !(-128..=127).contains(&y_zp) || lo > hi {
        return Err(KernelError::Invalid {
            arg: "zero points",
            requirement: "in -128..=127, with lo <= hi",
        });
    }
    for (r, (yr, rq)) in y.iter_mut().zip(requant).enumerate() {
        let row = w.get(r * cols..(r + 1) * cols).unwrap_or(&[]);
        let mut acc = 0i32;
        for (&wb, &xi) in row.iter().zip(x) {
            // |product| <= 127 · 255 and cols <= MAX_COLS: no overflow (see MAX_COLS).
            acc += i32::from(wb as i8) * (i32::from(xi) - x_zp);
        }
        if let Some(b) = bias.and_then(|b| b.get(r)) {
            acc = acc.saturating_add(*b);
        }
        let out = rq.apply(acc).saturating_add(y_zp);
        *yr = out.clamp(i32::from(lo), i32::from(hi)) as i8;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    use super::*;

    /// `x · 2^-e` rounded half away from zero, in f64 (exact for these magnitudes).
    fn rdbpot_f64(x: i32, e: u32) -> i32 {
        let v = x as f64 / (1u64 << e) as f64;
        libm::round(v) as i32
    }

    #[test]
    fn doubling_high_mul_known_values_and_its_one_overflow() {
        assert_eq!(
            saturating_rounding_doubling_high_mul(i32::MIN, i32::MIN),
            i32::MAX
        );
        assert_eq!(
            saturating_rounding_doubling_high_mul(1 << 30, 1 << 30),
            1 << 29
        );
        assert_eq!(
            saturating_rounding_doubling_high_mul(i32::MAX, i32::MAX),
            i32::MAX - 1
        );
        // 2·3·2^30 / 2^32 = 1.5 → 2 and −1.5 → −1: ties go towards +∞.
        assert_eq!(saturating_rounding_doubling_high_mul(3, 1 << 30), 2);
        assert_eq!(saturating_rounding_doubling_high_mul(-3, 1 << 30), -1);
        assert_eq!(
            saturating_rounding_doubling_high_mul(-1, 1 << 30),
            0,
            "−0.5 → 0"
        );
        assert_eq!(saturating_rounding_doubling_high_mul(0, i32::MIN), 0);
        // Against floor((a·b + 2^30) / 2^31) in i128 on a sweep.
        let mut s = 0x9E37_79B9u32;
        for _ in 0..100_000 {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            let (a, b) = (s as i32, s.rotate_left(11) as i32);
            let want = (i128::from(a) * i128::from(b) + (1 << 30)).div_euclid(1 << 31);
            let want = want.clamp(i128::from(i32::MIN), i128::from(i32::MAX)) as i32;
            assert_eq!(saturating_rounding_doubling_high_mul(a, b), want, "{a} {b}");
        }
    }

    #[test]
    fn rounding_divide_by_pot_rounds_half_away_from_zero() {
        assert_eq!(rounding_divide_by_pot(-3, 1), -2);
        assert_eq!(rounding_divide_by_pot(3, 1), 2);
        assert_eq!(rounding_divide_by_pot(-5, 2), -1);
        assert_eq!(rounding_divide_by_pot(i32::MIN, 31), -1);
        assert_eq!(rounding_divide_by_pot(i32::MAX, 31), 1);
        assert_eq!(rounding_divide_by_pot(12345, 0), 12345);
        for x in (-70_000..70_000).step_by(7) {
            for e in 0..20 {
                assert_eq!(rounding_divide_by_pot(x, e), rdbpot_f64(x, e), "{x} >> {e}");
            }
        }
    }

    #[test]
    fn quantized_multipliers_round_trip_and_apply_within_one() {
        for real in [
            1e-9,
            3.1e-5,
            0.000_732,
            0.0123,
            0.25,
            0.5,
            0.999_999_9,
            1.0,
            1.7,
            12.5,
        ] {
            let rq = quantize_multiplier(real).unwrap();
            let back = rq.multiplier as f64 * libm::pow(2.0, f64::from(rq.shift) - 31.0);
            assert!(
                ((back - real) / real).abs() <= 1.0 / (1u64 << 30) as f64,
                "{real}"
            );
            for x in [-2_000_000_000, -123_456, -1, 0, 1, 77, 123_456, 1_000_000] {
                let want = x as f64 * real;
                if want.abs() < 2e9 {
                    let got = rq.apply(x) as f64;
                    assert!((got - want).abs() <= 1.0 + want.abs() * 1e-9, "{x}·{real}");
                }
            }
        }
        assert_eq!(quantize_multiplier(0.0).unwrap().multiplier, 0);
        assert_eq!(
            quantize_multiplier(1e-30).unwrap().multiplier,
            0,
            "too small: 0"
        );
        assert!(quantize_multiplier(f64::NAN).is_err());
        assert!(quantize_multiplier(-1.0).is_err());
        assert!(quantize_multiplier(1e12).is_err());
        assert!(Requant::new(5, 0).is_err());
        assert!(Requant::new(1 << 30, 31).is_err());
    }

    #[test]
    fn quantize_and_dequantize_follow_tflite() {
        assert_eq!(quantize(0.5, 1.0, 0), 1, "ties away from zero");
        assert_eq!(quantize(-0.5, 1.0, 0), -1);
        assert_eq!(quantize(1e9, 0.1, 3), 127);
        assert_eq!(quantize(-1e9, 0.1, 3), -128);
        assert_eq!(quantize(f32::NAN, 0.1, 3), 3);
        assert_eq!(quantize(0.26, 0.1, -5), -2);
        for q in -128..=127i8 {
            let x = dequantize(q, 0.037, -7);
            assert_eq!(x, ((i32::from(q) + 7) as f64 * 0.037f32 as f64) as f32);
            assert_eq!(quantize(x, 0.037, -7), q, "round trip of {q}");
        }
    }

    #[test]
    fn gemv_matches_a_wide_reference_and_rejects_bad_shapes() {
        let (rows, cols) = (5, 37);
        let w: Vec<u8> = (0..rows * cols)
            .map(|i| ((i * 37 % 255) as i32 - 127) as i8 as u8)
            .collect();
        let x: Vec<i8> = (0..cols)
            .map(|i| ((i * 53 % 256) as i32 - 128) as i8)
            .collect();
        let bias: Vec<i32> = (0..rows as i32).map(|r| r * 1000 - 2000).collect();
        let rq: Vec<Requant> = (0..rows)
            .map(|r| quantize_multiplier(0.0007 * (r + 1) as f64).unwrap())
            .collect();
        let mut y = [0i8; 5];
        gemv(&w, &x, -3, Some(&bias), &rq, 5, (-100, 120), &mut y).unwrap();
        for r in 0..rows {
            let mut acc = 0i64;
            for c in 0..cols {
                acc += i64::from(w[r * cols + c] as i8) * (i64::from(x[c]) + 3);
            }
            acc += i64::from(bias[r]);
            let want = (rq[r].apply(acc as i32) + 5).clamp(-100, 120) as i8;
            assert_eq!(y[r], want);
        }
        let before = y;
        assert!(gemv(&w, &x[1..], -3, None, &rq, 5, (-128, 127), &mut y).is_err());
        assert!(gemv(&w, &x, -300, None, &rq, 5, (-128, 127), &mut y).is_err());
        assert!(gemv(&w, &x, 0, None, &rq[1..], 5, (-128, 127), &mut y).is_err());
        assert_eq!(y, before, "nothing written on error");
    }

    #[test]
    fn the_accumulator_bound_holds_at_max_cols() {
        // Every product at its largest magnitude, MAX_COLS of them: no overflow, exact sum.
        let w = vec![(-127i8) as u8; MAX_COLS];
        let x = vec![-128i8; MAX_COLS];
        let rq = [Requant::new(1 << 30, 0).unwrap()]; // × 0.5
        let mut y = [0i8; 1];
        gemv(&w, &x, 127, None, &rq, 0, (-128, 127), &mut y).unwrap();
        assert_eq!(
            y,
            [127],
            "2 122 383 360 · 0.5 saturates the output, not the sum"
        );
        let sum = MAX_COLS as i64 * 127 * 255;
        assert!(sum < i64::from(i32::MAX));
        let x = vec![0i8; MAX_COLS + 1];
        let w = vec![0u8; MAX_COLS + 1];
        assert!(gemv(&w, &x, 0, None, &rq, 0, (-128, 127), &mut y).is_err());
    }

    #[test]
    fn lut_maps_every_code() {
        let table: Vec<u8> = (0..256u16).map(|i| (255 - i) as u8).collect();
        let mut xs: Vec<i8> = (-128..=127).collect();
        lut(&table, &mut xs).unwrap();
        for (i, &v) in xs.iter().enumerate() {
            assert_eq!(v as u8, 255 - i as u8);
        }
        assert!(lut(&table[1..], &mut xs).is_err());
    }
}
