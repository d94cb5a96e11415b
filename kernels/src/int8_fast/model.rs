//! A host model of the DSP kernel's integer steps (`dsp.rs`), instruction by instruction, and
//! tests that it equals the reference: the requantization of one output against
//! [`int8::qlinear_output`], and the record check against the reference's record rules.
//!
//! The assembly itself runs only on a Cortex-M; the QEMU check firmware compares it with the
//! reference there. This model is where the identities of `dsp.rs`'s module doc are tested on
//! every edge (saturation, `i32` limits, every shift), cheaply and on every `cargo test`.

use crate::int8;

/// `QADD`: saturating signed add.
fn qadd(a: i32, b: i32) -> i32 {
    a.saturating_add(b)
}

/// `SMMLAR d, n, m, a`: `((a << 32) + n·m + 2^31) >> 32`, modulo 2^64.
fn smmlar(n: i32, m: i32, a: i32) -> i32 {
    let r = (i64::from(a) << 32)
        .wrapping_add(i64::from(n) * i64::from(m))
        .wrapping_add(0x8000_0000);
    (r >> 32) as i32
}

/// `SSAT d, #8, n, ASR #1`.
fn ssat8_asr1(n: i32) -> i8 {
    (n >> 1).clamp(-128, 127) as i8
}

/// Register-specified shifts use the bottom byte of the amount; 32 and more fill.
fn lsl_reg(x: i32, by: i32) -> i32 {
    match by & 0xFF {
        n @ 0..=31 => x << n,
        _ => 0,
    }
}

fn asr_reg(x: i32, by: i32) -> i32 {
    x >> (by & 0xFF).min(31)
}

/// One output of `microdiff_dsp_row` (and `microdiff_dsp_slow` for shifts >= 0), for a record
/// `(bias, m, s)` that passed [`records_fast`].
pub(crate) fn row(acc: i32, bias: i32, m: i32, s: i32, y_zp: i32) -> i8 {
    let c = 2 * y_zp + 1;
    // ldmia; qadd r7, acc, r7
    let v = qadd(acc, bias);
    // mvns lr, lr; bmi slow
    let e1 = !s;
    // lsl r12, r12, #1
    let m2 = m << 1;
    let t = if e1 >= 0 {
        // smmlar; add r12, r12, r12, asr #31; asr r12, r12, lr
        let x = smmlar(v, m2, v);
        asr_reg(x.wrapping_add(x >> 31), e1)
    } else {
        // The slow path: mvn lr, lr; saturating left shift by s.
        let s = !e1;
        let l = lsl_reg(v, s);
        let v = if asr_reg(l, s) == v {
            l
        } else {
            i32::MAX ^ (v >> 31)
        };
        let x = smmlar(v, m2, v);
        qadd(x, x)
    };
    // qadd r12, r12, r4; ssat r12, #8, r12, asr #1
    ssat8_asr1(qadd(t, c))
}

/// `check_records` on one record: whether it sets the Q flag, i.e. whether the assembly leaves
/// the matrix to the reference.
pub(crate) fn record_saturates(m: i32, s: i32) -> bool {
    /// r3: `2^31 − 31`.
    const K: i32 = i32::MAX - 30;
    // sub m, m, #2^30; usat m, #30, m
    let usat = !(0..1 << 30).contains(&m.wrapping_sub(1 << 30));
    // qadd lr, s, r3; qsub lr, s, r3
    let qadd = s.checked_add(K).is_none();
    let qsub = s.checked_sub(K).is_none();
    usat || qadd || qsub
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use crate::int8::{QLINEAR_ROW_BYTES, Requant};

    fn xorshift(s: &mut u32) -> u32 {
        *s ^= *s << 13;
        *s ^= *s >> 17;
        *s ^= *s << 5;
        *s
    }

    fn reference(acc: i32, bias: i32, m: i32, s: i32, y_zp: i32) -> i8 {
        let mut r = [0u8; QLINEAR_ROW_BYTES];
        r[0..4].copy_from_slice(&bias.to_le_bytes());
        r[4..8].copy_from_slice(&m.to_le_bytes());
        r[8..12].copy_from_slice(&s.to_le_bytes());
        int8::qlinear_output(acc, &r, y_zp).unwrap()
    }

    const EDGE_I32: [i32; 16] = [
        i32::MIN,
        i32::MIN + 1,
        -(1 << 30) - 1,
        -(1 << 30),
        -65_536,
        -257,
        -129,
        -1,
        0,
        1,
        127,
        255,
        (1 << 30) - 1,
        1 << 30,
        i32::MAX - 1,
        i32::MAX,
    ];

    #[test]
    fn the_requantization_model_equals_the_reference_on_edges() {
        let ms = [1 << 30, (1 << 30) + 1, 0x5A82_7999, i32::MAX - 1, i32::MAX];
        let mut n = 0u64;
        for &acc in &EDGE_I32 {
            for &bias in &EDGE_I32 {
                for &m in &ms {
                    for s in -31..=30 {
                        for y_zp in [-128, -1, 0, 1, 127] {
                            let want = reference(acc, bias, m, s, y_zp);
                            assert_eq!(row(acc, bias, m, s, y_zp), want, "{acc} {bias} {m} {s}");
                            n += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(n, 16 * 16 * 5 * 62 * 5);
    }

    #[test]
    fn the_requantization_model_equals_the_reference_on_random_records() {
        let mut st = 0x2545_F491u32;
        for i in 0..2_000_000u32 {
            let r = xorshift(&mut st);
            // Accumulators of every magnitude: shift a random word right by 0..=31.
            let acc = (xorshift(&mut st) as i32) >> (r % 32);
            let bias = (xorshift(&mut st) as i32) >> ((r >> 5) % 32);
            let m = (1 << 30) | (xorshift(&mut st) >> 2) as i32;
            let s = ((r >> 10) % 62) as i32 - 31;
            let y_zp = ((r >> 16) % 256) as i32 - 128;
            let want = reference(acc, bias, m, s, y_zp);
            assert_eq!(
                row(acc, bias, m, s, y_zp),
                want,
                "#{i}: {acc} {bias} {m} {s} {y_zp}"
            );
        }
    }

    /// Where the rounding ties are: `v·m` an odd multiple of 2^30 (the doubling high multiply),
    /// and `x` an odd multiple of 2^(e−1) (the divide), on both signs.
    #[test]
    fn the_requantization_model_rounds_ties_like_the_reference() {
        for s in -31..=0 {
            let e = -s;
            for k in [-3i64, -1, 1, 3, 5, 255, 257] {
                for m in [1 << 30, 3 << 29] {
                    // x = k·2^(e−1) ± 0..1: v = x·2^31 / m.
                    let x = if e == 0 { k } else { k << (e - 1) };
                    for d in -2..=2i64 {
                        let v = ((x + d) << 31) / i64::from(m);
                        let Ok(v) = i32::try_from(v) else { continue };
                        for y_zp in [-128, 0, 127] {
                            let want = reference(v, 0, m, s, y_zp);
                            assert_eq!(row(v, 0, m, s, y_zp), want, "{v} {m} {s}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_record_check_accepts_exactly_what_the_assembly_handles() {
        let mut st = 0x1357_9BDFu32;
        let ms = EDGE_I32.into_iter().chain([
            0x3FFF_FFFF,
            0x4000_0000,
            0x7FFF_FFFF,
            i32::MIN,
            -0x4000_0000,
        ]);
        for m in ms {
            for s in (-70..=70).chain([i32::MIN, i32::MAX, -33, -32, 31, 32]) {
                let valid =
                    Requant::new(m, s.clamp(-128, 127) as i8).is_ok() && (-31..=30).contains(&s);
                let handled = valid && m != 0;
                assert_eq!(!record_saturates(m, s), handled, "{m} {s}");
            }
        }
        for _ in 0..1_000_000 {
            let (m, s) = (
                xorshift(&mut st) as i32,
                xorshift(&mut st) as i32 >> (st % 32),
            );
            let handled = (1 << 30..=i32::MAX).contains(&m) && (-31..=30).contains(&s);
            assert_eq!(!record_saturates(m, s), handled, "{m} {s}");
        }
    }
}
