//! Test-only f64 references for the noise module: Φ⁻¹ (AS 241 `PPND16`) and Φ (via erfc).
//!
//! Independent of the f32 code under test: std's `ln`/`exp`/`sqrt` in f64, different
//! coefficients (PPND16 rather than PPND7) and a series / continued-fraction Φ.

// Coefficients verbatim from the paper (20 digits), so they can be checked against it.
#![allow(clippy::excessive_precision)]

extern crate std;

/// AS 241 `PPND16` (Wichura 1988, double precision, relative error ~1e-16) in f64 with std's
/// `ln`: the reference Φ⁻¹. Coefficients from the paper (checked against two published
/// transcriptions); `reference_is_consistent_with_phi` checks it against an independent Φ.
pub fn ppnd16(p: f64) -> f64 {
    // Highest degree first.
    const A: [f64; 8] = [
        2.509_080_928_730_122_672_7e3,
        3.343_057_558_358_812_810_5e4,
        6.726_577_092_700_870_085_3e4,
        4.592_195_393_154_987_145_7e4,
        1.373_169_376_550_946_112_5e4,
        1.971_590_950_306_551_442_7e3,
        1.331_416_678_917_843_774_5e2,
        3.387_132_872_796_366_608_0,
    ];
    const B: [f64; 8] = [
        5.226_495_278_852_854_561_0e3,
        2.872_908_573_572_194_267_4e4,
        3.930_789_580_009_271_061_0e4,
        2.121_379_430_158_659_586_7e4,
        5.394_196_021_424_751_107_7e3,
        6.871_870_074_920_579_083_0e2,
        4.231_333_070_160_091_125_2e1,
        1.0,
    ];
    const C: [f64; 8] = [
        7.745_450_142_783_414_076_4e-4,
        2.272_384_498_926_918_458_33e-2,
        2.417_807_251_774_506_117_7e-1,
        1.270_458_252_452_368_382_58,
        3.647_848_324_763_204_605_04,
        5.769_497_221_460_691_405_5,
        4.630_337_846_156_545_295_9,
        1.423_437_110_749_683_577_34,
    ];
    const D: [f64; 8] = [
        1.050_750_071_644_416_843_24e-9,
        5.475_938_084_995_344_946e-4,
        1.519_866_656_361_645_719_66e-2,
        1.481_039_764_274_800_745_9e-1,
        6.897_673_349_851_000_045_5e-1,
        1.676_384_830_183_803_849_4,
        2.053_191_626_637_758_821_87,
        1.0,
    ];
    const E: [f64; 8] = [
        2.010_334_399_292_288_132_65e-7,
        2.711_555_568_743_487_578_15e-5,
        1.242_660_947_388_078_438_6e-3,
        2.653_218_952_657_612_309_3e-2,
        2.965_605_718_285_048_912_3e-1,
        1.784_826_539_917_291_335_8,
        5.463_784_911_164_114_369_9,
        6.657_904_643_501_103_777_2,
    ];
    const F: [f64; 8] = [
        2.044_263_103_389_939_785_64e-15,
        1.421_511_758_316_445_888_7e-7,
        1.846_318_317_510_054_681_8e-5,
        7.868_691_311_456_132_591e-4,
        1.487_536_129_085_061_485_25e-2,
        1.369_298_809_227_358_053_1e-1,
        5.998_322_065_558_879_376_9e-1,
        1.0,
    ];
    let horner = |x: f64, c: &[f64; 8]| c.iter().fold(0.0, |acc, &k| acc * x + k);
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        let r = 0.180625 - q * q;
        return q * horner(r, &A) / horner(r, &B);
    }
    let r = (-(if q < 0.0 { p } else { 1.0 - p }).ln()).sqrt();
    let z = if r <= 5.0 {
        horner(r - 1.6, &C) / horner(r - 1.6, &D)
    } else {
        horner(r - 5.0, &E) / horner(r - 5.0, &F)
    };
    if q < 0.0 { -z } else { z }
}

/// erfc(x) for x ≥ 0 in f64, relative error ~1e-15: for x < 1.5 the all-positive series
/// erf x = (2/√π)·e^{−x²}·Σ 2ⁿx^{2n+1}/(1·3···(2n+1)) (no cancellation), else the
/// Laplace continued fraction erfc x = e^{−x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))).
fn erfc(x: f64) -> f64 {
    let two_over_sqrt_pi = 2.0 / core::f64::consts::PI.sqrt();
    if x < 1.5 {
        let x2 = x * x;
        let mut term = x;
        let mut sum = x;
        let mut n = 0.0;
        while term > sum * 1e-17 {
            n += 1.0;
            term *= 2.0 * x2 / (2.0 * n + 1.0);
            sum += term;
        }
        1.0 - two_over_sqrt_pi * (-x2).exp() * sum
    } else {
        // Backward evaluation of the continued fraction, 80 levels (relative error
        // ≤ 1.3e-15 at x = 1.5, less above, measured against a high-precision erfc).
        let mut t = 0.0;
        for n in (1..=80).rev() {
            t = (n as f64 / 2.0) / (x + t);
        }
        (-x * x).exp() / core::f64::consts::PI.sqrt() / (x + t)
    }
}

/// Standard normal CDF Φ(z) in f64.
pub fn phi(z: f64) -> f64 {
    let x = z.abs() / core::f64::consts::SQRT_2;
    let tail = 0.5 * erfc(x);
    if z < 0.0 { tail } else { 1.0 - tail }
}
