//! microdiff conformance: what "the same bytes everywhere" is checked against.
//!
//! * [`mlp`] — the reference residual-MLP ε-network: seeded weights, its blob, an f64 forward.
//! * [`textbook`] — DDPM ancestral and DDIM as runtime programs (coefficients in f64) and as
//!   independent f64 samplers written from the papers.
//! * [`golden`] — the checked-in golden blobs and output digests every target must reproduce.
//! * [`integer`] — a tiny full-integer (W8A8) network using every integer op.
//!
//! The tests in `tests/` use these; `cargo run -p microdiff-conformance --bin golden` checks
//! (or, with `--bless`, regenerates) the golden files.

pub mod firmware;
pub mod golden;
pub mod integer;
pub mod mlp;
pub mod textbook;
