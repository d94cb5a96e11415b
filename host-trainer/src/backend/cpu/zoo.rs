//! The CPU backend's operations for the zoo's trainers (`crate::zoo`): the VAE's Gaussian
//! latent (reparameterisation, its backward pass and KL) and decoder likelihood, and the RBM's
//! Bernoulli draws from counter noise, transposed product, column sums and plain SGD.
//!
//! These are the references the CUDA kernels of `kernels/cuda/{vae,gibbs}.cu` are checked
//! against. The zoo's models are small (tens to hundreds of units), so the loops are plain and
//! single-threaded; every sum runs in ascending index order, reductions in f64 (as the
//! backend's other losses), so the result is a pure function of the inputs.

use microdiff_runtime::noise::NoiseStream;

use crate::backend::{GaussNll, Latent, LatentLoss, Linear, Nll, Observation, RowNoise};

/// `ln(2π)` in f32 (the Gaussian likelihood's constant).
const LN_2PI: f32 = 1.837_877;

/// `exp(lv/2)` as the kernels compute it.
fn std_of(lv: f32) -> f32 {
    libm::expf(0.5 * lv)
}

/// [`crate::backend::Backend::reparam`].
pub(super) fn reparam(lat: Latent, h: &[f32], eps: &[f32], z: &mut [f32]) {
    let Latent { rows, dim, stride } = lat;
    for r in 0..rows {
        for j in 0..dim {
            let (mu, lv) = (h[r * 2 * dim + j], h[r * 2 * dim + dim + j]);
            z[r * stride + j] = mu + std_of(lv) * eps[r * dim + j];
        }
    }
}

/// One latent's loss term and its `(dμ, dlv)` (see [`LatentLoss`]), `g` the gradient with
/// respect to `z`.
pub(super) fn latent_term(loss: LatentLoss, mu: f32, lv: f32, e: f32, g: f32) -> (f32, f32, f32) {
    let sd = std_of(lv);
    match loss {
        LatentLoss::Kl { scale: s } => (
            0.5 * (mu * mu + sd * sd - 1.0 - lv),
            g + s * mu,
            g * e * 0.5 * sd + s * 0.5 * (sd * sd - 1.0),
        ),
        LatentLoss::Sampled {
            scale: s,
            standard_prior,
        } => {
            let (term, g) = if standard_prior {
                let z = mu + sd * e;
                (0.5 * (z * z - lv - e * e), g + s * z)
            } else {
                (-0.5 * (LN_2PI + lv + e * e), g)
            };
            (term, g, g * e * 0.5 * sd - s * 0.5)
        }
    }
}

/// [`crate::backend::Backend::reparam_bwd`].
pub(super) fn reparam_bwd(
    lat: Latent,
    h: &[f32],
    eps: &[f32],
    dz: &[f32],
    dh: &mut [f32],
    loss: LatentLoss,
) -> f32 {
    let Latent { rows, dim, stride } = lat;
    let mut total = 0.0f64;
    for r in 0..rows {
        for j in 0..dim {
            let (mu, lv) = (h[r * 2 * dim + j], h[r * 2 * dim + dim + j]);
            let (t, dmu, dlv) = latent_term(loss, mu, lv, eps[r * dim + j], dz[r * stride + j]);
            dh[r * 2 * dim + j] = dmu;
            dh[r * 2 * dim + dim + j] = dlv;
            total += f64::from(t);
        }
    }
    total as f32
}

/// [`crate::backend::Backend::gauss_nll`].
pub(super) fn gauss_nll(g: GaussNll, z: &[f32], h: &[f32], dz: &mut [f32], dh: &mut [f32]) -> f32 {
    let GaussNll { rows, dim, scale } = g;
    let mut total = 0.0f64;
    for r in 0..rows {
        for j in 0..dim {
            let (m, v) = (h[r * 2 * dim + j], h[r * 2 * dim + dim + j]);
            let d = z[r * dim + j] - m;
            let inv = libm::expf(-v);
            total += f64::from(0.5 * (LN_2PI + v + d * d * inv));
            dz[r * dim + j] += scale * d * inv;
            dh[r * 2 * dim + j] = -scale * d * inv;
            dh[r * 2 * dim + dim + j] = -scale * (0.5 * d * d * inv - 0.5);
        }
    }
    total as f32
}

/// `ln(1 + eˣ)` without overflow, in f32.
pub(super) fn softplus(x: f32) -> f32 {
    x.max(0.0) + libm::log1pf(libm::expf(-x.abs()))
}

/// The negative log-likelihood of one value and its derivatives `(nll, ∂/∂out, ∂/∂s)` (the
/// last 0 for Bernoulli).
fn nll_term(obs: Observation, x: f32, out: f32, s: f32) -> (f32, f32, f32) {
    match obs {
        Observation::Gaussian { .. } => {
            let r = x - out;
            let inv = libm::expf(-2.0 * s);
            let q = r * r * inv;
            (0.5 * (LN_2PI + 2.0 * s + q), -(r * inv), 1.0 - q)
        }
        Observation::Bernoulli => {
            let p = 1.0 / (1.0 + libm::expf(-out));
            (softplus(out) - x * out, p - x, 0.0)
        }
    }
}

/// [`crate::backend::Backend::nll`].
pub(super) fn nll(
    nll: Nll,
    x: &[f32],
    out: &[f32],
    params: &[f32],
    grads: &mut [f32],
    d_out: &mut [f32],
) -> f32 {
    let Nll {
        obs,
        rows,
        dim,
        scale,
    } = nll;
    let log_sigma = |j: usize| match obs {
        Observation::Gaussian { log_sigma } => params[log_sigma + j],
        Observation::Bernoulli => 0.0,
    };
    let mut total = 0.0f64;
    for r in 0..rows {
        for j in 0..dim {
            let k = r * dim + j;
            let (l, d, _) = nll_term(obs, x[k], out[k], log_sigma(j));
            total += f64::from(l);
            d_out[k] = scale * d;
        }
    }
    if let Observation::Gaussian { log_sigma: at } = obs {
        // One column at a time, rows ascending (the kernel's order).
        for j in 0..dim {
            let mut acc = 0.0f32;
            for r in 0..rows {
                let k = r * dim + j;
                acc += nll_term(obs, x[k], out[k], log_sigma(j)).2;
            }
            grads[at + j] += scale * acc;
        }
    }
    total as f32
}

/// [`crate::backend::Backend::bernoulli`].
pub(super) fn bernoulli(p: &[f32], out: &mut [f32], noise: RowNoise<'_, Vec<f32>>) {
    let rows = noise.streams.len();
    if rows == 0 {
        return;
    }
    let n = p.len() / rows;
    for (r, &id) in noise.streams.iter().enumerate() {
        let ns = NoiseStream::new(noise.seed, id.to_bits(), noise.domain);
        for j in 0..n {
            // Elements are u32 counters: the caller keeps offset + n in range, and wrapping
            // is what the kernel's unsigned arithmetic does.
            let e = noise.offset.wrapping_add(j as u32);
            out[r * n + j] = if ns.uniform(noise.draw, e) < p[r * n + j] {
                1.0
            } else {
                0.0
            };
        }
    }
}

/// [`crate::backend::Backend::linear_t_fwd`]: each output a sum over `o` in ascending order,
/// started from the bias.
pub(super) fn linear_t_fwd(layer: Linear, params: &[f32], x: &[f32], y: &mut [f32]) {
    let Linear { w, bias, b, i, o } = layer;
    for r in 0..b {
        for c in 0..i {
            let mut s = 0.0f32;
            for k in 0..o {
                s += x[r * o + k] * params[w + k * i + c];
            }
            y[r * i + c] = match bias {
                Some(at) => s + params[at + c],
                None => s,
            };
        }
    }
}

/// [`crate::backend::Backend::col_sum`].
pub(super) fn col_sum(x: &[f32], cols: usize, weight: f32, g: &mut [f32]) {
    if cols == 0 {
        return;
    }
    let rows = x.len() / cols;
    for (c, gc) in g.iter_mut().enumerate().take(cols) {
        let mut s = 0.0f32;
        for r in 0..rows {
            s += x[r * cols + c];
        }
        *gc += weight * s;
    }
}

/// [`crate::backend::Backend::sgd`].
pub(super) fn sgd(p: &mut [f32], g: &[f32], mask: &[f32], lr: f32, wd: f32) {
    for ((p, &g), &m) in p.iter_mut().zip(g).zip(mask) {
        *p -= lr * (g + wd * m * *p);
    }
}
