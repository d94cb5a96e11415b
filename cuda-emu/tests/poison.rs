//! The emulator catches the bugs it is there to catch: shared memory is NaN until written, in
//! every block, so a missing `__syncthreads` or a read of an unwritten slot gives NaN instead
//! of a plausible number; and threads that return early do not deadlock a barrier. The kernels
//! are `tests/fixtures/*.cu` (feature `test-fixtures`, enabled for this crate's tests only).

use microdiff_cuda_emu::{Arg, Emulator, LaunchConfig};

#[test]
fn uninitialised_shared_memory_reads_nan_in_every_block() {
    let emu = Emulator::new();
    let (grid, block) = (4u32, 64u32);
    let n = (grid * block) as usize;
    let out = emu.alloc(n * 4).unwrap();
    let cfg = LaunchConfig::linear(grid, block, block * 4);
    emu.launch("broken_uninit_shared", cfg, &[Arg::Ptr(out.0)])
        .unwrap();
    let v = emu.download_f32(out.0, n).unwrap();
    for (k, x) in v.iter().enumerate() {
        let t = k % block as usize;
        if t < block as usize / 2 {
            assert_eq!(*x, t as f32, "written slot {k}");
        } else {
            // Block 0 after a previous launch, and blocks 1.. after block 0 wrote the lower
            // half: the upper half is poison every time, never a stale value.
            assert!(x.is_nan(), "slot {k} read {x}, expected the NaN poison");
        }
    }
}

#[test]
fn missing_syncthreads_is_detected() {
    let emu = Emulator::new();
    let (grid, block) = (16u32, 256u32);
    let n = (grid * block) as usize;
    let out = emu.alloc(n * 4).unwrap();
    let cfg = LaunchConfig::linear(grid, block, block * 4);
    // Racy by construction: run a few times; a correct kernel gives 256 everywhere, every time.
    let mut wrong = 0usize;
    for _ in 0..4 {
        emu.launch("broken_missing_sync", cfg, &[Arg::Ptr(out.0)])
            .unwrap();
        let v = emu.download_f32(out.0, n).unwrap();
        wrong += v.iter().filter(|x| **x != block as f32).count();
    }
    println!("broken_missing_sync: {wrong} of {} results wrong", 4 * n);
    assert!(wrong > 0, "a missing barrier went unnoticed");
}

/// The same reduction with its barriers (`md_sq_err_partials`, whose tree is `md_block_sum`)
/// is right every time: the detection above is the missing barrier, not the emulator.
#[test]
fn the_same_tree_with_barriers_is_exact() {
    let emu = Emulator::new();
    let (grid, block) = (16u32, 256u32);
    let n = (grid * block) as usize;
    let ones = emu.upload_f32(&vec![1.0; n]).unwrap();
    let zeros = emu.upload_f32(&vec![0.0; n]).unwrap();
    let partial = emu.alloc(grid as usize * 4).unwrap();
    let cfg = LaunchConfig::linear(grid, block, block * 4);
    for _ in 0..4 {
        emu.launch(
            "md_sq_err_partials",
            cfg,
            &[
                Arg::Ptr(ones.0),
                Arg::Ptr(zeros.0),
                Arg::Ptr(partial.0),
                Arg::I32(n as i32),
            ],
        )
        .unwrap();
        let v = emu.download_f32(partial.0, grid as usize).unwrap();
        assert!(v.iter().all(|x| *x == block as f32), "{v:?}");
    }
}

/// Threads that return before a `__syncthreads` no longer count at it (as on a GPU): the rest
/// of the block passes the barrier instead of deadlocking, in every block.
#[test]
fn early_returns_leave_the_barrier() {
    let emu = Emulator::new();
    let (grid, block) = (8u32, 128u32);
    let half = block as usize / 2;
    let out = emu.alloc(grid as usize * half * 4).unwrap();
    let cfg = LaunchConfig::linear(grid, block, block * 4);
    emu.launch("fixture_early_exit", cfg, &[Arg::Ptr(out.0)])
        .unwrap();
    let v = emu.download_f32(out.0, grid as usize * half).unwrap();
    for (k, x) in v.iter().enumerate() {
        assert_eq!(*x, ((k % half + 1) % half) as f32, "element {k}");
    }
}
