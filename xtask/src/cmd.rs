//! A command line to run, which can also print itself so a human can paste it.

use std::fmt;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// A program with its arguments and extra environment variables.
///
/// Its `Display` form is a shell command line (`VAR='x y' prog arg ...`) that
/// reproduces the run when pasted into a shell at the repository root.
#[derive(Clone, Debug)]
pub struct Cmd {
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// Subdirectory of the repository root to run in (for packages outside the workspace,
    /// whose own `.cargo/config.toml` must apply).
    subdir: Option<String>,
}

impl Cmd {
    pub fn new(program: impl Into<String>) -> Self {
        Cmd {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            subdir: None,
        }
    }

    /// Runs in `subdir` (relative to the directory given to `run`/`read`).
    pub fn in_dir(mut self, subdir: impl Into<String>) -> Self {
        self.subdir = Some(subdir.into());
        self
    }

    /// `cargo`, taken from `PATH` so that rustup's proxy picks the toolchain
    /// (it exports `RUSTUP_TOOLCHAIN` to us, so `cargo +x xtask` carries over)
    /// and so that the printed command is exactly what a human would type.
    pub fn cargo() -> Self {
        Cmd::new("cargo")
    }

    /// `PYTHON -m pip install --quiet --disable-pip-version-check`, to which the caller adds
    /// its options and what to install.
    pub fn pip_install(python: impl Into<String>) -> Self {
        Cmd::new(python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    fn command(&self, dir: &Path) -> Command {
        let mut c = Command::new(&self.program);
        let dir = match &self.subdir {
            Some(sub) => dir.join(sub),
            None => dir.to_path_buf(),
        };
        c.args(&self.args).current_dir(dir).stdin(Stdio::null());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Runs in `dir` with stdout/stderr passed through; `Err` says why it failed.
    pub fn run(&self, dir: &Path) -> Result<(), String> {
        // Our own lines must land before the child's in a shared log.
        let _ = std::io::stdout().flush();
        let status = self
            .command(dir)
            .status()
            .map_err(|e| format!("could not start `{}`: {e}", self.program))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("`{}` exited with {status}", self.program))
        }
    }

    /// Runs in `dir` capturing stdout (stderr passes through); `Err` says why it failed.
    pub fn read(&self, dir: &Path) -> Result<String, String> {
        let _ = std::io::stdout().flush();
        let out = self
            .command(dir)
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("could not start `{}`: {e}", self.program))?;
        if out.status.success() {
            String::from_utf8(out.stdout)
                .map_err(|_| format!("`{self}` printed output that is not UTF-8"))
        } else {
            Err(format!("`{self}` exited with {}", out.status))
        }
    }
}

impl Cmd {
    /// Runs in `dir`, printing stdout as it comes and also returning it (stderr passes
    /// through); `Err` carries the output so far and why it failed.
    pub fn tee(&self, dir: &Path) -> Result<String, (String, String)> {
        use std::io::BufRead;
        let _ = std::io::stdout().flush();
        let mut child = self
            .command(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                (
                    String::new(),
                    format!("could not start `{}`: {e}", self.program),
                )
            })?;
        let mut all = String::new();
        if let Some(out) = child.stdout.take() {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                println!("{line}");
                all.push_str(&line);
                all.push('\n');
            }
        }
        let status = child
            .wait()
            .map_err(|e| (all.clone(), format!("waiting for `{}`: {e}", self.program)))?;
        if status.success() {
            Ok(all)
        } else {
            Err((all, format!("`{}` exited with {status}", self.program)))
        }
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(sub) = &self.subdir {
            write!(f, "cd {} && ", shell_quote(sub))?;
        }
        for (k, v) in &self.env {
            write!(f, "{k}={} ", shell_quote(v))?;
        }
        f.write_str(&shell_quote(&self.program))?;
        for a in &self.args {
            write!(f, " {}", shell_quote(a))?;
        }
        Ok(())
    }
}

/// Quotes `s` for a POSIX shell when it contains anything beyond safe characters.
fn shell_quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./,=:+@%".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_only_when_needed() {
        let c = Cmd::cargo()
            .args(["doc", "--workspace", "--no-deps"])
            .env("RUSTDOCFLAGS", "-D warnings");
        assert_eq!(
            c.to_string(),
            "RUSTDOCFLAGS='-D warnings' cargo doc --workspace --no-deps"
        );
        let c = Cmd::new("echo").arg("it's").arg("");
        assert_eq!(c.to_string(), r"echo 'it'\''s' ''");
        let c = Cmd::cargo().args(["build", "--features", "a/defmt,b/defmt"]);
        assert_eq!(c.to_string(), "cargo build --features a/defmt,b/defmt");
    }
}
