//! What `microdiff train --objective rbm` and `microdiff export` of such a run do: a binary
//! [`Rbm`] trained on the CPU in f64 (`--device cuda`: on a backend in f32, [`train_with`])
//! on the data binarised at the midpoint of its range (the
//! map of [`super::run`]), kept as `rbm.json` ([`RbmRun`]) with the per-epoch curve
//! `epochs.csv`, exported as a blob whose programs `gibbsK` run `K` block Gibbs sweeps on the
//! device (docs/zoo.md). The diffusion run machinery (checkpoints, `--resume`, the GPU) and the
//! networks' settings do not apply: the flags that belong to them are refused, not ignored.
//! Errors are [`RbmRunError`]s phrased for the command line.
//!
//! # Training
//!
//! `--steps` parameter updates of `--batch` rows each ([`train_updates`]: epochs of shuffled
//! mini-batches, the last one possibly partial), plain gradient steps of `--lr` with the
//! weight decay [`WEIGHT_DECAY`]; the negative phase is `--negative cd` (chains restarted at
//! the batch's rows), `pcd` (`--batch` persistent chains) or `pt` (`--batch` persistent
//! replica-exchange chains of `--replicas` inverse temperatures evenly spaced from 1 down to
//! [`PT_BETA_MIN`]), each taking `--cd-k` Gibbs sweeps per update. The machine starts from
//! weights `N(0, 0.01²)` ([`INIT_SCALE`]), zero hidden biases and visible biases at the
//! training set's log-odds `ln(p/(1 − p))` (`p` clamped to `[1/1000, 999/1000]`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use microdiff_kernels::Dtype;

use super::backend_train::{BackendTrainError, train_updates_on};
use super::run::{MAX_LEVELS, RbmRun, RbmRunError, RbmTraining, thresholds};
use super::{EpochStats, Ladder, NegativePhase, Rbm, TrainConfig, export, train_updates};
use crate::backend::Backend;
use crate::backend::cpu::Cpu;
use crate::data::Source;
use crate::run::Settings;
use crate::zoo::command::{
    MAX_BATCH, MAX_STEPS, MAX_WIDTH, blob_shape, check_out, clear_old_run, count, learning_rate,
    refuse_flags, write_csv,
};

pub use crate::zoo::command::{OnBackend, TrainFlags};

/// Hidden units by default.
pub const DEFAULT_HIDDEN: usize = 64;
/// Parameter updates by default.
pub const DEFAULT_STEPS: u64 = 5000;
/// Rows per update (and persistent chains) by default.
pub const DEFAULT_BATCH: usize = 64;
/// Learning rate by default (plain gradient steps on the log-likelihood per example).
pub const DEFAULT_LR: f64 = 0.05;
/// Gibbs sweeps per update by default.
pub const DEFAULT_CD_K: usize = 1;
/// Most Gibbs sweeps per update.
pub const MAX_CD_K: usize = 1000;
/// Replicas of a replica-exchange chain by default, and the range allowed.
pub const DEFAULT_REPLICAS: usize = 5;
/// See [`DEFAULT_REPLICAS`].
pub const MAX_REPLICAS: usize = 64;
/// The smallest inverse temperature of a replica-exchange chain.
pub const PT_BETA_MIN: f64 = 0.5;
/// L2 decay of the weights per update (Hinton's "practical guide" value).
pub const WEIGHT_DECAY: f64 = 1e-4;
/// Standard deviation of the initial weights.
pub const INIT_SCALE: f64 = 0.01;
/// Most weights (visible × hidden units): 512 MiB of f64, far past any useful machine.
pub const MAX_WEIGHTS: usize = 1 << 26;
/// The blob's programs without `--sweeps`.
pub const DEFAULT_SWEEPS: [u16; 2] = [10, 100];

/// A refusal of the command line's.
fn refuse(message: String) -> RbmRunError {
    RbmRunError::Setting(message)
}

/// `context: error` as a refusal.
fn msg<E: std::fmt::Display>(context: &str) -> impl FnOnce(E) -> RbmRunError + '_ {
    move |e| refuse(format!("{context}: {e}"))
}

/// A finished training.
#[derive(Debug, Clone)]
pub struct Trained {
    /// The run as saved.
    pub run: RbmRun,
    /// Every epoch's statistics (the last may be partial).
    pub epochs: Vec<EpochStats>,
    /// Wall-clock seconds of the training.
    pub seconds: f64,
    /// `rbm.json`.
    pub model: PathBuf,
    /// `epochs.csv`.
    pub curve: PathBuf,
}

/// The negative phase of `--negative` (and `--replicas`), with its name and ladder.
fn negative_phase(
    s: &Settings,
    chains: usize,
) -> Result<(NegativePhase, &'static str, Vec<f64>), RbmRunError> {
    let name = s.negative.as_deref().unwrap_or("pcd");
    if name != "pt" && s.replicas.is_some() {
        return Err(refuse(format!(
            "--replicas applies to --negative pt only (this run: --negative {name})"
        )));
    }
    Ok(match name {
        "cd" => (NegativePhase::Contrastive, "cd", Vec::new()),
        "pcd" => (NegativePhase::Persistent { chains }, "pcd", Vec::new()),
        "pt" => {
            let k = s.replicas.unwrap_or(DEFAULT_REPLICAS);
            if !(2..=MAX_REPLICAS).contains(&k) {
                return Err(refuse(format!(
                    "--replicas {k}: expected 2..={MAX_REPLICAS}"
                )));
            }
            let ladder = Ladder::linear(k, PT_BETA_MIN).map_err(msg("--replicas"))?;
            let betas = ladder.betas().to_vec();
            (NegativePhase::Tempering { chains, ladder }, "pt", betas)
        }
        other => {
            return Err(refuse(format!(
                "--negative {other}: expected cd, pcd or pt"
            )));
        }
    })
}

/// `microdiff train --objective rbm`: checks the settings, then calls `announce` with a line
/// saying what it trains, trains, and saves `rbm.json` and `epochs.csv`.
pub fn train(
    s: &Settings,
    f: &TrainFlags<'_>,
    announce: impl FnOnce(&str),
) -> Result<Trained, RbmRunError> {
    train_with::<Cpu>(s, f, None, announce)
}

/// [`train`], on `backend` in f32 ([`train_updates_on`], CD-k and persistent CD) when one is
/// given (the `--device cuda` path), else by the f64 trainer on the CPU.
pub fn train_with<B: Backend>(
    s: &Settings,
    f: &TrainFlags<'_>,
    backend: Option<OnBackend<'_, B>>,
    announce: impl FnOnce(&str),
) -> Result<Trained, RbmRunError> {
    let networks = "an RBM has no network: its units are binary, its layers one matrix";
    let flags = match backend {
        Some(_) => OnBackend::<B>::accept_device(f),
        None => *f,
    };
    refuse_flags(
        "rbm",
        s,
        &flags,
        &[
            ("--act", s.act.is_some(), networks),
            ("--blocks", s.blocks.is_some(), networks),
            (
                "--latent",
                s.latent.is_some(),
                "--objective vae and hvae only; an RBM's hidden units are --hidden",
            ),
            ("--latent2", s.latent2.is_some(), "--objective hvae only"),
        ],
    )?;
    if s.conditional == Some(true) {
        return Err(refuse(
            "--conditional true: the RBM is unconditional (a class-conditional zoo model: \
             --objective vae)"
                .into(),
        ));
    }
    let data_spec = s.data.clone().unwrap_or_else(|| "moons".into());
    let source = Source::parse(&data_spec).map_err(msg("--data"))?;
    let seed = s.seed.unwrap_or(0);
    let ds = source.training_data(false, seed).map_err(msg("--data"))?;
    blob_shape(&data_spec, &ds.shape)?;
    let (lo, hi) =
        ds.x.iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
    if !(lo < hi && (hi - lo).is_finite()) {
        return Err(refuse(format!(
            "--data {data_spec}: its values span {lo}..{hi}; an RBM binarises the data at the \
             midpoint of its range, which needs two different finite values"
        )));
    }
    let steps = count("--steps", s.steps.unwrap_or(DEFAULT_STEPS), MAX_STEPS)?;
    let batch = count("--batch", s.batch.unwrap_or(DEFAULT_BATCH), MAX_BATCH)?;
    let nh = count("--hidden", s.hidden.unwrap_or(DEFAULT_HIDDEN), MAX_WIDTH)?;
    let levels = s.levels.unwrap_or(2);
    if !(2..=MAX_LEVELS).contains(&levels) {
        return Err(refuse(format!(
            "--levels {levels}: expected 2..={MAX_LEVELS} (a value becomes levels − 1 binary units)"
        )));
    }
    let per = usize::from(levels - 1);
    let nv = ds.dim.checked_mul(per).ok_or_else(|| {
        refuse(format!(
            "--levels {levels}: {} values × {per} units overflow",
            ds.dim
        ))
    })?;
    if nv.checked_mul(nh).is_none_or(|w| w > MAX_WEIGHTS) {
        return Err(refuse(format!(
            "--hidden {nh}: {nv} visible × {nh} hidden units is more than {MAX_WEIGHTS} weights; \
             make the machine smaller"
        )));
    }
    let lr = learning_rate(s, DEFAULT_LR)?;
    let cd_k = count("--cd-k", s.cd_k.unwrap_or(DEFAULT_CD_K), MAX_CD_K)?;
    let (negative, negative_name, ladder) = negative_phase(s, batch)?;
    check_out(f.out, f.force)?;

    let cuts = thresholds(lo, hi, levels);
    let data = super::run::binarize_levels(&ds.x, ds.dim, &cuts).map_err(msg("--data"))?;
    let initial = start(nv, nh, &data, seed)?;
    let chains = match negative {
        NegativePhase::Contrastive => 0,
        _ => batch,
    };
    let config = TrainConfig {
        epochs: 0,
        batch_size: batch,
        learning_rate: lr,
        weight_decay: WEIGHT_DECAY,
        gibbs_steps: cd_k,
        negative,
        seed,
        exact_max_units: 0,
    };
    announce(&format!(
        "training an RBM ({nv} visible, {nh} hidden units; {negative_name}{}, {cd_k} Gibbs \
         sweep(s) per update) on {} ({} examples of {:?}, {}) for {steps} updates, \
         batch {batch}, on {}, into {}",
        if ladder.is_empty() {
            String::new()
        } else {
            format!(" with {} replicas", ladder.len())
        },
        ds.name,
        ds.len(),
        ds.shape,
        if levels == 2 {
            format!("binarised at {}", cuts[0])
        } else {
            format!(
                "each value {per} thermometer units, thresholds {} .. {}",
                cuts[0],
                cuts[per - 1]
            )
        },
        backend.map_or("the CPU", |b| b.on),
        f.out.display()
    ));
    let started = Instant::now();
    let trained = match backend {
        None => {
            train_updates(&initial, &data, &config, steps as usize).map_err(RbmRunError::Train)?
        }
        Some(b) => train_updates_on(b.be, &initial, &data, &config, steps as usize).map_err(
            |e| match e {
                BackendTrainError::Rbm(e) => RbmRunError::Train(e),
                e => RbmRunError::Setting(e.to_string()),
            },
        )?,
    };
    let per_epoch = data.rows().div_ceil(batch);
    let run = RbmRun {
        rbm: trained.rbm,
        dataset: data_spec,
        shape: ds.shape.clone(),
        data_min: lo,
        data_max: hi,
        levels,
        training: RbmTraining {
            steps,
            epochs: trained.epochs.len(),
            batch,
            lr,
            weight_decay: WEIGHT_DECAY,
            cd_k,
            negative: negative_name.into(),
            chains,
            ladder,
            seed,
        },
        reconstruction_error: trained
            .epochs
            .last()
            .map_or(f64::NAN, |e| e.reconstruction_error),
    };
    clear_old_run(f.out)?;
    run.save(f.out)?;
    let curve = f.out.join("epochs.csv");
    write_csv(&curve, &epochs_csv(&trained.epochs, per_epoch, steps))?;
    Ok(Trained {
        run,
        epochs: trained.epochs,
        seconds: started.elapsed().as_secs_f64(),
        model: RbmRun::path(f.out),
        curve,
    })
}

/// The machine training starts from (see the module doc).
fn start(nv: usize, nh: usize, data: &super::BinaryData, seed: u64) -> Result<Rbm, RbmRunError> {
    let random = Rbm::random(nv, nh, INIT_SCALE, seed).map_err(RbmRunError::Train)?;
    let rows = data.rows() as f64;
    let mut on = vec![0.0; nv];
    for row in data.iter() {
        for (n, v) in on.iter_mut().zip(row) {
            *n += v;
        }
    }
    let b = on
        .iter()
        .map(|&n| {
            let p = (n / rows).clamp(1e-3, 1.0 - 1e-3);
            (p / (1.0 - p)).ln()
        })
        .collect();
    Rbm::from_parts(
        nv,
        nh,
        random.weights().to_vec(),
        b,
        random.hidden_bias().to_vec(),
    )
    .map_err(RbmRunError::Train)
}

/// `epochs.csv`: `epoch,updates,reconstruction_error`, and for replica exchange each
/// neighbour pair's swap acceptance in that epoch (`swap_K_K+1`, rung 0 at β = 1).
fn epochs_csv(epochs: &[EpochStats], per_epoch: usize, steps: u64) -> String {
    let pairs = epochs
        .first()
        .and_then(|e| e.swap_acceptance.as_ref())
        .map_or(0, Vec::len);
    let mut text = String::from("epoch,updates,reconstruction_error");
    for k in 0..pairs {
        text.push_str(&format!(",swap_{k}_{}", k + 1));
    }
    text.push('\n');
    for e in epochs {
        let updates = (e.epoch as u64).saturating_mul(per_epoch as u64).min(steps);
        text.push_str(&format!("{},{updates},{}", e.epoch, e.reconstruction_error));
        for a in e.swap_acceptance.iter().flatten() {
            text.push_str(&format!(",{a}"));
        }
        text.push('\n');
    }
    text
}

/// Host chains the W8A8 export calibrates the pre-activation ranges on.
pub const W8A8_CHAINS: usize = 64;
/// Their noise seed.
const W8A8_SEED: u64 = 0x00CA_11B8;

/// `microdiff export RUN` for an RBM run: a blob whose programs `gibbsK` run `K` Gibbs sweeps
/// for each `K` of `sweeps` (default [`DEFAULT_SWEEPS`]), matrices as `dtype` (f32, f16 or i8
/// with f32 arithmetic, or `w8a8`: the full-integer sweep, calibrated on [`W8A8_CHAINS`] host
/// chains). Returns the blob, written atomically to `out`.
pub fn export_blob(
    run_dir: &Path,
    dtype: &str,
    sweeps: Option<&[u16]>,
    out: &Path,
) -> Result<Vec<u8>, RbmRunError> {
    let run = RbmRun::load(run_dir)?;
    let d = match dtype {
        "f32" => Some(Dtype::F32),
        "f16" => Some(Dtype::F16),
        "i8" => Some(Dtype::I8),
        "w8a8" => None,
        other => {
            return Err(refuse(format!(
                "--dtype {other}: expected f32, f16, i8 or w8a8"
            )));
        }
    };
    let shape: Vec<u16> = run
        .blob_shape()
        .iter()
        .map(|&n| u16::try_from(n))
        .collect::<Result<_, _>>()
        .map_err(|_| refuse(format!("export: shape {:?} does not fit a blob", run.shape)))?;
    let (scale, offset) = run.units();
    let sweeps = sweeps.unwrap_or(&DEFAULT_SWEEPS);
    let bytes = match d {
        Some(d) => export::blob(&run.rbm, &shape, d, sweeps, (&scale, &offset)),
        None => export::blob_w8a8(
            &run.rbm,
            &shape,
            sweeps,
            (&scale, &offset),
            (W8A8_CHAINS, W8A8_SEED),
        ),
    }
    .map_err(msg("export"))?;
    crate::files::write_atomic(out, &bytes).map_err(|source| RbmRunError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The curve names its columns and counts updates, the partial last epoch included.
    #[test]
    fn the_epoch_curve_counts_updates() {
        let e = |epoch, swap: Option<Vec<f64>>| EpochStats {
            epoch,
            reconstruction_error: 0.5,
            log_likelihood: None,
            swap_acceptance: swap,
        };
        let csv = epochs_csv(&[e(1, None), e(2, None)], 4, 6);
        assert_eq!(
            csv,
            "epoch,updates,reconstruction_error\n1,4,0.5\n2,6,0.5\n"
        );
        let csv = epochs_csv(&[e(1, Some(vec![0.25, 0.75]))], 4, 4);
        assert_eq!(
            csv,
            "epoch,updates,reconstruction_error,swap_0_1,swap_1_2\n1,4,0.5,0.25,0.75\n"
        );
    }
}
