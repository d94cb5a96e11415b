//! Replica exchange (parallel tempering) for the RBM.
//!
//! Each chain holds `K` replicas `(v, h)` at inverse temperatures `1 = β_0 > … > β_{K−1} ≥ 0`
//! ([`Ladder`]), replica `k` targeting `p_k(v, h) ∝ exp(−β_k E(v, h))`. A sweep is one block
//! Gibbs sweep per replica, then swap proposals between neighbours `(k, k+1)` for
//! `k = 0, 1, …, K−2` in that order, accepted with the Metropolis probability
//! `min(1, exp((β_k − β_{k+1})(E_k − E_{k+1})))`, which keeps the product of the `p_k`
//! invariant. Replica 0 samples the machine itself. With a one-rung ladder `[1]` this is plain
//! block Gibbs sampling (the persistent chains of PCD).
//!
//! Noise (see the module doc of `boltzmann`): stream = chain index, draw = purpose base +
//! the chain's sweep count, element `k·(nv + nh) + unit` for replica `k`, `K·(nv + nh) + k`
//! for the uniform of swap `(k, k+1)`.

use microdiff_runtime::noise::{Domain, NoiseStream};

use super::math::require;
use super::noise::{DRAW_CHAIN_INIT, DRAW_SAMPLE, bernoulli, draw, index};
use super::{BinaryData, BoltzmannError, Rbm, Result};

/// Inverse temperatures `1 = β_0 > β_1 > … > β_{K−1} ≥ 0`, `K ≥ 1`.
#[derive(Debug, Clone, PartialEq)]
pub struct Ladder {
    /// The inverse temperatures, decreasing.
    betas: Vec<f64>,
}

impl Ladder {
    /// Checks `betas` starts at exactly 1, decreases strictly and stays ≥ 0.
    pub fn new(betas: Vec<f64>) -> Result<Self> {
        let first = betas.first().copied().unwrap_or(f64::NAN);
        require(first == 1.0, "betas[0]", first, "exactly 1")?;
        for w in betas.windows(2) {
            require(
                w[1].is_finite() && w[1] >= 0.0 && w[1] < w[0],
                "beta",
                w[1],
                "finite, ≥ 0 and below the previous one",
            )?;
        }
        Ok(Self { betas })
    }

    /// `K` rungs evenly spaced from 1 down to `beta_min` (`0 ≤ beta_min < 1`; `K = 1` gives
    /// `[1]`).
    pub fn linear(k: usize, beta_min: f64) -> Result<Self> {
        require(k >= 1, "rungs", k as f64, "at least 1")?;
        require(
            (0.0..1.0).contains(&beta_min),
            "beta_min",
            beta_min,
            "in [0, 1)",
        )?;
        let last = (k - 1).max(1) as f64;
        Self::new(
            (0..k)
                .map(|i| 1.0 - (1.0 - beta_min) * i as f64 / last)
                .collect(),
        )
    }

    /// `K` rungs in geometric progression from 1 down to `beta_min` (`0 < beta_min < 1`).
    pub fn geometric(k: usize, beta_min: f64) -> Result<Self> {
        require(k >= 1, "rungs", k as f64, "at least 1")?;
        require(
            beta_min > 0.0 && beta_min < 1.0,
            "beta_min",
            beta_min,
            "in (0, 1)",
        )?;
        let last = (k - 1).max(1) as f64;
        Self::new((0..k).map(|i| beta_min.powf(i as f64 / last)).collect())
    }

    /// The inverse temperatures.
    #[must_use]
    pub fn betas(&self) -> &[f64] {
        &self.betas
    }
}

/// The state of `chains` replica-exchange chains for an RBM of a given shape.
#[derive(Debug, Clone)]
pub struct ParallelTempering {
    /// Visible units.
    nv: usize,
    /// Hidden units.
    nh: usize,
    /// The ladder.
    ladder: Ladder,
    /// Number of chains.
    chains: usize,
    /// Visible states `(chains, K, nv)`.
    v: Vec<f64>,
    /// Hidden states `(chains, K, nh)`.
    h: Vec<f64>,
    /// Swap proposals per neighbour pair `(K − 1,)`.
    pub(super) proposed: Vec<u64>,
    /// Accepted swaps per neighbour pair `(K − 1,)`.
    pub(super) accepted: Vec<u64>,
    /// Sweeps done (the draw counter).
    sweeps: u64,
    /// Noise seed.
    seed: u64,
    /// Draw purpose base.
    draw_base: u32,
    /// Scratch `(max(nv, nh),)`.
    act: Vec<f64>,
    /// Energies of one chain's replicas `(K,)`.
    energy: Vec<f64>,
}

impl ParallelTempering {
    /// `chains ≥ 1` chains for `rbm`'s shape, every replica's visible units uniformly random
    /// (element `k·(nv + nh) + i` of draw `DRAW_CHAIN_INIT` of the chain's stream), hidden
    /// units zero (the first sweep resamples them).
    pub fn new(rbm: &Rbm, ladder: Ladder, chains: usize, seed: u64) -> Result<Self> {
        let mut pt = Self::empty(rbm, ladder, chains, seed, DRAW_SAMPLE)?;
        let (nv, nh, k) = (pt.nv, pt.nh, pt.ladder.betas.len());
        for c in 0..chains {
            let noise = NoiseStream::new(seed, c as u32, Domain::TrainNoise);
            for r in 0..k {
                for i in 0..nv {
                    pt.v[(c * k + r) * nv + i] =
                        bernoulli(&noise, DRAW_CHAIN_INIT, (r * (nv + nh) + i) as u32, 0.5);
                }
            }
        }
        Ok(pt)
    }

    /// Chains started from data rows (chain `p`, every replica, from row `p mod rows`), for the
    /// negative phase of training (draw base `draw_base`).
    pub(super) fn from_rows(
        rbm: &Rbm,
        ladder: Ladder,
        chains: usize,
        data: &BinaryData,
        seed: u64,
        draw_base: u32,
    ) -> Result<Self> {
        rbm.check_data(data)?;
        let mut pt = Self::empty(rbm, ladder, chains, seed, draw_base)?;
        let (nv, k) = (pt.nv, pt.ladder.betas.len());
        for (c, chunk) in pt.v.chunks_exact_mut(k * nv).enumerate() {
            let row = &data.as_slice()[(c % data.rows()) * nv..][..nv];
            for r in chunk.chunks_exact_mut(nv) {
                r.copy_from_slice(row);
            }
        }
        Ok(pt)
    }

    /// Allocates, checking sizes.
    fn empty(rbm: &Rbm, ladder: Ladder, chains: usize, seed: u64, draw_base: u32) -> Result<Self> {
        require(chains >= 1, "chains", chains as f64, "at least 1")?;
        index("chains", chains - 1)?;
        let (nv, nh, k) = (rbm.nv(), rbm.nh(), ladder.betas.len());
        let overflow = BoltzmannError::Overflow {
            what: "tempering state",
        };
        // Largest element: K·(nv + nh) + K − 1.
        let top = k
            .checked_mul(nv + nh)
            .and_then(|x| x.checked_add(k))
            .ok_or(overflow)?;
        index("tempering noise element", top)?;
        let len = |n: usize| {
            chains
                .checked_mul(k)
                .and_then(|x| x.checked_mul(n))
                .ok_or(overflow)
        };
        Ok(Self {
            nv,
            nh,
            chains,
            v: vec![0.0; len(nv)?],
            h: vec![0.0; len(nh)?],
            proposed: vec![0; k - 1],
            accepted: vec![0; k - 1],
            sweeps: 0,
            seed,
            draw_base,
            act: vec![0.0; nv.max(nh)],
            energy: vec![0.0; k],
            ladder,
        })
    }

    /// One sweep of every chain: a Gibbs sweep per replica, then the swap proposals.
    /// `rbm` must have the shape the state was built for.
    pub fn sweep(&mut self, rbm: &Rbm) -> Result<()> {
        for (what, expected, found) in [
            ("rbm visible units", self.nv, rbm.nv()),
            ("rbm hidden units", self.nh, rbm.nh()),
        ] {
            if expected != found {
                return Err(BoltzmannError::Shape {
                    what,
                    expected,
                    found,
                });
            }
        }
        let d = draw(self.draw_base, self.sweeps)?;
        let (nv, nh, k) = (self.nv, self.nh, self.ladder.betas.len());
        let betas = &self.ladder.betas;
        for c in 0..self.chains {
            let noise = NoiseStream::new(self.seed, c as u32, Domain::TrainNoise);
            let vc = &mut self.v[c * k * nv..(c + 1) * k * nv];
            let hc = &mut self.h[c * k * nh..(c + 1) * k * nh];
            for r in 0..k {
                let (v, h) = (&mut vc[r * nv..(r + 1) * nv], &mut hc[r * nh..(r + 1) * nh]);
                rbm.gibbs_sweep(
                    v,
                    h,
                    betas[r],
                    None,
                    &noise,
                    d,
                    (r * (nv + nh)) as u32,
                    &mut self.act,
                );
                self.energy[r] = rbm.energy_unchecked(v, h);
            }
            for r in 0..k.saturating_sub(1) {
                let log_a = (betas[r] - betas[r + 1]) * (self.energy[r] - self.energy[r + 1]);
                let u = f64::from(noise.uniform(d, (k * (nv + nh) + r) as u32));
                self.proposed[r] += 1;
                if log_a >= 0.0 || u.ln() < log_a {
                    self.accepted[r] += 1;
                    swap_rows(vc, nv, r);
                    swap_rows(hc, nh, r);
                    self.energy.swap(r, r + 1);
                }
            }
        }
        self.sweeps += 1;
        Ok(())
    }

    /// Swap acceptance rate of each neighbour pair `(k, k+1)` since the start (0 before the
    /// first sweep); `K − 1` values.
    #[must_use]
    pub fn acceptance_rates(&self) -> Vec<f64> {
        self.proposed
            .iter()
            .zip(&self.accepted)
            .map(|(&p, &a)| if p == 0 { 0.0 } else { a as f64 / p as f64 })
            .collect()
    }

    /// The visible state of chain `chain`'s `β = 1` replica, or `None` past the end.
    #[must_use]
    pub fn visible(&self, chain: usize) -> Option<&[f64]> {
        let k = self.ladder.betas.len();
        self.v
            .chunks_exact(k * self.nv)
            .nth(chain)
            .map(|c| &c[..self.nv])
    }

    /// Number of chains.
    #[must_use]
    pub fn chains(&self) -> usize {
        self.chains
    }

    /// Sweeps done so far.
    #[must_use]
    pub fn sweeps(&self) -> u64 {
        self.sweeps
    }

    /// The ladder.
    #[must_use]
    pub fn ladder(&self) -> &Ladder {
        &self.ladder
    }
}

/// Swaps rows `r` and `r + 1` of a `(K, n)` block.
fn swap_rows(x: &mut [f64], n: usize, r: usize) {
    let (a, b) = x[r * n..(r + 2) * n].split_at_mut(n);
    a.swap_with_slice(b);
}

/// What [`sample`] drew.
#[derive(Debug, Clone, PartialEq)]
pub struct TemperingSamples {
    /// The `β = 1` visible states after each kept sweep: rows ordered by sweep, then chain
    /// (`sweeps · chains` rows).
    pub samples: BinaryData,
    /// Swap acceptance rate of each neighbour pair over all sweeps, burn-in included.
    pub acceptance: Vec<f64>,
}

/// Draws from `rbm` by replica exchange: `chains` chains from random states
/// ([`ParallelTempering::new`]), `burn_in` sweeps discarded, then `sweeps` sweeps kept.
pub fn sample(
    rbm: &Rbm,
    ladder: Ladder,
    chains: usize,
    burn_in: usize,
    sweeps: usize,
    seed: u64,
) -> Result<TemperingSamples> {
    require(sweeps >= 1, "sweeps", sweeps as f64, "at least 1")?;
    let mut pt = ParallelTempering::new(rbm, ladder, chains, seed)?;
    let len = sweeps
        .checked_mul(chains)
        .and_then(|x| x.checked_mul(rbm.nv()))
        .ok_or(BoltzmannError::Overflow {
            what: "tempering samples",
        })?;
    let mut out = Vec::with_capacity(len);
    for _ in 0..burn_in {
        pt.sweep(rbm)?;
    }
    for _ in 0..sweeps {
        pt.sweep(rbm)?;
        for c in 0..chains {
            out.extend_from_slice(pt.visible(c).unwrap_or_default());
        }
    }
    Ok(TemperingSamples {
        samples: BinaryData::new(out, rbm.nv())?,
        acceptance: pt.acceptance_rates(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zoo::boltzmann::rbm::tests::random_rbm;

    #[test]
    fn ladders_are_checked() {
        assert!(Ladder::new(vec![]).is_err());
        assert!(Ladder::new(vec![0.9, 0.5]).is_err());
        assert!(Ladder::new(vec![1.0, 0.5, 0.5]).is_err());
        assert!(Ladder::new(vec![1.0, -0.1]).is_err());
        assert_eq!(Ladder::linear(3, 0.0).unwrap().betas(), &[1.0, 0.5, 0.0]);
        assert_eq!(Ladder::linear(1, 0.0).unwrap().betas(), &[1.0]);
        let g = Ladder::geometric(3, 0.25).unwrap();
        assert!((g.betas()[1] - 0.5).abs() < 1e-15);
        assert!(Ladder::geometric(3, 0.0).is_err());
    }

    #[test]
    fn marginals_match_exact_and_swaps_happen() {
        // Strong weights: a multimodal machine plain Gibbs mixes slowly on.
        let rbm = random_rbm(6, 4, 2.0, 0.5, 5);
        let exact = rbm.visible_marginals().unwrap();
        let chains = 64;
        let s = sample(&rbm, Ladder::linear(5, 0.0).unwrap(), chains, 50, 300, 9).unwrap();
        assert_eq!(s.acceptance.len(), 4);
        assert!(
            s.acceptance.iter().all(|&a| a > 0.0 && a <= 1.0),
            "{:?}",
            s.acceptance
        );
        // Per-chain means are independent: their spread gives the Monte Carlo error.
        let x = s.samples.as_slice();
        for (i, &p) in exact.iter().enumerate() {
            let means: Vec<f64> = (0..chains)
                .map(|c| (0..300).map(|t| x[(t * chains + c) * 6 + i]).sum::<f64>() / 300.0)
                .collect();
            let m = means.iter().sum::<f64>() / chains as f64;
            let var = means.iter().map(|a| (a - m).powi(2)).sum::<f64>() / (chains - 1) as f64;
            let se = (var / chains as f64).sqrt();
            // 4 standard errors: a false failure has probability ~6e-5 per unit.
            assert!(
                (m - p).abs() <= 4.0 * se + 1e-3,
                "unit {i}: {m} vs exact {p} (se {se})"
            );
        }
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        let rbm = Rbm::zeros(3, 2).unwrap();
        let mut pt = ParallelTempering::new(&rbm, Ladder::linear(2, 0.5).unwrap(), 2, 0).unwrap();
        assert!(matches!(
            pt.sweep(&Rbm::zeros(3, 3).unwrap()),
            Err(BoltzmannError::Shape { .. })
        ));
        assert!(ParallelTempering::new(&rbm, Ladder::linear(2, 0.5).unwrap(), 0, 0).is_err());
        assert_eq!(pt.acceptance_rates(), vec![0.0]);
    }
}
