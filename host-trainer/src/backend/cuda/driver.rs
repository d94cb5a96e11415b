//! [`Device`] on a real NVIDIA GPU through cudarc: one context and its default stream, the
//! kernel modules compiled by [`super::nvrtc`] for the device's architecture, cuBLAS for the
//! GEMMs; and [`probe`], which finds out whether a GPU can be used WITHOUT panicking.
//!
//! cudarc loads `libcuda`, `libnvrtc` and `libcublas` at run time and panics on the first call
//! into a library it cannot load, so nothing here calls into a library before its
//! `is_culib_present()` said it loads. Everything runs on one stream, so work is ordered
//! without events; downloads synchronise the stream.

use std::collections::HashMap;
use std::sync::Arc;

use cudarc::cublas::sys::cublasOperation_t;
use cudarc::cublas::{CudaBlas, Gemm, GemmConfig};
use cudarc::driver::{CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr, PushKernelArg};
use cudarc::nvrtc::Ptx;

use super::device::{Device, GemmSpec, KernelArg, LaunchConfig, MatMut, MatRef};
use super::error::CudaError;

fn driver(op: impl Into<String>) -> impl FnOnce(cudarc::driver::DriverError) -> CudaError {
    let op = op.into();
    move |source| CudaError::Driver { op, source }
}

/// Is the library behind cudarc's module `$m` loadable? (`is_culib_present` tries to load it
/// and reports instead of panicking.)
macro_rules! lib_present {
    ($m:path) => {{
        use $m as sys;
        // SAFETY: `is_culib_present` only tries `libloading::Library::new` on the library's
        // candidate names and drops what it opened; it calls no function of the library, so
        // no symbol's signature or initialisation state is relied on.
        unsafe { sys::is_culib_present() }
    }};
}

/// Number of CUDA devices, or why there is none. Never panics: the driver library is probed
/// before the first driver call.
pub fn device_count() -> Result<usize, CudaError> {
    if !lib_present!(cudarc::driver::sys) {
        return Err(CudaError::NoDriver { library: "libcuda" });
    }
    let count = CudaContext::device_count().map_err(|e| CudaError::NoDevice {
        reason: format!("the driver reports {e}"),
    })?;
    if count <= 0 {
        return Err(CudaError::NoDevice {
            reason: "the driver sees no device".into(),
        });
    }
    Ok(count as usize)
}

/// Checks that device `ordinal` exists and that NVRTC and cuBLAS load: `Ok` means
/// [`CudaDriver::open`] can be tried. Never panics.
pub fn probe(ordinal: usize) -> Result<(), CudaError> {
    let count = device_count()?;
    if ordinal >= count {
        return Err(CudaError::BadOrdinal { ordinal, count });
    }
    if !lib_present!(cudarc::nvrtc::sys) {
        return Err(CudaError::NoDriver {
            library: "libnvrtc",
        });
    }
    if !lib_present!(cudarc::cublas::sys) {
        return Err(CudaError::NoDriver {
            library: "libcublas",
        });
    }
    Ok(())
}

/// A GPU with the kernels loaded.
pub struct CudaDriver {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    kernels: HashMap<&'static str, CudaFunction>,
    name: String,
    cc: (i32, i32),
}

impl std::fmt::Debug for CudaDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaDriver")
            .field("ordinal", &self.ctx.ordinal())
            .field("name", &self.name)
            .field("compute_capability", &self.cc)
            .field("kernels", &self.kernels.len())
            .finish()
    }
}

impl CudaDriver {
    /// Opens device `ordinal`: probes it ([`probe`]), creates its context, compiles (or reads
    /// from the PTX cache) and loads every kernel source for its architecture, creates cuBLAS.
    pub fn open(ordinal: usize) -> Result<Self, CudaError> {
        probe(ordinal)?;
        let ctx = CudaContext::new(ordinal).map_err(driver(format!("open device {ordinal}")))?;
        let name = ctx.name().map_err(driver("device name"))?;
        let cc = ctx
            .compute_capability()
            .map_err(driver("compute capability"))?;
        let stream = ctx.default_stream();
        let kernels = load_kernels(&ctx, cc)?;
        let blas = CudaBlas::new(stream.clone()).map_err(|source| CudaError::Cublas {
            op: "create handle".into(),
            source,
        })?;
        Ok(CudaDriver {
            ctx,
            stream,
            blas,
            kernels,
            name,
            cc,
        })
    }

    /// Waits for all queued work (for timing).
    pub fn synchronize(&self) -> Result<(), CudaError> {
        self.stream.synchronize().map_err(driver("synchronize"))
    }

    fn ptr(&self, mem: &CudaSlice<f32>, offset: usize) -> Result<u64, CudaError> {
        if offset > mem.len() {
            return Err(CudaError::Shape(format!(
                "kernel argument at element {offset} of a buffer of {}",
                mem.len()
            )));
        }
        let (base, _sync) = mem.device_ptr(&self.stream);
        Ok(base + (offset * std::mem::size_of::<f32>()) as u64)
    }
}

/// Compiles (through the PTX cache) and loads every kernel source for compute capability `cc`;
/// returns the entry points by name.
fn load_kernels(
    ctx: &Arc<CudaContext>,
    cc: (i32, i32),
) -> Result<HashMap<&'static str, CudaFunction>, CudaError> {
    let arch = super::nvrtc::Arch::from_compute_capability(cc.0, cc.1).ok_or_else(|| {
        CudaError::Compile(format!(
            "the driver reports compute capability {}.{}",
            cc.0, cc.1
        ))
    })?;
    let mut kernels = HashMap::new();
    for source in microdiff_kernels::cuda::SOURCES {
        let ptx =
            super::nvrtc::ptx_for(source, arch).map_err(|e| CudaError::Compile(e.to_string()))?;
        let module = ctx
            .load_module(Ptx::from_src(ptx))
            .map_err(driver(format!("load module {} ({arch})", source.name)))?;
        for &entry in source.entry_points {
            let f = module
                .load_function(entry)
                .map_err(driver(format!("load function {entry}")))?;
            kernels.insert(entry, f);
        }
    }
    Ok(kernels)
}

/// The column-major GEMM that computes a row-major one — the transpose trick. cuBLAS is
/// column-major, and a tightly packed row-major R×C matrix is, read column-major, the C×R
/// matrix of its transpose. So row-major `C (m×n) = op(A)·op(B)` is computed as column-major
/// `Cᵀ (n×m) = op(B)ᵀ·op(A)ᵀ`: B is the FIRST operand, the dimensions are (n, m, k), and each
/// leading dimension is the stored row length of its matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ColMajorPlan {
    /// The first operand (row-major B) is transposed.
    trans_first: bool,
    /// The second operand (row-major A) is transposed.
    trans_second: bool,
    m: usize,
    n: usize,
    k: usize,
    ld_first: usize,
    ld_second: usize,
    ldc: usize,
}

impl ColMajorPlan {
    fn new(m: usize, n: usize, k: usize, a_trans: bool, b_trans: bool) -> Self {
        ColMajorPlan {
            trans_first: b_trans,
            trans_second: a_trans,
            m: n,
            n: m,
            k,
            // B is stored k×n, or n×k when transposed; A m×k, or k×m. BLAS wants ld ≥ 1.
            ld_first: if b_trans { k } else { n }.max(1),
            ld_second: if a_trans { m } else { k }.max(1),
            ldc: n.max(1),
        }
    }
}

fn cublas_op(trans: bool) -> cublasOperation_t {
    if trans {
        cublasOperation_t::CUBLAS_OP_T
    } else {
        cublasOperation_t::CUBLAS_OP_N
    }
}

fn c_int(n: usize) -> Result<i32, CudaError> {
    i32::try_from(n).map_err(|_| CudaError::Shape(format!("GEMM dimension {n} exceeds i32")))
}

impl Device for CudaDriver {
    type Mem = CudaSlice<f32>;

    fn describe(&self) -> String {
        format!(
            "{} (device {}, sm_{}{})",
            self.name,
            self.ctx.ordinal(),
            self.cc.0,
            self.cc.1
        )
    }

    fn alloc(&self, n: usize) -> Result<Self::Mem, CudaError> {
        // SAFETY: the contents are uninitialised device memory; the Device contract says so
        // and every reader of such a buffer (the reduction partials) writes before reading.
        unsafe { self.stream.alloc::<f32>(n) }.map_err(driver(format!("alloc {n} floats")))
    }

    fn alloc_zeros(&self, n: usize) -> Result<Self::Mem, CudaError> {
        self.stream
            .alloc_zeros::<f32>(n)
            .map_err(driver(format!("alloc {n} floats")))
    }

    fn upload(&self, dst: &mut Self::Mem, offset: usize, host: &[f32]) -> Result<(), CudaError> {
        let len = dst.len();
        let mut view = dst
            .try_slice_mut(offset..offset + host.len())
            .ok_or_else(|| {
                CudaError::Shape(format!("upload {} at {offset} into {len}", host.len()))
            })?;
        self.stream
            .memcpy_htod(host, &mut view)
            .map_err(driver("copy to device"))
    }

    fn download(&self, src: &Self::Mem, offset: usize, host: &mut [f32]) -> Result<(), CudaError> {
        let view = src.try_slice(offset..offset + host.len()).ok_or_else(|| {
            CudaError::Shape(format!(
                "download {} at {offset} from {}",
                host.len(),
                src.len()
            ))
        })?;
        self.stream
            .memcpy_dtoh(&view, host)
            .map_err(driver("copy to host"))?;
        // Pageable copies are synchronous already; this makes it explicit and surfaces errors
        // of kernels queued before.
        self.synchronize()
    }

    fn copy(
        &self,
        src: &Self::Mem,
        src_offset: usize,
        dst: &mut Self::Mem,
        dst_offset: usize,
        n: usize,
    ) -> Result<(), CudaError> {
        let bad = || CudaError::Shape(format!("device copy of {n} elements out of bounds"));
        let from = src.try_slice(src_offset..src_offset + n).ok_or_else(bad)?;
        let mut to = dst
            .try_slice_mut(dst_offset..dst_offset + n)
            .ok_or_else(bad)?;
        self.stream
            .memcpy_dtod(&from, &mut to)
            .map_err(driver("device copy"))
    }

    fn launch(
        &self,
        kernel: &str,
        cfg: LaunchConfig,
        args: &[KernelArg<'_, Self::Mem>],
    ) -> Result<(), CudaError> {
        let f = self
            .kernels
            .get(kernel)
            .ok_or_else(|| CudaError::Compile(format!("no kernel named {kernel} was loaded")))?;
        // The values must outlive the builder, which keeps pointers to them.
        enum Val {
            Ptr(u64),
            I32(i32),
            U32(u32),
            U64(u64),
            F32(f32),
        }
        let vals = args
            .iter()
            .map(|a| {
                Ok(match *a {
                    KernelArg::Buf(m, off) => Val::Ptr(self.ptr(m, off)?),
                    KernelArg::I32(v) => Val::I32(v),
                    KernelArg::U32(v) => Val::U32(v),
                    KernelArg::U64(v) => Val::U64(v),
                    KernelArg::F32(v) => Val::F32(v),
                })
            })
            .collect::<Result<Vec<Val>, CudaError>>()?;
        let mut b = self.stream.launch_builder(f);
        for v in &vals {
            match v {
                Val::Ptr(p) | Val::U64(p) => b.arg(p),
                Val::I32(x) => b.arg(x),
                Val::U32(x) => b.arg(x),
                Val::F32(x) => b.arg(x),
            };
        }
        let cfg = cudarc::driver::LaunchConfig {
            grid_dim: cfg.grid,
            block_dim: cfg.block,
            shared_mem_bytes: cfg.shared_bytes,
        };
        // SAFETY: the argument list follows the kernel's signature in the kernel ABI
        // (`kernels/src/cuda.rs`): pointers are device addresses inside live allocations of
        // this context (offsets checked above, extents checked by the backend against each
        // buffer's length), scalars have the C types of the ABI; buffers outlive the launch
        // because freeing is ordered on the same stream.
        unsafe { b.launch(cfg) }
            .map(|_| ())
            .map_err(driver(format!("launch {kernel}")))
    }

    fn sgemm(
        &self,
        g: GemmSpec,
        a: MatRef<'_, Self::Mem>,
        b: MatRef<'_, Self::Mem>,
        c: MatMut<'_, Self::Mem>,
    ) -> Result<(), CudaError> {
        let GemmSpec {
            m,
            n,
            k,
            alpha,
            beta,
        } = g;
        let (c, c_offset) = (c.mem, c.offset);
        if m == 0 || n == 0 {
            return Ok(());
        }
        let bad = |what: &str| CudaError::Shape(format!("sgemm {m}×{n}×{k}: {what} out of bounds"));
        let av = a
            .mem
            .try_slice(a.offset..a.offset + m * k)
            .ok_or_else(|| bad("A"))?;
        let bv = b
            .mem
            .try_slice(b.offset..b.offset + k * n)
            .ok_or_else(|| bad("B"))?;
        let mut cv = c
            .try_slice_mut(c_offset..c_offset + m * n)
            .ok_or_else(|| bad("C"))?;
        let plan = ColMajorPlan::new(m, n, k, a.trans, b.trans);
        let cfg = GemmConfig {
            transa: cublas_op(plan.trans_first),
            transb: cublas_op(plan.trans_second),
            m: c_int(plan.m)?,
            n: c_int(plan.n)?,
            k: c_int(plan.k)?,
            alpha,
            lda: c_int(plan.ld_first)?,
            ldb: c_int(plan.ld_second)?,
            beta,
            ldc: c_int(plan.ldc)?,
        };
        // SAFETY: the three views hold exactly op(B) (k×n), op(A) (m×k) and C (m×n) elements
        // (try_slice checked them against the buffers), and the leading dimensions above are
        // the stored row lengths of those tightly packed row-major matrices, so cuBLAS reads
        // and writes inside the views.
        unsafe { self.blas.gemm(cfg, &bv, &av, &mut cv) }.map_err(|source| CudaError::Cublas {
            op: format!("sgemm {m}×{n}×{k}"),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BLAS `sgemm` exactly as specified (column-major, `C = α·op(A)·op(B) + β·C`, here with
    /// α = 1 and β = 0), the reference for what cuBLAS does with a [`ColMajorPlan`]: `first`
    /// and `second` are the plan's two operands, `c` its output.
    fn blas_sgemm(plan: &ColMajorPlan, first: &[f32], second: &[f32], c: &mut [f32]) {
        let (ta, tb, lda, ldb, ldc) = (
            plan.trans_first,
            plan.trans_second,
            plan.ld_first,
            plan.ld_second,
            plan.ldc,
        );
        let (a, b) = (first, second);
        for j in 0..plan.n {
            for i in 0..plan.m {
                let mut s = 0.0f32;
                for p in 0..plan.k {
                    let av = if ta { a[p + i * lda] } else { a[i + p * lda] };
                    let bv = if tb { b[j + p * ldb] } else { b[p + j * ldb] };
                    s += av * bv;
                }
                c[i + j * ldc] = s;
            }
        }
    }

    /// The transpose trick, checked without a GPU: the plan fed to a textbook column-major
    /// GEMM gives the row-major product, for every transpose combination and odd shapes.
    #[test]
    fn the_column_major_plan_computes_the_row_major_product() {
        let (m, n, k) = (5, 3, 7);
        let val = |i: usize| ((i * 37 + 11) % 17) as f32 - 8.0; // small integers: exact sums
        for a_trans in [false, true] {
            for b_trans in [false, true] {
                let a: Vec<f32> = (0..m * k).map(val).collect();
                let b: Vec<f32> = (0..k * n).map(|i| val(i + 100)).collect();
                // Row-major reference: op(A)[i][p] · op(B)[p][j].
                let mut want = vec![0.0f32; m * n];
                for i in 0..m {
                    for j in 0..n {
                        want[i * n + j] = (0..k)
                            .map(|p| {
                                let av = if a_trans { a[p * m + i] } else { a[i * k + p] };
                                let bv = if b_trans { b[j * k + p] } else { b[p * n + j] };
                                av * bv
                            })
                            .sum();
                    }
                }
                let plan = ColMajorPlan::new(m, n, k, a_trans, b_trans);
                let mut got = vec![f32::NAN; m * n];
                blas_sgemm(&plan, &b, &a, &mut got);
                assert_eq!(got, want, "a_trans {a_trans}, b_trans {b_trans}");
            }
        }
    }

    /// Whatever this machine has, probing answers with a value, never a panic; an ordinal no
    /// machine has is always refused with a typed error.
    #[test]
    fn probing_never_panics_and_refuses_a_missing_ordinal() {
        match device_count() {
            Ok(n) => assert!(n > 0),
            Err(e) => assert!(matches!(
                e,
                CudaError::NoDriver { .. } | CudaError::NoDevice { .. }
            )),
        }
        let e = probe(100_000).unwrap_err();
        assert!(
            matches!(
                e,
                CudaError::NoDriver { .. }
                    | CudaError::NoDevice { .. }
                    | CudaError::BadOrdinal { .. }
            ),
            "{e}"
        );
        assert!(CudaDriver::open(100_000).is_err());
    }
}
