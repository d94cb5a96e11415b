//! Running a list of steps: headers, timing, stop at the first failure, summary.
//!
//! Every subcommand that runs more than one thing goes through [`run_steps`],
//! so all of them report the same way and end with the line CI reads:
//! `xtask: N passed, M failed`.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::cmd::Cmd;
use crate::ensure::{self, Tool};

/// Why a step failed, and the command line that shows the failure again.
pub struct Failure {
    pub message: String,
    pub reproduce: Option<String>,
}

enum Action {
    Run(Cmd),
    Ensure(Vec<Tool>),
    Skip(String),
}

/// One named unit of work, shown as one row of the summary.
pub struct Step {
    name: String,
    action: Action,
}

impl Step {
    /// Runs `cmd` from the repository root; fails when it exits non-zero.
    pub fn run(name: impl Into<String>, cmd: Cmd) -> Self {
        Step {
            name: name.into(),
            action: Action::Run(cmd),
        }
    }

    /// Checks for the tools and installs the missing ones.
    pub fn ensure(name: impl Into<String>, tools: Vec<Tool>) -> Self {
        Step {
            name: name.into(),
            action: Action::Ensure(tools),
        }
    }

    /// Listed in the output and summary, but not run.
    pub fn skipped(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Step {
            name: name.into(),
            action: Action::Skip(reason.into()),
        }
    }
}

enum Status {
    Passed(Duration),
    Failed(Duration),
    Skipped(String),
    NotRun,
}

/// Runs the steps in order from `root`, stopping at the first failure, then
/// prints the summary. Exit code 0 when none failed, 1 otherwise.
pub fn run_steps(steps: Vec<Step>, root: &Path) -> ExitCode {
    let style = Style::detect();
    let total = steps.len();
    let started = Instant::now();
    let mut rows: Vec<(String, Status)> = Vec::with_capacity(total);
    let mut failure: Option<(String, Failure)> = None;

    for (i, step) in steps.into_iter().enumerate() {
        let n = i + 1;
        if failure.is_some() {
            let status = match step.action {
                Action::Skip(reason) => Status::Skipped(reason),
                _ => Status::NotRun,
            };
            rows.push((step.name, status));
            continue;
        }
        let what = match &step.action {
            Action::Run(cmd) => format!(": {cmd}"),
            Action::Ensure(_) => String::new(),
            Action::Skip(reason) => format!(": {}", style.yellow(&format!("skipped ({reason})"))),
        };
        println!(
            "{}",
            style.bold(&format!("==> [{n}/{total}] {}", step.name)) + &what
        );
        let t0 = Instant::now();
        let result = match step.action {
            Action::Run(cmd) => cmd.run(root).map_err(|message| Failure {
                message,
                reproduce: Some(cmd.to_string()),
            }),
            Action::Ensure(tools) => ensure::ensure(&tools, root),
            Action::Skip(reason) => {
                rows.push((step.name, Status::Skipped(reason)));
                continue;
            }
        };
        let dt = t0.elapsed();
        match result {
            Ok(()) => {
                println!(
                    "    {}: {} in {:.1}s",
                    step.name,
                    style.green("ok"),
                    dt.as_secs_f64()
                );
                rows.push((step.name, Status::Passed(dt)));
            }
            Err(f) => {
                println!(
                    "    {}: {} after {:.1}s",
                    step.name,
                    style.red("FAILED"),
                    dt.as_secs_f64()
                );
                rows.push((step.name.clone(), Status::Failed(dt)));
                failure = Some((step.name, f));
            }
        }
    }

    // Summary table.
    println!();
    println!("{}", style.bold("==> summary"));
    let width = rows
        .iter()
        .map(|(name, _)| name.len())
        .max()
        .unwrap_or(0)
        .max(4);
    println!("    {:<width$}  {:<8}  {:>7}", "step", "status", "seconds");
    for (name, status) in &rows {
        let (word, secs, paint): (&str, String, fn(&Style, &str) -> String) = match status {
            Status::Passed(d) => ("ok", format!("{:.1}", d.as_secs_f64()), Style::green),
            Status::Failed(d) => ("FAILED", format!("{:.1}", d.as_secs_f64()), Style::red),
            Status::Skipped(_) => ("skipped", "-".into(), Style::yellow),
            Status::NotRun => ("not run", "-".into(), Style::yellow),
        };
        let note = match status {
            Status::Skipped(reason) => format!("  ({reason})"),
            _ => String::new(),
        };
        // Pad before painting so escape codes do not upset the columns.
        println!(
            "    {:<width$}  {}  {secs:>7}{note}",
            name,
            paint(&style, &format!("{word:<8}"))
        );
    }
    println!(
        "    {:<width$}  {:<8}  {:>7.1}",
        "total",
        "",
        started.elapsed().as_secs_f64()
    );

    let passed = rows
        .iter()
        .filter(|(_, s)| matches!(s, Status::Passed(_)))
        .count();
    let failed = rows
        .iter()
        .filter(|(_, s)| matches!(s, Status::Failed(_)))
        .count();
    if let Some((name, f)) = &failure {
        println!();
        println!("{}", style.red(&format!("xtask: step '{name}' failed")));
        for line in f.message.lines() {
            println!("    {line}");
        }
        if let Some(cmd) = &f.reproduce {
            println!(
                "xtask: reproduce from the repository root ({}) with:",
                root.display()
            );
            println!("    {cmd}");
        }
    }
    // The last line, plain, for whoever reads the log.
    println!("xtask: {passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// ANSI colour, only when stdout is a terminal and `NO_COLOR` is not set.
/// (CI logs are not terminals, so they get plain text; `CI` itself is not consulted.)
struct Style {
    on: bool,
}

impl Style {
    fn detect() -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
        Style {
            on: std::io::stdout().is_terminal() && !no_color && !dumb,
        }
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }

    fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }

    fn green(&self, s: &str) -> String {
        self.paint("32", s)
    }

    fn red(&self, s: &str) -> String {
        self.paint("1;31", s)
    }

    fn yellow(&self, s: &str) -> String {
        self.paint("33", s)
    }
}
