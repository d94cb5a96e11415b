//! Chooses the model this firmware carries (`MICRODIFF_BLOB`, `MICRODIFF_PROGRAM`; see
//! `microdiff-model-select`) and checks it fits the micro:bit before anything is compiled for
//! the device. Also puts `memory.x` where the linker finds it (cortex-m-rt's `link.x` does
//! `INCLUDE memory.x`).
use std::env;
use std::path::PathBuf;

use microdiff_model_select::{Budget, memory_x, select};

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    memory_x(include_bytes!("memory.x"));
    select(
        &manifest.join("../../tests/golden/digits-i8.mdfb"),
        Budget {
            board: "the micro:bit",
            // 16 KiB of RAM less this firmware's stack (high-water ≈ 7.2 KiB, float formatting
            // included) and statics, with a margin.
            arena: 6 * 1024,
            // 256 KiB of flash less the runtime and the rest of the firmware (≈ 45 KiB).
            blob: 200 * 1024,
            max_data_len: 256,
        },
    );
}
