//! A host-side f64 interpreter of sampler programs: how samplers are tested without a trained
//! network.
//!
//! [`Program::decode`] encodes a [`ProgramBuilder`]'s program record and has the runtime parse
//! and validate it on its own ([`microdiff_runtime::blob::program::Program::parse`], no blob
//! needed), so every program tested here is one the runtime accepts; the instructions are then
//! the runtime's own [`Instr`] values, decoded from those bytes. Two ways to run it:
//!
//! * [`Program::run`] — one sample: `EVAL` calls any closure `(x, time value, null class) → out`,
//!   noise comes from [`NoiseStream`] with [`Domain::Sampler`] and the runtime's numbering (the
//!   k-th noisy `LIN` executed uses draw k, element i ↦ `normal(k, i)`), and `LIN` accumulates
//!   in the runtime's order, but in f64 with the program's f32 coefficients.
//! * [`Program::moments`] — exact Gaussian propagation for a model that is affine in `x`
//!   (`out = gain(time, null)·x + offset(time, null)`, per element), which is what the exact
//!   ε̂ or velocity of Gaussian data is. Every register is then an affine function of the
//!   program's noise draws, `c + Σ_k a_k·z_k`; `LIN` and `EVAL` act linearly on `(c, a)`, and the
//!   output's mean and variance are `c` and `Σ a_k²`, with no Monte-Carlo error, for
//!   deterministic and stochastic samplers alike. `CLAMP` is not affine and is refused.

use microdiff_runtime::blob::ProgramBuilder;
use microdiff_runtime::blob::program::{self, ClassSel, Instr};
use microdiff_runtime::noise::{Domain, NoiseStream};

/// Why a program cannot be simulated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimError {
    /// The runtime rejects the program.
    #[error("the runtime rejects the program: {0}")]
    Rejected(microdiff_runtime::Error),
    /// Moment propagation met a `CLAMP`.
    #[error("CLAMP is not affine: moments cannot be propagated through it")]
    NotAffine,
    /// The start override needs the first noisy `LIN` to be pure noise.
    #[error("the first noisy LIN has terms; it cannot be replaced by a start distribution")]
    BadStart,
    /// The model closure returned the wrong length.
    #[error("the model returned {found} values for a sample of {expected}")]
    OutputLength {
        /// Sample length.
        expected: usize,
        /// Values returned.
        found: usize,
    },
}

/// A program read back from the blob format, validated by the runtime.
#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    /// Name.
    pub name: String,
    /// Registers used.
    pub regs: u8,
    /// Output register.
    pub out_reg: u8,
    /// `STEP`s, including the initial one.
    pub steps: u16,
    /// `EVAL`s.
    pub evals: u16,
    /// The code, validated ([`Program::instrs`] decodes it).
    code: Vec<u8>,
}

/// Mean and variance of a scalar Gaussian.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gaussian {
    /// Mean.
    pub mean: f64,
    /// Variance.
    pub var: f64,
}

impl Program {
    /// Decodes `p`: its program record is parsed and validated by the runtime on its own (as
    /// for a model with a null class, so guided programs load).
    pub fn decode(p: &ProgramBuilder) -> Result<Self, SimError> {
        let record = p.to_bytes();
        let prog = program::Program::parse(&record, 0, true).map_err(SimError::Rejected)?;
        Ok(Program {
            name: prog.name().into(),
            regs: prog.regs,
            out_reg: prog.out_reg,
            steps: prog.steps,
            evals: prog.evals,
            code: prog.code.to_vec(),
        })
    }

    /// The instructions in order, the runtime's own decoded type. The code was validated by
    /// [`Program::decode`], so decoding cannot fail here.
    pub fn instrs(&self) -> impl Iterator<Item = Instr<'_>> + '_ {
        program::instructions(0, &self.code).map_while(|i| i.ok().map(|(_, instr)| instr))
    }

    /// Number of noise draws (noisy `LIN`s).
    pub fn noise_draws(&self) -> usize {
        self.instrs()
            .filter(|i| matches!(i, Instr::Lin { noise: Some(_), .. }))
            .count()
    }

    /// Runs one sample of `dim` elements with noise `(seed, stream)`; `model(x, time, null)`
    /// is the network.
    pub fn run<F>(&self, model: F, dim: usize, seed: u64, stream: u32) -> Result<Vec<f64>, SimError>
    where
        F: Fn(&[f64], f32, bool) -> Vec<f64>,
    {
        let noise = NoiseStream::new(seed, stream, Domain::Sampler);
        let mut regs = vec![vec![0.0f64; dim]; self.regs as usize];
        let mut z = vec![0.0f32; dim];
        let mut draw = 0u32;
        for instr in self.instrs() {
            match instr {
                Instr::Eval {
                    dst,
                    src,
                    class,
                    time,
                } => {
                    let out = model(&regs[src as usize], time, class == ClassSel::Null);
                    if out.len() != dim {
                        return Err(SimError::OutputLength {
                            expected: dim,
                            found: out.len(),
                        });
                    }
                    regs[dst as usize] = out;
                }
                Instr::Lin {
                    dst,
                    terms,
                    noise: cz,
                } => {
                    // Coefficients are the program's f32 values, widened exactly.
                    if cz.is_some() {
                        noise.fill_normal(draw, &mut z);
                        draw += 1;
                    }
                    let new: Vec<f64> = (0..dim)
                        .map(|i| {
                            let mut acc = 0.0;
                            for (r, c) in terms.iter() {
                                acc += c as f64 * regs[r as usize][i];
                            }
                            if let Some(c) = cz {
                                acc += c as f64 * z[i] as f64;
                            }
                            acc
                        })
                        .collect();
                    regs[dst as usize] = new;
                }
                Instr::Clamp { reg, lo, hi } => {
                    for x in &mut regs[reg as usize] {
                        *x = x.max(lo as f64).min(hi as f64);
                    }
                }
                Instr::Step => {}
            }
        }
        Ok(regs.swap_remove(self.out_reg as usize))
    }

    /// Propagates a scalar Gaussian exactly through the program for an affine model
    /// `out = gain·x + offset` with `(gain, offset) = model(time, null)`. `start`, if given,
    /// replaces the first noisy `LIN` (the initial `prior·z`) by `mean + std·z`, e.g. the exact
    /// marginal at the first grid time, so only the discretisation error remains.
    pub fn moments<F>(&self, model: F, start: Option<(f64, f64)>) -> Result<Gaussian, SimError>
    where
        F: Fn(f32, bool) -> (f64, f64),
    {
        // Register r = v[0] + Σ_k v[k + 1]·z_k.
        let width = 1 + self.noise_draws();
        let mut regs = vec![vec![0.0f64; width]; self.regs as usize];
        let mut draw = 0usize;
        for instr in self.instrs() {
            match instr {
                Instr::Eval {
                    dst,
                    src,
                    class,
                    time,
                } => {
                    let (gain, offset) = model(time, class == ClassSel::Null);
                    let mut out: Vec<f64> = regs[src as usize].iter().map(|v| gain * v).collect();
                    out[0] += offset;
                    regs[dst as usize] = out;
                }
                Instr::Lin { dst, terms, noise } => {
                    let mut out = vec![0.0; width];
                    for (r, c) in terms.iter() {
                        for (o, v) in out.iter_mut().zip(&regs[r as usize]) {
                            *o += c as f64 * v;
                        }
                    }
                    if let Some(c) = noise {
                        match (draw, start) {
                            (0, Some((mean, std))) => {
                                if !terms.is_empty() {
                                    return Err(SimError::BadStart);
                                }
                                out[0] = mean;
                                out[1] = std;
                            }
                            _ => out[1 + draw] += c as f64,
                        }
                        draw += 1;
                    }
                    regs[dst as usize] = out;
                }
                Instr::Clamp { .. } => return Err(SimError::NotAffine),
                Instr::Step => {}
            }
        }
        let out = &regs[self.out_reg as usize];
        Ok(Gaussian {
            mean: out[0],
            var: out[1..].iter().map(|a| a * a).sum(),
        })
    }
}
