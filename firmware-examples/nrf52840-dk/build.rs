//! Chooses the model this firmware carries (`MICRODIFF_BLOB`, `MICRODIFF_PROGRAM`; see
//! `microdiff-model-select`) and checks it fits the board before anything is compiled for the
//! device. Also puts `memory.x` where the linker finds it: cortex-m-rt's `link.x` does
//! `INCLUDE memory.x`, and the linker searches only its `-L` paths. (`nrf52840-hal` ships a
//! `memory.x` with the same map; this one keeps the layout in view and editable here, e.g. to
//! make room for a SoftDevice.)
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
            board: "the nRF52840",
            // 256 KiB of RAM less stack, RTT buffers and statics.
            arena: 200 * 1024,
            // 1 MiB of flash less the firmware (≈ 60 KiB).
            blob: 900 * 1024,
            max_data_len: 256,
        },
    );
}
