//! The CUDA backend's one error type: probing, compiling, allocating, copying, launching and
//! GEMM failures on the real device or the emulator, each with the operation it came from.
//!
//! `Clone`, so the backend can keep the first error it met and report it on every later
//! [`crate::backend::Backend::check`] (after a device error the device state is not trusted).

/// Anything the CUDA backend can fail with.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CudaError {
    /// The CUDA driver library (`libcuda.so` / `nvcuda.dll`) could not be loaded.
    #[error(
        "no CUDA driver: the {library} library could not be loaded (is the NVIDIA driver installed?)"
    )]
    NoDriver {
        /// Which library was missing (`libcuda`, `libcublas`).
        library: &'static str,
    },
    /// The driver loaded but reports no device.
    #[error("no CUDA device: {reason}")]
    NoDevice {
        /// What the driver said.
        reason: String,
    },
    /// `cuda:N` asked for a device that does not exist.
    #[error("CUDA device {ordinal} requested but only {count} present")]
    BadOrdinal {
        /// The ordinal asked for.
        ordinal: usize,
        /// Devices present.
        count: usize,
    },
    /// A CUDA driver call failed.
    #[error("CUDA driver: {op}: {source}")]
    Driver {
        /// The operation (`alloc`, `launch md_fill`, …).
        op: String,
        /// The driver's error.
        source: cudarc::driver::DriverError,
    },
    /// A cuBLAS call failed.
    #[error("cuBLAS: {op}: {source}")]
    Cublas {
        /// The operation.
        op: String,
        /// cuBLAS's status.
        source: cudarc::cublas::result::CublasError,
    },
    /// NVRTC, which compiles the kernels at run time, cannot be loaded.
    #[error("{0}")]
    NoNvrtc(String),
    /// Compiling the kernel sources with NVRTC (or loading the result) failed.
    #[error("compiling the CUDA kernels: {0}")]
    Compile(String),
    /// The CPU emulator of the kernels refused an operation (tests only).
    #[error("CUDA emulator: {op}: {message}")]
    Emulator {
        /// The operation.
        op: String,
        /// The emulator's error, as text.
        message: String,
    },
    /// A buffer view or shape does not fit its buffer (a bug in the caller, caught before it
    /// could read or write out of bounds on the device).
    #[error("shape: {0}")]
    Shape(String),
}
