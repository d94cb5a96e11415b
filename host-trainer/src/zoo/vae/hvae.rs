//! A two-level hierarchical VAE (unconditional): generative model
//! `p(z2) p(z1|z2) p(x|z1)` with `p(z2) = N(0, I)`, `p(z1|z2) = N(μ_p(z2), diag exp(lv_p(z2)))`
//! and `p(x|z1)` as in [`Vae`](super::Vae) ([`Likelihood`]); bottom-up inference
//! `q(z1|x) q(z2|z1)`, both diagonal Gaussians with log-variance heads.
//!
//! The log weight of one joint sample is
//! `log w = log p(x|z1) + log p(z1|z2) + log p(z2) − log q(z1|x) − log q(z2|z1)`; the ELBO is
//! its mean, IWAE its log-mean-exp. Training follows the reparameterised gradient of one
//! sample of `log w` per example (no closed-form KL: `p(z1|z2)` depends on a sample), written
//! in ε form, `−log q(z|·) = ½ Σ (ln 2π + lv + ε²)`, so the total derivative through both the
//! sample path and the density's parameters is exact.
//!
//! Networks and streams: `q(z1|x)` 0, `q(z2|z1)` 1, `p(z1|z2)` 2, `p(x|z1)` 3. Latent level 0
//! is `z1`, level 1 is `z2`: training ε of `z1`/`z2` from draws `EPS_DRAW`, `EPS_DRAW + 1`,
//! evaluation from `EVAL_DRAW`, `EVAL_DRAW + 1`. Generation (ancestral, top down) reads
//! `SAMPLE_DRAW` for `z2`, `SAMPLE_DRAW + 1` for `z1` and `SAMPLE_DRAW + 2` for `x`.

use microdiff_runtime::noise::{Domain, NoiseStream};

use super::dense::check_len;
use super::gaussian::{Flat, adam_loop, batch_noise, check_train, rows};
use super::{
    Activation, Dense, EPS_DRAW, EVAL_DRAW, Likelihood, Output, SAMPLE_DRAW, TrainConfig, VaeError,
    counter, log_mean_exp, log_normal, mul,
};

/// The shape of an [`Hvae`].
#[derive(Debug, Clone, PartialEq)]
pub struct HvaeConfig {
    /// Data dimension.
    pub x_dim: usize,
    /// Dimension of the lower latent `z1`.
    pub z1_dim: usize,
    /// Dimension of the top latent `z2`.
    pub z2_dim: usize,
    /// Hidden widths of each of the four networks (may be empty).
    pub hidden: Vec<usize>,
    /// Activation between layers.
    pub activation: Activation,
    /// The decoder's observation model.
    pub likelihood: Likelihood,
    /// Seed of the initial weights.
    pub seed: u64,
}

/// A two-level hierarchical VAE (see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub struct Hvae {
    config: HvaeConfig,
    /// `x → (μ1, lv1)`. // out: 2·z1_dim
    enc1: Dense,
    /// `z1 → (μ2, lv2)`. // out: 2·z2_dim
    enc2: Dense,
    /// `z2 → (μ_p, lv_p)` of `p(z1|z2)`. // out: 2·z1_dim
    prior: Dense,
    /// `z1 → mean or logits`. // out: x_dim
    decoder: Dense,
    /// Per-dimension log σ of the Gaussian likelihood; empty for Bernoulli.
    log_sigma: Vec<f64>,
}

/// `exp(lv / 2)`.
fn std_of(lv: f64) -> f64 {
    (0.5 * lv).exp()
}

impl Hvae {
    /// A freshly initialised model.
    pub fn new(config: HvaeConfig) -> Result<Self, VaeError> {
        for (field, v) in [
            ("x_dim", config.x_dim),
            ("z1_dim", config.z1_dim),
            ("z2_dim", config.z2_dim),
        ] {
            if v == 0 {
                return Err(VaeError::Config {
                    field,
                    reason: "must be ≥ 1".into(),
                });
            }
        }
        let sizes = |a: usize, b: usize| {
            let mut s = vec![a];
            s.extend_from_slice(&config.hidden);
            s.push(b);
            s
        };
        let (x, d1, d2) = (config.x_dim, config.z1_dim, config.z2_dim);
        let two1 = mul(2, d1, "latent heads")?;
        let two2 = mul(2, d2, "latent heads")?;
        let (act, seed) = (config.activation, config.seed);
        let enc1 = Dense::new(&sizes(x, two1), act, seed, 0)?;
        let enc2 = Dense::new(&sizes(d1, two2), act, seed, 1)?;
        let prior = Dense::new(&sizes(d2, two1), act, seed, 2)?;
        let decoder = Dense::new(&sizes(d1, x), act, seed, 3)?;
        let log_sigma = match config.likelihood {
            Likelihood::Gaussian => vec![0.0; x],
            Likelihood::Bernoulli => Vec::new(),
        };
        Ok(Self {
            config,
            enc1,
            enc2,
            prior,
            decoder,
            log_sigma,
        })
    }

    /// The configuration it was built with.
    #[must_use]
    pub fn config(&self) -> &HvaeConfig {
        &self.config
    }

    /// The network of `p(z1|z2)`: `z2` (`z2_dim` values) → `(μ_p, lv_p)` (`2·z1_dim` values,
    /// means first, then log-variances).
    #[must_use]
    pub fn prior(&self) -> &Dense {
        &self.prior
    }

    /// The decoder `p(x|z1)`: `z1` (`z1_dim` values) → the mean (Gaussian) or the logits
    /// (Bernoulli) of `x` (`x_dim` values).
    #[must_use]
    pub fn decoder(&self) -> &Dense {
        &self.decoder
    }

    /// The Gaussian likelihood's per-dimension log σ (`x_dim` values); empty for Bernoulli.
    #[must_use]
    pub fn log_sigma(&self) -> &[f64] {
        &self.log_sigma
    }

    /// All parameters, flat: `q(z1|x)`, `q(z2|z1)`, `p(z1|z2)`, `p(x|z1)`, log σ.
    #[must_use]
    pub fn params(&self) -> Vec<f64> {
        let mut p = Vec::new();
        for net in [&self.enc1, &self.enc2, &self.prior, &self.decoder] {
            p.extend_from_slice(net.params());
        }
        p.extend_from_slice(&self.log_sigma);
        p
    }

    /// Overwrites all parameters from the layout of [`params`](Self::params).
    pub fn set_params(&mut self, p: &[f64]) -> Result<(), VaeError> {
        check_len("parameters", self.params_len(), p.len())?;
        let mut rest = p;
        for net in [
            &mut self.enc1,
            &mut self.enc2,
            &mut self.prior,
            &mut self.decoder,
        ] {
            let (head, tail) = rest.split_at(net.params().len());
            net.params_mut().copy_from_slice(head);
            rest = tail;
        }
        self.log_sigma.copy_from_slice(rest);
        Ok(())
    }

    fn params_len(&self) -> usize {
        [&self.enc1, &self.enc2, &self.prior, &self.decoder]
            .iter()
            .map(|n| n.params().len())
            .sum::<usize>()
            + self.log_sigma.len()
    }

    /// Checks data; returns the number of rows.
    fn check(&self, x: &[f64]) -> Result<usize, VaeError> {
        let n = rows(x, self.config.x_dim)?;
        self.config.likelihood.check_data(x)?;
        Ok(n)
    }

    /// Trains on `x` (`// (n, x_dim)`) by Adam on the one-sample negative ELBO; returns the
    /// mini-batch loss of every step (nats per example).
    pub fn train(&mut self, x: &[f64], cfg: &TrainConfig) -> Result<Vec<f64>, VaeError> {
        let n = self.check(x)?;
        check_train(cfg)?;
        counter(n, "data rows")?;
        let (d1, d2) = (self.config.z1_dim, self.config.z2_dim);
        counter(mul(cfg.batch, d1.max(d2), "batch noise")?, "batch noise")?;
        mul(
            cfg.batch,
            mul(2, d1.max(d2).max(self.config.x_dim), "batch")?,
            "batch",
        )?;
        adam_loop(self, n, cfg, |h, ns, idx| {
            let e1 = batch_noise(ns, EPS_DRAW, idx.len(), d1);
            let e2 = batch_noise(ns, EPS_DRAW + 1, idx.len(), d2);
            h.loss_grad(x, idx, &e1, &e2)
        })
    }

    /// The mini-batch mean of `−log w` for rows `idx` with noise `eps1` (`// (b, z1_dim)`) and
    /// `eps2` (`// (b, z2_dim)`), and its gradient in the layout of [`params`](Self::params).
    pub(super) fn loss_grad(
        &self,
        x: &[f64],
        idx: &[usize],
        eps1: &[f64],
        eps2: &[f64],
    ) -> Result<(f64, Vec<f64>), VaeError> {
        let HvaeConfig {
            x_dim,
            z1_dim: d1,
            z2_dim: d2,
            likelihood,
            ..
        } = self.config;
        let b = idx.len();
        let scale = 1.0 / b as f64;
        let xb: Vec<f64> = idx
            .iter()
            .flat_map(|&i| x[i * x_dim..(i + 1) * x_dim].iter().copied())
            .collect();

        // Forward, bottom up: z1 ~ q(z1|x), z2 ~ q(z2|z1), then p(z1|z2) and p(x|z1).
        let t1 = self.enc1.forward(&xb)?;
        let h1 = t1.output(); // (b, 2·d1)
        let z1 = reparameterise(h1, eps1, d1);
        let t2 = self.enc2.forward(&z1)?;
        let h2 = t2.output(); // (b, 2·d2)
        let z2 = reparameterise(h2, eps2, d2);
        let tp = self.prior.forward(&z2)?;
        let hp = tp.output(); // (b, 2·d1)
        let td = self.decoder.forward(&z1)?;
        let out = td.output(); // (b, x_dim)

        let mut grad = vec![0.0; self.params_len()];
        let (g1, rest) = grad.split_at_mut(self.enc1.params().len());
        let (g2, rest) = rest.split_at_mut(self.enc2.params().len());
        let (gp, rest) = rest.split_at_mut(self.prior.params().len());
        let (gd, g_ls) = rest.split_at_mut(self.decoder.params().len());

        // log p(x|z1).
        let mut loss = 0.0;
        let mut d_out = vec![0.0; b * x_dim];
        for r in 0..b {
            loss -= likelihood.log_prob_grad(
                &xb[r * x_dim..(r + 1) * x_dim],
                &out[r * x_dim..(r + 1) * x_dim],
                &self.log_sigma,
                -scale,
                &mut d_out[r * x_dim..(r + 1) * x_dim],
                g_ls,
            );
        }
        let mut d_z1 = self.decoder.backward(&td, &d_out, gd)?;

        // log p(z1|z2): gradients to z1 directly and to (μ_p, lv_p).
        let mut d_hp = vec![0.0; b * 2 * d1];
        for r in 0..b {
            for j in 0..d1 {
                let (m, v) = (hp[r * 2 * d1 + j], hp[r * 2 * d1 + d1 + j]);
                let z = z1[r * d1 + j];
                loss -= log_normal(z, m, v);
                let diff = z - m;
                let inv = (-v).exp();
                d_z1[r * d1 + j] += scale * diff * inv;
                d_hp[r * 2 * d1 + j] = -scale * diff * inv;
                d_hp[r * 2 * d1 + d1 + j] = -scale * (0.5 * diff * diff * inv - 0.5);
            }
        }
        let mut d_z2 = self.prior.backward(&tp, &d_hp, gp)?;

        // log p(z2) and −log q(z2|z1) = ½ Σ (ln 2π + lv2 + ε2²).
        let mut d_h2 = vec![0.0; b * 2 * d2];
        for r in 0..b {
            for j in 0..d2 {
                let (m, v) = (h2[r * 2 * d2 + j], h2[r * 2 * d2 + d2 + j]);
                let z = z2[r * d2 + j];
                loss -= log_normal(z, 0.0, 0.0) - log_normal(z, m, v);
                d_z2[r * d2 + j] += scale * z;
                let dz = d_z2[r * d2 + j];
                d_h2[r * 2 * d2 + j] = dz;
                d_h2[r * 2 * d2 + d2 + j] = dz * eps2[r * d2 + j] * 0.5 * std_of(v) - scale * 0.5;
            }
        }
        let d_z1_enc2 = self.enc2.backward(&t2, &d_h2, g2)?;

        // −log q(z1|x) = ½ Σ (ln 2π + lv1 + ε1²); z1 feeds the decoder, p(z1|z2) and q(z2|z1).
        let mut d_h1 = vec![0.0; b * 2 * d1];
        for r in 0..b {
            for j in 0..d1 {
                let (m, v) = (h1[r * 2 * d1 + j], h1[r * 2 * d1 + d1 + j]);
                loss += log_normal(z1[r * d1 + j], m, v);
                let dz = d_z1[r * d1 + j] + d_z1_enc2[r * d1 + j];
                d_h1[r * 2 * d1 + j] = dz;
                d_h1[r * 2 * d1 + d1 + j] = dz * eps1[r * d1 + j] * 0.5 * std_of(v) - scale * 0.5;
            }
        }
        self.enc1.backward(&t1, &d_h1, g1)?;
        Ok((loss * scale, grad))
    }

    /// The `k` log weights of one row, noise from stream `i`.
    fn log_weights(&self, row: &[f64], i: u32, k: usize, seed: u64) -> Result<Vec<f64>, VaeError> {
        let HvaeConfig {
            x_dim,
            z1_dim: d1,
            z2_dim: d2,
            likelihood,
            ..
        } = self.config;
        let ns = NoiseStream::new(seed, i, Domain::TrainNoise);
        // k·d < 2³², checked by the caller.
        let eps = |draw: u32, d: usize| -> Vec<f64> {
            (0..k * d)
                .map(|e| f64::from(ns.normal(draw, e as u32)))
                .collect()
        };
        let h1 = self.enc1.apply(row)?;
        let e1 = eps(EVAL_DRAW, d1);
        let h1k: Vec<f64> = (0..k).flat_map(|_| h1.iter().copied()).collect();
        let z1 = reparameterise(&h1k, &e1, d1);
        let h2 = self.enc2.apply(&z1)?;
        let z2 = reparameterise(&h2, &eps(EVAL_DRAW + 1, d2), d2);
        let hp = self.prior.apply(&z2)?;
        let out = self.decoder.apply(&z1)?;
        Ok((0..k)
            .map(|s| {
                let mut lw =
                    likelihood.log_prob(row, &out[s * x_dim..(s + 1) * x_dim], &self.log_sigma);
                for j in 0..d1 {
                    let z = z1[s * d1 + j];
                    lw += log_normal(z, hp[s * 2 * d1 + j], hp[s * 2 * d1 + d1 + j]);
                    lw -= log_normal(z, h1[j], h1[d1 + j]);
                }
                for j in 0..d2 {
                    let z = z2[s * d2 + j];
                    lw += log_normal(z, 0.0, 0.0);
                    lw -= log_normal(z, h2[s * 2 * d2 + j], h2[s * 2 * d2 + d2 + j]);
                }
                lw
            })
            .collect())
    }

    fn bound(
        &self,
        x: &[f64],
        k: usize,
        seed: u64,
        reduce: fn(&[f64]) -> f64,
    ) -> Result<Vec<f64>, VaeError> {
        let n = self.check(x)?;
        if k == 0 {
            return Err(VaeError::Config {
                field: "samples",
                reason: "must be ≥ 1".into(),
            });
        }
        counter(n, "data rows")?;
        let widest = [self.config.z1_dim, self.config.z2_dim, self.config.x_dim]
            .into_iter()
            .max()
            .unwrap_or(1);
        counter(
            mul(k, 2 * widest, "importance samples")?,
            "importance samples",
        )?;
        let d = self.config.x_dim;
        (0..n)
            .map(|i| {
                let v = reduce(&self.log_weights(&x[i * d..(i + 1) * d], i as u32, k, seed)?);
                if v.is_finite() {
                    Ok(v)
                } else {
                    Err(VaeError::NonFinite {
                        what: "bound",
                        step: 0,
                    })
                }
            })
            .collect()
    }

    /// The ELBO of every row (nats) from `samples` joint draws of `q(z1|x) q(z2|z1)`. Noise:
    /// stream = row index, draws `EVAL_DRAW` (z1) and `EVAL_DRAW + 1` (z2).
    pub fn elbo(&self, x: &[f64], samples: usize, seed: u64) -> Result<Vec<f64>, VaeError> {
        self.bound(x, samples, seed, |w| w.iter().sum::<f64>() / w.len() as f64)
    }

    /// `IWAE_k = log mean_s w_s` of every row (nats), `k ≥ 1`; same noise as
    /// [`elbo`](Self::elbo), so `elbo(x, k, seed) ≤ iwae(x, k, seed)` point by point.
    pub fn iwae(&self, x: &[f64], k: usize, seed: u64) -> Result<Vec<f64>, VaeError> {
        self.bound(x, k, seed, log_mean_exp)
    }

    /// `n` ancestral samples (`// (n, x_dim)`): `z2 ~ N(0, I)`, `z1 ~ p(z1|z2)`, then the
    /// decoder's mean or a draw. Noise: stream = point index, draws `SAMPLE_DRAW + 0, 1, 2`.
    pub fn sample(&self, n: usize, output: Output, seed: u64) -> Result<Vec<f64>, VaeError> {
        let HvaeConfig {
            x_dim,
            z1_dim: d1,
            z2_dim: d2,
            likelihood,
            ..
        } = self.config;
        if n > 0 {
            counter(n - 1, "samples")?;
        }
        for d in [d1, d2, x_dim] {
            counter(d, "dimension")?;
            mul(n, mul(2, d, "samples")?, "samples")?;
        }
        let streams: Vec<NoiseStream> = (0..n)
            .map(|i| NoiseStream::new(seed, i as u32, Domain::TrainNoise))
            .collect();
        let z2: Vec<f64> = streams
            .iter()
            .flat_map(|ns| (0..d2).map(|j| f64::from(ns.normal(SAMPLE_DRAW, j as u32))))
            .collect();
        let hp = self.prior.apply(&z2)?;
        let e1: Vec<f64> = streams
            .iter()
            .flat_map(|ns| (0..d1).map(|j| f64::from(ns.normal(SAMPLE_DRAW + 1, j as u32))))
            .collect();
        let z1 = reparameterise(&hp, &e1, d1);
        let mut out = self.decoder.apply(&z1)?;
        for (e, o) in out.iter_mut().enumerate() {
            let (i, j) = (e / x_dim, e % x_dim);
            *o = match output {
                Output::Mean => likelihood.mean(*o),
                Output::Draw => {
                    let ls = self.log_sigma.get(j).copied().unwrap_or(0.0);
                    likelihood.draw(*o, ls, &streams[i], SAMPLE_DRAW + 2, j as u32)
                }
            };
        }
        Ok(out)
    }
}

/// `z = μ + exp(lv/2)·ε` row by row, from heads `h` (`// (b, 2·d)`: μ then lv) and `eps`
/// (`// (b, d)`).
fn reparameterise(h: &[f64], eps: &[f64], d: usize) -> Vec<f64> {
    eps.iter()
        .enumerate()
        .map(|(e, &n)| {
            let (r, j) = (e / d, e % d);
            h[r * 2 * d + j] + std_of(h[r * 2 * d + d + j]) * n
        })
        .collect()
}

impl Flat for Hvae {
    fn flat(&self) -> Vec<f64> {
        self.params()
    }
    fn set_flat(&mut self, p: &[f64]) -> Result<(), VaeError> {
        self.set_params(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zoo::vae::AdamConfig;
    use crate::zoo::vae::gaussian::tests::{moments, moons};

    /// See `dense`'s tests.
    const FD_STEP: f64 = 1e-6;
    /// Relative to `max(1, |g|)`.
    const FD_TOL: f64 = 1e-6;

    fn config(hidden: Vec<usize>, likelihood: Likelihood) -> HvaeConfig {
        HvaeConfig {
            x_dim: 2,
            z1_dim: 2,
            z2_dim: 2,
            hidden,
            activation: Activation::Tanh,
            likelihood,
            seed: 8,
        }
    }

    fn normals(draw: u32, len: usize) -> Vec<f64> {
        let ns = NoiseStream::new(5, 0, Domain::TrainNoise);
        (0..len)
            .map(|e| f64::from(ns.normal(draw, e as u32)))
            .collect()
    }

    #[test]
    fn loss_gradient_matches_finite_differences() {
        for likelihood in [Likelihood::Gaussian, Likelihood::Bernoulli] {
            let mut h = Hvae::new(HvaeConfig {
                x_dim: 3,
                z2_dim: 1,
                ..config(vec![4], likelihood)
            })
            .unwrap();
            let mut p = h.params();
            for (k, v) in p.iter_mut().enumerate() {
                *v += 0.01 * (k % 7) as f64;
            }
            h.set_params(&p).unwrap();
            let x: Vec<f64> = normals(0, 12)
                .iter()
                .map(|v| 1.0 / (1.0 + (-v).exp()))
                .collect();
            let idx = [0usize, 2, 3];
            let (e1, e2) = (normals(1, 6), normals(2, 3));
            let (_, grad) = h.loss_grad(&x, &idx, &e1, &e2).unwrap();
            let mut probe = h.clone();
            let mut at = |q: &[f64]| {
                probe.set_params(q).unwrap();
                probe.loss_grad(&x, &idx, &e1, &e2).unwrap().0
            };
            for k in 0..p.len() {
                let (mut a, mut b) = (p.clone(), p.clone());
                a[k] += FD_STEP;
                b[k] -= FD_STEP;
                let fd = (at(&a) - at(&b)) / (2.0 * FD_STEP);
                assert!(
                    (fd - grad[k]).abs() <= FD_TOL * grad[k].abs().max(1.0),
                    "{likelihood:?} param {k}: {} vs fd {fd}",
                    grad[k]
                );
            }
        }
    }

    #[test]
    fn trains_and_elbo_below_iwae() {
        let x = moons(1000);
        let mut h = Hvae::new(config(vec![32], Likelihood::Gaussian)).unwrap();
        let cfg = TrainConfig {
            steps: 2000,
            batch: 64,
            adam: AdamConfig {
                lr: 3e-3,
                ..AdamConfig::default()
            },
            seed: 6,
        };
        let eval = &x[..2 * 300];
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let before = mean(&h.elbo(eval, 1, 3).unwrap());
        let history = h.train(&x, &cfg).unwrap();
        let elbo = h.elbo(eval, 64, 3).unwrap();
        let iwae = h.iwae(eval, 64, 3).unwrap();
        for (e, w) in elbo.iter().zip(&iwae) {
            assert!(e <= w, "elbo {e} > iwae {w}");
        }
        let (me, mw) = (mean(&elbo), mean(&iwae));
        let late = mean(&history[history.len() - 100..]);
        let (dm, dc) = moments(&x);
        let (sm, sc) = moments(&h.sample(4000, Output::Draw, 9).unwrap());
        eprintln!(
            "hvae moons: ELBO {before:.3} → {me:.3}, IWAE_64 {mw:.3} (last 100 steps −ELBO {late:.3}); \
             data {dm:?} {dc:?}; samples {sm:?} {sc:?}"
        );
        assert!(me > before + 1.0, "ELBO {before} → {me}");
        // The bound gap is strictly positive after training (q is not the exact posterior).
        assert!(mw > me + 0.01, "IWAE {mw} vs ELBO {me}");
        for (a, b) in dm.iter().zip(&sm) {
            assert!((a - b).abs() < 0.15, "means {dm:?} vs {sm:?}");
        }
        for (a, b) in dc.iter().zip(&sc) {
            assert!((a - b).abs() < 0.2, "covariances {dc:?} vs {sc:?}");
        }
    }

    #[test]
    fn same_seed_same_bits() {
        let x = moons(100);
        let run = |seed: u64| {
            let mut h = Hvae::new(config(vec![8], Likelihood::Gaussian)).unwrap();
            let cfg = TrainConfig {
                steps: 20,
                batch: 8,
                adam: AdamConfig::default(),
                seed,
            };
            let hist = h.train(&x, &cfg).unwrap();
            let s = h.sample(5, Output::Draw, seed).unwrap();
            h.params()
                .iter()
                .chain(&hist)
                .chain(&s)
                .map(|v| v.to_bits())
                .collect::<Vec<u64>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }

    #[test]
    fn bad_input_is_an_error() {
        let h = Hvae::new(config(vec![], Likelihood::Bernoulli)).unwrap();
        assert_eq!(h.elbo(&[], 1, 0), Err(VaeError::Empty));
        assert!(matches!(
            h.iwae(&[0.5, 0.5], 0, 0),
            Err(VaeError::Config { .. })
        ));
        assert!(matches!(
            h.elbo(&[0.5, 1.5], 1, 0),
            Err(VaeError::BadValue { .. })
        ));
        assert!(matches!(
            h.elbo(&[0.5; 3], 1, 0),
            Err(VaeError::Shape { .. })
        ));
        assert!(
            Hvae::new(HvaeConfig {
                z2_dim: 0,
                ..config(vec![], Likelihood::Gaussian)
            })
            .is_err()
        );
        assert_eq!(h.sample(3, Output::Draw, 0).unwrap().len(), 6);
    }
}
