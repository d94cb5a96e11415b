//! Parity of a CUDA backend with the CPU reference, written once for every device: the
//! emulator (`tests/cuda_emu.rs`, tiers 2 and 3) and a real GPU (`tests/cuda_gpu.rs`, tier 4).
//!
//! [`ops`] runs every [`Backend`] operation on random inputs, generic over the backend;
//! [`compare_ops`] runs it on a device and on the CPU and compares each output under its named
//! tolerance (`|gpu − cpu| ≤ atol + rtol·|cpu|`, llm.c style; the noise bit for bit).
//! [`train`] / [`compare_steps`] do the same for whole training steps.
// Each test crate that includes this module uses a different subset of it.
#![allow(dead_code)]

use std::collections::BTreeMap;

use microdiff_kernels::Activation;
use microdiff_runtime::noise::{Domain, NoiseStream};
use microdiff_trainer::backend::cpu::Cpu;
use microdiff_trainer::backend::{
    AdamStep, AdamW, Backend, GaussNll, Latent, LatentLoss, LayerNorm, Linear, Moments, Nll,
    NllGrads, Observation, ParamGrads, RowNoise, stream_ids,
};
use microdiff_trainer::checkpoint::Checkpoint;
use microdiff_trainer::data::{Toy, toy_labelled};
use microdiff_trainer::model::MlpConfig;
use microdiff_trainer::optim::OptimConfig;
use microdiff_trainer::process::Process;
use microdiff_trainer::train::{RunHeader, TrainConfig, TrainData, Trainer};

/// `|gpu − cpu| ≤ atol + rtol·|cpu|` for every element.
#[derive(Debug, Clone, Copy)]
pub struct Tol {
    /// Absolute part.
    pub atol: f32,
    /// Relative part.
    pub rtol: f32,
}

/// Copies, fills, and the noise: the same bits are the contract.
pub const EXACT: Tol = Tol {
    atol: 0.0,
    rtol: 0.0,
};
/// One to three f32 roundings per element, in the same order on both sides, no FMA on
/// either (the kernels are built with `--fmad=false` / `-ffp-contract=off`; Rust never
/// contracts): bit-identical in principle. 2 ulp (2·2⁻²³) of slack so a compiler's
/// different but legal association does not fail the test, while a wrong formula does.
pub const ELEMENTWISE: Tol = Tol {
    atol: 0.0,
    rtol: 2.4e-7,
};
/// Activations: the CPU uses the project's pure-Rust libm, the kernels
/// CUDA's `expf`/`tanhf`/`sinf`/`cosf` (≤ 2 ulp each per the CUDA C Programming Guide's
/// accuracy tables; the host libm under the emulator). Composed into silu/gelu that is a few
/// ulp; atol covers outputs near zero (gelu of large negative x).
pub const TRANSCENDENTAL: Tol = Tol {
    atol: 1e-6,
    rtol: 1e-5,
};
/// The time embedding: `a = t·expf(…)` with t up to 1000 (DDPM's time value), so one ulp of
/// difference between CUDA's/the host's `expf` and libm's (2⁻²⁴ relative) moves `a`, and so
/// `sin a`/`cos a`, by up to 1000·6e-8 = 6e-5 absolute; CUDA documents `expf` within 2 ulp:
/// 1.2e-4, plus the `sinf`/`cosf` error itself. The embedding is an input feature, trained
/// through; this is a property of the formula at large t, not a kernel bug.
pub const TIME_EMBED: Tol = Tol {
    atol: 2e-4,
    rtol: 1e-5,
};
/// GEMM outputs: f32 dot products of k ≤ 300 terms summed in different orders (cuBLAS / the
/// emulation GEMM vs matrixmultiply's blocked kernels, with FMA on CPUs that have it). The
/// error bound is ≈ k·2⁻²⁴·Σ|aᵢbᵢ| ≈ 300·6e-8·(k/3) ≲ 1e-4 for U(−1, 1) inputs; cancellation
/// makes it absolute, hence atol.
pub const GEMM: Tol = Tol {
    atol: 1e-4,
    rtol: 1e-4,
};
/// Row and column reductions (layer norm's mean/variance as a shared-memory tree vs a
/// sequential loop, bias and parameter gradients): n ≤ 300 terms, same argument as [`GEMM`]
/// with terms of order 1.
pub const REDUCTION: Tol = Tol {
    atol: 1e-5,
    rtol: 1e-4,
};
/// Loss and gradient norm: f32 per-block tree partials added in f64 on the host, vs f64
/// per-chunk sums on the CPU: relative error ≈ log2(block)·2⁻²⁴ ≈ 5e-7; 1e-5 leaves room.
pub const SCALAR_SUM: Tol = Tol {
    atol: 0.0,
    rtol: 1e-5,
};
/// Two training steps end to end. Gradients pass through ~20 ops (each within the tolerances
/// above) and AdamW divides m by √v, which amplifies relative gradient differences only where
/// a gradient is near 0; the EMA and the moments inherit them. With lr 1e-2 a step moves a
/// parameter by up to ~1e-2, so atol 2e-5 is 0.2 % of a step. Measured in emulation: worst
/// 5.5e-6 (DDPM parameters), so ~4× headroom; max_rel is large only on near-zero elements.
pub const STEP: Tol = Tol {
    atol: 2e-5,
    rtol: 1e-3,
};

/// A deterministic U(−1, 1) source (inputs only; not the project's noise).
pub struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        // SplitMix64.
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.next()).collect()
    }
}

/// One shape of the op tests.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Rows (batch).
    b: usize,
    /// Linear inputs.
    i: usize,
    /// Linear outputs.
    o: usize,
    /// Layer-norm width.
    n: usize,
    /// Class-table rows.
    classes: usize,
    /// Length of the long vectors (reductions, noise, optimiser).
    long: usize,
}

pub const SHAPES: [Shape; 2] = [
    // Small and odd: fewer elements than a block everywhere.
    Shape {
        b: 7,
        i: 5,
        o: 3,
        n: 5,
        classes: 3,
        long: 1001,
    },
    // Wider than a block (n = 300 > the 256-thread layer-norm block: strided rows), and long
    // vectors beyond one thread per element of the 256×256 reduction grid.
    Shape {
        b: 33,
        i: 70,
        o: 45,
        n: 300,
        classes: 11,
        long: 70_001,
    },
];

/// Named outputs of one op run: `(op, tolerance, values)`.
pub type Outputs = Vec<(String, Tol, Vec<f32>)>;

/// Every backend operation on inputs drawn from `seed` at shape `s`; the same code for every
/// backend.
pub fn ops<B: Backend>(be: &B, s: Shape, seed: u64) -> Outputs {
    let mut r = Rng(seed);
    let mut out: Outputs = Vec::new();
    let mut put = |name: &str, tol: Tol, v: Vec<f32>| out.push((name.to_string(), tol, v));
    let Shape {
        b,
        i,
        o,
        n,
        classes,
        long,
    } = s;

    // Memory.
    put("zeros", EXACT, be.download(&be.zeros(long)));
    let host = r.vec(long);
    let mut buf = be.upload(&host);
    put("upload_download", EXACT, be.download(&buf));
    let host2 = r.vec(long);
    be.write(&mut buf, &host2);
    put("write", EXACT, be.download(&buf));
    be.fill_zero(&mut buf);
    put("fill_zero", EXACT, be.download(&buf));
    assert_eq!(be.len(&buf), long);

    // Linear layers: parameters at offsets inside one buffer, as in the model.
    let (w, bias) = (3, 3 + o * i);
    let params = be.upload(&r.vec(3 + o * i + o + 2));
    let x = be.upload(&r.vec(b * i));
    let layer = |bias| Linear { w, bias, b, i, o };
    for (name, bias) in [("linear_fwd", None), ("linear_fwd_bias", Some(bias))] {
        let mut y = be.upload(&r.vec(b * o)); // garbage the op must overwrite
        be.linear_fwd(layer(bias), &params, &x, &mut y);
        put(name, GEMM, be.download(&y));
    }
    let dy = be.upload(&r.vec(b * o));
    for (name, with_dx, bias) in [
        ("linear_bwd", true, Some(bias)),
        ("linear_bwd_no_dx_no_bias", false, None),
    ] {
        let mut dx = be.upload(&r.vec(b * i));
        let mut grads = be.upload(&r.vec(3 + o * i + o + 2)); // += accumulates onto these
        let p = ParamGrads {
            params: &params,
            grads: &mut grads,
        };
        be.linear_bwd(layer(bias), p, &x, &dy, with_dx.then_some(&mut dx));
        if with_dx {
            put(&format!("{name}_dx"), GEMM, be.download(&dx));
        }
        put(&format!("{name}_grads"), GEMM, be.download(&grads));
    }

    // Activations, over values wide enough to reach every branch (relu's 0, gelu's tails).
    let xa = be.upload(&r.vec(b * o).iter().map(|v| 6.0 * v).collect::<Vec<_>>());
    let dya = be.upload(&r.vec(b * o));
    for act in (0..=255u8).filter_map(Activation::from_code) {
        let tol = match act {
            Activation::Identity | Activation::Relu => ELEMENTWISE,
            _ => TRANSCENDENTAL,
        };
        let mut y = be.zeros(b * o);
        be.act_fwd(act, &xa, &mut y);
        put(&format!("act_fwd_{}", act.name()), tol, be.download(&y));
        let mut dx = be.upload(&r.vec(b * o));
        be.act_bwd(act, &xa, &dya, &mut dx);
        put(&format!("act_bwd_{}", act.name()), tol, be.download(&dx));
    }

    // Layer norm, γ and β at offsets of the parameters (β before γ, to test both orders).
    let (beta, gamma) = (1, 1 + n);
    let mut lnp = r.vec(1 + 2 * n);
    for g in &mut lnp[gamma..gamma + n] {
        *g += 1.5; // γ around 1, as trained
    }
    let lnp = be.upload(&lnp);
    let xl = be.upload(
        &r.vec(b * n)
            .iter()
            .map(|v| 3.0 * v + 0.5)
            .collect::<Vec<_>>(),
    );
    let ln = LayerNorm {
        gamma,
        beta,
        eps: 1e-5,
        b,
        n,
    };
    let mut y = be.zeros(b * n);
    let mut stats = be.zeros(2 * b);
    be.layernorm_fwd(ln, &lnp, &xl, &mut y, &mut stats);
    put("layernorm_fwd_y", REDUCTION, be.download(&y));
    put("layernorm_fwd_stats", REDUCTION, be.download(&stats));
    // The backward pass gets the same saved statistics on every backend (the CPU's).
    let stats = {
        let cpu_x = Cpu.upload(&be.download(&xl));
        let cpu_p = Cpu.upload(&be.download(&lnp));
        let (mut y, mut st) = (Cpu.zeros(b * n), Cpu.zeros(2 * b));
        Cpu.layernorm_fwd(ln, &cpu_p, &cpu_x, &mut y, &mut st);
        be.upload(&st)
    };
    let dyl = be.upload(&r.vec(b * n));
    let mut dx = be.upload(&r.vec(b * n)); // += accumulates
    let mut grads = be.upload(&r.vec(1 + 2 * n));
    let p = ParamGrads {
        params: &lnp,
        grads: &mut grads,
    };
    be.layernorm_bwd(ln, p, &xl, &stats, &dyl, &mut dx);
    put("layernorm_bwd_dx", REDUCTION, be.download(&dx));
    put("layernorm_bwd_grads", REDUCTION, be.download(&grads));

    // Time embedding over the range of every process's time value (0..1000).
    let t = be.upload(
        &r.vec(b)
            .iter()
            .map(|v| 500.0 * (v + 1.0))
            .collect::<Vec<_>>(),
    );
    let dim = 2 * n.div_ceil(2);
    let mut te = be.upload(&r.vec(b * dim));
    be.time_embed(&t, &mut te, dim, 10_000.0);
    put("time_embed", TIME_EMBED, be.download(&te));

    // Class embeddings: table at an offset, classes repeating.
    let table = 2;
    let tparams = be.upload(&r.vec(2 + classes * n));
    let cls: Vec<f32> = (0..b)
        .map(|_| (((r.next() + 1.0) * 0.5 * classes as f32) as usize).min(classes - 1) as f32)
        .collect();
    let cls = be.upload(&cls);
    let mut ye = be.upload(&r.vec(b * n));
    be.embed_add(&tparams, table, &cls, &mut ye, n);
    put("embed_add", ELEMENTWISE, be.download(&ye));
    let mut tg = be.upload(&r.vec(2 + classes * n));
    be.embed_add_bwd(&cls, &dyl, &mut tg, table, classes, n);
    put("embed_add_bwd", REDUCTION, be.download(&tg));

    // Element-wise.
    let mut ya = be.upload(&r.vec(long));
    let xb = be.upload(&r.vec(long));
    be.add_assign(&mut ya, &xb);
    put("add_assign", ELEMENTWISE, be.download(&ya));
    let mut yc = be.upload(&r.vec(long));
    be.copy(&xb, &mut yc);
    put("copy", EXACT, be.download(&yc));
    be.scale(&mut ya, -0.37);
    put("scale", ELEMENTWISE, be.download(&ya));

    // Noising.
    let x0 = be.upload(&r.vec(b * n));
    let eps = be.upload(&r.vec(b * n));
    let coef = be.upload(&r.vec(4 * b));
    let (mut xt, mut target) = (be.zeros(b * n), be.zeros(b * n));
    be.noise_and_target(&x0, &eps, &coef, &mut xt, &mut target, n);
    put("noise_and_target_xt", ELEMENTWISE, be.download(&xt));
    put("noise_and_target_target", ELEMENTWISE, be.download(&target));

    // Loss and norm over long vectors.
    let pred = be.upload(&r.vec(long));
    let tgt = be.upload(&r.vec(long));
    let mut d = be.zeros(long);
    let loss = be.mse(&pred, &tgt, &mut d);
    put("mse_loss", SCALAR_SUM, vec![loss]);
    put("mse_grad", ELEMENTWISE, be.download(&d));
    put("norm", SCALAR_SUM, vec![be.norm(&pred)]);

    // Optimiser: m, v as after some steps (v ≥ 0), mask of 0s and 1s.
    let hp = AdamW {
        weight_decay: 0.01,
        ..AdamW::default()
    };
    let mut p = be.upload(&r.vec(long));
    let g = be.upload(&r.vec(long));
    let mut m = be.upload(&r.vec(long).iter().map(|v| 0.1 * v).collect::<Vec<_>>());
    let mut v = be.upload(&r.vec(long).iter().map(|v| 0.01 * v * v).collect::<Vec<_>>());
    let mask = be.upload(
        &r.vec(long)
            .iter()
            .map(|v| if *v > 0.0 { 1.0 } else { 0.0 })
            .collect::<Vec<_>>(),
    );
    let step = AdamStep {
        hp,
        step: 7,
        lr: 3e-3,
    };
    let moments = Moments {
        m: &mut m,
        v: &mut v,
    };
    be.adamw(&mut p, &g, moments, &mask, step);
    put("adamw_params", ELEMENTWISE, be.download(&p));
    put("adamw_m", ELEMENTWISE, be.download(&m));
    put("adamw_v", ELEMENTWISE, be.download(&v));
    let mut ema = be.upload(&r.vec(long));
    be.ema(&mut ema, &p, 0.999);
    put("ema", ELEMENTWISE, be.download(&ema));

    // Noise: the runtime's counter-based Gaussian, bit for bit.
    let mut z = be.zeros(long);
    be.fill_normal(
        &mut z,
        &NoiseStream::new(seed ^ 0xABCD, 17, Domain::TrainNoise),
        123,
    );
    put("fill_normal", EXACT, be.download(&z));

    // The zoo's operations (VAE latent and likelihood, RBM sampling and update).
    let lat = Latent {
        rows: b,
        dim: o,
        stride: o + 2,
    };
    let h = be.upload(&r.vec(b * 2 * o));
    let eps = be.upload(&r.vec(b * o));
    let mut zl = be.upload(&r.vec(b * (o + 2))); // the columns after `dim` must survive
    be.reparam(lat, &h, &eps, &mut zl);
    put("reparam", TRANSCENDENTAL, be.download(&zl));
    let dz = be.upload(&r.vec(b * (o + 2)));
    for (name, loss) in [
        ("kl", LatentLoss::Kl { scale: 0.25 }),
        (
            "sampled",
            LatentLoss::Sampled {
                scale: 0.25,
                standard_prior: false,
            },
        ),
        (
            "sampled_prior",
            LatentLoss::Sampled {
                scale: 0.25,
                standard_prior: true,
            },
        ),
    ] {
        let mut dh = be.upload(&r.vec(b * 2 * o));
        let total = be.reparam_bwd(lat, &h, &eps, &dz, &mut dh, loss);
        put(
            &format!("reparam_bwd_{name}"),
            TRANSCENDENTAL,
            be.download(&dh),
        );
        // Sums of terms of both signs: cancellation makes the error absolute.
        put(&format!("reparam_{name}_loss"), REDUCTION, vec![total]);
    }
    let zg = be.upload(&r.vec(b * o));
    let mut dzg = be.upload(&r.vec(b * o)); // += accumulates
    let mut dhg = be.upload(&r.vec(b * 2 * o));
    let gn = GaussNll {
        rows: b,
        dim: o,
        scale: 0.5,
    };
    let total = be.gauss_nll(gn, &zg, &h, &mut dzg, &mut dhg);
    put("gauss_nll", SCALAR_SUM, vec![total]);
    put("gauss_nll_dz", TRANSCENDENTAL, be.download(&dzg));
    put("gauss_nll_dh", TRANSCENDENTAL, be.download(&dhg));
    let logits = be.upload(&r.vec(b * n).iter().map(|v| 3.0 * v).collect::<Vec<_>>());
    let xg = be.upload(&r.vec(b * n));
    let xb = be.upload(
        &r.vec(b * n)
            .iter()
            .map(|&v| if v > 0.0 { 1.0 } else { 0.0 })
            .collect::<Vec<_>>(),
    );
    let nparams = be.upload(&r.vec(2 + n).iter().map(|v| 0.5 * v).collect::<Vec<_>>());
    for (name, obs, x) in [
        ("gaussian", Observation::Gaussian { log_sigma: 2 }, &xg),
        ("bernoulli", Observation::Bernoulli, &xb),
    ] {
        let mut grads = be.upload(&r.vec(2 + n));
        let mut d_out = be.zeros(b * n);
        let nll = Nll {
            obs,
            rows: b,
            dim: n,
            scale: 1.0 / b as f32,
        };
        let g = NllGrads {
            params: &nparams,
            grads: &mut grads,
            d_out: &mut d_out,
        };
        let loss = be.nll(nll, x, &logits, g);
        put(&format!("nll_{name}"), SCALAR_SUM, vec![loss]);
        put(
            &format!("nll_{name}_d_out"),
            TRANSCENDENTAL,
            be.download(&d_out),
        );
        put(&format!("nll_{name}_grads"), REDUCTION, be.download(&grads));
    }
    let probs = be.upload(
        &r.vec(b * n)
            .iter()
            .map(|v| 0.5 * (v + 1.0))
            .collect::<Vec<_>>(),
    );
    let streams = be.upload(&stream_ids((0..b as u32).map(|k| k * 7919 + u32::MAX / 3)));
    let mut draws = be.zeros(b * n);
    let noise = RowNoise {
        seed: seed ^ 0x5EED,
        domain: Domain::TrainNoise,
        streams: &streams,
        draw: 0x3000_0001,
        offset: 11,
    };
    be.bernoulli(&probs, &mut draws, noise);
    put("bernoulli", EXACT, be.download(&draws));
    let xt = be.upload(&r.vec(b * o));
    let mut yt = be.upload(&r.vec(b * i));
    let layer_t = Linear {
        w,
        bias: Some(1),
        b,
        i,
        o,
    };
    be.linear_t_fwd(layer_t, &params, &xt, &mut yt);
    put("linear_t_fwd", GEMM, be.download(&yt));
    let mut gs = be.upload(&r.vec(n + 3));
    be.col_sum(&x0, n, -0.3, &mut gs, 3);
    put("col_sum", REDUCTION, be.download(&gs));
    let mut ps = be.upload(&r.vec(long));
    be.sgd(&mut ps, &g, &mask, 0.05, 0.01);
    put("sgd", ELEMENTWISE, be.download(&ps));

    be.check().expect("backend error");
    out
}

/// Worst differences of one comparison.
#[derive(Debug, Default, Clone, Copy)]
pub struct Diff {
    /// Largest |gpu − cpu|.
    pub max_abs: f32,
    /// Largest |gpu − cpu| / |cpu| over nonzero references.
    pub max_rel: f32,
    /// Every element within tolerance.
    pub ok: bool,
}

pub fn diff(cpu: &[f32], gpu: &[f32], tol: Tol) -> Diff {
    let mut d = Diff {
        ok: cpu.len() == gpu.len(),
        ..Diff::default()
    };
    for (&c, &g) in cpu.iter().zip(gpu) {
        if tol.atol == 0.0 && tol.rtol == 0.0 {
            // Bit for bit (also tells -0.0 from 0.0 and NaN payloads apart).
            d.ok &= c.to_bits() == g.to_bits();
        }
        let e = (g - c).abs();
        // NaN anywhere (e.g. poisoned memory read) fails.
        d.ok &= e <= tol.atol + tol.rtol * c.abs();
        d.max_abs = d.max_abs.max(if e.is_nan() { f32::INFINITY } else { e });
        if c != 0.0 {
            d.max_rel = d.max_rel.max(e / c.abs());
        }
    }
    d
}

/// Runs [`ops`] on `gpu` and on the CPU at every shape, prints one
/// `cuda-report: {tag} op=… max_abs=… max_rel=… ok|FAIL` line per op, and fails if any op is
/// outside its tolerance.
pub fn compare_ops<B: Backend>(gpu: &B, tag: &str) {
    let mut worst: BTreeMap<String, Diff> = BTreeMap::new();
    for (k, &s) in SHAPES.iter().enumerate() {
        let seed = 100 + k as u64;
        let reference = ops(&Cpu, s, seed);
        let device = ops(gpu, s, seed);
        assert_eq!(reference.len(), device.len());
        for ((name, tol, c), (name_g, _, g)) in reference.iter().zip(&device) {
            assert_eq!(name, name_g);
            let d = diff(c, g, *tol);
            if !d.ok {
                println!(
                    "{name} at {s:?}: max_abs {} max_rel {}",
                    d.max_abs, d.max_rel
                );
            }
            let w = worst.entry(name.clone()).or_insert(Diff {
                ok: true,
                ..Diff::default()
            });
            w.max_abs = w.max_abs.max(d.max_abs);
            w.max_rel = w.max_rel.max(d.max_rel);
            w.ok &= d.ok;
        }
    }
    let mut failed = Vec::new();
    for (name, d) in &worst {
        println!(
            "cuda-report: {tag} op={name} max_abs={:e} max_rel={:e} {}",
            d.max_abs,
            d.max_rel,
            if d.ok { "ok" } else { "FAIL" }
        );
        if !d.ok {
            failed.push(name.as_str());
        }
    }
    assert!(failed.is_empty(), "ops outside tolerance: {failed:?}");
}

pub fn step_config(process: Process, act: Activation, classes: usize) -> TrainConfig {
    TrainConfig {
        model: MlpConfig {
            data_dim: 2,
            hidden: 40,
            ff: 72,
            temb: 16,
            blocks: 2,
            classes,
            act,
        },
        process,
        optim: OptimConfig {
            lr: 1e-2,
            warmup: 0, // full-size updates from step 1, so parameter differences show
            ema_decay: 0.9,
            ..OptimConfig::default()
        },
        steps: 2,
        batch: 19,
        seed: 11,
        cfg_dropout: if classes > 0 { 0.5 } else { 0.0 },
        prediction: None,
    }
}

/// The step tests' data: two moons, labelled when the model is class-conditional.
pub fn moons(config: &TrainConfig) -> TrainData {
    let ds = toy_labelled(Toy::TwoMoons, 500, 3);
    TrainData {
        x: ds.x,
        dim: 2,
        labels: (config.model.classes > 0).then_some(ds.labels.expect("labelled")),
    }
}

/// Runs `config.steps` steps on `be`; the same code for every backend.
pub fn train<B: Backend>(be: B, config: &TrainConfig) -> (Vec<f32>, Checkpoint<RunHeader>) {
    let mut t = Trainer::new(be, config.clone(), moons(config)).expect("trainer");
    let losses = (0..config.steps).map(|_| t.step().expect("step")).collect();
    (losses, t.checkpoint())
}

/// Two steps of each objective (DDPM, VP, VE, flow, class-conditional DDPM with guidance
/// dropout) on `make()` and on the CPU; prints `cuda-report: {tag} objective=… …` lines and
/// fails if loss, parameters, EMA or moments leave [`STEP`].
pub fn compare_steps<B: Backend>(make: impl Fn() -> B, tag: &str) {
    let cases = [
        ("ddpm", Process::ddpm_default(), Activation::Silu, 0),
        ("vp", Process::vp_default(), Activation::GeluTanh, 0),
        ("ve", Process::ve_default(5.0), Activation::Silu, 0),
        ("flow", Process::Flow, Activation::Relu, 0),
        (
            "ddpm_conditional",
            Process::ddpm_default(),
            Activation::Silu,
            2,
        ),
    ];
    let mut failed = Vec::new();
    for (name, process, act, classes) in cases {
        let config = step_config(process, act, classes);
        let (loss_c, ck_c) = train(Cpu, &config);
        let (loss_g, ck_g) = train(make(), &config);
        let mut w = Diff {
            ok: true,
            ..Diff::default()
        };
        for (what, c, g) in [
            ("loss", &loss_c, &loss_g),
            ("params", &ck_c.params, &ck_g.params),
            ("ema", &ck_c.ema, &ck_g.ema),
            ("m", &ck_c.m, &ck_g.m),
            ("v", &ck_c.v, &ck_g.v),
        ] {
            let d = diff(c, g, STEP);
            println!(
                "{name} {what}: max_abs {:e} max_rel {:e}",
                d.max_abs, d.max_rel
            );
            w.max_abs = w.max_abs.max(d.max_abs);
            w.max_rel = w.max_rel.max(d.max_rel);
            w.ok &= d.ok;
        }
        // The steps must have moved the parameters, or the comparison proves little.
        let init = config.model.init(config.seed);
        assert!(ck_c.params.iter().zip(&init).any(|(a, b)| a != b));
        println!(
            "cuda-report: {tag} objective={name} max_abs={:e} max_rel={:e} {}",
            w.max_abs,
            w.max_rel,
            if w.ok { "ok" } else { "FAIL" }
        );
        if !w.ok {
            failed.push(name);
        }
    }
    assert!(failed.is_empty(), "steps outside tolerance: {failed:?}");
}
