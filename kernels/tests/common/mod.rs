//! Helpers shared by the kernel test files: value strategies, byte encoders, bit comparison
//! and the floating-point error model the tolerances are written in.
#![allow(dead_code)] // each test file uses a different subset

use proptest::prelude::*;

/// Unit roundoff of f32 (round to nearest): 2^-24.
pub const U: f64 = 1.0 / 16_777_216.0;
/// Unit roundoff of f64: 2^-53 (error of the references themselves).
pub const U64: f64 = 1.0 / 9_007_199_254_740_992.0;
/// Absolute error of one f32 operation whose result is subnormal: half the smallest
/// subnormal spacing is 2^-150; we allow a full spacing, 2^-149.
pub const SUBNORMAL_ULP: f64 = 1.401_298_464_324_817e-45;

/// Higham's gamma_n = n u / (1 - n u) for f32: bound on the relative error accumulated by n
/// rounded operations (e.g. a length-n dot product, Higham (3.4)/(3.5)).
pub fn gamma(n: usize) -> f64 {
    let nu = n as f64 * U;
    nu / (1.0 - nu)
}

/// Same for f64 (the reference's own rounding).
pub fn gamma64(n: usize) -> f64 {
    let nu = n as f64 * U64;
    nu / (1.0 - nu)
}

/// Equal bits, or both NaN (NaN payloads are not specified by Rust or IEEE-754).
pub fn same_bits(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

pub fn f32_le(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn f16_le(bits: &[u16]) -> Vec<u8> {
    bits.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn i8_le(q: &[i8]) -> Vec<u8> {
    q.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// f16 bits to f32, decoded by hand from the IEEE-754 binary16 layout (independent of `half`).
pub fn f16_bits_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let mant = f64::from(h & 0x3ff);
    let mag = match exp {
        0 => mant * 2f64.powi(-24),
        31 if mant == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        _ => (1024.0 + mant) * 2f64.powi(exp - 25),
    };
    (sign * mag) as f32
}

/// Finite f32 values a network meets, plus the awkward ones: signed zeros, tiny values whose
/// products are subnormal, and large values (|x| <= 1e18 so 64-term sums of products stay
/// finite).
pub fn value() -> impl Strategy<Value = f32> {
    prop_oneof![
        8 => -2.0f32..2.0,
        2 => -1e18f32..1e18,
        2 => -1e-20f32..1e-20,
        1 => prop::num::f32::SUBNORMAL | prop::num::f32::POSITIVE | prop::num::f32::NEGATIVE,
        1 => Just(0.0f32),
        1 => Just(-0.0f32),
    ]
}

/// Any f32 at all (NaN, infinities, extremes) mixed with [`value`]: for bit-identity tests.
pub fn any_value() -> impl Strategy<Value = f32> {
    prop_oneof![3 => value(), 1 => any::<f32>()]
}

/// Bounded values for tolerance tests: no overflow anywhere in a 64-term dot product.
pub fn bounded_value() -> impl Strategy<Value = f32> {
    prop_oneof![
        8 => -2.0f32..2.0,
        2 => -1e15f32..1e15,
        2 => -1e-20f32..1e-20,
        1 => Just(0.0f32),
        1 => Just(-0.0f32),
    ]
}

/// Bits of a finite f16 (normal, subnormal, zero; both signs).
pub fn finite_f16_bits() -> impl Strategy<Value = u16> {
    any::<u16>().prop_filter("finite f16", |h| h & 0x7c00 != 0x7c00)
}

/// A positive int8 row scale over many magnitudes, and sometimes 0 (an all-zero row).
pub fn scale() -> impl Strategy<Value = f32> {
    prop_oneof![
        6 => 1e-6f32..1.0,
        1 => 1.0f32..1e6,
        1 => Just(0.0f32),
    ]
}
