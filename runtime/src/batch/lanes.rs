//! Lane kernels: the device kernels' arithmetic applied to `lanes` samples at once.
//!
//! Layout: a value of `len` elements for a block of `lanes` samples is `len * lanes` f32,
//! element-major — element `i` of sample `l` is at `i * lanes + l` — so one element of every
//! sample is contiguous and a SIMD register holds one element of 16 (or 8) samples.
//!
//! Every function here performs, for each sample, exactly the sequence of IEEE operations the
//! matching device kernel documents (`microdiff_kernels`: the sequential dot product, the
//! layer-norm formula, `x / (1 + expf(-x))` with libm's `expf`), only side by side for many
//! samples. Rust never contracts `a + b * c` into a fused multiply-add, and vector division and
//! square root are correctly rounded like scalar ones, so each sample's bits are the device's.
//! The functions are `#[inline(always)]` so that [`super::isa`] compiles them once per
//! instruction set; their fixed-size array loops are what the compiler turns into SIMD code.
//! The matrix kernel is the exception that matters for speed: [`Kernels`] is implemented here in
//! portable Rust and in `isa` with AVX-512 / AVX2 intrinsics, the same products and sums.

use microdiff_kernels::Activation;
use std::vec::Vec;

/// Samples handled side by side in the element-wise loops (one AVX-512 register).
pub(crate) const CHUNK: usize = 16;

/// Rows per weight panel: [`Packed`] stores 4 rows interleaved so one pass over the input
/// feeds 4 accumulators per sample.
pub(crate) const PANEL: usize = 4;

/// A weight matrix decoded to f32 (exactly: f16 widens exactly, int8 codes convert exactly)
/// and packed for the matrix kernel ([`Kernels`]): full panels of [`PANEL`] rows as `(cols, PANEL)` blocks, then the
/// remaining rows row-major.
#[derive(Debug, Clone)]
pub(crate) struct Packed {
    pub rows: usize,
    pub cols: usize,
    /// `rows / PANEL` panels of `cols * PANEL`: panel `p`, column `i`, row `k` at
    /// `p * cols * PANEL + i * PANEL + k`.
    pub panels: Vec<f32>,
    /// The last `rows % PANEL` rows, row-major.
    pub tail: Vec<f32>,
}

impl Packed {
    /// Packs a row-major `(rows, cols)` f32 matrix; `None` if `w` is not `rows * cols` long.
    pub fn new(w: &[f32], rows: usize, cols: usize) -> Option<Self> {
        if rows.checked_mul(cols)? != w.len() {
            return None;
        }
        let full = rows / PANEL;
        let mut panels = Vec::with_capacity(full * cols * PANEL);
        for block in w.chunks_exact(cols.max(1) * PANEL).take(full) {
            for i in 0..cols {
                panels.extend(block.iter().skip(i).step_by(cols.max(1)).take(PANEL));
            }
        }
        Some(Packed {
            rows,
            cols,
            panels,
            tail: w.get(full * PANEL * cols..)?.to_vec(),
        })
    }
}

/// The matrix kernel of an instruction set: `y = W·x (· scale) (+ bias)` for every sample.
///
/// Shapes: `x` (cols, lanes); `y` (rows, lanes); `scale` and `bias` (rows). Per sample and
/// row: `acc = 0; acc = acc + w[r][i] * x[i]` for `i` in order, then `acc * scale[r]` (int8
/// weights only), then `+ bias[r]` — `microdiff_kernels::gemv`. Implementations differ only
/// in how many samples and rows they keep in registers.
pub(crate) trait Kernels: Copy {
    /// The matrix kernel.
    fn gemv(
        self,
        w: &Packed,
        scale: Option<&[f32]>,
        bias: Option<&[f32]>,
        x: &[f32],
        y: &mut [f32],
        lanes: usize,
    );
}

/// Plain Rust, any target: tiles of [`PANEL`] rows × 8 samples.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Portable;

impl Kernels for Portable {
    #[inline(always)]
    fn gemv(
        self,
        w: &Packed,
        scale: Option<&[f32]>,
        bias: Option<&[f32]>,
        x: &[f32],
        y: &mut [f32],
        lanes: usize,
    ) {
        gemv_from(w, scale, bias, x, y, lanes, 0);
    }
}

/// Samples `l0..lanes` of the matrix kernel in portable tiles of 8 samples, then one at a time
/// (also the tail after a SIMD kernel's whole tiles).
#[inline(always)]
pub(crate) fn gemv_from(
    w: &Packed,
    scale: Option<&[f32]>,
    bias: Option<&[f32]>,
    x: &[f32],
    y: &mut [f32],
    lanes: usize,
    mut l0: usize,
) {
    while l0 + 8 <= lanes {
        gemv_lanes::<8>(w, scale, bias, x, y, lanes, l0);
        l0 += 8;
    }
    while l0 < lanes {
        gemv_lanes::<1>(w, scale, bias, x, y, lanes, l0);
        l0 += 1;
    }
}

/// Samples `l0..l0 + L` of the matrix kernel, all rows.
#[inline(always)]
fn gemv_lanes<const L: usize>(
    w: &Packed,
    scale: Option<&[f32]>,
    bias: Option<&[f32]>,
    x: &[f32],
    y: &mut [f32],
    lanes: usize,
    l0: usize,
) {
    let x = x.get(..w.cols * lanes).unwrap_or(&[]);
    let panel_len = w.cols * PANEL;
    if panel_len > 0 {
        for (p, panel) in w.panels.chunks_exact(panel_len).enumerate() {
            let acc = dot_tile::<PANEL, L>(panel, x, lanes, l0);
            store_tile(&acc, p * PANEL, scale, bias, y, lanes, l0);
        }
    }
    let r0 = w.rows - w.tail.len() / w.cols.max(1);
    for (k, row) in w.tail.chunks_exact(w.cols.max(1)).enumerate() {
        let acc = dot_tile::<1, L>(row, x, lanes, l0);
        store_tile(&acc, r0 + k, scale, bias, y, lanes, l0);
    }
    if w.cols == 0 {
        // Empty dot products: acc = 0 for every row (a validated blob has no such layer).
        for r in 0..w.rows {
            store_tile(&[[0.0f32; L]], r, scale, bias, y, lanes, l0);
        }
    }
}

/// The sequential dot products of the `R` interleaved rows of `panel` ((cols, R)) with
/// samples `l0..l0 + L` of `x` ((cols, lanes)).
#[inline(always)]
fn dot_tile<const R: usize, const L: usize>(
    panel: &[f32],
    x: &[f32],
    lanes: usize,
    l0: usize,
) -> [[f32; L]; R] {
    let mut acc = [[0.0f32; L]; R];
    for (wi, xrow) in panel.chunks_exact(R).zip(x.chunks_exact(lanes)) {
        let Some(xs) = xrow.get(l0..l0 + L) else {
            break;
        };
        let Ok(xs) = <&[f32; L]>::try_from(xs) else {
            break;
        };
        for (a, &w) in acc.iter_mut().zip(wi) {
            for (al, &xl) in a.iter_mut().zip(xs) {
                // Two roundings, as the device kernel: never a fused multiply-add.
                *al += w * xl;
            }
        }
    }
    acc
}

/// Applies the int8 scale and the bias to a finished tile (rows `r0..r0 + R`) and stores it.
#[inline(always)]
fn store_tile<const R: usize, const L: usize>(
    acc: &[[f32; L]; R],
    r0: usize,
    scale: Option<&[f32]>,
    bias: Option<&[f32]>,
    y: &mut [f32],
    lanes: usize,
    l0: usize,
) {
    for (k, a) in acc.iter().enumerate() {
        let r = r0 + k;
        let s = scale.and_then(|s| s.get(r).copied());
        let b = bias.and_then(|b| b.get(r).copied());
        if let Some(out) = y.get_mut(r * lanes + l0..r * lanes + l0 + L) {
            for (o, &v) in out.iter_mut().zip(a) {
                let mut v = v;
                if let Some(s) = s {
                    v *= s;
                }
                if let Some(b) = b {
                    v += b;
                }
                *o = v;
            }
        }
    }
}

// libm 0.2's `expf` (FreeBSD e_expf.c), constant for constant.
const LN2_HI: f32 = 6.931_457_5e-1; // 0x3f317200
const LN2_LO: f32 = 1.428_606_8e-6; // 0x35bfbe8e
const INV_LN2: f32 = core::f32::consts::LOG2_E; // 0x3fb8aa3b, libm's 1.4426950216e+00
const P1: f32 = 1.666_662_5e-1; // 0x3e2aaa8f
const P2: f32 = -2.766_733_3e-3; // 0xbb355215

/// `libm::expf` of `CHUNK` values, bit for bit.
///
/// The same operations as libm's `expf` for every lane whose `|x| < 87.33655` (where libm takes
/// no special path): argument reduction `k = trunc(x/ln2 ± ½)` (or `±1`, or `0` for small
/// `|x|`), `hi = x − k·ln2_hi`, `lo = k·ln2_lo`, the rational approximation, and `scalbnf(y, k)`,
/// which for these `k` (−126..=126) is one exact multiplication by `2^k`. Lanes with `|x| ≤
/// 2⁻¹⁴` take libm's `1 + x`. Any lane beyond the range (or NaN) is recomputed by libm itself.
#[inline(always)]
pub(crate) fn expf_chunk(x: &[f32; CHUNK]) -> [f32; CHUNK] {
    let mut out = [0.0f32; CHUNK];
    let mut special = false;
    for (o, &xv) in out.iter_mut().zip(x) {
        let bits = xv.to_bits();
        let hx = bits & 0x7fff_ffff;
        let negative = bits >> 31 != 0;
        special |= hx >= 0x42ae_ac50;
        // k as an integer-valued f32: `trunc` is exactly libm's `as i32` for these |k| < 128,
        // and keeps the whole loop in vector registers (a saturating `as` would not).
        let kf = if hx > 0x3f85_1592 {
            let half = if negative { -0.5 } else { 0.5 };
            (INV_LN2 * xv + half).trunc()
        } else if hx > 0x3eb1_7218 {
            if negative { -1.0 } else { 1.0 }
        } else {
            // libm keeps x, hi = x, lo = 0 here; with k = 0 the general formulas below give
            // exactly that (x − 0·c = x, also for −0).
            0.0
        };
        let hi = xv - kf * LN2_HI;
        let lo = kf * LN2_LO;
        let r = hi - lo;
        let rr = r * r;
        let c = r - rr * (P1 + rr * P2);
        let y = 1.0 + (r * c / (2.0 - c) - lo + hi);
        // 2^k: k + 127 (1..=253 on non-special lanes) lands in the low mantissa bits of
        // 2^23 + k + 127, all exact; special lanes are recomputed below.
        let biased = ((kf + 127.0) + 8_388_608.0).to_bits() & 0xff;
        let pow2 = f32::from_bits(biased << 23);
        let v = y * pow2;
        *o = if hx <= 0x3900_0000 { 1.0 + xv } else { v };
    }
    if special {
        for (o, &xv) in out.iter_mut().zip(x) {
            if xv.to_bits() & 0x7fff_ffff >= 0x42ae_ac50 {
                *o = libm::expf(xv);
            }
        }
    }
    out
}

/// `xs[i] = act(xs[i])` over a whole value (all elements, all samples): the activation is
/// element-wise, so the layout does not matter. SiLU is computed `CHUNK` lanes at a time with
/// [`expf_chunk`]; the others call the device's scalar function per element.
#[inline(always)]
pub(crate) fn activation(act: Activation, xs: &mut [f32]) {
    if act != Activation::Silu {
        act.apply_slice(xs);
        return;
    }
    let mut chunks = xs.chunks_exact_mut(CHUNK);
    for c in &mut chunks {
        let Ok(c) = <&mut [f32; CHUNK]>::try_from(c) else {
            continue;
        };
        let mut neg = [0.0f32; CHUNK];
        for (n, &v) in neg.iter_mut().zip(c.iter()) {
            *n = -v;
        }
        let e = expf_chunk(&neg);
        for (v, &ev) in c.iter_mut().zip(&e) {
            *v /= 1.0 + ev;
        }
    }
    act.apply_slice(chunks.into_remainder());
}

/// Layer norm of each sample's `n` elements: `microdiff_kernels::layer_norm` per sample.
///
/// `x`, `y`: (n, lanes); `gamma`, `beta`: (n). `y` may not alias `x` (the caller copies first
/// when the plan puts them on the same slots).
#[inline(always)]
pub(crate) fn layer_norm(
    x: &[f32],
    gamma: Option<&[f32]>,
    beta: Option<&[f32]>,
    eps: f32,
    y: &mut [f32],
    n: usize,
    lanes: usize,
) {
    let mut l0 = 0;
    while l0 + CHUNK <= lanes {
        layer_norm_tile::<CHUNK>(x, gamma, beta, eps, y, n, lanes, l0);
        l0 += CHUNK;
    }
    while l0 < lanes {
        layer_norm_tile::<1>(x, gamma, beta, eps, y, n, lanes, l0);
        l0 += 1;
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn layer_norm_tile<const L: usize>(
    x: &[f32],
    gamma: Option<&[f32]>,
    beta: Option<&[f32]>,
    eps: f32,
    y: &mut [f32],
    n: usize,
    lanes: usize,
    l0: usize,
) {
    let at = |i: usize| i * lanes + l0..i * lanes + l0 + L;
    let nf = n as f32;
    let mut s = [0.0f32; L];
    for i in 0..n {
        if let Some(xs) = x.get(at(i)) {
            s.iter_mut().zip(xs).for_each(|(s, &v)| *s += v);
        }
    }
    let mean = s.map(|s| s / nf);
    let mut q = [0.0f32; L];
    for i in 0..n {
        if let Some(xs) = x.get(at(i)) {
            for ((q, &v), &m) in q.iter_mut().zip(xs).zip(&mean) {
                let d = v - m;
                *q += d * d;
            }
        }
    }
    // f32::sqrt is correctly rounded, like libm::sqrtf.
    let inv = q.map(|q| 1.0 / (q / nf + eps).sqrt());
    for i in 0..n {
        let g = gamma.and_then(|g| g.get(i).copied());
        let b = beta.and_then(|b| b.get(i).copied());
        let (Some(xs), Some(ys)) = (x.get(at(i)), y.get_mut(at(i))) else {
            continue;
        };
        for (((o, &v), &m), &inv) in ys.iter_mut().zip(xs).zip(&mean).zip(&inv) {
            let mut r = (v - m) * inv;
            if let Some(g) = g {
                r *= g;
            }
            if let Some(b) = b {
                r += b;
            }
            *o = r;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_exp(xs: &[f32]) {
        for c in xs.chunks(CHUNK) {
            let mut a = [0.0f32; CHUNK];
            a[..c.len()].copy_from_slice(c);
            let got = expf_chunk(&a);
            for (&x, &g) in a.iter().zip(&got) {
                let want = libm::expf(x);
                assert!(
                    g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()),
                    "expf({x:e} = {:#010x}): {g:e} vs libm {want:e}",
                    x.to_bits()
                );
            }
        }
    }

    #[test]
    fn constants_are_libms_bit_for_bit() {
        assert_eq!(LN2_HI.to_bits(), 0x3f31_7200);
        assert_eq!(LN2_LO.to_bits(), 0x35bf_be8e);
        assert_eq!(INV_LN2.to_bits(), 0x3fb8_aa3b);
        assert_eq!(P1.to_bits(), 0x3e2a_aa8f);
        assert_eq!(P2.to_bits(), 0xbb35_5215);
    }

    #[test]
    fn expf_matches_libm_on_a_sweep_of_bit_patterns() {
        // Every 4093rd bit pattern (a prime stride, so every exponent and many mantissas).
        let xs: Vec<f32> = (0..=u32::MAX / 4093)
            .map(|k| f32::from_bits(k.wrapping_mul(4093)))
            .collect();
        check_exp(&xs);
    }

    #[test]
    fn expf_matches_libm_at_every_branch_boundary() {
        let mut xs = Vec::new();
        for edge in [
            0x42ae_ac50u32, // special range
            0x42b1_7218,    // overflow
            0x42cf_f1b5,    // underflow to zero
            0x3f85_1592,    // |x| > 1.5 ln2
            0x3eb1_7218,    // |x| > 0.5 ln2
            0x3900_0000,    // |x| > 2^-14
            0x7f80_0000,    // infinity
            0,
        ] {
            for sign in [0, 0x8000_0000u32] {
                for d in 0..=2000u32 {
                    xs.push(f32::from_bits((edge | sign).wrapping_add(d)));
                    xs.push(f32::from_bits((edge | sign).wrapping_sub(d)));
                }
            }
        }
        // k = −126: results near the bottom of the normal range.
        let mut x = -87.34f32;
        while x < -86.0 {
            xs.push(x);
            x = f32::from_bits(x.to_bits() - 97);
        }
        xs.extend([f32::NAN, -f32::NAN, f32::INFINITY, f32::NEG_INFINITY]);
        check_exp(&xs);
    }

    #[test]
    fn silu_matches_the_device_kernel() {
        let mut xs: Vec<f32> = (0..4000)
            .map(|i| (i as f32 - 2000.0) * 0.0613)
            .chain([f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, 0.0, 1e-30])
            .collect();
        let want: Vec<f32> = xs.iter().map(|&x| microdiff_kernels::silu(x)).collect();
        activation(Activation::Silu, &mut xs);
        for (g, w) in xs.iter().zip(&want) {
            assert!(g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()));
        }
    }
}
