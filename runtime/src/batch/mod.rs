//! Batched sampling on a host (feature `std`): many samples per call, each bit-identical to
//! the [`Sampler`](crate::Sampler) — and so to the device.
//!
//! A sample's bits depend only on the order of its own operations. This executor keeps every
//! sample's operation order (the kernels' sequential reductions, the sampler's `LIN` order,
//! the same noise counters) and runs many samples side by side instead: SIMD lanes are
//! samples, the weights are read once per block of samples instead of once per sample, and
//! threads take whole blocks. The batch size, the block width, the thread count and the
//! instruction set ([`Isa`]) change how fast a sample is made, never its bits.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let blob = microdiff_runtime::doc_example_blob();
//! use microdiff_runtime::{Model, SampleRequest, batch};
//! let model = Model::parse(&blob)?;
//! let program = model.program("ddim4")?;
//! let specs: Vec<SampleRequest> =
//!     (0..100).map(|i| SampleRequest { seed: 7, stream: i, class: 0 }).collect();
//! let mut out = vec![0.0f32; specs.len() * model.data_len()];
//! batch::sample_batch(&model, program, &specs, &mut out, 2)?;
//!
//! // Sample 42 is exactly what the device's sampler makes for stream 42.
//! let mut arena = std::vec![0u8; model.arena_bytes()];
//! let mut one = vec![0.0f32; model.data_len()];
//! microdiff_runtime::sample(&model, program, &mut arena, specs[42], &mut one)?;
//! assert_eq!(one, out[42 * model.data_len()..43 * model.data_len()]);
//! # Ok(()) }
//! ```
//!
//! # Modules
//! `lanes` (the device kernels' arithmetic over many samples), `exec` (one block through a
//! program), `prepare` ([`BatchModel`]: weights decoded and packed once), `isa` ([`Isa`]: the
//! executor compiled per instruction set; the module's only `unsafe` is the dispatch).

use std::vec::Vec;
mod exec;
mod isa;
mod lanes;
mod prepare;

use core::fmt;
use std::sync::Mutex;

pub use isa::Isa;
pub use prepare::BatchModel;

use crate::blob::program::Program;
use crate::error::Error;
use crate::model::Model;
use crate::sampler::SampleRequest;

/// Most samples in one block (the samples one thread runs side by side); 64 keeps a block's
/// arena of the bench networks (≈ 1 500 slots × 64 × 4 bytes) inside a core's L2 cache.
pub const MAX_BLOCK: usize = 64;

/// Most bytes of arena one block may use (a block of `w` samples needs `w` device arenas).
pub const BLOCK_ARENA_BYTES: usize = 64 << 20;

/// A failed batched call: which sample failed (the lowest index, when several did), or `None`
/// when the call itself was wrong (an output buffer of the wrong length, a program from another
/// model), and the runtime error — the same error the single-sample [`Sampler`](crate::Sampler)
/// reports for that sample. After a failure the output buffer holds the samples that did not
/// fail and unspecified values in place of those that did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleError {
    /// Index into the `specs` of the failed sample.
    pub sample: Option<usize>,
    /// What went wrong.
    pub error: Error,
}

impl fmt::Display for SampleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.sample {
            Some(i) => write!(f, "sample {i}: {}", self.error),
            None => write!(f, "{}", self.error),
        }
    }
}

impl core::error::Error for SampleError {}

fn whole(error: Error) -> SampleError {
    SampleError {
        sample: None,
        error,
    }
}

/// How a batched call runs: none of these settings changes a sample's bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Worker threads (0 is taken as 1).
    pub threads: usize,
    /// Most samples per block (clamped to `1..=`[`MAX_BLOCK`]).
    pub max_block: usize,
    /// The executor version; one the CPU lacks falls back to [`Isa::Baseline`].
    pub isa: Isa,
}

impl Options {
    /// `threads` workers, the widest instruction set of this CPU, blocks of up to
    /// [`MAX_BLOCK`].
    pub fn threads(threads: usize) -> Self {
        Options {
            threads,
            max_block: MAX_BLOCK,
            isa: Isa::detect(),
        }
    }

    /// Samples per block for `n` samples of a model needing `arena_bytes`: enough blocks to keep
    /// every thread busy, blocks a multiple of 8 wide where they can be (the matrix kernel's
    /// narrowest tile), and a block's arena (`width` device arenas) within
    /// [`BLOCK_ARENA_BYTES`], so a blob with a huge valid plan narrows the blocks instead of
    /// asking for 64 times its arena.
    fn block_width(&self, n: usize, arena_bytes: usize) -> usize {
        let threads = self.threads.max(1);
        let per_thread = n.div_ceil(threads).max(1);
        per_thread
            .next_multiple_of(8)
            .min(self.max_block.clamp(1, MAX_BLOCK))
            .min((BLOCK_ARENA_BYTES / arena_bytes.max(1)).max(1))
    }
}

/// Draws `specs.len()` samples of `program` into `out` (`specs.len() * data_len` values, data
/// units, sample-major) on `threads` threads; sample `i` is bit for bit what
/// [`sample`](crate::sample) makes for `specs[i]`.
pub fn sample_batch(
    model: &Model<'_>,
    program: Program<'_>,
    specs: &[SampleRequest],
    out: &mut [f32],
    threads: usize,
) -> Result<(), SampleError> {
    BatchModel::new(model)
        .map_err(whole)?
        .sample(program, specs, out, Options::threads(threads))
}

impl BatchModel<'_, '_> {
    /// Network value `v` at evaluation time `time`, for a value computed from the time alone
    /// (the time embedding and what follows from it without the input or the class), with the
    /// device's arithmetic. The exporter folds such a subgraph into a `TIME_TABLE` op; any other
    /// value is an error.
    pub fn time_value(&self, v: u16, time: f32) -> Result<Vec<f32>, Error> {
        exec::time_value(self, v, time)
    }

    /// A `TIME_TABLE` for the time-only value `v`: every distinct time any program evaluates, in
    /// increasing bit order (the table's order), and the rows of `v` at those times, concatenated
    /// — what replaces the subgraph computing `v` without changing any sample's bits.
    pub fn time_table(&self, v: u16) -> Result<(Vec<f32>, Vec<f32>), Error> {
        let mut times: Vec<u32> = Vec::new();
        for p in self.model.programs().iter() {
            for instr in p?.instructions() {
                if let (_, crate::blob::program::Instr::Eval { time, .. }) = instr? {
                    times.push(time.to_bits());
                }
            }
        }
        times.sort_unstable();
        times.dedup();
        let mut rows = Vec::new();
        for &t in &times {
            rows.extend(self.time_value(v, f32::from_bits(t))?);
        }
        Ok((rows, times.into_iter().map(f32::from_bits).collect()))
    }

    /// [`sample_batch`] with a prepared model (prepare once, sample many times) and explicit
    /// [`Options`].
    pub fn sample(
        &self,
        program: Program<'_>,
        specs: &[SampleRequest],
        out: &mut [f32],
        options: Options,
    ) -> Result<(), SampleError> {
        let model = self.model;
        let d = model.data_len();
        let expected = specs
            .len()
            .checked_mul(d)
            .ok_or(whole(Error::OutputLength {
                expected: usize::MAX,
                provided: out.len(),
            }))?;
        if out.len() != expected {
            return Err(whole(Error::OutputLength {
                expected,
                provided: out.len(),
            }));
        }
        if program.regs > model.plan().regs {
            // A program from another model.
            return Err(whole(Error::ProgramNotFound));
        }
        // A sample whose class is out of range fails as the Sampler would fail it; it still
        // runs (as class 0, output discarded) so that a lower sample's failure is found too.
        let meta = model.meta();
        let mut failures = Vec::new();
        let mut checked: Vec<SampleRequest> = specs.to_vec();
        if model.graph().uses_class() {
            for (i, s) in checked.iter_mut().enumerate() {
                if s.class >= meta.classes {
                    failures.push((
                        i,
                        Error::ClassOutOfRange {
                            class: s.class,
                            classes: meta.classes,
                        },
                    ));
                    s.class = 0;
                }
            }
        }
        let specs = &checked[..];
        let width = options.block_width(specs.len(), model.arena_bytes());
        let blocks: Vec<(usize, &[SampleRequest], &mut [f32])> = specs
            .chunks(width)
            .zip(out.chunks_mut(width * d))
            .enumerate()
            .map(|(b, (s, o))| (b * width, s, o))
            .collect();
        let threads = options.threads.clamp(1, blocks.len().max(1));
        let queue = Mutex::new(blocks);
        let failures = Mutex::new(failures);
        let work = || {
            loop {
                let job = queue.lock().ok().and_then(|mut q| q.pop());
                let Some((first, specs, out)) = job else {
                    break;
                };
                if self.integer {
                    let mut arena = std::vec![0u8; model.arena_bytes()];
                    for (i, (spec, o)) in specs.iter().zip(out.chunks_mut(d)).enumerate() {
                        if let Err(e) = crate::sample(model, program, &mut arena, *spec, o)
                            && let Ok(mut all) = failures.lock()
                        {
                            all.push((first + i, e));
                        }
                    }
                    continue;
                }
                let failure = match exec::Block::new(self, specs) {
                    Ok(mut block) => match isa::run(options.isa, self, program, &mut block, out) {
                        Ok(()) => block.first_failure().map(|(i, e)| (first + i, e)),
                        Err(e) => Some((first, e)),
                    },
                    Err(e) => Some((first, e)),
                };
                if let (Some(f), Ok(mut all)) = (failure, failures.lock()) {
                    all.push(f);
                }
            }
        };
        if threads == 1 {
            work();
        } else {
            std::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(work);
                }
            });
        }
        let failures = failures.into_inner().unwrap_or_default();
        match failures.into_iter().min_by_key(|(i, _)| *i) {
            Some((i, error)) => Err(SampleError {
                sample: Some(i),
                error,
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_fill_the_threads_and_respect_the_arena_budget() {
        let o = |threads, max_block| Options {
            threads,
            max_block,
            isa: Isa::Baseline,
        };
        assert_eq!(o(2, 64).block_width(2000, 2048), 64);
        assert_eq!(
            o(2, 64).block_width(100, 2048),
            56,
            "two blocks for two threads"
        );
        assert_eq!(o(1, 64).block_width(3, 2048), 8);
        assert_eq!(
            o(0, 0).block_width(5, 2048),
            1,
            "hostile options are clamped"
        );
        assert_eq!(o(2, 64).block_width(2000, BLOCK_ARENA_BYTES / 4), 4);
        assert_eq!(o(2, 64).block_width(2000, usize::MAX), 1, "never 0");
    }
}
