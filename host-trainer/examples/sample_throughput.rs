//! Batched sampling throughput of the runtime, for comparison with PyTorch
//! (`bench/torch_sample.py`; `bash bench/sample.sh` runs both). A benchmark, not a test: nothing
//! here runs under `cargo test`.
//!
//! ```text
//! cargo run --release -p microdiff-trainer --example sample_throughput -- \
//!     --shape toy|digits [--samples N] [--steps S] [--threads T] [--dtype f32|f16|i8] \
//!     [--train-steps K] [--reference]
//! ```
//! Builds the shape's network (the same [`MlpConfig`] as `train_throughput.rs`), trains it for
//! `K` steps (default 5, only so that the weights are not the initial ones; the work does not
//! depend on them), exports a blob through [`microdiff_trainer::export::blob`] with the
//! `ddpm:S` program (DDPM ancestral on the linear-β DDPM process of T = 1000 steps, `S`
//! trailing timesteps; `bench/torch_sample.py` documents the timesteps and coefficients) and a
//! short `ddpm:W` warm-up program, then times drawing `N` samples, sample `i` with
//! `SampleRequest { seed, stream: i, class: i % 10 }` (class 0 for the unconditional toy shape):
//!
//! * default (`path: "batched"`): one call of [`microdiff_runtime::batch::sample_batch`] over
//!   all `N` samples with `T` worker threads;
//! * `--reference` (`path: "reference"`): the single-sample [`microdiff_runtime::sample`] per
//!   sample, in parallel over samples on a rayon pool of `T` threads, exactly as
//!   `microdiff sample` drew before it used the batched executor (`draw` in
//!   `host-trainer/src/cli/sample.rs` up to commit 7b0e0d6).
//!
//! Before the timed run the same samples are drawn once with the warm-up program (a few steps;
//! untimed). After a batched run the first few samples are redrawn with the single-sample path
//! and compared bit for bit (`reference_check_*` in the output; a mismatch is reported, not
//! fatal).
//!
//! # FLOPs and peak
//! One network evaluation costs `2·M` FLOPs with `M = Σ in·out` over the linear layers (input,
//! the time-embedding MLP, the blocks, the head; the class table is a gather and is not
//! counted): `macs_per_eval = M`. Elementwise work (embeddings, activations, layer norms, the
//! sampler's `LIN`) is left out; it is a few percent at these widths. `gflops_per_sec` is
//! `2·M·N·S / seconds`.
//!
//! `peak_gflops_threads` and `pct_of_peak` are computed as in `train_throughput.rs`: cores ×
//! reported clock × f32 FLOPs per cycle with fused multiply-add (2 FMA units × lanes × 2). The
//! device contract forbids fused multiply-add (`docs/determinism.md`: every multiply and add is
//! rounded separately, so that every target gives the same bits), so each multiply-accumulate
//! takes two instructions on the same two vector units, and the attainable peak for this
//! arithmetic is **half** the FMA peak. Both are reported: `pct_of_peak` (against the FMA
//! peak, comparable with the training benchmark and with PyTorch, which does use FMA) and
//! `pct_of_nofma_peak` (against `peak_nofma_gflops_threads`, the ceiling for the runtime).

use std::fmt::Display;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use microdiff_kernels::Dtype;
use microdiff_runtime::batch::sample_batch;
use microdiff_runtime::{Model, SampleRequest, sample};
use microdiff_trainer::backend::cpu::Cpu;
use microdiff_trainer::export::{self, ExportSpec, TimeTable};
use microdiff_trainer::model::MlpConfig;
use microdiff_trainer::optim::OptimConfig;
use microdiff_trainer::process::Process;
use microdiff_trainer::sampler::{self, SamplerSpec};
use microdiff_trainer::train::{TrainConfig, Trainer};
use rayon::prelude::*;
use serde_json::json;

mod bench_shapes;
use bench_shapes::{Peak, Shape, shape, synthetic};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum WeightDtype {
    /// IEEE binary32 weights.
    F32,
    /// IEEE binary16 weights.
    F16,
    /// int8 weights, one f32 scale per output row.
    I8,
}

impl WeightDtype {
    fn dtype(self) -> Dtype {
        match self {
            WeightDtype::F32 => Dtype::F32,
            WeightDtype::F16 => Dtype::F16,
            WeightDtype::I8 => Dtype::I8,
        }
    }
}

#[derive(Debug, Parser)]
#[command(about = "Batched sampling throughput of the microdiff runtime")]
struct Args {
    /// Network shape.
    #[arg(long, value_enum)]
    shape: Shape,
    /// Samples to draw (timed).
    #[arg(long, default_value_t = 2000)]
    samples: usize,
    /// Steps (= network evaluations per sample) of the `ddpm:S` program.
    #[arg(long, default_value_t = 100)]
    steps: usize,
    /// Steps of the untimed warm-up program (at most --steps).
    #[arg(long, default_value_t = 5)]
    warmup_steps: usize,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// How the blob stores its matrices.
    #[arg(long, value_enum, default_value_t = WeightDtype::F32)]
    dtype: WeightDtype,
    /// Training steps before export (0: the initial weights).
    #[arg(long, default_value_t = 5)]
    train_steps: u64,
    /// Noise seed of the samples.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Time the single-sample path (`microdiff_runtime::sample` per sample, rayon over
    /// samples, as `microdiff sample` drew before the batched executor) instead of the batched
    /// one.
    #[arg(long)]
    reference: bool,
}

/// The blob's data shape for the network.
fn data_shape(s: Shape) -> Vec<u16> {
    match s {
        Shape::Toy => vec![2],
        Shape::Digits => vec![8, 8],
    }
}

/// Multiply-accumulates of one network evaluation (see the module documentation).
fn macs_per_eval(c: &MlpConfig) -> usize {
    let (d, h, f, e) = (c.data_dim, c.hidden, c.ff, c.temb);
    d * h + e * h + h * h + c.blocks * 2 * h * f + h * d
}

/// Prints `what: e` and exits with status 1.
fn die(what: &str, e: impl Display) -> ! {
    eprintln!("sample_throughput: {what}: {e}");
    std::process::exit(1)
}

/// The `ddpm:steps` program for `process` and its name.
fn ddpm_program(
    process: &Process,
    steps: usize,
) -> (String, microdiff_runtime::blob::ProgramBuilder) {
    let spec: SamplerSpec = format!("ddpm:{steps}")
        .parse()
        .unwrap_or_else(|e| die("sampler", e));
    let name = spec.default_name();
    let program =
        sampler::build(process, &spec, &name).unwrap_or_else(|e| die("sampler program", e));
    (name, program)
}

/// The specs of samples `0..n`.
fn specs(n: usize, seed: u64, classes: usize) -> Vec<SampleRequest> {
    (0..n)
        .map(|i| SampleRequest {
            seed,
            stream: i as u32,
            class: if classes > 0 { (i % 10) as u16 } else { 0 },
        })
        .collect()
}

/// The single-sample path `microdiff sample` used before the batched executor (`draw` in
/// `cli/sample.rs` up to commit 7b0e0d6): one arena and one `sample` call per sample, in
/// parallel over samples on rayon's global pool.
fn draw_reference(model: &Model<'_>, program: &str, specs: &[SampleRequest], out: &mut [f32]) {
    let p = model.program(program).unwrap_or_else(|e| die("program", e));
    let d = model.data_len();
    out.par_chunks_mut(d)
        .zip(specs.par_iter())
        .enumerate()
        .try_for_each(|(i, (row, &spec))| {
            let mut arena = vec![0u8; model.arena_bytes()];
            sample(model, p, &mut arena, spec, row).map_err(|e| format!("sample {i}: {e}"))
        })
        .unwrap_or_else(|e| die("reference sampling", e));
}

/// [`sample_batch`] over `specs` with `threads` workers.
fn draw_batched(
    model: &Model<'_>,
    program: &str,
    specs: &[SampleRequest],
    out: &mut [f32],
    threads: usize,
) {
    let p = model.program(program).unwrap_or_else(|e| die("program", e));
    sample_batch(model, p, specs, out, threads).unwrap_or_else(|e| die("batched sampling", e));
}

fn main() {
    let args = Args::parse();
    if args.samples == 0 || args.steps == 0 {
        die("arguments", "--samples and --steps must be at least 1");
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    // Training and the reference path run on rayon's global pool; the batched path gets the
    // thread count as an argument.
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .expect("rayon global pool");

    // The network, briefly trained, exported with the timed and the warm-up programs.
    let (config, batch, cfg_dropout) = shape(args.shape);
    let process = Process::ddpm_default();
    let train = TrainConfig {
        model: config,
        process: process.clone(),
        optim: OptimConfig::default(),
        steps: args.train_steps.max(1),
        batch,
        seed: 1,
        cfg_dropout,
        prediction: None,
    };
    let mut trainer =
        Trainer::new(Cpu, train, synthetic(&config, 4096)).unwrap_or_else(|e| die("trainer", e));
    for _ in 0..args.train_steps {
        trainer.step().unwrap_or_else(|e| die("training step", e));
    }
    let params = trainer.export_params();
    let (name, timed) = ddpm_program(&process, args.steps);
    let warmup_steps = args.warmup_steps.clamp(1, args.steps);
    let mut programs = vec![timed];
    let warmup_name = if warmup_steps == args.steps {
        name.clone()
    } else {
        let (w, p) = ddpm_program(&process, warmup_steps);
        programs.push(p);
        w
    };
    let spec = ExportSpec {
        dtype: args.dtype.dtype(),
        shape: data_shape(args.shape),
        scale: vec![1.0],
        offset: vec![0.0],
        programs,
        // The same network as PyTorch's, time MLP included (no precomputed table).
        time_table: TimeTable::Never,
        schedule: true,
        prediction: None,
    };
    let bytes =
        export::blob(&config, &params, &process, &spec).unwrap_or_else(|e| die("export", e));
    let model = Model::parse(&bytes).unwrap_or_else(|e| die("blob", e));
    let d = model.data_len();
    let n = args.samples;
    let all = specs(n, args.seed, config.classes);
    let mut out = vec![0.0f32; n * d];

    let draw = |program: &str, out: &mut [f32]| {
        if args.reference {
            draw_reference(&model, program, &all, out);
        } else {
            draw_batched(&model, program, &all, out, threads);
        }
    };
    draw(&warmup_name, &mut out);
    let start = Instant::now();
    draw(&name, &mut out);
    let seconds = start.elapsed().as_secs_f64();
    if !out.iter().all(|v| v.is_finite()) {
        die("samples", "not all finite");
    }

    // The batched path promises the single-sample path's bits: check a few samples.
    let (check_n, check_identical) = if args.reference {
        (None, None)
    } else {
        let k = n.min(8);
        let mut again = vec![0.0f32; k * d];
        draw_reference(&model, &name, &all[..k], &mut again);
        let same = again
            .iter()
            .zip(&out[..k * d])
            .all(|(a, b)| a.to_bits() == b.to_bits());
        if !same {
            eprintln!(
                "sample_throughput: warning: the batched samples differ from the single-sample \
                 path's in the first {k}"
            );
        }
        (Some(k), Some(same))
    };

    let evals = (n * args.steps) as f64;
    let macs = macs_per_eval(&config);
    let gflops = 2.0 * macs as f64 * evals / seconds / 1e9;
    let peak = Peak::detect();
    let used = threads.min(peak.cores);
    let peak_threads = peak.gflops(used);
    let peak_nofma = peak_threads / 2.0;
    let shape_name = match args.shape {
        Shape::Toy => "toy",
        Shape::Digits => "digits",
    };
    let json = json!({
        "impl": "microdiff",
        "path": if args.reference { "reference" } else { "batched" },
        "shape": shape_name,
        "dtype": args.dtype.dtype().name(),
        "threads": threads,
        "params": config.parameter_count(),
        "train_steps": args.train_steps,
        "program": name,
        "blob_bytes": bytes.len(),
        "arena_bytes": model.arena_bytes(),
        "samples": n,
        "steps": args.steps,
        "evaluations": n * args.steps,
        "seconds": seconds,
        "samples_per_sec": n as f64 / seconds,
        "evals_per_sec": evals / seconds,
        "macs_per_eval": macs,
        "gflops_per_sec": gflops,
        "cpu_model": peak.model,
        "cpu_cores": peak.cores,
        "cpu_mhz": peak.mhz,
        "peak_assumption": peak.isa,
        "peak_gflops_machine": peak.gflops(peak.cores),
        "peak_gflops_threads": peak_threads,
        "peak_nofma_gflops_threads": peak_nofma,
        "pct_of_peak": 100.0 * gflops / peak_threads,
        "pct_of_nofma_peak": 100.0 * gflops / peak_nofma,
        "reference_check_samples": check_n,
        "reference_check_identical": check_identical,
    });
    println!("{json}");
}
