//! Library errors as Python exceptions. A file that cannot be read is an `OSError` carrying
//! its `errno` and file name (so Python picks the subclass: `FileNotFoundError`,
//! `PermissionError`, …); everything the caller passed that the library refuses is a
//! `ValueError` with the library's own message.

use std::fmt::Display;
use std::path::Path;

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;

/// A `ValueError` with `what`'s message.
pub fn value_error(what: impl Display) -> PyErr {
    PyValueError::new_err(what.to_string())
}

/// An `OSError` for `path`: `OSError(errno, strerror, filename)` when the OS gave an error
/// number, else `OSError("path: message")` (e.g. a file over the size limit).
pub fn os_error(py: Python<'_>, path: &Path, e: &std::io::Error) -> PyErr {
    let shown = path.display().to_string();
    if let Some(errno) = e.raw_os_error() {
        // Python's own wording of the error number, as `open()` would raise it.
        let strerror = py
            .import("os")
            .and_then(|os| os.call_method1("strerror", (errno,)))
            .and_then(|s| s.extract::<String>())
            .unwrap_or_else(|_| e.to_string());
        return PyOSError::new_err((errno, strerror, shown));
    }
    PyOSError::new_err(format!("{shown}: {e}"))
}
