//! Training throughput of the CPU backend, for comparison with PyTorch (`bench/torch_train.py`;
//! `bash bench/run.sh` runs both). A benchmark, not a test: nothing here runs under `cargo test`.
//!
//! ```text
//! cargo run --release -p microdiff-trainer --example train_throughput -- \
//!     --shape toy|digits --steps N --threads T [--warmup W]
//! ```
//! Builds a [`Trainer`] on seeded synthetic data of the shape's size, runs `W` warm-up steps,
//! then times `N` full optimiser steps (batch draw, noising, forward, MSE, backward, gradient
//! clipping, AdamW, EMA) on a rayon global pool of `T` threads, and prints one JSON object.
//!
//! FLOPs per step count only the matrix products, exactly: a linear layer `i → o` over a batch
//! of `B` rows costs `2·B·i·o` forward, `2·B·i·o` for its weight gradient and `2·B·i·o` for its
//! input gradient (skipped for the two layers that read the network's inputs, `W_in` and
//! `W_t1`). With `M = Σ i·o` over every linear layer (the class table is a gather, not counted):
//! `flops = 6·B·M − 2·B·(d·h + e·h)`. Elementwise work (activations, layer norms, AdamW, EMA) is
//! left out; it is a few percent of the total at these widths.

use std::time::Instant;

use clap::Parser;
use microdiff_trainer::backend::cpu::Cpu;
use microdiff_trainer::model::MlpConfig;
use microdiff_trainer::optim::OptimConfig;
use microdiff_trainer::process::Process;
use microdiff_trainer::train::{TrainConfig, Trainer};
use serde_json::json;

mod bench_shapes;
use bench_shapes::{Peak, Shape, shape, synthetic};

#[derive(Debug, Parser)]
#[command(about = "Training throughput of the microdiff CPU backend")]
struct Args {
    /// Network shape and batch size.
    #[arg(long, value_enum)]
    shape: Shape,
    /// Timed optimiser steps.
    #[arg(long, default_value_t = 500)]
    steps: u64,
    /// Untimed steps first.
    #[arg(long, default_value_t = 20)]
    warmup: u64,
    /// Threads of rayon's global pool (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

/// Matrix-product FLOPs of one training step (see the module documentation).
fn flops_per_step(c: &MlpConfig, batch: usize) -> f64 {
    let (d, h, f, e) = (c.data_dim, c.hidden, c.ff, c.temb);
    let m = d * h + e * h + h * h + c.blocks * 2 * h * f + h * d;
    let no_dx = d * h + e * h;
    (6 * batch * m - 2 * batch * no_dx) as f64
}

fn main() {
    let args = Args::parse();
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .expect("rayon global pool");
    let (model, batch, cfg_dropout) = shape(args.shape);
    let config = TrainConfig {
        model,
        process: Process::ddpm_default(),
        optim: OptimConfig::default(),
        steps: args.warmup + args.steps,
        batch,
        seed: 1,
        cfg_dropout,
        prediction: None,
    };
    let data = synthetic(&model, 4096);
    let mut trainer = Trainer::new(Cpu, config, data).expect("trainer");
    // Train on one of the pool's workers, so each parallel operation is shared with the other
    // workers directly instead of being handed over from the main thread and waited for; the
    // other workers poll for work meanwhile instead of sleeping between operations.
    let (loss, seconds) = microdiff_trainer::backend::cpu::hot_pool(|| {
        for _ in 0..args.warmup {
            trainer.step().expect("warm-up step");
        }
        let start = Instant::now();
        let mut loss = 0.0;
        for _ in 0..args.steps {
            loss = trainer.step().expect("step");
        }
        (loss, start.elapsed().as_secs_f64())
    });
    let flops = flops_per_step(&model, batch);
    let gflops = flops * args.steps as f64 / seconds / 1e9;
    let peak = Peak::detect();
    let used = threads.min(peak.cores);
    let shape_name = match args.shape {
        Shape::Toy => "toy",
        Shape::Digits => "digits",
    };
    let out = json!({
        "impl": "microdiff",
        "shape": shape_name,
        "threads": threads,
        "batch": batch,
        "params": model.parameter_count(),
        "warmup": args.warmup,
        "steps": args.steps,
        "seconds": seconds,
        "ms_per_step": 1e3 * seconds / args.steps as f64,
        "samples_per_sec": (batch as u64 * args.steps) as f64 / seconds,
        "flops_per_step": flops,
        "gflops_per_sec": gflops,
        "cpu_model": peak.model,
        "cpu_cores": peak.cores,
        "cpu_mhz": peak.mhz,
        "peak_assumption": peak.isa,
        "peak_gflops_machine": peak.gflops(peak.cores),
        "peak_gflops_threads": peak.gflops(used),
        "pct_of_peak": 100.0 * gflops / peak.gflops(used),
        "final_loss": loss,
    });
    println!("{out}");
}
