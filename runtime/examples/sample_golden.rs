//! Samples the golden int8 reference model the way firmware does: the blob is
//! `include_bytes!`-ed and validated at compile time (`Model::parse` is a `const fn`: a broken
//! blob is a build error, and no parser is linked), the arena is a `static` sized from it, and
//! the sampler runs one step per call while progress is reported.
//!
//! `cargo run -p microdiff-runtime --example sample_golden -- [PROGRAM] [SEED] [CLASS]`

use std::sync::Mutex;

use microdiff_runtime::{ArenaBuffer, Model, SampleRequest, Sampler, Status};

static BLOB: &[u8] = include_bytes!("../../tests/golden/ref-mlp-i8.mdfb");

/// The blob, validated by the compiler (CRC, every section, op and program).
static MODEL: Model<'static> = match Model::parse(BLOB) {
    Ok(m) => m,
    Err(_) => panic!("the golden blob is invalid"),
};

const ARENA_BYTES: usize = MODEL.arena_bytes();

static ARENA: Mutex<ArenaBuffer<ARENA_BYTES>> = Mutex::new(ArenaBuffer::new());

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let program = args.first().map_or("ddim10", String::as_str);
    let seed = args.get(1).map_or(Ok(1), |s| s.parse())?;
    let class = args.get(2).map_or(Ok(0), |s| s.parse())?;

    let model = &MODEL;
    println!(
        "model: {} bytes, validated at compile time, {} ({}), data {:?}, {} classes, arena {} bytes (static, sized at compile time)",
        BLOB.len(),
        model.meta().objective.name(),
        model.meta().prediction.name(),
        &model.meta().shape[..model.meta().rank as usize],
        model.meta().classes,
        ARENA_BYTES
    );
    for p in model.programs().iter() {
        let p = p?;
        println!(
            "  program {:<12} {:>4} steps {:>4} network evaluations",
            p.name(),
            p.steps,
            p.evals
        );
    }
    let p = model.program(program)?;
    let mut arena = ARENA.lock().map_err(|_| "arena lock poisoned")?;
    let mut s = Sampler::new(
        model,
        p,
        arena.as_mut_bytes(),
        SampleRequest {
            seed,
            stream: 0,
            class,
        },
    )?;
    while let Status::Running { step, steps } = s.step()? {
        if step % (steps / 4).max(1) == 0 {
            println!("  step {step}/{steps}");
        }
    }
    let mut out = vec![0.0; model.data_len()];
    s.output(&mut out)?;
    println!("sample ({program}, seed {seed}, class {class}): {out:?}");
    Ok(())
}
