//! How this module addresses the runtime's counter-based noise.
//!
//! All Gibbs and AIS noise is `NoiseStream::new(seed, stream, Domain::TrainNoise)`:
//!
//! * `stream` — the chain: the data row's index in the whole data set for CD-k, the chain's
//!   index for persistent CD, replica exchange and plain sampling, the run's index for AIS;
//!   stream 0 for parameter initialisation.
//! * `draw` — a purpose base below (the top four bits) plus a counter: the chain's sweep number
//!   for Gibbs chains (CD-k: `epoch·k + s`; persistent chains: `update·k + s`), the step index
//!   for AIS, 0 for initialisation. Counters must stay below [`COUNTER_LIMIT`] (checked).
//! * `element` — `replica·(nv + nh) + unit`, visible units `0..nv` then hidden `nv..nv + nh`;
//!   replica exchange takes the uniform of the swap between replicas `k, k+1` from element
//!   `K·(nv + nh) + k`; initialisation uses the parameter's index.
//!
//! Mini-batch shuffles take `raw(epoch, row)` of `NoiseStream::new(seed, 0, Domain::TrainData)`
//! as sort keys (ties by row index).

use microdiff_runtime::noise::NoiseStream;

use super::{BoltzmannError, Result};

/// Counters of one purpose stay below this (2²⁸).
pub(super) const COUNTER_LIMIT: u64 = 1 << 28;
/// Random initial weights ([`super::Rbm::random`]).
pub(super) const DRAW_INIT: u32 = 0x1000_0000;
/// Random initial chain states (replica exchange sampler).
pub(super) const DRAW_CHAIN_INIT: u32 = 0x2000_0000;
/// Negative-phase chains of training.
pub(super) const DRAW_TRAIN: u32 = 0x3000_0000;
/// Sampling chains outside training.
pub(super) const DRAW_SAMPLE: u32 = 0x4000_0000;
/// Annealed importance sampling.
pub(super) const DRAW_AIS: u32 = 0x5000_0000;

/// `base + counter`, or an error when `counter ≥ COUNTER_LIMIT`.
pub(super) fn draw(base: u32, counter: u64) -> Result<u32> {
    if counter < COUNTER_LIMIT {
        Ok(base + counter as u32)
    } else {
        Err(BoltzmannError::Overflow {
            what: "noise draw counter",
        })
    }
}

/// A `u32` index, or an overflow error.
pub(super) fn index(what: &'static str, i: usize) -> Result<u32> {
    u32::try_from(i).map_err(|_| BoltzmannError::Overflow { what })
}

/// A Bernoulli(p) sample, 0 or 1, from element `element` of draw `draw`.
pub(super) fn bernoulli(noise: &NoiseStream, draw: u32, element: u32, p: f64) -> f64 {
    if f64::from(noise.uniform(draw, element)) < p {
        1.0
    } else {
        0.0
    }
}
