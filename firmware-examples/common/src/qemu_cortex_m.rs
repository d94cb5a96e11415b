//! Board support every QEMU Cortex-M firmware shares (feature `qemu-cortex-m`): a semihosting
//! console, SysTick as an instruction counter under `-icount shift=0`, the stack high-water
//! mark (cortex-m-rt's `paint-stack`), and panic / HardFault handlers that end the QEMU run
//! with a failure status instead of hanging CI. A board's `main` is one call to [`main`].

use core::fmt::Write;
use core::panic::PanicInfo;

use cortex_m::peripheral::{SYST, syst::SystClkSource};
use cortex_m_rt::{ExceptionFrame, exception};
use cortex_m_semihosting::{debug, hio};

use crate::{Board, Console};

/// Under `-icount shift=0` each instruction advances the virtual clock by 1 ns.
const INSTRUCTIONS_PER_SECOND: u64 = 1_000_000_000;
/// SysTick is a 24-bit down-counter; count down from the top.
const SYST_RELOAD: u32 = 0x00FF_FFFF;

/// Semihosting console plus SysTick as the instruction counter.
pub struct Qemu {
    stdout: hio::HostStream,
    syst: SYST,
    systick_hz: u64,
}

impl Board for Qemu {
    fn write_str(&mut self, s: &str) {
        let _ = self.stdout.write_all(s.as_bytes());
    }

    fn counter_start(&mut self) {
        self.syst.clear_current();
    }

    fn counter_read(&mut self) -> Option<u64> {
        // After `clear_current` the first clock edge loads `SYST_RELOAD` and each later edge
        // counts down one, so `reload − current + 1` edges have passed (none while it reads 0).
        let ticks = match SYST::get_current() {
            0 => 0,
            current => SYST_RELOAD - current + 1,
        };
        // COUNTFLAG set means the counter wrapped: more than 2^24 ticks, the count is lost.
        if self.syst.has_wrapped() {
            return None;
        }
        Some(u64::from(ticks) * INSTRUCTIONS_PER_SECOND / self.systick_hz)
    }
}

/// Runs the golden cases (or, with the `baseline` feature, only prints the header) and exits
/// QEMU through semihosting: status 0 only when every case matched. `systick_hz` is the
/// board's SysTick clock, calibrated per board (see each board's `main.rs`).
pub fn main(target: &'static str, systick_hz: u64) -> ! {
    run_board(systick_hz, |board| run(board, target))
}

/// Sets up the semihosting console and the SysTick counter, runs `body`, prints the stack
/// high-water mark and exits QEMU: status 0 only when `body` returned `true`.
pub fn run_board(systick_hz: u64, body: impl FnOnce(&mut Qemu) -> bool) -> ! {
    let ok = match (hio::hstdout(), cortex_m::Peripherals::take()) {
        (Ok(stdout), Some(p)) => {
            let mut syst = p.SYST;
            syst.set_clock_source(SystClkSource::Core);
            syst.set_reload(SYST_RELOAD);
            syst.clear_current();
            syst.enable_counter();
            let mut board = Qemu {
                stdout,
                syst,
                systick_hz,
            };
            let ok = body(&mut board);
            let _ = writeln!(Console(&mut board), "stack {}", stack_high_water());
            ok
        }
        _ => false,
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

#[cfg(not(feature = "baseline"))]
fn run(board: &mut Qemu, target: &str) -> bool {
    use crate::ARENA_BYTES;
    use microdiff_runtime::ArenaBuffer;
    // In `.bss` rather than on the stack, so `llvm-size` shows it and `stack` is stack alone.
    static mut ARENA: ArenaBuffer<ARENA_BYTES> = ArenaBuffer::new();
    #[allow(
        clippy::deref_addrof,
        reason = "the suggested `&mut ARENA` is a `static_mut_refs` error"
    )]
    // SAFETY: `run` is called once, from `main`, and nothing else names `ARENA`, so this is the
    // only reference to it for the rest of the program.
    let arena = unsafe { &mut *(&raw mut ARENA) };
    crate::run_all(board, target, arena.as_mut_bytes())
}

#[cfg(feature = "baseline")]
fn run(board: &mut Qemu, target: &str) -> bool {
    let _ = writeln!(Console(board), "microdiff-firmware v1 target={target}");
    true
}

/// Bytes of stack ever used. cortex-m-rt (feature `paint-stack`) fills `_stack_end.._stack_start`
/// (end of statics to top of RAM) with `STACK_PAINT_VALUE` before `main`; the lowest word that
/// no longer holds it marks the deepest the stack went.
fn stack_high_water() -> usize {
    unsafe extern "C" {
        static _stack_end: u32;
        static _stack_start: u32;
    }
    let (mut p, top) = (&raw const _stack_end, &raw const _stack_start);
    // SAFETY: the linker script reserves `_stack_end.._stack_start` for the stack; it is
    // word-aligned RAM, and the words below the live stack pointer belong to no Rust object.
    while p < top && unsafe { p.read_volatile() } == cortex_m_rt::STACK_PAINT_VALUE {
        p = p.wrapping_add(1);
    }
    top as usize - p as usize
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
