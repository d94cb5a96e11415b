//! Golden vectors: checked-in blobs and the SHA-256 of the bytes each (blob, program, seed,
//! stream, class) case produces. The host asserts them here; every firmware target re-runs the
//! same cases and must print the same digests.
//!
//! Files (in `tests/golden/`):
//! * `ref-mlp-{f32,f16,i8}.mdfb` — the reference MLP ([`crate::mlp::MlpSpec::reference`]) with
//!   the programs of [`programs`]; regenerated from their seeds and compared byte for byte,
//!   so any change of the emitter or the generator shows up;
//! * `cases.txt` — one case per line:
//!   `BLOB PROGRAM SEED STREAM CLASS SHA256`, where the digest covers the output sample in data
//!   units as little-endian f32 bytes.

use std::path::{Path, PathBuf};

use microdiff_kernels::Dtype;
use microdiff_runtime::batch::BatchModel;
use microdiff_runtime::blob::ProgramBuilder;
use microdiff_runtime::{Error, Model, SampleRequest, sample};
use sha2::{Digest, Sha256};

use crate::mlp::{Mlp, MlpSpec};
use crate::textbook::{AncestralVariance, Schedule, ddim_program, ddpm_program};

/// Seed of the reference weights.
pub const WEIGHT_SEED: u64 = 2026;
/// Data shape of the reference model.
pub const SHAPE: [u16; 2] = [2, 4];

/// The golden schedule: linear β over 100 steps (Ho et al.'s 1e-4..0.02 over 1000, ×10).
pub fn schedule() -> Schedule {
    Schedule::linear(100, 1e-3, 0.2)
}

/// The programs stored in every golden blob.
pub fn programs(s: &Schedule) -> Vec<ProgramBuilder> {
    vec![
        ddpm_program("ddpm100", s, AncestralVariance::BetaTilde, None),
        ddim_program("ddim10", s, 10, 0.0, None, None),
        ddim_program("ddim10-cfg", s, 10, 0.5, Some(3.0), Some(2.0)),
    ]
}

/// Per-element map back to data units.
pub fn normalization() -> (Vec<f32>, Vec<f32>) {
    let n = SHAPE.iter().map(|&d| d as usize).product::<usize>();
    (
        (0..n).map(|i| 0.5 + 0.125 * i as f32).collect(),
        (0..n).map(|i| 0.25 * i as f32 - 1.0).collect(),
    )
}

/// A golden model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Golden {
    /// The reference MLP with weights of this dtype and the programs of [`programs`].
    RefMlp(Dtype),
    /// A trained model, checked in as an artifact (`host-trainer/examples/golden_digits.rs`
    /// writes it; training is not promised to give the same weights on every CPU, so it is not
    /// rebuilt here): the demo's class-conditional digits network with the one program
    /// [`DIGITS_PROGRAM`], its time MLP folded into a table. The cases pin its bits on every
    /// target and the Cortex-M0 prints its first sample as a digit.
    Trained,
    /// A trained VAE decoder, checked in like [`Golden::Trained`]
    /// (`host-trainer/examples/golden_vae.rs` writes it): the class-conditional digits VAE with
    /// the one program [`VAE_PROGRAM`], one network pass per sample. The two-level VAE
    /// ([`DIGITS_HVAE_FILE`], `host-trainer/examples/golden_zoo.rs`) is one too: its network
    /// draws its inner latent itself.
    TrainedVae,
    /// A trained binary RBM on the binarised digits (`host-trainer/examples/golden_zoo.rs`),
    /// checked in like [`Golden::Trained`], with the programs [`RBM_PROGRAMS`] (Gibbs sweeps
    /// with Bernoulli draws inside the network).
    TrainedRbm,
    /// A trained class-conditional diffusion model on the 2-D set `8gaussians`
    /// (`host-trainer/examples/golden_zoo_2d.rs`, docs/zoo.md's 2-D table), checked in like
    /// [`Golden::Trained`], with the one program [`TOY_DIFFUSION_PROGRAM`]. The 2-D table's
    /// VAEs and RBMs are [`Golden::TrainedVae`] and [`Golden::TrainedRbm`] blobs.
    TrainedToyDiffusion,
}

/// The golden blobs and their file names. The full-integer digits model comes first among the
/// digits models, so the firmware's ASCII-art digit is the integer network's.
pub const BLOBS: [(Golden, &str); 16] = [
    (Golden::RefMlp(Dtype::F32), "ref-mlp-f32.mdfb"),
    (Golden::RefMlp(Dtype::F16), "ref-mlp-f16.mdfb"),
    (Golden::RefMlp(Dtype::I8), "ref-mlp-i8.mdfb"),
    (Golden::Trained, DIGITS_W8A8_FILE),
    (Golden::Trained, DIGITS_FILE),
    (Golden::TrainedVae, DIGITS_VAE_FILE),
    (Golden::TrainedVae, DIGITS_VAE_W8A8_FILE),
    (Golden::TrainedVae, DIGITS_HVAE_FILE),
    (Golden::TrainedRbm, DIGITS_RBM_FILE),
    (Golden::TrainedRbm, DIGITS_RBM_W8A8_FILE),
    (Golden::TrainedToyDiffusion, TOY_DIFFUSION_FILE),
    (Golden::TrainedVae, TOY_VAE_FILE),
    (Golden::TrainedVae, TOY_VAE_W8A8_FILE),
    (Golden::TrainedVae, TOY_HVAE_FILE),
    (Golden::TrainedRbm, TOY_RBM_FILE),
    (Golden::TrainedRbm, TOY_RBM_W8A8_FILE),
];

/// The 2-D table's class-conditional diffusion model (int8 weights, f32 arithmetic), program
/// [`TOY_DIFFUSION_PROGRAM`].
pub const TOY_DIFFUSION_FILE: &str = "8gaussians-diffusion-i8.mdfb";

/// Its program: DPM-Solver++(2M), 10 evaluations, unguided.
pub const TOY_DIFFUSION_PROGRAM: &str = "dpmpp2m10";

/// The 2-D table's class-conditional VAE decoder (int8 weights, f32 arithmetic).
pub const TOY_VAE_FILE: &str = "8gaussians-vae.mdfb";

/// The same decoder as a full-integer (W8A8) network.
pub const TOY_VAE_W8A8_FILE: &str = "8gaussians-vae-w8a8.mdfb";

/// The 2-D table's two-level VAE (int8 weights, f32 arithmetic).
pub const TOY_HVAE_FILE: &str = "8gaussians-hvae.mdfb";

/// The 2-D table's RBM on the thermometer-coded points (int8 weights, f32 arithmetic).
pub const TOY_RBM_FILE: &str = "8gaussians-rbm.mdfb";

/// The same RBM as a full-integer (W8A8) sweep.
pub const TOY_RBM_W8A8_FILE: &str = "8gaussians-rbm-w8a8.mdfb";

/// The same RBM as a full-integer (W8A8) sweep (`QBERNOULLI` draws), programs [`RBM_PROGRAMS`].
pub const DIGITS_RBM_W8A8_FILE: &str = "digits-rbm-w8a8.mdfb";

/// The trained two-level VAE (int8 weights, f32 arithmetic), program [`VAE_PROGRAM`].
pub const DIGITS_HVAE_FILE: &str = "digits-hvae.mdfb";

/// The trained RBM (int8 weights, f32 arithmetic), programs [`RBM_PROGRAMS`].
pub const DIGITS_RBM_FILE: &str = "digits-rbm.mdfb";

/// The RBM blob's programs: 10 and 50 block Gibbs sweeps from the all-zero state.
pub const RBM_PROGRAMS: [&str; 2] = ["gibbs10", "gibbs50"];

/// The trained digits VAE decoder (int8 weights, f32 arithmetic).
pub const DIGITS_VAE_FILE: &str = "digits-vae.mdfb";

/// The same decoder as a full-integer (W8A8) network.
pub const DIGITS_VAE_W8A8_FILE: &str = "digits-vae-w8a8.mdfb";

/// The program of the VAE blob: `LIN r0 = z; EVAL r0 <- r0; STEP`.
pub const VAE_PROGRAM: &str = "decode";

/// The program the digits blobs carry: DDIM, 10 steps, x̂₀ clipped, guidance 1.2.
pub const DIGITS_PROGRAM: &str = "ddim10-cfg";

/// The trained digits model with int8 weights and f32 arithmetic.
pub const DIGITS_FILE: &str = "digits-i8.mdfb";

/// The trained digits model as a full-integer (W8A8) network.
pub const DIGITS_W8A8_FILE: &str = "digits-w8a8.mdfb";

/// Builds a golden blob (a trained one is read from `tests/golden`); the error says what went
/// wrong: the builder's refusal, or a trained blob missing from the tree.
pub fn build_blob(which: Golden, file: &str) -> Result<Vec<u8>, String> {
    let s = schedule();
    let mut b = match which {
        Golden::RefMlp(dtype) => {
            let mlp = Mlp::random(MlpSpec::reference(dtype), WEIGHT_SEED);
            let (scale, offset) = normalization();
            let mut b = mlp
                .to_builder(&SHAPE, (&scale, &offset))
                .map_err(|e| e.to_string())?;
            for p in programs(&s) {
                b.program(&p);
            }
            b
        }
        Golden::Trained | Golden::TrainedVae | Golden::TrainedRbm | Golden::TrainedToyDiffusion => {
            return std::fs::read(dir().join(file))
                .map_err(|e| format!("trained golden blob tests/golden/{file}: {e}"));
        }
    };
    b.schedule(&s.rows());
    b.build().map_err(|e| e.to_string())
}

/// The digits architecture with seeded random weights and a guided program, the time MLP as
/// weights (`table = None`) or folded into a `TIME_TABLE`; also the value that is the time
/// MLP's output. (The golden digits models are trained; this one checks the fold.)
fn digits(table: Option<(&[f32], &[f32])>) -> Result<(Vec<u8>, u16), Error> {
    let s = schedule();
    let mlp = Mlp::random(MlpSpec::digits(), WEIGHT_SEED);
    // Model space [-1, 1] to pixel values [0, 16] of the 8x8 digits.
    let (mut b, te) = mlp.to_builder_with(&[8, 8], (&[8.0], &[8.0]), table)?;
    b.program(&ddim_program(
        DIGITS_PROGRAM,
        &s,
        10,
        0.0,
        Some(1.0),
        Some(2.0),
    ));
    b.schedule(&s.rows());
    Ok((b.build()?, te.0))
}

/// The random digits network as the exporter writes such a model by default: its time MLP
/// folded into a `TIME_TABLE` (10 rows for `ddim10-cfg`, computed by the runtime from the
/// unfolded blob). The fold changes no sample's bits (tested against [`digits_blob_unfolded`]).
pub fn digits_blob_folded() -> Result<Vec<u8>, Error> {
    let (plain, te) = digits(None)?;
    let (rows, times) = BatchModel::new(&Model::parse(&plain)?)?.time_table(te)?;
    Ok(digits(Some((&rows, &times)))?.0)
}

/// The random digits network without the fold (`TIME_EMBED` and the time MLP), for the test
/// that the fold changes no bits.
pub fn digits_blob_unfolded() -> Result<Vec<u8>, Error> {
    Ok(digits(None)?.0)
}

/// One golden case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// Blob file name.
    pub blob: String,
    /// Program name.
    pub program: String,
    /// What to sample.
    pub spec: SampleRequest,
    /// Expected SHA-256, hex.
    pub sha256: String,
}

/// The case grid: every blob × program × two (seed, stream, class) triples.
pub fn case_grid() -> Vec<(String, String, SampleRequest)> {
    let specs = [
        SampleRequest {
            seed: 1,
            stream: 0,
            class: 1,
        },
        SampleRequest {
            seed: 42,
            stream: 7,
            class: 3,
        },
    ];
    let mut out = Vec::new();
    for (which, file) in BLOBS {
        let names: Vec<String> = match which {
            Golden::RefMlp(_) => programs(&schedule())
                .iter()
                .map(|p| p.name().to_string())
                .collect(),
            Golden::Trained => vec![DIGITS_PROGRAM.to_string()],
            Golden::TrainedVae => vec![VAE_PROGRAM.to_string()],
            Golden::TrainedRbm => RBM_PROGRAMS.iter().map(|p| p.to_string()).collect(),
            Golden::TrainedToyDiffusion => vec![TOY_DIFFUSION_PROGRAM.to_string()],
        };
        for name in names {
            for spec in specs {
                out.push((file.to_string(), name.clone(), spec));
            }
        }
    }
    out
}

/// The golden directory.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("golden")
}

/// Runs one case on the host runtime; returns the output bytes (f32 LE, data units).
pub fn run(blob: &[u8], program: &str, spec: SampleRequest) -> Result<Vec<u8>, Error> {
    let model = Model::parse(blob)?;
    let p = model.program(program)?;
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut out = vec![0.0f32; model.data_len()];
    sample(&model, p, &mut arena, spec, &mut out)?;
    Ok(out.iter().flat_map(|v| v.to_le_bytes()).collect())
}

/// SHA-256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Parses `cases.txt`.
pub fn parse_cases(text: &str) -> Result<Vec<Case>, String> {
    let mut cases = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let err = |what: &str| format!("cases.txt line {}: {what}: {line:?}", n + 1);
        if f.len() != 6 {
            return Err(err("expected 6 fields"));
        }
        let num = |s: &str| s.parse::<u64>().map_err(|_| err("bad number"));
        cases.push(Case {
            blob: f[0].into(),
            program: f[1].into(),
            spec: SampleRequest {
                seed: num(f[2])?,
                stream: num(f[3])? as u32,
                class: num(f[4])? as u16,
            },
            sha256: f[5].into(),
        });
    }
    Ok(cases)
}

/// Formats cases as `cases.txt`.
pub fn format_cases(cases: &[Case]) -> String {
    let mut s = String::from(
        "# Golden vectors: BLOB PROGRAM SEED STREAM CLASS SHA256(output as f32 LE, data units)\n\
         # Regenerate only on purpose: cargo xtask golden --bless\n",
    );
    for c in cases {
        s += &format!(
            "{} {} {} {} {} {}\n",
            c.blob, c.program, c.spec.seed, c.spec.stream, c.spec.class, c.sha256
        );
    }
    s
}
