//! What every microdiff firmware example shares: the golden cases (generated from
//! `tests/golden/cases.txt` by `build.rs`), a runner that samples each case with the no_std
//! runtime, and the plain-text report the host-side conformance runner parses.
//!
//! A board supplies a [`Board`]: a way to print a line, and optionally an instruction counter.
//! Everything else — arena sizing, sampling, hashing, the report — is here, once. The QEMU
//! Cortex-M boards share their whole board support too (feature `qemu-cortex-m`,
//! [`qemu_cortex_m`]), so their `main.rs` only names the board and its SysTick clock.
//!
//! # Report format (one record per line, space-separated)
//! ```text
//! microdiff-firmware v1 target=<name>
//! arena <bytes>
//! case <i> <blob> <program> <seed> <stream> <class> <sha256 hex> match|MISMATCH|ERROR:<error>
//! case <i> <blob> <program> <seed> <stream> <class> - skipped     (blob left out: small-flash)
//! out <i> <f32 bits as 8 hex digits, one per element …>
//! perf <i> steps=<n> evals=<n> instructions=<n>          (only with an instruction counter)
//! netperf <blob> <program> instructions=<n>               (one network evaluation, first case of each blob)
//! digit <class>  followed by 8 lines of ASCII art          (digits model, first case)
//! stack <bytes>                                             (printed by the board)
//! done <passed>/<total>
//! ```
#![no_std]
#![deny(missing_docs)]

#[cfg(feature = "qemu-cortex-m")]
pub mod qemu_cortex_m;

use core::fmt::Write;

use microdiff_runtime::blob::program::Instr;
use microdiff_runtime::{Error, Model, SampleRequest, Sampler, Status, evaluate};
use sha2::{Digest, Sha256};

/// One golden case.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// Index into [`BLOBS`].
    pub blob: usize,
    /// Program name.
    pub program: &'static str,
    /// Noise seed.
    pub seed: u64,
    /// Sample index.
    pub stream: u32,
    /// Class.
    pub class: u16,
    /// Expected SHA-256 of the output (little-endian f32 bytes, data units).
    pub sha256: [u8; 32],
    /// Left out of this build (feature `small-flash`: its blob does not fit the flash).
    pub skipped: bool,
}

include!(concat!(env!("OUT_DIR"), "/golden.rs"));

/// Largest sample any golden blob produces.
pub const MAX_DATA_LEN: usize = 64;

/// Bytes of arena that run every golden blob: the largest `arena_bytes` among them,
/// computed by the compiler from the blobs themselves.
pub const ARENA_BYTES: usize = {
    let mut max = 0;
    let mut i = 0;
    while i < BLOBS.len() {
        // A blob left out by `small-flash` is empty.
        if BLOBS[i].1.is_empty() {
            i += 1;
            continue;
        }
        let n = match microdiff_runtime::arena_bytes(BLOBS[i].1) {
            Ok(n) => n,
            Err(_) => panic!("a golden blob is invalid"),
        };
        if n > max {
            max = n;
        }
        i += 1;
    }
    max
};

/// What a board provides to the runner.
pub trait Board {
    /// Writes `s` to the board's console (semihosting, RTT, …).
    fn write_str(&mut self, s: &str);
    /// Starts counting instructions (or cycles) for one sampler step.
    fn counter_start(&mut self) {}
    /// Instructions executed since [`Board::counter_start`], if the board can count them.
    fn counter_read(&mut self) -> Option<u64> {
        None
    }
}

/// `core::fmt` adapter over a [`Board`].
pub struct Console<'a, B: Board>(pub &'a mut B);

impl<B: Board> Write for Console<'_, B> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0.write_str(s);
        Ok(())
    }
}

/// Result of one case.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// The sample in data units.
    pub out: [f32; MAX_DATA_LEN],
    /// Elements used in `out`.
    pub len: usize,
    /// SHA-256 of the sample bytes.
    pub sha256: [u8; 32],
    /// Sampler steps.
    pub steps: u16,
    /// Network evaluations.
    pub evals: u16,
    /// Instructions counted over all steps, if the board counts.
    pub instructions: Option<u64>,
}

/// Samples one case into `arena`.
pub fn run_case<B: Board>(board: &mut B, case: &Case, arena: &mut [u8]) -> Result<Outcome, Error> {
    let blob = BLOBS
        .get(case.blob)
        .map(|b| b.1)
        .ok_or(Error::ProgramNotFound)?;
    let model = Model::parse(blob)?;
    let program = model.program(case.program)?;
    let spec = SampleRequest {
        seed: case.seed,
        stream: case.stream,
        class: case.class,
    };
    let mut sampler = Sampler::new(&model, program, arena, spec)?;
    let mut instructions = Some(0u64);
    loop {
        board.counter_start();
        let status = sampler.step()?;
        instructions = match (instructions, board.counter_read()) {
            (Some(total), Some(n)) => Some(total + n),
            _ => None,
        };
        if status == Status::Done {
            break;
        }
    }
    let len = model.data_len();
    let mut out = [0.0f32; MAX_DATA_LEN];
    let slot = out.get_mut(..len).ok_or(Error::OutputLength {
        expected: len,
        provided: MAX_DATA_LEN,
    })?;
    sampler.output(slot)?;
    let mut h = Sha256::new();
    for v in slot.iter() {
        h.update(v.to_le_bytes());
    }
    Ok(Outcome {
        out,
        len,
        sha256: h.finalize().into(),
        steps: program.steps,
        evals: program.evals,
        instructions,
    })
}

/// Instructions of one network evaluation of `case`'s blob at its program's first `EVAL` time
/// (the network alone, no sampler work), if the board counts instructions.
pub fn network_instructions<B: Board>(board: &mut B, case: &Case, arena: &mut [u8]) -> Option<u64> {
    let blob = BLOBS.get(case.blob)?.1;
    let model = Model::parse(blob).ok()?;
    let program = model.program(case.program).ok()?;
    let time = program.instructions().find_map(|i| match i {
        Ok((_, Instr::Eval { time, .. })) => Some(time),
        _ => None,
    })?;
    let n = model.data_len();
    let mut x = [0.0f32; MAX_DATA_LEN];
    for (i, v) in x.iter_mut().enumerate() {
        // A fixed, sample-like input (the integer path's cost hardly depends on it).
        *v = ((i % 7) as f32 - 3.0) * 0.4;
    }
    let mut out = [0.0f32; MAX_DATA_LEN];
    board.counter_start();
    evaluate(
        &model,
        arena,
        x.get(..n)?,
        time,
        case.class,
        out.get_mut(..n)?,
    )
    .ok()?;
    board.counter_read()
}

fn hex(c: &mut impl Write, bytes: &[u8]) {
    for b in bytes {
        let _ = write!(c, "{b:02x}");
    }
}

/// Prints an 8×8 sample (pixel values 0–16) as ASCII art, one row per line.
pub fn print_digit(c: &mut impl Write, pixels: &[f32]) {
    const SHADES: &[u8] = b" .:-=+*#%@";
    for row in pixels.chunks(8) {
        for &p in row {
            let level = if p.is_nan() {
                0.0
            } else {
                (p / 16.0).clamp(0.0, 1.0)
            };
            let i = ((level * (SHADES.len() - 1) as f32) + 0.5) as usize;
            let ch = SHADES.get(i).copied().unwrap_or(b'?') as char;
            let _ = write!(c, "{ch}{ch}");
        }
        let _ = writeln!(c);
    }
}

/// Runs every golden case, printing the report; returns `true` when all match.
pub fn run_all<B: Board>(board: &mut B, target: &str, arena: &mut [u8]) -> bool {
    let _ = writeln!(Console(board), "microdiff-firmware v1 target={target}");
    let _ = writeln!(Console(board), "arena {}", arena.len());
    let mut passed = 0;
    let mut digit_shown = false;
    let mut total = 0;
    for (i, case) in CASES.iter().enumerate() {
        let name = BLOBS.get(case.blob).map_or("?", |b| b.0);
        if case.skipped {
            let _ = writeln!(
                Console(board),
                "case {i} {name} {} {} {} {} - skipped",
                case.program,
                case.seed,
                case.stream,
                case.class
            );
            continue;
        }
        total += 1;
        let result = run_case(board, case, arena);
        let mut c = Console(board);
        let _ = write!(
            c,
            "case {i} {name} {} {} {} {} ",
            case.program, case.seed, case.stream, case.class
        );
        match result {
            Ok(o) => {
                hex(&mut c, &o.sha256);
                let ok = o.sha256 == case.sha256;
                passed += ok as usize;
                let _ = writeln!(c, " {}", if ok { "match" } else { "MISMATCH" });
                let _ = write!(c, "out {i}");
                for v in o.out.iter().take(o.len) {
                    let _ = write!(c, " {:08x}", v.to_bits());
                }
                let _ = writeln!(c);
                if let Some(n) = o.instructions {
                    let _ = writeln!(
                        c,
                        "perf {i} steps={} evals={} instructions={n}",
                        o.steps, o.evals
                    );
                }
                if CASES.iter().position(|k| k.blob == case.blob) == Some(i)
                    && let Some(n) = network_instructions(board, case, arena)
                {
                    let _ = writeln!(
                        Console(board),
                        "netperf {name} {} instructions={n}",
                        case.program
                    );
                }
                let mut c = Console(board);
                if o.len == 64 && !digit_shown {
                    digit_shown = true;
                    let _ = writeln!(c, "digit {}", case.class);
                    print_digit(&mut c, o.out.get(..64).unwrap_or(&[]));
                }
            }
            Err(e) => {
                let _ = writeln!(c, "- ERROR:{e}");
            }
        }
    }
    let _ = writeln!(Console(board), "done {passed}/{total}");
    passed == total
}
