//! Training an [`Rbm`] by CD-k or persistent CD on any [`Backend`], in f32: what
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
//! * the update `p −= lr·(g + λ·mask·p)`, decay on `W` only: [`Backend::sgd`].
//!
//! Promises: the noise is the f64 trainer's (stream = the data row for CD, the chain for PCD;
//! draw `DRAW_TRAIN + counter`; element = unit, visible first — the [module doc](super)), so
//! the Bernoulli draws are the same draws as far as f32 probabilities allow (a draw flips only
//! when a uniform lands within an f32 rounding of its probability), and the result is the
//! f64 [`Trained`] (an [`Rbm`] and per-epoch [`EpochStats`] computed on the host from the
//! downloaded parameters). Replica exchange (`--negative pt`) is refused with
//! [`BackendTrainError::Tempering`]. No panics on user input: the f64 trainer's checks, checked
//! sizes and counters, and a device error or divergence is a typed error.

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
    /// Replica exchange has no backend implementation.
    #[error(
        "--negative pt: replica exchange trains on the CPU only (--device cpu); cd and pcd \
         train on a GPU"
    )]
    Tempering,
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

/// One Gibbs sweep of the states in `ph.v` (hidden draws at elements `nv + j`, visible at
/// `i`), as `Rbm::gibbs_sweep` at β = 1.
fn sweep<B: Backend>(
    be: &B,
    lay: Layout,
    params: &B::Buf,
    ph: &mut Phase<B::Buf>,
    seed: u64,
    d: u32,
) {
    let rows = ph.rows;
    be.linear_act_fwd(
        Activation::Sigmoid,
        lay.hidden(rows),
        params,
        &ph.v,
        &mut ph.ah,
        &mut ph.ph,
    );
    let noise = |offset| RowNoise {
        seed,
        domain: Domain::TrainNoise,
        streams: &ph.streams,
        draw: d,
        offset,
    };
    // Elements are u32 (the noise module checks nv + nh fits).
    be.bernoulli(&ph.ph, &mut ph.h, noise(lay.nv as u32));
    be.linear_t_fwd(lay.visible(rows), params, &ph.h, &mut ph.av);
    be.act_fwd(Activation::Sigmoid, &ph.av, &mut ph.pv);
    be.bernoulli(&ph.pv, &mut ph.v, noise(0));
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
    let chains = match c.negative {
        NegativePhase::Contrastive => None,
        NegativePhase::Persistent { chains } => {
            require(chains >= 1, "chains", chains as f64, "at least 1")?;
            index("chains", chains - 1)?;
            Some(chains)
        }
        NegativePhase::Tempering { .. } => return Err(BackendTrainError::Tempering),
    };
    let rows = data.rows();
    index("data rows", rows)?;
    let (nv, nh) = (initial.nv(), initial.nh());
    // Noise elements: visible and hidden units of one replica.
    index(
        "units",
        nv.checked_add(nh)
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
    let mut persistent = match chains {
        None => None,
        Some(n) => {
            let mut ph = Phase::new(be, n, nv, nh)?;
            let mut v = Vec::with_capacity(n * nv);
            for p in 0..n {
                let row = &data.as_slice()[(p % rows) * nv..][..nv];
                v.extend(row.iter().map(|&x| x as f32));
            }
            be.write(&mut ph.v, &v);
            be.write(&mut ph.streams, &stream_ids((0..n).map(|p| p as u32)));
            Some(ph)
        }
    };
    let mut sweeps = 0u64;
    let mut left = updates;
    let mut done = 0usize;
    let mut order: Vec<usize> = (0..rows).collect();
    let mut stats = Vec::with_capacity(epochs);
    let mut vhost = Vec::new();
    for epoch in 0..epochs {
        order.sort_by_key(|&i| (shuffle.raw(epoch as u32, i as u32), i));
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
                        sweep(be, lay, &params, neg, c.seed, draw(DRAW_TRAIN, counter)?);
                    }
                    accumulate(be, lay, &params, &mut grads, neg, 1.0 / n as f32);
                }
                Some(pt) => {
                    for _ in 0..c.gibbs_steps {
                        sweep(be, lay, &params, pt, c.seed, draw(DRAW_TRAIN, sweeps)?);
                        sweeps += 1;
                    }
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
            swap_acceptance: None,
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

    /// CD-1, CD-2 (batch 8: a partial last batch of 6) and PCD with 5 chains, 7 updates each
    /// (more than two epochs of 30 rows).
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

    /// Replica exchange is refused with a typed error naming the CPU.
    #[test]
    fn tempering_is_refused() {
        let cfg = TrainConfig {
            negative: NegativePhase::Tempering {
                chains: 2,
                ladder: super::super::Ladder::new(vec![1.0, 0.5]).unwrap(),
            },
            ..cases()[0].1.clone()
        };
        let e = train_updates_on(&Cpu, &machine(), &data(), &cfg, 1).unwrap_err();
        assert!(matches!(e, BackendTrainError::Tempering));
        assert!(e.to_string().contains("--device cpu"), "{e}");
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
