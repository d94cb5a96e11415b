//! The Gaussian [`Vae`]'s and the two-level [`Hvae`]'s training step on any [`Backend`], in
//! f32: what `microdiff train --objective vae | hvae --device cuda` runs (the f64
//! [`Vae::train`] and [`Hvae::train`] stay the CPU path and the reference).
//!
//! It owns [`train_on`]: the forward pass of both networks, the reparameterised ELBO
//! ([`Backend::reparam`], the analytic KL of [`Backend::reparam_bwd`], the decoder's
//! likelihood [`Backend::nll`]), the backward pass and Adam ([`Backend::adamw`] without decay)
//! — the arithmetic of [`Vae::train`], step for step; and [`train_hvae_on`], the same for two
//! latent levels and a learned prior ([`Backend::gauss_nll`]). It promises:
//!
//! * **The same randomness as the f64 trainers.** The mini-batch rows and the noise ε come
//!   from the same counters (the [module doc](super)'s table: stream = step,
//!   [`BATCH_DRAW`](super::BATCH_DRAW) for the rows, [`EPS_DRAW`]` + level` element
//!   `r·z_dim + j` for ε, drawn by [`Backend::fill_normal`], which is the runtime's Gaussian
//!   bit for bit on every backend), and training starts from the model's own initial
//!   parameters. So on the CPU backend it tracks the f64 trainer up to f32 rounding (the tests
//!   state by how much), and the CUDA backend tracks the CPU backend.
//! * **The same result type.** The trained parameters are written back into a [`Vae`] or
//!   [`Hvae`] (f64), so the run files, export and evaluation do not know which trainer ran.
//! * **No panics on user input.** Data, labels and sizes are checked as the f64 trainers
//!   check them; a device error is a [`BackendTrainError::Device`] with its step, a
//!   non-finite loss or gradient [`VaeError::NonFinite`], an activation without a kernel
//!   (tanh) [`BackendTrainError::Activation`].
//!
//! The decoder's class one-hot is written on the host into the columns after `z` of the
//! decoder's input, and [`Backend::reparam`] fills the first `z_dim` columns of each row.

use microdiff_runtime::noise::{Domain, NoiseStream};

use super::gaussian::{batch_index, check_labels, check_train, push_conditioned, rows};
use super::{
    Activation, EPS_DRAW, Hvae, HvaeConfig, Likelihood, TrainConfig, Vae, VaeConfig, VaeError, add,
    counter, mul,
};
use crate::backend::{
    AdamStep, AdamW, Backend, BackendError, GaussNll, Latent, LatentLoss, Linear, Moments, Nll,
    NllGrads, Observation, ParamGrads,
};

/// Why a backend training of a VAE failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BackendTrainError {
    /// The model, the data or the settings (the f64 trainer's checks), or a non-finite loss.
    #[error(transparent)]
    Vae(#[from] VaeError),
    /// An activation the backend has no kernel for.
    #[error(
        "--act {0}: the VAE trains on a backend with relu or silu; a {0} VAE trains on the CPU \
         only (--device cpu)"
    )]
    Activation(&'static str),
    /// The backend's device failed.
    #[error("device error at step {step}: {source}")]
    Device {
        /// The training step (0-based) during which it was reported.
        step: usize,
        /// The device's error.
        source: BackendError,
    },
}

/// The kernels' activation for a VAE's, if the backend has it.
fn kernel_activation(a: Activation) -> Result<microdiff_kernels::Activation, BackendTrainError> {
    match a {
        Activation::Relu => Ok(microdiff_kernels::Activation::Relu),
        Activation::Silu => Ok(microdiff_kernels::Activation::Silu),
        Activation::Tanh => Err(BackendTrainError::Activation("tanh")),
    }
}

/// One dense network's layers and its activations on the backend, for a batch of `b` rows.
struct Net<Buf> {
    /// The layers, with offsets into the whole model's parameter vector.
    layers: Vec<Linear>,
    /// Output of each linear layer (the last is the network's output). // (b, out_l)
    pre: Vec<Buf>,
    /// Activation of each hidden layer. // (b, out_l)
    act: Vec<Buf>,
    /// Gradient with respect to each linear layer's output. // (b, out_l)
    delta: Vec<Buf>,
    /// Gradient with respect to layer `l`'s input before the activation's derivative, `l ≥ 1`
    /// (index 0 unused, empty). // (b, in_l)
    dx: Vec<Buf>,
}

impl<Buf> Net<Buf> {
    /// The network of widths `sizes` whose parameters start at `base`, for `b` rows; returns it
    /// and the offset after its parameters.
    fn new<B: Backend<Buf = Buf>>(
        be: &B,
        sizes: &[usize],
        base: usize,
        b: usize,
    ) -> Result<(Self, usize), VaeError> {
        let mut at = base;
        let mut net = Net {
            layers: Vec::new(),
            pre: Vec::new(),
            act: Vec::new(),
            delta: Vec::new(),
            dx: Vec::new(),
        };
        let last = sizes.len().saturating_sub(2);
        for (l, w) in sizes.windows(2).enumerate() {
            let (i, o) = (w[0], w[1]);
            let nw = mul(i, o, "layer weights")?;
            net.layers.push(Linear {
                w: at,
                bias: Some(add(at, nw, "parameters")?),
                b,
                i,
                o,
            });
            at = add(add(at, nw, "parameters")?, o, "parameters")?;
            let out = mul(b, o, "activations")?;
            net.pre.push(be.zeros(out));
            net.delta.push(be.zeros(out));
            if l < last {
                net.act.push(be.zeros(out));
            }
            net.dx
                .push(be.zeros(if l == 0 { 0 } else { mul(b, i, "activations")? }));
        }
        Ok((net, at))
    }

    /// The network's output after [`Net::forward`]. // (b, out)
    fn output(&self) -> &Buf {
        &self.pre[self.pre.len() - 1]
    }

    /// Forward pass of `input` (`// (b, in)`).
    fn forward<B: Backend<Buf = Buf>>(
        &mut self,
        be: &B,
        act: microdiff_kernels::Activation,
        params: &Buf,
        input: &Buf,
    ) {
        let (last, hidden) = (self.layers.len() - 1, self.act.len());
        for (l, &layer) in self.layers.iter().enumerate() {
            let (done, rest) = self.act.split_at_mut(l.min(hidden));
            let x = if l == 0 { input } else { &done[l - 1] };
            if l < last {
                be.linear_act_fwd(act, layer, params, x, &mut self.pre[l], &mut rest[0]);
            } else {
                be.linear_fwd(layer, params, x, &mut self.pre[l]);
            }
        }
    }

    /// Backward pass from `delta[last]` (set by the caller): accumulates the parameter
    /// gradients into `grads` and, if `d_input` is given, writes the input's gradient there.
    fn backward<B: Backend<Buf = Buf>>(
        &mut self,
        be: &B,
        act: microdiff_kernels::Activation,
        p: ParamGrads<'_, Buf>,
        input: &Buf,
        d_input: Option<&mut Buf>,
    ) {
        let ParamGrads { params, grads } = p;
        for l in (1..self.layers.len()).rev() {
            let (lower, upper) = self.delta.split_at_mut(l);
            let p = ParamGrads {
                params,
                grads: &mut *grads,
            };
            be.linear_bwd(
                self.layers[l],
                p,
                &self.act[l - 1],
                &upper[0],
                Some(&mut self.dx[l]),
            );
            be.act_bwd(act, &self.pre[l - 1], &self.dx[l], &mut lower[l - 1]);
        }
        let p = ParamGrads { params, grads };
        be.linear_bwd(self.layers[0], p, input, &self.delta[0], d_input);
    }
}

/// The widths of a network: `input`, the hidden widths, `output`.
fn widths(input: usize, hidden: &[usize], output: usize) -> Vec<usize> {
    let mut s = vec![input];
    s.extend_from_slice(hidden);
    s.push(output);
    s
}

/// Trains a copy of `vae` on `x` (`// (n, x_dim)`) with `labels` (required iff the model is
/// class-conditional) for `cfg.steps` Adam steps on backend `be`, exactly as [`Vae::train`]
/// does in f64 (see the module doc); returns the trained model and the loss of every step
/// (nats per example, the f32 sums widened).
pub fn train_on<B: Backend>(
    be: &B,
    vae: &Vae,
    x: &[f64],
    labels: Option<&[u16]>,
    cfg: &TrainConfig,
) -> Result<(Vae, Vec<f64>), BackendTrainError> {
    let VaeConfig {
        x_dim,
        z_dim,
        classes,
        ref hidden,
        activation,
        likelihood,
        ..
    } = *vae.config();
    let act = kernel_activation(activation)?;
    // The f64 trainer's checks, in its order.
    let n = rows(x, x_dim)?;
    likelihood.check_data(x)?;
    check_labels(labels, n, classes)?;
    check_train(cfg)?;
    super::Adam::new(0, cfg.adam)?;
    counter(n, "data rows")?;
    let b = cfg.batch;
    counter(mul(b, z_dim, "batch noise")?, "batch noise")?;
    let enc_in_dim = add(x_dim, classes, "encoder input")?;
    let dec_in_dim = add(z_dim, classes, "decoder input")?;
    let two_z = mul(2, z_dim, "encoder output")?;
    mul(b, mul(2, enc_in_dim.max(dec_in_dim), "batch")?, "batch")?;

    let host_params: Vec<f32> = vae.params().iter().map(|&p| p as f32).collect();
    let n_params = host_params.len();
    let mut params = be.upload(&host_params);
    let mut grads = be.zeros(n_params);
    let (mut m, mut v) = (be.zeros(n_params), be.zeros(n_params));
    let no_decay = be.zeros(n_params);
    let (mut enc, at) = Net::new(be, &widths(enc_in_dim, hidden, two_z), 0, b)?;
    let (mut dec, at) = Net::new(be, &widths(dec_in_dim, hidden, x_dim), at, b)?;
    let obs = match likelihood {
        Likelihood::Gaussian => Observation::Gaussian { log_sigma: at },
        Likelihood::Bernoulli => Observation::Bernoulli,
    };
    let mut enc_in = be.zeros(mul(b, enc_in_dim, "encoder input")?);
    let mut dec_in = be.zeros(mul(b, dec_in_dim, "decoder input")?);
    let mut d_dec_in = be.zeros(mul(b, dec_in_dim, "decoder input")?);
    let mut x_b = be.zeros(mul(b, x_dim, "batch")?);
    let mut eps = be.zeros(mul(b, z_dim, "batch noise")?);
    let lat = Latent {
        rows: b,
        dim: z_dim,
        stride: dec_in_dim,
    };
    let scale = 1.0 / b as f64;
    let hp = AdamW {
        beta1: cfg.adam.beta1 as f32,
        beta2: cfg.adam.beta2 as f32,
        eps: cfg.adam.eps as f32,
        weight_decay: 0.0,
    };

    let (mut h_enc, mut h_dec, mut h_x) = (Vec::new(), Vec::new(), Vec::new());
    let z_zeros = vec![0.0; z_dim];
    let mut history = Vec::with_capacity(cfg.steps);
    for step in 0..cfg.steps {
        // Bounded by check_train.
        let ns = NoiseStream::new(cfg.seed, step as u32, Domain::TrainNoise);
        h_enc.clear();
        h_dec.clear();
        h_x.clear();
        for r in 0..b as u32 {
            let i = batch_index(&ns, r, n);
            let class = labels.map(|l| l[i]);
            let row = &x[i * x_dim..(i + 1) * x_dim];
            push_conditioned(&mut h_enc, row, class, classes);
            // z is written by `reparam`; the one-hot after it stays.
            push_conditioned(&mut h_dec, &z_zeros, class, classes);
            h_x.extend_from_slice(row);
        }
        let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        be.write(&mut enc_in, &f32s(&h_enc));
        be.write(&mut dec_in, &f32s(&h_dec));
        be.write(&mut x_b, &f32s(&h_x));
        be.fill_normal(&mut eps, &ns, EPS_DRAW);

        enc.forward(be, act, &params, &enc_in);
        be.reparam(lat, enc.output(), &eps, &mut dec_in);
        dec.forward(be, act, &params, &dec_in);
        let last = dec.delta.len() - 1;
        let nll = Nll {
            obs,
            rows: b,
            dim: x_dim,
            scale: scale as f32,
        };
        let g = NllGrads {
            params: &params,
            grads: &mut grads,
            d_out: &mut dec.delta[last],
        };
        let nll_sum = be.nll(nll, &x_b, &dec.pre[last], g);
        let p = ParamGrads {
            params: &params,
            grads: &mut grads,
        };
        dec.backward(be, act, p, &dec_in, Some(&mut d_dec_in));
        let last = enc.delta.len() - 1;
        let kl_sum = be.reparam_bwd(
            lat,
            &enc.pre[last],
            &eps,
            &d_dec_in,
            &mut enc.delta[last],
            LatentLoss::Kl {
                scale: scale as f32,
            },
        );
        let p = ParamGrads {
            params: &params,
            grads: &mut grads,
        };
        enc.backward(be, act, p, &enc_in, None);
        let loss = (f64::from(nll_sum) + f64::from(kl_sum)) * scale;
        let grad_norm = be.norm(&grads);
        be.check()
            .map_err(|source| BackendTrainError::Device { step, source })?;
        if !loss.is_finite() || !grad_norm.is_finite() {
            return Err(VaeError::NonFinite { what: "loss", step }.into());
        }
        let adam = AdamStep {
            hp,
            step: step as u64 + 1,
            lr: cfg.adam.lr as f32,
        };
        let moments = Moments {
            m: &mut m,
            v: &mut v,
        };
        be.adamw(&mut params, &grads, moments, &no_decay, adam);
        be.fill_zero(&mut grads);
        history.push(loss);
    }
    let trained: Vec<f64> = be.download(&params).iter().map(|&p| f64::from(p)).collect();
    be.check().map_err(|source| BackendTrainError::Device {
        step: cfg.steps,
        source,
    })?;
    let mut out = vae.clone();
    out.set_params(&trained)?;
    Ok((out, history))
}

/// Trains a copy of the two-level `hvae` on `x` (`// (n, x_dim)`) for `cfg.steps` Adam steps
/// on backend `be`, exactly as [`Hvae::train`] does in f64: the same rows, ε₁ from draw
/// `EPS_DRAW` and ε₂ from `EPS_DRAW + 1`, the one-sample negative ELBO
/// `−log p(x|z1) − log p(z1|z2) − log p(z2) + log q(z2|z1) + log q(z1|x)` (the learned prior by
/// [`Backend::gauss_nll`], the latents' terms by [`Backend::reparam_bwd`] with
/// [`LatentLoss::Sampled`]). Returns the trained model and the loss of every step.
pub fn train_hvae_on<B: Backend>(
    be: &B,
    hvae: &Hvae,
    x: &[f64],
    cfg: &TrainConfig,
) -> Result<(Hvae, Vec<f64>), BackendTrainError> {
    let HvaeConfig {
        x_dim,
        z1_dim: d1,
        z2_dim: d2,
        ref hidden,
        activation,
        likelihood,
        ..
    } = *hvae.config();
    let act = kernel_activation(activation)?;
    // The f64 trainer's checks, in its order.
    let n = rows(x, x_dim)?;
    likelihood.check_data(x)?;
    check_train(cfg)?;
    super::Adam::new(0, cfg.adam)?;
    counter(n, "data rows")?;
    let b = cfg.batch;
    counter(mul(b, d1.max(d2), "batch noise")?, "batch noise")?;
    mul(b, mul(2, d1.max(d2).max(x_dim), "batch")?, "batch")?;
    let (two1, two2) = (mul(2, d1, "latent heads")?, mul(2, d2, "latent heads")?);

    let host_params: Vec<f32> = hvae.params().iter().map(|&p| p as f32).collect();
    let n_params = host_params.len();
    let mut params = be.upload(&host_params);
    let mut grads = be.zeros(n_params);
    let (mut m, mut v) = (be.zeros(n_params), be.zeros(n_params));
    let no_decay = be.zeros(n_params);
    let (mut enc1, at) = Net::new(be, &widths(x_dim, hidden, two1), 0, b)?;
    let (mut enc2, at) = Net::new(be, &widths(d1, hidden, two2), at, b)?;
    let (mut prior, at) = Net::new(be, &widths(d2, hidden, two1), at, b)?;
    let (mut dec, at) = Net::new(be, &widths(d1, hidden, x_dim), at, b)?;
    let obs = match likelihood {
        Likelihood::Gaussian => Observation::Gaussian { log_sigma: at },
        Likelihood::Bernoulli => Observation::Bernoulli,
    };
    let mut x_b = be.zeros(mul(b, x_dim, "batch")?);
    let (mut eps1, mut eps2) = (
        be.zeros(mul(b, d1, "noise")?),
        be.zeros(mul(b, d2, "noise")?),
    );
    let (mut z1, mut z2) = (be.zeros(b * d1), be.zeros(b * d2));
    let (mut d_z1, mut d_z1_enc2, mut d_z2) =
        (be.zeros(b * d1), be.zeros(b * d1), be.zeros(b * d2));
    let lat1 = Latent {
        rows: b,
        dim: d1,
        stride: d1,
    };
    let lat2 = Latent {
        rows: b,
        dim: d2,
        stride: d2,
    };
    let scale = 1.0 / b as f64;
    let s = scale as f32;
    let hp = AdamW {
        beta1: cfg.adam.beta1 as f32,
        beta2: cfg.adam.beta2 as f32,
        eps: cfg.adam.eps as f32,
        weight_decay: 0.0,
    };
    let mut h_x = Vec::new();
    let mut history = Vec::with_capacity(cfg.steps);
    for step in 0..cfg.steps {
        // Bounded by check_train.
        let ns = NoiseStream::new(cfg.seed, step as u32, Domain::TrainNoise);
        h_x.clear();
        for r in 0..b as u32 {
            let i = batch_index(&ns, r, n);
            h_x.extend(x[i * x_dim..(i + 1) * x_dim].iter().map(|&v| v as f32));
        }
        be.write(&mut x_b, &h_x);
        be.fill_normal(&mut eps1, &ns, EPS_DRAW);
        be.fill_normal(&mut eps2, &ns, EPS_DRAW + 1);

        // Forward, bottom up: z1 ~ q(z1|x), z2 ~ q(z2|z1), then p(z1|z2) and p(x|z1).
        enc1.forward(be, act, &params, &x_b);
        be.reparam(lat1, enc1.output(), &eps1, &mut z1);
        enc2.forward(be, act, &params, &z1);
        be.reparam(lat2, enc2.output(), &eps2, &mut z2);
        prior.forward(be, act, &params, &z2);
        dec.forward(be, act, &params, &z1);

        // −log p(x|z1), back to z1.
        let last = dec.delta.len() - 1;
        let nll = Nll {
            obs,
            rows: b,
            dim: x_dim,
            scale: s,
        };
        let g = NllGrads {
            params: &params,
            grads: &mut grads,
            d_out: &mut dec.delta[last],
        };
        let nll_sum = be.nll(nll, &x_b, &dec.pre[last], g);
        let p = ParamGrads {
            params: &params,
            grads: &mut grads,
        };
        dec.backward(be, act, p, &z1, Some(&mut d_z1));
        // −log p(z1|z2): to z1 (+=) and to the prior's heads, back to z2.
        let last = prior.delta.len() - 1;
        let gn = GaussNll {
            rows: b,
            dim: d1,
            scale: s,
        };
        let prior_sum = be.gauss_nll(gn, &z1, &prior.pre[last], &mut d_z1, &mut prior.delta[last]);
        let p = ParamGrads {
            params: &params,
            grads: &mut grads,
        };
        prior.backward(be, act, p, &z2, Some(&mut d_z2));
        // −log p(z2) + log q(z2|z1), back to z1 through q(z2|z1).
        let last = enc2.delta.len() - 1;
        let sampled = |standard_prior| LatentLoss::Sampled {
            scale: s,
            standard_prior,
        };
        let top_sum = be.reparam_bwd(
            lat2,
            &enc2.pre[last],
            &eps2,
            &d_z2,
            &mut enc2.delta[last],
            sampled(true),
        );
        let p = ParamGrads {
            params: &params,
            grads: &mut grads,
        };
        enc2.backward(be, act, p, &z1, Some(&mut d_z1_enc2));
        // log q(z1|x); z1 fed the decoder, p(z1|z2) and q(z2|z1).
        be.add_assign(&mut d_z1, &d_z1_enc2);
        let last = enc1.delta.len() - 1;
        let low_sum = be.reparam_bwd(
            lat1,
            &enc1.pre[last],
            &eps1,
            &d_z1,
            &mut enc1.delta[last],
            sampled(false),
        );
        let p = ParamGrads {
            params: &params,
            grads: &mut grads,
        };
        enc1.backward(be, act, p, &x_b, None);

        let loss = [nll_sum, prior_sum, top_sum, low_sum]
            .iter()
            .map(|&t| f64::from(t))
            .sum::<f64>()
            * scale;
        let grad_norm = be.norm(&grads);
        be.check()
            .map_err(|source| BackendTrainError::Device { step, source })?;
        if !loss.is_finite() || !grad_norm.is_finite() {
            return Err(VaeError::NonFinite { what: "loss", step }.into());
        }
        let adam = AdamStep {
            hp,
            step: step as u64 + 1,
            lr: cfg.adam.lr as f32,
        };
        let moments = Moments {
            m: &mut m,
            v: &mut v,
        };
        be.adamw(&mut params, &grads, moments, &no_decay, adam);
        be.fill_zero(&mut grads);
        history.push(loss);
    }
    let trained: Vec<f64> = be.download(&params).iter().map(|&p| f64::from(p)).collect();
    be.check().map_err(|source| BackendTrainError::Device {
        step: cfg.steps,
        source,
    })?;
    let mut out = hvae.clone();
    out.set_params(&trained)?;
    Ok((out, history))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::Cpu;
    use crate::zoo::vae::AdamConfig;

    /// `n` rows of correlated 3-D Gaussian data, and labels in `0..2` (the sign of the first
    /// coordinate), from the test's own noise stream.
    fn data(n: usize, bernoulli: bool) -> (Vec<f64>, Vec<u16>) {
        let ns = NoiseStream::new(99, 7, Domain::TrainData);
        let mut x = Vec::new();
        let mut labels = Vec::new();
        for i in 0..n as u32 {
            let (a, b) = (
                f64::from(ns.normal(0, 2 * i)),
                f64::from(ns.normal(0, 2 * i + 1)),
            );
            let row = [a, 0.5 * a + 0.3 * b, -a + 0.1 * b];
            labels.push(u16::from(a > 0.0));
            if bernoulli {
                x.extend(row.iter().map(|&v| if v > 0.0 { 1.0 } else { 0.0 }));
            } else {
                x.extend_from_slice(&row);
            }
        }
        (x, labels)
    }

    /// The models the tests train: unconditional Gaussian (SiLU) and class-conditional
    /// Bernoulli (ReLU, two hidden layers).
    fn cases() -> Vec<(&'static str, VaeConfig, bool)> {
        vec![
            (
                "gaussian",
                VaeConfig {
                    x_dim: 3,
                    z_dim: 2,
                    classes: 0,
                    hidden: vec![16],
                    activation: Activation::Silu,
                    likelihood: Likelihood::Gaussian,
                    seed: 5,
                },
                false,
            ),
            (
                "bernoulli_conditional",
                VaeConfig {
                    x_dim: 3,
                    z_dim: 2,
                    classes: 2,
                    hidden: vec![12, 8],
                    activation: Activation::Relu,
                    likelihood: Likelihood::Bernoulli,
                    seed: 6,
                },
                true,
            ),
        ]
    }

    fn config(steps: usize) -> TrainConfig {
        TrainConfig {
            steps,
            batch: 16,
            adam: AdamConfig {
                lr: 1e-2,
                ..AdamConfig::default()
            },
            seed: 3,
        }
    }

    /// Largest `|a − b| / max(|b|, 1)`.
    fn worst(a: &[f64], b: &[f64]) -> f64 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
            .fold(0.0, f64::max)
    }

    /// f32 on the CPU backend vs the f64 trainer, 40 steps at lr 1e-2: the same rows and the
    /// same ε, so the only difference is rounding (f32 has 2⁻²⁴ ≈ 6e-8 relative per
    /// operation; Adam's normalised steps do not shrink it, and 40 steps of compounding leave
    /// about 1e-6: measured 6.6e-7 (Gaussian) and 2.3e-6 (Bernoulli)). 1e-4 relative (per
    /// nat, for losses of order 1–10) leaves 40× room without
    /// hiding a wrong formula, which moves the losses by far more from the first step.
    const F32_VS_F64: f64 = 1e-4;

    /// The backend trainer on the CPU backend tracks [`Vae::train`].
    #[test]
    fn cpu_backend_tracks_the_f64_trainer() {
        for (name, cfg, bernoulli) in cases() {
            let (x, labels) = data(200, bernoulli);
            let labels = (cfg.classes > 0).then_some(&labels[..]);
            let vae = Vae::new(cfg).unwrap();
            let mut reference = vae.clone();
            let want = reference.train(&x, labels, &config(40)).unwrap();
            let (trained, got) = train_on(&Cpu, &vae, &x, labels, &config(40)).unwrap();
            let (dl, dp) = (
                worst(&got, &want),
                worst(&trained.params(), &reference.params()),
            );
            println!("{name}: losses {dl:e}, parameters {dp:e}");
            assert!(dl <= F32_VS_F64, "{name}: losses differ by {dl:e}");
            assert!(dp <= F32_VS_F64, "{name}: parameters differ by {dp:e}");
            assert!(want[39] < want[0], "{name}: training must have learned");
        }
    }

    /// A tanh VAE is refused with a typed error that names the CPU path.
    #[test]
    fn tanh_is_refused_with_a_typed_error() {
        let mut cfg = cases()[0].1.clone();
        cfg.activation = Activation::Tanh;
        let (x, _) = data(20, false);
        let e = train_on(&Cpu, &Vae::new(cfg).unwrap(), &x, None, &config(1)).unwrap_err();
        assert!(matches!(e, BackendTrainError::Activation("tanh")));
        assert!(e.to_string().contains("--device cpu"), "{e}");
    }

    /// Bad data is refused as the f64 trainer refuses it.
    #[test]
    fn bad_data_is_refused() {
        let vae = Vae::new(cases()[0].1.clone()).unwrap();
        let e = train_on(&Cpu, &vae, &[1.0, 2.0], None, &config(1)).unwrap_err();
        assert!(
            matches!(e, BackendTrainError::Vae(VaeError::Shape { .. })),
            "{e}"
        );
        let e = train_on(&Cpu, &vae, &[f64::NAN; 3], None, &config(1)).unwrap_err();
        assert!(
            matches!(e, BackendTrainError::Vae(VaeError::BadValue { .. })),
            "{e}"
        );
    }

    /// The CUDA backend on the emulator (the kernel sources of `kernels/cuda` on the CPU)
    /// against the CPU backend, 5 steps: every operation is within the backend parity
    /// tolerances (`tests/parity`), composed over 5 Adam steps at lr 1e-2 (each moving a
    /// parameter by up to 1e-2): 1e-5 relative is 0.1 % of a step (measured: 1.7e-7).
    #[cfg(feature = "cuda-emu")]
    #[test]
    fn emulated_cuda_matches_the_cpu_backend() {
        use crate::backend::cuda::CudaBackend;
        use crate::backend::cuda::emu::EmuDevice;
        const EMU_VS_CPU: f64 = 1e-5;
        for (name, cfg, bernoulli) in cases() {
            let (x, labels) = data(100, bernoulli);
            let labels = (cfg.classes > 0).then_some(&labels[..]);
            let vae = Vae::new(cfg).unwrap();
            let gpu = CudaBackend::new(EmuDevice::new()).unwrap();
            let (a, la) = train_on(&Cpu, &vae, &x, labels, &config(5)).unwrap();
            let (b, lb) = train_on(&gpu, &vae, &x, labels, &config(5)).unwrap();
            let (dl, dp) = (worst(&lb, &la), worst(&b.params(), &a.params()));
            println!("{name}: emulated CUDA vs CPU: losses {dl:e}, parameters {dp:e}");
            assert!(
                dl <= EMU_VS_CPU && dp <= EMU_VS_CPU,
                "{name}: {dl:e} {dp:e}"
            );
        }
    }

    /// The two-level VAEs the tests train: Gaussian (SiLU) and Bernoulli (ReLU).
    fn hvae_cases() -> Vec<(&'static str, HvaeConfig, bool)> {
        vec![
            (
                "hvae_gaussian",
                HvaeConfig {
                    x_dim: 3,
                    z1_dim: 3,
                    z2_dim: 2,
                    hidden: vec![10],
                    activation: Activation::Silu,
                    likelihood: Likelihood::Gaussian,
                    seed: 7,
                },
                false,
            ),
            (
                "hvae_bernoulli",
                HvaeConfig {
                    x_dim: 3,
                    z1_dim: 2,
                    z2_dim: 1,
                    hidden: vec![8, 6],
                    activation: Activation::Relu,
                    likelihood: Likelihood::Bernoulli,
                    seed: 8,
                },
                true,
            ),
        ]
    }

    /// The two-level VAE's loss is a one-sample estimate whose terms (`log q − log p` pieces
    /// of a few nats per latent) cancel, so its f32 rounding is relative to the terms, not to
    /// the loss: measured 5.4e-5 (Bernoulli) over 40 steps against 1e-6 for its parameters;
    /// 5e-4 leaves 10×.
    const HVAE_LOSS_F32_VS_F64: f64 = 5e-4;

    /// [`train_hvae_on`] on the CPU backend tracks [`Hvae::train`]: parameters under
    /// [`F32_VS_F64`] (the same argument: the same rows and noise, rounding only), losses under
    /// [`HVAE_LOSS_F32_VS_F64`].
    #[test]
    fn hvae_on_the_cpu_backend_tracks_the_f64_trainer() {
        for (name, cfg, bernoulli) in hvae_cases() {
            let (x, _) = data(200, bernoulli);
            let hvae = Hvae::new(cfg).unwrap();
            let mut reference = hvae.clone();
            let want = reference.train(&x, &config(40)).unwrap();
            let (trained, got) = train_hvae_on(&Cpu, &hvae, &x, &config(40)).unwrap();
            let (dl, dp) = (
                worst(&got, &want),
                worst(&trained.params(), &reference.params()),
            );
            println!("{name}: losses {dl:e}, parameters {dp:e}");
            assert!(
                dl <= HVAE_LOSS_F32_VS_F64,
                "{name}: losses differ by {dl:e}"
            );
            assert!(dp <= F32_VS_F64, "{name}: parameters differ by {dp:e}");
        }
    }

    /// [`train_hvae_on`] on the emulated CUDA backend against the CPU backend (as
    /// `emulated_cuda_matches_the_cpu_backend`: parameters within 1e-5, measured 1.2e-7);
    /// the loss's cancelling terms summed in a tree instead of in order: 2e-5 (measured
    /// 1.6e-6).
    #[cfg(feature = "cuda-emu")]
    #[test]
    fn hvae_on_emulated_cuda_matches_the_cpu_backend() {
        use crate::backend::cuda::CudaBackend;
        use crate::backend::cuda::emu::EmuDevice;
        const EMU_VS_CPU: f64 = 1e-5;
        const LOSS_EMU_VS_CPU: f64 = 2e-5;
        for (name, cfg, bernoulli) in hvae_cases() {
            let (x, _) = data(100, bernoulli);
            let hvae = Hvae::new(cfg).unwrap();
            let gpu = CudaBackend::new(EmuDevice::new()).unwrap();
            let (a, la) = train_hvae_on(&Cpu, &hvae, &x, &config(5)).unwrap();
            let (b, lb) = train_hvae_on(&gpu, &hvae, &x, &config(5)).unwrap();
            let (dl, dp) = (worst(&lb, &la), worst(&b.params(), &a.params()));
            println!("{name}: emulated CUDA vs CPU: losses {dl:e}, parameters {dp:e}");
            assert!(
                dl <= LOSS_EMU_VS_CPU && dp <= EMU_VS_CPU,
                "{name}: {dl:e} {dp:e}"
            );
        }
    }
}
