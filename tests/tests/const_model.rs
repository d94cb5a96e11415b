//! Acceptance: `Model::parse` run by the compiler on an `include_bytes!` blob (what the firmware
//! template's `model.rs` does, so no parser is linked) gives the model the run-time parse gives,
//! and refuses what the run-time parse refuses.

use microdiff_runtime::blob::program::Program;
use microdiff_runtime::{Error, Model, SampleRequest, sample};

static DIGITS: &[u8] = include_bytes!("../golden/digits-w8a8.mdfb");
static REF_MLP: &[u8] = include_bytes!("../golden/ref-mlp-f32.mdfb");

/// Validated at compile time: an invalid blob would be a build error.
static MODEL: Model<'static> = match Model::parse(DIGITS) {
    Ok(m) => m,
    Err(_) => panic!("digits-w8a8.mdfb does not validate"),
};
const PROGRAM: Program<'static> = match MODEL.program("ddim10-cfg") {
    Ok(p) => p,
    Err(_) => panic!("digits-w8a8.mdfb has no ddim10-cfg"),
};

/// `b` with byte `at` flipped (a `const fn`, so the corrupt copy exists at compile time too).
const fn flipped<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N && i < b.len() {
        out[i] = b[i];
        i += 1;
    }
    out[at] ^= 0x40;
    out
}

const REF_LEN: usize = include_bytes!("../golden/ref-mlp-f32.mdfb").len();
/// A flipped weight byte: the CRC no longer matches.
static CORRUPT: [u8; REF_LEN] = flipped(REF_MLP, REF_LEN - 40);
/// The compiler's verdict on the corrupt copy.
const CORRUPT_VERDICT: Result<Model<'static>, Error> = Model::parse(&CORRUPT);
/// A program the blob lacks, looked up by the compiler.
const MISSING: Result<Program<'static>, Error> = MODEL.program("no-such-program");

#[test]
fn the_compile_time_model_samples_what_the_run_time_model_samples() {
    let parsed = Model::parse(DIGITS).unwrap();
    assert_eq!(MODEL.arena_bytes(), parsed.arena_bytes());
    assert_eq!(MODEL.plan(), parsed.plan());
    assert_eq!(MODEL.graph().op_count(), parsed.graph().op_count());
    assert_eq!(
        MODEL.graph().qlinear_records_nonzero(),
        parsed.graph().qlinear_records_nonzero()
    );
    let program = parsed.program("ddim10-cfg").unwrap();
    assert_eq!(
        (PROGRAM.index, PROGRAM.steps, PROGRAM.evals, PROGRAM.code),
        (program.index, program.steps, program.evals, program.code)
    );
    for class in [0, 3, 7] {
        let request = SampleRequest {
            seed: 11,
            stream: 2,
            class,
        };
        let mut arena = vec![0u8; parsed.arena_bytes()];
        let mut at_compile_time = vec![0.0f32; parsed.data_len()];
        let mut at_run_time = at_compile_time.clone();
        sample(&MODEL, PROGRAM, &mut arena, request, &mut at_compile_time).unwrap();
        sample(&parsed, program, &mut arena, request, &mut at_run_time).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&at_compile_time), bits(&at_run_time), "class {class}");
    }
}

#[test]
fn the_compiler_refuses_what_the_run_time_parse_refuses() {
    let at_run_time = Model::parse(&CORRUPT).map(|_| ()).unwrap_err();
    assert!(matches!(at_run_time, Error::ChecksumMismatch { .. }));
    assert_eq!(CORRUPT_VERDICT.map(|_| ()).unwrap_err(), at_run_time);
    assert_eq!(MISSING.map(|_| ()).unwrap_err(), Error::ProgramNotFound);
    assert_eq!(
        MODEL.program("no-such-program").map(|_| ()).unwrap_err(),
        Error::ProgramNotFound
    );
}
