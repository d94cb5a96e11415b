//! The compute backend the training loop runs on.
//!
//! The network's forward and backward passes, the noising of each objective, the loss, and the
//! optimizer are written once, in terms of the operations of [`Backend`]; a backend owns the
//! buffers and executes the operations. [`cpu::Cpu`] is the reference (multi-threaded with
//! rayon, GEMMs through `matrixmultiply`); a CUDA backend implements the same trait with NVRTC
//! kernels and cuBLAS. Every operation's doc states its shapes (row-major) and formula, which
//! is the contract a second backend is tested against. [`choice`] picks one from `--device`.
//!
//! Determinism: the CPU backend gives the same bits for the same inputs whatever the thread
//! count — every output element is produced by exactly one task with a fixed reduction order,
//! and reductions across the batch (weight and bias gradients, the loss) are split over output
//! features, never over the batch. Bits can differ between CPUs with and without FMA, because
//! the GEMM library picks its kernel at run time; sampling on the device (the runtime) does not
//! depend on this.

pub mod choice;
pub mod cpu;
pub mod cuda;
mod fastmath;

use microdiff_kernels::Activation;
use microdiff_runtime::noise::{Domain, NoiseStream};

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

    /// `y (b×o) = x (b×i) · wᵀ + bias`, with `w` (o×i) and `bias` (o) at the offsets `layer`
    /// gives in the parameter buffer.
    fn linear_fwd(&self, layer: Linear, params: &Self::Buf, x: &Self::Buf, y: &mut Self::Buf);

    /// Backward of [`Backend::linear_fwd`]: `dx = dy · w` (if wanted), `dw += dyᵀ · x`,
    /// `dbias += Σ_rows dy` (`+=` because gradients of shared parameters accumulate).
    fn linear_bwd(
        &self,
        layer: Linear,
        p: ParamGrads<'_, Self::Buf>,
        x: &Self::Buf,
        dy: &Self::Buf,
        dx: Option<&mut Self::Buf>,
    );

    /// `y = act(x)` element-wise.
    fn act_fwd(&self, act: Activation, x: &Self::Buf, y: &mut Self::Buf);
    /// `dx = dy · act'(x)` element-wise (`dx` overwritten).
    fn act_bwd(&self, act: Activation, x: &Self::Buf, dy: &Self::Buf, dx: &mut Self::Buf);

    /// Layer norm of each row (`b` rows of `n`): `y = (x − μ)·rstd·γ + β`, saving per-row μ and
    /// rstd = 1/√(var + eps) into `stats` (b×2) for the backward pass. γ, β at offsets of the
    /// parameter buffer.
    fn layernorm_fwd(
        &self,
        ln: LayerNorm,
        params: &Self::Buf,
        x: &Self::Buf,
        y: &mut Self::Buf,
        stats: &mut Self::Buf,
    );
    /// Backward of layer norm: `dx += rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂))` with `dx̂ = dy·γ`,
    /// `dγ += Σ_rows dy·x̂`, `dβ += Σ_rows dy` (`stats` as the forward pass saved them).
    fn layernorm_bwd(
        &self,
        ln: LayerNorm,
        p: ParamGrads<'_, Self::Buf>,
        x: &Self::Buf,
        stats: &Self::Buf,
        dy: &Self::Buf,
        dx: &mut Self::Buf,
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
    fn adamw(
        &self,
        params: &mut Self::Buf,
        grads: &Self::Buf,
        moments: Moments<'_, Self::Buf>,
        decay_mask: &Self::Buf,
        step: AdamStep,
    );
    /// `ema = d·ema + (1 − d)·params`.
    fn ema(&self, ema: &mut Self::Buf, params: &Self::Buf, decay: f32);

    /// [`Backend::linear_fwd`] into `z`, then `a = act(z)`: a layer and its activation, both
    /// kept for the backward pass. The default runs the two operations; a backend may fuse them.
    fn linear_act_fwd(
        &self,
        act: Activation,
        layer: Linear,
        params: &Self::Buf,
        x: &Self::Buf,
        z: &mut Self::Buf,
        a: &mut Self::Buf,
    ) {
        self.linear_fwd(layer, params, x, z);
        self.act_fwd(act, z, a);
    }

    /// A residual branch: `y = res + (x·wᵀ + bias)` (shapes of [`Backend::linear_fwd`]; `res`
    /// and `y` are b×o). The default runs [`Backend::linear_fwd`] and [`Backend::add_assign`];
    /// f32 addition commutes, so a fused backend gives the same bits.
    fn linear_residual_fwd(
        &self,
        layer: Linear,
        params: &Self::Buf,
        x: &Self::Buf,
        res: &Self::Buf,
        y: &mut Self::Buf,
    ) {
        self.linear_fwd(layer, params, x, y);
        self.add_assign(y, res);
    }

    /// [`Backend::linear_residual_fwd`] into `y`, then [`Backend::layernorm_fwd`] of `y` (rows
    /// of `o`) into `out.normed` and `out.stats`: a residual block's output and the next block's
    /// layer norm. The default runs the two operations; a backend may fuse them (same
    /// arithmetic).
    fn linear_residual_ln_fwd(
        &self,
        layer: Linear,
        ln: LnArgs,
        params: &Self::Buf,
        x: &Self::Buf,
        res: &Self::Buf,
        out: ResidualLnOut<'_, Self::Buf>,
    ) {
        let ResidualLnOut { y, normed, stats } = out;
        self.linear_residual_fwd(layer, params, x, res, y);
        self.layernorm_fwd(ln.rows(layer.b, layer.o), params, y, normed, stats);
    }

    /// [`Backend::linear_bwd`] of a layer whose input `input.a` (b×i) an activation produced
    /// from `input.z`: `dz = (dy·w)·act'(z)`, `dw += dyᵀ·a`, `dbias += Σ_rows dy`. `tmp` (b×i)
    /// is scratch whose contents afterwards are unspecified. The default runs
    /// [`Backend::linear_bwd`] into `tmp` and [`Backend::act_bwd`]; a backend may fuse them.
    fn linear_act_bwd(
        &self,
        layer: Linear,
        p: ParamGrads<'_, Self::Buf>,
        input: Activated<'_, Self::Buf>,
        dy: &Self::Buf,
        tmp: &mut Self::Buf,
        dz: &mut Self::Buf,
    ) {
        self.linear_bwd(layer, p, input.a, dy, Some(tmp));
        self.act_bwd(input.act, input.z, tmp, dz);
    }

    /// One optimizer update: `grads *= clip` (skipped when `clip` is 1), [`Backend::adamw`],
    /// [`Backend::ema`] with `ema_decay`, and finally `grads = 0`, ready for the next step's
    /// accumulation. The default runs those operations in turn; a backend may fuse them into
    /// one pass with the same arithmetic per element.
    fn update(
        &self,
        params: &mut Self::Buf,
        grads: &mut Self::Buf,
        moments: Moments<'_, Self::Buf>,
        decay_mask: &Self::Buf,
        ema: &mut Self::Buf,
        step: UpdateStep,
    ) {
        if step.clip != 1.0 {
            self.scale(grads, step.clip);
        }
        self.adamw(params, grads, moments, decay_mask, step.adam);
        self.ema(ema, params, step.ema_decay);
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

    // ---- The zoo's operations (VAE and RBM trainers, `crate::zoo`) ----

    /// The reparameterisation of a diagonal-Gaussian latent: for each row `r` and `j < dim`,
    /// `z[r·stride + j] = μ + exp(lv/2)·ε` with `[μ, lv] = h[r]` (`h`: rows × 2·dim, μ first)
    /// and `ε = eps[r·dim + j]` (rows × dim). The other `stride − dim` values of each row of
    /// `z` (e.g. a class one-hot) are left as they are.
    fn reparam(&self, lat: Latent, h: &Self::Buf, eps: &Self::Buf, z: &mut Self::Buf);

    /// Backward of [`Backend::reparam`] plus the latent's own loss terms ([`LatentLoss`], `s`
    /// its scale): with `σ = exp(lv/2)`, `z = μ + σε` and `g` the gradient of the loss with
    /// respect to `z` (`dz`, rows of `stride`, first `dim` values read), `dh` (rows × 2·dim)
    /// is overwritten with `dμ = g' + a`, `dlv = g'·ε·½σ + c`, where for
    /// [`LatentLoss::Kl`] `g' = g`, `a = s·μ`, `c = s·½(σ² − 1)`; for [`LatentLoss::Sampled`]
    /// `a = 0`, `c = −s·½` and `g' = g` (or `g + s·z` with a standard-normal prior). Returns the
    /// unscaled sum of the loss terms over all rows and latents.
    fn reparam_bwd(
        &self,
        lat: Latent,
        h: &Self::Buf,
        eps: &Self::Buf,
        dz: &Self::Buf,
        dh: &mut Self::Buf,
        loss: LatentLoss,
    ) -> f32;

    /// The negative log-density of `z` (rows × dim) under a diagonal Gaussian whose
    /// `[μ, lv]` rows are `h` (rows × 2·dim): returns the unscaled `Σ ½(ln 2π + lv + d²e^{−lv})`,
    /// `d = z − μ`; adds `s·d·e^{−lv}` to `dz` and overwrites `dh` (rows × 2·dim) with
    /// `dμ = −s·d·e^{−lv}`, `dlv = −s·(½d²e^{−lv} − ½)` (`s` = `g.scale`). A learned prior
    /// `p(z1|z2)`.
    fn gauss_nll(
        &self,
        g: GaussNll,
        z: &Self::Buf,
        h: &Self::Buf,
        dz: &mut Self::Buf,
        dh: &mut Self::Buf,
    ) -> f32;

    /// A decoder's negative log-likelihood `Σ −log p(x|out)` over `x`, `out` (rows × dim),
    /// returned unscaled, and its gradient scaled by `nll.scale`: `d_out` (rows × dim) is
    /// overwritten with `scale·∂/∂out`; for [`Observation::Gaussian`] the per-dimension log σ
    /// is read from `params` and `scale·Σ_rows ∂/∂(log σ)` is added (`+=`) to `grads` at the
    /// same offset. Gaussian: `½(ln 2π + 2s + r²e^{−2s})`, `r = x − out`; Bernoulli:
    /// `softplus(out) − x·out`.
    fn nll(&self, nll: Nll, x: &Self::Buf, out: &Self::Buf, p: NllGrads<'_, Self::Buf>) -> f32;

    /// Bernoulli draws from per-row counter noise: with `rows = len(noise.streams)` and
    /// `n = len(p) / rows`, `out[r·n + j] = 1` if `NoiseStream{seed, streams[r], domain}
    /// .uniform(draw, offset + j) < p[r·n + j]`, else 0 (the comparison in f32).
    fn bernoulli(&self, p: &Self::Buf, out: &mut Self::Buf, noise: RowNoise<'_, Self::Buf>);

    /// The transposed product of a linear layer: `y (b×i) = x (b×o)·w + bias`, with `w` (o×i)
    /// at `layer.w` and `bias` (i values, not o) at `layer.bias` of the parameter buffer (an
    /// RBM's visible activations from its hidden units).
    fn linear_t_fwd(&self, layer: Linear, params: &Self::Buf, x: &Self::Buf, y: &mut Self::Buf);

    /// Column sums, weighted: `grads[offset + c] += weight·Σ_r x[r·cols + c]` (rows of `cols`,
    /// summed in ascending order, then scaled once).
    fn col_sum(
        &self,
        x: &Self::Buf,
        cols: usize,
        weight: f32,
        grads: &mut Self::Buf,
        offset: usize,
    );

    /// Plain gradient descent with L2 decay where `decay_mask` is 1:
    /// `p −= lr·(g + λ·mask·p)`.
    fn sgd(
        &self,
        params: &mut Self::Buf,
        grads: &Self::Buf,
        decay_mask: &Self::Buf,
        lr: f32,
        weight_decay: f32,
    );
}

/// A backend's device failed (see [`Backend::check`]).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The CUDA backend's first error.
    #[error(transparent)]
    Cuda(#[from] cuda::CudaError),
}

// ---- Arguments of the operations ----
//
// Offsets and shapes travel together as small `Copy` structs, and tensors that an operation
// reads or writes as a pair are grouped by what they are, so that no operation has a long list
// of positional parameters of the same type.

/// A linear layer as the operations see it: `y (b×o) = x (b×i)·wᵀ + bias`, with `w` (o×i,
/// row-major) and `bias` (o) at element offsets of the parameter buffer (and, in a backward
/// operation, at the same offsets of the gradient buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Linear {
    /// Offset of `w`.
    pub w: usize,
    /// Offset of `bias`, if the layer has one.
    pub bias: Option<usize>,
    /// Rows (the batch).
    pub b: usize,
    /// Input features.
    pub i: usize,
    /// Output features.
    pub o: usize,
}

/// The parameters of a layer norm inside a fused operation: γ and β offsets in the parameter
/// buffer, and ε (the fused operation gives the shape).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LnArgs {
    /// Offset of γ.
    pub gamma: usize,
    /// Offset of β.
    pub beta: usize,
    /// ε added to the variance.
    pub eps: f32,
}

impl LnArgs {
    /// This layer norm over `b` rows of `n`.
    pub fn rows(self, b: usize, n: usize) -> LayerNorm {
        LayerNorm {
            gamma: self.gamma,
            beta: self.beta,
            eps: self.eps,
            b,
            n,
        }
    }
}

/// A layer norm over `b` rows of `n`: γ and β (n each) at offsets of the parameter buffer (and
/// of the gradient buffer in the backward pass), and ε.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerNorm {
    /// Offset of γ.
    pub gamma: usize,
    /// Offset of β.
    pub beta: usize,
    /// ε added to the variance.
    pub eps: f32,
    /// Rows.
    pub b: usize,
    /// Features per row.
    pub n: usize,
}

/// The parameter buffer and its gradient buffer (same layout): a backward operation reads the
/// weights from `params` and accumulates (`+=`) their gradients into `grads` at the same
/// offsets.
#[derive(Debug)]
pub struct ParamGrads<'a, B> {
    /// The parameters.
    pub params: &'a B,
    /// Their gradients.
    pub grads: &'a mut B,
}

/// A tensor an activation produced in the forward pass, `a = act(z)`, with its pre-activation
/// `z` (same shape), both kept for the backward pass.
#[derive(Debug)]
pub struct Activated<'a, B> {
    /// The activation.
    pub act: Activation,
    /// The pre-activation.
    pub z: &'a B,
    /// `act(z)`.
    pub a: &'a B,
}

/// The outputs of [`Backend::linear_residual_ln_fwd`], all with `b` rows.
#[derive(Debug)]
pub struct ResidualLnOut<'a, B> {
    /// The residual stream `res + x·wᵀ + bias` (b×o).
    pub y: &'a mut B,
    /// Its layer norm (b×o).
    pub normed: &'a mut B,
    /// Each row's mean and rstd (b×2).
    pub stats: &'a mut B,
}

/// Adam's moment estimates (each the length of the parameters).
#[derive(Debug)]
pub struct Moments<'a, B> {
    /// First moment `m`.
    pub m: &'a mut B,
    /// Second moment `v`.
    pub v: &'a mut B,
}

/// One AdamW step: the hyper-parameters, the step number (from 1, for the bias corrections)
/// and the learning rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamStep {
    /// Hyper-parameters.
    pub hp: AdamW,
    /// Step number, from 1.
    pub step: u64,
    /// Learning rate.
    pub lr: f32,
}

/// One optimizer update ([`Backend::update`]): the AdamW step, the factor the gradients are
/// scaled by first (1: no clipping), and the EMA decay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UpdateStep {
    /// The AdamW step.
    pub adam: AdamStep,
    /// Gradient scale (the clipping factor; 1 skips the scaling).
    pub clip: f32,
    /// EMA decay.
    pub ema_decay: f32,
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

/// A diagonal-Gaussian latent layer as [`Backend::reparam`] sees it: `rows` rows of `dim`
/// latents; the sample is written into rows of `stride` values (`stride ≥ dim`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latent {
    /// Rows (the batch).
    pub rows: usize,
    /// Latent dimensions.
    pub dim: usize,
    /// Values per row of the sample's buffer.
    pub stride: usize,
}

/// The loss terms of a reparameterised latent in [`Backend::reparam_bwd`] (`scale`: the factor
/// of their gradients).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LatentLoss {
    /// The analytic `KL(N(μ, σ²) ‖ N(0, 1)) = ½(μ² + σ² − 1 − lv)` (the one-level VAE).
    Kl {
        /// Gradient scale.
        scale: f32,
    },
    /// The single-sample `log q(z|·) = −½(ln 2π + lv + ε²)`; with `standard_prior`, plus
    /// `−log N(z; 0, 1)`, i.e. `½(z² − lv − ε²)` in all (the two-level VAE's levels).
    Sampled {
        /// Gradient scale.
        scale: f32,
        /// Whether the prior `N(0, 1)` of `z` is part of the term.
        standard_prior: bool,
    },
}

impl LatentLoss {
    /// The kernels' code: 0 KL, 1 sampled, 2 sampled with the standard prior.
    pub fn code(self) -> i32 {
        match self {
            LatentLoss::Kl { .. } => 0,
            LatentLoss::Sampled {
                standard_prior: false,
                ..
            } => 1,
            LatentLoss::Sampled { .. } => 2,
        }
    }

    /// The gradient scale.
    pub fn scale(self) -> f32 {
        match self {
            LatentLoss::Kl { scale } | LatentLoss::Sampled { scale, .. } => scale,
        }
    }
}

/// [`Backend::gauss_nll`]'s shape and gradient scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GaussNll {
    /// Rows (the batch).
    pub rows: usize,
    /// Dimensions per row.
    pub dim: usize,
    /// Factor of the gradients.
    pub scale: f32,
}

/// A decoder's observation model in [`Backend::nll`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// `N(x; out, exp(2s))` per dimension, with `s` (dim values) at this offset of the
    /// parameters.
    Gaussian {
        /// Offset of the per-dimension log σ.
        log_sigma: usize,
    },
    /// Bernoulli with logits `out`.
    Bernoulli,
}

/// [`Backend::nll`]'s shape and gradient scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Nll {
    /// The observation model.
    pub obs: Observation,
    /// Rows (the batch).
    pub rows: usize,
    /// Values per row.
    pub dim: usize,
    /// Factor of every gradient (e.g. 1/batch).
    pub scale: f32,
}

/// What [`Backend::nll`] reads and writes besides the data: the parameters (the log σ of a
/// Gaussian decoder), their gradients, and the gradient with respect to the decoder's output.
#[derive(Debug)]
pub struct NllGrads<'a, B> {
    /// The parameters.
    pub params: &'a B,
    /// Their gradients (`+=`).
    pub grads: &'a mut B,
    /// The output's gradient (overwritten).
    pub d_out: &'a mut B,
}

/// Per-row counter noise of [`Backend::bernoulli`]: row `r` reads
/// `NoiseStream { seed, stream: streams[r], domain }` at draw `draw`, elements from `offset`.
/// `streams` holds one `u32` per row as its bit pattern in an f32 slot (made by
/// [`stream_ids`]): ids are copied, never computed with, so any `u32` survives.
#[derive(Debug)]
pub struct RowNoise<'a, B> {
    /// The key.
    pub seed: u64,
    /// The domain.
    pub domain: Domain,
    /// Each row's stream, as bits.
    pub streams: &'a B,
    /// The draw.
    pub draw: u32,
    /// The element of column 0.
    pub offset: u32,
}

/// Stream ids as the f32 bit patterns [`RowNoise::streams`] holds (upload the result).
pub fn stream_ids(ids: impl IntoIterator<Item = u32>) -> Vec<f32> {
    ids.into_iter().map(f32::from_bits).collect()
}
