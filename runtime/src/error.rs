//! The runtime's one error type.
//!
//! Every fallible operation of the runtime — parsing a blob, planning the arena, running a
//! sampler program — returns [`Error`]. It is a small `Copy` enum so firmware can log it, store
//! it or compare it without an allocator. Variants name the place of the problem (section, op,
//! tensor, program, byte offset) so a corrupt blob can be diagnosed from the message alone.

use core::fmt;

use microdiff_kernels::KernelError;

/// Which section of a blob an error refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Section {
    /// The fixed header and the section table.
    Header,
    /// Metadata: data shape, normalisation, objective, classes.
    Meta,
    /// The network graph.
    Graph,
    /// The tensor table.
    Tensors,
    /// Raw tensor bytes.
    Data,
    /// The training schedule table.
    Schedule,
    /// Sampler programs.
    Programs,
}

impl Section {
    /// Lower-case name used in messages and docs.
    pub const fn name(self) -> &'static str {
        match self {
            Section::Header => "header",
            Section::Meta => "meta",
            Section::Graph => "graph",
            Section::Tensors => "tensors",
            Section::Data => "data",
            Section::Schedule => "schedule",
            Section::Programs => "programs",
        }
    }
}

/// Everything that can go wrong in the runtime.
///
/// Parsing never panics: any byte string yields `Ok` or one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// The input ends before a structure it declares.
    Truncated {
        /// Section being read.
        section: Section,
        /// Bytes the structure needs.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// The first four bytes are not `MDFB`.
    BadMagic,
    /// A format version this runtime does not read.
    UnsupportedVersion {
        /// Version found in the header.
        found: u16,
    },
    /// The header's total length disagrees with the buffer.
    LengthMismatch {
        /// Length stated in the header.
        declared: u32,
        /// Length of the buffer given.
        actual: usize,
    },
    /// The CRC-32 over the blob does not match the stored one.
    ChecksumMismatch {
        /// CRC stored in the header.
        stored: u32,
        /// CRC computed over the bytes.
        computed: u32,
    },
    /// A section marked required has a kind this runtime does not know.
    UnknownSection {
        /// The section kind code.
        kind: u16,
    },
    /// A required section is absent.
    MissingSection {
        /// Which one.
        section: Section,
    },
    /// A section kind occurs twice.
    DuplicateSection {
        /// Which one.
        section: Section,
    },
    /// A structural rule of a section is broken; `what` says which.
    Malformed {
        /// Where.
        section: Section,
        /// The rule, in words.
        what: &'static str,
    },
    /// Unknown training objective code in the metadata.
    UnknownObjective {
        /// The code found.
        code: u8,
    },
    /// Unknown prediction-type code in the metadata.
    UnknownPrediction {
        /// The code found.
        code: u8,
    },
    /// Unknown tensor element type.
    UnknownDtype {
        /// Tensor index.
        tensor: u16,
        /// The code found.
        code: u8,
    },
    /// A tensor's bytes or scales lie outside the data section, or its shape is unusable.
    BadTensor {
        /// Tensor index.
        tensor: u16,
        /// The rule broken, in words.
        what: &'static str,
    },
    /// An op code this runtime does not execute.
    UnknownOp {
        /// Index of the op in the graph.
        op: u16,
        /// The code found.
        opcode: u8,
    },
    /// An activation code this runtime does not know.
    UnknownActivation {
        /// Index of the op in the graph.
        op: u16,
        /// The code found.
        code: u8,
    },
    /// An op refers to a value, tensor or parameter it may not use; `what` says which.
    BadOp {
        /// Index of the op in the graph.
        op: u16,
        /// The rule broken, in words.
        what: &'static str,
    },
    /// An op's lengths disagree with its operands or tensors.
    ShapeMismatch {
        /// Index of the op in the graph.
        op: u16,
        /// Length the op needs.
        expected: u32,
        /// Length it was given.
        found: u32,
    },
    /// More network values than the planner's fixed capacity.
    TooManyValues {
        /// Values in the graph.
        count: u16,
        /// [`crate::blob::graph::MAX_VALUES`].
        max: u16,
    },
    /// An instruction code this runtime does not execute.
    UnknownInstruction {
        /// Program index.
        program: u16,
        /// Byte offset of the instruction in the program's code.
        offset: u32,
        /// The code found.
        opcode: u8,
    },
    /// A sampler program breaks a structural rule; `what` says which.
    BadProgram {
        /// Program index.
        program: u16,
        /// Byte offset in the program's code (0 for header problems).
        offset: u32,
        /// The rule broken, in words.
        what: &'static str,
    },
    /// No program of that name or index.
    ProgramNotFound,
    /// The class asked for is not one the model knows.
    ClassOutOfRange {
        /// The class asked for.
        class: u16,
        /// Number of classes of the model.
        classes: u16,
    },
    /// The program evaluates the null class but the model has none.
    NoNullClass,
    /// The arena cannot hold the plan.
    ArenaTooSmall {
        /// Bytes needed (including alignment slack for a misaligned buffer).
        needed: usize,
        /// Bytes provided.
        provided: usize,
    },
    /// A caller's output buffer has the wrong length.
    OutputLength {
        /// Elements the model produces.
        expected: usize,
        /// Elements the buffer holds.
        provided: usize,
    },
    /// A step produced NaN or infinity.
    NonFinite {
        /// Sampler step (0-based) being executed.
        step: u16,
        /// Byte offset of the instruction that produced it.
        pc: u32,
    },
    /// The finished sample is finite in model space but overflows to ±inf when mapped back to
    /// data units (`x · scale + offset` from the metadata).
    OutputNotFinite {
        /// The first element that overflows.
        element: u32,
    },
    /// A numeric kernel rejected its arguments (cannot happen for a validated blob; kept so a
    /// broken invariant surfaces as an error rather than a panic).
    Kernel(KernelError),
}

impl From<KernelError> for Error {
    fn from(e: KernelError) -> Self {
        Error::Kernel(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Truncated {
                section,
                needed,
                available,
            } => write!(
                f,
                "blob truncated in {} section: needs {needed} bytes, {available} available",
                section.name()
            ),
            Error::BadMagic => f.write_str("not a microdiff blob (magic is not \"MDFB\")"),
            Error::UnsupportedVersion { found } => {
                write!(
                    f,
                    "blob format version {found} is not supported (this runtime reads 1)"
                )
            }
            Error::LengthMismatch { declared, actual } => write!(
                f,
                "blob header declares {declared} bytes but the buffer holds {actual}"
            ),
            Error::ChecksumMismatch { stored, computed } => write!(
                f,
                "blob checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ),
            Error::UnknownSection { kind } => {
                write!(
                    f,
                    "blob has required section kind {kind} that this runtime does not know"
                )
            }
            Error::MissingSection { section } => {
                write!(f, "blob has no {} section", section.name())
            }
            Error::DuplicateSection { section } => {
                write!(f, "blob has more than one {} section", section.name())
            }
            Error::Malformed { section, what } => {
                write!(f, "malformed {} section: {what}", section.name())
            }
            Error::UnknownObjective { code } => write!(f, "unknown objective code {code}"),
            Error::UnknownPrediction { code } => write!(f, "unknown prediction type code {code}"),
            Error::UnknownDtype { tensor, code } => {
                write!(f, "tensor {tensor}: unknown element type code {code}")
            }
            Error::BadTensor { tensor, what } => write!(f, "tensor {tensor}: {what}"),
            Error::UnknownOp { op, opcode } => {
                write!(f, "graph op {op}: unknown op code {opcode}")
            }
            Error::UnknownActivation { op, code } => {
                write!(f, "graph op {op}: unknown activation code {code}")
            }
            Error::BadOp { op, what } => write!(f, "graph op {op}: {what}"),
            Error::ShapeMismatch {
                op,
                expected,
                found,
            } => write!(
                f,
                "graph op {op}: length mismatch, expected {expected}, found {found}"
            ),
            Error::TooManyValues { count, max } => write!(
                f,
                "graph has {count} values; this runtime plans at most {max}"
            ),
            Error::UnknownInstruction {
                program,
                offset,
                opcode,
            } => write!(
                f,
                "program {program}, byte {offset}: unknown instruction code {opcode}"
            ),
            Error::BadProgram {
                program,
                offset,
                what,
            } => write!(f, "program {program}, byte {offset}: {what}"),
            Error::ProgramNotFound => f.write_str("no sampler program of that name or index"),
            Error::ClassOutOfRange { class, classes } => write!(
                f,
                "class {class} out of range: the model has {classes} classes"
            ),
            Error::NoNullClass => {
                f.write_str("program asks for the null class but the model has none")
            }
            Error::ArenaTooSmall { needed, provided } => write!(
                f,
                "arena too small: needs {needed} bytes, {provided} provided"
            ),
            Error::OutputLength { expected, provided } => write!(
                f,
                "output buffer holds {provided} elements, the model produces {expected}"
            ),
            Error::NonFinite { step, pc } => write!(
                f,
                "non-finite value produced at step {step} (instruction at byte {pc})"
            ),
            Error::OutputNotFinite { element } => write!(
                f,
                "sample element {element} overflows when mapped back to data units"
            ),
            Error::Kernel(e) => write!(f, "kernel error: {e}"),
        }
    }
}

impl core::error::Error for Error {}
