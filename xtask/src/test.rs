//! `cargo xtask test`: the project's single test command (CI runs it via `.ci/run`).

use std::process::ExitCode;

use crate::cmd::Cmd;
use crate::ensure::Tool;
use crate::steps::{Step, run_steps};

pub const USAGE: &str = "\
Usage: cargo xtask test [--skip-install] [--quick] [-- <test-harness-args>...]

Runs, stopping at the first failure:
  ensure tools   rustup targets and components, the pinned NVRTC + ptxas pip wheels in
                 .tools/cuda, and a Python venv with pytest and numpy in .tools/python-venv,
                 installed when missing
  fmt            cargo fmt --all -- --check
  clippy         cargo clippy --workspace --all-targets --features microdiff-trainer/cuda-emu
                 -- -D warnings
  doc            RUSTDOCFLAGS='-D warnings' cargo doc --workspace --no-deps
                 --features microdiff-trainer/cuda-emu
  test           cargo test --workspace [-- <test-harness-args>...]
  integer-only   cargo test -p microdiff-runtime --lib --no-default-features --features alloc
                 (the integer-only runtime: what it lacks is refused at parse time)
  abuse          the CLI under hostile input (host-trainer/tests/abuse.rs), its table printed
  python         .tools/python-venv/bin/python -m pip install ./python (maturin builds the
                 extension in the dev profile into target/), then pytest python/tests: the
                 package's samples = the CLI's, bit for bit
  cuda           cargo xtask cuda --skip-install: every CUDA kernel compiled with NVRTC for
                 compute_70/80/90 (ptxas: no spills) and executed on the CPU emulator against
                 the CPU backend; prints kernels compiled/executed/matched (see `help cuda`)
  no_std build   cargo build -p microdiff-kernels -p microdiff-runtime --target <T>
                 (as is, and with the defmt features and without the default ones, i.e.
                 without the runtime's time-embed) for each no_std target <T>:
                 thumbv6m-none-eabi, thumbv7em-none-eabihf, riscv32imac-unknown-none-elf
  ensure QEMU    .ci/install-qemu.sh (OS packages) when qemu-system-arm/-riscv32 are missing
  conformance    every golden case on the QEMU firmware (m0, m4f, m7, riscv32) = host = golden
  kernel check   firmware-examples/qemu-kernel-check/check.sh: the Cortex-M4/M7 DSP integer
                 kernels = the portable ones, bit for bit, on ~6 700 cases on QEMU's M4F and
                 M7, and their instructions per MAC within budget (plus the M0's portable figures)
  size           firmware sizes, stack, arena, instructions/step vs expected-size.txt
  boards         cargo build --release of firmware-examples/rp2040-pico and nrf52840-dk
  size probe     cd firmware-examples/size-probe && cargo build --release
  panic-free     the size probe for the M4F and the M0, default and W8A8-only, its blob parsed
                 on the device (`runtime-parse`) and validated at compile time: no panic entry
                 point may be linked (and a deliberate one, `panic-canary`, must be caught)
  fuzz target    cd fuzz && cargo check
  your model     firmware-examples/qemu-m0-model/readme-flow.sh: the README's \"Your model on a
                 board\" commands with a short training (QEMU M0 run, Pico build, and a wrong
                 program name refused at build time)
  PyTorch to M0  firmware-examples/qemu-m0-model/interop-flow.sh: docs/interop.md's walkthrough
                 (import → W8A8 export → eval → QEMU M0), the M0's sample = the host's
  old blob on M0 firmware-examples/qemu-m0-model/compat-flow.sh: the digits golden as exported
                 before the paired QLINEAR layout and its repacked form sample alike on the M0
  lint <pkg>     cargo fmt --check && cargo clippy --release -- -D warnings, in each package
                 outside the workspace (firmware-examples/*, fuzz, python)

Options:
  --skip-install  do not check for or install tools (the toolchain already has them)
  --quick         skip the no_std cross builds, the firmware and the fuzz check
  -h, --help      print this help
  -- <args>...    passed to the test binaries, e.g. `-- --nocapture`

Ends with a summary and the line `xtask: N passed, M failed`; exits non-zero on failure.";

/// The bare-metal targets the device crates must build for.
const NO_STD_TARGETS: [&str; 3] = [
    "thumbv6m-none-eabi",
    "thumbv7em-none-eabihf",
    "riscv32imac-unknown-none-elf",
];

/// Packages outside the workspace (own target, own lock file), linted one by one.
const OUT_OF_WORKSPACE: [&str; 13] = [
    "firmware-examples/common",
    "firmware-examples/model-select",
    "firmware-examples/qemu-kernel-check",
    "firmware-examples/qemu-m0",
    "firmware-examples/qemu-m0-model",
    "firmware-examples/qemu-m4f",
    "firmware-examples/qemu-m7",
    "firmware-examples/qemu-riscv32",
    "firmware-examples/rp2040-pico",
    "firmware-examples/nrf52840-dk",
    "firmware-examples/size-probe",
    "fuzz",
    "python",
];

/// The crates that run on the device.
const DEVICE_CRATES: [&str; 2] = ["microdiff-kernels", "microdiff-runtime"];

struct Options {
    skip_install: bool,
    quick: bool,
    harness_args: Vec<String>,
}

pub fn main(args: &[String]) -> ExitCode {
    let opts = match parse(args) {
        Ok(Some(opts)) => opts,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("xtask test: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    run_steps(plan(&opts), &crate::repo_root())
}

/// `Ok(None)` means help was asked for.
fn parse(args: &[String]) -> Result<Option<Options>, String> {
    let mut opts = Options {
        skip_install: false,
        quick: false,
        harness_args: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--skip-install" => opts.skip_install = true,
            "--quick" => opts.quick = true,
            "-h" | "--help" => return Ok(None),
            "--" => {
                opts.harness_args = it.cloned().collect();
                break;
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(Some(opts))
}

fn plan(opts: &Options) -> Vec<Step> {
    let mut steps = Vec::new();

    if opts.skip_install {
        steps.push(Step::skipped("ensure tools", "--skip-install"));
    } else {
        let mut tools = vec![
            Tool::rustup_component("rustfmt"),
            Tool::rustup_component("clippy"),
            crate::cuda::cuda_tools(),
            crate::python::venv_tool(&crate::repo_root()),
        ];
        if !opts.quick {
            tools.extend(NO_STD_TARGETS.iter().map(|t| Tool::rustup_target(t)));
            tools.push(crate::firmware::qemu_tool());
        }
        steps.push(Step::ensure("ensure tools", tools));
    }

    steps.push(Step::run(
        "fmt",
        Cmd::cargo().args(["fmt", "--all", "--", "--check"]),
    ));
    steps.push(Step::run(
        "clippy",
        Cmd::cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            // The emulator-backed CUDA code and its tests are behind this feature.
            "--features",
            "microdiff-trainer/cuda-emu",
            "--",
            "-D",
            "warnings",
        ]),
    ));
    steps.push(Step::run(
        "doc",
        Cmd::cargo()
            .args(["doc", "--workspace", "--no-deps"])
            .args(["--features", "microdiff-trainer/cuda-emu"])
            .env("RUSTDOCFLAGS", "-D warnings"),
    ));
    let mut test = Cmd::cargo().args(["test", "--workspace"]);
    if !opts.harness_args.is_empty() {
        test = test.arg("--").args(opts.harness_args.iter().cloned());
    }
    steps.push(Step::run("test", test));
    // The runtime's own tests again without its default features: the integer-only build
    // (no float ops, no tiled QLINEAR layout) refuses what it lacks at parse time.
    steps.push(Step::run(
        "runtime tests, integer-only build (no default features)",
        Cmd::cargo().args([
            "test",
            "--quiet",
            "-p",
            "microdiff-runtime",
            "--lib",
            "--no-default-features",
            "--features",
            "alloc",
        ]),
    ));
    // Also inside `test`; run again so that its table of cases is printed.
    steps.push(Step::run(
        "abuse suite (the CLI under hostile input: a table of cases)",
        Cmd::cargo().args([
            "test",
            "--quiet",
            "-p",
            "microdiff-trainer",
            "--test",
            "abuse",
            "--",
            "--nocapture",
        ]),
    ));
    // The Python package: built after the workspace tests, whose dependencies it reuses; its
    // tests run the CLI those built. Host-only, so in --quick too.
    steps.push(Step::run(
        "python package (pip install ./python)",
        crate::python::install(&crate::repo_root()),
    ));
    steps.push(Step::run(
        "python tests (pytest python/tests)",
        crate::python::tests(&crate::repo_root()),
    ));
    // The CUDA tiers need no GPU, so they run in --quick too; the wheels come from `ensure`.
    steps.push(Step::run(
        "cuda (NVRTC compile + CPU emulation)",
        Cmd::cargo().args(["xtask", "cuda", "--skip-install"]),
    ));

    for target in NO_STD_TARGETS {
        let build = || {
            let mut c = Cmd::cargo().arg("build");
            for krate in DEVICE_CRATES {
                c = c.args(["-p", krate]);
            }
            c.args(["--target", target])
        };
        let defmt = DEVICE_CRATES.map(|k| format!("{k}/defmt")).join(",");
        let name = format!("no_std build {target}");
        // The defmt build also drops the default features (the runtime's `time-embed`), so
        // both configurations compile on every target.
        let name_defmt = format!("{name} +defmt -default");
        if opts.quick {
            steps.push(Step::skipped(name, "--quick"));
            steps.push(Step::skipped(name_defmt, "--quick"));
        } else {
            steps.push(Step::run(name, build()));
            steps.push(Step::run(
                name_defmt,
                build().args(["--no-default-features", "--features", &defmt]),
            ));
        }
    }
    // Packages outside the workspace, built (and, under QEMU, run) so they cannot rot.
    let extra = [
        (
            "firmware conformance (QEMU: m0, m4f, m7, riscv32)",
            crate::firmware::firmware_cmd(["conformance"]),
        ),
        (
            "kernel check (QEMU m4f, m7, m0: assembly int8 kernels = portable, instructions/MAC)",
            Cmd::new("bash").arg("firmware-examples/qemu-kernel-check/check.sh"),
        ),
        (
            "firmware size (vs expected-size.txt)",
            crate::firmware::firmware_cmd(["size", "--reuse-reports"]),
        ),
        (
            "build rp2040-pico (release)",
            Cmd::cargo()
                .args(["build", "--release"])
                .in_dir("firmware-examples/rp2040-pico"),
        ),
        (
            "build nrf52840-dk (release)",
            Cmd::cargo()
                .args(["build", "--release"])
                .in_dir("firmware-examples/nrf52840-dk"),
        ),
        (
            "size probe (thumbv7em, release)",
            Cmd::cargo()
                .args(["build", "--release"])
                .in_dir("firmware-examples/size-probe"),
        ),
        (
            "panic-free runtime (size probe M4F + M0, default and W8A8-only; canary caught)",
            crate::firmware::firmware_cmd(["panic-free"]),
        ),
        (
            "fuzz target (check)",
            Cmd::cargo().arg("check").in_dir("fuzz"),
        ),
        (
            "your model on a board (README: train, export, QEMU M0 run, Pico build)",
            Cmd::new("bash").arg("firmware-examples/qemu-m0-model/readme-flow.sh"),
        ),
        (
            "PyTorch to the M0 (docs/interop.md's walkthrough; the M0 draws the host's sample)",
            Cmd::new("bash").arg("firmware-examples/qemu-m0-model/interop-flow.sh"),
        ),
        (
            "an older W8A8 blob on the M0 (tiled layout = its paired form, bit for bit)",
            Cmd::new("bash").arg("firmware-examples/qemu-m0-model/compat-flow.sh"),
        ),
    ];
    // Their formatting and lints, which the workspace-wide fmt and clippy steps do not reach.
    let lint = |dir: &str| {
        Cmd::new("bash")
            .args([
                "-c",
                "cargo fmt --check && cargo clippy --release --quiet -- -D warnings",
            ])
            .in_dir(dir)
    };
    let extra: Vec<(String, Cmd)> = extra
        .into_iter()
        .map(|(n, c)| (n.to_string(), c))
        .chain(
            OUT_OF_WORKSPACE
                .iter()
                .map(|d| (format!("lint {d}"), lint(d))),
        )
        .collect();
    for (name, cmd) in extra {
        if opts.quick {
            steps.push(Step::skipped(name, "--quick"));
        } else {
            steps.push(Step::run(name, cmd));
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn parses_flags_and_passthrough() {
        let o = parse(&args(&["--quick", "--", "--nocapture", "--quick"]))
            .unwrap()
            .unwrap();
        assert!(o.quick && !o.skip_install);
        assert_eq!(o.harness_args, args(&["--nocapture", "--quick"]));
        assert!(parse(&args(&["--help"])).unwrap().is_none());
        assert!(parse(&args(&["--bogus"])).is_err());
    }

    #[test]
    fn plan_has_every_step() {
        let o = parse(&[]).unwrap().unwrap();
        let steps = plan(&o);
        // ensure, fmt, clippy, doc, test, integer-only, abuse, python install and tests,
        // cuda, two builds per
        // target, conformance, kernel check, size, two board builds, size probe, panic-free
        // check, fuzz check, the README's board flow, docs/interop.md's PyTorch-to-M0 flow, the
        // old-blob flow, and
        // a lint step per out-of-workspace package.
        assert_eq!(
            steps.len(),
            10 + 2 * NO_STD_TARGETS.len() + 11 + OUT_OF_WORKSPACE.len()
        );
        for t in NO_STD_TARGETS {
            assert!(USAGE.contains(t), "USAGE should list {t}");
        }
    }
}
