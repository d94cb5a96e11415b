// The non-GEMM parts of a linear layer (the GEMMs themselves go to cuBLAS): the bias in the
// forward pass and its gradient in the backward pass.
#include "common.cuh"

// y[r, c] += bias[c]. y: (rows, cols), bias: (cols).
extern "C" __global__ void md_bias_add(float* y, const float* bias, int rows, int cols) {
    const long long total = (long long)rows * (long long)cols;
    for (long long i = md_thread_index(); i < total; i += md_grid_stride()) {
        y[i] = y[i] + bias[i % cols];
    }
}

// dbias[c] += sum_r dy[r, c]. dy: (rows, cols), dbias: (cols).
//
// One thread per column summing the rows in ascending order into a local, then one `+=`:
// the CPU backend's order exactly, and no atomics, so the bits do not depend on the launch.
// `+=` because a bias gradient accumulates over every use of the layer.
extern "C" __global__ void md_bias_grad(const float* dy, float* dbias, int rows, int cols) {
    for (long long c = md_thread_index(); c < cols; c += md_grid_stride()) {
        float s = 0.0f;
        for (long long r = 0; r < rows; ++r) {
            s = s + dy[r * cols + c];
        }
        dbias[c] = dbias[c] + s;
    }
}

// g[c] += weight * sum_r x[r, c]: an RBM's visible-bias statistics. x: (rows, cols), g:
// (cols). One thread per column, rows ascending into a local, scaled once (the CPU's order).
extern "C" __global__ void md_col_sum(const float* x, float* g, float weight, int rows, int cols) {
    for (long long c = md_thread_index(); c < cols; c += md_grid_stride()) {
        float s = 0.0f;
        for (long long r = 0; r < rows; ++r) {
            s = s + x[r * cols + c];
        }
        g[c] = g[c] + weight * s;
    }
}
