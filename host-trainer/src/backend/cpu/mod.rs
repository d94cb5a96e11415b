//! The CPU backend: the reference every other backend is checked against.
//!
//! This module owns the [`Cpu`] type and its [`Backend`] implementation, which only unpacks
//! arguments and hands each operation to the part that does it:
//!
//! * `pool` — how work is split over rayon's threads, and [`hot_pool`].
//! * `gemm` — the one wrapper over `matrixmultiply` (also used by [`crate::eval`]).
//! * `linear` — linear layers with fused epilogues, and their backward pass.
//! * `layernorm` — layer norm forward and backward.
//! * `elementwise` — activations, adds, noising, embeddings, loss and norm.
//! * `optim` — AdamW (also the digits classifier's), the EMA, the fused update.
//! * `zoo` — the VAE's latent and likelihood, the RBM's Bernoulli draws, transposed product,
//!   column sums and SGD (`crate::zoo`'s backend trainers).
//!
//! Buffers are `Vec<f32>`. Work is split with rayon into blocks of whole rows (or, for
//! reductions across the batch, of whole features); every output element is computed by one
//! task with a fixed reduction order, and every reduction across rows (weight and bias
//! gradients, layer-norm parameter gradients, the loss) sums the rows in order — so the result
//! does not depend on the number of threads, nor on how the rows are split.
//!
//! Speed (see `docs/benchmark.md`): a product is split into one row block per thread, so each
//! task packs the weights once; bias, activation and residual add are applied to a task's
//! block right after its product, while it is in cache; the backward pass computes the input
//! gradient and the weight and bias gradients in one parallel region; AdamW, the EMA and the
//! zeroing of the gradients are one pass. Small operations run on the calling thread, because
//! waking a sleeping worker costs more than such an operation. Element-wise loops are compiled
//! for AVX-512/AVX2 as well and picked at run time (same arithmetic). Callers get the most from
//! the backend by calling it from inside the rayon pool (e.g. in `rayon::scope`, or
//! [`hot_pool`]), so that the caller is one of the workers.
//!
//! Arithmetic that differs from the device runtime's kernels in the last bits: SiLU and its
//! derivative use the vectorisable `fastmath` exponential, and the layer norm's row sums use 16
//! partial sums in a fixed order. Neither depends on the thread count.

mod elementwise;
pub(crate) mod gemm;
mod layernorm;
mod linear;
pub(crate) mod optim;
mod pool;
mod zoo;

use microdiff_kernels::Activation;
use microdiff_runtime::noise::NoiseStream;

pub use pool::hot_pool;

use super::{
    Activated, AdamStep, Backend, GaussNll, Latent, LatentLoss, LayerNorm, Linear, LnArgs, Moments,
    Nll, NllGrads, ParamGrads, ResidualLnOut, RowNoise, UpdateStep,
};
use elementwise::{act_apply, add_into};

/// The reference CPU backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu;

impl Backend for Cpu {
    type Buf = Vec<f32>;

    fn zeros(&self, n: usize) -> Vec<f32> {
        vec![0.0; n]
    }
    fn upload(&self, host: &[f32]) -> Vec<f32> {
        host.to_vec()
    }
    fn download(&self, buf: &Vec<f32>) -> Vec<f32> {
        buf.clone()
    }
    fn write(&self, buf: &mut Vec<f32>, host: &[f32]) {
        buf.copy_from_slice(host);
    }
    fn fill_zero(&self, buf: &mut Vec<f32>) {
        buf.fill(0.0);
    }
    fn len(&self, buf: &Vec<f32>) -> usize {
        buf.len()
    }

    fn linear_fwd(&self, layer: Linear, params: &Vec<f32>, x: &Vec<f32>, y: &mut Vec<f32>) {
        linear::forward(layer, params, x, y, None, None, |_, _, _, _| {});
    }

    fn linear_act_fwd(
        &self,
        act: Activation,
        layer: Linear,
        params: &Vec<f32>,
        x: &Vec<f32>,
        z: &mut Vec<f32>,
        a: &mut Vec<f32>,
    ) {
        let a = Some((a.as_mut_slice(), layer.o));
        linear::forward(layer, params, x, z, a, None, |_, zb, ab, _| {
            if let Some(ab) = ab {
                act_apply(act, zb, ab);
            }
        });
    }

    fn linear_residual_fwd(
        &self,
        layer: Linear,
        params: &Vec<f32>,
        x: &Vec<f32>,
        res: &Vec<f32>,
        y: &mut Vec<f32>,
    ) {
        let o = layer.o;
        linear::forward(layer, params, x, y, None, None, |r0, yb, _, _| {
            add_into(yb, &res[r0 * o..r0 * o + yb.len()]);
        });
    }

    fn linear_residual_ln_fwd(
        &self,
        layer: Linear,
        ln: LnArgs,
        params: &Vec<f32>,
        x: &Vec<f32>,
        res: &Vec<f32>,
        out: ResidualLnOut<'_, Vec<f32>>,
    ) {
        let o = layer.o;
        let g = &params[ln.gamma..ln.gamma + o];
        let bb = &params[ln.beta..ln.beta + o];
        let ResidualLnOut { y, normed, stats } = out;
        let (lo, st) = (
            Some((normed.as_mut_slice(), o)),
            Some((stats.as_mut_slice(), 2)),
        );
        linear::forward(layer, params, x, y, lo, st, |r0, yb, lb, sb| {
            add_into(yb, &res[r0 * o..r0 * o + yb.len()]);
            if let (Some(lb), Some(sb)) = (lb, sb) {
                layernorm::layernorm_rows(yb, g, bb, lb, sb, ln.eps);
            }
        });
    }

    fn linear_bwd(
        &self,
        layer: Linear,
        p: ParamGrads<'_, Vec<f32>>,
        x: &Vec<f32>,
        dy: &Vec<f32>,
        dx: Option<&mut Vec<f32>>,
    ) {
        let dx = dx.map(|d| d.as_mut_slice());
        linear::backward(layer, p.params, p.grads, x, dy, dx, None);
    }

    fn linear_act_bwd(
        &self,
        layer: Linear,
        p: ParamGrads<'_, Vec<f32>>,
        input: Activated<'_, Vec<f32>>,
        dy: &Vec<f32>,
        _tmp: &mut Vec<f32>,
        dz: &mut Vec<f32>,
    ) {
        let act = Some((input.act, input.z.as_slice()));
        linear::backward(layer, p.params, p.grads, input.a, dy, Some(dz), act);
    }

    fn act_fwd(&self, act: Activation, x: &Vec<f32>, y: &mut Vec<f32>) {
        elementwise::act_fwd(act, x, y);
    }

    fn act_bwd(&self, act: Activation, x: &Vec<f32>, dy: &Vec<f32>, dx: &mut Vec<f32>) {
        elementwise::act_bwd(act, x, dy, dx);
    }

    fn layernorm_fwd(
        &self,
        ln: LayerNorm,
        params: &Vec<f32>,
        x: &Vec<f32>,
        y: &mut Vec<f32>,
        stats: &mut Vec<f32>,
    ) {
        layernorm::forward(ln, params, x, y, stats);
    }

    fn layernorm_bwd(
        &self,
        ln: LayerNorm,
        p: ParamGrads<'_, Vec<f32>>,
        x: &Vec<f32>,
        stats: &Vec<f32>,
        dy: &Vec<f32>,
        dx: &mut Vec<f32>,
    ) {
        layernorm::backward(ln, p.params, p.grads, x, stats, dy, dx);
    }

    fn time_embed(&self, t: &Vec<f32>, y: &mut Vec<f32>, dim: usize, max_period: f32) {
        elementwise::time_embed(t, y, dim, max_period);
    }

    fn embed_add(
        &self,
        params: &Vec<f32>,
        table: usize,
        classes: &Vec<f32>,
        y: &mut Vec<f32>,
        n: usize,
    ) {
        elementwise::embed_add(params, table, classes, y, n);
    }

    fn embed_add_bwd(
        &self,
        classes: &Vec<f32>,
        dy: &Vec<f32>,
        grads: &mut Vec<f32>,
        table: usize,
        rows: usize,
        n: usize,
    ) {
        let g = &mut grads[table..table + rows * n];
        elementwise::embed_add_bwd(classes, dy, g, rows, n);
    }

    fn add_assign(&self, y: &mut Vec<f32>, x: &Vec<f32>) {
        elementwise::add_assign(y, x);
    }

    fn copy(&self, x: &Vec<f32>, y: &mut Vec<f32>) {
        y.copy_from_slice(x);
    }

    fn noise_and_target(
        &self,
        x0: &Vec<f32>,
        eps: &Vec<f32>,
        coef: &Vec<f32>,
        xt: &mut Vec<f32>,
        target: &mut Vec<f32>,
        n: usize,
    ) {
        elementwise::noise_and_target(x0, eps, coef, xt, target, n);
    }

    fn mse(&self, pred: &Vec<f32>, target: &Vec<f32>, d: &mut Vec<f32>) -> f32 {
        elementwise::mse(pred, target, d)
    }

    fn norm(&self, g: &Vec<f32>) -> f32 {
        elementwise::norm(g)
    }

    fn scale(&self, g: &mut Vec<f32>, s: f32) {
        elementwise::scale(g, s);
    }

    fn adamw(
        &self,
        params: &mut Vec<f32>,
        grads: &Vec<f32>,
        moments: Moments<'_, Vec<f32>>,
        decay_mask: &Vec<f32>,
        step: AdamStep,
    ) {
        optim::adamw(params, grads, moments.m, moments.v, decay_mask, step);
    }

    fn update(
        &self,
        params: &mut Vec<f32>,
        grads: &mut Vec<f32>,
        moments: Moments<'_, Vec<f32>>,
        decay_mask: &Vec<f32>,
        ema: &mut Vec<f32>,
        step: UpdateStep,
    ) {
        let Moments { m, v } = moments;
        optim::update(params, grads, m, v, decay_mask, ema, step);
    }

    fn ema(&self, ema: &mut Vec<f32>, params: &Vec<f32>, decay: f32) {
        optim::ema(ema, params, decay);
    }

    fn fill_normal(&self, buf: &mut Vec<f32>, noise: &NoiseStream, draw: u32) {
        elementwise::fill_normal(buf, noise, draw);
    }

    fn reparam(&self, lat: Latent, h: &Vec<f32>, eps: &Vec<f32>, z: &mut Vec<f32>) {
        zoo::reparam(lat, h, eps, z);
    }

    fn reparam_bwd(
        &self,
        lat: Latent,
        h: &Vec<f32>,
        eps: &Vec<f32>,
        dz: &Vec<f32>,
        dh: &mut Vec<f32>,
        loss: LatentLoss,
    ) -> f32 {
        zoo::reparam_bwd(lat, h, eps, dz, dh, loss)
    }

    fn gauss_nll(
        &self,
        g: GaussNll,
        z: &Vec<f32>,
        h: &Vec<f32>,
        dz: &mut Vec<f32>,
        dh: &mut Vec<f32>,
    ) -> f32 {
        zoo::gauss_nll(g, z, h, dz, dh)
    }

    fn nll(&self, nll: Nll, x: &Vec<f32>, out: &Vec<f32>, p: NllGrads<'_, Vec<f32>>) -> f32 {
        zoo::nll(nll, x, out, p.params, p.grads, p.d_out)
    }

    fn bernoulli(&self, p: &Vec<f32>, out: &mut Vec<f32>, noise: RowNoise<'_, Vec<f32>>) {
        zoo::bernoulli(p, out, noise);
    }

    fn linear_t_fwd(&self, layer: Linear, params: &Vec<f32>, x: &Vec<f32>, y: &mut Vec<f32>) {
        zoo::linear_t_fwd(layer, params, x, y);
    }

    fn col_sum(&self, x: &Vec<f32>, cols: usize, weight: f32, grads: &mut Vec<f32>, offset: usize) {
        zoo::col_sum(x, cols, weight, &mut grads[offset..]);
    }

    fn sgd(
        &self,
        params: &mut Vec<f32>,
        grads: &Vec<f32>,
        decay_mask: &Vec<f32>,
        lr: f32,
        weight_decay: f32,
    ) {
        zoo::sgd(params, grads, decay_mask, lr, weight_decay);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use microdiff_kernels::time_embedding;

    /// The time embedding is the kernels crate's, bit for bit (the device computes it so).
    #[test]
    fn time_embedding_is_the_kernels_bit_for_bit() {
        let t: Vec<f32> = (0..37).map(|i| (i * 29 % 1000) as f32 + 0.25).collect();
        for dim in [2, 16, 32] {
            let mut y = vec![0.0f32; t.len() * dim];
            Cpu.time_embed(&t, &mut y, dim, 10_000.0);
            for (row, &t) in y.chunks(dim).zip(&t) {
                let mut want = vec![0.0f32; dim];
                time_embedding(t, 10_000.0, &mut want).unwrap();
                assert_eq!(row, &want[..], "t = {t}, dim = {dim}");
            }
        }
    }
}
