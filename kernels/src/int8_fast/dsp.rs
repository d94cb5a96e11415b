//! The Cortex-M4 / M7 kernels (Armv7E-M DSP extension): [`qlinear_pairs`] and [`widen`] with
//! exactly the output bits and the errors of [`int8::qlinear_pairs`] and [`int8::widen`].
//! (The older tiled layout, [`int8::qlinear`], runs the reference.)
//!
//! # Why `unsafe`
//!
//! The crate denies `unsafe_code`; this module (and, for Armv6-M, `armv6m.rs`) allows it, for
//! hand-written assembly: the speed of the integer path is the number of instructions per multiply-accumulate, and the
//! kernel needs 14 registers in its inner loop (4 accumulators, 4 weight words, 2 input words,
//! 2 pointers, an end pointer and a scratch register) — more than `asm!` may name (r6, r7 (the
//! Thumb frame pointer), sp and pc are reserved there). So the matrix kernel and the record
//! check are `#[unsafe(naked)]` functions that save and restore the callee-saved registers
//! themselves, and `widen` is a short `asm!` loop.
//!
//! # What the safe wrappers promise
//!
//! * The arguments are checked first, with [`int8::qlinear_shapes`] (the reference's own
//!   checks), so a bad argument gets the reference's `Err`, and nothing is written on `Err`.
//! * The assembly runs only on what it was written for; everything else goes to the reference
//!   kernel (same bits, only slower):
//!   - 4-byte aligned `w`, `xw` and `params` (`LDM` and `LDRD` need word alignment; blob tensors
//!     are word-aligned within the blob, but a blob from `include_bytes!` need not be);
//!   - every row record with a multiplier in `[2^30, 2^31)` (not the valid 0, which the
//!     reference handles) and a shift in `−31..=30`; a record the reference rejects thus reaches
//!     the reference, which returns the error before writing.
//!   - at most [`int8::PAIR_SUM_COLS`] padded columns (the odd rows' sums below).
//! * The assembly reads exactly `w`, `xw`, `params` and writes exactly `y` (padding rows are
//!   accumulated and dropped, their records never read).
//!
//! # The arithmetic, and why it equals the reference
//!
//! Accumulation (the paired layout, [`int8::pair_index`]): per 4×4 tile and 4 columns, one
//! `LDM` of the two input words `(xw[0], xw[1])`, `(xw[2], xw[3])` and one `LDM` of the tile's
//! four words; a word holds `h = 256·w_odd + w_even` for two columns of a row pair. Per word,
//! `SMLAD` of the word itself into the pair's `H` accumulator and `SMLAD` of its `SXTB16`
//! (`w_even` of both columns) into the pair's even-row accumulator: 14 instructions per
//! 16 multiply-accumulates (the tiled layout needed two `SXTB16` per word: 18). The even row's
//! sum is exact (see [`int8::MAX_COLS`]); the odd row's is `(H − even) >> 8`, exact while
//! `cols_p ≤` [`int8::PAIR_SUM_COLS`] although `H` itself wraps. Integer sums modulo 2^32 do
//! not depend on the order.
//!
//! Requantization of row `r` with record `(bias, m, s)`, `m ∈ [2^30, 2^31)`:
//!
//! 1. `v = QADD(acc, bias)`, the reference's saturating add.
//! 2. `x = SMMLAR(v, 2m − 2^32, v) = ⌊(v·2^32 + v·(2m − 2^32) + 2^31) / 2^32⌋
//!    = ⌊(v·m + 2^30) / 2^31⌋`, gemmlowp's `SaturatingRoundingDoublingHighMul(v, m)` (whose one
//!    saturating case, both operands `i32::MIN`, needs `m < 0`). `2m − 2^32` is `m << 1` read
//!    as i32, because `2m ≥ 2^31`.
//! 3. Shift `s < 0`, `e = −s ∈ 1..=31`: `RoundingDivideByPOT(x, e)` is
//!    `⌊(x' + 2^(e−1)) / 2^e⌋` with `x' = x − [x < 0]` (ties away from zero), which is
//!    `((x' >> (e − 1)) + 1) >> 1`; adding `y_zp` inside the last halving,
//!    `y = SSAT8(QADD(x' >> (e − 1), 2·y_zp + 1) >> 1)`. `e − 1 = !s`, and `x'` cannot
//!    overflow (`x ≥ −(2^31 − 1)` when `m < 2^31`).
//! 4. Shift `s ≥ 0` (out of line, rare): `v` is saturated-shifted left by `s` first (the
//!    reference's `saturating_mul(1 << s)`), step 2 gives `x`, and `y = SSAT8(QADD(QADD(x, x),
//!    2·y_zp + 1) >> 1)`, which is `clamp(x + y_zp)`.
//!
//! `QADD` saturates where the reference's `saturating_add(y_zp)` would not, but only at
//! magnitudes ≥ 2^30 − 256, where both clamp to the same end of `−128..=127`. The host tests
//! in `model.rs` check a step-by-step model of this sequence (and of the record check) against
//! [`int8::qlinear_output`] on edge and random records; the QEMU check firmware
//! (`firmware-examples/qemu-kernel-check`) checks the assembly itself against the reference on
//! the M4F and the M7.
//!
//! # Cost (instructions, which is what QEMU's `-icount` counts)
//!
//! Per 16 multiply-accumulates 14, plus the column loop's 2 per 8 groups (unrolled 8×); per
//! row 11 for the requantization, 1 for the odd rows' difference, 5 for the record check (not
//! in [`qlinear_pairs_validated`], the runtime's call) and 2 for its share of the row-tile
//! loop; per call about 140 (argument checks, setup). `firmware-examples/qemu-kernel-check`
//! prints the figure on the digits model's four layer shapes, next to the portable
//! reference's.
//!
//! # Toolchain
//!
//! `#[unsafe(naked)]` and `naked_asm!` are stable since Rust 1.88, the workspace's
//! `rust-version`.
#![allow(unsafe_code)]

use super::is_word_aligned;
use crate::error::KernelError;
use crate::int8;

/// Bytes of one row record (`bias`, `multiplier`, `shift`, little-endian i32s).
const RECORD: usize = int8::QLINEAR_ROW_BYTES;

/// Everything [`qlinear_tiles`] reads, passed by one pointer (`r0`).
#[repr(C)]
struct Job {
    /// The tiled weights, `(rows_p, cols_p)`, 4-byte aligned.
    w: *const u8,
    /// The widened input, `cols_p` i16s, 4-byte aligned.
    xw: *const i16,
    /// `rows` records of [`RECORD`] bytes, 4-byte aligned (outputs equal the reference's when
    /// all pass [`records_fast`]).
    params: *const u8,
    /// `rows` outputs.
    y: *mut i8,
    /// `cols_p / 4`, at least 1.
    groups: usize,
    /// At least 1.
    rows: usize,
    /// `2·y_zp + 1`.
    c: i32,
}

/// [`int8::qlinear_pairs`], bit for bit: the DSP kernel where it applies, else the reference.
pub fn qlinear_pairs(
    w: &[u8],
    xw: &[i16],
    params: &[u8],
    y_zp: i32,
    y: &mut [i8],
) -> Result<(), KernelError> {
    int8::qlinear_shapes(w, xw, params, y_zp, y)?;
    if !is_word_aligned(params.as_ptr()) || !records_fast(params) {
        return int8::qlinear_pairs(w, xw, params, y_zp, y);
    }
    qlinear_pairs_validated(w, xw, params, y_zp, y)
}

/// [`int8::qlinear_pairs_validated`], bit for bit: [`qlinear_pairs`] without the record
/// check, for records that passed [`int8::qlinear_records_nonzero`] (which implies
/// [`records_fast`]'s ranges).
pub fn qlinear_pairs_validated(
    w: &[u8],
    xw: &[i16],
    params: &[u8],
    y_zp: i32,
    y: &mut [i8],
) -> Result<(), KernelError> {
    let (_, cols_p) = int8::qlinear_shapes(w, xw, params, y_zp, y)?;
    let aligned = is_word_aligned(w.as_ptr()) && is_word_aligned(xw.as_ptr());
    if y.is_empty() || cols_p > int8::PAIR_SUM_COLS || !aligned || !is_word_aligned(params.as_ptr())
    {
        return int8::qlinear_pairs_validated(w, xw, params, y_zp, y);
    }
    let job = Job {
        w: w.as_ptr(),
        xw: xw.as_ptr(),
        params: params.as_ptr(),
        y: y.as_mut_ptr(),
        groups: cols_p / 4,
        rows: y.len(),
        c: 2 * y_zp + 1,
    };
    // SAFETY: `qlinear_shapes` checked `w.len() == pad4(rows)·cols_p`, `xw.len() == cols_p`
    // (a non-zero multiple of 4, so `groups >= 1`), `params.len() == rows·RECORD` and
    // `y_zp ∈ −128..=127`; `rows >= 1`; the three input pointers are word-aligned: the memory
    // contract of `qlinear_tiles`. Its bit-exactness needs `cols_p <= PAIR_SUM_COLS` (checked)
    // and every record in `records_fast`'s ranges (`qlinear_pairs` checked them;
    // `qlinear_pairs_validated`'s caller did, once); record values only enter arithmetic,
    // never an address. `y` is an exclusive borrow, so it overlaps no input.
    unsafe { qlinear_tiles(&job) };
    Ok(())
}

/// [`int8::widen`], bit for bit: four inputs per `SXTAB16` pair where `x` and `out` are
/// word-aligned, else the reference.
pub fn widen(x: &[i8], zp: i32, out: &mut [i16]) -> Result<(), KernelError> {
    let fast = int8::pad4(x.len()) == Some(out.len())
        && (-128..=127).contains(&zp)
        && is_word_aligned(x.as_ptr())
        && is_word_aligned(out.as_ptr());
    // `out.len() = pad4(x.len()) >= x.len()`; `_checked` keeps the panic path out of firmware.
    let split = out.split_at_mut_checked(x.len()).filter(|_| fast);
    let Some((head, pad)) = split else {
        // Also every error case: the reference names it.
        return int8::widen(x, zp, out);
    };
    let words = x.len() / 4;
    if words > 0 {
        // `-zp` in both halfwords; −127..=128 fits.
        let nzp = (-zp as u32 & 0xFFFF) * 0x0001_0001;
        let (src, dst) = (x.as_ptr(), head.as_mut_ptr());
        // SAFETY: `x` has `4·words` readable bytes from `src` and `head` (length
        // `x.len() >= 4·words`) `4·words` writable i16s from `dst`; both are word-aligned
        // (for `LDR`, `STRD`); the loop runs `words >= 1` times, reading and writing only
        // those, and uses no stack.
        unsafe {
            let end = src.add(4 * words);
            core::arch::asm!(
                "2:",
                "ldr {t}, [{src}], #4",
                // (x0 − zp, x2 − zp) and (x1 − zp, x3 − zp): exact in 16 bits (|·| ≤ 255).
                "sxtab16 {a}, {nzp}, {t}",
                "sxtab16 {t}, {nzp}, {t}, ror #8",
                // Natural order: (x0, x1) and (x2, x3).
                "pkhbt {b}, {a}, {t}, lsl #16",
                "pkhtb {t}, {t}, {a}, asr #16",
                "strd {b}, {t}, [{dst}], #8",
                "cmp {src}, {end}",
                "bne 2b",
                src = inout(reg) src => _,
                dst = inout(reg) dst => _,
                end = in(reg) end,
                nzp = in(reg) nzp,
                t = out(reg) _,
                a = out(reg) _,
                b = out(reg) _,
                options(nostack),
            );
        }
    }
    let done = 4 * words;
    for (o, &xi) in head.iter_mut().zip(x).skip(done) {
        *o = (i32::from(xi) - zp) as i16;
    }
    pad.fill(0);
    Ok(())
}

/// Whether every record is one the assembly handles: multiplier in `[2^30, 2^31)`, shift in
/// `−31..=30`. `params` is word-aligned, `params.len()` a multiple of [`RECORD`].
fn records_fast(params: &[u8]) -> bool {
    let rows = params.len() / RECORD;
    // SAFETY: `params` holds `3·(rows / 3) + rows % 3 = rows` whole records and is word-aligned
    // (for `LDM`): the contract of `check_records`, which only reads them.
    unsafe { check_records(params.as_ptr(), rows / 3, rows % 3) == 0 }
}

/// Returns 0 when every one of the `3·triples + singles` records at `p` has a multiplier in
/// `[2^30, 2^31)` and a shift in `−31..=30`, non-zero otherwise.
///
/// Each bound is one saturating instruction, and saturation sets the sticky Q flag, which is
/// cleared first and read once at the end (exceptions save and restore it with the xPSR):
/// `USAT #30 (m − 2^30)` saturates unless `m − 2^30 ∈ [0, 2^30)` (wrapping: `m < 0` gives
/// `m − 2^30 ≥ 2^30` or `< 0`), `QADD s, 2^31 − 31` unless `s <= 30`, `QSUB s, 2^31 − 31` unless
/// `s >= −31`. Three records per `LDM`: 5 instructions a record.
///
/// # Safety
/// `p` is word-aligned and `3·triples + singles` records of 12 bytes are readable from it.
#[unsafe(naked)]
unsafe extern "C" fn check_records(p: *const u8, triples: usize, singles: usize) -> u32 {
    core::arch::naked_asm!(
        // One record: multiplier in `\m`, shift in `\s`, K = 2^31 − 31 in r3; sets Q if bad.
        ".macro microdiff_dsp_check m, s",
        "sub \\m, \\m, #0x40000000",
        "usat \\m, #30, \\m",
        "qadd lr, \\s, r3",
        "qsub lr, \\s, r3",
        ".endm",
        "push {{r4-r11, lr}}",
        "movs r3, #0",
        "msr apsr_nzcvq, r3",
        "mvn r3, #0x80000000",
        "sub r3, r3, #30",
        "cbz r2, 2f",
        "1:",
        "ldmia r0!, {{r4, r5, r6}}",
        "microdiff_dsp_check r5, r6",
        "subs r2, r2, #1",
        "bne 1b",
        "2:",
        "cbz r1, 4f",
        "3:",
        "ldmia.w r0!, {{r4, r5, r6, r7, r8, r9, r10, r11, r12}}",
        "microdiff_dsp_check r5, r6",
        "microdiff_dsp_check r8, r9",
        "microdiff_dsp_check r11, r12",
        "subs r1, r1, #1",
        "bne 3b",
        "4:",
        "mrs r0, apsr",
        "and r0, r0, #0x08000000",
        "pop {{r4-r11, pc}}",
        ".purgem microdiff_dsp_check",
    )
}

/// The DSP `qlinear_pairs` over a whole matrix (see the module doc for the arithmetic).
///
/// Registers in the inner loop: r0 weights, r1 input, r2–r5 the tile's four words,
/// r6 `(xw[0], xw[1])`, r7 `(xw[2], xw[3])`, r8 / r9 pair 0's `H` and even-row sums, r10 / r11
/// pair 1's (after the loop r8 and r10 become the odd rows' sums), r12 the end of
/// the input, lr scratch. The column loop is unrolled eight times and entered Duff-style, so
/// any `groups` costs one computed `LDR PC` per row tile; it ends when the input pointer
/// reaches the input's end, the same address for every row tile. A row tile starts with one
/// `LDM` of the input pointer, four zero accumulators and that end; it finishes with an
/// `LDR PC` to the requantization of four rows or, for the last tile of `rows % 4 != 0`, of
/// the remaining rows.
///
/// Frame (from sp): 0 `xw`, 4..20 zeros, 20 `xw + 4·groups` (end), 24 loop entry, 28
/// `params` cursor, 32 `y` cursor, 36 `c = 2·y_zp + 1`, 40 `y + rows − rows % 4`, 44 the
/// requantization to run after the inner loop, 48 `rows % 4`. Code addresses have the Thumb
/// bit set.
///
/// # Safety
/// `job` points to a [`Job`] whose fields satisfy their docs: `w` has `16·groups·pad4(rows)/4`
/// readable bytes, `xw` `4·groups` i16s, `params` `rows` records, `y` `rows` writable bytes,
/// and the three inputs are word-aligned.
#[unsafe(naked)]
unsafe extern "C" fn qlinear_tiles(job: *const Job) {
    core::arch::naked_asm!(
        // One group: 4 columns of the row tile, 16 multiply-accumulates, 14 instructions of
        // 4 bytes each (`.w`), so the Duff entry can index them.
        ".macro microdiff_dsp_group",
        "ldmia.w r1!, {{r6, r7}}",
        "ldmia.w r0!, {{r2, r3, r4, r5}}",
        "sxtb16 lr, r2",
        "smlad r8, r2, r6, r8",
        "smlad r9, lr, r6, r9",
        "sxtb16 lr, r3",
        "smlad r8, r3, r7, r8",
        "smlad r9, lr, r7, r9",
        "sxtb16 lr, r4",
        "smlad r10, r4, r6, r10",
        "smlad r11, lr, r6, r11",
        "sxtb16 lr, r5",
        "smlad r10, r5, r7, r10",
        "smlad r11, lr, r7, r11",
        ".endm",
        // One output: accumulator `acc`, record at r2 (advanced), y at r3 (advanced), c in r4.
        // Shift >= 0 branches to `slow` (a `microdiff_dsp_slow` instance), which rejoins at
        // `join`. Clobbers r7, r12, lr (and r1, r6 on the slow path) and the flags.
        ".macro microdiff_dsp_row acc, slow, join",
        "ldmia.w r2!, {{r7, r12, lr}}",
        "qadd r7, \\acc, r7",
        "mvns.w lr, lr",
        "bmi \\slow",
        "lsl.w r12, r12, #1",
        "smmlar r12, r7, r12, r7",
        "add.w r12, r12, r12, asr #31",
        "asr.w r12, r12, lr",
        "\\join:",
        "qadd r12, r12, r4",
        "ssat r12, #8, r12, asr #1",
        "strb r12, [r3], #1",
        ".endm",
        // Shift s = !lr in 0..=30: v = r7 saturated-shifted left by s, x = SRDHM(v, m),
        // r12 = QADD(x, x), then back to the row's `join`.
        ".macro microdiff_dsp_slow slow, join",
        "\\slow:",
        "mvn.w lr, lr",
        "lsl.w r1, r7, lr",
        "asr.w r6, r1, lr",
        "cmp r6, r7",
        "beq 8f",
        "mvn r1, #0x80000000",
        "eor.w r1, r1, r7, asr #31",
        "8:",
        "lsl.w r12, r12, #1",
        "smmlar r12, r1, r12, r1",
        "qadd r12, r12, r12",
        "b \\join",
        ".endm",
        // Set up the frame.
        "push {{r4-r11, lr}}",
        "sub sp, #56",
        "ldm r0, {{r0, r1, r2, r3, r4, r5, r6}}",
        "movs r7, #0",
        "str r1, [sp, #0]",
        "strd r7, r7, [sp, #4]",
        "strd r7, r7, [sp, #12]",
        "add.w r8, r1, r4, lsl #3",
        "str.w r8, [sp, #20]",
        // Loop entry: skip (−groups) mod 8 groups of the unrolled body in the first pass.
        "rsb.w r9, r4, #0",
        "and r9, r9, #7",
        "movs r10, #56",
        "adr.w r11, 1f",
        "mla r11, r9, r10, r11",
        "orr r11, r11, #1",
        "str.w r11, [sp, #24]",
        "strd r2, r3, [sp, #28]",
        "str r6, [sp, #36]",
        "bic r7, r5, #3",
        "add r7, r7, r3",
        "str r7, [sp, #40]",
        // After the inner loop: four rows, or the partial tile when there is no full one.
        "adr.w r7, 6f",
        "adr.w r8, 7f",
        "cmp r5, #4",
        "it lo",
        "movlo r7, r8",
        "orr r7, r7, #1",
        "str r7, [sp, #44]",
        "and r5, r5, #3",
        "str r5, [sp, #48]",
        // Row tile: input pointer, zero accumulators, end of the input.
        "2:",
        "ldm.w sp, {{r1, r8, r9, r10, r11, r12}}",
        "ldr pc, [sp, #24]",
        "1:",
        "microdiff_dsp_group",
        "microdiff_dsp_group",
        "microdiff_dsp_group",
        "microdiff_dsp_group",
        "microdiff_dsp_group",
        "microdiff_dsp_group",
        "microdiff_dsp_group",
        "microdiff_dsp_group",
        "cmp r1, r12",
        "bne 1b",
        // Odd rows: (Σ h·x − Σ w_even·x) / 256, exact (`PAIR_SUM_COLS`).
        "sub.w r8, r8, r9",
        "asr.w r8, r8, #8",
        "sub.w r10, r10, r11",
        "asr.w r10, r10, #8",
        "ldr pc, [sp, #44]",
        // Four rows: r2 params, r3 y, r4 c, r5 the start of the partial tile.
        "6:",
        "add r2, sp, #28",
        "ldm r2, {{r2, r3, r4, r5}}",
        "microdiff_dsp_row r9, 30f, 40",
        "microdiff_dsp_row r8, 31f, 41",
        "microdiff_dsp_row r11, 32f, 42",
        "microdiff_dsp_row r10, 33f, 43",
        "strd r2, r3, [sp, #28]",
        "cmp r3, r5",
        "bne 2b",
        // Full tiles done; one more for rows % 4 != 0.
        "ldr r6, [sp, #48]",
        "cmp r6, #0",
        "beq 9f",
        "adr.w r7, 7f",
        "orr r7, r7, #1",
        "str r7, [sp, #44]",
        "b 2b",
        // The last row tile, holding rows % 4 = 1..=3 rows (r5).
        "7:",
        "add r2, sp, #28",
        "ldm r2, {{r2, r3, r4}}",
        "ldr r5, [sp, #48]",
        "microdiff_dsp_row r9, 34f, 44",
        "cmp r5, #2",
        "blo 9f",
        "microdiff_dsp_row r8, 35f, 45",
        "cmp r5, #3",
        "blo 9f",
        "microdiff_dsp_row r11, 36f, 46",
        "9:",
        "add sp, #56",
        "pop {{r4-r11, pc}}",
        "microdiff_dsp_slow 30, 40b",
        "microdiff_dsp_slow 31, 41b",
        "microdiff_dsp_slow 32, 42b",
        "microdiff_dsp_slow 33, 43b",
        "microdiff_dsp_slow 34, 44b",
        "microdiff_dsp_slow 35, 45b",
        "microdiff_dsp_slow 36, 46b",
        ".purgem microdiff_dsp_group",
        ".purgem microdiff_dsp_row",
        ".purgem microdiff_dsp_slow",
    )
}
