//! The Python package (`python/`, `pip install ./python`): a virtual environment in
//! `.tools/python-venv` with pytest and numpy, the package built into it by pip (maturin, the
//! extension module in the dev profile), and its tests (`python/tests`, against the CLI).
//!
//! The build runs in the workspace's target directory with `python/Cargo.toml`'s dev profile,
//! which copies the workspace's: most dependencies `cargo test --workspace` compiled are
//! reused, so after the workspace tests the build compiles pyo3, numpy, the few crates whose
//! features differ (num-complex, nalgebra, so microdiff-trainer too) and the module: 1 to 2
//! minutes on 2 cores, against about 3.5 from an empty target directory.

use std::path::Path;

use crate::cmd::Cmd;
use crate::ensure::Tool;

/// The virtual environment, relative to the repository root.
pub const VENV: &str = ".tools/python-venv";
/// Its interpreter, relative to the repository root.
const PYTHON: &str = ".tools/python-venv/bin/python";

/// The interpreter's absolute path: a relative program path would be looked up from wherever
/// `cargo xtask` was started, not from the root the steps run in.
fn python(root: &Path) -> String {
    root.join(PYTHON).display().to_string()
}

/// What the tests need besides the package (which brings numpy itself; installed up front so
/// that building the package needs nothing new from PyPI but maturin).
const TEST_DEPS: [&str; 2] = ["pytest", "numpy"];

/// The virtual environment with pytest and numpy.
pub fn venv_tool(root: &Path) -> Tool {
    let check = |root: &Path| {
        if !root.join(PYTHON).is_file() {
            return Ok(false);
        }
        let imports = format!("import {}", TEST_DEPS.join(", "));
        Ok(Cmd::new(python(root))
            .args(["-c", &imports])
            .read(root)
            .is_ok())
    };
    let create = Cmd::new("python3").args(["-m", "venv", VENV]);
    let install = Cmd::pip_install(python(root)).args(TEST_DEPS);
    Tool::new(
        format!("Python venv in {VENV} (pytest, numpy)"),
        check,
        vec![create.clone(), install.clone()],
        format!(
            "create it with `{create} && {install}` (needs python3 with venv and pip, and \
             access to PyPI), or rerun with --skip-install and the python steps fail"
        ),
    )
}

/// `pip install ./python` into the venv: maturin (from PyPI, in pip's build isolation) builds
/// the extension in the dev profile into the workspace's target directory.
pub fn install(root: &Path) -> Cmd {
    Cmd::pip_install(python(root))
        .args(["--config-settings=build-args=--profile dev", "./python"])
        .env(
            "CARGO_TARGET_DIR",
            root.join("target").display().to_string(),
        )
}

/// `pytest python/tests -q` with the venv's interpreter (the tests run the CLI with `cargo
/// run`, built by then).
pub fn tests(root: &Path) -> Cmd {
    Cmd::new(python(root)).args(["-m", "pytest", "python/tests", "-q"])
}
