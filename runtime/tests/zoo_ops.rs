//! The other generator families' ops (SLICE, MUL, NOISE, BERNOULLI, and the sigmoid and exp
//! activations): each does what docs/blob-format.md §2.7.2 writes, draws from the network
//! domain at the `EVAL`'s index, and every bad record is its own typed error.

mod common;
use common::{reseal, section_start};

use microdiff_kernels::Activation;
use microdiff_runtime::blob::graph;
use microdiff_runtime::blob::meta::{Objective, Prediction};
use microdiff_runtime::blob::program::ClassSel;
use microdiff_runtime::blob::{BlobBuilder, ProgramBuilder};
use microdiff_runtime::noise::{Domain, NoiseStream, standard_normal, uniform_open};
use microdiff_runtime::{Error, Model, Rule, SampleRequest, Section, evaluate, sample};

/// `out = [a[1..4] ⊙ NOISE(3 @ 5); BERNOULLI(σ(a[0..3]) @ 9)] + …`: every new op once, on a
/// 6-element sample, with a program of two evaluations (a third would overflow the exp).
fn blob() -> Vec<u8> {
    let mut b = BlobBuilder::new(&[6], Objective::Rbm, Prediction::Sample);
    let x = b.input();
    let a = b.slice(x, 1, 3);
    let z = b.noise(5, 3);
    let m = b.mul(a, z);
    let p = b.slice(x, 0, 3);
    let p = b.activation(p, Activation::Sigmoid);
    let v = b.bernoulli(p, 9);
    let e = b.slice(x, 3, 3);
    let e = b.activation(e, Activation::Exp);
    let v = b.add(v, e);
    let o = b.concat(m, v);
    b.output(o);
    let mut prog = ProgramBuilder::new("two", 1);
    prog.lin(0, &[], Some(1.0));
    for _ in 0..2 {
        prog.eval(0, 0, ClassSel::Caller, 0.0).step();
    }
    b.program(&prog);
    b.build().unwrap()
}

/// The same network in plain Rust, at `EVAL` index `e` of `(seed, stream)`.
fn reference(x: &[f32], seed: u64, stream: u32, e: u32) -> Vec<f32> {
    let ns = NoiseStream::new(seed, stream, Domain::Network);
    let mut out = Vec::new();
    for i in 0..3 {
        out.push(x[1 + i] * standard_normal(ns.raw(e, 5 + i as u32)));
    }
    for i in 0..3 {
        let p = 1.0 / (1.0 + libm::expf(-x[i]));
        let v = if uniform_open(ns.raw(e, 9 + i as u32)) < p {
            1.0f32
        } else {
            0.0
        };
        out.push(v + libm::expf(x[3 + i]));
    }
    out
}

#[test]
fn the_ops_compute_what_the_format_says_with_the_evals_draws() {
    let bytes = blob();
    let model = Model::parse(&bytes).unwrap();
    assert_eq!(model.meta().objective, Objective::Rbm);
    let mut arena = vec![0u8; model.arena_bytes()];
    let program = model.program("two").unwrap();
    for stream in 0..32u32 {
        let spec = SampleRequest {
            seed: 77,
            stream,
            class: 0,
        };
        let mut got = [0.0f32; 6];
        sample(&model, program, &mut arena, spec, &mut got).unwrap();
        let mut x = vec![0.0f32; 6];
        NoiseStream::new(77, stream, Domain::Sampler).fill_normal(0, &mut x);
        for e in 0..2 {
            x = reference(&x, 77, stream, e);
        }
        assert_eq!(
            got.map(f32::to_bits).to_vec(),
            x.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }
    // Outside a program: the first EVAL of stream 0 of seed 0.
    let x = [0.5f32, -1.0, 2.0, 0.25, -3.0, 1.5];
    let mut out = [0.0f32; 6];
    evaluate(&model, &mut arena, &x, 0.0, 0, &mut out).unwrap();
    assert_eq!(out.to_vec(), reference(&x, 0, 0, 0));
}

#[test]
fn bernoulli_draws_zero_and_one_at_the_ends() {
    let mut b = BlobBuilder::new(&[4], Objective::Rbm, Prediction::Sample);
    let v = b.bernoulli(b.input(), 0);
    b.output(v);
    let mut prog = ProgramBuilder::new("p", 1);
    prog.eval(0, 0, ClassSel::Caller, 0.0).step();
    b.program(&prog);
    let bytes = b.build().unwrap();
    let model = Model::parse(&bytes).unwrap();
    let mut arena = vec![0u8; model.arena_bytes()];
    // Probability 0 never draws 1, probability 1 always does (u < 1), NaN draws 0.
    let x = [0.0f32, 1.0, f32::NAN, 0.5];
    let mut out = [9.0f32; 4];
    evaluate(&model, &mut arena, &x, 0.0, 0, &mut out).unwrap();
    assert_eq!(&out[..3], &[0.0, 1.0, 0.0]);
    let ns = NoiseStream::new(0, 0, Domain::Network);
    assert_eq!(
        out[3],
        f32::from(u8::from(uniform_open(ns.raw(0, 3)) < 0.5))
    );
    // In a program the arena starts at zero: every probability 0, every draw 0.
    for seed in 0..20 {
        let spec = SampleRequest {
            seed,
            stream: 1,
            class: 0,
        };
        let mut s = [1.0f32; 4];
        sample(
            &model,
            model.program("p").unwrap(),
            &mut arena,
            spec,
            &mut s,
        )
        .unwrap();
        assert_eq!(s, [0.0; 4]);
    }
}

/// Byte offset of op `k`'s record.
fn op_record(b: &[u8], k: usize) -> usize {
    section_start(b, Section::Graph) + graph::field::OPS + k * graph::field::OP_LEN
}

#[test]
fn bad_records_are_typed_errors() {
    let good = blob();
    let param = |b: &mut Vec<u8>, k: usize, v: u32| {
        let at = op_record(b, k) + graph::field::PARAM.start;
        b[at..at + 4].copy_from_slice(&v.to_le_bytes());
        reseal(b);
    };
    // SLICE (op 0, of 6 values) taking elements 4..7.
    let mut b = good.clone();
    param(&mut b, 0, 4);
    assert_eq!(
        Model::parse(&b).unwrap_err(),
        Error::BadOp {
            op: 0,
            what: Rule::SliceRange
        }
    );
    // ... or a start that wraps.
    let mut b = good.clone();
    param(&mut b, 0, u32::MAX - 1);
    assert!(matches!(
        Model::parse(&b),
        Err(Error::BadOp {
            what: Rule::SliceRange,
            ..
        })
    ));
    // NOISE (op 1) and BERNOULLI (op 5) past 2^32 elements.
    for k in [1, 5] {
        let mut b = good.clone();
        param(&mut b, k, u32::MAX - 1);
        assert_eq!(
            Model::parse(&b).unwrap_err(),
            Error::BadOp {
                op: k as u16,
                what: Rule::DrawRange
            },
            "op {k}"
        );
    }
    // MUL (op 2) with a PARAM it does not use.
    let mut b = good.clone();
    param(&mut b, 2, 1);
    assert_eq!(
        Model::parse(&b).unwrap_err(),
        Error::BadOp {
            op: 2,
            what: Rule::UnusedFields
        }
    );
    // MUL of values of different lengths: B = the input (6 values).
    let mut b = good.clone();
    let at = op_record(&b, 2) + graph::field::B.start;
    b[at..at + 2].copy_from_slice(&0u16.to_le_bytes());
    reseal(&mut b);
    assert!(matches!(
        Model::parse(&b),
        Err(Error::ShapeMismatch { op: 2, .. })
    ));
    // An activation code past exp.
    let mut b = good.clone();
    let at = op_record(&b, 4) + graph::field::AUX;
    b[at] = 6;
    reseal(&mut b);
    assert_eq!(
        Model::parse(&b).unwrap_err(),
        Error::UnknownActivation { op: 4, code: 6 }
    );
    // Objective 6 is unknown.
    let mut b = good.clone();
    let meta = section_start(&b, Section::Meta);
    b[meta] = 6;
    reseal(&mut b);
    assert_eq!(
        Model::parse(&b).unwrap_err(),
        Error::UnknownObjective { code: 6 }
    );
}

/// `QBERNOULLI`: code `c` draws 1 exactly when the raw word is below `(c + 128)·0x0101_0101`;
/// −128 never, 127 all but once in 2³².
#[test]
fn the_integer_bernoulli_draw_is_its_formula() {
    let mut b = BlobBuilder::new(&[8], Objective::Rbm, Prediction::Sample);
    let scale = b
        .tensor(microdiff_kernels::Dtype::F32, 1, 1, &[1.0])
        .unwrap();
    let q = b.quantize(b.input(), 0, scale, None);
    let v = b.qbernoulli(q, 3);
    let out = b.dequantize(v, 0, 1.0);
    b.output(out);
    let mut prog = ProgramBuilder::new("p", 1);
    prog.eval(0, 0, ClassSel::Caller, 0.0).step();
    b.program(&prog);
    let bytes = b.build().unwrap();
    let model = Model::parse(&bytes).unwrap();
    let mut arena = vec![0u8; model.arena_bytes()];
    let x = [-128.0f32, 127.0, 0.0, -1.0, 64.0, -64.0, 100.0, -100.0];
    let mut out = [9.0f32; 8];
    evaluate(&model, &mut arena, &x, 0.0, 0, &mut out).unwrap();
    let ns = NoiseStream::new(0, 0, Domain::Network);
    for (i, (&c, &o)) in x.iter().zip(&out).enumerate() {
        let w = ns.raw(0, 3 + i as u32);
        let want = w < (c as i32 + 128) as u32 * 0x0101_0101;
        assert_eq!(o, f32::from(u8::from(want)), "code {c}, word {w:#x}");
    }
    assert_eq!(out[0], 0.0);
    // Over many streams, the share of ones is the code's probability.
    let program = model.program("p").unwrap();
    let mut ones = [0u32; 8];
    let mut arena = vec![0u8; model.arena_bytes()];
    for stream in 0..4000 {
        // The arena starts at zero, so the input code is 0: probability 128/255.
        let spec = SampleRequest {
            seed: 9,
            stream,
            class: 0,
        };
        let mut s = [0.0f32; 8];
        sample(&model, program, &mut arena, spec, &mut s).unwrap();
        for (n, v) in ones.iter_mut().zip(s) {
            *n += v as u32;
        }
    }
    for n in ones {
        let share = f64::from(n) / 4000.0;
        assert!((share - 128.0 / 255.0).abs() < 0.03, "{share}");
    }
}
