//! The arena plan for the reference MLP and a digits-sized MLP, against the live-set bound.
//! Prints the figures `docs/arena.md` quotes.

use microdiff_conformance::mlp::{Mlp, MlpSpec};
use microdiff_conformance::textbook::{Schedule, ddim_program};
use microdiff_kernels::{Activation, Dtype};
use microdiff_runtime::{Model, arena_bytes};

fn report(name: &str, spec: MlpSpec, guided: bool) -> (u32, u32) {
    let mlp = Mlp::random(spec, 1);
    let mut b = mlp.to_builder(&[spec.data_len as u16], (&[], &[])).unwrap();
    let s = Schedule::linear(10, 0.01, 0.2);
    b.program(&ddim_program(
        "ddim",
        &s,
        5,
        0.0,
        None,
        guided.then_some(2.0),
    ));
    let blob = b.build().unwrap();
    let m = Model::parse(&blob).unwrap();
    let p = m.plan();
    println!(
        "{name}: {} values, registers {} × {} slots, network {} slots (live-set bound {}), arena {} bytes",
        p.values,
        p.regs,
        p.data_len,
        p.network_slots,
        p.live_bound_slots,
        p.bytes()
    );
    assert_eq!(arena_bytes(&blob).unwrap(), p.bytes());
    assert!(
        p.network_slots >= p.live_bound_slots,
        "a plan below the lower bound would overlap live values"
    );
    (p.network_slots, p.live_bound_slots)
}

#[test]
fn sequential_residual_mlps_are_planned_at_the_live_set_bound() {
    let (net, bound) = report(
        "reference MLP (8-32-64, 2 blocks)",
        MlpSpec::reference(Dtype::I8),
        true,
    );
    assert_eq!(net, bound);
    let digits = MlpSpec {
        data_len: 64,
        hidden: 128,
        ff: 256,
        temb: 32,
        blocks: 3,
        classes: 10,
        act: Activation::Silu,
        dtype: Dtype::I8,
    };
    let (net, bound) = report("digits-sized MLP (64-128-256, 3 blocks)", digits, true);
    assert_eq!(net, bound);
}
