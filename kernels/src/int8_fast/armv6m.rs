//! The Armv6-M kernel (Cortex-M0 / M0+, and Armv8-M Baseline): [`qlinear`] with exactly the
//! output bits and the errors of [`int8::qlinear`].
//!
//! # Why `unsafe`
//!
//! The crate denies `unsafe_code`; this module allows it for one hand-written loop. On Armv6-M
//! most instructions reach only the eight low registers, and `LDRSB`/`LDRSH` take only a
//! register offset, so the compiled reference spends 6.75 instructions per multiply-accumulate,
//! a third of them reloading spilled offsets. The loop here keeps a 4×4 tile's four
//! accumulators in the high registers r8–r11 (`ADD` reaches them), the four inputs of a column
//! group in r2–r5, and takes a tile row's four weights with one `LDR` and shifts:
//! 70 instructions per 16 multiply-accumulates. It needs registers `asm!` may not name (r6, r7,
//! r8–r11 on some targets), so it is a `#[unsafe(naked)]` function that saves and restores
//! them itself.
//!
//! # What the safe wrapper promises
//!
//! * The arguments are checked first, with [`int8::qlinear_shapes`] and the reference's record
//!   checks, so a bad argument gets the reference's `Err`, and nothing is written on `Err`.
//! * The assembly runs only on word-aligned weights, inputs and records (`LDR` faults on an
//!   unaligned address on Armv6-M; blob tensors are word-aligned within the blob, but a blob
//!   from `include_bytes!` need not be); otherwise the reference runs (same bits, only slower).
//!   The records are then read by word loads too (`words`), the module's other `unsafe`.
//! * The assembly reads exactly one row tile of `w` and the `xw` it is given and writes four
//!   i32s; the sums are exact in any order (see [`int8::MAX_COLS`]), so they equal the
//!   reference's, and the requantization is the reference's own code.
//!
//! The QEMU check firmware (`firmware-examples/qemu-kernel-check`) runs this kernel against the
//! reference on thousands of cases (its `thumbv6m-none-eabi` build on an MPS2 board, which
//! executes Armv6-M code and has the RAM for them) and counts its instructions on the micro:bit.
#![allow(unsafe_code)]

use super::is_word_aligned;
use crate::error::KernelError;
use crate::int8::{self, QLINEAR_ROW_BYTES};

/// [`int8::qlinear`], bit for bit: the `MULS` tile kernel where it applies, else the reference.
pub fn qlinear(
    w: &[u8],
    xw: &[i16],
    params: &[u8],
    y_zp: i32,
    y: &mut [i8],
) -> Result<(), KernelError> {
    int8::qlinear_shapes(w, xw, params, y_zp, y)?;
    if !is_word_aligned(params.as_ptr()) {
        return int8::qlinear(w, xw, params, y_zp, y);
    }
    // Every record valid before anything is written (the reference's checks and errors).
    for p in params.as_chunks::<QLINEAR_ROW_BYTES>().0 {
        let (_, m, s) = words(p);
        int8::check_record(m, s)?;
    }
    qlinear_validated(w, xw, params, y_zp, y)
}

/// [`int8::qlinear_validated`], bit for bit: [`qlinear`] without the record check, for records
/// the caller checked once.
pub fn qlinear_validated(
    w: &[u8],
    xw: &[i16],
    params: &[u8],
    y_zp: i32,
    y: &mut [i8],
) -> Result<(), KernelError> {
    let (_, cols_p) = int8::qlinear_shapes(w, xw, params, y_zp, y)?;
    let aligned = is_word_aligned(w.as_ptr()) && is_word_aligned(xw.as_ptr());
    if !aligned || !is_word_aligned(params.as_ptr()) {
        return int8::qlinear_validated(w, xw, params, y_zp, y);
    }
    let records = params.as_chunks::<QLINEAR_ROW_BYTES>().0;
    let groups = cols_p / 4;
    // Row tiles by `next()`, as the reference takes them (no `Zip` over runtime-sized chunks,
    // whose division-by-zero panic would be linked into firmware).
    let mut row_tiles = w.chunks_exact((16 * groups).max(16));
    for (rt, ys) in y.chunks_mut(4).enumerate() {
        let Some(tiles) = row_tiles.next() else {
            break;
        };
        let ps = records.get(4 * rt..).unwrap_or(&[]);
        let mut acc = [0i32; 4];
        // SAFETY: `qlinear_shapes` checked `w.len() == pad4(rows)·cols_p` and
        // `xw.len() == cols_p`, a non-zero multiple of 4: `tiles` is one row tile of
        // `16·groups` bytes, `groups >= 1`, and `xw` has `4·groups` i16s. `w` is word-aligned
        // and `16·groups` is a multiple of 4, so `tiles` is too; `xw` is word-aligned. `acc`
        // is four writable, aligned i32s. The contract of `tile_sums`.
        unsafe { tile_sums(tiles.as_ptr(), xw.as_ptr(), groups, &mut acc) };
        for ((yr, p), &a) in ys.iter_mut().zip(ps).zip(&acc) {
            *yr = int8::requantize_fields(a, words(p), y_zp);
        }
    }
    Ok(())
}

/// A record's `(bias, multiplier, shift)` by three word loads (`int8::record` reads bytes:
/// ten instructions a word on a Cortex-M0, which has no unaligned loads).
#[inline]
fn words(p: &[u8; QLINEAR_ROW_BYTES]) -> (i32, i32, i32) {
    let q = p.as_ptr().cast::<i32>();
    // SAFETY: `p` is 12 readable bytes, three i32s; `qlinear` reads records only from a
    // word-aligned `params` (checked), and 12 is a multiple of 4, so `q` is word-aligned.
    // Armv6-M and Armv8-M Baseline cores here are little-endian, as the record is.
    unsafe { (q.read(), q.add(1).read(), q.add(2).read()) }
}

/// The four row sums of one row tile: `acc[i] = Σ_c w[i][c] · xw[c]` over `4·groups` columns,
/// in the tile layout of [`int8::tile_index`] (per 4-column group, four row words whose bytes
/// are columns 0, 2, 1, 3).
///
/// Registers in the loop: r0 the tile, r1 the input, r2–r5 the group's inputs `x0..x3`, r6 a
/// row word, r7 scratch, r8–r11 the accumulators, r12 the input's end. Per group: two `LDR`s
/// and four sign extensions for the inputs; per row one `LDR`, one `SXTB` / `ASRS` or
/// `LSLS`+`ASRS` per weight, four `MULS` and four `ADD`s: 7 + 4·15 + 3 = 70 instructions per
/// 16 multiply-accumulates.
///
/// # Safety
/// `w` is word-aligned with `16·groups` readable bytes, `xw` word-aligned with `4·groups`
/// readable i16s, `groups >= 1`, and `acc` four writable, aligned i32s.
#[unsafe(naked)]
unsafe extern "C" fn tile_sums(w: *const u8, xw: *const i16, groups: usize, acc: *mut [i32; 4]) {
    core::arch::naked_asm!(
        // One row of the tile: word at [r0, #off] into accumulator `acc`. Byte 0 is column 0
        // (x0, r2), byte 1 column 2 (x2, r4), byte 2 column 1 (x1, r3), byte 3 column 3 (x3, r5).
        ".macro microdiff_v6m_row off, acc",
        "ldr r6, [r0, #\\off]",
        "sxtb r7, r6",
        "muls r7, r2, r7",
        "add \\acc, r7",
        "asrs r7, r6, #24",
        "muls r7, r5, r7",
        "add \\acc, r7",
        "lsls r7, r6, #8",
        "asrs r7, r7, #24",
        "muls r7, r3, r7",
        "add \\acc, r7",
        "lsls r6, r6, #16",
        "asrs r6, r6, #24",
        "muls r6, r4, r6",
        "add \\acc, r6",
        ".endm",
        "push {{r4-r7, lr}}",
        "mov r4, r8",
        "mov r5, r9",
        "mov r6, r10",
        "mov r7, r11",
        "push {{r3-r7}}",
        // r12 = xw + 8·groups, the loop's end; zero accumulators.
        "lsls r2, r2, #3",
        "adds r2, r1, r2",
        "mov r12, r2",
        "movs r4, #0",
        "mov r8, r4",
        "mov r9, r4",
        "mov r10, r4",
        "mov r11, r4",
        "2:",
        // (x0, x1) and (x2, x3) as i16 pairs, sign-extended into r2..r5.
        "ldr r2, [r1, #0]",
        "ldr r4, [r1, #4]",
        "adds r1, #8",
        "asrs r3, r2, #16",
        "sxth r2, r2",
        "asrs r5, r4, #16",
        "sxth r4, r4",
        "microdiff_v6m_row 0, r8",
        "microdiff_v6m_row 4, r9",
        "microdiff_v6m_row 8, r10",
        "microdiff_v6m_row 12, r11",
        "adds r0, #16",
        "cmp r1, r12",
        "bne 2b",
        // acc (saved r3) ← r8..r11; restore r8..r11 and the low registers.
        "pop {{r3}}",
        "mov r4, r8",
        "mov r5, r9",
        "mov r6, r10",
        "mov r7, r11",
        "stm r3!, {{r4-r7}}",
        "pop {{r4-r7}}",
        "mov r8, r4",
        "mov r9, r5",
        "mov r10, r6",
        "mov r11, r7",
        "pop {{r4-r7, pc}}",
        ".purgem microdiff_v6m_row",
    )
}
