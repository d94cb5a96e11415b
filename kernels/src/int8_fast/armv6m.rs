//! The Armv6-M kernel (Cortex-M0 / M0+, and Armv8-M Baseline): [`qlinear_pairs`] with exactly
//! the output bits and the errors of [`int8::qlinear_pairs`].
//!
//! # Why `unsafe`
//!
//! The crate denies `unsafe_code`; this module allows it for one hand-written loop. On Armv6-M
//! most instructions reach only the eight low registers, and `LDRSB`/`LDRSH` take only a
//! register offset, so the compiled reference spends 6.75 instructions per multiply-accumulate,
//! a third of them reloading spilled offsets. The loop here keeps a 4×4 tile's four
//! sums in the high registers r8–r11 (`ADD` reaches them), the four inputs of a column
//! group in r2–r5, and takes a word of the paired layout (two columns of two rows) with one
//! `LDR` and shifts: 66 instructions per 16 multiply-accumulates. It needs registers `asm!` may not name (r6, r7,
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
//!   i32s; the even rows' sums are exact in any order (see [`int8::MAX_COLS`]) and the odd
//!   rows' follow from two wrapping sums for at most [`int8::PAIR_SUM_COLS`] columns (wider
//!   layers run the reference), so they equal the reference's, and the requantization is the
//!   reference's own code.
//!
//! The QEMU check firmware (`firmware-examples/qemu-kernel-check`) runs this kernel against the
//! reference on thousands of cases (its `thumbv6m-none-eabi` build on an MPS2 board, which
//! executes Armv6-M code and has the RAM for them) and counts its instructions on the micro:bit.
#![allow(unsafe_code)]

use super::is_word_aligned;
use crate::error::KernelError;
use crate::int8::{self, QLINEAR_ROW_BYTES};

/// [`int8::qlinear_pairs`], bit for bit: the `MULS` tile kernel where it applies, else the
/// reference.
pub fn qlinear_pairs(
    w: &[u8],
    xw: &[i16],
    params: &[u8],
    y_zp: i32,
    y: &mut [i8],
) -> Result<(), KernelError> {
    int8::qlinear_shapes(w, xw, params, y_zp, y)?;
    if !is_word_aligned(params.as_ptr()) {
        return int8::qlinear_pairs(w, xw, params, y_zp, y);
    }
    // Every record valid before anything is written (the reference's checks and errors).
    for p in params.as_chunks::<QLINEAR_ROW_BYTES>().0 {
        let (_, m, s) = words(p);
        int8::check_record(m, s)?;
    }
    qlinear_pairs_validated(w, xw, params, y_zp, y)
}

/// [`int8::qlinear_pairs_validated`], bit for bit: [`qlinear_pairs`] without the record check,
/// for records the caller checked once.
pub fn qlinear_pairs_validated(
    w: &[u8],
    xw: &[i16],
    params: &[u8],
    y_zp: i32,
    y: &mut [i8],
) -> Result<(), KernelError> {
    let (_, cols_p) = int8::qlinear_shapes(w, xw, params, y_zp, y)?;
    let aligned = is_word_aligned(w.as_ptr()) && is_word_aligned(xw.as_ptr());
    if cols_p > int8::PAIR_SUM_COLS || !aligned || !is_word_aligned(params.as_ptr()) {
        return int8::qlinear_pairs_validated(w, xw, params, y_zp, y);
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
        let mut s = [0i32; 4];
        // SAFETY: `qlinear_shapes` checked `w.len() == pad4(rows)·cols_p` and
        // `xw.len() == cols_p`, a non-zero multiple of 4: `tiles` is one row tile of
        // `16·groups` bytes, `groups >= 1`, and `xw` has `4·groups` i16s. `w` is word-aligned
        // and `16·groups` is a multiple of 4, so `tiles` is too; `xw` is word-aligned. `s`
        // is four writable, aligned i32s. The contract of `tile_sums`.
        unsafe { tile_sums(tiles.as_ptr(), xw.as_ptr(), groups, &mut s) };
        // The odd rows from the wrapping sums: exact for `cols_p <= PAIR_SUM_COLS` (checked).
        let acc = [
            s[1],
            s[0].wrapping_sub(s[1]) >> 8,
            s[3],
            s[2].wrapping_sub(s[3]) >> 8,
        ];
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

/// The four sums of one paired-layout row tile ([`int8::pair_index`]): over `4·groups`
/// columns, `s[0] = Σ h₀·x` and `s[1] = Σ w₀·x` for the row pair 0 (`h = 256·w_odd + w_even`,
/// `w_even` its low byte; `s[0]` wraps), `s[2]`, `s[3]` for pair 1.
///
/// Registers in the loop: r0 the tile, r1 the input, r2–r5 the group's inputs `x0..x3`, r6 a
/// tile word, r7 scratch, r8–r11 the sums, r12 the input's end. Per group: two `LDR`s and four
/// sign extensions for the inputs; per word (two columns of a row pair) one `LDR`, `SXTH` /
/// `ASRS` for the two `h`, `SXTB` / `LSLS`+`ASRS` for the two `w_even`, four `MULS` and four
/// `ADD`s: 7 + 4·14 + 3 = 66 instructions per 16 multiply-accumulates.
///
/// # Safety
/// `w` is word-aligned with `16·groups` readable bytes, `xw` word-aligned with `4·groups`
/// readable i16s, `groups >= 1`, and `acc` four writable, aligned i32s.
#[unsafe(naked)]
unsafe extern "C" fn tile_sums(w: *const u8, xw: *const i16, groups: usize, acc: *mut [i32; 4]) {
    core::arch::naked_asm!(
        // One word at [r0, #off]: columns with inputs `xa`, `xb` of one row pair, into the
        // pair's sums `h` (Σ h·x) and `e` (Σ w_even·x).
        ".macro microdiff_v6m_word off, xa, xb, h, e",
        "ldr r6, [r0, #\\off]",
        "sxth r7, r6",
        "muls r7, \\xa, r7",
        "add \\h, r7",
        "sxtb r7, r6",
        "muls r7, \\xa, r7",
        "add \\e, r7",
        "asrs r7, r6, #16",
        "muls r7, \\xb, r7",
        "add \\h, r7",
        "lsls r6, r6, #8",
        "asrs r6, r6, #24",
        "muls r6, \\xb, r6",
        "add \\e, r6",
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
        "microdiff_v6m_word 0, r2, r3, r8, r9",
        "microdiff_v6m_word 4, r4, r5, r8, r9",
        "microdiff_v6m_word 8, r2, r3, r10, r11",
        "microdiff_v6m_word 12, r4, r5, r10, r11",
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
        ".purgem microdiff_v6m_word",
    )
}
