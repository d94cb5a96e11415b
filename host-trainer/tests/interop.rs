//! `microdiff export --format safetensors` and `microdiff import` (docs/interop.md): a run
//! exported to safetensors and imported again exports to the same blob, byte for byte (DDPM,
//! class-conditional, flow); a bad file is one error line naming the tensor or key, exit code 1,
//! and nothing written.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors, tensor::TensorView};

mod common;
use common::{bin, ok, small_run};

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("microdiff-interop-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `run` → safetensors → a new run → blob, against `run` → blob: the same bytes.
fn round_trip(dir: &Path, run: &Path) {
    let weights = dir.join("w.safetensors");
    let run2 = dir.join("run2");
    let (a, b) = (dir.join("a.mdfb"), dir.join("b.mdfb"));
    ok(bin()
        .arg("export")
        .arg(run)
        .args(["--format", "safetensors", "--out"])
        .arg(&weights));
    ok(bin().arg("import").arg(&weights).arg("--out").arg(&run2));
    ok(bin().arg("export").arg(run).arg("--out").arg(&a));
    ok(bin().arg("export").arg(&run2).arg("--out").arg(&b));
    let (a, b) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert!(a == b, "{}: the imported run's blob differs", run.display());
    // The imported run exports the same safetensors file again.
    let again = dir.join("again.safetensors");
    ok(bin()
        .arg("export")
        .arg(&run2)
        .args(["--format", "safetensors", "--out"])
        .arg(&again));
    assert_eq!(
        std::fs::read(&weights).unwrap(),
        std::fs::read(&again).unwrap()
    );
}

fn train(dir: &Path, extra: &[&str]) -> PathBuf {
    let run = dir.join("run");
    ok(bin()
        .args(["train", "--data", "moons", "--steps", "60"])
        .args(["--hidden", "32", "--ff", "64", "--blocks", "1", "--quiet"])
        .args(["--device", "cpu"])
        .args(extra)
        .arg("--out")
        .arg(&run));
    run
}

#[test]
fn a_ddpm_run_round_trips_and_its_import_samples_and_evaluates() {
    let dir = scratch("ddpm");
    let (run, _) = small_run(&dir, 60);
    round_trip(&dir, &run);
    // The imported run is a run: the blob samples, and `eval --run` reads the run.
    let b = dir.join("b.mdfb");
    ok(bin()
        .arg("sample")
        .arg(&b)
        .args(["-n", "20", "--csv"])
        .arg(dir.join("s.csv")));
    ok(bin()
        .arg("eval")
        .arg(&b)
        .args([
            "--data",
            "moons",
            "-n",
            "50",
            "--nll-n",
            "10",
            "--nll-steps",
            "4",
        ])
        .arg("--run")
        .arg(dir.join("run2")));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_conditional_run_round_trips() {
    let dir = scratch("conditional");
    let run = train(&dir, &["--conditional", "true"]);
    round_trip(&dir, &run);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_flow_run_round_trips() {
    let dir = scratch("flow");
    let run = train(&dir, &["--objective", "flow", "--ema-decay", "0"]);
    round_trip(&dir, &run);
    std::fs::remove_dir_all(&dir).ok();
}

/// A safetensors file taken apart, to put it together with one thing wrong.
#[derive(Clone)]
struct Parts {
    tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>,
    meta: HashMap<String, String>,
}

impl Parts {
    fn read(path: &Path) -> Parts {
        let file = std::fs::read(path).unwrap();
        let st = SafeTensors::deserialize(&file).unwrap();
        let (_, header) = SafeTensors::read_metadata(&file).unwrap();
        Parts {
            tensors: st
                .tensors()
                .into_iter()
                .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
                .collect(),
            meta: header.metadata().clone().unwrap(),
        }
    }
    fn bytes(&self) -> Vec<u8> {
        let views: Vec<(String, TensorView<'_>)> = self
            .tensors
            .iter()
            .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
            .collect();
        safetensors::serialize(views, Some(self.meta.clone())).unwrap()
    }
    fn tensor(&mut self, name: &str) -> &mut (String, Dtype, Vec<usize>, Vec<u8>) {
        self.tensors.iter_mut().find(|t| t.0 == name).unwrap()
    }
}

/// `microdiff import FILE --out OUT [extra]` fails with exit code 1 and one line containing
/// `says`, leaving no run and no temporary file in `out`.
#[track_caller]
fn refused(file: &Path, out: &Path, extra: &[&str], says: &[&str]) {
    let o = bin()
        .arg("import")
        .arg(file)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{}: {err}", file.display());
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    for s in says {
        assert!(err.contains(s), "{s:?} not in {err}");
    }
    for f in ["checkpoint.mdck", "run.json"] {
        assert!(
            !out.join(f).exists(),
            "{} left behind",
            out.join(f).display()
        );
    }
    assert_eq!(
        microdiff_trainer::files::temporaries(out),
        Vec::<String>::new()
    );
    if out.exists() {
        assert_eq!(
            microdiff_trainer::files::temporaries(out.parent().unwrap()),
            Vec::<String>::new()
        );
    }
}

#[test]
fn bad_files_are_refused_by_name_and_leave_nothing() {
    let dir = scratch("bad");
    let (run, _) = small_run(&dir, 30);
    let good = dir.join("w.safetensors");
    ok(bin()
        .arg("export")
        .arg(&run)
        .args(["--format", "safetensors", "--out"])
        .arg(&good));
    let base = Parts::read(&good);
    let out = dir.join("imported");
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };

    let mut p = base.clone();
    p.tensor("blocks.0.fc1.weight").0 = "blocks.0.fc1.kernel".into();
    let f = write("name.safetensors", &p.bytes());
    refused(&f, &out, &[], &["blocks.0.fc1.kernel"]);

    let mut p = base.clone();
    p.tensor("inp.weight").2 = vec![2, 32];
    let f = write("shape.safetensors", &p.bytes());
    refused(&f, &out, &[], &["inp.weight", "[2, 32]", "[32, 2]"]);

    let mut p = base.clone();
    let t = p.tensor("out.bias");
    t.1 = Dtype::F64;
    t.3 = vec![0; 16];
    let f = write("f64.safetensors", &p.bytes());
    refused(&f, &out, &[], &["out.bias", "F64"]);

    let mut p = base.clone();
    p.meta.remove("microdiff.process");
    let f = write("meta.safetensors", &p.bytes());
    refused(&f, &out, &[], &["microdiff.process", "missing"]);
    // ... which --process supplies.
    let supplied = dir.join("supplied");
    ok(bin()
        .arg("import")
        .arg(&f)
        .args(["--process", "ddpm", "--out"])
        .arg(&supplied));

    let mut p = base.clone();
    p.tensor("time.2.weight").3[8..12].copy_from_slice(&f32::NAN.to_le_bytes());
    let f = write("nan.safetensors", &p.bytes());
    refused(&f, &out, &[], &["time.2.weight", "NaN"]);

    let mut p = base.clone();
    p.meta
        .insert("microdiff.prediction".into(), "velocity".into());
    let f = write("prediction.safetensors", &p.bytes());
    refused(
        &f,
        &out,
        &[],
        &[
            "microdiff.prediction",
            "velocity",
            "take epsilon, sample, v, score",
        ],
    );

    let whole = std::fs::read(&good).unwrap();
    let f = write("truncated.safetensors", &whole[..whole.len() / 2]);
    refused(
        &f,
        &out,
        &[],
        &["truncated.safetensors", "not a valid safetensors"],
    );
    let f = write(
        "garbage.safetensors",
        b"\x10\0\0\0\0\0\0\0{\"a\": [1, 2]}   ",
    );
    refused(&f, &out, &[], &["not a valid safetensors"]);

    // A directory holding a run is kept unless --force.
    let before = std::fs::read(run.join("checkpoint.mdck")).unwrap();
    let o = bin()
        .arg("import")
        .arg(&good)
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("already holds a run") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read(run.join("checkpoint.mdck")).unwrap(), before);
    ok(bin()
        .arg("import")
        .arg(&good)
        .arg("--out")
        .arg(&run)
        .arg("--force"));
    assert!(
        !run.join("metrics.jsonl").exists(),
        "--force replaces the whole run"
    );
    assert!(!out.join("checkpoint.mdck").exists());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn safetensors_export_refuses_the_blobs_options() {
    let dir = scratch("flags");
    let (run, _) = small_run(&dir, 30);
    let f = dir.join("w.safetensors");
    let o = bin()
        .arg("export")
        .arg(&run)
        .args([
            "--format",
            "safetensors",
            "--dtype",
            "f32",
            "--sampler",
            "ddim:4",
        ])
        .arg("--out")
        .arg(&f)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--dtype, --sampler") && err.contains("--format blob"),
        "{err}"
    );
    assert!(!f.exists());
    std::fs::remove_dir_all(&dir).ok();
}
