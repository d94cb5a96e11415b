//! Time embedding and embedding-row gather: bit-identical to the documented loop, within a
//! stated bound of an f64 reference, and errors instead of panics.

mod common;

use common::*;
use microdiff_kernels::{Dtype, KernelError, Matrix, embedding_row, time_embedding};
use proptest::prelude::*;

/// The documented loop, written out.
fn ref_time_embedding(t: f32, max_period: f32, dim: usize) -> Vec<f32> {
    let half = dim / 2;
    let mut out = vec![0.0f32; dim];
    let l = libm::logf(max_period);
    for i in 0..half {
        let e = ((-l) * (i as f32)) / (half as f32);
        let a = t * libm::expf(e);
        out[i] = libm::sinf(a);
        out[half + i] = libm::cosf(a);
    }
    out
}

// Error model, first order, with libm's logf/expf/sinf/cosf taken as accurate to 1 ulp:
// the exponent e = -ln(P) i / half is off by 2u (logf) + u + u relative; freq = exp(e) then
// by 4u|e| + 2u; a = t * freq by 4u|e| + 3u relative; sin(a) moves by as much absolutely,
// plus 1 ulp of a value <= 1 (<= u). The tolerance is twice that bound.
const EMB_E: f64 = 4.0 * U;
const EMB_A: f64 = 3.0 * U;
const EMB_ABS: f64 = U;
const EMB_MARGIN: f64 = 2.0;

fn even_dim() -> impl Strategy<Value = usize> {
    (1usize..=64).prop_map(|h| 2 * h)
}

fn max_period() -> impl Strategy<Value = f32> {
    prop_oneof![Just(10_000.0f32), 0.5f32..1e5, 1e-3f32..1.0]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn time_embedding_is_the_documented_loop(
        t in any_value(),
        p in prop_oneof![max_period(), prop::num::f32::POSITIVE | prop::num::f32::NORMAL],
        dim in even_dim(),
    ) {
        let mut out = vec![f32::NAN; dim];
        time_embedding(t, p, &mut out).unwrap();
        let want = ref_time_embedding(t, p, dim);
        for i in 0..dim {
            prop_assert!(same_bits(out[i], want[i]), "i = {i}: {:e} vs {:e}", out[i], want[i]);
        }
    }

    #[test]
    fn time_embedding_is_within_tolerance_of_f64(
        t in prop_oneof![0.0f32..1000.0, -1.0f32..1.0],
        p in max_period(),
        dim in even_dim(),
    ) {
        let mut out = vec![0.0f32; dim];
        time_embedding(t, p, &mut out).unwrap();
        let half = dim / 2;
        for i in 0..half {
            let e = -f64::from(p).ln() * i as f64 / half as f64;
            let a = f64::from(t) * e.exp();
            let tol = EMB_MARGIN * (a.abs() * (EMB_E * e.abs() + EMB_A) + EMB_ABS);
            for (got, want) in [(out[i], a.sin()), (out[half + i], a.cos())] {
                let err = (f64::from(got) - want).abs();
                prop_assert!(err <= tol, "t={t} P={p} i={i}: {got} vs {want}, {err:e} > {tol:e}");
            }
        }
    }

    #[test]
    fn time_embedding_rejects_bad_arguments(t in any_value(), p in any::<f32>(), dim in 0usize..20) {
        let mut out = vec![7.0f32; dim];
        let got = time_embedding(t, p, &mut out);
        let ok = dim >= 2 && dim % 2 == 0 && p.is_finite() && p > 0.0;
        prop_assert_eq!(got.is_ok(), ok, "{:?}", got);
        if !ok {
            prop_assert!(out.iter().all(|&v| v == 7.0));
        }
    }

    #[test]
    fn embedding_row_is_the_decoded_row(
        dtype in prop_oneof![Just(Dtype::F32), Just(Dtype::F16), Just(Dtype::I8)],
        rows in 1usize..16, cols in 1usize..16,
        seed in prop::collection::vec(any::<u8>(), 16 * 16 * 4),
        scales in prop::collection::vec(scale(), 16),
        row in 0usize..20, out_len in 0usize..20,
    ) {
        let data = &seed[..rows * cols * dtype.bytes_per_element()];
        let s = if dtype == Dtype::I8 { f32_le(&scales[..rows]) } else { Vec::new() };
        let table = Matrix::new(dtype, rows, cols, data, &s).unwrap();
        let mut out = vec![7.0f32; out_len];
        let got = embedding_row(&table, row, &mut out);
        if out_len != cols {
            prop_assert_eq!(got, Err(KernelError::Shape { arg: "out", len: out_len, expected: cols }));
        } else if row >= rows {
            prop_assert_eq!(got, Err(KernelError::OutOfRange { arg: "row", index: row, len: rows }));
        } else {
            prop_assert_eq!(got, Ok(()));
            let mut want = vec![0.0f32; cols];
            table.row_into(row, &mut want).unwrap();
            for c in 0..cols {
                prop_assert!(same_bits(out[c], want[c]));
                prop_assert!(same_bits(out[c], table.get(row, c).unwrap()));
            }
            return Ok(());
        }
        prop_assert!(out.iter().all(|&v| v == 7.0), "output written on error");
    }
}

#[test]
fn time_zero_gives_zero_sines_and_unit_cosines() {
    for dim in [2usize, 4, 32, 128] {
        let mut out = vec![f32::NAN; dim];
        time_embedding(0.0, 10_000.0, &mut out).unwrap();
        let (s, c) = out.split_at(dim / 2);
        assert!(
            s.iter().all(|&v| v == 0.0) && c.iter().all(|&v| v == 1.0),
            "{out:?}"
        );
    }
}
