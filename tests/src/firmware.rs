//! The host side of firmware conformance: build each QEMU firmware, run it, parse its report
//! (the format is defined in `firmware-examples/common/src/lib.rs`), and compare every case
//! with the golden digest and with the host runtime's own output; measure ELF section sizes.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use object::{Object, ObjectSection, ObjectSymbol};

use crate::golden::{self, Case};

/// A firmware target run under QEMU.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Short name (`m0`, `m4f`, `m7`, `riscv32`).
    pub name: &'static str,
    /// Package folder under `firmware-examples/`.
    pub dir: &'static str,
    /// The rustup target it builds for.
    pub triple: &'static str,
    /// What it emulates.
    pub machine: &'static str,
    /// RAM of the modelled MCU, for the size report.
    pub ram_bytes: u64,
    /// Flash of the modelled MCU.
    pub flash_bytes: u64,
    /// The firmware images it runs, as the package's cargo features: one (`None`), or for a
    /// small-flash board the golden set split in two (`common/second-image.txt`); each image
    /// reports the other's cases `skipped`.
    pub images: &'static [Option<&'static str>],
}

impl Target {
    /// The golden blobs image `image` links in (all of them for a one-image target).
    pub fn image_blobs(&self, image: usize) -> Vec<&'static str> {
        let second = second_image_blobs();
        golden::BLOBS
            .iter()
            .map(|(_, f)| *f)
            .filter(|f| self.images.len() < 2 || second.iter().any(|b| b == f) == (image == 1))
            .collect()
    }
}

/// The blobs of a small-flash board's second image (`firmware-examples/common/second-image.txt`,
/// also read by the firmware's build script).
pub fn second_image_blobs() -> Vec<String> {
    let path = repo_root().join("firmware-examples/common/second-image.txt");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

/// Every QEMU target, in report order.
pub const TARGETS: [Target; 4] = [
    Target {
        name: "m0",
        dir: "qemu-m0",
        triple: "thumbv6m-none-eabi",
        machine: "BBC micro:bit (Cortex-M0, soft float)",
        ram_bytes: 16 * 1024,
        flash_bytes: 256 * 1024,
        images: &[None, Some("part2")],
    },
    Target {
        name: "m4f",
        dir: "qemu-m4f",
        triple: "thumbv7em-none-eabihf",
        machine: "MPS2-AN386 (Cortex-M4F)",
        ram_bytes: 4 << 20,
        flash_bytes: 4 << 20,
        images: &[None],
    },
    Target {
        name: "m7",
        dir: "qemu-m7",
        triple: "thumbv7em-none-eabihf",
        machine: "MPS2-AN500 (Cortex-M7)",
        ram_bytes: 4 << 20,
        flash_bytes: 4 << 20,
        images: &[None],
    },
    Target {
        name: "riscv32",
        dir: "qemu-riscv32",
        triple: "riscv32imac-unknown-none-elf",
        machine: "QEMU virt (RV32IMAC)",
        ram_bytes: 64 * 1024,
        flash_bytes: 4 << 20,
        images: &[None],
    },
];

/// Longest a firmware run may take before it is killed.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(900);

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The package folder of `t`.
pub fn package_dir(t: &Target) -> PathBuf {
    repo_root().join("firmware-examples").join(t.dir)
}

/// The release ELF of `t`.
pub fn elf_path(t: &Target) -> PathBuf {
    package_dir(t)
        .join("target")
        .join(t.triple)
        .join("release")
        .join(t.dir)
}

/// `cargo build --release [--features F]` in the package folder (its `.cargo/config.toml`
/// picks the target and linker script).
pub fn build(t: &Target, features: Option<&str>) -> Result<(), String> {
    let mut c = Command::new("cargo");
    c.args(["build", "--release", "--quiet"])
        .current_dir(package_dir(t));
    if let Some(f) = features {
        c.args(["--features", f]);
    }
    let status = c
        .status()
        .map_err(|e| format!("{}: cannot start cargo: {e}", t.dir))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: `cargo build --release` failed ({status})",
            t.dir
        ))
    }
}

/// What a run printed and how it ended.
#[derive(Debug, Clone)]
pub struct Run {
    /// Everything the firmware wrote (semihosting stdout).
    pub stdout: String,
    /// QEMU's exit code (`None`: killed or signalled).
    pub code: Option<i32>,
    /// Wall time.
    pub seconds: f64,
}

/// Runs the release firmware built with `features` (as [`build`] built it) under QEMU through
/// the package's cargo runner.
pub fn run(t: &Target, features: Option<&str>) -> Result<Run, String> {
    let start = Instant::now();
    let mut cmd = Command::new("cargo");
    cmd.args(["run", "--release", "--quiet"]);
    if let Some(f) = features {
        cmd.args(["--features", f]);
    }
    let mut child = cmd
        .current_dir(package_dir(t))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("{}: cannot start `cargo run`: {e}", t.dir))?;
    let mut out = child.stdout.take().ok_or("no stdout pipe")?;
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let code = loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) => break status.code(),
            None if start.elapsed() > RUN_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{}: no result after {} s; killed",
                    t.dir,
                    RUN_TIMEOUT.as_secs()
                ));
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let stdout = reader.join().map_err(|_| "reader thread panicked")?;
    Ok(Run {
        stdout,
        code,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// One `case` record of a report, with its `out` and `perf` lines.
#[derive(Debug, Clone, Default)]
pub struct CaseReport {
    /// Digest the firmware computed (hex), or the error it printed.
    pub sha256: String,
    /// `match`, `MISMATCH` or `ERROR:…` as the firmware judged it.
    pub verdict: String,
    /// Output bits.
    pub out: Vec<u32>,
    /// Steps, evaluations and instructions from the `perf` line.
    pub perf: Option<(u64, u64, u64)>,
}

/// A parsed firmware report.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// `target=` of the header line.
    pub target: String,
    /// `arena` line.
    pub arena: Option<u64>,
    /// `stack` line.
    pub stack: Option<u64>,
    /// Case records by index.
    pub cases: BTreeMap<usize, CaseReport>,
    /// The ASCII digit, if printed.
    pub digit: Vec<String>,
    /// `done p/t`.
    pub done: Option<(usize, usize)>,
    /// `netperf BLOB PROGRAM instructions=N`: one network evaluation of each blob.
    pub netperf: BTreeMap<String, u64>,
}

/// Parses a firmware report; unknown lines are ignored (boards may log more).
pub fn parse_report(text: &str) -> Report {
    let mut r = Report::default();
    let mut digit_rows = 0;
    for line in text.lines() {
        if digit_rows > 0 {
            r.digit.push(line.to_string());
            digit_rows -= 1;
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok());
        match f.first().copied() {
            Some("microdiff-firmware") => {
                r.target = f
                    .iter()
                    .find_map(|s| s.strip_prefix("target="))
                    .unwrap_or("")
                    .to_string()
            }
            // The largest over the images of a multi-image run.
            Some("arena") => r.arena = r.arena.max(num(1)),
            Some("netperf") if f.len() >= 4 => {
                if let Some(n) = f[3]
                    .strip_prefix("instructions=")
                    .and_then(|v| v.parse().ok())
                {
                    r.netperf.insert(f[1].to_string(), n);
                }
            }
            Some("stack") => r.stack = r.stack.max(num(1)),
            Some("case") if f.len() >= 9 => {
                if let Some(i) = num(1) {
                    let c = r.cases.entry(i as usize).or_default();
                    let verdict = f[8..].join(" ");
                    // Another image of a multi-image run may have run this case already.
                    if verdict != "skipped" || c.verdict.is_empty() {
                        c.sha256 = f[7].to_string();
                        c.verdict = verdict;
                    }
                }
            }
            Some("out") => {
                if let Some(i) = num(1) {
                    let bits = f[2..]
                        .iter()
                        .filter_map(|h| u32::from_str_radix(h, 16).ok())
                        .collect();
                    r.cases.entry(i as usize).or_default().out = bits;
                }
            }
            Some("perf") => {
                if let Some(i) = num(1) {
                    let kv = |k: &str| {
                        f.iter()
                            .find_map(|s| s.strip_prefix(k))
                            .and_then(|v| v.parse().ok())
                    };
                    if let (Some(s), Some(e), Some(n)) =
                        (kv("steps="), kv("evals="), kv("instructions="))
                    {
                        r.cases.entry(i as usize).or_default().perf = Some((s, e, n));
                    }
                }
            }
            Some("digit") => digit_rows = 8,
            Some("done") => {
                if let Some((p, t)) = f.get(1).and_then(|s| s.split_once('/')) {
                    r.done = p.parse().ok().zip(t.parse().ok());
                }
            }
            _ => {}
        }
    }
    r
}

/// The host's output for each golden case (f32 bits), computed with the host runtime.
pub fn host_outputs(cases: &[Case]) -> Result<Vec<Vec<u32>>, String> {
    let mut blobs: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    cases
        .iter()
        .map(|c| {
            if !blobs.contains_key(&c.blob) {
                let b = std::fs::read(golden::dir().join(&c.blob))
                    .map_err(|e| format!("{}: {e}", c.blob))?;
                blobs.insert(c.blob.clone(), b);
            }
            let out = golden::run(&blobs[&c.blob], &c.program, c.spec)
                .map_err(|e| format!("{} {}: {e}", c.blob, c.program))?;
            Ok(out
                .chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect())
        })
        .collect()
}

/// How one case on one target compares.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Digest equals the golden one and the output equals the host's.
    Match,
    /// Something differs; the text says what (first differing element, both values).
    Mismatch(String),
}

/// Compares a firmware case with the golden digest and the host output.
pub fn judge(target: &Target, golden: &Case, host: &[u32], fw: Option<&CaseReport>) -> Verdict {
    let Some(fw) = fw else {
        return Verdict::Mismatch("case missing from the report".into());
    };
    if fw.verdict == "skipped" {
        return Verdict::Mismatch(format!(
            "skipped by every one of {}'s {} firmware images",
            target.name,
            target.images.len()
        ));
    }
    if fw.verdict.starts_with("ERROR") || fw.sha256 == "-" {
        return Verdict::Mismatch(fw.verdict.clone());
    }
    if fw.sha256 == golden.sha256 && fw.out == host {
        return Verdict::Match;
    }
    if fw.out.len() != host.len() {
        return Verdict::Mismatch(format!(
            "{} elements, host has {}",
            fw.out.len(),
            host.len()
        ));
    }
    match fw.out.iter().zip(host).position(|(a, b)| a != b) {
        Some(i) => Verdict::Mismatch(format!(
            "element {i}: device {} ({:#010x}), host {} ({:#010x})",
            f32::from_bits(fw.out[i]),
            fw.out[i],
            f32::from_bits(host[i]),
            host[i]
        )),
        None => Verdict::Mismatch(format!(
            "output equals the host's but its digest {} is not the golden one",
            fw.sha256
        )),
    }
}

/// Flash / RAM use of an ELF, from its allocated sections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sizes {
    /// Code and read-only data in flash (vector table, text, rodata, …).
    pub text: u64,
    /// Initialised data (in flash and in RAM).
    pub data: u64,
    /// Zero-initialised and uninitialised RAM.
    pub bss: u64,
}

impl Sizes {
    /// Flash bytes: text + data's load image.
    pub fn flash(&self) -> u64 {
        self.text + self.data
    }
    /// Static RAM bytes: data + bss.
    pub fn ram(&self) -> u64 {
        self.data + self.bss
    }
}

/// Section sizes of an ELF, grouped the way `size` groups them (by flags, not by name).
pub fn elf_sizes(path: &Path) -> Result<Sizes, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file = object::File::parse(&*bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut s = Sizes::default();
    for sec in file.sections() {
        let flags = match sec.flags() {
            object::SectionFlags::Elf { sh_flags } => sh_flags,
            _ => continue,
        };
        const ALLOC: u64 = 0x2;
        const WRITE: u64 = 0x1;
        // riscv-rt reserves the stack and heap regions as NOBITS sections: reservations, not
        // statics, so they are left out (the stack high-water mark is reported separately).
        let reservation = matches!(sec.name(), Ok(".stack" | ".heap"));
        if flags & ALLOC == 0 || sec.size() == 0 || reservation {
            continue;
        }
        match sec.kind() {
            object::SectionKind::UninitializedData | object::SectionKind::UninitializedTls => {
                s.bss += sec.size()
            }
            _ if flags & WRITE != 0 => s.data += sec.size(),
            _ => s.text += sec.size(),
        }
    }
    Ok(s)
}

/// Substrings of the symbols a panic path links in (mangled names contain them too): the
/// `#[panic_handler]` itself (`rust_begin_unwind`, kept only when something can call it) and
/// core's panic entry points.
pub const PANIC_MARKERS: [&str; 7] = [
    "rust_begin_unwind",
    "panicking",
    "panic_bounds_check",
    "slice_index_fail",
    "len_mismatch_fail",
    "unwrap_failed",
    "expect_failed",
];

/// The ELF's symbols that show a panic path is linked (see [`PANIC_MARKERS`]), sorted.
pub fn panic_symbols(path: &Path) -> Result<Vec<String>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file = object::File::parse(&*bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut found: Vec<String> = file
        .symbols()
        .filter_map(|s| s.name().ok())
        .filter(|n| PANIC_MARKERS.iter().any(|m| n.contains(m)))
        .map(str::to_string)
        .collect();
    found.sort();
    found.dedup();
    Ok(found)
}

/// Bytes of the ELF section `name` (0 if there is none).
pub fn section_size(path: &Path, name: &str) -> Result<u64, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file = object::File::parse(&*bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(file
        .sections()
        .filter(|s| s.name() == Ok(name))
        .map(|s| s.size())
        .sum())
}

#[cfg(test)]
mod tests {
    use super::*;
    use microdiff_runtime::SampleRequest;

    const REPORT: &str = "\
microdiff-firmware v1 target=m4f
arena 2304
case 0 ref.mdfb ddim10 1 0 1 aabb match
out 0 3f800000 40000000
perf 0 steps=11 evals=10 instructions=12345
netperf ref.mdfb ddim10 instructions=777
case 1 ref.mdfb ddim10 42 7 3 - ERROR:arena too small
digit 3
 1
 2
 3
 4
 5
 6
 7
 8
done 1/2
stack 6364
";

    fn case(sha: &str) -> Case {
        Case {
            blob: "ref.mdfb".into(),
            program: "ddim10".into(),
            spec: SampleRequest {
                seed: 1,
                stream: 0,
                class: 1,
            },
            sha256: sha.into(),
        }
    }

    #[test]
    fn parses_every_record() {
        let r = parse_report(REPORT);
        assert_eq!(r.target, "m4f");
        assert_eq!(
            (r.arena, r.stack, r.done),
            (Some(2304), Some(6364), Some((1, 2)))
        );
        assert_eq!(r.cases[&0].out, vec![0x3f80_0000, 0x4000_0000]);
        assert_eq!(r.cases[&0].perf, Some((11, 10, 12345)));
        assert_eq!(r.netperf["ref.mdfb"], 777);
        assert!(r.cases[&1].verdict.starts_with("ERROR"));
        assert_eq!(r.digit.len(), 8);
    }

    #[test]
    fn judges_and_names_the_first_difference() {
        let r = parse_report(REPORT);
        let host = [0x3f80_0000, 0x4000_0000];
        assert_eq!(
            judge(&TARGETS[1], &case("aabb"), &host, r.cases.get(&0)),
            Verdict::Match
        );
        let v = judge(
            &TARGETS[1],
            &case("aabb"),
            &[0x3f80_0000, 0x4000_0001],
            r.cases.get(&0),
        );
        assert!(
            matches!(&v, Verdict::Mismatch(m) if m.contains("element 1")),
            "{v:?}"
        );
        let v = judge(&TARGETS[1], &case("ffff"), &host, r.cases.get(&0));
        assert!(
            matches!(&v, Verdict::Mismatch(m) if m.contains("not the golden")),
            "{v:?}"
        );
        assert!(matches!(
            judge(&TARGETS[1], &case("aabb"), &host, r.cases.get(&1)),
            Verdict::Mismatch(_)
        ));
        assert!(matches!(
            judge(&TARGETS[1], &case("aabb"), &host, None),
            Verdict::Mismatch(_)
        ));
    }

    #[test]
    fn two_images_merge_and_a_case_no_image_ran_fails() {
        // Image 1 skips case 0 and runs case 1; image 2 the other way round.
        let text = "case 0 ref-mlp-f32.mdfb ddim10 1 0 1 - skipped\narena 100\ncase 1 digits-w8a8.mdfb ddim10-cfg 1 0 1 aabb match\nimage 2\ncase 0 ref-mlp-f32.mdfb ddim10 1 0 1 aabb match\narena 60\ncase 1 digits-w8a8.mdfb ddim10-cfg 1 0 1 - skipped\n";
        let r = parse_report(text);
        assert_eq!(r.cases[&0].verdict, "match");
        assert_eq!(r.cases[&1].verdict, "match");
        assert_eq!(r.arena, Some(100));
        let m0 = TARGETS.iter().find(|t| t.name == "m0").unwrap();
        let r = parse_report("case 0 ref-mlp-f32.mdfb ddim10 1 0 1 - skipped\n");
        assert!(matches!(
            judge(m0, &case("aabb"), &[], r.cases.get(&0)),
            Verdict::Mismatch(m) if m.contains("every one of m0's 2")
        ));
        // The split: every golden blob in exactly one of the m0's images, all in the others'.
        let (one, two) = (m0.image_blobs(0), m0.image_blobs(1));
        assert!(!one.is_empty() && !two.is_empty());
        for (_, f) in golden::BLOBS {
            assert!(one.contains(&f) != two.contains(&f), "{f}");
            assert!(TARGETS[1].image_blobs(0).contains(&f));
        }
    }
}
