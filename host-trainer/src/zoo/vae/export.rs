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
//! a `tanh` decoder, a Bernoulli decoder (its mean is a sigmoid), a latent wider than a sample.

use microdiff_kernels::{Activation as DeviceActivation, Dtype};
use microdiff_runtime::Error as BlobError;
use microdiff_runtime::blob::meta::{Objective, Prediction};
use microdiff_runtime::blob::program::ClassSel;
use microdiff_runtime::blob::{BlobBuilder, ProgramBuilder};

use super::{Activation, Likelihood, Vae};

/// The program every exported VAE blob carries.
pub const PROGRAM: &str = "decode";

/// Why a VAE cannot be exported for the device.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum VaeExportError {
    /// The decoder's activation has no device op.
    #[error("the device runtime has no {0} activation (train the VAE with relu or silu)")]
    Activation(&'static str),
    /// The Bernoulli decoder's mean is a sigmoid of its output.
    #[error(
        "a Bernoulli decoder's mean is a sigmoid, which the device runtime has no op for yet \
         (train the VAE with the Gaussian likelihood)"
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
}

/// The blob of `vae`'s decoder for samples of `shape`, matrices stored as `dtype` (f32, f16 or
/// int8 with per-row scales; biases f32); `(scale, offset)` maps the VAE's space to data units.
pub fn blob(
    vae: &Vae,
    shape: &[u16],
    dtype: Dtype,
    (scale, offset): (f32, f32),
) -> Result<Vec<u8>, VaeExportError> {
    let c = vae.config();
    let act = match c.activation {
        Activation::Relu => DeviceActivation::Relu,
        Activation::Silu => DeviceActivation::Silu,
        Activation::Tanh => return Err(VaeExportError::Activation("tanh")),
    };
    if c.likelihood == Likelihood::Bernoulli {
        return Err(VaeExportError::Bernoulli);
    }
    let x_dim = c.x_dim;
    let elems = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(usize::from(d)));
    if elems != Some(x_dim) || shape.is_empty() {
        return Err(VaeExportError::Shape {
            shape: shape.to_vec(),
            x_dim,
        });
    }
    if c.z_dim > x_dim {
        return Err(VaeExportError::Latent {
            z_dim: c.z_dim,
            x_dim,
        });
    }
    let classes = u16::try_from(c.classes).map_err(|_| VaeExportError::Classes(c.classes))?;

    let mut b = BlobBuilder::new(shape, Objective::Vae, Prediction::Sample);
    if classes > 0 {
        b.classes(classes, None);
    }
    b.normalization(&[scale], &[offset]);
    let dec = vae.decoder();
    let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let mut h = b.input();
    for l in 0..dec.layers() {
        let (w, bias) = dec.layer(l);
        let (fan_in, fan_out) = (dec.sizes()[l], dec.sizes()[l + 1]);
        // Bounded by the blob builder's checks below (it refuses what the format cannot hold).
        let (rows, bias_t) = (
            fan_out as u32,
            b.tensor(Dtype::F32, fan_out as u32, 1, &f32s(bias))?,
        );
        if l == 0 {
            // Columns 0..z_dim are the latent's, then the one-hot's; the input register has
            // x_dim values, the rest of them ignored (zero columns).
            let mut wz = vec![0.0f32; fan_out * x_dim];
            let mut table = vec![0.0f32; usize::from(classes) * fan_out];
            for o in 0..fan_out {
                let row = &w[o * fan_in..(o + 1) * fan_in];
                for (i, &v) in row[..c.z_dim].iter().enumerate() {
                    wz[o * x_dim + i] = v as f32;
                }
                for (k, &v) in row[c.z_dim..].iter().enumerate() {
                    table[k * fan_out + o] = v as f32;
                }
            }
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
    b.output(h);
    let mut p = ProgramBuilder::new(PROGRAM, 1);
    p.lin(0, &[], Some(1.0))
        .eval(0, 0, ClassSel::Caller, 0.0)
        .step();
    b.program(&p);
    Ok(b.build()?)
}

#[cfg(test)]
mod tests {
    use microdiff_runtime::noise::{Domain, NoiseStream};
    use microdiff_runtime::{Model, SampleRequest, evaluate, sample};

    use super::*;
    use crate::zoo::vae::{AdamConfig, TrainConfig, VaeConfig};

    /// Data units are the VAE's.
    const ID: (f32, f32) = (1.0, 0.0);

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
            let bytes = blob(&v, &[2, 3], Dtype::F32, (1.0, 0.0)).unwrap();
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
                    let mut input: Vec<f64> = x[..2].iter().map(|&z| f64::from(z)).collect();
                    input.extend((0..classes).map(|k| if k == class { 1.0 } else { 0.0 }));
                    let want = v.decoder().apply(&input).unwrap();
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
            blob(&bern, &[6], Dtype::F32, ID),
            Err(VaeExportError::Bernoulli)
        );
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
    /// with int8 weights: the device samples every class in data units (pixels 0..=16, up to
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
        let bytes = blob(&v, &[8, 8], Dtype::I8, (16.0, 0.0)).unwrap();
        let model = Model::parse(&bytes).unwrap();
        let program = model.program(PROGRAM).unwrap();
        assert_eq!((program.steps, program.evals), (1, 1));
        let mut arena = vec![0u8; model.arena_bytes()];
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
