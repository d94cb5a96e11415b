//! Annealed importance sampling of an RBM's log-partition function (Salakhutdinov & Murray
//! 2008, "On the quantitative analysis of deep belief networks").
//!
//! The base model A has no weights, zero hidden biases and visible biases `b_A` ([`AisBase`]),
//! so `log Z_A = nh·log 2 + Σ_i softplus(b_A,i)` and it is sampled exactly. The intermediate
//! distributions, for `0 = β_0 ≤ β_1 ≤ … ≤ β_K = 1`, are
//! `p*_k(v) = exp((1 − β_k) b_Aᵀv + β_k bᵀv) · Π_j (1 + exp(β_k (c_j + W_j·v)))`; a run draws
//! `v_1 ~ p_A` and applies the block Gibbs transition `T_k` that leaves `p_k` invariant, with
//! log-weight `log w = Σ_{k=1}^{K} [log p*_k(v_k) − log p*_{k−1}(v_k)]`. Then
//! `log Ẑ = log Z_A + log mean(w)`, with the delta-method standard error
//! `se = sd(w) / (√M · mean(w))` computed on weights scaled by their maximum. `Ẑ` is unbiased,
//! so `log Ẑ` is, in expectation, a (stochastic) lower bound on `log Z`.
//!
//! Noise: stream = run index `m`, draw `DRAW_AIS + k` for the transition of step `k` (`k = 0`
//! for the exact base sample), element = unit (visible `i`, hidden `nv + j`).

use microdiff_runtime::noise::{Domain, NoiseStream};

use super::math::{require, sigmoid, softplus};
use super::noise::{DRAW_AIS, bernoulli, draw, index};
use super::rbm::dot;
use super::{BinaryData, Rbm, Result};

/// The visible biases of the base model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AisBase {
    /// `b_A = 0`: the uniform distribution.
    Zero,
    /// `b_A = b`, the target's visible biases.
    #[default]
    VisibleBiases,
}

/// Settings of [`ais_log_partition`].
#[derive(Debug, Clone, PartialEq)]
pub struct AisConfig {
    /// `0 = β_0 ≤ … ≤ β_K = 1`, `K ≥ 1`, `K < 2²⁸`.
    pub betas: Vec<f64>,
    /// Number of independent runs `M ≥ 2`.
    pub runs: usize,
    /// The base model.
    pub base: AisBase,
    /// Noise seed.
    pub seed: u64,
}

impl AisConfig {
    /// `steps` transitions in the proportions of Salakhutdinov & Murray (500 : 4,000 : 10,000
    /// equal steps over `[0, 0.5]`, `[0.5, 0.9]`, `[0.9, 1]`): denser where the distributions
    /// change fastest. At least one step per segment.
    #[must_use]
    pub fn schedule(steps: usize) -> Vec<f64> {
        let n1 = (steps / 29).max(1);
        let n2 = (steps * 8 / 29).max(1);
        let n3 = steps.saturating_sub(n1 + n2).max(1);
        let mut betas = vec![0.0];
        for (lo, hi, n) in [(0.0, 0.5, n1), (0.5, 0.9, n2), (0.9, 1.0, n3)] {
            betas.extend((1..=n).map(|s| lo + (hi - lo) * s as f64 / n as f64));
        }
        if let Some(last) = betas.last_mut() {
            *last = 1.0;
        }
        betas
    }
}

/// An AIS estimate of `log Z`.
#[derive(Debug, Clone, PartialEq)]
pub struct AisEstimate {
    /// `log Ẑ`.
    pub log_z: f64,
    /// Delta-method standard error of `log Ẑ`.
    pub std_error: f64,
    /// `log Z_A` of the base model.
    pub log_z_base: f64,
    /// The runs' log-weights `log w_m`.
    pub log_weights: Vec<f64>,
}

impl AisEstimate {
    /// Estimated mean log-likelihood `−⟨F(v)⟩_data − log Ẑ` of `data` under `rbm` (the machine
    /// this estimate is for), with its standard error (that of `log Ẑ`: the data term is
    /// exact). Returns `(estimate, std_error)`.
    pub fn mean_log_likelihood(&self, rbm: &Rbm, data: &BinaryData) -> Result<(f64, f64)> {
        rbm.check_data(data)?;
        Ok((-rbm.mean_free_energy(data) - self.log_z, self.std_error))
    }
}

/// Estimates `log Z` of `rbm` by annealed importance sampling (see the module doc).
pub fn ais_log_partition(rbm: &Rbm, config: &AisConfig) -> Result<AisEstimate> {
    let betas = &config.betas;
    let k_steps = betas.len().saturating_sub(1);
    require(
        k_steps >= 1,
        "betas",
        betas.len() as f64,
        "at least two values",
    )?;
    require(betas[0] == 0.0, "betas[0]", betas[0], "exactly 0")?;
    require(
        betas[k_steps] == 1.0,
        "last beta",
        betas[k_steps],
        "exactly 1",
    )?;
    for w in betas.windows(2) {
        require(
            w[1].is_finite() && w[1] >= w[0],
            "beta",
            w[1],
            "finite and not below the previous one",
        )?;
    }
    draw(DRAW_AIS, k_steps as u64)?;
    require(config.runs >= 2, "runs", config.runs as f64, "at least 2")?;
    index("ais runs", config.runs - 1)?;

    let (nv, nh) = (rbm.nv(), rbm.nh());
    let base: Vec<f64> = match config.base {
        AisBase::Zero => vec![0.0; nv],
        AisBase::VisibleBiases => rbm.b.clone(),
    };
    let log_z_base =
        nh as f64 * std::f64::consts::LN_2 + base.iter().map(|&b| softplus(b)).sum::<f64>();
    let (mut v, mut h, mut a, mut av) =
        (vec![0.0; nv], vec![0.0; nh], vec![0.0; nh], vec![0.0; nv]);
    // log p*_β(v) given the hidden activations a = c + Wv.
    let log_p = |beta: f64, v: &[f64], a: &[f64]| {
        (1.0 - beta) * dot(&base, v)
            + beta * dot(&rbm.b, v)
            + a.iter().map(|&x| softplus(beta * x)).sum::<f64>()
    };
    let mut log_weights = Vec::with_capacity(config.runs);
    for m in 0..config.runs {
        let noise = NoiseStream::new(config.seed, m as u32, Domain::TrainNoise);
        for (i, vi) in v.iter_mut().enumerate() {
            *vi = bernoulli(&noise, DRAW_AIS, i as u32, sigmoid(base[i]));
        }
        let mut lw = 0.0;
        for k in 1..=k_steps {
            rbm.hidden_act(&v, &mut a);
            lw += log_p(betas[k], &v, &a) - log_p(betas[k - 1], &v, &a);
            if k < k_steps {
                // T_k: h ~ p_k(h | v), v ~ p_k(v | h).
                let d = DRAW_AIS + k as u32;
                let beta = betas[k];
                for (j, hj) in h.iter_mut().enumerate() {
                    *hj = bernoulli(&noise, d, (nv + j) as u32, sigmoid(beta * a[j]));
                }
                rbm.visible_act(&h, &mut av);
                for (i, vi) in v.iter_mut().enumerate() {
                    let x = beta * av[i] + (1.0 - beta) * base[i];
                    *vi = bernoulli(&noise, d, i as u32, sigmoid(x));
                }
            }
        }
        log_weights.push(lw);
    }
    let max = log_weights
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    let scaled: Vec<f64> = log_weights.iter().map(|&l| (l - max).exp()).collect();
    let n = scaled.len() as f64;
    let mean = scaled.iter().sum::<f64>() / n;
    let var = scaled.iter().map(|w| (w - mean).powi(2)).sum::<f64>() / (n - 1.0);
    Ok(AisEstimate {
        log_z: log_z_base + max + mean.ln(),
        std_error: (var / n).sqrt() / mean,
        log_z_base,
        log_weights,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zoo::boltzmann::data::noisy_prototypes;
    use crate::zoo::boltzmann::rbm::tests::random_rbm;
    use crate::zoo::boltzmann::{BoltzmannError, TrainConfig, train};

    /// AIS agrees with the exact value within 3 standard errors plus this slack (nats): the
    /// delta-method error understates the spread of heavy-tailed weights a little.
    const SLACK: f64 = 0.05;

    fn check(rbm: &Rbm, steps: usize, base: AisBase) -> (f64, f64) {
        let exact = rbm.log_partition().unwrap();
        let est = ais_log_partition(
            rbm,
            &AisConfig {
                betas: AisConfig::schedule(steps),
                runs: 100,
                base,
                seed: 3,
            },
        )
        .unwrap();
        let err = est.log_z - exact;
        assert!(
            err.abs() <= 3.0 * est.std_error + SLACK,
            "AIS {} vs exact {exact} (se {})",
            est.log_z,
            est.std_error
        );
        (err, est.std_error)
    }

    #[test]
    fn ais_matches_exact_log_z_random_rbm() {
        let rbm = random_rbm(12, 8, 0.5, 0.5, 21);
        let (e1, s1) = check(&rbm, 1000, AisBase::VisibleBiases);
        let (e2, s2) = check(&rbm, 1000, AisBase::Zero);
        eprintln!("random 12x8: err {e1:+.4} (se {s1:.4}); zero base err {e2:+.4} (se {s2:.4})");
    }

    #[test]
    fn ais_matches_exact_log_z_trained_rbm() {
        let data = noisy_prototypes(12, 3, 90, 0.05, 4);
        let init = Rbm::random(12, 8, 0.01, 1).unwrap();
        let cfg = TrainConfig {
            epochs: 200,
            learning_rate: 0.1,
            ..TrainConfig::default()
        };
        let rbm = train(&init, &data, &cfg).unwrap().rbm;
        let (e, s) = check(&rbm, 3000, AisBase::VisibleBiases);
        let max_w = rbm.weights().iter().fold(0.0f64, |a, w| a.max(w.abs()));
        eprintln!("CD-trained 12x8 (max |W| {max_w:.2}): err {e:+.4} (se {s:.4})");
        let exact_ll = rbm.mean_log_likelihood(&data).unwrap();
        let est = ais_log_partition(
            &rbm,
            &AisConfig {
                betas: AisConfig::schedule(3000),
                runs: 100,
                base: AisBase::VisibleBiases,
                seed: 8,
            },
        )
        .unwrap();
        let (ll, se) = est.mean_log_likelihood(&rbm, &data).unwrap();
        assert!(
            (ll - exact_ll).abs() <= 3.0 * se + SLACK,
            "{ll} vs {exact_ll}"
        );
    }

    #[test]
    fn ais_on_a_digits_rbm() {
        // 64 visible × 16 hidden: exact log Z by enumerating the 2¹⁶ hidden states.
        let ds = crate::data::digits().unwrap();
        let data = crate::zoo::boltzmann::binarize(&ds.x, ds.dim, 8.0).unwrap();
        let init = Rbm::random(64, 16, 0.01, 2).unwrap();
        let cfg = TrainConfig {
            epochs: 5,
            batch_size: 20,
            learning_rate: 0.05,
            ..TrainConfig::default()
        };
        let t = train(&init, &data, &cfg).unwrap();
        let ll: Vec<f64> = t.epochs.iter().map(|e| e.log_likelihood.unwrap()).collect();
        let ll0 = init.mean_log_likelihood(&data).unwrap();
        eprintln!("digits 64x16 CD-1: log-likelihood {ll0:.2} -> {ll:.2?}");
        assert!(ll[4] > ll0 + 10.0, "{ll0} -> {ll:?}");
        let (e, s) = check(&t.rbm, 2000, AisBase::VisibleBiases);
        eprintln!("digits 64x16: AIS err {e:+.4} (se {s:.4})");
    }

    #[test]
    fn bad_schedules_are_errors() {
        let rbm = Rbm::zeros(3, 2).unwrap();
        for betas in [
            vec![0.0],
            vec![0.1, 1.0],
            vec![0.0, 0.5],
            vec![0.0, 0.6, 0.5, 1.0],
            vec![0.0, f64::NAN, 1.0],
        ] {
            let cfg = AisConfig {
                betas,
                runs: 10,
                base: AisBase::Zero,
                seed: 0,
            };
            assert!(matches!(
                ais_log_partition(&rbm, &cfg),
                Err(BoltzmannError::BadParameter { .. })
            ));
        }
        let cfg = AisConfig {
            betas: vec![0.0, 1.0],
            runs: 1,
            base: AisBase::Zero,
            seed: 0,
        };
        assert!(ais_log_partition(&rbm, &cfg).is_err());
        // With no weights the base is exact: every weight is equal, the error zero.
        let cfg = AisConfig {
            betas: AisConfig::schedule(10),
            runs: 5,
            base: AisBase::VisibleBiases,
            seed: 0,
        };
        let est = ais_log_partition(&rbm, &cfg).unwrap();
        assert!((est.log_z - rbm.log_partition().unwrap()).abs() < 1e-12);
        assert_eq!(est.std_error, 0.0);
    }
}
