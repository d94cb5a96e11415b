//! Layer norm: the three entry points are bit-identical to the documented loop, within a
//! stated bound of an f64 reference, and return errors instead of panicking.

// The references spell out the documented loops literally, indices and all.
#![allow(clippy::assign_op_pattern, clippy::needless_range_loop)]

mod common;

use common::*;
use microdiff_kernels::{KernelError, layer_norm, layer_norm_bytes, layer_norm_in_place};
use proptest::prelude::*;

/// The documented algorithm, written out.
fn ref_layer_norm(x: &[f32], gamma: Option<&[f32]>, beta: Option<&[f32]>, eps: f32) -> Vec<f32> {
    let n = x.len() as f32;
    let mut s = 0.0f32;
    for i in 0..x.len() {
        s = s + x[i];
    }
    let mean = s / n;
    let mut q = 0.0f32;
    for i in 0..x.len() {
        q = q + (x[i] - mean) * (x[i] - mean);
    }
    let var = q / n;
    let inv = 1.0 / libm::sqrtf(var + eps);
    (0..x.len())
        .map(|i| {
            let mut y = (x[i] - mean) * inv;
            if let Some(g) = gamma {
                y = y * g[i];
            }
            if let Some(b) = beta {
                y = y + b[i];
            }
            y
        })
        .collect()
}

/// Runs all three entry points and checks they agree to the bit; returns the result.
fn all_variants(x: &[f32], gamma: Option<&[f32]>, beta: Option<&[f32]>, eps: f32) -> Vec<f32> {
    let mut y = vec![f32::NAN; x.len()];
    layer_norm(x, gamma, beta, eps, &mut y).unwrap();
    let mut z = x.to_vec();
    layer_norm_in_place(&mut z, gamma, beta, eps).unwrap();
    let (gb, bb) = (gamma.map(f32_le), beta.map(f32_le));
    let mut w = vec![f32::NAN; x.len()];
    layer_norm_bytes(x, gb.as_deref(), bb.as_deref(), eps, &mut w).unwrap();
    for i in 0..x.len() {
        assert!(
            same_bits(y[i], z[i]) && same_bits(y[i], w[i]),
            "variants differ at {i}"
        );
    }
    y
}

type Problem = (Vec<f32>, Option<Vec<f32>>, Option<Vec<f32>>);

fn problem(vals: BoxedStrategy<f32>) -> impl Strategy<Value = Problem> {
    (1usize..64).prop_flat_map(move |n| {
        (
            prop::collection::vec(vals.clone(), n),
            prop::option::of(prop::collection::vec(vals.clone(), n)),
            prop::option::of(prop::collection::vec(vals.clone(), n)),
        )
    })
}

/// Tolerance of output i against the exact layer norm (Higham-style first-order analysis,
/// doubled). With sigma = sqrt(var + eps), z_i = (x_i - mean) / sigma and
/// rho = mean|x| / sigma (how much an error in the mean is amplified):
/// * mean: n - 1 sums and a divide, off by gamma(n+1) * mean|x|, i.e. rho * gamma(n+1) in z;
/// * var: the squared-deviation sum, divide and + eps add gamma(n+4) relative (a mean error
///   only enters to second order, but we charge it rho * gamma(n+1) to be safe); 1/sqrt
///   halves that and adds 2u; the subtract and multiply for z add 2u more;
/// * gamma, beta: one rounding each, relative to |z g| and |y|.
///
/// Subnormal squared deviations are negligible because eps >= 1e-12 in this test, but the
/// γ multiply and β add can round to subnormal results (tiny γ or β drawn by the strategy), whose
/// error is absolute, not relative: one [`SUBNORMAL_ULP`] each.
fn tol(n: usize, rho: f64, z: f64, g: f64, y: f64) -> f64 {
    let dz = rho * gamma(n + 1) + z.abs() * (rho * gamma(n + 1) + gamma(n + 4) / 2.0 + 5.0 * U);
    2.0 * (g.abs() * dz + U * (z * g).abs() + U * y.abs()) + 2.0 * SUBNORMAL_ULP
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn layer_norm_is_the_documented_loop(
        (x, g, b) in problem(any_value().boxed()),
        eps in prop_oneof![Just(0.0f32), Just(1e-5f32), 0.0f32..1.0],
    ) {
        let got = all_variants(&x, g.as_deref(), b.as_deref(), eps);
        let want = ref_layer_norm(&x, g.as_deref(), b.as_deref(), eps);
        for i in 0..x.len() {
            prop_assert!(same_bits(got[i], want[i]), "i = {i}: {:e} vs {:e}", got[i], want[i]);
        }
    }

    #[test]
    fn layer_norm_is_within_tolerance_of_f64(
        (x, g, b) in problem(bounded_value().boxed()),
        offset in prop_oneof![Just(0.0f32), -1e4f32..1e4],
        eps in prop_oneof![Just(1e-5f32), Just(1e-6f32), 1e-12f32..1.0],
    ) {
        // An offset makes the mean large against the spread: the cancellation case.
        let x: Vec<f32> = x.iter().map(|&v| v + offset).collect();
        let got = all_variants(&x, g.as_deref(), b.as_deref(), eps);
        let n = x.len();
        let xd: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        let mean = xd.iter().sum::<f64>() / n as f64;
        let var = xd.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
        let sigma = (var + f64::from(eps)).sqrt();
        let rho = xd.iter().map(|v| v.abs()).sum::<f64>() / n as f64 / sigma;
        for i in 0..n {
            let z = (xd[i] - mean) / sigma;
            let gi = g.as_ref().map_or(1.0, |g| f64::from(g[i]));
            let y = z * gi + b.as_ref().map_or(0.0, |b| f64::from(b[i]));
            let err = (f64::from(got[i]) - y).abs();
            let t = tol(n, rho, z, gi, y);
            prop_assert!(err <= t, "i = {i}: {} vs {y:e}: {err:e} > {t:e}", got[i]);
        }
    }

    #[test]
    fn layer_norm_lengths_and_eps_are_checked(
        n in 0usize..6, yl in 0usize..7,
        gl in prop::option::of(0usize..7), bl in prop::option::of(0usize..7),
        eps in prop_oneof![Just(1e-5f32), any::<f32>()],
    ) {
        let x = vec![1.0f32; n];
        let (g, b) = (gl.map(|l| vec![1.0f32; l]), bl.map(|l| vec![0.0f32; l]));
        let (gb, bb) = (g.as_deref().map(f32_le), b.as_deref().map(f32_le));
        let ok_params = gl.is_none_or(|l| l == n)
            && bl.is_none_or(|l| l == n)
            && eps.is_finite()
            && eps >= 0.0;
        let ok = ok_params && yl == n;

        let mut y = vec![7.0f32; yl];
        let got = layer_norm(&x, g.as_deref(), b.as_deref(), eps, &mut y);
        prop_assert_eq!(got.is_ok(), ok, "{:?}", got);
        if yl != n {
            prop_assert_eq!(got, Err(KernelError::Shape { arg: "y", len: yl, expected: n }));
        }
        if !ok {
            prop_assert!(y.iter().all(|&v| v == 7.0), "output written on error");
        }

        let mut y = vec![7.0f32; yl];
        let got = layer_norm_bytes(&x, gb.as_deref(), bb.as_deref(), eps, &mut y);
        prop_assert_eq!(got.is_ok(), ok, "{:?}", got);
        if !ok {
            prop_assert!(y.iter().all(|&v| v == 7.0), "output written on error");
        }

        let mut z = x.clone();
        let got = layer_norm_in_place(&mut z, g.as_deref(), b.as_deref(), eps);
        prop_assert_eq!(got.is_ok(), ok_params, "{:?}", got);
        if !ok_params {
            prop_assert!(z.iter().all(|&v| v == 1.0), "input overwritten on error");
        }
    }
}
