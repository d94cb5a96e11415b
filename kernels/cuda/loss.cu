// The mean-squared-error loss: its gradient element-wise, its value as per-block partial sums
// that the host adds in block order (no float atomics: the same bits on every run).
#include "common.cuh"

// d = 2 * (pred - target) / n. pred, target, d: (n).
extern "C" __global__ void md_mse_grad(const float* pred, const float* target, float* d, int n) {
    const float len = (float)n;
    for (long long i = md_thread_index(); i < n; i += md_grid_stride()) {
        d[i] = 2.0f * (pred[i] - target[i]) / len;
    }
}

// partial[b] = sum over block b's grid-stride elements of (pred - target)^2.
// pred, target: (n); partial: (gridDim.x). Each thread sums its elements in order, then the
// block adds the threads' sums in md_block_sum's fixed tree. blockDim.x a power of two,
// dynamic shared memory blockDim.x * 4 bytes.
extern "C" __global__ void md_sq_err_partials(const float* pred, const float* target,
                                              float* partial, int n) {
    extern __shared__ float smem[];
    float acc = 0.0f;
    for (long long i = md_thread_index(); i < n; i += md_grid_stride()) {
        const float e = pred[i] - target[i];
        acc = acc + e * e;
    }
    const float total = md_block_sum(acc, smem);
    if (threadIdx.x == 0) {
        partial[blockIdx.x] = total;
    }
}
