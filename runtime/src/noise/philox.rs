//! Philox4x32-10, the counter-based generator of Random123.
//!
//! Reference: J. K. Salmon, M. A. Moraes, R. O. Dror, D. E. Shaw, "Parallel random numbers:
//! as easy as 1, 2, 3", SC'11 (2011), and the Random123 library's `philox.h`. This is the
//! 4×32-bit variant with 10 rounds, the library's default; its output is pinned by the
//! Random123 known-answer vectors (`kat_vectors`) in the tests below.
//!
//! Only integer multiplication, XOR and wrapping addition are used, so every target computes
//! the same bits; the function is a `const fn`, so firmware can evaluate it at compile time.

/// Multiplier of the first lane pair (`PHILOX_M4x32_0`).
const M0: u32 = 0xD251_1F53;
/// Multiplier of the second lane pair (`PHILOX_M4x32_1`).
const M1: u32 = 0xCD9E_8D57;
/// Weyl increment of key word 0 (`PHILOX_W32_0`, the golden ratio).
const W0: u32 = 0x9E37_79B9;
/// Weyl increment of key word 1 (`PHILOX_W32_1`, √3 − 1).
const W1: u32 = 0xBB67_AE85;
/// Number of rounds: 10, Random123's default and the variant its authors recommend.
const ROUNDS: u32 = 10;

/// High and low 32 bits of the 64-bit product `a · b`.
const fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = (a as u64) * (b as u64);
    ((p >> 32) as u32, p as u32)
}

/// One Philox S-box round (Random123 `_philox4x32round`).
const fn round(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let [c0, c1, c2, c3] = ctr;
    let [k0, k1] = key;
    let (hi0, lo0) = mulhilo(M0, c0);
    let (hi1, lo1) = mulhilo(M1, c2);
    [hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0]
}

/// Philox4x32-10: the four output words for counter `ctr` under key `key`.
///
/// Bit-identical to Random123's `philox4x32(ctr, key)` (10 rounds): round 1 uses `key`, and
/// the key is bumped by the Weyl constants before each of the following nine rounds.
#[must_use]
pub const fn philox4x32_10(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut ctr = ctr;
    let [mut k0, mut k1] = key;
    let mut i = 0;
    while i < ROUNDS {
        if i > 0 {
            k0 = k0.wrapping_add(W0);
            k1 = k1.wrapping_add(W1);
        }
        ctr = round(ctr, [k0, k1]);
        i += 1;
    }
    ctr
}

#[cfg(test)]
mod tests {
    use super::philox4x32_10;

    // Random123 `examples/kat_vectors`, lines
    //   philox4x32 10 <ctr0..3> <key0..1>   <out0..3>
    // (checked against two independent copies of the file).

    #[test]
    fn kat_zero() {
        // philox4x32 10 00000000 00000000 00000000 00000000 00000000 00000000
        //               6627e8d5 e169c58d bc57ac4c 9b00dbd8
        assert_eq!(
            philox4x32_10([0; 4], [0; 2]),
            [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]
        );
    }

    #[test]
    fn kat_all_ones() {
        // philox4x32 10 ffffffff ffffffff ffffffff ffffffff ffffffff ffffffff
        //               408f276d 41c83b0e a20bc7c6 6d5451fd
        assert_eq!(
            philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]
        );
    }

    #[test]
    fn kat_pi_digits() {
        // philox4x32 10 243f6a88 85a308d3 13198a2e 03707344 a4093822 299f31d0
        //               d16cfe09 94fdcceb 5001e420 24126ea1
        assert_eq!(
            philox4x32_10(
                [0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344],
                [0xa409_3822, 0x299f_31d0]
            ),
            [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1]
        );
    }

    #[test]
    fn usable_in_const_context() {
        const OUT: [u32; 4] = philox4x32_10([0; 4], [0; 2]);
        assert_eq!(OUT, philox4x32_10([0; 4], [0; 2]));
    }
}
