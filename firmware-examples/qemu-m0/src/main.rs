//! Golden conformance run on QEMU's BBC micro:bit (nRF51822: Cortex-M0, 16 KiB RAM): every case
//! of `tests/golden/cases.txt` through the no_std runtime, reported over semihosting in the
//! format of `microdiff-firmware-common`, with instruction counts (SysTick under
//! `-icount shift=0`) and the stack high-water mark. QEMU exits 0 only when every case matches.
#![no_std]
#![no_main]

/// SysTick clock (core clock source) on QEMU's microbit: the nRF51's fixed 16 MHz HCLK
/// (`HCLK_FRQ` in QEMU's hw/arm/nrf51_soc.c drives the armv7m `cpuclk`; the real nRF51 has no
/// SysTick, QEMU always models one). Calibrated under `-icount shift=0` with a `subs`/`bne`
/// loop (2 instructions an iteration): 2·10^5, 2·10^6 and 6·10^6 instructions took 3 200,
/// 32 000 and 96 000 ticks — 62.5 instructions a tick.
const SYSTICK_HZ: u64 = 16_000_000;

#[cortex_m_rt::entry]
fn main() -> ! {
    microdiff_firmware_common::qemu_cortex_m::main("m0", SYSTICK_HZ)
}
