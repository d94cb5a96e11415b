//! The kernels' one error type.
//!
//! Every kernel checks all of its arguments before it writes anything, so on `Err` the
//! output buffers are untouched. Lengths of `&[u8]` arguments (weights straight from
//! flash) are counted in bytes; lengths of `&[f32]` arguments in elements.

use core::fmt;

/// Why a kernel refused its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum KernelError {
    /// Argument `arg` has length `len`, but its shape requires `expected`.
    Shape {
        /// Name of the offending argument, as in the function signature.
        arg: &'static str,
        /// Its actual length (bytes for `&[u8]`, elements otherwise).
        len: usize,
        /// The length the other arguments imply.
        expected: usize,
    },
    /// Index `index` into `arg` is not in `0..len`.
    OutOfRange {
        /// What was indexed (`"row"`, `"col"`).
        arg: &'static str,
        /// The requested index.
        index: usize,
        /// The number of valid indices.
        len: usize,
    },
    /// The byte size implied for `arg` does not fit in `usize`.
    Overflow {
        /// The argument whose size overflowed.
        arg: &'static str,
    },
    /// Argument `arg` violates `requirement` (a non-length precondition).
    Invalid {
        /// Name of the offending argument.
        arg: &'static str,
        /// What it must satisfy, e.g. `"finite and > 0"`.
        requirement: &'static str,
    },
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Shape { arg, len, expected } => {
                write!(f, "argument `{arg}` has length {len}, expected {expected}")
            }
            Self::OutOfRange { arg, index, len } => {
                write!(f, "{arg} index {index} out of range 0..{len}")
            }
            Self::Overflow { arg } => write!(f, "size of `{arg}` overflows usize"),
            Self::Invalid { arg, requirement } => {
                write!(f, "argument `{arg}` must be {requirement}")
            }
        }
    }
}

impl core::error::Error for KernelError {}

/// `Ok` if `len == expected`, else the [`KernelError::Shape`] naming `arg`.
pub(crate) const fn check_len(
    arg: &'static str,
    len: usize,
    expected: usize,
) -> Result<(), KernelError> {
    if len == expected {
        Ok(())
    } else {
        Err(KernelError::Shape { arg, len, expected })
    }
}

/// Byte length of `n` little-endian f32 values, or [`KernelError::Overflow`] naming `arg`.
pub(crate) const fn f32_bytes(arg: &'static str, n: usize) -> Result<usize, KernelError> {
    match n.checked_mul(4) {
        Some(b) => Ok(b),
        None => Err(KernelError::Overflow { arg }),
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;

    #[test]
    fn display_names_argument_and_lengths() {
        let e = KernelError::Shape {
            arg: "x",
            len: 3,
            expected: 4,
        };
        assert_eq!(e.to_string(), "argument `x` has length 3, expected 4");
        let e = KernelError::OutOfRange {
            arg: "row",
            index: 5,
            len: 2,
        };
        assert_eq!(e.to_string(), "row index 5 out of range 0..2");
        let e = KernelError::Invalid {
            arg: "max_period",
            requirement: "finite and > 0",
        };
        assert_eq!(
            e.to_string(),
            "argument `max_period` must be finite and > 0"
        );
        let e = KernelError::Overflow { arg: "data" };
        assert_eq!(e.to_string(), "size of `data` overflows usize");
    }

    #[test]
    fn helpers() {
        assert_eq!(check_len("a", 2, 2), Ok(()));
        assert_eq!(
            check_len("a", 1, 2),
            Err(KernelError::Shape {
                arg: "a",
                len: 1,
                expected: 2
            })
        );
        assert_eq!(f32_bytes("b", 3), Ok(12));
        assert_eq!(
            f32_bytes("b", usize::MAX),
            Err(KernelError::Overflow { arg: "b" })
        );
    }
}
