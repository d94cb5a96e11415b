//! Trains the 2-D table's models (docs/zoo.md, `microdiff demo --zoo`) on `8gaussians` with
//! the table's own settings (`zoo::table::family_settings`, seed 0) and writes their blobs as
//! golden blobs, so the conformance cases and every firmware run them and `cargo xtask size`
//! counts their instructions per sample:
//!
//! * `8gaussians-diffusion-i8.mdfb` — the class-conditional DDPM (program `dpmpp2m10`);
//! * `8gaussians-vae.mdfb`, `8gaussians-vae-w8a8.mdfb` — the class-conditional VAE (`decode`);
//! * `8gaussians-hvae.mdfb` — the two-level VAE (`decode`);
//! * `8gaussians-rbm.mdfb`, `8gaussians-rbm-w8a8.mdfb` — the RBM on the thermometer-coded
//!   points (`gibbs10`, `gibbs50`).
//!
//! ```sh
//! cargo run --release -p microdiff-trainer --example golden_zoo_2d -- tests/golden
//! cargo xtask golden --bless    # then re-derive the case digests from the new blobs
//! ```
//!
//! Like `golden_zoo`, the blobs are checked-in artifacts, not rebuilt by `cargo xtask golden`:
//! training runs with libm's `exp`/`ln`, so another machine may give other weights.

use std::path::PathBuf;

use microdiff_trainer::backend::cpu::{Cpu, hot_pool};
use microdiff_trainer::export::from_run::{Options, from_run};
use microdiff_trainer::run::{Run, RunDir, Start};
use microdiff_trainer::zoo::command::TrainFlags;
use microdiff_trainer::zoo::table::{RBM_SWEEPS, family_settings};
use microdiff_trainer::zoo::{boltzmann, vae};

/// The data set.
const DATA: &str = "8gaussians";
/// Training steps of the diffusion model (the table's default).
const DIFFUSION_STEPS: u64 = 10_000;
/// The diffusion blob's one program: the table scales its count to 4 and 25 evaluations.
const DIFFUSION_SAMPLER: &str = "dpmpp2m:10";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir: PathBuf = std::env::args()
        .nth(1)
        .ok_or("usage: golden_zoo_2d OUT_DIR (tests/golden)")?
        .into();
    let scratch = std::env::temp_dir().join(format!("golden-zoo-2d-{}", std::process::id()));
    let settings = |objective| family_settings(DATA, objective, 0, DIFFUSION_STEPS);
    let mut blobs: Vec<(&str, Vec<u8>)> = Vec::new();

    eprintln!("golden_zoo_2d: training the diffusion model, {DIFFUSION_STEPS} steps");
    let run_dir = scratch.join("diffusion");
    let run = Run::prepare(&run_dir, &settings("ddpm"), Start::Force)?;
    hot_pool(|| run.train(Cpu, DIFFUSION_STEPS, &mut |_| {}))?;
    let trained = RunDir::locate(&run_dir)?.open()?;
    let options = Options {
        samplers: vec![DIFFUSION_SAMPLER.into()],
        ..Options::default()
    };
    blobs.push((
        "8gaussians-diffusion-i8.mdfb",
        from_run(&trained, &options)?.bytes,
    ));

    eprintln!("golden_zoo_2d: training the VAE and the two-level VAE");
    let vae_dir = scratch.join("vae");
    vae::command::train(&settings("vae"), &TrainFlags::fresh(&vae_dir), |_| {})?;
    for (dtype, file) in [
        ("i8", "8gaussians-vae.mdfb"),
        ("w8a8", "8gaussians-vae-w8a8.mdfb"),
    ] {
        let out = scratch.join(file);
        blobs.push((
            file,
            vae::command::export_blob(&vae_dir, dtype, None, &out)?,
        ));
    }
    let hvae_dir = scratch.join("hvae");
    vae::command::train_hvae(&settings("hvae"), &TrainFlags::fresh(&hvae_dir), |_| {})?;
    let out = scratch.join("hvae.mdfb");
    blobs.push((
        "8gaussians-hvae.mdfb",
        vae::command::export_hvae_blob(&hvae_dir, "i8", &out)?,
    ));

    eprintln!("golden_zoo_2d: training the RBM");
    let rbm_dir = scratch.join("rbm");
    boltzmann::command::train(&settings("rbm"), &TrainFlags::fresh(&rbm_dir), |_| {})?;
    for (dtype, file) in [
        ("i8", "8gaussians-rbm.mdfb"),
        ("w8a8", "8gaussians-rbm-w8a8.mdfb"),
    ] {
        let out = scratch.join(file);
        blobs.push((
            file,
            boltzmann::command::export_blob(&rbm_dir, dtype, Some(&RBM_SWEEPS), &out)?,
        ));
    }

    for (file, bytes) in blobs {
        let path = dir.join(file);
        std::fs::write(&path, &bytes)?;
        eprintln!(
            "golden_zoo_2d: wrote {} ({} bytes)",
            path.display(),
            bytes.len()
        );
    }
    std::fs::remove_dir_all(&scratch)?;
    Ok(())
}
