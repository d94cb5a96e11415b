//! The CPU backend: the reference every other backend is checked against.
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
//! zeroing of the gradients are one pass. Work below `SERIAL_WORK` flops runs on the calling
//! thread, because waking a sleeping worker costs more than such an operation. Element-wise
//! loops are compiled for AVX-512/AVX2 as well and picked at run time (same arithmetic).
//! Callers get the most from the backend by calling it from inside the rayon pool (e.g. in
//! `rayon::scope`), so that the caller is one of the workers.
//!
//! Arithmetic that differs from the device runtime's kernels in the last bits: SiLU and its
//! derivative use the vectorisable `fastmath` exponential, and the layer norm's row sums use 16
//! partial sums in a fixed order. Neither depends on the thread count.

use microdiff_kernels::{Activation, time_embedding};
use microdiff_runtime::noise::NoiseStream;
use rayon::prelude::*;

use super::fastmath::{self, multiversion};
use super::{AdamW, Backend, LnArgs};

/// Rows of matrixmultiply's f32 AVX-512 micro-kernel tile: row blocks that are multiples of
/// it avoid the kernel's masked edge path (a speed matter only: results are the same).
const TILE: usize = 16;

/// Operations estimated below this many flops run on the calling thread. Measured on the
/// benchmark machine (2-vCPU VM, `docs/benchmark.md`) with the workers kept polling by
/// [`hot_pool`]: thresholds from 5·10⁴ to 10⁶ gave the same step times within noise (toy
/// 1.34–1.48 ms, digits 7.96–8.34 ms); 10⁷ and more lost up to a third on the toy network.
/// Without [`hot_pool`] an idle worker sleeps and waking it costs tens of µs, so then splitting
/// only pays for much larger operations. Unit tests lower the threshold so that small shapes
/// take every parallel path (the bits are the same either way, which is what they check).
const SERIAL_WORK: usize = if cfg!(test) { 1 << 12 } else { 1 << 18 };

/// Element-wise work in flop-equivalents per element for the [`SERIAL_WORK`] test (memory
/// bound loops are worth about this many flops each).
const ELEM_COST: usize = 8;

/// Fixed chunk of the chunked reductions (loss, norm): the partial sums are taken over these
/// chunks and then added in chunk order, whatever the thread count.
const REDUCE_CHUNK: usize = 4096;

/// The reference CPU backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu;

/// How long a [`hot_pool`] worker spins without finding work before it starts napping, and
/// the nap. A training step's serial stretches between parallel operations are mostly shorter
/// than the spin, so on an idle machine the workers never nap; when another process competes
/// for the cores, the naps hand them back instead of spinning against the training thread
/// (measured with one competing busy process: without naps the digits step took 2–3× longer
/// than without `hot_pool` at all).
const POLL_SPIN: std::time::Duration = std::time::Duration::from_micros(200);
const POLL_NAP: std::time::Duration = std::time::Duration::from_micros(100);

/// Runs `f` on a worker of rayon's current pool while every other worker of the pool polls
/// for work ([`rayon::yield_now`]) instead of going to sleep between the backend's parallel
/// operations. A training step is a few dozen short parallel operations with serial work in
/// between; an idle rayon worker falls asleep within microseconds and waking it costs tens of
/// microseconds on a VM, which ate the whole gain of a second thread on the toy network. The
/// other workers busy-wait while `f` runs (as OpenMP's active wait policy does), so use this
/// around a training loop, not around a whole program. Results are the same with or without.
pub fn hot_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    use std::sync::atomic::{AtomicBool, Ordering};
    let done = AtomicBool::new(false);
    rayon::scope(|s| {
        let caller = rayon::current_thread_index();
        // Set on the way out, also when `f` panics, so the pollers always stop.
        struct Done<'a>(&'a AtomicBool);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Release);
            }
        }
        let done = &done;
        s.spawn_broadcast(move |_, ctx| {
            // The caller's own copy must not poll: it would block the caller's thread.
            if Some(ctx.index()) == caller {
                return;
            }
            let mut idle_since = std::time::Instant::now();
            while !done.load(Ordering::Acquire) {
                if rayon::yield_now() == Some(rayon::Yield::Executed) {
                    idle_since = std::time::Instant::now();
                } else if idle_since.elapsed() < POLL_SPIN {
                    std::hint::spin_loop();
                } else {
                    // No work for a while: the machine may be shared, so give the core away.
                    std::thread::sleep(POLL_NAP);
                }
            }
        });
        let _done = Done(done);
        f()
    })
}

/// A row-major matrix or the transpose of one, as `(row stride, column stride)`.
#[derive(Clone, Copy)]
struct Strides(usize, usize);

/// How many parallel tasks an operation of `work` flops over `units` splittable units gets.
fn tasks(work: usize, units: usize) -> usize {
    if work < SERIAL_WORK {
        1
    } else {
        rayon::current_num_threads().clamp(1, units.max(1))
    }
}

/// Rows per block when `rows` rows are split into `tasks` blocks, rounded up to [`TILE`].
fn block_rows(rows: usize, tasks: usize) -> usize {
    if tasks <= 1 {
        rows.max(1)
    } else {
        rows.div_ceil(tasks).next_multiple_of(TILE).min(rows).max(1)
    }
}

/// Runs `f(task)` for every item, in parallel when there is more than one.
fn run_all<T: Send>(items: Vec<T>, f: impl Fn(T) + Sync + Send) {
    if items.len() <= 1 {
        items.into_iter().for_each(f);
    } else {
        items.into_par_iter().for_each(f);
    }
}

/// `c (rows×n) = β·c + A[r0..r0 + rows]·B`: one task's share of a product, on this thread.
/// `A` (rows of k) and `B` (k×n) are read from `a` and `b` with the given strides, so a
/// transpose is just swapped strides. matrixmultiply's per-element reduction order depends
/// only on `k` (blocks of 256 in order, then the sum into `c`), not on where the element lies,
/// so splitting a product into row blocks does not change its bits.
#[allow(clippy::too_many_arguments)]
fn gemm_rows(
    a: &[f32],
    sa: Strides,
    r0: usize,
    b: &[f32],
    sb: Strides,
    c: &mut [f32],
    k: usize,
    n: usize,
    beta: f32,
) {
    if n == 0 || c.is_empty() {
        return;
    }
    let rows = c.len() / n;
    let last = |s: Strides, rows: usize, cols: usize| (rows - 1) * s.0 + (cols.max(1) - 1) * s.1;
    assert!(
        k > 0
            && c.len() == rows * n
            && r0 * sa.0 + last(sa, rows, k) < a.len()
            && last(sb, k, n) < b.len(),
        "gemm shapes"
    );
    // SAFETY: A's rows r0..r0+rows start at `a[r0·sa.0]` and, with the strides given, reach at
    // most index `r0·sa.0 + last(sa, rows, k)` < a.len(); B stays below `last(sb, k, n)` <
    // b.len() (both asserted above); `c` is rows×n, row-major, and exclusively borrowed here.
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
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

multiversion! {
    /// `y[r] += bias` for each row of `y` (rows of `bias.len()`).
    fn add_bias(y: &mut [f32], bias: &[f32]) {
        for row in y.chunks_exact_mut(bias.len()) {
            for (v, &bb) in row.iter_mut().zip(bias) {
                *v += bb;
            }
        }
    }
}

multiversion! {
    /// `y += x` element-wise (same length).
    fn add_into(y: &mut [f32], x: &[f32]) {
        for (y, &x) in y.iter_mut().zip(x) {
            *y += x;
        }
    }
}

multiversion! {
    /// `y = act(x)` element-wise, SiLU through [`fastmath`].
    fn act_apply(act: Activation, x: &[f32], y: &mut [f32]) {
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
    fn act_grad_mul_in_place(act: Activation, x: &[f32], d: &mut [f32]) {
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

/// Two disjoint ranges of one buffer, both mutable (panics if they overlap: an internal
/// layout error, never input-dependent).
fn two_mut(
    buf: &mut [f32],
    a: std::ops::Range<usize>,
    b: std::ops::Range<usize>,
) -> (&mut [f32], &mut [f32]) {
    if a.start <= b.start {
        assert!(a.end <= b.start, "overlapping ranges");
        let (lo, hi) = buf.split_at_mut(b.start);
        (&mut lo[a], &mut hi[..b.end - b.start])
    } else {
        let (y, x) = two_mut(buf, b, a);
        (x, y)
    }
}

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

/// Lanes of [`lane_sum`]: one AVX-512 register of f32.
const LANES: usize = 16;

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

multiversion! {
    /// Layer norm of the rows of `x` into `y`, with each row's mean and rstd into `stats`.
    fn layernorm_rows(x: &[f32], g: &[f32], bb: &[f32], y: &mut [f32], stats: &mut [f32], eps: f32) {
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
        const FB: usize = 64;
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

/// AdamW's per-element rule for one step (Loshchilov & Hutter 2019, with bias correction).
/// The bias corrections are applied as multiplications by `1/(1 − βᵗ)`, computed once per
/// step: the per-element divisions were the update's bottleneck (a vector division costs as
/// much as 10–20 multiplications), and the result differs from dividing by at most an ulp of
/// `m̂` and `v̂`.
struct AdamRule {
    hp: AdamW,
    lr: f32,
    inv_bc1: f32,
    inv_bc2: f32,
}

impl AdamRule {
    fn new(hp: &AdamW, step: u64, lr: f32) -> Self {
        AdamRule {
            hp: *hp,
            lr,
            inv_bc1: 1.0 / (1.0 - hp.beta1.powi(step as i32)),
            inv_bc2: 1.0 / (1.0 - hp.beta2.powi(step as i32)),
        }
    }

    /// Updates `p`, `m`, `v` from the gradients `g` (all the same length).
    #[inline(always)]
    fn apply(&self, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], mask: &[f32]) {
        let hp = &self.hp;
        let n = p.len();
        let (g, m, v) = (&g[..n], &mut m[..n], &mut v[..n]);
        let step = |p: &mut f32, g: f32, m: &mut f32, v: &mut f32, decay: f32| {
            *m = hp.beta1 * *m + (1.0 - hp.beta1) * g;
            *v = hp.beta2 * *v + (1.0 - hp.beta2) * g * g;
            let mhat = *m * self.inv_bc1;
            let vhat = *v * self.inv_bc2;
            *p -= self.lr * (mhat / (vhat.sqrt() + hp.eps) + decay * *p);
        };
        if hp.weight_decay == 0.0 {
            // The mask holds 0 or 1, so λ·mask is +0 either way: it need not be read.
            for j in 0..n {
                step(&mut p[j], g[j], &mut m[j], &mut v[j], 0.0);
            }
        } else {
            let mask = &mask[..n];
            for j in 0..n {
                step(
                    &mut p[j],
                    g[j],
                    &mut m[j],
                    &mut v[j],
                    hp.weight_decay * mask[j],
                );
            }
        }
    }
}

multiversion! {
    /// One chunk of [`Backend::adamw`].
    fn adam_chunk(rule: &AdamRule, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], mask: &[f32]) {
        rule.apply(p, g, m, v, mask);
    }
}

multiversion! {
    /// One chunk of [`Backend::update`]: the arithmetic of `scale`, `adamw` and `ema` in turn,
    /// then the gradients zeroed.
    fn update_chunk(rule: &AdamRule, clip: f32, ema_decay: f32, p: &mut [f32], g: &mut [f32], m: &mut [f32], v: &mut [f32], mask: &[f32], e: &mut [f32]) {
        if clip != 1.0 {
            g.iter_mut().for_each(|g| *g *= clip);
        }
        rule.apply(p, g, m, v, mask);
        ema_chunk(e, p, ema_decay);
        g.fill(0.0);
    }
}

/// `e = d·e + (1 − d)·p` element-wise.
#[inline(always)]
fn ema_chunk(e: &mut [f32], p: &[f32], d: f32) {
    for (e, &p) in e.iter_mut().zip(p) {
        *e = d * *e + (1.0 - d) * p;
    }
}

impl Cpu {
    /// The forward product with its epilogue: `y = x·wᵀ + bias`, then `post(r0, y_block,
    /// out2_block, out3_block)` on each task's rows while they are in cache (`out2` and `out3`,
    /// if given, are further outputs of `width` values per row, split into the same row blocks).
    #[allow(clippy::too_many_arguments)]
    fn linear_fwd_with(
        &self,
        x: &[f32],
        params: &[f32],
        w: usize,
        bias: Option<usize>,
        y: &mut [f32],
        out2: Option<(&mut [f32], usize)>,
        out3: Option<(&mut [f32], usize)>,
        b: usize,
        i: usize,
        o: usize,
        post: impl Fn(usize, &mut [f32], Option<&mut [f32]>, Option<&mut [f32]>) + Sync + Send,
    ) {
        let wm = &params[w..w + o * i];
        let bias = bias.map(|bo| &params[bo..bo + o]);
        let rows = block_rows(b, tasks(2 * b * i * o, b.div_ceil(TILE)));
        let blocks: Vec<_> = y[..b * o].chunks_mut(rows * o).collect();
        fn split(
            out: Option<(&mut [f32], usize)>,
            b: usize,
            rows: usize,
            blocks: usize,
        ) -> Vec<Option<&mut [f32]>> {
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
            gemm_rows(x, Strides(i, 1), r0, wm, Strides(1, i), yb, i, o, 0.0);
            if let Some(bias) = bias {
                add_bias(yb, bias);
            }
            post(r0, yb, ab, cb);
        });
    }

    /// [`Backend::linear_bwd`] with, if `act` is given, `dx *= act'(z)` applied to each task's
    /// rows of `dx` right after its product. One parallel region: task `j` computes row block
    /// `j` of `dx` and row block `j` of `dw` (output features) with the same features' bias
    /// gradients.
    #[allow(clippy::too_many_arguments)]
    fn linear_bwd_with(
        &self,
        x: &[f32],
        params: &[f32],
        w: usize,
        dy: &[f32],
        dx: Option<&mut [f32]>,
        act: Option<(Activation, &[f32])>,
        grads: &mut [f32],
        bias: Option<usize>,
        b: usize,
        i: usize,
        o: usize,
    ) {
        let wm = &params[w..w + o * i];
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
                gemm_rows(dy, Strides(o, 1), r0, wm, Strides(i, 1), dxb, o, i, 0.0);
                if let Some((act, z)) = act {
                    act_grad_mul_in_place(act, &z[r0 * i..r0 * i + dxb.len()], dxb);
                }
            }
            let f0 = j * dw_rows;
            if let Some(dwb) = dwb {
                // dw (o×i) += dyᵀ (o×b) · x (b×i): each element sums the b rows in order.
                gemm_rows(dy, Strides(1, o), f0, x, Strides(i, 1), dwb, b, i, 1.0);
            }
            if let Some(gbb) = gbb {
                column_sums_acc(dy, o, b, f0, gbb);
            }
        });
    }

    /// Element-wise map over fixed chunks of `out` (with `f(chunk_index, out_chunk)`), in
    /// parallel when the work is large enough.
    fn map_chunks(&self, out: &mut [f32], cost: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
        if tasks(out.len() * cost, out.len().div_ceil(REDUCE_CHUNK)) <= 1 {
            out.chunks_mut(REDUCE_CHUNK)
                .enumerate()
                .for_each(|(j, c)| f(j, c));
        } else {
            out.par_chunks_mut(REDUCE_CHUNK)
                .enumerate()
                .for_each(|(j, c)| f(j, c));
        }
    }

    /// Chunked f64 sum of `f(chunk_index)` over `chunks` chunks: partial sums per chunk, added
    /// in chunk order (the same bits for any thread count).
    fn chunked_sum(
        &self,
        chunks: usize,
        work: usize,
        f: impl Fn(usize) -> f64 + Sync + Send,
    ) -> f64 {
        if tasks(work, chunks) <= 1 {
            (0..chunks).map(f).collect::<Vec<f64>>().iter().sum()
        } else {
            let parts: Vec<f64> = (0..chunks).into_par_iter().map(&f).collect();
            parts.iter().sum()
        }
    }
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
        self.linear_fwd_with(x, params, w, bias, y, None, None, b, i, o, |_, _, _, _| {});
    }

    fn linear_act_fwd(
        &self,
        act: Activation,
        x: &Vec<f32>,
        params: &Vec<f32>,
        w: usize,
        bias: Option<usize>,
        z: &mut Vec<f32>,
        a: &mut Vec<f32>,
        b: usize,
        i: usize,
        o: usize,
    ) {
        self.linear_fwd_with(
            x,
            params,
            w,
            bias,
            z,
            Some((a, o)),
            None,
            b,
            i,
            o,
            |_, zb, ab, _| {
                if let Some(ab) = ab {
                    act_apply(act, zb, ab);
                }
            },
        );
    }

    fn linear_residual_fwd(
        &self,
        x: &Vec<f32>,
        params: &Vec<f32>,
        w: usize,
        bias: Option<usize>,
        res: &Vec<f32>,
        y: &mut Vec<f32>,
        b: usize,
        i: usize,
        o: usize,
    ) {
        self.linear_fwd_with(
            x,
            params,
            w,
            bias,
            y,
            None,
            None,
            b,
            i,
            o,
            |r0, yb, _, _| {
                add_into(yb, &res[r0 * o..r0 * o + yb.len()]);
            },
        );
    }

    fn linear_residual_ln_fwd(
        &self,
        x: &Vec<f32>,
        params: &Vec<f32>,
        w: usize,
        bias: Option<usize>,
        res: &Vec<f32>,
        y: &mut Vec<f32>,
        ln: LnArgs,
        ln_out: &mut Vec<f32>,
        stats: &mut Vec<f32>,
        b: usize,
        i: usize,
        o: usize,
    ) {
        let g = &params[ln.gamma..ln.gamma + o];
        let bb = &params[ln.beta..ln.beta + o];
        let (lo, st) = (
            Some((ln_out.as_mut_slice(), o)),
            Some((stats.as_mut_slice(), 2)),
        );
        self.linear_fwd_with(x, params, w, bias, y, lo, st, b, i, o, |r0, yb, lb, sb| {
            add_into(yb, &res[r0 * o..r0 * o + yb.len()]);
            if let (Some(lb), Some(sb)) = (lb, sb) {
                layernorm_rows(yb, g, bb, lb, sb, ln.eps);
            }
        });
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
        let dx = dx.map(|d| d.as_mut_slice());
        self.linear_bwd_with(x, params, w, dy, dx, None, grads, bias, b, i, o);
    }

    fn linear_act_bwd(
        &self,
        act: Activation,
        x: &Vec<f32>,
        z: &Vec<f32>,
        params: &Vec<f32>,
        w: usize,
        dy: &Vec<f32>,
        _tmp: &mut Vec<f32>,
        dx: &mut Vec<f32>,
        grads: &mut Vec<f32>,
        bias: Option<usize>,
        b: usize,
        i: usize,
        o: usize,
    ) {
        self.linear_bwd_with(
            x,
            params,
            w,
            dy,
            Some(dx),
            Some((act, z)),
            grads,
            bias,
            b,
            i,
            o,
        );
    }

    fn act_fwd(&self, act: Activation, x: &Vec<f32>, y: &mut Vec<f32>) {
        self.map_chunks(y, 4 * ELEM_COST, |j, y| {
            act_apply(act, &x[j * REDUCE_CHUNK..j * REDUCE_CHUNK + y.len()], y);
        });
    }

    fn act_bwd(&self, act: Activation, x: &Vec<f32>, dy: &Vec<f32>, dx: &mut Vec<f32>) {
        self.map_chunks(dx, 4 * ELEM_COST, |j, dx| {
            let at = j * REDUCE_CHUNK..j * REDUCE_CHUNK + dx.len();
            dx.copy_from_slice(&dy[at.clone()]);
            act_grad_mul_in_place(act, &x[at], dx);
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
        // Parameter gradients by feature blocks of 64, rows summed in order per feature.
        const FB: usize = 64;
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

    fn time_embed(&self, t: &Vec<f32>, y: &mut Vec<f32>, dim: usize, max_period: f32) {
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

    fn embed_add(
        &self,
        params: &Vec<f32>,
        table: usize,
        classes: &Vec<f32>,
        y: &mut Vec<f32>,
        n: usize,
    ) {
        // A gather and an add: cheap enough for one thread at the sizes trained here.
        for (row, &c) in y.chunks_mut(n).zip(classes) {
            let at = table + c as usize * n;
            for (v, &e) in row.iter_mut().zip(&params[at..at + n]) {
                *v += e;
            }
        }
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
        // Rows in order into each class row: the same sums as a per-class pass.
        let g = &mut grads[table..table + rows * n];
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

    fn add_assign(&self, y: &mut Vec<f32>, x: &Vec<f32>) {
        self.map_chunks(y, ELEM_COST, |j, y| {
            add_into(y, &x[j * REDUCE_CHUNK..j * REDUCE_CHUNK + y.len()]);
        });
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

    fn mse(&self, pred: &Vec<f32>, target: &Vec<f32>, d: &mut Vec<f32>) -> f32 {
        let len = pred.len() as f32;
        self.map_chunks(d, ELEM_COST, |j, d| {
            let at = j * REDUCE_CHUNK;
            for ((d, &p), &t) in d.iter_mut().zip(&pred[at..]).zip(&target[at..]) {
                *d = 2.0 * (p - t) / len;
            }
        });
        // Sum in fixed chunks, then the chunk sums in order: thread-count independent.
        let chunks = pred.len().div_ceil(REDUCE_CHUNK);
        let sum = self.chunked_sum(chunks, pred.len() * ELEM_COST, |j| {
            let at = j * REDUCE_CHUNK..((j + 1) * REDUCE_CHUNK).min(pred.len());
            let mut s = 0.0;
            sum_sq_f64(&pred[at.clone()], &target[at], &mut s);
            s
        });
        (sum / len as f64) as f32
    }

    fn norm(&self, g: &Vec<f32>) -> f32 {
        let chunks = g.len().div_ceil(REDUCE_CHUNK);
        let sum = self.chunked_sum(chunks, g.len() * ELEM_COST, |j| {
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

    fn scale(&self, g: &mut Vec<f32>, s: f32) {
        self.map_chunks(g, ELEM_COST, |_, g| g.iter_mut().for_each(|v| *v *= s));
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
        let rule = AdamRule::new(hp, step, lr);
        let c = REDUCE_CHUNK;
        if tasks(params.len() * 4 * ELEM_COST, params.len().div_ceil(c)) <= 1 {
            adam_chunk(&rule, params, grads, m, v, decay_mask);
        } else {
            params
                .par_chunks_mut(c)
                .zip(grads.par_chunks(c))
                .zip(m.par_chunks_mut(c).zip(v.par_chunks_mut(c)))
                .zip(decay_mask.par_chunks(c))
                .for_each(|(((p, g), (m, v)), mask)| adam_chunk(&rule, p, g, m, v, mask));
        }
    }

    fn update(
        &self,
        params: &mut Vec<f32>,
        grads: &mut Vec<f32>,
        m: &mut Vec<f32>,
        v: &mut Vec<f32>,
        decay_mask: &Vec<f32>,
        hp: &AdamW,
        step: u64,
        lr: f32,
        clip: f32,
        ema: &mut Vec<f32>,
        ema_decay: f32,
    ) {
        let rule = AdamRule::new(hp, step, lr);
        let c = REDUCE_CHUNK;
        if tasks(params.len() * 6 * ELEM_COST, params.len().div_ceil(c)) <= 1 {
            update_chunk(&rule, clip, ema_decay, params, grads, m, v, decay_mask, ema);
        } else {
            params
                .par_chunks_mut(c)
                .zip(grads.par_chunks_mut(c))
                .zip(m.par_chunks_mut(c).zip(v.par_chunks_mut(c)))
                .zip(decay_mask.par_chunks(c).zip(ema.par_chunks_mut(c)))
                .for_each(|(((p, g), (m, v)), (mask, e))| {
                    update_chunk(&rule, clip, ema_decay, p, g, m, v, mask, e)
                });
        }
    }

    fn ema(&self, ema: &mut Vec<f32>, params: &Vec<f32>, decay: f32) {
        self.map_chunks(ema, ELEM_COST, |j, e| {
            ema_chunk(
                e,
                &params[j * REDUCE_CHUNK..j * REDUCE_CHUNK + e.len()],
                decay,
            );
        });
    }

    fn fill_normal(&self, buf: &mut Vec<f32>, noise: &NoiseStream, draw: u32) {
        // Philox and Box–Muller: some 100 flops per element.
        self.map_chunks(buf, 100, |j, c| {
            for (k, v) in c.iter_mut().enumerate() {
                *v = noise.normal(draw, (j * REDUCE_CHUNK + k) as u32);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
