//! A parsed, validated model: the blob's sections as typed views plus the arena plan.
//!
//! [`Model::parse`] is the one entry point for untrusted bytes: it checks the header and the
//! CRC-32, validates every section and every op against its tensors, every program against
//! the model, and plans the arena. After it succeeds, executing the model cannot fail on
//! structure — only on numbers (non-finite values) or on the caller's arguments.

use crate::arena::{self, Plan};
use crate::blob::graph::{Graph, time_row};
use crate::blob::meta::Meta;
use crate::blob::program::{Instr, Program, Programs};
use crate::blob::schedule::Schedule;
use crate::blob::tensor::Tensors;
use crate::blob::{Blob, Sections};
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
fn check_time_tables(
    graph: &Graph<'_>,
    tensors: &Tensors<'_>,
    programs: &Programs<'_>,
) -> Result<(), Error> {
    for k in 0..graph.op_count() {
        let Some(times) = graph.op(k)?.times() else {
            continue;
        };
        let times = tensors.get(times)?.data;
        for p in programs.iter() {
            let p = p?;
            for instr in p.instructions() {
                let (at, instr) = instr?;
                if let Instr::Eval { time, .. } = instr
                    && time_row(times, time).is_none()
                {
                    return Err(Error::BadProgram {
                        program: p.index,
                        offset: at as u32,
                        what: Rule::EvalTimeNotInTable,
                    });
                }
            }
        }
    }
    Ok(())
}

impl<'b> Model<'b> {
    /// Parses and validates a blob.
    pub fn parse(bytes: &'b [u8]) -> Result<Self, Error> {
        let blob = Blob::new_checked(bytes)?;
        let sections: Sections = blob.sections()?;
        let meta = Meta::parse(sections.require(bytes, Section::Meta)?)?;
        let tensors = Tensors::parse(
            sections.require(bytes, Section::Tensors)?,
            sections.require(bytes, Section::Data)?,
        )?;
        let graph = Graph::parse(sections.require(bytes, Section::Graph)?, &meta, &tensors)?;
        let schedule = match sections.get(bytes, Section::Schedule) {
            Some(s) => Schedule::parse(s)?,
            None => Schedule::EMPTY,
        };
        let programs = Programs::parse(
            sections.require(bytes, Section::Programs)?,
            meta.null_class.is_some(),
        )?;
        check_time_tables(&graph, &tensors, &programs)?;
        // The planner `arena::plan` runs on raw bytes (it is a `const fn`, for static arenas)
        // and would locate and read the sections again; here they are parsed already, so the
        // plan is made from them: the same `place` on the same structure, data length and
        // register count, hence the same plan (the fuzz target checks they agree).
        let plan = arena::place(&graph.structure, meta.data_len, programs.max_regs())?;
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
    pub fn bytes(&self) -> &'b [u8] {
        self.bytes
    }
    /// Metadata.
    pub fn meta(&self) -> &Meta<'b> {
        &self.meta
    }
    /// Tensor table.
    pub fn tensors(&self) -> &Tensors<'b> {
        &self.tensors
    }
    /// Network graph.
    pub fn graph(&self) -> &Graph<'b> {
        &self.graph
    }
    /// Training schedule (empty if the blob has none).
    pub fn schedule(&self) -> &Schedule<'b> {
        &self.schedule
    }
    /// Sampler programs.
    pub fn programs(&self) -> &Programs<'b> {
        &self.programs
    }
    /// The program called `name`.
    pub fn program(&self, name: &str) -> Result<Program<'b>, Error> {
        self.programs.find(name)
    }
    /// The arena plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }
    /// Bytes of (4-byte-aligned) arena needed to run any program of this model.
    pub fn arena_bytes(&self) -> usize {
        self.plan.bytes()
    }
    /// Elements per sample.
    pub fn data_len(&self) -> usize {
        self.meta.data_len as usize
    }
}
