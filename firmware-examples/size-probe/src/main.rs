//! Size probe: links the microdiff runtime and runs one program (`ddim10` on the int8 reference
//! MLP; with `--features w8a8`, `ddim10-cfg` on the full-integer digits golden), so `llvm-size`
//! on the ELF gives the runtime's flash cost. The weight blob sits in its own `.blob` section
//! (see `memory.x`) so it can be left out of the count. `--features baseline` builds the same
//! `main` without the runtime calls.
//!
//! By default the blob is validated at compile time (`Model::parse` and the program lookup in a
//! `const`, as the firmware template does), so the parser is not linked; the model then reaches
//! the sampler through `black_box`, so the code measured is the runtime that runs *any* valid
//! model, not one specialised to this blob. `--features runtime-parse` parses on the device.
#![no_std]
#![no_main]

use core::hint::black_box;

use cortex_m_rt::entry;
use microdiff_runtime::ArenaBuffer;
use panic_halt as _;

#[cfg(not(feature = "w8a8"))]
macro_rules! blob {
    () => {
        include_bytes!("../../../tests/golden/ref-mlp-i8.mdfb")
    };
}
#[cfg(feature = "w8a8")]
macro_rules! blob {
    () => {
        include_bytes!("../../../tests/golden/digits-w8a8.mdfb")
    };
}

/// The program the probe runs.
#[cfg(any(not(feature = "w8a8"), feature = "baseline"))]
const PROGRAM: &str = "ddim10";
#[cfg(all(feature = "w8a8", not(feature = "baseline")))]
const PROGRAM: &str = "ddim10-cfg";

const BLOB_LEN: usize = blob!().len();

#[unsafe(link_section = ".blob")]
static BLOB_BYTES: [u8; BLOB_LEN] = *blob!();

/// Arena bytes, planned at compile time from the blob itself.
const ARENA: usize = match microdiff_runtime::arena_bytes(&BLOB_BYTES) {
    Ok(n) => n,
    Err(_) => panic!("bad blob"),
};

/// Room for one sample; the reference MLP has `data_len` 8, the digits model 64.
const MAX_DATA: usize = 64;

#[entry]
fn main() -> ! {
    let mut arena = ArenaBuffer::<ARENA>::new();
    let mut out = [0.0f32; MAX_DATA];
    // Read the blob through `black_box` so the compiler cannot fold the model into constants.
    let blob: &[u8] = black_box(&BLOB_BYTES);
    let _ = black_box(run(blob, arena.as_mut_bytes(), &mut out));
    #[cfg(feature = "panic-canary")]
    {
        let table = black_box([1u8, 2, 3, 4]);
        black_box(table[black_box(7usize)]);
    }
    black_box(&out);
    loop {
        core::hint::spin_loop();
    }
}

/// The blob, validated at compile time: a blob that does not validate, or a missing program, is
/// a build error.
#[cfg(not(any(feature = "baseline", feature = "runtime-parse")))]
const MODEL: (
    microdiff_runtime::Model<'static>,
    microdiff_runtime::blob::program::Program<'static>,
) = match microdiff_runtime::Model::parse(&BLOB_BYTES) {
    Ok(m) => match m.program(PROGRAM) {
        Ok(p) => (m, p),
        Err(_) => panic!("the blob has no program PROGRAM"),
    },
    Err(_) => panic!("the blob does not validate"),
};

#[cfg(not(any(feature = "baseline", feature = "runtime-parse")))]
fn run(blob: &[u8], arena: &mut [u8], out: &mut [f32]) -> Result<(), microdiff_runtime::Error> {
    black_box(blob);
    let (model, program) = black_box(&MODEL);
    sample_into(model, *program, arena, out)
}

#[cfg(all(feature = "runtime-parse", not(feature = "baseline")))]
fn run(blob: &[u8], arena: &mut [u8], out: &mut [f32]) -> Result<(), microdiff_runtime::Error> {
    let model = microdiff_runtime::Model::parse(blob)?;
    let program = model.program(PROGRAM)?;
    sample_into(&model, program, arena, out)
}

#[cfg(not(feature = "baseline"))]
fn sample_into(
    model: &microdiff_runtime::Model<'_>,
    program: microdiff_runtime::blob::program::Program<'_>,
    arena: &mut [u8],
    out: &mut [f32],
) -> Result<(), microdiff_runtime::Error> {
    use microdiff_runtime::{SampleRequest, sample};
    let (expected, provided) = (model.data_len(), out.len());
    let out = out
        .get_mut(..expected)
        .ok_or(microdiff_runtime::Error::OutputLength { expected, provided })?;
    sample(
        model,
        program,
        arena,
        SampleRequest {
            seed: 1,
            stream: 0,
            class: 1,
        },
        out,
    )
}

#[cfg(feature = "baseline")]
fn run(blob: &[u8], arena: &mut [u8], out: &mut [f32]) -> Result<(), ()> {
    black_box((blob, arena, out, PROGRAM));
    Ok(())
}
