//! The CUDA kernel sources of the host trainer's GPU backend, embedded, and their ABI.
//!
//! The sources live in `kernels/cuda/` (`.cu` files grouped by op family, shared `.cuh`
//! headers) and are embedded here with `include_str!`: the trainer compiles them at run time
//! with NVRTC (`--fmad=false --prec-div=true --prec-sqrt=true --std=c++17`, the headers passed
//! by name), and the `microdiff-cuda-emu` crate compiles the same files as host C++
//! (`-ffp-contract=off`) to run them on the CPU in tests. This module's doc is the source of
//! truth for the kernel ABI: change a kernel, change the table.
//!
//! # Kernel ABI
//!
//! All kernels are `extern "C" __global__`, named `md_*`. `float*` is a device f32 buffer
//! (possibly an offset view into a bigger buffer, e.g. a weight inside the parameter vector);
//! `int` is an i32 element count. Unless stated otherwise a kernel uses a grid-stride loop, so
//! any one-dimensional grid and block work. Formulas are the CPU backend's
//! (`host-trainer/src/backend/cpu/`, trait docs in `backend/mod.rs`); reductions never use
//! float atomics: each output element has one fixed summation order.
//!
//! | file | kernel(params) | semantics |
//! |---|---|---|
//! | elementwise.cu | `md_fill(float* y, float v, int n)` | y = v |
//! | | `md_add_assign(float* y, const float* x, int n)` | y += x |
//! | | `md_scale(float* y, float s, int n)` | y *= s |
//! | linear.cu | `md_bias_add(float* y, const float* bias, int rows, int cols)` | y\[r,c\] += bias\[c\] |
//! | | `md_bias_grad(const float* dy, float* dbias, int rows, int cols)` | dbias\[c\] += Σ_r dy\[r,c\], one thread per column, r ascending |
//! | | `md_col_sum(const float* x, float* g, float weight, int rows, int cols)` | g\[c\] += weight·Σ_r x\[r,c\], one thread per column, r ascending, scaled once |
//! | activation.cu | `md_act_fwd(int act, const float* x, float* y, int n)` | act = [`crate::Activation`] discriminant (0 identity, 1 relu, 2 silu, 3 gelu_tanh), formulas of [`crate::act`]; an unknown code gives NaN |
//! | | `md_act_bwd(int act, const float* x, const float* dy, float* dx, int n)` | dx = dy·act'(x) |
//! | layernorm.cu | `md_layernorm_fwd(const float* x, const float* gamma, const float* beta, float* y, float* stats, int rows, int n, float eps)` | ONE BLOCK PER ROW (grid.x = rows; a smaller grid loops over rows), blockDim.x a power of two ≤ 1024, dynamic shared memory = blockDim.x·4 bytes; stats\[2r\] = mean, stats\[2r+1\] = rstd = 1/sqrt(var+eps) (biased var) |
//! | | `md_layernorm_bwd_dx(const float* x, const float* gamma, const float* stats, const float* dy, float* dx, int rows, int n)` | one block per row, shared = 2·blockDim.x·4 bytes; dx += rstd·(dy·γ − mean(dy·γ) − x̂·mean(dy·γ·x̂)) |
//! | | `md_layernorm_bwd_params(const float* x, const float* stats, const float* dy, float* dgamma, float* dbeta, int rows, int n)` | one thread per feature, rows ascending: dγ += Σ dy·x̂, dβ += Σ dy |
//! | embed.cu | `md_time_embed(const float* t, float* y, int rows, int dim, float max_period)` | row r = [`crate::time_embedding`]`(t[r], max_period, row)`; dim even |
//! | | `md_embed_add(const float* table, const float* classes, float* y, int rows, int n)` | y\[r\] += table\[(int)classes\[r\]\] (class ids as Rust's `c as usize`: NaN/negative → 0) |
//! | | `md_embed_add_bwd(const float* classes, const float* dy, float* dtable, int rows, int n, int table_rows)` | one thread per (class, feature), rows ascending: dtable\[c\] += Σ_{r: class r = c} dy\[r\] |
//! | noise.cu (+ `noise.cuh`, a port of `runtime/src/noise/{philox,gauss}.rs`) | `md_normal_fill(float* out, unsigned long long seed, unsigned int stream, unsigned int domain, unsigned int draw, int n)` | out\[j\] = `NoiseStream{seed, stream, domain}.normal(draw, j)` BIT FOR BIT |
//! | | `md_bernoulli(const float* p, float* out, const float* streams, unsigned long long seed, unsigned int domain, unsigned int draw, unsigned int offset, int rows, int n)` | out\[r,j\] = 1 if `NoiseStream{seed, streams[r], domain}.uniform(draw, offset + j)` < p\[r,j\] else 0; `streams`: u32 ids as f32 bit patterns (`__float_as_uint`) |
//! | | `md_noise_and_target(const float* x0, const float* eps, const float* coef, float* xt, float* target, int rows, int n)` | coef row = \[α, σ, c0, cε\]: xt = α·x0 + σ·ε, target = c0·x0 + cε·ε |
//! | loss.cu | `md_mse_grad(const float* pred, const float* target, float* d, int n)` | d = 2·(p − t)/(float)n |
//! | | `md_sq_err_partials(const float* pred, const float* target, float* partial, int n)` | block b writes partial\[b\] = Σ over its grid-stride elements of (p−t)², fixed-order shared-memory tree (blockDim.x a power of two, dynamic shared = blockDim.x·4); the host sums partial\[0..grid\] in order |
//! | optim.cu | `md_sumsq_partials(const float* g, float* partial, int n)` | same pattern for Σ g² (gradient norm) |
//! | | `md_adamw(float* p, const float* g, float* m, float* v, const float* mask, float lr, float beta1, float beta2, float eps, float wd, float inv_bc1, float inv_bc2, int n)` | exactly the CPU backend's AdamW element formula; inv_bc1 = 1/(1−β1^t), inv_bc2 = 1/(1−β2^t) computed on the host as the CPU backend does (multiplied, not divided) |
//! | | `md_ema(float* ema, const float* p, float decay, int n)` | ema = d·ema + (1−d)·p, same expression order as the CPU |
//! | | `md_sgd(float* p, const float* g, const float* mask, float lr, float wd, int n)` | p −= lr·(g + wd·mask·p) |
//! | vae.cu | `md_reparam(const float* h, const float* eps, float* z, int rows, int dim, int stride)` | z\[r·stride+j\] = μ + expf(½lv)·ε with \[μ, lv\] = h\[r\] (rows × 2·dim) |
//! | | `md_reparam_bwd(int mode, const float* h, const float* eps, const float* dz, float* dh, float s, int rows, int dim, int stride)` | σ = expf(½lv), g = dz\[r·stride+j\]; mode 0 (KL): dh\[μ\] = g + s·μ, dh\[lv\] = g·ε·½σ + s·½(σ²−1); 1 (sampled), 2 (sampled, g += s·z): dh\[μ\] = g, dh\[lv\] = g·ε·½σ − s·½; unknown mode → NaN |
//! | | `md_latent_partials(int mode, const float* h, const float* eps, float* partial, int rows, int dim)` | reduction (as `md_sq_err_partials`) of ½(μ² + σ² − 1 − lv), −½(ln 2π + lv + ε²) or ½(z² − lv − ε²) |
//! | | `md_gauss_nll_grad(const float* z, const float* h, float* dz, float* dh, float s, int rows, int dim)` | d = z − μ, inv = expf(−lv): dz += s·d·inv, dh\[μ\] = −s·d·inv, dh\[lv\] = −s·(½d²·inv − ½) |
//! | | `md_gauss_nll_partials(const float* z, const float* h, float* partial, int rows, int dim)` | reduction of ½(ln 2π + lv + d²·inv) |
//! | | `md_nll_grad(int obs, const float* x, const float* out, const float* log_sigma, float* d_out, float scale, int rows, int dim)` | obs 0 Gaussian: d = −(r·e^{−2s}), r = x − out; 1 Bernoulli: d = sigmoid(out) − x; d_out = scale·d; unknown obs → NaN |
//! | | `md_nll_partials(int obs, const float* x, const float* out, const float* log_sigma, float* partial, int rows, int dim)` | reduction of −log p: ½(ln 2π + 2s + r²e^{−2s}) or softplus(out) − x·out |
//! | | `md_log_sigma_grad(const float* x, const float* out, const float* log_sigma, float* dls, float scale, int rows, int dim)` | dls\[j\] += scale·Σ_r (1 − r²e^{−2s_j}), one thread per dimension, r ascending |
//!
//! Copies use a device-to-device memcpy and GEMMs use cuBLAS, not kernels.
//!
//! Shared memory: kernels use ONLY dynamic shared memory, declared
//! `extern __shared__ float smem[];` (that name: the emulator maps it to its per-block buffer,
//! which it fills with NaN before every block). Block reductions (`md_block_sum` in
//! `common.cuh`) add in a fixed binary tree, so their bits depend on the block size only.
//! Device helpers are `__device__ __forceinline__` and must compile both under NVRTC and as
//! host C++ through the emulator's shim.

/// One kernel source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    /// File name in `kernels/cuda/`, e.g. `"noise.cu"`.
    pub name: &'static str,
    /// The source text.
    pub code: &'static str,
    /// Every `extern "C" __global__` kernel the file defines.
    pub entry_points: &'static [&'static str],
}

/// A header the sources `#include "..."`; NVRTC needs each passed by this name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The name the sources include it by, e.g. `"common.cuh"`.
    pub name: &'static str,
    /// The header text.
    pub code: &'static str,
}

/// Every header of `kernels/cuda/`.
pub const HEADERS: &[Header] = &[
    Header {
        name: "common.cuh",
        code: include_str!("../cuda/common.cuh"),
    },
    Header {
        name: "noise.cuh",
        code: include_str!("../cuda/noise.cuh"),
    },
];

/// Every kernel source of `kernels/cuda/`, with its entry points.
pub const SOURCES: &[Source] = &[
    Source {
        name: "elementwise.cu",
        code: include_str!("../cuda/elementwise.cu"),
        entry_points: &["md_fill", "md_add_assign", "md_scale"],
    },
    Source {
        name: "linear.cu",
        code: include_str!("../cuda/linear.cu"),
        entry_points: &["md_bias_add", "md_bias_grad", "md_col_sum"],
    },
    Source {
        name: "activation.cu",
        code: include_str!("../cuda/activation.cu"),
        entry_points: &["md_act_fwd", "md_act_bwd"],
    },
    Source {
        name: "layernorm.cu",
        code: include_str!("../cuda/layernorm.cu"),
        entry_points: &[
            "md_layernorm_fwd",
            "md_layernorm_bwd_dx",
            "md_layernorm_bwd_params",
        ],
    },
    Source {
        name: "embed.cu",
        code: include_str!("../cuda/embed.cu"),
        entry_points: &["md_time_embed", "md_embed_add", "md_embed_add_bwd"],
    },
    Source {
        name: "noise.cu",
        code: include_str!("../cuda/noise.cu"),
        entry_points: &["md_normal_fill", "md_noise_and_target", "md_bernoulli"],
    },
    Source {
        name: "loss.cu",
        code: include_str!("../cuda/loss.cu"),
        entry_points: &["md_mse_grad", "md_sq_err_partials"],
    },
    Source {
        name: "optim.cu",
        code: include_str!("../cuda/optim.cu"),
        entry_points: &["md_sumsq_partials", "md_adamw", "md_ema", "md_sgd"],
    },
    Source {
        name: "vae.cu",
        code: include_str!("../cuda/vae.cu"),
        entry_points: &[
            "md_reparam",
            "md_reparam_bwd",
            "md_latent_partials",
            "md_gauss_nll_grad",
            "md_gauss_nll_partials",
            "md_nll_grad",
            "md_nll_partials",
            "md_log_sigma_grad",
        ],
    },
];

/// The source that defines kernel `name`, if any.
pub fn source_of(name: &str) -> Option<&'static Source> {
    SOURCES.iter().find(|s| s.entry_points.contains(&name))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each listed entry point is defined in its file, and each file defines only those.
    #[test]
    fn entry_points_match_the_sources() {
        for s in SOURCES {
            let defined: usize = s
                .code
                .lines()
                .filter(|l| l.trim_start().starts_with("extern \"C\" __global__ void "))
                .count();
            assert_eq!(defined, s.entry_points.len(), "{}", s.name);
            for e in s.entry_points {
                let decl = ["extern \"C\" __global__ void ", e, "("].concat();
                assert!(s.code.contains(decl.as_str()), "{} lacks {e}", s.name);
            }
        }
    }

    /// Every `#include "x"` of a source or header names an embedded header.
    #[test]
    fn includes_are_embedded_headers() {
        let texts = SOURCES
            .iter()
            .map(|s| s.code)
            .chain(HEADERS.iter().map(|h| h.code));
        for text in texts {
            for l in text.lines().filter(|l| l.starts_with("#include \"")) {
                let name = l.trim_start_matches("#include \"").trim_end_matches('"');
                assert!(HEADERS.iter().any(|h| h.name == name), "{name}");
            }
        }
    }
}
