//! The CUDA backend: [`super::Backend`] on an NVIDIA GPU through `cudarc` (driver, NVRTC,
//! cuBLAS), loaded at run time so that building and running without CUDA is the normal case.
//!
//! (Being built, issue #4.) Layout:
//! * [`nvrtc`] — compiles the kernel sources of `kernels/cuda` to PTX (options, cache).

pub mod nvrtc;
