//! The CPU backend's layer norm: the forward pass by blocks of rows, and the backward pass —
//! the input gradient by blocks of rows and the γ/β gradients by blocks of features — in one
//! parallel region. The row kernels are also the epilogue of the fused
//! `linear_residual_ln_fwd` (see `linear`).
//!
//! A row's sums use 16 partial sums in a fixed order ([`lane_sum`]), which differs from the
//! device runtime's kernels in the last bits; the γ/β gradients sum the rows in order per
//! feature. Neither depends on the thread count.

use rayon::prelude::*;

use super::pool::{ELEM_COST, block_rows, run_all, tasks, two_mut};
use crate::backend::LayerNorm;
use crate::backend::fastmath::multiversion;

/// Lanes of [`lane_sum`]: one AVX-512 register of f32.
const LANES: usize = 16;

/// Features per task of the γ/β gradients.
const FB: usize = 64;

/// `Σ f(j)` for `j` in `0..n` in a fixed order that vectorises: element `j` goes to partial
/// sum `j mod 16` (in order of `j`), and the 16 partial sums are added pairwise (8 + 8, 4 + 4,
/// 2 + 2, 1 + 1). A plain running sum would be one long chain of dependent additions.
#[inline(always)]
fn lane_sum(n: usize, f: impl Fn(usize) -> f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let full = n - n % LANES;
    for base in (0..full).step_by(LANES) {
        for (l, a) in acc.iter_mut().enumerate() {
            *a += f(base + l);
        }
    }
    for (l, j) in (full..n).enumerate() {
        acc[l] += f(j);
    }
    let mut width = LANES / 2;
    while width > 0 {
        for l in 0..width {
            acc[l] += acc[l + width];
        }
        width /= 2;
    }
    acc[0]
}

multiversion! {
    /// Layer norm of the rows of `x` into `y`, with each row's mean and rstd into `stats`.
    pub(super) fn layernorm_rows(x: &[f32], g: &[f32], bb: &[f32], y: &mut [f32], stats: &mut [f32], eps: f32) {
        let n = g.len();
        for ((x, y), st) in x.chunks_exact(n).zip(y.chunks_exact_mut(n)).zip(stats.chunks_exact_mut(2)) {
            let mean = lane_sum(n, |j| x[j]) / n as f32;
            let var = lane_sum(n, |j| (x[j] - mean) * (x[j] - mean)) / n as f32;
            let rstd = 1.0 / (var + eps).sqrt();
            for j in 0..n {
                y[j] = (x[j] - mean) * rstd * g[j] + bb[j];
            }
            st[0] = mean;
            st[1] = rstd;
        }
    }
}

multiversion! {
    /// Input gradient of layer norm for the rows of `x`: `dx += rstd·(dx̂ − mean(dx̂) −
    /// x̂·mean(dx̂·x̂))` with `dx̂ = dy·γ`.
    fn layernorm_bwd_rows(x: &[f32], g: &[f32], stats: &[f32], dy: &[f32], dx: &mut [f32]) {
        let n = g.len();
        for (((x, dy), dx), st) in x
            .chunks_exact(n)
            .zip(dy.chunks_exact(n))
            .zip(dx.chunks_exact_mut(n))
            .zip(stats.chunks_exact(2))
        {
            let (mean, rstd) = (st[0], st[1]);
            let m1 = lane_sum(n, |j| dy[j] * g[j]) / n as f32;
            let m2 = lane_sum(n, |j| dy[j] * g[j] * ((x[j] - mean) * rstd)) / n as f32;
            for j in 0..n {
                let xhat = (x[j] - mean) * rstd;
                dx[j] += rstd * (dy[j] * g[j] - m1 - xhat * m2);
            }
        }
    }
}

multiversion! {
    /// Layer-norm parameter gradients of the features `f0..f0 + dg.len()` (at most 64):
    /// `dγ += Σ_rows dy·x̂`, `dβ += Σ_rows dy`, rows in order per feature.
    fn layernorm_bwd_features(x: &[f32], stats: &[f32], dy: &[f32], n: usize, f0: usize, dg: &mut [f32], db: &mut [f32]) {
        let len = dg.len().min(FB);
        let (mut sg, mut sb) = ([0.0f32; FB], [0.0f32; FB]);
        for (r, st) in stats.chunks_exact(2).enumerate() {
            let (mean, rstd) = (st[0], st[1]);
            let xr = &x[r * n + f0..r * n + f0 + len];
            let dr = &dy[r * n + f0..r * n + f0 + len];
            for j in 0..len {
                sg[j] += dr[j] * (xr[j] - mean) * rstd;
                sb[j] += dr[j];
            }
        }
        for j in 0..len {
            dg[j] += sg[j];
            db[j] += sb[j];
        }
    }
}

/// [`crate::backend::Backend::layernorm_fwd`].
pub(super) fn forward(ln: LayerNorm, params: &[f32], x: &[f32], y: &mut [f32], stats: &mut [f32]) {
    let LayerNorm {
        gamma,
        beta,
        eps,
        b,
        n,
    } = ln;
    let g = &params[gamma..gamma + n];
    let bb = &params[beta..beta + n];
    let rows = block_rows(b, tasks(b * n * ELEM_COST, b));
    let blocks: Vec<_> = y[..b * n]
        .chunks_mut(rows * n)
        .zip(stats[..2 * b].chunks_mut(2 * rows))
        .enumerate()
        .collect();
    run_all(blocks, |(blk, (yb, sb))| {
        let at = blk * rows * n..blk * rows * n + yb.len();
        layernorm_rows(&x[at], g, bb, yb, sb, eps);
    });
}

/// [`crate::backend::Backend::layernorm_bwd`], with `params` and `grads` the parameter and
/// gradient buffers.
pub(super) fn backward(
    ln: LayerNorm,
    params: &[f32],
    grads: &mut [f32],
    x: &[f32],
    stats: &[f32],
    dy: &[f32],
    dx: &mut [f32],
) {
    let LayerNorm {
        gamma, beta, b, n, ..
    } = ln;
    let g = &params[gamma..gamma + n];
    let (gg, gb) = two_mut(grads, gamma..gamma + n, beta..beta + n);
    let (x, dy, stats) = (&x[..b * n], &dy[..b * n], &stats[..2 * b]);
    let t = tasks(2 * b * n * ELEM_COST, b);
    let rows = block_rows(b, t);
    // Input gradient by row blocks.
    let row_task = |blk: usize, dxb: &mut [f32]| {
        let at = blk * rows * n..blk * rows * n + dxb.len();
        let st = 2 * blk * rows..2 * blk * rows + 2 * (dxb.len() / n);
        layernorm_bwd_rows(&x[at.clone()], g, &stats[st], &dy[at], dxb);
    };
    // Parameter gradients by feature blocks of FB, rows summed in order per feature.
    let feature_task = |k: usize, dg: &mut [f32], db: &mut [f32]| {
        layernorm_bwd_features(x, stats, dy, n, k * FB, dg, db);
    };
    if t <= 1 {
        row_task(0, &mut dx[..b * n]);
        for (k, (dg, db)) in gg.chunks_mut(FB).zip(gb.chunks_mut(FB)).enumerate() {
            feature_task(k, dg, db);
        }
    } else {
        rayon::join(
            || {
                dx[..b * n]
                    .par_chunks_mut(rows * n)
                    .enumerate()
                    .for_each(|(blk, dxb)| row_task(blk, dxb))
            },
            || {
                gg.par_chunks_mut(FB)
                    .zip(gb.par_chunks_mut(FB))
                    .enumerate()
                    .for_each(|(k, (dg, db))| feature_task(k, dg, db))
            },
        );
    }
}
