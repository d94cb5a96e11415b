//! The CUDA emulator: the kernel sources of `kernels/cuda`, compiled as C++ against a shim of
//! the CUDA execution model, launched on the CPU. (Being built: see issue #4.)
