//! Numeric kernels of microdiff: dot products and matrix-vector products over f32 / f16 /
//! int8 weights read in place from flash, activations and their derivatives, time and class
//! embeddings, and layer norm. `no_std`, no allocator, no `unsafe` outside [`int8_fast`] (its
//! Cortex-M assembly, and the i16 view of the paired weights in its portable kernel); no
//! kernel panics on any input: every length is checked up front and a mismatch is a
//! [`KernelError`].
//!
//! # Determinism contract
//!
//! The same inputs give the same output bits on every target (x86-64, Cortex-M0+ soft
//! float, Cortex-M4F/M7, RISC-V) and in the host trainer:
//!
//! * **IEEE-754 binary32, no fused multiply-add.** Every operation is a separately rounded
//!   `+ - * /` written in Rust (which never contracts); `mul_add` is never called.
//! * **Fixed reduction order.** Every sum is plain sequential left-to-right accumulation from
//!   `acc = 0.0f32`: `acc = acc + a[i] * b[i]` for `i = 0, 1, 2, ...`. Each function's doc gives
//!   its exact formula and operation order. A faster kernel (SIMD, DSP) must reproduce this
//!   order or be a separate, opt-in, non-conformant mode.
//! * **Transcendentals from `libm` only** (`expf`, `logf`, `sinf`, `cosf`, `tanhf`, `sqrtf`,
//!   `roundf`, `fabsf`): one pure-Rust implementation for all targets. (Its only
//!   architecture-specific paths on our targets are for `sqrtf`, which IEEE requires to be
//!   correctly rounded, so they agree anyway.)
//! * **Exact weight decoding.** Little-endian bytes, any alignment: f32 by
//!   `f32::from_le_bytes`; f16 by `half::f16::to_f32`, which is exact; i8 by `i8 as f32`,
//!   exact. Int8 rows are symmetric with one f32 scale per row and zero-point 0: the integer
//!   codes enter the dot product and the scale multiplies the finished sum
//!   ([`gemv`]); a standalone element is `(q as f32) * scale` ([`Matrix::get`]).
//! * **One encoding rule, shared with the host exporter.** int8:
//!   `scale = max_i |w[i]| / 127`, `q = clamp(round_half_away_from_zero(w / scale), -127, 127)`
//!   with `libm::roundf` ([`quantize_row_i8`]); a row with `scale == 0` (all zeros) stores zero
//!   codes and decodes to zeros. f16: `half::f16::from_f32`, round to nearest, ties to even
//!   ([`encode_f16`]).
//!
//! # Modules
//!
//! [`weights`] (dtypes, the in-place [`Matrix`] view, encoders), [`linear`] (dot, gemv),
//! [`int8`] (the full-integer W8A8 path's reference kernels, TFLite's conventions),
//! [`int8_fast`] (the kernels the runtime calls: the reference's bits, DSP assembly where the
//! target has it),
//! [`act`] (activations and derivatives), [`embed`] (time embedding, embedding rows),
//! [`cuda`] (the CUDA kernel sources of the host trainer and their ABI),
//! [`norm`] (layer norm), [`error`].
#![no_std]
#![deny(missing_docs)]
#![deny(unsafe_code)]
// Kernels must not panic: no unwrap/expect/panic outside tests.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

pub mod act;
pub mod cuda;
pub mod embed;
pub mod error;
pub mod int8;
pub mod int8_fast;
pub mod linear;
pub mod norm;
pub mod weights;

pub use act::{
    Activation, exp, gelu_tanh, gelu_tanh_grad, relu, relu_grad, sigmoid, sigmoid_grad, silu,
    silu_grad,
};
pub use embed::{embedding_row, time_embedding};
pub use error::KernelError;
pub use linear::{dot_f16, dot_f32, dot_i8, gemv, gemv_bias_bytes};
pub use norm::{layer_norm, layer_norm_bytes, layer_norm_in_place};
pub use weights::{Dtype, Matrix, encode_f16, quantize_row_i8};
