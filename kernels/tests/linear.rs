//! Dot products and gemv: bit-identical to the documented scalar loop, within the classic
//! dot-product error bound of an f64 reference, and never panicking on bad lengths.

// The references spell out the documented loops literally, indices and all.
#![allow(clippy::assign_op_pattern, clippy::needless_range_loop)]

mod common;

use common::*;
use microdiff_kernels::{
    Dtype, KernelError, Matrix, dot_f16, dot_f32, dot_i8, gemv, gemv_bias_bytes,
};
use proptest::prelude::*;

/// The documented reduction, written out independently of the crate.
fn ref_dot(w: &[f32], x: &[f32]) -> f32 {
    let mut acc = 0.0f32;
    for i in 0..w.len() {
        acc = acc + w[i] * x[i];
    }
    acc
}

/// One gemv problem, with the weights also kept decoded for the references.
#[derive(Debug, Clone)]
struct Case {
    dtype: Dtype,
    rows: usize,
    cols: usize,
    data: Vec<u8>,
    scales: Vec<u8>,
    /// (rows, cols): what enters the dot product (f32, widened f16, or raw i8 code).
    w: Vec<f32>,
    /// (rows,): i8 scales; empty for f32/f16.
    s: Vec<f32>,
    x: Vec<f32>,
    bias: Option<Vec<f32>>,
}

impl Case {
    fn matrix(&self) -> Matrix<'_> {
        Matrix::new(self.dtype, self.rows, self.cols, &self.data, &self.scales).unwrap()
    }

    fn row(&self, r: usize) -> &[f32] {
        &self.w[r * self.cols..(r + 1) * self.cols]
    }
}

/// Stored weights for `n` elements of `dtype`: (bytes, values entering the dot product).
fn weights(dtype: Dtype, n: usize, wide: bool) -> BoxedStrategy<(Vec<u8>, Vec<f32>)> {
    let vals = if wide {
        any_value().boxed()
    } else {
        bounded_value().boxed()
    };
    match dtype {
        Dtype::F32 => prop::collection::vec(vals, n)
            .prop_map(|v| (f32_le(&v), v))
            .boxed(),
        Dtype::F16 => {
            let bits = if wide {
                any::<u16>().boxed()
            } else {
                finite_f16_bits().boxed()
            };
            prop::collection::vec(bits, n)
                .prop_map(|b| (f16_le(&b), b.iter().map(|&h| f16_bits_to_f32(h)).collect()))
                .boxed()
        }
        Dtype::I8 => prop::collection::vec(any::<i8>(), n)
            .prop_map(|q| (i8_le(&q), q.iter().map(|&v| f32::from(v)).collect()))
            .boxed(),
        Dtype::Q8 | Dtype::I32 => unreachable!("not a float-arithmetic weight dtype"),
    }
}

fn case(wide: bool) -> impl Strategy<Value = Case> {
    let dtype = prop_oneof![Just(Dtype::F32), Just(Dtype::F16), Just(Dtype::I8)];
    (dtype, 1usize..64, 1usize..64).prop_flat_map(move |(dtype, rows, cols)| {
        let vals = if wide {
            any_value().boxed()
        } else {
            bounded_value().boxed()
        };
        let nscales = if dtype == Dtype::I8 { rows } else { 0 };
        (
            weights(dtype, rows * cols, wide),
            prop::collection::vec(scale(), nscales),
            prop::collection::vec(vals.clone(), cols),
            prop::option::of(prop::collection::vec(vals, rows)),
        )
            .prop_map(move |((data, w), s, x, bias)| Case {
                dtype,
                rows,
                cols,
                data,
                scales: f32_le(&s),
                w,
                s,
                x,
                bias,
            })
    })
}

/// The documented gemv, written out: dot, then i8 scale, then bias.
fn ref_gemv(c: &Case) -> Vec<f32> {
    (0..c.rows)
        .map(|r| {
            let mut v = ref_dot(c.row(r), &c.x);
            if c.dtype == Dtype::I8 {
                v = v * c.s[r];
            }
            if let Some(b) = &c.bias {
                v = v + b[r];
            }
            v
        })
        .collect()
}

/// Tolerance of one gemv output against the exact value. The f32 result is a length-(n+2)
/// sequence of rounded operations on the terms `w_i * x_i * s` and `bias` (n products and
/// sums, the scale, the bias add), so Higham's bound gives `gamma(n+2) * (sum|terms| + |b|)`;
/// the f64 reference adds at most `gamma64(n+2)` of the same. Products or the scaled sum may
/// be subnormal, each costing up to one subnormal spacing (scaled by `s` for products that
/// are scaled afterwards).
fn gemv_tol(n: usize, abs_terms: f64, bias: f64, s: f64) -> f64 {
    (gamma(n + 2) + gamma64(n + 2)) * (abs_terms + bias.abs())
        + (n + 2) as f64 * SUBNORMAL_ULP * s.max(1.0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn dot_f32_is_the_documented_loop(
        (w, x) in (0usize..64).prop_flat_map(|n| (
            prop::collection::vec(any_value(), n),
            prop::collection::vec(any_value(), n),
        ))
    ) {
        let got = dot_f32(&f32_le(&w), &x).unwrap();
        prop_assert!(same_bits(got, ref_dot(&w, &x)), "{got:e} vs {:e}", ref_dot(&w, &x));
    }

    #[test]
    fn dot_f16_is_the_documented_loop(
        (h, x) in (0usize..64).prop_flat_map(|n| (
            prop::collection::vec(any::<u16>(), n),
            prop::collection::vec(any_value(), n),
        ))
    ) {
        let w: Vec<f32> = h.iter().map(|&b| f16_bits_to_f32(b)).collect();
        let got = dot_f16(&f16_le(&h), &x).unwrap();
        prop_assert!(same_bits(got, ref_dot(&w, &x)));
    }

    #[test]
    fn dot_i8_is_the_documented_loop(
        (q, x) in (0usize..64).prop_flat_map(|n| (
            prop::collection::vec(any::<i8>(), n),
            prop::collection::vec(any_value(), n),
        ))
    ) {
        let w: Vec<f32> = q.iter().map(|&v| f32::from(v)).collect();
        let got = dot_i8(&i8_le(&q), &x).unwrap();
        prop_assert!(same_bits(got, ref_dot(&w, &x)));
    }

    #[test]
    fn gemv_is_the_documented_loop(c in case(true)) {
        let m = c.matrix();
        let want = ref_gemv(&c);
        let mut y = vec![f32::NAN; c.rows];
        gemv(&m, &c.x, c.bias.as_deref(), &mut y).unwrap();
        let mut y_bytes = vec![f32::NAN; c.rows];
        let bias_bytes = c.bias.as_deref().map(f32_le);
        gemv_bias_bytes(&m, &c.x, bias_bytes.as_deref(), &mut y_bytes).unwrap();
        for r in 0..c.rows {
            prop_assert!(same_bits(y[r], want[r]), "row {r}: {:e} vs {:e}", y[r], want[r]);
            prop_assert!(same_bits(y_bytes[r], want[r]));
        }
    }

    #[test]
    fn gemv_is_within_the_dot_product_bound(c in case(false)) {
        let m = c.matrix();
        let mut y = vec![0.0f32; c.rows];
        gemv(&m, &c.x, c.bias.as_deref(), &mut y).unwrap();
        for r in 0..c.rows {
            let s = if c.dtype == Dtype::I8 { f64::from(c.s[r]) } else { 1.0 };
            let b = c.bias.as_ref().map_or(0.0, |b| f64::from(b[r]));
            let (mut exact, mut abs_terms) = (0.0f64, 0.0f64);
            for (&w, &x) in c.row(r).iter().zip(&c.x) {
                // (w * s) is exact in f64 (8- or 24-bit w times a 24-bit scale).
                let t = f64::from(w) * s * f64::from(x);
                exact += t;
                abs_terms += t.abs();
            }
            exact += b;
            let err = (f64::from(y[r]) - exact).abs();
            let tol = gemv_tol(c.cols, abs_terms, b, s);
            prop_assert!(err <= tol, "row {r}: |{} - {exact:e}| = {err:e} > {tol:e}", y[r]);
        }
    }

    #[test]
    fn dot_lengths_are_checked(wl in 0usize..80, xl in 0usize..20) {
        let w = vec![0u8; wl];
        let x = vec![1.0f32; xl];
        for (got, width) in [(dot_f32(&w, &x), 4), (dot_f16(&w, &x), 2), (dot_i8(&w, &x), 1)] {
            let expected = width * xl;
            if wl == expected {
                prop_assert_eq!(got, Ok(0.0));
            } else {
                let arg = if width == 1 { "q" } else { "w" };
                prop_assert_eq!(got, Err(KernelError::Shape { arg, len: wl, expected }));
            }
        }
    }

    #[test]
    fn gemv_lengths_are_checked(
        rows in 0usize..6, cols in 0usize..6,
        xl in 0usize..7, yl in 0usize..7, bl in prop::option::of(0usize..7),
        as_bytes: bool,
    ) {
        let data = vec![0u8; rows * cols];
        let scales = vec![0u8; rows * 4];
        let m = Matrix::new(Dtype::I8, rows, cols, &data, &scales).unwrap();
        let x = vec![1.0f32; xl];
        let mut y = vec![7.0f32; yl];
        let bias = bl.map(|n| vec![0.0f32; n]);
        let bias_bytes = bias.as_deref().map(f32_le);
        let got = if as_bytes {
            gemv_bias_bytes(&m, &x, bias_bytes.as_deref(), &mut y)
        } else {
            gemv(&m, &x, bias.as_deref(), &mut y)
        };
        let ok = xl == cols && yl == rows && bl.is_none_or(|n| n == rows);
        prop_assert_eq!(got.is_ok(), ok, "{:?}", got);
        if !ok {
            prop_assert!(y.iter().all(|&v| v == 7.0), "output written on error");
        }
    }

    #[test]
    fn matrix_new_checks_lengths(
        dtype in prop_oneof![Just(Dtype::F32), Just(Dtype::F16), Just(Dtype::I8)],
        rows in 0usize..8, cols in 0usize..8, dl in 0usize..300, sl in 0usize..40,
    ) {
        let data = vec![0u8; dl];
        let scales = vec![0u8; sl];
        let want_d = rows * cols * dtype.bytes_per_element();
        let want_s = if dtype == Dtype::I8 { 4 * rows } else { 0 };
        let got = Matrix::new(dtype, rows, cols, &data, &scales);
        if dl != want_d {
            prop_assert_eq!(
                got.unwrap_err(),
                KernelError::Shape { arg: "data", len: dl, expected: want_d }
            );
        } else if sl != want_s {
            prop_assert_eq!(
                got.unwrap_err(),
                KernelError::Shape { arg: "scales", len: sl, expected: want_s }
            );
        } else {
            prop_assert!(got.is_ok());
        }
    }

    #[test]
    fn matrix_get_and_row_into_agree(c in case(true), r_extra in 0usize..3, c_extra in 0usize..3) {
        let m = c.matrix();
        let mut row = vec![0.0f32; c.cols];
        for r in 0..c.rows {
            m.row_into(r, &mut row).unwrap();
            for (j, &v) in row.iter().enumerate() {
                let mut want = c.w[r * c.cols + j];
                if c.dtype == Dtype::I8 {
                    want = want * c.s[r];
                }
                prop_assert!(same_bits(v, want));
                prop_assert!(same_bits(m.get(r, j).unwrap(), want));
            }
        }
        let (rr, cc) = (c.rows + r_extra, c.cols + c_extra);
        prop_assert_eq!(
            m.get(rr, 0),
            Err(KernelError::OutOfRange { arg: "row", index: rr, len: c.rows })
        );
        prop_assert_eq!(
            m.get(0, cc),
            Err(KernelError::OutOfRange { arg: "col", index: cc, len: c.cols })
        );
        prop_assert!(m.row_into(rr, &mut row).is_err());
        prop_assert!(m.row_into(0, &mut row[..c.cols - 1]).is_err());
    }
}

#[test]
fn every_f16_decodes_exactly() {
    // `half`'s widening against the hand decoder, for all 65536 bit patterns.
    for h in 0..=u16::MAX {
        let bytes = h.to_le_bytes();
        let got = Matrix::new(Dtype::F16, 1, 1, &bytes, &[])
            .unwrap()
            .get(0, 0)
            .unwrap();
        assert!(same_bits(got, f16_bits_to_f32(h)), "{h:#06x}");
    }
}

#[test]
fn f16_encoding_rounds_to_nearest_even() {
    use microdiff_kernels::encode_f16;
    assert_eq!(encode_f16(1.0), [0x00, 0x3c]);
    // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to the even mantissa, 1.0.
    assert_eq!(encode_f16(1.0 + 2f32.powi(-11)), [0x00, 0x3c]);
    // 1 + 3 * 2^-11 is halfway between 1 + 2^-10 and 1 + 2^-9: ties to even, 1 + 2^-9.
    assert_eq!(
        encode_f16(1.0 + 3.0 * 2f32.powi(-11)),
        0x3c02u16.to_le_bytes()
    );
    assert_eq!(encode_f16(1e6), 0x7c00u16.to_le_bytes()); // overflow to +inf
}
