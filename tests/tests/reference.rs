//! Acceptance: blobs of the reference MLP (time + class conditioning), one per weight dtype,
//! with DDPM-ancestral and DDIM programs built from the textbook formulas in f64, run through
//! the runtime, match an independent f64 implementation of network + sampler.

use microdiff_conformance::mlp::{Mlp, MlpSpec};
use microdiff_conformance::textbook::{
    AncestralVariance, EpsF64, Guidance, Schedule, ddim_f64, ddim_program, ddpm_f64, ddpm_program,
};
use microdiff_kernels::Dtype;
use microdiff_runtime::blob::ProgramBuilder;
use microdiff_runtime::{Model, SampleRequest, sample};

/// Tolerance on one network evaluation: |ε₃₂ − ε₆₄| ≤ NET_TOL · (1 + |ε₆₄|). f32 rounding in
/// ~4 k multiply-adds per output plus the f32 time-embedding argument (t · freq rounded to
/// 2⁻²⁴ relative) gives errors of ≈ 2e-7 (measured: 1.6e-7 worst over dtypes and classes);
/// 1e-5 leaves a 60× margin while any wrong op, order or coefficient errs by ≳ 1e-3.
const NET_TOL: f64 = 1e-5;
/// Tolerance on a whole sample (data units): |x₃₂ − x₆₄| ≤ SAMPLE_TOL · (1 + |x₆₄|). Per-step
/// rounding does not grow much through these stable samplers: measured worst 9.2e-6 (DDPM with
/// guidance, 200 evaluations); 1e-4 keeps a 10× margin.
const SAMPLE_TOL: f64 = 1e-4;

struct Net<'a> {
    mlp: &'a Mlp,
    class: u16,
}

impl EpsF64 for Net<'_> {
    fn eps(&self, x: &[f64], time: f64, null: bool) -> Vec<f64> {
        let c = if null {
            self.mlp.spec.classes
        } else {
            self.class
        };
        self.mlp.forward_f64(x, time, c)
    }
}

fn schedule() -> Schedule {
    Schedule::linear(100, 1e-3, 0.2)
}

fn max_rel_err(got: &[f32], want: &[f64]) -> f64 {
    got.iter()
        .zip(want)
        .map(|(&g, &w)| (g as f64 - w).abs() / (1.0 + w.abs()))
        .fold(0.0, f64::max)
}

fn build(mlp: &Mlp, programs: &[ProgramBuilder]) -> Vec<u8> {
    let n = mlp.spec.data_len;
    let scale: Vec<f32> = (0..n).map(|i| 1.0 + 0.25 * i as f32).collect();
    let offset: Vec<f32> = (0..n).map(|i| i as f32 * 0.5).collect();
    let mut b = mlp
        .to_builder(&[n as u16], (&scale, &offset))
        .expect("builder");
    b.schedule(&schedule().rows());
    for p in programs {
        b.program(p);
    }
    b.build().expect("blob builds")
}

fn to_data_units(mlp: &Mlp, x: &[f64]) -> Vec<f64> {
    x.iter()
        .enumerate()
        .map(|(i, v)| v * (1.0 + 0.25 * i as f64) as f32 as f64 + (i as f64 * 0.5) as f32 as f64)
        .take(mlp.spec.data_len)
        .collect()
}

#[test]
fn one_network_evaluation_matches_f64_for_every_dtype() {
    for dtype in [Dtype::F32, Dtype::F16, Dtype::I8] {
        let mlp = Mlp::random(MlpSpec::reference(dtype), 11);
        // A one-EVAL program: r0 = x (noise), r1 = ε(r0); output r1.
        let mut p = ProgramBuilder::new("eval", 2);
        p.lin(0, &[], Some(1.0))
            .eval(
                1,
                0,
                microdiff_runtime::blob::program::ClassSel::Caller,
                37.0,
            )
            .step();
        p.out_reg(1);
        let blob = build(&mlp, &[p]);
        let model = Model::parse(&blob).unwrap();
        let mut worst = 0.0f64;
        for class in 0..4u16 {
            let spec = SampleRequest {
                seed: 5,
                stream: class as u32,
                class,
            };
            let mut arena = vec![0u8; model.arena_bytes()];
            let mut s = microdiff_runtime::Sampler::new(
                &model,
                model.program("eval").unwrap(),
                &mut arena,
                spec,
            )
            .unwrap();
            s.run().unwrap();
            let got = s.output_raw().to_vec();
            let x = microdiff_conformance::textbook::noise(5, class as u32, 0, mlp.spec.data_len);
            let want = mlp.forward_f64(&x, 37.0, class);
            worst = worst.max(max_rel_err(&got, &want));
        }
        println!("{}: one evaluation, max rel err {worst:.3e}", dtype.name());
        assert!(
            worst <= NET_TOL,
            "{}: {worst:e} > {NET_TOL:e}",
            dtype.name()
        );
    }
}

fn check_sampler(
    name: &str,
    guidance: Guidance,
    program: ProgramBuilder,
    reference: &dyn Fn(&dyn EpsF64, u64, u32) -> Vec<f64>,
) {
    for dtype in [Dtype::F32, Dtype::F16, Dtype::I8] {
        let mlp = Mlp::random(MlpSpec::reference(dtype), 2026);
        let blob = build(&mlp, std::slice::from_ref(&program));
        let model = Model::parse(&blob).unwrap();
        let mut worst = 0.0f64;
        let mut spread = 0.0f64;
        for (seed, stream, class) in [(1u64, 0u32, 0u16), (9, 3, 2), (77, 12, 3)] {
            let mut out = vec![0.0f32; mlp.spec.data_len];
            let mut arena = vec![0u8; model.arena_bytes()];
            sample(
                &model,
                model.program(name).unwrap(),
                &mut arena,
                SampleRequest {
                    seed,
                    stream,
                    class,
                },
                &mut out,
            )
            .unwrap();
            let want = to_data_units(&mlp, &reference(&Net { mlp: &mlp, class }, seed, stream));
            worst = worst.max(max_rel_err(&out, &want));
            spread = spread.max(want.iter().map(|v| v.abs()).fold(0.0, f64::max));
        }
        println!(
            "{name} {} (guidance {guidance:?}): max rel err {worst:.3e}, max |x| {spread:.2}",
            dtype.name()
        );
        assert!(
            worst <= SAMPLE_TOL,
            "{name} {}: {worst:e} > {SAMPLE_TOL:e}",
            dtype.name()
        );
        // The check has teeth only if samples are not trivially small.
        assert!(spread > 0.5);
    }
}

#[test]
fn ddpm_ancestral_matches_f64_reference() {
    let s = schedule();
    for v in [AncestralVariance::Beta, AncestralVariance::BetaTilde] {
        let p = ddpm_program("ddpm", &s, v, None);
        check_sampler("ddpm", None, p, &|net, seed, stream| {
            ddpm_f64(net, &s, v, None, 8, seed, stream)
        });
    }
}

#[test]
fn ddpm_ancestral_with_guidance_matches_f64_reference() {
    let s = schedule();
    let v = AncestralVariance::BetaTilde;
    let p = ddpm_program("ddpm-cfg", &s, v, Some(3.0));
    check_sampler("ddpm-cfg", Some(3.0), p, &|net, seed, stream| {
        ddpm_f64(net, &s, v, Some(3.0), 8, seed, stream)
    });
}

#[test]
fn ddim_matches_f64_reference() {
    let s = schedule();
    for (k, eta, clip, g) in [
        (10, 0.0, None, None),
        (20, 1.0, None, None),
        (10, 0.5, Some(1.5), Some(2.0)),
        (5, 0.0, None, Some(4.0)),
    ] {
        let p = ddim_program("ddim", &s, k, eta, clip.map(|c: f64| c as f32), g);
        check_sampler("ddim", g, p, &|net, seed, stream| {
            ddim_f64(net, &s, k, eta, clip, g, 8, seed, stream)
        });
    }
}
