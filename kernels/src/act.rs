//! Pointwise activations and their derivatives.
//!
//! Each function is one fixed sequence of f32 operations (written in its doc; no FMA) with
//! transcendentals from `libm`, so every target gets the same bits. The derivatives are for
//! the host trainer's backward pass, which must use these exact definitions. NaN inputs give
//! NaN outputs throughout.

/// `sqrt(2 / pi)` rounded to f32 (0x3F4C422A).
pub const SQRT_2_OVER_PI: f32 = 0.797_884_6;
/// The cubic coefficient of the tanh approximation of GELU.
pub const GELU_COEFF: f32 = 0.044_715;
/// `3 * GELU_COEFF`, written as its own literal (0.134145 rounded to f32), used by
/// [`gelu_tanh_grad`].
pub const GELU_COEFF_3: f32 = 0.134_145;

/// Activation function of a layer, as stored in the blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum Activation {
    /// `f(x) = x`.
    Identity = 0,
    /// [`relu`].
    Relu = 1,
    /// [`silu`].
    Silu = 2,
    /// [`gelu_tanh`].
    GeluTanh = 3,
    /// [`sigmoid`]: Bernoulli probabilities (RBM units, Bernoulli decoders).
    Sigmoid = 4,
    /// [`exp`]: a standard deviation from a log-standard-deviation head.
    Exp = 5,
}

impl Activation {
    /// The activation with blob code `c`, or `None` for an unknown code.
    pub const fn from_code(c: u8) -> Option<Activation> {
        match c {
            0 => Some(Self::Identity),
            1 => Some(Self::Relu),
            2 => Some(Self::Silu),
            3 => Some(Self::GeluTanh),
            4 => Some(Self::Sigmoid),
            5 => Some(Self::Exp),
            _ => None,
        }
    }

    /// The blob code (inverse of [`Activation::from_code`]).
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// Short lowercase name: `"identity"`, `"relu"`, `"silu"`, `"gelu_tanh"`, `"sigmoid"` or
    /// `"exp"`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Relu => "relu",
            Self::Silu => "silu",
            Self::GeluTanh => "gelu_tanh",
            Self::Sigmoid => "sigmoid",
            Self::Exp => "exp",
        }
    }

    /// `f(x)`.
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Self::Identity => x,
            Self::Relu => relu(x),
            Self::Silu => silu(x),
            Self::GeluTanh => gelu_tanh(x),
            Self::Sigmoid => sigmoid(x),
            Self::Exp => exp(x),
        }
    }

    /// `xs[i] = f(xs[i])` for every element, in place.
    pub fn apply_slice(self, xs: &mut [f32]) {
        // Match once, not per element.
        let f: fn(f32) -> f32 = match self {
            Self::Identity => return,
            Self::Relu => relu,
            Self::Silu => silu,
            Self::GeluTanh => gelu_tanh,
            Self::Sigmoid => sigmoid,
            Self::Exp => exp,
        };
        xs.iter_mut().for_each(|v| *v = f(*v));
    }

    /// `f'(x)`: 1 for identity, else [`relu_grad`], [`silu_grad`], [`gelu_tanh_grad`],
    /// [`sigmoid_grad`], [`exp`].
    pub fn grad(self, x: f32) -> f32 {
        match self {
            Self::Identity => 1.0,
            Self::Relu => relu_grad(x),
            Self::Silu => silu_grad(x),
            Self::GeluTanh => gelu_tanh_grad(x),
            Self::Sigmoid => sigmoid_grad(x),
            Self::Exp => exp(x),
        }
    }
}

/// `1.0 / (1.0 + libm::expf(-x))`: 0 for `x` below about −104 (`expf` overflows), 1 above
/// about 17; `sigmoid(±inf)` is 0 / 1.
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + libm::expf(-x))
}

/// `s = sigmoid(x); s * (1.0 - s)`.
pub fn sigmoid_grad(x: f32) -> f32 {
    let s = sigmoid(x);
    s * (1.0 - s)
}

/// `libm::expf(x)` (its own derivative).
pub fn exp(x: f32) -> f32 {
    libm::expf(x)
}

/// `if x < 0.0 { 0.0 } else { x }`: NaN propagates and `relu(-0.0) = -0.0`.
pub fn relu(x: f32) -> f32 {
    if x < 0.0 { 0.0 } else { x }
}

/// `if x > 0.0 { 1.0 } else if x is NaN { x } else { 0.0 }`: the subgradient 0 at 0.
pub fn relu_grad(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x.is_nan() {
        x
    } else {
        0.0
    }
}

/// `x / (1.0 + libm::expf(-x))`.
///
/// Large negative `x` gives `-0.0` (`expf` overflows to inf); `silu(-inf)` is NaN.
pub fn silu(x: f32) -> f32 {
    x / (1.0 + libm::expf(-x))
}

/// `s = 1.0 / (1.0 + libm::expf(-x)); s * (1.0 + x * (1.0 - s))`,
/// the derivative `σ(x) (1 + x (1 - σ(x)))` of [`silu`].
pub fn silu_grad(x: f32) -> f32 {
    let s = 1.0 / (1.0 + libm::expf(-x));
    s * (1.0 + x * (1.0 - s))
}

/// GELU, tanh approximation, evaluated as
/// ```text
/// u = SQRT_2_OVER_PI * (x + GELU_COEFF * ((x * x) * x))
/// y = (0.5 * x) * (1.0 + libm::tanhf(u))
/// ```
/// For `x` below about -10, `tanhf(u) = -1` exactly and the result is `-0.0` (or NaN at
/// `x = -inf`).
pub fn gelu_tanh(x: f32) -> f32 {
    let u = SQRT_2_OVER_PI * (x + GELU_COEFF * ((x * x) * x));
    (0.5 * x) * (1.0 + libm::tanhf(u))
}

/// Derivative of [`gelu_tanh`], evaluated as
/// ```text
/// x2 = x * x
/// t  = libm::tanhf(SQRT_2_OVER_PI * (x + GELU_COEFF * (x2 * x)))
/// du = SQRT_2_OVER_PI * (1.0 + GELU_COEFF_3 * x2)
/// d  = 1.0 - t * t
/// g  = 0.5 * (1.0 + t) + ((0.5 * x) * d) * du     if d != 0
/// g  = 0.5 * (1.0 + t)                            if d == 0
/// ```
/// (`t` uses the same operations as the forward pass: `x2 * x` is `(x * x) * x`.) `d` is 0
/// once `tanhf` saturates to ±1 (|x| above about 9), where the second term is exactly ±0
/// anyway; skipping it keeps `0 * inf = NaN` out when `x * x` overflows (|x| > 1.8e19).
pub fn gelu_tanh_grad(x: f32) -> f32 {
    let x2 = x * x;
    let t = libm::tanhf(SQRT_2_OVER_PI * (x + GELU_COEFF * (x2 * x)));
    let du = SQRT_2_OVER_PI * (1.0 + GELU_COEFF_3 * x2);
    let d = 1.0 - t * t;
    let g = 0.5 * (1.0 + t);
    if d == 0.0 {
        g
    } else {
        g + ((0.5 * x) * d) * du
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_are_the_rounded_reals() {
        assert_eq!(
            SQRT_2_OVER_PI,
            (2.0f64 / core::f64::consts::PI).sqrt() as f32
        );
        assert_eq!(SQRT_2_OVER_PI.to_bits(), 0x3F4C_422A);
        assert_eq!(GELU_COEFF_3, (3.0f64 * 0.044_715) as f32);
    }

    #[test]
    fn known_values() {
        assert_eq!(silu(0.0), 0.0);
        assert_eq!(relu(-1.0), 0.0);
        assert_eq!(relu(2.5), 2.5);
        assert_eq!(gelu_tanh(0.0), 0.0);
        assert_eq!(silu_grad(0.0), 0.5);
        assert_eq!(gelu_tanh_grad(0.0), 0.5);
        assert_eq!(relu_grad(0.0), 0.0);
        assert_eq!(relu_grad(3.0), 1.0);
        assert_eq!(sigmoid(0.0), 0.5);
        assert_eq!(sigmoid(-200.0), 0.0);
        assert_eq!(sigmoid(f32::INFINITY), 1.0);
        assert_eq!(sigmoid_grad(0.0), 0.25);
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(relu(-0.0).to_bits(), (-0.0f32).to_bits());
        assert!(relu(f32::NAN).is_nan() && relu_grad(f32::NAN).is_nan());
        assert_eq!(silu(-200.0), 0.0);
        assert_eq!(gelu_tanh(-20.0), 0.0);
        assert_eq!(gelu_tanh(f32::INFINITY), f32::INFINITY);
        assert_eq!(gelu_tanh_grad(1e30), 1.0);
        assert_eq!(gelu_tanh_grad(-1e30), 0.0);
    }

    #[test]
    fn codes_round_trip() {
        for a in [
            Activation::Identity,
            Activation::Relu,
            Activation::Silu,
            Activation::GeluTanh,
            Activation::Sigmoid,
            Activation::Exp,
        ] {
            assert_eq!(Activation::from_code(a.code()), Some(a));
        }
        assert_eq!(Activation::from_code(6), None);
        assert_eq!(Activation::GeluTanh.name(), "gelu_tanh");
    }

    #[test]
    fn apply_slice_matches_apply() {
        let xs = [-3.0f32, -0.5, 0.0, 0.25, 4.0];
        for a in [
            Activation::Identity,
            Activation::Relu,
            Activation::Silu,
            Activation::GeluTanh,
            Activation::Sigmoid,
            Activation::Exp,
        ] {
            let mut ys = xs;
            a.apply_slice(&mut ys);
            for (y, x) in ys.iter().zip(xs) {
                assert_eq!(y.to_bits(), a.apply(x).to_bits());
            }
        }
        assert_eq!(Activation::Identity.grad(5.0), 1.0);
    }
}
