// The VAEs' latent layers, learned Gaussian prior and decoder likelihood (host-trainer/src/zoo/vae), the CPU
// backend's formulas (host-trainer/src/backend/cpu/zoo.rs) operation for operation, no FMA.
// Losses are per-block partial sums the host adds in block order (no float atomics).
#include "common.cuh"

// Observation codes of `Backend::nll` (host-trainer/src/backend/cuda/mod.rs passes them).
#define MD_OBS_GAUSSIAN 0
#define MD_OBS_BERNOULLI 1

// ln(2 pi), the f32 the CPU backend uses.
#define MD_LN_2PI 1.837877f

// z[r*stride + j] = mu + expf(0.5*lv) * eps[r*dim + j], [mu, lv] = h[r] (mu first).
// h: (rows, 2*dim), eps: (rows, dim), z: (rows, stride); columns dim..stride of z untouched
// (the decoder's class one-hot lives there).
extern "C" __global__ void md_reparam(const float* h, const float* eps, float* z, int rows,
                                      int dim, int stride) {
    const long long total = (long long)rows * (long long)dim;
    for (long long i = md_thread_index(); i < total; i += md_grid_stride()) {
        const long long r = i / dim;
        const long long j = i % dim;
        const float mu = h[r * 2 * dim + j];
        const float lv = h[r * 2 * dim + dim + j];
        z[r * stride + j] = mu + expf(0.5f * lv) * eps[i];
    }
}

// Codes of `LatentLoss` (host-trainer/src/backend/mod.rs).
#define MD_LATENT_KL 0
#define MD_LATENT_SAMPLED 1
#define MD_LATENT_SAMPLED_PRIOR 2

// Backward of md_reparam plus the latent's own loss terms, s their gradient scale:
// sd = expf(0.5*lv), g = dz[r*stride + j]; KL: dh[mu] = g + s*mu,
// dh[lv] = g*eps*0.5*sd + s*0.5*(sd*sd - 1); sampled: g' = g (+ s*z with the standard prior,
// z = mu + sd*eps), dh[mu] = g', dh[lv] = g'*eps*0.5*sd - s*0.5. dh: (rows, 2*dim),
// overwritten. An unknown mode gives NaN.
extern "C" __global__ void md_reparam_bwd(int mode, const float* h, const float* eps,
                                          const float* dz, float* dh, float s, int rows, int dim,
                                          int stride) {
    const long long total = (long long)rows * (long long)dim;
    for (long long i = md_thread_index(); i < total; i += md_grid_stride()) {
        const long long r = i / dim;
        const long long j = i % dim;
        const float mu = h[r * 2 * dim + j];
        const float lv = h[r * 2 * dim + dim + j];
        const float e = eps[i];
        const float sd = expf(0.5f * lv);
        float g = dz[r * stride + j];
        float dmu;
        float dlv;
        if (mode == MD_LATENT_KL) {
            dmu = g + s * mu;
            dlv = g * e * 0.5f * sd + s * 0.5f * (sd * sd - 1.0f);
        } else if (mode == MD_LATENT_SAMPLED || mode == MD_LATENT_SAMPLED_PRIOR) {
            if (mode == MD_LATENT_SAMPLED_PRIOR) {
                const float z = mu + sd * e;
                g = g + s * z;
            }
            dmu = g;
            dlv = g * e * 0.5f * sd - s * 0.5f;
        } else {
            dmu = __uint_as_float(0x7FC00000u);
            dlv = dmu;
        }
        dh[r * 2 * dim + j] = dmu;
        dh[r * 2 * dim + dim + j] = dlv;
    }
}

// partial[b] = sum over block b's grid-stride latents of the loss term of `mode`: KL
// 0.5*(mu^2 + sd^2 - 1 - lv); sampled -0.5*(ln 2pi + lv + eps^2); sampled with the standard
// prior 0.5*(z^2 - lv - eps^2), z = mu + sd*eps. h: (rows, 2*dim), eps: (rows, dim).
// Reduction launch: blockDim.x a power of two, dynamic shared memory blockDim.x * 4 bytes.
extern "C" __global__ void md_latent_partials(int mode, const float* h, const float* eps,
                                              float* partial, int rows, int dim) {
    extern __shared__ float smem[];
    const long long total = (long long)rows * (long long)dim;
    float acc = 0.0f;
    for (long long i = md_thread_index(); i < total; i += md_grid_stride()) {
        const long long r = i / dim;
        const long long j = i % dim;
        const float mu = h[r * 2 * dim + j];
        const float lv = h[r * 2 * dim + dim + j];
        const float e = eps[i];
        const float sd = expf(0.5f * lv);
        float t;
        if (mode == MD_LATENT_KL) {
            t = 0.5f * (mu * mu + sd * sd - 1.0f - lv);
        } else if (mode == MD_LATENT_SAMPLED) {
            t = -0.5f * (MD_LN_2PI + lv + e * e);
        } else if (mode == MD_LATENT_SAMPLED_PRIOR) {
            const float z = mu + sd * e;
            t = 0.5f * (z * z - lv - e * e);
        } else {
            t = __uint_as_float(0x7FC00000u);
        }
        acc = acc + t;
    }
    const float total_b = md_block_sum(acc, smem);
    if (threadIdx.x == 0) {
        partial[blockIdx.x] = total_b;
    }
}

// -log N(z; mu, e^lv) of a learned diagonal Gaussian and its gradients, s their scale:
// d = z - mu, inv = expf(-lv); dz += s*d*inv; dh[mu] = -s*d*inv;
// dh[lv] = -s*(0.5*d*d*inv - 0.5). z, dz: (rows, dim); h, dh: (rows, 2*dim), dh overwritten.
extern "C" __global__ void md_gauss_nll_grad(const float* z, const float* h, float* dz, float* dh,
                                             float s, int rows, int dim) {
    const long long total = (long long)rows * (long long)dim;
    for (long long i = md_thread_index(); i < total; i += md_grid_stride()) {
        const long long r = i / dim;
        const long long j = i % dim;
        const float m = h[r * 2 * dim + j];
        const float v = h[r * 2 * dim + dim + j];
        const float d = z[i] - m;
        const float inv = expf(-v);
        dz[i] = dz[i] + s * d * inv;
        dh[r * 2 * dim + j] = -s * d * inv;
        dh[r * 2 * dim + dim + j] = -s * (0.5f * d * d * inv - 0.5f);
    }
}

// partial[b] = sum over block b's grid-stride values of 0.5*(ln 2pi + lv + d^2 e^{-lv}).
// Reduction launch as md_latent_partials.
extern "C" __global__ void md_gauss_nll_partials(const float* z, const float* h, float* partial,
                                                 int rows, int dim) {
    extern __shared__ float smem[];
    const long long total = (long long)rows * (long long)dim;
    float acc = 0.0f;
    for (long long i = md_thread_index(); i < total; i += md_grid_stride()) {
        const long long r = i / dim;
        const long long j = i % dim;
        const float m = h[r * 2 * dim + j];
        const float v = h[r * 2 * dim + dim + j];
        const float d = z[i] - m;
        const float inv = expf(-v);
        acc = acc + 0.5f * (MD_LN_2PI + v + d * d * inv);
    }
    const float total_b = md_block_sum(acc, smem);
    if (threadIdx.x == 0) {
        partial[blockIdx.x] = total_b;
    }
}

// softplus(x) = ln(1 + e^x) without overflow.
__device__ __forceinline__ float md_softplus(float x) {
    return fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x)));
}

// -log p(x | out) of one value: Gaussian 0.5*(ln 2pi + 2s + r^2 e^{-2s}), r = x - out;
// Bernoulli softplus(out) - x*out.
__device__ __forceinline__ float md_nll_value(int obs, float x, float out, float s) {
    if (obs == MD_OBS_GAUSSIAN) {
        const float r = x - out;
        const float inv = expf(-2.0f * s);
        const float q = r * r * inv;
        return 0.5f * (MD_LN_2PI + 2.0f * s + q);
    }
    return md_softplus(out) - x * out;
}

// d_out = scale * d(-log p)/d(out): Gaussian -(r*e^{-2s}), Bernoulli sigmoid(out) - x.
// x, out, d_out: (rows, dim); log_sigma: (dim), read for the Gaussian only. An unknown obs
// gives NaN.
extern "C" __global__ void md_nll_grad(int obs, const float* x, const float* out,
                                       const float* log_sigma, float* d_out, float scale,
                                       int rows, int dim) {
    const long long total = (long long)rows * (long long)dim;
    for (long long i = md_thread_index(); i < total; i += md_grid_stride()) {
        float d;
        if (obs == MD_OBS_GAUSSIAN) {
            const float r = x[i] - out[i];
            const float inv = expf(-2.0f * log_sigma[i % dim]);
            d = -(r * inv);
        } else if (obs == MD_OBS_BERNOULLI) {
            const float p = 1.0f / (1.0f + expf(-out[i]));
            d = p - x[i];
        } else {
            d = __uint_as_float(0x7FC00000u);
        }
        d_out[i] = scale * d;
    }
}

// partial[b] = sum over block b's grid-stride values of -log p(x | out) (md_nll_value).
// Reduction launch: blockDim.x a power of two, dynamic shared memory blockDim.x * 4 bytes.
extern "C" __global__ void md_nll_partials(int obs, const float* x, const float* out,
                                           const float* log_sigma, float* partial, int rows,
                                           int dim) {
    extern __shared__ float smem[];
    const long long total = (long long)rows * (long long)dim;
    float acc = 0.0f;
    for (long long i = md_thread_index(); i < total; i += md_grid_stride()) {
        const float s = obs == MD_OBS_GAUSSIAN ? log_sigma[i % dim] : 0.0f;
        acc = acc + md_nll_value(obs, x[i], out[i], s);
    }
    const float total_b = md_block_sum(acc, smem);
    if (threadIdx.x == 0) {
        partial[blockIdx.x] = total_b;
    }
}

// dls[j] += scale * sum_r (1 - r^2 e^{-2s_j}), the Gaussian's log-sigma gradient: one thread
// per dimension, rows ascending (the CPU's order; `+=` because gradients accumulate).
// x, out: (rows, dim); log_sigma, dls: (dim).
extern "C" __global__ void md_log_sigma_grad(const float* x, const float* out,
                                             const float* log_sigma, float* dls, float scale,
                                             int rows, int dim) {
    for (long long j = md_thread_index(); j < dim; j += md_grid_stride()) {
        const float inv = expf(-2.0f * log_sigma[j]);
        float acc = 0.0f;
        for (long long r = 0; r < rows; ++r) {
            const float d = x[r * dim + j] - out[r * dim + j];
            acc = acc + (1.0f - d * d * inv);
        }
        dls[j] = dls[j] + scale * acc;
    }
}
