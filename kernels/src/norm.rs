//! Layer normalisation over a whole vector, with optional affine parameters.
//!
//! With `n = x.len()` (and `n as f32` rounded to nearest, exact below 2^24):
//! ```text
//! s = 0.0;  for i: s = s + x[i]                           mean = s / n
//! q = 0.0;  for i: q = q + (x[i] - mean) * (x[i] - mean)  var  = q / n
//! inv  = 1.0 / libm::sqrtf(var + eps)
//! y[i] = ((x[i] - mean) * inv) * gamma[i] + beta[i]
//! ```
//! `* gamma[i]` is skipped without gamma and `+ beta[i]` without beta (not replaced by
//! `* 1.0` / `+ 0.0`). The separate, in-place and from-flash variants give identical bits.
//! An empty `x` is accepted and produces nothing.

use crate::error::{KernelError, check_len, f32_bytes};
use crate::weights::f32s;

/// Layer norm of `x` into `y` (both length n); `gamma`, `beta` of length n if present.
///
/// Errors: a length mismatch, or an `eps` that is not finite or is negative.
pub fn layer_norm(
    x: &[f32],
    gamma: Option<&[f32]>,
    beta: Option<&[f32]>,
    eps: f32,
    y: &mut [f32],
) -> Result<(), KernelError> {
    check_len("y", y.len(), x.len())?;
    check_params(
        x.len(),
        gamma.map(<[f32]>::len),
        beta.map(<[f32]>::len),
        1,
        eps,
    )?;
    y.iter_mut().zip(x).for_each(|(o, &v)| *o = v);
    normalize(
        y,
        gamma.map(|g| g.iter().copied()),
        beta.map(|b| b.iter().copied()),
        eps,
    );
    Ok(())
}

/// [`layer_norm`] overwriting `x` with the result.
pub fn layer_norm_in_place(
    x: &mut [f32],
    gamma: Option<&[f32]>,
    beta: Option<&[f32]>,
    eps: f32,
) -> Result<(), KernelError> {
    check_params(
        x.len(),
        gamma.map(<[f32]>::len),
        beta.map(<[f32]>::len),
        1,
        eps,
    )?;
    normalize(
        x,
        gamma.map(|g| g.iter().copied()),
        beta.map(|b| b.iter().copied()),
        eps,
    );
    Ok(())
}

/// [`layer_norm`] with `gamma` and `beta` as `4 * n` bytes of little-endian f32 from flash.
pub fn layer_norm_bytes(
    x: &[f32],
    gamma: Option<&[u8]>,
    beta: Option<&[u8]>,
    eps: f32,
    y: &mut [f32],
) -> Result<(), KernelError> {
    check_len("y", y.len(), x.len())?;
    check_params(
        x.len(),
        gamma.map(<[u8]>::len),
        beta.map(<[u8]>::len),
        4,
        eps,
    )?;
    y.iter_mut().zip(x).for_each(|(o, &v)| *o = v);
    normalize(y, gamma.map(f32s), beta.map(f32s), eps);
    Ok(())
}

/// Checks gamma/beta lengths (`n` values of `width` bytes, or elements for width 1) and eps.
fn check_params(
    n: usize,
    gamma_len: Option<usize>,
    beta_len: Option<usize>,
    width: usize,
    eps: f32,
) -> Result<(), KernelError> {
    let expected = |arg| if width == 1 { Ok(n) } else { f32_bytes(arg, n) };
    if let Some(len) = gamma_len {
        check_len("gamma", len, expected("gamma")?)?;
    }
    if let Some(len) = beta_len {
        check_len("beta", len, expected("beta")?)?;
    }
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(KernelError::Invalid {
            arg: "eps",
            requirement: "finite and >= 0",
        });
    }
    Ok(())
}

/// Normalizes `v` in place in the documented order. `gamma`/`beta` yield `v.len()` values.
fn normalize(
    v: &mut [f32],
    mut gamma: Option<impl Iterator<Item = f32>>,
    mut beta: Option<impl Iterator<Item = f32>>,
    eps: f32,
) {
    let n = v.len() as f32;
    let mut s = 0.0f32;
    for &a in v.iter() {
        s += a;
    }
    let mean = s / n;
    let mut q = 0.0f32;
    for &a in v.iter() {
        let d = a - mean;
        q += d * d;
    }
    let inv = 1.0 / libm::sqrtf(q / n + eps);
    for a in v.iter_mut() {
        let mut y = (*a - mean) * inv;
        if let Some(g) = gamma.as_mut().and_then(Iterator::next) {
            y *= g;
        }
        if let Some(b) = beta.as_mut().and_then(Iterator::next) {
            y += b;
        }
        *a = y;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // mean 2.5, var 1.25; with eps = 0.0 the output is exact enough to state.
        let x = [1.0f32, 2.0, 3.0, 4.0];
        let mut y = [0.0; 4];
        layer_norm(&x, None, None, 0.0, &mut y).unwrap();
        let inv = 1.0 / libm::sqrtf(1.25);
        assert_eq!(y, [-1.5 * inv, -0.5 * inv, 0.5 * inv, 1.5 * inv]);
        let mut z = x;
        layer_norm_in_place(&mut z, Some(&[2.0; 4]), Some(&[1.0; 4]), 0.0).unwrap();
        for (zi, yi) in z.iter().zip(y) {
            assert_eq!(*zi, yi * 2.0 + 1.0);
        }
    }

    #[test]
    fn empty_is_ok() {
        assert_eq!(layer_norm(&[], None, None, 1e-5, &mut []), Ok(()));
        assert_eq!(layer_norm_in_place(&mut [], Some(&[]), None, 1e-5), Ok(()));
    }

    #[test]
    fn errors() {
        let x = [1.0f32, 2.0];
        let mut y = [0.0; 2];
        assert_eq!(
            layer_norm(&x, Some(&[1.0]), None, 1e-5, &mut y),
            Err(KernelError::Shape {
                arg: "gamma",
                len: 1,
                expected: 2
            })
        );
        assert_eq!(
            layer_norm_bytes(&x, None, Some(&[0; 7]), 1e-5, &mut y),
            Err(KernelError::Shape {
                arg: "beta",
                len: 7,
                expected: 8
            })
        );
        assert_eq!(
            layer_norm(&x, None, None, -1.0, &mut y),
            Err(KernelError::Invalid {
                arg: "eps",
                requirement: "finite and >= 0"
            })
        );
        assert_eq!(y, [0.0; 2], "nothing written on error");
    }
}
