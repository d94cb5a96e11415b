//! The op table: one row per graph opcode with everything the format says about that op's
//! record — which operands it reads, which record fields it uses, how its output length follows
//! from its inputs, and whether the planner may write its output over its first input.
//!
//! The structure check ([`graph::structure`](super::graph::structure), also run by the `const`
//! planner), the record check of [`Graph::parse`](super::graph::Graph::parse), the arena
//! planner's in-place rule and the encoder all read this table, so these rules are written
//! once; `docs/blob-format.md` §2.7 is the same table in prose. What cannot be data — each
//! op's tensor checks, its decoded [`Op`](super::graph::Op) variant and its arithmetic — is a
//! `match` on the op, which the compiler keeps exhaustive.

use super::graph::opcode;

/// How an op's output length (`LEN`) relates to its inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LenRule {
    /// `LEN` is the record's own (checked against the op's tensors by the parser).
    Stored,
    /// `LEN = len(A)`.
    SameAsA,
    /// `len(A) = len(B) = LEN`.
    SameAsBoth,
    /// `LEN = len(A) + len(B)`.
    SumOfBoth,
}

/// The element type of a value in the arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    /// f32, one 4-byte slot per element (the float network and the sampler registers).
    F32,
    /// int8 codes of the integer (W8A8) path, four per slot; the op that defines the value
    /// owns its quantization (scale and zero point live in the ops' parameters).
    I8,
}

impl Elem {
    /// Arena slots (4 bytes) a value of `len` elements takes.
    pub const fn slots(self, len: u32) -> u32 {
        match self {
            Elem::F32 => len,
            Elem::I8 => len.div_ceil(4),
        }
    }
}

/// What the format says about one opcode's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpSpec {
    /// The opcode.
    pub code: u8,
    /// Upper-case name, as the format doc and `inspect` write it.
    pub name: &'static str,
    /// Reads value operand `A`.
    pub reads_a: bool,
    /// Reads value operand `B`.
    pub reads_b: bool,
    /// Uses the `AUX` byte (otherwise it must be 0).
    pub uses_aux: bool,
    /// Uses tensor field `T0` (otherwise it must be none).
    pub uses_t0: bool,
    /// Uses tensor field `T1` (otherwise it must be none).
    pub uses_t1: bool,
    /// Uses `PARAM` (otherwise all 32 bits must be 0).
    pub uses_param: bool,
    /// The output-length rule.
    pub len: LenRule,
    /// Element-wise in `A`: the output may take `A`'s slots when `A` dies at this op.
    pub in_place: bool,
    /// Element type the op reads from `A` and `B`.
    pub input: Elem,
    /// Element type of the value the op defines.
    pub output: Elem,
}

impl OpSpec {
    /// A row that reads and uses nothing (no opcode has it).
    pub const EMPTY: OpSpec = OpSpec::new(0, "", LenRule::Stored);

    const fn new(code: u8, name: &'static str, len: LenRule) -> Self {
        OpSpec {
            code,
            name,
            reads_a: false,
            reads_b: false,
            uses_aux: false,
            uses_t0: false,
            uses_t1: false,
            uses_param: false,
            len,
            in_place: false,
            input: Elem::F32,
            output: Elem::F32,
        }
    }

    const fn int(code: u8, name: &'static str, len: LenRule) -> Self {
        OpSpec {
            input: Elem::I8,
            output: Elem::I8,
            ..OpSpec::new(code, name, len)
        }
    }
}

/// Every op. Codes not here are `UnknownOp` (21–63 are reserved). 1–8 are the float network's
/// ops; 9–15 the integer (W8A8) path's, whose values are int8 codes; 16–19 the float ops the
/// other generator families add (SLICE, MUL, and the two that draw noise, NOISE and
/// BERNOULLI), and 20 the integer Bernoulli draw (QBERNOULLI).
pub const TABLE: [OpSpec; 20] = [
    OpSpec {
        reads_a: true,
        uses_t0: true,
        uses_t1: true,
        ..OpSpec::new(opcode::LINEAR, "LINEAR", LenRule::Stored)
    },
    OpSpec {
        reads_a: true,
        uses_aux: true,
        in_place: true,
        ..OpSpec::new(opcode::ACTIVATION, "ACTIVATION", LenRule::SameAsA)
    },
    OpSpec {
        reads_a: true,
        reads_b: true,
        in_place: true,
        ..OpSpec::new(opcode::ADD, "ADD", LenRule::SameAsBoth)
    },
    OpSpec {
        reads_a: true,
        reads_b: true,
        ..OpSpec::new(opcode::CONCAT, "CONCAT", LenRule::SumOfBoth)
    },
    OpSpec {
        reads_a: true,
        uses_t0: true,
        uses_t1: true,
        uses_param: true,
        ..OpSpec::new(opcode::LAYER_NORM, "LAYER_NORM", LenRule::SameAsA)
    },
    OpSpec {
        uses_param: true,
        ..OpSpec::new(opcode::TIME_EMBED, "TIME_EMBED", LenRule::Stored)
    },
    OpSpec {
        uses_t0: true,
        ..OpSpec::new(opcode::CLASS_EMBED, "CLASS_EMBED", LenRule::Stored)
    },
    OpSpec {
        uses_t0: true,
        uses_t1: true,
        ..OpSpec::new(opcode::TIME_TABLE, "TIME_TABLE", LenRule::Stored)
    },
    OpSpec {
        reads_a: true,
        uses_aux: true,
        uses_t0: true,
        uses_t1: true,
        output: Elem::I8,
        ..OpSpec::new(opcode::QUANTIZE, "QUANTIZE", LenRule::SameAsA)
    },
    OpSpec {
        reads_a: true,
        uses_aux: true,
        uses_param: true,
        input: Elem::I8,
        ..OpSpec::new(opcode::DEQUANTIZE, "DEQUANTIZE", LenRule::SameAsA)
    },
    OpSpec {
        reads_a: true,
        uses_t0: true,
        uses_t1: true,
        uses_param: true,
        ..OpSpec::int(opcode::QLINEAR, "QLINEAR", LenRule::Stored)
    },
    OpSpec {
        reads_a: true,
        uses_t0: true,
        in_place: true,
        ..OpSpec::int(opcode::QLUT, "QLUT", LenRule::SameAsA)
    },
    OpSpec {
        reads_a: true,
        reads_b: true,
        uses_t0: true,
        in_place: true,
        ..OpSpec::int(opcode::QADD, "QADD", LenRule::SameAsBoth)
    },
    OpSpec {
        reads_a: true,
        uses_t0: true,
        uses_t1: true,
        in_place: true,
        ..OpSpec::int(opcode::QLAYER_NORM, "QLAYER_NORM", LenRule::SameAsA)
    },
    OpSpec {
        uses_aux: true,
        uses_t0: true,
        uses_t1: true,
        ..OpSpec::int(opcode::QGATHER, "QGATHER", LenRule::Stored)
    },
    OpSpec {
        reads_a: true,
        uses_param: true,
        ..OpSpec::new(opcode::SLICE, "SLICE", LenRule::Stored)
    },
    OpSpec {
        reads_a: true,
        reads_b: true,
        in_place: true,
        ..OpSpec::new(opcode::MUL, "MUL", LenRule::SameAsBoth)
    },
    OpSpec {
        uses_param: true,
        ..OpSpec::new(opcode::NOISE, "NOISE", LenRule::Stored)
    },
    OpSpec {
        reads_a: true,
        uses_param: true,
        in_place: true,
        ..OpSpec::new(opcode::BERNOULLI, "BERNOULLI", LenRule::SameAsA)
    },
    OpSpec {
        reads_a: true,
        uses_param: true,
        in_place: true,
        ..OpSpec::int(opcode::QBERNOULLI, "QBERNOULLI", LenRule::SameAsA)
    },
];

/// The row of opcode `code`, if it is an op.
pub const fn spec(code: u8) -> Option<OpSpec> {
    let mut i = 0;
    while i < TABLE.len() {
        if TABLE[i].code == code {
            return Some(TABLE[i]);
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_code_has_one_row_and_no_other_code_has_any() {
        for code in 0..=255u8 {
            let rows = TABLE.iter().filter(|s| s.code == code).count();
            let v1 = (1..=20).contains(&code);
            assert_eq!(rows, usize::from(v1), "opcode {code}");
            assert_eq!(spec(code).is_some(), v1);
        }
    }

    #[test]
    fn rows_are_consistent() {
        for s in TABLE {
            // Rules over B need B; element-wise ops are element-wise in A.
            if matches!(s.len, LenRule::SameAsBoth | LenRule::SumOfBoth) {
                assert!(s.reads_a && s.reads_b, "{}", s.name);
            }
            if s.in_place {
                assert!(s.reads_a && s.len != LenRule::SumOfBoth, "{}", s.name);
            }
        }
    }
}
