//! The residual-MLP ε / score / velocity network, as trained on the host.
//!
//! ```text
//! h   = W_in·x + b_in  +  W_t2·silu(W_t1·sinusoidal(t) + b_t1) + b_t2  (+ E[class])
//! h   = h + W_2·act(W_1·LN(h) + b_1) + b_2            × blocks
//! out = W_out·act(LN(h)) + b_out
//! ```
//! This is the network the runtime's graph ops express (`export` writes exactly this graph),
//! so a trained model runs unchanged on the device. Parameters live in one flat f32 buffer
//! (the optimizer, EMA, gradient clipping and checkpoints treat it as a whole); [`Layout`]
//! names every tensor's offset and shape in it.

mod mlp;

pub use mlp::{Activations, Mlp};

use microdiff_kernels::Activation;
use serde::{Deserialize, Serialize};

use microdiff_runtime::noise::{Domain, NoiseStream};

/// Max period of the sinusoidal time embedding (the transformer convention).
pub const MAX_PERIOD: f32 = 10_000.0;
/// Layer-norm ε.
pub const LN_EPS: f32 = 1e-5;

/// Widest `hidden`, `ff` and `temb` a model may have ([`MlpConfig::validate`]).
pub const MAX_WIDTH: usize = 16_384;
/// Most residual blocks.
pub const MAX_BLOCKS: usize = 256;
/// Most values per example: the blob's limit (`MAX_DATA_LEN` of the runtime).
pub const MAX_DATA_DIM: usize = 1 << 24;
/// Most parameters: 2^28 (1 GiB of f32; 4 GiB with the EMA copy and AdamW's moments).
pub const MAX_PARAMETERS: usize = 1 << 28;

/// Shape of the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MlpConfig {
    /// Elements per sample.
    pub data_dim: usize,
    /// Residual stream width.
    pub hidden: usize,
    /// Block inner width.
    pub ff: usize,
    /// Time-embedding width (even).
    pub temb: usize,
    /// Residual blocks.
    pub blocks: usize,
    /// Classes (0: unconditional). The null class for guidance is id `classes`.
    pub classes: usize,
    /// Activation of the blocks and the head (the time MLP always uses SiLU).
    #[serde(with = "activation_name")]
    pub act: Activation,
}

mod activation_name {
    use microdiff_kernels::Activation;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(a: &Activation, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(a.name())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Activation, D::Error> {
        let name = String::deserialize(d)?;
        (0..=255u8)
            .filter_map(Activation::from_code)
            .find(|a| a.name() == name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown activation {name:?}")))
    }
}

/// Where one tensor lives in the flat parameter buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Offset in elements.
    pub offset: usize,
    /// Rows (outputs for a matrix; length for a vector).
    pub rows: usize,
    /// Columns (1 for a vector).
    pub cols: usize,
}

impl Slot {
    /// Elements.
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }
    /// True for an empty tensor (never in a valid layout).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One residual block's tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockSlots {
    /// LN γ, β.
    pub ln_g: Slot,
    /// LN β.
    pub ln_b: Slot,
    /// (ff, hidden).
    pub w1: Slot,
    /// ff.
    pub b1: Slot,
    /// (hidden, ff).
    pub w2: Slot,
    /// hidden.
    pub b2: Slot,
}

/// Every tensor's place in the parameter buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// (hidden, data_dim).
    pub w_in: Slot,
    /// hidden.
    pub b_in: Slot,
    /// (hidden, temb).
    pub w_t1: Slot,
    /// hidden.
    pub b_t1: Slot,
    /// (hidden, hidden).
    pub w_t2: Slot,
    /// hidden.
    pub b_t2: Slot,
    /// (classes + 1, hidden), if conditional.
    pub table: Option<Slot>,
    /// Residual blocks.
    pub blocks: Vec<BlockSlots>,
    /// Head LN γ.
    pub ln_g: Slot,
    /// Head LN β.
    pub ln_b: Slot,
    /// (data_dim, hidden).
    pub w_out: Slot,
    /// data_dim.
    pub b_out: Slot,
    /// Total elements.
    pub len: usize,
}

impl Layout {
    /// Lays the tensors of `c` out one after another.
    pub fn new(c: &MlpConfig) -> Self {
        let mut at = 0;
        let mut slot = |rows: usize, cols: usize| {
            let s = Slot {
                offset: at,
                rows,
                cols,
            };
            at += rows * cols;
            s
        };
        let (d, h, f, e) = (c.data_dim, c.hidden, c.ff, c.temb);
        let w_in = slot(h, d);
        let b_in = slot(h, 1);
        let w_t1 = slot(h, e);
        let b_t1 = slot(h, 1);
        let w_t2 = slot(h, h);
        let b_t2 = slot(h, 1);
        let table = (c.classes > 0).then(|| slot(c.classes + 1, h));
        let blocks = (0..c.blocks)
            .map(|_| BlockSlots {
                ln_g: slot(h, 1),
                ln_b: slot(h, 1),
                w1: slot(f, h),
                b1: slot(f, 1),
                w2: slot(h, f),
                b2: slot(h, 1),
            })
            .collect();
        let ln_g = slot(h, 1);
        let ln_b = slot(h, 1);
        let w_out = slot(d, h);
        let b_out = slot(d, 1);
        Layout {
            w_in,
            b_in,
            w_t1,
            b_t1,
            w_t2,
            b_t2,
            table,
            blocks,
            ln_g,
            ln_b,
            w_out,
            b_out,
            len: at,
        }
    }

    /// Every matrix (weight-decayed, quantized on export), in layout order.
    pub fn matrices(&self) -> Vec<Slot> {
        let mut v = vec![self.w_in, self.w_t1, self.w_t2];
        v.extend(self.table);
        for b in &self.blocks {
            v.push(b.w1);
            v.push(b.w2);
        }
        v.push(self.w_out);
        v
    }

    /// 1 for elements of matrices, 0 for biases and norm parameters (the AdamW decay mask).
    pub fn decay_mask(&self) -> Vec<f32> {
        let mut m = vec![0.0; self.len];
        for s in self.matrices() {
            m[s.offset..s.offset + s.len()].fill(1.0);
        }
        m
    }
}

impl MlpConfig {
    /// Number of parameters.
    pub fn parameter_count(&self) -> usize {
        Layout::new(self).len
    }

    /// Checks the shape makes sense.
    pub fn validate(&self) -> Result<(), String> {
        if self.data_dim == 0 || self.hidden == 0 || self.ff == 0 {
            return Err("data_dim, hidden and ff must be > 0".into());
        }
        // Each bound keeps `Layout::new`'s sizes far inside usize; the parameter bound keeps
        // the model, its EMA and AdamW's two moments (16 bytes a parameter) within 4 GiB.
        if self.hidden > MAX_WIDTH || self.ff > MAX_WIDTH || self.temb > MAX_WIDTH {
            return Err(format!(
                "hidden {}, ff {}, temb {}: each must be at most {MAX_WIDTH}",
                self.hidden, self.ff, self.temb
            ));
        }
        if self.blocks > MAX_BLOCKS {
            return Err(format!("blocks {}: at most {MAX_BLOCKS}", self.blocks));
        }
        if self.data_dim > MAX_DATA_DIM {
            return Err(format!(
                "data of {} values per example: at most {MAX_DATA_DIM}",
                self.data_dim
            ));
        }
        let params = self.parameter_count();
        if params > MAX_PARAMETERS {
            return Err(format!(
                "{params} parameters (hidden {}, ff {}, blocks {}, data {}): at most \
                 {MAX_PARAMETERS}; make the network smaller",
                self.hidden, self.ff, self.blocks, self.data_dim
            ));
        }
        if self.temb < 2 || !self.temb.is_multiple_of(2) {
            return Err("temb must be even and >= 2".into());
        }
        if self.classes > u16::MAX as usize - 1 {
            return Err("too many classes".into());
        }
        Ok(())
    }

    /// Seeded initial parameters: matrices uniform in ±√(1/fan_in)·gain (PyTorch's default
    /// linear init), the output layer scaled down so the initial prediction is near zero,
    /// class embeddings N(0, 1)-like, LN γ = 1, every bias and β = 0.
    pub fn init(&self, seed: u64) -> Vec<f32> {
        let l = Layout::new(self);
        let mut p = vec![0.0f32; l.len];
        let rng = NoiseStream::new(seed, 0, Domain::TrainNoise);
        let mut draw = 0u32;
        let mut fill = |p: &mut [f32], s: Slot, gain: f32| {
            let bound = gain / (s.cols as f32).sqrt();
            for (j, v) in p[s.offset..s.offset + s.len()].iter_mut().enumerate() {
                *v = (2.0 * rng.uniform(draw, j as u32) - 1.0) * bound;
            }
            draw += 1;
        };
        fill(&mut p, l.w_in, 1.0);
        fill(&mut p, l.w_t1, 1.0);
        fill(&mut p, l.w_t2, 1.0);
        if let Some(t) = l.table {
            // Unit-scale rows: √3·U(−1, 1) has variance 1 (`fill` divides by √cols).
            fill(&mut p, t, 3f32.sqrt() * (t.cols as f32).sqrt());
        }
        for b in &l.blocks {
            fill(&mut p, b.w1, 1.0);
            fill(&mut p, b.w2, 0.5);
            p[b.ln_g.offset..b.ln_g.offset + b.ln_g.len()].fill(1.0);
        }
        p[l.ln_g.offset..l.ln_g.offset + l.ln_g.len()].fill(1.0);
        fill(&mut p, l.w_out, 0.1);
        p
    }
}
