use std::collections::HashMap;

use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use super::metadata::{KEY_ARCHITECTURE, KEY_DATA, KEY_FORMAT, KEY_PREDICTION, KEY_PROCESS};
use super::*;

/// A small run as `train` would save it: seeded weights, an EMA that differs from them.
fn trained(classes: usize, process: Process) -> Trained {
    let model = MlpConfig {
        data_dim: 2,
        hidden: 8,
        ff: 12,
        temb: 4,
        blocks: 2,
        classes,
        act: Activation::GeluTanh,
    };
    let params = model.init(3);
    let ema: Vec<f32> = params.iter().map(|v| v * 0.5 + 0.125).collect();
    let n = params.len();
    Trained {
        info: RunInfo {
            dataset: "moons".into(),
            shape: vec![2],
            normalizer: Normalizer {
                scale: vec![0.87, 0.5],
                offset: vec![0.5, 0.25],
            },
            classes,
            data_range: Some((-1.5, 2.5)),
        },
        checkpoint: Checkpoint {
            header: RunHeader {
                config: TrainConfig {
                    model,
                    process,
                    optim: OptimConfig::default(),
                    steps: 10,
                    batch: 4,
                    seed: 3,
                    cfg_dropout: if classes > 0 { 0.1 } else { 0.0 },
                    prediction: None,
                },
                step: 10,
                losses: vec![(1, 0.5)],
            },
            params,
            ema,
            m: vec![0.0; n],
            v: vec![0.0; n],
        },
    }
}

/// The tensors and metadata of `file`, to rebuild it with changes.
struct Parts {
    tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>,
    meta: HashMap<String, String>,
}

fn parts(file: &[u8]) -> Parts {
    let st = SafeTensors::deserialize(file).unwrap();
    let (_, header) = SafeTensors::read_metadata(file).unwrap();
    Parts {
        tensors: st
            .tensors()
            .into_iter()
            .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
            .collect(),
        meta: header.metadata().clone().unwrap(),
    }
}

impl Parts {
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

fn import(file: &[u8]) -> Result<Trained, InteropError> {
    from_safetensors(file, &ImportOptions::default())
}

#[test]
fn a_run_round_trips_with_its_exported_weights() {
    for (classes, process) in [
        (0, Process::ddpm_default()),
        (3, Process::vp_default()),
        (0, Process::ve_default(4.0)),
        (2, Process::Flow),
    ] {
        let run = trained(classes, process);
        let file = to_safetensors(&run).unwrap();
        let back = import(&file).unwrap();
        assert_eq!(back.weights(), run.weights());
        assert_eq!(
            back.weights(),
            run.checkpoint.ema.as_slice(),
            "EMA exported"
        );
        assert_eq!(back.config().model, run.config().model);
        assert_eq!(back.config().process, run.config().process);
        assert_eq!(back.info, run.info);
        back.config().validate().unwrap();
        assert_eq!((back.checkpoint.header.step, back.config().steps), (1, 1));
        // Exported again: the same file, byte for byte (the header's keys are sorted).
        assert_eq!(to_safetensors(&back).unwrap(), file);
        let meta = parts(&file).meta;
        assert_eq!(meta[KEY_FORMAT], "1");
        assert!(meta[KEY_ARCHITECTURE].contains("\"act\":\"gelu_tanh\""));
    }
    // Without an EMA the parameters are exported.
    let mut run = trained(0, Process::Flow);
    run.checkpoint.header.config.optim.ema_decay = 0.0;
    let back = import(&to_safetensors(&run).unwrap()).unwrap();
    assert_eq!(back.weights(), run.checkpoint.params.as_slice());
}

#[test]
fn tensors_follow_the_naming_table() {
    let file = to_safetensors(&trained(3, Process::ddpm_default())).unwrap();
    let st = SafeTensors::deserialize(&file).unwrap();
    let t = st.tensor("class_emb.weight").unwrap();
    assert_eq!((t.dtype(), t.shape()), (Dtype::F32, &[4usize, 8][..]));
    assert_eq!(st.tensor("blocks.1.fc2.weight").unwrap().shape(), [8, 12]);
    assert_eq!(st.tensor("out.bias").unwrap().shape(), [2]);
    assert_eq!(st.len(), 6 + 1 + 12 + 4);
}

/// Checks that importing `file` fails with a message containing every one of `words`.
#[track_caller]
fn refused(file: &[u8], words: &[&str]) {
    let e = import(file).expect_err("import refused");
    let m = e.to_string();
    assert!(!m.contains('\n'), "one line: {m}");
    for w in words {
        assert!(m.contains(w), "{w:?} not in {m:?}");
    }
}

#[test]
fn bad_tensors_are_refused_by_name() {
    let file = to_safetensors(&trained(0, Process::ddpm_default())).unwrap();
    let base = parts(&file);

    let mut p = clone(&base);
    p.tensor("blocks.1.fc1.bias").0 = "blocks.1.fc1.b".into();
    refused(&p.bytes(), &["blocks.1.fc1.b", "not a parameter"]);

    let mut p = clone(&base);
    p.tensors.retain(|t| t.0 != "norm.weight");
    refused(&p.bytes(), &["norm.weight", "missing", "[8]"]);

    let mut p = clone(&base);
    p.tensor("time.0.weight").2 = vec![4, 8];
    refused(&p.bytes(), &["time.0.weight", "[4, 8]", "[8, 4]"]);

    let mut p = clone(&base);
    let t = p.tensor("inp.bias");
    t.1 = Dtype::F64;
    t.3 = t.3.chunks(4).flat_map(|_| 0.25f64.to_le_bytes()).collect();
    refused(&p.bytes(), &["inp.bias", "F64", "F32"]);

    for bad in [f32::NAN, f32::INFINITY] {
        let mut p = clone(&base);
        p.tensor("out.weight").3[4..8].copy_from_slice(&bad.to_le_bytes());
        refused(&p.bytes(), &["out.weight", "non-finite", "index 1"]);
    }

    // A conditional file for an unconditional architecture: its table is unknown.
    let mut p = clone(&base);
    p.tensors.push((
        "class_emb.weight".into(),
        Dtype::F32,
        vec![1, 8],
        vec![0; 32],
    ));
    refused(&p.bytes(), &["class_emb.weight"]);
}

fn clone(p: &Parts) -> Parts {
    Parts {
        tensors: p.tensors.clone(),
        meta: p.meta.clone(),
    }
}

#[test]
fn bad_metadata_is_refused_by_key() {
    let file = to_safetensors(&trained(0, Process::ddpm_default())).unwrap();
    let base = parts(&file);
    for key in [
        KEY_FORMAT,
        KEY_ARCHITECTURE,
        KEY_PROCESS,
        KEY_PREDICTION,
        KEY_DATA,
    ] {
        let mut p = clone(&base);
        p.meta.remove(key);
        refused(&p.bytes(), &[key, "missing"]);
    }
    let with = |key: &str, value: &str| {
        let mut p = clone(&base);
        p.meta.insert(key.into(), value.into());
        p.bytes()
    };
    refused(&with(KEY_FORMAT, "2"), &["microdiff.format", "\"2\""]);
    refused(&with(KEY_PROCESS, "{\"Ddpm\":"), &[KEY_PROCESS]);
    refused(&with(KEY_ARCHITECTURE, "[1]"), &[KEY_ARCHITECTURE]);
    refused(
        &with(
            KEY_ARCHITECTURE,
            &base.meta[KEY_ARCHITECTURE].replace("gelu_tanh", "tanh"),
        ),
        &[KEY_ARCHITECTURE, "tanh"],
    );
    refused(
        &with(KEY_DATA, "{\"shape\":[3]}"),
        &[KEY_DATA, "[3]", "data_dim 2"],
    );
    refused(
        &with(
            KEY_DATA,
            "{\"shape\":[2],\"normalizer\":{\"scale\":[0],\"offset\":[1]}}",
        ),
        &[KEY_DATA, "normalizer"],
    );
    // The architecture's own shape: refused before any tensor is read.
    refused(
        &with(
            KEY_ARCHITECTURE,
            "{\"data_dim\":2,\"hidden\":8,\"ff\":12,\"temb\":3,\"blocks\":2,\"classes\":0,\"act\":\"silu\"}",
        ),
        &[KEY_ARCHITECTURE, "temb"],
    );
}

#[test]
fn predictions_the_samplers_can_map_are_accepted_and_kept() {
    for (process, accepted) in [
        (
            Process::ddpm_default(),
            &["epsilon", "sample", "v", "score"][..],
        ),
        (
            Process::vp_default(),
            &["epsilon", "sample", "v", "score"][..],
        ),
        (
            Process::ve_default(3.0),
            &["epsilon", "sample", "score"][..],
        ),
        (Process::Flow, &["velocity", "sample"][..]),
    ] {
        let base = parts(&to_safetensors(&trained(0, process.clone())).unwrap());
        for prediction in ["epsilon", "velocity", "sample", "v", "score"] {
            let mut p = clone(&base);
            p.meta.insert(KEY_PREDICTION.into(), prediction.into());
            let got = import(&p.bytes());
            if accepted.contains(&prediction) {
                // Kept: the run exports the same file again, and says what it predicts.
                let run = got.unwrap();
                assert_eq!(run.config().prediction().name(), prediction);
                assert_eq!(
                    run.config().prediction.is_none(),
                    prediction == accepted[0],
                    "the process's own prediction is not stored"
                );
                let again = parts(&to_safetensors(&run).unwrap());
                assert_eq!(again.meta[KEY_PREDICTION], prediction);
            } else {
                let m = got.unwrap_err().to_string();
                assert!(
                    m.contains(prediction)
                        && m.contains(process.name())
                        && m.contains(&accepted.join(", ")),
                    "{m}"
                );
            }
        }
        let mut p = clone(&base);
        p.meta.insert(KEY_PREDICTION.into(), "x0".into());
        refused(&p.bytes(), &[KEY_PREDICTION, "x0"]);
    }
}

#[test]
fn options_replace_or_supply_the_metadata() {
    let file = to_safetensors(&trained(0, Process::ddpm_default())).unwrap();
    let mut p = parts(&file);
    p.meta.remove(KEY_PROCESS);
    p.meta.remove(KEY_PREDICTION);
    p.meta.remove(KEY_DATA);
    let arch = p.meta[KEY_ARCHITECTURE]
        .replace(",\"classes\":0", "")
        .replace(",\"act\":\"gelu_tanh\"", "");
    p.meta.insert(KEY_ARCHITECTURE.into(), arch);
    let bytes = p.bytes();
    let e = import(&bytes).unwrap_err().to_string();
    assert!(e.contains("classes") && e.contains("--classes"), "{e}");
    let options = ImportOptions {
        process: Some(Process::Flow),
        prediction: Some("velocity".into()),
        shape: Some(vec![1, 2]),
        normalizer: None,
        dataset: Some("mine".into()),
        classes: Some(0),
        act: Some(Activation::Relu),
    };
    let run = from_safetensors(&bytes, &options).unwrap();
    assert_eq!(run.config().process, Process::Flow);
    assert_eq!(run.config().model.act, Activation::Relu);
    assert_eq!(run.info.shape, [1, 2]);
    assert_eq!(run.info.dataset, "mine");
    assert_eq!(run.info.normalizer, Normalizer::identity());
    assert_eq!(run.info.data_range, None);
}

#[test]
fn processes_parse_by_name_or_json() {
    use super::metadata::parse_process;
    assert_eq!(parse_process("ddpm").unwrap(), Process::ddpm_default());
    assert_eq!(parse_process("\"Flow\"").unwrap(), Process::Flow);
    let ve = Process::ve_default(5.0);
    assert_eq!(
        parse_process(&serde_json::to_string(&ve).unwrap()).unwrap(),
        ve
    );
    assert!(parse_process("ve").unwrap_err().contains("sigma_max"));
    assert!(parse_process("edm").unwrap_err().contains("edm"));
}

/// Fuzz-style: every truncation, and a flipped bit at many places, is an error or a valid
/// run, never a panic.
#[test]
fn damaged_files_never_panic() {
    let file = to_safetensors(&trained(2, Process::vp_default())).unwrap();
    for cut in 0..file.len() {
        assert!(import(&file[..cut]).is_err(), "cut at {cut}");
    }
    let step = (file.len() / 997).max(1);
    for at in (0..file.len()).step_by(step) {
        for bit in [0, 3, 7] {
            let mut b = file.clone();
            b[at] ^= 1 << bit;
            let _ = import(&b);
        }
    }
    for junk in [
        &b""[..],
        b"\xff\xff\xff\xff\xff\xff\xff\xff",
        b"\x02\0\0\0\0\0\0\0{}",
    ] {
        assert!(import(junk).is_err());
    }
    let e = import(&file[..file.len() - 1]).unwrap_err().to_string();
    assert!(e.contains("not a valid safetensors file"), "{e}");
}

#[test]
fn a_written_run_opens_and_refuses_to_be_overwritten() {
    let dir = std::env::temp_dir().join(format!("microdiff-interop-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let run = import(&to_safetensors(&trained(0, Process::Flow)).unwrap()).unwrap();
    write_run(&run, &dir, false).unwrap();
    let opened = RunDir::new(&dir).open().unwrap();
    assert_eq!(opened.weights(), run.weights());
    assert_eq!(opened.info, run.info);
    let e = write_run(&run, &dir, false).unwrap_err().to_string();
    assert!(
        e.contains("already holds a run") && e.contains("--force"),
        "{e}"
    );
    std::fs::write(dir.join("metrics.jsonl"), b"{}\n").unwrap();
    write_run(&run, &dir, true).unwrap();
    assert!(
        !dir.join("metrics.jsonl").exists(),
        "the old run's files go"
    );
    assert_eq!(crate::files::temporaries(&dir), Vec::<String>::new());
    std::fs::remove_dir_all(&dir).ok();
}
