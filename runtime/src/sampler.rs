//! The sampler: interprets one program over the arena, one step per call.
//!
//! ```text
//! let model = Model::parse(BLOB)?;
//! let program = model.program("ddim10")?;
//! let mut s = Sampler::new(&model, program, &mut arena, SampleRequest { seed, stream: 0, class: 3 })?;
//! while let Status::Running { step, steps } = s.step()? { report(step, steps) }
//! s.output(&mut out)?; // data units
//! ```
//!
//! # Arithmetic of the instructions
//! * `LIN dst, [(r₀,c₀)…(rₙ₋₁,cₙ₋₁)], c_z`: for each element `i`, `acc = 0.0`, then
//!   `acc = acc + cₖ·rₖ[i]` for `k = 0, 1, …` in order, then `acc = acc + c_z·zᵢ` if the
//!   instruction draws noise; `dst[i] = acc`. Every source element is read before `dst[i]` is
//!   written, so `dst` may be a source.
//! * Noise: the `d`-th noisy `LIN` executed (counting from 0 in program order) uses draw `d`
//!   of `NoiseStream { seed, stream, Domain::Sampler }`, element `i` ↦ `zᵢ`. A network that
//!   draws noise itself (`NOISE`, `BERNOULLI`: RBM Gibbs sweeps, a hierarchical VAE's inner
//!   latent) draws, at the `e`-th `EVAL` executed, from draw `e` of
//!   `NoiseStream { seed, stream, Domain::Network }`.
//! * `CLAMP`: `min(max(x, lo), hi)` with IEEE comparisons.
//! * After every `EVAL` and `LIN` the destination is checked: a NaN or infinity stops the
//!   program with [`Error::NonFinite`] naming the step and the instruction.

use crate::arena::as_f32_slots;
use crate::blob::program::{ClassSel, Instr, Program};
use crate::error::Error;
use crate::log::{debug, trace};
use crate::model::Model;
use crate::network::{Draws, Io, forward};
use crate::noise::{Domain, NoiseStream};

/// What to sample: the noise seed, the sample's stream (its global index, so its noise does not
/// depend on batching) and the class (ignored by unconditional models).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SampleRequest {
    /// Noise seed.
    pub seed: u64,
    /// Sample index.
    pub stream: u32,
    /// Class to condition on.
    pub class: u16,
}

/// Progress after a call to [`Sampler::step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Status {
    /// `step` of `steps` steps are done; call again.
    Running {
        /// Steps completed.
        step: u16,
        /// Steps in the program.
        steps: u16,
    },
    /// The program has finished; the sample is ready.
    Done,
}

/// A program being run over a borrowed arena.
#[derive(Debug)]
pub struct Sampler<'m, 'b, 'a> {
    model: &'m Model<'b>,
    program: Program<'b>,
    slots: &'a mut [f32],
    noise: NoiseStream,
    class: u16,
    null_class: u16,
    pc: usize,
    step: u16,
    draw: u32,
    evals: u32,
    failed: Option<Error>,
}

impl<'m, 'b, 'a> Sampler<'m, 'b, 'a> {
    /// Prepares `program` of `model` over `arena` (zeroed here). The arena must hold
    /// [`Model::arena_bytes`] bytes after aligning its start to 4 bytes.
    pub fn new(
        model: &'m Model<'b>,
        program: Program<'b>,
        arena: &'a mut [u8],
        spec: SampleRequest,
    ) -> Result<Self, Error> {
        let provided = arena.len();
        let needed = model.arena_bytes();
        let (slots, skipped) = as_f32_slots(arena);
        if slots.len() < model.plan().total_slots() {
            return Err(Error::ArenaTooSmall {
                needed: needed + skipped,
                provided,
            });
        }
        if program.regs > model.plan().regs {
            // A program from another model.
            return Err(Error::ProgramNotFound);
        }
        let meta = model.meta();
        if model.graph().uses_class() && spec.class >= meta.classes {
            return Err(Error::ClassOutOfRange {
                class: spec.class,
                classes: meta.classes,
            });
        }
        slots.fill(0.0);
        debug!(
            "sampler: program {=u16}, {=u16} steps, arena {=usize} bytes",
            program.index, program.steps, needed
        );
        Ok(Sampler {
            model,
            program,
            slots,
            noise: NoiseStream::new(spec.seed, spec.stream, Domain::Sampler),
            class: spec.class,
            null_class: meta.null_class.unwrap_or(0),
            pc: 0,
            step: 0,
            draw: 0,
            evals: 0,
            failed: None,
        })
    }

    /// Steps completed so far.
    pub fn steps_done(&self) -> u16 {
        self.step
    }

    /// Steps in the program.
    pub fn steps_total(&self) -> u16 {
        self.program.steps
    }

    /// True once the program has run to its end.
    pub fn is_done(&self) -> bool {
        self.pc >= self.program.code.len()
    }

    /// Runs instructions up to and including the next `STEP`.
    pub fn step(&mut self) -> Result<Status, Error> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        match self.step_inner() {
            Ok(s) => Ok(s),
            Err(e) => {
                self.failed = Some(e);
                Err(e)
            }
        }
    }

    fn step_inner(&mut self) -> Result<Status, Error> {
        if self.is_done() {
            return Ok(Status::Done);
        }
        while self.pc < self.program.code.len() {
            let at = self.pc;
            let (instr, next) = self.program.instr(at)?;
            self.pc = next;
            match instr {
                Instr::Eval {
                    dst,
                    src,
                    class,
                    time,
                } => {
                    let plan = self.model.plan();
                    let class = match class {
                        ClassSel::Caller => self.class,
                        ClassSel::Null => self.null_class,
                    };
                    let io = Io {
                        src: plan.register_start(src),
                        dst: plan.register_start(dst),
                    };
                    let draws = Draws::new(self.noise.seed, self.noise.stream, self.evals);
                    self.evals = self.evals.wrapping_add(1);
                    forward(self.model, self.slots, io, time, class, draws)?;
                    self.check_finite(dst, at)?;
                }
                Instr::Lin { dst, noise, terms } => {
                    let plan = self.model.plan();
                    let n = plan.data_len as usize;
                    let d0 = plan.register_start(dst);
                    let draw = self.draw;
                    if noise.is_some() {
                        self.draw = self.draw.wrapping_add(1);
                    }
                    if d0 + n > self.slots.len() {
                        return Err(Error::ArenaTooSmall {
                            needed: (d0 + n) * 4,
                            provided: self.slots.len() * 4,
                        });
                    }
                    let mut z = [0u32; 4];
                    for i in 0..n {
                        let mut acc = 0.0f32;
                        for (r, c) in terms.iter() {
                            let x = self
                                .slots
                                .get(plan.register_start(r) + i)
                                .copied()
                                .unwrap_or(f32::NAN);
                            acc += c * x;
                        }
                        if let Some(cz) = noise {
                            if i % 4 == 0 {
                                z = self.noise.block(draw, (i / 4) as u32);
                            }
                            let zi = crate::noise::standard_normal(z[i % 4]);
                            acc += cz * zi;
                        }
                        // In range: `d0 + n <= slots.len()` was checked above.
                        if let Some(slot) = self.slots.get_mut(d0 + i) {
                            *slot = acc;
                        }
                    }
                    self.check_finite(dst, at)?;
                }
                Instr::Clamp { reg, lo, hi } => {
                    let plan = self.model.plan();
                    let r0 = plan.register_start(reg);
                    let n = plan.data_len as usize;
                    if let Some(xs) = self.slots.get_mut(r0..r0 + n) {
                        for x in xs {
                            *x = x.max(lo).min(hi);
                        }
                    }
                }
                Instr::Step => {
                    self.step = self.step.saturating_add(1);
                    trace!("sampler: step {=u16}/{=u16}", self.step, self.program.steps);
                    return Ok(if self.is_done() {
                        Status::Done
                    } else {
                        Status::Running {
                            step: self.step,
                            steps: self.program.steps,
                        }
                    });
                }
            }
        }
        Ok(Status::Done)
    }

    fn check_finite(&self, reg: u8, pc: usize) -> Result<(), Error> {
        let r = self.register(reg);
        if r.iter().all(|x| x.is_finite()) {
            Ok(())
        } else {
            Err(Error::NonFinite {
                step: self.step,
                pc: pc as u32,
            })
        }
    }

    fn register(&self, reg: u8) -> &[f32] {
        let plan = self.model.plan();
        let r0 = plan.register_start(reg);
        self.slots
            .get(r0..r0 + plan.data_len as usize)
            .unwrap_or(&[])
    }

    /// Runs the program to its end.
    pub fn run(&mut self) -> Result<(), Error> {
        while self.step()? != Status::Done {}
        Ok(())
    }

    /// The sample in model space (the program's output register).
    pub fn output_raw(&self) -> &[f32] {
        self.register(self.program.out_reg)
    }

    /// The sample in data units (`x · scale + offset` from the metadata) into `out`.
    ///
    /// Errors: [`Error::OutputLength`], or [`Error::OutputNotFinite`] when a finite sample
    /// overflows in data units (a blob whose scale is near `f32::MAX`); `out` is untouched then.
    pub fn output(&self, out: &mut [f32]) -> Result<(), Error> {
        let raw = self.output_raw();
        if out.len() != raw.len() {
            return Err(Error::OutputLength {
                expected: raw.len(),
                provided: out.len(),
            });
        }
        let meta = self.model.meta();
        if let Some(i) = (0..raw.len()).find(|&i| {
            let x = raw.get(i).copied().unwrap_or(0.0);
            !meta.to_data_units(i, x).is_finite()
        }) {
            return Err(Error::OutputNotFinite { element: i as u32 });
        }
        for (i, (o, &x)) in out.iter_mut().zip(raw).enumerate() {
            *o = meta.to_data_units(i, x);
        }
        Ok(())
    }
}

/// Runs `program` to the end and writes the sample in data units into `out`.
pub fn sample<'b>(
    model: &Model<'b>,
    program: Program<'b>,
    arena: &mut [u8],
    spec: SampleRequest,
    out: &mut [f32],
) -> Result<(), Error> {
    let mut s = Sampler::new(model, program, arena, spec)?;
    s.run()?;
    s.output(out)
}

/// Runs the network once, outside any program: `out = network(x, time, class)` in model units
/// (what an `EVAL` computes), over `arena` ([`Model::arena_bytes`] bytes after aligning its
/// start). For benchmarks and tests of the network alone; `time` must be one the model can
/// evaluate (with a time table: one of its rows, i.e. an `EVAL` time of one of its programs).
/// A network that draws noise (`NOISE`, `BERNOULLI`) draws what the first `EVAL` of stream 0
/// of seed 0 would.
pub fn evaluate(
    model: &Model<'_>,
    arena: &mut [u8],
    x: &[f32],
    time: f32,
    class: u16,
    out: &mut [f32],
) -> Result<(), Error> {
    let provided = arena.len();
    let needed = model.arena_bytes();
    let (slots, skipped) = as_f32_slots(arena);
    if slots.len() < model.plan().total_slots() || model.plan().regs == 0 {
        return Err(Error::ArenaTooSmall {
            needed: needed + skipped,
            provided,
        });
    }
    let n = model.data_len();
    for (len, provided) in [(x.len(), x.len()), (out.len(), out.len())] {
        if len != n {
            return Err(Error::OutputLength {
                expected: n,
                provided,
            });
        }
    }
    let meta = model.meta();
    if model.graph().uses_class() && class >= meta.classes && meta.null_class != Some(class) {
        return Err(Error::ClassOutOfRange {
            class,
            classes: meta.classes,
        });
    }
    let r0 = model.plan().register_start(0);
    slots
        .get_mut(r0..r0 + n)
        .ok_or(Error::ArenaTooSmall { needed, provided })?
        .copy_from_slice(x);
    forward(
        model,
        slots,
        Io { src: r0, dst: r0 },
        time,
        class,
        Draws::new(0, 0, 0),
    )?;
    out.copy_from_slice(
        slots
            .get(r0..r0 + n)
            .ok_or(Error::ArenaTooSmall { needed, provided })?,
    );
    Ok(())
}
