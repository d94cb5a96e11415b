//! Every kernel of `kernels/cuda`, run by the emulator, against a plain Rust reference with
//! the CPU backend's formulas (`host-trainer/src/backend/cpu/`) or the `microdiff_kernels` /
//! `microdiff_runtime` function it ports.
//!
//! Each comparison prints a machine-readable line that `cargo xtask cuda` collects:
//! `cuda-report: emu kernel=md_x max_abs=.. max_rel=.. ok` (or `FAIL`).
//! Tolerances are `|got − want| ≤ atol + rtol·|want|` (llm.c's check), named below.

use microdiff_cuda_emu::{Arg, DevPtr, Emulator, LaunchConfig};
use microdiff_kernels::{Activation, time_embedding};
use microdiff_runtime::noise::{Domain, NoiseStream};

/// Bit-exact: kernels with no transcendental and the CPU's operation order (no FMA on
/// either side: NVRTC `--fmad=false`, the emulator `-ffp-contract=off`).
const EXACT: Tol = Tol {
    atol: 0.0,
    rtol: 0.0,
};

/// Activations: glibc's `expf`/`tanhf` (the emulator) and libm's (the CPU) are each within
/// about 1 ulp, so results differ by a few ulp (2⁻²³ ≈ 1.2e-7 relative each): rtol 8 ulp; the
/// atol covers derivatives that cross zero, where one ulp of tanh is large relative to the
/// result (|x| ≤ 8 here, so terms are O(1) and 8 ulp of them is below 1e-6).
const ACT: Tol = Tol {
    atol: 1e-6,
    rtol: 1e-6,
};

/// Time embedding: `a = t·expf(..)`, so one ulp of difference between glibc's and libm's
/// `expf` becomes up to one ulp of `a` (ulp(1000) = 6.1e-5 for t ≤ 1000 here), and sin/cos are
/// 1-Lipschitz: atol two ulps of `a` at 1000. (Measured: 3.8e-6.)
const TIME_EMBED: Tol = Tol {
    atol: 1.3e-4,
    rtol: 0.0,
};

/// Block reductions (layer norm statistics, loss and norm partials) add in a tree instead of
/// sequentially: the difference is bounded by ~n·2⁻²⁴ relative to Σ|x| (n ≤ 1024 here →
/// 6e-5 worst case; typical random-sign data is far below). rtol 2e-5 with atol 2e-5 for
/// outputs near zero (layer-norm outputs and gradients are O(1)).
const REDUCTION: Tol = Tol {
    atol: 2e-5,
    rtol: 2e-5,
};

#[derive(Clone, Copy)]
struct Tol {
    atol: f64,
    rtol: f64,
}

/// Compares, prints the report line, and fails the test on any element outside the tolerance
/// (NaN included: a NaN never passes).
fn check(kernel: &str, got: &[f32], want: &[f32], tol: Tol) {
    assert_eq!(got.len(), want.len(), "{kernel}: lengths");
    let (mut max_abs, mut max_rel) = (0.0f64, 0.0f64);
    let mut bad = None;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let (g64, w64) = (f64::from(g), f64::from(w));
        let same = g.to_bits() == w.to_bits() || (g == w);
        let err = if same { 0.0 } else { (g64 - w64).abs() };
        // A NaN on either side is an infinite error, so it can never pass.
        let err = if err.is_nan() { f64::INFINITY } else { err };
        max_abs = max_abs.max(err);
        if w64 != 0.0 {
            max_rel = max_rel.max(err / w64.abs());
        }
        if !same && err > tol.atol + tol.rtol * w64.abs() && bad.is_none() {
            bad = Some((i, g, w));
        }
    }
    let verdict = if bad.is_none() { "ok" } else { "FAIL" };
    println!(
        "cuda-report: emu kernel={kernel} n={} max_abs={max_abs:.3e} max_rel={max_rel:.3e} {verdict}",
        got.len()
    );
    if let Some((i, g, w)) = bad {
        panic!(
            "{kernel}: element {i}: got {g:e} ({:#010x}), want {w:e} ({:#010x}); \
             atol {:e} rtol {:e}",
            g.to_bits(),
            w.to_bits(),
            tol.atol,
            tol.rtol
        );
    }
}

/// Deterministic test data: standard normals times `scale` from the runtime's noise.
fn data(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let s = NoiseStream::new(seed, 0, Domain::TrainNoise);
    (0..n).map(|j| s.normal(0, j as u32) * scale).collect()
}

struct Dev {
    emu: Emulator,
}

impl Dev {
    fn new() -> Self {
        Dev {
            emu: Emulator::new(),
        }
    }
    fn up(&self, v: &[f32]) -> DevPtr {
        self.emu.upload_f32(v).unwrap()
    }
    fn down(&self, p: DevPtr, n: usize) -> Vec<f32> {
        self.emu.download_f32(p.0, n).unwrap()
    }
    fn run(&self, kernel: &str, cfg: LaunchConfig, args: &[Arg]) {
        self.emu.launch(kernel, cfg, args).unwrap();
    }
}

fn p(d: DevPtr) -> Arg {
    Arg::Ptr(d.0)
}
fn i(n: usize) -> Arg {
    Arg::I32(n as i32)
}

/// An odd-sized grid smaller than the work, so the grid-stride loops wrap.
const GRID: LaunchConfig = LaunchConfig::linear(3, 96, 0);

#[test]
fn elementwise() {
    let d = Dev::new();
    let n = 1001;
    let (a, b) = (data(1, n, 1.0), data(2, n, 3.0));
    let y = d.up(&a);
    d.run("md_fill", GRID, &[p(y), Arg::F32(-2.5), i(n)]);
    check("md_fill", &d.down(y, n), &vec![-2.5; n], EXACT);

    let (y, x) = (d.up(&a), d.up(&b));
    d.run("md_add_assign", GRID, &[p(y), p(x), i(n)]);
    let want: Vec<f32> = a.iter().zip(&b).map(|(a, b)| a + b).collect();
    check("md_add_assign", &d.down(y, n), &want, EXACT);

    let y = d.up(&a);
    d.run("md_scale", GRID, &[p(y), Arg::F32(0.37), i(n)]);
    let want: Vec<f32> = a.iter().map(|a| a * 0.37).collect();
    check("md_scale", &d.down(y, n), &want, EXACT);
}

#[test]
fn bias_add_and_grad() {
    let d = Dev::new();
    let (rows, cols) = (37, 45);
    let (ya, bias, dy) = (
        data(3, rows * cols, 1.0),
        data(4, cols, 1.0),
        data(5, rows * cols, 1.0),
    );
    // The bias as a view at an offset of a bigger "parameter" buffer.
    let mut params = data(6, 10, 1.0);
    params.extend(&bias);
    let (y, pb) = (d.up(&ya), d.up(&params));
    d.run(
        "md_bias_add",
        GRID,
        &[p(y), Arg::Ptr(pb.0 + 40), i(rows), i(cols)],
    );
    let want: Vec<f32> = ya
        .iter()
        .enumerate()
        .map(|(k, v)| v + bias[k % cols])
        .collect();
    check("md_bias_add", &d.down(y, rows * cols), &want, EXACT);

    let g0 = data(7, cols, 0.1);
    let (dyp, g) = (d.up(&dy), d.up(&g0));
    d.run("md_bias_grad", GRID, &[p(dyp), p(g), i(rows), i(cols)]);
    let want: Vec<f32> = (0..cols)
        .map(|c| {
            let mut s = 0.0f32;
            for r in 0..rows {
                s += dy[r * cols + c];
            }
            g0[c] + s
        })
        .collect();
    check("md_bias_grad", &d.down(g, cols), &want, EXACT);
}

#[test]
fn activations() {
    let d = Dev::new();
    let n = 4099;
    let mut xs = data(8, n, 3.0);
    // Edge values: zeros of both signs, the saturation ranges.
    xs[..8].copy_from_slice(&[0.0, -0.0, 8.0, -8.0, 1e-3, -1e-3, 0.5, -0.75]);
    let gy = data(9, n, 1.0);
    let (x, dy) = (d.up(&xs), d.up(&gy));
    let y = d.emu.alloc(n * 4).unwrap();
    for act in [
        Activation::Identity,
        Activation::Relu,
        Activation::Silu,
        Activation::GeluTanh,
    ] {
        let code = Arg::I32(i32::from(act.code()));
        d.run("md_act_fwd", GRID, &[code, p(x), p(y), i(n)]);
        let want: Vec<f32> = xs.iter().map(|&v| act.apply(v)).collect();
        let tol = if matches!(act, Activation::Identity | Activation::Relu) {
            EXACT
        } else {
            ACT
        };
        check("md_act_fwd", &d.down(y, n), &want, tol);

        d.run("md_act_bwd", GRID, &[code, p(x), p(dy), p(y), i(n)]);
        let want: Vec<f32> = xs.iter().zip(&gy).map(|(&v, &g)| g * act.grad(v)).collect();
        check("md_act_bwd", &d.down(y, n), &want, tol);
    }
    // An unknown activation code gives NaN, never a plausible number.
    d.run("md_act_fwd", GRID, &[Arg::I32(9), p(x), p(y), i(n)]);
    assert!(d.down(y, n).iter().all(|v| v.is_nan()));
}

/// The CPU backend's layer norm forward for one row.
fn layernorm_row(x: &[f32], g: &[f32], b: &[f32], eps: f32) -> (Vec<f32>, f32, f32) {
    let n = x.len();
    let mut mean = 0.0f32;
    for &v in x {
        mean += v;
    }
    mean /= n as f32;
    let mut var = 0.0f32;
    for &v in x {
        var += (v - mean) * (v - mean);
    }
    var /= n as f32;
    let rstd = 1.0 / (var + eps).sqrt();
    let y = (0..n).map(|j| (x[j] - mean) * rstd * g[j] + b[j]).collect();
    (y, mean, rstd)
}

#[test]
fn layernorm() {
    let d = Dev::new();
    let eps = 1e-5f32;
    // (rows, n, block): n below, equal to and above the block size; a grid smaller than rows.
    for (rows, n, block, grid) in [
        (9, 200, 64, 9),
        (5, 64, 64, 2),
        (4, 37, 128, 4),
        (3, 1024, 256, 3),
    ] {
        let xs = data(10, rows * n, 2.0)
            .iter()
            .map(|v| v + 0.5)
            .collect::<Vec<_>>();
        let (gs, bs, dys) = (data(11, n, 1.0), data(12, n, 1.0), data(13, rows * n, 1.0));
        let (x, gp, bp, dyp) = (d.up(&xs), d.up(&gs), d.up(&bs), d.up(&dys));
        let y = d.emu.alloc(rows * n * 4).unwrap();
        let stats = d.emu.alloc(rows * 2 * 4).unwrap();
        let cfg = LaunchConfig::linear(grid, block, block * 4);
        d.run(
            "md_layernorm_fwd",
            cfg,
            &[
                p(x),
                p(gp),
                p(bp),
                p(y),
                p(stats),
                i(rows),
                i(n),
                Arg::F32(eps),
            ],
        );
        let mut want_y = vec![];
        let mut want_stats = vec![];
        for r in 0..rows {
            let (yr, m, s) = layernorm_row(&xs[r * n..(r + 1) * n], &gs, &bs, eps);
            want_y.extend(yr);
            want_stats.extend([m, s]);
        }
        check("md_layernorm_fwd", &d.down(y, rows * n), &want_y, REDUCTION);
        let got_stats = d.down(stats, rows * 2);
        check("md_layernorm_fwd", &got_stats, &want_stats, REDUCTION);

        // Backward from the CPU's statistics, so the comparison isolates the backward kernels.
        let st = d.up(&want_stats);
        let dx0 = data(14, rows * n, 0.5);
        let dx = d.up(&dx0);
        let cfg2 = LaunchConfig::linear(grid, block, 2 * block * 4);
        d.run(
            "md_layernorm_bwd_dx",
            cfg2,
            &[p(x), p(gp), p(st), p(dyp), p(dx), i(rows), i(n)],
        );
        let mut want_dx = dx0.clone();
        for r in 0..rows {
            let (mean, rstd) = (want_stats[2 * r], want_stats[2 * r + 1]);
            let (mut m1, mut m2) = (0.0f32, 0.0f32);
            for j in 0..n {
                let xhat = (xs[r * n + j] - mean) * rstd;
                let dxhat = dys[r * n + j] * gs[j];
                m1 += dxhat;
                m2 += dxhat * xhat;
            }
            m1 /= n as f32;
            m2 /= n as f32;
            for j in 0..n {
                let xhat = (xs[r * n + j] - mean) * rstd;
                want_dx[r * n + j] += rstd * (dys[r * n + j] * gs[j] - m1 - xhat * m2);
            }
        }
        check(
            "md_layernorm_bwd_dx",
            &d.down(dx, rows * n),
            &want_dx,
            REDUCTION,
        );

        let (g0, b0) = (data(15, n, 0.1), data(16, n, 0.1));
        let (dg, db) = (d.up(&g0), d.up(&b0));
        d.run(
            "md_layernorm_bwd_params",
            GRID,
            &[p(x), p(st), p(dyp), p(dg), p(db), i(rows), i(n)],
        );
        let (mut wg, mut wb) = (g0.clone(), b0.clone());
        for j in 0..n {
            let (mut sg, mut sb) = (0.0f32, 0.0f32);
            for r in 0..rows {
                let (mean, rstd) = (want_stats[2 * r], want_stats[2 * r + 1]);
                let dv = dys[r * n + j];
                sg += dv * (xs[r * n + j] - mean) * rstd;
                sb += dv;
            }
            wg[j] += sg;
            wb[j] += sb;
        }
        check("md_layernorm_bwd_params", &d.down(dg, n), &wg, EXACT);
        check("md_layernorm_bwd_params", &d.down(db, n), &wb, EXACT);
    }
}

#[test]
fn time_embedding_matches_the_kernels_crate() {
    let d = Dev::new();
    let (rows, dim) = (33, 64);
    let mut ts: Vec<f32> = (0..rows).map(|r| r as f32 * 31.0).collect(); // 0 ..= 992
    ts[1] = 0.5;
    ts[2] = 1e-3;
    let t = d.up(&ts);
    let y = d.emu.alloc(rows * dim * 4).unwrap();
    d.run(
        "md_time_embed",
        GRID,
        &[p(t), p(y), i(rows), i(dim), Arg::F32(10_000.0)],
    );
    let mut want = vec![0.0f32; rows * dim];
    for (r, row) in want.chunks_mut(dim).enumerate() {
        time_embedding(ts[r], 10_000.0, row).unwrap();
    }
    check("md_time_embed", &d.down(y, rows * dim), &want, TIME_EMBED);
}

#[test]
fn class_embedding() {
    let d = Dev::new();
    let (rows, n, classes) = (50, 24, 7);
    let table: Vec<f32> = data(17, classes * n, 1.0);
    let cls: Vec<f32> = (0..rows)
        .map(|r| ((r * 5 + r / 3) % classes) as f32)
        .collect();
    let y0 = data(18, rows * n, 1.0);
    let (tp, cp, y) = (d.up(&table), d.up(&cls), d.up(&y0));
    d.run("md_embed_add", GRID, &[p(tp), p(cp), p(y), i(rows), i(n)]);
    let want: Vec<f32> = (0..rows * n)
        .map(|k| y0[k] + table[cls[k / n] as usize * n + k % n])
        .collect();
    check("md_embed_add", &d.down(y, rows * n), &want, EXACT);

    let dy = data(19, rows * n, 1.0);
    let g0 = data(20, classes * n, 0.1);
    let (dyp, g) = (d.up(&dy), d.up(&g0));
    d.run(
        "md_embed_add_bwd",
        GRID,
        &[p(cp), p(dyp), p(g), i(rows), i(n), i(classes)],
    );
    let mut want = g0.clone();
    for c in 0..classes {
        for (r, &cr) in cls.iter().enumerate() {
            if cr as usize == c {
                for j in 0..n {
                    want[c * n + j] += dy[r * n + j];
                }
            }
        }
    }
    check("md_embed_add_bwd", &d.down(g, classes * n), &want, EXACT);
}

/// `md_normal_fill` draws the runtime's noise bit for bit: a few million elements, odd
/// lengths (partial Philox blocks), an offset output view, and extreme seeds, streams,
/// domains and draws.
#[test]
fn normal_fill_is_bit_exact() {
    let d = Dev::new();
    let big = 3_000_001;
    let cases: [(u64, u32, u32, u32, usize); 6] = [
        (0x0123_4567_89AB_CDEF, 7, Domain::TrainNoise as u32, 0, big),
        (0, 0, 0, 0, 4097),
        (u64::MAX, u32::MAX, u32::MAX, u32::MAX, 4099),
        (1 << 32, 1, Domain::Sampler as u32, u32::MAX - 1, 1),
        (42, 123_456, Domain::TrainData as u32, 9, 6),
        (0xFFFF_FFFF, 0x8000_0000, 2, 0x7FFF_FFFF, 1023),
    ];
    for (seed, stream, domain, draw, n) in cases {
        // A guard element before and after, to see the kernel writes exactly n elements.
        let out = d.emu.alloc((n + 2) * 4).unwrap();
        d.emu.memset(out.0, 0, (n + 2) * 4).unwrap();
        let cfg = LaunchConfig::linear(if n > 100_000 { 64 } else { 5 }, 128, 0);
        d.run(
            "md_normal_fill",
            cfg,
            &[
                Arg::Ptr(out.0 + 4),
                Arg::U64(seed),
                Arg::U32(stream),
                Arg::U32(domain),
                Arg::U32(draw),
                i(n),
            ],
        );
        let got = d.down(out, n + 2);
        assert_eq!((got[0], got[n + 1]), (0.0, 0.0), "wrote outside 0..n");
        // The runtime's NoiseStream takes a Domain enum; build the same counter directly for
        // domains that are not one of its variants.
        let want: Vec<f32> = (0..n as u32)
            .map(|j| {
                let block = microdiff_runtime::noise::philox4x32_10(
                    [j / 4, draw, stream, domain],
                    [seed as u32, (seed >> 32) as u32],
                );
                microdiff_runtime::noise::standard_normal(block[(j % 4) as usize])
            })
            .collect();
        if let Some(dom) = [Domain::Sampler, Domain::TrainNoise, Domain::TrainData]
            .into_iter()
            .find(|x| *x as u32 == domain)
        {
            // Cross-check the direct counter against NoiseStream itself on a prefix.
            let s = NoiseStream::new(seed, stream, dom);
            for j in 0..n.min(4096) as u32 {
                assert_eq!(want[j as usize].to_bits(), s.normal(draw, j).to_bits());
            }
        }
        let got = &got[1..=n];
        let mismatches = got
            .iter()
            .zip(&want)
            .filter(|(g, w)| g.to_bits() != w.to_bits())
            .count();
        check("md_normal_fill", got, &want, EXACT);
        assert_eq!(mismatches, 0);
    }
}

#[test]
fn noise_and_target() {
    let d = Dev::new();
    let (rows, n) = (19, 33);
    let (x0, eps) = (data(21, rows * n, 1.0), data(22, rows * n, 1.0));
    let coef: Vec<f32> = data(23, rows * 4, 1.0);
    let (xp, ep, cp) = (d.up(&x0), d.up(&eps), d.up(&coef));
    let xt = d.emu.alloc(rows * n * 4).unwrap();
    let tg = d.emu.alloc(rows * n * 4).unwrap();
    d.run(
        "md_noise_and_target",
        GRID,
        &[p(xp), p(ep), p(cp), p(xt), p(tg), i(rows), i(n)],
    );
    let c = |k: usize, q: usize| coef[4 * (k / n) + q];
    let want_xt: Vec<f32> = (0..rows * n)
        .map(|k| c(k, 0) * x0[k] + c(k, 1) * eps[k])
        .collect();
    let want_tg: Vec<f32> = (0..rows * n)
        .map(|k| c(k, 2) * x0[k] + c(k, 3) * eps[k])
        .collect();
    check(
        "md_noise_and_target",
        &d.down(xt, rows * n),
        &want_xt,
        EXACT,
    );
    check(
        "md_noise_and_target",
        &d.down(tg, rows * n),
        &want_tg,
        EXACT,
    );
}

#[test]
fn loss() {
    let d = Dev::new();
    let n = 10_007;
    let (pr, tg) = (data(24, n, 1.0), data(25, n, 1.0));
    let (pp, tp) = (d.up(&pr), d.up(&tg));
    let dd = d.emu.alloc(n * 4).unwrap();
    d.run("md_mse_grad", GRID, &[p(pp), p(tp), p(dd), i(n)]);
    let want: Vec<f32> = pr
        .iter()
        .zip(&tg)
        .map(|(p, t)| 2.0 * (p - t) / n as f32)
        .collect();
    check("md_mse_grad", &d.down(dd, n), &want, EXACT);

    let grid = 7;
    let partial = d.emu.alloc(grid * 4).unwrap();
    let cfg = LaunchConfig::linear(grid as u32, 128, 128 * 4);
    d.run("md_sq_err_partials", cfg, &[p(pp), p(tp), p(partial), i(n)]);
    // The host adds the partials in order in f64 (as the CUDA backend does); the CPU backend
    // sums squares in f64.
    let got: f64 = d.down(partial, grid).iter().map(|&v| f64::from(v)).sum();
    let want: f64 = pr
        .iter()
        .zip(&tg)
        .map(|(p, t)| f64::from(p - t).powi(2))
        .sum();
    check(
        "md_sq_err_partials",
        &[got as f32],
        &[want as f32],
        REDUCTION,
    );
}

#[test]
fn optimizer() {
    let d = Dev::new();
    let n = 5003;
    let g: Vec<f32> = data(26, n, 0.01);
    let gp = d.up(&g);
    let grid = 5;
    let partial = d.emu.alloc(grid * 4).unwrap();
    let cfg = LaunchConfig::linear(grid as u32, 256, 256 * 4);
    d.run("md_sumsq_partials", cfg, &[p(gp), p(partial), i(n)]);
    let got: f64 = d.down(partial, grid).iter().map(|&v| f64::from(v)).sum();
    let want: f64 = g.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    check(
        "md_sumsq_partials",
        &[got as f32],
        &[want as f32],
        REDUCTION,
    );

    // AdamW at step 3 with weight decay on every other parameter.
    let (b1, b2, eps, wd, lr) = (0.9f32, 0.999f32, 1e-8f32, 0.01f32, 1e-3f32);
    let step = 3;
    let inv_bc1 = 1.0 / (1.0 - b1.powi(step));
    let inv_bc2 = 1.0 / (1.0 - b2.powi(step));
    let p0 = data(27, n, 1.0);
    let m0 = data(28, n, 0.01);
    let v0: Vec<f32> = data(29, n, 0.01).iter().map(|v| v * v).collect();
    let mask: Vec<f32> = (0..n).map(|k| (k % 2) as f32).collect();
    let (pp, mp, vp, kp) = (d.up(&p0), d.up(&m0), d.up(&v0), d.up(&mask));
    d.run(
        "md_adamw",
        GRID,
        &[
            p(pp),
            p(gp),
            p(mp),
            p(vp),
            p(kp),
            Arg::F32(lr),
            Arg::F32(b1),
            Arg::F32(b2),
            Arg::F32(eps),
            Arg::F32(wd),
            Arg::F32(inv_bc1),
            Arg::F32(inv_bc2),
            i(n),
        ],
    );
    let (mut wp, mut wm, mut wv) = (p0.clone(), m0.clone(), v0.clone());
    for k in 0..n {
        let (pk, m, v) = (&mut wp[k], &mut wm[k], &mut wv[k]);
        *m = b1 * *m + (1.0 - b1) * g[k];
        *v = b2 * *v + (1.0 - b2) * g[k] * g[k];
        let mhat = *m * inv_bc1;
        let vhat = *v * inv_bc2;
        *pk -= lr * (mhat / (vhat.sqrt() + eps) + wd * mask[k] * *pk);
    }
    check("md_adamw", &d.down(pp, n), &wp, EXACT);
    check("md_adamw", &d.down(mp, n), &wm, EXACT);
    check("md_adamw", &d.down(vp, n), &wv, EXACT);

    let e0 = data(30, n, 1.0);
    let ep = d.up(&e0);
    d.run("md_ema", GRID, &[p(ep), p(pp), Arg::F32(0.999), i(n)]);
    let want: Vec<f32> = e0
        .iter()
        .zip(&wp)
        .map(|(e, p)| 0.999 * e + (1.0 - 0.999) * p)
        .collect();
    check("md_ema", &d.down(ep, n), &want, EXACT);
}

/// The RBM's kernels: column sums, plain SGD (bit-exact: the CPU's order, no transcendental)
/// and Bernoulli draws of per-row counter noise (bit-exact: the uniform is exact arithmetic,
/// the comparison exact), with stream ids up to `u32::MAX` passed as f32 bit patterns.
#[test]
fn rbm_kernels() {
    let d = Dev::new();
    let (rows, cols) = (13, 37);
    let x = data(31, rows * cols, 1.0);
    let g0 = data(32, cols + 3, 0.1);
    let (xp, g) = (d.up(&x), d.up(&g0));
    d.run(
        "md_col_sum",
        GRID,
        &[p(xp), Arg::Ptr(g.0 + 12), Arg::F32(-0.25), i(rows), i(cols)],
    );
    let mut want = g0.clone();
    for c in 0..cols {
        let mut s = 0.0f32;
        for r in 0..rows {
            s += x[r * cols + c];
        }
        want[3 + c] += -0.25 * s;
    }
    check("md_col_sum", &d.down(g, cols + 3), &want, EXACT);

    let n = 1001;
    let (p0, gr) = (data(33, n, 1.0), data(34, n, 1.0));
    let mask: Vec<f32> = (0..n).map(|k| (k % 3 == 0) as u8 as f32).collect();
    let (pp, gp, mp) = (d.up(&p0), d.up(&gr), d.up(&mask));
    d.run(
        "md_sgd",
        GRID,
        &[p(pp), p(gp), p(mp), Arg::F32(0.05), Arg::F32(1e-3), i(n)],
    );
    let want: Vec<f32> = (0..n)
        .map(|k| p0[k] - 0.05 * (gr[k] + 1e-3 * mask[k] * p0[k]))
        .collect();
    check("md_sgd", &d.down(pp, n), &want, EXACT);

    let (rows, n) = (7, 45);
    let probs: Vec<f32> = data(35, rows * n, 1.0)
        .iter()
        .map(|v| 1.0 / (1.0 + (-v).exp()))
        .collect();
    let streams = [0u32, 1, 17, 0xFFFF_FFFF, 0x7FC0_0001, 123_456_789, 5];
    let ids: Vec<f32> = streams.iter().map(|&s| f32::from_bits(s)).collect();
    let (seed, draw, offset) = (0xDEAD_BEEF_0123u64, 0x3000_0007u32, 9u32);
    let (pp, sp) = (d.up(&probs), d.up(&ids));
    let out = d.emu.alloc(rows * n * 4).unwrap();
    d.run(
        "md_bernoulli",
        GRID,
        &[
            p(pp),
            p(out),
            p(sp),
            Arg::U64(seed),
            Arg::U32(Domain::TrainNoise as u32),
            Arg::U32(draw),
            Arg::U32(offset),
            i(rows),
            i(n),
        ],
    );
    let mut want = Vec::new();
    for (r, &s) in streams.iter().enumerate() {
        let ns = NoiseStream::new(seed, s, Domain::TrainNoise);
        for j in 0..n {
            let u = ns.uniform(draw, offset + j as u32);
            want.push(if u < probs[r * n + j] { 1.0 } else { 0.0 });
        }
    }
    check("md_bernoulli", &d.down(out, rows * n), &want, EXACT);
}

/// Sums a reduction kernel's partials in block order in f64, as the backend does.
fn sum_partials(d: &Dev, part: DevPtr, blocks: usize) -> f32 {
    d.down(part, blocks)
        .iter()
        .map(|&v| f64::from(v))
        .sum::<f64>() as f32
}

/// The VAE's kernels against plain Rust with the CPU backend's formulas (std's `exp` and
/// `ln_1p` here, glibc's under the emulator: the ACT tolerance; the loss partials the
/// REDUCTION one).
#[test]
fn vae_kernels() {
    let d = Dev::new();
    let (rows, dim, stride) = (19, 5, 8);
    let h = data(41, rows * 2 * dim, 1.0);
    let eps = data(42, rows * dim, 1.0);
    let z0 = data(43, rows * stride, 1.0);
    let (hp, ep, zp) = (d.up(&h), d.up(&eps), d.up(&z0));
    d.run(
        "md_reparam",
        GRID,
        &[p(hp), p(ep), p(zp), i(rows), i(dim), i(stride)],
    );
    let mut want = z0.clone();
    for r in 0..rows {
        for j in 0..dim {
            let (mu, lv) = (h[r * 2 * dim + j], h[r * 2 * dim + dim + j]);
            want[r * stride + j] = mu + (0.5 * lv).exp() * eps[r * dim + j];
        }
    }
    check("md_reparam", &d.down(zp, rows * stride), &want, ACT);

    let dz = data(44, rows * stride, 1.0);
    let s = 1.0 / rows as f32;
    let (dzp, dh) = (d.up(&dz), d.emu.alloc(rows * 2 * dim * 4).unwrap());
    let red = LaunchConfig::linear(2, 64, 64 * 4);
    let part = d.emu.alloc(2 * 4).unwrap();
    // Modes: 0 the analytic KL, 1 the sampled log q, 2 with the standard prior as well.
    for mode in 0..3 {
        let args = [
            Arg::I32(mode),
            p(hp),
            p(ep),
            p(dzp),
            p(dh),
            Arg::F32(s),
            i(rows),
            i(dim),
            i(stride),
        ];
        d.run("md_reparam_bwd", GRID, &args);
        let mut want = vec![0.0f32; rows * 2 * dim];
        let mut total = 0.0f64;
        for r in 0..rows {
            for j in 0..dim {
                let (mu, lv) = (h[r * 2 * dim + j], h[r * 2 * dim + dim + j]);
                let e = eps[r * dim + j];
                let sd = (0.5 * lv).exp();
                let mut g = dz[r * stride + j];
                let (dmu, dlv, t) = if mode == 0 {
                    (
                        g + s * mu,
                        g * e * 0.5 * sd + s * 0.5 * (sd * sd - 1.0),
                        0.5 * (mu * mu + sd * sd - 1.0 - lv),
                    )
                } else {
                    let z = mu + sd * e;
                    let t = if mode == 2 {
                        g += s * z;
                        0.5 * (z * z - lv - e * e)
                    } else {
                        -0.5 * (1.837_877 + lv + e * e)
                    };
                    (g, g * e * 0.5 * sd - s * 0.5, t)
                };
                want[r * 2 * dim + j] = dmu;
                want[r * 2 * dim + dim + j] = dlv;
                total += f64::from(t);
            }
        }
        check("md_reparam_bwd", &d.down(dh, rows * 2 * dim), &want, ACT);
        let args = [Arg::I32(mode), p(hp), p(ep), p(part), i(rows), i(dim)];
        d.run("md_latent_partials", red, &args);
        let got = sum_partials(&d, part, 2);
        check("md_latent_partials", &[got], &[total as f32], REDUCTION);
    }

    // A learned Gaussian prior's negative log-density.
    let z = data(50, rows * dim, 1.5);
    let dz0 = data(51, rows * dim, 0.1);
    let (zp, dzp) = (d.up(&z), d.up(&dz0));
    let args = [p(zp), p(hp), p(dzp), p(dh), Arg::F32(s), i(rows), i(dim)];
    d.run("md_gauss_nll_grad", GRID, &args);
    let (mut want_dz, mut want_dh, mut total) = (dz0.clone(), vec![0.0f32; 2 * rows * dim], 0.0);
    for r in 0..rows {
        for j in 0..dim {
            let (m, v) = (h[r * 2 * dim + j], h[r * 2 * dim + dim + j]);
            let dd = z[r * dim + j] - m;
            let inv = (-v).exp();
            total += f64::from(0.5 * (1.837_877 + v + dd * dd * inv));
            want_dz[r * dim + j] += s * dd * inv;
            want_dh[r * 2 * dim + j] = -s * dd * inv;
            want_dh[r * 2 * dim + dim + j] = -s * (0.5 * dd * dd * inv - 0.5);
        }
    }
    check("md_gauss_nll_grad", &d.down(dzp, rows * dim), &want_dz, ACT);
    check(
        "md_gauss_nll_grad",
        &d.down(dh, rows * 2 * dim),
        &want_dh,
        ACT,
    );
    d.run(
        "md_gauss_nll_partials",
        red,
        &[p(zp), p(hp), p(part), i(rows), i(dim)],
    );
    let got = sum_partials(&d, part, 2);
    check("md_gauss_nll_partials", &[got], &[total as f32], REDUCTION);

    let (rows, dim) = (23, 6);
    let out = data(45, rows * dim, 2.0);
    let ls = data(46, dim, 0.5);
    let gauss = data(47, rows * dim, 1.0);
    let bern: Vec<f32> = data(48, rows * dim, 1.0)
        .iter()
        .map(|&v| if v > 0.0 { 1.0 } else { 0.0 })
        .collect();
    let (op, lp) = (d.up(&out), d.up(&ls));
    let scale = 0.125f32;
    for (obs, x) in [(0, &gauss), (1, &bern)] {
        let xp = d.up(x);
        let dout = d.emu.alloc(rows * dim * 4).unwrap();
        let args = [
            Arg::I32(obs),
            p(xp),
            p(op),
            p(lp),
            p(dout),
            Arg::F32(scale),
            i(rows),
            i(dim),
        ];
        d.run("md_nll_grad", GRID, &args);
        let (mut want_d, mut want_l, mut want_ls) = (Vec::new(), 0.0f64, vec![0.0f32; dim]);
        for k in 0..rows * dim {
            let (xv, o, sg) = (x[k], out[k], ls[k % dim]);
            let (l, dd) = if obs == 0 {
                let r = xv - o;
                let inv = (-2.0 * sg).exp();
                let q = r * r * inv;
                want_ls[k % dim] += 1.0 - q;
                (0.5 * (1.837_877 + 2.0 * sg + q), -(r * inv))
            } else {
                let sp = o.max(0.0) + (-o.abs()).exp().ln_1p();
                (sp - xv * o, 1.0 / (1.0 + (-o).exp()) - xv)
            };
            want_l += f64::from(l);
            want_d.push(scale * dd);
        }
        check("md_nll_grad", &d.down(dout, rows * dim), &want_d, ACT);
        let args = [Arg::I32(obs), p(xp), p(op), p(lp), p(part), i(rows), i(dim)];
        d.run("md_nll_partials", red, &args);
        let got = sum_partials(&d, part, 2);
        check("md_nll_partials", &[got], &[want_l as f32], REDUCTION);
        if obs == 0 {
            let g0 = data(49, dim, 0.1);
            let gp = d.up(&g0);
            let args = [p(xp), p(op), p(lp), p(gp), Arg::F32(scale), i(rows), i(dim)];
            d.run("md_log_sigma_grad", GRID, &args);
            let want: Vec<f32> = (0..dim).map(|j| g0[j] + scale * want_ls[j]).collect();
            check("md_log_sigma_grad", &d.down(gp, dim), &want, ACT);
        }
    }
}
