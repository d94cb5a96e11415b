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

use std::path::Path;

use microdiff_kernels::Activation;
use microdiff_trainer::backend::cpu::Cpu;
use std::sync::atomic::{AtomicUsize, Ordering};

use microdiff_trainer::backend::cuda::emu::{EmuDevice, EmuMem};
use microdiff_trainer::backend::cuda::{
    CudaBackend, CudaError, Device, GemmSpec, KernelArg, LaunchConfig, MatMut, MatRef,
};
use microdiff_trainer::backend::{Backend, BackendError};
use microdiff_trainer::checkpoint::Checkpoint;
use microdiff_trainer::process::Process;
use microdiff_trainer::train::{RunHeader, TrainConfig, TrainError, Trainer};

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

/// The checkpoint after the first `n` steps of `config`.
fn first_steps<B: Backend>(be: B, config: &TrainConfig, n: u64) -> Checkpoint<RunHeader> {
    let mut t = Trainer::new(be, config.clone(), parity::moons(config)).expect("trainer");
    for _ in 0..n {
        t.step().expect("step");
    }
    t.checkpoint()
}

/// Checkpoints hold host data, so a run moves between devices: two steps on the emulated GPU
/// then one on the CPU from its checkpoint (and the reverse) end where three CPU steps end,
/// within the step tolerance.
#[test]
fn a_checkpoint_moves_between_the_emulated_gpu_and_the_cpu() {
    let config = TrainConfig {
        steps: 3,
        ..parity::step_config(Process::ddpm_default(), Activation::Silu, 2)
    };
    let (_, straight) = parity::train(Cpu, &config);
    let path = Path::new("in-memory.mdck");
    for gpu_first in [true, false] {
        // Two of the three steps (the learning-rate schedule depends on the total).
        let bytes = if gpu_first {
            first_steps(emulated(), &config, 2).to_bytes()
        } else {
            first_steps(Cpu, &config, 2).to_bytes()
        };
        let ckpt = || Checkpoint::<RunHeader>::from_bytes(&bytes, path).expect("checkpoint");
        let data = parity::moons(&config);
        let end = if gpu_first {
            let mut t = Trainer::resume(Cpu, config.clone(), data, ckpt(), path).expect("resume");
            t.step().expect("step");
            t.checkpoint()
        } else {
            let mut t =
                Trainer::resume(emulated(), config.clone(), data, ckpt(), path).expect("resume");
            t.step().expect("step");
            t.checkpoint()
        };
        assert_eq!(end.header.step, 3);
        assert_eq!(end.header.losses.len(), 3);
        for (what, a, b) in [
            ("params", &straight.params, &end.params),
            ("ema", &straight.ema, &end.ema),
            ("m", &straight.m, &end.m),
            ("v", &straight.v, &end.v),
        ] {
            let d = parity::diff(a, b, parity::STEP);
            assert!(d.ok, "gpu_first {gpu_first}: {what}: {d:?}");
        }
    }
}

/// A device error is kept, later ops are skipped, and `check` reports it as a typed error
/// (here: a shape the backend catches before it reaches the device).
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

/// The emulator, with the `fail_at`-th kernel launch (0-based) failing: a device error in the
/// middle of a training step.
struct FailingLaunch {
    inner: EmuDevice,
    launches: AtomicUsize,
    fail_at: usize,
}

impl Device for FailingLaunch {
    type Mem = EmuMem;

    fn describe(&self) -> String {
        "the emulator with an injected launch failure".into()
    }
    fn alloc(&self, n: usize) -> Result<EmuMem, CudaError> {
        self.inner.alloc(n)
    }
    fn alloc_zeros(&self, n: usize) -> Result<EmuMem, CudaError> {
        self.inner.alloc_zeros(n)
    }
    fn upload(&self, dst: &mut EmuMem, offset: usize, host: &[f32]) -> Result<(), CudaError> {
        self.inner.upload(dst, offset, host)
    }
    fn download(&self, src: &EmuMem, offset: usize, host: &mut [f32]) -> Result<(), CudaError> {
        self.inner.download(src, offset, host)
    }
    fn copy(
        &self,
        src: &EmuMem,
        src_offset: usize,
        dst: &mut EmuMem,
        dst_offset: usize,
        n: usize,
    ) -> Result<(), CudaError> {
        self.inner.copy(src, src_offset, dst, dst_offset, n)
    }
    fn launch(
        &self,
        kernel: &str,
        cfg: LaunchConfig,
        args: &[KernelArg<'_, EmuMem>],
    ) -> Result<(), CudaError> {
        if self.launches.fetch_add(1, Ordering::Relaxed) == self.fail_at {
            return Err(CudaError::Emulator {
                op: format!("launch {kernel}"),
                message: "injected failure".into(),
            });
        }
        self.inner.launch(kernel, cfg, args)
    }
    fn sgemm(
        &self,
        g: GemmSpec,
        a: MatRef<'_, EmuMem>,
        b: MatRef<'_, EmuMem>,
        c: MatMut<'_, EmuMem>,
    ) -> Result<(), CudaError> {
        self.inner.sgemm(g, a, b, c)
    }
}

/// A device failure in the middle of a step reaches the caller of `Trainer::step` as
/// `TrainError::Backend` with the step and the device's message — no panic, no NaN loss
/// passed off as divergence — and the step is not counted.
#[test]
fn a_device_failure_mid_step_is_a_typed_training_error() {
    let config = parity::step_config(Process::ddpm_default(), Activation::Silu, 2);
    for fail_at in [3, 40] {
        let dev = FailingLaunch {
            inner: EmuDevice::new(),
            launches: AtomicUsize::new(0),
            fail_at,
        };
        let be = CudaBackend::new(dev).expect("backend");
        let mut t = Trainer::new(be, config.clone(), parity::moons(&config)).expect("trainer");
        match t.step() {
            Err(TrainError::Backend { step: 1, source }) => {
                let m = source.to_string();
                assert!(
                    m.contains("injected failure") && m.contains("launch md_"),
                    "{m}"
                );
            }
            Err(e) => panic!("launch {fail_at}: expected a backend error, got {e}"),
            Ok(loss) => panic!("launch {fail_at}: expected a backend error, got loss {loss}"),
        }
        assert_eq!(t.step_count(), 0);
        assert!(t.step().is_err(), "the error sticks");
    }
}

/// The zoo's `--device cuda` path end to end on the emulated GPU: `microdiff train
/// --objective vae`, `hvae` and `rbm` (CD and PCD) through the library's commands with the
/// emulated CUDA backend, then `microdiff export` (the binary) of each run: the runs are the
/// ordinary `vae.json` / `hvae.json` / `rbm.json` every downstream command reads.
#[test]
fn zoo_runs_train_on_the_emulated_gpu_and_export() {
    use microdiff_trainer::run::Settings;
    use microdiff_trainer::zoo::boltzmann::command as rbm_command;
    use microdiff_trainer::zoo::command::{OnBackend, TrainFlags};
    use microdiff_trainer::zoo::vae::command as vae_command;

    let gpu = emulated();
    let on = "the CUDA emulator";
    let base = Settings {
        data: Some("moons".into()),
        steps: Some(12),
        batch: Some(16),
        hidden: Some(8),
        seed: Some(3),
        ..Settings::default()
    };
    let dir = std::env::temp_dir().join(format!("microdiff-zoo-emu-{}", std::process::id()));
    for (name, settings) in [
        (
            "vae",
            Settings {
                objective: Some("vae".into()),
                ..base.clone()
            },
        ),
        (
            "hvae",
            Settings {
                objective: Some("hvae".into()),
                ..base.clone()
            },
        ),
        (
            "rbm_cd",
            Settings {
                objective: Some("rbm".into()),
                ..base.clone()
            },
        ),
        (
            "rbm_pcd",
            Settings {
                objective: Some("rbm".into()),
                negative: Some("pcd".into()),
                cd_k: Some(2),
                ..base.clone()
            },
        ),
    ] {
        let out = dir.join(name);
        let flags = TrainFlags {
            out: &out,
            resume: false,
            force: true,
            device_is_auto_or_cpu: false,
            threads: false,
            checkpoint_every: false,
        };
        let backend = Some(OnBackend { be: &gpu, on });
        let mut line = String::new();
        let model = if name == "vae" {
            let done = vae_command::train_with(&settings, &flags, backend, |l| line = l.into())
                .expect("vae on the emulator");
            assert_eq!(done.losses.len(), 12);
            assert_eq!(done.run.trained_on.as_deref(), Some(on));
            assert!(done.losses.iter().all(|l| l.is_finite()));
            done.model
        } else if name == "hvae" {
            let done =
                vae_command::train_hvae_with(&settings, &flags, backend, |l| line = l.into())
                    .expect("hvae on the emulator");
            assert!(done.losses.iter().all(|l| l.is_finite()));
            assert_eq!(done.run.trained_on.as_deref(), Some(on));
            done.model
        } else {
            let done = rbm_command::train_with(&settings, &flags, backend, |l| line = l.into())
                .expect("rbm on the emulator");
            assert!(done.run.reconstruction_error.is_finite());
            done.model
        };
        assert!(line.contains(on), "{name}: {line}");
        assert!(model.exists(), "{name}");
        let blob = out.join("model.mdb");
        let exported = std::process::Command::new(env!("CARGO_BIN_EXE_microdiff"))
            .arg("export")
            .arg(&out)
            .arg("--out")
            .arg(&blob)
            .output()
            .expect("run microdiff export");
        let err = String::from_utf8_lossy(&exported.stderr);
        assert!(exported.status.success(), "{name}: export: {err}");
        assert!(
            std::fs::metadata(&blob)
                .map(|m| m.len() > 0)
                .unwrap_or(false),
            "{name}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// A device failure in the middle of a zoo training (the VAE's, the two-level VAE's, the
/// RBM's) is their typed device error with the step, never a panic or a NaN model.
#[test]
fn a_device_failure_in_a_zoo_training_is_a_typed_error() {
    use microdiff_trainer::zoo::boltzmann::backend_train::{self as rbm_train, BackendTrainError};
    use microdiff_trainer::zoo::boltzmann::{BinaryData, Rbm, TrainConfig as RbmConfig};
    use microdiff_trainer::zoo::vae::backend_train::{self as vae_train, BackendTrainError as E};
    use microdiff_trainer::zoo::vae::{
        Activation as Act, Hvae, HvaeConfig, Likelihood, TrainConfig as VaeTrain, Vae, VaeConfig,
    };
    let failing = |fail_at| {
        CudaBackend::new(FailingLaunch {
            inner: EmuDevice::new(),
            launches: AtomicUsize::new(0),
            fail_at,
        })
        .expect("backend")
    };
    let x: Vec<f64> = (0..40).map(|k| f64::from(k % 7) / 7.0).collect();
    let cfg = VaeTrain {
        steps: 3,
        batch: 4,
        adam: Default::default(),
        seed: 1,
    };
    let vae = Vae::new(VaeConfig {
        x_dim: 2,
        z_dim: 1,
        classes: 0,
        hidden: vec![4],
        activation: Act::Silu,
        likelihood: Likelihood::Gaussian,
        seed: 2,
    })
    .unwrap();
    let hvae = Hvae::new(HvaeConfig {
        x_dim: 2,
        z1_dim: 2,
        z2_dim: 1,
        hidden: vec![4],
        activation: Act::Silu,
        likelihood: Likelihood::Gaussian,
        seed: 2,
    })
    .unwrap();
    for fail_at in [2, 30] {
        let e = vae_train::train_on(&failing(fail_at), &vae, &x, None, &cfg).unwrap_err();
        assert!(matches!(e, E::Device { step: 0..3, .. }), "{e}");
        assert!(e.to_string().contains("injected failure"), "{e}");
        let e = vae_train::train_hvae_on(&failing(fail_at), &hvae, &x, &cfg).unwrap_err();
        assert!(matches!(e, E::Device { step: 0..3, .. }), "{e}");
    }
    let bits: Vec<f64> = (0..60).map(|k| f64::from(u8::from(k % 3 == 0))).collect();
    let data = BinaryData::new(bits, 6).unwrap();
    let rbm = Rbm::random(6, 3, 0.1, 4).unwrap();
    let e = rbm_train::train_updates_on(&failing(5), &rbm, &data, &RbmConfig::default(), 2)
        .unwrap_err();
    assert!(
        matches!(e, BackendTrainError::Device { update: 1, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("injected failure"), "{e}");
}
