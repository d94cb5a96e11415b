//! microdiff runtime: run diffusion samplers on a microcontroller, with no allocator.
//!
//! * [`blob`] — the weight blob v1: parsed in place from flash with checked accessors, and
//!   (feature `alloc`) emitted by `blob::BlobBuilder` from the same field definitions.
//! * [`arena`] — one caller-provided byte buffer; a `const fn` planner places every network
//!   value and sampler register, so `static` arenas are sized at compile time.
//! * [`Model`] — a validated blob: metadata, tensors, graph, schedule, programs, plan.
//!   [`Model::parse`] is a `const fn`: a firmware that links its blob validates it at compile
//!   time (`static MODEL: Model<'static> = match Model::parse(BLOB) { … }`) and links no parser.
//! * [`Sampler`] — interprets a sampler program (`EVAL`, `LIN`, `CLAMP`, `STEP`) one step per
//!   call and maps the result back to data units.
//! * [`noise`] — Philox4x32-10 and a Gaussian built from correctly rounded operations only.
//! * `batch` (feature `std`) — host sampling at batch speed: many samples per call, SIMD
//!   across samples and threads across blocks, each sample bit-identical to the [`Sampler`]'s.
//!
//! # Contract
//! Any byte string given to [`Model::parse`] yields `Ok` or a typed [`Error`]; nothing in this
//! crate panics on input. The same blob, program, seed, stream and class give the same output
//! bits on every target (see `docs/determinism.md`).
//!
//! ```
//! # fn main() -> Result<(), microdiff_runtime::Error> {
//! # let blob = microdiff_runtime::doc_example_blob();
//! use microdiff_runtime::{Model, SampleRequest, Sampler, Status};
//! let model = Model::parse(&blob)?;
//! let program = model.program("ddim4")?;
//! let mut arena = vec![0u8; model.arena_bytes()];
//! let mut sampler = Sampler::new(&model, program, &mut arena, SampleRequest { seed: 7, stream: 0, class: 0 })?;
//! while let Status::Running { step, steps } = sampler.step()? {
//!     println!("step {step}/{steps}");
//! }
//! let mut out = vec![0.0; model.data_len()];
//! sampler.output(&mut out)?;
//! # Ok(()) }
//! ```
//!
//! # Features
//! * `alloc` / `std` — the blob emitter; `std` also the batched executor (`batch`).
//! * `defmt` — `defmt::Format` on public types and defmt log lines from the sampler.
#![no_std]
#![deny(missing_docs)]
#![deny(unsafe_code)]
// The runtime never panics on input: no unwrap/expect/panic outside tests.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

/// `?` for `const fn` (the `Try` trait is not `const`): `tri!(r)` is `r`'s `Ok` value, or
/// returns its `Err` unchanged. The blob's whole validation is `const` so that a firmware can
/// run it at compile time on a linked-in blob (`Model::parse` in a `const`).
macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return Err(e),
        }
    };
}

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod arena;
#[cfg(feature = "std")]
pub mod batch;
pub mod blob;
pub mod error;
mod log;
mod model;
mod network;
pub mod noise;
mod sampler;

pub use arena::{ArenaBuffer, Plan, arena_bytes, program_index};
pub use error::{Error, Rule, Section};
pub use model::Model;
pub use sampler::{SampleRequest, Sampler, Status, evaluate, sample};

/// A tiny valid blob for documentation examples (feature `alloc`).
#[cfg(feature = "alloc")]
#[doc(hidden)]
pub fn doc_example_blob() -> alloc::vec::Vec<u8> {
    use blob::meta::{Objective, Prediction};
    use blob::program::ClassSel;
    use blob::{BlobBuilder, ProgramBuilder};
    use microdiff_kernels::{Activation, Dtype};
    let mut b = BlobBuilder::new(&[2], Objective::Ddpm, Prediction::Epsilon);
    let w = b.tensor(Dtype::F32, 2, 2, &[0.1, 0.0, 0.0, 0.1]);
    let mut p = ProgramBuilder::new("ddim4", 2);
    p.lin(0, &[], Some(1.0)).step();
    for i in 0..4 {
        p.eval(1, 0, ClassSel::Caller, 750.0 - 250.0 * i as f32);
        p.lin(0, &[(0, 1.01), (1, -0.1)], None).step();
    }
    match w {
        Ok(w) => {
            let h = b.linear(b.input(), w, None);
            let o = b.activation(h, Activation::Identity);
            b.output(o).program(&p);
            b.build().unwrap_or_default()
        }
        Err(_) => alloc::vec::Vec::new(),
    }
}
