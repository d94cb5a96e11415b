//! Activations and derivatives: bit-identical to the documented formulas, within stated
//! bounds of f64 references, and derivatives matching finite differences.

mod common;

use common::*;
use microdiff_kernels::act::{GELU_COEFF, GELU_COEFF_3, SQRT_2_OVER_PI};
use microdiff_kernels::{Activation, gelu_tanh, gelu_tanh_grad, relu, relu_grad, silu, silu_grad};
use proptest::prelude::*;

const ALL: [Activation; 6] = [
    Activation::Identity,
    Activation::Relu,
    Activation::Silu,
    Activation::GeluTanh,
    Activation::Sigmoid,
    Activation::Exp,
];

// The documented formulas, operation by operation.
fn ref_f(a: Activation, x: f32) -> f32 {
    match a {
        Activation::Identity => x,
        Activation::Relu => {
            if x < 0.0 {
                0.0
            } else {
                x
            }
        }
        Activation::Silu => x / (1.0 + libm::expf(-x)),
        Activation::GeluTanh => {
            let x3 = (x * x) * x;
            let u = SQRT_2_OVER_PI * (x + GELU_COEFF * x3);
            (0.5 * x) * (1.0 + libm::tanhf(u))
        }
        Activation::Sigmoid => 1.0 / (1.0 + libm::expf(-x)),
        Activation::Exp => libm::expf(x),
    }
}

fn ref_grad(a: Activation, x: f32) -> f32 {
    match a {
        Activation::Identity => 1.0,
        Activation::Relu => {
            if x.is_nan() {
                x
            } else if x > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        Activation::Silu => {
            let s = 1.0 / (1.0 + libm::expf(-x));
            s * (1.0 + x * (1.0 - s))
        }
        Activation::GeluTanh => {
            let x2 = x * x;
            let t = libm::tanhf(SQRT_2_OVER_PI * (x + GELU_COEFF * (x2 * x)));
            let du = SQRT_2_OVER_PI * (1.0 + GELU_COEFF_3 * x2);
            let d = 1.0 - t * t;
            if d == 0.0 {
                0.5 * (1.0 + t)
            } else {
                0.5 * (1.0 + t) + ((0.5 * x) * d) * du
            }
        }
        Activation::Sigmoid => {
            let s = 1.0 / (1.0 + libm::expf(-x));
            s * (1.0 - s)
        }
        Activation::Exp => libm::expf(x),
    }
}

// Exact-constant f64 references.
const S64: f64 = 0.797_884_560_802_865_4; // sqrt(2 / pi)
const C64: f64 = 0.044_715;

fn sigmoid64(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}
fn silu64(x: f64) -> f64 {
    x * sigmoid64(x)
}
fn silu_grad64(x: f64) -> f64 {
    let s = sigmoid64(x);
    s * (1.0 + x * (1.0 - s))
}
fn gelu64(x: f64) -> f64 {
    0.5 * x * (1.0 + (S64 * (x + C64 * x * x * x)).tanh())
}
fn gelu_du64(x: f64) -> f64 {
    S64 * (1.0 + 3.0 * C64 * x * x)
}
fn gelu_grad64(x: f64) -> f64 {
    let t = (S64 * (x + C64 * x * x * x)).tanh();
    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * gelu_du64(x)
}

// Tolerances against the exact-constant f64 references, as `|f32 - f64| <= tol(x)`. Each is
// twice a first-order error bound, taking `libm`'s expf and tanhf as accurate to 1 ulp
// (relative 2u).

/// silu: expf (2u) + the add (u, damped) + the divide (u) = 4u relative; doubled.
const SILU_REL: f64 = 8.0 * U;
/// Below x = -88.72 `expf(-x)` overflows and silu returns -0.0; the true value is then at
/// most 88.73 * e^-88.73 < 3e-37 in magnitude. Also covers subnormal roundings.
const SILU_ABS: f64 = 3e-37;
/// silu_grad `s * (1 + x * (1 - s))`: with s off by 4u relative, each step adds error
/// proportional to s * (1 + |x|); summing the steps gives about 11u * s * (1 + |x|); doubled
/// and rounded up.
const SILU_GRAD_K: f64 = 24.0 * U;
/// gelu: the cubic, constants and products put about 7u relative error in tanh's argument u,
/// and (1 - t^2)|u| <= 0.45, so t is off by 3.2u + 2u (tanhf); times 0.5|x| plus the final
/// roundings: u * (2.6|x| + 2|y|). Doubled and rounded up: 6u|x| + 4u|y|.
const GELU_X: f64 = 6.0 * U;
const GELU_Y: f64 = 4.0 * U;
/// gelu_grad: 0.5(1 + t) is off by about 4.8u; the second term by about
/// 10.2u * |x| * |du| (1 - t^2 loses up to 11.4u absolutely when t is near +-1). Doubled.
const GELU_GRAD_C: f64 = 10.0 * U;
const GELU_GRAD_X: f64 = 20.0 * U;
/// Central differences in f64 with h = 1e-5: truncation h^2/6 * |f'''| < 1e-10 and
/// cancellation 2^-53 * |f| / h < 1e-9 for |x| <= 20.
const FD_TOL: f64 = 2e-9;
const FD_H: f64 = 1e-5;

fn tol(a: Activation, x: f32) -> f64 {
    let x = f64::from(x);
    match a {
        Activation::Identity | Activation::Relu => 0.0,
        Activation::Silu => SILU_REL * silu64(x).abs() + SILU_ABS,
        Activation::GeluTanh => GELU_X * x.abs() + GELU_Y * gelu64(x).abs() + SUBNORMAL_ULP,
        // expf (2u), the add and the divide: 4u relative; doubled. Below x = -88.72 `expf(-x)`
        // overflows and the result is 0, the true value under 3e-39.
        Activation::Sigmoid => 8.0 * U * sigmoid64(x) + SILU_ABS + SUBNORMAL_ULP,
        Activation::Exp => exp_tol(x),
    }
}

fn grad_tol(a: Activation, x: f32) -> f64 {
    let x = f64::from(x);
    match a {
        Activation::Identity | Activation::Relu => 0.0,
        Activation::Silu => SILU_GRAD_K * sigmoid64(x) * (1.0 + x.abs()) + SILU_ABS,
        Activation::GeluTanh => GELU_GRAD_C + GELU_GRAD_X * x.abs() * gelu_du64(x),
        // s(1 − s): s is off by 4u relative, so 1 − s by 4u absolute (it is exact once s
        // rounds to 1, above x ≈ 17, where the true value is below 4.2e-8 = 0.7u).
        Activation::Sigmoid => 8.0 * U * sigmoid64(x) + 8.0 * U + SUBNORMAL_ULP,
        Activation::Exp => exp_tol(x),
    }
}

/// expf is accurate to 1 ulp (2u relative), doubled; past f32's range (x > 88.72) the f32
/// result is infinite and any tolerance passes.
fn exp_tol(x: f64) -> f64 {
    if x > 88.72 {
        f64::INFINITY
    } else {
        4.0 * U * x.exp() + SUBNORMAL_ULP
    }
}

/// The exact activation as an f64 function.
fn exact64(a: Activation) -> fn(f64) -> f64 {
    match a {
        Activation::Identity => |x| x,
        Activation::Relu => |x| x.max(0.0),
        Activation::Silu => silu64,
        Activation::GeluTanh => gelu64,
        Activation::Sigmoid => sigmoid64,
        Activation::Exp => f64::exp,
    }
}

fn exact(a: Activation, x: f32) -> f64 {
    exact64(a)(f64::from(x))
}

fn exact_grad(a: Activation, x: f32) -> f64 {
    let x = f64::from(x);
    match a {
        Activation::Identity => 1.0,
        Activation::Relu => f64::from(u8::from(x > 0.0)),
        Activation::Silu => silu_grad64(x),
        Activation::GeluTanh => gelu_grad64(x),
        Activation::Sigmoid => sigmoid64(x) * (1.0 - sigmoid64(x)),
        Activation::Exp => x.exp(),
    }
}

/// Checks one x against the f64 references; returns the largest err / tol ratio seen.
fn check_accuracy(x: f32) -> f64 {
    let mut worst = 0.0f64;
    for a in ALL {
        for (got, want, t) in [
            (a.apply(x), exact(a, x), tol(a, x)),
            (a.grad(x), exact_grad(a, x), grad_tol(a, x)),
        ] {
            if t == f64::INFINITY {
                continue; // overflowed, as both should
            }
            let err = (f64::from(got) - want).abs();
            assert!(
                err <= t,
                "{a:?} at x = {x:e}: {got:e} vs {want:e}, err {err:e} > {t:e}"
            );
            if t > 0.0 {
                worst = worst.max(err / t);
            }
        }
    }
    worst
}

/// Activation inputs seen in practice plus wide and tiny ones.
fn act_input() -> impl Strategy<Value = f32> {
    prop_oneof![
        4 => -12.0f32..12.0,
        2 => -100.0f32..100.0,
        1 => -1e30f32..1e30,
        1 => -1e-30f32..1e-30,
        1 => prop::num::f32::SUBNORMAL | prop::num::f32::POSITIVE | prop::num::f32::NEGATIVE,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn scalar_functions_are_the_documented_formulas(x in any_value()) {
        prop_assert!(same_bits(relu(x), ref_f(Activation::Relu, x)));
        prop_assert!(same_bits(silu(x), ref_f(Activation::Silu, x)));
        prop_assert!(same_bits(gelu_tanh(x), ref_f(Activation::GeluTanh, x)));
        prop_assert!(same_bits(relu_grad(x), ref_grad(Activation::Relu, x)));
        prop_assert!(same_bits(silu_grad(x), ref_grad(Activation::Silu, x)));
        prop_assert!(same_bits(gelu_tanh_grad(x), ref_grad(Activation::GeluTanh, x)));
        for a in ALL {
            prop_assert!(same_bits(a.apply(x), ref_f(a, x)));
            prop_assert!(same_bits(a.grad(x), ref_grad(a, x)));
        }
    }

    #[test]
    fn apply_slice_is_the_elementwise_loop(xs in prop::collection::vec(any_value(), 0..64)) {
        for a in ALL {
            let mut ys = xs.clone();
            a.apply_slice(&mut ys);
            for i in 0..xs.len() {
                prop_assert!(same_bits(ys[i], ref_f(a, xs[i])));
            }
        }
    }

    #[test]
    fn within_tolerance_of_f64(x in act_input()) {
        check_accuracy(x);
    }

    #[test]
    fn gradients_match_finite_differences(x in -20.0f32..20.0) {
        let xd = f64::from(x);
        for a in ALL {
            if a == Activation::Relu && xd.abs() <= 2.0 * FD_H {
                continue; // the difference straddles the kink
            }
            let f = exact64(a);
            let fd = (f(xd + FD_H) - f(xd - FD_H)) / (2.0 * FD_H);
            let err = (f64::from(a.grad(x)) - fd).abs();
            let t = grad_tol(a, x) + FD_TOL;
            prop_assert!(err <= t, "{a:?} at {x}: grad {} vs fd {fd}", a.grad(x));
        }
    }
}

#[test]
fn dense_sweep_within_tolerance() {
    // Every 1/1024 on [-128, 128], where the interesting curvature and cancellation live.
    let mut worst = 0.0f64;
    for k in -131_072..=131_072 {
        worst = worst.max(check_accuracy(k as f32 / 1024.0));
    }
    println!("largest err / tolerance on the sweep: {worst:.3}");
}

#[test]
fn known_values() {
    assert_eq!(silu(0.0), 0.0);
    assert_eq!(relu(-1.0), 0.0);
    assert_eq!(gelu_tanh(0.0), 0.0);
    assert_eq!(silu_grad(0.0), 0.5);
    assert_eq!(gelu_tanh_grad(0.0), 0.5);
}
