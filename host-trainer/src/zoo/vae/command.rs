//! What `microdiff train --objective vae` and `microdiff export` of such a run do: a Gaussian
//! [`Vae`] trained on the CPU in f64 from the run [`Settings`], kept as `vae.json` in the run
//! directory ([`VaeRun`]), exported as its decoder (docs/zoo.md). The diffusion run machinery
//! (checkpoints, `--resume`, the GPU) does not apply: the flags that belong to it are refused,
//! not ignored. Errors are [`VaeRunError`]s phrased for the command line.

use std::path::{Path, PathBuf};
use std::time::Instant;

use microdiff_kernels::Dtype;

use super::run::{self as vae_run, VaeRun, VaeRunError};
use super::{AdamConfig, Likelihood, TrainConfig, Vae, VaeConfig, export};
use crate::data::Source;
use crate::run::Settings;

/// A refusal of the command line's.
fn refuse(message: String) -> VaeRunError {
    VaeRunError::Setting(message)
}

/// `context: error` as a refusal.
fn msg<E: std::fmt::Display>(context: &str) -> impl FnOnce(E) -> VaeRunError + '_ {
    move |e| refuse(format!("{context}: {e}"))
}

/// What `train` hands over besides the settings (`true`: the flag was given).
#[derive(Debug, Clone, Copy)]
pub struct TrainFlags<'a> {
    /// The run directory.
    pub out: &'a Path,
    /// `--resume`.
    pub resume: bool,
    /// `--force`: replace a run in `out`.
    pub force: bool,
    /// `--device` is `auto` or `cpu`.
    pub device_is_auto_or_cpu: bool,
    /// `--threads`.
    pub threads: bool,
    /// `--checkpoint-every`.
    pub checkpoint_every: bool,
}

/// A finished training.
#[derive(Debug, Clone)]
pub struct Trained {
    /// The run as saved.
    pub run: VaeRun,
    /// The mini-batch loss of every step (nats per example).
    pub losses: Vec<f64>,
    /// Wall-clock seconds of the training.
    pub seconds: f64,
    /// `vae.json`.
    pub model: PathBuf,
    /// `loss.csv`.
    pub curve: PathBuf,
}

/// Latent dimensions by default (at most the data's width).
const DEFAULT_LATENT: usize = 8;
/// Hidden width and layers by default.
const DEFAULT_HIDDEN: usize = 64;
/// Steps and batch by default.
const DEFAULT_STEPS: u64 = 5000;
const DEFAULT_BATCH: usize = 64;
/// Most steps, batch, width, layers: far beyond any useful VAE, far below an allocation that
/// would exhaust memory.
const MAX_STEPS: u64 = 10_000_000;
const MAX_BATCH: usize = 65_536;
const MAX_WIDTH: usize = 16_384;
const MAX_LAYERS: usize = 8;

/// Refuses the diffusion-only settings a VAE run would otherwise silently ignore.
fn refuse_diffusion_settings(s: &Settings, f: &TrainFlags<'_>) -> Result<(), VaeRunError> {
    let given = [
        ("--cfg-dropout", s.cfg_dropout.is_some()),
        ("--warmup", s.warmup.is_some()),
        ("--ema-decay", s.ema_decay.is_some()),
        ("--ff", s.ff.is_some()),
        ("--temb", s.temb.is_some()),
        ("--sigma-max", s.sigma_max.is_some()),
        ("--resume", f.resume),
        (
            "--device (other than auto or cpu)",
            !f.device_is_auto_or_cpu,
        ),
        ("--threads", f.threads),
        ("--checkpoint-every", f.checkpoint_every),
    ];
    match given.iter().find(|(_, on)| *on) {
        Some((flag, _)) => Err(refuse(format!(
            "{flag} does not apply to --objective vae (it trains in one go on the CPU: docs/zoo.md)"
        ))),
        None => Ok(()),
    }
}

/// `microdiff train --objective vae`: checks the settings, then calls `announce` with a line
/// saying what it trains, trains, and saves the run and its loss curve.
pub fn train(
    s: &Settings,
    f: &TrainFlags<'_>,
    announce: impl FnOnce(&str),
) -> Result<Trained, VaeRunError> {
    refuse_diffusion_settings(s, f)?;
    let data_spec = s.data.clone().unwrap_or_else(|| "moons".into());
    let source = Source::parse(&data_spec).map_err(msg("--data"))?;
    let conditional = s.conditional.unwrap_or(false);
    let seed = s.seed.unwrap_or(0);
    let (ds, norm) = source
        .training_set(conditional, seed)
        .map_err(msg("--data"))?;
    let steps = s.steps.unwrap_or(DEFAULT_STEPS);
    if !(1..=MAX_STEPS).contains(&steps) {
        return Err(refuse(format!("--steps {steps}: expected 1..={MAX_STEPS}")));
    }
    let batch = s.batch.unwrap_or(DEFAULT_BATCH);
    if !(1..=MAX_BATCH).contains(&batch) {
        return Err(refuse(format!("--batch {batch}: expected 1..={MAX_BATCH}")));
    }
    let hidden = s.hidden.unwrap_or(DEFAULT_HIDDEN);
    if !(1..=MAX_WIDTH).contains(&hidden) {
        return Err(refuse(format!(
            "--hidden {hidden}: expected 1..={MAX_WIDTH}"
        )));
    }
    let layers = s.blocks.unwrap_or(1);
    if layers > MAX_LAYERS {
        return Err(refuse(format!(
            "--blocks {layers}: a VAE's hidden layers, expected 0..={MAX_LAYERS}"
        )));
    }
    let latent = s.latent.unwrap_or(DEFAULT_LATENT.min(ds.dim));
    if latent == 0 || latent > ds.dim {
        return Err(refuse(format!(
            "--latent {latent}: expected 1..={} (the data's values per example)",
            ds.dim
        )));
    }
    let act_name = s.act.clone().unwrap_or_else(|| "relu".into());
    let activation = vae_run::activation(&act_name)
        .ok_or_else(|| refuse(format!("--act {act_name}: a VAE takes relu, silu or tanh")))?;
    let lr = f64::from(s.lr.unwrap_or(1e-3));
    if !(lr.is_finite() && lr > 0.0 && lr <= 1.0) {
        return Err(refuse(format!("--lr {lr}: expected 0 < lr <= 1")));
    }
    if VaeRun::exists(f.out) || f.out.join("checkpoint.mdck").exists() {
        if !f.force {
            return Err(refuse(format!(
                "{} already holds a run; --force replaces it",
                f.out.display()
            )));
        }
        for old in [vae_run::FILE, "checkpoint.mdck", "run.json", "loss.csv"] {
            let p = f.out.join(old);
            if p.exists() {
                std::fs::remove_file(&p).map_err(|source| VaeRunError::Io {
                    path: p.clone(),
                    source,
                })?;
            }
        }
    }
    let config = VaeConfig {
        x_dim: ds.dim,
        z_dim: latent,
        classes: ds.classes,
        hidden: vec![hidden; layers],
        activation,
        likelihood: Likelihood::Gaussian,
        seed,
    };
    let mut vae = Vae::new(config).map_err(msg("the VAE"))?;
    let x: Vec<f64> = ds.x.iter().map(|&v| f64::from(v)).collect();
    let train = TrainConfig {
        steps: steps as usize,
        batch,
        adam: AdamConfig {
            lr,
            ..AdamConfig::default()
        },
        seed,
    };
    announce(&format!(
        "training a VAE ({latent} latents, hidden {:?}, {act_name}{}) on {} ({} examples of {:?}) for {steps} steps, batch {batch}, on the CPU, into {}",
        vec![hidden; layers],
        if ds.classes > 0 {
            ", class-conditional"
        } else {
            ""
        },
        ds.name,
        ds.len(),
        ds.shape,
        f.out.display()
    ));
    let start = Instant::now();
    let losses = vae
        .train(&x, ds.labels.as_deref(), &train)
        .map_err(msg("training"))?;
    let tail = &losses[losses.len().saturating_sub(100)..];
    let loss = tail.iter().sum::<f64>() / tail.len().max(1) as f64;
    let run = VaeRun {
        vae,
        dataset: data_spec,
        shape: ds.shape.clone(),
        scale: norm.scale.clone(),
        offset: norm.offset.clone(),
        steps: steps as usize,
        loss,
    };
    run.save(f.out)?;
    let curve = f.out.join("loss.csv");
    let mut text = String::from("step,loss\n");
    for (i, l) in losses.iter().enumerate() {
        text.push_str(&format!("{},{l}\n", i + 1));
    }
    std::fs::write(&curve, text).map_err(|source| VaeRunError::Io {
        path: curve.clone(),
        source,
    })?;
    Ok(Trained {
        run,
        losses,
        seconds: start.elapsed().as_secs_f64(),
        model: VaeRun::path(f.out),
        curve,
    })
}

/// `microdiff export RUN` for a VAE run: the decoder as a blob with the program `decode`.
/// `dtype`: f32, f16, i8 (int8 weights, f32 arithmetic) or w8a8 (full integer, calibrated on
/// `calibration` latents per class). Returns the blob's size in bytes; the file is written
/// atomically.
pub fn export_blob(
    run_dir: &Path,
    dtype: &str,
    calibration: Option<usize>,
    out: &Path,
) -> Result<usize, VaeRunError> {
    let run = VaeRun::load(run_dir)?;
    let shape: Vec<u16> = run
        .shape
        .iter()
        .map(|&d| u16::try_from(d))
        .collect::<Result<_, _>>()
        .map_err(|_| refuse(format!("export: shape {:?} does not fit a blob", run.shape)))?;
    let units = (run.scale.as_slice(), run.offset.as_slice());
    let bytes = match dtype {
        "w8a8" => export::blob_w8a8(
            &run.vae,
            &shape,
            units,
            (calibration.unwrap_or(64), 0x00CA_11B8),
        ),
        other => {
            let d = match other {
                "f32" => Dtype::F32,
                "f16" => Dtype::F16,
                "i8" => Dtype::I8,
                _ => {
                    return Err(refuse(format!(
                        "--dtype {other}: expected f32, f16, i8 or w8a8"
                    )));
                }
            };
            if calibration.is_some() {
                return Err(refuse(
                    "--calibration-samples applies to --dtype w8a8 only".into(),
                ));
            }
            export::blob(&run.vae, &shape, d, units)
        }
    }
    .map_err(msg("export"))?;
    let tmp = out.with_extension("mdfb.tmp");
    std::fs::write(&tmp, &bytes).map_err(|source| VaeRunError::Io {
        path: tmp.clone(),
        source,
    })?;
    std::fs::rename(&tmp, out).map_err(|source| VaeRunError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    Ok(bytes.len())
}
