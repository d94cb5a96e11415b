//! Fuzzes the blob parser and, when a blob parses, the planner and the sampler on it:
//! any input must give `Ok` or a typed error, never a panic, overflow or out-of-bounds access,
//! and a sample returned with `Ok` is finite.
//!
//! The input is also given to the blob-free program checks (`Program::parse` of one record,
//! `check_code` of bare instruction bytes).
//!
//! Each input is tried twice: as given (exercising the header and CRC checks) and with its
//! total-length and CRC fields rewritten to match (so mutations reach the section parsers, the
//! planner and the sampler instead of stopping at the checksum).
#![no_main]

use libfuzzer_sys::fuzz_target;
use microdiff_runtime::blob::{crc::crc32, field, program};
use microdiff_runtime::{Model, SampleRequest, Sampler, Status, arena_bytes};

/// Steps run per program, so a large valid blob cannot stall the fuzzer.
const MAX_STEPS: usize = 64;

fn exercise(data: &[u8]) {
    // The same bytes as one program record and as bare code, checked without a blob.
    let _ = program::Program::parse(data, 0, true);
    if let Ok(counts) = program::check_code(0, data, program::MAX_REGS, true) {
        // Valid code decodes to the end, with the counted STEPs.
        let steps = program::instructions(0, data)
            .map(|i| matches!(i, Ok((_, program::Instr::Step))) as u32)
            .sum::<u32>();
        assert_eq!(steps, counts.steps);
    }
    let planned = arena_bytes(data);
    // The const program lookup firmware builds use: never a panic, whatever the bytes.
    let _ = microdiff_runtime::program_index(data, "ddim10-cfg");
    let Ok(model) = Model::parse(data) else {
        return;
    };
    // The const planner and the run-time parse agree on every valid blob.
    assert_eq!(planned.ok(), Some(model.arena_bytes()));
    if model.arena_bytes() > 1 << 20 {
        return;
    }
    let mut arena = vec![0u8; model.arena_bytes()];
    let classes = model.meta().classes.max(1);
    for program in model.programs().iter().flatten() {
        assert_eq!(
            microdiff_runtime::program_index(data, program.name()),
            model.program(program.name()).map(|p| p.index)
        );
        let spec = SampleRequest {
            seed: data.len() as u64,
            stream: 1,
            class: classes - 1,
        };
        let Ok(mut s) = Sampler::new(&model, program, &mut arena, spec) else {
            continue;
        };
        for _ in 0..MAX_STEPS {
            match s.step() {
                Ok(Status::Done) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let mut out = vec![0.0; model.data_len()];
        // A sample the runtime hands out is finite: registers are checked after every write
        // and the data-unit scaling is checked too (`Error::OutputNotFinite`).
        if s.output(&mut out).is_ok() {
            assert!(
                out.iter().all(|x| x.is_finite()),
                "Ok output not finite: {out:?}"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    exercise(data);
    if data.len() >= field::CRC_START {
        let mut fixed = data.to_vec();
        let len = fixed.len() as u32;
        fixed[field::TOTAL_LEN].copy_from_slice(&len.to_le_bytes());
        let crc = crc32(&fixed[field::CRC_START..]);
        fixed[field::CRC].copy_from_slice(&crc.to_le_bytes());
        exercise(&fixed);
    }
});
