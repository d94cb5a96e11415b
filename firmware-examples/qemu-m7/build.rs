//! Puts `memory.x` where the linker finds it: cortex-m-rt's `link.x` does `INCLUDE memory.x`,
//! and the linker searches only its `-L` paths, so copy it into `OUT_DIR` and add that path.
//! Also rebuild when the memory map changes.
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::write(out.join("memory.x"), include_bytes!("memory.x")).expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");
}
