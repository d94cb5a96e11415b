//! Making sure the machine has what the steps need, installing what is missing.
//!
//! Each requirement is a [`Tool`]: a check, the commands that install it, and
//! what to tell a human when that does not work. New kinds of install (an
//! apt-get package for QEMU, a pip wheel into the project-local `.tools/`)
//! are new constructors built on [`Tool::new`]; [`ensure`] stays the same.

use std::path::Path;

use crate::cmd::Cmd;
use crate::steps::Failure;

/// Answers "is it already there?"; `Err` when that cannot even be found out.
type Check = Box<dyn Fn(&Path) -> Result<bool, String>>;

/// Something a step needs on this machine, and how to get it.
pub struct Tool {
    /// What it is, for messages: `rustup target thumbv6m-none-eabi`.
    name: String,
    check: Check,
    /// Run in order, from the repository root, when the check says it is missing.
    install: Vec<Cmd>,
    /// What a human should do when it is missing and cannot be installed here.
    manual: String,
}

impl Tool {
    pub fn new(
        name: impl Into<String>,
        check: impl Fn(&Path) -> Result<bool, String> + 'static,
        install: Vec<Cmd>,
        manual: impl Into<String>,
    ) -> Self {
        Tool {
            name: name.into(),
            check: Box::new(check),
            install,
            manual: manual.into(),
        }
    }

    /// A rustup target (its `rust-std`), for cross builds.
    pub fn rustup_target(target: &str) -> Self {
        let t = target.to_owned();
        let check = move |root: &Path| {
            let list = Cmd::new("rustup")
                .args(["target", "list", "--installed"])
                .read(root)?;
            Ok(list.lines().any(|l| l.trim() == t))
        };
        let add = Cmd::new("rustup").args(["target", "add", target]);
        Tool::new(
            format!("rustup target {target}"),
            check,
            vec![add.clone()],
            format!(
                "install it with `{add}` (needs rustup and network access), \
                 or, if your toolchain is not managed by rustup but has the target, \
                 rerun with --skip-install"
            ),
        )
    }

    /// A rustup component of the active toolchain (`rustfmt`, `clippy`).
    pub fn rustup_component(component: &str) -> Self {
        let c = component.to_owned();
        let check = move |root: &Path| {
            let list = Cmd::new("rustup")
                .args(["component", "list", "--installed"])
                .read(root)?;
            // Lines look like `clippy-x86_64-unknown-linux-gnu`.
            let prefix = format!("{c}-");
            Ok(list
                .lines()
                .map(str::trim)
                .any(|l| l == c || l.starts_with(&prefix)))
        };
        let add = Cmd::new("rustup").args(["component", "add", component]);
        Tool::new(
            format!("rustup component {component}"),
            check,
            vec![add.clone()],
            format!(
                "install it with `{add}` (needs rustup and network access), \
                 or, if your toolchain is not managed by rustup but has it, \
                 rerun with --skip-install"
            ),
        )
    }
}

/// Checks each tool and installs the missing ones, saying what it does.
///
/// Fails on the first tool that cannot be checked, cannot be installed, or is
/// still missing after its install commands ran.
pub fn ensure(tools: &[Tool], root: &Path) -> Result<(), Failure> {
    // Progress goes to stderr, so `--json` output on stdout stays one object per line.
    for tool in tools {
        let cannot = |why: String, reproduce: Option<String>| Failure {
            message: format!("cannot provide {}: {why}\n{}", tool.name, tool.manual),
            reproduce,
        };
        let present =
            (tool.check)(root).map_err(|e| cannot(format!("checking failed: {e}"), None))?;
        if present {
            eprintln!("    {}: present", tool.name);
            continue;
        }
        for cmd in &tool.install {
            eprintln!("    {}: missing, installing: {cmd}", tool.name);
            cmd.run(root)
                .map_err(|e| cannot(e, Some(cmd.to_string())))?;
        }
        match (tool.check)(root) {
            Ok(true) => eprintln!("    {}: installed", tool.name),
            Ok(false) => {
                return Err(cannot(
                    "still missing after installing".into(),
                    tool.install.last().map(ToString::to_string),
                ));
            }
            Err(e) => return Err(cannot(format!("checking failed: {e}"), None)),
        }
    }
    Ok(())
}
