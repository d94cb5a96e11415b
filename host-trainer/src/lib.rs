//! microdiff host trainer. Training, sampler builders, export and evaluation arrive with the
//! CPU-trainer issue; until then this crate only re-exports the runtime it will build on.
#![deny(missing_docs)]

pub use microdiff_runtime as runtime;
