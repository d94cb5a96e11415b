//! Training an [`Rbm`] by CD-k, persistent CD or replica exchange on any [`Backend`], in f32: what
//! `microdiff train --objective rbm --device cuda` runs (the f64 [`train`](super::train())
//! stays the CPU path and the reference).
//!
//! It owns [`train_updates_on`]: the updates of [`train_updates`](super::train_updates), step
//! for step — the same shuffled mini-batches, the same negative phase, the same gradient and
//! plain-SGD update — with each phase a few backend operations on a whole batch:
//!
//! * hidden probabilities `σ(v Wᵀ + c)`: [`Backend::linear_act_fwd`] (sigmoid);
//! * a Gibbs sweep: [`Backend::bernoulli`] of those (elements `nv + j`), the visible
//!   activations `h W + b` by [`Backend::linear_t_fwd`], sigmoid, [`Backend::bernoulli`]
//!   (elements `i`);
//! * the CD gradient: the outer products `Σ_r s_r p_r v_rᵀ` and `Σ_r s_r p_r` by
//!   [`Backend::linear_bwd`] with `dy = s·p` (`s` = ∓1/rows: descent on the negative
//!   log-likelihood), `Σ_r s_r v_r` by [`Backend::col_sum`];
//! * the update `p −= lr·(g + λ·mask·p)`, decay on `W` only: [`Backend::sgd`];
//! * replica exchange (`--negative pt`): one batch of chains per rung of the ladder, swept at
//!   its inverse temperature `β` (the pre-activations scaled by [`Backend::scale`]; noise
//!   elements offset by `rung·(nv + nh)` as in `ParallelTempering`), then the swap proposals
//!   on the host: the states are downloaded, each replica's energy computed in f64 from the
//!   f32 parameters, the Metropolis test drawn from the same uniforms as the f64 trainer's,
//!   and the exchanged states written back. That is one download and, when a swap is
//!   accepted, one upload of every rung's states per sweep: correct, not fast (a GPU kernel
//!   for the energies and swaps would keep them on the device).
//!
//! Promises: the noise is the f64 trainer's (stream = the data row for CD, the chain for PCD;
//! draw `DRAW_TRAIN + counter`; element = unit, visible first — the [module doc](super)), so
//! the Bernoulli draws are the same draws as far as f32 probabilities allow (a draw flips only
//! when a uniform lands within an f32 rounding of its probability), and the result is the
//! f64 [`Trained`] (an [`Rbm`] and per-epoch [`EpochStats`] computed on the host from the
//! downloaded parameters; with replica exchange, each epoch's swap acceptance). No panics on
//! user input: the f64 trainer's checks, checked sizes and counters, and a device error or
//! divergence is a typed error.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use microdiff_kernels::Activation;
use microdiff_runtime::noise::{Domain, NoiseStream};

use super::math::require;
use super::noise::{DRAW_TRAIN, draw, index};
use super::{
    BinaryData, BoltzmannError, EpochStats, MAX_EXACT_UNITS, NegativePhase, Rbm, TrainConfig,
    Trained,
};
use crate::backend::{Backend, BackendError, Linear, ParamGrads, RowNoise, stream_ids};

/// Why a backend training of an RBM failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BackendTrainError {
    /// The machine, the data or a setting (the f64 trainer's checks), or divergence.
    #[error("training the RBM: {0}")]
    Rbm(#[from] BoltzmannError),
    /// The backend's device failed.
    #[error("device error at update {update}: {source}")]
    Device {
        /// The 1-based update during which it was reported.
        update: usize,
        /// The device's error.
        source: BackendError,
    },
}

/// The buffers of one phase over `rows` rows.
struct Phase<Buf> {
    rows: usize,
    /// Visible states. // (rows, nv)
    v: Buf,
    /// Hidden pre-activations and probabilities. // (rows, nh)
    ah: Buf,
    ph: Buf,
    /// Hidden states. // (rows, nh)
    h: Buf,
    /// Visible pre-activations and probabilities. // (rows, nv)
    av: Buf,
    pv: Buf,
    /// Each row's noise stream (ids as bits, [`stream_ids`]). // (rows)
    streams: Buf,
}

impl<Buf> Phase<Buf> {
    fn new<B: Backend<Buf = Buf>>(
        be: &B,
        rows: usize,
        nv: usize,
        nh: usize,
    ) -> Result<Self, BoltzmannError> {
        let overflow = BoltzmannError::Overflow {
            what: "batch buffers",
        };
        let (v, h) = (
            rows.checked_mul(nv).ok_or(overflow)?,
            rows.checked_mul(nh).ok_or(overflow)?,
        );
        Ok(Phase {
            rows,
            v: be.zeros(v),
            ah: be.zeros(h),
            ph: be.zeros(h),
            h: be.zeros(h),
            av: be.zeros(v),
            pv: be.zeros(v),
            streams: be.zeros(rows),
        })
    }
}

/// A batch's positive phase and CD's negative phase.
type Phases<Buf> = (Phase<Buf>, Phase<Buf>);

/// The machine's shape and where its parts lie in the parameter vector `[W (nh×nv), c, b]`.
/// The products cannot overflow: the machine's `W` already exists.
#[derive(Clone, Copy)]
struct Layout {
    nv: usize,
    nh: usize,
}

impl Layout {
    fn c(self) -> usize {
        self.nv * self.nh
    }
    fn b(self) -> usize {
        self.nv * self.nh + self.nh
    }
    fn len(self) -> usize {
        self.nv * self.nh + self.nh + self.nv
    }
    /// `σ(v Wᵀ + c)` over `rows` rows.
    fn hidden(self, rows: usize) -> Linear {
        Linear {
            w: 0,
            bias: Some(self.c()),
            b: rows,
            i: self.nv,
            o: self.nh,
        }
    }
    /// `h W + b` over `rows` rows (the transposed product).
    fn visible(self, rows: usize) -> Linear {
        Linear {
            bias: Some(self.b()),
            ..self.hidden(rows)
        }
    }
}

/// One Gibbs sweep at inverse temperature `beta` of the states in `ph.v` (hidden draws at
/// elements `offset + nv + j`, visible at `offset + i`), as `Rbm::gibbs_sweep`.
#[allow(clippy::too_many_arguments)]
fn sweep<B: Backend>(
    be: &B,
    lay: Layout,
    params: &B::Buf,
    ph: &mut Phase<B::Buf>,
    seed: u64,
    d: u32,
    offset: u32,
    beta: f32,
) {
    let rows = ph.rows;
    if beta == 1.0 {
        be.linear_act_fwd(
            Activation::Sigmoid,
            lay.hidden(rows),
            params,
            &ph.v,
            &mut ph.ah,
            &mut ph.ph,
        );
    } else {
        be.linear_fwd(lay.hidden(rows), params, &ph.v, &mut ph.ah);
        be.scale(&mut ph.ah, beta);
        be.act_fwd(Activation::Sigmoid, &ph.ah, &mut ph.ph);
    }
    let noise = |at| RowNoise {
        seed,
        domain: Domain::TrainNoise,
        streams: &ph.streams,
        draw: d,
        offset: at,
    };
    // Elements are u32 (`train_updates_on` checks the last one fits).
    be.bernoulli(&ph.ph, &mut ph.h, noise(offset + lay.nv as u32));
    be.linear_t_fwd(lay.visible(rows), params, &ph.h, &mut ph.av);
    if beta != 1.0 {
        be.scale(&mut ph.av, beta);
    }
    be.act_fwd(Activation::Sigmoid, &ph.av, &mut ph.pv);
    be.bernoulli(&ph.pv, &mut ph.v, noise(offset));
}

/// Swap proposals and acceptances of each neighbour pair of the ladder, since the start.
struct Swaps {
    proposed: Vec<u64>,
    accepted: Vec<u64>,
}

/// The swap proposals of one sweep (draw `d`) between neighbouring rungs `(k, k + 1)`,
/// `k = 0 .. K − 2` in order, for every chain, as `ParallelTempering::sweep` makes them: the
/// energies of `rbm` (the f32 parameters in f64) of the states after the sweep, accepted with
/// probability `min(1, exp((β_k − β_{k+1})(E_k − E_{k+1})))` by element `K·(nv + nh) + k` of
/// the chain's draw. Accepted swaps exchange the chain's rows of the two rungs on the device.
fn exchange<B: Backend>(
    be: &B,
    rbm: &Rbm,
    rungs: &mut [Phase<B::Buf>],
    betas: &[f64],
    (seed, d): (u64, u32),
    swaps: &mut Swaps,
) {
    let (nv, nh, k) = (rbm.nv(), rbm.nh(), rungs.len());
    let mut v: Vec<Vec<f32>> = rungs.iter().map(|p| be.download(&p.v)).collect();
    let mut h: Vec<Vec<f32>> = rungs.iter().map(|p| be.download(&p.h)).collect();
    let chains = rungs.first().map_or(0, |p| p.rows);
    let widen = |x: &[f32]| x.iter().map(|&a| f64::from(a)).collect::<Vec<f64>>();
    let mut changed = false;
    let mut energy = vec![0.0f64; k];
    for c in 0..chains {
        let noise = NoiseStream::new(seed, c as u32, Domain::TrainNoise);
        for r in 0..k {
            energy[r] = rbm.energy_unchecked(
                &widen(&v[r][c * nv..(c + 1) * nv]),
                &widen(&h[r][c * nh..(c + 1) * nh]),
            );
        }
        for r in 0..k - 1 {
            let log_a = (betas[r] - betas[r + 1]) * (energy[r] - energy[r + 1]);
            // The element fits a u32: `train_updates_on` checked K·(nv + nh) + K.
            let u = f64::from(noise.uniform(d, (k * (nv + nh) + r) as u32));
            swaps.proposed[r] += 1;
            if log_a >= 0.0 || u.ln() < log_a {
                swaps.accepted[r] += 1;
                swap_chain(&mut v, r, c, nv);
                swap_chain(&mut h, r, c, nh);
                energy.swap(r, r + 1);
                changed = true;
            }
        }
    }
    if changed {
        for (p, (v, h)) in rungs.iter_mut().zip(v.iter().zip(&h)) {
            be.write(&mut p.v, v);
            be.write(&mut p.h, h);
        }
    }
}

/// Exchanges chain `c`'s row (`n` values) between rungs `r` and `r + 1`.
fn swap_chain(x: &mut [Vec<f32>], r: usize, c: usize, n: usize) {
    let (lo, hi) = x.split_at_mut(r + 1);
    lo[r][c * n..(c + 1) * n].swap_with_slice(&mut hi[0][c * n..(c + 1) * n]);
}

/// Adds `weight·(p vᵀ, p, v)` with `p = σ(v Wᵀ + c)` of the states in `ph.v` to the gradient
/// (`train.rs`'s `accumulate`, for a whole batch).
fn accumulate<B: Backend>(
    be: &B,
    lay: Layout,
    params: &B::Buf,
    grads: &mut B::Buf,
    ph: &mut Phase<B::Buf>,
    weight: f32,
) {
    let layer = lay.hidden(ph.rows);
    be.linear_act_fwd(
        Activation::Sigmoid,
        layer,
        params,
        &ph.v,
        &mut ph.ah,
        &mut ph.ph,
    );
    be.scale(&mut ph.ph, weight);
    let p = ParamGrads {
        params,
        grads: &mut *grads,
    };
    be.linear_bwd(layer, p, &ph.v, &ph.ph, None);
    be.col_sum(&ph.v, lay.nv, weight, grads, lay.b());
}

/// As [`train_updates`](super::train_updates), for `updates` parameter updates, on backend
/// `be` in f32 (see the module doc). `updates ≥ 1`; `config.epochs` is ignored.
pub fn train_updates_on<B: Backend>(
    be: &B,
    initial: &Rbm,
    data: &BinaryData,
    config: &TrainConfig,
    updates: usize,
) -> Result<Trained, BackendTrainError> {
    let c = config;
    require(updates >= 1, "updates", updates as f64, "at least 1")?;
    initial.check_data(data)?;
    require(
        c.batch_size >= 1,
        "batch_size",
        c.batch_size as f64,
        "at least 1",
    )?;
    require(
        c.learning_rate.is_finite() && c.learning_rate > 0.0,
        "learning_rate",
        c.learning_rate,
        "a finite number > 0",
    )?;
    require(
        c.weight_decay.is_finite() && c.weight_decay >= 0.0,
        "weight_decay",
        c.weight_decay,
        "a finite number ≥ 0",
    )?;
    require(
        c.gibbs_steps >= 1,
        "gibbs_steps",
        c.gibbs_steps as f64,
        "at least 1",
    )?;
    // The persistent chains and the ladder of their rungs (PCD: one rung, β = 1).
    let (chains, betas) = match &c.negative {
        NegativePhase::Contrastive => (None, vec![1.0]),
        NegativePhase::Persistent { chains } => (Some(*chains), vec![1.0]),
        NegativePhase::Tempering { chains, ladder } => (Some(*chains), ladder.betas().to_vec()),
    };
    if let Some(chains) = chains {
        require(chains >= 1, "chains", chains as f64, "at least 1")?;
        index("chains", chains - 1)?;
    }
    let tempering = betas.len() > 1;
    let rows = data.rows();
    index("data rows", rows)?;
    let (nv, nh) = (initial.nv(), initial.nh());
    // Noise elements: the units of every rung, then one swap uniform per neighbour pair.
    index(
        "units",
        nv.checked_add(nh)
            .and_then(|u| u.checked_mul(betas.len()))
            .and_then(|u| u.checked_add(betas.len()))
            .ok_or(BoltzmannError::Overflow { what: "units" })?,
    )?;
    let lay = Layout { nv, nh };
    let epochs = updates.div_ceil(rows.div_ceil(c.batch_size));
    index("epochs", epochs)?;
    let exact = nv.min(nh) <= c.exact_max_units.min(MAX_EXACT_UNITS);
    let shuffle = NoiseStream::new(c.seed, 0, Domain::TrainData);

    let mut host: Vec<f32> = initial.w.iter().map(|&x| x as f32).collect();
    host.extend(initial.c.iter().map(|&x| x as f32));
    host.extend(initial.b.iter().map(|&x| x as f32));
    let mut params = be.upload(&host);
    let mut grads = be.zeros(lay.len());
    let mut mask = vec![0.0f32; lay.len()];
    mask[..lay.c()].fill(1.0);
    let mask = be.upload(&mask);
    let (lr, wd) = (c.learning_rate as f32, c.weight_decay as f32);

    // Positive (and CD's negative) phases by batch size: at most two sizes.
    let mut batches: BTreeMap<usize, Phases<B::Buf>> = BTreeMap::new();
    // One batch of `chains` rows per rung, every rung from the same data rows.
    let mut persistent = match chains {
        None => None,
        Some(n) => {
            let mut v = Vec::with_capacity(n * nv);
            for p in 0..n {
                let row = &data.as_slice()[(p % rows) * nv..][..nv];
                v.extend(row.iter().map(|&x| x as f32));
            }
            let mut rungs = Vec::with_capacity(betas.len());
            for _ in &betas {
                let mut ph = Phase::new(be, n, nv, nh)?;
                be.write(&mut ph.v, &v);
                be.write(&mut ph.streams, &stream_ids((0..n).map(|p| p as u32)));
                rungs.push(ph);
            }
            Some(rungs)
        }
    };
    let mut swaps = Swaps {
        proposed: vec![0; betas.len() - 1],
        accepted: vec![0; betas.len() - 1],
    };
    let mut sweeps = 0u64;
    let mut left = updates;
    let mut done = 0usize;
    let mut order: Vec<usize> = (0..rows).collect();
    let mut stats = Vec::with_capacity(epochs);
    let mut vhost = Vec::new();
    for epoch in 0..epochs {
        order.sort_by_key(|&i| (shuffle.raw(epoch as u32, i as u32), i));
        let before = (swaps.proposed.clone(), swaps.accepted.clone());
        for batch in order.chunks(c.batch_size) {
            if left == 0 {
                break;
            }
            left -= 1;
            done += 1;
            let n = batch.len();
            let (pos, neg) = match batches.entry(n) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => {
                    e.insert((Phase::new(be, n, nv, nh)?, Phase::new(be, n, nv, nh)?))
                }
            };
            vhost.clear();
            for &r in batch {
                vhost.extend(
                    data.as_slice()[r * nv..(r + 1) * nv]
                        .iter()
                        .map(|&x| x as f32),
                );
            }
            be.write(&mut pos.v, &vhost);
            let wpos = -1.0 / n as f32;
            accumulate(be, lay, &params, &mut grads, pos, wpos);
            match persistent.as_mut() {
                None => {
                    be.write(&mut neg.v, &vhost);
                    be.write(
                        &mut neg.streams,
                        &stream_ids(batch.iter().map(|&r| r as u32)),
                    );
                    for s in 0..c.gibbs_steps {
                        let counter = (epoch as u64)
                            .checked_mul(c.gibbs_steps as u64)
                            .and_then(|x| x.checked_add(s as u64))
                            .ok_or(BoltzmannError::Overflow {
                                what: "noise draw counter",
                            })?;
                        let d = draw(DRAW_TRAIN, counter)?;
                        sweep(be, lay, &params, neg, c.seed, d, 0, 1.0);
                    }
                    accumulate(be, lay, &params, &mut grads, neg, 1.0 / n as f32);
                }
                Some(rungs) => {
                    // The energies of the swap test: the parameters this update's sweeps use.
                    let current = if tempering {
                        Some(to_rbm(be, &params, lay, done)?)
                    } else {
                        None
                    };
                    let per_rung = (nv + nh) as u32;
                    for _ in 0..c.gibbs_steps {
                        let d = draw(DRAW_TRAIN, sweeps)?;
                        for (r, (ph, &beta)) in rungs.iter_mut().zip(&betas).enumerate() {
                            // `r·(nv + nh)` fits a u32: checked above.
                            let offset = r as u32 * per_rung;
                            sweep(be, lay, &params, ph, c.seed, d, offset, beta as f32);
                        }
                        if let Some(rbm) = &current {
                            exchange(be, rbm, rungs, &betas, (c.seed, d), &mut swaps);
                        }
                        sweeps += 1;
                    }
                    let pt = &mut rungs[0];
                    let w = 1.0 / pt.rows as f32;
                    accumulate(be, lay, &params, &mut grads, pt, w);
                }
            }
            be.sgd(&mut params, &grads, &mask, lr, wd);
            be.fill_zero(&mut grads);
            let finite = be.norm(&params).is_finite();
            be.check().map_err(|source| BackendTrainError::Device {
                update: done,
                source,
            })?;
            if !finite {
                return Err(BoltzmannError::Diverged { epoch: epoch + 1 }.into());
            }
        }
        let rbm = to_rbm(be, &params, lay, done)?;
        stats.push(EpochStats {
            epoch: epoch + 1,
            reconstruction_error: rbm.reconstruction_error(data),
            log_likelihood: if exact {
                Some(rbm.mean_log_likelihood(data)?)
            } else {
                None
            },
            swap_acceptance: tempering.then(|| {
                let (p0, a0) = &before;
                swaps
                    .proposed
                    .iter()
                    .zip(p0)
                    .zip(swaps.accepted.iter().zip(a0))
                    .map(|((p, p0), (a, a0))| match p - p0 {
                        0 => 0.0,
                        n => (a - a0) as f64 / n as f64,
                    })
                    .collect()
            }),
        });
    }
    Ok(Trained {
        rbm: to_rbm(be, &params, lay, done)?,
        epochs: stats,
    })
}

/// The f64 machine of the parameters on the device.
fn to_rbm<B: Backend>(
    be: &B,
    params: &B::Buf,
    lay: Layout,
    update: usize,
) -> Result<Rbm, BackendTrainError> {
    let p: Vec<f64> = be.download(params).iter().map(|&x| f64::from(x)).collect();
    be.check()
        .map_err(|source| BackendTrainError::Device { update, source })?;
    let (w, rest) = p.split_at(lay.c());
    let (c, b) = rest.split_at(lay.nh);
    Ok(Rbm::from_parts(
        lay.nv,
        lay.nh,
        w.to_vec(),
        b.to_vec(),
        c.to_vec(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::Cpu;
    use crate::zoo::boltzmann::train_updates;

    /// 30 rows of 8 units: two prototypes with 10 % of the units flipped (the test's own
    /// noise).
    fn data() -> BinaryData {
        let ns = NoiseStream::new(4, 2, Domain::TrainData);
        let protos = [[1, 1, 1, 1, 0, 0, 0, 0], [0, 1, 0, 1, 1, 0, 1, 0]];
        let mut x = Vec::new();
        for r in 0..30u32 {
            for (i, &p) in protos[r as usize % 2].iter().enumerate() {
                let flip = ns.uniform(0, r * 8 + i as u32) < 0.1;
                x.push(if (p == 1) != flip { 1.0 } else { 0.0 });
            }
        }
        BinaryData::new(x, 8).unwrap()
    }

    /// The machine the tests start from: small random weights and biases.
    fn machine() -> Rbm {
        let mut m = Rbm::random(8, 4, 0.3, 9).unwrap();
        let ns = NoiseStream::new(9, 1, Domain::TrainNoise);
        for (i, b) in m.b.iter_mut().enumerate() {
            *b = 0.2 * f64::from(ns.normal(0, i as u32));
        }
        for (j, c) in m.c.iter_mut().enumerate() {
            *c = 0.2 * f64::from(ns.normal(1, j as u32));
        }
        m
    }

    /// CD-1, CD-2 (batch 8: a partial last batch of 6), PCD with 5 chains and replica
    /// exchange (5 chains of 3 rungs, 2 sweeps per update), 7 updates each (more than two
    /// epochs of 30 rows).
    fn cases() -> Vec<(&'static str, TrainConfig)> {
        let base = TrainConfig {
            epochs: 0,
            batch_size: 10,
            learning_rate: 0.1,
            weight_decay: 1e-3,
            gibbs_steps: 1,
            negative: NegativePhase::Contrastive,
            seed: 21,
            exact_max_units: 8,
        };
        vec![
            ("cd1", base.clone()),
            (
                "cd2_partial_batches",
                TrainConfig {
                    batch_size: 8,
                    gibbs_steps: 2,
                    ..base.clone()
                },
            ),
            (
                "pcd",
                TrainConfig {
                    negative: NegativePhase::Persistent { chains: 5 },
                    ..base.clone()
                },
            ),
            (
                "pt",
                TrainConfig {
                    negative: NegativePhase::Tempering {
                        chains: 5,
                        ladder: super::super::Ladder::linear(3, 0.5).unwrap(),
                    },
                    gibbs_steps: 2,
                    ..base
                },
            ),
        ]
    }

    fn params(m: &Rbm) -> Vec<f64> {
        [m.weights(), m.visible_bias(), m.hidden_bias()].concat()
    }

    fn worst(a: &[f64], b: &[f64]) -> f64 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max)
    }

    /// f32 on the CPU backend vs the f64 trainer after 7 updates: the same Bernoulli draws
    /// (none of the ~2000 lands within an f32 rounding of its probability here), so the only
    /// difference is rounding: parameters of order 1 moved by steps of lr·|g| ≤ 0.1, each
    /// update a few f32 roundings (2⁻²⁴ ≈ 6e-8) of sums of ≤ 10 terms (measured: 9e-8). 1e-5
    /// absolute; a flipped
    /// draw moves a parameter by lr/batch = 1e-2, a wrong formula by more.
    const F32_VS_F64: f64 = 1e-5;

    #[test]
    fn cpu_backend_tracks_the_f64_trainer() {
        let data = data();
        for (name, cfg) in cases() {
            let want = train_updates(&machine(), &data, &cfg, 7).unwrap();
            let got = train_updates_on(&Cpu, &machine(), &data, &cfg, 7).unwrap();
            let d = worst(&params(&got.rbm), &params(&want.rbm));
            let moved = worst(&params(&want.rbm), &params(&machine()));
            println!("{name}: parameters differ by {d:e} (moved by {moved:e})");
            assert!(d <= F32_VS_F64, "{name}: {d:e}");
            assert!(moved > 1e-2, "{name}: training must move the parameters");
            assert_eq!(got.epochs.len(), want.epochs.len(), "{name}");
            for (g, w) in got.epochs.iter().zip(&want.epochs) {
                assert!((g.reconstruction_error - w.reconstruction_error).abs() < 1e-5);
                let (gl, wl) = (g.log_likelihood.unwrap(), w.log_likelihood.unwrap());
                assert!((gl - wl).abs() < 1e-4, "{name}: {gl} vs {wl}");
            }
        }
    }

    /// Replica exchange: the swap acceptance of every epoch is the f64 trainer's, and swaps
    /// happen (with a linear ladder down to β = 0.5 on this small machine, most proposals
    /// are accepted).
    #[test]
    fn tempering_swaps_like_the_f64_trainer() {
        let (_, cfg) = cases().pop().unwrap();
        let data = data();
        let want = train_updates(&machine(), &data, &cfg, 7).unwrap();
        let got = train_updates_on(&Cpu, &machine(), &data, &cfg, 7).unwrap();
        for (g, w) in got.epochs.iter().zip(&want.epochs) {
            let (g, w) = (g.swap_acceptance.clone(), w.swap_acceptance.clone());
            assert_eq!(g, w);
            let g = g.unwrap();
            assert_eq!(g.len(), 2);
            assert!(g.iter().all(|&a| a > 0.0 && a <= 1.0), "{g:?}");
        }
    }

    /// The CUDA backend on the emulator against the CPU backend: the same draws (the noise
    /// is bit-exact; the probabilities differ by a few ulp, which flips no draw here), so the
    /// parameters agree to the op tolerances composed over 7 updates: 1e-5 absolute (measured:
    /// 3e-8).
    #[cfg(feature = "cuda-emu")]
    #[test]
    fn emulated_cuda_matches_the_cpu_backend() {
        use crate::backend::cuda::CudaBackend;
        use crate::backend::cuda::emu::EmuDevice;
        const EMU_VS_CPU: f64 = 1e-5;
        let data = data();
        for (name, cfg) in cases() {
            let gpu = CudaBackend::new(EmuDevice::new()).unwrap();
            let a = train_updates_on(&Cpu, &machine(), &data, &cfg, 7).unwrap();
            let b = train_updates_on(&gpu, &machine(), &data, &cfg, 7).unwrap();
            let d = worst(&params(&b.rbm), &params(&a.rbm));
            println!("{name}: emulated CUDA vs CPU: {d:e}");
            assert!(d <= EMU_VS_CPU, "{name}: {d:e}");
        }
    }
}
