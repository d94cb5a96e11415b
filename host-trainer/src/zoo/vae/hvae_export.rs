//! A trained two-level [`Hvae`]'s generative path as a weight blob for the no_std runtime:
//! `z2 ~ N(0, I)`, `z1 ~ p(z1 | z2)`, `x = E[x | z1]`, one network pass per sample with the
//! inner latent's noise drawn inside the network.
//!
//! # What the blob holds
//!
//! * META: objective [`Objective::Vae`] (a decoder of noise, prediction
//!   [`Prediction::Sample`]), no classes, the map to data units as for the VAE.
//! * GRAPH: `z2 = SLICE(input, 0, z2_dim)` (the program fills the input register with
//!   Gaussian noise), the prior network `p(z1 | z2)` with its last layer as two `LINEAR`s — the
//!   mean `μ` and the half log-variance `lv / 2` (that layer's rows scaled by ½, exact in
//!   binary) — then `z1 = μ + EXP(lv / 2) ⊙ NOISE(z1_dim)` (`ADD`, `MUL`), then the decoder
//!   to the mean `E[x | z1]` (a `SIGMOID` of the logits for a Bernoulli decoder).
//! * PROGRAMS: [`PROGRAM`], `LIN r0 = 1·z; EVAL r0 ← r0; STEP`, as the VAE's.
//!
//! # Promises
//!
//! The device computes, in f32 (weights as `dtype`), what [`Hvae::sample`]'s mean computes in
//! f64 at the same `z2` and `ε1` (tested to f32 rounding); `z2` is draw 0 of the sampler's
//! noise and `ε1` elements `0..z1_dim` of the network draw of the program's only `EVAL`.

use microdiff_kernels::{Activation as DeviceActivation, Dtype};
use microdiff_runtime::blob::meta::{Objective, Prediction};
use microdiff_runtime::blob::program::ClassSel;
use microdiff_runtime::blob::{BlobBuilder, ProgramBuilder, Value};

use super::export::{PROGRAM, Units, VaeExportError, device_check};
use super::{Dense, Hvae, Likelihood};

/// The blob of `hvae`'s generative path for samples of `shape`, matrices stored as `dtype`
/// (f32, f16 or int8 with per-row scales; biases f32); `units = (scale, offset)` maps the
/// model's space to data units, `data = x · scale + offset`.
pub fn hvae_blob(
    hvae: &Hvae,
    shape: &[u16],
    dtype: Dtype,
    units: Units<'_>,
) -> Result<Vec<u8>, VaeExportError> {
    let c = hvae.config();
    let act = device_check(c.activation, shape, c.x_dim, c.z2_dim)?;
    let x_dim = c.x_dim;
    let (d1, d2) = (c.z1_dim as u32, c.z2_dim as u32);
    let mut b = BlobBuilder::new(shape, Objective::Vae, Prediction::Sample);
    b.normalization(units.0, units.1);
    let z2 = b.slice(b.input(), 0, d2);
    // The prior up to its last layer, whose rows are μ then lv.
    let (h, last) = hidden_layers(&mut b, hvae.prior(), z2, act, dtype)?;
    let (w, bias) = last;
    let fan_in = w.len() / (2 * c.z1_dim).max(1);
    let half = |v: &[f32]| v.iter().map(|&x| 0.5 * x).collect::<Vec<f32>>();
    let split = (c.z1_dim * fan_in).min(w.len());
    let (w_mu, w_lv) = w.split_at(split);
    let (b_mu, b_lv) = bias.split_at(c.z1_dim.min(bias.len()));
    let mu = linear(&mut b, h, (w_mu, b_mu), (d1, fan_in as u32), dtype)?;
    let hlv = linear(
        &mut b,
        h,
        (&half(w_lv), &half(b_lv)),
        (d1, fan_in as u32),
        dtype,
    )?;
    let std = b.activation(hlv, DeviceActivation::Exp);
    let eps = b.noise(0, d1);
    let s = b.mul(std, eps);
    let z1 = b.add(mu, s);
    let (h, last) = hidden_layers(&mut b, hvae.decoder(), z1, act, dtype)?;
    let fan_in = last.0.len() / x_dim.max(1);
    let mut out = linear(
        &mut b,
        h,
        (&last.0, &last.1),
        (x_dim as u32, fan_in as u32),
        dtype,
    )?;
    if c.likelihood == Likelihood::Bernoulli {
        out = b.activation(out, DeviceActivation::Sigmoid);
    }
    b.output(out);
    let mut p = ProgramBuilder::new(PROGRAM, 1);
    p.lin(0, &[], Some(1.0))
        .eval(0, 0, ClassSel::Caller, 0.0)
        .step();
    b.program(&p);
    Ok(b.build()?)
}

/// `net`'s layers but the last on `x` (each `LINEAR`, then the activation before the next),
/// and the last layer's f32 weight and bias for the caller to write.
#[allow(clippy::type_complexity)]
fn hidden_layers(
    b: &mut BlobBuilder,
    net: &Dense,
    x: Value,
    act: DeviceActivation,
    dtype: Dtype,
) -> Result<(Value, (Vec<f32>, Vec<f32>)), VaeExportError> {
    let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let mut h = x;
    let layers = net.layers();
    for l in 0..layers.saturating_sub(1) {
        let (w, bias) = net.layer(l);
        let (fan_in, fan_out) = (net.sizes()[l], net.sizes()[l + 1]);
        h = linear(
            b,
            h,
            (&f32s(w), &f32s(bias)),
            (fan_out as u32, fan_in as u32),
            dtype,
        )?;
        h = b.activation(h, act);
    }
    let (w, bias) = net.layer(layers.saturating_sub(1));
    Ok((h, (f32s(w), f32s(bias))))
}

/// `W·x + bias` with `W` `(rows, cols)` stored as `dtype`.
fn linear(
    b: &mut BlobBuilder,
    x: Value,
    (w, bias): (&[f32], &[f32]),
    (rows, cols): (u32, u32),
    dtype: Dtype,
) -> Result<Value, VaeExportError> {
    let wt = b.tensor(dtype, rows, cols, w)?;
    let bt = b.tensor(Dtype::F32, rows, 1, bias)?;
    Ok(b.linear(x, wt, Some(bt)))
}

#[cfg(test)]
mod tests {
    use microdiff_runtime::noise::{Domain, NoiseStream};
    use microdiff_runtime::{Model, SampleRequest, batch, sample};

    use super::*;
    use crate::zoo::vae::{Activation, HvaeConfig};

    fn hvae(hidden: Vec<usize>, activation: Activation, likelihood: Likelihood) -> Hvae {
        Hvae::new(HvaeConfig {
            x_dim: 6,
            z1_dim: 3,
            z2_dim: 2,
            hidden,
            activation,
            likelihood,
            seed: 5,
        })
        .unwrap()
    }

    /// The host's generative path in f64 at the device's `z2` and `ε1`.
    fn host_sample(h: &Hvae, z2: &[f32], e1: &[f32]) -> Vec<f64> {
        let c = h.config();
        let z2: Vec<f64> = z2.iter().map(|&v| f64::from(v)).collect();
        let hp = h.prior().apply(&z2).unwrap();
        let z1: Vec<f64> = (0..c.z1_dim)
            .map(|j| hp[j] + (0.5 * hp[c.z1_dim + j]).exp() * f64::from(e1[j]))
            .collect();
        let out = h.decoder().apply(&z1).unwrap();
        out.into_iter().map(|o| c.likelihood.mean(o)).collect()
    }

    /// Every sample the device makes is the host's generative path at the same noise, to f32
    /// rounding, for several shapes and both decoders.
    #[test]
    fn the_device_sample_is_the_hosts() {
        for (hidden, act, lik) in [
            (vec![5, 4], Activation::Silu, Likelihood::Gaussian),
            (vec![7], Activation::Relu, Likelihood::Bernoulli),
            (vec![], Activation::Relu, Likelihood::Gaussian),
        ] {
            let h = hvae(hidden, act, lik);
            let bytes = hvae_blob(&h, &[2, 3], Dtype::F32, (&[], &[])).unwrap();
            let model = Model::parse(&bytes).unwrap();
            assert_eq!(model.meta().objective, Objective::Vae);
            let mut arena = vec![0u8; model.arena_bytes()];
            let program = model.program(PROGRAM).unwrap();
            for stream in 0..16 {
                let spec = SampleRequest {
                    seed: 3,
                    stream,
                    class: 0,
                };
                let mut got = [0.0f32; 6];
                sample(&model, program, &mut arena, spec, &mut got).unwrap();
                let mut z2 = [0.0f32; 2];
                NoiseStream::new(3, stream, Domain::Sampler).fill_normal(0, &mut z2);
                let mut e1 = [0.0f32; 3];
                NoiseStream::new(3, stream, Domain::Network).fill_normal(0, &mut e1);
                let want = host_sample(&h, &z2, &e1);
                for (o, w) in got.iter().zip(&want) {
                    assert!(
                        (f64::from(*o) - w).abs() <= 1e-5 * (1.0 + w.abs()),
                        "{lik:?} stream {stream}: {got:?} vs {want:?}"
                    );
                }
            }
            // The batched host sampler makes the same bits.
            let specs: Vec<SampleRequest> = (0..5)
                .map(|i| SampleRequest {
                    seed: 3,
                    stream: i,
                    class: 0,
                })
                .collect();
            let mut out = vec![0.0f32; 30];
            batch::sample_batch(&model, program, &specs, &mut out, 2).unwrap();
            let mut one = [0.0f32; 6];
            sample(&model, program, &mut arena, specs[4], &mut one).unwrap();
            assert_eq!(one.to_vec(), out[24..30]);
        }
    }

    #[test]
    fn what_the_device_cannot_run_is_refused() {
        let t = hvae(vec![4], Activation::Tanh, Likelihood::Gaussian);
        let err = hvae_blob(&t, &[6], Dtype::F32, (&[], &[])).unwrap_err();
        assert_eq!(err, VaeExportError::Activation("tanh"));
        let h = hvae(vec![4], Activation::Relu, Likelihood::Gaussian);
        let err = hvae_blob(&h, &[7], Dtype::F32, (&[], &[])).unwrap_err();
        assert!(
            matches!(err, VaeExportError::Shape { x_dim: 6, .. }),
            "{err}"
        );
        let wide = Hvae::new(HvaeConfig {
            z2_dim: 9,
            ..h.config().clone()
        })
        .unwrap();
        let err = hvae_blob(&wide, &[6], Dtype::F32, (&[], &[])).unwrap_err();
        assert!(
            matches!(err, VaeExportError::Latent { z_dim: 9, .. }),
            "{err}"
        );
    }
}
