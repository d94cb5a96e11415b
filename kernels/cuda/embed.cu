// Embeddings: the sinusoidal time embedding and the class-embedding table (gather forward,
// per-class sums backward).
#include "common.cuh"

// Row r of y = microdiff_kernels::time_embedding(t[r], max_period): with half = dim / 2,
// a = t * expf((-logf(max_period) * k) / half), y[r, k] = sinf(a), y[r, half + k] = cosf(a).
// t: (rows), y: (rows, dim). dim must be even (the host checks; an odd dim leaves the last
// column untouched). expf/sinf/cosf/logf are CUDA's, within a few ulp of libm's.
extern "C" __global__ void md_time_embed(const float* t, float* y, int rows, int dim,
                                         float max_period) {
    const int half = dim / 2;
    const long long total = (long long)rows * (long long)half;
    const float neg_log = -logf(max_period);
    const float half_f = (float)half;
    for (long long i = md_thread_index(); i < total; i += md_grid_stride()) {
        const long long r = i / half;
        const int k = (int)(i % half);
        const float a = t[r] * expf((neg_log * (float)k) / half_f);
        y[r * dim + k] = sinf(a);
        y[r * dim + half + k] = cosf(a);
    }
}

// y[r, :] += table[class[r], :]. table: (classes, n), classes: (rows) as exact small integers in
// f32, y: (rows, n). The host guarantees class ids < the table's rows.
extern "C" __global__ void md_embed_add(const float* table, const float* classes, float* y,
                                        int rows, int n) {
    const long long total = (long long)rows * (long long)n;
    for (long long i = md_thread_index(); i < total; i += md_grid_stride()) {
        const long long r = i / n;
        const long long j = i % n;
        y[i] = y[i] + table[md_class_index(classes[r]) * n + j];
    }
}

// dtable[c, :] += sum over rows r with class[r] = c of dy[r, :], rows ascending.
// classes: (rows), dy: (rows, n), dtable: (table_rows, n).
// One thread per (class, feature) scanning all rows, accumulating straight into dtable's
// value as the CPU does: no atomics, the CPU's bits.
extern "C" __global__ void md_embed_add_bwd(const float* classes, const float* dy, float* dtable,
                                            int rows, int n, int table_rows) {
    const long long total = (long long)table_rows * (long long)n;
    for (long long i = md_thread_index(); i < total; i += md_grid_stride()) {
        const long long c = i / n;
        const long long j = i % n;
        float acc = dtable[i];
        for (long long r = 0; r < rows; ++r) {
            if (md_class_index(classes[r]) == c) {
                acc = acc + dy[r * n + j];
            }
        }
        dtable[i] = acc;
    }
}
