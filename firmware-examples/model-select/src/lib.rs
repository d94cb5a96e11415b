//! The build-script half of "your model on a board": a firmware's `build.rs` calls [`select`],
//! and its `main.rs` does `include!(concat!(env!("OUT_DIR"), "/model.rs"))`.
//!
//! * `MICRODIFF_BLOB` — the blob (what `microdiff export` wrote). A relative path is taken from
//!   the directory cargo was started in (`$PWD`). Default: the board's own default blob.
//! * `MICRODIFF_PROGRAM` — the sampler program. Default: the blob's first program.
//!
//! The blob is parsed by the runtime itself, so a broken blob, a program it lacks (the message
//! lists those it has), or a model bigger than the board's [`Budget`] stops the build with one
//! line naming the variable to change. `model.rs` then defines `BLOB` (the copy in `OUT_DIR`,
//! read in place from flash), `BLOB_NAME`, `PROGRAM` (the name), `MAX_DATA_LEN`, and, made by
//! the compiler with the runtime's `const fn`s, `MODEL` (the validated model: `Model::parse`
//! run at compile time, so no parser is linked), `MODEL_PROGRAM` and `ARENA_BYTES` — what a
//! firmware without this helper would do, and a guard should the blob change after the check.
#![deny(missing_docs)]

use std::path::{Path, PathBuf};
use std::{env, fs, process};

use microdiff_runtime::Model;

/// What a board can hold.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Board name for messages, e.g. "the micro:bit".
    pub board: &'static str,
    /// Arena bytes the board's RAM leaves after stack and statics.
    pub arena: usize,
    /// Blob bytes its flash leaves after the firmware.
    pub blob: usize,
    /// Longest sample the firmware's output buffer holds.
    pub max_data_len: usize,
}

/// Puts the board's `memory.x` (its contents, `include_bytes!("memory.x")` in the caller) where
/// the linker finds it: cortex-m-rt's `link.x` does `INCLUDE memory.x`, and the linker searches
/// only its `-L` paths, so it goes into `OUT_DIR`, which is added to them.
pub fn memory_x(contents: &[u8]) {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::write(out.join("memory.x"), contents).expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");
}

fn fail(msg: String) -> ! {
    eprintln!("error: {msg}");
    process::exit(1)
}

/// Picks the blob and program, checks them against `budget`, copies the blob into `OUT_DIR` and
/// writes `OUT_DIR/model.rs`. `default_blob` is used without `MICRODIFF_BLOB`.
pub fn select(default_blob: &Path, budget: Budget) {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-env-changed=MICRODIFF_BLOB");
    println!("cargo:rerun-if-env-changed=MICRODIFF_PROGRAM");
    let path = match env::var_os("MICRODIFF_BLOB") {
        Some(p) => {
            let p = PathBuf::from(p);
            match (p.is_relative(), env::var_os("PWD")) {
                (true, Some(cwd)) => Path::new(&cwd).join(p),
                _ => p,
            }
        }
        None => default_blob.to_path_buf(),
    };
    println!("cargo:rerun-if-changed={}", path.display());
    let shown = path.display();
    let bytes = fs::read(&path).unwrap_or_else(|e| {
        fail(format!(
            "MICRODIFF_BLOB={shown}: {e} (set it to the file `microdiff export` wrote)"
        ))
    });
    let model = Model::parse(&bytes)
        .unwrap_or_else(|e| fail(format!("MICRODIFF_BLOB={shown}: not a valid blob: {e}")));
    let names: Vec<&str> = model
        .programs()
        .iter()
        .flatten()
        .map(|p| p.name())
        .collect();
    let program = env::var("MICRODIFF_PROGRAM")
        .unwrap_or_else(|_| names.first().map(|s| s.to_string()).unwrap_or_default());
    if model.program(&program).is_err() {
        fail(format!(
            "MICRODIFF_PROGRAM={program}: {shown} has no such program; it has: {}",
            names.join(", ")
        ));
    }
    let b = budget.board;
    if model.arena_bytes() > budget.arena {
        fail(format!(
            "{shown}: the model needs {} bytes of arena; {b} leaves {} (train a narrower \
             network: --hidden, --ff)",
            model.arena_bytes(),
            budget.arena
        ));
    }
    if bytes.len() > budget.blob {
        fail(format!(
            "{shown}: {} bytes do not fit {b}'s flash next to the firmware (at most {}; export \
             with --dtype i8, or train a narrower network)",
            bytes.len(),
            budget.blob
        ));
    }
    if model.data_len() > budget.max_data_len {
        fail(format!(
            "{shown}: samples of {} values; this firmware prints at most {}",
            model.data_len(),
            budget.max_data_len
        ));
    }
    let copy = out.join("model.mdfb");
    fs::write(&copy, &bytes).expect("copy the blob into OUT_DIR");
    let name = path
        .file_name()
        .map_or("model.mdfb".into(), |n| n.to_string_lossy().into_owned());
    fs::write(
        out.join("model.rs"),
        model_rs(&copy, &name, &program, budget),
    )
    .expect("write model.rs");
}

/// The generated `model.rs`.
fn model_rs(copy: &Path, name: &str, program: &str, budget: Budget) -> String {
    let (arena, max) = (budget.arena, budget.max_data_len);
    format!(
        r#"/// The blob's bytes at a 4-byte-aligned address (the integer kernels read weights with word
/// loads and take a slower path for an unaligned blob).
#[repr(C, align(4))]
struct AlignedBlob<const N: usize>([u8; N]);
static BLOB_BYTES: AlignedBlob<{{ include_bytes!({copy:?}).len() }}> = AlignedBlob(*include_bytes!({copy:?}));
/// The blob, `{name}`, read in place from flash.
static BLOB: &[u8] = &BLOB_BYTES.0;
/// Its file name, for the log.
const BLOB_NAME: &str = {name:?};
/// The sampler program to run.
const PROGRAM: &str = {program:?};
/// The output buffer's length.
const MAX_DATA_LEN: usize = {max};
/// The blob as a validated model, parsed by the compiler with every check `Model::parse` makes
/// at run time (CRC, sections, every op against its tensors, every program): a blob that does
/// not validate is a build error, and the firmware links no parser (about 10 KB less flash).
/// The compiler's interpreter takes a while on a large blob (≈ 7 s for 512 KB of f32 weights),
/// past the point where `long_running_const_eval` would stop the build.
#[allow(long_running_const_eval)]
static MODEL: microdiff_runtime::Model<'static> = match microdiff_runtime::Model::parse(BLOB) {{
    Ok(m) => m,
    Err(_) => panic!("{name} is not a valid blob"),
}};
/// The sampler program, found by the compiler: a missing one is a build error.
const MODEL_PROGRAM: microdiff_runtime::blob::program::Program<'static> = match MODEL.program(PROGRAM) {{
    Ok(p) => p,
    Err(_) => panic!("{name} has no program {program}"),
}};
/// The arena the blob needs, planned by the compiler.
const ARENA_BYTES: usize = MODEL.arena_bytes();
const _: () = assert!(ARENA_BYTES <= {arena}, "{name}: the arena does not fit the board's RAM");
"#
    )
}
