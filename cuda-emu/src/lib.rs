//! The CUDA emulator: microdiff's kernel sources (`kernels/cuda/*.cu`), compiled as host C++
//! against a shim of the CUDA execution model (`shim/cuda_shim.h`), launched on the CPU.
//!
//! It exists so that the kernels' logic is executed and compared with the CPU backend on
//! machines without a GPU (CI): the same source text NVRTC compiles for the GPU runs here, with
//! the same `float` arithmetic (no FMA contraction on either side).
//!
//! # What it promises
//!
//! * **The CUDA execution model, faithfully enough to catch kernel bugs.** Every thread of a
//!   block is a real OS thread (from a pool kept for the process), `__syncthreads()` is a real
//!   barrier (threads that have returned no longer count, as on a GPU), blocks run one after
//!   another. Dynamic shared memory (the only kind the kernel ABI allows) is filled with NaN
//!   before every block, and [`Emulator::alloc`] returns memory filled with `0xFF` bytes (NaN),
//!   so a missing barrier or a read of memory nobody wrote shows up as NaN.
//! * **Device memory is host memory.** A [`DevPtr`] is the host address of an emulator-owned
//!   allocation; pointer arithmetic on it gives offset views, as on a GPU.
//! * **No undefined behaviour from bad input.** Every launch is checked before it runs: the
//!   kernel exists, the arguments match its signature (derived by the C++ compiler from the
//!   kernel's declaration), every pointer lies in a live allocation *with room for every
//!   element the kernel will touch* (per-kernel rules, see `extents.rs`), the configuration
//!   is one-dimensional (the kernels index with `.x` only), with 1 to 1024 threads a block and
//!   at most 48 KiB of shared memory. Failures are typed [`EmuError`]s.
//! * **One launch at a time** per process (the shared-memory buffer is process-wide), and no
//!   memory operation runs during a launch of the same emulator.
//!
//! Not emulated: warps (no warp-synchronous code is allowed in the kernels anyway), streams
//! and asynchrony (every call completes before returning), static shared memory.
#![deny(missing_docs)]
#![deny(unsafe_code)]

mod extents;
mod ffi;
mod memory;

use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use memory::Memory;

/// Most threads in one block (CUDA's limit on every architecture we target).
pub const MAX_THREADS_PER_BLOCK: u32 = 1024;
/// Most dynamic shared memory one block may ask for: CUDA's default per-block limit.
pub const MAX_SHARED_BYTES: u32 = 48 * 1024;

/// A kernel of the emulator: its name and its parameter signature, one letter a parameter:
/// `p` pointer, `i` `int`, `u` `unsigned int`, `U` `unsigned long long`, `f` `float`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelInfo {
    /// The `extern "C"` name, e.g. `md_fill`.
    pub name: &'static str,
    /// The signature, e.g. `"pfi"` for `md_fill(float*, float, int)`.
    pub params: &'static str,
}

/// A device address: the host address of emulator-owned memory (or an offset into it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DevPtr(pub u64);

/// One kernel argument.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arg {
    /// A device pointer: any address inside a live allocation.
    Ptr(u64),
    /// `int`.
    I32(i32),
    /// `unsigned int`.
    U32(u32),
    /// `unsigned long long`.
    U64(u64),
    /// `float`.
    F32(f32),
}

impl Arg {
    /// The signature letter of this argument's kind (see [`KernelInfo::params`]).
    pub const fn letter(&self) -> char {
        match self {
            Arg::Ptr(_) => 'p',
            Arg::I32(_) => 'i',
            Arg::U32(_) => 'u',
            Arg::U64(_) => 'U',
            Arg::F32(_) => 'f',
        }
    }

    fn slot(&self) -> u64 {
        match *self {
            Arg::Ptr(p) | Arg::U64(p) => p,
            Arg::I32(v) => u64::from(v as u32),
            Arg::U32(v) => u64::from(v),
            Arg::F32(v) => u64::from(v.to_bits()),
        }
    }
}

/// Grid and block dimensions and dynamic shared memory of a launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaunchConfig {
    /// Blocks in x, y, z.
    pub grid: (u32, u32, u32),
    /// Threads a block in x, y, z.
    pub block: (u32, u32, u32),
    /// Bytes of dynamic shared memory a block.
    pub shared_bytes: u32,
}

impl LaunchConfig {
    /// A one-dimensional launch: `grid` blocks of `block` threads.
    pub const fn linear(grid: u32, block: u32, shared_bytes: u32) -> Self {
        LaunchConfig {
            grid: (grid, 1, 1),
            block: (block, 1, 1),
            shared_bytes,
        }
    }
}

/// What can go wrong with an emulator call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum EmuError {
    /// No kernel of that name is compiled in.
    #[error("unknown kernel `{0}`")]
    UnknownKernel(String),
    /// The number of arguments does not match the kernel's signature.
    #[error("kernel `{kernel}` takes {expected} arguments (signature `{params}`), got {got}")]
    ArgCount {
        /// Kernel name.
        kernel: String,
        /// The signature.
        params: &'static str,
        /// Parameters of the kernel.
        expected: usize,
        /// Arguments given.
        got: usize,
    },
    /// An argument's kind does not match the kernel's parameter.
    #[error("kernel `{kernel}` argument {index}: expected kind `{expected}`, got `{got}`")]
    ArgKind {
        /// Kernel name.
        kernel: String,
        /// Argument position, from 0.
        index: usize,
        /// Signature letter of the parameter.
        expected: char,
        /// Signature letter of the argument.
        got: char,
    },
    /// A pointer argument is not inside any live allocation.
    #[error("kernel `{kernel}` argument {index}: {addr:#x} is not inside a live allocation")]
    BadPointer {
        /// Kernel name.
        kernel: String,
        /// Argument position.
        index: usize,
        /// The address.
        addr: u64,
    },
    /// A pointer argument's allocation is too small for what the kernel will touch.
    #[error(
        "kernel `{kernel}` argument {index}: needs {needed} floats from {addr:#x}, \
         its allocation has {available}"
    )]
    BufferTooSmall {
        /// Kernel name.
        kernel: String,
        /// Argument position.
        index: usize,
        /// The address.
        addr: u64,
        /// f32 elements the kernel will touch.
        needed: u64,
        /// f32 elements left in the allocation.
        available: u64,
    },
    /// The kernel has no rule for the memory it touches (see the crate docs), so it cannot be
    /// launched safely.
    #[error("kernel `{0}` has no memory-extent rule in cuda-emu; add one before launching it")]
    NoExtentRule(String),
    /// A memory access outside one live allocation.
    #[error("{len} bytes at {addr:#x} are not inside one live allocation")]
    OutOfBounds {
        /// Start address.
        addr: u64,
        /// Length in bytes.
        len: usize,
    },
    /// `free` of an address that is not the start of a live allocation.
    #[error("{addr:#x} is not the start of a live allocation")]
    BadFree {
        /// The address.
        addr: u64,
    },
    /// The host could not provide the memory.
    #[error("cannot allocate {bytes} bytes")]
    OutOfMemory {
        /// Size asked for.
        bytes: usize,
    },
    /// A grid or block with no threads.
    #[error("empty launch: grid {grid:?}, block {block:?}")]
    EmptyLaunch {
        /// Grid dimensions.
        grid: (u32, u32, u32),
        /// Block dimensions.
        block: (u32, u32, u32),
    },
    /// A grid or block that is not one-dimensional (microdiff's kernels index with `.x` only).
    #[error("launch is not one-dimensional: grid {grid:?}, block {block:?}")]
    NotLinear {
        /// Grid dimensions.
        grid: (u32, u32, u32),
        /// Block dimensions.
        block: (u32, u32, u32),
    },
    /// More than [`MAX_THREADS_PER_BLOCK`] threads in a block.
    #[error("block of {threads} threads, at most {MAX_THREADS_PER_BLOCK}")]
    TooManyThreads {
        /// Threads asked for.
        threads: u64,
    },
    /// More than [`MAX_SHARED_BYTES`] of dynamic shared memory.
    #[error("{bytes} bytes of shared memory, at most {MAX_SHARED_BYTES}")]
    SharedMemory {
        /// Bytes asked for.
        bytes: u32,
    },
    /// The launcher could not run the kernel (e.g. the OS refused the threads).
    #[error("kernel `{kernel}` could not run: {message}")]
    Launch {
        /// Kernel name.
        kernel: String,
        /// The launcher's message.
        message: String,
    },
}

/// Serialises launches of every emulator in the process: the C++ side's shared memory is one
/// buffer.
static LAUNCH: Mutex<()> = Mutex::new(());

/// All registered kernels: `(info, registry index)`; the `md_` ones first as registered.
fn registry() -> &'static [(KernelInfo, u32)] {
    static REG: OnceLock<Vec<(KernelInfo, u32)>> = OnceLock::new();
    REG.get_or_init(|| {
        ffi::registry()
            .into_iter()
            .zip(0u32..)
            .map(|((name, params), i)| (KernelInfo { name, params }, i))
            .collect()
    })
}

/// The public kernel list: the `md_` kernels of the ABI (test fixtures are left out).
fn public_kernels() -> &'static [KernelInfo] {
    static PUB: OnceLock<Vec<KernelInfo>> = OnceLock::new();
    PUB.get_or_init(|| {
        registry()
            .iter()
            .map(|(k, _)| *k)
            .filter(|k| k.name.starts_with("md_"))
            .collect()
    })
}

/// The emulated device: its memory, and launches of the compiled-in kernels.
///
/// `Send + Sync`; every method takes `&self` and completes before returning.
pub struct Emulator {
    memory: Mutex<Memory>,
}

impl Default for Emulator {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("kernels", &public_kernels().len())
            .finish_non_exhaustive()
    }
}

impl Emulator {
    /// An emulator with no allocations.
    pub fn new() -> Emulator {
        Emulator {
            memory: Mutex::new(Memory::default()),
        }
    }

    fn mem(&self) -> MutexGuard<'_, Memory> {
        // Nothing panics while holding the lock in a way that breaks the map's invariants.
        self.memory.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every `md_` kernel compiled in, in source order.
    pub fn kernels(&self) -> &'static [KernelInfo] {
        public_kernels()
    }

    /// `bytes` of device memory, every byte `0xFF` (each f32 a NaN), like the garbage of
    /// uninitialised `cudaMalloc` memory. 256-byte aligned.
    pub fn alloc(&self, bytes: usize) -> Result<DevPtr, EmuError> {
        self.mem().alloc(bytes).map(DevPtr)
    }

    /// Frees an allocation (`p` must be the address [`Emulator::alloc`] returned).
    pub fn free(&self, p: DevPtr) -> Result<(), EmuError> {
        self.mem().free(p.0)
    }

    /// Copies `src` to device address `dst` (bounds-checked against its allocation).
    pub fn write(&self, dst: u64, src: &[u8]) -> Result<(), EmuError> {
        self.mem().write(dst, src)
    }

    /// Copies device memory at `src` into `dst` (bounds-checked).
    pub fn read(&self, src: u64, dst: &mut [u8]) -> Result<(), EmuError> {
        self.mem().read(src, dst)
    }

    /// Device-to-device copy of `bytes` (ranges may overlap, like `memmove`).
    pub fn copy(&self, dst: u64, src: u64, bytes: usize) -> Result<(), EmuError> {
        self.mem().copy(dst, src, bytes)
    }

    /// Sets `bytes` bytes at `dst` to `byte`.
    pub fn memset(&self, dst: u64, byte: u8, bytes: usize) -> Result<(), EmuError> {
        self.mem().memset(dst, byte, bytes)
    }

    /// Runs kernel `kernel` with `args` over `cfg`'s grid; returns when it has finished.
    ///
    /// Checked first (see the crate docs): the kernel exists, the arguments match its
    /// signature, the configuration is valid, every pointer has room for what the kernel
    /// touches.
    pub fn launch(&self, kernel: &str, cfg: LaunchConfig, args: &[Arg]) -> Result<(), EmuError> {
        let (info, index) = registry()
            .iter()
            .find(|(k, _)| k.name == kernel)
            .ok_or_else(|| EmuError::UnknownKernel(kernel.to_owned()))?;
        let params: Vec<char> = info.params.chars().collect();
        if params.len() != args.len() {
            return Err(EmuError::ArgCount {
                kernel: kernel.to_owned(),
                params: info.params,
                expected: params.len(),
                got: args.len(),
            });
        }
        for (index, (a, &p)) in args.iter().zip(&params).enumerate() {
            if a.letter() != p {
                return Err(EmuError::ArgKind {
                    kernel: kernel.to_owned(),
                    index,
                    expected: p,
                    got: a.letter(),
                });
            }
        }
        check_config(&cfg)?;

        let mem = self.mem();
        for (index, a) in args.iter().enumerate() {
            if let Arg::Ptr(addr) = *a
                && mem.available(addr).is_none()
            {
                return Err(EmuError::BadPointer {
                    kernel: kernel.to_owned(),
                    index,
                    addr,
                });
            }
        }
        let available = |i: usize| match args.get(i) {
            Some(Arg::Ptr(addr)) => mem.available(*addr).map_or(0, |b| (b / 4) as u64),
            _ => 0,
        };
        let read = |addr: u64, n: usize| -> Result<Vec<f32>, EmuError> {
            let mut bytes = vec![0u8; n * 4];
            mem.read(addr, &mut bytes)?;
            Ok(bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        };
        let need = extents::need(kernel, args, &cfg, &available, &read)?
            .ok_or_else(|| EmuError::NoExtentRule(kernel.to_owned()))?;
        for (index, needed) in need {
            let have = available(index);
            if needed > have {
                return Err(EmuError::BufferTooSmall {
                    kernel: kernel.to_owned(),
                    index,
                    addr: match args[index] {
                        Arg::Ptr(p) => p,
                        _ => 0,
                    },
                    needed,
                    available: have,
                });
            }
        }

        let slots: Vec<u64> = args.iter().map(Arg::slot).collect();
        let _one_launch = LAUNCH.lock().unwrap_or_else(PoisonError::into_inner);
        let grid = [cfg.grid.0, cfg.grid.1, cfg.grid.2];
        let block = [cfg.block.0, cfg.block.1, cfg.block.2];
        // The one unsafe call outside `ffi`/`memory`: it is where the checks above pay off.
        // SAFETY: `index` comes from the registry; `slots` match the signature (checked
        // above); every pointer has room for what the kernel touches (extent rules, checked
        // above) and `mem`, held until the launch returns, keeps every allocation alive and
        // untouched by other calls; the configuration is 1-D with 1..=1024 threads a block
        // (check_config); `_one_launch` makes this the only launch running.
        #[allow(unsafe_code)]
        let result = unsafe { ffi::launch(*index, grid, block, &slots) };
        result.map_err(|message| EmuError::Launch {
            kernel: kernel.to_owned(),
            message,
        })?;
        drop(mem);
        Ok(())
    }
}

fn check_config(cfg: &LaunchConfig) -> Result<(), EmuError> {
    let (g, b) = (cfg.grid, cfg.block);
    if [g.0, g.1, g.2, b.0, b.1, b.2].contains(&0) {
        return Err(EmuError::EmptyLaunch { grid: g, block: b });
    }
    let threads = u64::from(b.0) * u64::from(b.1) * u64::from(b.2);
    if threads > u64::from(MAX_THREADS_PER_BLOCK) {
        return Err(EmuError::TooManyThreads { threads });
    }
    if (g.1, g.2, b.1, b.2) != (1, 1, 1, 1) {
        return Err(EmuError::NotLinear { grid: g, block: b });
    }
    if cfg.shared_bytes > MAX_SHARED_BYTES {
        return Err(EmuError::SharedMemory {
            bytes: cfg.shared_bytes,
        });
    }
    Ok(())
}

/// Convenience for tests and the CUDA backend's emulated device: f32 slices to and from
/// device memory.
impl Emulator {
    /// Allocates a buffer holding `host`.
    pub fn upload_f32(&self, host: &[f32]) -> Result<DevPtr, EmuError> {
        let p = self.alloc(host.len() * 4)?;
        let bytes: Vec<u8> = host.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.write(p.0, &bytes)?;
        Ok(p)
    }

    /// Reads `n` f32 from `src`.
    pub fn download_f32(&self, src: u64, n: usize) -> Result<Vec<f32>, EmuError> {
        let mut bytes = vec![0u8; n * 4];
        self.read(src, &mut bytes)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}
