//! The arena: one caller-provided byte buffer holding every activation and every sampler
//! register, laid out by a planner that runs in `const fn`.
//!
//! # Layout (in f32 slots, 4 bytes each)
//! ```text
//! [ register 0 | register 1 | … | register R-1 | network values (planned) ]
//!   data_len each, R = largest register count of any program in the blob
//! ```
//! The network input (value 0) is read straight from the `EVAL`'s source register, so it has
//! no slot of its own; the output value has a planned slot like any other and is copied into
//! the `EVAL`'s destination register at the end (so `src` and `dst` may be the same register).
//!
//! # Planner
//! Value `v` (defined by op `v − 1`) is live from its definition to its last use (the output
//! stays live to the end). Values are placed in definition order at the lowest offset that
//! does not overlap any placed value whose live range intersects its own (first fit). An
//! element-wise op (activation, add) whose first input dies at that op writes its result in
//! place, on exactly the input's slots.
//!
//! How good is it? The live-set bound — the largest total length of values live at once,
//! counting in-place results as free — is a lower bound for any placement; [`Plan`] reports
//! both. For a sequential residual MLP the live set at each op is at most the residual stream,
//! the block's hidden value and the conditioning vector, and first fit in definition order
//! reaches the bound except where a freed hole is too small for the next value (see
//! `docs/arena.md` and the reference figures measured by the tests).
//!
//! Everything here is `const fn`, so `arena_bytes(include_bytes!(…))` sizes a `static` at
//! compile time, and the runtime runs the very same code on the very same bytes.

mod cast;
pub(crate) use cast::{as_f32_slots, i8s, i8s_mut, i16s, i16s_mut};

use crate::blob::graph::{self, MAX_VALUES, NO_VALUE};
use crate::blob::ops;
use crate::blob::{locate_sections, meta, program};
use crate::error::{Error, Rule, Section};

/// A placement of every network value plus the register file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Elements per sample (= per register).
    pub data_len: u32,
    /// Registers reserved (largest register count of any program).
    pub regs: u8,
    /// Number of network values (input included).
    pub values: u16,
    /// Offset of each value in f32 slots from the start of the network region
    /// (value 0, the input, lives in a register and has none).
    pub offset: [u32; MAX_VALUES],
    /// Slots used by the network region (values, then the integer path's scratch).
    pub network_slots: u32,
    /// Offset (slots, from the network region's start) of the scratch where `QLINEAR`
    /// widens its input; `scratch_slots` long, after every value.
    pub scratch_offset: u32,
    /// Slots of the scratch (0 without `QLINEAR`).
    pub scratch_slots: u32,
    /// The live-set lower bound for the network region, in slots.
    pub live_bound_slots: u32,
}

impl Plan {
    /// Slots (f32) of the register file.
    pub const fn register_slots(&self) -> usize {
        self.regs as usize * self.data_len as usize
    }

    /// Slots (f32) of the whole arena.
    pub const fn total_slots(&self) -> usize {
        self.register_slots() + self.network_slots as usize
    }

    /// Bytes of a 4-byte-aligned arena holding the plan.
    pub const fn bytes(&self) -> usize {
        self.total_slots() * 4
    }

    /// Slot index (from the arena start) of value `v`.
    pub const fn value_start(&self, v: u16) -> usize {
        let v = v as usize;
        let off = if v < self.offset.len() {
            self.offset[v]
        } else {
            0
        };
        self.register_slots() + off as usize
    }

    /// Slot range (from the arena start) of the integer path's scratch.
    pub const fn scratch(&self) -> core::ops::Range<usize> {
        let start = self.register_slots() + self.scratch_offset as usize;
        start..start + self.scratch_slots as usize
    }

    /// Slot index of register `r`.
    pub const fn register_start(&self, r: u8) -> usize {
        r as usize * self.data_len as usize
    }
}

/// Does op `opcode` compute its output element by element from input `a`, so the output may
/// overwrite `a` in place? (The op table's `in_place` column.)
const fn elementwise(opcode: u8) -> bool {
    match ops::spec(opcode) {
        Some(s) => s.in_place,
        None => false,
    }
}

/// Plans the arena for the blob `b` (header, metadata, graph and program headers only; the
/// runtime validates the rest when it parses the blob).
pub const fn plan(b: &[u8]) -> Result<Plan, Error> {
    let sections = match locate_sections(b) {
        Ok(s) => s,
        Err(e) => return Err(e),
    };
    let meta_b = match sections.require(b, Section::Meta) {
        Ok(m) => m,
        Err(e) => return Err(e),
    };
    let data_len = match meta::data_len(meta_b) {
        Ok(n) => n,
        Err(e) => return Err(e),
    };
    let graph_b = match sections.require(b, Section::Graph) {
        Ok(g) => g,
        Err(e) => return Err(e),
    };
    let s = match graph::structure(graph_b, data_len) {
        Ok(s) => s,
        Err(e) => return Err(e),
    };
    let programs_b = match sections.require(b, Section::Programs) {
        Ok(p) => p,
        Err(e) => return Err(e),
    };
    let regs = match program::max_regs(programs_b) {
        Ok(r) => r,
        Err(e) => return Err(e),
    };
    place(&s, data_len, regs)
}

/// Bytes of arena the blob `b` needs: the size to give a `static` buffer.
///
/// ```ignore
/// static BLOB: &[u8] = include_bytes!("model.mdfb");
/// const ARENA: usize = match microdiff_runtime::arena_bytes(BLOB) {
///     Ok(n) => n,
///     Err(_) => panic!("invalid blob"), // a compile error, not a run-time panic
/// };
/// static mut BUF: ArenaBuffer<ARENA> = ArenaBuffer::new();
/// ```
pub const fn arena_bytes(b: &[u8]) -> Result<usize, Error> {
    match plan(b) {
        Ok(p) => Ok(p.bytes()),
        Err(e) => Err(e),
    }
}

/// Index of the program called `name` in the blob `b`, computed like the arena size: in a
/// `const`, a firmware fails to build when its blob has no such program.
///
/// ```ignore
/// const PROGRAM: &str = "ddim10-cfg";
/// const _: () = match microdiff_runtime::program_index(BLOB, PROGRAM) {
///     Ok(_) => (),
///     Err(_) => panic!("the blob has no program ddim10-cfg"), // a compile error
/// };
/// ```
pub const fn program_index(b: &[u8], name: &str) -> Result<u16, Error> {
    let sections = match locate_sections(b) {
        Ok(s) => s,
        Err(e) => return Err(e),
    };
    match sections.require(b, Section::Programs) {
        Ok(p) => program::find(p, name),
        Err(e) => Err(e),
    }
}

/// Live range end (index of the last op reading each value; `values` for the output).
const fn last_uses(s: &graph::Structure) -> [u16; MAX_VALUES] {
    let mut last = [0u16; MAX_VALUES];
    let values = values(s);
    let mut v = 1;
    while v < values {
        // A value nobody reads is still written by its op.
        last[v] = v as u16;
        v += 1;
    }
    let mut v = 1;
    while v < values {
        let mut i = 0;
        while i < 2 {
            let a = s.inputs[v][i];
            if a != NO_VALUE && (a as usize) < MAX_VALUES {
                // Value v is defined at "time" v, so its inputs live until time v.
                last[a as usize] = v as u16;
            }
            i += 1;
        }
        v += 1;
    }
    if (s.output as usize) < MAX_VALUES {
        last[s.output as usize] = s.values;
    }
    last
}

/// `s.values`, at most [`MAX_VALUES`] (which `Graph::parse` guarantees): loops bounded by it
/// index the structure's arrays without a bounds-check panic path.
const fn values(s: &graph::Structure) -> usize {
    if (s.values as usize) < MAX_VALUES {
        s.values as usize
    } else {
        MAX_VALUES
    }
}

const fn overlaps(a0: u32, alen: u32, b0: u32, blen: u32) -> bool {
    a0 < b0 + blen && b0 < a0 + alen
}

/// First-fit placement of values in definition order.
pub(crate) const fn place(s: &graph::Structure, data_len: u32, regs: u8) -> Result<Plan, Error> {
    let last = last_uses(s);
    let mut plan = Plan {
        data_len,
        regs,
        values: s.values,
        offset: [0; MAX_VALUES],
        network_slots: 0,
        scratch_offset: 0,
        scratch_slots: 0,
        live_bound_slots: 0,
    };
    let mut v = 1usize;
    while v < values(s) {
        let len = s.slots(v);
        // In place: element-wise op whose first input (not the register-resident input)
        // dies here and has the same length and element type.
        let a = s.inputs[v][0];
        let mut placed = false;
        if elementwise(s.opcode[v]) && a != NO_VALUE && a != 0 && (a as usize) < v {
            let a = a as usize;
            if last[a] as usize == v && s.len[a] == s.len[v] && s.elem[a] as u8 == s.elem[v] as u8 {
                plan.offset[v] = plan.offset[a];
                placed = true;
            }
        }
        if !placed {
            // Candidates: 0 and the end of every conflicting value; keep the lowest that fits.
            let mut best = u32::MAX;
            let mut c = 0usize;
            while c <= v {
                let cand = if c == v {
                    0
                } else if c >= 1 && last[c] as usize >= v {
                    plan.offset[c] + s.slots(c)
                } else {
                    c += 1;
                    continue;
                };
                if cand < best {
                    let mut ok = true;
                    let mut w = 1usize;
                    while w < v {
                        if last[w] as usize >= v && overlaps(cand, len, plan.offset[w], s.slots(w))
                        {
                            ok = false;
                            break;
                        }
                        w += 1;
                    }
                    if ok {
                        best = cand;
                    }
                }
                c += 1;
            }
            plan.offset[v] = best;
        }
        let end = plan.offset[v] + len;
        if end > plan.network_slots {
            plan.network_slots = end;
        }
        // Live-set bound at time v: values defined by then and still needed at time v,
        // where an in-place result shares its input's slots.
        let mut live = 0u32;
        let mut w = 1usize;
        while w <= v {
            if last[w] as usize >= v
                && !(w < v && last[w] as usize == v && placed && w == a as usize)
            {
                live += s.slots(w);
            }
            w += 1;
        }
        if live > plan.live_bound_slots {
            plan.live_bound_slots = live;
        }
        v += 1;
    }
    plan.scratch_offset = plan.network_slots;
    plan.scratch_slots = s.scratch_slots;
    plan.network_slots += s.scratch_slots;
    plan.live_bound_slots += s.scratch_slots;
    if plan.total_slots() > (u32::MAX / 4) as usize {
        return Err(Error::Malformed {
            section: Section::Graph,
            what: Rule::ArenaOver4GiB,
        });
    }
    Ok(plan)
}

/// A 4-byte-aligned byte buffer for the arena, sized by a `const` (see [`arena_bytes`]).
#[repr(C, align(4))]
#[derive(Debug, Clone)]
pub struct ArenaBuffer<const N: usize>(pub [u8; N]);

impl<const N: usize> ArenaBuffer<N> {
    /// A zeroed buffer (usable in a `static` initialiser).
    pub const fn new() -> Self {
        ArenaBuffer([0; N])
    }

    /// The bytes, to pass to [`crate::Sampler::new`].
    pub fn as_mut_bytes(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

impl<const N: usize> Default for ArenaBuffer<N> {
    fn default() -> Self {
        Self::new()
    }
}
