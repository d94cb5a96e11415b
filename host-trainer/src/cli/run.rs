//! A training run's directory: what `train` writes and `export` reads.
//!
//! ```text
//! DIR/run.json         the data: name, shape, normalisation back to data units, classes
//! DIR/checkpoint.mdck  parameters, EMA, optimiser state, configuration, loss history
//! DIR/metrics.jsonl    one JSON object per logged step
//! DIR/loss.png         the loss curve
//! ```

use std::path::{Path, PathBuf};

use microdiff_trainer::data::{self, Dataset, Normalizer, Toy};
use serde::{Deserialize, Serialize};

use super::{CliError, msg};

/// The data facts a run needs after training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Where the data came from (`moons`, `digits`, a path).
    pub dataset: String,
    /// Shape of one example.
    pub shape: Vec<usize>,
    /// Model space → data units.
    pub normalizer: Normalizer,
    /// Classes the model is conditioned on (0: unconditional).
    pub classes: usize,
}

/// `DIR/run.json`.
pub fn info_path(dir: &Path) -> PathBuf {
    dir.join("run.json")
}
/// `DIR/checkpoint.mdck`.
pub fn checkpoint_path(dir: &Path) -> PathBuf {
    dir.join("checkpoint.mdck")
}

impl RunInfo {
    /// Reads `DIR/run.json`.
    pub fn load(dir: &Path) -> Result<Self, CliError> {
        let p = info_path(dir);
        let text = std::fs::read_to_string(&p).map_err(CliError::io(&p))?;
        serde_json::from_str(&text).map_err(msg(&p.display().to_string()))
    }
    /// Writes `DIR/run.json` atomically.
    pub fn save(&self, dir: &Path) -> Result<(), CliError> {
        let p = info_path(dir);
        let text = serde_json::to_string_pretty(self).map_err(msg("run.json"))?;
        microdiff_trainer::files::write_atomic(&p, text.as_bytes()).map_err(CliError::io(&p))
    }
}

/// Number of points drawn for a built-in 2-D set.
pub const TOY_POINTS: usize = 20_000;

/// Loads the training set named by `spec` (a built-in 2-D set, `digits`, or a file / folder),
/// with the normalisation used for it: digits map 0..16 to −1..1, everything else is
/// standardised per dimension. Labels are kept only when `conditional`.
pub fn dataset(
    spec: &str,
    conditional: bool,
    seed: u64,
) -> Result<(Dataset, Normalizer), CliError> {
    let mut ds = if spec == "digits" {
        data::digits_split().map_err(msg("digits"))?.0
    } else if let Ok(kind) = spec.parse::<Toy>() {
        if conditional {
            data::toy_labelled(kind, TOY_POINTS, seed)
        } else {
            data::toy(kind, TOY_POINTS, seed)
        }
    } else {
        let path = Path::new(spec);
        if !path.exists() {
            return Err(CliError::Msg(format!(
                "--data {spec:?}: not a built-in set ({}, digits) and no such file or folder",
                Toy::names()
            )));
        }
        data::load(path).map_err(msg("loading data"))?
    };
    if !conditional {
        ds.labels = None;
        ds.classes = 0;
    } else if ds.labels.is_none() {
        return Err(CliError::Msg(format!(
            "--conditional: the data set {spec:?} has no labels"
        )));
    }
    let norm = if spec == "digits" {
        Normalizer::digits()
    } else {
        Normalizer::standardize(&ds)
    };
    Ok((norm.dataset_to_model(&ds), norm))
}
