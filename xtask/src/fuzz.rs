//! `cargo xtask fuzz`: runs the blob-parser fuzz target (cargo-fuzz, libFuzzer).

use std::process::ExitCode;

use crate::cmd::Cmd;
use crate::ensure::{Tool, ensure};

pub const USAGE: &str = "\
Usage: cargo xtask fuzz [SECONDS]

Runs the `parse_blob` fuzz target for SECONDS (default 600) from the seed corpus in
fuzz/seeds/parse_blob (the golden blobs, a tiny blob and one with a TIME_TABLE), keeping what it finds in
fuzz/corpus/parse_blob. Installs cargo-fuzz when missing. libFuzzer needs nightly features;
on a stable toolchain this sets RUSTC_BOOTSTRAP=1 for the fuzz build only.

Options:
  -h, --help  print this help";

pub fn main(args: &[String]) -> ExitCode {
    let seconds = match args {
        [] => 600,
        [a] if a == "-h" || a == "--help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        [s] => match s.parse::<u64>() {
            Ok(n) => n,
            Err(_) => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let root = crate::repo_root();
    let cargo_fuzz = Tool::new(
        "cargo-fuzz",
        |dir: &std::path::Path| Ok(Cmd::cargo().args(["fuzz", "--version"]).read(dir).is_ok()),
        vec![Cmd::cargo().args(["install", "cargo-fuzz", "--locked"])],
        "install it with `cargo install cargo-fuzz --locked`",
    );
    if let Err(f) = ensure(&[cargo_fuzz], &root) {
        eprintln!("xtask fuzz: {}", f.message);
        return ExitCode::FAILURE;
    }
    if let Err(e) = std::fs::create_dir_all(root.join("fuzz/corpus/parse_blob")) {
        eprintln!("xtask fuzz: creating fuzz/corpus/parse_blob: {e}");
        return ExitCode::FAILURE;
    }
    let run = Cmd::cargo()
        .env("RUSTC_BOOTSTRAP", "1")
        .args([
            "fuzz",
            "run",
            "parse_blob",
            "corpus/parse_blob",
            "seeds/parse_blob",
            "--",
        ])
        .arg(format!("-max_total_time={seconds}"))
        .args(["-max_len=65536", "-print_final_stats=1"]);
    match run.run(&root.join("fuzz")) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask fuzz: {e}");
            ExitCode::FAILURE
        }
    }
}
