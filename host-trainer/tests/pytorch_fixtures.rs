//! Models trained in PyTorch, not here (`python/fixtures/`, made by `train_tiny.py`; CI needs no
//! torch): imported, their forward matches PyTorch's on fixed inputs, and their samples at the
//! default sampler reach the sliced W2 target on the data they were trained on — for networks
//! predicting ε, x₀ (`sample`) and v, the last two sampled through the prediction map.

use std::path::{Path, PathBuf};

use microdiff_trainer::backend::cpu::Cpu;
use microdiff_trainer::interop::{self, ImportOptions};
use microdiff_trainer::model::Mlp;
use serde_json::Value;

mod common;
use common::{bin, ok};

/// The bound on the imported forward, relative to the reference output vector:
/// `max_i |ours_i − ref_i| / max_i |ref_i|` per case. (Element by element the errors are below
/// 1e-5 too, but an output element near zero makes that measure depend on the last bit of a
/// sum, which differs between CPUs' GEMM paths.)
const MAX_RELATIVE_ERROR: f64 = 1e-5;

/// The fixtures: ε-prediction (unconditional and conditional), x₀- and v-prediction.
const STEMS: [&str; 4] = ["tiny-eps", "tiny-cond", "tiny-x0", "tiny-v"];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../python/fixtures")
        .join(name)
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("microdiff-fixtures-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Imports `stem.safetensors` and runs its network (the trainer's f32 forward on the CPU) on
/// every case of `stem-expected.json`; returns the largest relative error (per case, as
/// [`MAX_RELATIVE_ERROR`] defines it) against the float64 reference, and against PyTorch's
/// float32 output.
fn forward_errors(stem: &str) -> (f64, f64) {
    let bytes = std::fs::read(fixture(&format!("{stem}.safetensors"))).unwrap();
    let trained = interop::from_safetensors(&bytes, &ImportOptions::default()).unwrap();
    let expected: Value =
        serde_json::from_slice(&std::fs::read(fixture(&format!("{stem}-expected.json"))).unwrap())
            .unwrap();
    let config = trained.config().model;
    let d = config.data_dim;
    let null_class = config.classes as f32; // row `classes` of the embedding
    let cases = expected["cases"].as_array().unwrap();
    assert!(cases.len() >= 8, "{stem}: too few cases");
    let floats = |v: &Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let (mut x, mut t, mut c) = (Vec::new(), Vec::new(), Vec::new());
    for case in cases {
        x.extend(floats(&case["x"]).iter().map(|&v| v as f32));
        t.push(case["t"].as_f64().unwrap() as f32);
        c.push(case["class"].as_f64().map_or(null_class, |k| k as f32));
    }
    let mlp = Mlp::new(config);
    let mut acts = mlp.activations(&Cpu, cases.len());
    mlp.forward(&Cpu, &trained.weights().to_vec(), &mut acts, &x, &t, &c);
    let (mut vs_f64, mut vs_f32) = (0f64, 0f64);
    for (case, ours) in cases.iter().zip(acts.out.chunks_exact(d)) {
        for (key, worst) in [("out_f64", &mut vs_f64), ("out", &mut vs_f32)] {
            let reference = floats(&case[key]);
            let scale = reference.iter().fold(0f64, |m, v| m.max(v.abs()));
            for (&a, b) in ours.iter().zip(&reference) {
                *worst = worst.max((f64::from(a) - b).abs() / scale);
            }
        }
    }
    (vs_f64, vs_f32)
}

#[test]
fn the_imported_forward_matches_pytorch() {
    for stem in STEMS {
        let (vs_f64, vs_f32) = forward_errors(stem);
        eprintln!(
            "{stem}: largest relative error {vs_f64:.2e} (float64), {vs_f32:.2e} (PyTorch f32)"
        );
        assert!(
            vs_f64 <= MAX_RELATIVE_ERROR && vs_f32 <= MAX_RELATIVE_ERROR,
            "{stem}: relative error {vs_f64:e} against float64, {vs_f32:e} against PyTorch f32"
        );
    }
}

/// `microdiff import` → `export` (defaults) → `eval --data tiny-data.csv --json`: the sliced
/// W2 over its noise floor.
fn sliced_w2_ratio(stem: &str) -> f64 {
    let dir = scratch(stem);
    let (run, blob) = (dir.join("run"), dir.join("m.mdfb"));
    ok(bin()
        .arg("import")
        .arg(fixture(&format!("{stem}.safetensors")))
        .arg("--out")
        .arg(&run));
    ok(bin().arg("export").arg(&run).arg("--out").arg(&blob));
    let out = ok(bin()
        .arg("eval")
        .arg(&blob)
        .arg("--data")
        .arg(fixture("tiny-data.csv"))
        .args(["-n", "3000", "--json"]));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let m = &doc["metrics"];
    assert!(m["samples"].as_u64().unwrap() >= 1000, "{doc}");
    m["sliced_w2"]["ratio"].as_f64().unwrap()
}

#[test]
fn imported_models_sample_their_data_at_the_default_sampler() {
    // tiny-cond is sampled with the held-out rows' classes (eval's rule for conditional models);
    // tiny-x0 and tiny-v through programs that map their outputs to ε (crate::prediction).
    for stem in STEMS {
        let ratio = sliced_w2_ratio(stem);
        eprintln!("{stem}: sliced W2 = {ratio:.2} x floor");
        assert!(
            ratio <= 2.0,
            "{stem}: sliced W2 {ratio:.2} x floor (target <= 2)"
        );
    }
}

/// An imported x₀ network exports with its prediction in the blob, but is not trained further
/// (microdiff trains ε / velocity networks only): a clear error, and the run left as it was.
#[test]
fn an_imported_x0_network_is_not_trained_further() {
    let dir = scratch("x0-resume");
    let run = dir.join("run");
    ok(bin()
        .arg("import")
        .arg(fixture("tiny-x0.safetensors"))
        .arg("--out")
        .arg(&run));
    let before = std::fs::read(run.join("checkpoint.mdck")).unwrap();
    let out = bin()
        .args(["train", "--resume", "--steps", "10", "--out"])
        .arg(&run)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("predicts sample") && err.contains("epsilon"),
        "{err}"
    );
    assert!(std::fs::read(run.join("checkpoint.mdck")).unwrap() == before);
    let blob = dir.join("m.mdfb");
    ok(bin().arg("export").arg(&run).arg("--out").arg(&blob));
    let inspect = ok(bin().arg("inspect").arg(&blob));
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(text.contains("predicting sample"), "{text}");
    std::fs::remove_dir_all(&dir).ok();
}
