//! A small assembler the builders write to: coefficients stay f64 until the program is
//! emitted, repeated registers in one `LIN` are merged, zero terms are dropped, guidance is
//! folded into the terms, and the limits of the format (8 registers, 8 terms, u16 counts,
//! finite numbers) are checked once, in [`Asm::finish`].

use microdiff_runtime::blob::ProgramBuilder;
use microdiff_runtime::blob::program::{ClassSel, MAX_REGS, MAX_TERMS};

use super::SamplerError;

/// A linear combination `Σ c·reg` with f64 coefficients.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Lin(pub Vec<(u8, f64)>);

impl Lin {
    /// `c·reg`.
    pub(crate) fn of(reg: u8, c: f64) -> Self {
        Lin(vec![(reg, c)])
    }

    /// Adds `c·reg`, merging with an existing term on the same register.
    pub(crate) fn add(mut self, reg: u8, c: f64) -> Self {
        match self.0.iter_mut().find(|(r, _)| *r == reg) {
            Some((_, k)) => *k += c,
            None => self.0.push((reg, c)),
        }
        self
    }

    /// Adds `c·other`.
    pub(crate) fn plus(mut self, other: &Lin, c: f64) -> Self {
        for &(r, k) in &other.0 {
            self = self.add(r, c * k);
        }
        self
    }
}

#[derive(Debug, Clone)]
enum Op {
    Eval {
        dst: u8,
        src: u8,
        class: ClassSel,
        time: f32,
    },
    Lin {
        dst: u8,
        terms: Lin,
        noise: Option<f64>,
    },
    Clamp {
        reg: u8,
        lo: f64,
        hi: f64,
    },
    Step,
}

/// A program being assembled.
#[derive(Debug, Clone)]
pub(crate) struct Asm {
    ops: Vec<Op>,
    guidance: Option<f64>,
}

impl Asm {
    /// An empty program; `guidance` is the classifier-free guidance weight.
    pub(crate) fn new(guidance: Option<f64>) -> Self {
        Asm {
            ops: Vec::new(),
            guidance,
        }
    }

    /// `LIN r0 = std·z` (noise draw 0) and the first `STEP`.
    pub(crate) fn init(&mut self, std: f64) {
        self.lin(0, Lin::default(), Some(std));
        self.step();
    }

    /// Evaluates the model on `src` at `time` into `dst` (and the null class into `dst + 1`
    /// under guidance) and returns the guided output as a combination:
    /// `w·dst + (1 − w)·(dst + 1)`, or just `dst`.
    pub(crate) fn model(&mut self, src: u8, time: f32, dst: u8) -> Lin {
        self.ops.push(Op::Eval {
            dst,
            src,
            class: ClassSel::Caller,
            time,
        });
        match self.guidance {
            None => Lin::of(dst, 1.0),
            Some(w) => {
                self.ops.push(Op::Eval {
                    dst: dst + 1,
                    src,
                    class: ClassSel::Null,
                    time,
                });
                Lin::of(dst, w).add(dst + 1, 1.0 - w)
            }
        }
    }

    /// `dst = terms (+ noise·z)`; a noise coefficient of 0 draws nothing.
    pub(crate) fn lin(&mut self, dst: u8, terms: Lin, noise: Option<f64>) {
        self.ops.push(Op::Lin {
            dst,
            terms,
            noise: noise.filter(|&c| c != 0.0),
        });
    }

    /// `reg = clamp(reg, lo, hi)`.
    pub(crate) fn clamp(&mut self, reg: u8, lo: f64, hi: f64) {
        self.ops.push(Op::Clamp { reg, lo, hi });
    }

    /// Ends a step.
    pub(crate) fn step(&mut self) {
        self.ops.push(Op::Step);
    }

    /// Checks the limits and emits the program.
    pub(crate) fn finish(
        self,
        name: &str,
        sampler: &'static str,
    ) -> Result<ProgramBuilder, SamplerError> {
        let mut regs = 0u8;
        let mut see = |r: u8| regs = regs.max(r.saturating_add(1));
        let (mut steps, mut evals) = (0usize, 0usize);
        for op in &self.ops {
            let bad = Err(SamplerError::NonFinite {
                sampler,
                step: steps,
            });
            match op {
                Op::Eval { dst, src, time, .. } => {
                    see(*dst);
                    see(*src);
                    evals += 1;
                    if !time.is_finite() {
                        return bad;
                    }
                }
                Op::Lin { dst, terms, noise } => {
                    see(*dst);
                    terms.0.iter().for_each(|&(r, _)| see(r));
                    let finite = |c: f64| c.is_finite() && (c as f32).is_finite();
                    if !terms.0.iter().all(|&(_, c)| finite(c)) || !noise.is_none_or(finite) {
                        return bad;
                    }
                    // The builders never exceed the format's limits; this guards edits.
                    assert!(
                        terms.0.len() <= MAX_TERMS as usize,
                        "{sampler}: LIN with too many terms"
                    );
                }
                Op::Clamp { reg, .. } => see(*reg),
                Op::Step => steps += 1,
            }
        }
        assert!(regs <= MAX_REGS, "{sampler}: more than 8 registers");
        let max = u16::MAX as usize;
        if steps > max || evals > max {
            return Err(SamplerError::TooManySteps {
                sampler,
                steps: steps.saturating_sub(1),
                max: max - 1,
                why: "a program holds at most 65535 steps and 65535 evaluations",
            });
        }
        let mut p = ProgramBuilder::new(name, regs);
        for op in self.ops {
            match op {
                Op::Eval {
                    dst,
                    src,
                    class,
                    time,
                } => {
                    p.eval(dst, src, class, time);
                }
                Op::Lin { dst, terms, noise } => {
                    let t: Vec<(u8, f32)> = terms
                        .0
                        .iter()
                        .filter(|&&(_, c)| c != 0.0)
                        .map(|&(r, c)| (r, c as f32))
                        .collect();
                    p.lin(dst, &t, noise.map(|c| c as f32));
                }
                Op::Clamp { reg, lo, hi } => {
                    p.clamp(reg, lo as f32, hi as f32);
                }
                Op::Step => {
                    p.step();
                }
            }
        }
        Ok(p)
    }
}
