//! `microdiff._native`: the Python extension module behind the `microdiff` package
//! (`python/microdiff/__init__.py` re-exports it).
//!
//! * [`blob`] — `Blob`: a weight blob read from a file or bytes, sampled by the runtime's
//!   batched executor through [`microdiff_trainer::sampling::draw`], the function
//!   `microdiff sample` calls, so a `Blob.sample` is bit for bit the CLI's `--csv` rows.
//! * [`schedule`] — noise processes by name, `alpha_sigma`, `time_value`, and
//!   `sampler_program`: a sampler specification built into runtime instructions.
//! * [`interop`] — `from_safetensors` / `from_state_dict`: a PyTorch network (docs/interop.md)
//!   → a blob, as `microdiff import` + `microdiff export` make it.
//! * [`input`] — bytes or a path from Python, read with a size limit.
//! * [`errors`] — how the library's errors become Python exceptions: `OSError` for files,
//!   `ValueError` for bad input, never a panic.
//!
//! Nothing here keeps state between calls; every result depends only on the arguments.
#![deny(missing_docs)]
#![deny(unsafe_code)]
// Input from Python must never panic across the FFI boundary (PyO3 would turn it into a
// `PanicException`, which is not an error a caller can reasonably handle).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::todo,
    clippy::unimplemented,
    clippy::indexing_slicing
)]

mod blob;
mod errors;
mod input;
mod interop;
mod schedule;

use pyo3::prelude::*;

/// The extension module: `microdiff._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<blob::Blob>()?;
    m.add_function(wrap_pyfunction!(schedule::sampler_program, m)?)?;
    m.add_function(wrap_pyfunction!(schedule::alpha_sigma, m)?)?;
    m.add_function(wrap_pyfunction!(schedule::time_value, m)?)?;
    m.add_function(wrap_pyfunction!(schedule::default_sampler, m)?)?;
    m.add_function(wrap_pyfunction!(interop::from_safetensors, m)?)?;
    m.add_function(wrap_pyfunction!(interop::from_state_dict, m)?)?;
    m.add("MAX_BLOB_BYTES", microdiff_trainer::files::MAX_BLOB_BYTES)?;
    Ok(())
}
