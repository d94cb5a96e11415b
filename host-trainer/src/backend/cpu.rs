//! The CPU backend: the reference every other backend is checked against.
//!
//! Buffers are `Vec<f32>`. Row-parallel work is split with rayon into chunks of whole rows;
//! every output element is computed by one task, and every reduction across rows (weight and
//! bias gradients, layer-norm parameter gradients, the loss) runs over output features with the
//! rows summed in order — so the result does not depend on the number of threads.

use microdiff_kernels::{Activation, time_embedding};
use rayon::prelude::*;

use super::{AdamW, Backend};

/// Rows per rayon task: small enough to spread a batch over the cores, large enough that
/// a task amortises its scheduling.
const ROWS_PER_TASK: usize = 16;

/// The reference CPU backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu;

/// A row-major matrix or the transpose of one, as `(row stride, column stride)`.
#[derive(Clone, Copy)]
struct Strides(usize, usize);

/// `c (m×n) = β·c + A·B` where `A` (m×k) and `B` (k×n) are read from `a` and `b` with the
/// given strides (so a transpose is just swapped strides).
///
/// Parallel over row blocks of `c`; the per-element reduction order inside the GEMM depends
/// only on `k`, so the split does not change the bits.
#[allow(clippy::too_many_arguments)]
fn gemm(
    a: &[f32],
    sa: Strides,
    b: &[f32],
    sb: Strides,
    c: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
    beta: f32,
) {
    if m == 0 || n == 0 {
        return;
    }
    let last = |s: Strides, rows: usize, cols: usize| (rows - 1) * s.0 + (cols.max(1) - 1) * s.1;
    assert!(
        k > 0 && last(sa, m, k) < a.len() && last(sb, k, n) < b.len() && c.len() >= m * n,
        "gemm shapes"
    );
    c[..m * n]
        .par_chunks_mut(ROWS_PER_TASK * n)
        .enumerate()
        .for_each(|(chunk, c_rows)| {
            let r0 = chunk * ROWS_PER_TASK;
            let rows = c_rows.len() / n;
            // SAFETY: rows r0..r0+rows of A start at `a[r0·sa.0]` and, with the strides given,
            // reach at most index `last(sa, m, k)` < a.len(); B stays below `last(sb, k, n)` <
            // b.len() (both asserted above); `c_rows` is rows×n, row-major, and exclusively
            // borrowed by this task.
            unsafe {
                matrixmultiply::sgemm(
                    rows,
                    k,
                    n,
                    1.0,
                    a.as_ptr().add(r0 * sa.0),
                    sa.0 as isize,
                    sa.1 as isize,
                    b.as_ptr(),
                    sb.0 as isize,
                    sb.1 as isize,
                    beta,
                    c_rows.as_mut_ptr(),
                    n as isize,
                    1,
                );
            }
        });
}

/// `c (m×n) = a (m×k) · bᵀ` with `b` n×k row-major (a linear layer's forward pass).
fn gemm_abt(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    gemm(a, Strides(k, 1), b, Strides(1, k), c, m, k, n, 0.0);
}

/// `c (m×n) = a (m×k) · b (k×n)` (the input gradient `dy·W`).
fn gemm_ab(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    gemm(a, Strides(k, 1), b, Strides(n, 1), c, m, k, n, 0.0);
}

/// `c (m×n) += aᵀ · b` with `a` k×m and `b` k×n (the weight gradient `dyᵀ·x`): each row
/// block of `c` sums over all k rows in order.
fn gemm_atb_acc(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    gemm(a, Strides(1, m), b, Strides(n, 1), c, m, k, n, 1.0);
}

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

    fn linear_fwd(
        &self,
        x: &Vec<f32>,
        params: &Vec<f32>,
        w: usize,
        bias: Option<usize>,
        y: &mut Vec<f32>,
        b: usize,
        i: usize,
        o: usize,
    ) {
        gemm_abt(x, &params[w..w + o * i], y, b, i, o);
        if let Some(bo) = bias {
            let bias = &params[bo..bo + o];
            y[..b * o].par_chunks_mut(o).for_each(|row| {
                for (v, &bb) in row.iter_mut().zip(bias) {
                    *v += bb;
                }
            });
        }
    }

    fn linear_bwd(
        &self,
        x: &Vec<f32>,
        params: &Vec<f32>,
        w: usize,
        dy: &Vec<f32>,
        dx: Option<&mut Vec<f32>>,
        grads: &mut Vec<f32>,
        bias: Option<usize>,
        b: usize,
        i: usize,
        o: usize,
    ) {
        if let Some(dx) = dx {
            gemm_ab(dy, &params[w..w + o * i], dx, b, o, i);
        }
        gemm_atb_acc(dy, x, &mut grads[w..w + o * i], o, b, i);
        if let Some(bo) = bias {
            // Sum over the batch per output feature, rows in order.
            grads[bo..bo + o]
                .par_iter_mut()
                .enumerate()
                .for_each(|(f, g)| {
                    let mut s = 0.0f32;
                    for r in 0..b {
                        s += dy[r * o + f];
                    }
                    *g += s;
                });
        }
    }

    fn act_fwd(&self, act: Activation, x: &Vec<f32>, y: &mut Vec<f32>) {
        y.par_chunks_mut(4096)
            .zip(x.par_chunks(4096))
            .for_each(|(y, x)| y.iter_mut().zip(x).for_each(|(y, &x)| *y = act.apply(x)));
    }

    fn act_bwd(&self, act: Activation, x: &Vec<f32>, dy: &Vec<f32>, dx: &mut Vec<f32>) {
        dx.par_chunks_mut(4096)
            .zip(x.par_chunks(4096).zip(dy.par_chunks(4096)))
            .for_each(|(dx, (x, dy))| {
                for ((d, &x), &g) in dx.iter_mut().zip(x).zip(dy) {
                    *d = g * act.grad(x);
                }
            });
    }

    fn layernorm_fwd(
        &self,
        x: &Vec<f32>,
        params: &Vec<f32>,
        gamma: usize,
        beta: usize,
        y: &mut Vec<f32>,
        stats: &mut Vec<f32>,
        b: usize,
        n: usize,
        eps: f32,
    ) {
        let g = &params[gamma..gamma + n];
        let bb = &params[beta..beta + n];
        y[..b * n]
            .par_chunks_mut(n)
            .zip(stats[..2 * b].par_chunks_mut(2))
            .enumerate()
            .for_each(|(r, (y, st))| {
                let x = &x[r * n..(r + 1) * n];
                let mut mean = 0.0f32;
                for &v in x {
                    mean += v;
                }
                mean /= n as f32;
                let mut var = 0.0f32;
                for &v in x {
                    var += (v - mean) * (v - mean);
                }
                var /= n as f32;
                let rstd = 1.0 / (var + eps).sqrt();
                for j in 0..n {
                    y[j] = (x[j] - mean) * rstd * g[j] + bb[j];
                }
                st[0] = mean;
                st[1] = rstd;
            });
    }

    fn layernorm_bwd(
        &self,
        x: &Vec<f32>,
        params: &Vec<f32>,
        gamma: usize,
        beta: usize,
        stats: &Vec<f32>,
        dy: &Vec<f32>,
        dx: &mut Vec<f32>,
        grads: &mut Vec<f32>,
        b: usize,
        n: usize,
    ) {
        let g = &params[gamma..gamma + n];
        dx[..b * n]
            .par_chunks_mut(n)
            .enumerate()
            .for_each(|(r, dx)| {
                let x = &x[r * n..(r + 1) * n];
                let dy = &dy[r * n..(r + 1) * n];
                let (mean, rstd) = (stats[2 * r], stats[2 * r + 1]);
                let mut m1 = 0.0f32;
                let mut m2 = 0.0f32;
                for j in 0..n {
                    let xhat = (x[j] - mean) * rstd;
                    let dxhat = dy[j] * g[j];
                    m1 += dxhat;
                    m2 += dxhat * xhat;
                }
                m1 /= n as f32;
                m2 /= n as f32;
                for j in 0..n {
                    let xhat = (x[j] - mean) * rstd;
                    dx[j] += rstd * (dy[j] * g[j] - m1 - xhat * m2);
                }
            });
        // Parameter gradients: per feature, rows summed in order.
        let (gg, gb) = {
            let (lo, hi) = grads.split_at_mut(beta.max(gamma));
            if gamma < beta {
                (&mut lo[gamma..gamma + n], &mut hi[..n])
            } else {
                (&mut hi[..n], &mut lo[beta..beta + n])
            }
        };
        gg.par_iter_mut()
            .zip(gb.par_iter_mut())
            .enumerate()
            .for_each(|(j, (dg, db))| {
                let (mut sg, mut sb) = (0.0f32, 0.0f32);
                for r in 0..b {
                    let (mean, rstd) = (stats[2 * r], stats[2 * r + 1]);
                    let d = dy[r * n + j];
                    sg += d * (x[r * n + j] - mean) * rstd;
                    sb += d;
                }
                *dg += sg;
                *db += sb;
            });
    }

    fn time_embed(&self, t: &Vec<f32>, y: &mut Vec<f32>, dim: usize, max_period: f32) {
        y.par_chunks_mut(dim)
            .zip(t.par_iter())
            .for_each(|(row, &t)| {
                // Shapes are fixed by the model, so this cannot fail; a zero row would show up
                // in training as an untrainable time embedding, never silently in a blob.
                let _ = time_embedding(t, max_period, row);
            });
    }

    fn embed_add(
        &self,
        params: &Vec<f32>,
        table: usize,
        classes: &Vec<f32>,
        y: &mut Vec<f32>,
        n: usize,
    ) {
        y.par_chunks_mut(n)
            .zip(classes.par_iter())
            .for_each(|(row, &c)| {
                let at = table + c as usize * n;
                for (v, &e) in row.iter_mut().zip(&params[at..at + n]) {
                    *v += e;
                }
            });
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
        grads[table..table + rows * n]
            .par_chunks_mut(n)
            .enumerate()
            .for_each(|(class, g)| {
                for (r, &c) in classes.iter().enumerate() {
                    if c as usize == class {
                        for (gj, &d) in g.iter_mut().zip(&dy[r * n..(r + 1) * n]) {
                            *gj += d;
                        }
                    }
                }
            });
    }

    fn add_assign(&self, y: &mut Vec<f32>, x: &Vec<f32>) {
        y.par_chunks_mut(4096)
            .zip(x.par_chunks(4096))
            .for_each(|(y, x)| y.iter_mut().zip(x).for_each(|(y, &x)| *y += x));
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
        xt.par_chunks_mut(n)
            .zip(target.par_chunks_mut(n))
            .enumerate()
            .for_each(|(r, (xt, tg))| {
                let c = &coef[4 * r..4 * r + 4];
                for j in 0..n {
                    let (x, e) = (x0[r * n + j], eps[r * n + j]);
                    xt[j] = c[0] * x + c[1] * e;
                    tg[j] = c[2] * x + c[3] * e;
                }
            });
    }

    fn mse(&self, pred: &Vec<f32>, target: &Vec<f32>, d: &mut Vec<f32>) -> f32 {
        let len = pred.len() as f32;
        d.par_chunks_mut(4096)
            .zip(pred.par_chunks(4096).zip(target.par_chunks(4096)))
            .for_each(|(d, (p, t))| {
                for ((d, &p), &t) in d.iter_mut().zip(p).zip(t) {
                    *d = 2.0 * (p - t) / len;
                }
            });
        // Sum in fixed chunks, then the chunk sums in order: thread-count independent.
        let parts: Vec<f64> = pred
            .par_chunks(4096)
            .zip(target.par_chunks(4096))
            .map(|(p, t)| {
                p.iter()
                    .zip(t)
                    .map(|(&p, &t)| ((p - t) as f64).powi(2))
                    .sum::<f64>()
            })
            .collect();
        (parts.iter().sum::<f64>() / len as f64) as f32
    }

    fn norm(&self, g: &Vec<f32>) -> f32 {
        let parts: Vec<f64> = g
            .par_chunks(4096)
            .map(|c| c.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>())
            .collect();
        parts.iter().sum::<f64>().sqrt() as f32
    }

    fn scale(&self, g: &mut Vec<f32>, s: f32) {
        g.par_iter_mut().for_each(|v| *v *= s);
    }

    fn adamw(
        &self,
        params: &mut Vec<f32>,
        grads: &Vec<f32>,
        m: &mut Vec<f32>,
        v: &mut Vec<f32>,
        decay_mask: &Vec<f32>,
        hp: &AdamW,
        step: u64,
        lr: f32,
    ) {
        let bc1 = 1.0 - hp.beta1.powi(step as i32);
        let bc2 = 1.0 - hp.beta2.powi(step as i32);
        params
            .par_iter_mut()
            .zip(m.par_iter_mut().zip(v.par_iter_mut()))
            .zip(grads.par_iter().zip(decay_mask.par_iter()))
            .for_each(|((p, (m, v)), (&g, &mask))| {
                *m = hp.beta1 * *m + (1.0 - hp.beta1) * g;
                *v = hp.beta2 * *v + (1.0 - hp.beta2) * g * g;
                let mhat = *m / bc1;
                let vhat = *v / bc2;
                *p -= lr * (mhat / (vhat.sqrt() + hp.eps) + hp.weight_decay * mask * *p);
            });
    }

    fn ema(&self, ema: &mut Vec<f32>, params: &Vec<f32>, decay: f32) {
        ema.par_iter_mut()
            .zip(params.par_iter())
            .for_each(|(e, &p)| *e = decay * *e + (1.0 - decay) * p);
    }
}
