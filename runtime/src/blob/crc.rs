//! CRC-32 (IEEE 802.3 / ISO-HDLC: reflected polynomial `0xEDB88320`, init and final XOR
//! `0xFFFFFFFF`) — the checksum in the blob header. Four bits per step from a 64-byte table
//! built at compile time: the byte-wise table is 1 KiB of a device's flash, and the checksum
//! runs once per parse (two lookups per byte instead of one).

/// `TABLE[i]`: the CRC register after shifting the 4-bit value `i` out, reflected.
const TABLE: [u32; 16] = {
    let mut table = [0u32; 16];
    let mut i = 0;
    while i < 16 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 4 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32 of `bytes`.
pub const fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    let mut i = 0;
    while i < bytes.len() {
        crc ^= bytes[i] as u32;
        crc = TABLE[(crc & 0xF) as usize] ^ (crc >> 4);
        crc = TABLE[(crc & 0xF) as usize] ^ (crc >> 4);
        i += 1;
    }
    crc ^ 0xFFFF_FFFF
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value() {
        // The catalogue "check" value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    /// The definition, a bit at a time.
    fn bitwise(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    0xEDB8_8320 ^ (crc >> 1)
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn equals_the_bitwise_definition() {
        let mut s = 0x1234_5678u32;
        let bytes: [u8; 300] = core::array::from_fn(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s as u8
        });
        for n in [0, 1, 2, 3, 7, 64, 300] {
            assert_eq!(crc32(&bytes[..n]), bitwise(&bytes[..n]), "{n} bytes");
        }
    }
}
