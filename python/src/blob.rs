//! `microdiff.Blob`: a weight blob, checked by the runtime's parser when it is made, and
//! sampled by the runtime's batched executor exactly as `microdiff sample` samples it.

use microdiff_runtime::Model;
use microdiff_runtime::blob::program::Program;
use microdiff_trainer::sampling;
use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray2};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::errors::value_error;
use crate::input::bytes_or_file;

/// A microdiff weight blob (`.mdfb`), from a path (`str` or `os.PathLike`) or its bytes.
///
/// The blob is parsed and validated by the no_std runtime when the object is made: a file that
/// cannot be read raises `OSError`, bytes the runtime refuses raise `ValueError` naming the
/// problem. `sample` draws with the runtime's batched executor, the same code and the same
/// noise streams as `microdiff sample`, so its rows equal the CLI's bit for bit.
#[pyclass(module = "microdiff", frozen)]
pub struct Blob {
    /// The whole blob.
    bytes: Vec<u8>,
    /// Program names, in blob order.
    programs: Vec<String>,
    /// Values per sample.
    data_len: usize,
    /// Shape of one sample.
    shape: Vec<usize>,
    /// Classes of a class-conditional model; 0 when unconditional.
    classes: u16,
    /// The model's objective and prediction names.
    objective: &'static str,
    prediction: &'static str,
}

impl Blob {
    /// Parses `bytes`, reading the metadata Python sees as attributes.
    fn from_bytes(bytes: Vec<u8>) -> PyResult<Blob> {
        let model = Model::parse(&bytes).map_err(|e| value_error(format!("blob: {e}")))?;
        let programs = model
            .programs()
            .iter()
            .map(|p| p.map(|p| p.name().to_string()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| value_error(format!("blob: {e}")))?;
        let meta = model.meta();
        let shape = meta
            .shape
            .iter()
            .take(usize::from(meta.rank))
            .map(|&d| usize::from(d))
            .collect();
        let (data_len, classes) = (model.data_len(), meta.classes);
        let (objective, prediction) = (meta.objective.name(), meta.prediction.name());
        Ok(Blob {
            programs,
            data_len,
            shape,
            classes,
            objective,
            prediction,
            bytes,
        })
    }
}

/// A non-negative integer below `limit` from a Python int, else a `ValueError` naming `what`
/// (PyO3 would raise `OverflowError` for a negative value, which is not what it is).
fn bounded(value: &Bound<'_, PyAny>, what: &str, limit: u128) -> PyResult<u128> {
    let bad = || {
        value_error(format!(
            "{what}: expected an integer in 0..{limit}, got {value}"
        ))
    };
    if value.is_instance_of::<pyo3::types::PyBool>() {
        return Err(bad());
    }
    let v: i128 = value.extract().map_err(|_| bad())?;
    u128::try_from(v)
        .ok()
        .filter(|&v| v < limit)
        .ok_or_else(bad)
}

/// A program's instructions as dicts, in order: the library's
/// [`microdiff_trainer::sampler::instructions_json`] (what `microdiff inspect --json` prints),
/// handed to Python through `json.loads`, which reads the widened f32 values back exactly.
pub fn instructions<'py>(py: Python<'py>, p: &Program<'_>) -> PyResult<Bound<'py, PyList>> {
    let values = microdiff_trainer::sampler::instructions_json(p)
        .map_err(|e| value_error(format!("program {:?}: {e}", p.name())))?;
    let text = serde_json::to_string(&values)
        .map_err(|e| value_error(format!("program {:?}: {e}", p.name())))?;
    Ok(py
        .import("json")?
        .call_method1("loads", (text,))?
        .cast_into::<PyList>()?)
}

#[pymethods]
impl Blob {
    /// `Blob(path_or_bytes)`: a blob from a file (`str`, `os.PathLike`) or from `bytes` /
    /// `bytearray` / `memoryview`.
    #[new]
    fn new(py: Python<'_>, source: &Bound<'_, PyAny>) -> PyResult<Blob> {
        let bytes = bytes_or_file(py, source, microdiff_trainer::files::MAX_BLOB_BYTES, "Blob")?;
        Blob::from_bytes(bytes)
    }

    /// The program names, in the blob's order (the first is the CLI's default).
    #[getter]
    fn programs(&self) -> Vec<String> {
        self.programs.clone()
    }

    /// Values per sample (the product of `shape`).
    #[getter]
    fn data_len(&self) -> usize {
        self.data_len
    }

    /// The shape of one sample, e.g. `(2,)` or `(8, 8)`.
    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, &self.shape)
    }

    /// Classes of a class-conditional model (0: unconditional).
    #[getter]
    fn classes(&self) -> u16 {
        self.classes
    }

    /// The training objective: `ddpm`, `score-vp`, `score-ve` or `flow` (as `microdiff inspect`).
    #[getter]
    fn objective(&self) -> &'static str {
        self.objective
    }

    /// What the network predicts (as `microdiff inspect`).
    #[getter]
    fn prediction(&self) -> &'static str {
        self.prediction
    }

    /// The blob's bytes (`open(p, "wb").write(blob.bytes)` writes the file back).
    #[getter]
    fn bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.bytes)
    }

    fn __bytes__<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.bytes)
    }

    fn __len__(&self) -> usize {
        self.bytes.len()
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<Blob>()
            .is_ok_and(|o| o.get().bytes == self.bytes)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        // Python's own spelling of the tuple and the list of names.
        let shape = PyTuple::new(py, &self.shape)?.repr()?;
        let programs = PyList::new(py, &self.programs)?.repr()?;
        Ok(format!(
            "<microdiff.Blob: {} bytes, {} model, shape {shape}, {} classes, programs {programs}>",
            self.bytes.len(),
            self.objective,
            self.classes,
        ))
    }

    /// `sample(program, n, seed=0, class_=0)`: `n` samples of `class_` drawn by `program`
    /// (noise streams `0..n` of `seed`), in data units, as a float32 array of shape
    /// `(n, data_len)`. Bit for bit the rows, in order, of `microdiff sample BLOB --program
    /// PROGRAM -n N --seed SEED --class CLASS --csv FILE`. The GIL is released while drawing.
    #[pyo3(
        signature = (program, n, seed = None, class_ = None),
        text_signature = "($self, program, n, seed=0, class_=0)"
    )]
    fn sample<'py>(
        &self,
        py: Python<'py>,
        program: &str,
        n: &Bound<'py, PyAny>,
        seed: Option<&Bound<'py, PyAny>>,
        class_: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        // Sample i uses noise stream i, a u32: at most 2^32 samples.
        let n = usize::try_from(bounded(n, "n", (1u128 << 32) + 1)?).map_err(value_error)?;
        let seed = match seed {
            Some(s) => u64::try_from(bounded(s, "seed", 1u128 << 64)?).map_err(value_error)?,
            None => 0,
        };
        let class = match class_ {
            Some(c) => u16::try_from(bounded(c, "class_", 1u128 << 16)?).map_err(value_error)?,
            None => 0,
        };
        if !self.programs.iter().any(|p| p == program) {
            return Err(value_error(format!(
                "program {program:?}: not in this blob (it has {:?})",
                self.programs
            )));
        }
        // As `microdiff sample`: a class for an unconditional model is a mistake, not class 0.
        if class != 0 && self.classes == 0 {
            return Err(value_error(format!(
                "class_={class}: the model is unconditional (it has no classes)"
            )));
        }
        if self.classes > 0 && class >= self.classes {
            return Err(value_error(format!(
                "class_={class}: the model has classes 0..{}",
                self.classes
            )));
        }
        let bytes = &self.bytes;
        let values = py
            .detach(|| sampling::draw(bytes, program, class, n, seed, 0, &|_| {}))
            .map_err(value_error)?;
        let array = Array2::from_shape_vec((n, self.data_len), values).map_err(value_error)?;
        Ok(array.into_pyarray(py))
    }

    /// `instructions(program)`: the program's instructions as dicts, the same as the
    /// `instructions` of `microdiff inspect --json`.
    fn instructions<'py>(&self, py: Python<'py>, program: &str) -> PyResult<Bound<'py, PyList>> {
        let model = Model::parse(&self.bytes).map_err(|e| value_error(format!("blob: {e}")))?;
        let p = model
            .program(program)
            .map_err(|e| value_error(format!("program {program:?}: {e}")))?;
        instructions(py, &p)
    }
}
