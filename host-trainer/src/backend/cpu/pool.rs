//! How the CPU backend splits work over rayon's threads, and the pool that keeps those threads
//! awake between operations ([`hot_pool`]).
//!
//! Promises: an operation is split into blocks of whole rows (or chunks of a fixed size, or
//! blocks of whole features) and every output element is produced by exactly one task, so the
//! result never depends on the thread count; work below [`SERIAL_WORK`] flops runs on the
//! calling thread. Reductions over chunks ([`chunked_sum`]) add the per-chunk partial sums in
//! chunk order.

use rayon::prelude::*;

use super::gemm::TILE;

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
pub(super) const ELEM_COST: usize = 8;

/// Fixed chunk of the chunked element-wise maps and reductions (loss, norm): the partial sums
/// are taken over these chunks and then added in chunk order, whatever the thread count.
pub(super) const REDUCE_CHUNK: usize = 4096;

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

/// How many parallel tasks an operation of `work` flops over `units` splittable units gets.
pub(super) fn tasks(work: usize, units: usize) -> usize {
    if work < SERIAL_WORK {
        1
    } else {
        rayon::current_num_threads().clamp(1, units.max(1))
    }
}

/// Rows per block when `rows` rows are split into `tasks` blocks, rounded up to [`TILE`].
pub(super) fn block_rows(rows: usize, tasks: usize) -> usize {
    if tasks <= 1 {
        rows.max(1)
    } else {
        rows.div_ceil(tasks).next_multiple_of(TILE).min(rows).max(1)
    }
}

/// Runs `f(task)` for every item, in parallel when there is more than one.
pub(super) fn run_all<T: Send>(items: Vec<T>, f: impl Fn(T) + Sync + Send) {
    if items.len() <= 1 {
        items.into_iter().for_each(f);
    } else {
        items.into_par_iter().for_each(f);
    }
}

/// Element-wise map over fixed chunks of `out` (with `f(chunk_index, out_chunk)`), in
/// parallel when the work (`cost` flops per element) is large enough.
pub(super) fn map_chunks(out: &mut [f32], cost: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
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
pub(super) fn chunked_sum(
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

/// Two disjoint ranges of one buffer, both mutable (panics if they overlap: an internal
/// layout error, never input-dependent).
pub(super) fn two_mut(
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
