//! Chooses the model this firmware carries (`MICRODIFF_BLOB`, `MICRODIFF_PROGRAM`; see
//! `microdiff-model-select`) and checks it fits the board before anything is compiled for the
//! device. Also puts `memory.x` where the linker finds it: cortex-m-rt's `link.x` does
//! `INCLUDE memory.x`, and the linker searches only its `-L` paths. (`nrf52840-hal` ships a
//! `memory.x` with the same map; this one keeps the layout in view and editable here, e.g. to
//! make room for a SoftDevice.)
use std::env;
use std::path::PathBuf;

use microdiff_model_select::{Budget, memory_x, select};

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    memory_x(include_bytes!("memory.x"));
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
