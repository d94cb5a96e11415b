//! `cargo xtask golden`: checks the golden vectors, or regenerates them with `--bless`.

use std::process::ExitCode;

use crate::cmd::Cmd;

pub const USAGE: &str = "\
Usage: cargo xtask golden [--bless]

Rebuilds every golden blob in tests/golden, compares it with the checked-in file, runs every
case of tests/golden/cases.txt on the host runtime and compares output digests; prints a table
and exits 1 on any difference.

Options:
  --bless     rewrite the golden files and print what changed (only when a change of output
              bits is intended: the golden vectors are the cross-target contract)
  -h, --help  print this help";

pub fn main(args: &[String]) -> ExitCode {
    let bless = match args {
        [] => false,
        [a] if a == "--bless" => true,
        [a] if a == "-h" || a == "--help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut cmd = Cmd::cargo().args([
        "run",
        "--quiet",
        "-p",
        "microdiff-conformance",
        "--bin",
        "golden",
        "--",
    ]);
    if bless {
        cmd = cmd.arg("--bless");
    }
    match cmd.run(&crate::repo_root()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask golden: {e}");
            ExitCode::FAILURE
        }
    }
}
