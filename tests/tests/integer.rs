//! The integer (W8A8) graph: a network with every integer op parses, plans its int8 values four
//! to a slot, samples, evaluates, and runs the same in the batched host executor; every way to
//! wire the integer ops wrongly is a typed error at parse time.

use microdiff_conformance::integer::{self, DATA, HIDDEN, TIMES};
use microdiff_kernels::Dtype;
use microdiff_kernels::int8::WeightLayout;
use microdiff_runtime::blob::BlobBuilder;
use microdiff_runtime::blob::meta::{Objective, Prediction};
use microdiff_runtime::blob::program::ClassSel;
use microdiff_runtime::blob::{ProgramBuilder, Value};
use microdiff_runtime::{Error, Model, SampleRequest, evaluate, sample};

#[test]
fn the_tiny_integer_network_parses_plans_samples_and_batches() {
    let blob = integer::tiny_w8a8_blob();
    let tiled = integer::tiny_w8a8_blob_in(WeightLayout::Tiles);
    assert_ne!(blob, tiled, "the layouts differ in bytes");
    let old = Model::parse(&tiled).expect("a tiled blob parses");
    let model = Model::parse(&blob).expect("parses");
    let plan = model.plan();
    // int8 values take ⌈n/4⌉ slots, and QLINEAR's widened input has its scratch.
    let s = &model.graph().structure;
    for v in 1..s.values as usize {
        assert!(
            plan.offset[v] <= plan.scratch_offset,
            "value {v} before the scratch"
        );
    }
    assert_eq!(plan.scratch_slots, (HIDDEN.div_ceil(4) * 4 / 2) as u32);
    assert!(
        s.slots(1) == (DATA as u32).div_ceil(4),
        "QUANTIZE's output is int8"
    );
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut outs = Vec::new();
    for (i, p) in ["a", "b"].iter().enumerate() {
        let prog = model.program(p).unwrap();
        let specs: Vec<SampleRequest> = (0..5)
            .map(|k| SampleRequest {
                seed: 9,
                stream: k,
                class: (k % 3) as u16,
            })
            .collect();
        let mut want = vec![0.0f32; specs.len() * DATA];
        for (spec, o) in specs.iter().zip(want.chunks_mut(DATA)) {
            sample(&model, prog, &mut arena, *spec, o).expect("samples");
            assert!(o.iter().all(|v| v.is_finite()));
        }
        let mut got = vec![0.0f32; want.len()];
        let old_prog = old.program(p).unwrap();
        for (spec, o) in specs.iter().zip(got.chunks_mut(DATA)) {
            sample(&old, old_prog, &mut arena, *spec, o).expect("samples");
        }
        assert_eq!(
            got, want,
            "program {i}: the tiled layout samples the same bits"
        );
        microdiff_runtime::batch::sample_batch(&model, prog, &specs, &mut got, 2).unwrap();
        assert_eq!(
            got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "program {i}: the batched host path runs the device executor"
        );
        outs.push(want);
    }
    assert_ne!(outs[0], outs[1]);
    // One network pass: the same output for the same input, different for another time.
    let x = [0.3f32, -0.7, 1.1, 0.0];
    let (mut a, mut b) = ([0.0f32; DATA], [0.0f32; DATA]);
    evaluate(&model, &mut arena, &x, TIMES[1], 2, &mut a).unwrap();
    evaluate(&model, &mut arena, &x, TIMES[1], 2, &mut b).unwrap();
    assert_eq!(a, b);
    evaluate(&model, &mut arena, &x, TIMES[3], 2, &mut b).unwrap();
    assert_ne!(a, b, "the time row and the input scale depend on the time");
    assert!(matches!(
        evaluate(&model, &mut arena, &x, 3.0, 2, &mut b),
        Err(Error::Malformed { .. })
    ));
    assert!(matches!(
        evaluate(&model, &mut arena, &x, TIMES[1], 9, &mut b),
        Err(Error::ClassOutOfRange { .. })
    ));
    assert!(matches!(
        evaluate(&model, &mut arena[..8], &x, TIMES[1], 2, &mut b),
        Err(Error::ArenaTooSmall { .. })
    ));
}

/// A one-program blob around the graph `f` builds (input `x`, returns the output).
fn graph(
    f: impl FnOnce(&mut BlobBuilder, Value) -> Result<Value, Error>,
) -> Result<Vec<u8>, Error> {
    let mut b = BlobBuilder::new(&[4], Objective::Ddpm, Prediction::Epsilon);
    let x = b.input();
    let out = f(&mut b, x)?;
    b.output(out);
    let mut p = ProgramBuilder::new("p", 2);
    p.lin(0, &[], Some(1.0)).step();
    p.eval(1, 0, ClassSel::Caller, 1.0);
    p.lin(0, &[(1, 1.0)], None).step();
    b.program(&p);
    b.build()
}

fn quantized(b: &mut BlobBuilder, x: Value) -> Result<Value, Error> {
    let s = b.tensor(Dtype::F32, 1, 1, &[0.05])?;
    Ok(b.quantize(x, 0, s, None))
}

/// The emitter refuses the graph, or the parser does, with a typed error that says `what`.
fn rejected(bytes: Result<Vec<u8>, Error>, what: &str) {
    let parsed = bytes.and_then(|b| Model::parse(&b).map(|_| ()));
    match parsed {
        Err(Error::BadOp { what: w, .. }) | Err(Error::Malformed { what: w, .. }) => {
            assert!(w.text().contains(what), "{w:?} should say {what:?}")
        }
        other => panic!("expected a typed refusal mentioning {what:?}, got {other:?}"),
    }
}

#[test]
fn miswired_integer_graphs_are_typed_errors() {
    let k = |b: &mut BlobBuilder| b.tensor_i32(4, 1, &[0, 1 << 14, 1 << 14, 15]);
    // A value added to itself (QADD runs in place).
    rejected(
        graph(|b, x| {
            let q = quantized(b, x)?;
            let k = k(b)?;
            let s = b.qadd(q, q, k);
            Ok(b.dequantize(s, 0, 0.1))
        }),
        "same value twice",
    );
    // An integer op reading the f32 input.
    rejected(
        graph(|b, x| {
            let t = b.tensor_q8(256, 1, &[0; 256])?;
            let l = b.qlut(x, t);
            Ok(b.dequantize(l, 0, 0.1))
        }),
        "wrong element type",
    );
    // A float op reading int8 codes.
    rejected(
        graph(|b, x| {
            let q = quantized(b, x)?;
            Ok(b.activation(q, microdiff_kernels::Activation::Relu))
        }),
        "wrong element type",
    );
    // The network ends in int8.
    rejected(graph(quantized), "output value is int8");
    // A requantization multiplier outside [2^30, 2^31).
    rejected(
        graph(|b, x| {
            let q = quantized(b, x)?;
            let w = b.tensor_q8(4, 4, &[1; 16])?;
            let p: Vec<i32> = (0..4).flat_map(|_| [0, 5, -3]).collect();
            let p = b.tensor_i32(4, 3, &p)?;
            let y = b.qlinear(q, (w, WeightLayout::Pairs), p, 0, 0);
            Ok(b.dequantize(y, 0, 0.1))
        }),
        "multiplier",
    );
    // Weights not padded to the tile shape.
    rejected(
        graph(|b, x| {
            let q = quantized(b, x)?;
            let w = b.tensor_q8(4, 3, &[1; 12])?;
            let p: Vec<i32> = (0..4).flat_map(|_| [0, 1 << 30, -3]).collect();
            let p = b.tensor_i32(4, 3, &p)?;
            let y = b.qlinear(q, (w, WeightLayout::Pairs), p, 0, 0);
            Ok(b.dequantize(y, 0, 0.1))
        }),
        "pad4",
    );
    // QADD constants that could overflow.
    rejected(
        graph(|b, x| {
            let q = quantized(b, x)?;
            let r = quantized(b, x)?;
            let k = b.tensor_i32(4, 1, &[0, 1 << 22, 1, 3])?;
            let s = b.qadd(q, r, k);
            Ok(b.dequantize(s, 0, 0.1))
        }),
        "QADD",
    );
    // A layer norm with γ outside the int8 range.
    rejected(
        graph(|b, x| {
            let q = quantized(b, x)?;
            let ch = b.tensor_i32(4, 2, &[300, 0, 1, 0, 1, 0, 1, 0])?;
            let kn = b.tensor_i32(4, 1, &[1, 1 << 30, 0, 0])?;
            let n = b.qlayer_norm(q, ch, kn);
            Ok(b.dequantize(n, 0, 0.1))
        }),
        "gamma",
    );
    // A time-keyed quantize scale table without the program's time 1.0.
    let missing_time = graph(|b, x| {
        let s = b.tensor(Dtype::F32, 1, 1, &[0.05])?;
        let t = b.tensor(Dtype::F32, 1, 1, &[2.0])?;
        let q = b.quantize(x, 0, s, Some(t));
        Ok(b.dequantize(q, 0, 0.05))
    })
    .and_then(|b| Model::parse(&b).map(|_| ()));
    assert!(matches!(missing_time, Err(Error::BadProgram { .. })));
    // q8 codes as the weights of a float LINEAR.
    rejected(
        graph(|b, x| {
            let w = b.tensor_q8(4, 4, &[1; 16])?;
            Ok(b.linear(x, w, None))
        }),
        "LINEAR weights must be",
    );
    // A well-formed one parses (the helpers above are not what fails).
    let ok = graph(|b, x| {
        let q = quantized(b, x)?;
        Ok(b.dequantize(q, 0, 0.05))
    })
    .unwrap();
    Model::parse(&ok).unwrap();
}

/// A `QLINEAR` record with a zero multiplier (valid: a row whose real multiplier rounds to 0)
/// turns off the executor's fast kernels (the DSP kernel does not take such records): the
/// model then evaluates through the reference kernel. (The kernels' agreement on either path
/// is `qemu-kernel-check`'s; here the flag and the fallback.)
#[test]
fn a_zero_multiplier_row_turns_off_the_validated_path() {
    let blob = integer::tiny_w8a8_blob();
    let model = Model::parse(&blob).unwrap();
    assert!(model.graph().qlinear_records_nonzero());
    // The first QLINEAR's params tensor (i32, rows × 3): zero row 0's multiplier.
    let params = (0..model.graph().op_count())
        .find_map(|k| match model.graph().op(k) {
            Ok(microdiff_runtime::blob::graph::Op::QLinear { params, .. }) => Some(params),
            _ => None,
        })
        .unwrap();
    let data = model.tensors().get(params).unwrap().data;
    let at = data.as_ptr() as usize - blob.as_ptr() as usize + 4;
    let mut patched = blob.clone();
    patched[at..at + 4].copy_from_slice(&0i32.to_le_bytes());
    let crc = microdiff_runtime::blob::crc::crc32(&patched[16..]);
    patched[12..16].copy_from_slice(&crc.to_le_bytes());
    let zeroed = Model::parse(&patched).unwrap();
    assert!(!zeroed.graph().qlinear_records_nonzero());
    let mut arena = vec![0u8; zeroed.arena_bytes()];
    let (mut a, mut b) = ([0.0f32; DATA], [0.0f32; DATA]);
    for (x, out) in [
        ([0.3f32, -0.7, 1.1, 0.0], &mut a),
        ([2.0, 1.0, -3.0, 0.5], &mut b),
    ] {
        evaluate(&zeroed, &mut arena, &x, TIMES[1], 2, out).unwrap();
        assert!(out.iter().all(|v| v.is_finite()));
    }
    assert_ne!(a, b, "the other rows still see the input");
}
