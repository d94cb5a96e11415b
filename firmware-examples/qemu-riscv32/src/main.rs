//! Every golden case on an RV32IMAC core (QEMU `virt`, no FPU): the report of
//! `microdiff-firmware-common` goes out over semihosting, then `stack <bytes>`, and the exit
//! status is 0 only if every output hash matched. `minstret` gives the instructions per sampler
//! step (exact under the runner's `-icount shift=0`). `--features baseline` prints the header only.
#![no_std]
#![no_main]

mod stack;

use core::fmt::Write;
use core::panic::PanicInfo;

use microdiff_firmware_common::{Board, Console};
use riscv::register::minstret;
use riscv_semihosting::{debug, hio};

/// Console on the host's stdout, instructions from `minstret`.
struct Virt {
    out: hio::HostStream,
    start: u64,
}

impl Board for Virt {
    fn write_str(&mut self, s: &str) {
        let _ = self.out.write_all(s.as_bytes());
    }
    fn counter_start(&mut self) {
        self.start = minstret::read64();
    }
    fn counter_read(&mut self) -> Option<u64> {
        Some(minstret::read64().wrapping_sub(self.start))
    }
}

#[riscv_rt::entry]
fn main() -> ! {
    stack::paint();
    let Ok(out) = hio::hstdout() else { exit(false) };
    let mut board = Virt { out, start: 0 };
    let ok = run(&mut board);
    let _ = writeln!(Console(&mut board), "stack {}", stack::high_water());
    exit(ok)
}

#[cfg(not(feature = "baseline"))]
fn run(board: &mut Virt) -> bool {
    use microdiff_firmware_common::ARENA_BYTES;
    // On the stack, so the high-water mark includes it.
    let mut arena = microdiff_runtime::ArenaBuffer::<ARENA_BYTES>::new();
    microdiff_firmware_common::run_all(board, "riscv32", arena.as_mut_bytes())
}

#[cfg(feature = "baseline")]
fn run(board: &mut Virt) -> bool {
    board.write_str("microdiff-firmware v1 target=riscv32\n");
    true
}

/// Ends the QEMU session: exit status 0 for `ok`, 1 otherwise.
fn exit(ok: bool) -> ! {
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    // A debugger may resume after the exit request; stay put.
    loop {
        core::hint::spin_loop();
    }
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    if let Ok(mut err) = hio::hstderr() {
        let _ = writeln!(err, "panic: {info}");
    }
    exit(false)
}

/// riscv-rt sends unhandled traps (and harts beyond `_max_hart_id`) to `abort`; its default
/// spins forever, which would hang the runner. Exit with failure instead. Touches no statics,
/// since it may run before `.data`/`.bss` are initialised.
#[unsafe(export_name = "abort")]
extern "C" fn abort() -> ! {
    exit(false)
}
