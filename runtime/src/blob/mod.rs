//! Weight blob v1: the one file format between the trainer and the device.
//!
//! A blob is a little-endian byte string: a 32-byte header, a table of sections, and the
//! sections (metadata, network graph, tensor table, tensor data, training schedule, sampler
//! programs). `docs/blob-format.md` specifies it byte for byte; the byte ranges are named once,
//! in the `field` modules here and in the section modules, and both the parser and the emitter
//! (`BlobBuilder`, feature `alloc`) use those names, so the format is defined in one place.
//!
//! # Contract
//! * For untrusted input use [`Blob::new_checked`] (bounds, header rules and CRC-32) and then
//!   [`crate::Model::parse`] (every section validated, the arena planned). No function in this
//!   module panics on any input: every read is bounds-checked and returns a typed [`Error`].
//! * Parsing happens in place: nothing is copied out of the buffer, so a blob in flash stays there.
//! * Unknown sections are skipped unless their *required* flag is set; unknown op, dtype,
//!   instruction or version codes are typed errors naming the code.

pub(crate) mod bytes;
pub mod crc;
#[cfg(feature = "alloc")]
mod emit;
pub mod graph;
pub mod meta;
pub mod ops;
pub mod program;
pub mod schedule;
pub mod tensor;

#[cfg(feature = "alloc")]
pub use emit::{BlobBuilder, ProgramBuilder, Value};

use crate::error::{Error, Rule, Section};
use bytes::{u16_at, u32_at};

/// Format version written and read by this runtime.
pub const VERSION: u16 = 1;
/// The four magic bytes at offset 0.
pub const MAGIC: [u8; 4] = *b"MDFB";
/// Length of the fixed header in bytes.
pub const HEADER_LEN: usize = 32;
/// Length of one section-table entry in bytes.
pub const SECTION_ENTRY_LEN: usize = 12;
/// Most section-table entries a v1 blob may have.
pub const MAX_SECTIONS: usize = 16;
/// Section flag: a reader that does not know the section kind must reject the blob.
pub const SECTION_REQUIRED: u16 = 1;

/// Byte ranges of the fixed header.
pub mod field {
    /// A byte range in a structure.
    pub type Field = core::ops::Range<usize>;
    /// `b"MDFB"`.
    pub const MAGIC: Field = 0..4;
    /// `u16` format version.
    pub const VERSION: Field = 4..6;
    /// `u16` header length, 32 in v1.
    pub const HEADER_LEN: Field = 6..8;
    /// `u32` length of the whole blob.
    pub const TOTAL_LEN: Field = 8..12;
    /// `u32` CRC-32 of bytes `CRC_START..TOTAL_LEN`.
    pub const CRC: Field = 12..16;
    /// `u16` number of section-table entries.
    pub const SECTION_COUNT: Field = 16..18;
    /// `u16` header flags, 0 in v1.
    pub const FLAGS: Field = 18..20;
    /// Reserved, zero in v1.
    pub const RESERVED: Field = 20..32;
    /// First byte covered by the CRC.
    pub const CRC_START: usize = 16;

    /// Byte ranges of one section-table entry (relative to the entry).
    pub mod entry {
        use super::Field;
        /// `u16` section kind.
        pub const KIND: Field = 0..2;
        /// `u16` flags ([`crate::blob::SECTION_REQUIRED`]).
        pub const FLAGS: Field = 2..4;
        /// `u32` offset of the section from the start of the blob, multiple of 4.
        pub const OFFSET: Field = 4..8;
        /// `u32` length of the section in bytes.
        pub const LEN: Field = 8..12;
    }
}

/// Section kind codes as stored in the section table.
pub mod kind {
    /// Metadata.
    pub const META: u16 = 1;
    /// Network graph.
    pub const GRAPH: u16 = 2;
    /// Tensor table.
    pub const TENSORS: u16 = 3;
    /// Tensor bytes.
    pub const DATA: u16 = 4;
    /// Training schedule table.
    pub const SCHEDULE: u16 = 5;
    /// Sampler programs.
    pub const PROGRAMS: u16 = 6;
}

const fn section_of_kind(k: u16) -> Option<Section> {
    match k {
        kind::META => Some(Section::Meta),
        kind::GRAPH => Some(Section::Graph),
        kind::TENSORS => Some(Section::Tensors),
        kind::DATA => Some(Section::Data),
        kind::SCHEDULE => Some(Section::Schedule),
        kind::PROGRAMS => Some(Section::Programs),
        _ => None,
    }
}

const fn slot(s: Section) -> usize {
    match s {
        Section::Header => 0,
        Section::Meta => 1,
        Section::Graph => 2,
        Section::Tensors => 3,
        Section::Data => 4,
        Section::Schedule => 5,
        Section::Programs => 6,
    }
}

/// Where each known section lies in a blob (byte offset and length), after header checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sections {
    // (offset, len, present) per slot; slot 0 (header) unused.
    ranges: [(usize, usize, bool); 7],
}

impl Sections {
    /// Offset and length of a section, if present.
    pub const fn range(&self, s: Section) -> Option<(usize, usize)> {
        let (off, len, present) = self.ranges[slot(s)];
        if present { Some((off, len)) } else { None }
    }

    /// The bytes of a present section of `blob` (the buffer these ranges were located in).
    pub const fn get<'b>(&self, blob: &'b [u8], s: Section) -> Option<&'b [u8]> {
        match self.range(s) {
            Some((off, len)) => bytes::sub(blob, off, len),
            None => None,
        }
    }

    /// Like [`Sections::get`] for a required section: absent is [`Error::MissingSection`].
    pub const fn require<'b>(&self, blob: &'b [u8], s: Section) -> Result<&'b [u8], Error> {
        match self.get(blob, s) {
            Some(b) => Ok(b),
            None => Err(Error::MissingSection { section: s }),
        }
    }
}

/// Checks the header and the section table of `b` and locates the sections. Does not check
/// the CRC (see [`Blob::check_crc`]) nor the sections' contents.
///
/// `const` so the arena size can be computed at compile time from an `include_bytes!` blob.
pub const fn locate_sections(b: &[u8]) -> Result<Sections, Error> {
    if b.len() < HEADER_LEN {
        return Err(Error::Truncated {
            section: Section::Header,
            needed: HEADER_LEN,
            available: b.len(),
        });
    }
    if b[0] != MAGIC[0] || b[1] != MAGIC[1] || b[2] != MAGIC[2] || b[3] != MAGIC[3] {
        return Err(Error::BadMagic);
    }
    let version = match u16_at(b, field::VERSION.start) {
        Some(v) => v,
        None => return Err(Error::BadMagic),
    };
    if version != VERSION {
        return Err(Error::UnsupportedVersion { found: version });
    }
    let header_len = match u16_at(b, field::HEADER_LEN.start) {
        Some(v) => v as usize,
        None => return Err(Error::BadMagic),
    };
    if header_len != HEADER_LEN {
        return Err(Error::Malformed {
            section: Section::Header,
            what: Rule::HeaderLength,
        });
    }
    let total = match u32_at(b, field::TOTAL_LEN.start) {
        Some(v) => v,
        None => return Err(Error::BadMagic),
    };
    if total as usize != b.len() {
        return Err(Error::LengthMismatch {
            declared: total,
            actual: b.len(),
        });
    }
    let flags = match u16_at(b, field::FLAGS.start) {
        Some(v) => v,
        None => 0xFFFF,
    };
    if flags != 0 {
        return Err(Error::Malformed {
            section: Section::Header,
            what: Rule::HeaderFlags,
        });
    }
    let mut i = field::RESERVED.start;
    while i < field::RESERVED.end {
        if b[i] != 0 {
            return Err(Error::Malformed {
                section: Section::Header,
                what: Rule::HeaderReserved,
            });
        }
        i += 1;
    }
    let count = match u16_at(b, field::SECTION_COUNT.start) {
        Some(v) => v as usize,
        None => 0,
    };
    if count > MAX_SECTIONS {
        return Err(Error::Malformed {
            section: Section::Header,
            what: Rule::TooManySections,
        });
    }
    let table_end = HEADER_LEN + count * SECTION_ENTRY_LEN;
    if table_end > b.len() {
        return Err(Error::Truncated {
            section: Section::Header,
            needed: table_end,
            available: b.len(),
        });
    }
    let mut sections = Sections {
        ranges: [(0, 0, false); 7],
    };
    // Sections are packed in table order: each starts at the first multiple of 4 after the
    // previous one (or the table) ends, and the blob ends at the first multiple of 4 after the
    // last. So sections never overlap and no byte of a blob is outside the format.
    let mut next = round_up4(table_end);
    let mut e = 0;
    while e < count {
        let at = HEADER_LEN + e * SECTION_ENTRY_LEN;
        // In bounds: at + 12 <= table_end <= b.len(), checked above.
        let (k, fl, off, len) = match (
            u16_at(b, at + field::entry::KIND.start),
            u16_at(b, at + field::entry::FLAGS.start),
            u32_at(b, at + field::entry::OFFSET.start),
            u32_at(b, at + field::entry::LEN.start),
        ) {
            (Some(k), Some(fl), Some(off), Some(len)) => (k, fl, off as usize, len as usize),
            _ => {
                return Err(Error::Truncated {
                    section: Section::Header,
                    needed: table_end,
                    available: b.len(),
                });
            }
        };
        if fl & !SECTION_REQUIRED != 0 {
            return Err(Error::Malformed {
                section: Section::Header,
                what: Rule::SectionFlags,
            });
        }
        if off != next {
            return Err(Error::Malformed {
                section: Section::Header,
                what: Rule::SectionNotPacked,
            });
        }
        match off.checked_add(len) {
            Some(end) if end <= b.len() => next = round_up4(end),
            _ => {
                return Err(Error::Malformed {
                    section: Section::Header,
                    what: Rule::SectionPastEnd,
                });
            }
        }
        match section_of_kind(k) {
            Some(s) => {
                let sl = slot(s);
                if sections.ranges[sl].2 {
                    return Err(Error::DuplicateSection { section: s });
                }
                sections.ranges[sl] = (off, len, true);
            }
            None => {
                if fl & SECTION_REQUIRED != 0 {
                    return Err(Error::UnknownSection { kind: k });
                }
            }
        }
        e += 1;
    }
    if next != b.len() {
        return Err(Error::Malformed {
            section: Section::Header,
            what: Rule::TrailingBytes,
        });
    }
    Ok(sections)
}

/// `n` rounded up to a multiple of 4 (`n` is at most a `u32` length, so this cannot overflow
/// a 64-bit `usize`; on 32-bit targets it saturates, which then fails the length checks).
const fn round_up4(n: usize) -> usize {
    match n.checked_add(3) {
        Some(m) => m & !3,
        None => usize::MAX & !3,
    }
}

/// A view of a weight blob over any byte container (a `&[u8]` in flash, a `Vec<u8>`).
///
/// `new_unchecked` wraps without checks (accessors then return 0 for fields beyond the end
/// rather than panicking); `check_len` validates the header and section table; `new_checked`
/// does both and verifies the CRC-32.
#[derive(Debug, Clone)]
pub struct Blob<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Blob<T> {
    /// Wraps `buffer` without any check.
    pub const fn new_unchecked(buffer: T) -> Self {
        Blob { buffer }
    }

    /// Wraps `buffer`, checking the header, the section table and the CRC-32.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let blob = Self::new_unchecked(buffer);
        blob.check_len()?;
        blob.check_crc()?;
        Ok(blob)
    }

    /// Validates the header and the section table (not the CRC, not section contents).
    pub fn check_len(&self) -> Result<(), Error> {
        locate_sections(self.buffer.as_ref()).map(|_| ())
    }

    /// Verifies the stored CRC-32 against the bytes. Call after [`Blob::check_len`].
    pub fn check_crc(&self) -> Result<(), Error> {
        let b = self.buffer.as_ref();
        let covered = b.get(field::CRC_START..).unwrap_or(&[]);
        let computed = crc::crc32(covered);
        let stored = self.stored_crc();
        if computed == stored {
            Ok(())
        } else {
            Err(Error::ChecksumMismatch { stored, computed })
        }
    }

    /// The located sections (re-validates the header).
    pub fn sections(&self) -> Result<Sections, Error> {
        locate_sections(self.buffer.as_ref())
    }

    /// Format version field (0 if the buffer is too short).
    pub fn version(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::VERSION.start).unwrap_or(0)
    }

    /// Total-length field (0 if the buffer is too short).
    pub fn total_len(&self) -> u32 {
        u32_at(self.buffer.as_ref(), field::TOTAL_LEN.start).unwrap_or(0)
    }

    /// Stored CRC-32 field (0 if the buffer is too short).
    pub fn stored_crc(&self) -> u32 {
        u32_at(self.buffer.as_ref(), field::CRC.start).unwrap_or(0)
    }

    /// Number of section-table entries (0 if the buffer is too short).
    pub fn section_count(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::SECTION_COUNT.start).unwrap_or(0)
    }

    /// The whole buffer.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}
