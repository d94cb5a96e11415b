//! The CPU backend's linear layers: the forward product with a fused epilogue (bias, then
//! whatever the fused operation applies — activation, residual add, layer norm — to each
//! task's rows while they are in cache), and the backward pass, which computes the input
//! gradient and the weight and bias gradients in one parallel region.
//!
//! A product is split into one row block per thread, so each task packs the weights once; the
//! products go through the shared [`gemm`](super::gemm) wrapper, whose bits do not depend on
//! the split. The weight and bias gradients are split over output features, never over the
//! batch, and every one sums the batch rows in order.

use microdiff_kernels::Activation;

use super::elementwise::{act_grad_mul_in_place, add_bias};
use super::gemm::{Mat, TILE, sgemm};
use super::pool::{block_rows, run_all, tasks, two_mut};
use crate::backend::Linear;
use crate::backend::fastmath::multiversion;

/// A further output of [`forward`] (besides `y`): a buffer of `width` values per row, split
/// into the same row blocks as `y`.
pub(super) type Extra<'a> = Option<(&'a mut [f32], usize)>;

multiversion! {
    /// `g[f] += Σ_r dy[r·o + f0 + f]` for the features `f0..f0 + g.len()`, rows in order (the
    /// same order and arithmetic as a per-feature loop, but reading whole row segments).
    fn column_sums_acc(dy: &[f32], o: usize, b: usize, f0: usize, g: &mut [f32]) {
        const BLOCK: usize = 64;
        for (bi, gb) in g.chunks_mut(BLOCK).enumerate() {
            let c0 = f0 + bi * BLOCK;
            let mut acc = [0.0f32; BLOCK];
            let acc = &mut acc[..gb.len()];
            for r in 0..b {
                let row = &dy[r * o + c0..r * o + c0 + gb.len()];
                for (s, &d) in acc.iter_mut().zip(row) {
                    *s += d;
                }
            }
            for (g, &s) in gb.iter_mut().zip(acc.iter()) {
                *g += s;
            }
        }
    }
}

/// The forward product with its epilogue: `y = x·wᵀ + bias`, then `post(r0, y_block,
/// out2_block, out3_block)` on each task's rows while they are in cache (`out2` and `out3`,
/// if given, are further outputs split into the same row blocks).
pub(super) fn forward(
    layer: Linear,
    params: &[f32],
    x: &[f32],
    y: &mut [f32],
    out2: Extra<'_>,
    out3: Extra<'_>,
    post: impl Fn(usize, &mut [f32], Option<&mut [f32]>, Option<&mut [f32]>) + Sync + Send,
) {
    let Linear { w, bias, b, i, o } = layer;
    // w (o×i) as the k×n operand wᵀ.
    let wt = Mat::new(&params[w..w + o * i], o, i).t();
    let x = Mat::new(&x[..b * i], b, i);
    let bias = bias.map(|bo| &params[bo..bo + o]);
    let rows = block_rows(b, tasks(2 * b * i * o, b.div_ceil(TILE)));
    let blocks: Vec<_> = y[..b * o].chunks_mut(rows * o).collect();
    fn split(out: Extra<'_>, b: usize, rows: usize, blocks: usize) -> Vec<Option<&mut [f32]>> {
        let mut v: Vec<_> = out
            .map(|(a, width)| a[..b * width].chunks_mut(rows * width).map(Some).collect())
            .unwrap_or_default();
        v.resize_with(blocks, || None);
        v
    }
    let n_blocks = blocks.len();
    let (second, third) = (
        split(out2, b, rows, n_blocks),
        split(out3, b, rows, n_blocks),
    );
    let items: Vec<_> = blocks
        .into_iter()
        .zip(second.into_iter().zip(third))
        .enumerate()
        .collect();
    run_all(items, |(j, (yb, (ab, cb)))| {
        let r0 = j * rows;
        sgemm(x.rows(r0, yb.len() / o), wt, 0.0, yb);
        if let Some(bias) = bias {
            add_bias(yb, bias);
        }
        post(r0, yb, ab, cb);
    });
}

/// [`crate::backend::Backend::linear_bwd`] with, if `act` is given, `dx *= act'(z)` applied
/// to each task's rows of `dx` right after its product. One parallel region: task `j` computes
/// row block `j` of `dx` and row block `j` of `dw` (output features) with the same features'
/// bias gradients.
pub(super) fn backward(
    layer: Linear,
    params: &[f32],
    grads: &mut [f32],
    x: &[f32],
    dy: &[f32],
    dx: Option<&mut [f32]>,
    act: Option<(Activation, &[f32])>,
) {
    let Linear { w, bias, b, i, o } = layer;
    let wm = Mat::new(&params[w..w + o * i], o, i);
    let (xm, dym) = (Mat::new(&x[..b * i], b, i), Mat::new(&dy[..b * o], b, o));
    let work = 2 * b * i * o * if dx.is_some() { 2 } else { 1 };
    let t = tasks(work, b.max(o).div_ceil(TILE));
    let (gw, mut gb) = match bias {
        Some(bo) => {
            let (gw, gb) = two_mut(grads, w..w + o * i, bo..bo + o);
            (gw, Some(gb))
        }
        None => (&mut grads[w..w + o * i], None),
    };
    let (dx_rows, dw_rows) = (block_rows(b, t), block_rows(o, t));
    let mut dx_parts: Vec<Option<&mut [f32]>> = dx
        .map(|d| d[..b * i].chunks_mut(dx_rows * i).map(Some).collect())
        .unwrap_or_default();
    let mut dw_parts: Vec<Option<&mut [f32]>> = gw.chunks_mut(dw_rows * i).map(Some).collect();
    let mut gb_parts: Vec<Option<&mut [f32]>> = match gb.take() {
        Some(gb) => gb.chunks_mut(dw_rows).map(Some).collect(),
        None => Vec::new(),
    };
    let n = dx_parts.len().max(dw_parts.len());
    dx_parts.resize_with(n, || None);
    dw_parts.resize_with(n, || None);
    gb_parts.resize_with(n, || None);
    let items: Vec<_> = dx_parts
        .into_iter()
        .zip(dw_parts.into_iter().zip(gb_parts))
        .enumerate()
        .collect();
    run_all(items, |(j, (dxb, (dwb, gbb)))| {
        if let Some(dxb) = dxb {
            let r0 = j * dx_rows;
            // dx (b×i) = dy (b×o) · w (o×i)
            sgemm(dym.rows(r0, dxb.len() / i), wm, 0.0, dxb);
            if let Some((act, z)) = act {
                act_grad_mul_in_place(act, &z[r0 * i..r0 * i + dxb.len()], dxb);
            }
        }
        let f0 = j * dw_rows;
        if let Some(dwb) = dwb {
            // dw (o×i) += dyᵀ (o×b) · x (b×i): each element sums the b rows in order.
            sgemm(dym.t().rows(f0, dwb.len() / i), xm, 1.0, dwb);
        }
        if let Some(gbb) = gbb {
            column_sums_acc(dy, o, b, f0, gbb);
        }
    });
}
