//! The CPU backend's element-wise operations and the whole-buffer reductions over them:
//! activations and their derivatives, adds and scaling, the noising of a batch, the time and
//! class embeddings, the MSE loss and the gradient norm, and filling with noise.
//!
//! Element-wise loops are compiled for AVX-512/AVX2 as well and picked at run time
//! ([`multiversion`], same arithmetic). SiLU and its derivative use the vectorisable
//! [`fastmath`] exponential, which differs from the device runtime's kernels in the last bits.
//! The reductions sum fixed chunks and then the chunk sums in order, in f64, whatever the
//! thread count.

use microdiff_kernels::{Activation, time_embedding};
use microdiff_runtime::noise::NoiseStream;

use super::pool::{ELEM_COST, REDUCE_CHUNK, block_rows, chunked_sum, map_chunks, run_all, tasks};
use crate::backend::fastmath::{self, multiversion};

multiversion! {
    /// `y[r] += bias` for each row of `y` (rows of `bias.len()`).
    pub(super) fn add_bias(y: &mut [f32], bias: &[f32]) {
        for row in y.chunks_exact_mut(bias.len()) {
            for (v, &bb) in row.iter_mut().zip(bias) {
                *v += bb;
            }
        }
    }
}

multiversion! {
    /// `y += x` element-wise (same length).
    pub(super) fn add_into(y: &mut [f32], x: &[f32]) {
        for (y, &x) in y.iter_mut().zip(x) {
            *y += x;
        }
    }
}

multiversion! {
    /// `y = act(x)` element-wise, SiLU through [`fastmath`].
    pub(super) fn act_apply(act: Activation, x: &[f32], y: &mut [f32]) {
        match act {
            Activation::Silu => {
                for (y, &x) in y.iter_mut().zip(x) {
                    *y = fastmath::silu(x);
                }
            }
            _ => {
                for (y, &x) in y.iter_mut().zip(x) {
                    *y = act.apply(x);
                }
            }
        }
    }
}

multiversion! {
    /// `d = g·act'(x)` element-wise, with `g` read from `d` itself (in place).
    pub(super) fn act_grad_mul_in_place(act: Activation, x: &[f32], d: &mut [f32]) {
        match act {
            Activation::Silu => {
                for (d, &x) in d.iter_mut().zip(x) {
                    *d *= fastmath::silu_grad(x);
                }
            }
            _ => {
                for (d, &x) in d.iter_mut().zip(x) {
                    *d *= act.grad(x);
                }
            }
        }
    }
}

multiversion! {
    /// `Σ (a[j] − b[j])²` (or `Σ a[j]²` when `b` is empty) in f64, in a fixed order that
    /// vectorises: term `j` goes to partial sum `j mod 8`, and the 8 partial sums are added
    /// pairwise. A plain running sum is a chain of dependent f64 additions, 4 cycles each.
    fn sum_sq_f64(a: &[f32], b: &[f32], out: &mut f64) {
        const L: usize = 8;
        let mut acc = [0.0f64; L];
        let sq = |v: f32| (v as f64) * (v as f64);
        let full = a.len() - a.len() % L;
        if b.is_empty() {
            for c in a[..full].chunks_exact(L) {
                for l in 0..L {
                    acc[l] += sq(c[l]);
                }
            }
            for (l, &v) in a[full..].iter().enumerate() {
                acc[l] += sq(v);
            }
        } else {
            let b = &b[..a.len()];
            for (c, d) in a[..full].chunks_exact(L).zip(b[..full].chunks_exact(L)) {
                for l in 0..L {
                    acc[l] += sq(c[l] - d[l]);
                }
            }
            for (l, (&v, &w)) in a[full..].iter().zip(&b[full..]).enumerate() {
                acc[l] += sq(v - w);
            }
        }
        let mut width = L / 2;
        while width > 0 {
            for l in 0..width {
                acc[l] += acc[l + width];
            }
            width /= 2;
        }
        *out = acc[0];
    }
}

/// [`crate::backend::Backend::act_fwd`].
pub(super) fn act_fwd(act: Activation, x: &[f32], y: &mut [f32]) {
    map_chunks(y, 4 * ELEM_COST, |j, y| {
        act_apply(act, &x[j * REDUCE_CHUNK..j * REDUCE_CHUNK + y.len()], y);
    });
}

/// [`crate::backend::Backend::act_bwd`].
pub(super) fn act_bwd(act: Activation, x: &[f32], dy: &[f32], dx: &mut [f32]) {
    map_chunks(dx, 4 * ELEM_COST, |j, dx| {
        let at = j * REDUCE_CHUNK..j * REDUCE_CHUNK + dx.len();
        dx.copy_from_slice(&dy[at.clone()]);
        act_grad_mul_in_place(act, &x[at], dx);
    });
}

/// [`crate::backend::Backend::add_assign`].
pub(super) fn add_assign(y: &mut [f32], x: &[f32]) {
    map_chunks(y, ELEM_COST, |j, y| {
        add_into(y, &x[j * REDUCE_CHUNK..j * REDUCE_CHUNK + y.len()]);
    });
}

/// [`crate::backend::Backend::scale`].
pub(super) fn scale(g: &mut [f32], s: f32) {
    map_chunks(g, ELEM_COST, |_, g| g.iter_mut().for_each(|v| *v *= s));
}

/// [`crate::backend::Backend::time_embed`].
pub(super) fn time_embed(t: &[f32], y: &mut [f32], dim: usize, max_period: f32) {
    let rows = t.len();
    let half = dim / 2;
    if dim == 0 || !dim.is_multiple_of(2) || !(max_period.is_finite() && max_period > 0.0) {
        // Shapes are fixed by the model, so this cannot happen; the kernels' function
        // leaves such rows alone too, and a zero row would show up in training as an
        // untrainable time embedding, never silently in a blob.
        for (row, &t) in y.chunks_mut(dim.max(1)).zip(t) {
            let _ = time_embedding(t, max_period, row);
        }
        return;
    }
    // `microdiff_kernels::time_embedding` row by row, with its frequencies (the same
    // `expf` of the same arguments) computed once instead of once per row.
    let neg_log = -libm::logf(max_period);
    let half_f = half as f32;
    let freqs: Vec<f32> = (0..half)
        .map(|i| libm::expf((neg_log * (i as f32)) / half_f))
        .collect();
    // sin and cos through libm, scalar: some 10 ns per element, worth ~250 flops.
    let blk = block_rows(rows, tasks(rows * dim * 250, rows));
    let blocks: Vec<_> = y[..rows * dim].chunks_mut(blk * dim).enumerate().collect();
    run_all(blocks, |(j, yb)| {
        for (k, row) in yb.chunks_mut(dim).enumerate() {
            let t = t[j * blk + k];
            let (sines, cosines) = row.split_at_mut(half);
            for ((s, c), &f) in sines.iter_mut().zip(cosines).zip(&freqs) {
                let a = t * f;
                *s = libm::sinf(a);
                *c = libm::cosf(a);
            }
        }
    });
}

/// [`crate::backend::Backend::embed_add`].
pub(super) fn embed_add(params: &[f32], table: usize, classes: &[f32], y: &mut [f32], n: usize) {
    // A gather and an add: cheap enough for one thread at the sizes trained here.
    for (row, &c) in y.chunks_mut(n).zip(classes) {
        let at = table + c as usize * n;
        for (v, &e) in row.iter_mut().zip(&params[at..at + n]) {
            *v += e;
        }
    }
}

/// [`crate::backend::Backend::embed_add_bwd`], with `g` the gradient of the table (`rows` rows
/// of `n`).
pub(super) fn embed_add_bwd(classes: &[f32], dy: &[f32], g: &mut [f32], rows: usize, n: usize) {
    // Rows in order into each class row: the same sums as a per-class pass.
    for (r, &c) in classes.iter().enumerate() {
        let c = c as usize;
        if c < rows {
            for (gj, &d) in g[c * n..(c + 1) * n]
                .iter_mut()
                .zip(&dy[r * n..(r + 1) * n])
            {
                *gj += d;
            }
        }
    }
}

/// [`crate::backend::Backend::noise_and_target`].
pub(super) fn noise_and_target(
    x0: &[f32],
    eps: &[f32],
    coef: &[f32],
    xt: &mut [f32],
    target: &mut [f32],
    n: usize,
) {
    // Small (b×d) and memory-bound: one thread.
    for (r, (xt, tg)) in xt.chunks_mut(n).zip(target.chunks_mut(n)).enumerate() {
        let c = &coef[4 * r..4 * r + 4];
        for j in 0..n {
            let (x, e) = (x0[r * n + j], eps[r * n + j]);
            xt[j] = c[0] * x + c[1] * e;
            tg[j] = c[2] * x + c[3] * e;
        }
    }
}

/// [`crate::backend::Backend::mse`].
pub(super) fn mse(pred: &[f32], target: &[f32], d: &mut [f32]) -> f32 {
    let len = pred.len() as f32;
    map_chunks(d, ELEM_COST, |j, d| {
        let at = j * REDUCE_CHUNK;
        for ((d, &p), &t) in d.iter_mut().zip(&pred[at..]).zip(&target[at..]) {
            *d = 2.0 * (p - t) / len;
        }
    });
    // Sum in fixed chunks, then the chunk sums in order: thread-count independent.
    let chunks = pred.len().div_ceil(REDUCE_CHUNK);
    let sum = chunked_sum(chunks, pred.len() * ELEM_COST, |j| {
        let at = j * REDUCE_CHUNK..((j + 1) * REDUCE_CHUNK).min(pred.len());
        let mut s = 0.0;
        sum_sq_f64(&pred[at.clone()], &target[at], &mut s);
        s
    });
    (sum / len as f64) as f32
}

/// [`crate::backend::Backend::norm`].
pub(super) fn norm(g: &[f32]) -> f32 {
    let chunks = g.len().div_ceil(REDUCE_CHUNK);
    let sum = chunked_sum(chunks, g.len() * ELEM_COST, |j| {
        let mut s = 0.0;
        sum_sq_f64(
            &g[j * REDUCE_CHUNK..((j + 1) * REDUCE_CHUNK).min(g.len())],
            &[],
            &mut s,
        );
        s
    });
    sum.sqrt() as f32
}

/// [`crate::backend::Backend::fill_normal`].
pub(super) fn fill_normal(buf: &mut [f32], noise: &NoiseStream, draw: u32) {
    // Philox and Box–Muller: some 100 flops per element.
    map_chunks(buf, 100, |j, c| {
        for (k, v) in c.iter_mut().enumerate() {
            *v = noise.normal(draw, (j * REDUCE_CHUNK + k) as u32);
        }
    });
}
