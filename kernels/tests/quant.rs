//! The int8 export rule: bit-identical to its documented definition, within half a step of
//! the input, symmetric, and round-tripping through a [`Matrix`].

mod common;

use common::*;
use microdiff_kernels::{Dtype, KernelError, Matrix, quantize_row_i8};
use proptest::prelude::*;

/// The documented rule, written out.
fn ref_quantize(w: &[f32]) -> (f32, Vec<i8>) {
    let mut m = 0.0f32;
    for &v in w {
        if libm::fabsf(v) > m {
            m = libm::fabsf(v);
        }
    }
    let scale = m / 127.0;
    let q = w
        .iter()
        .map(|&v| {
            if scale == 0.0 {
                0
            } else {
                libm::roundf(v / scale).clamp(-127.0, 127.0) as i8
            }
        })
        .collect();
    (scale, q)
}

/// Dequantization error allowed per element, in units of the scale: half a step from
/// rounding, plus the rounding of `w / scale` (at most u * 127 relative to a quotient <= 127,
/// with margin).
const QUANT_STEPS: f64 = 0.5 + 128.0 * U;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn quantize_is_the_documented_rule(w in prop::collection::vec(value(), 0..64)) {
        let mut q = vec![99i8; w.len()];
        let s = quantize_row_i8(&w, &mut q).unwrap();
        let (rs, rq) = ref_quantize(&w);
        prop_assert_eq!(s.to_bits(), rs.to_bits());
        prop_assert_eq!(q, rq);
    }

    #[test]
    fn dequantized_is_within_half_a_step(w in prop::collection::vec(value(), 1..64)) {
        let mut q = vec![0i8; w.len()];
        let s = quantize_row_i8(&w, &mut q).unwrap();
        let m = w.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        // For a normal scale the largest element maps to +-127 (a subnormal scale loses
        // precision; such rows only need to stay within the clamp).
        if s >= f32::MIN_POSITIVE {
            prop_assert!(q.iter().any(|&v| v.unsigned_abs() == 127));
            for (&wi, &qi) in w.iter().zip(&q) {
                let err = (f64::from(qi) * f64::from(s) - f64::from(wi)).abs();
                prop_assert!(err <= QUANT_STEPS * f64::from(s), "{wi} -> {qi} * {s}");
            }
        }
        prop_assert!(q.iter().all(|&v| v != -128));
        if m / 127.0 == 0.0 {
            prop_assert_eq!(s, 0.0);
            prop_assert!(q.iter().all(|&v| v == 0));
        }
    }

    #[test]
    fn quantize_is_odd_symmetric(w in prop::collection::vec(value(), 0..64)) {
        let neg: Vec<f32> = w.iter().map(|v| -v).collect();
        let (mut q, mut qn) = (vec![0i8; w.len()], vec![0i8; w.len()]);
        let s = quantize_row_i8(&w, &mut q).unwrap();
        prop_assert_eq!(quantize_row_i8(&neg, &mut qn).unwrap(), s);
        for (a, b) in q.iter().zip(&qn) {
            prop_assert_eq!(*a, -*b);
        }
    }

    #[test]
    fn quantized_rows_round_trip_through_matrix(
        (rows, cols, w) in (1usize..8, 1usize..16)
            .prop_flat_map(|(r, c)| (Just(r), Just(c), prop::collection::vec(value(), r * c)))
    ) {
        let mut codes = vec![0i8; rows * cols];
        let mut scales = Vec::new();
        for (wr, qr) in w.chunks(cols).zip(codes.chunks_mut(cols)) {
            scales.push(quantize_row_i8(wr, qr).unwrap());
        }
        let (data, sb) = (i8_le(&codes), f32_le(&scales));
        let m = Matrix::new(Dtype::I8, rows, cols, &data, &sb).unwrap();
        for r in 0..rows {
            for c in 0..cols {
                let want = f32::from(codes[r * cols + c]) * scales[r];
                prop_assert!(same_bits(m.get(r, c).unwrap(), want));
            }
        }
    }

    #[test]
    fn quantize_checks_lengths(wl in 0usize..10, ql in 0usize..10) {
        let w = vec![1.0f32; wl];
        let mut q = vec![5i8; ql];
        let got = quantize_row_i8(&w, &mut q);
        if wl == ql {
            prop_assert!(got.is_ok());
        } else {
            prop_assert_eq!(got, Err(KernelError::Shape { arg: "q_out", len: ql, expected: wl }));
            prop_assert!(q.iter().all(|&v| v == 5));
        }
    }
}

#[test]
fn non_finite_weights_are_rejected() {
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut q = [3i8; 2];
        assert_eq!(
            quantize_row_i8(&[1.0, bad], &mut q),
            Err(KernelError::Invalid {
                arg: "w",
                requirement: "all finite"
            })
        );
        assert_eq!(q, [3, 3]);
    }
}
