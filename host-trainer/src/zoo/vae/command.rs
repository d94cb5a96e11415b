//! What `microdiff train --objective vae | hvae` and `microdiff export` of such a run do: a
//! Gaussian [`Vae`] or a two-level [`Hvae`] trained on the CPU in f64 from the run
//! [`Settings`] (with `--device cuda`, on a backend in f32 instead: [`train_with`],
//! [`train_hvae_with`]), kept as `vae.json` ([`VaeRun`]) or `hvae.json` ([`HvaeRun`]) in the run
//! directory with the loss curve `loss.csv`, exported as the generative path (docs/zoo.md).
//! The diffusion run machinery (checkpoints, `--resume`) does not apply: the flags that belong
//! to it are refused, not ignored, as are the other zoo families' flags. Errors are
//! [`VaeRunError`]s phrased for the command line.

use std::path::{Path, PathBuf};
use std::time::Instant;

use microdiff_kernels::Dtype;

use super::backend_train::{self, BackendTrainError};
use super::hvae_run::HvaeRun;
use super::run::{self as vae_run, VaeRun, VaeRunError};
use super::{AdamConfig, Hvae, HvaeConfig, Likelihood, TrainConfig, Vae, VaeConfig, export};
use crate::backend::Backend;
use crate::backend::cpu::Cpu;
use crate::data::{Dataset, Normalizer, Source};
use crate::run::Settings;
use crate::zoo::command::{
    MAX_BATCH, MAX_STEPS, MAX_WIDTH, blob_shape, check_out, clear_old_run, count, learning_rate,
    refuse_flags, write_csv,
};

pub use crate::zoo::command::{OnBackend, TrainFlags};

/// A refusal of the command line's.
fn refuse(message: String) -> VaeRunError {
    VaeRunError::Setting(message)
}

/// `context: error` as a refusal.
fn msg<E: std::fmt::Display>(context: &str) -> impl FnOnce(E) -> VaeRunError + '_ {
    move |e| refuse(format!("{context}: {e}"))
}

/// A finished training of `--objective vae`.
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

/// A finished training of `--objective hvae`.
#[derive(Debug, Clone)]
pub struct TrainedHvae {
    /// The run as saved.
    pub run: HvaeRun,
    /// The mini-batch loss of every step (nats per example).
    pub losses: Vec<f64>,
    /// Wall-clock seconds of the training.
    pub seconds: f64,
    /// `hvae.json`.
    pub model: PathBuf,
    /// `loss.csv`.
    pub curve: PathBuf,
}

/// Latent dimensions by default (`z1` of the two-level VAE; at most the data's width for the
/// one-level VAE).
const DEFAULT_LATENT: usize = 8;
/// Dimensions of the two-level VAE's top latent `z2` by default (at most the data's width).
const DEFAULT_LATENT2: usize = 4;
/// Hidden width and layers by default.
const DEFAULT_HIDDEN: usize = 64;
/// Steps and batch by default.
const DEFAULT_STEPS: u64 = 5000;
const DEFAULT_BATCH: usize = 64;
/// Learning rate (Adam) by default.
const DEFAULT_LR: f64 = 1e-3;
/// The two-level VAE's activation by default: with ReLU (and its He-initialised weights) the
/// log-variances chained through its two stochastic layers make the first losses overflow
/// (2·10¹⁹⁵ nats on the digits, a non-finite loss by step 16 on the moons); SiLU trains.
const DEFAULT_HVAE_ACT: &str = "silu";
/// Most hidden layers of a network.
const MAX_LAYERS: usize = 8;

/// The RBM's settings, which no VAE reads (`(flag, given, owner)`).
fn rbm_flags(s: &Settings) -> [(&'static str, bool, &'static str); 4] {
    [
        ("--cd-k", s.cd_k.is_some(), "--objective rbm only"),
        ("--negative", s.negative.is_some(), "--objective rbm only"),
        ("--replicas", s.replicas.is_some(), "--objective rbm only"),
        ("--levels", s.levels.is_some(), "--objective rbm only"),
    ]
}

/// What both VAEs read the same way.
struct Common {
    data_spec: String,
    ds: Dataset,
    norm: Normalizer,
    seed: u64,
    steps: u64,
    batch: usize,
    hidden: usize,
    layers: usize,
    act_name: String,
    activation: super::Activation,
    lr: f64,
}

/// The data (labels kept when `conditional`) and the settings both VAEs share; `--act`
/// defaults to `default_act`.
fn common(s: &Settings, conditional: bool, default_act: &str) -> Result<Common, VaeRunError> {
    let data_spec = s.data.clone().unwrap_or_else(|| "moons".into());
    let source = Source::parse(&data_spec).map_err(msg("--data"))?;
    let seed = s.seed.unwrap_or(0);
    let (ds, norm) = source
        .training_set(conditional, seed)
        .map_err(msg("--data"))?;
    blob_shape(&data_spec, &ds.shape)?;
    let steps = count("--steps", s.steps.unwrap_or(DEFAULT_STEPS), MAX_STEPS)?;
    let batch = count("--batch", s.batch.unwrap_or(DEFAULT_BATCH), MAX_BATCH)?;
    let hidden = count("--hidden", s.hidden.unwrap_or(DEFAULT_HIDDEN), MAX_WIDTH)?;
    let layers = s.blocks.unwrap_or(1);
    if layers > MAX_LAYERS {
        return Err(refuse(format!(
            "--blocks {layers}: a VAE's hidden layers, expected 0..={MAX_LAYERS}"
        )));
    }
    let act_name = s.act.clone().unwrap_or_else(|| default_act.into());
    let activation = vae_run::activation(&act_name)
        .ok_or_else(|| refuse(format!("--act {act_name}: a VAE takes relu, silu or tanh")))?;
    let lr = learning_rate(s, DEFAULT_LR)?;
    Ok(Common {
        data_spec,
        ds,
        norm,
        seed,
        steps,
        batch,
        hidden,
        layers,
        act_name,
        activation,
        lr,
    })
}

impl Common {
    fn train_config(&self) -> TrainConfig {
        TrainConfig {
            steps: self.steps as usize,
            batch: self.batch,
            adam: AdamConfig {
                lr: self.lr,
                ..AdamConfig::default()
            },
            seed: self.seed,
        }
    }

    /// The training data, f64.
    fn x(&self) -> Vec<f64> {
        self.ds.x.iter().map(|&v| f64::from(v)).collect()
    }
}

/// A failed training, with what to try when the loss left the finite numbers.
fn training_failed(e: super::VaeError) -> VaeRunError {
    let hint = if matches!(e, super::VaeError::NonFinite { .. }) {
        "; a smaller --lr (or --act silu) may train"
    } else {
        ""
    };
    refuse(format!("training: {e}{hint}"))
}

/// Mean of the last 100 losses.
fn tail_mean(losses: &[f64]) -> f64 {
    let tail = &losses[losses.len().saturating_sub(100)..];
    tail.iter().sum::<f64>() / tail.len().max(1) as f64
}

/// Writes `dir/loss.csv` (`step,loss`).
fn write_losses(dir: &Path, losses: &[f64]) -> Result<PathBuf, VaeRunError> {
    let curve = dir.join("loss.csv");
    let mut text = String::from("step,loss\n");
    for (i, l) in losses.iter().enumerate() {
        text.push_str(&format!("{},{l}\n", i + 1));
    }
    write_csv(&curve, &text)?;
    Ok(curve)
}

/// `microdiff train --objective vae`: checks the settings, then calls `announce` with a line
/// saying what it trains, trains, and saves the run and its loss curve.
pub fn train(
    s: &Settings,
    f: &TrainFlags<'_>,
    announce: impl FnOnce(&str),
) -> Result<Trained, VaeRunError> {
    train_with::<Cpu>(s, f, None, announce)
}

/// [`train`], on `backend` in f32 ([`backend_train::train_on`]) when one is given (the
/// `--device cuda` path), else by the f64 trainer on the CPU.
pub fn train_with<B: Backend>(
    s: &Settings,
    f: &TrainFlags<'_>,
    backend: Option<OnBackend<'_, B>>,
    announce: impl FnOnce(&str),
) -> Result<Trained, VaeRunError> {
    let mut others = rbm_flags(s).to_vec();
    others.push(("--latent2", s.latent2.is_some(), "--objective hvae only"));
    let flags = match backend {
        Some(_) => OnBackend::<B>::accept_device(f),
        None => *f,
    };
    refuse_flags("vae", s, &flags, &others)?;
    let conditional = s.conditional.unwrap_or(false);
    let c = common(s, conditional, "relu")?;
    let ds = &c.ds;
    let latent = s.latent.unwrap_or(DEFAULT_LATENT.min(ds.dim));
    if latent == 0 || latent > ds.dim {
        return Err(refuse(format!(
            "--latent {latent}: expected 1..={} (the data's values per example)",
            ds.dim
        )));
    }
    check_out(f.out, f.force)?;
    let config = VaeConfig {
        x_dim: ds.dim,
        z_dim: latent,
        classes: ds.classes,
        hidden: vec![c.hidden; c.layers],
        activation: c.activation,
        likelihood: Likelihood::Gaussian,
        seed: c.seed,
    };
    let mut vae = Vae::new(config).map_err(msg("the VAE"))?;
    let on = backend.map_or("the CPU", |b| b.on);
    announce(&format!(
        "training a VAE ({latent} latents, hidden {:?}, {}{}) on {} ({} examples of {:?}) for {} steps, batch {}, on {on}, into {}",
        vec![c.hidden; c.layers],
        c.act_name,
        if ds.classes > 0 {
            ", class-conditional"
        } else {
            ""
        },
        ds.name,
        ds.len(),
        ds.shape,
        c.steps,
        c.batch,
        f.out.display()
    ));
    let start = Instant::now();
    let losses = match backend {
        None => vae
            .train(&c.x(), ds.labels.as_deref(), &c.train_config())
            .map_err(training_failed)?,
        Some(b) => {
            let (trained, losses) = backend_train::train_on(
                b.be,
                &vae,
                &c.x(),
                ds.labels.as_deref(),
                &c.train_config(),
            )
            .map_err(|e| match e {
                BackendTrainError::Vae(e) => training_failed(e),
                e => refuse(format!("training: {e}")),
            })?;
            vae = trained;
            losses
        }
    };
    let run = VaeRun {
        vae,
        dataset: c.data_spec.clone(),
        shape: ds.shape.clone(),
        scale: c.norm.scale.clone(),
        offset: c.norm.offset.clone(),
        steps: c.steps as usize,
        loss: tail_mean(&losses),
        trained_on: backend.map(|b| b.on.to_owned()),
    };
    clear_old_run(f.out)?;
    run.save(f.out)?;
    let curve = write_losses(f.out, &losses)?;
    Ok(Trained {
        run,
        losses,
        seconds: start.elapsed().as_secs_f64(),
        model: VaeRun::path(f.out),
        curve,
    })
}

/// `microdiff train --objective hvae`: a two-level VAE (unconditional, Gaussian likelihood;
/// `--latent` is `z1`, `--latent2` is `z2`, each of its four networks `--blocks` hidden layers
/// of `--hidden`, `--act silu` by default). Checks the settings, then calls `announce` with a
/// line saying what it trains, trains, and saves `hvae.json` and `loss.csv`.
pub fn train_hvae(
    s: &Settings,
    f: &TrainFlags<'_>,
    announce: impl FnOnce(&str),
) -> Result<TrainedHvae, VaeRunError> {
    train_hvae_with::<Cpu>(s, f, None, announce)
}

/// [`train_hvae`], on `backend` in f32 ([`backend_train::train_hvae_on`]) when one is given
/// (the `--device cuda` path), else by the f64 trainer on the CPU.
pub fn train_hvae_with<B: Backend>(
    s: &Settings,
    f: &TrainFlags<'_>,
    backend: Option<OnBackend<'_, B>>,
    announce: impl FnOnce(&str),
) -> Result<TrainedHvae, VaeRunError> {
    let flags = match backend {
        Some(_) => OnBackend::<B>::accept_device(f),
        None => *f,
    };
    refuse_flags("hvae", s, &flags, &rbm_flags(s))?;
    if s.conditional == Some(true) {
        return Err(refuse(
            "--conditional true: the two-level VAE is unconditional (a class-conditional model: \
             --objective vae)"
                .into(),
        ));
    }
    let c = common(s, false, DEFAULT_HVAE_ACT)?;
    let ds = &c.ds;
    let z1 = s.latent.unwrap_or(DEFAULT_LATENT);
    if z1 == 0 || z1 > MAX_WIDTH {
        return Err(refuse(format!(
            "--latent {z1}: the lower latent z1, expected 1..={MAX_WIDTH}"
        )));
    }
    // The exported blob draws z2 into a sample-sized register.
    let z2 = s.latent2.unwrap_or(DEFAULT_LATENT2.min(ds.dim));
    if z2 == 0 || z2 > ds.dim {
        return Err(refuse(format!(
            "--latent2 {z2}: the top latent z2, expected 1..={} (the data's values per example)",
            ds.dim
        )));
    }
    check_out(f.out, f.force)?;
    let config = HvaeConfig {
        x_dim: ds.dim,
        z1_dim: z1,
        z2_dim: z2,
        hidden: vec![c.hidden; c.layers],
        activation: c.activation,
        likelihood: Likelihood::Gaussian,
        seed: c.seed,
    };
    let mut hvae = Hvae::new(config).map_err(msg("the two-level VAE"))?;
    announce(&format!(
        "training a two-level VAE (z1 {z1}, z2 {z2}, hidden {:?}, {}) on {} ({} examples of {:?}) for {} steps, batch {}, on {}, into {}",
        vec![c.hidden; c.layers],
        c.act_name,
        ds.name,
        ds.len(),
        ds.shape,
        c.steps,
        c.batch,
        backend.map_or("the CPU", |b| b.on),
        f.out.display()
    ));
    let start = Instant::now();
    let losses = match backend {
        None => hvae
            .train(&c.x(), &c.train_config())
            .map_err(training_failed)?,
        Some(b) => {
            let (trained, losses) =
                backend_train::train_hvae_on(b.be, &hvae, &c.x(), &c.train_config()).map_err(
                    |e| match e {
                        BackendTrainError::Vae(e) => training_failed(e),
                        e => refuse(format!("training: {e}")),
                    },
                )?;
            hvae = trained;
            losses
        }
    };
    let run = HvaeRun {
        hvae,
        dataset: c.data_spec.clone(),
        shape: ds.shape.clone(),
        scale: c.norm.scale.clone(),
        offset: c.norm.offset.clone(),
        steps: c.steps as usize,
        loss: tail_mean(&losses),
        trained_on: backend.map(|b| b.on.to_owned()),
    };
    clear_old_run(f.out)?;
    run.save(f.out)?;
    let curve = write_losses(f.out, &losses)?;
    Ok(TrainedHvae {
        run,
        losses,
        seconds: start.elapsed().as_secs_f64(),
        model: HvaeRun::path(f.out),
        curve,
    })
}

/// A run's sample shape as a blob's (refused when it does not fit).
fn blob_dims(shape: &[usize]) -> Result<Vec<u16>, VaeRunError> {
    shape
        .iter()
        .map(|&d| u16::try_from(d))
        .collect::<Result<_, _>>()
        .map_err(|_| refuse(format!("export: shape {shape:?} does not fit a blob")))
}

/// `--dtype` of a float blob (f32, f16, i8).
fn float_dtype(name: &str) -> Option<Dtype> {
    match name {
        "f32" => Some(Dtype::F32),
        "f16" => Some(Dtype::F16),
        "i8" => Some(Dtype::I8),
        _ => None,
    }
}

/// Writes the blob atomically; returns it.
fn write_blob(out: &Path, bytes: Vec<u8>) -> Result<Vec<u8>, VaeRunError> {
    crate::files::write_atomic(out, &bytes).map_err(|source| VaeRunError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    Ok(bytes)
}

/// `microdiff export RUN` for a VAE run: the decoder as a blob with the program `decode`.
/// `dtype`: f32, f16, i8 (int8 weights, f32 arithmetic) or w8a8 (full integer, calibrated on
/// `calibration` latents per class). Returns the blob, written atomically to `out`.
pub fn export_blob(
    run_dir: &Path,
    dtype: &str,
    calibration: Option<usize>,
    out: &Path,
) -> Result<Vec<u8>, VaeRunError> {
    let run = VaeRun::load(run_dir)?;
    let shape = blob_dims(&run.shape)?;
    let units = (run.scale.as_slice(), run.offset.as_slice());
    let bytes = match dtype {
        "w8a8" => export::blob_w8a8(
            &run.vae,
            &shape,
            units,
            (calibration.unwrap_or(64), 0x00CA_11B8),
        ),
        other => {
            let d = float_dtype(other)
                .ok_or_else(|| refuse(format!("--dtype {other}: expected f32, f16, i8 or w8a8")))?;
            if calibration.is_some() {
                return Err(refuse(
                    "--calibration-samples applies to --dtype w8a8 only".into(),
                ));
            }
            export::blob(&run.vae, &shape, d, units)
        }
    }
    .map_err(msg("export"))?;
    write_blob(out, bytes)
}

/// `microdiff export RUN` for a two-level VAE run: its generative path as a blob with the
/// program `decode` (`zoo::vae::export::hvae_blob`). `dtype`: f32, f16 or i8; w8a8 is refused
/// ([`VaeRunError::NoW8a8`]). Returns the blob, written atomically to `out`.
pub fn export_hvae_blob(run_dir: &Path, dtype: &str, out: &Path) -> Result<Vec<u8>, VaeRunError> {
    let run = HvaeRun::load(run_dir)?;
    let d = match dtype {
        "w8a8" => return Err(VaeRunError::NoW8a8),
        other => float_dtype(other)
            .ok_or_else(|| refuse(format!("--dtype {other}: expected f32, f16 or i8")))?,
    };
    let shape = blob_dims(&run.shape)?;
    let units = (run.scale.as_slice(), run.offset.as_slice());
    let bytes = export::hvae_blob(&run.hvae, &shape, d, units).map_err(msg("export"))?;
    write_blob(out, bytes)
}
