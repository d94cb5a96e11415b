//! Trains the demo's digits model and writes the trained golden blobs the conformance cases and
//! every firmware run: `tests/golden/digits-i8.mdfb` (int8 weights, f32 arithmetic) and
//! `tests/golden/digits-w8a8.mdfb` (the full-integer network), each with the one program
//! `ddim10-cfg` (DDIM, 10 steps, x̂₀ clipped to the data range, guidance 1.2: 20 evaluations).
//!
//! ```sh
//! cargo run --release -p microdiff-trainer --example golden_digits -- tests/golden
//! cargo xtask golden --bless    # then re-derive the case digests from the new blobs
//! ```
//!
//! The blobs are checked-in artifacts, not rebuilt by `cargo xtask golden`: training is
//! deterministic for a given machine and thread count, but nothing promises the same weights
//! on another CPU, so a regenerated blob may differ; its cases then change with it.

use std::path::PathBuf;

use microdiff_kernels::Dtype;
use microdiff_trainer::backend::cpu::{Cpu, hot_pool};
use microdiff_trainer::data::{Normalizer, digits};
use microdiff_trainer::export::{ExportSpec, blob, w8a8};
use microdiff_trainer::sampler::{self, SamplerSpec};
use microdiff_trainer::train::{TrainConfig, TrainData, Trainer};

/// The program of the trained goldens and its sampler.
const PROGRAM: &str = "ddim10-cfg";
const SAMPLER: &str = "ddim:10:clip=1";
const GUIDANCE: f64 = 1.2;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir: PathBuf = std::env::args()
        .nth(1)
        .ok_or("usage: golden_digits OUT_DIR (tests/golden)")?
        .into();
    let config = TrainConfig::digits_demo(10_000, 0);
    let norm = Normalizer::digits();
    let model_space = norm.dataset_to_model(&digits()?);
    let data = TrainData {
        x: model_space.x,
        dim: 64,
        labels: model_space.labels,
    };
    eprintln!("golden_digits: training {} steps", config.steps);
    let params = hot_pool(
        || -> Result<Vec<f32>, Box<dyn std::error::Error + Send + Sync>> {
            let mut t = Trainer::new(Cpu, config.clone(), data)?;
            while t.step_count() < config.steps {
                t.step()?;
            }
            Ok(t.export_params())
        },
    )
    .map_err(|e| e.to_string())?;
    let spec: SamplerSpec = SAMPLER.parse()?;
    let program = sampler::build(&config.process, &spec.with_guidance(GUIDANCE), PROGRAM)?;
    let export = ExportSpec {
        dtype: Dtype::I8,
        shape: vec![8, 8],
        scale: norm.scale.clone(),
        offset: norm.offset.clone(),
        programs: vec![program],
        time_table: Default::default(),
        schedule: false,
        prediction: None,
    };
    let i8_blob = blob(&config.model, &params, &config.process, &export)?;
    let (w8a8_blob, report) = w8a8::blob(
        &config.model,
        &params,
        &config.process,
        &export,
        w8a8::Calibration::default(),
    )?;
    for (file, bytes) in [
        ("digits-i8.mdfb", &i8_blob),
        ("digits-w8a8.mdfb", &w8a8_blob),
    ] {
        let path = dir.join(file);
        std::fs::write(&path, bytes)?;
        eprintln!(
            "golden_digits: wrote {} ({} bytes)",
            path.display(),
            bytes.len()
        );
    }
    eprintln!(
        "golden_digits: w8a8 calibrated on {} network evaluations",
        report.evaluations
    );
    Ok(())
}
