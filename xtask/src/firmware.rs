//! `cargo xtask conformance` and `cargo xtask size`: the firmware examples under QEMU.
//!
//! Both run the `firmware` binary of the conformance crate (`tests/src/bin/firmware.rs`), which
//! owns the logic; these wrappers make sure QEMU is installed first.

use std::process::ExitCode;

use crate::cmd::Cmd;
use crate::ensure::{Tool, ensure};

pub const CONFORMANCE_USAGE: &str = "\
Usage: cargo xtask conformance [m0|m4f|m7|riscv32 ...]

Builds the QEMU firmware examples (all, or those named), runs every golden case on each under
QEMU, and prints a table target x case -> match / MISMATCH, with the first differing element and
both values on a mismatch. Exits non-zero on any mismatch. Installs QEMU when missing.";

pub const SIZE_USAGE: &str = "\
Usage: cargo xtask size [--bless | --json]

Builds each QEMU firmware and its `baseline` variant and prints text / data / bss, the
runtime's flash share, arena bytes, stack high-water mark, RAM use against the modelled MCU and
instructions per denoising step (QEMU -icount). Fails when a build grows more than 5% over its
checked-in expected-size.txt; --bless rewrites those files. --json prints one JSON object per
target instead of the table (target, flash_bytes, static_ram_bytes, stack_bytes, arena_bytes,
runtime_and_runner_flash_bytes, runtime_flash_bytes_w8a8, macs_per_eval_digits,
instructions_per_sample_f32_digits_cfg10, instructions_per_mac_f32, macs_per_eval_w8a8_digits,
instructions_per_sample_w8a8_digits_cfg10, instructions_per_mac_w8a8,
and docs/zoo.md's device columns: instructions_per_sample_{vae,vae_w8a8,hvae,rbm_gibbs10,
rbm_gibbs50,rbm_w8a8_gibbs10,rbm_w8a8_gibbs50}_{digits,8gaussians} and
instructions_per_sample_diffusion_dpmpp2m10_8gaussians).";

/// QEMU's system emulators, installed from the OS packages by `.ci/install-qemu.sh`.
pub fn qemu_tool() -> Tool {
    Tool::new(
        "QEMU (qemu-system-arm, qemu-system-riscv32)",
        |dir: &std::path::Path| {
            Ok(Cmd::new("qemu-system-arm")
                .arg("--version")
                .read(dir)
                .is_ok()
                && Cmd::new("qemu-system-riscv32")
                    .arg("--version")
                    .read(dir)
                    .is_ok())
        },
        vec![Cmd::new("bash").arg(".ci/install-qemu.sh")],
        "install qemu-system-arm and qemu-system-misc with your OS package manager",
    )
}

/// `cargo run -p microdiff-conformance --bin firmware -- ARGS`.
pub fn firmware_cmd<I: IntoIterator<Item = S>, S: Into<String>>(args: I) -> Cmd {
    Cmd::cargo()
        .args([
            "run",
            "--quiet",
            "-p",
            "microdiff-conformance",
            "--bin",
            "firmware",
            "--",
        ])
        .args(args)
}

fn run(args: Vec<String>) -> ExitCode {
    let root = crate::repo_root();
    if let Err(f) = ensure(&[qemu_tool()], &root) {
        eprintln!("xtask: {}", f.message);
        return ExitCode::FAILURE;
    }
    match firmware_cmd(args).run(&root) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

pub fn conformance(args: &[String]) -> ExitCode {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{CONFORMANCE_USAGE}");
        return ExitCode::SUCCESS;
    }
    run(std::iter::once("conformance".to_string())
        .chain(args.iter().cloned())
        .collect())
}

pub fn size(args: &[String]) -> ExitCode {
    match args {
        [] => run(vec!["size".into()]),
        [a] if a == "--bless" || a == "--json" => run(vec!["size".into(), a.clone()]),
        [a] if a == "-h" || a == "--help" => {
            println!("{SIZE_USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{SIZE_USAGE}");
            ExitCode::from(2)
        }
    }
}
