//! What the CLI test files share: the binary, running it, a small trained run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `microdiff` binary under test.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_microdiff"))
}

/// Runs `c` and returns its output, failing the test (with its stderr) unless it succeeded.
pub fn ok(c: &mut Command) -> Output {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A small moons run trained for `steps` into `dir/run` and exported to `dir/m.mdfb`.
#[allow(dead_code)] // Not every test file uses it.
pub fn small_run(dir: &Path, steps: u32) -> (PathBuf, PathBuf) {
    let run = dir.join("run");
    ok(bin()
        .args(["train", "--data", "moons", "--steps", &steps.to_string()])
        .args(["--hidden", "32", "--ff", "64", "--blocks", "1", "--quiet"])
        .args(["--device", "cpu", "--out"])
        .arg(&run));
    let blob = dir.join("m.mdfb");
    ok(bin().arg("export").arg(&run).arg("--out").arg(&blob));
    (run, blob)
}
