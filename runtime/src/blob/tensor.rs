//! The tensor table and the data section: weights viewed in place, never copied.
//!
//! Every tensor is a row-major `(rows, cols)` matrix (vectors have `cols = 1`) of f32, f16 or
//! int8 elements; int8 tensors carry one f32 scale per row (per output channel, symmetric,
//! zero-point 0). Offsets are relative to the data section and multiples of 4.

use microdiff_kernels::{Dtype, Matrix};

use super::bytes::{or, sub, u8_at, u16_at, u32_at};
use crate::error::{Error, Rule, Section};

/// Byte ranges of the tensor section and of one tensor record.
pub mod field {
    use crate::blob::field::Field;
    /// `u32` number of tensor records.
    pub const COUNT: Field = 0..4;
    /// First record.
    pub const RECORDS: usize = 4;
    /// Length of one record.
    pub const RECORD_LEN: usize = 24;
    /// `u8` dtype code (0 f32, 1 f16, 2 i8).
    pub const DTYPE: usize = 0;
    /// `u8` + `u16` reserved, 0.
    pub const RESERVED0: Field = 1..4;
    /// `u32` rows.
    pub const ROWS: Field = 4..8;
    /// `u32` columns.
    pub const COLS: Field = 8..12;
    /// `u32` offset of the elements in the data section.
    pub const DATA_OFFSET: Field = 12..16;
    /// `u32` offset of the per-row f32 scales (i8 only), else `NO_SCALES`.
    pub const SCALES_OFFSET: Field = 16..20;
    /// `u32` reserved, 0.
    pub const RESERVED1: Field = 20..24;
}

/// `SCALES_OFFSET` of a tensor without scales.
pub const NO_SCALES: u32 = 0xFFFF_FFFF;
/// A tensor index meaning "no tensor" in graph ops.
pub const NO_TENSOR: u16 = 0xFFFF;

/// One tensor, borrowed from the blob.
#[derive(Debug, Clone, Copy)]
pub struct Tensor<'a> {
    /// Element type.
    pub dtype: Dtype,
    /// Rows (output channels).
    pub rows: u32,
    /// Columns.
    pub cols: u32,
    /// Element bytes, little-endian.
    pub data: &'a [u8],
    /// Per-row f32 scales (int8 only; empty otherwise).
    pub scales: &'a [u8],
}

impl<'a> Tensor<'a> {
    /// The tensor as a kernel matrix view.
    pub fn matrix(&self) -> Result<Matrix<'a>, Error> {
        Ok(Matrix::new(
            self.dtype,
            self.rows as usize,
            self.cols as usize,
            self.data,
            self.scales,
        )?)
    }

    /// Number of elements.
    pub const fn len(&self) -> u32 {
        self.rows.saturating_mul(self.cols)
    }

    /// True for a tensor with no elements (never the case in a validated blob).
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The validated tensor table plus the data section it points into.
#[derive(Debug, Clone, Copy)]
pub struct Tensors<'a> {
    table: &'a [u8],
    data: &'a [u8],
    count: u16,
}

/// [`Error::BadTensor`] for tensor `i`.
const fn bad(tensor: u16, what: Rule) -> Error {
    Error::BadTensor { tensor, what }
}

impl<'a> Tensors<'a> {
    /// Parses the table and checks every tensor against the data section.
    pub const fn parse(table: &'a [u8], data: &'a [u8]) -> Result<Self, Error> {
        let Some(count) = u32_at(table, field::COUNT.start) else {
            return Err(Error::Truncated {
                section: Section::Tensors,
                needed: 4,
                available: table.len(),
            });
        };
        if count >= NO_TENSOR as u32 {
            return Err(Error::Malformed {
                section: Section::Tensors,
                what: Rule::TooManyTensors,
            });
        }
        let needed = field::RECORDS + count as usize * field::RECORD_LEN;
        if table.len() != needed {
            return Err(Error::Malformed {
                section: Section::Tensors,
                what: Rule::TensorSectionLength,
            });
        }
        let tensors = Tensors {
            table,
            data,
            count: count as u16,
        };
        let mut i = 0;
        while i < tensors.count {
            tri!(tensors.check(i));
            i += 1;
        }
        Ok(tensors)
    }

    /// Number of tensors.
    pub const fn count(&self) -> u16 {
        self.count
    }

    /// Record `i` and its dtype (the rules both `get` and `check` start with).
    const fn record(&self, i: u16) -> Result<(&'a [u8], Dtype), Error> {
        if i >= self.count {
            return Err(bad(i, Rule::TensorIndex));
        }
        let at = field::RECORDS + i as usize * field::RECORD_LEN;
        let Some(rec) = sub(self.table, at, field::RECORD_LEN) else {
            return Err(bad(i, Rule::RecordTruncated));
        };
        let code = or(u8_at(rec, field::DTYPE), 0xFF);
        match Dtype::from_code(code) {
            Some(dtype) => Ok((rec, dtype)),
            None => Err(Error::UnknownDtype { tensor: i, code }),
        }
    }

    /// Tensor `i`: its record's fields and its bytes. [`Tensors::parse`] checked every record
    /// (the rules of [`Tensors::check`]) on these same borrowed bytes, so this reads the
    /// fields again without re-checking them (the executor calls it for every op of every
    /// evaluation); the slicing stays checked, so it never panics, and an index out of range
    /// is an error.
    pub const fn get(&self, i: u16) -> Result<Tensor<'a>, Error> {
        let (rec, dtype) = tri!(self.record(i));
        let rows = or(u32_at(rec, field::ROWS.start), 0);
        let cols = or(u32_at(rec, field::COLS.start), 0);
        // In range and without overflow: `check` computed the same product.
        let elems = (rows as usize)
            .wrapping_mul(cols as usize)
            .wrapping_mul(dtype.bytes_per_element());
        let off = match u32_at(rec, field::DATA_OFFSET.start) {
            Some(o) => o as usize,
            None => 0,
        };
        let Some(data) = sub(self.data, off, elems) else {
            return Err(bad(i, Rule::DataOutside));
        };
        let scales: &[u8] = match dtype {
            Dtype::I8 => {
                let soff = match u32_at(rec, field::SCALES_OFFSET.start) {
                    Some(o) => o as usize,
                    None => 0,
                };
                match sub(self.data, soff, (rows as usize).wrapping_mul(4)) {
                    Some(v) => v,
                    None => return Err(bad(i, Rule::ScalesOutside)),
                }
            }
            _ => &[],
        };
        Ok(Tensor {
            dtype,
            rows,
            cols,
            data,
            scales,
        })
    }

    /// Tensor `i`, checked against every rule of the format (what [`Tensors::parse`] runs on
    /// each record): reserved bytes, sizes without overflow, aligned offsets inside the data
    /// section, finite values.
    pub const fn check(&self, i: u16) -> Result<Tensor<'a>, Error> {
        let (rec, dtype) = tri!(self.record(i));
        if !matches!(u8_at(rec, 1), Some(0))
            || !matches!(u16_at(rec, 2), Some(0))
            || !matches!(u32_at(rec, field::RESERVED1.start), Some(0))
        {
            return Err(bad(i, Rule::TensorReserved));
        }
        let rows = or(u32_at(rec, field::ROWS.start), 0);
        let cols = or(u32_at(rec, field::COLS.start), 0);
        if rows == 0 || cols == 0 {
            return Err(bad(i, Rule::ZeroRowsOrCols));
        }
        let elems = match (rows as usize).checked_mul(cols as usize) {
            Some(n) => n.checked_mul(dtype.bytes_per_element()),
            None => None,
        };
        let Some(elems) = elems else {
            return Err(bad(i, Rule::SizeOverflows));
        };
        let off = or(u32_at(rec, field::DATA_OFFSET.start), 1);
        if !off.is_multiple_of(4) {
            return Err(bad(i, Rule::DataMisaligned));
        }
        let Some(data) = sub(self.data, off as usize, elems) else {
            return Err(bad(i, Rule::DataOutside));
        };
        let soff = or(u32_at(rec, field::SCALES_OFFSET.start), NO_SCALES);
        let scales: &[u8] = match dtype {
            Dtype::I8 => {
                if !soff.is_multiple_of(4) {
                    return Err(bad(i, Rule::ScalesMisaligned));
                }
                let Some(len) = (rows as usize).checked_mul(4) else {
                    return Err(bad(i, Rule::SizeOverflows));
                };
                match sub(self.data, soff as usize, len) {
                    Some(v) => v,
                    None => return Err(bad(i, Rule::ScalesOutside)),
                }
            }
            _ => {
                if soff != NO_SCALES {
                    return Err(bad(i, Rule::ScalesNotInt8));
                }
                &[]
            }
        };
        let t = Tensor {
            dtype,
            rows,
            cols,
            data,
            scales,
        };
        if !t.values_are_finite() {
            return Err(bad(i, Rule::NotFinite));
        }
        Ok(t)
    }
}

impl Tensor<'_> {
    /// Every element finite and every int8 scale finite and ≥ 0 (one pass over the data, done
    /// once at parse time so a corrupt weight is reported as such, not as a non-finite sample).
    const fn values_are_finite(&self) -> bool {
        // Whole words by index: a `const` parse of a large blob (at compile time) spends most
        // of its interpreter steps here; indexing whole words halved the compile time of a
        // 256 KB f32 blob (6.6 s to 3.3 s) against reading each with `f32_at`.
        let (scales, _) = self.scales.as_chunks::<4>();
        let mut i = 0;
        while i < scales.len() {
            let s = f32::from_le_bytes(scales[i]);
            if !(s.is_finite() && s >= 0.0) {
                return false;
            }
            i += 1;
        }
        match self.dtype {
            Dtype::F32 => {
                let (words, _) = self.data.as_chunks::<4>();
                let mut i = 0;
                while i < words.len() {
                    if !f32::from_le_bytes(words[i]).is_finite() {
                        return false;
                    }
                    i += 1;
                }
            }
            // An f16 is non-finite exactly when its exponent bits are all ones.
            Dtype::F16 => {
                let (halves, _) = self.data.as_chunks::<2>();
                let mut i = 0;
                while i < halves.len() {
                    if u16::from_le_bytes(halves[i]) & 0x7C00 == 0x7C00 {
                        return false;
                    }
                    i += 1;
                }
            }
            Dtype::I8 | Dtype::Q8 | Dtype::I32 => {}
        }
        true
    }
}

/// Writes one tensor record (the emitter's half of the format).
#[cfg(feature = "alloc")]
pub(crate) fn encode_record(
    out: &mut alloc::vec::Vec<u8>,
    dtype: Dtype,
    rows: u32,
    cols: u32,
    data_offset: u32,
    scales_offset: Option<u32>,
) {
    out.push(dtype.code());
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&rows.to_le_bytes());
    out.extend_from_slice(&cols.to_le_bytes());
    out.extend_from_slice(&data_offset.to_le_bytes());
    out.extend_from_slice(&scales_offset.unwrap_or(NO_SCALES).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use crate::Model;

    const GOLDEN: [&[u8]; 5] = [
        include_bytes!("../../../tests/golden/ref-mlp-f32.mdfb"),
        include_bytes!("../../../tests/golden/ref-mlp-f16.mdfb"),
        include_bytes!("../../../tests/golden/ref-mlp-i8.mdfb"),
        include_bytes!("../../../tests/golden/digits-i8.mdfb"),
        include_bytes!("../../../tests/golden/digits-w8a8.mdfb"),
    ];

    /// The executor's unchecked `get` views exactly what the parse-time `check` validated.
    #[test]
    fn get_reads_what_check_validated() {
        for blob in GOLDEN {
            let model = Model::parse(blob).unwrap();
            let t = model.tensors();
            for i in 0..t.count() {
                let (a, b) = (t.get(i).unwrap(), t.check(i).unwrap());
                assert_eq!((a.dtype, a.rows, a.cols), (b.dtype, b.rows, b.cols));
                assert_eq!((a.data, a.scales), (b.data, b.scales), "tensor {i}");
            }
            assert!(t.get(t.count()).is_err());
        }
    }
}
