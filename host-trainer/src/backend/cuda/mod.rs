//! The CUDA backend: [`super::Backend`] on an NVIDIA GPU through `cudarc` (driver, NVRTC,
//! cuBLAS), loaded at run time so that building and running without CUDA is the normal case.
//!
//! * [`device`] — the [`Device`] trait: memory, copies, kernel launches by name, row-major
//!   GEMM. The launch code path shared by the GPU and the emulator.
//! * [`driver`] — [`Device`] on a real GPU (cudarc), and the probing that never panics.
//! * `emu` (feature `cuda-emu`, tests) — [`Device`] on the CPU emulator of the kernel sources.
//! * [`nvrtc`] — compiles the kernel sources of `kernels/cuda` to PTX (options, cache).
//! * [`error`] — [`CudaError`].
//!
//! [`CudaBackend`] owns every launch decision (grid, block, shared memory, argument order of
//! the kernel ABI in `kernels/src/cuda.rs`), so the emulator executes exactly the launches a
//! GPU executes. The [`Backend`] trait is infallible; this backend keeps the FIRST device
//! error, turns every later operation into a no-op (downloads then read NaN), and reports the
//! error from [`Backend::check`], which the training loop calls every step.
//!
//! Reductions: the loss and the gradient norm come from per-block partial sums written by the
//! kernels in a fixed order; the host adds the partials in block order in f64 (as the CPU
//! backend adds its per-chunk f64 sums), so the result does not depend on timing.

pub mod device;
pub mod driver;
#[cfg(feature = "cuda-emu")]
pub mod emu;
pub mod error;
pub mod nvrtc;

use std::sync::Mutex;

use microdiff_kernels::Activation;
use microdiff_runtime::noise::NoiseStream;

pub use device::{Device, GemmSpec, KernelArg, LaunchConfig, MatMut, MatRef};
pub use error::CudaError;

use super::{
    AdamStep, Backend, BackendError, GaussNll, Latent, LatentLoss, LayerNorm, Linear, Moments, Nll,
    NllGrads, Observation, ParamGrads, RowNoise,
};

/// Threads per block of the grid-stride kernels: a multiple of the warp size that keeps
/// several blocks resident per SM.
const BLOCK: u32 = 256;
/// Most blocks a grid-stride launch uses; beyond this each thread loops (the kernels are
/// written for any grid), which also bounds the emulator's per-launch bookkeeping.
const MAX_BLOCKS: usize = 4096;
/// Threads per block of the reduction kernels (a power of two: shared-memory tree).
const REDUCE_BLOCK: u32 = 256;
/// Most blocks of a reduction, i.e. the most partial sums the host adds.
const REDUCE_BLOCKS: usize = 256;
/// Largest block of the one-block-per-row layer-norm kernels.
const LN_MAX_BLOCK: usize = 256;

/// A buffer on the device: memory and its length in elements. `mem` is `None` only after an
/// allocation failed (the error is recorded and every operation on it is skipped).
pub struct CudaBuf<M> {
    mem: Option<M>,
    len: usize,
}

impl<M> std::fmt::Debug for CudaBuf<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaBuf")
            .field("len", &self.len)
            .field("allocated", &self.mem.is_some())
            .finish()
    }
}

/// [`Backend`] over a CUDA [`Device`].
pub struct CudaBackend<D: Device> {
    dev: D,
    /// Per-block partial sums of the reduction kernels (`REDUCE_BLOCKS`).
    partials: D::Mem,
    /// The first error met; once set, operations are skipped.
    error: Mutex<Option<CudaError>>,
}

/// The grid-stride launch for `n` elements.
fn grid_stride(n: usize) -> LaunchConfig {
    LaunchConfig {
        grid: (n.div_ceil(BLOCK as usize).clamp(1, MAX_BLOCKS) as u32, 1, 1),
        block: (BLOCK, 1, 1),
        shared_bytes: 0,
    }
}

/// The reduction launch for `n` elements (one partial per block; shared = one f32 a thread).
fn reduction(n: usize) -> LaunchConfig {
    LaunchConfig {
        grid: (
            n.div_ceil(REDUCE_BLOCK as usize).clamp(1, REDUCE_BLOCKS) as u32,
            1,
            1,
        ),
        block: (REDUCE_BLOCK, 1, 1),
        shared_bytes: REDUCE_BLOCK * 4,
    }
}

/// One block per row for rows of `n`: the smallest power of two ≥ n, at least a warp, at most
/// [`LN_MAX_BLOCK`] (wider rows are strided), with `floats_per_thread` f32 of shared memory.
fn per_row(rows: usize, n: usize, floats_per_thread: u32) -> LaunchConfig {
    let block = n.next_power_of_two().clamp(32, LN_MAX_BLOCK) as u32;
    LaunchConfig {
        grid: (rows as u32, 1, 1),
        block: (block, 1, 1),
        shared_bytes: block * 4 * floats_per_thread,
    }
}

/// `n` as the kernels' `int`.
fn int(n: usize) -> Result<i32, CudaError> {
    i32::try_from(n).map_err(|_| CudaError::Shape(format!("{n} elements exceed the kernels' i32")))
}

/// The memory of `buf`, after checking that `offset..offset + n` lies inside it.
fn view<'a, M>(
    buf: &'a CudaBuf<M>,
    offset: usize,
    n: usize,
    what: &str,
) -> Result<&'a M, CudaError> {
    check_range(buf, offset, n, what)?;
    buf.mem
        .as_ref()
        .ok_or_else(|| CudaError::Shape(format!("{what}: buffer lost to an earlier error")))
}

/// Mutable [`view`].
fn view_mut<'a, M>(
    buf: &'a mut CudaBuf<M>,
    offset: usize,
    n: usize,
    what: &str,
) -> Result<&'a mut M, CudaError> {
    check_range(buf, offset, n, what)?;
    buf.mem
        .as_mut()
        .ok_or_else(|| CudaError::Shape(format!("{what}: buffer lost to an earlier error")))
}

fn check_range<M>(buf: &CudaBuf<M>, offset: usize, n: usize, what: &str) -> Result<(), CudaError> {
    match offset.checked_add(n) {
        Some(end) if end <= buf.len => Ok(()),
        _ => Err(CudaError::Shape(format!(
            "{what}: elements {offset}..{} of a buffer of {}",
            offset.saturating_add(n),
            buf.len
        ))),
    }
}

impl<D: Device> CudaBackend<D> {
    /// A backend on `dev`.
    pub fn new(dev: D) -> Result<Self, CudaError> {
        let partials = dev.alloc(REDUCE_BLOCKS)?;
        Ok(CudaBackend {
            dev,
            partials,
            error: Mutex::new(None),
        })
    }

    /// The device.
    pub fn device(&self) -> &D {
        &self.dev
    }

    /// The first error met so far, if any.
    pub fn error(&self) -> Option<CudaError> {
        self.slot().clone()
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<CudaError>> {
        // A poisoned lock only means a panic elsewhere while holding it; the slot is still a
        // plain Option.
        self.error.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn failed(&self) -> bool {
        self.slot().is_some()
    }

    /// Runs `f` unless an error was met before; keeps `f`'s error if it is the first.
    fn exec(&self, f: impl FnOnce() -> Result<(), CudaError>) {
        if self.failed() {
            return;
        }
        if let Err(e) = f() {
            self.slot().get_or_insert(e);
        }
    }

    fn record(&self, e: CudaError) {
        self.slot().get_or_insert(e);
    }

    /// A grid-stride launch over `n` elements (nothing to do for `n = 0`).
    fn launch_n(
        &self,
        kernel: &str,
        n: usize,
        args: &[KernelArg<'_, D::Mem>],
    ) -> Result<(), CudaError> {
        if n == 0 {
            return Ok(());
        }
        self.dev.launch(kernel, grid_stride(n), args)
    }

    fn alloc_buf(&self, n: usize, zeroed: bool) -> CudaBuf<D::Mem> {
        if self.failed() {
            return CudaBuf { mem: None, len: n };
        }
        // Never a zero-byte allocation: devices differ on what that means.
        let r = if zeroed {
            self.dev.alloc_zeros(n.max(1))
        } else {
            self.dev.alloc(n.max(1))
        };
        match r {
            Ok(m) => CudaBuf {
                mem: Some(m),
                len: n,
            },
            Err(e) => {
                self.record(e);
                CudaBuf { mem: None, len: n }
            }
        }
    }

    /// Launches a reduction kernel writing per-block partials of `x` (and `y`), and adds the
    /// partials on the host in block order, in f64.
    fn reduce(&self, kernel: &str, inputs: &[&CudaBuf<D::Mem>], n: usize) -> f64 {
        let mut total = f64::NAN;
        self.exec(|| {
            let cfg = reduction(n);
            let mut args = Vec::with_capacity(inputs.len() + 2);
            for x in inputs {
                args.push(KernelArg::Buf(view(x, 0, n, kernel)?, 0));
            }
            args.push(KernelArg::Buf(&self.partials, 0));
            args.push(KernelArg::I32(int(n)?));
            if n > 0 {
                self.dev.launch(kernel, cfg, &args)?;
            }
            let mut parts = vec![0.0f32; cfg.grid.0 as usize];
            if n > 0 {
                self.dev.download(&self.partials, 0, &mut parts)?;
            }
            total = parts.iter().map(|&p| p as f64).sum();
            Ok(())
        });
        total
    }

    /// A reduction kernel over `n` elements with arguments `args` (which must pass
    /// `self.partials` where the kernel writes its partials); adds the partials on the host in
    /// block order, in f64.
    fn reduce_with(
        &self,
        kernel: &str,
        n: usize,
        args: &[KernelArg<'_, D::Mem>],
    ) -> Result<f64, CudaError> {
        if n == 0 {
            return Ok(0.0);
        }
        let cfg = reduction(n);
        self.dev.launch(kernel, cfg, args)?;
        let mut parts = vec![0.0f32; cfg.grid.0 as usize];
        self.dev.download(&self.partials, 0, &mut parts)?;
        Ok(parts.iter().map(|&p| f64::from(p)).sum())
    }
}

/// `a · b` for a shape, or a shape error.
fn mul(a: usize, b: usize, what: &str) -> Result<usize, CudaError> {
    a.checked_mul(b)
        .ok_or_else(|| CudaError::Shape(format!("{what}: {a} × {b} elements overflow")))
}

impl<D: Device> Backend for CudaBackend<D> {
    type Buf = CudaBuf<D::Mem>;

    fn check(&self) -> Result<(), BackendError> {
        match self.error() {
            None => Ok(()),
            Some(e) => Err(BackendError::Cuda(e)),
        }
    }

    fn zeros(&self, n: usize) -> Self::Buf {
        self.alloc_buf(n, true)
    }

    fn upload(&self, host: &[f32]) -> Self::Buf {
        let mut buf = self.alloc_buf(host.len(), false);
        self.write(&mut buf, host);
        buf
    }

    fn download(&self, buf: &Self::Buf) -> Vec<f32> {
        let mut host = vec![f32::NAN; buf.len];
        let mut ok = false;
        self.exec(|| {
            if buf.len > 0 {
                self.dev
                    .download(view(buf, 0, buf.len, "download")?, 0, &mut host)?;
            }
            ok = true;
            Ok(())
        });
        if !ok {
            // Never half-filled data that could pass for results.
            host.fill(f32::NAN);
        }
        host
    }

    fn write(&self, buf: &mut Self::Buf, host: &[f32]) {
        self.exec(|| {
            if host.len() != buf.len {
                return Err(CudaError::Shape(format!(
                    "write: {} values into a buffer of {}",
                    host.len(),
                    buf.len
                )));
            }
            if host.is_empty() {
                return Ok(());
            }
            self.dev
                .upload(view_mut(buf, 0, host.len(), "write")?, 0, host)
        });
    }

    fn fill_zero(&self, buf: &mut Self::Buf) {
        self.exec(|| {
            let n = buf.len;
            let y = view(buf, 0, n, "fill_zero")?;
            self.launch_n(
                "md_fill",
                n,
                &[
                    KernelArg::Buf(y, 0),
                    KernelArg::F32(0.0),
                    KernelArg::I32(int(n)?),
                ],
            )
        });
    }

    fn len(&self, buf: &Self::Buf) -> usize {
        buf.len
    }

    fn linear_fwd(&self, layer: Linear, params: &Self::Buf, x: &Self::Buf, y: &mut Self::Buf) {
        let Linear { w, bias, b, i, o } = layer;
        self.exec(|| {
            let xm = view(x, 0, b * i, "linear_fwd x")?;
            let pw = view(params, w, o * i, "linear_fwd w")?;
            let ym = view_mut(y, 0, b * o, "linear_fwd y")?;
            // y (b×o) = x (b×i) · wᵀ (w stored o×i).
            let a = MatRef {
                mem: xm,
                offset: 0,
                trans: false,
            };
            let bm = MatRef {
                mem: pw,
                offset: w,
                trans: true,
            };
            let g = GemmSpec {
                m: b,
                n: o,
                k: i,
                alpha: 1.0,
                beta: 0.0,
            };
            let c = MatMut { mem: ym, offset: 0 };
            self.dev.sgemm(g, a, bm, c)?;
            if let Some(bo) = bias {
                let pb = view(params, bo, o, "linear_fwd bias")?;
                let ym = view(y, 0, b * o, "linear_fwd y")?;
                self.launch_n(
                    "md_bias_add",
                    b * o,
                    &[
                        KernelArg::Buf(ym, 0),
                        KernelArg::Buf(pb, bo),
                        KernelArg::I32(int(b)?),
                        KernelArg::I32(int(o)?),
                    ],
                )?;
            }
            Ok(())
        });
    }

    fn linear_bwd(
        &self,
        layer: Linear,
        p: ParamGrads<'_, Self::Buf>,
        x: &Self::Buf,
        dy: &Self::Buf,
        dx: Option<&mut Self::Buf>,
    ) {
        let Linear { w, bias, b, i, o } = layer;
        let ParamGrads { params, grads } = p;
        self.exec(|| {
            let xm = view(x, 0, b * i, "linear_bwd x")?;
            let pw = view(params, w, o * i, "linear_bwd w")?;
            let dym = view(dy, 0, b * o, "linear_bwd dy")?;
            if let Some(dx) = dx {
                // dx (b×i) = dy (b×o) · w (o×i).
                let dxm = view_mut(dx, 0, b * i, "linear_bwd dx")?;
                let a = MatRef {
                    mem: dym,
                    offset: 0,
                    trans: false,
                };
                let bm = MatRef {
                    mem: pw,
                    offset: w,
                    trans: false,
                };
                let g = GemmSpec {
                    m: b,
                    n: i,
                    k: o,
                    alpha: 1.0,
                    beta: 0.0,
                };
                let c = MatMut {
                    mem: dxm,
                    offset: 0,
                };
                self.dev.sgemm(g, a, bm, c)?;
            }
            // dw (o×i) += dyᵀ (dy stored b×o) · x (b×i): β = 1 because gradients accumulate.
            let gw = view_mut(grads, w, o * i, "linear_bwd dw")?;
            let a = MatRef {
                mem: dym,
                offset: 0,
                trans: true,
            };
            let bm = MatRef {
                mem: xm,
                offset: 0,
                trans: false,
            };
            let g = GemmSpec {
                m: o,
                n: i,
                k: b,
                alpha: 1.0,
                beta: 1.0,
            };
            self.dev.sgemm(g, a, bm, MatMut { mem: gw, offset: w })?;
            if let Some(bo) = bias {
                let gb = view(grads, bo, o, "linear_bwd dbias")?;
                self.launch_n(
                    "md_bias_grad",
                    o,
                    &[
                        KernelArg::Buf(dym, 0),
                        KernelArg::Buf(gb, bo),
                        KernelArg::I32(int(b)?),
                        KernelArg::I32(int(o)?),
                    ],
                )?;
            }
            Ok(())
        });
    }

    fn act_fwd(&self, act: Activation, x: &Self::Buf, y: &mut Self::Buf) {
        self.exec(|| {
            let n = x.len;
            let xm = view(x, 0, n, "act_fwd x")?;
            let ym = view(y, 0, n, "act_fwd y")?;
            self.launch_n(
                "md_act_fwd",
                n,
                &[
                    KernelArg::I32(act as i32),
                    KernelArg::Buf(xm, 0),
                    KernelArg::Buf(ym, 0),
                    KernelArg::I32(int(n)?),
                ],
            )
        });
    }

    fn act_bwd(&self, act: Activation, x: &Self::Buf, dy: &Self::Buf, dx: &mut Self::Buf) {
        self.exec(|| {
            let n = dx.len;
            let xm = view(x, 0, n, "act_bwd x")?;
            let dym = view(dy, 0, n, "act_bwd dy")?;
            let dxm = view(dx, 0, n, "act_bwd dx")?;
            self.launch_n(
                "md_act_bwd",
                n,
                &[
                    KernelArg::I32(act as i32),
                    KernelArg::Buf(xm, 0),
                    KernelArg::Buf(dym, 0),
                    KernelArg::Buf(dxm, 0),
                    KernelArg::I32(int(n)?),
                ],
            )
        });
    }

    fn layernorm_fwd(
        &self,
        ln: LayerNorm,
        params: &Self::Buf,
        x: &Self::Buf,
        y: &mut Self::Buf,
        stats: &mut Self::Buf,
    ) {
        let LayerNorm {
            gamma,
            beta,
            eps,
            b,
            n,
        } = ln;
        self.exec(|| {
            let args = [
                KernelArg::Buf(view(x, 0, b * n, "layernorm_fwd x")?, 0),
                KernelArg::Buf(view(params, gamma, n, "layernorm_fwd gamma")?, gamma),
                KernelArg::Buf(view(params, beta, n, "layernorm_fwd beta")?, beta),
                KernelArg::Buf(view(y, 0, b * n, "layernorm_fwd y")?, 0),
                KernelArg::Buf(view(stats, 0, 2 * b, "layernorm_fwd stats")?, 0),
                KernelArg::I32(int(b)?),
                KernelArg::I32(int(n)?),
                KernelArg::F32(eps),
            ];
            if b == 0 || n == 0 {
                return Ok(());
            }
            self.dev.launch("md_layernorm_fwd", per_row(b, n, 1), &args)
        });
    }

    fn layernorm_bwd(
        &self,
        ln: LayerNorm,
        p: ParamGrads<'_, Self::Buf>,
        x: &Self::Buf,
        stats: &Self::Buf,
        dy: &Self::Buf,
        dx: &mut Self::Buf,
    ) {
        let LayerNorm {
            gamma, beta, b, n, ..
        } = ln;
        let ParamGrads { params, grads } = p;
        self.exec(|| {
            let xm = view(x, 0, b * n, "layernorm_bwd x")?;
            let sm = view(stats, 0, 2 * b, "layernorm_bwd stats")?;
            let dym = view(dy, 0, b * n, "layernorm_bwd dy")?;
            let rows = int(b)?;
            let width = int(n)?;
            if b == 0 || n == 0 {
                return Ok(());
            }
            self.dev.launch(
                "md_layernorm_bwd_dx",
                per_row(b, n, 2),
                &[
                    KernelArg::Buf(xm, 0),
                    KernelArg::Buf(view(params, gamma, n, "layernorm_bwd gamma")?, gamma),
                    KernelArg::Buf(sm, 0),
                    KernelArg::Buf(dym, 0),
                    KernelArg::Buf(view(dx, 0, b * n, "layernorm_bwd dx")?, 0),
                    KernelArg::I32(rows),
                    KernelArg::I32(width),
                ],
            )?;
            self.launch_n(
                "md_layernorm_bwd_params",
                n,
                &[
                    KernelArg::Buf(xm, 0),
                    KernelArg::Buf(sm, 0),
                    KernelArg::Buf(dym, 0),
                    KernelArg::Buf(view(grads, gamma, n, "layernorm_bwd dgamma")?, gamma),
                    KernelArg::Buf(view(grads, beta, n, "layernorm_bwd dbeta")?, beta),
                    KernelArg::I32(rows),
                    KernelArg::I32(width),
                ],
            )
        });
    }

    fn time_embed(&self, t: &Self::Buf, y: &mut Self::Buf, dim: usize, max_period: f32) {
        self.exec(|| {
            let rows = t.len;
            let tm = view(t, 0, rows, "time_embed t")?;
            let ym = view(y, 0, rows * dim, "time_embed y")?;
            // Sized for one thread per element; the kernel's grid-stride loop makes any grid
            // correct.
            self.launch_n(
                "md_time_embed",
                rows * dim,
                &[
                    KernelArg::Buf(tm, 0),
                    KernelArg::Buf(ym, 0),
                    KernelArg::I32(int(rows)?),
                    KernelArg::I32(int(dim)?),
                    KernelArg::F32(max_period),
                ],
            )
        });
    }

    fn embed_add(
        &self,
        params: &Self::Buf,
        table: usize,
        classes: &Self::Buf,
        y: &mut Self::Buf,
        n: usize,
    ) {
        self.exec(|| {
            let rows = classes.len;
            // The table's row count is not known here; at least one row must fit. Class ids
            // are checked by the trainer against the model's class count.
            let tm = view(params, table, n, "embed_add table")?;
            let cm = view(classes, 0, rows, "embed_add classes")?;
            let ym = view(y, 0, rows * n, "embed_add y")?;
            self.launch_n(
                "md_embed_add",
                rows * n,
                &[
                    KernelArg::Buf(tm, table),
                    KernelArg::Buf(cm, 0),
                    KernelArg::Buf(ym, 0),
                    KernelArg::I32(int(rows)?),
                    KernelArg::I32(int(n)?),
                ],
            )
        });
    }

    fn embed_add_bwd(
        &self,
        classes: &Self::Buf,
        dy: &Self::Buf,
        grads: &mut Self::Buf,
        table: usize,
        rows: usize,
        n: usize,
    ) {
        self.exec(|| {
            let batch = classes.len;
            let cm = view(classes, 0, batch, "embed_add_bwd classes")?;
            let dym = view(dy, 0, batch * n, "embed_add_bwd dy")?;
            let gm = view(grads, table, rows * n, "embed_add_bwd dtable")?;
            self.launch_n(
                "md_embed_add_bwd",
                rows * n,
                &[
                    KernelArg::Buf(cm, 0),
                    KernelArg::Buf(dym, 0),
                    KernelArg::Buf(gm, table),
                    KernelArg::I32(int(batch)?),
                    KernelArg::I32(int(n)?),
                    KernelArg::I32(int(rows)?),
                ],
            )
        });
    }

    fn add_assign(&self, y: &mut Self::Buf, x: &Self::Buf) {
        self.exec(|| {
            let n = y.len;
            let xm = view(x, 0, n, "add_assign x")?;
            let ym = view(y, 0, n, "add_assign y")?;
            self.launch_n(
                "md_add_assign",
                n,
                &[
                    KernelArg::Buf(ym, 0),
                    KernelArg::Buf(xm, 0),
                    KernelArg::I32(int(n)?),
                ],
            )
        });
    }

    fn copy(&self, x: &Self::Buf, y: &mut Self::Buf) {
        self.exec(|| {
            let n = y.len;
            if x.len != n {
                return Err(CudaError::Shape(format!("copy: {} into {n}", x.len)));
            }
            if n == 0 {
                return Ok(());
            }
            let xm = view(x, 0, n, "copy x")?;
            let ym = view_mut(y, 0, n, "copy y")?;
            self.dev.copy(xm, 0, ym, 0, n)
        });
    }

    fn noise_and_target(
        &self,
        x0: &Self::Buf,
        eps: &Self::Buf,
        coef: &Self::Buf,
        xt: &mut Self::Buf,
        target: &mut Self::Buf,
        n: usize,
    ) {
        self.exec(|| {
            if n == 0 {
                return Ok(());
            }
            let rows = x0.len / n;
            let len = rows * n;
            self.launch_n(
                "md_noise_and_target",
                len,
                &[
                    KernelArg::Buf(view(x0, 0, len, "noise_and_target x0")?, 0),
                    KernelArg::Buf(view(eps, 0, len, "noise_and_target eps")?, 0),
                    KernelArg::Buf(view(coef, 0, 4 * rows, "noise_and_target coef")?, 0),
                    KernelArg::Buf(view(xt, 0, len, "noise_and_target xt")?, 0),
                    KernelArg::Buf(view(target, 0, len, "noise_and_target target")?, 0),
                    KernelArg::I32(int(rows)?),
                    KernelArg::I32(int(n)?),
                ],
            )
        });
    }

    fn mse(&self, pred: &Self::Buf, target: &Self::Buf, d: &mut Self::Buf) -> f32 {
        let n = pred.len;
        self.exec(|| {
            self.launch_n(
                "md_mse_grad",
                n,
                &[
                    KernelArg::Buf(view(pred, 0, n, "mse pred")?, 0),
                    KernelArg::Buf(view(target, 0, n, "mse target")?, 0),
                    KernelArg::Buf(view(d, 0, n, "mse d")?, 0),
                    KernelArg::I32(int(n)?),
                ],
            )
        });
        let sum = self.reduce("md_sq_err_partials", &[pred, target], n);
        (sum / n as f64) as f32
    }

    fn norm(&self, g: &Self::Buf) -> f32 {
        self.reduce("md_sumsq_partials", &[g], g.len).sqrt() as f32
    }

    fn scale(&self, g: &mut Self::Buf, s: f32) {
        self.exec(|| {
            let n = g.len;
            let gm = view(g, 0, n, "scale")?;
            self.launch_n(
                "md_scale",
                n,
                &[
                    KernelArg::Buf(gm, 0),
                    KernelArg::F32(s),
                    KernelArg::I32(int(n)?),
                ],
            )
        });
    }

    fn adamw(
        &self,
        params: &mut Self::Buf,
        grads: &Self::Buf,
        moments: Moments<'_, Self::Buf>,
        decay_mask: &Self::Buf,
        step: AdamStep,
    ) {
        let AdamStep { hp, step, lr } = step;
        let Moments { m, v } = moments;
        // Bias corrections exactly as the CPU backend computes them (f32 powi on the host).
        // The CPU backend's reciprocals (`cpu::optim::AdamRule`), so both multiply by the same
        // bits.
        let inv_bc1 = 1.0 / (1.0 - hp.beta1.powi(step as i32));
        let inv_bc2 = 1.0 / (1.0 - hp.beta2.powi(step as i32));
        self.exec(|| {
            let n = params.len;
            self.launch_n(
                "md_adamw",
                n,
                &[
                    KernelArg::Buf(view(params, 0, n, "adamw params")?, 0),
                    KernelArg::Buf(view(grads, 0, n, "adamw grads")?, 0),
                    KernelArg::Buf(view(m, 0, n, "adamw m")?, 0),
                    KernelArg::Buf(view(v, 0, n, "adamw v")?, 0),
                    KernelArg::Buf(view(decay_mask, 0, n, "adamw mask")?, 0),
                    KernelArg::F32(lr),
                    KernelArg::F32(hp.beta1),
                    KernelArg::F32(hp.beta2),
                    KernelArg::F32(hp.eps),
                    KernelArg::F32(hp.weight_decay),
                    KernelArg::F32(inv_bc1),
                    KernelArg::F32(inv_bc2),
                    KernelArg::I32(int(n)?),
                ],
            )
        });
    }

    fn ema(&self, ema: &mut Self::Buf, params: &Self::Buf, decay: f32) {
        self.exec(|| {
            let n = ema.len;
            self.launch_n(
                "md_ema",
                n,
                &[
                    KernelArg::Buf(view(ema, 0, n, "ema")?, 0),
                    KernelArg::Buf(view(params, 0, n, "ema params")?, 0),
                    KernelArg::F32(decay),
                    KernelArg::I32(int(n)?),
                ],
            )
        });
    }

    fn fill_normal(&self, buf: &mut Self::Buf, noise: &NoiseStream, draw: u32) {
        self.exec(|| {
            let n = buf.len;
            self.launch_n(
                "md_normal_fill",
                n,
                &[
                    KernelArg::Buf(view(buf, 0, n, "fill_normal")?, 0),
                    KernelArg::U64(noise.seed),
                    KernelArg::U32(noise.stream),
                    KernelArg::U32(noise.domain as u32),
                    KernelArg::U32(draw),
                    KernelArg::I32(int(n)?),
                ],
            )
        });
    }

    fn reparam(&self, lat: Latent, h: &Self::Buf, eps: &Self::Buf, z: &mut Self::Buf) {
        let Latent { rows, dim, stride } = lat;
        self.exec(|| {
            let n = mul(rows, dim, "reparam")?;
            let args = [
                KernelArg::Buf(view(h, 0, mul(2, n, "reparam h")?, "reparam h")?, 0),
                KernelArg::Buf(view(eps, 0, n, "reparam eps")?, 0),
                KernelArg::Buf(view(z, 0, mul(rows, stride, "reparam z")?, "reparam z")?, 0),
                KernelArg::I32(int(rows)?),
                KernelArg::I32(int(dim)?),
                KernelArg::I32(int(stride)?),
            ];
            if stride < dim {
                return Err(CudaError::Shape(format!(
                    "reparam: stride {stride} < dim {dim}"
                )));
            }
            self.launch_n("md_reparam", n, &args)
        });
    }

    fn reparam_bwd(
        &self,
        lat: Latent,
        h: &Self::Buf,
        eps: &Self::Buf,
        dz: &Self::Buf,
        dh: &mut Self::Buf,
        loss: LatentLoss,
    ) -> f32 {
        let Latent { rows, dim, stride } = lat;
        let mut total = f64::NAN;
        self.exec(|| {
            let n = mul(rows, dim, "reparam_bwd")?;
            if stride < dim {
                return Err(CudaError::Shape(format!(
                    "reparam_bwd: stride {stride} < dim {dim}"
                )));
            }
            let hm = view(h, 0, mul(2, n, "reparam_bwd h")?, "reparam_bwd h")?;
            let em = view(eps, 0, n, "reparam_bwd eps")?;
            self.launch_n(
                "md_reparam_bwd",
                n,
                &[
                    KernelArg::I32(loss.code()),
                    KernelArg::Buf(hm, 0),
                    KernelArg::Buf(em, 0),
                    KernelArg::Buf(view(dz, 0, mul(rows, stride, "dz")?, "reparam_bwd dz")?, 0),
                    KernelArg::Buf(view(dh, 0, 2 * n, "reparam_bwd dh")?, 0),
                    KernelArg::F32(loss.scale()),
                    KernelArg::I32(int(rows)?),
                    KernelArg::I32(int(dim)?),
                    KernelArg::I32(int(stride)?),
                ],
            )?;
            total = self.reduce_with(
                "md_latent_partials",
                n,
                &[
                    KernelArg::I32(loss.code()),
                    KernelArg::Buf(hm, 0),
                    KernelArg::Buf(em, 0),
                    KernelArg::Buf(&self.partials, 0),
                    KernelArg::I32(int(rows)?),
                    KernelArg::I32(int(dim)?),
                ],
            )?;
            Ok(())
        });
        total as f32
    }

    fn gauss_nll(
        &self,
        g: GaussNll,
        z: &Self::Buf,
        h: &Self::Buf,
        dz: &mut Self::Buf,
        dh: &mut Self::Buf,
    ) -> f32 {
        let GaussNll { rows, dim, scale } = g;
        let mut total = f64::NAN;
        self.exec(|| {
            let n = mul(rows, dim, "gauss_nll")?;
            let zm = view(z, 0, n, "gauss_nll z")?;
            let hm = view(h, 0, mul(2, n, "gauss_nll h")?, "gauss_nll h")?;
            self.launch_n(
                "md_gauss_nll_grad",
                n,
                &[
                    KernelArg::Buf(zm, 0),
                    KernelArg::Buf(hm, 0),
                    KernelArg::Buf(view(dz, 0, n, "gauss_nll dz")?, 0),
                    KernelArg::Buf(view(dh, 0, 2 * n, "gauss_nll dh")?, 0),
                    KernelArg::F32(scale),
                    KernelArg::I32(int(rows)?),
                    KernelArg::I32(int(dim)?),
                ],
            )?;
            total = self.reduce_with(
                "md_gauss_nll_partials",
                n,
                &[
                    KernelArg::Buf(zm, 0),
                    KernelArg::Buf(hm, 0),
                    KernelArg::Buf(&self.partials, 0),
                    KernelArg::I32(int(rows)?),
                    KernelArg::I32(int(dim)?),
                ],
            )?;
            Ok(())
        });
        total as f32
    }

    fn nll(&self, nll: Nll, x: &Self::Buf, out: &Self::Buf, p: NllGrads<'_, Self::Buf>) -> f32 {
        let Nll {
            obs,
            rows,
            dim,
            scale,
        } = nll;
        let NllGrads {
            params,
            grads,
            d_out,
        } = p;
        let mut total = f64::NAN;
        self.exec(|| {
            let n = mul(rows, dim, "nll")?;
            let xm = view(x, 0, n, "nll x")?;
            let om = view(out, 0, n, "nll out")?;
            // The Bernoulli kernels never read log σ; any valid pointer stands in for it.
            let (code, ls, at) = match obs {
                Observation::Gaussian { log_sigma } => {
                    (0, view(params, log_sigma, dim, "nll log_sigma")?, log_sigma)
                }
                Observation::Bernoulli => (1, xm, 0),
            };
            self.launch_n(
                "md_nll_grad",
                n,
                &[
                    KernelArg::I32(code),
                    KernelArg::Buf(xm, 0),
                    KernelArg::Buf(om, 0),
                    KernelArg::Buf(ls, at),
                    KernelArg::Buf(view(d_out, 0, n, "nll d_out")?, 0),
                    KernelArg::F32(scale),
                    KernelArg::I32(int(rows)?),
                    KernelArg::I32(int(dim)?),
                ],
            )?;
            if let Observation::Gaussian { log_sigma } = obs {
                self.launch_n(
                    "md_log_sigma_grad",
                    dim,
                    &[
                        KernelArg::Buf(xm, 0),
                        KernelArg::Buf(om, 0),
                        KernelArg::Buf(ls, at),
                        KernelArg::Buf(view(grads, log_sigma, dim, "nll dlog_sigma")?, at),
                        KernelArg::F32(scale),
                        KernelArg::I32(int(rows)?),
                        KernelArg::I32(int(dim)?),
                    ],
                )?;
            }
            total = self.reduce_with(
                "md_nll_partials",
                n,
                &[
                    KernelArg::I32(code),
                    KernelArg::Buf(xm, 0),
                    KernelArg::Buf(om, 0),
                    KernelArg::Buf(ls, at),
                    KernelArg::Buf(&self.partials, 0),
                    KernelArg::I32(int(rows)?),
                    KernelArg::I32(int(dim)?),
                ],
            )?;
            Ok(())
        });
        total as f32
    }

    fn bernoulli(&self, p: &Self::Buf, out: &mut Self::Buf, noise: RowNoise<'_, Self::Buf>) {
        self.exec(|| {
            let rows = noise.streams.len;
            if rows == 0 {
                return Ok(());
            }
            let n = p.len / rows;
            let len = rows * n;
            self.launch_n(
                "md_bernoulli",
                len,
                &[
                    KernelArg::Buf(view(p, 0, len, "bernoulli p")?, 0),
                    KernelArg::Buf(view(out, 0, len, "bernoulli out")?, 0),
                    KernelArg::Buf(view(noise.streams, 0, rows, "bernoulli streams")?, 0),
                    KernelArg::U64(noise.seed),
                    KernelArg::U32(noise.domain as u32),
                    KernelArg::U32(noise.draw),
                    KernelArg::U32(noise.offset),
                    KernelArg::I32(int(rows)?),
                    KernelArg::I32(int(n)?),
                ],
            )
        });
    }

    fn linear_t_fwd(&self, layer: Linear, params: &Self::Buf, x: &Self::Buf, y: &mut Self::Buf) {
        let Linear { w, bias, b, i, o } = layer;
        self.exec(|| {
            let xm = view(x, 0, mul(b, o, "linear_t_fwd x")?, "linear_t_fwd x")?;
            let pw = view(params, w, mul(o, i, "linear_t_fwd w")?, "linear_t_fwd w")?;
            let ym = view_mut(y, 0, mul(b, i, "linear_t_fwd y")?, "linear_t_fwd y")?;
            // y (b×i) = x (b×o) · w (o×i, as stored).
            let a = MatRef {
                mem: xm,
                offset: 0,
                trans: false,
            };
            let bm = MatRef {
                mem: pw,
                offset: w,
                trans: false,
            };
            let g = GemmSpec {
                m: b,
                n: i,
                k: o,
                alpha: 1.0,
                beta: 0.0,
            };
            self.dev.sgemm(g, a, bm, MatMut { mem: ym, offset: 0 })?;
            if let Some(bo) = bias {
                let pb = view(params, bo, i, "linear_t_fwd bias")?;
                let ym = view(y, 0, b * i, "linear_t_fwd y")?;
                self.launch_n(
                    "md_bias_add",
                    b * i,
                    &[
                        KernelArg::Buf(ym, 0),
                        KernelArg::Buf(pb, bo),
                        KernelArg::I32(int(b)?),
                        KernelArg::I32(int(i)?),
                    ],
                )?;
            }
            Ok(())
        });
    }

    fn col_sum(
        &self,
        x: &Self::Buf,
        cols: usize,
        weight: f32,
        grads: &mut Self::Buf,
        offset: usize,
    ) {
        self.exec(|| {
            if cols == 0 {
                return Ok(());
            }
            let rows = x.len / cols;
            self.launch_n(
                "md_col_sum",
                cols,
                &[
                    KernelArg::Buf(view(x, 0, rows * cols, "col_sum x")?, 0),
                    KernelArg::Buf(view(grads, offset, cols, "col_sum g")?, offset),
                    KernelArg::F32(weight),
                    KernelArg::I32(int(rows)?),
                    KernelArg::I32(int(cols)?),
                ],
            )
        });
    }

    fn sgd(
        &self,
        params: &mut Self::Buf,
        grads: &Self::Buf,
        decay_mask: &Self::Buf,
        lr: f32,
        weight_decay: f32,
    ) {
        self.exec(|| {
            let n = params.len;
            self.launch_n(
                "md_sgd",
                n,
                &[
                    KernelArg::Buf(view(params, 0, n, "sgd params")?, 0),
                    KernelArg::Buf(view(grads, 0, n, "sgd grads")?, 0),
                    KernelArg::Buf(view(decay_mask, 0, n, "sgd mask")?, 0),
                    KernelArg::F32(lr),
                    KernelArg::F32(weight_decay),
                    KernelArg::I32(int(n)?),
                ],
            )
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every configuration the backend computes is one a GPU accepts (and the emulator
    /// checks): 1-D, 1..=1024 threads, ≤ 48 KiB of shared memory, a power-of-two block for the
    /// shared-memory trees, and no more partials than the partials buffer holds.
    #[test]
    fn launch_configurations_are_valid_for_every_size() {
        for n in [
            1, 2, 31, 32, 33, 255, 256, 257, 300, 1000, 65_537, 10_000_000,
        ] {
            for cfg in [
                grid_stride(n),
                reduction(n),
                per_row(3, n, 1),
                per_row(3, n, 2),
            ] {
                let threads = cfg.block.0;
                assert!(
                    (1..=1024).contains(&threads) && cfg.grid.0 >= 1,
                    "{n}: {cfg:?}"
                );
                assert_eq!(
                    (cfg.grid.1, cfg.grid.2, cfg.block.1, cfg.block.2),
                    (1, 1, 1, 1)
                );
                assert!(cfg.shared_bytes <= 48 * 1024, "{n}: {cfg:?}");
            }
            assert!(reduction(n).grid.0 as usize <= REDUCE_BLOCKS);
            assert!(reduction(n).block.0.is_power_of_two());
            let row = per_row(3, n, 2);
            assert!(row.block.0.is_power_of_two() && row.block.0 >= 32);
            assert_eq!(row.shared_bytes, row.block.0 * 8);
            // Enough threads for one element each, up to the caps.
            let g = grid_stride(n);
            assert!(g.grid.0 as usize * g.block.0 as usize >= n.min(MAX_BLOCKS * BLOCK as usize));
        }
    }
}
