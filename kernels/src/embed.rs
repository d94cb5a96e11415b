//! Embeddings: the sinusoidal embedding of the diffusion time, and the row gather of a
//! learned embedding table (class labels).

use crate::error::{KernelError, check_len};
use crate::weights::Matrix;

/// Sinusoidal embedding of the scalar time `t` into `out` (length `dim`, even, `>= 2`).
///
/// With `half = dim / 2` and `l = libm::logf(max_period)`, for `i in 0..half`:
/// ```text
/// e     = ((-l) * (i as f32)) / (half as f32)
/// a     = t * libm::expf(e)
/// out[i]        = libm::sinf(a)
/// out[half + i] = libm::cosf(a)
/// ```
/// `i as f32` and `half as f32` round to nearest (exact below 2^24). So `out[0] = sin(t)`,
/// `out[half] = cos(t)`, and frequencies fall geometrically towards `1 / max_period`.
///
/// Errors: `dim` odd or 0; `max_period` not finite or `<= 0`. A non-finite `t` is allowed
/// and gives NaN.
pub fn time_embedding(t: f32, max_period: f32, out: &mut [f32]) -> Result<(), KernelError> {
    let dim = out.len();
    if dim == 0 || !dim.is_multiple_of(2) {
        return Err(KernelError::Invalid {
            arg: "out",
            requirement: "of even length >= 2",
        });
    }
    if !(max_period.is_finite() && max_period > 0.0) {
        return Err(KernelError::Invalid {
            arg: "max_period",
            requirement: "finite and > 0",
        });
    }
    let half = dim / 2;
    let neg_log = -libm::logf(max_period);
    let half_f = half as f32;
    let (sines, cosines) = out.split_at_mut(half);
    for (i, (s, c)) in sines.iter_mut().zip(cosines).enumerate() {
        let a = t * libm::expf((neg_log * (i as f32)) / half_f);
        *s = libm::sinf(a);
        *c = libm::cosf(a);
    }
    Ok(())
}

/// Row `row` of an embedding table `(entries, dim)` into `out` (length `dim`), decoded like
/// [`Matrix::row_into`]: stored values for f32/f16, `(q as f32) * scale[row]` for i8.
///
/// Errors: `row >= table.rows()`, or `out.len() != table.cols()`.
pub fn embedding_row(table: &Matrix, row: usize, out: &mut [f32]) -> Result<(), KernelError> {
    check_len("out", out.len(), table.cols())?;
    table.row_into(row, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::Dtype;

    #[test]
    fn time_zero_is_sines_zero_cosines_one() {
        let mut out = [9.0f32; 8];
        time_embedding(0.0, 10_000.0, &mut out).unwrap();
        assert_eq!(out, [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]);
    }

    #[test]
    fn first_pair_is_sin_cos_of_t() {
        let mut out = [0.0f32; 2];
        time_embedding(0.75, 10_000.0, &mut out).unwrap();
        assert_eq!(out, [libm::sinf(0.75), libm::cosf(0.75)]);
    }

    #[test]
    fn bad_arguments() {
        let mut odd = [0.0f32; 3];
        assert!(time_embedding(1.0, 10.0, &mut odd).is_err());
        assert!(time_embedding(1.0, 10.0, &mut []).is_err());
        let mut out = [0.0f32; 4];
        for p in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            assert_eq!(
                time_embedding(1.0, p, &mut out),
                Err(KernelError::Invalid {
                    arg: "max_period",
                    requirement: "finite and > 0"
                })
            );
        }
        assert_eq!(out, [0.0; 4], "nothing written on error");
    }

    #[test]
    fn gathers_a_row() {
        let data: [u8; 4] = [0x00, 0x3c, 0x00, 0xc0]; // f16 [[1.0], [-2.0]]
        let table = Matrix::new(Dtype::F16, 2, 1, &data, &[]).unwrap();
        let mut out = [0.0f32; 1];
        embedding_row(&table, 1, &mut out).unwrap();
        assert_eq!(out, [-2.0]);
        assert_eq!(
            embedding_row(&table, 2, &mut out),
            Err(KernelError::OutOfRange {
                arg: "row",
                index: 2,
                len: 2
            })
        );
    }
}
