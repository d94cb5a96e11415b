//! Size probe: links the microdiff runtime and runs one program (`ddim10` on the int8 reference
//! MLP; with `--features w8a8`, `ddim10-cfg` on the full-integer digits golden), so `llvm-size`
//! on the ELF gives the runtime's flash cost. The weight blob sits in its own `.blob` section
//! (see `memory.x`) so it can be left out of the count. `--features baseline` builds the same
//! `main` without the runtime calls.
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

#[cfg(not(feature = "baseline"))]
fn run(blob: &[u8], arena: &mut [u8], out: &mut [f32]) -> Result<(), microdiff_runtime::Error> {
    use microdiff_runtime::{Model, SampleRequest, sample};
    let model = Model::parse(blob)?;
    let program = model.program(PROGRAM)?;
    let (expected, provided) = (model.data_len(), out.len());
    let out = out
        .get_mut(..expected)
        .ok_or(microdiff_runtime::Error::OutputLength { expected, provided })?;
    sample(
        &model,
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
