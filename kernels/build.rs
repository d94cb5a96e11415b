//! Sets `cfg(microdiff_dsp)` on targets whose integer kernels use the Arm DSP extension
//! (`SMLAD`, `SXTB16`, `SMMLAR`, `QADD`, `SSAT`; see `src/int8_fast/dsp.rs`).
//!
//! Why a build script: rustc does not set `target_feature = "dsp"` for `thumbv7em-none-eabihf`
//! (`rustc --print cfg --target thumbv7em-none-eabihf` lists no target features, and a probe
//! `#[cfg(target_feature = "dsp")]` is inactive there), although every ARMv7E-M core has the
//! extension: the "E" is the DSP extension, and LLVM enables it from the triple. So the target
//! triple decides:
//!
//! * `thumbv7em*` (Cortex-M4, M7): always.
//! * `thumbv8m.main*` (Cortex-M33, M35P, M55): only with `-C target-feature=+dsp`, because the
//!   extension is optional there.
//! * everything else (`thumbv6m`, `thumbv7m`, `riscv32*`, the host): never, and the portable
//!   kernels of `int8` run.
//!
//! It also sets `cfg(microdiff_armv6m)` for Armv6-M (`thumbv6m*`: Cortex-M0, M0+, M1) and
//! Armv8-M Baseline (`thumbv8m.base*`: Cortex-M23), which have no 32×32→64 multiply and only
//! eight low registers for most instructions: there `int8::wide_mul` multiplies by 16-bit
//! halves and `int8_fast` runs the `MULS` kernel of `src/int8_fast/armv6m.rs`.
use std::env;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(microdiff_dsp)");
    println!("cargo::rustc-check-cfg=cfg(microdiff_armv6m)");
    println!("cargo::rerun-if-changed=build.rs");
    let target = env::var("TARGET").unwrap_or_default();
    let features = env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    let has_dsp_feature = features.split(',').any(|f| f == "dsp");
    if target.starts_with("thumbv7em") || (target.starts_with("thumbv8m.main") && has_dsp_feature) {
        println!("cargo::rustc-cfg=microdiff_dsp");
    }
    if target.starts_with("thumbv6m") || target.starts_with("thumbv8m.base") {
        println!("cargo::rustc-cfg=microdiff_armv6m");
    }
}
