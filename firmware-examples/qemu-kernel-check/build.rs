//! Puts the board's memory map where the linker finds it, as `memory.x` in `OUT_DIR`:
//! cortex-m-rt's `link.x` does `INCLUDE memory.x`, which the linker looks up in the working
//! directory and its `-L` paths. `thumbv7em-none-eabihf` builds for the MPS2 boards
//! (`memory-mps2.x`), `thumbv6m-none-eabi` for the micro:bit (`memory-microbit.x`), which also
//! sets `cfg(small_ram)`: 16 KiB of RAM has no room for the cases' buffers. With
//! `KERNEL_CHECK_BOARD=mps2` a `thumbv6m-none-eabi` build is for an MPS2 board instead: QEMU's
//! Cortex-M4 runs Armv6-M code, so the Armv6-M assembly meets all the cases there, while the
//! micro:bit build counts its instructions on a real Cortex-M0 model. (Neither file is called
//! `memory.x`, or the linker would find it in the package directory first.)
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let target = env::var("TARGET").expect("cargo sets TARGET");
    println!("cargo::rustc-check-cfg=cfg(small_ram)");
    println!("cargo::rerun-if-env-changed=KERNEL_CHECK_BOARD");
    let mps2 = env::var("KERNEL_CHECK_BOARD").is_ok_and(|b| b == "mps2");
    let memory: &[u8] = if target.starts_with("thumbv6m") && !mps2 {
        println!("cargo::rustc-cfg=small_ram");
        include_bytes!("memory-microbit.x")
    } else {
        include_bytes!("memory-mps2.x")
    };
    fs::write(out.join("memory.x"), memory).expect("write memory.x");
    println!("cargo::rustc-link-search={}", out.display());
    println!("cargo::rerun-if-changed=memory-mps2.x");
    println!("cargo::rerun-if-changed=memory-microbit.x");
    println!("cargo::rerun-if-changed=build.rs");
}
