//! Golden conformance run on QEMU's MPS2-AN500 (Cortex-M7): every case of
//! `tests/golden/cases.txt` through the no_std runtime, reported over semihosting in the format
//! of `microdiff-firmware-common`, with instruction counts (SysTick under `-icount shift=0`) and
//! the stack high-water mark. QEMU exits 0 only when every case matches.
#![no_std]
#![no_main]

/// SysTick clock (core clock source) on QEMU's mps2-an500: the board's 25 MHz SYSCLK
/// (`SYSCLK_FRQ` in QEMU's hw/arm/mps2.c drives the armv7m `cpuclk`). Calibrated under
/// `-icount shift=0` with a `subs`/`bne` loop (2 instructions an iteration): 2·10^5, 2·10^6 and
/// 6·10^6 instructions took 5 000, 50 000 and 150 000 ticks — 40 instructions a tick.
const SYSTICK_HZ: u64 = 25_000_000;

#[cortex_m_rt::entry]
fn main() -> ! {
    microdiff_firmware_common::qemu_cortex_m::main("m7", SYSTICK_HZ)
}
