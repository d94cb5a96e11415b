/* The arithmetic ceiling of one core for microdiff's batched sampler against PyTorch's.
 *
 * microdiff's determinism contract rounds every product and every sum separately (no fused
 * multiply-add), so a multiply-accumulate is two vector instructions; PyTorch's GEMMs use one
 * FMA. This measures both in the shape of runtime/src/batch's AVX-512 tile (8 rows x 32
 * samples: 16 independent accumulators, 16 distinct products per column), with the operands
 * in registers, on one core:
 *
 *   gcc -O2 -mavx512f -ffp-contract=off bench/nofma_peak.c -o /tmp/nofma_peak && /tmp/nofma_peak
 *
 * (-ffp-contract=off: otherwise gcc fuses the mul+add loop into FMAs itself.) docs/benchmark.md
 * quotes its output. A benchmark, not a test. */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

#define ITERS 100000000L
/* Named variables, not arrays: gcc keeps arrays of vectors in memory across the barrier. */
#define ACC(k) __m512 a##k##0 = _mm512_set1_ps(k), a##k##1 = _mm512_set1_ps(k + 0.5f);
#define W(k) __m512 w##k = _mm512_set1_ps(0.1f * (k + 1));
#define MUL_ADD(k)                                                                          \
    a##k##0 = _mm512_add_ps(a##k##0, _mm512_mul_ps(w##k, x0));                             \
    a##k##1 = _mm512_add_ps(a##k##1, _mm512_mul_ps(w##k, x1));
#define FMA(k)                                                                              \
    a##k##0 = _mm512_fmadd_ps(w##k, x0, a##k##0);                                          \
    a##k##1 = _mm512_fmadd_ps(w##k, x1, a##k##1);
#define EIGHT(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7)
/* Tells the compiler x and w may change every iteration, so nothing is hoisted or merged. */
#define BARRIER                                                                             \
    __asm__ volatile("" : "+v"(x0), "+v"(x1), "+v"(w0), "+v"(w1), "+v"(w2), "+v"(w3),      \
                     "+v"(w4), "+v"(w5), "+v"(w6), "+v"(w7))
#define SUM(k) sink += _mm512_reduce_add_ps(_mm512_add_ps(a##k##0, a##k##1));

int main(void) {
    __m512 x0 = _mm512_set1_ps(1e-7f), x1 = _mm512_set1_ps(2e-7f);
    EIGHT(ACC)
    EIGHT(W)
    double t = now();
    for (long n = 0; n < ITERS; n++) {
        EIGHT(MUL_ADD)
        BARRIER;
    }
    double mul_add = ITERS * 16.0 * 16 * 2 / (now() - t) / 1e9;
    t = now();
    for (long n = 0; n < ITERS; n++) {
        EIGHT(FMA)
        BARRIER;
    }
    double fma = ITERS * 16.0 * 16 * 2 / (now() - t) / 1e9;
    float sink = 0;
    EIGHT(SUM)
    printf("one core, zmm, 16 accumulators: mul+add %.1f GFLOP/s, fma %.1f GFLOP/s (%.2fx)"
           " [%g]\n", mul_add, fma, fma / mul_add, (double)sink);
    return 0;
}
