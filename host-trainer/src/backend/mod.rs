//! The compute backend the training loop runs on.
//!
//! The network's forward and backward passes, the noising of each objective, the loss, and the
//! optimizer are written once, in terms of the operations of [`Backend`]; a backend owns the
//! buffers and executes the operations. [`cpu::Cpu`] is the reference (multi-threaded with
//! rayon, GEMMs through `matrixmultiply`); a CUDA backend implements the same trait with NVRTC
//! kernels and cuBLAS. Every operation's doc states its shapes (row-major) and formula, which
//! is the contract a second backend is tested against.
//!
//! Determinism: the CPU backend gives the same bits for the same inputs whatever the thread
//! count — every output element is produced by exactly one task with a fixed reduction order,
//! and reductions across the batch (weight and bias gradients, the loss) are split over output
//! features, never over the batch. Bits can differ between CPUs with and without FMA, because
//! the GEMM library picks its kernel at run time; sampling on the device (the runtime) does not
//! depend on this.

pub mod cpu;
pub mod cuda;
mod fastmath;

use microdiff_kernels::Activation;
use microdiff_runtime::noise::NoiseStream;

/// A compute backend. `Buf` is a buffer of f32 on the backend's device.
pub trait Backend {
    /// A device buffer of f32.
    type Buf;

    /// Reports the first device error since the backend was made. The operations are
    /// infallible so that the model is written once for every backend; a backend whose device
    /// can fail (CUDA) turns the operations after an error into no-ops and reports it here.
    /// The training loop calls this every step.
    fn check(&self) -> Result<(), BackendError> {
        Ok(())
    }

    /// A buffer of `n` zeros.
    fn zeros(&self, n: usize) -> Self::Buf;
    /// A buffer holding `host`.
    fn upload(&self, host: &[f32]) -> Self::Buf;
    /// Copies `buf` back to the host.
    fn download(&self, buf: &Self::Buf) -> Vec<f32>;
    /// Overwrites `buf` with `host` (same length).
    fn write(&self, buf: &mut Self::Buf, host: &[f32]);
    /// Sets every element to 0.
    fn fill_zero(&self, buf: &mut Self::Buf);
    /// Number of elements.
    fn len(&self, buf: &Self::Buf) -> usize;

    /// `y (b×o) = x (b×i) · wᵀ (w: o×i) + bias (o)`; `w` and `bias` are views at element
    /// offsets of the parameter buffer.
    #[allow(clippy::too_many_arguments)]
    fn linear_fwd(
        &self,
        x: &Self::Buf,
        params: &Self::Buf,
        w: usize,
        bias: Option<usize>,
        y: &mut Self::Buf,
        b: usize,
        i: usize,
        o: usize,
    );

    /// Backward of [`Backend::linear_fwd`]: `dx = dy · w` (if wanted), `dw += dyᵀ · x`,
    /// `dbias += Σ_rows dy` (`+=` because gradients of shared parameters accumulate).
    #[allow(clippy::too_many_arguments)]
    fn linear_bwd(
        &self,
        x: &Self::Buf,
        params: &Self::Buf,
        w: usize,
        dy: &Self::Buf,
        dx: Option<&mut Self::Buf>,
        grads: &mut Self::Buf,
        bias: Option<usize>,
        b: usize,
        i: usize,
        o: usize,
    );

    /// `y = act(x)` element-wise.
    fn act_fwd(&self, act: Activation, x: &Self::Buf, y: &mut Self::Buf);
    /// `dx = dy · act'(x)` element-wise (`dx` overwritten).
    fn act_bwd(&self, act: Activation, x: &Self::Buf, dy: &Self::Buf, dx: &mut Self::Buf);

    /// Layer norm of each row (`b` rows of `n`): `y = (x − μ)·rstd·γ + β`, saving per-row μ and
    /// rstd = 1/√(var + eps) for the backward pass. γ, β at offsets of the parameter buffer.
    #[allow(clippy::too_many_arguments)]
    fn layernorm_fwd(
        &self,
        x: &Self::Buf,
        params: &Self::Buf,
        gamma: usize,
        beta: usize,
        y: &mut Self::Buf,
        stats: &mut Self::Buf,
        b: usize,
        n: usize,
        eps: f32,
    );
    /// Backward of layer norm: `dx += rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂))` with `dx̂ = dy·γ`,
    /// `dγ += Σ_rows dy·x̂`, `dβ += Σ_rows dy`.
    #[allow(clippy::too_many_arguments)]
    fn layernorm_bwd(
        &self,
        x: &Self::Buf,
        params: &Self::Buf,
        gamma: usize,
        beta: usize,
        stats: &Self::Buf,
        dy: &Self::Buf,
        dx: &mut Self::Buf,
        grads: &mut Self::Buf,
        b: usize,
        n: usize,
    );

    /// Sinusoidal embedding (the kernels crate's formula) of each time value into a row of `dim`.
    fn time_embed(&self, t: &Self::Buf, y: &mut Self::Buf, dim: usize, max_period: f32);

    /// `y[r] += table[class[r]]` for each row (`table`: rows × n at an offset of the parameters;
    /// class ids as exact small integers in f32).
    fn embed_add(
        &self,
        params: &Self::Buf,
        table: usize,
        classes: &Self::Buf,
        y: &mut Self::Buf,
        n: usize,
    );
    /// Backward of [`Backend::embed_add`]: `dtable[class[r]] += dy[r]`.
    fn embed_add_bwd(
        &self,
        classes: &Self::Buf,
        dy: &Self::Buf,
        grads: &mut Self::Buf,
        table: usize,
        rows: usize,
        n: usize,
    );

    /// `y += x` element-wise.
    fn add_assign(&self, y: &mut Self::Buf, x: &Self::Buf);
    /// `y = x` (same length).
    fn copy(&self, x: &Self::Buf, y: &mut Self::Buf);

    /// Noising: `x_t = α·x₀ + σ·ε` and the regression target `target = c₀·x₀ + c_ε·ε`, per row
    /// (`coef` holds `[α, σ, c₀, c_ε]` for each row).
    fn noise_and_target(
        &self,
        x0: &Self::Buf,
        eps: &Self::Buf,
        coef: &Self::Buf,
        xt: &mut Self::Buf,
        target: &mut Self::Buf,
        n: usize,
    );

    /// Mean squared error over all elements and its gradient `d = 2(pred − target)/len`.
    fn mse(&self, pred: &Self::Buf, target: &Self::Buf, d: &mut Self::Buf) -> f32;

    /// √Σ g² over the whole buffer.
    fn norm(&self, g: &Self::Buf) -> f32;
    /// `g *= s`.
    fn scale(&self, g: &mut Self::Buf, s: f32);

    /// One AdamW step over all parameters (decoupled weight decay where `decay_mask` is 1).
    #[allow(clippy::too_many_arguments)]
    fn adamw(
        &self,
        params: &mut Self::Buf,
        grads: &Self::Buf,
        m: &mut Self::Buf,
        v: &mut Self::Buf,
        decay_mask: &Self::Buf,
        hp: &AdamW,
        step: u64,
        lr: f32,
    );
    /// `ema = d·ema + (1 − d)·params`.
    fn ema(&self, ema: &mut Self::Buf, params: &Self::Buf, decay: f32);

    /// [`Backend::linear_fwd`] into `z`, then `a = act(z)`: a layer and its activation, both
    /// kept for the backward pass. The default runs the two operations; a backend may fuse them.
    #[allow(clippy::too_many_arguments)]
    fn linear_act_fwd(
        &self,
        act: Activation,
        x: &Self::Buf,
        params: &Self::Buf,
        w: usize,
        bias: Option<usize>,
        z: &mut Self::Buf,
        a: &mut Self::Buf,
        b: usize,
        i: usize,
        o: usize,
    ) {
        self.linear_fwd(x, params, w, bias, z, b, i, o);
        self.act_fwd(act, z, a);
    }

    /// A residual branch: `y = res + (x·wᵀ + bias)` (shapes of [`Backend::linear_fwd`]; `res`
    /// and `y` are b×o). The default runs [`Backend::linear_fwd`] and [`Backend::add_assign`];
    /// f32 addition commutes, so a fused backend gives the same bits.
    #[allow(clippy::too_many_arguments)]
    fn linear_residual_fwd(
        &self,
        x: &Self::Buf,
        params: &Self::Buf,
        w: usize,
        bias: Option<usize>,
        res: &Self::Buf,
        y: &mut Self::Buf,
        b: usize,
        i: usize,
        o: usize,
    ) {
        self.linear_fwd(x, params, w, bias, y, b, i, o);
        self.add_assign(y, res);
    }

    /// [`Backend::linear_residual_fwd`] into `y`, then [`Backend::layernorm_fwd`] of `y` (rows
    /// of `o`) into `ln_out` and `stats`: a residual block's output and the next block's layer
    /// norm. The default runs the two operations; a backend may fuse them (same arithmetic).
    #[allow(clippy::too_many_arguments)]
    fn linear_residual_ln_fwd(
        &self,
        x: &Self::Buf,
        params: &Self::Buf,
        w: usize,
        bias: Option<usize>,
        res: &Self::Buf,
        y: &mut Self::Buf,
        ln: LnArgs,
        ln_out: &mut Self::Buf,
        stats: &mut Self::Buf,
        b: usize,
        i: usize,
        o: usize,
    ) {
        self.linear_residual_fwd(x, params, w, bias, res, y, b, i, o);
        self.layernorm_fwd(y, params, ln.gamma, ln.beta, ln_out, stats, b, o, ln.eps);
    }

    /// [`Backend::linear_bwd`] followed by the backward of the activation that produced `x`
    /// from `z` (b×i): `dx = (dy·w)·act'(z)`, `dw += dyᵀ·x`, `dbias += Σ_rows dy`. `tmp` (b×i)
    /// is scratch whose contents afterwards are unspecified. The default runs
    /// [`Backend::linear_bwd`] into `tmp` and [`Backend::act_bwd`]; a backend may fuse them.
    #[allow(clippy::too_many_arguments)]
    fn linear_act_bwd(
        &self,
        act: Activation,
        x: &Self::Buf,
        z: &Self::Buf,
        params: &Self::Buf,
        w: usize,
        dy: &Self::Buf,
        tmp: &mut Self::Buf,
        dx: &mut Self::Buf,
        grads: &mut Self::Buf,
        bias: Option<usize>,
        b: usize,
        i: usize,
        o: usize,
    ) {
        self.linear_bwd(x, params, w, dy, Some(tmp), grads, bias, b, i, o);
        self.act_bwd(act, z, tmp, dx);
    }

    /// One optimizer update: `grads *= clip` (skipped when `clip` is 1), [`Backend::adamw`],
    /// [`Backend::ema`] with `ema_decay`, and finally `grads = 0`, ready for the next step's
    /// accumulation. The default runs those operations in turn; a backend may fuse them into
    /// one pass with the same arithmetic per element.
    #[allow(clippy::too_many_arguments)]
    fn update(
        &self,
        params: &mut Self::Buf,
        grads: &mut Self::Buf,
        m: &mut Self::Buf,
        v: &mut Self::Buf,
        decay_mask: &Self::Buf,
        hp: &AdamW,
        step: u64,
        lr: f32,
        clip: f32,
        ema: &mut Self::Buf,
        ema_decay: f32,
    ) {
        if clip != 1.0 {
            self.scale(grads, clip);
        }
        self.adamw(params, grads, m, v, decay_mask, hp, step, lr);
        self.ema(ema, params, ema_decay);
        self.fill_zero(grads);
    }

    /// Fills `buf` with standard normals: element `j` is `noise.normal(draw, j)`, the
    /// runtime's counter-based Gaussian, so every backend draws the same bits. The default
    /// draws on the host and uploads; a backend may draw on its device instead.
    fn fill_normal(&self, buf: &mut Self::Buf, noise: &NoiseStream, draw: u32) {
        let host: Vec<f32> = (0..self.len(buf))
            .map(|j| noise.normal(draw, j as u32))
            .collect();
        self.write(buf, &host);
    }
}

/// A backend's device failed (see [`Backend::check`]).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The CUDA backend's first error.
    #[error(transparent)]
    Cuda(#[from] cuda::CudaError),
}

/// The parameters of a layer norm inside a fused operation: γ and β offsets in the parameter
/// buffer, and ε.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LnArgs {
    /// Offset of γ.
    pub gamma: usize,
    /// Offset of β.
    pub beta: usize,
    /// ε added to the variance.
    pub eps: f32,
}

/// AdamW hyper-parameters (Loshchilov & Hutter 2019).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamW {
    /// β₁.
    pub beta1: f32,
    /// β₂.
    pub beta2: f32,
    /// ε.
    pub eps: f32,
    /// Decoupled weight decay λ (`p −= lr·λ·p`).
    pub weight_decay: f32,
}

impl Default for AdamW {
    fn default() -> Self {
        AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}
