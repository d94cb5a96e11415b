//! A small assembler the builders write to: a `LIN`'s coefficients stay f64 while it is formed
//! ([`Lin`], the pre-rounding stage: repeated registers are merged and guidance is folded into
//! the terms in f64), zero terms are dropped, and each instruction is then pushed, rounded to
//! f32 once, as the runtime's own [`Instr`]. The limits of the format (8 registers, 8 terms,
//! u16 counts, finite numbers) are reported in [`Asm::finish`].

use microdiff_runtime::blob::ProgramBuilder;
use microdiff_runtime::blob::meta::Prediction;
use microdiff_runtime::blob::program::{ClassSel, Instr, MAX_REGS, MAX_TERMS, Terms};

use super::SamplerError;
use crate::prediction;
use crate::process::Process;

/// A linear combination `Σ c·reg` with f64 coefficients: a `LIN` before its coefficients are
/// rounded to f32 (see the module doc for why this stage exists).
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

/// Where a builder evaluates the network: the time value it sees, and the process's α and σ
/// there (for [`Asm::model`]'s prediction map).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct At {
    /// The network's time value.
    pub time: f32,
    /// α at that time.
    pub alpha: f64,
    /// σ at that time.
    pub sigma: f64,
}

/// A program being assembled. Instructions go straight into a runtime [`ProgramBuilder`] as
/// runtime [`Instr`] values (the one instruction type); only the `LIN` combinations stay f64
/// until they are pushed (the pre-rounding stage, [`Lin`]), because merging repeated registers
/// and folding guidance weights must happen before the single rounding to f32. The format's
/// limits are tracked as instructions arrive and reported in [`Asm::finish`], which is also
/// where the register count, known only at the end, goes into the header.
#[derive(Debug, Clone)]
pub(crate) struct Asm {
    /// The instructions so far (its name and register count are placeholders).
    code: ProgramBuilder,
    guidance: Option<f64>,
    /// The network's prediction, when it is not what the builders consume, with its process
    /// ([`prediction::to_target`] is folded into every model output).
    convert: Option<(Process, Prediction)>,
    /// Highest register used, plus one.
    regs: u8,
    /// `STEP`s and `EVAL`s so far (unbounded: the u16 header limit is checked at the end).
    steps: usize,
    evals: usize,
    /// The step of the first non-finite number met, if any.
    non_finite_at: Option<usize>,
}

impl Asm {
    /// An empty program for a `process` network that outputs `prediction` (checked by the
    /// caller with [`prediction::check`]); `guidance` is the classifier-free guidance weight.
    pub(crate) fn new(process: &Process, prediction: Prediction, guidance: Option<f64>) -> Self {
        Asm {
            code: ProgramBuilder::new("", 0),
            guidance,
            convert: (prediction != process.prediction()).then(|| (process.clone(), prediction)),
            regs: 0,
            steps: 0,
            evals: 0,
            non_finite_at: None,
        }
    }

    /// `LIN r0 = std·z` (noise draw 0) and the first `STEP`.
    pub(crate) fn init(&mut self, std: f64) {
        self.lin(0, Lin::default(), Some(std));
        self.step();
    }

    fn see(&mut self, r: u8) {
        self.regs = self.regs.max(r.saturating_add(1));
    }

    fn non_finite(&mut self) {
        self.non_finite_at.get_or_insert(self.steps);
    }

    fn eval(&mut self, dst: u8, src: u8, class: ClassSel, time: f32) {
        self.see(dst);
        self.see(src);
        self.evals += 1;
        if !time.is_finite() {
            self.non_finite();
        }
        self.code.push(&Instr::Eval {
            dst,
            src,
            class,
            time,
        });
    }

    /// Evaluates the model on `src` at `at` into `dst` (and the null class into `dst + 1`
    /// under guidance) and returns the guided output as a combination —
    /// `w·dst + (1 − w)·(dst + 1)`, or just `dst` — of what the builders consume (ε, or the
    /// velocity for flow): a network predicting something else has its output mapped by
    /// [`prediction::to_target`] at `at` here, in f64, before anything is rounded. The map is
    /// affine with the same `x` for both branches and guidance weights sum to 1, so mapping
    /// the guided combination equals guiding the mapped outputs. The combination refers to
    /// `src`, so a builder uses it before it overwrites `src`.
    pub(crate) fn model(&mut self, src: u8, at: At, dst: u8) -> Lin {
        self.eval(dst, src, ClassSel::Caller, at.time);
        let out = match self.guidance {
            None => Lin::of(dst, 1.0),
            Some(w) => {
                self.eval(dst + 1, src, ClassSel::Null, at.time);
                Lin::of(dst, w).add(dst + 1, 1.0 - w)
            }
        };
        let Some((process, p)) = &self.convert else {
            return out;
        };
        match prediction::to_target(process, *p, at.alpha, at.sigma) {
            Some((on_x, on_out)) => Lin::of(src, on_x).plus(&out, on_out),
            None => {
                // Refused pairs never reach here (`Asm::new`'s contract); if one did, the
                // program is reported non-finite rather than built wrong.
                self.non_finite();
                out
            }
        }
    }

    /// `dst = terms (+ noise·z)`; a noise coefficient of 0 draws nothing. This is where the
    /// f64 coefficients are rounded to f32, once; zero terms are dropped first.
    pub(crate) fn lin(&mut self, dst: u8, terms: Lin, noise: Option<f64>) {
        let noise = noise.filter(|&c| c != 0.0);
        self.see(dst);
        terms.0.iter().for_each(|&(r, _)| self.see(r));
        let finite = |c: f64| c.is_finite() && (c as f32).is_finite();
        if !terms.0.iter().all(|&(_, c)| finite(c)) || !noise.is_none_or(finite) {
            self.non_finite();
        }
        // The builders never exceed the format's limits; this guards edits.
        assert!(
            terms.0.len() <= MAX_TERMS as usize,
            "LIN with too many terms"
        );
        let rounded: Vec<(u8, f32)> = terms
            .0
            .iter()
            .filter(|&&(_, c)| c != 0.0)
            .map(|&(r, c)| (r, c as f32))
            .collect();
        let bytes = Terms::encode(&rounded);
        self.code.push(&Instr::Lin {
            dst,
            noise: noise.map(|c| c as f32),
            terms: Terms::from_bytes(&bytes),
        });
    }

    /// `reg = clamp(reg, lo, hi)`.
    pub(crate) fn clamp(&mut self, reg: u8, lo: f64, hi: f64) {
        self.see(reg);
        self.code.push(&Instr::Clamp {
            reg,
            lo: lo as f32,
            hi: hi as f32,
        });
    }

    /// Ends a step.
    pub(crate) fn step(&mut self) {
        self.steps += 1;
        self.code.push(&Instr::Step);
    }

    /// Checks the limits and emits the program.
    pub(crate) fn finish(
        self,
        name: &str,
        sampler: &'static str,
    ) -> Result<ProgramBuilder, SamplerError> {
        if let Some(step) = self.non_finite_at {
            return Err(SamplerError::NonFinite { sampler, step });
        }
        assert!(self.regs <= MAX_REGS, "{sampler}: more than 8 registers");
        let max = u16::MAX as usize;
        if self.steps > max || self.evals > max {
            return Err(SamplerError::TooManySteps {
                sampler,
                steps: self.steps.saturating_sub(1),
                max: max - 1,
                why: "a program holds at most 65535 steps and 65535 evaluations",
            });
        }
        let mut p = ProgramBuilder::new(name, self.regs);
        p.append(&self.code);
        Ok(p)
    }
}
