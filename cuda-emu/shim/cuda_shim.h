// The CUDA execution model as host C++, enough of it for microdiff's kernels
// (kernels/cuda/*.cu) to compile unchanged and run on the CPU (launch.cpp runs them).
//
// * __global__ / __device__ / __host__ vanish; __forceinline__ is `inline`.
// * threadIdx, blockIdx, blockDim, gridDim are thread-locals set by the launcher for each
//   emulated thread (every thread of a block is a real OS thread).
// * __syncthreads() is a real barrier across the block's threads.
// * `extern __shared__ float smem[];` (the only shared memory the ABI allows: dynamic, named
//   smem) becomes a reference to one 48 KiB buffer, md_emu's smem, which the launcher fills
//   with NaN before every block and which only one launch at a time uses.
// * The intrinsics the kernels use: bit casts, __umulhi; the math functions are the host's
//   (glibc) single-precision ones.
#pragma once

#include <math.h>
#include <stdint.h>
#include <string.h>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__
#define __restrict__ __restrict

// CUDA's built-in index vector types.
struct uint3 {
    unsigned int x, y, z;
};
struct dim3 {
    unsigned int x, y, z;
};

extern thread_local uint3 threadIdx;
extern thread_local uint3 blockIdx;
extern thread_local dim3 blockDim;
extern thread_local dim3 gridDim;

// Bytes of the emulated dynamic shared memory: the CUDA default per-block limit.
#define MD_EMU_SHARED_BYTES (48 * 1024)

namespace md_emu {
// Waits until every thread of the current block that has not returned yet arrives.
void syncthreads();
}  // namespace md_emu

inline void __syncthreads() { md_emu::syncthreads(); }

inline unsigned int __float_as_uint(float x) {
    unsigned int u;
    memcpy(&u, &x, sizeof u);
    return u;
}

inline float __uint_as_float(unsigned int u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

inline int __float_as_int(float x) {
    int i;
    memcpy(&i, &x, sizeof i);
    return i;
}

inline float __int_as_float(int i) {
    float x;
    memcpy(&x, &i, sizeof x);
    return x;
}

// High 32 bits of the 64-bit product.
inline unsigned int __umulhi(unsigned int a, unsigned int b) {
    return (unsigned int)(((unsigned long long)a * (unsigned long long)b) >> 32);
}
