//! The abuse suite: the `microdiff` CLI under hostile arguments and inputs (issue #12).
//!
//! Each case runs the real binary against a scratch directory holding a trained run, its blob
//! and malformed inputs (CSV, NPY, PNG folders, TOML), and must: exit with the expected code,
//! say why in one line on stderr (naming what is wrong), never print `panicked`, leave no
//! temporary file behind, write nothing where it was refused, and leave the good run and blob
//! byte-identical. The table of cases is printed (`cargo test -p microdiff-trainer --test abuse
//! -- --nocapture`; `cargo xtask test` runs it so) and documented in docs/trainer.md.
//!
//! [`full_and_read_only_disks`] mounts a 16 KiB and a read-only tmpfs where the machine allows
//! it (root) and trains and exports there. Covered elsewhere: a second writer into a running
//! run and kill-then-resume (`tests/cli.rs`), a reader that closes the pipe early
//! (`tests/cli.rs`).

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::bin;

/// One hostile invocation: its arguments (`{R}` the run, `{B}` its blob, `{D}` the scratch
/// directory, `{F}` a path that must stay absent), the exit code and a piece of the message.
struct Case {
    group: &'static str,
    args: &'static str,
    code: i32,
    says: &'static str,
}

#[rustfmt::skip]
const CASES: &[Case] = &[
    // Malformed data files and folders.
    Case { group: "data", args: "train --data {D}/ragged.csv --out {F}", code: 1, says: "line 2: expected 2 values, found 1" },
    Case { group: "data", args: "train --data {D}/text.csv --out {F}", code: 1, says: "is not a number" },
    Case { group: "data", args: "train --data {D}/empty.csv --out {F}", code: 1, says: "no samples" },
    Case { group: "data", args: "train --data {D}/nan.csv --out {F}", code: 1, says: "NaN is not finite" },
    Case { group: "data", args: "train --data {D}/huge-values.csv --out {F}", code: 1, says: "beyond ±2^60" },
    Case { group: "data", args: "train --data {D}/bad.npy --out {F}", code: 1, says: "expected magic" },
    Case { group: "data", args: "train --data {D}/trunc.npy --out {F}", code: 1, says: "runs past the end of the file" },
    Case { group: "data", args: "train --data {D}/short.npy --out {F}", code: 1, says: "needs 32 data bytes, found 8" },
    Case { group: "data", args: "train --data {D}/huge-shape.npy --out {F}", code: 1, says: "overflows" },
    Case { group: "data", args: "train --data {D}/wide.npy --out {F}", code: 1, says: "at most 4 dimensions of at most 65535" },
    Case { group: "data", args: "train --data {D}/pngs-empty --out {F}", code: 1, says: "no samples" },
    Case { group: "data", args: "train --data {D}/pngs-bad --out {F}", code: 1, says: "Invalid PNG signature" },
    Case { group: "data", args: "train --data {D}/no-such.csv --out {F}", code: 1, says: "no such file or folder" },
    // Malformed settings files.
    Case { group: "toml", args: "train --config {D}/unknown.toml --out {F}", code: 1, says: "line 2, column 1: unknown field `bogus`" },
    Case { group: "toml", args: "train --config {D}/wrong-type.toml --out {F}", code: 1, says: "line 1, column 9: invalid type" },
    Case { group: "toml", args: "train --config {D}/broken.toml --out {F}", code: 1, says: "line 1, column 9:" },
    // Zero, huge and non-finite values.
    Case { group: "values", args: "train --data moons --checkpoint-every 0 --out {F}", code: 1, says: "--checkpoint-every 0" },
    Case { group: "values", args: "train --data moons --threads 100000 --out {F}", code: 1, says: "expected 1..=256" },
    Case { group: "values", args: "train --data moons --batch 0 --out {F}", code: 1, says: "batch and steps must be > 0" },
    Case { group: "values", args: "train --data moons --steps 18446744073709551615 --out {F}", code: 1, says: "at most 1000000000" },
    Case { group: "values", args: "train --data moons --hidden 70000 --out {F}", code: 1, says: "must be at most 16384" },
    Case { group: "values", args: "train --data moons --hidden 18446744073709551615 --out {F}", code: 1, says: "must be at most 16384" },
    Case { group: "values", args: "train --data moons --hidden 8192 --ff 16384 --out {F}", code: 1, says: "make the network smaller" },
    Case { group: "values", args: "train --data digits --hidden 32 --out {F}", code: 1, says: "narrower than the data (64 values per example)" },
    Case { group: "values", args: "train --data moons --objective ve --sigma-max NaN --out {F}", code: 1, says: "σ_max = NaN" },
    Case { group: "values", args: "train --data moons --objective ve --sigma-max -1 --out {F}", code: 1, says: "σ_max = -1" },
    Case { group: "values", args: "train --data moons --objective rbm --levels 300 --out {F}", code: 1, says: "--levels 300: expected 2..=256" },
    Case { group: "values", args: "train --data moons --objective rbm --levels 65536 --out {F}", code: 2, says: "65536 is not in 0..=65535" },
    Case { group: "values", args: "train --data moons --levels 16 --out {F}", code: 1, says: "applies to --objective rbm only" },
    Case { group: "values", args: "export {R} --guidance -1 --out {F}", code: 1, says: "--guidance -1: expected 0..=100" },
    Case { group: "values", args: "export {R} --guidance 1e30 --out {F}", code: 1, says: "--guidance 1e30" },
    Case { group: "values", args: "export {R} --guidance NaN --out {F}", code: 1, says: "--guidance NaN" },
    Case { group: "values", args: "export {R} --dtype q8 --out {F}", code: 1, says: "expected f32, f16, i8 or w8a8" },
    Case { group: "values", args: "sample {B} -n 0", code: 1, says: "-n 0: nothing to draw" },
    Case { group: "values", args: "sample {B} -n 18446744073709551615", code: 1, says: "past 2^32" },
    Case { group: "values", args: "sample {B} --class 3", code: 1, says: "the model is unconditional" },
    Case { group: "values", args: "eval {B} --data moons -n 0", code: 1, says: "at least 2 samples" },
    Case { group: "values", args: "eval {B} --data moons -n 1", code: 1, says: "at least 2 samples" },
    Case { group: "values", args: "eval {B} --data moons -n 10 --run {R} --nll-n 0", code: 1, says: "--nll-n 0" },
    // Paths: missing, of the wrong kind, too big, full.
    Case { group: "paths", args: "export {D}/no-such-run --out {F}", code: 1, says: "no such training run" },
    Case { group: "paths", args: "export {R}/backup.mdck --out {F}", code: 1, says: "give a run directory" },
    Case { group: "paths", args: "inspect {D}", code: 1, says: "Is a directory" },
    Case { group: "paths", args: "inspect {D}/huge.mdfb", code: 1, says: "larger than the limit" },
    Case { group: "paths", args: "inspect {D}/ragged.csv", code: 1, says: "blob truncated in header" },
    Case { group: "paths", args: "sample {B} --png {D}/x.jpg", code: 1, says: "ending in .png" },
    Case { group: "paths", args: "sample {B} -n 3 --csv /dev/full", code: 1, says: "No space left on device" },
    Case { group: "paths", args: "export {R} --out /dev/full", code: 1, says: "No space left on device" },
    Case { group: "paths", args: "train --data moons --out /dev/null/run", code: 1, says: "Not a directory" },
    // Runs: resuming with other settings, starting over without --force.
    Case { group: "runs", args: "train --resume --out {R} --seed 7", code: 1, says: "--seed 7 (the run has 0)" },
    Case { group: "runs", args: "train --resume --out {R} --steps 10", code: 1, says: "has already trained 300 steps" },
    Case { group: "runs", args: "train --data moons --out {R}", code: 1, says: "already holds a run" },
    Case { group: "runs", args: "train --resume --force --out {R}", code: 2, says: "cannot be used with" },
];

fn scratch() -> PathBuf {
    let d = std::env::temp_dir().join(format!("microdiff-abuse-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// An `.npy` file: header for `descr` and `shape` (as Python writes it), then `data` bytes.
fn npy(path: &Path, descr: &str, shape: &str, data: usize) {
    let header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    let pad = (64 - (10 + header.len() + 1) % 64) % 64;
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&((header.len() + pad + 1) as u16).to_le_bytes());
    b.extend_from_slice(header.as_bytes());
    b.extend(std::iter::repeat_n(b' ', pad));
    b.push(b'\n');
    b.resize(b.len() + data, 0);
    std::fs::write(path, b).unwrap();
}

/// The malformed inputs of [`CASES`] in `d`.
fn inputs(d: &Path) {
    let w = |name: &str, bytes: &[u8]| std::fs::write(d.join(name), bytes).unwrap();
    w("ragged.csv", b"1,2\n3\n");
    w("text.csv", b"a,b\n1,x\n");
    w("empty.csv", b"");
    w("nan.csv", b"1,nan\n2,3\n");
    // Finite, but beyond what a blob scales samples back to: was train → export → ±inf, exit 0.
    w("huge-values.csv", b"1e38,2\n-1e38,3\n5e37,1\n");
    w("bad.npy", b"garbage");
    w("trunc.npy", b"\x93NUMPY\x01\x00\xff\x00");
    npy(&d.join("short.npy"), "<f4", "(4, 2)", 8);
    npy(
        &d.join("huge-shape.npy"),
        "<f4",
        "(4611686018427387904, 4)",
        0,
    );
    npy(&d.join("wide.npy"), "<f4", "(2, 70000)", 2 * 70_000 * 4);
    std::fs::create_dir_all(d.join("pngs-empty")).unwrap();
    std::fs::create_dir_all(d.join("pngs-bad")).unwrap();
    w("pngs-bad/a.png", b"not a png");
    w("unknown.toml", b"data = \"moons\"\nbogus = 1\n");
    w("wrong-type.toml", b"steps = \"many\"\n");
    w("broken.toml", b"steps = \n");
    // Larger than any blob, sparse: refused from its length.
    std::fs::File::create(d.join("huge.mdfb"))
        .unwrap()
        .set_len(3 << 30)
        .unwrap();
}

/// Every file under `dir` with its bytes, sorted by path.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.metadata().unwrap().len() < 1 << 20 {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            } else {
                out.push((p.clone(), Vec::new()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn the_cli_under_hostile_input() {
    let d = scratch();
    let (run, blob) = common::small_run(&d, 300);
    std::fs::copy(run.join("checkpoint.mdck"), run.join("backup.mdck")).unwrap();
    inputs(&d);
    let absent = d.join("must-stay-absent");
    let before = snapshot(&d);

    let fill = |s: &str| {
        s.replace("{R}", run.to_str().unwrap())
            .replace("{B}", blob.to_str().unwrap())
            .replace("{D}", d.to_str().unwrap())
            .replace("{F}", absent.to_str().unwrap())
    };
    println!("| group | command | exit | outcome |");
    println!("|---|---|---:|---|");
    let mut failures = Vec::new();
    for c in CASES {
        let args: Vec<String> = c.args.split(' ').map(fill).collect();
        let out = bin().args(&args).env("NO_COLOR", "1").output().unwrap();
        let code = out.status.code().unwrap_or(-1);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        // One line says what is wrong (progress lines may come before it); clap's own usage
        // errors (exit 2) carry a usage block.
        let lines = err.lines().filter(|l| l.contains("error")).count();
        let mut wrong = Vec::new();
        if code != c.code {
            wrong.push(format!("exit {code}, expected {}", c.code));
        }
        if !err.contains(c.says) {
            wrong.push(format!("message lacks {:?}", c.says));
        }
        if c.code == 1 && lines != 1 {
            wrong.push(format!("{lines} error lines"));
        }
        if err.contains("panicked") {
            wrong.push("panicked".into());
        }
        if absent.exists() {
            wrong.push("wrote where it was refused".into());
            let _ = std::fs::remove_dir_all(&absent);
            let _ = std::fs::remove_file(&absent);
        }
        let shown = c.args.replace('|', "\\|");
        let first = err.lines().last().unwrap_or("").replace('|', "\\|");
        if wrong.is_empty() {
            println!("| {} | `{shown}` | {code} | ok: {first} |", c.group);
        } else {
            println!(
                "| {} | `{shown}` | {code} | **{}** |",
                c.group,
                wrong.join("; ")
            );
            failures.push(format!("{}: {} ({err})", c.args, wrong.join("; ")));
        }
    }
    // Nothing changed, nothing left behind: the run, the blob and every input are as they were.
    let after = snapshot(&d);
    let names = |s: &[(PathBuf, Vec<u8>)]| s.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
    let added: Vec<_> = names(&after)
        .into_iter()
        .filter(|p| !names(&before).contains(p) && !p.ends_with(".microdiff.lock"))
        .collect();
    assert!(added.is_empty(), "files left behind: {added:?}");
    for (p, bytes) in &before {
        let now = after.iter().find(|(q, _)| q == p).map(|(_, b)| b);
        assert_eq!(now, Some(bytes), "{} changed or vanished", p.display());
    }
    println!("{} cases, {} failed", CASES.len(), failures.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    std::fs::remove_dir_all(&d).ok();
}

/// A tmpfs mounted for the test (full or read-only disks), unmounted on drop; `None` where
/// this machine does not allow mounting (not root, no privilege): the cases are then skipped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, options: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn full_and_read_only_disks() {
    let d = std::env::temp_dir().join(format!("microdiff-disks-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let (run, _) = common::small_run(&d, 50);
    // 16 KiB (four pages): room for small files, not for the checkpoint or the 20 KB blob.
    let Some(full) = Tmpfs::mount(&d.join("full"), "size=16k") else {
        println!("full and read-only disks: skipped (cannot mount a tmpfs here)");
        return;
    };
    let expect_error = |args: &[&std::ffi::OsStr], says: &str| {
        let out = bin().args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        println!(
            "| {:?} | 1 | ok: {} |",
            args,
            err.lines().last().unwrap_or("")
        );
    };
    let os = |s: &str| std::ffi::OsString::from(s);
    // Training into a full disk: the first checkpoint cannot be written.
    let out_run = full.0.join("run");
    expect_error(
        &[
            &os("train"),
            &os("--data"),
            &os("moons"),
            &os("--steps"),
            &os("20"),
            &os("--quiet"),
            &os("--out"),
            out_run.as_os_str(),
        ],
        "No space left on device",
    );
    assert!(
        microdiff_trainer::files::temporaries(&out_run).is_empty(),
        "{:?}",
        microdiff_trainer::files::temporaries(&out_run)
    );
    assert!(!out_run.join("checkpoint.mdck").exists());
    // Exporting over an existing file on a full disk: the old file stays whole.
    let blob = full.0.join("m.mdfb");
    std::fs::write(&blob, b"the old blob").unwrap();
    expect_error(
        &[
            &os("export"),
            run.as_os_str(),
            &os("--out"),
            blob.as_os_str(),
        ],
        "No space left on device",
    );
    assert_eq!(std::fs::read(&blob).unwrap(), b"the old blob");
    assert!(
        microdiff_trainer::files::temporaries(&full.0).is_empty(),
        "{:?}",
        microdiff_trainer::files::temporaries(&full.0)
    );
    drop(full);
    // A read-only disk (binding for root too).
    let Some(ro) = Tmpfs::mount(&d.join("ro"), "ro,size=16k") else {
        println!("read-only disk: skipped (cannot mount a read-only tmpfs here)");
        return;
    };
    expect_error(
        &[
            &os("train"),
            &os("--data"),
            &os("moons"),
            &os("--steps"),
            &os("20"),
            &os("--out"),
            ro.0.join("run").as_os_str(),
        ],
        "Read-only file system",
    );
    expect_error(
        &[
            &os("export"),
            run.as_os_str(),
            &os("--out"),
            ro.0.join("m.mdfb").as_os_str(),
        ],
        "Read-only file system",
    );
    drop(ro);
    std::fs::remove_dir_all(&d).ok();
}
