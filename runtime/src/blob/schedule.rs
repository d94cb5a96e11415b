//! The training schedule table: `(t, ᾱ, σ)` rows the model was trained with.
//!
//! Programs carry their own coefficients, so the runtime does not need this table to sample;
//! it is stored so tools and custom on-device samplers can read the schedule a blob was
//! trained under (for DDPM, row `i` is timestep `i`: the time value fed to the network, ᾱᵢ
//! and σᵢ = √(1 − ᾱᵢ); VE/VP/flow models store their own continuous-time grid). Optional.

use super::bytes::{f32_at, u32_at};
use crate::error::{Error, Rule, Section};

/// Byte ranges of the schedule section.
pub mod field {
    use crate::blob::field::Field;
    /// `u32` number of rows.
    pub const ROWS: Field = 0..4;
    /// First row: `t: f32, alpha_bar: f32, sigma: f32`.
    pub const TABLE: usize = 4;
    /// Bytes per row.
    pub const ROW_LEN: usize = 12;
}

/// One schedule row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScheduleRow {
    /// Time value the network sees.
    pub t: f32,
    /// ᾱ (signal variance factor); 1 where not meaningful.
    pub alpha_bar: f32,
    /// Noise standard deviation σ.
    pub sigma: f32,
}

/// The schedule table, in place.
#[derive(Debug, Clone, Copy)]
pub struct Schedule<'a> {
    bytes: &'a [u8],
    rows: u32,
}

impl<'a> Schedule<'a> {
    /// An empty table (blob without a schedule section).
    pub const EMPTY: Schedule<'static> = Schedule {
        bytes: &[],
        rows: 0,
    };

    /// Parses and validates the table: every value finite.
    pub const fn parse(b: &'a [u8]) -> Result<Self, Error> {
        let Some(rows) = u32_at(b, field::ROWS.start) else {
            return Err(Error::Truncated {
                section: Section::Schedule,
                needed: 4,
                available: b.len(),
            });
        };
        let expected = match (rows as usize).checked_mul(field::ROW_LEN) {
            Some(n) => n.checked_add(field::TABLE),
            None => None,
        };
        if !matches!(expected, Some(e) if e == b.len()) {
            return Err(Error::Malformed {
                section: Section::Schedule,
                what: Rule::ScheduleLength,
            });
        }
        let s = Schedule { bytes: b, rows };
        let mut i = 0;
        while i < rows {
            let Some(r) = s.row(i) else {
                return Err(Error::Malformed {
                    section: Section::Schedule,
                    what: Rule::ScheduleRowTruncated,
                });
            };
            if !(r.t.is_finite() && r.alpha_bar.is_finite() && r.sigma.is_finite()) {
                return Err(Error::Malformed {
                    section: Section::Schedule,
                    what: Rule::ScheduleNotFinite,
                });
            }
            i += 1;
        }
        Ok(s)
    }

    /// Number of rows.
    pub fn len(&self) -> u32 {
        self.rows
    }

    /// True for an empty table.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Row `i`.
    pub const fn row(&self, i: u32) -> Option<ScheduleRow> {
        let Some(at) = (i as usize).checked_mul(field::ROW_LEN) else {
            return None;
        };
        let Some(at) = at.checked_add(field::TABLE) else {
            return None;
        };
        match (
            f32_at(self.bytes, at),
            f32_at(self.bytes, at + 4),
            f32_at(self.bytes, at + 8),
        ) {
            (Some(t), Some(alpha_bar), Some(sigma)) => Some(ScheduleRow {
                t,
                alpha_bar,
                sigma,
            }),
            _ => None,
        }
    }
}
