//! `cargo xtask cuda`: the CUDA kernels' two CI tiers, with a summary table.
//!
//! * **Tools**: NVRTC and `ptxas` come from NVIDIA's pip wheels (`nvidia-cuda-nvrtc-cu12`,
//!   `nvidia-cuda-nvcc-cu12`, pinned below), installed with `python3 -m pip install --target
//!   .tools/cuda` (git-ignored), so no CUDA toolkit or GPU is needed.
//! * **Tier 1, compile**: `host-trainer/tests/cuda_compile.rs` with `LD_LIBRARY_PATH` and `PATH`
//!   pointing into the wheels and `MICRODIFF_REQUIRE_CUDA_TOOLS=1` (so it cannot skip): NVRTC
//!   for compute_70/80/90, every entry point in the PTX, `ptxas -v` without spills.
//! * **Tier 2, execute on the CPU**: the emulator's kernel tests (`cuda-emu/tests`), and the
//!   CUDA backend on the emulator against the CPU backend, op by op and whole training steps
//!   (`host-trainer/tests/cuda_emu.rs`, feature `cuda-emu`).
//!
//! The tests print `cuda-report: …` lines (`--nocapture`); this module collects them into one
//! table and fails when a kernel was not compiled for every architecture, spills, was not
//! executed on the CPU, or did not match.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::cmd::Cmd;
use crate::ensure::{Tool, ensure};

pub const USAGE: &str = "\
Usage: cargo xtask cuda [--skip-install]

The CUDA kernels' CI tiers, without a GPU:
  ensure CUDA tools  pip-installs nvidia-cuda-nvrtc-cu12 and nvidia-cuda-nvcc-cu12 (pinned)
                     into .tools/cuda when missing
  compile (tier 1)   every kernel source with NVRTC for compute_70/80/90, entry points in the
                     PTX, ptxas -v for sm_70/80/90 with no register spills
  emulate (tier 2)   every kernel run on the CPU by cuda-emu against a Rust reference (noise
                     bit for bit); the CUDA backend on the emulator against the CPU backend,
                     every op and training steps of every objective

Prints kernels compiled per architecture, registers/spills per kernel (sm_80, sm_90) and the
emulated kernels executed/matched with their max abs/rel error; exits non-zero when anything
is missing or outside tolerance.

Options:
  --skip-install  do not install the wheels (they must be in .tools/cuda already)
  -h, --help      print this help";

/// The wheels, pinned. 12.8 matches cudarc's `cuda-12080` bindings.
const WHEELS: [&str; 2] = [
    "nvidia-cuda-nvrtc-cu12==12.8.93",
    "nvidia-cuda-nvcc-cu12==12.8.93",
];
/// Where pip puts them, relative to the repository root.
const TOOLS_DIR: &str = ".tools/cuda";
/// The architectures whose ptxas usage goes into the table.
const TABLE_ARCHES: [&str; 2] = ["sm_80", "sm_90"];
/// The architectures tier 1 must have compiled for.
const COMPILE_ARCHES: [&str; 3] = ["compute_70", "compute_80", "compute_90"];

/// The two wheels in `.tools/cuda`, at the pinned versions.
pub fn cuda_tools() -> Tool {
    let check = |root: &Path| {
        let dir = root.join(TOOLS_DIR);
        let pinned = WHEELS.iter().all(|w| {
            let (name, version) = w.split_once("==").unwrap_or((w, ""));
            let dist = format!("{}-{version}.dist-info", name.replace('-', "_"));
            dir.join(dist).is_dir()
        });
        Ok(pinned && tool_paths(root).is_ok())
    };
    let install = Cmd::pip_install("python3")
        .args(["--no-deps", "--upgrade", "--target", TOOLS_DIR])
        .args(WHEELS);
    Tool::new(
        format!("CUDA NVRTC + ptxas wheels in {TOOLS_DIR}"),
        check,
        vec![install.clone()],
        format!(
            "install them with `{install}` (needs python3 with pip and access to PyPI), or \
             rerun with --skip-install to leave them out"
        ),
    )
}

/// `(directory of libnvrtc.so*, directory of ptxas)` inside `.tools/cuda`.
pub fn tool_paths(root: &Path) -> Result<(PathBuf, PathBuf), String> {
    let base = root.join(TOOLS_DIR);
    let mut lib = None;
    let mut bin = None;
    let mut stack = vec![base.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                stack.push(path);
            } else if name.starts_with("libnvrtc.so") {
                lib.get_or_insert(dir.clone());
            } else if name == "ptxas" {
                bin.get_or_insert(dir.clone());
            }
        }
    }
    match (lib, bin) {
        (Some(l), Some(b)) => Ok((l, b)),
        (None, _) => Err(format!("no libnvrtc.so* under {}", base.display())),
        (_, None) => Err(format!("no ptxas under {}", base.display())),
    }
}

/// `dir` in front of the variable's current value.
fn prepend(var: &str, dir: &Path) -> String {
    match std::env::var(var) {
        Ok(old) if !old.is_empty() => format!("{}:{old}", dir.display()),
        _ => dir.display().to_string(),
    }
}

/// The test commands, in order: tier 1 with the tools on the paths, then tier 2.
pub fn commands(root: &Path) -> Result<Vec<(&'static str, Cmd)>, String> {
    let (lib, bin) = tool_paths(root)?;
    let nocapture = ["--", "--nocapture"];
    Ok(vec![
        (
            "compile (NVRTC, ptxas)",
            Cmd::cargo()
                .args(["test", "--workspace", "--test", "cuda_compile"])
                .args(nocapture)
                .env("LD_LIBRARY_PATH", prepend("LD_LIBRARY_PATH", &lib))
                .env("PATH", prepend("PATH", &bin))
                .env("MICRODIFF_REQUIRE_CUDA_TOOLS", "1"),
        ),
        (
            "emulate kernels (cuda-emu)",
            Cmd::cargo()
                .args(["test", "-p", "microdiff-cuda-emu"])
                .args(nocapture),
        ),
        (
            "emulate backend (CudaBackend<emulator> vs CPU)",
            Cmd::cargo()
                .args([
                    "test",
                    "-p",
                    "microdiff-trainer",
                    "--features",
                    "cuda-emu",
                    "--test",
                    "cuda_emu",
                ])
                .args(nocapture),
        ),
    ])
}

pub fn main(args: &[String]) -> ExitCode {
    let mut skip_install = false;
    for a in args {
        match a.as_str() {
            "--skip-install" => skip_install = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("xtask cuda: unknown argument `{other}`\n\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let root = crate::repo_root();
    if !skip_install && let Err(f) = ensure(&[cuda_tools()], &root) {
        eprintln!("xtask cuda: {}", f.message);
        return ExitCode::FAILURE;
    }
    let cmds = match commands(&root) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("xtask cuda: {e}; run without --skip-install to install the wheels");
            return ExitCode::FAILURE;
        }
    };
    let mut output = String::new();
    for (what, cmd) in cmds {
        println!("==> cuda: {what}: {cmd}");
        match cmd.tee(&root) {
            Ok(out) => output.push_str(&out),
            Err((out, why)) => {
                output.push_str(&out);
                let report = Report::parse(&output);
                print!("{}", report.table());
                eprintln!("xtask cuda: {what} failed: {why}\nxtask cuda: reproduce with: {cmd}");
                return ExitCode::FAILURE;
            }
        }
    }
    let report = Report::parse(&output);
    print!("{}", report.table());
    match report.verdict() {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for p in problems {
                eprintln!("xtask cuda: {p}");
            }
            ExitCode::FAILURE
        }
    }
}

/// One `ptxas -v` result.
#[derive(Debug, Clone, PartialEq)]
struct Usage {
    regs: u32,
    spill_st: u32,
    spill_ld: u32,
}

/// Worst error of a compared thing over all its report lines, and whether all passed.
#[derive(Debug, Clone, PartialEq)]
struct Match {
    max_abs: f64,
    max_rel: f64,
    ok: bool,
}

/// Everything the `cuda-report:` lines said.
#[derive(Debug, Default)]
struct Report {
    /// arch (compute_XX) -> kernels compiled.
    compiled: BTreeMap<String, u32>,
    /// (kernel, sm_XX) -> usage.
    usage: BTreeMap<(String, String), Usage>,
    /// kernel -> emulator result.
    emu: BTreeMap<String, Match>,
    /// op or objective (`op:x`, `step:y`) -> backend-on-emulator result.
    backend: BTreeMap<String, Match>,
}

impl Report {
    fn parse(text: &str) -> Report {
        let mut r = Report::default();
        for line in text.lines() {
            // Test harness output may precede the report on the same line.
            let Some((_, rest)) = line.split_once("cuda-report: ") else {
                continue;
            };
            let words: Vec<&str> = rest.split_whitespace().collect();
            let kv: BTreeMap<&str, &str> = words.iter().filter_map(|w| w.split_once('=')).collect();
            let num = |k: &str| kv.get(k).and_then(|v| v.parse::<f64>().ok());
            let int = |k: &str| kv.get(k).and_then(|v| v.parse::<u32>().ok());
            let verdict_ok = words.last() == Some(&"ok");
            let merge = |map: &mut BTreeMap<String, Match>, key: String| {
                let (a, rel) = (
                    num("max_abs").unwrap_or(f64::NAN),
                    num("max_rel").unwrap_or(f64::NAN),
                );
                let e = map.entry(key).or_insert(Match {
                    max_abs: 0.0,
                    max_rel: 0.0,
                    ok: true,
                });
                // NaN (unparsable) poisons the maximum: f64::max would drop it.
                e.max_abs = if a.is_nan() { a } else { e.max_abs.max(a) };
                e.max_rel = if rel.is_nan() {
                    rel
                } else {
                    e.max_rel.max(rel)
                };
                e.ok &= verdict_ok && !a.is_nan();
            };
            match words.first().copied() {
                Some("compiled") => {
                    if let (Some(arch), Some(n)) = (kv.get("arch"), int("kernels")) {
                        r.compiled.insert((*arch).to_owned(), n);
                    }
                }
                Some("emu") => {
                    if let Some(k) = kv.get("kernel") {
                        merge(&mut r.emu, (*k).to_owned());
                    }
                }
                Some("emu-op") => {
                    if let Some(op) = kv.get("op") {
                        merge(&mut r.backend, format!("op {op}"));
                    }
                }
                Some("emu-step") => {
                    if let Some(o) = kv.get("objective") {
                        merge(&mut r.backend, format!("training step {o}"));
                    }
                }
                _ => {
                    if let (Some(k), Some(arch), Some(regs), Some(st), Some(ld)) = (
                        kv.get("kernel"),
                        kv.get("arch"),
                        int("regs"),
                        int("spill_st"),
                        int("spill_ld"),
                    ) {
                        r.usage.insert(
                            ((*k).to_owned(), (*arch).to_owned()),
                            Usage {
                                regs,
                                spill_st: st,
                                spill_ld: ld,
                            },
                        );
                    }
                }
            }
        }
        r
    }

    /// Every kernel named anywhere.
    fn kernels(&self) -> Vec<String> {
        let mut k: Vec<String> = self
            .usage
            .keys()
            .map(|(k, _)| k.clone())
            .chain(self.emu.keys().cloned())
            .collect();
        k.sort();
        k.dedup();
        k
    }

    fn table(&self) -> String {
        let mut s = String::from("\n==> cuda summary\n");
        let compiled: Vec<String> = COMPILE_ARCHES
            .iter()
            .map(|a| format!("{a}: {}", self.compiled.get(*a).copied().unwrap_or(0)))
            .collect();
        s += &format!("    kernels compiled with NVRTC  {}\n", compiled.join(", "));
        s += &format!(
            "    {:<24}  {:>16}  {:>16}  {:>10}  {:>10}  emulated\n",
            "kernel", "sm_80 regs/spill", "sm_90 regs/spill", "max_abs", "max_rel"
        );
        for k in self.kernels() {
            let usage = |arch: &str| match self.usage.get(&(k.clone(), arch.to_owned())) {
                Some(u) => format!("{} / {}+{}", u.regs, u.spill_st, u.spill_ld),
                None => "-".to_owned(),
            };
            let (abs, rel, verdict) = match self.emu.get(&k) {
                Some(m) => (
                    format!("{:.2e}", m.max_abs),
                    format!("{:.2e}", m.max_rel),
                    if m.ok { "matched" } else { "MISMATCH" },
                ),
                None => ("-".into(), "-".into(), "NOT RUN"),
            };
            s += &format!(
                "    {k:<24}  {:>16}  {:>16}  {abs:>10}  {rel:>10}  {verdict}\n",
                usage(TABLE_ARCHES[0]),
                usage(TABLE_ARCHES[1])
            );
        }
        if !self.backend.is_empty() {
            s += &format!(
                "    {:<42}  {:>10}  {:>10}  vs CPU backend\n",
                "CudaBackend on the emulator", "max_abs", "max_rel"
            );
            for (name, m) in &self.backend {
                s += &format!(
                    "    {name:<42}  {:>10.2e}  {:>10.2e}  {}\n",
                    m.max_abs,
                    m.max_rel,
                    if m.ok { "matched" } else { "MISMATCH" }
                );
            }
        }
        s
    }

    /// `Ok(summary line)` when everything is there and passed, else the problems.
    fn verdict(&self) -> Result<String, Vec<String>> {
        let mut problems = vec![];
        let kernels = self.kernels();
        if kernels.is_empty() {
            problems.push("no cuda-report lines: did the tests run with --nocapture?".into());
        }
        let expected = kernels.len() as u32;
        for arch in COMPILE_ARCHES {
            let n = self.compiled.get(arch).copied().unwrap_or(0);
            if n != expected {
                problems.push(format!("{arch}: {n} kernels compiled, expected {expected}"));
            }
        }
        for k in &kernels {
            for arch in ["sm_70", "sm_80", "sm_90"] {
                match self.usage.get(&(k.clone(), arch.to_owned())) {
                    None => problems.push(format!("{k}: no ptxas report for {arch}")),
                    Some(u) if u.spill_st + u.spill_ld > 0 => {
                        problems.push(format!("{k}: register spills on {arch}: {u:?}"));
                    }
                    Some(_) => {}
                }
            }
            match self.emu.get(k) {
                None => problems.push(format!("{k}: not executed on the CPU emulator")),
                Some(m) if !m.ok => problems.push(format!("{k}: emulator result out of tolerance")),
                Some(_) => {}
            }
        }
        for (name, m) in &self.backend {
            if !m.ok {
                problems.push(format!(
                    "{name}: CudaBackend on the emulator differs from the CPU"
                ));
            }
        }
        let matched = self.emu.values().filter(|m| m.ok).count();
        if problems.is_empty() {
            Ok(format!(
                "xtask cuda: {} kernels compiled for each of {}; {} executed on the CPU emulator, \
                 {matched} matched; {} backend comparisons matched",
                expected,
                COMPILE_ARCHES.join(", "),
                self.emu.len(),
                self.backend.len()
            ))
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
cuda-report: kernel=md_fill arch=sm_70 regs=24 spill_st=0 spill_ld=0
cuda-report: kernel=md_fill arch=sm_80 regs=24 spill_st=0 spill_ld=0
cuda-report: kernel=md_fill arch=sm_90 regs=26 spill_st=0 spill_ld=0
cuda-report: compiled arch=compute_70 kernels=1
cuda-report: compiled arch=compute_80 kernels=1
cuda-report: compiled arch=compute_90 kernels=1
test elementwise ... cuda-report: emu kernel=md_fill n=9 max_abs=0.000e0 max_rel=0.000e0 ok
cuda-report: emu kernel=md_fill n=9 max_abs=1.0e-7 max_rel=2.0e-7 ok
cuda-report: emu-op op=linear max_abs=1e-6 max_rel=1e-5 ok
cuda-report: emu-step objective=eps max_abs=1e-6 max_rel=1e-5 ok
";

    #[test]
    fn parses_and_passes_a_complete_report() {
        let r = Report::parse(SAMPLE);
        assert_eq!(r.compiled.get("compute_80"), Some(&1));
        assert_eq!(r.usage[&("md_fill".into(), "sm_90".into())].regs, 26);
        let m = &r.emu["md_fill"];
        assert_eq!((m.max_abs, m.max_rel, m.ok), (1.0e-7, 2.0e-7, true));
        assert_eq!(r.backend.len(), 2);
        let line = r.verdict().unwrap();
        assert!(
            line.contains("1 executed on the CPU emulator, 1 matched"),
            "{line}"
        );
        assert!(r.table().contains("md_fill"));
    }

    #[test]
    fn fails_on_missing_spilling_or_mismatching_kernels() {
        let spill = SAMPLE.replace("regs=26 spill_st=0", "regs=26 spill_st=8");
        assert!(Report::parse(&spill).verdict().is_err());
        let fail =
            format!("{SAMPLE}cuda-report: emu kernel=md_fill n=1 max_abs=1 max_rel=1 FAIL\n");
        assert!(Report::parse(&fail).verdict().is_err());
        let not_run =
            format!("{SAMPLE}cuda-report: kernel=md_ema arch=sm_80 regs=2 spill_st=0 spill_ld=0\n");
        let errs = Report::parse(&not_run).verdict().unwrap_err();
        assert!(
            errs.iter().any(|e| e.contains("md_ema: not executed")),
            "{errs:?}"
        );
        assert!(Report::parse("").verdict().is_err());
    }

    #[test]
    fn finds_the_tools_in_a_wheel_layout() {
        let root = std::env::temp_dir().join(format!("xtask-cuda-{}", std::process::id()));
        let lib = root.join(TOOLS_DIR).join("nvidia/cuda_nvrtc/lib");
        let bin = root.join(TOOLS_DIR).join("nvidia/cuda_nvcc/bin");
        std::fs::create_dir_all(&lib).unwrap();
        assert!(tool_paths(&root).is_err());
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(lib.join("libnvrtc.so.12"), "").unwrap();
        std::fs::write(bin.join("ptxas"), "").unwrap();
        assert_eq!(tool_paths(&root).unwrap(), (lib, bin));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
