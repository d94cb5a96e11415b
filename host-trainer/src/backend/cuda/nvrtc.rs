//! NVRTC compilation of the kernel sources of `kernels/cuda` (being built, issue #4).
