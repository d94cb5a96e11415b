//! Acceptance of the batched host executor: for every golden blob and program, batched output
//! equals the single-sample runtime bit for bit — batch sizes 1, 3, 16 and 1 000, thread counts
//! 1, 2 and 3, every instruction-set version this CPU has, shared and mixed classes — and a
//! property test over random networks and random programs says the same, errors included.

use microdiff_conformance::golden::{self, BLOBS};
use microdiff_conformance::mlp::{Mlp, MlpSpec};
use microdiff_kernels::{Activation, Dtype};
use microdiff_runtime::batch::{BatchModel, Isa, Options, SampleError, sample_batch};
use microdiff_runtime::blob::ProgramBuilder;
use microdiff_runtime::blob::program::ClassSel;
use microdiff_runtime::{Error, Model, SampleRequest, Sampler};
use proptest::prelude::*;

/// Each spec through the single-sample [`Sampler`]: the output bits, or its error.
fn single(model: &Model, program: &str, specs: &[SampleRequest]) -> Vec<Result<Vec<u32>, Error>> {
    let p = model.program(program).unwrap();
    let mut arena = vec![0u8; model.arena_bytes()];
    specs
        .iter()
        .map(|&spec| {
            let mut s = Sampler::new(model, p, &mut arena, spec)?;
            s.run()?;
            let mut out = vec![0.0f32; model.data_len()];
            s.output(&mut out)?;
            Ok(out.iter().map(|v| v.to_bits()).collect())
        })
        .collect()
}

/// Asserts that a batched result agrees with the per-sample results: the same bits for every
/// sample, or the error of the lowest failing sample.
fn agree(
    want: &[Result<Vec<u32>, Error>],
    got: Result<Vec<f32>, SampleError>,
    d: usize,
    what: &str,
) {
    let first_err = want
        .iter()
        .enumerate()
        .find_map(|(i, r)| r.as_ref().err().map(|e| (i, *e)));
    match (first_err, got) {
        (None, Ok(out)) => {
            for (i, (w, g)) in want.iter().zip(out.chunks(d)).enumerate() {
                let g: Vec<u32> = g.iter().map(|v| v.to_bits()).collect();
                assert_eq!(w.as_ref().unwrap(), &g, "{what}: sample {i} differs");
            }
        }
        (Some((i, e)), Err(got)) => {
            assert_eq!(
                got,
                SampleError {
                    sample: Some(i),
                    error: e
                },
                "{what}"
            );
        }
        (want, got) => panic!("{what}: single-sample says {want:?}, batched says {got:?}"),
    }
}

fn batched(
    bm: &BatchModel,
    program: &str,
    specs: &[SampleRequest],
    options: Options,
) -> Result<Vec<f32>, SampleError> {
    let model = bm.model();
    let mut out = vec![0.0f32; specs.len() * model.data_len()];
    bm.sample(model.program(program).unwrap(), specs, &mut out, options)?;
    Ok(out)
}

/// Seeds, streams and (when `classes > 0`) classes varying from sample to sample.
fn mixed_specs(n: usize, classes: u16) -> Vec<SampleRequest> {
    (0..n)
        .map(|i| SampleRequest {
            seed: 1 + (i % 3) as u64,
            stream: i as u32,
            class: if classes > 0 {
                (i % classes as usize) as u16
            } else {
                0
            },
        })
        .collect()
}

#[test]
fn every_golden_program_batch_size_and_thread_count_matches() {
    for (_, file) in BLOBS {
        let bytes = std::fs::read(golden::dir().join(file)).unwrap();
        let model = Model::parse(&bytes).unwrap();
        let bm = BatchModel::new(&model).unwrap();
        let d = model.data_len();
        let classes = model.meta().classes;
        for p in model.programs().iter() {
            let name = p.unwrap().name();
            let specs = mixed_specs(1000, classes);
            let want = single(&model, name, &specs);
            for n in [1, 3, 16, 1000] {
                for threads in [1, 2, 3] {
                    let got = batched(&bm, name, &specs[..n], Options::threads(threads));
                    agree(
                        &want[..n],
                        got,
                        d,
                        &format!("{file} {name} n={n} threads={threads}"),
                    );
                }
            }
            // Every executor version, every tile width (32, 16, 8 and 1 samples), and one class
            // for the whole batch (the class embedding computed once).
            let shared: Vec<SampleRequest> = specs[..67]
                .iter()
                .map(|s| SampleRequest {
                    class: classes.saturating_sub(1),
                    ..*s
                })
                .collect();
            let want_shared = single(&model, name, &shared);
            for isa in Isa::available() {
                // One thread: blocks of exactly `max_block` (64 = 2·32, 48 = 32 + 16,
                // 41 = 32 + 8 + 1, 24 = 16 + 8, ...), then the remainder of 67.
                for max_block in [64, 48, 41, 24, 9, 1] {
                    let options = Options {
                        threads: 1,
                        max_block,
                        isa,
                    };
                    let what = format!("{file} {name} {} block {max_block}", isa.name());
                    agree(
                        &want[..67],
                        batched(&bm, name, &specs[..67], options),
                        d,
                        &what,
                    );
                    agree(
                        &want_shared,
                        batched(&bm, name, &shared, options),
                        d,
                        &format!("{what} shared class"),
                    );
                }
            }
        }
    }
}

#[test]
fn the_convenience_function_and_errors() {
    let bytes = std::fs::read(golden::dir().join(BLOBS[0].1)).unwrap();
    let model = Model::parse(&bytes).unwrap();
    let p = model.program("ddim10").unwrap();
    let d = model.data_len();
    let specs = mixed_specs(5, model.meta().classes);
    let mut out = vec![0.0f32; 5 * d];
    sample_batch(&model, p, &specs, &mut out, 0).unwrap();
    let want = single(&model, "ddim10", &specs);
    agree(&want, Ok(out), d, "threads = 0 runs on one thread");

    let mut short = vec![0.0f32; 5 * d - 1];
    let e = sample_batch(&model, p, &specs, &mut short, 2).unwrap_err();
    assert_eq!(
        e,
        SampleError {
            sample: None,
            error: Error::OutputLength {
                expected: 5 * d,
                provided: 5 * d - 1
            }
        }
    );
    assert_eq!(
        e.to_string(),
        Error::OutputLength {
            expected: 5 * d,
            provided: 5 * d - 1
        }
        .to_string()
    );

    let mut bad = specs.clone();
    bad[3].class = model.meta().classes;
    let mut out = vec![7.0f32; 5 * d];
    let e = sample_batch(&model, p, &bad, &mut out, 2).unwrap_err();
    assert_eq!(e.sample, Some(3));
    assert!(matches!(e.error, Error::ClassOutOfRange { .. }));
    assert!(e.to_string().starts_with("sample 3: "), "{e}");
    // The other samples are still made, and made right.
    for i in [0, 1, 2, 4] {
        let w = want[i].as_ref().unwrap();
        let g: Vec<u32> = out[i * d..(i + 1) * d]
            .iter()
            .map(|v| v.to_bits())
            .collect();
        assert_eq!(w, &g, "sample {i} next to a failed one");
    }

    let mut none: Vec<f32> = Vec::new();
    assert_eq!(sample_batch(&model, p, &[], &mut none, 3), Ok(()));
}

#[test]
fn a_sample_that_overflows_in_data_units_fails_in_both_executors() {
    use microdiff_runtime::blob::BlobBuilder;
    use microdiff_runtime::blob::meta::{Objective, Prediction};
    // The largest data scale the format allows (2^64) times a model-space value of 10^21
    // (clamped there) overflows f32 in data units.
    let mut b = BlobBuilder::new(&[3], Objective::Ddpm, Prediction::Epsilon);
    b.normalization(
        &[1.0, microdiff_runtime::blob::meta::MAX_NORM, 1.0],
        &[0.0, 0.0, 0.0],
    );
    let w = b.tensor(Dtype::F32, 3, 3, &[0.0; 9]).unwrap();
    let h = b.linear(b.input(), w, None);
    let mut p = ProgramBuilder::new("big", 2);
    p.lin(0, &[], Some(1.0)).step();
    p.eval(1, 0, ClassSel::Caller, 10.0);
    p.lin(0, &[(0, 0.0), (1, 0.0)], None);
    p.lin(0, &[(0, 1.0)], Some(0.0)).step();
    p.clamp(0, 1.0e21, 1.0e21).step();
    b.output(h).program(&p);
    let bytes = b.build().unwrap();
    // A scale beyond 2^64 is refused by the format itself.
    let mut huge = BlobBuilder::new(&[3], Objective::Ddpm, Prediction::Epsilon);
    huge.normalization(&[1.0, 3.0e38, 1.0], &[0.0, 0.0, 0.0]);
    let w = huge.tensor(Dtype::F32, 3, 3, &[0.0; 9]).unwrap();
    let h2 = huge.linear(huge.input(), w, None);
    huge.output(h2).program(&p);
    let refused = huge.build().map(|b| Model::parse(&b).map(|_| ()));
    assert!(
        !matches!(refused, Ok(Ok(()))),
        "a 3e38 data scale must not make a valid blob"
    );
    let model = Model::parse(&bytes).unwrap();
    let specs = mixed_specs(3, 0);
    let want = single(&model, "big", &specs);
    assert_eq!(want[0], Err(Error::OutputNotFinite { element: 1 }));
    let bm = BatchModel::new(&model).unwrap();
    agree(
        &want,
        batched(&bm, "big", &specs, Options::threads(2)),
        3,
        "overflow",
    );
}

/// A network and program drawn at random, with a finite chance of non-finite values (huge
/// coefficients), so errors are compared too.
fn random_case(
    spec: MlpSpec,
    weight_seed: u64,
    code: &[(u8, u8, u8, f32, bool)],
) -> Option<Vec<u8>> {
    let mlp = Mlp::random(spec, weight_seed);
    let d = spec.data_len;
    let scale: Vec<f32> = (0..d).map(|i| 0.5 + i as f32 * 0.25).collect();
    let offset: Vec<f32> = (0..d).map(|i| i as f32 - 1.0).collect();
    let mut b = mlp.to_builder(&[d as u16], (&scale, &offset)).ok()?;
    let regs = 3u8;
    let mut p = ProgramBuilder::new("random", regs);
    p.lin(0, &[], Some(1.0)).step();
    for &(kind, r1, r2, c, flag) in code {
        let (r1, r2) = (r1 % regs, r2 % regs);
        match kind % 4 {
            0 => {
                let class = if flag && spec.classes > 0 {
                    ClassSel::Null
                } else {
                    ClassSel::Caller
                };
                p.eval(r1, r2, class, c.abs() * 100.0);
            }
            1 => {
                p.lin(r1, &[(r2, c), (r1, 1.0 - c)], flag.then_some(c * 0.5));
            }
            2 => {
                p.clamp(r1, -c.abs(), c.abs());
            }
            _ => {
                p.step();
            }
        }
    }
    p.out_reg(0);
    b.program(&p);
    b.build().ok()
}

fn arb_spec() -> impl Strategy<Value = MlpSpec> {
    (
        1usize..6,
        1usize..12,
        1usize..12,
        1usize..4,
        0usize..3,
        prop::sample::select(vec![0u16, 1, 3]),
        prop::sample::select(vec![
            Activation::Identity,
            Activation::Relu,
            Activation::Silu,
            Activation::GeluTanh,
        ]),
        prop::sample::select(vec![Dtype::F32, Dtype::F16, Dtype::I8]),
    )
        .prop_map(
            |(data_len, hidden, ff, temb_half, blocks, classes, act, dtype)| MlpSpec {
                data_len,
                hidden,
                ff,
                temb: 2 * temb_half,
                blocks,
                classes,
                act,
                dtype,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_networks_and_programs_match(
        spec in arb_spec(),
        weight_seed in any::<u64>(),
        code in prop::collection::vec(
            (any::<u8>(), any::<u8>(), any::<u8>(),
             prop_oneof![-2.0f32..2.0, Just(1e30f32), Just(0.0f32)], any::<bool>()),
            1..24),
        n in 1usize..40,
        seed in any::<u64>(),
        threads in 1usize..4,
    ) {
        let Some(bytes) = random_case(spec, weight_seed, &code) else {
            return Ok(());
        };
        let model = Model::parse(&bytes).unwrap();
        let bm = BatchModel::new(&model).unwrap();
        let specs: Vec<SampleRequest> = (0..n)
            .map(|i| SampleRequest {
                seed: seed.wrapping_add(i as u64 % 2),
                stream: i as u32 * 3,
                class: if spec.classes > 0 { (i % spec.classes as usize) as u16 } else { 0 },
            })
            .collect();
        let want = single(&model, "random", &specs);
        for isa in Isa::available() {
            let options = Options { threads, max_block: 64, isa };
            agree(&want, batched(&bm, "random", &specs, options), model.data_len(), isa.name());
        }
    }
}
