//! Bytes from what a Python caller hands over: `bytes`, `bytearray`, `memoryview`, or a path
//! (`str` / `os.PathLike`) read whole with a size limit.

use std::path::PathBuf;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::PyMemoryView;

use crate::errors::os_error;

/// The bytes `source` holds or names: a file larger than `limit` bytes is an `OSError`, as is
/// one that cannot be read; anything but bytes or a path is a `TypeError` naming `what`.
pub fn bytes_or_file(
    py: Python<'_>,
    source: &Bound<'_, PyAny>,
    limit: u64,
    what: &str,
) -> PyResult<Vec<u8>> {
    if let Ok(b) = source.extract::<PyBackedBytes>() {
        return Ok(b.to_vec());
    }
    if source.is_instance_of::<PyMemoryView>() {
        let b: PyBackedBytes = source.call_method0("tobytes")?.extract()?;
        return Ok(b.to_vec());
    }
    let path: PathBuf = source.extract().map_err(|_| {
        let ty = source
            .get_type()
            .name()
            .map_or_else(|_| "?".into(), |n| n.to_string());
        PyTypeError::new_err(format!(
            "{what}: expected a path (str or os.PathLike) or bytes, got {ty}"
        ))
    })?;
    py.detach(|| microdiff_trainer::files::read_limited(&path, limit))
        .map_err(|e| os_error(py, &path, &e))
}
