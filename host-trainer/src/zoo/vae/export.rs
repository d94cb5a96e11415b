//! A trained [`Vae`]'s decoder as a weight blob for the no_std runtime: one network pass per
//! sample, so a VAE runs on a microcontroller with the ops the diffusion models already use.
//!
//! # What the blob holds
//!
//! * META: the data shape, objective [`Objective::Vae`], prediction [`Prediction::Sample`],
//!   the classes of a conditional model (no null class), and the map from the space the VAE
//!   was trained in to data units (`data = x · scale + offset`, e.g. `(16, 0)` for digits
//!   trained as `pixel / 16`).
//! * GRAPH: the decoder `z ⊕ onehot(c) → … → mean`, op for op. The network input is a whole
//!   sample-sized register whose first `z_dim` elements are the latent: the first `LINEAR`'s
//!   columns past `z_dim` are zero (the format has no op that takes a prefix of a value yet,
//!   so those products are wasted: `(x_dim − z_dim) · hidden` of them). The one-hot part of the
//!   first layer is a `CLASS_EMBED` row added to its output, which is the same sum.
//! * PROGRAMS: [`PROGRAM`], `LIN r0 = 1·z; EVAL r0 ← r0 (class); STEP`: the latent is the
//!   sampler's Gaussian noise (draw 0 of the request's seed and stream) and the sample is the
//!   decoder's mean `E[x|z]`, as [`Output::Mean`](super::Output::Mean) on the host (whose
//!   latents come from the training noise domain, so the two do not draw the same `z`).
//!
//! # Promises
//!
//! The device evaluates the decoder in f32 (weights as `dtype`) on the same `z` the host
//! would read from the blob's input: tested against [`Dense::apply`](super::Dense::apply) to
//! f32 rounding. What the runtime cannot run is refused with a [`VaeExportError`] naming it:
//! a `tanh` decoder, a latent wider than a sample, and a Bernoulli decoder's full-integer export
//! (its float export ends in the runtime's `sigmoid`: the mean `σ(logits)`).

use microdiff_kernels::{Activation as DeviceActivation, Dtype};
use microdiff_runtime::Error as BlobError;
use microdiff_runtime::blob::graph::GatherKey;
use microdiff_runtime::blob::meta::{Objective, Prediction};
use microdiff_runtime::blob::program::ClassSel;
use microdiff_runtime::blob::{BlobBuilder, ProgramBuilder};
use microdiff_runtime::noise::{Domain, NoiseStream};

use super::{Activation, Likelihood, Vae};
use crate::export::BuildError;
use crate::export::w8a8::{Q, Range, lut, qadd_consts, qlinear_tensors, table};

pub use super::hvae_export::hvae_blob;

/// The program every exported VAE blob carries.
pub const PROGRAM: &str = "decode";

/// Why a VAE cannot be exported for the device.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum VaeExportError {
    /// The decoder's activation has no device op.
    #[error("the device runtime has no {0} activation (train the VAE with relu or silu)")]
    Activation(&'static str),
    /// The W8A8 export of a Bernoulli decoder (its float export ends in a sigmoid).
    #[error(
        "a Bernoulli decoder has no full-integer export yet (export it with --dtype f32, f16 \
         or i8, or train the VAE with the Gaussian likelihood)"
    )]
    Bernoulli,
    /// The latent is drawn into one sample-sized register.
    #[error("latent dimension {z_dim} is larger than a sample ({x_dim} values)")]
    Latent {
        /// The VAE's latent dimension.
        z_dim: usize,
        /// Its data dimension.
        x_dim: usize,
    },
    /// The shape's element count is not the VAE's data dimension (or does not fit a blob).
    #[error("data shape {shape:?} does not hold the VAE's {x_dim} values")]
    Shape {
        /// The shape given.
        shape: Vec<u16>,
        /// The VAE's data dimension.
        x_dim: usize,
    },
    /// More classes than a blob's class ids hold.
    #[error("{0} classes: a blob's class ids are 16-bit")]
    Classes(usize),
    /// The blob builder refused (a tensor too large for the format, …).
    #[error("building the blob: {0}")]
    Blob(#[from] BlobError),
    /// The W8A8 quantization refused (a scale out of the integer ops' range).
    #[error("W8A8 export: {0}")]
    Quantize(#[from] BuildError),
}

/// The blob of `vae`'s decoder for samples of `shape`, matrices stored as `dtype` (f32, f16 or
/// int8 with per-row scales; biases f32); `units = (scale, offset)` maps the VAE's space to data
/// units, `data = x · scale + offset` (one value for all elements or one per element).
pub fn blob(
    vae: &Vae,
    shape: &[u16],
    dtype: Dtype,
    units: Units<'_>,
) -> Result<Vec<u8>, VaeExportError> {
    let (act, classes) = check(vae, shape)?;
    let c = vae.config();
    let x_dim = c.x_dim;
    let mut b = start(shape, classes, units);
    let dec = vae.decoder();
    let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let mut h = b.input();
    for l in 0..dec.layers() {
        let (w, bias) = dec.layer(l);
        let (fan_in, fan_out) = (dec.sizes()[l], dec.sizes()[l + 1]);
        // Bounded by the blob builder's checks (it refuses what the format cannot hold).
        let (rows, bias_t) = (
            fan_out as u32,
            b.tensor(Dtype::F32, fan_out as u32, 1, &f32s(bias))?,
        );
        if l == 0 {
            let (wz, table) = split_first_layer(vae);
            let wt = b.tensor(dtype, rows, x_dim as u32, &wz)?;
            h = b.linear(h, wt, Some(bias_t));
            if classes > 0 {
                let t = b.tensor(dtype, u32::from(classes), rows, &table)?;
                let e = b.class_embed(t);
                h = b.add(h, e);
            }
        } else {
            h = b.activation(h, act);
            let wt = b.tensor(dtype, rows, fan_in as u32, &f32s(w))?;
            h = b.linear(h, wt, Some(bias_t));
        }
    }
    if c.likelihood == Likelihood::Bernoulli {
        h = b.activation(h, DeviceActivation::Sigmoid);
    }
    b.output(h);
    Ok(finish(b)?)
}

/// The device activation of a VAE's `activation`, and that `shape` holds `x_dim` values and a
/// `z_dim` latent fits in one sample-sized register — or why the device cannot run it. Shared
/// by the VAE's and the two-level VAE's exports.
pub(super) fn device_check(
    activation: Activation,
    shape: &[u16],
    x_dim: usize,
    z_dim: usize,
) -> Result<DeviceActivation, VaeExportError> {
    let act = match activation {
        Activation::Relu => DeviceActivation::Relu,
        Activation::Silu => DeviceActivation::Silu,
        Activation::Tanh => return Err(VaeExportError::Activation("tanh")),
    };
    let elems = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(usize::from(d)));
    if elems != Some(x_dim) || shape.is_empty() {
        return Err(VaeExportError::Shape {
            shape: shape.to_vec(),
            x_dim,
        });
    }
    if z_dim > x_dim {
        return Err(VaeExportError::Latent { z_dim, x_dim });
    }
    Ok(act)
}

/// The device activation of `vae`'s decoder and its class count, or why it cannot run.
fn check(vae: &Vae, shape: &[u16]) -> Result<(DeviceActivation, u16), VaeExportError> {
    let c = vae.config();
    let act = device_check(c.activation, shape, c.x_dim, c.z_dim)?;
    let classes = u16::try_from(c.classes).map_err(|_| VaeExportError::Classes(c.classes))?;
    Ok((act, classes))
}

/// The map from a VAE's space to data units, `data = x · scale + offset`: one value for all
/// elements, one per element, or both empty for the identity.
pub type Units<'a> = (&'a [f32], &'a [f32]);

/// META of a VAE blob.
fn start(shape: &[u16], classes: u16, (scale, offset): Units<'_>) -> BlobBuilder {
    let mut b = BlobBuilder::new(shape, Objective::Vae, Prediction::Sample);
    if classes > 0 {
        b.classes(classes, None);
    }
    b.normalization(scale, offset);
    b
}

/// The program, then the bytes.
fn finish(mut b: BlobBuilder) -> Result<Vec<u8>, BlobError> {
    let mut p = ProgramBuilder::new(PROGRAM, 1);
    p.lin(0, &[], Some(1.0))
        .eval(0, 0, ClassSel::Caller, 0.0)
        .step();
    b.program(&p);
    b.build()
}

/// The first layer as the device holds it: the latent's columns widened to the input register
/// (`(out, x_dim)`, zero past `z_dim`) and the one-hot's columns as class rows
/// (`(classes, out)`).
fn split_first_layer(vae: &Vae) -> (Vec<f32>, Vec<f32>) {
    let c = vae.config();
    let dec = vae.decoder();
    let (w, _) = dec.layer(0);
    let (fan_in, fan_out) = (dec.sizes()[0], dec.sizes()[1]);
    let mut wz = vec![0.0f32; fan_out * c.x_dim];
    let mut table = vec![0.0f32; c.classes * fan_out];
    for o in 0..fan_out {
        let row = &w[o * fan_in..(o + 1) * fan_in];
        for (i, &v) in row[..c.z_dim].iter().enumerate() {
            wz[o * c.x_dim + i] = v as f32;
        }
        for (k, &v) in row[c.z_dim..].iter().enumerate() {
            table[k * fan_out + o] = v as f32;
        }
    }
    (wz, table)
}

/// The full-integer (W8A8) blob of `vae`'s decoder: `QUANTIZE` of the input register, then
/// per layer a `QLINEAR` (int8 weights per row, int32 bias) with the class row added by
/// `QGATHER` + `QADD` after the first and a `QLUT` table of the activation between layers, and
/// a `DEQUANTIZE` of the output. The activation ranges are calibrated by running the decoder
/// (f64, on the host) on `samples` latents `z ~ N(0, I)` per class, drawn from the sampler's
/// own noise (seed `seed`, stream = sample index), so they are the values the device sees.
/// The same conventions as the diffusion models' W8A8 export (docs/integer.md).
pub fn blob_w8a8(
    vae: &Vae,
    shape: &[u16],
    units: Units<'_>,
    (samples, seed): (usize, u64),
) -> Result<Vec<u8>, VaeExportError> {
    let (act, classes) = check(vae, shape)?;
    let c = vae.config();
    if c.likelihood == Likelihood::Bernoulli {
        return Err(VaeExportError::Bernoulli);
    }
    let dec = vae.decoder();
    let layers = dec.layers();
    let host_act = c.activation;
    let (wz, class_rows) = split_first_layer(vae);
    // Ranges: [0] the input, then per layer its linear output (layer 0: before the class row),
    // [layers + 1 ..] the class rows and the sums, then each activation's output.
    let mut input = Range::EMPTY;
    let mut lin = vec![Range::EMPTY; layers];
    let (mut class_row, mut sum) = (Range::EMPTY, Range::EMPTY);
    let mut acts = vec![Range::EMPTY; layers];
    let per_class = samples.max(1);
    for class in 0..usize::from(classes).max(1) {
        for s in 0..per_class {
            let mut x = vec![0.0f32; c.x_dim];
            NoiseStream::new(seed, s as u32, Domain::Sampler).fill_normal(0, &mut x);
            input.add(&x);
            let mut h: Vec<f64> = x[..c.z_dim].iter().map(|&v| f64::from(v)).collect();
            for l in 0..layers {
                let (w, bias) = dec.layer(l);
                let (fan_in, fan_out) = (dec.sizes()[l], dec.sizes()[l + 1]);
                if l > 0 {
                    h.iter_mut().for_each(|v| *v = host_act.apply(*v));
                    acts[l].add(&h.iter().map(|&v| v as f32).collect::<Vec<_>>());
                }
                let width = if l == 0 { c.z_dim } else { fan_in };
                let mut y: Vec<f64> = (0..fan_out)
                    .map(|o| {
                        let row = &w[o * fan_in..o * fan_in + width];
                        bias[o] + row.iter().zip(&h).map(|(a, b)| a * b).sum::<f64>()
                    })
                    .collect();
                lin[l].add(&y.iter().map(|&v| v as f32).collect::<Vec<_>>());
                if l == 0 && classes > 0 {
                    let col: Vec<f64> = class_rows[class * fan_out..(class + 1) * fan_out]
                        .iter()
                        .map(|&v| f64::from(v))
                        .collect();
                    class_row.add(&col.iter().map(|&v| v as f32).collect::<Vec<_>>());
                    y.iter_mut().zip(&col).for_each(|(a, b)| *a += b);
                    sum.add(&y.iter().map(|&v| v as f32).collect::<Vec<_>>());
                }
                h = y;
            }
        }
    }

    let mut b = start(shape, classes, units);
    let qx: Q = input.q();
    let scales = b.tensor(Dtype::F32, 1, 1, &[qx.scale])?;
    let x = b.input();
    let mut h = b.quantize(x, qx.zp, scales, None);
    let mut hq = qx;
    let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    for l in 0..layers {
        let (w, bias) = dec.layer(l);
        let (fan_in, fan_out) = (dec.sizes()[l], dec.sizes()[l + 1]);
        if l > 0 {
            let yq = acts[l].q();
            let t = b.tensor_q8(256, 1, &lut(act, hq, yq))?;
            h = b.qlut(h, t);
            hq = yq;
        }
        let yq = lin[l].q();
        let (wt, pt) = if l == 0 {
            qlinear_tensors(&mut b, &wz, &f32s(bias), fan_out, c.x_dim, hq, yq)?
        } else {
            qlinear_tensors(&mut b, &f32s(w), &f32s(bias), fan_out, fan_in, hq, yq)?
        };
        h = b.qlinear(h, wt, pt, hq.zp, yq.zp);
        hq = yq;
        if l == 0 && classes > 0 {
            let cq = class_row.q();
            let t = b.tensor_q8(u32::from(classes), fan_out as u32, &table(&class_rows, cq))?;
            let e = b.qgather(t, GatherKey::Class);
            let sq = sum.q();
            let k = b.tensor_i32(4, 1, &qadd_consts(hq, cq, sq)?)?;
            h = b.qadd(h, e, k);
            hq = sq;
        }
    }
    let out = b.dequantize(h, hq.zp, hq.scale);
    b.output(out);
    Ok(finish(b)?)
}

#[cfg(test)]
mod tests {
    use microdiff_runtime::noise::{Domain, NoiseStream};
    use microdiff_runtime::{Model, SampleRequest, evaluate, sample};

    use super::*;
    use crate::zoo::vae::{AdamConfig, TrainConfig, VaeConfig};

    /// Data units are the VAE's.
    const ID: Units<'static> = (&[], &[]);

    fn vae(classes: usize, hidden: Vec<usize>, activation: Activation) -> Vae {
        Vae::new(VaeConfig {
            x_dim: 6,
            z_dim: 2,
            classes,
            hidden,
            activation,
            likelihood: Likelihood::Gaussian,
            seed: 7,
        })
        .unwrap()
    }

    /// The host decoder's mean at the latent in the first `z_dim` values of `x`, for `class`.
    fn host_mean(v: &Vae, x: &[f32], class: usize) -> Vec<f64> {
        let c = v.config();
        let mut input: Vec<f64> = x[..c.z_dim].iter().map(|&z| f64::from(z)).collect();
        input.extend((0..c.classes).map(|k| if k == class { 1.0 } else { 0.0 }));
        v.decoder().apply(&input).unwrap()
    }

    /// The device's decoder is the host's, to f32 rounding, for every class and a few latents;
    /// the program's sample is the network at the sampler's noise.
    #[test]
    fn the_device_decoder_is_the_hosts() {
        for (classes, hidden, act) in [
            (3, vec![5, 4], Activation::Silu),
            (0, vec![5], Activation::Relu),
            (2, vec![], Activation::Relu),
        ] {
            let v = vae(classes, hidden, act);
            let bytes = blob(&v, &[2, 3], Dtype::F32, ID).unwrap();
            let model = Model::parse(&bytes).unwrap();
            assert_eq!(model.meta().objective, Objective::Vae);
            let mut arena = vec![0u8; model.arena_bytes()];
            let noise = NoiseStream::new(11, 0, Domain::Sampler);
            for class in 0..classes.max(1) {
                for draw in 0..4 {
                    let mut x = [0.0f32; 6];
                    noise.fill_normal(draw, &mut x);
                    let mut out = [0.0f32; 6];
                    evaluate(&model, &mut arena, &x, 0.0, class as u16, &mut out).unwrap();
                    let want = host_mean(&v, &x, class);
                    for (o, w) in out.iter().zip(&want) {
                        assert!(
                            (f64::from(*o) - w).abs() <= 1e-5 * (1.0 + w.abs()),
                            "class {class} draw {draw}: {out:?} vs {want:?}"
                        );
                    }
                }
            }
            // The program: z = draw 0 of the request's noise, one evaluation.
            let spec = SampleRequest {
                seed: 11,
                stream: 0,
                class: 0,
            };
            let program = model.program(PROGRAM).unwrap();
            let mut got = [0.0f32; 6];
            sample(&model, program, &mut arena, spec, &mut got).unwrap();
            let mut z = [0.0f32; 6];
            noise.fill_normal(0, &mut z);
            let mut want = [0.0f32; 6];
            evaluate(&model, &mut arena, &z, 0.0, 0, &mut want).unwrap();
            assert_eq!(got.map(f32::to_bits), want.map(f32::to_bits));
        }
    }

    /// The W8A8 decoder follows the host's within its quantization error: every output within
    /// 4 % of the output range of the f64 decoder, for every class, on latents it was not
    /// calibrated on.
    #[test]
    fn the_w8a8_decoder_follows_the_hosts() {
        for (classes, hidden, act) in [
            (3, vec![16, 12], Activation::Silu),
            (0, vec![16], Activation::Relu),
            (2, vec![], Activation::Relu),
        ] {
            let v = vae(classes, hidden, act);
            let bytes = blob_w8a8(&v, &[2, 3], ID, (256, 1)).unwrap();
            let model = Model::parse(&bytes).unwrap();
            let mut arena = vec![0u8; model.arena_bytes()];
            let noise = NoiseStream::new(99, 3, Domain::Sampler);
            let (mut lo, mut hi, mut worst) = (f64::MAX, f64::MIN, 0.0f64);
            for class in 0..classes.max(1) {
                for draw in 0..32 {
                    let mut x = [0.0f32; 6];
                    noise.fill_normal(draw, &mut x);
                    let mut out = [0.0f32; 6];
                    evaluate(&model, &mut arena, &x, 0.0, class as u16, &mut out).unwrap();
                    for (o, w) in out.iter().zip(host_mean(&v, &x, class)) {
                        (lo, hi) = (lo.min(w), hi.max(w));
                        worst = worst.max((f64::from(*o) - w).abs());
                    }
                }
            }
            assert!(
                worst <= 0.04 * (hi - lo),
                "{classes} classes: worst error {worst} over a range of {}",
                hi - lo
            );
        }
    }

    /// What the runtime cannot run is refused, naming it.
    #[test]
    fn what_the_device_cannot_run_is_refused() {
        let tanh = vae(0, vec![4], Activation::Tanh);
        assert_eq!(
            blob(&tanh, &[6], Dtype::F32, ID),
            Err(VaeExportError::Activation("tanh"))
        );
        let mut cfg = vae(0, vec![4], Activation::Relu).config().clone();
        cfg.likelihood = Likelihood::Bernoulli;
        let bern = Vae::new(cfg.clone()).unwrap();
        assert_eq!(
            blob_w8a8(&bern, &[6], ID, (8, 1)),
            Err(VaeExportError::Bernoulli)
        );
        // Its float export is the mean σ(logits), the host's, to f32 rounding.
        let model_bytes = blob(&bern, &[6], Dtype::F32, ID).unwrap();
        let model = Model::parse(&model_bytes).unwrap();
        let mut arena = vec![0u8; model.arena_bytes()];
        let mut x = [0.0f32; 6];
        NoiseStream::new(4, 0, Domain::Sampler).fill_normal(0, &mut x);
        let mut out = [0.0f32; 6];
        evaluate(&model, &mut arena, &x, 0.0, 0, &mut out).unwrap();
        for (o, w) in out.iter().zip(host_mean(&bern, &x, 0)) {
            let mean = Likelihood::Bernoulli.mean(w);
            assert!((f64::from(*o) - mean).abs() <= 1e-6, "{out:?}");
        }
        cfg.likelihood = Likelihood::Gaussian;
        cfg.z_dim = 7;
        let wide = Vae::new(cfg).unwrap();
        assert!(matches!(
            blob(&wide, &[6], Dtype::F32, ID),
            Err(VaeExportError::Latent { z_dim: 7, x_dim: 6 })
        ));
        let ok = vae(0, vec![4], Activation::Relu);
        for shape in [&[5u16][..], &[], &[2, 2]] {
            assert!(matches!(
                blob(&ok, shape, Dtype::F32, ID),
                Err(VaeExportError::Shape { .. })
            ));
        }
        // int8 and f16 matrices build and parse.
        for dtype in [Dtype::I8, Dtype::F16] {
            Model::parse(&blob(&ok, &[6], dtype, ID).unwrap()).unwrap();
        }
    }

    /// A class-conditional VAE trained briefly on the 8×8 digits (as `pixel / 16`), exported
    /// with int8 weights and as W8A8: the device samples every class in data units (pixels 0..=16, up to
    /// the decoder mean's overshoot), and its samples lie nearest their own class's mean of
    /// the data (50 of 50 when written; chance is 5).
    #[test]
    fn a_digits_vae_samples_its_classes_on_the_device() {
        let ds = crate::data::digits().unwrap();
        let x: Vec<f64> = ds.x.iter().map(|&v| f64::from(v) / 16.0).collect();
        let labels = ds.labels.clone().unwrap();
        let mut v = Vae::new(VaeConfig {
            x_dim: 64,
            z_dim: 8,
            classes: 10,
            hidden: vec![64],
            activation: Activation::Relu,
            likelihood: Likelihood::Gaussian,
            seed: 3,
        })
        .unwrap();
        let cfg = TrainConfig {
            steps: 600,
            batch: 64,
            adam: AdamConfig::default(),
            seed: 5,
        };
        v.train(&x, Some(&labels), &cfg).unwrap();
        let int8_weights = blob(&v, &[8, 8], Dtype::I8, (&[16.0], &[0.0])).unwrap();
        let w8a8 = blob_w8a8(&v, &[8, 8], (&[16.0], &[0.0]), (64, 1)).unwrap();
        // The data's class means, in data units.
        let mut means = vec![[0.0f64; 64]; 10];
        let mut counts = [0usize; 10];
        for (row, &c) in ds.x.chunks_exact(64).zip(&labels) {
            counts[usize::from(c)] += 1;
            for (m, &p) in means[usize::from(c)].iter_mut().zip(row) {
                *m += f64::from(p);
            }
        }
        for (m, &n) in means.iter_mut().zip(&counts) {
            m.iter_mut().for_each(|v| *v /= n as f64);
        }
        for bytes in [int8_weights, w8a8] {
            let model = Model::parse(&bytes).unwrap();
            let program = model.program(PROGRAM).unwrap();
            assert_eq!((program.steps, program.evals), (1, 1));
            let mut arena = vec![0u8; model.arena_bytes()];
            let mut right = 0;
            for class in 0..10u16 {
                for seed in 0..5 {
                    let spec = SampleRequest {
                        seed,
                        stream: 0,
                        class,
                    };
                    let mut out = [0.0f32; 64];
                    sample(&model, program, &mut arena, spec, &mut out).unwrap();
                    assert!(out.iter().all(|p| (-16.0..=32.0).contains(p)), "{out:?}");
                    let nearest = (0..10)
                        .min_by(|&a, &b| {
                            let d = |k: usize| -> f64 {
                                out.iter()
                                    .zip(&means[k])
                                    .map(|(&o, &m)| (f64::from(o) - m).powi(2))
                                    .sum()
                            };
                            d(a).total_cmp(&d(b))
                        })
                        .unwrap();
                    right += usize::from(nearest == usize::from(class));
                }
            }
            // Chance is 5 of 50.
            assert!(
                right >= 35,
                "{right} of 50 samples nearest their class's mean"
            );
        }
    }
}
