//! Chooses the model this firmware carries (`MICRODIFF_BLOB`, `MICRODIFF_PROGRAM`; see
//! `microdiff-model-select`) and checks it fits the micro:bit before anything is compiled for
//! the device. Also puts `memory.x` where the linker finds it (cortex-m-rt's `link.x` does
//! `INCLUDE memory.x`).
use std::path::PathBuf;
use std::{env, fs};

use microdiff_model_select::{Budget, select};

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::write(out.join("memory.x"), include_bytes!("memory.x")).expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");
    select(
        &manifest.join("../../tests/golden/digits-i8.mdfb"),
        Budget {
            board: "the micro:bit",
            // 16 KiB of RAM less this firmware's stack (high-water ≈ 6.5 KiB) and statics.
            arena: 8 * 1024,
            // 256 KiB of flash less the runtime and the rest of the firmware (≈ 45 KiB).
            blob: 200 * 1024,
            max_data_len: 256,
        },
    );
}
