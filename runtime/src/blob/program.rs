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
//!
//! # One representation
//! [`Instr`] is the only instruction type: the decoder returns it ([`Instr::decode`]) and the
//! emitter writes it (`Instr::encode`, feature `alloc`; `BlobBuilder`'s `ProgramBuilder`
//! pushes `Instr` values). A program can be checked and decoded without a blob:
//! [`Program::parse`] takes one program record (header and code, as stored in PROGRAMS),
//! [`check_code`] and [`instructions`] take bare instruction bytes. Like the blob's parse, they
//! never panic and report every bad input as a typed [`Error`]. The program-name rule is
//! [`check_name`], used by the parser, the emitter and the host's sampler builders.

use super::bytes::{f32_at, or, sub, u8_at, u16_at, u32_at};
use crate::error::{Error, Rule, Section};

/// Most registers a program may use.
pub const MAX_REGS: u8 = 8;
/// Most terms in one `LIN`.
pub const MAX_TERMS: u8 = 8;
/// Most programs in one blob.
pub const MAX_PROGRAMS: u32 = 64;
/// Length of the NUL-padded ASCII program name.
pub const NAME_LEN: usize = 16;

/// What [`check_name`] reports: the program-name rule (its sentence is `NAME_RULE.text()`).
pub const NAME_RULE: Rule = Rule::ProgramName;

/// The program-name rule, written once: a name is 1 to [`NAME_LEN`] bytes of printable ASCII
/// without spaces (`0x21..=0x7E`). The emitter checks a name before it writes it (and the host
/// checks a sampler's name with it); the parser checks the bytes of a stored name before its
/// NUL padding (that the padding is all zero is a rule of the field, not of the name).
///
/// The error is [`Error::BadProgram`] with [`NAME_RULE`], program 0 and offset 0: a caller that
/// knows the program's index puts it in.
pub const fn check_name(name: &[u8]) -> Result<(), Error> {
    let mut ok = !name.is_empty() && name.len() <= NAME_LEN;
    let mut i = 0;
    while ok && i < name.len() {
        ok = matches!(u8_at(name, i), Some(0x21..=0x7E));
        i += 1;
    }
    if ok {
        Ok(())
    } else {
        Err(Error::BadProgram {
            program: 0,
            offset: 0,
            what: NAME_RULE,
        })
    }
}

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

/// The `(register, coefficient)` terms of a `LIN`, read in place from their encoding: 8 bytes
/// per term, the register, three zero bytes and the coefficient as a little-endian `f32` (the
/// bytes of the `LIN` after its 8-byte head). Equality compares those bytes, so coefficients
/// compare bit for bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terms<'a> {
    bytes: &'a [u8],
}

impl<'a> Terms<'a> {
    /// Terms over already-encoded bytes (see the type's doc; `Terms::encode`, feature `alloc`, writes them).
    /// A trailing partial term is left out. Nothing is checked here: [`check_code`] checks the
    /// padding, registers and coefficients of the terms of a program.
    pub const fn from_bytes(bytes: &'a [u8]) -> Self {
        let whole = bytes.len() - bytes.len() % 8;
        Terms {
            bytes: match bytes.split_at_checked(whole) {
                Some((terms, _)) => terms,
                None => bytes,
            },
        }
    }

    /// The encoded terms, 8 bytes each.
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Encodes `(register, coefficient)` pairs as [`Terms::from_bytes`] reads them.
    #[cfg(feature = "alloc")]
    pub fn encode(terms: &[(u8, f32)]) -> alloc::vec::Vec<u8> {
        let mut out = alloc::vec::Vec::with_capacity(8 * terms.len());
        for &(reg, c) in terms {
            out.extend_from_slice(&[reg, 0, 0, 0]);
            out.extend_from_slice(&c.to_le_bytes());
        }
        out
    }

    /// Number of terms.
    pub const fn len(&self) -> usize {
        self.bytes.len() / 8
    }
    /// True when the `LIN` has no terms (pure noise or zero).
    pub const fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
    /// Term `i`: `(register, coefficient)`; `None` past the end.
    pub const fn get(&self, i: usize) -> Option<(u8, f32)> {
        let Some(at) = i.checked_mul(8) else {
            return None;
        };
        match (u8_at(self.bytes, at), f32_at(self.bytes, at + 4)) {
            (Some(r), Some(c)) => Some((r, c)),
            _ => None,
        }
    }
    /// The terms in order.
    pub fn iter(&self) -> impl Iterator<Item = (u8, f32)> + 'a {
        let bytes = self.bytes;
        (0..bytes.len() / 8)
            .filter_map(move |i| Some((u8_at(bytes, 8 * i)?, f32_at(bytes, 8 * i + 4)?)))
    }
}

/// One instruction: what the decoder returns and what the emitter encodes. `LIN` terms are
/// borrowed in their encoded form ([`Terms`]), so decoding needs no allocation.
#[derive(Debug, Clone, Copy, PartialEq)]
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

/// [`Error::BadProgram`] for the instruction at byte `at` of program `program`.
const fn bad_instr(program: u16, at: usize, what: Rule) -> Error {
    Error::BadProgram {
        program,
        offset: at as u32,
        what,
    }
}

/// `LIN` flag: the instruction draws noise.
pub const LIN_NOISE: u8 = 1;

impl<'a> Instr<'a> {
    /// Decodes the instruction at byte `at` of `code`; returns it and the next offset.
    /// `program` is only used in error messages.
    pub const fn decode(program: u16, code: &'a [u8], at: usize) -> Result<(Self, usize), Error> {
        let Some(op) = u8_at(code, at) else {
            return Err(bad_instr(program, at, Rule::InstrPastEnd));
        };
        let (b1, b2, b3) = match (
            u8_at(code, at + 1),
            u8_at(code, at + 2),
            u8_at(code, at + 3),
        ) {
            (Some(b1), Some(b2), Some(b3)) => (b1, b2, b3),
            _ => return Err(bad_instr(program, at, Rule::InstrTruncated)),
        };
        // The f32 operand at byte `off` of the instruction.
        macro_rules! f {
            ($off:expr) => {
                match f32_at(code, at + $off) {
                    Some(v) => v,
                    None => return Err(bad_instr(program, at, Rule::InstrTruncated)),
                }
            };
        }
        match op {
            opcode::EVAL => {
                let class = match b3 {
                    0 => ClassSel::Caller,
                    1 => ClassSel::Null,
                    _ => return Err(bad_instr(program, at, Rule::EvalClass)),
                };
                let time = f!(4);
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
                    return Err(bad_instr(program, at, Rule::LinFlags));
                }
                let c_z = f!(4);
                let n = b2 as usize;
                let Some(terms) = sub(code, at + 8, 8 * n) else {
                    return Err(bad_instr(program, at, Rule::LinTermsTruncated));
                };
                let noise = if b3 & LIN_NOISE != 0 {
                    Some(c_z)
                } else {
                    if c_z.to_bits() != 0 {
                        return Err(bad_instr(program, at, Rule::NoiseWithoutFlag));
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
                    return Err(bad_instr(program, at, Rule::ClampPadding));
                }
                Ok((
                    Instr::Clamp {
                        reg: b1,
                        lo: f!(4),
                        hi: f!(8),
                    },
                    at + 12,
                ))
            }
            opcode::STEP => {
                if b1 != 0 || b2 != 0 || b3 != 0 {
                    return Err(bad_instr(program, at, Rule::StepPadding));
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

    /// Appends the encoding of this instruction (the emitter's half of the format; the
    /// decoder above is the other half). A `LIN` writes `terms.len()` as its term count and
    /// its terms' bytes as they are.
    #[cfg(feature = "alloc")]
    pub fn encode(&self, out: &mut alloc::vec::Vec<u8>) {
        match *self {
            Instr::Eval {
                dst,
                src,
                class,
                time,
            } => {
                out.extend_from_slice(&[opcode::EVAL, dst, src, class as u8]);
                out.extend_from_slice(&time.to_le_bytes());
            }
            Instr::Lin { dst, noise, terms } => {
                let flags = if noise.is_some() { LIN_NOISE } else { 0 };
                out.extend_from_slice(&[opcode::LIN, dst, terms.len() as u8, flags]);
                out.extend_from_slice(&noise.unwrap_or(0.0).to_le_bytes());
                out.extend_from_slice(terms.bytes);
            }
            Instr::Clamp { reg, lo, hi } => {
                out.extend_from_slice(&[opcode::CLAMP, reg, 0, 0]);
                out.extend_from_slice(&lo.to_le_bytes());
                out.extend_from_slice(&hi.to_le_bytes());
            }
            Instr::Step => out.extend_from_slice(&[opcode::STEP, 0, 0, 0]),
        }
    }
}

/// One program, borrowed from the blob (or from a record checked by [`Program::parse`]).
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

/// The instruction counts of a valid program's code (what its header must declare).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Counts {
    /// `STEP` instructions.
    pub steps: u32,
    /// `EVAL` instructions.
    pub evals: u32,
}

/// Every instruction of `code` with its byte offset, in order; stops after the first decoding
/// error. `program` is only used in error messages. Decoding checks each instruction's
/// encoding, not its operands: [`check_code`] checks those.
pub fn instructions(
    program: u16,
    code: &[u8],
) -> impl Iterator<Item = Result<(usize, Instr<'_>), Error>> + '_ {
    let mut at = Some(0usize);
    core::iter::from_fn(move || {
        let here = at?;
        if here >= code.len() {
            return None;
        }
        match Instr::decode(program, code, here) {
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

/// Checks a program's instruction bytes on their own, as the blob's parse checks the code of
/// each program: every instruction decodes, every register operand is `< regs`, every number
/// is finite, `CLAMP` has `lo <= hi`, an `EVAL` of the null class needs `has_null_class`
/// ([`Error::NoNullClass`]), and the code is non-empty and ends with `STEP`. Returns the
/// instruction counts (the header's `STEPS` and `EVALS` must equal them). `program` is only
/// used in error messages. Never panics, allocates nothing.
pub const fn check_code(
    program: u16,
    code: &[u8],
    regs: u8,
    has_null_class: bool,
) -> Result<Counts, Error> {
    let (mut steps, mut evals) = (0u32, 0u32);
    let mut at = 0;
    // An empty program is rejected too: it would "sample" zeros.
    let mut last_was_step = false;
    while at < code.len() {
        let (instr, next) = tri!(Instr::decode(program, code, at));
        last_was_step = false;
        let broken = match instr {
            Instr::Eval {
                dst,
                src,
                class,
                time,
            } => {
                if dst >= regs || src >= regs {
                    Some(Rule::EvalRegister)
                } else if !time.is_finite() {
                    Some(Rule::EvalTimeNotFinite)
                } else if matches!(class, ClassSel::Null) && !has_null_class {
                    return Err(Error::NoNullClass);
                } else {
                    evals += 1;
                    None
                }
            }
            Instr::Lin { dst, noise, terms } => {
                if dst >= regs {
                    Some(Rule::LinDestination)
                } else if terms.len() > MAX_TERMS as usize {
                    Some(Rule::LinTooManyTerms)
                } else if let Some(rule) = check_terms(terms, regs) {
                    Some(rule)
                } else if matches!(noise, Some(c) if !c.is_finite()) {
                    Some(Rule::LinNoise)
                } else {
                    None
                }
            }
            Instr::Clamp { reg, lo, hi } => {
                if reg >= regs {
                    Some(Rule::ClampRegister)
                } else if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
                    Some(Rule::ClampBounds)
                } else {
                    None
                }
            }
            Instr::Step => {
                steps += 1;
                last_was_step = true;
                None
            }
        };
        if let Some(what) = broken {
            return Err(bad_instr(program, at, what));
        }
        at = next;
    }
    if !last_was_step {
        return Err(Error::BadProgram {
            program,
            offset: 0,
            what: Rule::CodeEnd,
        });
    }
    Ok(Counts { steps, evals })
}

/// The first broken rule of a `LIN`'s terms, if any: three zero padding bytes per term
/// ([`Rule::LinTermPadding`], checked for every term first), then a register `< regs` and a
/// finite coefficient ([`Rule::LinTerm`]).
const fn check_terms(terms: Terms<'_>, regs: u8) -> Option<Rule> {
    let mut at = 0;
    // A term's first word is its register and the three padding bytes (little-endian).
    while let Some(word) = u32_at(terms.bytes, at) {
        if word >> 8 != 0 {
            return Some(Rule::LinTermPadding);
        }
        at += 8;
    }
    let mut i = 0;
    while let Some((r, c)) = terms.get(i) {
        if r >= regs || !c.is_finite() {
            return Some(Rule::LinTerm);
        }
        i += 1;
    }
    None
}

/// `a == b`, bytewise (`PartialEq` is not `const`).
const fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while let Some(x) = u8_at(a, i) {
        if !matches!(u8_at(b, i), Some(y) if y == x) {
            return false;
        }
        i += 1;
    }
    true
}

impl<'a> Program<'a> {
    /// Parses and validates one program record on its own, without a blob: the 28-byte header
    /// followed by exactly `CODE_LEN` bytes of code, as stored in the PROGRAMS section. It is
    /// checked exactly as the blob's parse checks each of its programs (name, registers,
    /// output register, flags, every instruction, the declared counts); `has_null_class` says
    /// whether `EVAL … null` is allowed and `index` names the program in errors. Bytes after
    /// the code are [`Error::Malformed`]. Never panics, allocates nothing.
    pub const fn parse(record: &'a [u8], index: u16, has_null_class: bool) -> Result<Self, Error> {
        let (program, end) = tri!(read_program(record, index, 0));
        if end != record.len() {
            return Err(Error::Malformed {
                section: Section::Programs,
                what: Rule::BytesAfterCode,
            });
        }
        tri!(program.validate(has_null_class));
        Ok(program)
    }

    /// The program's name (ASCII).
    pub fn name(&self) -> &'a str {
        core::str::from_utf8(self.name_bytes()).unwrap_or("")
    }

    /// The name's bytes before its NUL padding. The parser and [`Programs::find`] compare
    /// these, so a firmware that only looks programs up links no UTF-8 validation (300 bytes).
    const fn name_bytes(&self) -> &'a [u8] {
        let mut end = 0;
        while matches!(u8_at(self.name, end), Some(c) if c != 0) {
            end += 1;
        }
        match self.name.split_at_checked(end) {
            Some((name, _)) => name,
            None => &[],
        }
    }

    /// Decodes the instruction at byte `at`.
    pub const fn instr(&self, at: usize) -> Result<(Instr<'a>, usize), Error> {
        Instr::decode(self.index, self.code, at)
    }

    /// Every instruction with its byte offset, in order; stops after the first decoding error.
    pub fn instructions(&self) -> impl Iterator<Item = Result<(usize, Instr<'a>), Error>> + 'a {
        instructions(self.index, self.code)
    }

    /// Checks the header fields, every instruction ([`check_code`]) and the header counts.
    /// `has_null_class` says whether the model has a null class.
    const fn validate(&self, has_null_class: bool) -> Result<(), Error> {
        // Header rules are reported at offset 0.
        let text = self.name_bytes();
        let mut i = text.len();
        // Padding after the first NUL: all NUL.
        while let Some(c) = u8_at(self.name, i) {
            if c != 0 {
                return Err(bad_instr(self.index, 0, Rule::NamePadding));
            }
            i += 1;
        }
        if check_name(text).is_err() {
            return Err(bad_instr(self.index, 0, Rule::NamePadding));
        }
        if self.regs == 0 || self.regs > MAX_REGS {
            return Err(bad_instr(self.index, 0, Rule::RegisterCount));
        }
        if self.out_reg >= self.regs {
            return Err(bad_instr(self.index, 0, Rule::OutputRegister));
        }
        let counts = tri!(check_code(self.index, self.code, self.regs, has_null_class));
        if counts.steps != self.steps as u32 || counts.evals != self.evals as u32 {
            return Err(bad_instr(self.index, 0, Rule::StepCount));
        }
        Ok(())
    }
}

/// The program whose header starts at byte `at` of `b` and the offset after its code.
const fn read_program(b: &[u8], index: u16, at: usize) -> Result<(Program<'_>, usize), Error> {
    let (regs, code_len, next) = tri!(program_header(b, index, at));
    // In bounds: `program_header` checked `at + CODE + code_len <= b.len()`.
    let program = Program {
        index,
        name: or_empty(sub(b, at + field::NAME.start, NAME_LEN)),
        regs,
        out_reg: or(u8_at(b, at + field::OUT_REG), 0xFF),
        steps: or(u16_at(b, at + field::STEPS.start), 0),
        evals: or(u16_at(b, at + field::EVALS.start), 0),
        code: or_empty(sub(b, at + field::CODE, code_len)),
    };
    Ok((program, next))
}

/// The slice, or an empty one.
const fn or_empty(b: Option<&[u8]>) -> &[u8] {
    or(b, &[])
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
        what: Rule::ProgramHeader,
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
            what: Rule::ProgramFlags,
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
            what: Rule::ProgramCount,
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
                what: Rule::RegisterCount,
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
            what: Rule::BytesAfterPrograms,
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
        Ok(_) => or(u32_at(b, field::COUNT.start), 0),
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
                let stored = or(u8_at(b, at + field::NAME.start + j), 0);
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
    pub const fn parse(b: &'a [u8], has_null_class: bool) -> Result<Self, Error> {
        let max_regs = tri!(max_regs(b));
        let count = match u32_at(b, field::COUNT.start) {
            Some(c) => c as u16,
            None => 0,
        };
        let p = Programs {
            bytes: b,
            count,
            max_regs,
        };
        let mut at = field::PROGRAMS;
        let mut i = 0;
        while i < count {
            let (prog, next) = tri!(read_program(b, i, at));
            tri!(prog.validate(has_null_class));
            // Names are unique: compare with every earlier program's.
            let mut before = field::PROGRAMS;
            let mut j = 0;
            while j < i {
                let (q, after) = tri!(read_program(b, j, before));
                if same_bytes(q.name_bytes(), prog.name_bytes()) {
                    return Err(Error::BadProgram {
                        program: prog.index,
                        offset: 0,
                        what: Rule::DuplicateName,
                    });
                }
                before = after;
                j += 1;
            }
            at = next;
            i += 1;
        }
        Ok(p)
    }

    /// Number of programs.
    pub const fn count(&self) -> u16 {
        self.count
    }

    /// Largest register count over all programs.
    pub const fn max_regs(&self) -> u8 {
        self.max_regs
    }

    /// The programs in order.
    pub fn iter(&self) -> impl Iterator<Item = Result<Program<'a>, Error>> + 'a {
        let b = self.bytes;
        let count = self.count;
        let mut at = field::PROGRAMS;
        (0..count).map(move |i| {
            let (prog, next) = read_program(b, i, at)?;
            at = next;
            Ok(prog)
        })
    }

    /// Program number `i`.
    pub const fn get(&self, i: u16) -> Result<Program<'a>, Error> {
        let mut at = field::PROGRAMS;
        let mut j = 0;
        while j < self.count {
            let (prog, next) = tri!(read_program(self.bytes, j, at));
            if j == i {
                return Ok(prog);
            }
            at = next;
            j += 1;
        }
        Err(Error::ProgramNotFound)
    }

    /// The program called `name`. `const`, so a firmware whose blob is linked in can look its
    /// program up at compile time (a missing name is then a build error).
    pub const fn find(&self, name: &str) -> Result<Program<'a>, Error> {
        let mut at = field::PROGRAMS;
        let mut j = 0;
        while j < self.count {
            let (prog, next) = tri!(read_program(self.bytes, j, at));
            if same_bytes(prog.name_bytes(), name.as_bytes()) {
                return Ok(prog);
            }
            at = next;
            j += 1;
        }
        Err(Error::ProgramNotFound)
    }
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use alloc::vec::Vec;

    use super::*;
    use crate::blob::ProgramBuilder;

    /// `LIN r0 = 1·z; STEP; EVAL r1 <- r0 (null) @ 5; LIN r0 = 0.5·r0 − 2·r1; CLAMP r0; STEP`.
    fn sample_program() -> ProgramBuilder {
        let mut p = ProgramBuilder::new("p1", 2);
        p.lin(0, &[], Some(1.0)).step();
        p.eval(1, 0, ClassSel::Null, 5.0)
            .lin(0, &[(0, 0.5), (1, -2.0)], None)
            .clamp(0, -1.0, 1.0)
            .step();
        p
    }

    #[test]
    fn names_follow_one_rule() {
        for ok in [&b"a"[..], b"ddim10-cfg", b"0123456789abcdef", b"!~"] {
            assert_eq!(check_name(ok), Ok(()), "{ok:?}");
        }
        for bad in [
            &b""[..],
            b"a b",
            b"0123456789abcdefg",
            b"a\0",
            b"\x7f",
            b"\xc3\xa9",
        ] {
            assert!(
                matches!(
                    check_name(bad),
                    Err(Error::BadProgram {
                        what: NAME_RULE,
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_record_parses_without_a_blob_and_round_trips() {
        let record = sample_program().to_bytes();
        let p = Program::parse(&record, 3, true).unwrap();
        assert_eq!((p.name(), p.index, p.regs, p.out_reg), ("p1", 3, 2, 0));
        assert_eq!((p.steps, p.evals), (2, 1));
        let instrs: Vec<Instr<'_>> = p.instructions().map(|i| i.unwrap().1).collect();
        let terms = Terms::encode(&[(0, 0.5), (1, -2.0)]);
        assert_eq!(
            instrs,
            [
                Instr::Lin {
                    dst: 0,
                    noise: Some(1.0),
                    terms: Terms::from_bytes(&[]),
                },
                Instr::Step,
                Instr::Eval {
                    dst: 1,
                    src: 0,
                    class: ClassSel::Null,
                    time: 5.0,
                },
                Instr::Lin {
                    dst: 0,
                    noise: None,
                    terms: Terms::from_bytes(&terms),
                },
                Instr::Clamp {
                    reg: 0,
                    lo: -1.0,
                    hi: 1.0,
                },
                Instr::Step,
            ]
        );
        // Encoding the decoded instructions gives the code back, byte for byte.
        let mut code = Vec::new();
        instrs.iter().for_each(|i| i.encode(&mut code));
        assert_eq!(code, p.code);
        assert_eq!(
            check_code(3, &code, 2, true),
            Ok(Counts { steps: 2, evals: 1 })
        );
    }

    #[test]
    fn bad_records_and_code_are_typed_errors() {
        let record = sample_program().to_bytes();
        // No null class: the null EVAL is refused.
        assert_eq!(
            Program::parse(&record, 0, false).err(),
            Some(Error::NoNullClass)
        );
        // Trailing bytes, truncation at every length.
        let mut long = record.clone();
        long.extend_from_slice(&[0; 4]);
        assert!(matches!(
            Program::parse(&long, 0, true),
            Err(Error::Malformed { .. })
        ));
        for n in 0..record.len() {
            assert!(Program::parse(&record[..n], 0, true).is_err(), "{n}");
        }
        // Every single-byte change either parses or gives an error (never a panic).
        for at in 0..record.len() {
            for v in [0u8, 1, 2, 3, 4, 5, 0x7F, 0x80, 0xFF] {
                let mut r = record.clone();
                r[at] = v;
                let _ = Program::parse(&r, 0, true);
            }
        }
        // A register out of range, an empty program.
        let code = &record[field::CODE..];
        assert!(matches!(
            check_code(0, code, 1, true),
            Err(Error::BadProgram { .. })
        ));
        assert!(matches!(
            check_code(0, &[], 2, true),
            Err(Error::BadProgram { offset: 0, .. })
        ));
        assert!(matches!(
            check_code(0, &[9, 0, 0, 0], 2, true),
            Err(Error::UnknownInstruction { opcode: 9, .. })
        ));
    }
}
