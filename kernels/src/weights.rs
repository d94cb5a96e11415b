//! Weight storage: the element types a blob may hold ([`Dtype`]), a zero-copy view of a
//! row-major weight matrix in flash ([`Matrix`]), and the encoders the host exporter must use
//! ([`quantize_row_i8`], [`encode_f16`]) so that the format is defined in one place.
//!
//! Weights are raw little-endian bytes with no alignment requirement. Decoding is exact:
//! f32 by `f32::from_le_bytes`, f16 by `half::f16::to_f32` (every f16 is an f32), i8 by
//! `i8 as f32`. A [`Matrix`] validates its byte lengths once, in [`Matrix::new`]; after that
//! none of its methods can panic.

use crate::error::{KernelError, check_len, f32_bytes};
use core::fmt;

/// Element type of a stored weight tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum Dtype {
    /// IEEE-754 binary32, 4 bytes little-endian.
    F32 = 0,
    /// IEEE-754 binary16, 2 bytes little-endian; widened to f32 exactly.
    F16 = 1,
    /// Signed 8-bit integer with one f32 scale per row (symmetric, zero-point 0).
    I8 = 2,
    /// Signed 8-bit integer codes with no scales: the full-integer (W8A8) path's weights and
    /// tables, whose quantization lives in the ops that read them. Not a float [`Matrix`].
    Q8 = 3,
    /// Signed 32-bit integers, little-endian: W8A8 biases and requantization parameters.
    /// Not a float [`Matrix`].
    I32 = 4,
}

impl Dtype {
    /// The dtype with blob code `c`, or `None` for an unknown code.
    pub const fn from_code(c: u8) -> Option<Dtype> {
        match c {
            0 => Some(Self::F32),
            1 => Some(Self::F16),
            2 => Some(Self::I8),
            3 => Some(Self::Q8),
            4 => Some(Self::I32),
            _ => None,
        }
    }

    /// The blob code of this dtype (inverse of [`Dtype::from_code`]).
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// Bytes per stored element: 4, 2 or 1.
    pub const fn bytes_per_element(self) -> usize {
        match self {
            Self::F32 | Self::I32 => 4,
            Self::F16 => 2,
            Self::I8 | Self::Q8 => 1,
        }
    }

    /// Short lowercase name: `"f32"`, `"f16"`, `"i8"`, `"q8"` or `"i32"`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::I8 => "i8",
            Self::Q8 => "q8",
            Self::I32 => "i32",
        }
    }
}

// Element decoders. `chunks_exact(N)` only yields chunks of length N, so the indexing
// below cannot fail; trailing bytes (never present after a length check) are ignored.

/// Little-endian f32 values in `bytes`.
pub(crate) fn f32s(bytes: &[u8]) -> impl ExactSizeIterator<Item = f32> + '_ {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
}

/// Little-endian f16 values in `bytes`, widened to f32 (exact).
pub(crate) fn f16s(bytes: &[u8]) -> impl ExactSizeIterator<Item = f32> + '_ {
    bytes
        .chunks_exact(2)
        .map(|c| half::f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32())
}

/// i8 values in `bytes`, converted to f32 (exact).
pub(crate) fn i8s(bytes: &[u8]) -> impl ExactSizeIterator<Item = f32> + '_ {
    bytes.iter().map(|&b| f32::from(i8::from_le_bytes([b])))
}

/// The `i`-th little-endian f32 in `bytes`, if it is all there.
fn f32_at(bytes: &[u8], i: usize) -> Option<f32> {
    let start = i.checked_mul(4)?;
    let c = bytes.get(start..start.checked_add(4)?)?;
    Some(f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
}

/// A row-major `(rows, cols)` weight matrix viewed in place, e.g. in flash.
///
/// Invariant (checked by [`Matrix::new`]): `data` holds exactly `rows * cols` elements of
/// `dtype`, and `scales` holds exactly `rows` f32 for [`Dtype::I8`] and nothing otherwise.
#[derive(Clone, Copy)]
pub struct Matrix<'a> {
    dtype: Dtype,
    rows: usize,
    cols: usize,
    data: &'a [u8],   // (rows, cols) elements of dtype, little-endian
    scales: &'a [u8], // (rows,) little-endian f32, I8 only
}

impl fmt::Debug for Matrix<'_> {
    // The bytes can be many kilobytes; the shape is what a log needs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Matrix")
            .field("dtype", &self.dtype)
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .finish_non_exhaustive()
    }
}

impl<'a> Matrix<'a> {
    /// Views `data` as a `(rows, cols)` matrix of `dtype`.
    ///
    /// `data` must be exactly `rows * cols * dtype.bytes_per_element()` bytes. For
    /// [`Dtype::I8`], `scales` must be exactly `rows` little-endian f32 (one per output
    /// row / channel, symmetric, zero-point 0); for other dtypes it must be empty.
    pub fn new(
        dtype: Dtype,
        rows: usize,
        cols: usize,
        data: &'a [u8],
        scales: &'a [u8],
    ) -> Result<Self, KernelError> {
        let data_len = rows
            .checked_mul(cols)
            .and_then(|n| n.checked_mul(dtype.bytes_per_element()))
            .ok_or(KernelError::Overflow { arg: "data" })?;
        check_len("data", data.len(), data_len)?;
        let scales_len = match dtype {
            Dtype::I8 => f32_bytes("scales", rows)?,
            Dtype::F32 | Dtype::F16 => 0,
            Dtype::Q8 | Dtype::I32 => {
                return Err(KernelError::Invalid {
                    arg: "dtype",
                    requirement: "f32, f16 or i8 (q8 and i32 tensors belong to the integer ops)",
                });
            }
        };
        check_len("scales", scales.len(), scales_len)?;
        Ok(Self {
            dtype,
            rows,
            cols,
            data,
            scales,
        })
    }

    /// Element type of the stored weights.
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// Number of rows (outputs of a [`gemv`](crate::gemv)).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns (inputs of a [`gemv`](crate::gemv)).
    pub fn cols(&self) -> usize {
        self.cols
    }

    fn check_row(&self, r: usize) -> Result<(), KernelError> {
        if r < self.rows {
            Ok(())
        } else {
            Err(KernelError::OutOfRange {
                arg: "row",
                index: r,
                len: self.rows,
            })
        }
    }

    /// The stored bytes of row `r` (`cols * bytes_per_element` bytes, undecoded).
    pub fn row_bytes(&self, r: usize) -> Result<&'a [u8], KernelError> {
        self.check_row(r)?;
        // r < rows and rows * row_len == data.len() (checked in `new`): no overflow.
        let row_len = self.cols * self.dtype.bytes_per_element();
        let start = r * row_len;
        self.data
            .get(start..start + row_len)
            .ok_or(KernelError::OutOfRange {
                arg: "row",
                index: r,
                len: self.rows,
            })
    }

    /// The dequantization scale of row `r`: the stored f32 for [`Dtype::I8`], `1.0` for
    /// f32/f16 (which store real values and are never multiplied by it).
    pub fn scale(&self, r: usize) -> Result<f32, KernelError> {
        self.check_row(r)?;
        match self.dtype {
            Dtype::I8 => f32_at(self.scales, r).ok_or(KernelError::OutOfRange {
                arg: "row",
                index: r,
                len: self.rows,
            }),
            _ => Ok(1.0),
        }
    }

    /// Element `(r, c)` as f32: the stored value for f32/f16, `(q as f32) * scale[r]` for i8.
    pub fn get(&self, r: usize, c: usize) -> Result<f32, KernelError> {
        if c >= self.cols {
            return Err(KernelError::OutOfRange {
                arg: "col",
                index: c,
                len: self.cols,
            });
        }
        let row = self.row_bytes(r)?;
        let value = match self.dtype {
            Dtype::F32 => f32s(row).nth(c),
            Dtype::F16 => f16s(row).nth(c),
            Dtype::I8 => match i8s(row).nth(c) {
                Some(q) => Some(q * self.scale(r)?),
                None => None,
            },
            // Refused by `Matrix::new`.
            Dtype::Q8 | Dtype::I32 => None,
        };
        value.ok_or(KernelError::OutOfRange {
            arg: "col",
            index: c,
            len: self.cols,
        })
    }

    /// Row `r` decoded into `out` (length `cols`): `out[c]` is the stored value for
    /// f32/f16 and `(q[r, c] as f32) * scale[r]` for i8 (one rounding).
    pub fn row_into(&self, r: usize, out: &mut [f32]) -> Result<(), KernelError> {
        check_len("out", out.len(), self.cols)?;
        let row = self.row_bytes(r)?;
        let scale = self.scale(r)?;
        match self.dtype {
            Dtype::F32 => out.iter_mut().zip(f32s(row)).for_each(|(o, v)| *o = v),
            Dtype::F16 => out.iter_mut().zip(f16s(row)).for_each(|(o, v)| *o = v),
            Dtype::I8 => out
                .iter_mut()
                .zip(i8s(row))
                .for_each(|(o, q)| *o = q * scale),
            // Refused by `Matrix::new`.
            Dtype::Q8 | Dtype::I32 => {}
        }
        Ok(())
    }
}

/// Quantizes one weight row to int8 with the project's one rounding rule; returns the scale.
///
/// `scale = m / 127.0` where `m = max_i |w[i]|`, and
/// `q[i] = clamp(libm::roundf(w[i] / scale), -127, 127)` (`roundf` rounds half away from
/// zero; -128 is never used, so the code is symmetric). Dequantization is
/// `q[i] as f32 * scale` ([`Matrix`]). A row whose `m / 127.0` is 0 (all zeros, or so tiny
/// it underflows) gets `scale = 0.0` and all-zero codes, which dequantize to zeros.
///
/// Errors: `q_out.len() != w.len()`, or a non-finite value in `w`. Runs on the host at
/// export time, but is `no_std` so the device tests can share it.
pub fn quantize_row_i8(w: &[f32], q_out: &mut [i8]) -> Result<f32, KernelError> {
    check_len("q_out", q_out.len(), w.len())?;
    if !w.iter().all(|v| v.is_finite()) {
        return Err(KernelError::Invalid {
            arg: "w",
            requirement: "all finite",
        });
    }
    let m = w.iter().fold(0.0f32, |m, &v| {
        let a = libm::fabsf(v);
        if a > m { a } else { m }
    });
    let scale = m / 127.0;
    for (q, &v) in q_out.iter_mut().zip(w) {
        *q = if scale == 0.0 {
            0
        } else {
            // The clamp is exact and guards |v / scale| slightly above 127 from rounding
            // (and huge quotients from subnormal scales); `as` is then exact.
            libm::roundf(v / scale).clamp(-127.0, 127.0) as i8
        };
    }
    Ok(scale)
}

/// Encodes `x` as little-endian f16 bytes with `half::f16::from_f32` (round to nearest,
/// ties to even; overflow to ±inf; NaN stays NaN). The exporter's one f16 rule.
pub fn encode_f16(x: f32) -> [u8; 2] {
    half::f16::from_f32(x).to_bits().to_le_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtype_codes_round_trip() {
        for d in [Dtype::F32, Dtype::F16, Dtype::I8, Dtype::Q8, Dtype::I32] {
            assert_eq!(Dtype::from_code(d.code()), Some(d));
        }
        assert_eq!(Dtype::from_code(5), None);
        assert_eq!(
            (
                Dtype::Q8.bytes_per_element(),
                Dtype::I32.bytes_per_element()
            ),
            (1, 4)
        );
        assert!(
            Matrix::new(Dtype::Q8, 1, 1, &[0], &[]).is_err(),
            "not a float matrix"
        );
        assert_eq!(Dtype::F16.bytes_per_element(), 2);
        assert_eq!(Dtype::I8.name(), "i8");
    }

    #[test]
    fn zero_sized_matrices_are_fine() {
        let m = Matrix::new(Dtype::F32, 0, 5, &[], &[]).unwrap();
        assert_eq!(
            m.row_bytes(0),
            Err(KernelError::OutOfRange {
                arg: "row",
                index: 0,
                len: 0
            })
        );
        let m = Matrix::new(Dtype::I8, 2, 0, &[], &[0; 8]).unwrap();
        assert_eq!(m.row_bytes(1), Ok(&[][..]));
        assert_eq!(m.row_into(1, &mut []), Ok(()));
    }

    #[test]
    fn overflowing_shapes_are_errors() {
        assert_eq!(
            Matrix::new(Dtype::F16, usize::MAX, 2, &[], &[]).unwrap_err(),
            KernelError::Overflow { arg: "data" }
        );
        assert_eq!(
            Matrix::new(Dtype::I8, usize::MAX, 0, &[], &[]).unwrap_err(),
            KernelError::Overflow { arg: "scales" }
        );
    }

    #[test]
    fn quantize_known_row() {
        // max 127 makes the scale exactly 1.0, so every tie below is a true tie.
        let w = [127.0f32, -63.5, 0.0, 0.5, -0.5, 2.5, 1.49];
        let mut q = [0i8; 7];
        assert_eq!(quantize_row_i8(&w, &mut q), Ok(1.0));
        assert_eq!(q, [127, -64, 0, 1, -1, 3, 1]); // ties go away from zero
    }

    #[test]
    fn quantize_zero_row_gives_zero_scale() {
        let mut q = [5i8; 3];
        assert_eq!(quantize_row_i8(&[0.0, -0.0, 0.0], &mut q), Ok(0.0));
        assert_eq!(q, [0; 3]);
    }
}
