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
    // floor((a·b + 2^30) / 2^31) is an arithmetic shift of the exact 64-bit sum (|a·b| < 2^62
    // outside the case above); the result fits in i32. One multiply and a shift on a Cortex-M4,
    // where the truncating division of gemmlowp's formulation costs a sign fix-up.
    ((wide_mul(a, b) + (1 << 30)) >> 31) as i32
}

/// `a·b` exactly, as i64. Armv6-M (Cortex-M0/M0+, `cfg(microdiff_armv6m)` from the build
/// script) has only a 32×32→32 `MULS`, and the compiler's `i64` multiply there is a call to a
/// full 64×64 routine (≈ 40 instructions and a stack frame): four 16×16 products and the
/// carries, inline, are about half. Elsewhere one widening multiply.
#[inline]
pub const fn wide_mul(a: i32, b: i32) -> i64 {
    if cfg!(microdiff_armv6m) {
        wide_mul_halves(a, b)
    } else {
        a as i64 * b as i64
    }
}

/// [`wide_mul`] by 16-bit halves: `a = ah·2^16 + al` with `al ∈ 0..2^16`, `ah ∈ −2^15..2^15`
/// (same for `b`), so every partial product fits its type (`al·bl < 2^32` unsigned,
/// `|ah·bl|, |al·bh| < 2^31`, `|ah·bh| ≤ 2^30`).
#[inline]
const fn wide_mul_halves(a: i32, b: i32) -> i64 {
    let (al, ah) = (a & 0xFFFF, a >> 16);
    let (bl, bh) = (b & 0xFFFF, b >> 16);
    let low = (al as u32 * bl as u32) as i64;
    let mid = (ah * bl) as i64 + (al * bh) as i64;
    (((ah * bh) as i64) << 32) + (mid << 16) + low
}

/// gemmlowp's `RoundingDivideByPOT`: `x / 2^exponent` rounded to nearest, ties away from zero.
/// `exponent` is taken modulo 32 (callers pass 0..=31).
#[inline]
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
    #[inline]
    pub const fn apply(self, x: i32) -> i32 {
        let left = if self.shift > 0 { self.shift as u32 } else { 0 };
        let right = if self.shift > 0 {
            0
        } else {
            (-(self.shift as i32)) as u32
        };
        // `x.saturating_mul(1 << left)` without a multiply: on a Cortex-M0 an overflow-checked
        // i32 multiply is a call to the 64-bit multiply routine.
        let up = x << left;
        let shifted = if up >> left == x {
            up
        } else if x < 0 {
            i32::MIN
        } else {
            i32::MAX
        };
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
    let q = round_half_away(x / scale).saturating_add(zero_point);
    q.clamp(-128, 127) as i8
}

/// `roundf(q) as i32` (ties away from zero; saturating, NaN → 0) without `roundf`: `as i32`
/// truncates, and `q − trunc(q)` is exact (the fraction of a float is a float; beyond 2^23
/// every float is an integer and the fraction is 0), so comparing it with ±0.5 decides the
/// rounding exactly. A third of the instructions of libm's `roundf` on a Cortex-M4F, and no
/// soft-float `roundf` on a Cortex-M0.
fn round_half_away(q: f32) -> i32 {
    let t = q as i32;
    let frac = q - t as f32;
    if frac >= 0.5 {
        t.saturating_add(1)
    } else if frac <= -0.5 {
        t.saturating_sub(1)
    } else {
        t
    }
}

/// `((q − zero_point) as f32) · scale`: TFLite's dequantization, bit for bit.
pub fn dequantize(q: i8, scale: f32, zero_point: i32) -> f32 {
    (i32::from(q) - zero_point) as f32 * scale
}

/// `xs[i] = table[xs[i] + 128]`: an activation as a 256-entry table computed on the host.
// Not inlined: inside the runtime's one large `forward` its loop counter lived on the stack.
#[inline(never)]
pub fn lut(table: &[u8], xs: &mut [i8]) -> Result<(), KernelError> {
    check_len("table", table.len(), 256)?;
    let Some(table) = table.first_chunk::<256>() else {
        return Ok(());
    };
    // `x + 128` as a byte: the index is below 256 by its type. Four at a time: the loop
    // overhead was as large as the lookup on a Cortex-M4 (QEMU trace).
    let look = |x: &mut i8| *x = table[usize::from(*x as u8 ^ 0x80)] as i8;
    let (quads, rest) = xs.as_chunks_mut::<4>();
    for [a, b, c, d] in quads {
        // Written out: the firmware's `opt-level = "s"` does not unroll a loop of four.
        look(a);
        look(b);
        look(c);
        look(d);
    }
    rest.iter_mut().for_each(look);
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

/// `n` rounded up to a multiple of 4, or `None` on overflow.
pub const fn pad4(n: usize) -> Option<usize> {
    match n.checked_add(3) {
        Some(m) => Some(m & !3),
        None => None,
    }
}

/// Byte index of element `(r, c)` of a W8A8 weight matrix in the tiled layout of [`qlinear`],
/// `cols_p` being the padded column count (a multiple of 4).
///
/// The matrix is stored as 4×4 tiles of 16 bytes, row tiles outer and column tiles inner;
/// inside a tile, row `r % 4` takes 4 bytes holding columns `c0, c2, c1, c3` of its group.
/// That order lets a Cortex-M's `SXTB16` split one word into the pairs `(c0, c1)` and
/// `(c2, c3)`, which `SMLAD` multiplies with the natural-order i16 pairs of [`widen`].
pub const fn tile_index(r: usize, c: usize, cols_p: usize) -> usize {
    const PERM: [usize; 4] = [0, 2, 1, 3];
    let tile = (r / 4) * (cols_p / 4) + c / 4;
    tile * 16 + (r % 4) * 4 + PERM[c % 4]
}

/// Bytes of one [`qlinear`] row parameter record: little-endian i32 `bias`, `multiplier`,
/// `shift` (a [`Requant`]).
pub const QLINEAR_ROW_BYTES: usize = 12;

/// The input of [`qlinear`]: `out[i] = x[i] − zp` as i16 for `i < x.len()`, 0 in the padding
/// up to `out.len() = pad4(x.len())`. Done once per layer, so the dot product needs neither
/// the zero point nor a sign extension of the activations.
pub fn widen(x: &[i8], zp: i32, out: &mut [i16]) -> Result<(), KernelError> {
    let want = pad4(x.len()).ok_or(KernelError::Overflow { arg: "out" })?;
    check_len("out", out.len(), want)?;
    if !(-128..=127).contains(&zp) {
        return Err(KernelError::Invalid {
            arg: "zp",
            requirement: "in -128..=127",
        });
    }
    // `out.len() = pad4(x.len()) >= x.len()`; `_checked` keeps the panic path out of firmware.
    let Some((head, pad)) = out.split_at_mut_checked(x.len()) else {
        return Err(KernelError::Overflow { arg: "out" });
    };
    for (o, &xi) in head.iter_mut().zip(x) {
        // −255..=255: fits.
        *o = (i32::from(xi) - zp) as i16;
    }
    pad.fill(0);
    Ok(())
}

/// One row's [`Requant`] and bias from a [`QLINEAR_ROW_BYTES`] record.
fn row_params(p: &[u8]) -> Result<(i32, Requant), KernelError> {
    let Some(p) = p.first_chunk::<QLINEAR_ROW_BYTES>() else {
        return Err(KernelError::Shape {
            arg: "params",
            len: p.len(),
            expected: QLINEAR_ROW_BYTES,
        });
    };
    let (bias, multiplier, shift) = record(p);
    Ok((bias, check_record(multiplier, shift)?))
}

/// A record's multiplier and shift as a [`Requant`], or the reference's error.
#[inline]
pub(crate) const fn check_record(multiplier: i32, shift: i32) -> Result<Requant, KernelError> {
    if shift < -31 || shift > 30 {
        return Err(KernelError::Invalid {
            arg: "params",
            requirement: "shift in -31..=30",
        });
    }
    Requant::new(multiplier, shift as i8)
}

/// The three little-endian i32s of a row record: `(bias, multiplier, shift)`, unchecked.
#[inline]
pub(crate) const fn record(p: &[u8; QLINEAR_ROW_BYTES]) -> (i32, i32, i32) {
    let [b0, b1, b2, b3, m0, m1, m2, m3, s0, s1, s2, s3] = *p;
    (
        i32::from_le_bytes([b0, b1, b2, b3]),
        i32::from_le_bytes([m0, m1, m2, m3]),
        i32::from_le_bytes([s0, s1, s2, s3]),
    )
}

/// Whether every record of `params` is valid ([`qlinear_output`]'s checks) with a non-zero
/// multiplier: the contract of [`qlinear_validated`] (and of its drop-in kernels). `const`, so
/// a blob's validation can run at compile time.
pub const fn qlinear_records_nonzero(params: &[u8]) -> bool {
    let (records, _) = params.as_chunks::<QLINEAR_ROW_BYTES>();
    let mut i = 0;
    while i < records.len() {
        let (_, multiplier, shift) = record(&records[i]);
        if multiplier == 0 || check_record(multiplier, shift).is_err() {
            return false;
        }
        i += 1;
    }
    true
}

/// Every record of `params` valid ([`qlinear_output`]'s checks), before anything is written;
/// then [`requantize`] may take them unchecked.
pub(crate) fn check_records(params: &[u8]) -> Result<(), KernelError> {
    for p in params.as_chunks::<QLINEAR_ROW_BYTES>().0 {
        row_params(p)?;
    }
    Ok(())
}

/// [`qlinear_output`] for a record that passed [`check_records`].
#[inline]
pub(crate) fn requantize(acc: i32, p: &[u8; QLINEAR_ROW_BYTES], y_zp: i32) -> i8 {
    requantize_fields(acc, record(p), y_zp)
}

/// [`requantize`] from the record's fields `(bias, multiplier, shift)`.
#[inline]
pub(crate) fn requantize_fields(
    acc: i32,
    (bias, multiplier, shift): (i32, i32, i32),
    y_zp: i32,
) -> i8 {
    let rq = Requant {
        multiplier,
        shift: shift as i8,
    };
    let v = rq.apply(acc.saturating_add(bias)).saturating_add(y_zp);
    v.clamp(-128, 127) as i8
}

/// Checks the arguments of [`qlinear`] (and of any drop-in kernel for it): returns
/// `(rows_p, cols_p)`.
pub fn qlinear_shapes(
    w: &[u8],
    xw: &[i16],
    params: &[u8],
    y_zp: i32,
    y: &[i8],
) -> Result<(usize, usize), KernelError> {
    let cols_p = xw.len();
    if !cols_p.is_multiple_of(4) || cols_p == 0 || cols_p > MAX_COLS {
        return Err(KernelError::Invalid {
            arg: "xw",
            requirement: "a multiple of 4, 4..=MAX_COLS long",
        });
    }
    let rows_p = pad4(y.len()).ok_or(KernelError::Overflow { arg: "y" })?;
    let w_len = rows_p
        .checked_mul(cols_p)
        .ok_or(KernelError::Overflow { arg: "w" })?;
    check_len("w", w.len(), w_len)?;
    let p_len = y
        .len()
        .checked_mul(QLINEAR_ROW_BYTES)
        .ok_or(KernelError::Overflow { arg: "params" })?;
    check_len("params", params.len(), p_len)?;
    if !(-128..=127).contains(&y_zp) {
        return Err(KernelError::Invalid {
            arg: "y_zp",
            requirement: "in -128..=127",
        });
    }
    Ok((rows_p, cols_p))
}

/// Finishes one output: `clamp(requant(acc + bias) + y_zp, −128, 127)` (TFLite's
/// per-channel requantization; the bias add saturates).
#[inline]
pub fn qlinear_output(acc: i32, row: &[u8], y_zp: i32) -> Result<i8, KernelError> {
    let (bias, rq) = row_params(row)?;
    let v = rq.apply(acc.saturating_add(bias)).saturating_add(y_zp);
    Ok(v.clamp(-128, 127) as i8)
}

/// The W8A8 fully connected layer over the tiled layout ([`tile_index`]): for each row `r`,
/// `acc = Σ_c w[r][c] · xw[c]` in i32 (exact: see [`MAX_COLS`]; padding columns meet the
/// zero padding of `xw`, padding rows are computed and dropped), then [`qlinear_output`] with
/// row `r`'s record of `params`. `xw` is the [`widen`]ed input; `y.len()` is the row count.
///
/// Equal to [`gemv`] on the untiled matrix (tested); the reference every drop-in kernel
/// (Cortex-M DSP) must match bit for bit. Nothing is written on `Err`.
pub fn qlinear(
    w: &[u8],
    xw: &[i16],
    params: &[u8],
    y_zp: i32,
    y: &mut [i8],
) -> Result<(), KernelError> {
    qlinear_shapes(w, xw, params, y_zp, y)?;
    check_records(params)?;
    qlinear_validated(w, xw, params, y_zp, y)
}

/// [`qlinear`] without its per-call record check, for a caller that checked every record of
/// `params` once already (the runtime does, when it parses a blob: a valid record with a
/// non-zero multiplier, see [`qlinear_records_nonzero`]). Same bits as [`qlinear`] on such
/// records; on others the outputs are unspecified, though still computed without a panic or
/// an access outside the arguments (record values never address memory). The shapes are
/// checked as in [`qlinear`]; nothing is written on `Err`.
pub fn qlinear_validated(
    w: &[u8],
    xw: &[i16],
    params: &[u8],
    y_zp: i32,
    y: &mut [i8],
) -> Result<(), KernelError> {
    by_row_tiles(w, xw, params, y_zp, y, |tiles, xs| {
        let mut acc = [0i32; 4];
        for (t, x) in tiles.iter().zip(xs) {
            for (a, q) in acc.iter_mut().zip(t.as_chunks::<4>().0) {
                // Columns 0, 2, 1, 3 (`tile_index`).
                let q = |j: usize| i32::from(q[j] as i8);
                *a += q(0) * i32::from(x[0])
                    + q(1) * i32::from(x[2])
                    + q(2) * i32::from(x[1])
                    + q(3) * i32::from(x[3]);
            }
        }
        acc
    })
}

/// The row-tile loop of the `QLINEAR` references, after [`qlinear_shapes`]: `sums` gives the
/// four row sums of one row tile (its `groups` tiles of 16 bytes, the input's `groups` groups
/// of 4), and each output row is requantized with its record ([`requantize`]; padding rows are
/// summed and dropped).
fn by_row_tiles(
    w: &[u8],
    xw: &[i16],
    params: &[u8],
    y_zp: i32,
    y: &mut [i8],
    sums: impl Fn(&[[u8; 16]], &[[i16; 4]]) -> [i32; 4],
) -> Result<(), KernelError> {
    let (_, cols_p) = qlinear_shapes(w, xw, params, y_zp, y)?;
    let groups = cols_p / 4;
    let xs = xw.as_chunks::<4>().0;
    let records = params.as_chunks::<QLINEAR_ROW_BYTES>().0;
    // Row tiles by `next()`, not zipped with `y`: `Zip::new` over runtime-sized chunks is not
    // inlined and links a division-by-zero panic into firmware. `groups >= 1`; `max` makes the
    // non-zero chunk size visible to the compiler.
    let mut row_tiles = w.chunks_exact((16 * groups).max(16));
    for (rt, ys) in y.chunks_mut(4).enumerate() {
        let Some(tiles) = row_tiles.next() else {
            break;
        };
        let acc = sums(tiles.as_chunks::<16>().0, xs);
        let ps = records.get(4 * rt..).unwrap_or(&[]);
        for ((yr, p), &a) in ys.iter_mut().zip(ps).zip(&acc) {
            *yr = requantize(a, p, y_zp);
        }
    }
    Ok(())
}

/// How a `QLINEAR` weight matrix is stored (the op's PARAM byte 2 in a blob).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightLayout {
    /// [`tile_index`]: one int8 code per weight, for [`qlinear`]. Blobs exported before
    /// 2026-12-05 use it; still read, by the reference kernel only.
    Tiles,
    /// [`pair_index`]: rows `2k` and `2k + 1` of a row tile share one i16 per column, for
    /// [`qlinear_pairs`]; what the exporter writes (fewer instructions per multiply-accumulate
    /// on every Cortex-M).
    Pairs,
}

impl WeightLayout {
    /// The layout of a blob code (0 tiles, 1 pairs), `None` for any other.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::Tiles),
            1 => Some(Self::Pairs),
            _ => None,
        }
    }

    /// The blob code of the layout.
    pub const fn code(self) -> u8 {
        match self {
            Self::Tiles => 0,
            Self::Pairs => 1,
        }
    }
}

/// Byte index of the i16 holding element `(r, c)` of a W8A8 weight matrix in the paired
/// layout of [`qlinear_pairs`] (rows `r` and `r ^ 1` share it), `cols_p` being the padded
/// column count (a multiple of 4).
///
/// The matrix is stored as 4×4 tiles of 16 bytes, row tiles outer and column tiles inner, as in
/// [`tile_index`]; inside a tile, bytes `8·p … 8·p + 7` hold the pair `p` of rows `(2p, 2p + 1)`
/// as four little-endian i16 `h = 256·w[2p + 1][c] + w[2p][c]`, columns in order. So the low
/// byte of `h` is `w[2p][c]` and `w[2p + 1][c] = (h − w[2p][c]) / 256` ([`pair_weights`]).
/// One word holds two columns of two rows: a Cortex-M4 `SMLAD`s the word as it is and its
/// `SXTB16` (the even row) with the same input pair, and the odd row is the difference of the
/// two sums over 256 (`qlinear_pairs`' drop-in kernels).
pub const fn pair_index(r: usize, c: usize, cols_p: usize) -> usize {
    let tile = (r / 4) * (cols_p / 4) + c / 4;
    tile * 16 + ((r % 4) / 2) * 8 + (c % 4) * 2
}

/// The two weights `(w[2p][c], w[2p + 1][c])` of a paired-layout i16 stored as bytes
/// `(lo, hi)`: `w[2p][c]` is `lo` as i8 and `w[2p + 1][c] = (h − w[2p][c]) / 256`, exact, in
/// `−128..=128` for any two bytes.
#[inline]
pub const fn pair_weights(lo: u8, hi: u8) -> (i32, i32) {
    // `h − b = 256·(hi as i8) + 256·[b < 0]`: two byte loads and the sign bit of `b`, no
    // 16-bit load (which costs a RISC-V core without unaligned access four instructions).
    let b = lo as i8 as i32;
    (b, hi as i8 as i32 + ((b as u32) >> 31) as i32)
}

/// Stores the row-major `(rows, cols)` int8 matrix `w` in the paired layout ([`pair_index`]),
/// with zero padding, into `out` of `pad4(rows)·pad4(cols)` bytes. The codes must be in
/// `−127..=127` (TFLite's symmetric weights), which makes every pair representable.
pub fn pack_pairs(w: &[i8], rows: usize, cols: usize, out: &mut [u8]) -> Result<(), KernelError> {
    let (rp, cp) = match (pad4(rows), pad4(cols)) {
        (Some(rp), Some(cp)) => (rp, cp),
        _ => return Err(KernelError::Overflow { arg: "w" }),
    };
    let n = rows
        .checked_mul(cols)
        .ok_or(KernelError::Overflow { arg: "w" })?;
    check_len("w", w.len(), n)?;
    check_len(
        "out",
        out.len(),
        rp.checked_mul(cp)
            .ok_or(KernelError::Overflow { arg: "out" })?,
    )?;
    if w.contains(&i8::MIN) {
        return Err(KernelError::Invalid {
            arg: "w",
            requirement: "codes in -127..=127",
        });
    }
    // Zero outside the matrix: the padding.
    let at = |r: usize, c: usize| {
        if r < rows && c < cols {
            w.get(r * cols + c).map_or(0, |&v| i32::from(v))
        } else {
            0
        }
    };
    for r in (0..rp).step_by(2) {
        for c in 0..cp {
            // |256·a + b| ≤ 256·127 + 127 < 2^15.
            let h = (256 * at(r + 1, c) + at(r, c)) as i16;
            let i = pair_index(r, c, cp);
            if let Some(d) = out.get_mut(i..i + 2) {
                d.copy_from_slice(&h.to_le_bytes());
            }
        }
    }
    Ok(())
}

/// The four row sums of one paired-layout row tile ([`pair_index`]) against the widened input:
/// `acc[i] = Σ_c w[i][c] · xw[c]`, exact (see [`MAX_COLS`]; `|w| ≤ 128`).
#[inline]
fn pair_tile_sums(tiles: &[[u8; 16]], xs: &[[i16; 4]]) -> [i32; 4] {
    let mut acc = [0i32; 4];
    for (t, x) in tiles.iter().zip(xs) {
        // Column by column, both pairs: one input load per four multiply-accumulates.
        for (j, &xj) in x.iter().enumerate() {
            let xj = i32::from(xj);
            let (b0, a0) = pair_weights(t[2 * j], t[2 * j + 1]);
            let (b1, a1) = pair_weights(t[8 + 2 * j], t[9 + 2 * j]);
            acc[0] += b0 * xj;
            acc[1] += a0 * xj;
            acc[2] += b1 * xj;
            acc[3] += a1 * xj;
        }
    }
    acc
}

/// The W8A8 fully connected layer of [`qlinear`] over the paired layout ([`pair_index`]):
/// the same sums (`acc = Σ_c w[r][c] · xw[c]`), requantization and errors. The reference of
/// the runtime's `QLINEAR` on what the exporter writes; every drop-in kernel matches it bit for
/// bit. Nothing is written on `Err`.
pub fn qlinear_pairs(
    w: &[u8],
    xw: &[i16],
    params: &[u8],
    y_zp: i32,
    y: &mut [i8],
) -> Result<(), KernelError> {
    qlinear_shapes(w, xw, params, y_zp, y)?;
    check_records(params)?;
    qlinear_pairs_validated(w, xw, params, y_zp, y)
}

/// [`qlinear_pairs`] without its per-call record check: the contract of [`qlinear_validated`].
pub fn qlinear_pairs_validated(
    w: &[u8],
    xw: &[i16],
    params: &[u8],
    y_zp: i32,
    y: &mut [i8],
) -> Result<(), KernelError> {
    by_row_tiles(w, xw, params, y_zp, y, pair_tile_sums)
}

/// Most padded columns for which a drop-in kernel may take the odd rows of [`qlinear_pairs`]
/// from two wrapping sums: `Σ h·x − Σ w_even·x = 256 · Σ w_odd·x` modulo 2^32, and
/// `|Σ w_odd·x| ≤ 256 · 128 · 255 < 2^23` makes `256 ·` that sum an exact i32, recovered by an
/// arithmetic shift. Wider layers run the reference.
pub const PAIR_SUM_COLS: usize = 256;

/// Constants of [`qadd`]: `y = clamp((c + a·ma + b·mb) >> s, −128, 127)` with an arithmetic
/// (flooring) shift. The host folds the zero points and the rounding into `c`:
/// `c = round(y_zp·2^s − a_zp·ma − b_zp·mb) + 2^(s−1)`, `ma ≈ 2^s·scale_a/scale_y`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QAdd {
    /// Offset, `|c| < 2^29`.
    pub c: i32,
    /// Multiplier of `a`, `|ma| < 2^21`.
    pub ma: i32,
    /// Multiplier of `b`, `|mb| < 2^21`.
    pub mb: i32,
    /// Right shift, `0..=31`.
    pub s: i32,
}

impl QAdd {
    /// Checks the bounds that keep `c + a·ma + b·mb` inside i32 (below 2^30 in magnitude).
    pub const fn new(c: i32, ma: i32, mb: i32, s: i32) -> Result<Self, KernelError> {
        let lim = 1 << 21;
        if c <= -(1 << 29)
            || c >= 1 << 29
            || ma <= -lim
            || ma >= lim
            || mb <= -lim
            || mb >= lim
            || s < 0
            || s > 31
        {
            return Err(KernelError::Invalid {
                arg: "qadd",
                requirement: "|c| < 2^29, |ma|, |mb| < 2^21, s in 0..=31",
            });
        }
        Ok(QAdd { c, ma, mb, s })
    }
}

/// The W8A8 residual add, in place in `a`: `a[i] = clamp((c + a[i]·ma + b[i]·mb) >> s)`
/// ([`QAdd`]). Not TFLite's `ADD` (two doubling high multiplies per element): one multiply
/// per input and a shift, about a quarter of the instructions on a Cortex-M, with the
/// multipliers to 2^-15 relative precision or better (docs/integer.md).
// Not inlined: inside the runtime's one large `forward` its constants were reloaded from the
// stack every element (QEMU trace of the M4F size probe).
#[inline(never)]
pub fn qadd(a: &mut [i8], b: &[i8], k: QAdd) -> Result<(), KernelError> {
    check_len("b", b.len(), a.len())?;
    let k = QAdd::new(k.c, k.ma, k.mb, k.s)?;
    // Bounded below 2^30 by `QAdd::new`.
    let add = |x: &mut i8, y: &i8| {
        let v = (k.c + i32::from(*x) * k.ma + i32::from(*y) * k.mb) >> k.s;
        *x = v.clamp(-128, 127) as i8;
    };
    let (qa, ra) = a.as_chunks_mut::<4>();
    let (qb, rb) = b.as_chunks::<4>();
    for ([x0, x1, x2, x3], [y0, y1, y2, y3]) in qa.iter_mut().zip(qb) {
        // Written out: the firmware's `opt-level = "s"` does not unroll a loop of four.
        add(x0, y0);
        add(x1, y1);
        add(x2, y2);
        add(x3, y3);
    }
    ra.iter_mut().zip(rb).for_each(|(x, y)| add(x, y));
    Ok(())
}

/// `floor(sqrt(v))`, exactly, by the digit-by-digit method (no float).
pub const fn isqrt_u64(v: u64) -> u64 {
    let mut rem = v;
    let mut root = 0u64;
    let mut bit = 1u64 << 62;
    while bit > v {
        bit >>= 2;
    }
    while bit != 0 {
        if rem >= root + bit {
            rem -= root + bit;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    root
}

/// Most elements of a [`qlayer_norm`] input (keeps every intermediate inside i32 / u64).
pub const MAX_NORM_LEN: usize = 4096;

/// Bytes of one [`qlayer_norm`] channel record: little-endian i32 `gamma` code (−127..=127)
/// and `beta` in output codes (`|beta| < 2^24`).
pub const QNORM_CHANNEL_BYTES: usize = 8;

/// The fixed-point multiplier `2^8 / r` (`r ≥ 1`) as a [`Requant`]: `m = round(2^(30+b) / r)`
/// with `b` the bit length of `r`, so `m ∈ (2^30, 2^31]`, renormalised when it reaches 2^31.
///
/// `r` is an integer square root of a u64, so below 2^32; the quotient is taken by
/// [`div_normalized`] on 32-bit words, which keeps the 64-bit division routine (about 1 KB of a
/// Cortex-M's flash) out of the integer-only runtime. Equal to the u64 division for every `r`
/// (tested). `r = 0` gives `m = 0`.
const fn reciprocal(r: u64) -> (i64, i32) {
    // `r < 2^32` (see above): the cast is exact.
    let r = r as u32;
    if r == 0 {
        return (0, 9);
    }
    let b = 32 - r.leading_zeros() as i32;
    // Scale numerator and divisor by 2^(32 − b): the divisor's top bit is then set, and
    // `(2^(30+b) + ⌊r/2⌋) · 2^(32−b) = 2^62 + ⌊r/2⌋ · 2^(32−b)`, whose high word is 2^30 and low
    // word `⌊r/2⌋ · 2^(32−b) < 2^31`.
    let d = r << (32 - b);
    let low = (r / 2) << (32 - b);
    let mut m = div_normalized(1 << 30, low, d) as u64;
    let mut shift = 9 - b;
    if m >= 1 << 31 {
        m >>= 1;
        shift += 1;
    }
    (m as i64, shift)
}

/// `⌊(hi·2^32 + lo) / d⌋` for `d ≥ 2^31` and `hi < d` (so the quotient fits 32 bits): Knuth's
/// algorithm D in 16-bit digits (Hacker's Delight, `divlu`), on 32-bit words only.
const fn div_normalized(hi: u32, lo: u32, d: u32) -> u32 {
    const B: u32 = 1 << 16;
    let (d1, d0) = (d >> 16, d & 0xFFFF);
    let (lo1, lo0) = (lo >> 16, lo & 0xFFFF);
    // First quotient digit: estimate from the top digit of `d`, corrected at most twice.
    // `d1 ≥ 2^15` by the contract; `checked_div` keeps a division-by-zero panic out of flash.
    let Some(mut q1) = hi.checked_div(d1) else {
        return 0;
    };
    let mut rhat = hi - q1 * d1;
    while q1 >= B || q1 * d0 > B * rhat + lo1 {
        q1 -= 1;
        rhat += d1;
        if rhat >= B {
            break;
        }
    }
    // The partial remainder, exact in 32 bits (it is below `d`).
    let mid = hi
        .wrapping_mul(B)
        .wrapping_add(lo1)
        .wrapping_sub(q1.wrapping_mul(d));
    let Some(mut q0) = mid.checked_div(d1) else {
        return 0;
    };
    rhat = mid - q0 * d1;
    while q0 >= B || q0 * d0 > B * rhat + lo0 {
        q0 -= 1;
        rhat += d1;
        if rhat >= B {
            break;
        }
    }
    q1 * B + q0
}

/// The W8A8 layer norm (docs/integer.md): with `n = len`, `S1 = Σq`, `S2 = Σq²` of the input
/// codes (the zero point cancels), `d_i = n·q_i − S1` and `V = n·S2 − S1² + e` (`e` is the
/// host's `round(ε·n²/scale_x²)`, at least 1), the normalised value is `d_i / √V`. The device
/// takes `R = ⌊√(V·2^16)⌋` ([`isqrt_u64`]), the multiplier `2^8/R` (a Q31 reciprocal) times the
/// host's `c = scale_γ / scale_y` (a [`Requant`], combined by one doubling high multiply into
/// `m · 2^(shift − 31)`, `m ∈ [2^30, 2^31)`), and writes
/// `y_i = clamp(⌊(d_i·γ_i·m + 2^(S−1)) / 2^S⌋ + β_i + y_zp, −128, 127)` with
/// `S = clamp(31 − shift, 1, 62)`: one rounding, half up (TFLite has no integer layer norm to
/// follow, and one 64-bit multiply-add per element is what a Cortex-M4 does fastest).
///
/// `x.len() = y.len() ≤ MAX_NORM_LEN`, `channels` = `len` records of [`QNORM_CHANNEL_BYTES`].
pub fn qlayer_norm(
    x: &[i8],
    channels: &[u8],
    e: i32,
    c: Requant,
    y_zp: i32,
    y: &mut [i8],
) -> Result<(), KernelError> {
    check_len("y", y.len(), x.len())?;
    qlayer_norm_check(x.len(), channels, e, c, y_zp)?;
    y.copy_from_slice(x);
    qlayer_norm_in_place(y, channels, e, c, y_zp)
}

fn qlayer_norm_check(
    n: usize,
    channels: &[u8],
    e: i32,
    c: Requant,
    y_zp: i32,
) -> Result<(), KernelError> {
    if n == 0 || n > MAX_NORM_LEN {
        return Err(KernelError::Invalid {
            arg: "x",
            requirement: "1..=MAX_NORM_LEN (4096) long",
        });
    }
    check_len("channels", channels.len(), n * QNORM_CHANNEL_BYTES)?;
    if e < 1 || !(-128..=127).contains(&y_zp) {
        return Err(KernelError::Invalid {
            arg: "e, y_zp",
            requirement: "e >= 1, y_zp in -128..=127",
        });
    }
    Requant::new(c.multiplier, c.shift)?;
    Ok(())
}

/// [`qlayer_norm`] in place: each output element depends on its own input element and the
/// sums, which are taken first. Nothing is written on `Err`.
// Not inlined: inlined into the runtime's one large `forward`, its per-element loop reloaded
// three values from the stack each element (seen in a QEMU trace of the M4F size probe).
#[inline(never)]
pub fn qlayer_norm_in_place(
    x: &mut [i8],
    channels: &[u8],
    e: i32,
    c: Requant,
    y_zp: i32,
) -> Result<(), KernelError> {
    let n = x.len();
    qlayer_norm_check(n, channels, e, c, y_zp)?;
    let (mut s1, mut s2) = (0i32, 0i32);
    for &q in x.iter() {
        // |S1| ≤ 4096·128 and S2 ≤ 4096·2^14 = 2^26.
        s1 += i32::from(q);
        s2 += i32::from(q) * i32::from(q);
    }
    let n32 = n as i32;
    // V ≥ e ≥ 1 (Cauchy–Schwarz makes n·S2 − S1² ≥ 0); V·2^16 < 2^12·2^26·2^16 = 2^54.
    let v = (n32 as i64 * s2 as i64 - s1 as i64 * s1 as i64 + e as i64) as u64;
    let r = isqrt_u64(v << 16);
    let (mr, sr) = reciprocal(r);
    let mut m = saturating_rounding_doubling_high_mul(mr as i32, c.multiplier);
    let mut shift = sr + c.shift as i32;
    if m != 0 && m < 1 << 30 {
        m <<= 1;
        shift -= 1;
    }
    // One rounding (not TFLite's two: this op is ours): y = ⌊(t·m + 2^(S−1)) / 2^S⌋ with
    // S = 31 − shift. |t| < 2^31 and m < 2^31 keep t·m + 2^61 inside i64, and S ≥ 62 rounds
    // every t to 0, as S = 62 does.
    let sh = (31 - shift).clamp(1, 62) as u32;
    let round = 1i64 << (sh - 1);
    // The parser bounds γ (|γ| ≤ 127) and β (|β| < 2^24); other values still give defined,
    // target-independent results (wrapping product, saturating sums), just not a layer norm.
    let chs = channels.as_chunks::<QNORM_CHANNEL_BYTES>().0;
    if sh >= 33 {
        // The usual case (a multiplier below 1/2). With p = t·m = h·2^32 + l (0 ≤ l < 2^32)
        // and S = 32 + k, k ≥ 1: ⌊(p + 2^(S−1)) / 2^S⌋ = ⌊(h + 2^(k−1) + l/2^32) / 2^k⌋
        // = ⌊(h + 2^(k−1)) / 2^k⌋, as h + 2^(k−1) is an integer and l/2^32 < 1: the high word
        // of one multiply, an add and a shift (|h| < 2^30, k ≤ 30: no overflow).
        let k = sh - 32;
        let half = 1i32 << (k - 1);
        for (xi, ch) in x.iter_mut().zip(chs) {
            let h = (norm_product(*xi, ch, n32, s1, m) >> 32) as i32;
            *xi = norm_output((h + half) >> k, ch, y_zp);
        }
    } else if sh == 32 {
        for (xi, ch) in x.iter_mut().zip(chs) {
            let p = norm_product(*xi, ch, n32, s1, m) + round;
            *xi = norm_output((p >> 32) as i32, ch, y_zp);
        }
    } else {
        let (lo, hi) = (i64::from(i32::MIN), i64::from(i32::MAX));
        for (xi, ch) in x.iter_mut().zip(chs) {
            let p = norm_product(*xi, ch, n32, s1, m) + round;
            *xi = norm_output((p >> sh).clamp(lo, hi) as i32, ch, y_zp);
        }
    }
    Ok(())
}

/// `(n·q − S1)·γ · m` of [`qlayer_norm_in_place`], exactly (|·| < 2^62).
#[inline]
fn norm_product(q: i8, ch: &[u8; QNORM_CHANNEL_BYTES], n: i32, s1: i32, m: i32) -> i64 {
    let gamma = i32::from_le_bytes([ch[0], ch[1], ch[2], ch[3]]);
    let d = n * i32::from(q) - s1;
    wide_mul(d.wrapping_mul(gamma), m)
}

/// `clamp(v + β + y_zp, −128, 127)` of [`qlayer_norm_in_place`].
#[inline]
fn norm_output(v: i32, ch: &[u8; QNORM_CHANNEL_BYTES], y_zp: i32) -> i8 {
    let beta = i32::from_le_bytes([ch[4], ch[5], ch[6], ch[7]]);
    v.saturating_add(beta).saturating_add(y_zp).clamp(-128, 127) as i8
}

/// Row `row` of a row-major int8 table `(rows, y.len())` into `y` (time and class tables of
/// the integer path).
pub fn table_row(table: &[u8], row: usize, y: &mut [i8]) -> Result<(), KernelError> {
    let n = y.len();
    let start = row
        .checked_mul(n)
        .ok_or(KernelError::Overflow { arg: "row" })?;
    let src = table
        .get(start..start.saturating_add(n))
        .ok_or(KernelError::OutOfRange {
            arg: "row",
            index: row,
            len: table.len().checked_div(n).unwrap_or(0),
        })?;
    for (o, &b) in y.iter_mut().zip(src) {
        *o = b as i8;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    use super::*;

    #[test]
    fn apply_saturates_its_left_shift_like_a_saturating_multiply() {
        let mut s = 0x5A7u32;
        let mut xs = std::vec![
            i32::MIN,
            i32::MIN + 1,
            -(1 << 20),
            -1,
            0,
            1,
            1 << 20,
            i32::MAX
        ];
        xs.extend((0..2000).map(|_| xorshift(&mut s) as i32 >> (xorshift(&mut s) % 31)));
        for shift in -31i8..=30 {
            let rq = Requant::new(1 << 30 | 12345, shift).unwrap();
            let left = shift.max(0) as u32;
            let right = (-i32::from(shift)).max(0) as u32;
            for &x in &xs {
                let want = rounding_divide_by_pot(
                    saturating_rounding_doubling_high_mul(
                        x.saturating_mul(1 << left),
                        rq.multiplier,
                    ),
                    right,
                );
                assert_eq!(rq.apply(x), want, "x {x} shift {shift}");
            }
        }
    }

    #[test]
    fn wide_mul_by_halves_is_the_exact_product() {
        let edges = [
            i32::MIN,
            i32::MIN + 1,
            -65537,
            -65536,
            -65535,
            -32769,
            -32768,
            -1,
            0,
            1,
            32767,
            32768,
            65535,
            65536,
            1 << 30,
            i32::MAX,
        ];
        for &a in &edges {
            for &b in &edges {
                assert_eq!(wide_mul_halves(a, b), a as i64 * b as i64, "{a} * {b}");
            }
        }
        let mut s = 0x1234_5678u32;
        for _ in 0..100_000 {
            let (a, b) = (xorshift(&mut s) as i32, xorshift(&mut s) as i32);
            assert_eq!(wide_mul_halves(a, b), a as i64 * b as i64, "{a} * {b}");
            assert_eq!(wide_mul(a, b), a as i64 * b as i64);
        }
    }

    #[test]
    fn rounding_equals_roundf_on_every_kind_of_float() {
        let mut values = std::vec![
            0.0f32,
            -0.0,
            0.5,
            -0.5,
            1.5,
            -1.5,
            2.5,
            -2.5,
            0.499_999_97,
            -0.499_999_97,
            8_388_607.5,
            -8_388_607.5,
            8_388_608.0,
            16_777_217.0,
            2_147_483_520.0,
            2_147_483_648.0,
            -2_147_483_648.0,
            3e9,
            -3e9,
            f32::MAX,
            f32::MIN,
            f32::MIN_POSITIVE,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
        ];
        let mut s = 0x00DD_BA11_u32;
        values.extend((0..200_000).map(|_| f32::from_bits(xorshift(&mut s))));
        values.extend((0..200_000).map(|i| (i as f32 - 100_000.0) / 64.0 + 0.5));
        for q in values {
            assert_eq!(round_half_away(q), libm::roundf(q) as i32, "{q:e}");
        }
    }

    /// The layer norm as first written (one i64 expression per element), the model that the
    /// loop of `qlayer_norm_in_place` must equal bit for bit.
    fn layer_norm_model(x: &[i8], ch: &[u8], e: i32, c: Requant, y_zp: i32) -> Vec<i8> {
        let n = x.len() as i64;
        let s1: i64 = x.iter().map(|&q| i64::from(q)).sum();
        let s2: i64 = x.iter().map(|&q| i64::from(q) * i64::from(q)).sum();
        let r = isqrt_u64(((n * s2 - s1 * s1 + i64::from(e)) as u64) << 16);
        let (mr, sr) = reciprocal(r);
        let mut m = saturating_rounding_doubling_high_mul(mr as i32, c.multiplier);
        let mut shift = sr + i32::from(c.shift);
        if m != 0 && m < 1 << 30 {
            m <<= 1;
            shift -= 1;
        }
        let sh = (31 - shift).clamp(1, 62) as u32;
        x.iter()
            .zip(ch.chunks_exact(8))
            .map(|(&q, c)| {
                let g = i32::from_le_bytes(c[..4].try_into().unwrap());
                let b = i32::from_le_bytes(c[4..].try_into().unwrap());
                let d = (n as i32) * i32::from(q) - s1 as i32;
                let p = i64::from(d.wrapping_mul(g)) * i64::from(m) + (1i64 << (sh - 1));
                let v = (p >> sh).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
                v.saturating_add(b).saturating_add(y_zp).clamp(-128, 127) as i8
            })
            .collect()
    }

    #[test]
    fn layer_norm_loop_equals_its_model_on_both_shift_paths() {
        let mut s = 0xACE0_F00Du32;
        for case in 0..3000 {
            let n = 1 + (xorshift(&mut s) % 200) as usize;
            let x: Vec<i8> = (0..n).map(|_| xorshift(&mut s) as i8).collect();
            let mut ch = Vec::new();
            for _ in 0..n {
                let g = (xorshift(&mut s) % 255) as i32 - 127;
                let b = (xorshift(&mut s) >> 8) as i32 - (1 << 23);
                ch.extend_from_slice(&g.to_le_bytes());
                ch.extend_from_slice(&b.to_le_bytes());
            }
            let e = 1 + (xorshift(&mut s) % 10_000) as i32;
            // Multipliers from tiny to large, so both `S >= 32` and `S < 32` run.
            let shift = (xorshift(&mut s) % 40) as i8 - 31;
            let c =
                Requant::new((1 << 30) | (xorshift(&mut s) >> 2) as i32, shift.min(30)).unwrap();
            let y_zp = xorshift(&mut s) as i8 as i32;
            let mut y = x.clone();
            qlayer_norm_in_place(&mut y, &ch, e, c, y_zp).unwrap();
            assert_eq!(y, layer_norm_model(&x, &ch, e, c, y_zp), "case {case}");
        }
    }

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

    /// Tiles a row-major `(rows, cols)` int8 matrix into [`tile_index`] order.
    pub(crate) fn tile(w: &[i8], rows: usize, cols: usize) -> Vec<u8> {
        let (rp, cp) = (pad4(rows).unwrap(), pad4(cols).unwrap());
        let mut out = vec![0u8; rp * cp];
        for r in 0..rows {
            for c in 0..cols {
                out[tile_index(r, c, cp)] = w[r * cols + c] as u8;
            }
        }
        out
    }

    fn xorshift(s: &mut u32) -> u32 {
        *s ^= *s << 13;
        *s ^= *s >> 17;
        *s ^= *s << 5;
        *s
    }

    #[test]
    fn qlinear_equals_the_row_major_gemv_on_every_shape_class() {
        let mut s = 0x1234_5678u32;
        // Rows and columns with every remainder mod 4, and full ±128 ranges.
        for (rows, cols) in [(1, 1), (3, 5), (4, 4), (5, 7), (8, 13), (17, 64), (96, 128)] {
            let w: Vec<i8> = (0..rows * cols).map(|_| xorshift(&mut s) as i8).collect();
            let x: Vec<i8> = (0..cols).map(|_| xorshift(&mut s) as i8).collect();
            let bias: Vec<i32> = (0..rows).map(|_| xorshift(&mut s) as i32 >> 12).collect();
            let rq: Vec<Requant> = (0..rows)
                .map(|_| {
                    quantize_multiplier(f64::from(xorshift(&mut s) % 1000 + 1) * 1e-5).unwrap()
                })
                .collect();
            let (x_zp, y_zp) = (xorshift(&mut s) as i8 as i32, xorshift(&mut s) as i8 as i32);
            let w_bytes: Vec<u8> = w.iter().map(|&v| v as u8).collect();
            let mut want = vec![0i8; rows];
            gemv(
                &w_bytes,
                &x,
                x_zp,
                Some(&bias),
                &rq,
                y_zp,
                (-128, 127),
                &mut want,
            )
            .unwrap();
            let mut params = Vec::new();
            for r in 0..rows {
                for v in [bias[r], rq[r].multiplier, i32::from(rq[r].shift)] {
                    params.extend_from_slice(&v.to_le_bytes());
                }
            }
            let mut xw = vec![7i16; pad4(cols).unwrap()];
            widen(&x, x_zp, &mut xw).unwrap();
            assert!(xw[cols..].iter().all(|&v| v == 0), "padding zeroed");
            let mut got = vec![0i8; rows];
            qlinear(&tile(&w, rows, cols), &xw, &params, y_zp, &mut got).unwrap();
            assert_eq!(got, want, "{rows}×{cols}");
            // The runtime's call, after its parse-time check of the records.
            assert!(qlinear_records_nonzero(&params));
            let mut got = vec![0i8; rows];
            qlinear_validated(&tile(&w, rows, cols), &xw, &params, y_zp, &mut got).unwrap();
            assert_eq!(got, want, "{rows}×{cols}, validated");
            // The paired layout (symmetric codes, as the exporter writes them).
            let w: Vec<i8> = w.iter().map(|&v| v.max(-127)).collect();
            let w_bytes: Vec<u8> = w.iter().map(|&v| v as u8).collect();
            gemv(
                &w_bytes,
                &x,
                x_zp,
                Some(&bias),
                &rq,
                y_zp,
                (-128, 127),
                &mut want,
            )
            .unwrap();
            let mut packed = vec![0x5Au8; pad4(rows).unwrap() * pad4(cols).unwrap()];
            pack_pairs(&w, rows, cols, &mut packed).unwrap();
            let mut got = vec![0i8; rows];
            qlinear_pairs(&packed, &xw, &params, y_zp, &mut got).unwrap();
            assert_eq!(got, want, "{rows}×{cols}, pairs");
            let mut got = vec![0i8; rows];
            qlinear_pairs_validated(&packed, &xw, &params, y_zp, &mut got).unwrap();
            assert_eq!(got, want, "{rows}×{cols}, pairs, validated");
        }
    }

    #[test]
    fn pairs_decode_every_byte_pair_and_pack_only_symmetric_codes() {
        for lo in 0..=255u8 {
            for hi in 0..=255u8 {
                let (b, a) = pair_weights(lo, hi);
                assert_eq!(b, i32::from(lo as i8));
                assert!((-128..=128).contains(&a), "{lo} {hi}");
                assert_eq!(256 * a + b, i32::from(i16::from_le_bytes([lo, hi])));
            }
        }
        let mut out = [0u8; 16];
        pack_pairs(&[127, -127, 5, -1], 2, 2, &mut out).unwrap();
        assert_eq!(pair_weights(out[0], out[1]), (127, 5));
        assert_eq!(pair_weights(out[2], out[3]), (-127, -1));
        assert_eq!(&out[4..], &[0; 12], "padding");
        assert!(pack_pairs(&[-128, 0, 0, 0], 2, 2, &mut out).is_err());
        assert!(pack_pairs(&[0; 4], 2, 2, &mut out[1..]).is_err());
        assert!(pack_pairs(&[0; 3], 2, 2, &mut out).is_err());
        assert_eq!(
            WeightLayout::from_code(WeightLayout::Pairs.code()),
            Some(WeightLayout::Pairs)
        );
        assert_eq!(
            WeightLayout::from_code(WeightLayout::Tiles.code()),
            Some(WeightLayout::Tiles)
        );
        assert_eq!(WeightLayout::from_code(2), None);
    }

    /// The drop-in kernels' odd-row trick at its bound: the wrapping sums `Σ h·x` and
    /// `Σ w_even·x` give `Σ w_odd·x` exactly for `PAIR_SUM_COLS` columns of the largest
    /// products, and not beyond.
    #[test]
    fn the_pair_sum_trick_is_exact_up_to_its_column_bound() {
        // h = 0x7FFF: w_even = −1, w_odd = 128; h = 0x8080: w_even = −128, w_odd = −128.
        for (lo, hi) in [(0xFFu8, 0x7Fu8), (0x80, 0x80), (0x7F, 0x7F), (0x81, 0x80)] {
            for x in [255i32, -255] {
                let (b, a) = pair_weights(lo, hi);
                let h = i32::from(i16::from_le_bytes([lo, hi]));
                let trick = |n: i32| {
                    let (mut s1, mut s2) = (0i32, 0i32);
                    for _ in 0..n {
                        s1 = s1.wrapping_add(h * x);
                        s2 = s2.wrapping_add(b * x);
                    }
                    (s1.wrapping_sub(s2) >> 8, s2)
                };
                let n = PAIR_SUM_COLS as i32;
                assert_eq!(trick(n), (n * a * x, n * b * x), "{lo:#x} {hi:#x} {x}");
                if a.abs() == 128 {
                    assert_ne!(trick(2 * n).0, 2 * n * a * x, "the bound is needed");
                }
            }
        }
    }

    #[test]
    fn the_validated_contract_excludes_zero_multipliers_and_bad_records() {
        let rec = |m: i32, sh: i32| {
            let mut p = Vec::new();
            for v in [7i32, m, sh] {
                p.extend_from_slice(&v.to_le_bytes());
            }
            p
        };
        assert!(qlinear_records_nonzero(&rec(1 << 30, -3)));
        assert!(qlinear_records_nonzero(&rec(i32::MAX, 30)));
        assert!(qlinear_records_nonzero(&[]));
        assert!(!qlinear_records_nonzero(&rec(0, -3)), "zero multiplier");
        assert!(!qlinear_records_nonzero(&rec(1 << 30, 31)), "shift 31");
        assert!(
            !qlinear_records_nonzero(&rec((1 << 30) - 1, 0)),
            "below 2^30"
        );
        assert!(!qlinear_records_nonzero(&rec(-(1 << 30), 0)), "negative");
    }

    #[test]
    fn lut_and_qadd_cover_every_length_remainder() {
        let table: Vec<u8> = (0..256).map(|i| (i * 7 + 3) as u8).collect();
        let k = QAdd::new(1 << 14, 3 << 12, -(5 << 11), 15).unwrap();
        for n in 0..11 {
            let a: Vec<i8> = (0..n).map(|i| (i as i8).wrapping_mul(37)).collect();
            let b: Vec<i8> = (0..n).map(|i| (i as i8).wrapping_mul(-53)).collect();
            let mut got = a.clone();
            lut(&table, &mut got).unwrap();
            for (g, &x) in got.iter().zip(&a) {
                assert_eq!(*g as u8, table[usize::from(x as u8 ^ 0x80)], "lut, n = {n}");
            }
            let mut got = a.clone();
            qadd(&mut got, &b, k).unwrap();
            for ((g, &x), &y) in got.iter().zip(&a).zip(&b) {
                let v = (k.c + i32::from(x) * k.ma + i32::from(y) * k.mb) >> k.s;
                assert_eq!(i32::from(*g), v.clamp(-128, 127), "qadd, n = {n}");
            }
        }
    }

    #[test]
    fn qlinear_rejects_bad_records_and_shapes_writing_nothing() {
        let w = vec![1u8; 16];
        let xw = [1i16; 4];
        let mut p = Vec::new();
        for _ in 0..4 {
            for v in [0i32, 1 << 30, 31] {
                p.extend_from_slice(&v.to_le_bytes());
            }
        }
        let mut y = [5i8; 4];
        assert!(qlinear(&w, &xw, &p, 0, &mut y).is_err(), "shift 31");
        assert!(qlinear(&w, &xw[..3], &p, 0, &mut y).is_err());
        assert!(qlinear(&w[1..], &xw, &p, 0, &mut y).is_err());
        assert!(qlinear(&w, &xw, &p[1..], 0, &mut y).is_err());
        assert_eq!(y, [5; 4]);
    }

    #[test]
    fn qadd_matches_the_real_sum_within_one_code() {
        // scale_a = 0.02, scale_b = 0.05, scale_y = 0.04; zero points 3, −7, 1; s = 15.
        let (sa, sb, sy, za, zb, zy) = (0.02f64, 0.05f64, 0.04f64, 3, -7, 1);
        let sh = 15;
        let ma = libm::round(sa / sy * f64::from(1 << sh)) as i32;
        let mb = libm::round(sb / sy * f64::from(1 << sh)) as i32;
        let c = zy * (1 << sh) - za * ma - zb * mb + (1 << (sh - 1));
        let k = QAdd::new(c, ma, mb, sh).unwrap();
        let mut a: Vec<i8> = (-128..=127).collect();
        let b: Vec<i8> = (-128..=127).rev().collect();
        let orig = a.clone();
        qadd(&mut a, &b, k).unwrap();
        for i in 0..256 {
            let real =
                sa * f64::from(i32::from(orig[i]) - za) + sb * f64::from(i32::from(b[i]) - zb);
            let want = (libm::round(real / sy) as i32 + zy).clamp(-128, 127);
            assert!((i32::from(a[i]) - want).abs() <= 1, "{i}");
        }
        assert!(QAdd::new(1 << 29, 0, 0, 0).is_err());
        assert!(QAdd::new(0, 1 << 21, 0, 0).is_err());
        assert!(QAdd::new(0, 0, 0, 32).is_err());
    }

    /// The reciprocal by 32-bit digits equals the u64 division it replaced, on every bit
    /// length, its edges and many values between.
    #[test]
    fn reciprocal_equals_the_u64_division() {
        let reference = |r: u64| {
            let b = 64 - r.leading_zeros() as i32;
            let mut m = ((1u64 << (30 + b)) + r / 2) / r;
            let mut shift = 9 - b;
            if m >= 1 << 31 {
                m >>= 1;
                shift += 1;
            }
            (m as i64, shift)
        };
        let mut s = 0x9E37_79B9u32;
        for b in 1..=32u32 {
            let lo = 1u64 << (b - 1);
            let hi = (1u64 << b) - 1;
            for r in [lo, lo + 1, hi - 1, hi, (lo + hi) / 2] {
                if r >= 1 {
                    assert_eq!(reciprocal(r), reference(r), "r = {r}");
                }
            }
            for _ in 0..2000 {
                let r = lo + u64::from(xorshift(&mut s)) % (hi - lo + 1);
                assert_eq!(reciprocal(r), reference(r), "r = {r}");
            }
        }
        for r in 1..=(1u64 << 16) {
            assert_eq!(reciprocal(r), reference(r), "r = {r}");
        }
        assert_eq!(reciprocal(0).0, 0);
    }

    #[test]
    fn isqrt_is_the_floor_square_root() {
        for v in (0..200_000u64).chain([u64::MAX, u64::MAX - 1, 1 << 62, (1 << 62) - 1]) {
            let r = isqrt_u64(v);
            assert!(u128::from(r) * u128::from(r) <= u128::from(v), "{v}");
            assert!(
                (u128::from(r) + 1) * (u128::from(r) + 1) > u128::from(v),
                "{v}"
            );
        }
    }

    #[test]
    fn qlayer_norm_matches_the_real_layer_norm_within_two_codes() {
        let mut s = 0xBEEF_u32;
        for n in [1usize, 2, 7, 96, 128, 4096] {
            let sx = 0.031f64;
            let x: Vec<i8> = (0..n).map(|_| (xorshift(&mut s) % 90) as i8 - 30).collect();
            let zx = 5;
            let eps = 1e-5f64;
            let gam: Vec<f64> = (0..n).map(|i| 0.5 + (i % 13) as f64 * 0.1).collect();
            let bet: Vec<f64> = (0..n).map(|i| (i % 7) as f64 * 0.05 - 0.15).collect();
            let sg = 1.7 / 127.0;
            let sy = 0.05f64;
            let zy = -3;
            let mut ch = Vec::new();
            for i in 0..n {
                let g = libm::round(gam[i] / sg) as i32;
                let b = libm::round(bet[i] / sy) as i32;
                ch.extend_from_slice(&g.to_le_bytes());
                ch.extend_from_slice(&b.to_le_bytes());
            }
            let e = (libm::round(eps * (n * n) as f64 / (sx * sx)) as i32).max(1);
            let c = quantize_multiplier(sg / sy).unwrap();
            let mut y = vec![0i8; n];
            qlayer_norm(&x, &ch, e, c, zy, &mut y).unwrap();
            let real: Vec<f64> = x
                .iter()
                .map(|&q| sx * f64::from(i32::from(q) - zx))
                .collect();
            let mean = real.iter().sum::<f64>() / n as f64;
            let var = real.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
            for i in 0..n {
                let z = (real[i] - mean) / libm::sqrt(var + eps);
                let g = f64::from(libm::round(gam[i] / sg) as i32) * sg;
                let b = f64::from(libm::round(bet[i] / sy) as i32) * sy;
                let want = (libm::round((z * g + b) / sy) as i32 + zy).clamp(-128, 127);
                assert!(
                    (i32::from(y[i]) - want).abs() <= 2,
                    "n {n} i {i}: {} vs {want}",
                    y[i]
                );
            }
        }
        let mut y = [0i8; 2];
        let c = quantize_multiplier(0.5).unwrap();
        assert!(
            qlayer_norm(&[1, 2], &[0; 16], 0, c, 0, &mut y).is_err(),
            "e = 0"
        );
        assert!(qlayer_norm(&[1, 2], &[0; 15], 1, c, 0, &mut y).is_err());
        let big = vec![0i8; MAX_NORM_LEN + 1];
        let mut yb = vec![0i8; MAX_NORM_LEN + 1];
        assert!(qlayer_norm(&big, &vec![0; 8 * (MAX_NORM_LEN + 1)], 1, c, 0, &mut yb).is_err());
    }

    #[test]
    fn table_rows_are_copied_and_out_of_range_rows_refused() {
        let t: Vec<u8> = (0..12u8).collect();
        let mut y = [0i8; 4];
        table_row(&t, 2, &mut y).unwrap();
        assert_eq!(y, [8, 9, 10, 11]);
        assert!(table_row(&t, 3, &mut y).is_err());
        assert!(table_row(&t, usize::MAX, &mut y).is_err());
    }
}
