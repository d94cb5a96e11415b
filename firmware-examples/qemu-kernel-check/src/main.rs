//! Checks `microdiff_kernels::int8_fast` (the SMLAD / SXTB16 assembly on a Cortex-M4 or M7)
//! against the portable reference kernels `microdiff_kernels::int8` on QEMU, bit for bit, on
//! thousands of pseudo-random cases of every shape class (`cases.rs`), then measures the
//! instructions per multiply-accumulate of both on the digits model's layer shapes (`perf.rs`).
//!
//! Prints over semihosting, e.g.
//!
//! ```text
//! kernel-check cpu=cortex-m4 dsp=1 armv6m=0
//! kernel-check: 6819 cases (3406 on the assembly path), 0 mismatches
//! qlinear 96x64: 1.220 instructions/MAC (portable 10.366); widen 64: 210 instructions (portable 350)
//! ...
//! qlinear digits layers: 1.110 instructions/MAC (portable 9.952)
//! kernel-check: ok
//! ```
//!
//! and exits through semihosting with status 0 only when there was no mismatch and every
//! assembly figure is within its budget (`perf::dsp_budget`, `perf::armv6m_budget`).
//! `check.sh` runs the `thumbv7em` build (DSP) on the M4F and the M7, the `thumbv6m` build
//! (the Armv6-M kernel) on the M4F board with all the cases, and again on the micro:bit
//! (16 KiB of RAM: `cfg(small_ram)`, no cases) for its instruction counts on a Cortex-M0.
#![no_std]
#![no_main]

#[cfg(not(small_ram))]
mod cases;
mod perf;

use core::fmt::Write;
use core::panic::PanicInfo;

use cortex_m::peripheral::{CPUID, SYST, syst::SystClkSource};
use cortex_m_rt::{ExceptionFrame, entry, exception};
use cortex_m_semihosting::{debug, hio};

/// SysTick clock (core clock source) of the MPS2 boards (mps2-an386, mps2-an500): their 25 MHz
/// SYSCLK; of the micro:bit: the nRF51's 16 MHz. Under `-icount shift=0` one instruction is
/// 1 ns, so a tick is 40 or 62.5 instructions (calibrated in `firmware-examples/qemu-m4f`,
/// `qemu-m7` and `qemu-m0`, `src/main.rs`).
const SYSTICK_HZ_MPS2: u64 = 25_000_000;
const SYSTICK_HZ_MICROBIT: u64 = 16_000_000;
/// SysTick is a 24-bit down-counter; count down from the top.
const SYST_RELOAD: u32 = 0x00FF_FFFF;

/// Semihosting stdout (or nothing) as `core::fmt::Write`.
struct Out(Option<hio::HostStream>);

impl Write for Out {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        if let Some(h) = self.0.as_mut() {
            h.write_all(s.as_bytes()).map_err(|_| core::fmt::Error)?;
        }
        Ok(())
    }
}

/// SysTick as an instruction counter.
pub struct Counter {
    syst: SYST,
    hz: u64,
}

impl Counter {
    /// Instructions `f` took (to a tick), or `None` if SysTick wrapped (2^24 ticks).
    pub fn measure(&mut self, f: impl FnOnce()) -> Option<u64> {
        // Clearing zeroes the counter and COUNTFLAG; the next edge loads `SYST_RELOAD` and the
        // later ones count down. `(start − end) mod 2^24` is the edges between the two reads,
        // whether or not the first edge came before `start`.
        self.syst.clear_current();
        let start = SYST::get_current();
        f();
        let end = SYST::get_current();
        if self.syst.has_wrapped() {
            return None;
        }
        Some(u64::from(start.wrapping_sub(end) & SYST_RELOAD) * 1_000_000_000 / self.hz)
    }
}

/// The core's name and its board's SysTick clock, from CPUID's PARTNO (bits 15:4).
fn cpu(cpuid: &CPUID) -> (&'static str, u64) {
    match (cpuid.base.read() >> 4) & 0xFFF {
        0xC20 => ("cortex-m0", SYSTICK_HZ_MICROBIT),
        0xC24 => ("cortex-m4", SYSTICK_HZ_MPS2),
        0xC27 => ("cortex-m7", SYSTICK_HZ_MPS2),
        _ => ("unknown", SYSTICK_HZ_MPS2),
    }
}

#[entry]
fn main() -> ! {
    let mut out = Out(hio::hstdout().ok());
    let ok = match cortex_m::Peripherals::take() {
        Some(p) => {
            let mut syst = p.SYST;
            syst.set_clock_source(SystClkSource::Core);
            syst.set_reload(SYST_RELOAD);
            syst.clear_current();
            syst.enable_counter();
            let (name, hz) = cpu(&p.CPUID);
            let dsp = u8::from(microdiff_kernels::int8_fast::DSP);
            let v6m = u8::from(microdiff_kernels::int8_fast::ARMV6M);
            let _ = writeln!(out, "kernel-check cpu={name} dsp={dsp} armv6m={v6m}");
            run(&mut out, &mut Counter { syst, hz })
        }
        None => false,
    };
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        core::hint::spin_loop();
    }
}

fn run(out: &mut Out, counter: &mut Counter) -> bool {
    let dsp = microdiff_kernels::int8_fast::DSP;
    let mut ok = check_cases(out);
    let (mut fast, mut portable, mut macs) = (0, 0, 0);
    for (rows, cols) in perf::DIGITS_SHAPES {
        let Some(p) = perf::measure((rows, cols), counter) else {
            let _ = writeln!(out, "qlinear {rows}x{cols}: SysTick wrapped");
            ok = false;
            continue;
        };
        let n = (rows * cols) as u64;
        let _ = writeln!(
            out,
            "qlinear {rows}x{cols}: {} instructions/MAC (portable {}); \
             widen {cols}: {} instructions (portable {})",
            Milli(p.fast, n),
            Milli(p.portable, n),
            p.widen_fast,
            p.widen_portable
        );
        let budget = if dsp {
            Some(perf::dsp_budget(rows, cols))
        } else if microdiff_kernels::int8_fast::ARMV6M {
            Some(perf::armv6m_budget(rows, cols))
        } else {
            None
        };
        if let Some(budget) = budget.filter(|&b| p.fast > b) {
            let budget = Milli(budget, n);
            let _ = writeln!(out, "over budget: {budget} instructions/MAC");
            ok = false;
        }
        (fast, portable, macs) = (fast + p.fast, portable + p.portable, macs + n);
    }
    let _ = writeln!(
        out,
        "qlinear digits layers: {} instructions/MAC (portable {})",
        Milli(fast, macs),
        Milli(portable, macs)
    );
    let _ = writeln!(out, "kernel-check: {}", if ok { "ok" } else { "FAILED" });
    ok
}

/// The bit-for-bit cases; true when none mismatched and some ran the assembly.
#[cfg(not(small_ram))]
fn check_cases(out: &mut Out) -> bool {
    let tally = cases::check_all();
    let _ = writeln!(
        out,
        "kernel-check: {} cases ({} on the assembly path), {} mismatches",
        tally.cases, tally.fast, tally.mismatches
    );
    if let Some(first) = tally.first_mismatch {
        let _ = writeln!(out, "first mismatch: {first}");
    }
    tally.mismatches == 0 && tally.fast > 0
}

/// The micro:bit has no RAM for the cases (the MPS2 build of the same target runs them).
#[cfg(small_ram)]
fn check_cases(out: &mut Out) -> bool {
    let _ = writeln!(
        out,
        "kernel-check: no cases here (16 KiB of RAM; the MPS2 build of this target ran them)"
    );
    true
}

/// `n / d` with three decimals.
struct Milli(u64, u64);

impl core::fmt::Display for Milli {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let m = (self.0 * 1000).checked_div(self.1).unwrap_or(0);
        write!(f, "{}.{:03}", m / 1000, m % 1000)
    }
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    if let Ok(mut stderr) = hio::hstderr() {
        let _ = writeln!(stderr, "panic: {info}");
    }
    debug::exit(debug::EXIT_FAILURE);
    loop {
        core::hint::spin_loop();
    }
}

/// A fault ends the QEMU run with failure instead of spinning forever.
#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    if let Ok(mut stderr) = hio::hstderr() {
        let _ = writeln!(stderr, "hard fault: {frame:?}");
    }
    debug::exit(debug::EXIT_FAILURE);
    loop {
        core::hint::spin_loop();
    }
}
