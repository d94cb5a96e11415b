//! A trained [`Rbm`] as a weight blob for the no_std runtime: the device samples it by block
//! Gibbs sweeps, with the Bernoulli draws made from the runtime's counter-based noise.
//!
//! # What the blob holds
//!
//! * META: the visible units' shape, objective [`Objective::Rbm`], prediction
//!   [`Prediction::Sample`], and the map from a visible unit's probability to data units
//!   (`data = p · scale + offset`, e.g. `(16, 0)` for digits binarised at 8).
//! * GRAPH: one sweep, from the visible probabilities `p_v` in the input register to the next
//!   ones: `v = BERNOULLI(p_v)`, `h = BERNOULLI(σ(W·v + c))`, `p_v' = σ(Wᵀ·h + b)`. Both
//!   matrices are stored (`W` and its transpose, as `dtype`); the two draws take elements
//!   `0..nv` and `nv..nv + nh` of the `EVAL`'s network draw.
//! * PROGRAMS: `gibbsK` for each requested `K`: `LIN r0 = 0·z` (the chain starts from the
//!   all-zero visible state), then `K` times `EVAL r0 ← r0; STEP`. The sample is the last
//!   sweep's visible probabilities `p(v | h)` (the mean of the chain's next state, not a
//!   binary draw), as the usual RBM sample pictures show.
//!
//! # Promises
//!
//! A sweep on the device is the host's sweep in f32 ([`reference_sweep`] is that arithmetic,
//! written once here for the tests and the docs: same bits as the device); it refuses what
//! the format cannot hold with an [`RbmExportError`].

use microdiff_kernels::{Activation, Dtype};
use microdiff_runtime::Error as BlobError;
use microdiff_runtime::blob::meta::{Objective, Prediction};
use microdiff_runtime::blob::program::{ClassSel, MAX_PROGRAMS};
use microdiff_runtime::blob::{BlobBuilder, ProgramBuilder};

use microdiff_runtime::noise::{Domain, NoiseStream};

use super::Rbm;
use crate::export::BuildError;
use crate::export::w8a8::{Q, Range, lut, qlinear_tensors};
use crate::zoo::vae::export::Units;

/// Longest chain a program may run (one `EVAL` and one `STEP` per sweep; programs count
/// their steps in a `u16`).
pub const MAX_SWEEPS: u16 = 10_000;

/// The name of the program of `sweeps` sweeps.
#[must_use]
pub fn program_name(sweeps: u16) -> String {
    format!("gibbs{sweeps}")
}

/// Why an RBM cannot be exported for the device.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RbmExportError {
    /// The shape's element count is not the number of visible units.
    #[error("data shape {shape:?} does not hold the RBM's {nv} visible units")]
    Shape {
        /// The shape given.
        shape: Vec<u16>,
        /// Visible units.
        nv: usize,
    },
    /// No programs, too many, a repeated count, or a count outside `1..=MAX_SWEEPS`.
    #[error(
        "sweep counts {0:?}: give 1 to {MAX_PROGRAMS} different counts, each 1 to {MAX_SWEEPS}"
    )]
    Sweeps(Vec<u16>),
    /// The blob builder refused (a tensor too large for the format, …).
    #[error("building the blob: {0}")]
    Blob(#[from] BlobError),
    /// The W8A8 quantization refused (a scale out of the integer ops' range).
    #[error("W8A8 export: {0}")]
    Quantize(#[from] BuildError),
}

/// The blob of `rbm` for samples of `shape` (`nv` elements), matrices stored as `dtype` (f32,
/// f16, or int8 with per-row scales; biases f32), with one program `gibbsK` per `K` in
/// `sweeps`; `units = (scale, offset)` maps a visible probability to data units (see the module
/// doc).
pub fn blob(
    rbm: &Rbm,
    shape: &[u16],
    dtype: Dtype,
    sweeps: &[u16],
    units: Units<'_>,
) -> Result<Vec<u8>, RbmExportError> {
    let mut b = start(rbm, shape, sweeps, units)?;
    let (nv, nh) = (rbm.nv(), rbm.nh());
    let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let w = f32s(rbm.weights());
    let wt = transpose(&w, nh, nv);
    // Sizes bounded by the builder's own checks (it refuses what the format cannot hold).
    let (nv32, nh32) = (nv as u32, nh as u32);
    let w_t = b.tensor(dtype, nh32, nv32, &w)?;
    let c_t = b.tensor(Dtype::F32, nh32, 1, &f32s(rbm.hidden_bias()))?;
    let wt_t = b.tensor(dtype, nv32, nh32, &wt)?;
    let b_t = b.tensor(Dtype::F32, nv32, 1, &f32s(rbm.visible_bias()))?;
    let v = b.bernoulli(b.input(), 0);
    let a = b.linear(v, w_t, Some(c_t));
    let p = b.activation(a, Activation::Sigmoid);
    let h = b.bernoulli(p, nv32);
    let a = b.linear(h, wt_t, Some(b_t));
    let pv = b.activation(a, Activation::Sigmoid);
    b.output(pv);
    programs(&mut b, sweeps);
    Ok(b.build()?)
}

/// META of an RBM blob for `shape`, once the shape and the sweep counts are checked.
fn start(
    rbm: &Rbm,
    shape: &[u16],
    sweeps: &[u16],
    units: Units<'_>,
) -> Result<BlobBuilder, RbmExportError> {
    let nv = rbm.nv();
    let elems = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(usize::from(d)));
    if shape.is_empty() || elems != Some(nv) {
        return Err(RbmExportError::Shape {
            shape: shape.to_vec(),
            nv,
        });
    }
    let mut seen = sweeps.to_vec();
    seen.sort_unstable();
    seen.dedup();
    if sweeps.is_empty()
        || seen.len() != sweeps.len()
        || sweeps.len() > MAX_PROGRAMS as usize
        || sweeps.iter().any(|&k| k == 0 || k > MAX_SWEEPS)
    {
        return Err(RbmExportError::Sweeps(sweeps.to_vec()));
    }
    let mut b = BlobBuilder::new(shape, Objective::Rbm, Prediction::Sample);
    b.normalization(units.0, units.1);
    Ok(b)
}

/// The programs `gibbsK`: the chain from the all-zero state, `K` sweeps.
fn programs(b: &mut BlobBuilder, sweeps: &[u16]) {
    for &k in sweeps {
        let mut prog = ProgramBuilder::new(&program_name(k), 1);
        prog.lin(0, &[], Some(0.0));
        for _ in 0..k {
            prog.eval(0, 0, ClassSel::Caller, 0.0).step();
        }
        b.program(&prog);
    }
}

/// The full-integer (W8A8) blob of `rbm`: the same sweep with int8 arithmetic only, so a
/// Cortex-M0 runs it without soft float except at the register's ends.
///
/// `QUANTIZE` the visible probabilities (scale 1/255, zero point −128), `QBERNOULLI` (codes
/// 0/1 are the units themselves: scale 1, zero point 0), `QLINEAR` (int8 weights per row, int32
/// bias) to the hidden pre-activations, `QLUT` of the sigmoid to probability codes,
/// `QBERNOULLI`, the same back to the visible units, and a `DEQUANTIZE` of the visible
/// probabilities. The pre-activation ranges are calibrated on `chains` chains run on the host
/// for as many sweeps as the longest program, drawing from the device's own network noise
/// (seed `seed`, stream = chain).
pub fn blob_w8a8(
    rbm: &Rbm,
    shape: &[u16],
    sweeps: &[u16],
    units: Units<'_>,
    (chains, seed): (usize, u64),
) -> Result<Vec<u8>, RbmExportError> {
    let mut b = start(rbm, shape, sweeps, units)?;
    let (nv, nh) = (rbm.nv(), rbm.nh());
    let (hidden, visible) = calibrate(rbm, sweeps, chains, seed);
    let units_q = Q { scale: 1.0, zp: 0 };
    let prob = Q {
        scale: 1.0 / 255.0,
        zp: -128,
    };
    let (qh, qv) = (hidden.q(), visible.q());
    let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let w = f32s(rbm.weights());
    let wt = transpose(&w, nh, nv);
    let scales = b.tensor(Dtype::F32, 1, 1, &[prob.scale])?;
    let p = b.quantize(b.input(), prob.zp, scales, None);
    let v = b.qbernoulli(p, 0);
    let (wq, pq) = qlinear_tensors(&mut b, &w, &f32s(rbm.hidden_bias()), nh, nv, units_q, qh)?;
    let a = b.qlinear(v, wq, pq, units_q.zp, qh.zp);
    let t = b.tensor_q8(256, 1, &lut(Activation::Sigmoid, qh, prob))?;
    let ph = b.qlut(a, t);
    let h = b.qbernoulli(ph, nv as u32);
    let (wq, pq) = qlinear_tensors(&mut b, &wt, &f32s(rbm.visible_bias()), nv, nh, units_q, qv)?;
    let a = b.qlinear(h, wq, pq, units_q.zp, qv.zp);
    let t = b.tensor_q8(256, 1, &lut(Activation::Sigmoid, qv, prob))?;
    let pv = b.qlut(a, t);
    let out = b.dequantize(pv, prob.zp, prob.scale);
    b.output(out);
    programs(&mut b, sweeps);
    Ok(b.build()?)
}

/// `w` `(rows, cols)` transposed.
fn transpose(w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = w[r * cols + c];
        }
    }
    t
}

/// The ranges of the hidden and visible pre-activations over `chains` host chains of the
/// longest program's sweeps, started as the device starts them and drawing its uniforms.
fn calibrate(rbm: &Rbm, sweeps: &[u16], chains: usize, seed: u64) -> (Range, Range) {
    let (nv, nh) = (rbm.nv(), rbm.nh());
    let (w, b, c) = (rbm.weights(), rbm.visible_bias(), rbm.hidden_bias());
    let (mut hidden, mut visible) = (Range::EMPTY, Range::EMPTY);
    let longest = sweeps.iter().copied().max().unwrap_or(1);
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    for chain in 0..chains.max(1) {
        let ns = NoiseStream::new(seed, chain as u32, Domain::Network);
        let mut p = vec![0.0f64; nv];
        for e in 0..u32::from(longest) {
            let u = |i: usize| f64::from(ns.uniform(e, i as u32));
            let v: Vec<f64> = (0..nv).map(|i| f64::from(u8::from(u(i) < p[i]))).collect();
            let a: Vec<f32> = (0..nh)
                .map(|j| (c[j] + (0..nv).map(|i| w[j * nv + i] * v[i]).sum::<f64>()) as f32)
                .collect();
            hidden.add(&a);
            let h: Vec<f64> = (0..nh)
                .map(|j| f64::from(u8::from(u(nv + j) < sigmoid(f64::from(a[j])))))
                .collect();
            let a: Vec<f32> = (0..nv)
                .map(|i| (b[i] + (0..nh).map(|j| w[j * nv + i] * h[j]).sum::<f64>()) as f32)
                .collect();
            visible.add(&a);
            p = a.iter().map(|&x| sigmoid(f64::from(x))).collect();
        }
    }
    (hidden, visible)
}

/// One sweep as the device computes it, in f32 from `(w, c, wt, b)` as stored (f32 weights),
/// with `uniforms` the `nv + nh` uniforms of the `EVAL`'s draw: the reference the tests hold
/// the device to, bit for bit.
#[must_use]
pub fn reference_sweep(rbm: &Rbm, p_v: &[f32], uniforms: &[f32]) -> Vec<f32> {
    let (nv, nh) = (rbm.nv(), rbm.nh());
    let w: Vec<f32> = rbm.weights().iter().map(|&x| x as f32).collect();
    let draw = |u: f32, p: f32| if u < p { 1.0f32 } else { 0.0 };
    let v: Vec<f32> = (0..nv).map(|i| draw(uniforms[i], p_v[i])).collect();
    let h: Vec<f32> = (0..nh)
        .map(|j| {
            let mut acc = 0.0f32;
            for i in 0..nv {
                acc += w[j * nv + i] * v[i];
            }
            let p = microdiff_kernels::sigmoid(acc + rbm.hidden_bias()[j] as f32);
            draw(uniforms[nv + j], p)
        })
        .collect();
    (0..nv)
        .map(|i| {
            let mut acc = 0.0f32;
            for j in 0..nh {
                acc += w[j * nv + i] * h[j];
            }
            microdiff_kernels::sigmoid(acc + rbm.visible_bias()[i] as f32)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use microdiff_runtime::noise::{Domain, NoiseStream};
    use microdiff_runtime::{Model, SampleRequest, batch, sample};

    fn small() -> Rbm {
        Rbm::random(12, 7, 1.5, 3).unwrap()
    }

    #[test]
    fn a_device_sweep_is_the_reference_sweep_bit_for_bit() {
        let rbm = small();
        let bytes = blob(&rbm, &[3, 4], Dtype::F32, &[1, 5], (&[], &[])).unwrap();
        let model = Model::parse(&bytes).unwrap();
        let mut arena = vec![0u8; model.arena_bytes()];
        for stream in 0..20u32 {
            let spec = SampleRequest {
                seed: 11,
                stream,
                class: 0,
            };
            let mut got = vec![0.0f32; 12];
            sample(
                &model,
                model.program("gibbs5").unwrap(),
                &mut arena,
                spec,
                &mut got,
            )
            .unwrap();
            // The chain from v = 0, with the network draws of EVAL e = 0..5.
            let ns = NoiseStream::new(11, stream, Domain::Network);
            let mut p = vec![0.0f32; 12];
            for e in 0..5 {
                let u: Vec<f32> = (0..19).map(|i| ns.uniform(e, i)).collect();
                p = reference_sweep(&rbm, &p, &u);
            }
            assert_eq!(
                got.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                p.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                "stream {stream}"
            );
        }
    }

    #[test]
    fn the_batched_sampler_makes_the_same_chains() {
        let rbm = small();
        let bytes = blob(&rbm, &[12], Dtype::F16, &[3], (&[16.0], &[0.0])).unwrap();
        let model = Model::parse(&bytes).unwrap();
        let program = model.program("gibbs3").unwrap();
        let specs: Vec<SampleRequest> = (0..9)
            .map(|i| SampleRequest {
                seed: 5,
                stream: i,
                class: 0,
            })
            .collect();
        let mut out = vec![0.0f32; 9 * 12];
        batch::sample_batch(&model, program, &specs, &mut out, 2).unwrap();
        let mut arena = vec![0u8; model.arena_bytes()];
        for (i, spec) in specs.iter().enumerate() {
            let mut one = vec![0.0f32; 12];
            sample(&model, program, &mut arena, *spec, &mut one).unwrap();
            assert_eq!(one, out[i * 12..(i + 1) * 12]);
            assert!(one.iter().all(|&x| (0.0..=16.0).contains(&x)));
        }
    }

    /// The mean over 4 000 device chains (seed `seed`) of `program`'s sample of a 10-unit
    /// machine's blob: its visible marginals, since the sample is `p(v | h)`. The batched
    /// sampler's chain 7 is checked against the single-sample sampler's on the way.
    fn chain_marginals(bytes: &[u8], program: &str, seed: u64) -> Vec<f64> {
        let model = Model::parse(bytes).unwrap();
        let program = model.program(program).unwrap();
        let n = 4000u32;
        let specs: Vec<SampleRequest> = (0..n)
            .map(|i| SampleRequest {
                seed,
                stream: i,
                class: 0,
            })
            .collect();
        let mut out = vec![0.0f32; n as usize * 10];
        batch::sample_batch(&model, program, &specs, &mut out, 2).unwrap();
        let mut one = vec![0.0f32; 10];
        let mut arena = vec![0u8; model.arena_bytes()];
        sample(&model, program, &mut arena, specs[7], &mut one).unwrap();
        assert_eq!(one, out[70..80]);
        (0..10)
            .map(|i| {
                out.iter()
                    .skip(i)
                    .step_by(10)
                    .map(|&x| f64::from(x))
                    .sum::<f64>()
                    / f64::from(n)
            })
            .collect()
    }

    #[test]
    fn the_device_chain_has_the_models_marginals() {
        // 10 visible units: the exact marginals p(v_i = 1) by enumeration, against 4 000
        // device chains of 30 sweeps (binomial standard error ≤ 0.008; 5 of them allowed).
        let rbm = Rbm::random(10, 6, 1.0, 9).unwrap();
        let exact = rbm.visible_marginals().unwrap();
        let bytes = blob(&rbm, &[10], Dtype::F32, &[30], (&[], &[])).unwrap();
        for (i, (got, want)) in chain_marginals(&bytes, "gibbs30", 1)
            .iter()
            .zip(&exact)
            .enumerate()
        {
            assert!((got - want).abs() < 0.04, "unit {i}: {got} vs exact {want}");
        }
    }

    #[test]
    fn the_w8a8_chain_has_the_models_marginals_too() {
        // As the f32 test: the integer sweep's quantized weights, pre-activations and 1/255
        // probability steps keep the 10-unit machine's marginals within 0.05.
        let rbm = Rbm::random(10, 6, 1.0, 9).unwrap();
        let exact = rbm.visible_marginals().unwrap();
        let bytes = blob_w8a8(&rbm, &[10], &[30], (&[], &[]), (64, 1)).unwrap();
        for (i, (got, want)) in chain_marginals(&bytes, "gibbs30", 2)
            .iter()
            .zip(&exact)
            .enumerate()
        {
            assert!((got - want).abs() < 0.05, "unit {i}: {got} vs exact {want}");
        }
    }

    #[test]
    fn refusals_name_the_problem() {
        let rbm = small();
        let err = blob(&rbm, &[5], Dtype::F32, &[1], (&[], &[])).unwrap_err();
        assert!(matches!(err, RbmExportError::Shape { nv: 12, .. }), "{err}");
        for bad in [&[][..], &[0], &[3, 3], &[MAX_SWEEPS + 1]] {
            let err = blob(&rbm, &[12], Dtype::F32, bad, (&[], &[])).unwrap_err();
            assert!(matches!(err, RbmExportError::Sweeps(_)), "{bad:?}: {err}");
            let err = blob_w8a8(&rbm, &[12], bad, (&[], &[]), (4, 0)).unwrap_err();
            assert!(matches!(err, RbmExportError::Sweeps(_)), "{bad:?}: {err}");
        }
    }
}
