//! Dot products and matrix-vector products over f32 / f16 / int8 weights.
//!
//! Reduction order (the conformance contract; any faster kernel must reproduce it):
//! ```text
//! acc = 0.0f32
//! for i in 0..n: acc = acc + w[i] * x[i]      // product rounded, then sum rounded: no FMA
//! ```
//! `w[i]` is the decoded weight (f32, or f16 widened exactly). For int8 the raw integer
//! codes enter the loop (`(q[i] as f32) * x[i]`, the product rounded to f32) and the row scale
//! is applied once afterwards, then the bias:
//! ```text
//! f32 / f16:  y[r] = acc_r + bias[r]
//! i8:         y[r] = (acc_r * scale[r]) + bias[r]
//! ```
//! Without a bias the `+ bias[r]` is skipped (not replaced by `+ 0.0`).

use crate::error::{KernelError, check_len, f32_bytes};
use crate::weights::{Dtype, Matrix, f16s, f32s, i8s};

/// The documented sequential reduction. Callers guarantee equal lengths; `zip` would
/// otherwise stop at the shorter input rather than panic.
fn dot(w: impl Iterator<Item = f32>, x: &[f32]) -> f32 {
    let mut acc = 0.0f32;
    for (wi, &xi) in w.zip(x) {
        // Two rounded operations: Rust never contracts `a += b * c` into an FMA.
        acc += wi * xi;
    }
    acc
}

/// `acc = 0; for i: acc = acc + w[i] * x[i]` with `w` as `4 * x.len()` bytes of
/// little-endian f32.
pub fn dot_f32(w: &[u8], x: &[f32]) -> Result<f32, KernelError> {
    // A `&[f32]` spans at most isize::MAX bytes, so 4 * x.len() cannot overflow.
    check_len("w", w.len(), 4 * x.len())?;
    Ok(dot(f32s(w), x))
}

/// As [`dot_f32`] with `w` as `2 * x.len()` bytes of little-endian f16, each widened to f32
/// exactly before the same loop.
pub fn dot_f16(w: &[u8], x: &[f32]) -> Result<f32, KernelError> {
    check_len("w", w.len(), 2 * x.len())?;
    Ok(dot(f16s(w), x))
}

/// Raw integer-weight dot: `acc = 0; for i: acc = acc + (q[i] as f32) * x[i]` with `q` as
/// `x.len()` bytes of i8. No scale: [`gemv`] applies the row scale after the sum.
pub fn dot_i8(q: &[u8], x: &[f32]) -> Result<f32, KernelError> {
    check_len("q", q.len(), x.len())?;
    Ok(dot(i8s(q), x))
}

/// `y[r] = dot(W[r, :], x)` for every row, then the i8 row scale, then the bias:
/// f32/f16 `y[r] = acc_r (+ bias[r])`; i8 `y[r] = (acc_r * scale[r]) (+ bias[r])`.
///
/// Shapes: `x` (cols), `y` (rows), `bias` (rows) if present.
pub fn gemv(w: &Matrix, x: &[f32], bias: Option<&[f32]>, y: &mut [f32]) -> Result<(), KernelError> {
    check_shapes(w, x, y)?;
    if let Some(b) = bias {
        check_len("bias", b.len(), w.rows())?;
    }
    gemv_unchecked(w, x, bias.map(|b| b.iter().copied()), y)
}

/// [`gemv`] with the bias as `4 * rows` bytes of little-endian f32, straight from flash.
pub fn gemv_bias_bytes(
    w: &Matrix,
    x: &[f32],
    bias: Option<&[u8]>,
    y: &mut [f32],
) -> Result<(), KernelError> {
    check_shapes(w, x, y)?;
    if let Some(b) = bias {
        check_len("bias", b.len(), f32_bytes("bias", w.rows())?)?;
    }
    gemv_unchecked(w, x, bias.map(f32s), y)
}

fn check_shapes(w: &Matrix, x: &[f32], y: &[f32]) -> Result<(), KernelError> {
    check_len("x", x.len(), w.cols())?;
    check_len("y", y.len(), w.rows())
}

/// The gemv loop, once lengths are checked. `bias` yields `rows` values if present.
fn gemv_unchecked(
    w: &Matrix,
    x: &[f32],
    mut bias: Option<impl Iterator<Item = f32>>,
    y: &mut [f32],
) -> Result<(), KernelError> {
    for (r, yr) in y.iter_mut().enumerate() {
        // Cannot fail: r < rows = y.len(), checked by the caller.
        let row = w.row_bytes(r)?;
        let mut v = match w.dtype() {
            Dtype::F32 => dot(f32s(row), x),
            Dtype::F16 => dot(f16s(row), x),
            Dtype::I8 => dot(i8s(row), x) * w.scale(r)?,
            // `Matrix::new` refuses integer-path dtypes.
            Dtype::Q8 | Dtype::I32 => {
                return Err(KernelError::Invalid {
                    arg: "w",
                    requirement: "a float-arithmetic matrix",
                });
            }
        };
        if let Some(b) = bias.as_mut().and_then(Iterator::next) {
            v += b;
        }
        *yr = v;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_known_values() {
        let w: [u8; 8] = [0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0]; // [1.0, -2.0]
        assert_eq!(dot_f32(&w, &[3.0, 0.5]), Ok(2.0));
        let w16: [u8; 4] = [0x00, 0x3c, 0x00, 0xc0]; // f16 [1.0, -2.0]
        assert_eq!(dot_f16(&w16, &[3.0, 0.5]), Ok(2.0));
        assert_eq!(dot_i8(&[0xff, 2], &[3.0, 0.5]), Ok(-2.0)); // [-1, 2]
        assert_eq!(dot_f32(&[], &[]), Ok(0.0));
    }

    #[test]
    fn i8_gemv_scales_then_adds_bias() {
        let scales = [0.5f32.to_le_bytes(), 2.0f32.to_le_bytes()].concat();
        let m = Matrix::new(Dtype::I8, 2, 2, &[1, 2, 0xfe, 0], &scales).unwrap();
        let mut y = [0.0; 2];
        gemv(&m, &[1.0, 1.0], Some(&[10.0, 20.0]), &mut y).unwrap();
        assert_eq!(y, [11.5, 16.0]);
        let bias = [10.0f32.to_le_bytes(), 20.0f32.to_le_bytes()].concat();
        gemv_bias_bytes(&m, &[1.0, 1.0], Some(&bias), &mut y).unwrap();
        assert_eq!(y, [11.5, 16.0]);
    }

    #[test]
    fn errors_name_the_argument() {
        let m = Matrix::new(Dtype::F32, 1, 2, &[0; 8], &[]).unwrap();
        let mut y = [7.0; 1];
        assert_eq!(
            gemv(&m, &[1.0], None, &mut y),
            Err(KernelError::Shape {
                arg: "x",
                len: 1,
                expected: 2
            })
        );
        assert_eq!(
            gemv_bias_bytes(&m, &[1.0, 2.0], Some(&[0; 3]), &mut y),
            Err(KernelError::Shape {
                arg: "bias",
                len: 3,
                expected: 4
            })
        );
        assert_eq!(y, [7.0], "nothing written on error");
        assert_eq!(
            dot_f16(&[0; 3], &[1.0]),
            Err(KernelError::Shape {
                arg: "w",
                len: 3,
                expected: 2
            })
        );
    }
}
