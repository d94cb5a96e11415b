//! microdiff host side: data, noise processes, sampler builders, evaluation, pictures; training,
//! export and the `microdiff` CLI build on these.
//!
//! * [`process`] — the noise processes (DDPM β schedules, VP and VE SDEs, the flow path) as
//!   Gaussian paths `x_t = α_t·x₀ + σ_t·ε`, and the time value the network sees;
//!   [`prediction`] — what a network may output for each process (ε, x₀, v, score, velocity)
//!   and the map the samplers apply to it.
//! * [`sampler`] — sampler builders: f64 mathematics → runtime programs.
//! * [`data`] — built-in 2-D sets, the 8×8 digits, CSV / NPY / PNG-folder loaders.
//! * [`eval`] — sample-quality metrics with their noise floors, the digits classifier, Fréchet distance.
//! * [`viz`] — PNG pictures: 2-D scatter plots, digit grids, loss curves.
//! * [`model`] — the residual-MLP network: parameter layout, initialisation, forward/backward.
//! * [`backend`] — the operations training runs on, and the CPU reference backend.
//! * [`objective`] — DDPM, score (VE/VP) and flow-matching training targets.
//! * [`train`] — the training loop; [`optim`] — learning rate, EMA, clipping;
//!   [`checkpoint`] — atomic, versioned, bit-exact resumable checkpoints.
//! * [`export`] — trained parameters → a weight blob (f32 / f16 / int8, or the full-integer
//!   W8A8 network calibrated on the sampler's trajectories) with sampler programs.
//! * [`interop`] — PyTorch interop: a run ↔ a safetensors file of the reference module's
//!   `state_dict` with microdiff's metadata (docs/interop.md); `export --format safetensors`
//!   and `import`.
//! * [`zoo`] — the other generator families of the lecture notes: Boltzmann machines and VAEs
//!   (host-side training and likelihoods; issue #14).
//! * [`files`] — reading a user's file whole, with a size limit; atomic writes; run locks.
//! * [`run`] — a training run: its directory, its settings (flags = TOML keys), the training
//!   loop; [`sampling`] — samples drawn from a blob by the runtime on the host.
//!
//! The `microdiff` CLI (`src/cli/`) only parses arguments, calls these and prints.
//!
//! # Train, export, sample and evaluate from Rust
//!
//! What `microdiff train`, `export`, `sample` and `eval` do, in a few lines:
//!
//! ```
//! use microdiff_trainer::backend::cpu::Cpu;
//! use microdiff_trainer::data::Source;
//! use microdiff_trainer::eval::report::{self, Report, Request};
//! use microdiff_trainer::export::from_run::{Options, from_run};
//! use microdiff_trainer::run::{Run, RunDir, Settings, Start};
//! use microdiff_trainer::sampling;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join(format!("microdiff-doc-{}", std::process::id()));
//! // `microdiff train --data moons --steps 300 --hidden 64 --out DIR --force`
//! let settings = Settings {
//!     data: Some("moons".into()),
//!     steps: Some(300),
//!     hidden: Some(64),
//!     ..Settings::default()
//! };
//! Run::prepare(&dir, &settings, Start::Force)?.train(Cpu, 100, &mut |_event| {})?;
//! // `microdiff export DIR`: int8 weights, the objective's default sampler.
//! let blob = from_run(&RunDir::new(&dir).open()?, &Options::default())?.bytes;
//! // `microdiff sample BLOB -n 500 --seed 1`: the no_std runtime's samples, in data units.
//! let program = sampling::first_program(&blob)?;
//! let points = sampling::draw(&blob, &program, 0, 500, 1, 0, &|_done| {})?;
//! assert_eq!(points.len(), 500 * 2);
//! // `microdiff eval BLOB --data moons -n 500`
//! let moons = Source::parse("moons")?;
//! let request = Request { blob: &blob, program: &program, data: &moons, n: 500, seed: 1 };
//! let Report::Distances(d) = report::evaluate(&request, &|_done| {})?.report else {
//!     unreachable!("2-D data is scored by distances")
//! };
//! assert!(d.sliced_w2.value.is_finite() && d.sliced_w2.noise_floor > 0.0);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub use microdiff_runtime as runtime;

pub mod backend;
pub mod checkpoint;
pub mod data;
pub mod eval;
pub mod export;
pub mod files;
pub mod interop;
pub mod model;
pub mod objective;
pub mod optim;
pub mod prediction;
pub mod process;
pub mod run;
pub mod sampler;
pub mod sampling;
pub mod train;
pub mod viz;
pub mod zoo;
