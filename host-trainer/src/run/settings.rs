//! The settings a run is made from: one struct that is both the command line's flags and the
//! keys of a `--config` TOML file (a key is its flag without the dashes: `--ema-decay 0.99` is
//! `ema-decay = 0.99`), every field optional so that flags can override a file; and their
//! resolution into a training configuration, with the defaults each field's help states.

use std::path::Path;

use microdiff_kernels::Activation;
use serde::Deserialize;

use super::{RunDir, RunError, RunInfo};
use crate::checkpoint::Checkpoint;
use crate::data::{DataError, Source};
use crate::model::MlpConfig;
use crate::optim::OptimConfig;
use crate::process::Process;
use crate::train::{RunHeader, TrainConfig, TrainData};

/// Settings of a run, from `--config FILE` (TOML) and the command line (which wins); `None`
/// takes the default named in the field's documentation.
#[derive(Debug, Default, Clone, PartialEq, clap::Args, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    /// Training data: a built-in 2-D set (moons, 8gaussians, swissroll, checkerboard, rings),
    /// `digits` (8×8 handwritten digits), or a .csv / .npy file or a folder of grayscale PNGs
    /// [default: moons].
    #[arg(long)]
    pub data: Option<String>,
    /// Objective: ddpm, vp (score, VP SDE), ve (score, VE SDE), flow (flow matching), or a
    /// family of docs/zoo.md trained on the CPU: vae (a Gaussian variational autoencoder, whose
    /// decoder samples in one network pass), hvae (a two-level VAE) or rbm (a binary restricted
    /// Boltzmann machine on the data binarised at the midpoint of its range: a value ≥ (min +
    /// max)/2 is 1; its samples, a visible unit's probability p, are min + p·(max − min) in
    /// data units; with --levels, each value as a thermometer code) [default: ddpm].
    #[arg(long)]
    pub objective: Option<String>,
    /// Condition on the data's labels (class-conditional model with classifier-free guidance)
    /// [default: false].
    #[arg(long)]
    pub conditional: Option<bool>,
    /// Probability of dropping a label to the null class during training (guidance)
    /// [default: 0.1 with --conditional true, else 0].
    #[arg(long)]
    #[serde(alias = "cfg_dropout")]
    pub cfg_dropout: Option<f32>,
    /// Optimiser steps; for an rbm, parameter updates of one mini-batch each [default: 3000;
    /// digits 4000; vae, hvae and rbm 5000].
    #[arg(long)]
    pub steps: Option<u64>,
    /// Examples per step [default: 128; digits 256; vae, hvae and rbm 64].
    #[arg(long)]
    pub batch: Option<usize>,
    /// Peak learning rate [default: 0.002; vae and hvae 0.001 (Adam); rbm 0.05 (plain
    /// gradient steps)].
    #[arg(long)]
    pub lr: Option<f32>,
    /// Warm-up steps [default: a tenth of --steps, at most 100].
    #[arg(long)]
    pub warmup: Option<u64>,
    /// EMA decay of the exported weights, 0 disables [default: 0.999].
    #[arg(long)]
    #[serde(alias = "ema_decay")]
    pub ema_decay: Option<f32>,
    /// Residual stream width, at least the data's values per example [default: 128 (digits
    /// 256), or the data's width rounded up to a multiple of 64 when that is wider; vae and
    /// hvae: the width of every hidden layer, 64; rbm: hidden units, 64].
    #[arg(long)]
    pub hidden: Option<usize>,
    /// Block inner width [default: twice --hidden].
    #[arg(long)]
    pub ff: Option<usize>,
    /// Residual blocks [default: 3; vae and hvae: hidden layers per network, 1].
    #[arg(long)]
    pub blocks: Option<usize>,
    /// Time-embedding width, even [default: 32].
    #[arg(long)]
    pub temb: Option<usize>,
    /// Activation: silu, gelu_tanh, relu; vae and hvae: relu, silu, tanh (tanh has no device
    /// op: it trains but does not export) [default: silu; vae relu; hvae silu].
    #[arg(long)]
    pub act: Option<String>,
    /// Seed of the weights and every random draw [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// σ_max of the VE SDE, finite and above σ_min [default: 1.5 × the data's largest
    /// per-dimension range × √dimensions].
    #[arg(long, allow_negative_numbers = true)]
    #[serde(alias = "sigma_max")]
    pub sigma_max: Option<f64>,
    /// --objective vae and hvae only: latent dimensions (hvae: of the lower latent z1); for a
    /// vae at most the data's values per example [default: 8, or for a vae the data's width
    /// when smaller].
    #[arg(long)]
    pub latent: Option<usize>,
    /// --objective hvae only: dimensions of the top latent z2, at most the data's values per
    /// example [default: 4, or the data's width when smaller].
    #[arg(long)]
    pub latent2: Option<usize>,
    /// --objective rbm only: Gibbs sweeps per update, 1..=1000 (the k of CD-k; with pcd and pt,
    /// the sweeps the persistent chains take per update) [default: 1].
    #[arg(long)]
    pub cd_k: Option<usize>,
    /// --objective rbm only: the negative phase: cd (contrastive divergence, chains restarted
    /// at the batch's rows), pcd (persistent chains, --batch of them) or pt (persistent
    /// replica-exchange chains, --batch of them, each --replicas temperatures) [default: pcd].
    #[arg(long)]
    pub negative: Option<String>,
    /// --objective rbm --negative pt only: temperatures per chain, 2..=64, inverse
    /// temperatures evenly spaced from 1 down to 0.5 [default: 5].
    #[arg(long)]
    pub replicas: Option<usize>,
    /// --objective rbm only: levels each value is quantised to over the data's range, 2..=256,
    /// coded as levels − 1 binary units (a thermometer code: unit k is 1 when the value's level
    /// is at least k); a sample's value is the sum of its units' means. 2 is one unit per value,
    /// 1 at or above the midpoint [default: 2].
    #[arg(long)]
    pub levels: Option<u16>,
}

/// A run's configuration, data and data facts, ready to train.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The training configuration.
    pub config: TrainConfig,
    /// The data in model space.
    pub data: TrainData,
    /// What `run.json` records.
    pub info: RunInfo,
}

/// Narrowest residual stream a data set gets by default, and the step it is rounded up by.
const WIDTH_STEP: usize = 64;

impl Settings {
    /// Reads a TOML settings file; errors name the line and column.
    pub fn from_toml_file(path: &Path) -> Result<Settings, RunError> {
        let text = std::fs::read_to_string(path).map_err(|source| RunError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| {
            let at = e.span().map_or(String::new(), |span| {
                let before = text.get(..span.start).unwrap_or("");
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                format!(" line {line}, column {column}:")
            });
            RunError::Toml {
                path: path.to_path_buf(),
                at,
                // The parser's own report spans several lines with a source excerpt.
                message: e.message().split_whitespace().collect::<Vec<_>>().join(" "),
            }
        })
    }

    /// These settings, each missing one taken from `fallback` (a file under flags).
    pub fn or(self, fallback: Settings) -> Settings {
        macro_rules! pick { ($($f:ident),*) => { Settings { $($f: self.$f.or(fallback.$f)),* } } }
        pick!(
            data,
            objective,
            conditional,
            cfg_dropout,
            steps,
            batch,
            lr,
            warmup,
            ema_decay,
            hidden,
            ff,
            blocks,
            temb,
            act,
            seed,
            sigma_max,
            latent,
            latent2,
            cd_k,
            negative,
            replicas,
            levels
        )
    }

    /// A fresh run's configuration and data, defaults filled in.
    pub fn resolve(&self) -> Result<Resolved, RunError> {
        let data_spec = self.data.clone().unwrap_or_else(|| "moons".into());
        let conditional = self.conditional.unwrap_or(false);
        let seed = self.seed.unwrap_or(0);
        let source = Source::parse(&data_spec).map_err(|e| RunError::Setting {
            flag: "data",
            message: e.to_string(),
        })?;
        let (ds, norm) = training_set(&source, conditional, seed)?;
        // A blob stores the sample shape as at most four 16-bit dimensions: refuse now what
        // could never be exported, rather than after training.
        if ds.shape.len() > 4 || ds.shape.iter().any(|&d| d > usize::from(u16::MAX)) {
            return Err(RunError::Setting {
                flag: "data",
                message: format!(
                    "{data_spec}: samples of shape {:?}: a blob holds at most 4 dimensions of at \
                     most 65535 each; reshape the data (e.g. an NPY of shape (N, 250, 280) for \
                     70000 values)",
                    ds.shape
                ),
            });
        }
        let digits = source == Source::Digits;
        self.refuse_zoo_settings()?;
        let objective = self.objective.clone().unwrap_or_else(|| "ddpm".into());
        let process = match objective.as_str() {
            "ddpm" => Process::ddpm_default(),
            "vp" => Process::vp_default(),
            "ve" => {
                // Song & Ermon's rule of thumb: σ_max about the largest distance between
                // examples.
                let range = (0..ds.dim)
                    .map(|j| {
                        let col = (0..ds.len()).map(|i| ds.x[i * ds.dim + j]);
                        let (lo, hi) =
                            col.fold((f32::MAX, f32::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
                        (hi - lo) as f64
                    })
                    .fold(0.0, f64::max);
                Process::ve_default(
                    self.sigma_max
                        .unwrap_or(1.5 * range * (ds.dim as f64).sqrt()),
                )
            }
            "flow" => Process::Flow,
            other => {
                return Err(RunError::Setting {
                    flag: "objective",
                    message: format!("{other:?}: expected ddpm, vp, ve, flow, vae, hvae or rbm"),
                });
            }
        };
        let hidden = match self.hidden {
            // A residual stream narrower than the data cannot carry a sample: the network's
            // output would lie in a subspace and the sampler diverge (±27 000 on 0–255 pixels).
            Some(h) if h < ds.dim => {
                return Err(RunError::Setting {
                    flag: "hidden",
                    message: format!(
                        "{h}: narrower than the data ({} values per example), which the network \
                         cannot carry; give --hidden {} or more (or leave it out)",
                        ds.dim,
                        ds.dim.next_multiple_of(WIDTH_STEP)
                    ),
                });
            }
            Some(h) => h,
            None => default_width(digits, ds.dim),
        };
        let model = MlpConfig {
            data_dim: ds.dim,
            hidden,
            ff: self.ff.unwrap_or(hidden.saturating_mul(2)),
            temb: self.temb.unwrap_or(32),
            blocks: self.blocks.unwrap_or(3),
            classes: if conditional { ds.classes } else { 0 },
            act: activation(self.act.as_deref().unwrap_or("silu"))?,
        };
        let steps = self.steps.unwrap_or(if digits { 4000 } else { 3000 });
        let optim = OptimConfig {
            lr: self.lr.unwrap_or(2e-3),
            warmup: self.warmup.unwrap_or(100.min(steps / 10)),
            ema_decay: self.ema_decay.unwrap_or(0.999),
            ..OptimConfig::default()
        };
        let config = TrainConfig {
            model,
            process,
            optim,
            steps,
            batch: self.batch.unwrap_or(if digits { 256 } else { 128 }),
            seed,
            cfg_dropout: self
                .cfg_dropout
                .unwrap_or(if conditional { 0.1 } else { 0.0 }),
            prediction: None,
        };
        config.validate()?;
        let info = RunInfo {
            dataset: data_spec,
            shape: ds.shape.clone(),
            normalizer: norm,
            classes: model.classes,
            data_range: source.range(),
        };
        let data = TrainData {
            x: ds.x,
            dim: ds.dim,
            labels: ds.labels,
        };
        Ok(Resolved { config, data, info })
    }

    /// Refuses the settings of the zoo's families (`--objective vae | hvae | rbm`), which a
    /// diffusion run would otherwise silently ignore.
    fn refuse_zoo_settings(&self) -> Result<(), RunError> {
        let zoo = [
            ("latent", self.latent.is_some(), "vae and hvae"),
            ("latent2", self.latent2.is_some(), "hvae"),
            ("cd-k", self.cd_k.is_some(), "rbm"),
            ("negative", self.negative.is_some(), "rbm"),
            ("replicas", self.replicas.is_some(), "rbm"),
            ("levels", self.levels.is_some(), "rbm"),
        ];
        match zoo.into_iter().find(|(_, given, _)| *given) {
            Some((flag, _, objectives)) => Err(RunError::Setting {
                flag,
                message: format!("applies to --objective {objectives} only"),
            }),
            None => Ok(()),
        }
    }

    /// The settings of the run in `dir`, for `--resume`: its saved configuration and data, with
    /// `steps` (the one setting a resumed run may change, to train longer) applied. Any other
    /// setting given must equal the saved one; those that differ are named. Returns the
    /// checkpoint too, read once.
    pub fn resume(&self, dir: &RunDir) -> Result<(Resolved, Checkpoint<RunHeader>), RunError> {
        self.refuse_zoo_settings()?;
        let ckpt = dir.read_checkpoint()?;
        let saved = ckpt.header.config.clone();
        saved.trainable()?;
        let info = dir.read_info()?;
        let (m, o) = (&saved.model, &saved.optim);
        let mut differ = Vec::new();
        let mut check = |flag: &str, given: Option<String>, was: String| {
            if let Some(g) = given
                && g != was
            {
                differ.push(format!("--{flag} {g} (the run has {was})"));
            }
        };
        check("data", self.data.clone(), info.dataset.clone());
        check(
            "objective",
            self.objective.clone(),
            saved.process.name().to_string(),
        );
        check(
            "conditional",
            given(self.conditional),
            (m.classes > 0).to_string(),
        );
        check(
            "cfg-dropout",
            given(self.cfg_dropout),
            saved.cfg_dropout.to_string(),
        );
        check("batch", given(self.batch), saved.batch.to_string());
        check("lr", given(self.lr), o.lr.to_string());
        check("warmup", given(self.warmup), o.warmup.to_string());
        check("ema-decay", given(self.ema_decay), o.ema_decay.to_string());
        check("hidden", given(self.hidden), m.hidden.to_string());
        check("ff", given(self.ff), m.ff.to_string());
        check("blocks", given(self.blocks), m.blocks.to_string());
        check("temb", given(self.temb), m.temb.to_string());
        check("act", self.act.clone(), m.act.name().to_string());
        check("seed", given(self.seed), saved.seed.to_string());
        if let Some(g) = self.sigma_max {
            let was = match saved.process {
                Process::Ve { sigma_max, .. } => sigma_max.to_string(),
                _ => "none".into(),
            };
            check("sigma-max", Some(g.to_string()), was);
        }
        if !differ.is_empty() {
            return Err(RunError::ResumeSettings {
                dir: dir.path().to_path_buf(),
                differ,
            });
        }
        let steps = self.steps.unwrap_or(saved.steps);
        if steps < ckpt.header.step {
            return Err(RunError::ResumeSteps {
                dir: dir.path().to_path_buf(),
                steps,
                done: ckpt.header.step,
            });
        }
        let source = Source::parse(&info.dataset).map_err(|e| RunError::Setting {
            flag: "data",
            message: e.to_string(),
        })?;
        let (ds, norm) = training_set(&source, m.classes > 0, saved.seed)?;
        let now = RunInfo {
            dataset: info.dataset.clone(),
            shape: ds.shape.clone(),
            normalizer: norm,
            classes: m.classes,
            // A run.json from before the range was recorded has none: not a change of data.
            data_range: info.data_range.and(source.range()),
        };
        if now != info {
            return Err(RunError::DataChanged {
                dir: dir.path().to_path_buf(),
                dataset: info.dataset,
            });
        }
        let data = TrainData {
            x: ds.x,
            dim: ds.dim,
            labels: ds.labels,
        };
        let config = TrainConfig { steps, ..saved };
        config.validate()?;
        Ok((Resolved { config, data, info }, ckpt))
    }
}

/// A setting given as text, for [`Settings::resume`]'s comparisons.
fn given<T: ToString>(v: Option<T>) -> Option<String> {
    v.map(|v| v.to_string())
}

/// The default residual width: 128 (digits 256), or the data's width rounded up to a multiple
/// of [`WIDTH_STEP`] when that is wider.
fn default_width(digits: bool, dim: usize) -> usize {
    let base = if digits { 256 } else { 128 };
    base.max(dim.next_multiple_of(WIDTH_STEP))
}

/// The training set of `source`; a missing label is the `--conditional` setting's fault.
fn training_set(
    source: &Source,
    conditional: bool,
    seed: u64,
) -> Result<(crate::data::Dataset, crate::data::Normalizer), RunError> {
    source.training_set(conditional, seed).map_err(|e| match e {
        e @ DataError::NoLabels { .. } => RunError::Setting {
            flag: "conditional",
            message: format!("true: {e}"),
        },
        e => RunError::Data(e),
    })
}

fn activation(name: &str) -> Result<Activation, RunError> {
    (0..=255u8)
        .filter_map(Activation::from_code)
        .find(|a| a.name() == name)
        .ok_or_else(|| RunError::Setting {
            flag: "act",
            message: format!("{name:?}: expected silu, gelu_tanh, relu or identity"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_keys_are_the_flags() {
        let s: Settings = toml::from_str(
            "data = \"digits\"\nema-decay = 0.5\ncfg-dropout = 0.2\nsigma-max = 3.0\n",
        )
        .unwrap();
        assert_eq!(s.data.as_deref(), Some("digits"));
        assert_eq!(
            (s.ema_decay, s.cfg_dropout, s.sigma_max),
            (Some(0.5), Some(0.2), Some(3.0))
        );
        // Files written before the keys matched the flags still read.
        let old: Settings = toml::from_str("ema_decay = 0.5\n").unwrap();
        assert_eq!(old.ema_decay, Some(0.5));
        assert!(toml::from_str::<Settings>("bogus = 1\n").is_err());
    }

    /// The zoo's settings are TOML keys too, and a diffusion run refuses each by its flag.
    #[test]
    fn zoo_settings_are_keys_and_diffusion_refuses_them() {
        let s: Settings =
            toml::from_str("latent2 = 3\ncd-k = 2\nnegative = \"pt\"\nreplicas = 4\n").unwrap();
        assert_eq!(
            (s.latent2, s.cd_k, s.negative.as_deref(), s.replicas),
            (Some(3), Some(2), Some("pt"), Some(4))
        );
        let one = |f: fn(&mut Settings)| {
            let mut s = Settings::default();
            f(&mut s);
            s
        };
        for (s, expected) in [
            (one(|s| s.latent = Some(2)), "latent"),
            (one(|s| s.latent2 = Some(2)), "latent2"),
            (one(|s| s.cd_k = Some(2)), "cd-k"),
            (one(|s| s.negative = Some("cd".into())), "negative"),
            (one(|s| s.replicas = Some(3)), "replicas"),
            (one(|s| s.levels = Some(16)), "levels"),
        ] {
            match s.resolve() {
                Err(RunError::Setting { flag, message }) => {
                    assert_eq!(flag, expected);
                    assert!(message.contains("applies to --objective"), "{message}");
                }
                other => panic!("{expected}: {:?}", other.map(|_| ())),
            }
        }
    }

    #[test]
    fn flags_win_over_the_file() {
        let flags = Settings {
            steps: Some(5),
            ..Default::default()
        };
        let file = Settings {
            steps: Some(9),
            lr: Some(0.1),
            ..Default::default()
        };
        let s = flags.or(file);
        assert_eq!((s.steps, s.lr), (Some(5), Some(0.1)));
    }

    #[test]
    fn the_default_width_carries_the_data() {
        assert_eq!(default_width(false, 2), 128);
        assert_eq!(default_width(true, 64), 256);
        assert_eq!(default_width(false, 144), 192);
        assert_eq!(default_width(false, 784), 832);
        for dim in 1..2000 {
            assert!(default_width(false, dim) >= dim);
        }
    }
}
