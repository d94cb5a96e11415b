// Layer norm over the last axis, forward and backward.
//
// Row statistics are block reductions (one block per row, a fixed tree: see md_block_sum), so
// they differ from the CPU backend's sequential sums by rounding only; the parameter
// gradients are per-feature sums over rows in ascending order, the CPU's order exactly.
#include "common.cuh"

// y = (x - mean) * rstd * gamma + beta per row, and stats[2r] = mean, stats[2r+1] = rstd.
// x, y: (rows, n); gamma, beta: (n); stats: (rows, 2).
// Launch: one block per row (a grid smaller than `rows` loops over rows), blockDim.x a power
// of two <= 1024, dynamic shared memory blockDim.x * 4 bytes.
extern "C" __global__ void md_layernorm_fwd(const float* x, const float* gamma, const float* beta,
                                            float* y, float* stats, int rows, int n, float eps) {
    extern __shared__ float smem[];
    for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
        const float* xr = x + r * n;
        float* yr = y + r * n;
        float s = 0.0f;
        for (int j = threadIdx.x; j < n; j += blockDim.x) {
            s = s + xr[j];
        }
        const float mean = md_block_sum(s, smem) / (float)n;
        // Two passes (sum of squared deviations), as the CPU: no cancellation.
        float q = 0.0f;
        for (int j = threadIdx.x; j < n; j += blockDim.x) {
            const float d = xr[j] - mean;
            q = q + d * d;
        }
        const float var = md_block_sum(q, smem) / (float)n;
        const float rstd = 1.0f / sqrtf(var + eps);
        for (int j = threadIdx.x; j < n; j += blockDim.x) {
            yr[j] = (xr[j] - mean) * rstd * gamma[j] + beta[j];
        }
        if (threadIdx.x == 0) {
            stats[2 * r] = mean;
            stats[2 * r + 1] = rstd;
        }
    }
}

// dx += rstd * (dy*gamma - mean(dy*gamma) - xhat * mean(dy*gamma*xhat)), xhat = (x - mean)*rstd.
// x, dy, dx: (rows, n); gamma: (n); stats: (rows, 2) from the forward pass.
// `+=` because a layer norm's input (the residual stream) also receives other gradients.
// Launch: one block per row, blockDim.x a power of two <= 1024, shared 2 * blockDim.x * 4 bytes.
extern "C" __global__ void md_layernorm_bwd_dx(const float* x, const float* gamma,
                                               const float* stats, const float* dy, float* dx,
                                               int rows, int n) {
    extern __shared__ float smem[];
    for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
        const float* xr = x + r * n;
        const float* dyr = dy + r * n;
        float* dxr = dx + r * n;
        const float mean = stats[2 * r];
        const float rstd = stats[2 * r + 1];
        float m1 = 0.0f;
        float m2 = 0.0f;
        for (int j = threadIdx.x; j < n; j += blockDim.x) {
            const float xhat = (xr[j] - mean) * rstd;
            const float dxhat = dyr[j] * gamma[j];
            m1 = m1 + dxhat;
            m2 = m2 + dxhat * xhat;
        }
        md_block_sum2(&m1, &m2, smem);
        m1 = m1 / (float)n;
        m2 = m2 / (float)n;
        for (int j = threadIdx.x; j < n; j += blockDim.x) {
            const float xhat = (xr[j] - mean) * rstd;
            dxr[j] = dxr[j] + rstd * (dyr[j] * gamma[j] - m1 - xhat * m2);
        }
    }
}

// dgamma[j] += sum_r dy[r,j] * xhat[r,j], dbeta[j] += sum_r dy[r,j].
// x, dy: (rows, n); stats: (rows, 2); dgamma, dbeta: (n).
// One thread per feature, rows ascending: the CPU backend's expression order, bit for bit.
extern "C" __global__ void md_layernorm_bwd_params(const float* x, const float* stats,
                                                   const float* dy, float* dgamma, float* dbeta,
                                                   int rows, int n) {
    for (long long j = md_thread_index(); j < n; j += md_grid_stride()) {
        float sg = 0.0f;
        float sb = 0.0f;
        for (long long r = 0; r < rows; ++r) {
            const float mean = stats[2 * r];
            const float rstd = stats[2 * r + 1];
            const float d = dy[r * n + j];
            sg = sg + d * (x[r * n + j] - mean) * rstd;
            sb = sb + d;
        }
        dgamma[j] = dgamma[j] + sg;
        dbeta[j] = dbeta[j] + sb;
    }
}
