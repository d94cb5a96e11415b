//! Raspberry Pi Pico (RP2040, Cortex-M0+ at 125 MHz): for each class 0–9, samples an 8×8 digit
//! from the int8 class-conditional digits model with `ddim10-cfg`, one sampler step at a time,
//! and prints the progress, the digit as ASCII art and the time it took over defmt/RTT.
//! The model is read in place from flash; the arena is a `static` sized at compile time.
#![no_std]
#![no_main]

use defmt_rtt as _;
use microdiff_runtime::{ArenaBuffer, Model, SampleSpec, Sampler, Status};
use panic_probe as _;
use rp_pico::hal::{self, pac};

/// The digits model: 64 pixels per sample, 0 (blank) to 16 (full ink), classes 0–9.
static BLOB: &[u8] = include_bytes!("../../../tests/golden/digits-i8.mdfb");

/// Arena bytes, planned by the compiler from the blob itself: a bad blob fails the build.
const ARENA_BYTES: usize = match microdiff_runtime::arena_bytes(BLOB) {
    Ok(n) => n,
    Err(_) => panic!("digits-i8.mdfb is not a valid blob"),
};

const PROGRAM: &str = "ddim10-cfg";
const SEED: u64 = 1;
const PIXELS: usize = 64;

#[hal::entry]
fn main() -> ! {
    let mut pac = defmt::unwrap!(pac::Peripherals::take());
    // The HAL's standard clock setup: 125 MHz system clock from the 12 MHz crystal, and the
    // watchdog's 1 MHz tick that the timer counts.
    let mut watchdog = hal::Watchdog::new(pac.WATCHDOG);
    let clocks = defmt::unwrap!(
        hal::clocks::init_clocks_and_plls(
            rp_pico::XOSC_CRYSTAL_FREQ,
            pac.XOSC,
            pac.CLOCKS,
            pac.PLL_SYS,
            pac.PLL_USB,
            &mut pac.RESETS,
            &mut watchdog,
        )
        .ok()
    );
    let timer = hal::Timer::new(pac.TIMER, &mut pac.RESETS, &clocks);

    let arena =
        defmt::unwrap!(cortex_m::singleton!(: ArenaBuffer<ARENA_BYTES> = ArenaBuffer::new()));
    let model = defmt::unwrap!(Model::parse(BLOB));
    let program = defmt::unwrap!(model.program(PROGRAM));
    defmt::info!(
        "digits-i8: {=usize} pixels, program {=str} ({=u16} steps), arena {=usize} bytes",
        model.data_len(),
        PROGRAM,
        program.steps,
        ARENA_BYTES
    );

    for class in 0..10 {
        let spec = SampleSpec {
            seed: SEED,
            stream: 0,
            class,
        };
        let mut sampler = defmt::unwrap!(Sampler::new(&model, program, arena.as_mut_bytes(), spec));
        // Only the steps are timed, not the log lines between them.
        let mut total_us = 0;
        loop {
            let start = timer.get_counter();
            let status = defmt::unwrap!(sampler.step());
            let us = (timer.get_counter() - start).to_micros();
            total_us += us;
            let (step, steps) = (sampler.steps_done(), sampler.steps_total());
            defmt::info!(
                "class {=u16}: step {=u16}/{=u16}, {=u64} us",
                class,
                step,
                steps,
                us
            );
            if status == Status::Done {
                break;
            }
        }
        let mut digit = [0.0; PIXELS];
        defmt::unwrap!(sampler.output(&mut digit));
        defmt::println!("digit {=u16}:", class);
        print_digit(&digit);
        defmt::info!("class {=u16}: sampled in {=u64} us", class, total_us);
    }
    defmt::info!("done");
    loop {
        cortex_m::asm::wfi();
    }
}

/// Shades from blank to full ink, as `microdiff-firmware-common::print_digit` draws them.
const SHADES: &[u8] = b" .:-=+*#%@";

/// Prints the 8×8 digit, one defmt line per row, two characters per pixel.
fn print_digit(pixels: &[f32; PIXELS]) {
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
