//! Branch-free `exp`, sigmoid and SiLU for the CPU backend's element-wise loops.
//!
//! `libm::expf` is a scalar call with branches, so a loop over it cannot be vectorised; with
//! the per-element `match` of `Activation`, SiLU was a quarter of a training step. These functions are straight-line arithmetic (clamp, Cody–Waite
//! range reduction, a polynomial, an exponent built from bits) that the compiler turns into SIMD
//! code. They promise a relative error within [`EXP_REL_TOL`] of the true `exp` over the whole
//! clamped range, and the same bits on every x86-64 CPU (no fused multiply-add is used, so the
//! vector width does not change the arithmetic). They are *not* bit-identical to
//! `microdiff_kernels::Activation`, which the device runtime uses: the trainer only needs
//! accurate gradients, and the exported network is checked against the runtime with a tolerance.

/// Largest relative error of [`exp`] against the correctly rounded value, with margin: the
/// Cephes `expf` polynomial is accurate to about 1 ulp (6e-8) on the reduced range, and the
/// reduction and the final scaling add a rounding each; measured worst case 8.0e-8 over a
/// grid of 240 000 points spanning the range.
#[cfg_attr(not(test), allow(dead_code))] // the promise, checked by the tests below
const EXP_REL_TOL: f32 = 3e-7;

/// `exp` saturates here: `e^88.5` is near `f32::MAX` and `2^-126` (the smallest normal
/// scale) lies just below `e^-87.3`.
const EXP_MAX: f32 = 88.0;
const EXP_MIN: f32 = -87.0;
/// `1.5·2²³`: adding it rounds to an integer and leaves the integer in the low mantissa bits.
const SHIFTER: f32 = 12_582_912.0;
/// ln 2 split so that `n·LN2_HI` is exact for |n| < 512 (Cody & Waite; the Cephes constants).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;

/// `e^x` for `x` clamped to [-87, 88] (NaN stays NaN).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    // `max`/`min` would drop a NaN; this form keeps it (comparisons with NaN are false).
    let x = if x > EXP_MAX { EXP_MAX } else { x };
    let x = if x < EXP_MIN { EXP_MIN } else { x };
    let t = x * std::f32::consts::LOG2_E + SHIFTER;
    let n = t - SHIFTER;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    // Cephes expf: e^r = 1 + r + r²·P(r) on |r| ≤ ln2/2 (its last coefficient, 0.50000001, is
    // 0.5 in f32).
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let er = p * (r * r) + r + 1.0;
    // 2^n from the integer in t's low mantissa bits (n ∈ [-126, 127] after the clamp).
    let n_int = t.to_bits().wrapping_sub(SHIFTER.to_bits());
    er * f32::from_bits(n_int.wrapping_add(127) << 23)
}

/// `1 / (1 + e^-x)`.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `x·σ(x)`.
#[inline(always)]
pub fn silu(x: f32) -> f32 {
    x * sigmoid(x)
}

/// `σ(x)·(1 + x·(1 − σ(x)))`, the derivative of [`silu`].
#[inline(always)]
pub fn silu_grad(x: f32) -> f32 {
    let s = sigmoid(x);
    s * (1.0 + x * (1.0 - s))
}

/// Defines `fn name(args)` whose body is also compiled for AVX-512F and for AVX2, and picks
/// the widest version the CPU has at run time, so the element-wise loops in the body use 16 or
/// 8 lanes instead of the baseline's 4 (SSE2). Every version performs the same IEEE
/// operations — Rust never contracts `a·b + c` into a fused multiply-add, and vector `sqrt`
/// and division round like scalar ones — so the result does not depend on the version. Helpers
/// the body calls must be `#[inline(always)]` to be compiled into each version.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                unsafe fn avx512($($arg: $ty),*) {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                unsafe fn avx2($($arg: $ty),*) {
                    body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU supports AVX-512F (checked just above), the only
                    // requirement of calling a function compiled with that target feature.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU supports AVX2 (checked just above).
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use multiversion;

#[cfg(test)]
mod tests {
    use super::*;

    /// SiLU and its derivative agree with the libm-based kernels to a few ulp of their scale;
    /// the bound follows from [`EXP_REL_TOL`] through `1/(1+e)` (relative error at most that of
    /// `e`) plus the roundings of the formula.
    const SILU_REL_TOL: f32 = 1e-6;

    #[test]
    fn exp_is_accurate_over_the_clamped_range() {
        let mut worst = 0.0f64;
        let mut x = EXP_MIN;
        while x <= EXP_MAX {
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            worst = worst.max(((got - want) / want).abs());
            x += 0.000_731;
        }
        println!("exp: worst relative error {worst:e}");
        assert!(worst < EXP_REL_TOL as f64, "worst relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(exp(1000.0), exp(EXP_MAX));
        assert_eq!(exp(-1000.0), exp(EXP_MIN));
    }

    #[test]
    fn silu_matches_the_kernels_to_rounding() {
        use microdiff_kernels::act;
        let mut x = -30.0f32;
        while x <= 30.0 {
            let (a, b) = (silu(x), act::silu(x));
            assert!(
                (a - b).abs() <= SILU_REL_TOL * b.abs().max(1e-3),
                "silu({x}): {a} vs {b}"
            );
            // The derivative crosses zero near x = −1.28 (cancellation in 1 + x(1 − σ)): compare
            // against the scale of its terms, which is about 1.
            let (a, b) = (silu_grad(x), act::silu_grad(x));
            assert!(
                (a - b).abs() <= SILU_REL_TOL * b.abs().max(1.0),
                "silu'({x}): {a} vs {b}"
            );
            x += 0.001_37;
        }
        assert!(silu(-200.0).abs() < 1e-30);
        let differ = (0..100_000)
            .map(|i| -20.0 + i as f32 * 4e-4)
            .filter(|&x| silu(x) != act::silu(x))
            .count();
        println!("silu differs from the kernels' in {differ} of 100000 points");
        assert_eq!(silu(200.0), 200.0);
    }
}
