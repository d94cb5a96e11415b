//! The emulator's API: memory, the kernel registry, and typed errors for bad launches.

use microdiff_cuda_emu::{Arg, EmuError, Emulator, LaunchConfig};

#[test]
fn registry_matches_the_kernel_sources() {
    let emu = Emulator::new();
    let mut registered: Vec<&str> = emu.kernels().iter().map(|k| k.name).collect();
    let mut listed: Vec<&str> = microdiff_kernels::cuda::SOURCES
        .iter()
        .flat_map(|s| s.entry_points.iter().copied())
        .collect();
    registered.sort_unstable();
    listed.sort_unstable();
    assert_eq!(registered, listed);
    let fill = emu.kernels().iter().find(|k| k.name == "md_fill").unwrap();
    assert_eq!(fill.params, "pfi");
    let normal = emu
        .kernels()
        .iter()
        .find(|k| k.name == "md_normal_fill")
        .unwrap();
    assert_eq!(normal.params, "pUuuui");
}

#[test]
fn alloc_is_poisoned_and_memory_round_trips() {
    let emu = Emulator::new();
    let p = emu.alloc(16).unwrap();
    assert_eq!(p.0 % 256, 0);
    let fresh = emu.download_f32(p.0, 4).unwrap();
    assert!(fresh.iter().all(|v| v.is_nan()), "{fresh:?}");
    emu.write(p.0 + 4, &2.5f32.to_le_bytes()).unwrap();
    emu.copy(p.0 + 8, p.0 + 4, 4).unwrap();
    emu.memset(p.0, 0, 4).unwrap();
    assert_eq!(emu.download_f32(p.0, 3).unwrap(), [0.0, 2.5, 2.5]);
    assert!(matches!(
        emu.write(p.0 + 12, &[0; 8]),
        Err(EmuError::OutOfBounds { .. })
    ));
    assert!(matches!(
        emu.read(p.0 + 17, &mut [0; 1]),
        Err(EmuError::OutOfBounds { .. })
    ));
    assert!(matches!(
        emu.free(microdiff_cuda_emu::DevPtr(p.0 + 4)),
        Err(EmuError::BadFree { .. })
    ));
    emu.free(p).unwrap();
    assert!(matches!(
        emu.read(p.0, &mut [0; 4]),
        Err(EmuError::OutOfBounds { .. })
    ));
    assert!(matches!(emu.free(p), Err(EmuError::BadFree { .. })));
}

#[test]
fn fill_runs_over_any_grid() {
    let emu = Emulator::new();
    let y = emu.alloc(1000 * 4).unwrap();
    for (grid, block) in [(1, 1), (3, 32), (64, 256), (1, 1024)] {
        emu.launch(
            "md_fill",
            LaunchConfig::linear(grid, block, 0),
            &[Arg::Ptr(y.0), Arg::F32(grid as f32), Arg::I32(1000)],
        )
        .unwrap();
        let v = emu.download_f32(y.0, 1000).unwrap();
        assert!(v.iter().all(|&x| x == grid as f32), "grid {grid}");
    }
}

#[test]
fn bad_launches_are_typed_errors() {
    let emu = Emulator::new();
    let y = emu.alloc(64 * 4).unwrap();
    let cfg = LaunchConfig::linear(1, 64, 0);
    let fill = |n: i32| [Arg::Ptr(y.0), Arg::F32(1.0), Arg::I32(n)];
    assert!(matches!(
        emu.launch("md_nope", cfg, &fill(64)),
        Err(EmuError::UnknownKernel(_))
    ));
    assert!(matches!(
        emu.launch("md_fill", cfg, &fill(64)[..2]),
        Err(EmuError::ArgCount {
            expected: 3,
            got: 2,
            ..
        })
    ));
    assert!(matches!(
        emu.launch("md_fill", cfg, &[Arg::Ptr(y.0), Arg::I32(1), Arg::I32(64)]),
        Err(EmuError::ArgKind {
            index: 1,
            expected: 'f',
            got: 'i',
            ..
        })
    ));
    assert!(matches!(
        emu.launch(
            "md_fill",
            cfg,
            &[Arg::Ptr(12345), Arg::F32(1.0), Arg::I32(1)]
        ),
        Err(EmuError::BadPointer { index: 0, .. })
    ));
    // In an allocation, but without room for n elements.
    assert!(matches!(
        emu.launch("md_fill", cfg, &fill(65)),
        Err(EmuError::BufferTooSmall {
            needed: 65,
            available: 64,
            ..
        })
    ));
    assert!(matches!(
        emu.launch("md_fill", LaunchConfig::linear(1, 1025, 0), &fill(64)),
        Err(EmuError::TooManyThreads { threads: 1025 })
    ));
    assert!(matches!(
        emu.launch("md_fill", LaunchConfig::linear(0, 32, 0), &fill(64)),
        Err(EmuError::EmptyLaunch { .. })
    ));
    assert!(matches!(
        emu.launch(
            "md_fill",
            LaunchConfig::linear(1, 32, 48 * 1024 + 4),
            &fill(64)
        ),
        Err(EmuError::SharedMemory { .. })
    ));
    let cfg2 = LaunchConfig {
        grid: (1, 2, 1),
        block: (32, 1, 1),
        shared_bytes: 0,
    };
    assert!(matches!(
        emu.launch("md_fill", cfg2, &fill(64)),
        Err(EmuError::NotLinear { .. })
    ));
    // The embedding gather checks the class ids against the table's allocation.
    let table = emu.upload_f32(&[0.0; 6]).unwrap(); // 3 classes of 2
    let classes = emu.upload_f32(&[0.0, 3.0]).unwrap();
    let out = emu.upload_f32(&[0.0; 4]).unwrap();
    let args = [
        Arg::Ptr(table.0),
        Arg::Ptr(classes.0),
        Arg::Ptr(out.0),
        Arg::I32(2),
        Arg::I32(2),
    ];
    assert!(matches!(
        emu.launch("md_embed_add", cfg, &args),
        Err(EmuError::BufferTooSmall {
            index: 0,
            needed: 8,
            available: 6,
            ..
        })
    ));
    // Nothing ran: the buffer still holds its poison.
    assert!(
        emu.download_f32(y.0, 64)
            .unwrap()
            .iter()
            .all(|v| v.is_nan())
    );
    let msg = emu.launch("md_nope", cfg, &[]).unwrap_err().to_string();
    assert!(msg.contains("md_nope"), "{msg}");
}

/// Every kernel has a memory-extent rule (else `launch` refuses it): a launch with zero counts
/// is accepted and touches at most its one-block outputs.
#[test]
fn every_kernel_has_an_extent_rule() {
    let emu = Emulator::new();
    let buf = emu.alloc(64).unwrap();
    for k in emu.kernels() {
        let args: Vec<Arg> = k
            .params
            .chars()
            .map(|c| match c {
                'p' => Arg::Ptr(buf.0),
                'i' => Arg::I32(0),
                'u' => Arg::U32(0),
                'U' => Arg::U64(0),
                'f' => Arg::F32(1.0),
                other => panic!("{}: unknown signature letter {other}", k.name),
            })
            .collect();
        emu.launch(k.name, LaunchConfig::linear(1, 32, 32 * 4 * 2), &args)
            .unwrap_or_else(|e| panic!("{}: {e}", k.name));
    }
}
