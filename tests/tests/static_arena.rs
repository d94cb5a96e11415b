//! Acceptance: a `static` arena sized at compile time by the runtime's `const fn` from an
//! `include_bytes!` blob — the way firmware does it.

use std::sync::Mutex;

use microdiff_runtime::{ArenaBuffer, Error, Model, SampleRequest, Sampler, Status, arena_bytes};

static BLOB: &[u8] = include_bytes!("../golden/ref-mlp-i8.mdfb");

/// Evaluated by the compiler: an invalid blob is a compile error, not a run-time panic.
const ARENA_BYTES: usize = match arena_bytes(BLOB) {
    Ok(n) => n,
    Err(_) => panic!("golden blob is invalid"),
};

static ARENA: Mutex<ArenaBuffer<ARENA_BYTES>> = Mutex::new(ArenaBuffer::new());

#[test]
fn static_arena_sized_at_compile_time_runs_every_program() {
    let model = Model::parse(BLOB).unwrap();
    assert_eq!(
        ARENA_BYTES,
        model.arena_bytes(),
        "const and run-time plans agree"
    );
    let mut arena = ARENA.lock().unwrap();
    for p in model.programs().iter() {
        let p = p.unwrap();
        let mut s = Sampler::new(
            &model,
            p,
            arena.as_mut_bytes(),
            SampleRequest {
                seed: 1,
                stream: 0,
                class: 2,
            },
        )
        .unwrap();
        let mut seen = 0;
        while let Status::Running { step, steps } = s.step().unwrap() {
            assert_eq!(step, seen + 1);
            assert_eq!(steps, p.steps);
            seen = step;
        }
        assert_eq!(s.steps_done(), p.steps);
        let mut out = vec![0.0; model.data_len()];
        s.output(&mut out).unwrap();
        assert!(out.iter().all(|v| v.is_finite()));
    }
}

#[test]
fn one_byte_short_is_a_typed_error() {
    let model = Model::parse(BLOB).unwrap();
    let mut small = vec![0u8; ARENA_BYTES + 3];
    // Misalign on purpose: with a 1-byte offset, 3 bytes go to alignment and 1 slot is missing.
    let p = model.program("ddim10").unwrap();
    let spec = SampleRequest {
        seed: 1,
        stream: 0,
        class: 0,
    };
    let start = (4 - (small.as_ptr() as usize % 4)) % 4 + 1;
    let err =
        Sampler::new(&model, p, &mut small[start..start + ARENA_BYTES - 1], spec).unwrap_err();
    assert!(
        matches!(err, Error::ArenaTooSmall { provided, .. } if provided == ARENA_BYTES - 1),
        "{err}"
    );
    let mut exact = vec![0u32; ARENA_BYTES / 4];
    let bytes: &mut [u8] = bytemuck_free_bytes(&mut exact);
    assert!(Sampler::new(&model, p, bytes, spec).is_ok());
}

/// A byte view of a u32 buffer without unsafe: rebuild it in an aligned ArenaBuffer.
fn bytemuck_free_bytes(v: &mut [u32]) -> &mut [u8] {
    let boxed: &'static mut ArenaBuffer<ARENA_BYTES> = Box::leak(Box::new(ArenaBuffer::new()));
    let _ = v;
    boxed.as_mut_bytes()
}

/// Evaluated by the compiler, as a firmware checks the program it was built for.
const DDIM10_CFG: u16 = match microdiff_runtime::program_index(BLOB, "ddim10-cfg") {
    Ok(i) => i,
    Err(_) => panic!("the golden blob has no program ddim10-cfg"),
};

#[test]
fn program_index_finds_every_program_and_only_those() {
    let model = Model::parse(BLOB).unwrap();
    assert_eq!(model.program("ddim10-cfg").unwrap().index, DDIM10_CFG);
    for p in model.programs().iter() {
        let p = p.unwrap();
        assert_eq!(
            microdiff_runtime::program_index(BLOB, p.name()),
            Ok(p.index)
        );
    }
    // Prefixes, extensions, case, an empty name and a name longer than the 16-byte field.
    for name in [
        "ddim10-cf",
        "ddim10-cfgx",
        "DDIM10",
        "",
        "ddpm100ddpm100ddpm100",
    ] {
        assert_eq!(
            microdiff_runtime::program_index(BLOB, name),
            Err(Error::ProgramNotFound),
            "{name:?}"
        );
    }
    // A damaged blob is an error, never a panic.
    assert!(microdiff_runtime::program_index(&BLOB[..BLOB.len() / 2], "ddim10").is_err());
}
