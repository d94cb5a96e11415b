//! The safetensors `__metadata__` of docs/interop.md: its keys, the JSON of each value, and the
//! process's own prediction.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::InteropError;
use crate::data::Normalizer;
use crate::model::MlpConfig;
use crate::process::Process;

/// The version of the metadata table written and read (`microdiff.format`).
pub const FORMAT: &str = "1";

/// `microdiff.format`: the version of the table.
pub const KEY_FORMAT: &str = "microdiff.format";
/// `microdiff.architecture`: the network's shape ([`Architecture`]).
pub const KEY_ARCHITECTURE: &str = "microdiff.architecture";
/// `microdiff.process`: the noise process's JSON, as in a run's checkpoint.
pub const KEY_PROCESS: &str = "microdiff.process";
/// `microdiff.prediction`: what the network outputs.
pub const KEY_PREDICTION: &str = "microdiff.prediction";
/// `microdiff.data`: the data facts ([`DataFacts`]).
pub const KEY_DATA: &str = "microdiff.data";

/// The process's own prediction (`Process::prediction`): what microdiff trains, and what a
/// file written from a microdiff run declares.
pub fn supported_prediction(process: &Process) -> &'static str {
    process.prediction().name()
}

/// `microdiff.architecture`. `classes` and `act` may be missing (then the import's options
/// must give them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Architecture {
    /// Values per example.
    pub data_dim: usize,
    /// Residual stream width.
    pub hidden: usize,
    /// Block inner width.
    pub ff: usize,
    /// Time-embedding width.
    pub temb: usize,
    /// Residual blocks.
    pub blocks: usize,
    /// Classes (0: unconditional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<usize>,
    /// Activation name: `silu`, `gelu_tanh`, `relu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<String>,
}

impl From<&MlpConfig> for Architecture {
    fn from(m: &MlpConfig) -> Self {
        Architecture {
            data_dim: m.data_dim,
            hidden: m.hidden,
            ff: m.ff,
            temb: m.temb,
            blocks: m.blocks,
            classes: Some(m.classes),
            act: Some(m.act.name().to_string()),
        }
    }
}

/// `microdiff.data`: what a run's `run.json` records. Only `shape` is required: the
/// normaliser defaults to the identity, the data set's name to [`DEFAULT_DATASET`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataFacts {
    /// Shape of one example.
    pub shape: Vec<usize>,
    /// Model space → data units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalizer: Option<Normalizer>,
    /// Where the data came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// The range the data's format fixes for every value, in data units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_range: Option<(f32, f32)>,
}

/// The data set name of an import whose file and options name none.
pub const DEFAULT_DATASET: &str = "imported";

/// The metadata map, read: each key's value parsed on demand, errors naming the key.
pub(super) struct Read<'a> {
    pub map: Option<&'a HashMap<String, String>>,
}

impl Read<'_> {
    /// The raw string of `key`, if present.
    pub fn get(&self, key: &'static str) -> Option<&str> {
        self.map.and_then(|m| m.get(key)).map(String::as_str)
    }

    /// `key`'s JSON, parsed, if present.
    pub fn json<T: for<'de> Deserialize<'de>>(
        &self,
        key: &'static str,
    ) -> Result<Option<T>, InteropError> {
        self.get(key)
            .map(|text| {
                serde_json::from_str(text).map_err(|e| InteropError::Metadata {
                    key,
                    message: e.to_string(),
                })
            })
            .transpose()
    }
}

/// A process given by name (`ddpm`, `vp`, `flow`: their defaults) or as its JSON; what
/// `microdiff import --process` takes. VE has no default σ_max, so it needs the JSON.
pub fn parse_process(text: &str) -> Result<Process, String> {
    let text = text.trim();
    match text {
        "ddpm" => Ok(Process::ddpm_default()),
        "vp" => Ok(Process::vp_default()),
        "flow" => Ok(Process::Flow),
        "ve" => Err("ve: give the process as JSON with its σ_max, e.g. \
                     {\"Ve\":{\"sigma_min\":0.01,\"sigma_max\":5.0,\"t_min\":1e-5}}"
            .into()),
        _ if text.starts_with('{') || text.starts_with('"') => {
            serde_json::from_str(text).map_err(|e| format!("{text}: {e}"))
        }
        _ => Err(format!(
            "{text:?}: expected ddpm, vp, flow or a process's JSON (as in microdiff.process)"
        )),
    }
}
