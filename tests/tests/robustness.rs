//! Acceptance: truncated, bit-flipped and length-lying blobs — 12 000 per run, over five seed
//! models (f32, f16 and int8 weights, a time table, the integer ops) — each give
//! `Ok` or a typed error from the const planner, the parser and the sampler; never a panic.
//!
//! Most mutations also get their length and CRC fields rewritten to match, so they reach the
//! section parsers, the planner and the interpreter instead of stopping at the checksum.
//!
//! Every mutated blob that parses is also a random model for the batched host executor: its
//! samples (or its error) must be the single-sample sampler's, bit for bit.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use microdiff_conformance::mlp::{Mlp, MlpSpec};
use microdiff_conformance::textbook::{AncestralVariance, Schedule, ddim_program, ddpm_program};
use microdiff_kernels::int8::WeightLayout;
use microdiff_kernels::{Activation, Dtype};
use microdiff_runtime::blob::{crc::crc32, field};
use microdiff_runtime::{Model, SampleRequest, Sampler, Status, arena_bytes};
use proptest::prelude::*;

const CASES_PER_STRATEGY: u32 = 4_000;

/// A small class-conditional model whose programs use every instruction (EVAL with the caller's
/// and the null class, LIN with and without noise, CLAMP, STEP), in each weight dtype.
fn seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        [Dtype::F32, Dtype::F16, Dtype::I8]
            .into_iter()
            .map(|dtype| {
                let spec = MlpSpec {
                    data_len: 4,
                    hidden: 8,
                    ff: 8,
                    temb: 4,
                    blocks: 1,
                    classes: 3,
                    act: Activation::GeluTanh,
                    dtype,
                };
                let mlp = Mlp::random(spec, 3);
                let mut b = mlp.to_builder(&[2, 2], (&[2.0], &[0.5])).unwrap();
                let s = Schedule::linear(6, 0.01, 0.3);
                b.schedule(&s.rows());
                b.program(&ddpm_program(
                    "ddpm",
                    &s,
                    AncestralVariance::Beta,
                    Some(1.5),
                ));
                b.program(&ddim_program("ddim", &s, 3, 0.7, Some(1.0), Some(2.0)));
                b.build().unwrap()
            })
            .chain([
                time_table_seed(),
                microdiff_conformance::integer::tiny_w8a8_blob_in(WeightLayout::Tiles),
                microdiff_conformance::integer::tiny_w8a8_blob(),
            ])
            .collect()
    })
}

/// A model with a `TIME_TABLE` (the exporter's fold of the time MLP) and two programs whose
/// times it holds, so mutations reach the table's checks too.
fn time_table_seed() -> Vec<u8> {
    use microdiff_runtime::blob::BlobBuilder;
    use microdiff_runtime::blob::ProgramBuilder;
    use microdiff_runtime::blob::meta::{Objective, Prediction};
    use microdiff_runtime::blob::program::ClassSel;
    let mut b = BlobBuilder::new(&[2, 2], Objective::Ddpm, Prediction::Epsilon);
    b.classes(3, Some(3));
    let times = [0.5f32, 1.5, 2.5, 4.0];
    let rows: Vec<f32> = (0..16).map(|i| i as f32 * 0.01 - 0.05).collect();
    let rows = b.tensor(Dtype::F32, 4, 4, &rows).unwrap();
    let times = b.tensor(Dtype::F32, 4, 1, &times).unwrap();
    let w = b.tensor(Dtype::I8, 4, 4, &[0.3; 16]).unwrap();
    let table = b.tensor(Dtype::F16, 4, 4, &[0.1; 16]).unwrap();
    let te = b.time_table(rows, times);
    let h = b.linear(b.input(), w, None);
    let h = b.add(h, te);
    let ce = b.class_embed(table);
    let h = b.add(h, ce);
    let o = b.activation(h, Activation::Silu);
    b.output(o);
    for (name, ts) in [("a", [4.0f32, 2.5]), ("b", [1.5, 0.5])] {
        let mut p = ProgramBuilder::new(name, 2);
        p.lin(0, &[], Some(1.0)).step();
        for t in ts {
            p.eval(1, 0, ClassSel::Caller, t);
            p.eval(0, 1, ClassSel::Null, t);
            p.lin(0, &[(0, 0.5), (1, 0.5)], Some(0.1)).step();
        }
        b.program(&p);
    }
    b.build().unwrap()
}

static PARSED_OK: AtomicUsize = AtomicUsize::new(0);

fn fix_len_and_crc(b: &mut [u8]) {
    if b.len() >= field::CRC_START {
        let len = b.len() as u32;
        b[field::TOTAL_LEN].copy_from_slice(&len.to_le_bytes());
        let crc = crc32(&b[field::CRC_START..]);
        b[field::CRC].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Everything a device would do with untrusted bytes; panics only on a broken contract.
fn exercise(bytes: &[u8]) {
    let planned = arena_bytes(bytes);
    let Ok(model) = Model::parse(bytes) else {
        return;
    };
    PARSED_OK.fetch_add(1, Ordering::Relaxed);
    assert_eq!(
        planned.ok(),
        Some(model.arena_bytes()),
        "const planner disagrees with parse"
    );
    let mut arena = vec![0u8; model.arena_bytes()];
    for p in model.programs().iter() {
        let p = p.expect("validated programs iterate");
        assert_eq!(
            microdiff_runtime::program_index(bytes, p.name()),
            model.program(p.name()).map(|q| q.index),
            "the const lookup agrees with the parsed blob"
        );
        batch_agrees(&model, p);
        for class in [0, model.meta().classes.saturating_sub(1), 9] {
            let Ok(mut s) = Sampler::new(
                &model,
                p,
                &mut arena,
                SampleRequest {
                    seed: 1,
                    stream: 2,
                    class,
                },
            ) else {
                continue;
            };
            for _ in 0..200 {
                match s.step() {
                    Ok(Status::Done) | Err(_) => break,
                    Ok(Status::Running { .. }) => {}
                }
            }
            let mut out = vec![0.0; model.data_len()];
            let _ = s.output(&mut out);
        }
    }
}

/// The batched executor on three samples of `p` gives the sampler's bits, or its error for the
/// lowest failing sample.
fn batch_agrees(model: &Model, p: microdiff_runtime::blob::program::Program) {
    let classes = model.meta().classes;
    let specs: Vec<SampleRequest> = [0, classes.saturating_sub(1), 1]
        .iter()
        .enumerate()
        .map(|(i, &class)| SampleRequest {
            seed: 1,
            stream: i as u32,
            class,
        })
        .collect();
    let d = model.data_len();
    let mut arena = vec![0u8; model.arena_bytes()];
    let want: Vec<Result<Vec<u32>, microdiff_runtime::Error>> = specs
        .iter()
        .map(|&spec| {
            let mut out = vec![0.0f32; d];
            microdiff_runtime::sample(model, p, &mut arena, spec, &mut out)?;
            Ok(out.iter().map(|v| v.to_bits()).collect())
        })
        .collect();
    let mut out = vec![0.0f32; specs.len() * d];
    let got = microdiff_runtime::batch::sample_batch(model, p, &specs, &mut out, 2);
    match want.iter().position(Result::is_err) {
        None => {
            assert_eq!(got, Ok(()));
            let bits: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
            for (i, w) in want.iter().enumerate() {
                assert_eq!(w.as_ref().ok(), Some(&bits[i * d..(i + 1) * d].to_vec()));
            }
        }
        Some(i) => {
            let e = got.expect_err("the sampler failed, the batch must too");
            assert_eq!(
                (e.sample, Err(e.error)),
                (Some(i), want[i].clone().map(|_| ()))
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES_PER_STRATEGY, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn truncated(which in 0usize..5, cut in any::<prop::sample::Index>(), fix in any::<bool>()) {
        let seed = &seeds()[which];
        let mut b = seed[..cut.index(seed.len())].to_vec();
        if fix { fix_len_and_crc(&mut b); }
        exercise(&b);
        // An unfixed truncation is always rejected.
        if !fix { prop_assert!(Model::parse(&b).is_err()); }
    }

    #[test]
    fn bit_flipped(which in 0usize..5, flips in prop::collection::vec(any::<prop::sample::Index>(), 1..12), fix in any::<bool>()) {
        let mut b = seeds()[which].clone();
        let n = b.len() * 8;
        for f in &flips {
            let bit = f.index(n);
            b[bit / 8] ^= 1 << (bit % 8);
        }
        if fix { fix_len_and_crc(&mut b); }
        exercise(&b);
    }

    #[test]
    fn length_lying(which in 0usize..5, at in any::<prop::sample::Index>(), width in prop::sample::select(vec![1usize, 2, 4]),
                    value in prop_oneof![Just(0u32), Just(1), Just(u32::MAX), Just(0x7FFF_FFFF), Just(0xFFFF), Just(0x8000), any::<u32>()],
                    relative in -8i64..8, use_relative in any::<bool>()) {
        let mut b = seeds()[which].clone();
        // Aim at 4-byte aligned positions: every length, count and offset field is aligned.
        let pos = (at.index(b.len() - 4)) & !3;
        let old = u32::from_le_bytes(b[pos..pos + 4].try_into().unwrap());
        let v = if use_relative { (old as i64 + relative) as u32 } else { value };
        b[pos..pos + width].copy_from_slice(&v.to_le_bytes()[..width]);
        fix_len_and_crc(&mut b);
        exercise(&b);
    }
}

#[test]
fn unmodified_seeds_parse_and_run() {
    for s in seeds() {
        let before = PARSED_OK.load(Ordering::Relaxed);
        exercise(s);
        assert!(PARSED_OK.load(Ordering::Relaxed) > before);
    }
}

/// The fuzz target's seeds with a `TIME_TABLE` and with the integer ops (`QLINEAR` weights in
/// either layout) are this file's seeds,
/// byte for byte (rewrite them with
/// `MICRODIFF_BLESS_SEEDS=1 cargo test -p microdiff-conformance --test robustness`).
#[test]
fn the_fuzz_seeds_with_a_time_table_and_integer_ops_are_current() {
    for (file, want) in [
        ("time-table.mdfb", time_table_seed()),
        (
            "w8a8.mdfb",
            microdiff_conformance::integer::tiny_w8a8_blob_in(WeightLayout::Tiles),
        ),
        (
            "w8a8-pairs.mdfb",
            microdiff_conformance::integer::tiny_w8a8_blob(),
        ),
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/seeds/parse_blob")
            .join(file);
        if std::env::var("MICRODIFF_BLESS_SEEDS").as_deref() == Ok("1") {
            std::fs::write(&path, &want).unwrap();
        }
        assert_eq!(
            std::fs::read(&path).unwrap(),
            want,
            "{} is stale (MICRODIFF_BLESS_SEEDS=1 rewrites it)",
            path.display()
        );
    }
}
