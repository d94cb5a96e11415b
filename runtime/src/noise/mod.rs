//! Deterministic, counter-based noise: the same seed gives the same bits everywhere.
//!
//! Every random number is a pure function of *where* it is, not of *when* it was drawn:
//! Philox4x32-10 ([`philox4x32_10`]) maps a 128-bit counter and a 64-bit key to four `u32`,
//! and [`standard_normal`] / [`uniform_open`] map one `u32` to an `f32`. There is no generator
//! state to carry around, so a sample's noise never depends on the batch size, the thread count,
//! the order of evaluation, or which other samples are drawn: the caller names the sample with
//! `stream` (normally its index in the whole run, not in the batch) and the noise draw with
//! `draw`.
//!
//! # Counter layout
//!
//! | Philox word | value                                    | meaning                           |
//! |-------------|------------------------------------------|-----------------------------------|
//! | `key[0]`    | `seed as u32`                            | low half of the user's seed       |
//! | `key[1]`    | `(seed >> 32) as u32`                    | high half of the user's seed      |
//! | `ctr[0]`    | `block` = `element / 4`                  | position inside one draw          |
//! | `ctr[1]`    | `draw`                                   | noise draw (the sampler numbers its noisy `LIN`s) |
//! | `ctr[2]`    | `stream`                                 | sample index chosen by the caller |
//! | `ctr[3]`    | [`Domain`] as `u32`                      | which subsystem draws             |
//!
//! (A network's own draws, [`Domain::Network`], use the `EVAL`'s index in its program as
//! `draw`.)
//!
//! Element `e` of a draw is lane `e % 4` of block `e / 4`, so one Philox call serves four
//! consecutive elements, and a draw addresses 2³² elements (the element index is a `u32`).
//! [`Domain`]s keep sampler and trainer noise in disjoint counter spaces.
//!
//! # Same bits everywhere
//!
//! Philox is integer-only. The `u32 → f32` maps use only operations IEEE-754 requires to be
//! correctly rounded (`+ − × ÷`, `sqrt` via `libm::sqrtf`), exact integer↔float conversions
//! and bit manipulation, in f32, in a fixed order, never fused into FMA (Rust never contracts
//! `a*b + c`), and no libm transcendental (the logarithm is [`gauss::ln_f32`], written from the
//! same operations). So x86-64 (SSE), a soft-float Cortex-M0+, a Cortex-M4F/M7 FPU, RISC-V and
//! a CUDA port compiled with `--fmad=false` (and the default `-prec-div=true -prec-sqrt=true`,
//! i.e. not `--use_fast_math`) agree to the bit. It assumes IEEE binary32 without extended
//! precision (no x87) and round-to-nearest-even, the default everywhere Rust runs. (On the
//! Cortex-M4F LLVM emits `vmla.f32`, the non-fused multiply-accumulate, identical to `vmul` +
//! `vadd`.) No intermediate is subnormal, so flush-to-zero modes do not matter either.
//! The golden tests pin the bits; `docs/noise.md` has the formulas and measured accuracy.

pub mod gauss;
pub mod philox;

pub use gauss::{standard_normal, uniform_open};
pub use philox::philox4x32_10;

/// Which subsystem draws: keeps sampler noise and (future) trainer noise in disjoint counter
/// spaces.
///
/// The discriminant is `ctr[3]` of the Philox counter; values are part of the bit-exact
/// contract and never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u32)]
#[non_exhaustive]
pub enum Domain {
    /// Noise injected by sampler programs (`LIN`'s `c_z · noise`, initial `x_T`).
    Sampler = 0,
    /// Trainer: the Gaussian noise added to training examples.
    TrainNoise = 1,
    /// Trainer: timestep / noise-level sampling.
    TrainTime = 2,
    /// Trainer: dropout masks (e.g. classifier-free-guidance label dropout).
    TrainDropout = 3,
    /// Trainer: which training example fills each row of a batch.
    TrainData = 4,
    /// Noise drawn inside a network by its `NOISE` and `BERNOULLI` ops: `draw` is the
    /// `EVAL`'s index in its program (0 for the first `EVAL` executed), so it never shares
    /// counters with the sampler's `LIN` draws.
    Network = 5,
}

/// Key + stream: everything that identifies one sample's noise.
///
/// A plain value (`Copy`, no hidden state): every method is a pure function of `self` and its
/// arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct NoiseStream {
    /// The user's seed: the Philox key (`[seed as u32, (seed >> 32) as u32]`).
    pub seed: u64,
    /// Which sample: `ctr[2]`. Use the sample's global index so it does not depend on batching.
    pub stream: u32,
    /// Which subsystem: `ctr[3]`.
    pub domain: Domain,
}

impl NoiseStream {
    /// A stream for `seed`, sample `stream`, subsystem `domain`.
    #[must_use]
    pub const fn new(seed: u64, stream: u32, domain: Domain) -> Self {
        Self {
            seed,
            stream,
            domain,
        }
    }

    /// Four raw `u32` for block `block` of draw `draw`:
    /// `philox(ctr = [block, draw, stream, domain], key = [seed as u32, (seed >> 32) as u32])`.
    #[must_use]
    pub const fn block(&self, draw: u32, block: u32) -> [u32; 4] {
        philox4x32_10(
            [block, draw, self.stream, self.domain as u32],
            [self.seed as u32, (self.seed >> 32) as u32],
        )
    }

    /// The raw `u32` of element `element` of draw `draw`: lane `element % 4` of block
    /// `element / 4`.
    #[must_use]
    pub const fn raw(&self, draw: u32, element: u32) -> u32 {
        lane(self.block(draw, element / 4), element)
    }

    /// One standard normal: element `element` of draw `draw`, i.e.
    /// `standard_normal(self.raw(draw, element))`.
    #[must_use]
    pub fn normal(&self, draw: u32, element: u32) -> f32 {
        standard_normal(self.raw(draw, element))
    }

    /// Fill `out[i] = normal(draw, i as u32)` for every `i`, computing each Philox block once.
    ///
    /// The result does not depend on `out.len()` except through which elements are written: a
    /// longer fill starts with a shorter one. The element index is a `u32` counter and wraps: a
    /// slice longer than 2³² elements (16 GiB, impossible on a 32-bit target) repeats the draw
    /// from element 0 rather than panicking, exactly as `i as u32` says.
    pub fn fill_normal(&self, draw: u32, out: &mut [f32]) {
        /// Blocks per draw: 2³² elements / 4 lanes.
        const BLOCK_MASK: u32 = (1 << 30) - 1;
        let mut block = 0u32;
        for chunk in out.chunks_mut(4) {
            let words = self.block(draw, block);
            for (o, w) in chunk.iter_mut().zip(words) {
                *o = standard_normal(w);
            }
            block = block.wrapping_add(1) & BLOCK_MASK;
        }
    }

    /// Uniform in (0, 1) from the same counters (for trainers: timestep sampling, dropout):
    /// element `element` of draw `draw`, i.e. `uniform_open(self.raw(draw, element))`, a
    /// 2²³-point grid in `[2⁻²⁴, 1 − 2⁻²⁴]`.
    ///
    /// It reads the same raw word as [`normal`](Self::normal) for the same `(draw, element)`:
    /// do not take both from one stream, draw and element — use another [`Domain`] or draw.
    #[must_use]
    pub fn uniform(&self, draw: u32, element: u32) -> f32 {
        uniform_open(self.raw(draw, element))
    }
}

/// Lane `element % 4` of a Philox block (no indexing, so nothing to panic).
const fn lane(block: [u32; 4], element: u32) -> u32 {
    let [a, b, c, d] = block;
    match element % 4 {
        0 => a,
        1 => b,
        2 => c,
        _ => d,
    }
}

#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;
