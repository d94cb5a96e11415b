//! The reference residual-MLP ε-network: seeded random weights, its blob, and an independent
//! f64 forward pass.
//!
//! ```text
//! h   = W_in·x + b_in                                   (hidden)
//!     + W_t2·silu(W_t1·sinusoidal(t) + b_t1) + b_t2     time embedding MLP
//!     + E[class]                                        class embedding (optional)
//! h   = h + W_2·act(W_1·LN(h) + b_1) + b_2              × blocks
//! out = W_out·act(LN(h)) + b_out                        (data_len)
//! ```
//! The f64 forward pass reads the dequantized weights (f16 rounded, int8 `q · scale`) from the
//! spec, not from the blob, and uses f64 `sin`, `cos`, `exp`, `tanh` and `sqrt`, so it shares no
//! arithmetic with the runtime.

use half::f16;
use microdiff_kernels::{Activation, Dtype, quantize_row_i8};
use microdiff_runtime::Error;
use microdiff_runtime::blob::meta::{Objective, Prediction};
use microdiff_runtime::blob::{BlobBuilder, Value};

/// Max period of the sinusoidal time embedding.
pub const MAX_PERIOD: f32 = 10_000.0;
/// Layer-norm ε.
pub const LN_EPS: f32 = 1e-5;

/// Shape of the network.
#[derive(Debug, Clone, Copy)]
pub struct MlpSpec {
    /// Elements per sample.
    pub data_len: usize,
    /// Residual stream width.
    pub hidden: usize,
    /// Block inner width.
    pub ff: usize,
    /// Time-embedding width (even).
    pub temb: usize,
    /// Residual blocks.
    pub blocks: usize,
    /// Classes (0: unconditional); the null class is `classes`.
    pub classes: u16,
    /// Activation in the blocks and the head.
    pub act: Activation,
    /// Weight dtype of every matrix (biases and norms stay f32).
    pub dtype: Dtype,
}

impl MlpSpec {
    /// The on-device digits architecture (8×8 images, 10 classes + null): sized so the int8
    /// blob (≈ 75 KB) fits a Cortex-M0 with 256 KB flash next to the golden blobs, and its
    /// arena in 16 KB of RAM. The trainer may retune it within that budget.
    pub fn digits() -> Self {
        MlpSpec {
            data_len: 64,
            hidden: 96,
            ff: 128,
            temb: 32,
            blocks: 2,
            classes: 10,
            act: Activation::Silu,
            dtype: Dtype::I8,
        }
    }

    /// The network of the conformance tests and golden vectors: small enough for a Cortex-M0.
    pub fn reference(dtype: Dtype) -> Self {
        MlpSpec {
            data_len: 8,
            hidden: 32,
            ff: 64,
            temb: 16,
            blocks: 2,
            classes: 4,
            act: Activation::Silu,
            dtype,
        }
    }
}

/// A weight matrix kept as the f32 master values plus their dequantized f64 view.
#[derive(Debug, Clone)]
pub struct Mat {
    /// Rows (outputs).
    pub rows: usize,
    /// Columns (inputs).
    pub cols: usize,
    /// Master values, row-major.
    pub master: Vec<f32>,
    /// What the device computes with: the stored dtype's values, exactly, in f64.
    pub deq: Vec<f64>,
}

fn dequantize(dtype: Dtype, rows: usize, cols: usize, v: &[f32]) -> Vec<f64> {
    match dtype {
        Dtype::F32 => v.iter().map(|&x| x as f64).collect(),
        Dtype::F16 => v.iter().map(|&x| f16::from_f32(x).to_f64()).collect(),
        Dtype::I8 => {
            let mut out = Vec::with_capacity(rows * cols);
            let mut q = vec![0i8; cols];
            for row in v.chunks_exact(cols) {
                let s = quantize_row_i8(row, &mut q).expect("row length");
                out.extend(q.iter().map(|&qi| qi as f64 * s as f64));
            }
            out
        }
        Dtype::Q8 | Dtype::I32 => unreachable!("float-path weight dtypes only"),
    }
}

/// SplitMix64: a tiny seeded generator for test weights (host only).
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    pub fn sym(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// One residual block.
#[derive(Debug, Clone)]
pub struct Block {
    /// LN γ, β.
    pub ln_g: Vec<f32>,
    /// LN β.
    pub ln_b: Vec<f32>,
    /// (ff, hidden).
    pub w1: Mat,
    /// ff.
    pub b1: Vec<f32>,
    /// (hidden, ff).
    pub w2: Mat,
    /// hidden.
    pub b2: Vec<f32>,
}

/// All weights of the reference network.
#[derive(Debug, Clone)]
pub struct Mlp {
    /// Shape.
    pub spec: MlpSpec,
    /// (hidden, data_len).
    pub w_in: Mat,
    /// hidden.
    pub b_in: Vec<f32>,
    /// (hidden, temb).
    pub w_t1: Mat,
    /// hidden.
    pub b_t1: Vec<f32>,
    /// (hidden, hidden).
    pub w_t2: Mat,
    /// hidden.
    pub b_t2: Vec<f32>,
    /// (classes + 1, hidden), if conditional.
    pub table: Option<Mat>,
    /// Residual blocks.
    pub blocks: Vec<Block>,
    /// Head LN γ.
    pub ln_g: Vec<f32>,
    /// Head LN β.
    pub ln_b: Vec<f32>,
    /// (data_len, hidden).
    pub w_out: Mat,
    /// data_len.
    pub b_out: Vec<f32>,
}

impl Mlp {
    /// Seeded random weights, scaled like a trained network (≈ 1/√fan_in).
    pub fn random(spec: MlpSpec, seed: u64) -> Self {
        let mut rng = SplitMix(seed);
        let mut mat = |rows: usize, cols: usize, gain: f32| {
            let s = gain / (cols as f32).sqrt();
            let master: Vec<f32> = (0..rows * cols).map(|_| rng.sym() * s).collect();
            let deq = dequantize(spec.dtype, rows, cols, &master);
            Mat {
                rows,
                cols,
                master,
                deq,
            }
        };
        let (d, h, f, e) = (spec.data_len, spec.hidden, spec.ff, spec.temb);
        let w_in = mat(h, d, 1.0);
        let w_t1 = mat(h, e, 1.0);
        let w_t2 = mat(h, h, 1.0);
        let table = (spec.classes > 0).then(|| mat(spec.classes as usize + 1, h, 4.0));
        let blocks_w: Vec<(Mat, Mat)> = (0..spec.blocks)
            .map(|_| (mat(f, h, 1.0), mat(h, f, 0.5)))
            .collect();
        let w_out = mat(d, h, 1.0);
        let mut rng = SplitMix(seed ^ 0xB1A5);
        let mut vec = |n: usize, center: f32, spread: f32| -> Vec<f32> {
            (0..n).map(|_| center + spread * rng.sym()).collect()
        };
        let blocks = blocks_w
            .into_iter()
            .map(|(w1, w2)| Block {
                ln_g: vec(h, 1.0, 0.1),
                ln_b: vec(h, 0.0, 0.1),
                w1,
                b1: vec(f, 0.0, 0.1),
                w2,
                b2: vec(h, 0.0, 0.1),
            })
            .collect();
        Mlp {
            spec,
            w_in,
            b_in: vec(h, 0.0, 0.1),
            w_t1,
            b_t1: vec(h, 0.0, 0.1),
            w_t2,
            b_t2: vec(h, 0.0, 0.1),
            table,
            blocks,
            ln_g: vec(h, 1.0, 0.1),
            ln_b: vec(h, 0.0, 0.1),
            w_out,
            b_out: vec(d, 0.0, 0.05),
        }
    }

    /// A blob builder holding this network (metadata, tensors, graph); add programs and
    /// build. `norm` maps samples to data units (`x · scale + offset`).
    pub fn to_builder(&self, shape: &[u16], norm: (&[f32], &[f32])) -> Result<BlobBuilder, Error> {
        Ok(self.to_builder_with(shape, norm, None)?.0)
    }

    /// [`Mlp::to_builder`], with the time MLP folded into a `TIME_TABLE` over
    /// `table = Some((rows, times))` (rows `(times.len(), hidden)`), and the value that is the time
    /// MLP's output (to compute those rows from the unfolded blob).
    pub fn to_builder_with(
        &self,
        shape: &[u16],
        norm: (&[f32], &[f32]),
        table: Option<(&[f32], &[f32])>,
    ) -> Result<(BlobBuilder, Value), Error> {
        let s = self.spec;
        let mut b = BlobBuilder::new(shape, Objective::Ddpm, Prediction::Epsilon);
        if s.classes > 0 {
            b.classes(s.classes, Some(s.classes));
        }
        b.normalization(norm.0, norm.1);
        let dt = s.dtype;
        let m =
            |b: &mut BlobBuilder, w: &Mat| b.tensor(dt, w.rows as u32, w.cols as u32, &w.master);
        let vec = |b: &mut BlobBuilder, v: &[f32]| b.tensor(Dtype::F32, v.len() as u32, 1, v);

        let w_in = m(&mut b, &self.w_in)?;
        let b_in = vec(&mut b, &self.b_in)?;
        let time = match table {
            None => Err((
                m(&mut b, &self.w_t1)?,
                vec(&mut b, &self.b_t1)?,
                m(&mut b, &self.w_t2)?,
                vec(&mut b, &self.b_t2)?,
            )),
            Some((rows, times)) => {
                let k = times.len() as u32;
                Ok((
                    b.tensor(Dtype::F32, k, s.hidden as u32, rows)?,
                    b.tensor(Dtype::F32, k, 1, times)?,
                ))
            }
        };
        let class_table = match &self.table {
            Some(t) => Some(m(&mut b, t)?),
            None => None,
        };
        let x = b.input();
        let mut h = b.linear(x, w_in, Some(b_in));
        let te = match time {
            Err((w_t1, b_t1, w_t2, b_t2)) => {
                let te = b.time_embed(s.temb as u32, MAX_PERIOD);
                let te = b.linear(te, w_t1, Some(b_t1));
                let te = b.activation(te, Activation::Silu);
                b.linear(te, w_t2, Some(b_t2))
            }
            Ok((rows, times)) => b.time_table(rows, times),
        };
        h = b.add(h, te);
        if let Some(t) = class_table {
            let ce = b.class_embed(t);
            h = b.add(h, ce);
        }
        for blk in &self.blocks {
            let g = vec(&mut b, &blk.ln_g)?;
            let bb = vec(&mut b, &blk.ln_b)?;
            let w1 = m(&mut b, &blk.w1)?;
            let b1 = vec(&mut b, &blk.b1)?;
            let w2 = m(&mut b, &blk.w2)?;
            let b2 = vec(&mut b, &blk.b2)?;
            let r = b.layer_norm(h, Some(g), Some(bb), LN_EPS);
            let r = b.linear(r, w1, Some(b1));
            let r = b.activation(r, s.act);
            let r = b.linear(r, w2, Some(b2));
            h = b.add(h, r);
        }
        let g = vec(&mut b, &self.ln_g)?;
        let bb = vec(&mut b, &self.ln_b)?;
        let w_out = m(&mut b, &self.w_out)?;
        let b_out = vec(&mut b, &self.b_out)?;
        let o = b.layer_norm(h, Some(g), Some(bb), LN_EPS);
        let o = b.activation(o, s.act);
        let o = b.linear(o, w_out, Some(b_out));
        b.output(o);
        Ok((b, te))
    }

    /// The network in f64 at time `t` for `class` (the null class is `classes`).
    pub fn forward_f64(&self, x: &[f64], t: f64, class: u16) -> Vec<f64> {
        let s = self.spec;
        let lin = |w: &Mat, b: &[f32], x: &[f64]| -> Vec<f64> {
            (0..w.rows)
                .map(|r| {
                    let row = &w.deq[r * w.cols..(r + 1) * w.cols];
                    row.iter().zip(x).map(|(a, b)| a * b).sum::<f64>() + b[r] as f64
                })
                .collect()
        };
        let act = |a: Activation, v: Vec<f64>| -> Vec<f64> {
            v.into_iter().map(|x| act_f64(a, x)).collect()
        };
        let ln = |x: &[f64], g: &[f32], b: &[f32]| -> Vec<f64> {
            let n = x.len() as f64;
            let mean = x.iter().sum::<f64>() / n;
            let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
            let inv = 1.0 / (var + LN_EPS as f64).sqrt();
            x.iter()
                .enumerate()
                .map(|(i, v)| (v - mean) * inv * g[i] as f64 + b[i] as f64)
                .collect()
        };
        let half = s.temb / 2;
        let mut te = vec![0.0; s.temb];
        for i in 0..half {
            let freq = (-(MAX_PERIOD as f64).ln() * i as f64 / half as f64).exp();
            te[i] = (t * freq).sin();
            te[half + i] = (t * freq).cos();
        }
        let mut h = lin(&self.w_in, &self.b_in, x);
        let te = lin(
            &self.w_t2,
            &self.b_t2,
            &act(Activation::Silu, lin(&self.w_t1, &self.b_t1, &te)),
        );
        h.iter_mut().zip(&te).for_each(|(a, b)| *a += b);
        if let Some(t) = &self.table {
            let row = &t.deq[class as usize * t.cols..(class as usize + 1) * t.cols];
            h.iter_mut().zip(row).for_each(|(a, b)| *a += b);
        }
        for blk in &self.blocks {
            let r = ln(&h, &blk.ln_g, &blk.ln_b);
            let r = act(s.act, lin(&blk.w1, &blk.b1, &r));
            let r = lin(&blk.w2, &blk.b2, &r);
            h.iter_mut().zip(&r).for_each(|(a, b)| *a += b);
        }
        let o = act(s.act, ln(&h, &self.ln_g, &self.ln_b));
        lin(&self.w_out, &self.b_out, &o)
    }
}

/// The activations in f64, from their textbook definitions.
pub fn act_f64(a: Activation, x: f64) -> f64 {
    match a {
        Activation::Identity => x,
        Activation::Relu => x.max(0.0),
        Activation::Silu => x / (1.0 + (-x).exp()),
        Activation::GeluTanh => {
            0.5 * x
                * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh())
        }
        Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Activation::Exp => x.exp(),
    }
}
