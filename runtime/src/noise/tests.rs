//! Tests of the public API: counter layout, fill/element consistency, independence of
//! streams, statistics of 2²² draws, and golden bits.

extern crate std;

use super::reference::phi;
use super::{Domain, NoiseStream, philox4x32_10, standard_normal, uniform_open};
use std::println;
use std::vec;
use std::vec::Vec;

const SEED: u64 = 0x0123_4567_89AB_CDEF;

#[test]
fn block_follows_the_documented_layout() {
    let s = NoiseStream::new(SEED, 7, Domain::TrainTime);
    assert_eq!(
        s.block(3, 11),
        philox4x32_10([11, 3, 7, 2], [0x89AB_CDEF, 0x0123_4567])
    );
    assert_eq!(Domain::Sampler as u32, 0);
    assert_eq!(Domain::TrainNoise as u32, 1);
    assert_eq!(Domain::TrainTime as u32, 2);
    assert_eq!(Domain::TrainDropout as u32, 3);
    // Element e is lane e % 4 of block e / 4.
    for e in [0u32, 1, 2, 3, 4, 5, 41, u32::MAX - 1, u32::MAX] {
        let b = s.block(3, e / 4);
        assert_eq!(s.raw(3, e), b[(e % 4) as usize]);
        assert_eq!(
            s.normal(3, e).to_bits(),
            standard_normal(b[(e % 4) as usize]).to_bits()
        );
        assert_eq!(
            s.uniform(3, e).to_bits(),
            uniform_open(b[(e % 4) as usize]).to_bits()
        );
    }
}

#[test]
fn fill_equals_per_element_and_is_independent_of_length() {
    let s = NoiseStream::new(SEED, 3, Domain::Sampler);
    let mut long = vec![0.0f32; 1001];
    s.fill_normal(5, &mut long);
    for (i, z) in long.iter().enumerate() {
        assert_eq!(z.to_bits(), s.normal(5, i as u32).to_bits(), "element {i}");
    }
    // The first k of a longer fill equal a fill of length k, for every k (including the
    // lengths that end mid-block).
    for k in 0..=long.len() {
        let mut short = vec![f32::NAN; k];
        s.fill_normal(5, &mut short);
        assert!(
            short
                .iter()
                .zip(&long)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "k = {k}"
        );
    }
}

/// Draws from every identifying field changed one at a time, and checks none coincides.
#[test]
fn streams_draws_domains_and_seeds_differ() {
    let base = NoiseStream::new(SEED, 0, Domain::Sampler);
    let variants = [
        base,
        NoiseStream {
            seed: SEED + 1,
            ..base
        },
        NoiseStream {
            seed: SEED ^ (1 << 32),
            ..base
        },
        NoiseStream { stream: 1, ..base },
        NoiseStream {
            domain: Domain::TrainNoise,
            ..base
        },
        NoiseStream {
            domain: Domain::TrainTime,
            ..base
        },
        NoiseStream {
            domain: Domain::TrainDropout,
            ..base
        },
    ];
    let mut all: Vec<[u32; 16]> = Vec::new();
    for v in variants {
        for draw in 0..3 {
            let mut out = [0.0f32; 16];
            v.fill_normal(draw, &mut out);
            all.push(out.map(f32::to_bits));
        }
    }
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            // Not merely different vectors: no two share more than a chance coincidence.
            let same = a.iter().zip(b).filter(|(x, y)| x == y).count();
            assert!(same <= 1, "{a:x?} vs {b:x?}");
        }
    }
}

/// Statistics of N = 2²² normals from 16 streams × 4 draws × 65 536 elements.
///
/// Bounds are 5 standard errors of each statistic under the null hypothesis (sd of the mean
/// 1/√N, of the variance √(2/N), of the skewness √(6/N), of the excess kurtosis √(24/N)), and the
/// Kolmogorov–Smirnov critical value at level 1e-3, 1.95/√N.
#[test]
fn statistics_of_four_million_draws() {
    const STREAMS: u32 = 16;
    const DRAWS: u32 = 4;
    const LEN: usize = 1 << 16;
    let mut zs: Vec<f64> = Vec::with_capacity(STREAMS as usize * DRAWS as usize * LEN);
    let mut buf = vec![0.0f32; LEN];
    for stream in 0..STREAMS {
        let s = NoiseStream::new(42, stream, Domain::Sampler);
        for draw in 0..DRAWS {
            s.fill_normal(draw, &mut buf);
            zs.extend(buf.iter().map(|&z| f64::from(z)));
        }
    }
    let n = zs.len() as f64;
    let mean = zs.iter().sum::<f64>() / n;
    let m2 = zs.iter().map(|z| (z - mean).powi(2)).sum::<f64>() / n;
    let m3 = zs.iter().map(|z| (z - mean).powi(3)).sum::<f64>() / n;
    let m4 = zs.iter().map(|z| (z - mean).powi(4)).sum::<f64>() / n;
    let skew = m3 / m2.powf(1.5);
    let excess_kurtosis = m4 / (m2 * m2) - 3.0;

    zs.sort_unstable_by(f64::total_cmp);
    let mut d = 0.0f64;
    for (i, &z) in zs.iter().enumerate() {
        let cdf = phi(z);
        d = d
            .max(((i + 1) as f64 / n - cdf).abs())
            .max((cdf - i as f64 / n).abs());
    }
    println!(
        "N = {n}: mean {mean:.3e}, var {m2:.6}, skew {skew:.3e}, excess kurtosis \
         {excess_kurtosis:.3e}, KS D = {d:.3e} (critical {:.3e}), min {}, max {}",
        1.95 / n.sqrt(),
        zs[0],
        zs[zs.len() - 1]
    );
    assert!(mean.abs() < 5.0 / n.sqrt(), "mean {mean}");
    assert!((m2 - 1.0).abs() < 5.0 * (2.0 / n).sqrt(), "variance {m2}");
    assert!(skew.abs() < 5.0 * (6.0 / n).sqrt(), "skew {skew}");
    assert!(
        excess_kurtosis.abs() < 5.0 * (24.0 / n).sqrt(),
        "kurtosis {excess_kurtosis}"
    );
    assert!(d < 1.95 / n.sqrt(), "KS D = {d}");
}

/// Uniforms: mean ½ and variance 1/12 within 5 standard errors, and KS against U(0, 1).
#[test]
fn uniform_statistics() {
    let s = NoiseStream::new(7, 0, Domain::TrainTime);
    let mut us: Vec<f64> = (0..1u32 << 20)
        .map(|e| f64::from(s.uniform(0, e)))
        .collect();
    let n = us.len() as f64;
    let mean = us.iter().sum::<f64>() / n;
    let var = us.iter().map(|u| (u - mean).powi(2)).sum::<f64>() / n;
    us.sort_unstable_by(f64::total_cmp);
    let d = us
        .iter()
        .enumerate()
        .map(|(i, &u)| ((i + 1) as f64 / n - u).abs().max((u - i as f64 / n).abs()))
        .fold(0.0, f64::max);
    println!("uniform N = {n}: mean {mean:.6}, var {var:.6}, KS D = {d:.3e}");
    // sd of the mean √(1/12N); sd of the variance √(1/180N) for U(0,1).
    assert!((mean - 0.5).abs() < 5.0 * (1.0 / (12.0 * n)).sqrt());
    assert!((var - 1.0 / 12.0).abs() < 5.0 * (1.0 / (180.0 * n)).sqrt());
    assert!(d < 1.95 / n.sqrt());
    assert!(us[0] > 0.0 && us[us.len() - 1] < 1.0);
}

/// The first 8 normals of `NoiseStream { seed: 42, stream: 0, domain: Sampler }`, draw 0, as
/// bit patterns. Part of the cross-platform contract: if this fails, the noise changed.
#[test]
fn golden_first_eight_normals() {
    // 0.2870419, -0.07882343, -1.4521371, -0.410113,
    // 2.2482126, -0.4480367, 0.034864612, -0.1147653
    const GOLDEN: [u32; 8] = [
        0x3E92_F728,
        0xBDA1_6E2E,
        0xBFB9_DFA1,
        0xBED1_FA55,
        0x400F_E2B7,
        0xBEE5_6511,
        0x3D0E_CE32,
        0xBDEB_0A12,
    ];
    let s = NoiseStream::new(42, 0, Domain::Sampler);
    let mut out = [0.0f32; 8];
    s.fill_normal(0, &mut out);
    let bits = out.map(f32::to_bits);
    assert_eq!(bits, GOLDEN, "values {out:?}");
}

/// Golden raw words and uniforms of the trainer domains, so their layout is pinned too.
#[test]
fn golden_trainer_domains() {
    const GOLDEN_RAW: [u32; 4] = [0xD9D1_4FB4, 0xF885_5088, 0xF59B_AC62, 0xCD8A_250C];
    // 0.85085005, 0.97078425, 0.9594067, 0.80288917
    const GOLDEN_UNIFORM: [u32; 4] = [0x3F59_D14F, 0x3F78_8551, 0x3F75_9BAD, 0x3F4D_8A25];
    let s = NoiseStream::new(42, 1, Domain::TrainTime);
    let raw = [0, 1, 2, 3].map(|e| s.raw(9, e));
    let uni = [0, 1, 2, 3].map(|e| s.uniform(9, e).to_bits());
    assert_eq!(raw, GOLDEN_RAW, "raw {raw:#010x?}");
    assert_eq!(uni, GOLDEN_UNIFORM, "uniform bits {uni:#010x?}");
}
