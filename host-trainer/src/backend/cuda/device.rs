//! [`Device`]: the launch code path shared by the real GPU ([`super::driver`]) and the CPU
//! emulator of the kernels (`super::emu`, feature `cuda-emu`).
//!
//! [`super::CudaBackend`] is written once over this trait: it decides every launch
//! configuration and every argument list, so the emulator runs exactly the launches the GPU
//! runs. A device owns f32 memory, copies it, launches the `md_` kernels of the kernel ABI
//! (`kernels/src/cuda.rs`) by name, and multiplies row-major matrices ([`Device::sgemm`]).
//! Every operation is fallible with one [`CudaError`].

use super::error::CudaError;

/// A kernel launch's geometry (the CUDA meaning of each field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaunchConfig {
    /// Blocks in the grid.
    pub grid: (u32, u32, u32),
    /// Threads in a block.
    pub block: (u32, u32, u32),
    /// Dynamic shared memory per block, in bytes.
    pub shared_bytes: u32,
}

/// One kernel argument.
#[derive(Debug)]
pub enum KernelArg<'a, M> {
    /// `float*` pointing at element `.1` of a device buffer. Shared borrow even for outputs:
    /// device memory is written by the device, not through Rust references, and a kernel may
    /// take two views of one buffer (γ and β gradients inside the gradient vector).
    Buf(&'a M, usize),
    /// `int`.
    I32(i32),
    /// `unsigned int`.
    U32(u32),
    /// `unsigned long long`.
    U64(u64),
    /// `float`.
    F32(f32),
}

/// One matrix operand of [`Device::sgemm`]: row-major, tightly packed, starting at element
/// `offset` of `mem`; `trans` means the stored matrix is the transpose of the operand.
#[derive(Debug)]
pub struct MatRef<'a, M> {
    /// The buffer.
    pub mem: &'a M,
    /// Element offset of the matrix in the buffer.
    pub offset: usize,
    /// The operand is the transpose of what is stored.
    pub trans: bool,
}

/// The output of [`Device::sgemm`]: row-major, tightly packed, starting at element `offset` of
/// `mem`.
#[derive(Debug)]
pub struct MatMut<'a, M> {
    /// The buffer.
    pub mem: &'a mut M,
    /// Element offset of the matrix in the buffer.
    pub offset: usize,
}

/// The shape and scalars of [`Device::sgemm`]: `C (m×n) = α·op(A)·op(B) + β·C` with op(A)
/// m×k and op(B) k×n.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GemmSpec {
    /// Rows of op(A) and C.
    pub m: usize,
    /// Columns of op(B) and C.
    pub n: usize,
    /// Columns of op(A), rows of op(B).
    pub k: usize,
    /// α.
    pub alpha: f32,
    /// β.
    pub beta: f32,
}

/// A device the CUDA backend runs on: the real GPU, or the emulator.
pub trait Device {
    /// Owned device memory of f32 (freed on drop).
    type Mem;

    /// A short description for messages (`NVIDIA H100 (sm_90)`, `CPU emulator`).
    fn describe(&self) -> String;

    /// `n` elements, contents unspecified (the emulator poisons them with NaN, as uninitialised
    /// `cudaMalloc` memory may hold anything).
    fn alloc(&self, n: usize) -> Result<Self::Mem, CudaError>;
    /// `n` zeros.
    fn alloc_zeros(&self, n: usize) -> Result<Self::Mem, CudaError>;
    /// Copies `host` to elements `offset..offset + host.len()` of `dst`.
    fn upload(&self, dst: &mut Self::Mem, offset: usize, host: &[f32]) -> Result<(), CudaError>;
    /// Copies elements `offset..offset + host.len()` of `src` to `host`; returns when the copy
    /// (and all work before it) has completed.
    fn download(&self, src: &Self::Mem, offset: usize, host: &mut [f32]) -> Result<(), CudaError>;
    /// Device-to-device copy of `n` elements.
    fn copy(
        &self,
        src: &Self::Mem,
        src_offset: usize,
        dst: &mut Self::Mem,
        dst_offset: usize,
        n: usize,
    ) -> Result<(), CudaError>;

    /// Launches `kernel` (an `md_` name of the kernel ABI) with `args` in the kernel's
    /// parameter order. Asynchronous on a GPU: errors of the kernel itself may surface at the
    /// next synchronising call.
    fn launch(
        &self,
        kernel: &str,
        cfg: LaunchConfig,
        args: &[KernelArg<'_, Self::Mem>],
    ) -> Result<(), CudaError>;

    /// Row-major single-precision GEMM: `C (m×n) = α·op(A)·op(B) + β·C`, with op(A) m×k and
    /// op(B) k×n (shape and scalars in `g`), all three tightly packed (leading dimension =
    /// stored row length). With `β = 0`, `C` is not read (BLAS semantics: uninitialised `C`
    /// may hold NaN).
    fn sgemm(
        &self,
        g: GemmSpec,
        a: MatRef<'_, Self::Mem>,
        b: MatRef<'_, Self::Mem>,
        c: MatMut<'_, Self::Mem>,
    ) -> Result<(), CudaError>;
}
