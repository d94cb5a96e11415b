// Counter-based Gaussian noise: an exact port of runtime/src/noise/philox.rs (Philox4x32-10)
// and runtime/src/noise/gauss.rs (u32 -> standard normal), so the GPU draws the CPU's bits.
//
// Why the bits agree: Philox is integer-only. The u32 -> f32 map uses only operations IEEE-754
// rounds correctly (+ - * /, sqrtf), exact int<->float conversions and bit casts, in f32, in
// the order written in gauss.rs, never fused (NVRTC runs with --fmad=false, --prec-div=true,
// --prec-sqrt=true; the emulator with -ffp-contract=off). No intermediate is subnormal, so
// flush-to-zero does not matter. Keep every expression below in gauss.rs's order.
#pragma once

// Philox constants (Random123: PHILOX_M4x32_0/1, PHILOX_W32_0/1).
#define MD_PHILOX_M0 0xD2511F53u
#define MD_PHILOX_M1 0xCD9E8D57u
#define MD_PHILOX_W0 0x9E3779B9u
#define MD_PHILOX_W1 0xBB67AE85u

// Four 32-bit words (a Philox counter or output block).
struct md_u32x4 {
    unsigned int w0, w1, w2, w3;
};

// Philox4x32-10 (philox.rs: philox4x32_10): round 1 uses `key`, the key is bumped by the Weyl
// constants before each of the nine following rounds.
__device__ __forceinline__ md_u32x4 md_philox4x32_10(md_u32x4 c, unsigned int k0,
                                                     unsigned int k1) {
    for (int i = 0; i < 10; ++i) {
        if (i > 0) {
            k0 = k0 + MD_PHILOX_W0;
            k1 = k1 + MD_PHILOX_W1;
        }
        const unsigned int hi0 = __umulhi(MD_PHILOX_M0, c.w0);
        const unsigned int lo0 = MD_PHILOX_M0 * c.w0;
        const unsigned int hi1 = __umulhi(MD_PHILOX_M1, c.w2);
        const unsigned int lo1 = MD_PHILOX_M1 * c.w2;
        md_u32x4 next;
        next.w0 = hi1 ^ c.w1 ^ k0;
        next.w1 = lo1;
        next.w2 = hi0 ^ c.w3 ^ k1;
        next.w3 = lo0;
        c = next;
    }
    return c;
}

// gauss.rs: ln_f32, the natural logarithm from correctly rounded operations only.
__device__ __forceinline__ float md_ln_f32(float x) {
    const unsigned int SQRT2_BITS = 0x3FB504F3u;
    const float LN2_HI = __uint_as_float(0x3F317200u);
    const float LN2_LO = __uint_as_float(0x35BFBE8Eu);
    const float L1 = 2.0f / 3.0f;
    const float L2 = 2.0f / 5.0f;
    const float L3 = 2.0f / 7.0f;
    const float L4 = 2.0f / 9.0f;
    // 2^25, exact: scales a subnormal into the normal range.
    const float TWO_POW_25 = 33554432.0f;

    unsigned int bits = __float_as_uint(x);
    int e = 0;
    if (bits >= 0x7F800000u) {
        if (bits == 0x7F800000u) {
            return __uint_as_float(0x7F800000u); // +inf
        }
        if (bits == 0x80000000u) {
            return __uint_as_float(0xFF800000u); // ln(-0) = -inf
        }
        return __uint_as_float(0x7FC00000u); // NaN, negative
    }
    if (bits == 0u) {
        return __uint_as_float(0xFF800000u);
    }
    if (bits < 0x00800000u) {
        bits = __float_as_uint(x * TWO_POW_25);
        e = -25;
    }
    e += (int)(bits >> 23) - 127;
    unsigned int m_bits = (bits & 0x007FFFFFu) | 0x3F800000u;
    if (m_bits > SQRT2_BITS) {
        m_bits -= 0x00800000u;
        e += 1;
    }
    const float f = __uint_as_float(m_bits) - 1.0f;
    const float s = f / (2.0f + f);
    const float z = s * s;
    const float r = z * (L1 + z * (L2 + z * (L3 + z * L4)));
    const float hfsq = 0.5f * f * f;
    const float k = (float)e;
    return k * LN2_HI - ((hfsq - (s * (hfsq + r) + k * LN2_LO)) - f);
}

// gauss.rs: ppnd7_lower, Wichura's AS 241 PPND7 for a lower-tail p in (0, 1/2), in f32.
// Coefficients are the published decimals, each rounded to the nearest f32 by the compiler as
// Rust rounds them.
__device__ __forceinline__ float md_ppnd7_lower(float p) {
    const float SPLIT1 = 0.425f;
    const float CONST1 = 0.180625f;
    const float A0 = 3.3871327179f;
    const float A1 = 5.0434271938e1f;
    const float A2 = 1.5929113202e2f;
    const float A3 = 5.9109374720e1f;
    const float B1 = 1.7895169469e1f;
    const float B2 = 7.8757757664e1f;
    const float B3 = 6.7187563600e1f;
    const float SPLIT2 = 5.0f;
    const float CONST2 = 1.6f;
    const float C0 = 1.4234372777f;
    const float C1 = 2.7568153900f;
    const float C2 = 1.3067284816f;
    const float C3 = 1.7023821103e-1f;
    const float D1 = 7.3700164250e-1f;
    const float D2 = 1.2021132975e-1f;
    const float E0 = 6.6579051150f;
    const float E1 = 3.0812263860f;
    const float E2 = 4.2868294337e-1f;
    const float E3 = 1.7337203997e-2f;
    const float F1 = 2.4197894225e-1f;
    const float F2 = 1.2258202635e-2f;

    const float q = p - 0.5f;
    if (q >= -SPLIT1) {
        const float r = CONST1 - q * q;
        const float num = ((A3 * r + A2) * r + A1) * r + A0;
        const float den = ((B3 * r + B2) * r + B1) * r + 1.0f;
        return q * num / den;
    }
    const float r = sqrtf(-md_ln_f32(p));
    float z;
    if (r <= SPLIT2) {
        const float rr = r - CONST2;
        const float num = ((C3 * rr + C2) * rr + C1) * rr + C0;
        const float den = (D2 * rr + D1) * rr + 1.0f;
        z = num / den;
    } else {
        const float rr = r - SPLIT2;
        const float num = ((E3 * rr + E2) * rr + E1) * rr + E0;
        const float den = (F2 * rr + F1) * rr + 1.0f;
        z = num / den;
    }
    return -z;
}

// gauss.rs: standard_normal, Phi^-1 of the 2^24-point midpoint grid of the top 24 bits,
// evaluated through the exact mirror p = min(u, 1 - u).
__device__ __forceinline__ float md_standard_normal(unsigned int x) {
    const unsigned int HALF = 1u << 23;
    const unsigned int LOW23 = HALF - 1u;
    // 2^-24, exact.
    const float TWO_POW_M24 = 1.0f / 16777216.0f;
    const unsigned int j = x >> 8;
    const bool upper = j >= HALF;
    const unsigned int k = upper ? (~j & LOW23) : j;
    const float p = ((float)k + 0.5f) * TWO_POW_M24;
    const float z = md_ppnd7_lower(p);
    return upper ? -z : z;
}

// gauss.rs: uniform_open, the top 23 bits of x as a midpoint of a 2^23 grid in (0, 1):
// ((x >> 9) + 0.5) * 2^-23, every step exact.
__device__ __forceinline__ float md_uniform_open(unsigned int x) {
    const float TWO_POW_M23 = 1.0f / 8388608.0f;
    return ((float)(x >> 9) + 0.5f) * TWO_POW_M23;
}
