// Element-wise buffer operations: fill, accumulate, scale. Grid-stride loops; any launch works.
#include "common.cuh"

// y = v. y: (n)
extern "C" __global__ void md_fill(float* y, float v, int n) {
    for (long long i = md_thread_index(); i < n; i += md_grid_stride()) {
        y[i] = v;
    }
}

// y += x. y, x: (n). Residual connections and gradient accumulation.
extern "C" __global__ void md_add_assign(float* y, const float* x, int n) {
    for (long long i = md_thread_index(); i < n; i += md_grid_stride()) {
        y[i] = y[i] + x[i];
    }
}

// y *= s. y: (n). Gradient clipping rescales the whole gradient vector.
extern "C" __global__ void md_scale(float* y, float s, int n) {
    for (long long i = md_thread_index(); i < n; i += md_grid_stride()) {
        y[i] = y[i] * s;
    }
}
