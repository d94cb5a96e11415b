//! `microdiff import`: a safetensors file (a PyTorch `state_dict` of the reference module, with
//! microdiff's metadata; docs/interop.md) → a run directory that `export`, `sample` (through
//! the blob) and `eval --run` accept. The library's [`from_safetensors`] and [`write_run`].

use std::path::PathBuf;

use microdiff_trainer::data::Normalizer;
use microdiff_trainer::interop::metadata::parse_process;
use microdiff_trainer::interop::{
    ImportOptions, MAX_FILE_BYTES, activation, from_safetensors, write_run,
};

use super::CliError;

/// `microdiff import` arguments. Each option replaces the file's metadata value; without it
/// the file's value is used, and a value neither gives is an error naming the missing key.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The safetensors file (tensor names and metadata keys: docs/interop.md).
    file: PathBuf,
    /// Run directory to write (checkpoint.mdck and run.json).
    #[arg(long)]
    out: PathBuf,
    /// Replace a run already in --out (its checkpoint, run.json, metrics and loss curve).
    #[arg(long)]
    force: bool,
    /// Noise process: ddpm, vp or flow (their defaults) or a process's JSON, e.g.
    /// '{"Ve":{"sigma_min":0.01,"sigma_max":5.0,"t_min":1e-5}}' [default: the file's
    /// microdiff.process].
    #[arg(long)]
    process: Option<String>,
    /// What the network outputs: epsilon, sample (x0), v or score (ddpm, vp; ve: not v), or
    /// velocity or sample (flow); the exported programs map it to what the samplers take
    /// (docs/interop.md, "Predictions") [default: the file's microdiff.prediction].
    #[arg(long)]
    prediction: Option<String>,
    /// Shape of one example, comma-separated, e.g. 8,8 [default: the file's microdiff.data
    /// shape].
    #[arg(long, value_delimiter = ',')]
    shape: Option<Vec<usize>>,
    /// Model space → data units as JSON, '{"scale":[..],"offset":[..]}' [default: the file's
    /// microdiff.data normalizer, else the identity].
    #[arg(long)]
    normalizer: Option<String>,
    /// The data set's name recorded in run.json [default: the file's, else `imported`].
    #[arg(long)]
    dataset: Option<String>,
    /// Classes of a conditional network [default: microdiff.architecture's classes].
    #[arg(long)]
    classes: Option<usize>,
    /// Activation: silu, gelu_tanh, relu [default: microdiff.architecture's act].
    #[arg(long)]
    act: Option<String>,
}

pub fn run(a: Args) -> Result<(), CliError> {
    let process = a
        .process
        .as_deref()
        .map(parse_process)
        .transpose()
        .map_err(|e| CliError::Msg(format!("--process {e}")))?;
    let normalizer = a
        .normalizer
        .as_deref()
        .map(serde_json::from_str::<Normalizer>)
        .transpose()
        .map_err(|e| CliError::Msg(format!("--normalizer: {e}")))?;
    let act = a
        .act
        .as_deref()
        .map(|n| {
            activation(n).ok_or_else(|| {
                CliError::Msg(format!("--act {n:?}: expected silu, gelu_tanh or relu"))
            })
        })
        .transpose()?;
    let options = ImportOptions {
        process,
        prediction: a.prediction,
        shape: a.shape,
        normalizer,
        dataset: a.dataset,
        classes: a.classes,
        act,
    };
    let bytes = microdiff_trainer::files::read_limited(&a.file, MAX_FILE_BYTES)
        .map_err(CliError::io(&a.file))?;
    let trained = from_safetensors(&bytes, &options)
        .map_err(|e| CliError::Msg(format!("{}: {e}", a.file.display())))?;
    write_run(&trained, &a.out, a.force)?;
    let cfg = trained.config();
    eprintln!(
        "microdiff: imported {} into {} ({}, {} prediction, {} parameters); `microdiff export {}` \
         writes its blob",
        a.file.display(),
        a.out.display(),
        cfg.process.name(),
        cfg.prediction().name(),
        cfg.model.parameter_count(),
        a.out.display()
    );
    Ok(())
}
