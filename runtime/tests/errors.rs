//! Every class of bad input gives its own typed error (and a message naming the problem).

mod common;
use common::{reseal, section_start};

use microdiff_kernels::{Activation, Dtype};
use microdiff_runtime::blob::graph::{self, opcode};
use microdiff_runtime::blob::meta::{Objective, Prediction};
use microdiff_runtime::blob::program::{self, ClassSel};
use microdiff_runtime::blob::{BlobBuilder, ProgramBuilder, field, tensor};
use microdiff_runtime::{Error, Model, SampleRequest, Sampler, Section, arena_bytes, sample};

/// A class-conditional model with a guided program.
fn blob() -> Vec<u8> {
    let mut b = BlobBuilder::new(&[3], Objective::Ddpm, Prediction::Epsilon);
    b.classes(2, Some(2));
    let w = b
        .tensor(
            Dtype::I8,
            3,
            3,
            &[0.5, -0.25, 0.0, 0.1, 0.2, 0.3, -1.0, 0.0, 1.0],
        )
        .unwrap();
    let t = b.tensor(Dtype::F16, 3, 4, &[0.1; 12]).unwrap();
    let table = b
        .tensor(
            Dtype::F32,
            3,
            3,
            &[0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8],
        )
        .unwrap();
    let h = b.linear(b.input(), w, None);
    let te = b.time_embed(4, 10_000.0);
    let te = b.linear(te, t, None);
    let ce = b.class_embed(table);
    let h = b.add(h, te);
    let h = b.add(h, ce);
    let o = b.activation(h, Activation::Relu);
    b.output(o);
    let mut p = ProgramBuilder::new("cfg", 3);
    p.lin(0, &[], Some(1.0)).step();
    p.eval(1, 0, ClassSel::Caller, 5.0)
        .eval(2, 0, ClassSel::Null, 5.0);
    p.lin(0, &[(0, 1.0), (1, -0.5), (2, 0.25)], Some(0.1))
        .clamp(0, -2.0, 2.0)
        .step();
    b.program(&p);
    b.build().unwrap()
}

#[test]
fn a_valid_blob_parses_and_samples() {
    let b = blob();
    let m = Model::parse(&b).unwrap();
    assert_eq!(arena_bytes(&b).unwrap(), m.arena_bytes());
    let mut arena = vec![0u8; m.arena_bytes()];
    let mut out = [0.0; 3];
    sample(
        &m,
        m.program("cfg").unwrap(),
        &mut arena,
        SampleRequest {
            seed: 1,
            stream: 0,
            class: 1,
        },
        &mut out,
    )
    .unwrap();
    assert!(
        out.iter().all(|v| (-2.0..=2.0).contains(v)),
        "CLAMP applied: {out:?}"
    );
}

#[test]
fn header_errors() {
    let good = blob();
    assert!(matches!(
        Model::parse(&good[..10]),
        Err(Error::Truncated {
            section: Section::Header,
            ..
        })
    ));
    let mut b = good.clone();
    b[0] = b'X';
    assert_eq!(Model::parse(&b).unwrap_err(), Error::BadMagic);
    let mut b = good.clone();
    b[field::VERSION].copy_from_slice(&2u16.to_le_bytes());
    assert_eq!(
        Model::parse(&b).unwrap_err(),
        Error::UnsupportedVersion { found: 2 }
    );
    let mut b = good.clone();
    b.push(0);
    assert!(matches!(
        Model::parse(&b),
        Err(Error::LengthMismatch { .. })
    ));
    let mut b = good.clone();
    let last = b.len() - 1;
    b[last] ^= 0x40;
    assert!(matches!(
        Model::parse(&b),
        Err(Error::ChecksumMismatch { .. })
    ));
    let msg = Model::parse(&b).unwrap_err().to_string();
    assert!(msg.contains("checksum"), "{msg}");
}

#[test]
fn section_table_errors() {
    let good = blob();
    // Turn the schedule-less table's first entry (META) into an unknown required kind.
    let mut b = good.clone();
    let e0 = microdiff_runtime::blob::HEADER_LEN;
    b[e0..e0 + 2].copy_from_slice(&77u16.to_le_bytes());
    reseal(&mut b);
    assert_eq!(
        Model::parse(&b).unwrap_err(),
        Error::UnknownSection { kind: 77 }
    );
    // The same kind, optional: skipped, and then META is missing.
    b[e0 + 2..e0 + 4].copy_from_slice(&0u16.to_le_bytes());
    reseal(&mut b);
    assert_eq!(
        Model::parse(&b).unwrap_err(),
        Error::MissingSection {
            section: Section::Meta
        }
    );
    // Two GRAPH entries.
    let mut b = good.clone();
    let e1 = e0 + microdiff_runtime::blob::SECTION_ENTRY_LEN;
    let graph_kind = b[e1..e1 + 2].to_vec();
    b[e0..e0 + 2].copy_from_slice(&graph_kind);
    reseal(&mut b);
    assert_eq!(
        Model::parse(&b).unwrap_err(),
        Error::DuplicateSection {
            section: Section::Graph
        }
    );
}

#[test]
fn unknown_codes_are_named() {
    let good = blob();
    // Op 0's opcode.
    let mut b = good.clone();
    let g = section_start(&b, Section::Graph) + graph::field::OPS;
    b[g + graph::field::OPCODE] = 99;
    reseal(&mut b);
    assert_eq!(
        Model::parse(&b).unwrap_err(),
        Error::UnknownOp { op: 0, opcode: 99 }
    );
    assert!(
        Model::parse(&b)
            .unwrap_err()
            .to_string()
            .contains("unknown op code 99")
    );
    // An activation code.
    let mut b = good.clone();
    let last_op = g + 6 * graph::field::OP_LEN;
    assert_eq!(b[last_op], opcode::ACTIVATION);
    b[last_op + graph::field::AUX] = 42;
    reseal(&mut b);
    assert_eq!(
        Model::parse(&b).unwrap_err(),
        Error::UnknownActivation { op: 6, code: 42 }
    );
    // Tensor 0's dtype.
    let mut b = good.clone();
    let t = section_start(&b, Section::Tensors) + tensor::field::RECORDS;
    b[t + tensor::field::DTYPE] = 7;
    reseal(&mut b);
    assert_eq!(
        Model::parse(&b).unwrap_err(),
        Error::UnknownDtype { tensor: 0, code: 7 }
    );
    // The first instruction.
    let mut b = good.clone();
    let p = section_start(&b, Section::Programs) + program::field::PROGRAMS + program::field::CODE;
    b[p] = 0xEE;
    reseal(&mut b);
    assert_eq!(
        Model::parse(&b).unwrap_err(),
        Error::UnknownInstruction {
            program: 0,
            offset: 0,
            opcode: 0xEE
        }
    );
    // The objective.
    let mut b = good.clone();
    let m = section_start(&b, Section::Meta);
    b[m] = 9;
    reseal(&mut b);
    assert_eq!(
        Model::parse(&b).unwrap_err(),
        Error::UnknownObjective { code: 9 }
    );
}

#[test]
fn shape_and_reference_errors() {
    let good = blob();
    // Op 0 (linear) claims 4 outputs against a 3-row weight.
    let mut b = good.clone();
    let g = section_start(&b, Section::Graph) + graph::field::OPS;
    b[g + graph::field::LEN.start..g + graph::field::LEN.end].copy_from_slice(&4u32.to_le_bytes());
    reseal(&mut b);
    assert!(matches!(
        Model::parse(&b),
        Err(Error::ShapeMismatch { op: 0, .. }) | Err(Error::ShapeMismatch { .. })
    ));
    // Op 0 reads a value defined later.
    let mut b = good.clone();
    b[g + graph::field::A.start..g + graph::field::A.end].copy_from_slice(&3u16.to_le_bytes());
    reseal(&mut b);
    assert!(matches!(Model::parse(&b), Err(Error::BadOp { op: 0, .. })));
    // A tensor's data runs past the data section.
    let mut b = good.clone();
    let t = section_start(&b, Section::Tensors) + tensor::field::RECORDS;
    b[t + tensor::field::DATA_OFFSET.start..t + tensor::field::DATA_OFFSET.end]
        .copy_from_slice(&4096u32.to_le_bytes());
    reseal(&mut b);
    assert!(matches!(
        Model::parse(&b),
        Err(Error::BadTensor { tensor: 0, .. })
    ));
    // A register beyond the program's register count.
    let mut b = good.clone();
    let p = section_start(&b, Section::Programs) + program::field::PROGRAMS + program::field::CODE;
    b[p + 1] = 5; // LIN dst
    reseal(&mut b);
    assert!(matches!(
        Model::parse(&b),
        Err(Error::BadProgram {
            program: 0,
            offset: 0,
            ..
        })
    ));
}

#[test]
fn run_time_errors() {
    let b = blob();
    let m = Model::parse(&b).unwrap();
    let p = m.program("cfg").unwrap();
    assert_eq!(m.program("nope").unwrap_err(), Error::ProgramNotFound);
    let mut arena = vec![0u8; m.arena_bytes()];
    let spec = SampleRequest {
        seed: 0,
        stream: 0,
        class: 2,
    };
    assert_eq!(
        Sampler::new(&m, p, &mut arena, spec).unwrap_err(),
        Error::ClassOutOfRange {
            class: 2,
            classes: 2
        }
    );
    let spec = SampleRequest { class: 0, ..spec };
    let mut short = vec![0u8; m.arena_bytes() - 4];
    assert!(matches!(
        Sampler::new(&m, p, &mut short, spec),
        Err(Error::ArenaTooSmall { .. })
    ));
    let mut out = [0.0; 2];
    let mut s = Sampler::new(&m, p, &mut arena, spec).unwrap();
    s.run().unwrap();
    assert_eq!(
        s.output(&mut out).unwrap_err(),
        Error::OutputLength {
            expected: 3,
            provided: 2
        }
    );
}

#[test]
fn overflow_is_a_typed_error_naming_the_step() {
    let mut b = BlobBuilder::new(&[2], Objective::Flow, Prediction::Velocity);
    let w = b.tensor(Dtype::F32, 2, 2, &[1.0, 0.0, 0.0, 1.0]).unwrap();
    let o = b.linear(b.input(), w, None);
    b.output(o);
    let mut p = ProgramBuilder::new("blowup", 2);
    p.lin(0, &[], Some(1.0)).step();
    for _ in 0..4 {
        p.eval(1, 0, ClassSel::Caller, 0.0)
            .lin(0, &[(0, 3e30), (1, 3e30)], None)
            .step();
    }
    b.program(&p);
    let blob = b.build().unwrap();
    let m = Model::parse(&blob).unwrap();
    let mut arena = vec![0u8; m.arena_bytes()];
    let mut s = Sampler::new(
        &m,
        m.program("blowup").unwrap(),
        &mut arena,
        SampleRequest {
            seed: 3,
            stream: 0,
            class: 0,
        },
    )
    .unwrap();
    let err = s.run().unwrap_err();
    assert!(matches!(err, Error::NonFinite { step: 2, .. }), "{err:?}");
    // The sampler stays failed instead of continuing on garbage.
    assert_eq!(s.step().unwrap_err(), err);
}

#[test]
fn the_emitter_refuses_what_the_parser_would_reject() {
    let mut b = BlobBuilder::new(&[2], Objective::Ddpm, Prediction::Epsilon);
    let w = b.tensor(Dtype::F32, 3, 2, &[0.0; 6]).unwrap();
    let o = b.linear(b.input(), w, None); // 3 outputs for 2-element data
    b.output(o);
    b.program(ProgramBuilder::new("p", 1).lin(0, &[], Some(1.0)).step());
    assert!(matches!(
        b.build(),
        Err(Error::Malformed {
            section: Section::Graph,
            ..
        })
    ));
}

#[test]
fn layout_rules_close_every_gap() {
    let good = blob();
    // Trailing bytes past the last section's padding.
    let mut b = good.clone();
    b.extend_from_slice(&[0xAA; 4]);
    let n = b.len() as u32;
    b[field::TOTAL_LEN].copy_from_slice(&n.to_le_bytes());
    reseal(&mut b);
    assert!(matches!(
        Model::parse(&b),
        Err(Error::Malformed {
            section: Section::Header,
            ..
        })
    ));
    // A section pointing into another one.
    let mut b = good.clone();
    let e1 = microdiff_runtime::blob::HEADER_LEN + microdiff_runtime::blob::SECTION_ENTRY_LEN;
    let meta_off = b[e1 - 8..e1 - 4].to_vec();
    b[e1 + 4..e1 + 8].copy_from_slice(&meta_off);
    reseal(&mut b);
    assert!(matches!(
        Model::parse(&b),
        Err(Error::Malformed {
            section: Section::Header,
            ..
        })
    ));
}

#[test]
fn programs_must_be_nonempty_with_unique_names() {
    let mk = |progs: &[ProgramBuilder]| {
        let mut b = BlobBuilder::new(&[1], Objective::Ddpm, Prediction::Epsilon);
        let w = b.tensor(Dtype::F32, 1, 1, &[1.0]).unwrap();
        let o = b.linear(b.input(), w, None);
        b.output(o);
        for p in progs {
            b.program(p);
        }
        b.build()
    };
    let mut ok = ProgramBuilder::new("a", 1);
    ok.lin(0, &[], Some(1.0)).step();
    assert!(mk(&[ok.clone()]).is_ok());
    assert!(matches!(
        mk(&[ProgramBuilder::new("empty", 1)]),
        Err(Error::BadProgram { .. })
    ));
    assert!(matches!(
        mk(&[ok.clone(), ok.clone()]),
        Err(Error::BadProgram { program: 1, .. })
    ));
    let mut long = ProgramBuilder::new("a-name-longer-than-16", 1);
    long.lin(0, &[], Some(1.0)).step();
    assert!(matches!(mk(&[long]), Err(Error::BadProgram { .. })));
}

#[test]
fn non_finite_weights_and_negative_scales_are_rejected() {
    let mut b = BlobBuilder::new(&[2], Objective::Ddpm, Prediction::Epsilon);
    let w = b
        .tensor(Dtype::F32, 2, 2, &[1.0, f32::NAN, 0.0, 1.0])
        .unwrap();
    let o = b.linear(b.input(), w, None);
    b.output(o);
    b.program(ProgramBuilder::new("p", 1).lin(0, &[], Some(1.0)).step());
    assert!(matches!(b.build(), Err(Error::BadTensor { tensor: 0, .. })));
    // A negative int8 scale, patched into a valid blob.
    let good = blob();
    let mut b = good.clone();
    let t = section_start(&b, Section::Tensors) + tensor::field::RECORDS;
    let soff = u32::from_le_bytes(b[t + 16..t + 20].try_into().unwrap()) as usize;
    let d = section_start(&b, Section::Data) + soff;
    b[d..d + 4].copy_from_slice(&(-1.0f32).to_le_bytes());
    reseal(&mut b);
    assert!(matches!(
        Model::parse(&b),
        Err(Error::BadTensor { tensor: 0, .. })
    ));
}

/// A time table's rows must be f32 `(K, len)`, its times f32 `(K, 1)` in strictly increasing bit
/// order, and it must hold every time the programs evaluate.
#[test]
fn time_table_errors() {
    let build = |times: &[f32], rows_dtype: Dtype, eval_time: f32| {
        let mut b = BlobBuilder::new(&[2], Objective::Ddpm, Prediction::Epsilon);
        let k = times.len() as u32;
        let rows = b
            .tensor(rows_dtype, k, 2, &vec![0.25; 2 * times.len()])
            .unwrap();
        let t = b.tensor(Dtype::F32, k, 1, times).unwrap();
        let x = b.input();
        let te = b.time_table(rows, t);
        let o = b.add(x, te);
        let mut p = ProgramBuilder::new("p", 2);
        p.lin(0, &[], Some(1.0)).step();
        p.eval(1, 0, ClassSel::Caller, eval_time).step();
        b.output(o).program(&p);
        b.build()
    };
    let ok = build(&[1.0, 5.0, 9.0], Dtype::F32, 5.0).unwrap();
    let model = Model::parse(&ok).unwrap();
    let mut out = [0.0f32; 2];
    let mut arena = vec![0u8; model.arena_bytes()];
    let spec = SampleRequest {
        seed: 1,
        stream: 0,
        class: 0,
    };
    sample(
        &model,
        model.program("p").unwrap(),
        &mut arena,
        spec,
        &mut out,
    )
    .unwrap();
    assert_eq!(model.graph().time_table(), Some(1));
    let bad_op = |e: Error| matches!(e, Error::BadOp { op: 0, .. });
    assert!(
        bad_op(build(&[5.0, 1.0], Dtype::F32, 5.0).unwrap_err()),
        "unsorted"
    );
    assert!(
        bad_op(build(&[1.0, 1.0], Dtype::F32, 1.0).unwrap_err()),
        "repeated"
    );
    // (Non-finite tensor values are refused for every tensor, before the op is checked.)
    assert!(
        build(&[1.0, f32::INFINITY], Dtype::F32, 1.0).is_err(),
        "inf"
    );
    assert!(
        bad_op(build(&[1.0, 2.0], Dtype::F16, 1.0).unwrap_err()),
        "f16 rows"
    );
    let e = build(&[1.0, 5.0], Dtype::F32, 3.0).unwrap_err();
    assert!(matches!(e, Error::BadProgram { program: 0, .. }), "{e}");
    assert!(e.to_string().contains("time table"), "{e}");
    // 0.0 and −0.0 are different keys: the device's sin/cos tell them apart too.
    assert!(build(&[0.0], Dtype::F32, -0.0).is_err());
}
