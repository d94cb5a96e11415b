//! Chooses the model this firmware carries (`MICRODIFF_BLOB`, `MICRODIFF_PROGRAM`; see
//! `microdiff-model-select`) and checks it fits the Pico before anything is compiled for the
//! device. Also puts `memory.x` where the linker finds it: cortex-m-rt's `link.x` does
//! `INCLUDE memory.x`, and the linker searches only its `-L` paths.
use std::env;
use std::path::PathBuf;

use microdiff_model_select::{Budget, memory_x, select};

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    memory_x(include_bytes!("memory.x"));
    select(
        &manifest.join("../../tests/golden/digits-i8.mdfb"),
        Budget {
            board: "the Pico",
            // 264 KiB of SRAM less stack, RTT buffers and statics.
            arena: 200 * 1024,
            // 2 MiB of flash less boot2 and the firmware (≈ 60 KiB).
            blob: 1900 * 1024,
            max_data_len: 256,
        },
    );
}
