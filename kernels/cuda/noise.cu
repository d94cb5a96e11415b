// Gaussian noise drawn on the device with the runtime's Philox4x32-10 + inverse-CDF map
// (noise.cuh), and the noising of a training batch.
#include "common.cuh"
#include "noise.cuh"

// out[j] = NoiseStream { seed, stream, domain }.normal(draw, j), bit for bit. out: (n).
//
// Counter layout (runtime/src/noise/mod.rs): ctr = [j / 4, draw, stream, domain], key =
// [seed low, seed high]; element j is lane j % 4. Each thread owns whole Philox blocks of 4
// elements, so each block is computed once.
extern "C" __global__ void md_normal_fill(float* out, unsigned long long seed, unsigned int stream,
                                          unsigned int domain, unsigned int draw, int n) {
    const unsigned int k0 = (unsigned int)seed;
    const unsigned int k1 = (unsigned int)(seed >> 32);
    const long long blocks = ((long long)n + 3) / 4;
    for (long long b = md_thread_index(); b < blocks; b += md_grid_stride()) {
        md_u32x4 c;
        c.w0 = (unsigned int)b;
        c.w1 = draw;
        c.w2 = stream;
        c.w3 = domain;
        const md_u32x4 w = md_philox4x32_10(c, k0, k1);
        const long long j = 4 * b;
        out[j] = md_standard_normal(w.w0);
        if (j + 1 < n) {
            out[j + 1] = md_standard_normal(w.w1);
        }
        if (j + 2 < n) {
            out[j + 2] = md_standard_normal(w.w2);
        }
        if (j + 3 < n) {
            out[j + 3] = md_standard_normal(w.w3);
        }
    }
}

// Forward noising and the regression target of one batch, per row r with
// coef[r] = [alpha, sigma, c0, ceps]: xt = alpha*x0 + sigma*eps, target = c0*x0 + ceps*eps.
// x0, eps, xt, target: (rows, n); coef: (rows, 4).
extern "C" __global__ void md_noise_and_target(const float* x0, const float* eps, const float* coef,
                                               float* xt, float* target, int rows, int n) {
    const long long total = (long long)rows * (long long)n;
    for (long long i = md_thread_index(); i < total; i += md_grid_stride()) {
        const float* c = coef + 4 * (i / n);
        const float x = x0[i];
        const float e = eps[i];
        xt[i] = c[0] * x + c[1] * e;
        target[i] = c[2] * x + c[3] * e;
    }
}

// Bernoulli draws of per-row counter noise: out[r, j] = 1 if
// NoiseStream{seed, streams[r], domain}.uniform(draw, offset + j) < p[r, j], else 0 (an RBM's
// Gibbs sweep). p, out: (rows, n); streams: (rows) u32 ids as the bit patterns of f32 slots (the
// buffers are f32; a load and a bit cast never change bits). One thread per element computes its element's Philox block (lane
// (offset + j) % 4); counters wrap as u32, as the CPU's.
extern "C" __global__ void md_bernoulli(const float* p, float* out, const float* streams,
                                        unsigned long long seed, unsigned int domain,
                                        unsigned int draw, unsigned int offset, int rows, int n) {
    const unsigned int k0 = (unsigned int)seed;
    const unsigned int k1 = (unsigned int)(seed >> 32);
    const long long total = (long long)rows * (long long)n;
    for (long long i = md_thread_index(); i < total; i += md_grid_stride()) {
        const long long r = i / n;
        const unsigned int e = offset + (unsigned int)(i % n);
        md_u32x4 c;
        c.w0 = e / 4u;
        c.w1 = draw;
        c.w2 = __float_as_uint(streams[r]);
        c.w3 = domain;
        const md_u32x4 w = md_philox4x32_10(c, k0, k1);
        const unsigned int lane = e % 4u;
        const unsigned int x = lane == 0u ? w.w0 : lane == 1u ? w.w1 : lane == 2u ? w.w2 : w.w3;
        out[i] = md_uniform_open(x) < p[i] ? 1.0f : 0.0f;
    }
}
