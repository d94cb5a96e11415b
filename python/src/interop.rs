//! PyTorch in: a safetensors file of the reference module's `state_dict` with microdiff's
//! metadata (docs/interop.md), or the `state_dict` itself, → a weight blob, through the same
//! code as `microdiff import` + `microdiff export` ([`interop::from_safetensors`], then
//! [`from_run`]): the blob of a file that `microdiff export --format safetensors` wrote equals,
//! byte for byte, the blob `microdiff export` writes from the same run with the same options.

use std::collections::HashMap;

use microdiff_trainer::data::Normalizer;
use microdiff_trainer::export::from_run::{Options, Storage, from_run};
use microdiff_trainer::interop::metadata::{
    DataFacts, FORMAT, KEY_ARCHITECTURE, KEY_DATA, KEY_FORMAT, KEY_PREDICTION, KEY_PROCESS,
    supported_prediction,
};
use microdiff_trainer::interop::{self, ImportOptions};
use numpy::{PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};
use safetensors::Dtype;
use safetensors::tensor::TensorView;

use crate::errors::value_error;
use crate::input::bytes_or_file;
use crate::schedule;

/// `samplers`: `None`, one specification or a sequence of them.
fn samplers(value: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<String>> {
    match value {
        None => Ok(Vec::new()),
        Some(v) if v.is_none() => Ok(Vec::new()),
        Some(v) if v.is_instance_of::<PyString>() => Ok(vec![v.extract()?]),
        Some(v) => v.extract().map_err(|_| {
            value_error("samplers: expected a sampler string (\"ddim:10\") or a list of them")
        }),
    }
}

/// The most calibration trajectories per program (as `export --calibration-samples`).
const MAX_CALIBRATION_SAMPLES: usize = 100_000;

/// The export options: `dtype` (`f32`, `f16`, `i8`, `w8a8`), samplers, guidance, and the W8A8
/// calibration's trajectories per program.
fn export_options(
    dtype: &str,
    samplers_: Option<&Bound<'_, PyAny>>,
    guidance: Option<f64>,
    calibration_samples: Option<usize>,
) -> PyResult<Options> {
    let storage: Storage = dtype
        .parse()
        .map_err(|e| value_error(format!("dtype={e}")))?;
    let mut options = Options {
        storage,
        samplers: samplers(samplers_)?,
        guidance,
        ..Options::default()
    };
    if let Some(n) = calibration_samples {
        if storage != Storage::W8a8 {
            return Err(value_error(format!(
                "calibration_samples={n}: only dtype=\"w8a8\" is calibrated"
            )));
        }
        if !(1..=MAX_CALIBRATION_SAMPLES).contains(&n) {
            return Err(value_error(format!(
                "calibration_samples={n}: expected 1..={MAX_CALIBRATION_SAMPLES}"
            )));
        }
        options.calibration.samples = Some(n);
    }
    Ok(options)
}

/// A normaliser from `{"scale": [...], "offset": [...]}` (data = x·scale + offset).
fn normalizer(value: &Bound<'_, PyAny>) -> PyResult<Normalizer> {
    let bad = || value_error("normalizer: expected {\"scale\": [...], \"offset\": [...]}");
    let dict = value.cast::<PyDict>().map_err(|_| bad())?;
    let field = |key: &str| -> PyResult<Vec<f32>> {
        dict.get_item(key)?
            .ok_or_else(bad)?
            .extract()
            .map_err(|_| bad())
    };
    Ok(Normalizer {
        scale: field("scale")?,
        offset: field("offset")?,
    })
}

/// Safetensors bytes → the run → the blob, without the GIL; errors as `ValueError`.
fn blob<'py>(
    py: Python<'py>,
    file: &[u8],
    import: &ImportOptions,
    export: &Options,
) -> PyResult<Bound<'py, PyBytes>> {
    let bytes = py
        .detach(|| {
            let run =
                interop::from_safetensors(file, import).map_err(|e| format!("safetensors: {e}"))?;
            from_run(&run, export)
                .map(|e| e.bytes)
                .map_err(|e| e.to_string())
        })
        .map_err(value_error)?;
    Ok(PyBytes::new(py, &bytes))
}

/// `from_safetensors(path_or_bytes, *, dtype="i8", samplers=None, guidance=None, process=None,
/// sigma_max=None, prediction=None, shape=None, normalizer=None, classes=None, act=None,
/// calibration_samples=None)`: the blob (bytes) of a safetensors file, as `microdiff import`
/// then `microdiff export --dtype DTYPE --sampler … --calibration-samples N` would write it.
/// The keyword arguments from `process` to `act` replace the file's metadata
/// (docs/interop.md), for files written by other tools.
#[pyfunction]
#[pyo3(signature = (
    source, *, dtype = "i8", samplers = None, guidance = None, process = None, sigma_max = None,
    prediction = None, shape = None, normalizer = None, classes = None, act = None,
    calibration_samples = None
))]
#[allow(clippy::too_many_arguments)]
pub fn from_safetensors<'py>(
    py: Python<'py>,
    source: &Bound<'py, PyAny>,
    dtype: &str,
    samplers: Option<&Bound<'py, PyAny>>,
    guidance: Option<f64>,
    process: Option<&str>,
    sigma_max: Option<f64>,
    prediction: Option<String>,
    shape: Option<Vec<usize>>,
    normalizer: Option<&Bound<'py, PyAny>>,
    classes: Option<usize>,
    act: Option<&str>,
    calibration_samples: Option<usize>,
) -> PyResult<Bound<'py, PyBytes>> {
    let export = export_options(dtype, samplers, guidance, calibration_samples)?;
    let act = act
        .map(|name| {
            interop::activation(name).ok_or_else(|| {
                value_error(format!("act={name:?}: expected silu, gelu_tanh or relu"))
            })
        })
        .transpose()?;
    let import = ImportOptions {
        process: match (process, sigma_max) {
            (Some(p), s) => Some(schedule::process(p, s)?),
            (None, Some(_)) => return Err(value_error("sigma_max= needs process=\"ve\"")),
            (None, None) => None,
        },
        prediction,
        shape,
        normalizer: normalizer
            .filter(|n| !n.is_none())
            .map(self::normalizer)
            .transpose()?,
        dataset: None,
        classes,
        act,
    };
    let file = bytes_or_file(py, source, interop::MAX_FILE_BYTES, "from_safetensors")?;
    blob(py, &file, &import, &export)
}

/// One state_dict value as float32 little-endian bytes and its shape. A torch tensor is
/// detached and moved to the CPU first; any floating-point array is converted to float32
/// (the reference module's parameters already are); integers are refused.
fn tensor(name: &str, value: &Bound<'_, PyAny>) -> PyResult<(Vec<usize>, Vec<u8>)> {
    let py = value.py();
    let np = py.import("numpy")?;
    let mut v = value.clone();
    if v.hasattr("detach")? && v.hasattr("is_floating_point")? {
        // A torch tensor: bfloat16 has no numpy type, so every float dtype goes through float().
        let t = v.call_method0("detach")?.call_method0("cpu")?;
        if !t.call_method0("is_floating_point")?.extract::<bool>()? {
            return Err(value_error(format!(
                "tensor {name}: dtype {} is not floating point",
                t.getattr("dtype")?
            )));
        }
        v = t.call_method0("float")?.call_method0("numpy")?;
    }
    let array = np.call_method1("asarray", (v,))?;
    let dtype = array.getattr("dtype")?;
    if dtype.getattr("kind")?.extract::<String>()? != "f" {
        return Err(value_error(format!(
            "tensor {name}: dtype {dtype} is not floating point"
        )));
    }
    let array = np.call_method1("ascontiguousarray", (array, np.getattr("float32")?))?;
    let array: PyReadonlyArrayDyn<'_, f32> = array.extract()?;
    let shape = array.shape().to_vec();
    let values = array.as_slice().map_err(value_error)?;
    Ok((shape, values.iter().flat_map(|v| v.to_le_bytes()).collect()))
}

/// `architecture` as the metadata's JSON: a dict (`{"data_dim": 2, "hidden": 64, "ff": 128,
/// "temb": 32, "blocks": 2, "classes": 0, "act": "silu"}`) or that JSON as a string.
fn architecture_json(value: &Bound<'_, PyAny>) -> PyResult<String> {
    if value.is_instance_of::<PyString>() {
        return value.extract();
    }
    let json = value.py().import("json")?;
    json.call_method1("dumps", (value,))
        .and_then(|s| s.extract())
        .map_err(|e| value_error(format!("architecture: {e}")))
}

/// `from_state_dict(state_dict, *, architecture, process, shape, normalizer=None,
/// prediction=None, sigma_max=None, dataset=None, dtype="i8", samplers=None, guidance=None,
/// calibration_samples=None)`:
/// the blob (bytes) of a network given as the reference module's `state_dict` (a mapping of
/// names to numpy arrays or torch tensors, docs/interop.md's names and shapes). The tensors
/// and the metadata become a safetensors file in memory, which goes the way of
/// `from_safetensors`. `process` is a name (`"ddpm"`, `"vp"`, `"flow"`, `"ve"` with
/// `sigma_max=`) or the process's JSON; `prediction` defaults to the process's own
/// (docs/interop.md, "Predictions", lists the others each process takes).
#[pyfunction]
#[pyo3(signature = (
    state_dict, *, architecture, process, shape, normalizer = None, prediction = None,
    sigma_max = None, dataset = None, dtype = "i8", samplers = None, guidance = None,
    calibration_samples = None
))]
#[allow(clippy::too_many_arguments)]
pub fn from_state_dict<'py>(
    py: Python<'py>,
    state_dict: &Bound<'py, PyAny>,
    architecture: &Bound<'py, PyAny>,
    process: &str,
    shape: Vec<usize>,
    normalizer: Option<&Bound<'py, PyAny>>,
    prediction: Option<String>,
    sigma_max: Option<f64>,
    dataset: Option<String>,
    dtype: &str,
    samplers: Option<&Bound<'py, PyAny>>,
    guidance: Option<f64>,
    calibration_samples: Option<usize>,
) -> PyResult<Bound<'py, PyBytes>> {
    let export = export_options(dtype, samplers, guidance, calibration_samples)?;
    let process = schedule::process(process, sigma_max)?;
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for item in state_dict.call_method0("items")?.try_iter()? {
        let (name, value): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item?.extract()?;
        let name: String = name
            .extract()
            .map_err(|_| value_error(format!("state_dict: key {name} is not a string")))?;
        let (shape, bytes) = tensor(&name, &value)?;
        tensors.push((name, shape, bytes));
    }
    let data = DataFacts {
        shape,
        normalizer: normalizer
            .filter(|n| !n.is_none())
            .map(self::normalizer)
            .transpose()?,
        dataset,
        data_range: None,
    };
    let json_error =
        |key: &'static str| move |e: serde_json::Error| value_error(format!("{key}: {e}"));
    let process_json = serde_json::to_string(&process).map_err(json_error(KEY_PROCESS))?;
    let data_json = serde_json::to_string(&data).map_err(json_error(KEY_DATA))?;
    let meta: HashMap<String, String> = [
        (KEY_FORMAT, FORMAT.to_string()),
        (KEY_ARCHITECTURE, architecture_json(architecture)?),
        (KEY_PROCESS, process_json),
        (
            KEY_PREDICTION,
            prediction.unwrap_or_else(|| supported_prediction(&process).to_string()),
        ),
        (KEY_DATA, data_json),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let views = tensors
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map(|view| (name.as_str(), view))
                .map_err(|e| value_error(format!("tensor {name}: {e}")))
        })
        .collect::<PyResult<Vec<_>>>()?;
    let file = safetensors::serialize(views, Some(meta))
        .map_err(|e| value_error(format!("safetensors: {e}")))?;
    blob(py, &file, &ImportOptions::default(), &export)
}
