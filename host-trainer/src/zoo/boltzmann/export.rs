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

use super::Rbm;
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
    let (nv, nh) = (rbm.nv(), rbm.nh());
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
    let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let w = f32s(rbm.weights());
    let mut wt = vec![0.0f32; nv * nh];
    for j in 0..nh {
        for i in 0..nv {
            wt[i * nh + j] = w[j * nv + i];
        }
    }
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
    for &k in sweeps {
        let mut prog = ProgramBuilder::new(&program_name(k), 1);
        prog.lin(0, &[], Some(0.0));
        for _ in 0..k {
            prog.eval(0, 0, ClassSel::Caller, 0.0).step();
        }
        b.program(&prog);
    }
    Ok(b.build()?)
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

    #[test]
    fn the_device_chain_has_the_models_marginals() {
        // 10 visible units: the exact marginals p(v_i = 1) by enumeration, against 4 000
        // device chains of 30 sweeps (binomial standard error ≤ 0.008; 5 of them allowed).
        let rbm = Rbm::random(10, 6, 1.0, 9).unwrap();
        let exact = rbm.visible_marginals().unwrap();
        let bytes = blob(&rbm, &[10], Dtype::F32, &[30], (&[], &[])).unwrap();
        let model = Model::parse(&bytes).unwrap();
        let program = model.program("gibbs30").unwrap();
        let n = 4000;
        let specs: Vec<SampleRequest> = (0..n)
            .map(|i| SampleRequest {
                seed: 1,
                stream: i,
                class: 0,
            })
            .collect();
        let mut out = vec![0.0f32; n as usize * 10];
        batch::sample_batch(&model, program, &specs, &mut out, 2).unwrap();
        for (i, &want) in exact.iter().enumerate() {
            // The sample is p(v | h): its mean over chains is p(v_i = 1).
            let got = out
                .iter()
                .skip(i)
                .step_by(10)
                .map(|&x| f64::from(x))
                .sum::<f64>()
                / f64::from(n);
            assert!((got - want).abs() < 0.04, "unit {i}: {got} vs exact {want}");
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
        }
    }
}
