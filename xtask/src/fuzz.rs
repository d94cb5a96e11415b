//! `cargo xtask fuzz`: runs the blob-parser fuzz target (cargo-fuzz, libFuzzer).

use std::process::ExitCode;

use crate::cmd::Cmd;
use crate::ensure::{Tool, ensure};

pub const USAGE: &str = "\
Usage: cargo xtask fuzz [SECONDS] [--jobs N]

Runs the `parse_blob` fuzz target for SECONDS (default 600) from the seed corpus in
fuzz/seeds/parse_blob (the golden blobs, a tiny blob and one with a TIME_TABLE), keeping what it finds in
fuzz/corpus/parse_blob. Installs cargo-fuzz when missing. libFuzzer needs nightly features;
on a stable toolchain this sets RUSTC_BOOTSTRAP=1 for the fuzz build only.

Options:
  --jobs N    N fuzzing processes sharing the corpus (libFuzzer's -fork=N; default 1); the
              `#…` lines then count the executions of all of them
  -h, --help  print this help";

/// Parsed arguments: seconds and processes; `None` for `--help`.
fn parse(args: &[String]) -> Result<Option<(u64, u32)>, String> {
    let (mut seconds, mut jobs) = (None, 1u32);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => return Ok(None),
            "--jobs" => {
                let n = it.next().ok_or("--jobs needs a number")?;
                jobs = n
                    .parse()
                    .ok()
                    .filter(|&j| (1..=256).contains(&j))
                    .ok_or(format!("--jobs {n:?}: expected 1..=256"))?;
            }
            s if seconds.is_none() => {
                seconds = Some(
                    s.parse::<u64>()
                        .map_err(|_| format!("{s:?}: expected seconds"))?,
                );
            }
            s => return Err(format!("unexpected argument {s:?}")),
        }
    }
    Ok(Some((seconds.unwrap_or(600), jobs)))
}

pub fn main(args: &[String]) -> ExitCode {
    let (seconds, jobs) = match parse(args) {
        Ok(Some(p)) => p,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("xtask fuzz: {e}\n\n{USAGE}");
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
    let run = if jobs > 1 {
        run.arg(format!("-fork={jobs}"))
    } else {
        run
    };
    match run.run(&root.join("fuzz")) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask fuzz: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments() {
        assert_eq!(parse(&args(&[])), Ok(Some((600, 1))));
        assert_eq!(parse(&args(&["60"])), Ok(Some((60, 1))));
        assert_eq!(parse(&args(&["60", "--jobs", "2"])), Ok(Some((60, 2))));
        assert_eq!(parse(&args(&["--jobs", "2"])), Ok(Some((600, 2))));
        assert_eq!(parse(&args(&["--help"])), Ok(None));
        assert!(parse(&args(&["--jobs", "0"])).is_err());
        assert!(parse(&args(&["--jobs"])).is_err());
        assert!(parse(&args(&["ten"])).is_err());
        assert!(parse(&args(&["1", "2"])).is_err());
    }
}
