// Activations and their derivatives, the formulas of kernels/src/act.rs operation for
// operation (no FMA: NVRTC runs with --fmad=false). Only expf/tanhf may differ from the CPU's
// libm, by an ulp or two.
#include "common.cuh"

// Codes of `microdiff_kernels::Activation` (its discriminants, the blob's codes).
#define MD_ACT_IDENTITY 0
#define MD_ACT_RELU 1
#define MD_ACT_SILU 2
#define MD_ACT_GELU_TANH 3
#define MD_ACT_SIGMOID 4
#define MD_ACT_EXP 5

// act.rs: SQRT_2_OVER_PI = 0x3F4C422A, GELU_COEFF = 0.044715, GELU_COEFF_3 = 0.134145.
#define MD_SQRT_2_OVER_PI 0.7978846f
#define MD_GELU_COEFF 0.044715f
#define MD_GELU_COEFF_3 0.134145f

__device__ __forceinline__ float md_act_apply(int act, float x) {
    switch (act) {
    case MD_ACT_IDENTITY:
        return x;
    case MD_ACT_RELU:
        // NaN propagates and relu(-0) = -0, as in act.rs.
        return x < 0.0f ? 0.0f : x;
    case MD_ACT_SILU:
        return x / (1.0f + expf(-x));
    case MD_ACT_GELU_TANH: {
        const float u = MD_SQRT_2_OVER_PI * (x + MD_GELU_COEFF * ((x * x) * x));
        return (0.5f * x) * (1.0f + tanhf(u));
    }
    case MD_ACT_SIGMOID:
        return 1.0f / (1.0f + expf(-x));
    case MD_ACT_EXP:
        return expf(x);
    default:
        // Unknown code: NaN, so a bad launch cannot pass for a result.
        return __uint_as_float(0x7FC00000u);
    }
}

__device__ __forceinline__ float md_act_grad(int act, float x) {
    switch (act) {
    case MD_ACT_IDENTITY:
        return 1.0f;
    case MD_ACT_RELU:
        // Subgradient 0 at 0; NaN propagates.
        return x > 0.0f ? 1.0f : (x != x ? x : 0.0f);
    case MD_ACT_SILU: {
        const float s = 1.0f / (1.0f + expf(-x));
        return s * (1.0f + x * (1.0f - s));
    }
    case MD_ACT_GELU_TANH: {
        const float x2 = x * x;
        const float t = tanhf(MD_SQRT_2_OVER_PI * (x + MD_GELU_COEFF * (x2 * x)));
        const float du = MD_SQRT_2_OVER_PI * (1.0f + MD_GELU_COEFF_3 * x2);
        const float d = 1.0f - t * t;
        const float g = 0.5f * (1.0f + t);
        // Saturated tanh: the second term is +-0 anyway; skipping it keeps 0 * inf out.
        return d == 0.0f ? g : g + ((0.5f * x) * d) * du;
    }
    case MD_ACT_SIGMOID: {
        const float s = 1.0f / (1.0f + expf(-x));
        return s * (1.0f - s);
    }
    case MD_ACT_EXP:
        return expf(x);
    default:
        return __uint_as_float(0x7FC00000u);
    }
}

// y = act(x). x, y: (n).
extern "C" __global__ void md_act_fwd(int act, const float* x, float* y, int n) {
    for (long long i = md_thread_index(); i < n; i += md_grid_stride()) {
        y[i] = md_act_apply(act, x[i]);
    }
}

// dx = dy * act'(x) (overwrites dx: an activation's input feeds nothing else). x, dy, dx: (n).
extern "C" __global__ void md_act_bwd(int act, const float* x, const float* dy, float* dx, int n) {
    for (long long i = md_thread_index(); i < n; i += md_grid_stride()) {
        dx[i] = dy[i] * md_act_grad(act, x[i]);
    }
}
