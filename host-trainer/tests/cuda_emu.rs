//! Tiers 2 and 3 of the CUDA backend, without a GPU: `CudaBackend<EmuDevice>` — the backend's
//! real launch code path, running the kernel sources of `kernels/cuda` on the CPU emulator —
//! against the CPU reference backend.
//!
//! * Tier 2: every [`Backend`] operation on random inputs at two shapes (small and odd; wider
//!   than a block, so grid-stride loops and strided layer-norm rows run), each under a named
//!   tolerance; the noise bit for bit.
//! * Tier 3: two training steps of each objective (DDPM, VP, VE, flow; class-conditional with
//!   guidance dropout): loss, parameters, EMA and Adam's moments within tolerance.
//!
//! The comparisons live in `parity/` (shared with the GPU tier). Emulation only: cuBLAS is
//! replaced by a plain CPU GEMM (`backend::cuda::emu`). Each comparison prints
//! `cuda-report: emu-op …` / `cuda-report: emu-step …` for `cargo xtask cuda` (run with
//! `--nocapture`).

mod parity;

use microdiff_trainer::backend::cuda::emu::EmuDevice;
use microdiff_trainer::backend::cuda::{CudaBackend, CudaError};
use microdiff_trainer::backend::{Backend, BackendError};

fn emulated() -> CudaBackend<EmuDevice> {
    CudaBackend::new(EmuDevice::new()).expect("emulator allocation")
}

#[test]
fn every_backend_op_matches_the_cpu() {
    parity::compare_ops(&emulated(), "emu-op");
}

#[test]
fn training_steps_match_the_cpu_for_every_objective() {
    parity::compare_steps(emulated, "emu-step");
}

/// A device error is kept, later ops are skipped, and the trainer reports it as a typed error
/// (here: a launch the emulator refuses, a shape the backend catches).
#[test]
fn the_first_device_error_is_reported_and_sticks() {
    let be = emulated();
    let x = be.upload(&[1.0, 2.0, 3.0]);
    let mut y = be.zeros(2);
    be.add_assign(&mut y, &x); // fine: y has 2, x has 3 ≥ 2
    be.check().expect("no error yet");
    let mut short = be.zeros(1);
    be.copy(&x, &mut short); // 3 into 1: a shape error
    match be.check() {
        Err(BackendError::Cuda(CudaError::Shape(m))) => assert!(m.contains("copy"), "{m}"),
        other => panic!("expected a shape error, got {other:?}"),
    }
    // Later operations are no-ops; downloads read NaN, never stale data that looks valid.
    be.fill_zero(&mut y);
    assert!(be.download(&y).iter().all(|v| v.is_nan()));
    assert!(be.check().is_err());
}
