// Shared helpers of every microdiff kernel: the grid-stride loop and the fixed-order block
// reduction. Compiled by NVRTC for the GPU and, through cuda-emu's shim, as host C++.
#pragma once

// First element of this thread in a grid-stride loop. 64-bit so that `i += stride` cannot
// overflow for any `int` element count.
__device__ __forceinline__ long long md_thread_index() {
    return (long long)blockIdx.x * (long long)blockDim.x + (long long)threadIdx.x;
}

// Stride of a grid-stride loop: every thread of the grid, so each element has one owner
// whatever the launch configuration.
__device__ __forceinline__ long long md_grid_stride() {
    return (long long)blockDim.x * (long long)gridDim.x;
}

// Sum of `v` over the threads of the block, returned to every thread.
//
// `buf`: blockDim.x floats of shared memory; blockDim.x a power of two. The order is a fixed
// binary tree (thread t adds t + s for s = blockDim/2, /4, ..., 1), so the result depends only
// on the block size, never on scheduling. The trailing barrier lets the caller reuse `buf`.
__device__ __forceinline__ float md_block_sum(float v, float* buf) {
    const unsigned int t = threadIdx.x;
    buf[t] = v;
    __syncthreads();
    for (unsigned int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (t < s) {
            buf[t] = buf[t] + buf[t + s];
        }
        __syncthreads();
    }
    const float total = buf[0];
    __syncthreads();
    return total;
}

// Two block sums at once (same tree as md_block_sum), sharing the barriers.
// `buf`: 2 * blockDim.x floats of shared memory.
__device__ __forceinline__ void md_block_sum2(float* a, float* b, float* buf) {
    const unsigned int t = threadIdx.x;
    const unsigned int n = blockDim.x;
    buf[t] = *a;
    buf[n + t] = *b;
    __syncthreads();
    for (unsigned int s = n / 2; s > 0; s >>= 1) {
        if (t < s) {
            buf[t] = buf[t] + buf[t + s];
            buf[n + t] = buf[n + t] + buf[n + t + s];
        }
        __syncthreads();
    }
    *a = buf[0];
    *b = buf[n];
    __syncthreads();
}

// Rust's `c as usize` for a class id stored in f32: NaN and negatives give 0, fractions
// truncate. Keeps the kernels' class lookup identical to the CPU backend's.
__device__ __forceinline__ long long md_class_index(float c) {
    return c >= 1.0f ? (long long)c : 0;
}
