//! The emitter: builds a blob from a network description, tensors and programs.
//!
//! It writes through the same field definitions the parser reads, and [`BlobBuilder::build`]
//! parses its own output with [`crate::Model::parse`] before returning it, so a builder can
//! never hand out a blob the runtime would reject.

use alloc::string::String;
use alloc::vec::Vec;

use microdiff_kernels::int8::WeightLayout;
use microdiff_kernels::{Activation, Dtype, quantize_row_i8};

use super::crc::crc32;
use super::graph::{self, GatherKey, Op};
use super::meta::{self, Objective, Prediction};
use super::program::{self, ClassSel, Instr, Terms};
use super::schedule::ScheduleRow;
use super::{HEADER_LEN, MAGIC, SECTION_ENTRY_LEN, SECTION_REQUIRED, VERSION, field, kind, tensor};
use crate::error::{Error, Rule, Section};

/// A network value being built (value 0 is the input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Value(pub u16);

/// Builds a weight blob.
#[derive(Debug, Clone)]
pub struct BlobBuilder {
    objective: Objective,
    prediction: Prediction,
    shape: Vec<u16>,
    classes: u16,
    null_class: Option<u16>,
    norm_scale: Vec<f32>,
    norm_offset: Vec<f32>,
    tensor_records: Vec<u8>,
    tensor_shapes: Vec<(u32, u32)>,
    data: Vec<u8>,
    ops: Vec<[u8; graph::field::OP_LEN]>,
    lens: Vec<u32>,
    output: Value,
    schedule: Vec<ScheduleRow>,
    programs: Vec<u8>,
    program_count: u32,
    /// The first problem a chained setter found; `build` reports it.
    error: Option<Error>,
}

impl BlobBuilder {
    /// A builder for samples of `shape` (1 to 4 dimensions) from a network trained with
    /// `objective` that predicts `prediction`. Unconditional, identity normalisation.
    pub fn new(shape: &[u16], objective: Objective, prediction: Prediction) -> Self {
        // Saturates instead of overflowing; `build` then rejects the shape.
        let data_len = shape
            .iter()
            .try_fold(1u32, |n, &d| n.checked_mul(d as u32))
            .unwrap_or(u32::MAX);
        BlobBuilder {
            objective,
            prediction,
            shape: shape.to_vec(),
            classes: 0,
            null_class: None,
            norm_scale: Vec::new(),
            norm_offset: Vec::new(),
            tensor_records: Vec::new(),
            tensor_shapes: Vec::new(),
            data: Vec::new(),
            ops: Vec::new(),
            lens: alloc::vec![data_len],
            output: Value(0),
            schedule: Vec::new(),
            programs: Vec::new(),
            program_count: 0,
            error: None,
        }
    }

    /// Elements per sample.
    pub fn data_len(&self) -> u32 {
        self.lens.first().copied().unwrap_or(0)
    }

    /// Makes the model class-conditional with `classes` classes and an optional null class
    /// id (usually `classes`) for classifier-free guidance.
    pub fn classes(&mut self, classes: u16, null_class: Option<u16>) -> &mut Self {
        self.classes = classes;
        self.null_class = null_class;
        self
    }

    /// Map from model space back to data units, `data = x * scale + offset`: one entry for
    /// all elements or one per element.
    pub fn normalization(&mut self, scale: &[f32], offset: &[f32]) -> &mut Self {
        self.norm_scale = scale.to_vec();
        self.norm_offset = offset.to_vec();
        self
    }

    /// The training schedule table.
    pub fn schedule(&mut self, rows: &[ScheduleRow]) -> &mut Self {
        self.schedule = rows.to_vec();
        self
    }

    /// Adds a `(rows, cols)` row-major tensor from f32 values, stored as `dtype`: f16 rounds
    /// to nearest even; int8 quantizes each row symmetrically with
    /// [`microdiff_kernels::quantize_row_i8`]. Returns the tensor index.
    pub fn tensor(
        &mut self,
        dtype: Dtype,
        rows: u32,
        cols: u32,
        values: &[f32],
    ) -> Result<u16, Error> {
        let index = self.tensor_shapes.len() as u16;
        let bad = |what| Error::BadTensor {
            tensor: index,
            what,
        };
        if rows == 0
            || cols == 0
            || (rows as usize).checked_mul(cols as usize) != Some(values.len())
        {
            return Err(bad(Rule::ValuesShape));
        }
        if index == tensor::NO_TENSOR - 1 {
            return Err(bad(Rule::BuilderTooManyTensors));
        }
        pad4(&mut self.data);
        let data_offset = self.data.len() as u32;
        let mut scales = Vec::new();
        match dtype {
            Dtype::F32 => values
                .iter()
                .for_each(|v| self.data.extend_from_slice(&v.to_le_bytes())),
            Dtype::F16 => values.iter().for_each(|&v| {
                self.data
                    .extend_from_slice(&microdiff_kernels::encode_f16(v))
            }),
            Dtype::I8 => {
                let mut q = alloc::vec![0i8; cols as usize];
                for row in values.chunks_exact(cols as usize) {
                    let scale = quantize_row_i8(row, &mut q)?;
                    scales.push(scale);
                    self.data.extend(q.iter().map(|&x| x as u8));
                }
            }
            Dtype::Q8 | Dtype::I32 => {
                return Err(bad(Rule::IntegerTensorBuilder));
            }
        }
        let scales_offset = if dtype == Dtype::I8 {
            pad4(&mut self.data);
            let off = self.data.len() as u32;
            scales
                .iter()
                .for_each(|s: &f32| self.data.extend_from_slice(&s.to_le_bytes()));
            Some(off)
        } else {
            None
        };
        tensor::encode_record(
            &mut self.tensor_records,
            dtype,
            rows,
            cols,
            data_offset,
            scales_offset,
        );
        self.tensor_shapes.push((rows, cols));
        Ok(index)
    }

    /// Adds a `(rows, cols)` tensor of int8 codes (the integer path's weights and tables,
    /// stored as given: a `QLINEAR` weight already in the kernels' layout, `int8::pack_pairs`).
    pub fn tensor_q8(&mut self, rows: u32, cols: u32, codes: &[i8]) -> Result<u16, Error> {
        let bytes: Vec<u8> = codes.iter().map(|&c| c as u8).collect();
        self.raw_tensor(Dtype::Q8, rows, cols, &bytes)
    }

    /// Adds a `(rows, cols)` tensor of i32 (the integer path's biases and constants).
    pub fn tensor_i32(&mut self, rows: u32, cols: u32, values: &[i32]) -> Result<u16, Error> {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.raw_tensor(Dtype::I32, rows, cols, &bytes)
    }

    fn raw_tensor(
        &mut self,
        dtype: Dtype,
        rows: u32,
        cols: u32,
        bytes: &[u8],
    ) -> Result<u16, Error> {
        let index = self.tensor_shapes.len() as u16;
        let bad = |what| Error::BadTensor {
            tensor: index,
            what,
        };
        let n = (rows as usize).checked_mul(cols as usize);
        if rows == 0
            || cols == 0
            || n.and_then(|n| n.checked_mul(dtype.bytes_per_element())) != Some(bytes.len())
        {
            return Err(bad(Rule::ValuesShape));
        }
        if index == tensor::NO_TENSOR - 1 {
            return Err(bad(Rule::BuilderTooManyTensors));
        }
        pad4(&mut self.data);
        let data_offset = self.data.len() as u32;
        self.data.extend_from_slice(bytes);
        tensor::encode_record(
            &mut self.tensor_records,
            dtype,
            rows,
            cols,
            data_offset,
            None,
        );
        self.tensor_shapes.push((rows, cols));
        Ok(index)
    }

    /// f32 `a` → int8 codes with zero point `zp` and the scale of the f32 `(K, 1)` tensor
    /// `scales` in the row of the evaluation time in `times` (or its one row).
    pub fn quantize(&mut self, a: Value, zp: i8, scales: u16, times: Option<u16>) -> Value {
        let len = self.len_of(a);
        self.push(
            Op::Quantize {
                a: a.0,
                zp,
                scales,
                times,
            },
            len,
        )
    }

    /// int8 `a` → f32 `(a − zp)·scale`.
    pub fn dequantize(&mut self, a: Value, zp: i8, scale: f32) -> Value {
        let len = self.len_of(a);
        self.push(Op::Dequantize { a: a.0, zp, scale }, len)
    }

    /// W8A8 fully connected layer: `params` is the i32 `(out, 3)` row-record tensor, `weight`
    /// the q8 matrix stored in `layout`.
    pub fn qlinear(
        &mut self,
        a: Value,
        (weight, layout): (u16, WeightLayout),
        params: u16,
        x_zp: i8,
        y_zp: i8,
    ) -> Value {
        let len = self.rows_of(params);
        self.push(
            Op::QLinear {
                a: a.0,
                weight,
                params,
                x_zp,
                y_zp,
                layout,
            },
            len,
        )
    }

    /// `table[a + 128]` with a q8 `(256, 1)` table.
    pub fn qlut(&mut self, a: Value, table: u16) -> Value {
        let len = self.len_of(a);
        self.push(Op::QLut { a: a.0, table }, len)
    }

    /// Integer add with the i32 `(4, 1)` constants `[c, ma, mb, s]`.
    pub fn qadd(&mut self, a: Value, b: Value, consts: u16) -> Value {
        let len = self.len_of(a);
        self.push(
            Op::QAdd {
                a: a.0,
                b: b.0,
                consts,
            },
            len,
        )
    }

    /// Integer layer norm with i32 `(len, 2)` channels and `(4, 1)` constants.
    pub fn qlayer_norm(&mut self, a: Value, channels: u16, consts: u16) -> Value {
        let len = self.len_of(a);
        self.push(
            Op::QLayerNorm {
                a: a.0,
                channels,
                consts,
            },
            len,
        )
    }

    /// A row of the q8 `(K, len)` table, by time or class.
    pub fn qgather(&mut self, table: u16, key: GatherKey) -> Value {
        let len = self.cols_of(table);
        self.push(Op::QGather { table, key }, len)
    }

    /// The network input.
    pub fn input(&self) -> Value {
        Value(0)
    }

    fn push(&mut self, op: Op, len: u32) -> Value {
        let v = self.lens.len() as u16;
        self.ops.push(op.encode(v, len));
        self.lens.push(len);
        Value(v)
    }

    fn len_of(&self, v: Value) -> u32 {
        self.lens.get(v.0 as usize).copied().unwrap_or(0)
    }

    fn rows_of(&self, t: u16) -> u32 {
        self.tensor_shapes.get(t as usize).map_or(0, |s| s.0)
    }

    fn cols_of(&self, t: u16) -> u32 {
        self.tensor_shapes.get(t as usize).map_or(0, |s| s.1)
    }

    /// `W·a + bias` with `W` a `(out, len(a))` tensor and `bias` an f32 `(out, 1)` tensor.
    pub fn linear(&mut self, a: Value, weight: u16, bias: Option<u16>) -> Value {
        let len = self.rows_of(weight);
        self.push(
            Op::Linear {
                a: a.0,
                weight,
                bias,
            },
            len,
        )
    }

    /// `act(a)`.
    pub fn activation(&mut self, a: Value, act: Activation) -> Value {
        let len = self.len_of(a);
        self.push(Op::Activation { a: a.0, act }, len)
    }

    /// `a + b`.
    pub fn add(&mut self, a: Value, b: Value) -> Value {
        let len = self.len_of(a);
        self.push(Op::Add { a: a.0, b: b.0 }, len)
    }

    /// `[a; b]`.
    pub fn concat(&mut self, a: Value, b: Value) -> Value {
        let len = self.len_of(a).saturating_add(self.len_of(b));
        self.push(Op::Concat { a: a.0, b: b.0 }, len)
    }

    /// Layer norm of `a` with optional f32 `(len, 1)` γ and β tensors.
    pub fn layer_norm(
        &mut self,
        a: Value,
        gamma: Option<u16>,
        beta: Option<u16>,
        eps: f32,
    ) -> Value {
        let len = self.len_of(a);
        self.push(
            Op::LayerNorm {
                a: a.0,
                gamma,
                beta,
                eps,
            },
            len,
        )
    }

    /// Sinusoidal embedding (length `dim`, even) of the evaluation time.
    pub fn time_embed(&mut self, dim: u32, max_period: f32) -> Value {
        self.push(Op::TimeEmbed { max_period }, dim)
    }

    /// The row of the f32 `(K, dim)` tensor `rows` whose time in the f32 `(K, 1)` tensor
    /// `times` (strictly increasing bit patterns) is the evaluation time.
    pub fn time_table(&mut self, rows: u16, times: u16) -> Value {
        let len = self.cols_of(rows);
        self.push(Op::TimeTable { rows, times }, len)
    }

    /// `a[start .. start + len]`.
    pub fn slice(&mut self, a: Value, start: u32, len: u32) -> Value {
        self.push(Op::Slice { a: a.0, start }, len)
    }

    /// `a ⊙ b`.
    pub fn mul(&mut self, a: Value, b: Value) -> Value {
        let len = self.len_of(a);
        self.push(Op::Mul { a: a.0, b: b.0 }, len)
    }

    /// `len` standard normals: elements `offset ..` of the `EVAL`'s network draw.
    pub fn noise(&mut self, offset: u32, len: u32) -> Value {
        self.push(Op::Noise { offset }, len)
    }

    /// Bernoulli draws with probabilities `a`: elements `offset ..` of the `EVAL`'s network
    /// draw.
    pub fn bernoulli(&mut self, a: Value, offset: u32) -> Value {
        let len = self.len_of(a);
        self.push(Op::Bernoulli { a: a.0, offset }, len)
    }

    /// Integer Bernoulli draws with probability codes `a` (scale 1/255, zero point −128):
    /// elements `offset ..` of the `EVAL`'s network draw.
    pub fn qbernoulli(&mut self, a: Value, offset: u32) -> Value {
        let len = self.len_of(a);
        self.push(Op::QBernoulli { a: a.0, offset }, len)
    }

    /// Row `class` of the `(rows, dim)` table tensor.
    pub fn class_embed(&mut self, table: u16) -> Value {
        let len = self.cols_of(table);
        self.push(Op::ClassEmbed { table }, len)
    }

    /// Sets the network output (length `data_len`).
    pub fn output(&mut self, v: Value) -> &mut Self {
        self.output = v;
        self
    }

    /// Appends a sampler program.
    pub fn program(&mut self, p: &ProgramBuilder) -> &mut Self {
        if let Err(mut e) = program::check_name(p.name.as_bytes())
            && self.error.is_none()
        {
            if let Error::BadProgram { program, .. } = &mut e {
                *program = self.program_count as u16;
            }
            self.error = Some(e);
        }
        p.encode(&mut self.programs);
        self.program_count += 1;
        self
    }

    /// Assembles the blob, computes its CRC-32, and checks it parses.
    pub fn build(&self) -> Result<Vec<u8>, Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let mut meta_b = Vec::new();
        meta::encode(
            &mut meta_b,
            self.objective,
            self.prediction,
            &self.shape,
            self.classes,
            self.null_class,
            &self.norm_scale,
            &self.norm_offset,
        );
        if self.norm_scale.len() != self.norm_offset.len() || self.shape.len() > 4 {
            return Err(Error::Malformed {
                section: Section::Meta,
                what: Rule::BuilderMeta,
            });
        }
        let mut graph_b = Vec::new();
        graph_b.extend_from_slice(&(self.lens.len() as u16).to_le_bytes());
        graph_b.extend_from_slice(&(self.ops.len() as u16).to_le_bytes());
        graph_b.extend_from_slice(&(graph::field::OP_LEN as u16).to_le_bytes());
        graph_b.extend_from_slice(&self.output.0.to_le_bytes());
        self.ops.iter().for_each(|r| graph_b.extend_from_slice(r));

        let mut tensors_b = Vec::new();
        tensors_b.extend_from_slice(&(self.tensor_shapes.len() as u32).to_le_bytes());
        tensors_b.extend_from_slice(&self.tensor_records);

        let mut schedule_b = Vec::new();
        schedule_b.extend_from_slice(&(self.schedule.len() as u32).to_le_bytes());
        for r in &self.schedule {
            for v in [r.t, r.alpha_bar, r.sigma] {
                schedule_b.extend_from_slice(&v.to_le_bytes());
            }
        }

        let mut programs_b = Vec::new();
        programs_b.extend_from_slice(&self.program_count.to_le_bytes());
        programs_b.extend_from_slice(&self.programs);

        let mut sections: Vec<(u16, u16, &[u8])> = alloc::vec![
            (kind::META, SECTION_REQUIRED, &meta_b[..]),
            (kind::GRAPH, SECTION_REQUIRED, &graph_b[..]),
            (kind::TENSORS, SECTION_REQUIRED, &tensors_b[..]),
            (kind::DATA, SECTION_REQUIRED, &self.data[..]),
        ];
        if !self.schedule.is_empty() {
            sections.push((kind::SCHEDULE, 0, &schedule_b[..]));
        }
        sections.push((kind::PROGRAMS, SECTION_REQUIRED, &programs_b[..]));

        let mut out = alloc::vec![0u8; HEADER_LEN + sections.len() * SECTION_ENTRY_LEN];
        let mut table = Vec::new();
        for (k, flags, body) in &sections {
            pad4(&mut out);
            table.push((*k, *flags, out.len() as u32, body.len() as u32));
            out.extend_from_slice(body);
        }
        pad4(&mut out);
        let total = out.len() as u32;
        out[field::MAGIC].copy_from_slice(&MAGIC);
        out[field::VERSION].copy_from_slice(&VERSION.to_le_bytes());
        out[field::HEADER_LEN].copy_from_slice(&(HEADER_LEN as u16).to_le_bytes());
        out[field::TOTAL_LEN].copy_from_slice(&total.to_le_bytes());
        out[field::SECTION_COUNT].copy_from_slice(&(sections.len() as u16).to_le_bytes());
        for (i, (k, flags, off, len)) in table.into_iter().enumerate() {
            let at = HEADER_LEN + i * SECTION_ENTRY_LEN;
            out[at + field::entry::KIND.start..at + field::entry::KIND.end]
                .copy_from_slice(&k.to_le_bytes());
            out[at + field::entry::FLAGS.start..at + field::entry::FLAGS.end]
                .copy_from_slice(&flags.to_le_bytes());
            out[at + field::entry::OFFSET.start..at + field::entry::OFFSET.end]
                .copy_from_slice(&off.to_le_bytes());
            out[at + field::entry::LEN.start..at + field::entry::LEN.end]
                .copy_from_slice(&len.to_le_bytes());
        }
        let crc = crc32(&out[field::CRC_START..]);
        out[field::CRC].copy_from_slice(&crc.to_le_bytes());
        crate::Model::parse(&out)?;
        Ok(out)
    }
}

fn pad4(v: &mut Vec<u8>) {
    while !v.len().is_multiple_of(4) {
        v.push(0);
    }
}

/// Builds one sampler program.
#[derive(Debug, Clone)]
pub struct ProgramBuilder {
    name: String,
    regs: u8,
    out_reg: u8,
    steps: u16,
    evals: u16,
    code: Vec<u8>,
}

impl ProgramBuilder {
    /// A program called `name` (printable ASCII, at most 16 bytes) using `regs` registers;
    /// the output register defaults to 0.
    pub fn new(name: &str, regs: u8) -> Self {
        ProgramBuilder {
            name: name.into(),
            regs,
            out_reg: 0,
            steps: 0,
            evals: 0,
            code: Vec::new(),
        }
    }

    /// Name given at construction.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sets the register holding the final sample.
    pub fn out_reg(&mut self, r: u8) -> &mut Self {
        self.out_reg = r;
        self
    }

    /// Appends `instr` (any instruction, encoded by [`Instr::encode`]) and counts it.
    pub fn push(&mut self, instr: &Instr<'_>) -> &mut Self {
        instr.encode(&mut self.code);
        match instr {
            Instr::Eval { .. } => self.evals = self.evals.wrapping_add(1),
            Instr::Step => self.steps = self.steps.wrapping_add(1),
            Instr::Lin { .. } | Instr::Clamp { .. } => {}
        }
        self
    }

    /// Appends `other`'s instructions and counts (its name and registers are not used): how
    /// an assembler that learns the register count only at the end hands over its code.
    pub fn append(&mut self, other: &ProgramBuilder) -> &mut Self {
        self.code.extend_from_slice(&other.code);
        self.steps = self.steps.wrapping_add(other.steps);
        self.evals = self.evals.wrapping_add(other.evals);
        self
    }

    /// `dst = network(src, time, class)`.
    pub fn eval(&mut self, dst: u8, src: u8, class: ClassSel, time: f32) -> &mut Self {
        self.push(&Instr::Eval {
            dst,
            src,
            class,
            time,
        })
    }

    /// `dst = Σ c·reg (+ noise·z)`.
    pub fn lin(&mut self, dst: u8, terms: &[(u8, f32)], noise: Option<f32>) -> &mut Self {
        let terms = Terms::encode(terms);
        self.push(&Instr::Lin {
            dst,
            noise,
            terms: Terms::from_bytes(&terms),
        })
    }

    /// `reg = clamp(reg, lo, hi)`.
    pub fn clamp(&mut self, reg: u8, lo: f32, hi: f32) -> &mut Self {
        self.push(&Instr::Clamp { reg, lo, hi })
    }

    /// Ends a step.
    pub fn step(&mut self) -> &mut Self {
        self.push(&Instr::Step)
    }

    /// Appends the program record to `out`: the 28-byte header (name NUL-padded to 16 bytes,
    /// registers, output register, counts, flags 0, code length) and the code, as the PROGRAMS
    /// section stores it and [`program::Program::parse`] reads it.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut name = [0u8; program::NAME_LEN];
        for (d, s) in name.iter_mut().zip(self.name.bytes()) {
            *d = s;
        }
        out.extend_from_slice(&name);
        out.push(self.regs);
        out.push(self.out_reg);
        out.extend_from_slice(&self.steps.to_le_bytes());
        out.extend_from_slice(&self.evals.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&(self.code.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.code);
    }

    /// The program record ([`ProgramBuilder::encode`]) in a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(program::field::CODE + self.code.len());
        self.encode(&mut out);
        out
    }

    /// Network evaluations so far.
    pub fn evals(&self) -> u16 {
        self.evals
    }

    /// Steps so far.
    pub fn steps(&self) -> u16 {
        self.steps
    }
}
