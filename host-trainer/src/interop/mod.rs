//! PyTorch interop: a trained run ↔ a safetensors file whose tensors are the reference PyTorch
//! module's `state_dict` and whose metadata carries what the tensors do not (docs/interop.md
//! holds the naming table and the metadata keys; [`names`] and [`metadata`] write them once).
//!
//! * [`to_safetensors`] — a run's exported weights (the EMA when the run keeps one) and metadata;
//!   what `microdiff export --format safetensors` writes.
//! * [`from_safetensors`] — a file → a [`Trained`] run, every tensor and key checked first;
//!   [`write_run`] saves it as a run directory that `export`, `sample` (through the blob) and
//!   `eval --run` accept. What `microdiff import` does.
//!
//! Promises: no input makes these panic (a truncated file, a foreign header, NaN weights are
//! each an [`InteropError`] naming the tensor or the key at fault); an import accepts the
//! predictions the sampler builders can convert for its process ([`crate::prediction`]: ε,
//! x₀, v or the score for DDPM and VP, …, the velocity or x₀ for flow); a run written by
//! [`write_run`] exports to the same blob, byte for byte, as the run its file was exported
//! from.

pub mod metadata;
pub mod names;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use microdiff_kernels::Activation;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::data::Normalizer;
use crate::model::{MAX_PARAMETERS, MlpConfig};
use crate::optim::OptimConfig;
use crate::prediction::{self, PredictionError};
use crate::process::Process;
use crate::run::{RUN_FILES, RunDir, RunError, RunInfo, Trained};
use crate::train::{RunHeader, TrainConfig};

use metadata::{
    Architecture, DEFAULT_DATASET, DataFacts, FORMAT, KEY_ARCHITECTURE, KEY_DATA, KEY_FORMAT,
    KEY_PREDICTION, KEY_PROCESS, Read,
};

/// Largest safetensors file an import reads: the largest network's f32 weights
/// ([`MAX_PARAMETERS`] × 4 bytes) plus the largest header the safetensors crate accepts
/// (100 MB) and its 8-byte length.
pub const MAX_FILE_BYTES: u64 = 4 * MAX_PARAMETERS as u64 + 100_000_000 + 8;

/// What can go wrong converting between a run and a safetensors file. Messages are one line and
/// name the tensor or the metadata key at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InteropError {
    /// Not a safetensors file (truncated, a header that is not the format's JSON, offsets that
    /// do not cover the data).
    #[error("not a valid safetensors file: {0}")]
    Parse(#[from] safetensors::SafeTensorError),
    /// A required metadata key is absent and no option gives its value.
    #[error("metadata key {key} is missing{hint}")]
    MissingKey {
        /// The key.
        key: &'static str,
        /// How to supply it instead (` (give --process)`), or nothing.
        hint: &'static str,
    },
    /// A metadata value that does not parse or make sense.
    #[error("metadata key {key}: {message}")]
    Metadata {
        /// The key.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Written by another version of the metadata table.
    #[error("metadata key microdiff.format is {found:?}; this build reads format {FORMAT}")]
    Format {
        /// The version found.
        found: String,
    },
    /// A prediction the process's samplers cannot be built for.
    #[error("metadata key microdiff.prediction: {0}")]
    Prediction(#[from] PredictionError),
    /// A tensor of the architecture is absent.
    #[error("tensor {name} is missing (expected shape {expected:?})")]
    MissingTensor {
        /// The state_dict name.
        name: String,
        /// Its shape.
        expected: Vec<usize>,
    },
    /// A tensor that is no parameter of the architecture.
    #[error(
        "tensor {name} is not a parameter of this architecture (docs/interop.md lists the names)"
    )]
    UnknownTensor {
        /// The name found.
        name: String,
    },
    /// A tensor not stored as float32.
    #[error("tensor {name} is {found}; every tensor must be F32 (float32)")]
    Dtype {
        /// The state_dict name.
        name: String,
        /// The dtype found.
        found: String,
    },
    /// A tensor of the wrong shape.
    #[error("tensor {name} has shape {found:?}, expected {expected:?}")]
    Shape {
        /// The state_dict name.
        name: String,
        /// The architecture's shape.
        expected: Vec<usize>,
        /// The file's.
        found: Vec<usize>,
    },
    /// A NaN or infinite weight.
    #[error("tensor {name} holds a non-finite value ({value}) at flat index {index}")]
    NonFinite {
        /// The state_dict name.
        name: String,
        /// Row-major index of the first such value.
        index: usize,
        /// The value.
        value: f32,
    },
    /// The model, process or data facts are refused by microdiff's own checks.
    #[error("invalid model: {0}")]
    Invalid(String),
    /// A run directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The target directory holds a run and overwriting was not asked for.
    #[error(
        "--out {} already holds a run ({}): --force replaces it, or choose another --out",
        dir.display(),
        files.join(", ")
    )]
    Exists {
        /// The directory.
        dir: PathBuf,
        /// The run's files found there.
        files: Vec<&'static str>,
    },
    /// Another process writes into the directory.
    #[error("--out {}: another microdiff process is using it", dir.display())]
    Busy {
        /// The directory.
        dir: PathBuf,
    },
    /// Writing the checkpoint failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// Writing `run.json` failed.
    #[error(transparent)]
    Run(#[from] RunError),
}

/// What an import takes from its caller rather than (or in place of) the file's metadata. Each
/// field given replaces the metadata's value; one left `None` comes from the metadata, and a
/// value neither gives is an [`InteropError::MissingKey`] (except the normaliser, then the
/// identity, and the data set's name, then `imported`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportOptions {
    /// The noise process (`microdiff.process`).
    pub process: Option<Process>,
    /// The prediction's name (`microdiff.prediction`).
    pub prediction: Option<String>,
    /// The shape of one example (`microdiff.data`'s `shape`).
    pub shape: Option<Vec<usize>>,
    /// Model space → data units (`microdiff.data`'s `normalizer`).
    pub normalizer: Option<Normalizer>,
    /// The data set's name (`microdiff.data`'s `dataset`).
    pub dataset: Option<String>,
    /// Classes (`microdiff.architecture`'s `classes`).
    pub classes: Option<usize>,
    /// Activation of the blocks and head (`microdiff.architecture`'s `act`).
    pub act: Option<Activation>,
}

/// The safetensors file of `run`: its exported weights ([`Trained::weights`], the EMA when the
/// run keeps one) under the state_dict names of docs/interop.md, all float32, with the
/// metadata `microdiff.format`, `.architecture`, `.process`, `.prediction` and `.data`.
pub fn to_safetensors(run: &Trained) -> Result<Vec<u8>, InteropError> {
    let cfg = run.config();
    let weights = run.weights();
    let expected = cfg.model.parameter_count();
    if weights.len() != expected {
        return Err(InteropError::Invalid(format!(
            "the run has {} weights, its architecture {expected}",
            weights.len()
        )));
    }
    let tensors = names::state_dict(&cfg.model);
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|n| {
            weights[n.slot.offset..n.slot.offset + n.slot.len()]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect()
        })
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|(n, b)| {
            Ok((
                n.name.as_str(),
                TensorView::new(Dtype::F32, n.shape.clone(), b)?,
            ))
        })
        .collect::<Result<Vec<_>, InteropError>>()?;
    let info = &run.info;
    let data = DataFacts {
        shape: info.shape.clone(),
        normalizer: Some(info.normalizer.clone()),
        dataset: Some(info.dataset.clone()),
        data_range: info.data_range,
    };
    let meta: HashMap<String, String> = [
        (KEY_FORMAT, FORMAT.to_string()),
        (
            KEY_ARCHITECTURE,
            json(KEY_ARCHITECTURE, &Architecture::from(&cfg.model))?,
        ),
        (KEY_PROCESS, json(KEY_PROCESS, &cfg.process)?),
        (KEY_PREDICTION, cfg.prediction().name().to_string()),
        (KEY_DATA, json(KEY_DATA, &data)?),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    canonical(safetensors::serialize(views, Some(meta))?)
}

/// `file` with its header's keys sorted (tensor names, and the metadata's keys): the crate
/// writes the metadata in a `HashMap`'s order, which changes from process to process, and one
/// run should export to one file, byte for byte. The data and its offsets are unchanged.
fn canonical(file: Vec<u8>) -> Result<Vec<u8>, InteropError> {
    use std::collections::BTreeMap;
    let broken = || InteropError::Invalid("the safetensors writer's header is unreadable".into());
    let n = file
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(broken)?;
    let header = file.get(8..8usize.saturating_add(n)).ok_or_else(broken)?;
    let mut entries: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(header).map_err(|_| broken())?;
    if let Some(meta) = entries.get_mut("__metadata__") {
        let sorted: BTreeMap<String, String> =
            serde_json::from_value(meta.take()).map_err(|_| broken())?;
        *meta = serde_json::to_value(sorted).map_err(|_| broken())?;
    }
    let mut text = serde_json::to_vec(&entries).map_err(|_| broken())?;
    // The format's alignment: the data starts at a multiple of 8 bytes (the crate pads so too).
    text.resize(text.len().next_multiple_of(8), b' ');
    let data = &file[8 + n..];
    let mut out = Vec::with_capacity(8 + text.len() + data.len());
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(data);
    Ok(out)
}

/// `value`'s JSON, for the metadata's `key`.
fn json<T: serde::Serialize>(key: &'static str, value: &T) -> Result<String, InteropError> {
    serde_json::to_string(value).map_err(|e| InteropError::Metadata {
        key,
        message: e.to_string(),
    })
}

/// The run a safetensors file holds. Every tensor of the architecture must be present, F32,
/// of its shape and finite, and no other tensor may be; the metadata (or `options`) must give
/// a valid architecture, process, a prediction the process's samplers honour, and data facts
/// that fit the network. The run is as if trained for one step: parameters and EMA both the
/// file's weights (so [`Trained::weights`] returns them), Adam's moments zero, no losses.
pub fn from_safetensors(bytes: &[u8], options: &ImportOptions) -> Result<Trained, InteropError> {
    let file = SafeTensors::deserialize(bytes)?;
    let (_, header) = SafeTensors::read_metadata(bytes)?;
    let meta = Read {
        map: header.metadata().as_ref(),
    };
    match meta.get(KEY_FORMAT) {
        None => {
            return Err(InteropError::MissingKey {
                key: KEY_FORMAT,
                hint: "",
            });
        }
        Some(f) if f.trim() != FORMAT => {
            return Err(InteropError::Format {
                found: f.to_string(),
            });
        }
        Some(_) => {}
    }
    let model = architecture(&meta, options)?;
    let process = match &options.process {
        Some(p) => p.clone(),
        None => meta
            .json::<Process>(KEY_PROCESS)?
            .ok_or(InteropError::MissingKey {
                key: KEY_PROCESS,
                hint: " (give --process)",
            })?,
    };
    let prediction = match &options.prediction {
        Some(p) => p.clone(),
        None => meta
            .get(KEY_PREDICTION)
            .ok_or(InteropError::MissingKey {
                key: KEY_PREDICTION,
                hint: " (give --prediction)",
            })?
            .to_string(),
    };
    let Some(prediction) = prediction::from_name(&prediction) else {
        return Err(InteropError::Metadata {
            key: KEY_PREDICTION,
            message: format!(
                "{prediction:?}: expected one of {}",
                prediction::ALL.map(|p| p.name()).join(", ")
            ),
        });
    };
    prediction::check(&process, prediction)?;
    // The process's own target is not written, so such a run round-trips byte for byte.
    let prediction = (prediction != process.prediction()).then_some(prediction);
    let config = TrainConfig {
        model,
        process,
        optim: OptimConfig {
            warmup: 0,
            ..OptimConfig::default()
        },
        steps: 1,
        batch: 1,
        seed: 0,
        cfg_dropout: 0.0,
        prediction,
    };
    config
        .validate()
        .map_err(|e| InteropError::Invalid(e.to_string()))?;
    let info = data_facts(&meta, options, &model)?;
    let weights = weights(&file, &model)?;
    let n = weights.len();
    Ok(Trained {
        info,
        checkpoint: Checkpoint {
            header: RunHeader {
                config,
                step: 1,
                losses: Vec::new(),
            },
            params: weights.clone(),
            ema: weights,
            m: vec![0.0; n],
            v: vec![0.0; n],
        },
    })
}

/// The network's shape: `microdiff.architecture`, `classes` and `act` replaced by the options'.
fn architecture(meta: &Read<'_>, options: &ImportOptions) -> Result<MlpConfig, InteropError> {
    let arch: Architecture = meta
        .json(KEY_ARCHITECTURE)?
        .ok_or(InteropError::MissingKey {
            key: KEY_ARCHITECTURE,
            hint: "",
        })?;
    let classes = options
        .classes
        .or(arch.classes)
        .ok_or(InteropError::MissingKey {
            key: "microdiff.architecture's classes",
            hint: " (give --classes)",
        })?;
    let act = match (options.act, &arch.act) {
        (Some(a), _) => a,
        (None, Some(name)) => activation(name).ok_or_else(|| InteropError::Metadata {
            key: KEY_ARCHITECTURE,
            message: format!("act {name:?}: expected silu, gelu_tanh, relu or identity"),
        })?,
        (None, None) => {
            return Err(InteropError::MissingKey {
                key: "microdiff.architecture's act",
                hint: " (give --act)",
            });
        }
    };
    let model = MlpConfig {
        data_dim: arch.data_dim,
        hidden: arch.hidden,
        ff: arch.ff,
        temb: arch.temb,
        blocks: arch.blocks,
        classes,
        act,
    };
    model.validate().map_err(|message| InteropError::Metadata {
        key: KEY_ARCHITECTURE,
        message,
    })?;
    Ok(model)
}

/// The activation called `name` (`silu`, `gelu_tanh`, `relu`).
pub fn activation(name: &str) -> Option<Activation> {
    (0..=255u8)
        .filter_map(Activation::from_code)
        .find(|a| a.name() == name)
}

/// `run.json`'s facts: `microdiff.data` with the options' replacements, checked against the
/// network.
fn data_facts(
    meta: &Read<'_>,
    options: &ImportOptions,
    model: &MlpConfig,
) -> Result<RunInfo, InteropError> {
    let data: Option<DataFacts> = meta.json(KEY_DATA)?;
    let shape = options
        .shape
        .clone()
        .or_else(|| data.as_ref().map(|d| d.shape.clone()))
        .ok_or(InteropError::MissingKey {
            key: KEY_DATA,
            hint: " (give --shape)",
        })?;
    let bad = |message: String| InteropError::Metadata {
        key: KEY_DATA,
        message,
    };
    let values = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|_| !shape.is_empty() && !shape.contains(&0));
    if values != Some(model.data_dim) {
        return Err(bad(format!(
            "shape {shape:?} does not hold the architecture's data_dim {} values",
            model.data_dim
        )));
    }
    let normalizer = options
        .normalizer
        .clone()
        .or_else(|| data.as_ref().and_then(|d| d.normalizer.clone()))
        .unwrap_or_else(Normalizer::identity);
    let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
    if !normalizer.fits(model.data_dim)
        || !finite(&normalizer.scale)
        || !finite(&normalizer.offset)
        || normalizer.scale.contains(&0.0)
    {
        return Err(bad(format!(
            "normalizer with {} scales and {} offsets: expected 0, 1 or {} of each, finite, \
             no scale 0",
            normalizer.scale.len(),
            normalizer.offset.len(),
            model.data_dim
        )));
    }
    let data_range = data.as_ref().and_then(|d| d.data_range);
    if let Some((lo, hi)) = data_range
        && !(lo.is_finite() && hi.is_finite() && lo < hi)
    {
        return Err(bad(format!(
            "data_range ({lo}, {hi}): expected finite bounds, low below high"
        )));
    }
    let dataset = options
        .dataset
        .clone()
        .or_else(|| data.as_ref().and_then(|d| d.dataset.clone()))
        .unwrap_or_else(|| DEFAULT_DATASET.to_string());
    Ok(RunInfo {
        dataset,
        shape,
        normalizer,
        classes: model.classes,
        data_range,
    })
}

/// The flat parameter buffer of `model` from the file's tensors, each checked: no unknown
/// name, none missing, F32, the table's shape, every value finite.
fn weights(file: &SafeTensors<'_>, model: &MlpConfig) -> Result<Vec<f32>, InteropError> {
    let expected = names::state_dict(model);
    let mut found = file.names();
    found.sort_unstable();
    if let Some(unknown) = found
        .iter()
        .find(|n| !expected.iter().any(|e| e.name == **n))
    {
        return Err(InteropError::UnknownTensor {
            name: unknown.to_string(),
        });
    }
    let mut params = vec![0.0f32; model.parameter_count()];
    for e in &expected {
        let view = file
            .tensor(&e.name)
            .map_err(|_| InteropError::MissingTensor {
                name: e.name.clone(),
                expected: e.shape.clone(),
            })?;
        if view.dtype() != Dtype::F32 {
            return Err(InteropError::Dtype {
                name: e.name.clone(),
                found: view.dtype().to_string(),
            });
        }
        if view.shape() != e.shape.as_slice() {
            return Err(InteropError::Shape {
                name: e.name.clone(),
                expected: e.shape.clone(),
                found: view.shape().to_vec(),
            });
        }
        let out = &mut params[e.slot.offset..e.slot.offset + e.slot.len()];
        // The deserializer checked the byte length against the shape and dtype.
        for (index, (v, b)) in out.iter_mut().zip(view.data().chunks_exact(4)).enumerate() {
            let value = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            if !value.is_finite() {
                return Err(InteropError::NonFinite {
                    name: e.name.clone(),
                    index,
                    value,
                });
            }
            *v = value;
        }
    }
    Ok(params)
}

/// Writes `trained` as a run directory: `DIR/checkpoint.mdck`, then `DIR/run.json` (each
/// atomically, so a directory with `run.json` always has its checkpoint), under the run lock.
/// A directory that already holds a run (any of [`RUN_FILES`]) is refused unless `overwrite`,
/// which first deletes those files.
pub fn write_run(trained: &Trained, dir: &Path, overwrite: bool) -> Result<(), InteropError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| InteropError::Io { path, source }
    };
    let existing = |dir: &Path| -> Vec<&'static str> {
        RUN_FILES
            .into_iter()
            .filter(|f| dir.join(f).exists())
            .collect()
    };
    // Refused before the lock creates the directory: a refusal leaves nothing behind.
    let files = existing(dir);
    if !files.is_empty() && !overwrite {
        return Err(InteropError::Exists {
            dir: dir.to_path_buf(),
            files,
        });
    }
    let _lock = crate::files::RunLock::acquire(dir).map_err(|source| {
        if source.kind() == std::io::ErrorKind::WouldBlock {
            InteropError::Busy {
                dir: dir.to_path_buf(),
            }
        } else {
            io(dir)(source)
        }
    })?;
    for f in existing(dir) {
        let path = dir.join(f);
        std::fs::remove_file(&path).map_err(io(&path))?;
    }
    let run = RunDir::new(dir);
    trained.checkpoint.save(&run.checkpoint_path())?;
    run.write_info(&trained.info)?;
    Ok(())
}

#[cfg(test)]
mod tests;
