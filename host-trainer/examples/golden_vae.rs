//! Trains a class-conditional Gaussian VAE on the 8×8 digits and writes its decoder as the
//! golden blobs `tests/golden/digits-vae.mdfb` (int8 weights, f32 arithmetic) and
//! `tests/golden/digits-vae-w8a8.mdfb` (full integer, calibrated on 64 latents per class), each
//! with the program `decode` (one network pass per sample), which the conformance cases and
//! every firmware run.
//!
//! ```sh
//! cargo run --release -p microdiff-trainer --example golden_vae -- tests/golden
//! cargo xtask golden --bless    # then re-derive the case digests from the new blob
//! ```
//!
//! Like `golden_digits`, the blob is a checked-in artifact, not rebuilt by `cargo xtask
//! golden`: the VAE trains in f64 with libm's `exp`/`ln`, so another machine may give other
//! weights, and then other case digests.

use std::path::PathBuf;

use microdiff_kernels::Dtype;
use microdiff_trainer::data::digits;
use microdiff_trainer::zoo::vae::{
    Activation, AdamConfig, Likelihood, TrainConfig, Vae, VaeConfig, export,
};

/// The architecture: 8 latent dimensions, one hidden layer of 64, one-hot classes.
fn config() -> VaeConfig {
    VaeConfig {
        x_dim: 64,
        z_dim: 8,
        classes: 10,
        hidden: vec![64],
        activation: Activation::Relu,
        likelihood: Likelihood::Gaussian,
        seed: 3,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir: PathBuf = std::env::args()
        .nth(1)
        .ok_or("usage: golden_vae OUT_DIR (tests/golden)")?
        .into();
    let ds = digits()?;
    // Trained on pixel / 16; the blob maps back to pixels (× 16).
    let x: Vec<f64> = ds.x.iter().map(|&v| f64::from(v) / 16.0).collect();
    let labels = ds.labels.ok_or("the digits have labels")?;
    let mut vae = Vae::new(config())?;
    let train = TrainConfig {
        steps: 5000,
        batch: 64,
        adam: AdamConfig::default(),
        seed: 5,
    };
    eprintln!("golden_vae: training {} steps", train.steps);
    let losses = vae.train(&x, Some(&labels), &train)?;
    let tail = &losses[losses.len().saturating_sub(100)..];
    eprintln!(
        "golden_vae: negative ELBO over the last 100 steps {:.2} nats per digit",
        tail.iter().sum::<f64>() / tail.len().max(1) as f64
    );
    let units: (&[f32], &[f32]) = (&[16.0], &[0.0]);
    for (file, bytes) in [
        (
            "digits-vae.mdfb",
            export::blob(&vae, &[8, 8], Dtype::I8, units)?,
        ),
        (
            "digits-vae-w8a8.mdfb",
            export::blob_w8a8(&vae, &[8, 8], units, (64, 0x00CA_11B8))?,
        ),
    ] {
        let path = dir.join(file);
        std::fs::write(&path, &bytes)?;
        eprintln!(
            "golden_vae: wrote {} ({} bytes)",
            path.display(),
            bytes.len()
        );
    }
    Ok(())
}
