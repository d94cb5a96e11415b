// The optimizer: gradient-norm partial sums (for clipping), AdamW, and the EMA of the weights.
#include "common.cuh"

// partial[b] = sum over block b's grid-stride elements of g^2; the host adds partial[0..grid]
// in order and takes the square root. g: (n); partial: (gridDim.x). blockDim.x a power of two,
// dynamic shared memory blockDim.x * 4 bytes.
extern "C" __global__ void md_sumsq_partials(const float* g, float* partial, int n) {
    extern __shared__ float smem[];
    float acc = 0.0f;
    for (long long i = md_thread_index(); i < n; i += md_grid_stride()) {
        acc = acc + g[i] * g[i];
    }
    const float total = md_block_sum(acc, smem);
    if (threadIdx.x == 0) {
        partial[blockIdx.x] = total;
    }
}

// One AdamW step (decoupled weight decay where mask = 1), the CPU backend's element formula in
// its expression order: m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g*g; p -= lr*(m*inv_bc1 /
// (sqrt(v*inv_bc2) + eps) + wd*mask*p). inv_bc1 = 1/(1 - b1^t), inv_bc2 = 1/(1 - b2^t) come
// from the host (as the CPU computes them: a multiply per element, not a divide).
// p, g, m, v, mask: (n).
extern "C" __global__ void md_adamw(float* p, const float* g, float* m, float* v, const float* mask,
                                    float lr, float beta1, float beta2, float eps, float wd,
                                    float inv_bc1, float inv_bc2, int n) {
    for (long long i = md_thread_index(); i < n; i += md_grid_stride()) {
        const float gi = g[i];
        const float mi = beta1 * m[i] + (1.0f - beta1) * gi;
        const float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        const float mhat = mi * inv_bc1;
        const float vhat = vi * inv_bc2;
        const float pi = p[i];
        p[i] = pi - lr * (mhat / (sqrtf(vhat) + eps) + wd * mask[i] * pi);
    }
}

// ema = decay*ema + (1 - decay)*p, the CPU's expression order. ema, p: (n).
extern "C" __global__ void md_ema(float* ema, const float* p, float decay, int n) {
    for (long long i = md_thread_index(); i < n; i += md_grid_stride()) {
        ema[i] = decay * ema[i] + (1.0f - decay) * p[i];
    }
}

// Plain gradient descent with L2 decay where mask = 1 (the RBM's update):
// p -= lr*(g + wd*mask*p). p, g, mask: (n).
extern "C" __global__ void md_sgd(float* p, const float* g, const float* mask, float lr, float wd,
                                  int n) {
    for (long long i = md_thread_index(); i < n; i += md_grid_stride()) {
        const float pi = p[i];
        p[i] = pi - lr * (g[i] + wd * mask[i] * pi);
    }
}
