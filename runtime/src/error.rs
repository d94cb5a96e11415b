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

/// Defines [`Rule`] and its sentences in one list, so a rule and its text cannot drift apart.
macro_rules! rules {
    ($($name:ident = $text:literal,)*) => {
        /// Which rule of the blob format a blob breaks, or which runtime invariant failed: the
        /// `what` of [`Error::Malformed`], [`Error::BadTensor`], [`Error::BadOp`] and
        /// [`Error::BadProgram`].
        ///
        /// A one-byte code rather than a sentence, so that firmware which never prints an error
        /// does not carry ≈ 4 KB of sentences in flash (docs/integer.md §7); the sentence is
        /// [`Rule::text`] (also `Display`), and defmt prints the variant name from its own
        /// table, which is not loaded into flash. Each variant's doc is its sentence.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        #[non_exhaustive]
        pub enum Rule {
            $(#[doc = $text] $name,)*
        }

        impl Rule {
            /// Every rule, in declaration order (for tests and documentation tools).
            pub const ALL: &'static [Rule] = &[$(Rule::$name,)*];

            /// The rule as a sentence, as the error messages print it.
            pub const fn text(self) -> &'static str {
                match self {
                    $(Rule::$name => $text,)*
                }
            }
        }
    };
}

rules! {
    // Header and section table (`blob::locate_sections`).
    HeaderLength = "header length is not 32",
    HeaderFlags = "header flags must be 0 in version 1",
    HeaderReserved = "reserved header bytes must be 0",
    TooManySections = "more than 16 sections",
    SectionFlags = "unknown section flag bits",
    SectionNotPacked = "section is not packed right after the previous one (at a multiple of 4)",
    SectionPastEnd = "section extends past the end of the blob",
    TrailingBytes = "bytes after the last section (beyond its padding to 4)",
    // META.
    Rank = "rank must be 1..=4",
    ZeroDimension = "shape dimension is 0",
    DimensionPastRank = "shape dimensions past the rank must be 1",
    DataTooLong = "data length exceeds 2^24 elements",
    MetaReserved = "reserved byte must be 0",
    NullClassUnconditional = "a null class needs a class-conditional model",
    NormLength = "normalisation length must be 0, 1 or the data length",
    NormSectionLength = "section length disagrees with the normalisation length",
    NormNotFinite = "normalisation scale or offset is not finite or beyond ±2^64",
    // SCHEDULE.
    ScheduleLength = "section length disagrees with the row count",
    ScheduleRowTruncated = "row truncated",
    ScheduleNotFinite = "schedule value is not finite",
    // TENSORS and DATA.
    TooManyTensors = "more than 65534 tensors",
    TensorSectionLength = "section length disagrees with the tensor count",
    TensorIndex = "index out of range",
    RecordTruncated = "record truncated",
    DataOutside = "data outside the data section",
    ScalesOutside = "scales outside the data section",
    TensorReserved = "reserved bytes must be 0",
    ZeroRowsOrCols = "zero rows or columns",
    SizeOverflows = "size overflows",
    DataMisaligned = "data offset is not a multiple of 4",
    ScalesMisaligned = "scales offset is not a multiple of 4",
    ScalesNotInt8 = "only int8 tensors have scales",
    NotFinite = "a weight or scale is NaN or infinite, or a scale is negative",
    // GRAPH structure (`graph::structure`).
    OpRecordLength = "op record length is not 20",
    ValueCount = "value count must be op count + 1",
    GraphSectionLength = "section length disagrees with the op count",
    NoOutputValue = "output value does not exist",
    OpDefinesValue = "op k must define value k + 1",
    MoreValuesThanMax = "more values than MAX_VALUES",
    ValueLength = "value length must be 1..=2^24",
    InputAUndefined = "input a is not defined before the op",
    InputAUnused = "unused input a must be 0xFFFF",
    InputBUndefined = "input b is not defined before the op",
    InputBUnused = "unused input b must be 0xFFFF",
    InputDtype = "an input has the wrong element type (f32 where int8 is read, or int8 where f32 is)",
    QAddAliased = "QADD reads the same value twice (it runs in place)",
    QLinearTooWide = "QLINEAR input longer than 65 536",
    QLayerNormTooLong = "QLAYER_NORM input longer than 4096",
    OutputInt8 = "the output value is int8 (end the integer path with DEQUANTIZE)",
    OutputLength = "output length differs from the data length",
    UnusedFields = "unused fields must be 0xFFFF / 0",
    FloatOpWithoutFeature = "a float-network op in a runtime built without the float-net feature (an integer-only build runs w8a8 blobs: microdiff export --dtype w8a8)",
    // GRAPH ops against their tensors (`Graph::parse`).
    TimesDtype = "time-table times must be f32 (K, 1)",
    TimesOrder = "time-table times must be finite, strictly increasing bit patterns",
    LinearWeights = "LINEAR weights must be f32, f16 or i8",
    Bias = "bias must be an f32 (len, 1) tensor",
    LayerNormEps = "layer-norm epsilon must be finite and > 0",
    Gamma = "gamma must be an f32 (len, 1) tensor",
    Beta = "beta must be an f32 (len, 1) tensor",
    TimeEmbedWithoutFeature = "TIME_EMBED needs the runtime's time-embed feature (or export with --time-table always)",
    TimeEmbedOdd = "time-embedding length must be even",
    SliceRange = "SLICE takes elements past the end of its input (PARAM start + LEN > input length)",
    DrawRange = "NOISE / BERNOULLI elements past 2^32 (PARAM first element + LEN)",
    QBernoulliNotBuilt = "QBERNOULLI needs the runtime's int-bernoulli feature (a full-integer RBM)",
    TimeEmbedPeriod = "time-embedding max period must be finite and > 0",
    ClassEmbedUnconditional = "class embedding in an unconditional model",
    ClassEmbedTable = "CLASS_EMBED table must be f32, f16 or i8",
    ClassTableRows = "class table has fewer rows than class ids",
    TimeTableRows = "time-table rows must be f32 (K, len)",
    QuantizeScales = "QUANTIZE scales must be f32 (K, 1)",
    QuantizeOneScale = "QUANTIZE without times takes one scale",
    QuantizeScaleValue = "QUANTIZE scales must be finite and > 0",
    DequantizeScale = "DEQUANTIZE scale must be finite and > 0",
    QLinearLayout = "QLINEAR PARAM byte 2 (the weight layout) must be 0 or 1",
    QLinearByte3 = "QLINEAR PARAM byte 3 must be 0",
    QLinearTiles = "QLINEAR weights in the tiled layout need the runtime's w8a8-tiles feature (or repack the blob: example repack_pairs)",
    QLinearWeights = "QLINEAR weights must be q8 (pad4(len), pad4(len(a)))",
    QLinearParams = "QLINEAR params must be i32 (len, 3)",
    QLinearRequant = "QLINEAR multiplier must be 0 or in [2^30, 2^31), shift in -31..=30",
    QLutTable = "QLUT table must be q8 (256, 1)",
    QAddConsts = "QADD constants must be i32 (4, 1)",
    QAddRange = "QADD needs |c| < 2^29, |ma|, |mb| < 2^21, s in 0..=31",
    QLayerNormChannels = "QLAYER_NORM channels must be i32 (len, 2)",
    QLayerNormAffine = "QLAYER_NORM needs |gamma| <= 127, |beta| < 2^24",
    QLayerNormConsts = "QLAYER_NORM constants must be i32 (4, 1)",
    QLayerNormRequant = "QLAYER_NORM constants need e >= 1, a valid multiplier and shift, y_zp in -128..=127",
    QGatherTable = "QGATHER table must be q8 (K, len)",
    QGatherKey = "QGATHER key (AUX) must be 0 (time) or 1 (class)",
    ClassTableUnconditional = "class table in an unconditional model",
    // PROGRAMS.
    ProgramName = "name must be 1 to 16 printable ASCII characters without spaces",
    InstrPastEnd = "instruction past the end of the code",
    InstrTruncated = "instruction truncated",
    EvalClass = "EVAL class selector must be 0 or 1",
    LinFlags = "unknown LIN flag bits",
    LinTermsTruncated = "LIN terms truncated",
    NoiseWithoutFlag = "noise coefficient without the noise flag",
    ClampPadding = "CLAMP padding must be 0",
    StepPadding = "STEP padding must be 0",
    EvalRegister = "EVAL register out of range",
    EvalTimeNotFinite = "EVAL time is not finite",
    LinDestination = "LIN destination out of range",
    LinTooManyTerms = "LIN has more than 8 terms",
    LinTermPadding = "LIN term padding must be 0",
    LinTerm = "LIN term register out of range or coefficient not finite",
    LinNoise = "LIN noise coefficient is not finite",
    ClampRegister = "CLAMP register out of range",
    ClampBounds = "CLAMP bounds must be finite with lo <= hi",
    CodeEnd = "code must be non-empty and end with STEP",
    BytesAfterCode = "bytes after the program's code",
    NamePadding = "name must be printable ASCII without spaces, NUL-padded",
    RegisterCount = "register count must be 1..=8",
    OutputRegister = "output register out of range",
    StepCount = "step or evaluation count disagrees with the code",
    ProgramHeader = "program header truncated or code length not a multiple of 4",
    ProgramFlags = "program flags must be 0",
    ProgramCount = "program count must be 1..=64",
    BytesAfterPrograms = "bytes after the last program",
    DuplicateName = "two programs have the same name",
    EvalTimeNotInTable = "EVAL time is not in the graph's time table",
    // Planning and execution: cannot happen for a blob `Model::parse` accepted.
    ArenaOver4GiB = "arena larger than 4 GiB",
    ValueOutsideArena = "value outside the arena",
    BadRange = "bad range",
    ValuesOverlap = "planned values overlap",
    CopyLengths = "copy between ranges of different lengths",
    AddLengths = "ADD over values of different lengths",
    TimeEmbedNotBuilt = "TIME_EMBED without the time-embed feature",
    FloatOpNotBuilt = "a float op without the float-net feature",
    TilesNotBuilt = "tiled QLINEAR weights without the w8a8-tiles feature",
    TimeRowMissing = "EVAL time not in the time table",
    NotTimeOnly = "not a value computed from the time alone",
    TimeTableOutside = "time table outside the shared arena",
    OpNotPrepared = "op not prepared",
    IntegerOpInLanes = "integer or noise-drawing op in the lane executor",
    IntegerMatrix = "integer matrix",
    WeightSize = "weight size",
    KernelShape = "a kernel refused an argument's length",
    KernelIndex = "a kernel refused an index",
    KernelOverflow = "a kernel's size arithmetic overflows",
    KernelArgument = "a kernel refused an argument's value",
    Invariant = "a check of a validated blob failed",
    // The blob builder (`blob::emit`, host only).
    ValuesShape = "values do not match rows * cols",
    BuilderTooManyTensors = "too many tensors",
    IntegerTensorBuilder = "integer tensors are added with tensor_q8 / tensor_i32",
    BuilderMeta = "shape rank > 4 or scale/offset lengths differ",
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
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
        /// The rule broken.
        what: Rule,
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
        /// The rule broken.
        what: Rule,
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
        /// The rule broken.
        what: Rule,
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
        /// The rule broken.
        what: Rule,
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

/// A failed check in code that runs an already validated blob (the network executor): one
/// byte, so a `?` there is a compare and a branch instead of a move of the 20-byte [`Error`]
/// (2.1 KB of the integer-only M4F runtime's flash, docs/integer.md §7). It cannot happen for a
/// blob `Model::parse` accepted; callers turn it into [`Error::Malformed`] in the graph
/// section, naming the check. (A kernel's refusal keeps only its kind.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fault(pub(crate) Rule);

impl From<Fault> for Error {
    fn from(Fault(what): Fault) -> Self {
        Error::Malformed {
            section: Section::Graph,
            what,
        }
    }
}

impl From<KernelError> for Fault {
    fn from(e: KernelError) -> Self {
        Fault(match e {
            KernelError::Shape { .. } => Rule::KernelShape,
            KernelError::OutOfRange { .. } => Rule::KernelIndex,
            KernelError::Overflow { .. } => Rule::KernelOverflow,
            _ => Rule::KernelArgument,
        })
    }
}

impl From<Error> for Fault {
    /// A validated accessor's error (it names no more than "this cannot happen" here).
    fn from(_: Error) -> Self {
        Fault(Rule::Invariant)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every rule has its own non-empty sentence, so a message names one rule.
    #[test]
    fn rule_sentences_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for r in Rule::ALL {
            let t = r.text();
            assert!(!t.is_empty() && t.trim() == t, "{r:?}: {t:?}");
            assert!(seen.insert(t), "{r:?} repeats {t:?}");
            assert_eq!(std::format!("{r}"), t);
        }
        assert!(Rule::ALL.len() <= 256, "a rule must stay one byte");
    }

    /// Messages read as before the rules became codes.
    #[test]
    fn messages_print_the_sentence() {
        let e = Error::BadOp {
            op: 3,
            what: Rule::QLutTable,
        };
        assert_eq!(
            std::format!("{e}"),
            "graph op 3: QLUT table must be q8 (256, 1)"
        );
    }

    /// The executor's one-byte faults become graph errors naming the check; a kernel's refusal
    /// keeps its kind.
    #[test]
    fn faults_become_graph_errors() {
        let e: Error = Fault(Rule::ValuesOverlap).into();
        assert_eq!(
            e,
            Error::Malformed {
                section: Section::Graph,
                what: Rule::ValuesOverlap
            }
        );
        let shape = KernelError::Shape {
            arg: "y",
            len: 3,
            expected: 4,
        };
        assert_eq!(Fault::from(shape), Fault(Rule::KernelShape));
        let range = KernelError::OutOfRange {
            arg: "row",
            index: 9,
            len: 2,
        };
        assert_eq!(Fault::from(range), Fault(Rule::KernelIndex));
        assert_eq!(Fault::from(Error::BadMagic), Fault(Rule::Invariant));
    }

    /// Every sentence docs/blob-format.md quotes as the `what` of an error is a rule's (a
    /// quote ending in "…" is a prefix), so the format doc cannot drift from the codes.
    #[test]
    fn rules_quoted_in_the_format_doc_exist() {
        let doc = include_str!("../../docs/blob-format.md");
        let mut quoted = 0;
        for kind in ["`Malformed {", "`BadTensor {", "`BadOp {", "`BadProgram {"] {
            for (at, _) in doc.match_indices(kind) {
                let rest = &doc[at + 1..];
                let Some(end) = rest.find('`') else { continue };
                let Some((_, q)) = rest[..end].split_once('"') else {
                    continue;
                };
                let Some((q, _)) = q.split_once('"') else {
                    continue;
                };
                // Prose wraps a long quote over lines.
                let q = q.split_whitespace().collect::<std::vec::Vec<_>>().join(" ");
                let hit = match q.strip_suffix(" …") {
                    Some(prefix) => Rule::ALL.iter().any(|r| r.text().starts_with(prefix)),
                    None => Rule::ALL.iter().any(|r| r.text() == q),
                };
                assert!(hit, "docs/blob-format.md quotes {q:?}, which no Rule says");
                quoted += 1;
            }
        }
        assert!(quoted > 50, "found only {quoted} quoted rules");
    }
}
