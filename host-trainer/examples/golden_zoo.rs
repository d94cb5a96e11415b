//! Trains the other generator families' golden models on the 8×8 digits and writes them as
//! `tests/golden/digits-rbm.mdfb` (a binary RBM, 64 visible × 64 hidden units, persistent CD,
//! programs `gibbs10` and `gibbs50`; `digits-rbm-w8a8.mdfb` the same machine as a full-integer
//! sweep) and `tests/golden/digits-hvae.mdfb` (a two-level VAE,
//! latents 8 and 4, SiLU, program `decode`), int8 weights and f32 arithmetic, which the conformance
//! cases and every firmware run.
//!
//! ```sh
//! cargo run --release -p microdiff-trainer --example golden_zoo -- tests/golden
//! cargo xtask golden --bless    # then re-derive the case digests from the new blobs
//! ```
//!
//! Like `golden_vae`, the blobs are checked-in artifacts, not rebuilt by `cargo xtask golden`:
//! training runs in f64 with libm's `exp`/`ln`, so another machine may give other weights.

use std::path::PathBuf;

use microdiff_kernels::Dtype;
use microdiff_trainer::data::digits;
use microdiff_trainer::zoo::boltzmann::{self, NegativePhase, Rbm, binarize};
use microdiff_trainer::zoo::vae::{
    Activation, AdamConfig, Hvae, HvaeConfig, Likelihood, TrainConfig, export,
};

/// The Gibbs sweep counts the RBM blob carries as programs.
pub const RBM_SWEEPS: [u16; 2] = [10, 50];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir: PathBuf = std::env::args()
        .nth(1)
        .ok_or("usage: golden_zoo OUT_DIR (tests/golden)")?
        .into();
    let ds = digits()?;

    // The RBM: pixels (0..=16) binarised at the midpoint, 8; a unit's probability maps back
    // to 16 · p.
    let data = binarize(&ds.x, 64, 8.0)?;
    let config = boltzmann::TrainConfig {
        epochs: 40,
        batch_size: 20,
        learning_rate: 0.05,
        weight_decay: 1e-4,
        gibbs_steps: 1,
        negative: NegativePhase::Persistent { chains: 100 },
        seed: 7,
        exact_max_units: 0,
    };
    eprintln!("golden_zoo: training the RBM, {} epochs", config.epochs);
    let trained = boltzmann::train(&Rbm::random(64, 64, 0.01, 3)?, &data, &config)?;
    if let Some(last) = trained.epochs.last() {
        eprintln!(
            "golden_zoo: RBM reconstruction error {:.4} after the last epoch",
            last.reconstruction_error
        );
    }
    let rbm_blob = boltzmann::export::blob(
        &trained.rbm,
        &[8, 8],
        Dtype::I8,
        &RBM_SWEEPS,
        (&[16.0], &[0.0]),
    )?;
    let rbm_w8a8 = boltzmann::export::blob_w8a8(
        &trained.rbm,
        &[8, 8],
        &RBM_SWEEPS,
        (&[16.0], &[0.0]),
        (64, 0x00CA_11B8),
    )?;

    // The two-level VAE: trained on pixel / 16, mapped back × 16.
    let x: Vec<f64> = ds.x.iter().map(|&v| f64::from(v) / 16.0).collect();
    let mut hvae = Hvae::new(HvaeConfig {
        x_dim: 64,
        z1_dim: 8,
        z2_dim: 4,
        hidden: vec![64],
        // SiLU: with ReLU the same run samples far outside the pixel range (Fréchet 50, 92
        // and 629 over three seeds, against 13 with SiLU; docs/zoo.md).
        activation: Activation::Silu,
        likelihood: Likelihood::Gaussian,
        seed: 3,
    })?;
    let train = TrainConfig {
        steps: 5000,
        batch: 64,
        adam: AdamConfig::default(),
        seed: 5,
    };
    eprintln!(
        "golden_zoo: training the two-level VAE, {} steps",
        train.steps
    );
    let losses = hvae.train(&x, &train)?;
    let tail = &losses[losses.len().saturating_sub(100)..];
    eprintln!(
        "golden_zoo: negative ELBO over the last 100 steps {:.2} nats per digit",
        tail.iter().sum::<f64>() / tail.len().max(1) as f64
    );
    let hvae_blob = export::hvae_blob(&hvae, &[8, 8], Dtype::I8, (&[16.0], &[0.0]))?;

    for (file, bytes) in [
        ("digits-rbm.mdfb", rbm_blob),
        ("digits-rbm-w8a8.mdfb", rbm_w8a8),
        ("digits-hvae.mdfb", hvae_blob),
    ] {
        let path = dir.join(file);
        std::fs::write(&path, &bytes)?;
        eprintln!(
            "golden_zoo: wrote {} ({} bytes)",
            path.display(),
            bytes.len()
        );
    }
    Ok(())
}
