//! The training loop, written once over [`Backend`].
//!
//! Every random choice of step `s` — which example fills row `r`, its time, its noise, whether
//! its label is dropped for guidance — is a pure function of `(seed, s, r)` through the
//! runtime's counter-based noise ([`Domain::TrainData`], [`Domain::TrainTime`],
//! [`Domain::TrainNoise`], [`Domain::TrainDropout`]). Nothing else carries state between
//! steps except the parameters, the EMA and Adam's moments, which the checkpoint stores; so a
//! run interrupted and resumed from a checkpoint ends with bit-identical weights.

use serde::{Deserialize, Serialize};

use microdiff_runtime::blob::meta::Prediction;
use microdiff_runtime::noise::{Domain, NoiseStream};

use crate::backend::{AdamStep, Backend, BackendError, Moments, UpdateStep};
use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::model::{Activations, Mlp, MlpConfig};
use crate::objective::Drawer;
use crate::optim::OptimConfig;
use crate::process::Process;

/// A training run's configuration (also the checkpoint header's identity).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Network shape.
    pub model: MlpConfig,
    /// Noise process (and so the objective).
    pub process: Process,
    /// Optimiser.
    pub optim: OptimConfig,
    /// Optimiser steps.
    pub steps: u64,
    /// Rows per step.
    pub batch: usize,
    /// Seed of the initial weights and of every random draw.
    pub seed: u64,
    /// Probability of replacing a row's class by the null class (classifier-free guidance).
    pub cfg_dropout: f32,
    /// What the network outputs when it is not the process's own target
    /// ([`Process::prediction`]): set by `microdiff import` only ([`crate::prediction`]);
    /// `None` (not written) for the process's own. Training fits the process's own target and
    /// refuses a run with another.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::prediction::serde_name"
    )]
    pub prediction: Option<Prediction>,
}

/// Most training steps ([`TrainConfig::validate`]).
pub const MAX_STEPS: u64 = 1_000_000_000;

impl TrainConfig {
    /// The demo's class-conditional digits model (the on-device architecture: 8×8 images, width
    /// 96, two blocks of 128, 10 classes and the null class for guidance), as `microdiff demo`
    /// trains it; also what the trained golden blobs are made from.
    pub fn digits_demo(steps: u64, seed: u64) -> Self {
        TrainConfig {
            model: MlpConfig {
                data_dim: 64,
                hidden: 96,
                ff: 128,
                temb: 32,
                blocks: 2,
                classes: 10,
                act: microdiff_kernels::Activation::Silu,
            },
            process: Process::ddpm_default(),
            optim: crate::optim::OptimConfig {
                lr: 2e-3,
                warmup: 200,
                ema_decay: 0.999,
                ..crate::optim::OptimConfig::default()
            },
            steps,
            batch: 256,
            seed,
            cfg_dropout: 0.1,
            prediction: None,
        }
    }

    /// What the network outputs: [`TrainConfig::prediction`], or the process's own target.
    pub fn prediction(&self) -> Prediction {
        self.prediction.unwrap_or_else(|| self.process.prediction())
    }

    /// `Ok` unless the network predicts something other than the process's own target (an
    /// imported one), which microdiff does not train.
    pub fn trainable(&self) -> Result<(), TrainError> {
        if self.prediction() == self.process.prediction() {
            return Ok(());
        }
        Err(TrainError::Config(format!(
            "this network predicts {} (an imported model); microdiff trains {} networks to \
             predict {} only, so it can be exported, sampled and evaluated but not trained \
             further here",
            self.prediction().name(),
            self.process.name(),
            self.process.prediction().name()
        )))
    }

    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |what: String| Err(TrainError::Config(what));
        self.model.validate().map_err(TrainError::Config)?;
        // Before the first step, not at export: a NaN or negative σ_max trained into a
        // non-finite loss blamed on the learning rate.
        self.process
            .validate()
            .map_err(|e| TrainError::Config(e.to_string()))?;
        self.optim.validate().map_err(TrainError::Config)?;
        if self.batch == 0 || self.steps == 0 {
            return bad("batch and steps must be > 0".into());
        }
        if self.steps > MAX_STEPS {
            return bad(format!("steps {}: at most {MAX_STEPS}", self.steps));
        }
        if !(0.0..1.0).contains(&self.cfg_dropout) {
            return bad("cfg_dropout must be in [0, 1)".into());
        }
        if self.cfg_dropout > 0.0 && self.model.classes == 0 {
            return bad("cfg_dropout needs a class-conditional model".into());
        }
        crate::prediction::check(&self.process, self.prediction())
            .map_err(|e| TrainError::Config(e.to_string()))?;
        Ok(())
    }
}

/// What a checkpoint header holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunHeader {
    /// The run's configuration.
    pub config: TrainConfig,
    /// Steps completed.
    pub step: u64,
    /// `(step, loss)` every step.
    pub losses: Vec<(u64, f32)>,
}

/// Training data in model space.
#[derive(Debug, Clone)]
pub struct TrainData {
    /// `n × dim`, row-major, already normalised.
    pub x: Vec<f32>,
    /// Elements per example.
    pub dim: usize,
    /// Class of each example, if labelled.
    pub labels: Option<Vec<u16>>,
}

/// Errors of the training loop.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A setting is out of range.
    #[error("invalid training configuration: {0}")]
    Config(String),
    /// The data does not fit the model.
    #[error("training data: {0}")]
    Data(String),
    /// Reading or writing a checkpoint failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The loss became NaN or infinite.
    #[error(
        "loss is not finite at step {step}; lower the learning rate or enable gradient clipping"
    )]
    Diverged {
        /// The step.
        step: u64,
    },
    /// The backend's device failed (a CUDA error); the run's state on the device is lost,
    /// the last checkpoint is not.
    #[error("step {step}: {source}")]
    Backend {
        /// The step.
        step: u64,
        /// The device's error.
        source: BackendError,
    },
}

/// A run in progress on backend `B`.
pub struct Trainer<B: Backend> {
    be: B,
    mlp: Mlp,
    config: TrainConfig,
    data: TrainData,
    params: B::Buf,
    ema: B::Buf,
    m: B::Buf,
    v: B::Buf,
    grads: B::Buf,
    mask: B::Buf,
    acts: Activations<B>,
    x0: B::Buf,
    eps: B::Buf,
    coef: B::Buf,
    target: B::Buf,
    dout: B::Buf,
    step: u64,
    losses: Vec<(u64, f32)>,
    /// Each row's time and noise coefficients, tabulated once for DDPM.
    drawer: Drawer,
    /// Host staging of one step's draws, reused: x₀ (b×d), `coef` (4b), times, classes.
    host: HostBatch,
}

/// Where a run starts ([`Trainer::new`]: the initial weights; [`Trainer::resume`]: a
/// checkpoint): parameters, EMA, Adam's moments (`None`: zeros), steps done and their losses.
struct State<'a> {
    params: &'a [f32],
    ema: &'a [f32],
    moments: Option<(&'a [f32], &'a [f32])>,
    step: u64,
    losses: Vec<(u64, f32)>,
}

/// One step's batch as drawn on the host, before it is written to the backend.
struct HostBatch {
    x0: Vec<f32>,
    coef: Vec<f32>,
    t: Vec<f32>,
    classes: Vec<f32>,
}

impl<B: Backend> Trainer<B> {
    /// A fresh run.
    pub fn new(be: B, config: TrainConfig, data: TrainData) -> Result<Self, TrainError> {
        let init = config.model.init(config.seed);
        let state = State {
            params: &init,
            ema: &init,
            moments: None,
            step: 0,
            losses: Vec::new(),
        };
        Self::with_state(be, config, data, state)
    }

    /// Continues the run saved in `ckpt`; `config` must be the checkpoint's, except that the
    /// total number of steps may grow.
    pub fn resume(
        be: B,
        config: TrainConfig,
        data: TrainData,
        ckpt: Checkpoint<RunHeader>,
        path: &std::path::Path,
    ) -> Result<Self, TrainError> {
        let saved = &ckpt.header.config;
        let same = TrainConfig {
            steps: saved.steps,
            ..config.clone()
        } == *saved;
        if !same {
            return Err(CheckpointError::Mismatch {
                path: path.to_path_buf(),
                what: "model, process, optimiser, batch, seed or guidance dropout differ".into(),
            }
            .into());
        }
        if ckpt.params.len() != config.model.parameter_count() {
            return Err(CheckpointError::Mismatch {
                path: path.to_path_buf(),
                what: "parameter count".into(),
            }
            .into());
        }
        let state = State {
            params: &ckpt.params,
            ema: &ckpt.ema,
            moments: Some((&ckpt.m, &ckpt.v)),
            step: ckpt.header.step,
            losses: ckpt.header.losses.clone(),
        };
        Self::with_state(be, config, data, state)
    }

    fn with_state(
        be: B,
        config: TrainConfig,
        data: TrainData,
        state: State<'_>,
    ) -> Result<Self, TrainError> {
        let State {
            params,
            ema,
            moments,
            step,
            losses,
        } = state;
        config.validate()?;
        config.trainable()?;
        let c = &config.model;
        if data.dim != c.data_dim {
            return Err(TrainError::Data(format!(
                "examples have {} values, the model expects {}",
                data.dim, c.data_dim
            )));
        }
        if data.x.is_empty() || !data.x.len().is_multiple_of(data.dim) {
            return Err(TrainError::Data("no examples, or a partial row".into()));
        }
        if c.classes > 0 {
            let labels = data
                .labels
                .as_ref()
                .ok_or_else(|| TrainError::Data("a class-conditional model needs labels".into()))?;
            if labels.len() != data.x.len() / data.dim {
                return Err(TrainError::Data("one label per example expected".into()));
            }
            if let Some(&l) = labels.iter().find(|&&l| l as usize >= c.classes) {
                return Err(TrainError::Data(format!(
                    "label {l} but the model has {} classes",
                    c.classes
                )));
            }
        }
        let mlp = Mlp::new(config.model);
        let n = mlp.layout.len;
        let b = config.batch;
        let d = c.data_dim;
        let zeros = vec![0.0; n];
        let (m, v) = moments.unwrap_or((&zeros, &zeros));
        let drawer = Drawer::new(&config.process);
        Ok(Trainer {
            params: be.upload(params),
            ema: be.upload(ema),
            m: be.upload(m),
            v: be.upload(v),
            grads: be.zeros(n),
            mask: be.upload(&mlp.layout.decay_mask()),
            acts: mlp.activations(&be, b),
            x0: be.zeros(b * d),
            eps: be.zeros(b * d),
            coef: be.zeros(4 * b),
            target: be.zeros(b * d),
            dout: be.zeros(b * d),
            be,
            mlp,
            config,
            data,
            step,
            losses,
            drawer,
            host: HostBatch {
                x0: vec![0.0; b * d],
                coef: vec![0.0; 4 * b],
                t: vec![0.0; b],
                classes: vec![0.0; b],
            },
        })
    }

    /// The backend (e.g. to [`Backend::check`] it after downloading a checkpoint).
    pub fn backend(&self) -> &B {
        &self.be
    }

    /// Steps completed.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// `(step, loss)` so far.
    pub fn losses(&self) -> &[(u64, f32)] {
        &self.losses
    }

    /// Runs one optimiser step; returns its loss.
    pub fn step(&mut self) -> Result<f32, TrainError> {
        let s = self.step + 1;
        let (b, d) = (self.config.batch, self.config.model.data_dim);
        let n = self.data.x.len() / d;
        let seed = self.config.seed;
        let pick = NoiseStream::new(seed, 0, Domain::TrainData);
        let time = NoiseStream::new(seed, 0, Domain::TrainTime);
        let drop = NoiseStream::new(seed, 0, Domain::TrainDropout);
        let noise = NoiseStream::new(seed, 0, Domain::TrainNoise);
        let draw = s as u32;
        let HostBatch {
            x0,
            coef,
            t: tv,
            classes,
        } = &mut self.host;
        let null = self.config.model.classes as f32;
        for r in 0..b {
            let i = ((pick.uniform(draw, r as u32) as f64 * n as f64) as usize).min(n - 1);
            x0[r * d..(r + 1) * d].copy_from_slice(&self.data.x[i * d..(i + 1) * d]);
            let dr = self.drawer.draw(time.uniform(draw, r as u32));
            coef[4 * r..4 * r + 4].copy_from_slice(&dr.coef);
            tv[r] = dr.time_value;
            if let Some(labels) = &self.data.labels {
                classes[r] = if drop.uniform(draw, r as u32) < self.config.cfg_dropout {
                    null
                } else {
                    labels[i] as f32
                };
            }
        }
        let be = &self.be;
        be.write(&mut self.x0, x0);
        be.fill_normal(&mut self.eps, &noise, draw);
        be.write(&mut self.coef, coef);
        be.noise_and_target(
            &self.x0,
            &self.eps,
            &self.coef,
            &mut self.acts.x,
            &mut self.target,
            d,
        );
        self.mlp
            .forward_filled(be, &self.params, &mut self.acts, tv, classes);
        let loss = be.mse(&self.acts.out, &self.target, &mut self.dout);
        be.check()
            .map_err(|source| TrainError::Backend { step: s, source })?;
        if !loss.is_finite() {
            return Err(TrainError::Diverged { step: s });
        }
        // `grads` is zero here: created so, and zeroed again by every `update`.
        self.mlp.backward(
            be,
            &self.params,
            &mut self.acts,
            &self.dout,
            &mut self.grads,
        );
        let o = &self.config.optim;
        let clip = o.clip_factor(be.norm(&self.grads));
        let lr = o.lr_at(s, self.config.steps);
        let update = UpdateStep {
            adam: AdamStep {
                hp: o.adamw,
                step: s,
                lr,
            },
            clip,
            ema_decay: o.ema_at(s),
        };
        let moments = Moments {
            m: &mut self.m,
            v: &mut self.v,
        };
        be.update(
            &mut self.params,
            &mut self.grads,
            moments,
            &self.mask,
            &mut self.ema,
            update,
        );
        be.check()
            .map_err(|source| TrainError::Backend { step: s, source })?;
        self.step = s;
        self.losses.push((s, loss));
        Ok(loss)
    }

    /// The raw parameters.
    pub fn params(&self) -> Vec<f32> {
        self.be.download(&self.params)
    }

    /// The EMA parameters (what gets exported), or the raw ones when EMA is off.
    pub fn export_params(&self) -> Vec<f32> {
        if self.config.optim.ema_decay > 0.0 {
            self.be.download(&self.ema)
        } else {
            self.params()
        }
    }

    /// The run's state as a checkpoint.
    pub fn checkpoint(&self) -> Checkpoint<RunHeader> {
        Checkpoint {
            header: RunHeader {
                config: self.config.clone(),
                step: self.step,
                losses: self.losses.clone(),
            },
            params: self.be.download(&self.params),
            ema: self.be.download(&self.ema),
            m: self.be.download(&self.m),
            v: self.be.download(&self.v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::Cpu;
    use crate::data::{Toy, toy_labelled};
    use crate::optim::OptimConfig;
    use crate::process::Process;
    use microdiff_kernels::Activation;

    /// The whole step — batch draw, noise, forward, loss, backward, gradient norm and clipping,
    /// the fused AdamW/EMA update — gives the same bits on 1, 2 and 3 threads, run the way the
    /// CLI runs it (in `hot_pool`). Under `cfg(test)` the CPU backend splits even this small
    /// shape across threads.
    #[test]
    fn training_does_not_depend_on_the_thread_count() {
        let ds = toy_labelled(Toy::TwoMoons, 500, 1);
        let data = TrainData {
            x: ds.x,
            dim: 2,
            labels: ds.labels,
        };
        let config = TrainConfig {
            model: MlpConfig {
                data_dim: 2,
                hidden: 48,
                ff: 80,
                temb: 16,
                blocks: 2,
                classes: 2,
                act: Activation::Silu,
            },
            process: Process::ddpm_default(),
            // A small clipping norm, so the clipped path of the update is taken too.
            optim: OptimConfig {
                grad_clip: 0.05,
                ..OptimConfig::default()
            },
            steps: 6,
            batch: 75,
            seed: 9,
            prediction: None,
            cfg_dropout: 0.1,
        };
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            // Inside `hot_pool`, as the CLI trains (the other workers polling for work).
            pool.install(|| {
                crate::backend::cpu::hot_pool(|| {
                    let mut t = Trainer::new(Cpu, config.clone(), data.clone()).unwrap();
                    for _ in 0..6 {
                        t.step().unwrap();
                    }
                    t.checkpoint().to_bytes()
                })
            })
        };
        let one = run(1);
        assert_eq!(one, run(2));
        assert_eq!(one, run(3));
    }
}
