//! Sampler programs: samplers as data.
//!
//! A program is straight-line code over a few registers, each one sample long (`data_len`
//! f32). The host computes every coefficient in f64 and writes them as f32 constants; the
//! device only interprets four instructions:
//!
//! | code | instruction | bytes | effect |
//! |---|---|---|---|
//! | 1 | `EVAL dst, src, class, t` | 8 | `dst = network(src, t, class)`; `class` = the caller's class or the null class |
//! | 2 | `LIN dst, [(reg, c)…], c_z` | 8 + 8n | `dst = Σ cₖ·regₖ (+ c_z·z)`, `z` fresh standard-normal noise |
//! | 3 | `CLAMP reg, lo, hi` | 12 | `reg = min(max(reg, lo), hi)` element-wise (x₀ clipping) |
//! | 4 | `STEP` | 4 | ends one sampler step: the step-wise API returns here |
//!
//! Why these and no more: `EVAL` is the only expensive operation; every ancestral, DDIM,
//! DPM-Solver, Euler/Heun, Euler–Maruyama and Langevin update is a linear combination of
//! registers plus scaled noise (`LIN`), including the initial `x_T = σ·z` (no terms);
//! classifier-free guidance is two `EVAL`s and a `LIN`; x₀ clipping needs a nonlinearity
//! (`CLAMP`); `STEP` gives firmware a place to interleave other work and report progress, and
//! is free at run time. Branching is deliberately absent: every program runs the same
//! instructions in the same order, which keeps the noise counters (one draw per noisy `LIN`,
//! numbered in program order) independent of data.

use super::bytes::{f32_at, sub, u8_at, u16_at, u32_at};
use crate::error::{Error, Section};

/// Most registers a program may use.
pub const MAX_REGS: u8 = 8;
/// Most terms in one `LIN`.
pub const MAX_TERMS: u8 = 8;
/// Most programs in one blob.
pub const MAX_PROGRAMS: u32 = 64;
/// Length of the NUL-padded ASCII program name.
pub const NAME_LEN: usize = 16;

/// Byte ranges of the program section and of a program header.
pub mod field {
    use crate::blob::field::Field;
    /// `u32` number of programs.
    pub const COUNT: Field = 0..4;
    /// First program.
    pub const PROGRAMS: usize = 4;
    /// `[u8; 16]` ASCII name, NUL-padded.
    pub const NAME: Field = 0..16;
    /// `u8` registers used (1..=8).
    pub const REGS: usize = 16;
    /// `u8` register holding the final sample.
    pub const OUT_REG: usize = 17;
    /// `u16` number of `STEP` instructions.
    pub const STEPS: Field = 18..20;
    /// `u16` number of `EVAL` instructions.
    pub const EVALS: Field = 20..22;
    /// `u16` flags, 0 in v1.
    pub const FLAGS: Field = 22..24;
    /// `u32` code length in bytes (multiple of 4).
    pub const CODE_LEN: Field = 24..28;
    /// Start of the code.
    pub const CODE: usize = 28;
}

/// Instruction codes.
pub mod opcode {
    /// Network evaluation.
    pub const EVAL: u8 = 1;
    /// Linear combination plus noise.
    pub const LIN: u8 = 2;
    /// Element-wise clamp.
    pub const CLAMP: u8 = 3;
    /// End of a sampler step.
    pub const STEP: u8 = 4;
}

/// Which class an `EVAL` conditions on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum ClassSel {
    /// The class the caller asked for (ignored by unconditional networks).
    Caller = 0,
    /// The model's null class (the unconditional branch of guidance).
    Null = 1,
}

/// The `(register, coefficient)` terms of a `LIN`, read in place.
#[derive(Debug, Clone, Copy)]
pub struct Terms<'a> {
    bytes: &'a [u8],
}

impl<'a> Terms<'a> {
    /// Number of terms.
    pub fn len(&self) -> usize {
        self.bytes.len() / 8
    }
    /// True when the `LIN` has no terms (pure noise or zero).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
    /// Term `i`: `(register, coefficient)`; `None` past the end.
    pub fn get(&self, i: usize) -> Option<(u8, f32)> {
        Some((u8_at(self.bytes, 8 * i)?, f32_at(self.bytes, 8 * i + 4)?))
    }
    /// The terms in order.
    pub fn iter(&self) -> impl Iterator<Item = (u8, f32)> + 'a {
        let bytes = self.bytes;
        (0..bytes.len() / 8)
            .filter_map(move |i| Some((u8_at(bytes, 8 * i)?, f32_at(bytes, 8 * i + 4)?)))
    }
}

/// A decoded instruction.
#[derive(Debug, Clone, Copy)]
pub enum Instr<'a> {
    /// `dst = network(src, time, class)`.
    Eval {
        /// Destination register.
        dst: u8,
        /// Source register (the network input).
        src: u8,
        /// Class selection.
        class: ClassSel,
        /// Time value fed to the time embedding.
        time: f32,
    },
    /// `dst = Σ cₖ·regₖ (+ noise·z)`.
    Lin {
        /// Destination register (may also be a source).
        dst: u8,
        /// Noise coefficient, if this `LIN` draws noise.
        noise: Option<f32>,
        /// The terms.
        terms: Terms<'a>,
    },
    /// `reg = clamp(reg, lo, hi)`.
    Clamp {
        /// Register.
        reg: u8,
        /// Lower bound.
        lo: f32,
        /// Upper bound.
        hi: f32,
    },
    /// End of a step.
    Step,
}

/// `LIN` flag: the instruction draws noise.
pub const LIN_NOISE: u8 = 1;

impl<'a> Instr<'a> {
    /// Decodes the instruction at byte `at` of `code`; returns it and the next offset.
    /// `program` is only used in error messages.
    pub fn decode(program: u16, code: &'a [u8], at: usize) -> Result<(Self, usize), Error> {
        let bad = |what| Error::BadProgram {
            program,
            offset: at as u32,
            what,
        };
        let op = u8_at(code, at).ok_or(bad("instruction past the end of the code"))?;
        let b1 = u8_at(code, at + 1).ok_or(bad("instruction truncated"))?;
        let b2 = u8_at(code, at + 2).ok_or(bad("instruction truncated"))?;
        let b3 = u8_at(code, at + 3).ok_or(bad("instruction truncated"))?;
        let f = |off: usize| f32_at(code, at + off).ok_or(bad("instruction truncated"));
        match op {
            opcode::EVAL => {
                let class = match b3 {
                    0 => ClassSel::Caller,
                    1 => ClassSel::Null,
                    _ => return Err(bad("EVAL class selector must be 0 or 1")),
                };
                let time = f(4)?;
                Ok((
                    Instr::Eval {
                        dst: b1,
                        src: b2,
                        class,
                        time,
                    },
                    at + 8,
                ))
            }
            opcode::LIN => {
                if b3 & !LIN_NOISE != 0 {
                    return Err(bad("unknown LIN flag bits"));
                }
                let c_z = f(4)?;
                let n = b2 as usize;
                let terms = sub(code, at + 8, 8 * n).ok_or(bad("LIN terms truncated"))?;
                let noise = if b3 & LIN_NOISE != 0 {
                    Some(c_z)
                } else {
                    if c_z.to_bits() != 0 {
                        return Err(bad("noise coefficient without the noise flag"));
                    }
                    None
                };
                Ok((
                    Instr::Lin {
                        dst: b1,
                        noise,
                        terms: Terms { bytes: terms },
                    },
                    at + 8 + 8 * n,
                ))
            }
            opcode::CLAMP => {
                if b2 != 0 || b3 != 0 {
                    return Err(bad("CLAMP padding must be 0"));
                }
                Ok((
                    Instr::Clamp {
                        reg: b1,
                        lo: f(4)?,
                        hi: f(8)?,
                    },
                    at + 12,
                ))
            }
            opcode::STEP => {
                if b1 != 0 || b2 != 0 || b3 != 0 {
                    return Err(bad("STEP padding must be 0"));
                }
                Ok((Instr::Step, at + 4))
            }
            _ => Err(Error::UnknownInstruction {
                program,
                offset: at as u32,
                opcode: op,
            }),
        }
    }

    /// Appends the encoding of this instruction (the emitter's half of the format).
    #[cfg(feature = "alloc")]
    pub(crate) fn encode_into(out: &mut alloc::vec::Vec<u8>, instr: &EncodeInstr<'_>) {
        match *instr {
            EncodeInstr::Eval {
                dst,
                src,
                class,
                time,
            } => {
                out.extend_from_slice(&[opcode::EVAL, dst, src, class as u8]);
                out.extend_from_slice(&time.to_le_bytes());
            }
            EncodeInstr::Lin { dst, terms, noise } => {
                let flags = if noise.is_some() { LIN_NOISE } else { 0 };
                out.extend_from_slice(&[opcode::LIN, dst, terms.len() as u8, flags]);
                out.extend_from_slice(&noise.unwrap_or(0.0).to_le_bytes());
                for &(reg, c) in terms {
                    out.extend_from_slice(&[reg, 0, 0, 0]);
                    out.extend_from_slice(&c.to_le_bytes());
                }
            }
            EncodeInstr::Clamp { reg, lo, hi } => {
                out.extend_from_slice(&[opcode::CLAMP, reg, 0, 0]);
                out.extend_from_slice(&lo.to_le_bytes());
                out.extend_from_slice(&hi.to_le_bytes());
            }
            EncodeInstr::Step => out.extend_from_slice(&[opcode::STEP, 0, 0, 0]),
        }
    }
}

/// An instruction to encode (owned terms slice), used by the emitter.
#[cfg(feature = "alloc")]
#[derive(Debug, Clone, Copy)]
pub(crate) enum EncodeInstr<'t> {
    Eval {
        dst: u8,
        src: u8,
        class: ClassSel,
        time: f32,
    },
    Lin {
        dst: u8,
        terms: &'t [(u8, f32)],
        noise: Option<f32>,
    },
    Clamp {
        reg: u8,
        lo: f32,
        hi: f32,
    },
    Step,
}

/// One program, borrowed from the blob.
#[derive(Debug, Clone, Copy)]
pub struct Program<'a> {
    /// Position in the blob's program list.
    pub index: u16,
    name: &'a [u8],
    /// Registers used.
    pub regs: u8,
    /// Register holding the final sample.
    pub out_reg: u8,
    /// Number of steps (`STEP` instructions).
    pub steps: u16,
    /// Number of network evaluations.
    pub evals: u16,
    /// The code.
    pub code: &'a [u8],
}

impl<'a> Program<'a> {
    /// The program's name (ASCII).
    pub fn name(&self) -> &'a str {
        let end = self
            .name
            .iter()
            .position(|&c| c == 0)
            .unwrap_or(self.name.len());
        core::str::from_utf8(self.name.get(..end).unwrap_or(&[])).unwrap_or("")
    }

    /// Decodes the instruction at byte `at`.
    pub fn instr(&self, at: usize) -> Result<(Instr<'a>, usize), Error> {
        Instr::decode(self.index, self.code, at)
    }

    /// Every instruction with its byte offset, in order; stops after the first decoding error.
    pub fn instructions(&self) -> impl Iterator<Item = Result<(usize, Instr<'a>), Error>> + 'a {
        let program = *self;
        let mut at = Some(0usize);
        core::iter::from_fn(move || {
            let here = at?;
            if here >= program.code.len() {
                return None;
            }
            match program.instr(here) {
                Ok((instr, next)) => {
                    at = Some(next);
                    Some(Ok((here, instr)))
                }
                Err(e) => {
                    at = None;
                    Some(Err(e))
                }
            }
        })
    }

    /// Checks every instruction and the header counts. `null_class` says whether the model
    /// has a null class; `regs` bounds every register operand.
    fn validate(&self, has_null_class: bool) -> Result<(), Error> {
        let hdr = |what| Error::BadProgram {
            program: self.index,
            offset: 0,
            what,
        };
        let used = self.name.iter().take_while(|&&c| c != 0).count();
        let (text, pad) = self.name.split_at(used.min(self.name.len()));
        if text.is_empty()
            || !text.iter().all(|c| (0x21..0x7F).contains(c))
            || pad.iter().any(|&c| c != 0)
        {
            return Err(hdr(
                "name must be printable ASCII without spaces, NUL-padded",
            ));
        }
        if self.regs == 0 || self.regs > MAX_REGS {
            return Err(hdr("register count must be 1..=8"));
        }
        if self.out_reg >= self.regs {
            return Err(hdr("output register out of range"));
        }
        let (mut steps, mut evals) = (0u32, 0u32);
        let mut at = 0;
        // An empty program is rejected too: it would "sample" zeros.
        let mut last_was_step = false;
        while at < self.code.len() {
            let (instr, next) = self.instr(at)?;
            let bad = |what| Error::BadProgram {
                program: self.index,
                offset: at as u32,
                what,
            };
            let reg_ok = |r: u8| r < self.regs;
            let finite = |x: f32| x.is_finite();
            last_was_step = false;
            match instr {
                Instr::Eval {
                    dst,
                    src,
                    class,
                    time,
                } => {
                    if !reg_ok(dst) || !reg_ok(src) {
                        return Err(bad("EVAL register out of range"));
                    }
                    if !finite(time) {
                        return Err(bad("EVAL time is not finite"));
                    }
                    if class == ClassSel::Null && !has_null_class {
                        return Err(Error::NoNullClass);
                    }
                    evals += 1;
                }
                Instr::Lin { dst, noise, terms } => {
                    if !reg_ok(dst) {
                        return Err(bad("LIN destination out of range"));
                    }
                    if terms.len() > MAX_TERMS as usize {
                        return Err(bad("LIN has more than 8 terms"));
                    }
                    if terms
                        .bytes
                        .chunks_exact(8)
                        .any(|t| t.get(1..4) != Some(&[0, 0, 0]))
                    {
                        return Err(bad("LIN term padding must be 0"));
                    }
                    if terms.iter().any(|(r, c)| !reg_ok(r) || !finite(c)) {
                        return Err(bad(
                            "LIN term register out of range or coefficient not finite",
                        ));
                    }
                    if noise.is_some_and(|c| !finite(c)) {
                        return Err(bad("LIN noise coefficient is not finite"));
                    }
                }
                Instr::Clamp { reg, lo, hi } => {
                    if !reg_ok(reg) {
                        return Err(bad("CLAMP register out of range"));
                    }
                    if !(finite(lo) && finite(hi) && lo <= hi) {
                        return Err(bad("CLAMP bounds must be finite with lo <= hi"));
                    }
                }
                Instr::Step => {
                    steps += 1;
                    last_was_step = true;
                }
            }
            at = next;
        }
        if !last_was_step {
            return Err(hdr("code must be non-empty and end with STEP"));
        }
        if steps != self.steps as u32 || evals != self.evals as u32 {
            return Err(hdr("step or evaluation count disagrees with the code"));
        }
        Ok(())
    }
}

/// The program section, validated.
#[derive(Debug, Clone, Copy)]
pub struct Programs<'a> {
    bytes: &'a [u8],
    count: u16,
    max_regs: u8,
}

/// Header of program starting at `at`: (regs, code_len, next program offset).
const fn program_header(b: &[u8], index: u16, at: usize) -> Result<(u8, usize, usize), Error> {
    let bad = Error::BadProgram {
        program: index,
        offset: 0,
        what: "program header truncated or code length not a multiple of 4",
    };
    let (regs, flags, code_len) = match (
        u8_at(b, at + field::REGS),
        u16_at(b, at + field::FLAGS.start),
        u32_at(b, at + field::CODE_LEN.start),
    ) {
        (Some(r), Some(f), Some(c)) => (r, f, c as usize),
        _ => return Err(bad),
    };
    if flags != 0 {
        return Err(Error::BadProgram {
            program: index,
            offset: 0,
            what: "program flags must be 0",
        });
    }
    if code_len % 4 != 0 {
        return Err(bad);
    }
    let next = match at.checked_add(field::CODE) {
        Some(n) => match n.checked_add(code_len) {
            Some(n) => n,
            None => return Err(bad),
        },
        None => return Err(bad),
    };
    if next > b.len() {
        return Err(Error::Truncated {
            section: Section::Programs,
            needed: next,
            available: b.len(),
        });
    }
    Ok((regs, code_len, next))
}

/// Walks the program headers and returns the largest register count (for the `const`
/// planner). Checks the section's framing, not the code.
pub const fn max_regs(b: &[u8]) -> Result<u8, Error> {
    let count = match u32_at(b, field::COUNT.start) {
        Some(c) => c,
        None => {
            return Err(Error::Truncated {
                section: Section::Programs,
                needed: 4,
                available: b.len(),
            });
        }
    };
    if count == 0 || count > MAX_PROGRAMS {
        return Err(Error::Malformed {
            section: Section::Programs,
            what: "program count must be 1..=64",
        });
    }
    let mut at = field::PROGRAMS;
    let mut i = 0u32;
    let mut max = 0u8;
    while i < count {
        let (regs, _, next) = match program_header(b, i as u16, at) {
            Ok(h) => h,
            Err(e) => return Err(e),
        };
        if regs == 0 || regs > MAX_REGS {
            return Err(Error::BadProgram {
                program: i as u16,
                offset: 0,
                what: "register count must be 1..=8",
            });
        }
        if regs > max {
            max = regs;
        }
        at = next;
        i += 1;
    }
    if at != b.len() {
        return Err(Error::Malformed {
            section: Section::Programs,
            what: "bytes after the last program",
        });
    }
    Ok(max)
}

/// Index of the program called `name` in a programs section, walking only the headers: a
/// `const fn`, so a firmware can refuse at compile time to build with a program its blob does
/// not have ([`crate::program_index`]). [`Error::ProgramNotFound`] if no name matches.
pub const fn find(b: &[u8], name: &str) -> Result<u16, Error> {
    let count = match max_regs(b) {
        // `max_regs` checks the framing; then every header below is in bounds.
        Ok(_) => match u32_at(b, field::COUNT.start) {
            Some(c) => c,
            None => 0,
        },
        Err(e) => return Err(e),
    };
    let want = name.as_bytes();
    let mut at = field::PROGRAMS;
    let mut i = 0u32;
    while i < count {
        if want.len() <= NAME_LEN {
            let mut j = 0;
            let mut same = true;
            while j < NAME_LEN {
                let stored = match u8_at(b, at + field::NAME.start + j) {
                    Some(c) => c,
                    None => 0,
                };
                let wanted = if j < want.len() { want[j] } else { 0 };
                if stored != wanted {
                    same = false;
                }
                j += 1;
            }
            if same && !want.is_empty() {
                return Ok(i as u16);
            }
        }
        at = match program_header(b, i as u16, at) {
            Ok((_, _, next)) => next,
            Err(e) => return Err(e),
        };
        i += 1;
    }
    Err(Error::ProgramNotFound)
}

impl<'a> Programs<'a> {
    /// Parses and validates every program. `has_null_class`: whether `EVAL … null` is allowed.
    pub fn parse(b: &'a [u8], has_null_class: bool) -> Result<Self, Error> {
        let max_regs = max_regs(b)?;
        let count = u32_at(b, field::COUNT.start).unwrap_or(0) as u16;
        let p = Programs {
            bytes: b,
            count,
            max_regs,
        };
        for (i, prog) in p.iter().enumerate() {
            let prog = prog?;
            prog.validate(has_null_class)?;
            if p.iter().take(i).flatten().any(|q| q.name() == prog.name()) {
                return Err(Error::BadProgram {
                    program: prog.index,
                    offset: 0,
                    what: "two programs have the same name",
                });
            }
        }
        Ok(p)
    }

    /// Number of programs.
    pub fn count(&self) -> u16 {
        self.count
    }

    /// Largest register count over all programs.
    pub fn max_regs(&self) -> u8 {
        self.max_regs
    }

    /// The programs in order.
    pub fn iter(&self) -> impl Iterator<Item = Result<Program<'a>, Error>> + 'a {
        let b = self.bytes;
        let count = self.count;
        let mut at = field::PROGRAMS;
        (0..count).map(move |i| {
            let (regs, code_len, next) = program_header(b, i, at)?;
            let name = sub(b, at + field::NAME.start, NAME_LEN).unwrap_or(&[]);
            let prog = Program {
                index: i,
                name,
                regs,
                out_reg: u8_at(b, at + field::OUT_REG).unwrap_or(0xFF),
                steps: u16_at(b, at + field::STEPS.start).unwrap_or(0),
                evals: u16_at(b, at + field::EVALS.start).unwrap_or(0),
                code: sub(b, at + field::CODE, code_len).unwrap_or(&[]),
            };
            at = next;
            Ok(prog)
        })
    }

    /// Program number `i`.
    pub fn get(&self, i: u16) -> Result<Program<'a>, Error> {
        self.iter()
            .nth(i as usize)
            .unwrap_or(Err(Error::ProgramNotFound))
    }

    /// The program called `name`.
    pub fn find(&self, name: &str) -> Result<Program<'a>, Error> {
        for p in self.iter() {
            let p = p?;
            if p.name() == name {
                return Ok(p);
            }
        }
        Err(Error::ProgramNotFound)
    }
}

/// Appends one program (header + code) to `out`; `code` must already be 4-byte multiples.
#[cfg(feature = "alloc")]
pub(crate) fn encode_program(
    out: &mut alloc::vec::Vec<u8>,
    name: &str,
    regs: u8,
    out_reg: u8,
    steps: u16,
    evals: u16,
    code: &[u8],
) {
    let mut n = [0u8; NAME_LEN];
    for (d, s) in n.iter_mut().zip(name.bytes()) {
        *d = s;
    }
    out.extend_from_slice(&n);
    out.push(regs);
    out.push(out_reg);
    out.extend_from_slice(&steps.to_le_bytes());
    out.extend_from_slice(&evals.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(code.len() as u32).to_le_bytes());
    out.extend_from_slice(code);
}
