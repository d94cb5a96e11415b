//! [`Device`] on `microdiff_cuda_emu::Emulator`: the kernel sources of `kernels/cuda`
//! compiled as C++ and run on the CPU (feature `cuda-emu`, for tests on machines without a GPU).
//!
//! Memory, copies and launches go to the emulator, so [`super::CudaBackend`] runs the very
//! launches (configurations, argument lists) it runs on a GPU. The one thing that is NOT the
//! GPU's code path is [`Device::sgemm`]: cuBLAS is closed source, so here — in emulation only —
//! it is a plain CPU GEMM with the same row-major semantics (see [`cpu_sgemm`]).

use std::sync::Arc;

use microdiff_cuda_emu::{Arg, DevPtr, EmuError, Emulator};

use super::device::{Device, GemmSpec, KernelArg, LaunchConfig, MatMut, MatRef};
use super::error::CudaError;

const F32: usize = std::mem::size_of::<f32>();

fn emu(op: impl Into<String>) -> impl FnOnce(EmuError) -> CudaError {
    let op = op.into();
    move |e| CudaError::Emulator {
        op,
        message: e.to_string(),
    }
}

/// The emulated device (cheap to clone: the emulator is shared).
#[derive(Debug, Clone, Default)]
pub struct EmuDevice {
    emu: Arc<Emulator>,
}

impl EmuDevice {
    /// A fresh emulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// The emulator (e.g. to list its kernels).
    pub fn emulator(&self) -> &Emulator {
        &self.emu
    }
}

/// An emulator allocation of `len` f32, freed on drop.
#[derive(Debug)]
pub struct EmuMem {
    emu: Arc<Emulator>,
    ptr: DevPtr,
    len: usize,
}

impl Drop for EmuMem {
    fn drop(&mut self) {
        // Freeing an address `alloc` returned cannot fail; nothing to report from a drop.
        let _ = self.emu.free(self.ptr);
    }
}

impl EmuMem {
    /// The device address of element `offset`, checked against the allocation.
    fn at(&self, offset: usize, n: usize) -> Result<u64, CudaError> {
        match offset.checked_add(n) {
            Some(end) if end <= self.len => Ok(self.ptr.0 + (offset * F32) as u64),
            _ => Err(CudaError::Shape(format!(
                "elements {offset}..+{n} of an allocation of {}",
                self.len
            ))),
        }
    }
}

fn to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn from_bytes(b: &[u8], out: &mut [f32]) {
    for (o, c) in out.iter_mut().zip(b.chunks_exact(F32)) {
        *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
}

/// EMULATION ONLY — stands in for cuBLAS: row-major `C (m×n) = α·op(A)·op(B) + β·C` on the
/// host, each element summed over `k` in ascending order in f32. With `β = 0`, `C` is not read
/// (so NaN garbage in `C` does not leak, matching BLAS). `a_trans` / `b_trans`: the operand is
/// the transpose of what is stored.
pub fn cpu_sgemm(g: GemmSpec, a: &[f32], a_trans: bool, b: &[f32], b_trans: bool, c: &mut [f32]) {
    let GemmSpec {
        m,
        n,
        k,
        alpha,
        beta,
    } = g;
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0f32;
            for p in 0..k {
                let av = if a_trans { a[p * m + i] } else { a[i * k + p] };
                let bv = if b_trans { b[j * k + p] } else { b[p * n + j] };
                s += av * bv;
            }
            let out = &mut c[i * n + j];
            *out = if beta == 0.0 {
                alpha * s
            } else {
                alpha * s + beta * *out
            };
        }
    }
}

impl Device for EmuDevice {
    type Mem = EmuMem;

    fn describe(&self) -> String {
        "the CUDA emulator (kernel sources on the CPU)".into()
    }

    fn alloc(&self, n: usize) -> Result<EmuMem, CudaError> {
        let ptr = self.emu.alloc(n * F32).map_err(emu("alloc"))?;
        Ok(EmuMem {
            emu: self.emu.clone(),
            ptr,
            len: n,
        })
    }

    fn alloc_zeros(&self, n: usize) -> Result<EmuMem, CudaError> {
        let m = self.alloc(n)?;
        self.emu
            .memset(m.ptr.0, 0, n * F32)
            .map_err(emu("memset"))?;
        Ok(m)
    }

    fn upload(&self, dst: &mut EmuMem, offset: usize, host: &[f32]) -> Result<(), CudaError> {
        let at = dst.at(offset, host.len())?;
        self.emu.write(at, &to_bytes(host)).map_err(emu("upload"))
    }

    fn download(&self, src: &EmuMem, offset: usize, host: &mut [f32]) -> Result<(), CudaError> {
        let at = src.at(offset, host.len())?;
        let mut bytes = vec![0u8; host.len() * F32];
        self.emu.read(at, &mut bytes).map_err(emu("download"))?;
        from_bytes(&bytes, host);
        Ok(())
    }

    fn copy(
        &self,
        src: &EmuMem,
        src_offset: usize,
        dst: &mut EmuMem,
        dst_offset: usize,
        n: usize,
    ) -> Result<(), CudaError> {
        let from = src.at(src_offset, n)?;
        let to = dst.at(dst_offset, n)?;
        self.emu.copy(to, from, n * F32).map_err(emu("copy"))
    }

    fn launch(
        &self,
        kernel: &str,
        cfg: LaunchConfig,
        args: &[KernelArg<'_, EmuMem>],
    ) -> Result<(), CudaError> {
        let args = args
            .iter()
            .map(|a| {
                Ok(match *a {
                    KernelArg::Buf(m, off) => Arg::Ptr(m.at(off, 0)?),
                    KernelArg::I32(v) => Arg::I32(v),
                    KernelArg::U32(v) => Arg::U32(v),
                    KernelArg::U64(v) => Arg::U64(v),
                    KernelArg::F32(v) => Arg::F32(v),
                })
            })
            .collect::<Result<Vec<Arg>, CudaError>>()?;
        let cfg = microdiff_cuda_emu::LaunchConfig {
            grid: cfg.grid,
            block: cfg.block,
            shared_bytes: cfg.shared_bytes,
        };
        self.emu
            .launch(kernel, cfg, &args)
            .map_err(emu(format!("launch {kernel}")))
    }

    fn sgemm(
        &self,
        g: GemmSpec,
        a: MatRef<'_, EmuMem>,
        b: MatRef<'_, EmuMem>,
        c: MatMut<'_, EmuMem>,
    ) -> Result<(), CudaError> {
        let GemmSpec { m, n, k, beta, .. } = g;
        let (c, c_offset) = (c.mem, c.offset);
        if m == 0 || n == 0 {
            return Ok(());
        }
        let mut ha = vec![0.0; m * k];
        let mut hb = vec![0.0; k * n];
        let mut hc = vec![0.0; m * n];
        self.download(a.mem, a.offset, &mut ha)?;
        self.download(b.mem, b.offset, &mut hb)?;
        if beta != 0.0 {
            self.download(c, c_offset, &mut hc)?;
        }
        cpu_sgemm(g, &ha, a.trans, &hb, b.trans, &mut hc);
        self.upload(c, c_offset, &hc)
    }
}
