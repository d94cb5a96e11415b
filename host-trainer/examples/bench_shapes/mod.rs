//! What the two throughput benchmarks (`train_throughput.rs`, `sample_throughput.rs`) share:
//! the two network shapes, the processor's nominal peak, and the seeded synthetic data. Not an
//! example itself (no `main.rs`): each benchmark includes it with `mod bench_shapes;`.

use clap::ValueEnum;
use microdiff_kernels::Activation;
use microdiff_runtime::noise::{Domain, NoiseStream};
use microdiff_trainer::model::MlpConfig;
use microdiff_trainer::train::TrainData;

/// The benchmark networks.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shape {
    /// 2-D toy network: width 128, ff 256, batch 128, unconditional.
    Toy,
    /// 8×8 digits network: width 256, ff 512, batch 256, 10 classes, guidance dropout 0.1.
    Digits,
}

/// The shape's network, batch and guidance dropout.
pub fn shape(s: Shape) -> (MlpConfig, usize, f32) {
    match s {
        Shape::Toy => (
            MlpConfig {
                data_dim: 2,
                hidden: 128,
                ff: 256,
                temb: 32,
                blocks: 3,
                classes: 0,
                act: Activation::Silu,
            },
            128,
            0.0,
        ),
        Shape::Digits => (
            MlpConfig {
                data_dim: 64,
                hidden: 256,
                ff: 512,
                temb: 32,
                blocks: 3,
                classes: 10,
                act: Activation::Silu,
            },
            256,
            0.1,
        ),
    }
}

/// What /proc/cpuinfo says about the processor, and the peak it implies.
pub struct Peak {
    pub model: String,
    pub cores: usize,
    pub mhz: f64,
    pub isa: &'static str,
    pub flops_per_cycle: f64,
}

impl Peak {
    pub fn detect() -> Peak {
        let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |name: &str| {
            info.lines()
                .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        };
        let cores = info
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count()
            .max(1);
        let flags: Vec<String> = field("flags")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let has = |f: &str| flags.iter().any(|x| x == f);
        // Two FMA units per core assumed (server cores); an FMA is 2 flops per f32 lane.
        let (isa, flops_per_cycle) = if has("avx512f") {
            ("avx512f: 2 FMA units x 16 f32 lanes x 2 flops", 64.0)
        } else if has("avx2") && has("fma") {
            ("avx2+fma: 2 FMA units x 8 f32 lanes x 2 flops", 32.0)
        } else {
            ("sse: 2 units x 4 f32 lanes x 2 flops", 16.0)
        };
        Peak {
            model: field("model name").unwrap_or_else(|| "unknown".into()),
            cores,
            mhz: field("cpu MHz").and_then(|m| m.parse().ok()).unwrap_or(0.0),
            isa,
            flops_per_cycle,
        }
    }

    /// Peak GFLOP/s of `cores` cores at the reported clock.
    pub fn gflops(&self, cores: usize) -> f64 {
        cores as f64 * self.mhz / 1000.0 * self.flops_per_cycle
    }
}

/// Seeded synthetic examples (standard normal values; uniform labels when conditional).
pub fn synthetic(c: &MlpConfig, n: usize) -> TrainData {
    let rng = NoiseStream::new(12345, 0, Domain::TrainData);
    let x = (0..n * c.data_dim)
        .map(|j| rng.normal(0, j as u32))
        .collect();
    let labels = (c.classes > 0).then(|| {
        (0..n)
            .map(|i| {
                ((rng.uniform(1, i as u32) * c.classes as f32) as usize).min(c.classes - 1) as u16
            })
            .collect()
    });
    TrainData {
        x,
        dim: c.data_dim,
        labels,
    }
}
