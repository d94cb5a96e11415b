//! A parsed, validated model: the blob's sections as typed views plus the arena plan.
//!
//! [`Model::parse`] is the one entry point for untrusted bytes: it checks the header and the
//! CRC-32, validates every section and every op against its tensors, every program against
//! the model, and plans the arena. After it succeeds, executing the model cannot fail on
//! structure — only on numbers (non-finite values) or on the caller's arguments.

use crate::arena::{self, Plan};
use crate::blob::bytes::{or, u32_at};
use crate::blob::graph::{Graph, time_row};
use crate::blob::meta::Meta;
use crate::blob::program::{Instr, Program, Programs};
use crate::blob::schedule::Schedule;
use crate::blob::tensor::Tensors;
use crate::blob::{Sections, crc, field, locate_sections};
use crate::error::{Error, Rule, Section};

/// A validated model borrowed from the blob bytes (in flash or RAM).
#[derive(Debug, Clone, Copy)]
pub struct Model<'b> {
    bytes: &'b [u8],
    meta: Meta<'b>,
    tensors: Tensors<'b>,
    graph: Graph<'b>,
    schedule: Schedule<'b>,
    programs: Programs<'b>,
    plan: Plan,
}

/// Every `EVAL` time of every program must have its row in every time table of the graph.
const fn check_time_tables(
    graph: &Graph<'_>,
    tensors: &Tensors<'_>,
    programs: &Programs<'_>,
) -> Result<(), Error> {
    let mut k = 0;
    while k < graph.op_count() {
        if let Some(times) = tri!(graph.op(k)).times() {
            let times = tri!(tensors.get(times)).data;
            let mut i = 0;
            while i < programs.count() {
                let p = tri!(programs.get(i));
                let mut at = 0;
                while at < p.code.len() {
                    let (instr, next) = tri!(p.instr(at));
                    if let Instr::Eval { time, .. } = instr
                        && time_row(times, time).is_none()
                    {
                        return Err(Error::BadProgram {
                            program: p.index,
                            offset: at as u32,
                            what: Rule::EvalTimeNotInTable,
                        });
                    }
                    at = next;
                }
                i += 1;
            }
        }
        k += 1;
    }
    Ok(())
}

/// The header, the section table and the CRC-32 (what [`crate::blob::Blob::new_checked`]
/// checks), in a `const fn`.
const fn check_blob(bytes: &[u8]) -> Result<Sections, Error> {
    let sections = tri!(locate_sections(bytes));
    let covered = match bytes.split_at_checked(field::CRC_START) {
        Some((_, covered)) => covered,
        None => &[],
    };
    let computed = crc::crc32(covered);
    let stored = or(u32_at(bytes, field::CRC.start), 0);
    if computed != stored {
        return Err(Error::ChecksumMismatch { stored, computed });
    }
    Ok(sections)
}

impl<'b> Model<'b> {
    /// Parses and validates a blob.
    ///
    /// `const`: a firmware that links its blob can validate it at compile time, so a bad blob
    /// is a build error and the parser is not in its flash:
    ///
    /// ```
    /// use microdiff_runtime::Model;
    /// static BLOB: [u8; 32] = [0; 32]; // an `include_bytes!` in a real firmware
    /// const MODEL: Result<Model<'static>, microdiff_runtime::Error> = Model::parse(&BLOB);
    /// assert!(MODEL.is_err()); // (a real firmware `panic!`s here: a build error)
    /// ```
    pub const fn parse(bytes: &'b [u8]) -> Result<Self, Error> {
        let sections = tri!(check_blob(bytes));
        let meta = tri!(Meta::parse(tri!(sections.require(bytes, Section::Meta))));
        let tensors = tri!(Tensors::parse(
            tri!(sections.require(bytes, Section::Tensors)),
            tri!(sections.require(bytes, Section::Data)),
        ));
        let graph = tri!(Graph::parse(
            tri!(sections.require(bytes, Section::Graph)),
            &meta,
            &tensors
        ));
        let schedule = match sections.get(bytes, Section::Schedule) {
            Some(s) => tri!(Schedule::parse(s)),
            None => Schedule::EMPTY,
        };
        let programs = tri!(Programs::parse(
            tri!(sections.require(bytes, Section::Programs)),
            meta.null_class.is_some(),
        ));
        tri!(check_time_tables(&graph, &tensors, &programs));
        // The planner `arena::plan` runs on raw bytes (it is a `const fn`, for static arenas)
        // and would locate and read the sections again; here they are parsed already, so the
        // plan is made from them: the same `place` on the same structure, data length and
        // register count, hence the same plan (the fuzz target checks they agree).
        let plan = tri!(arena::place(
            &graph.structure,
            meta.data_len,
            programs.max_regs()
        ));
        Ok(Model {
            bytes,
            meta,
            tensors,
            graph,
            schedule,
            programs,
            plan,
        })
    }

    /// The blob bytes.
    pub const fn bytes(&self) -> &'b [u8] {
        self.bytes
    }
    /// Metadata.
    pub const fn meta(&self) -> &Meta<'b> {
        &self.meta
    }
    /// Tensor table.
    pub const fn tensors(&self) -> &Tensors<'b> {
        &self.tensors
    }
    /// Network graph.
    pub const fn graph(&self) -> &Graph<'b> {
        &self.graph
    }
    /// Training schedule (empty if the blob has none).
    pub const fn schedule(&self) -> &Schedule<'b> {
        &self.schedule
    }
    /// Sampler programs.
    pub const fn programs(&self) -> &Programs<'b> {
        &self.programs
    }
    /// The program called `name`.
    pub const fn program(&self, name: &str) -> Result<Program<'b>, Error> {
        self.programs.find(name)
    }
    /// The arena plan.
    pub const fn plan(&self) -> &Plan {
        &self.plan
    }
    /// Bytes of (4-byte-aligned) arena needed to run any program of this model.
    pub const fn arena_bytes(&self) -> usize {
        self.plan.bytes()
    }
    /// Elements per sample.
    pub const fn data_len(&self) -> usize {
        self.meta.data_len as usize
    }
}
