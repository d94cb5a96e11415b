//! nRF52840-DK (nRF52840, Cortex-M4F at 64 MHz): samples the blob and program chosen at build
//! time (`MICRODIFF_BLOB`, `MICRODIFF_PROGRAM`; default the golden int8 digits model with
//! `ddim10-cfg`) once per class (up to 10; once for an unconditional model), one sampler step
//! at a time, and prints the progress, the sample (8×8 samples as ASCII art) and the time it
//! took over defmt/RTT. The model is read in place from flash; the arena is a `static` sized at
//! compile time, and a missing program or an arena too big is a build error.
#![no_std]
#![no_main]

use cortex_m::peripheral::DWT;
use cortex_m_rt::entry;
use defmt_rtt as _;
use microdiff_runtime::{ArenaBuffer, SampleRequest, Sampler, Status};
use nrf52840_hal::{self as hal, pac};
use panic_probe as _;

// BLOB, BLOB_NAME, PROGRAM, MAX_DATA_LEN, and MODEL, MODEL_PROGRAM, ARENA_BYTES validated by the
// compiler: chosen and checked by build.rs.
include!(concat!(env!("OUT_DIR"), "/model.rs"));

const SEED: u64 = 1;
/// Classes sampled at most.
const MAX_CLASSES: u16 = 10;

#[entry]
fn main() -> ! {
    let p = defmt::unwrap!(pac::Peripherals::take());
    let mut core = defmt::unwrap!(cortex_m::Peripherals::take());
    // Clocks stay at their reset defaults (64 MHz CPU from the internal RC oscillator).
    // TIMER0 runs free at 1 MHz for microseconds; the DWT cycle counter counts CPU cycles.
    let mut timer = hal::Timer::periodic(p.TIMER0);
    timer.start(u32::MAX);
    core.DCB.enable_trace();
    core.DWT.enable_cycle_counter();

    let arena =
        defmt::unwrap!(cortex_m::singleton!(: ArenaBuffer<ARENA_BYTES> = ArenaBuffer::new()));
    // Validated by the compiler (`model.rs`): nothing to parse at run time.
    let (model, program) = (&MODEL, MODEL_PROGRAM);
    let classes = model.meta().classes;
    defmt::info!(
        "{=str}: {=usize} values, {=u16} classes, program {=str} ({=u16} steps), arena {=usize} bytes",
        BLOB_NAME,
        model.data_len(),
        classes,
        PROGRAM,
        program.steps,
        ARENA_BYTES
    );

    let mut buffer = [0.0f32; MAX_DATA_LEN];
    let out = defmt::unwrap!(buffer.get_mut(..model.data_len()));
    for class in 0..classes.clamp(1, MAX_CLASSES) {
        let spec = SampleRequest {
            seed: SEED,
            stream: 0,
            class,
        };
        let mut sampler = defmt::unwrap!(Sampler::new(model, program, arena.as_mut_bytes(), spec));
        // Only the steps are timed, not the log lines between them.
        let (mut total_us, mut total_cycles) = (0u32, 0u32);
        loop {
            let (start_us, start_cycles) = (timer.read(), DWT::cycle_count());
            let status = defmt::unwrap!(sampler.step());
            let cycles = DWT::cycle_count().wrapping_sub(start_cycles);
            let us = timer.read().wrapping_sub(start_us);
            total_us += us;
            total_cycles += cycles;
            let (step, steps) = (sampler.steps_done(), sampler.steps_total());
            defmt::info!(
                "class {=u16}: step {=u16}/{=u16}, {=u32} us",
                class,
                step,
                steps,
                us
            );
            if status == Status::Done {
                break;
            }
        }
        defmt::unwrap!(sampler.output(out));
        if let Ok(digit) = <&[f32; 64]>::try_from(&*out) {
            defmt::println!("digit {=u16}:", class);
            print_digit(digit);
        } else {
            defmt::println!("sample {=u16}: {=[?]}", class, out);
        }
        defmt::info!(
            "class {=u16}: sampled in {=u32} us, {=u32} cycles",
            class,
            total_us,
            total_cycles
        );
    }
    defmt::info!("done");
    loop {
        cortex_m::asm::wfi();
    }
}

/// Shades from blank to full ink, as `microdiff-firmware-common::print_digit` draws them.
const SHADES: &[u8] = b" .:-=+*#%@";

/// Prints an 8×8 sample, one defmt line per row, two characters per pixel.
fn print_digit(pixels: &[f32; 64]) {
    for row in pixels.chunks_exact(8) {
        let mut line = [b' '; 16];
        for (cell, &p) in line.chunks_exact_mut(2).zip(row) {
            cell.fill(shade(p));
        }
        defmt::println!("|{=str}|", core::str::from_utf8(&line).unwrap_or("?"));
    }
}

/// The character for a pixel value (0–16 in data units).
fn shade(p: f32) -> u8 {
    let level = if p.is_nan() {
        0.0
    } else {
        (p / 16.0).clamp(0.0, 1.0)
    };
    let i = (level * (SHADES.len() - 1) as f32 + 0.5) as usize;
    SHADES.get(i).copied().unwrap_or(b'?')
}
