//! Training an RBM by stochastic gradient ascent on the log-likelihood, with the negative phase
//! from CD-k, persistent CD or replica exchange.
//!
//! Each epoch visits the rows in a shuffled order (sort keys `raw(epoch, row)` of the
//! `TrainData` domain of the seed) in mini-batches of `batch_size` (the last may be smaller).
//! An update is
//! `W += lr·(⟨h vᵀ⟩⁺ − ⟨h vᵀ⟩⁻ − λW)`, `b += lr·(⟨v⟩⁺ − ⟨v⟩⁻)`, `c += lr·(⟨h⟩⁺ − ⟨h⟩⁻)`,
//! where the positive phase averages the batch rows with `h` replaced by `p(h = 1 | v)`, and the
//! negative phase averages chain states `v⁻` (again with `p(h = 1 | v⁻)`):
//!
//! * [`NegativePhase::Contrastive`] (CD-k): one chain per batch row, started at the row, `k`
//!   Gibbs sweeps; stream = the row's index in the data set, counter `epoch·k + s`.
//! * [`NegativePhase::Persistent`] (PCD): `chains` chains kept across updates (chain `p`
//!   starts at row `p mod rows`), `k` sweeps per update.
//! * [`NegativePhase::Tempering`]: as PCD, each chain a replica-exchange ladder; the `β = 1`
//!   replicas give the negative phase.

use microdiff_runtime::noise::{Domain, NoiseStream};

use super::math::{require, sigmoid};
use super::noise::{DRAW_TRAIN, draw, index};
use super::tempering::{Ladder, ParallelTempering};
use super::{BinaryData, BoltzmannError, MAX_EXACT_UNITS, Rbm, Result};

/// Where the negative-phase samples come from.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum NegativePhase {
    /// CD-k: chains restarted at the batch rows.
    #[default]
    Contrastive,
    /// Persistent CD with this many chains (≥ 1).
    Persistent {
        /// Number of persistent chains.
        chains: usize,
    },
    /// Persistent replica-exchange chains.
    Tempering {
        /// Number of chains (≥ 1).
        chains: usize,
        /// Their inverse temperatures.
        ladder: Ladder,
    },
}

/// Settings of [`train`].
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// Passes over the data.
    pub epochs: usize,
    /// Rows per update (≥ 1).
    pub batch_size: usize,
    /// Step size (finite, > 0).
    pub learning_rate: f64,
    /// L2 weight decay `λ` on `W` (finite, ≥ 0).
    pub weight_decay: f64,
    /// Gibbs sweeps per update, `k` (≥ 1).
    pub gibbs_steps: usize,
    /// The negative phase.
    pub negative: NegativePhase,
    /// Noise seed.
    pub seed: u64,
    /// Report the exact log-likelihood each epoch when the smaller layer has at most this many
    /// units (capped at `MAX_EXACT_UNITS`; 0 turns it off).
    pub exact_max_units: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 10,
            batch_size: 10,
            learning_rate: 0.05,
            weight_decay: 0.0,
            gibbs_steps: 1,
            negative: NegativePhase::Contrastive,
            seed: 0,
            exact_max_units: 16,
        }
    }
}

/// Diagnostics at the end of one epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochStats {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean squared error per unit of the mean-field reconstruction `σ(b + Wᵀσ(c + Wv))` over
    /// the whole data set.
    pub reconstruction_error: f64,
    /// Exact mean log-likelihood (nats), when the machine is small enough.
    pub log_likelihood: Option<f64>,
    /// Replica exchange only: each neighbour pair's swap acceptance rate during this epoch.
    pub swap_acceptance: Option<Vec<f64>>,
}

/// A trained machine and its per-epoch diagnostics.
#[derive(Debug, Clone, PartialEq)]
pub struct Trained {
    /// The machine after the last epoch.
    pub rbm: Rbm,
    /// One entry per epoch.
    pub epochs: Vec<EpochStats>,
}

/// Trains a copy of `initial` on `data` for `config.epochs` epochs (see the module doc). On
/// error nothing is returned but the error; `initial` is never modified.
pub fn train(initial: &Rbm, data: &BinaryData, config: &TrainConfig) -> Result<Trained> {
    fit(initial, data, config, None)
}

/// As [`train`], for `updates` parameter updates (mini-batches) instead of whole epochs:
/// `config.epochs` is ignored, epochs follow one another as in [`train`] (the same updates, to
/// the bit, as far as they go) and the last one stops after the `updates`-th update, so it may
/// be partial; its [`EpochStats`] are taken where it stopped. `updates ≥ 1`.
pub fn train_updates(
    initial: &Rbm,
    data: &BinaryData,
    config: &TrainConfig,
    updates: usize,
) -> Result<Trained> {
    require(updates >= 1, "updates", updates as f64, "at least 1")?;
    fit(initial, data, config, Some(updates))
}

/// [`train`] (`updates` `None`: `config.epochs` whole epochs) or [`train_updates`].
fn fit(
    initial: &Rbm,
    data: &BinaryData,
    config: &TrainConfig,
    updates: Option<usize>,
) -> Result<Trained> {
    let c = config;
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
    let rows = data.rows();
    index("data rows", rows)?;
    let epochs = match updates {
        None => c.epochs,
        Some(u) => u.div_ceil(rows.div_ceil(c.batch_size)),
    };
    index("epochs", epochs)?;
    let mut left = updates.unwrap_or(usize::MAX);
    let mut rbm = initial.clone();
    let (nv, nh) = (rbm.nv(), rbm.nh());
    let mut chains = match &c.negative {
        NegativePhase::Contrastive => None,
        NegativePhase::Persistent { chains } => Some(ParallelTempering::from_rows(
            &rbm,
            Ladder::new(vec![1.0])?,
            *chains,
            data,
            c.seed,
            DRAW_TRAIN,
        )?),
        NegativePhase::Tempering { chains, ladder } => Some(ParallelTempering::from_rows(
            &rbm,
            ladder.clone(),
            *chains,
            data,
            c.seed,
            DRAW_TRAIN,
        )?),
    };
    let tempering = matches!(c.negative, NegativePhase::Tempering { .. });
    let exact = nv.min(nh) <= c.exact_max_units.min(MAX_EXACT_UNITS);
    let shuffle = NoiseStream::new(c.seed, 0, Domain::TrainData);

    // Gradient accumulators and scratch.
    let (mut gw, mut gb, mut gc) = (vec![0.0; nv * nh], vec![0.0; nv], vec![0.0; nh]);
    let (mut ph, mut act) = (vec![0.0; nh], vec![0.0; nv.max(nh)]);
    let (mut vneg, mut hneg) = (vec![0.0; nv], vec![0.0; nh]);
    let mut order: Vec<usize> = (0..rows).collect();
    let mut stats = Vec::with_capacity(epochs);
    for epoch in 0..epochs {
        order.sort_by_key(|&i| (shuffle.raw(epoch as u32, i as u32), i));
        let before = chains
            .as_ref()
            .map(|p| (p.proposed.clone(), p.accepted.clone()));
        for batch in order.chunks(c.batch_size) {
            if left == 0 {
                break;
            }
            left -= 1;
            gw.fill(0.0);
            gb.fill(0.0);
            gc.fill(0.0);
            let wpos = 1.0 / batch.len() as f64;
            for &r in batch {
                let v = &data.as_slice()[r * nv..(r + 1) * nv];
                accumulate(&rbm, v, wpos, &mut ph, &mut gw, &mut gb, &mut gc);
            }
            match chains.as_mut() {
                None => {
                    let wneg = -1.0 / batch.len() as f64;
                    for &r in batch {
                        vneg.copy_from_slice(&data.as_slice()[r * nv..(r + 1) * nv]);
                        let noise = NoiseStream::new(c.seed, r as u32, Domain::TrainNoise);
                        for s in 0..c.gibbs_steps {
                            let counter = (epoch as u64)
                                .checked_mul(c.gibbs_steps as u64)
                                .and_then(|x| x.checked_add(s as u64))
                                .ok_or(BoltzmannError::Overflow {
                                    what: "noise draw counter",
                                })?;
                            let d = draw(DRAW_TRAIN, counter)?;
                            rbm.gibbs_sweep(
                                &mut vneg, &mut hneg, 1.0, None, &noise, d, 0, &mut act,
                            );
                        }
                        accumulate(&rbm, &vneg, wneg, &mut ph, &mut gw, &mut gb, &mut gc);
                    }
                }
                Some(pt) => {
                    for _ in 0..c.gibbs_steps {
                        pt.sweep(&rbm)?;
                    }
                    let wneg = -1.0 / pt.chains() as f64;
                    for p in 0..pt.chains() {
                        vneg.copy_from_slice(pt.visible(p).unwrap_or_default());
                        accumulate(&rbm, &vneg, wneg, &mut ph, &mut gw, &mut gb, &mut gc);
                    }
                }
            }
            let lr = c.learning_rate;
            for (w, g) in rbm.w.iter_mut().zip(&gw) {
                *w += lr * (g - c.weight_decay * *w);
            }
            for (b, g) in rbm.b.iter_mut().zip(&gb) {
                *b += lr * g;
            }
            for (cc, g) in rbm.c.iter_mut().zip(&gc) {
                *cc += lr * g;
            }
            if !rbm
                .w
                .iter()
                .chain(&rbm.b)
                .chain(&rbm.c)
                .all(|x| x.is_finite())
            {
                return Err(BoltzmannError::Diverged { epoch: epoch + 1 });
            }
        }
        let swap_acceptance = match (&chains, before) {
            (Some(pt), Some((p0, a0))) if tempering => Some(
                pt.proposed
                    .iter()
                    .zip(&p0)
                    .zip(pt.accepted.iter().zip(&a0))
                    .map(|((p, p0), (a, a0))| {
                        let n = p - p0;
                        if n == 0 {
                            0.0
                        } else {
                            (a - a0) as f64 / n as f64
                        }
                    })
                    .collect(),
            ),
            _ => None,
        };
        stats.push(EpochStats {
            epoch: epoch + 1,
            reconstruction_error: rbm.reconstruction_error(data),
            log_likelihood: if exact {
                Some(rbm.mean_log_likelihood(data)?)
            } else {
                None
            },
            swap_acceptance,
        });
    }
    Ok(Trained { rbm, epochs: stats })
}

/// Adds `weight · (p hᵀ v, v, p)` with `p = p(h = 1 | v)` to the accumulators.
fn accumulate(
    rbm: &Rbm,
    v: &[f64],
    weight: f64,
    ph: &mut [f64],
    gw: &mut [f64],
    gb: &mut [f64],
    gc: &mut [f64],
) {
    let nv = rbm.nv();
    rbm.hidden_act(v, ph);
    for (j, p) in ph.iter_mut().enumerate() {
        *p = sigmoid(*p);
        let wp = weight * *p;
        gc[j] += wp;
        for (g, &x) in gw[j * nv..(j + 1) * nv].iter_mut().zip(v) {
            *g += wp * x;
        }
    }
    for (g, &x) in gb.iter_mut().zip(v) {
        *g += weight * x;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zoo::boltzmann::data::noisy_prototypes;

    /// Trains the test machine (8 visible, 4 hidden) on two noisy prototypes.
    fn fit(negative: NegativePhase, seed: u64) -> (Trained, f64) {
        let data = noisy_prototypes(8, 2, 40, 0.05, 2);
        let init = Rbm::random(8, 4, 0.01, 1).unwrap();
        let cfg = TrainConfig {
            epochs: 60,
            batch_size: 10,
            learning_rate: 0.2,
            weight_decay: 1e-4,
            gibbs_steps: 1,
            negative,
            seed,
            exact_max_units: 8,
        };
        let t = train(&init, &data, &cfg).unwrap();
        (t, init.mean_log_likelihood(&data).unwrap())
    }

    /// [`fit`], checking the log-likelihood and reconstruction improve.
    fn run(negative: NegativePhase, seed: u64) -> Trained {
        let (t, ll0) = fit(negative, seed);
        let ll1 = t.epochs.last().unwrap().log_likelihood.unwrap();
        // The near-uniform start scores ≈ −8·ln 2 = −5.55 nats; the data's own entropy is about
        // 8·H(0.05) + ln 2 ≈ 2.3 nats, so a good fit gains about 3 nats.
        eprintln!("log-likelihood {ll0:.3} -> {ll1:.3}");
        assert!(ll1 > ll0 + 2.0, "{ll0} -> {ll1}");
        let r = &t.epochs;
        assert!(r.last().unwrap().reconstruction_error < r[0].reconstruction_error);
        t
    }

    #[test]
    fn cd1_raises_log_likelihood() {
        let t = run(NegativePhase::Contrastive, 5);
        assert!(t.epochs.iter().all(|e| e.swap_acceptance.is_none()));
    }

    #[test]
    fn pcd_raises_log_likelihood() {
        run(NegativePhase::Persistent { chains: 20 }, 5);
    }

    #[test]
    fn tempering_training_raises_log_likelihood() {
        let t = run(
            NegativePhase::Tempering {
                chains: 10,
                ladder: Ladder::linear(4, 0.2).unwrap(),
            },
            5,
        );
        let acc = t.epochs.last().unwrap().swap_acceptance.clone().unwrap();
        assert!(acc.iter().all(|&a| a > 0.0 && a <= 1.0), "{acc:?}");
    }

    #[test]
    fn same_seed_same_bits() {
        for neg in [
            NegativePhase::Contrastive,
            NegativePhase::Persistent { chains: 7 },
            NegativePhase::Tempering {
                chains: 3,
                ladder: Ladder::linear(3, 0.3).unwrap(),
            },
        ] {
            let (a, b, c) = (
                fit(neg.clone(), 11).0,
                fit(neg.clone(), 11).0,
                fit(neg, 12).0,
            );
            let bits = |t: &Trained| -> Vec<u64> {
                t.rbm
                    .w
                    .iter()
                    .chain(&t.rbm.b)
                    .chain(&t.rbm.c)
                    .map(|x| x.to_bits())
                    .collect()
            };
            assert_eq!(bits(&a), bits(&b));
            assert_ne!(bits(&a), bits(&c));
        }
    }

    /// Whole epochs of updates are [`train`]'s epochs, bit for bit; a partial last epoch stops
    /// after the update asked for.
    #[test]
    fn updates_count_mini_batches() {
        let data = noisy_prototypes(8, 2, 40, 0.05, 2);
        let init = Rbm::random(8, 4, 0.01, 1).unwrap();
        let cfg = TrainConfig {
            epochs: 3,
            batch_size: 10,
            negative: NegativePhase::Persistent { chains: 5 },
            ..TrainConfig::default()
        };
        // 40 rows in batches of 10: 4 updates per epoch.
        let whole = train(&init, &data, &cfg).unwrap();
        let same = train_updates(&init, &data, &cfg, 12).unwrap();
        assert_eq!(whole, same);
        let part = train_updates(&init, &data, &cfg, 10).unwrap();
        assert_eq!(part.epochs.len(), 3);
        assert_eq!(part.epochs[..2], whole.epochs[..2]);
        assert_ne!(part.rbm, whole.rbm);
        assert!(matches!(
            train_updates(&init, &data, &cfg, 0),
            Err(BoltzmannError::BadParameter { .. })
        ));
    }

    #[test]
    fn bad_settings_are_errors() {
        let data = noisy_prototypes(4, 2, 6, 0.1, 0);
        let rbm = Rbm::zeros(4, 2).unwrap();
        let bad = [
            TrainConfig {
                batch_size: 0,
                ..TrainConfig::default()
            },
            TrainConfig {
                learning_rate: 0.0,
                ..TrainConfig::default()
            },
            TrainConfig {
                learning_rate: f64::NAN,
                ..TrainConfig::default()
            },
            TrainConfig {
                weight_decay: -1.0,
                ..TrainConfig::default()
            },
            TrainConfig {
                gibbs_steps: 0,
                ..TrainConfig::default()
            },
            TrainConfig {
                negative: NegativePhase::Persistent { chains: 0 },
                ..TrainConfig::default()
            },
        ];
        for cfg in &bad {
            assert!(
                matches!(
                    train(&rbm, &data, cfg),
                    Err(BoltzmannError::BadParameter { .. })
                ),
                "{cfg:?}"
            );
        }
        let wrong = Rbm::zeros(5, 2).unwrap();
        assert!(matches!(
            train(&wrong, &data, &TrainConfig::default()),
            Err(BoltzmannError::Shape { .. })
        ));
        // Decay·W overflows on the second update.
        let huge = TrainConfig {
            learning_rate: 1e308,
            weight_decay: 1e10,
            batch_size: 2,
            ..TrainConfig::default()
        };
        assert!(matches!(
            train(&rbm, &data, &huge),
            Err(BoltzmannError::Diverged { .. })
        ));
    }
}
