//! `cargo xtask`: project automation for the microdiff workspace (the
//! cargo-xtask pattern; the alias lives in `.cargo/config.toml`).
//!
//! xtask owns the project's single test command, `cargo xtask test`, which is
//! what CI runs (through `.ci/run`) and what a contributor runs before pushing:
//! tool installation (rustup targets and components), formatting, clippy,
//! rustdoc, the workspace tests, and the `no_std` cross builds of the device
//! crates for every supported bare-metal target. It also owns `.ci/run`.
//! Other automation (golden vectors, size reports, conformance runs) belongs
//! here as further subcommands.
//!
//! It is a host-only, std-only binary with no dependencies: everything is done
//! by running `cargo`, `rustup` and friends through [`std::process::Command`],
//! always from the repository root, and every failure names the command that
//! reproduces it.
//!
//! Layout:
//! - `main.rs`: the subcommand table ([`COMMANDS`]) and dispatch; adding a
//!   subcommand is one module with a `USAGE` text and a `main`, plus one entry.
//! - `steps.rs`: runs a list of steps with headers, timing, stop-at-first-failure
//!   and the summary ending in `xtask: N passed, M failed`.
//! - `ensure.rs`: checks for tools and installs the missing ones.
//! - `cmd.rs`: a command that runs and prints itself as a pasteable shell line.
//! - `test.rs`: `cargo xtask test`.
//! - `cuda.rs`: `cargo xtask cuda` (the CUDA kernels' compile and CPU-emulation tiers).
//! - `python.rs`: the Python package's venv, build (`pip install ./python`) and tests.

mod cmd;
mod cuda;
mod ensure;
mod firmware;
mod fuzz;
mod golden;
mod python;
mod steps;
mod test;

use std::path::PathBuf;
use std::process::ExitCode;

/// One `cargo xtask <name>` subcommand.
struct Subcommand {
    name: &'static str,
    /// One line for the top-level usage.
    about: &'static str,
    /// Full help, printed by `cargo xtask help <name>`.
    usage: &'static str,
    /// Gets the arguments after the subcommand's name.
    main: fn(&[String]) -> ExitCode,
}

const COMMANDS: &[Subcommand] = &[
    Subcommand {
        name: "test",
        about: "the project's full check: fmt, clippy, doc, tests, no_std cross builds (what CI runs)",
        usage: test::USAGE,
        main: test::main,
    },
    Subcommand {
        name: "cuda",
        about: "CUDA kernels without a GPU: NVRTC/ptxas compile tier and CPU-emulation tier, with a table",
        usage: cuda::USAGE,
        main: cuda::main,
    },
    Subcommand {
        name: "golden",
        about: "check the golden vectors; `--bless` regenerates them on purpose",
        usage: golden::USAGE,
        main: golden::main,
    },
    Subcommand {
        name: "conformance",
        about: "run every golden case on each QEMU firmware and print target x case match table",
        usage: firmware::CONFORMANCE_USAGE,
        main: firmware::conformance,
    },
    Subcommand {
        name: "size",
        about: "flash/RAM/stack/arena and instructions per step of each firmware; checks growth",
        usage: firmware::SIZE_USAGE,
        main: firmware::size,
    },
    Subcommand {
        name: "fuzz",
        about: "run the blob-parser fuzz target (cargo-fuzz) for a while",
        usage: fuzz::USAGE,
        main: fuzz::main,
    },
];

fn usage() -> String {
    let width = COMMANDS.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let mut s = String::from(
        "Usage: cargo xtask <command> [args...]\n\
         \n\
         Project automation for the microdiff workspace.\n\
         \n\
         Commands:\n",
    );
    for c in COMMANDS {
        s += &format!("  {:<width$}  {}\n", c.name, c.about);
    }
    s += &format!(
        "  {:<width$}  print this help, or a command's help\n\
         \n\
         Run `cargo xtask <command> --help` for a command's options.",
        "help"
    );
    s
}

fn find(name: &str) -> Option<&'static Subcommand> {
    COMMANDS.iter().find(|c| c.name == name)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(first) = args.first() else {
        eprintln!("{}", usage());
        return ExitCode::from(2);
    };
    match first.as_str() {
        "-h" | "--help" | "help" => match args.get(1) {
            None => {
                println!("{}", usage());
                ExitCode::SUCCESS
            }
            Some(name) => match find(name) {
                Some(c) => {
                    println!("{}", c.usage);
                    ExitCode::SUCCESS
                }
                None => unknown(name),
            },
        },
        name => match find(name) {
            Some(c) => (c.main)(&args[1..]),
            None => unknown(name),
        },
    }
}

fn unknown(name: &str) -> ExitCode {
    eprintln!("xtask: unknown command `{name}`\n\n{}", usage());
    ExitCode::from(2)
}

/// The workspace root: every step runs from here, whatever the caller's directory.
pub fn repo_root() -> PathBuf {
    // `cargo run` sets CARGO_MANIFEST_DIR for the process too; prefer that over the
    // compile-time value in case the checkout moved since the binary was built.
    let xtask_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    xtask_dir
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}
