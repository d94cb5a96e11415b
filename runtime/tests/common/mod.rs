//! What the runtime's integration tests share: editing a valid blob byte by byte.

use microdiff_runtime::Section;
use microdiff_runtime::blob::{Blob, crc::crc32, field};

/// Rewrites the CRC after an edit, so the edit reaches the section parsers.
pub fn reseal(b: &mut [u8]) {
    let crc = crc32(&b[field::CRC_START..]);
    b[field::CRC].copy_from_slice(&crc.to_le_bytes());
}

/// Byte offset of section `s` in blob `b`.
pub fn section_start(b: &[u8], s: Section) -> usize {
    Blob::new_checked(b)
        .unwrap()
        .sections()
        .unwrap()
        .range(s)
        .unwrap()
        .0
}
