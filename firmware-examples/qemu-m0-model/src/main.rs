//! Your model on QEMU's BBC micro:bit (nRF51822: Cortex-M0, 16 KiB RAM, soft float): samples
//! the blob and program chosen at build time (`MICRODIFF_BLOB`, `MICRODIFF_PROGRAM`, see
//! `build.rs`) once per class (or once, unconditional), one sampler step at a time, and prints
//! each sample in data units with its instruction count over semihosting; 8×8 samples also as
//! ASCII art. QEMU exits 0 when every sample was drawn.
#![no_std]
#![no_main]

use core::fmt::Write;

use microdiff_firmware_common::qemu_cortex_m::{Qemu, run_board};
use microdiff_firmware_common::{Board, Console, print_digit};
use microdiff_runtime::{ArenaBuffer, Error, SampleRequest, Sampler, Status};

include!(concat!(env!("OUT_DIR"), "/model.rs"));

/// The micro:bit's SysTick clock under QEMU (calibrated in `qemu-m0/src/main.rs`).
const SYSTICK_HZ: u64 = 16_000_000;
/// Seed of every sample (stream 0), so the output is the host's `microdiff sample --seed 1`.
const SEED: u64 = 1;
/// Classes sampled at most.
const MAX_CLASSES: u16 = 10;

#[cortex_m_rt::entry]
fn main() -> ! {
    run_board(SYSTICK_HZ, |board| {
        let Some(arena) = cortex_m::singleton!(: ArenaBuffer<ARENA_BYTES> = ArenaBuffer::new())
        else {
            return false;
        };
        match sample_all(board, arena.as_mut_bytes()) {
            Ok(()) => true,
            Err(e) => {
                let _ = writeln!(Console(board), "error {e}");
                false
            }
        }
    })
}

fn sample_all(board: &mut Qemu, arena: &mut [u8]) -> Result<(), Error> {
    // Validated by the compiler (`model.rs`): nothing to parse at run time.
    let (model, program) = (&MODEL, MODEL_PROGRAM);
    let classes = model.meta().classes;
    let _ = writeln!(
        Console(board),
        "model {BLOB_NAME} program {PROGRAM} steps {} values {} classes {classes} arena {}",
        program.steps,
        model.data_len(),
        arena.len()
    );
    let mut out = [0.0f32; MAX_DATA_LEN];
    let out = out.get_mut(..model.data_len()).ok_or(Error::OutputLength {
        expected: model.data_len(),
        provided: MAX_DATA_LEN,
    })?;
    for class in 0..classes.clamp(1, MAX_CLASSES) {
        let spec = SampleRequest {
            seed: SEED,
            stream: 0,
            class,
        };
        let mut sampler = Sampler::new(model, program, arena, spec)?;
        let mut instructions = Some(0u64);
        loop {
            board.counter_start();
            let status = sampler.step()?;
            instructions = instructions.zip(board.counter_read()).map(|(a, b)| a + b);
            if status == Status::Done {
                break;
            }
        }
        sampler.output(out)?;
        let mut c = Console(board);
        let _ = write!(c, "sample class={class}");
        for v in out.iter() {
            let _ = write!(c, " {v}");
        }
        let _ = writeln!(c);
        if let Some(n) = instructions {
            let _ = writeln!(c, "instructions {n}");
        }
        if out.len() == 64 {
            print_digit(&mut c, out);
        }
    }
    let _ = writeln!(Console(board), "done");
    Ok(())
}
