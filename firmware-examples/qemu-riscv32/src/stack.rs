//! Stack high-water mark by painting: fill the free stack with a pattern before the work, then
//! find the lowest word that no longer holds it. The bounds come from riscv-rt's `link.x`: the
//! stack grows down from `_stack_start` towards the heap, which follows `.bss`/`.uninit` and is
//! empty (`_heap_size` defaults to 0), so the heap start is the stack's floor.

use core::arch::asm;
use core::ptr::{addr_of, with_exposed_provenance, with_exposed_provenance_mut};

/// Unlikely as a stack value: not a RAM or flash address, not a small integer or an f32 in range.
const PAINT: u32 = 0xA5A5_A5A5;

unsafe extern "C" {
    /// Top of the stack (one past its highest byte), defined by riscv-rt's `link.x`. Only its
    /// address is used.
    static _stack_start: u32;
}

fn floor() -> usize {
    riscv_rt::heap_start() as usize
}

fn top() -> usize {
    addr_of!(_stack_start) as usize
}

/// Paints every word from the floor up to the caller's stack pointer.
#[inline(never)]
pub fn paint() {
    let sp: usize;
    // SAFETY: copies the stack pointer into a register; touches no memory.
    unsafe { asm!("mv {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags)) };
    let mut addr = floor();
    while addr < sp {
        // SAFETY: `[floor, sp)` is RAM reserved for the stack by the linker script and lies
        // below every live frame (this one included: frames sit at and above `sp`, and RISC-V
        // has no red zone); one hart, no interrupts enabled, so nothing else uses it. `addr`
        // starts 4-aligned (riscv-rt asserts it for the heap start) and steps by 4.
        unsafe { with_exposed_provenance_mut::<u32>(addr).write_volatile(PAINT) };
        addr += 4;
    }
}

/// Bytes of stack used since [`paint`]: from the lowest overwritten word to the top.
pub fn high_water() -> usize {
    let mut addr = floor();
    // SAFETY: reads aligned words of the stack region `[floor, top)`, which is always RAM.
    while addr < top() && unsafe { with_exposed_provenance::<u32>(addr).read_volatile() } == PAINT {
        addr += 4;
    }
    top() - addr
}
