//! The metadata section: what the samples are (shape, units, classes) and how the model was
//! trained (objective, prediction type).

use super::bytes::{f32_at, or, u8_at, u16_at, u32_at};
use crate::error::{Error, Rule, Section};

/// Byte ranges of the metadata section.
pub mod field {
    use crate::blob::field::Field;
    /// `u8` [`super::Objective`] code.
    pub const OBJECTIVE: usize = 0;
    /// `u8` [`super::Prediction`] code.
    pub const PREDICTION: usize = 1;
    /// `u8` number of used dimensions in `SHAPE` (1..=4).
    pub const RANK: usize = 2;
    /// `u8` reserved, 0.
    pub const RESERVED: usize = 3;
    /// `[u16; 4]` data shape; dimensions past `RANK` are 1.
    pub const SHAPE: Field = 4..12;
    /// `u16` number of classes (0: unconditional).
    pub const CLASSES: Field = 12..14;
    /// `u16` class id meaning "no class" for guidance, or `0xFFFF` for none.
    pub const NULL_CLASS: Field = 14..16;
    /// `u32` length of each normalisation array: 0 (identity), 1 (scalar) or the data length.
    pub const NORM_LEN: Field = 16..20;
    /// Start of `scale: [f32; NORM_LEN]` followed by `offset: [f32; NORM_LEN]`.
    pub const NORM: usize = 20;
}

/// Largest number of elements in one sample.
pub const MAX_DATA_LEN: u32 = 1 << 24;

/// Largest magnitude of a normalisation scale or offset: 2^64, so that mapping a sample back
/// to data units cannot overflow f32 for any model-space value up to 2^63.
pub const MAX_NORM: f32 = 18_446_744_073_709_551_616.0;
/// `NULL_CLASS` value meaning the model has no null class.
pub const NO_NULL_CLASS: u16 = 0xFFFF;

/// What the network was trained for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum Objective {
    /// Discrete-time DDPM (Ho et al. 2020).
    Ddpm = 0,
    /// Denoising score matching, variance-exploding SDE (Song et al. 2021).
    ScoreVe = 1,
    /// Denoising score matching, variance-preserving SDE (Song et al. 2021).
    ScoreVp = 2,
    /// Flow matching / rectified flow (Lipman et al. 2023).
    Flow = 3,
    /// The decoder of a variational autoencoder (Kingma & Welling 2014): the network maps a
    /// latent `z ~ N(0, I)`, held in the first elements of its input, to the decoder's mean,
    /// so one `EVAL` of noise is a sample (prediction [`Prediction::Sample`]). A two-level
    /// (hierarchical) VAE is one too: its network draws the inner latent itself (`NOISE`).
    Vae = 4,
    /// A restricted Boltzmann machine (Smolensky 1986; Hinton 2002): the network is one block
    /// Gibbs sweep from the visible units' probabilities to the next ones (`BERNOULLI`
    /// draws inside), and a program of `K` `EVAL`s samples by `K` sweeps; the sample is the
    /// last probabilities (prediction [`Prediction::Sample`]).
    Rbm = 5,
}

impl Objective {
    /// From the stored code.
    pub const fn from_code(c: u8) -> Option<Self> {
        match c {
            0 => Some(Self::Ddpm),
            1 => Some(Self::ScoreVe),
            2 => Some(Self::ScoreVp),
            3 => Some(Self::Flow),
            4 => Some(Self::Vae),
            5 => Some(Self::Rbm),
            _ => None,
        }
    }
    /// Lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ddpm => "ddpm",
            Self::ScoreVe => "score-ve",
            Self::ScoreVp => "score-vp",
            Self::Flow => "flow",
            Self::Vae => "vae",
            Self::Rbm => "rbm",
        }
    }
}

/// What the network outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum Prediction {
    /// The noise ε.
    Epsilon = 0,
    /// The score ∇ log p_t(x).
    Score = 1,
    /// The flow velocity.
    Velocity = 2,
    /// The clean sample x₀.
    Sample = 3,
    /// `v = α·ε − σ·x₀` (Salimans & Ho 2022), for processes with `α² + σ² = 1`.
    V = 4,
}

impl Prediction {
    /// From the stored code.
    pub const fn from_code(c: u8) -> Option<Self> {
        match c {
            0 => Some(Self::Epsilon),
            1 => Some(Self::Score),
            2 => Some(Self::Velocity),
            3 => Some(Self::Sample),
            4 => Some(Self::V),
            _ => None,
        }
    }
    /// Lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Epsilon => "epsilon",
            Self::Score => "score",
            Self::Velocity => "velocity",
            Self::Sample => "sample",
            Self::V => "v",
        }
    }
}

/// The parsed metadata section (borrows the normalisation arrays in place).
#[derive(Debug, Clone, Copy)]
pub struct Meta<'a> {
    /// Training objective.
    pub objective: Objective,
    /// Network output type.
    pub prediction: Prediction,
    /// Used dimensions of `shape`.
    pub rank: u8,
    /// Data shape; dimensions past `rank` are 1.
    pub shape: [u16; 4],
    /// Elements in one sample (product of `shape`).
    pub data_len: u32,
    /// Number of classes (0: unconditional).
    pub classes: u16,
    /// The class id used for unconditional evaluations in guidance, if any.
    pub null_class: Option<u16>,
    norm_len: u32,
    norm: &'a [u8],
}

const fn bad(what: Rule) -> Error {
    Error::Malformed {
        section: Section::Meta,
        what,
    }
}

/// Elements in one sample, from the shape fields alone (used by the `const` planner).
pub const fn data_len(b: &[u8]) -> Result<u32, Error> {
    if b.len() < field::NORM {
        return Err(Error::Truncated {
            section: Section::Meta,
            needed: field::NORM,
            available: b.len(),
        });
    }
    let rank = match u8_at(b, field::RANK) {
        Some(r) => r as usize,
        None => 0,
    };
    if rank == 0 || rank > 4 {
        return Err(bad(Rule::Rank));
    }
    let mut n: u32 = 1;
    let mut d = 0;
    while d < 4 {
        let dim = match u16_at(b, field::SHAPE.start + 2 * d) {
            Some(v) => v as u32,
            None => 0,
        };
        if dim == 0 {
            return Err(bad(Rule::ZeroDimension));
        }
        if d >= rank && dim != 1 {
            return Err(bad(Rule::DimensionPastRank));
        }
        n = match n.checked_mul(dim) {
            Some(v) if v <= MAX_DATA_LEN => v,
            _ => return Err(bad(Rule::DataTooLong)),
        };
        d += 1;
    }
    Ok(n)
}

impl<'a> Meta<'a> {
    /// Parses and validates the metadata section.
    pub const fn parse(b: &'a [u8]) -> Result<Self, Error> {
        let data_len = tri!(data_len(b));
        let objective_code = or(u8_at(b, field::OBJECTIVE), 0xFF);
        let Some(objective) = Objective::from_code(objective_code) else {
            return Err(Error::UnknownObjective {
                code: objective_code,
            });
        };
        let prediction_code = or(u8_at(b, field::PREDICTION), 0xFF);
        let Some(prediction) = Prediction::from_code(prediction_code) else {
            return Err(Error::UnknownPrediction {
                code: prediction_code,
            });
        };
        if !matches!(u8_at(b, field::RESERVED), Some(0)) {
            return Err(bad(Rule::MetaReserved));
        }
        let rank = or(u8_at(b, field::RANK), 0);
        let mut shape = [1u16; 4];
        let mut d = 0;
        while d < 4 {
            if let Some(s) = u16_at(b, field::SHAPE.start + 2 * d) {
                shape[d] = s;
            }
            d += 1;
        }
        let classes = or(u16_at(b, field::CLASSES.start), 0);
        let null = or(u16_at(b, field::NULL_CLASS.start), NO_NULL_CLASS);
        let null_class = if null == NO_NULL_CLASS {
            None
        } else {
            if classes == 0 {
                return Err(bad(Rule::NullClassUnconditional));
            }
            Some(null)
        };
        let norm_len = or(u32_at(b, field::NORM_LEN.start), 0);
        if norm_len > 1 && norm_len != data_len {
            return Err(bad(Rule::NormLength));
        }
        let expected = match (norm_len as usize).checked_mul(8) {
            Some(n) => n.checked_add(field::NORM),
            None => None,
        };
        if !matches!(expected, Some(e) if e == b.len()) {
            return Err(bad(Rule::NormSectionLength));
        }
        let norm = match b.split_at_checked(field::NORM) {
            Some((_, norm)) => norm,
            None => &[],
        };
        let meta = Meta {
            objective,
            prediction,
            rank,
            shape,
            data_len,
            classes,
            null_class,
            norm_len,
            norm,
        };
        let mut i = 0;
        while i < norm_len {
            let (s, o) = meta.norm_at(i);
            // Also false for NaN. Within ±2^64, `x·s + o` is finite for every register value
            // up to 2^63 in magnitude; beyond it the sampler's `OutputNotFinite` still holds.
            if s.is_nan() || o.is_nan() || s.abs() > MAX_NORM || o.abs() > MAX_NORM {
                return Err(bad(Rule::NormNotFinite));
            }
            i += 1;
        }
        Ok(meta)
    }

    /// (scale, offset) of normalisation entry `i` (identity past the stored entries).
    const fn norm_at(&self, i: u32) -> (f32, f32) {
        if self.norm_len == 0 {
            return (1.0, 0.0);
        }
        let i = if self.norm_len == 1 { 0 } else { i } as usize;
        let n = self.norm_len as usize;
        let s = or(f32_at(self.norm, 4 * i), 1.0);
        let o = or(f32_at(self.norm, 4 * (n + i)), 0.0);
        (s, o)
    }

    /// Maps element `i` of a model-space sample back to data units: `x * scale + offset`.
    pub fn to_data_units(&self, i: usize, x: f32) -> f32 {
        let (s, o) = self.norm_at(i as u32);
        x * s + o
    }

    /// Number of stored normalisation entries (0, 1 or the data length).
    pub fn norm_len(&self) -> u32 {
        self.norm_len
    }
}

/// Writes a metadata section (the emitter's half of the format).
#[cfg(feature = "alloc")]
#[allow(clippy::too_many_arguments)] // one argument per field, in layout order
pub(crate) fn encode(
    out: &mut alloc::vec::Vec<u8>,
    objective: Objective,
    prediction: Prediction,
    shape: &[u16],
    classes: u16,
    null_class: Option<u16>,
    norm_scale: &[f32],
    norm_offset: &[f32],
) {
    out.push(objective as u8);
    out.push(prediction as u8);
    out.push(shape.len() as u8);
    out.push(0);
    for d in 0..4 {
        let v = shape.get(d).copied().unwrap_or(1);
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&classes.to_le_bytes());
    out.extend_from_slice(&null_class.unwrap_or(NO_NULL_CLASS).to_le_bytes());
    out.extend_from_slice(&(norm_scale.len() as u32).to_le_bytes());
    for v in norm_scale.iter().chain(norm_offset) {
        out.extend_from_slice(&v.to_le_bytes());
    }
}
