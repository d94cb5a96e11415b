//! The one wrapper over `matrixmultiply`: every matrix product on the CPU — the CPU backend's
//! linear layers and the evaluation code (the digits classifier, the Fréchet distance's
//! covariance) — goes through [`sgemm`] or [`dgemm`] here, and nothing else calls
//! `matrixmultiply`.
//!
//! Operands are [`Mat`] views: a slice with a shape and (row, column) strides, so a transpose
//! ([`Mat::t`]) or a block of rows ([`Mat::rows`]) is a different view of the same memory, not
//! a copy. The output is a tightly packed row-major slice. The `unsafe` here is confined to
//! the two calls into `matrixmultiply`; a view checks when it is made that every element it
//! names lies inside its slice, so the raw pointers handed to `matrixmultiply` stay in bounds.
//!
//! Determinism: `matrixmultiply`'s per-element reduction order depends only on `k` (blocks of
//! 256 in order, then the sum into `c`), not on where the element lies, so splitting a product
//! into row blocks does not change its bits. It picks its SIMD kernel at run time (SSE2 / AVX /
//! FMA / AVX-512), so results are bit-identical run to run on one machine but may differ in the
//! last bits between CPUs.

/// Rows of `matrixmultiply`'s f32 AVX-512 micro-kernel tile: row blocks that are multiples of
/// it avoid the kernel's masked edge path (a speed matter only: results are the same).
pub(crate) const TILE: usize = 16;

/// A read-only matrix operand: `rows × cols` elements, element `(r, c)` at
/// `data[r·rs + c·cs]`. Every element lies inside `data` (checked when the view is made).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mat<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a, T> Mat<'a, T> {
    /// `data` as a tightly packed row-major `rows × cols` matrix. Panics if the length
    /// disagrees with the shape.
    pub(crate) fn new(data: &'a [T], rows: usize, cols: usize) -> Self {
        assert_eq!(
            data.len(),
            rows * cols,
            "gemm: an operand has the wrong length"
        );
        Mat {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose (the same memory, strides swapped).
    pub(crate) fn t(self) -> Self {
        Mat {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// Rows `r0..r0 + rows` of this matrix. Panics if they are not all inside it.
    pub(crate) fn rows(self, r0: usize, rows: usize) -> Self {
        assert!(r0 + rows <= self.rows, "gemm: rows outside the operand");
        if rows == 0 || self.cols == 0 {
            // Nothing of it is ever read: keep the slice as it is.
            return Mat { rows, ..self };
        }
        Mat {
            data: &self.data[r0 * self.rs..],
            rows,
            ..self
        }
    }

    /// The index in `data` of the last element, `None` for an empty view. In bounds: `new`
    /// made a view whose every element is inside its slice, `t` only swaps the roles of the
    /// strides, and `rows` takes a subset of the rows and moves the slice's start to the
    /// first of them.
    fn last(&self) -> Option<usize> {
        (self.rows > 0 && self.cols > 0)
            .then(|| (self.rows - 1) * self.rs + (self.cols - 1) * self.cs)
    }
}

macro_rules! gemm_fn {
    ($name:ident, $ty:ty, $inner:path) => {
        /// `c = a · b + beta · c` with `a` `m × k`, `b` `k × n` and `c` `m × n`, contiguous
        /// row-major. Panics if the shapes disagree. For `k = 0`, `c *= beta`.
        pub(crate) fn $name(a: Mat<'_, $ty>, b: Mat<'_, $ty>, beta: $ty, c: &mut [$ty]) {
            let (m, k, n) = (a.rows, a.cols, b.cols);
            assert_eq!(b.rows, k, "gemm: inner dimensions differ");
            assert_eq!(c.len(), m * n, "gemm: c has the wrong length");
            if m == 0 || n == 0 {
                return;
            }
            if k == 0 {
                // matrixmultiply handles k = 0 too, but be explicit: the product is zero.
                c.iter_mut().for_each(|v| *v *= beta);
                return;
            }
            let (la, lb) = (a.last(), b.last());
            assert!(
                la.is_some_and(|l| l < a.data.len()) && lb.is_some_and(|l| l < b.data.len()),
                "gemm shapes"
            );
            // SAFETY: m, k, n > 0, and the largest offset read from `a` is (m−1)·rs + (k−1)·cs
            // = `a.last()` < a.data.len(), likewise for `b` (both asserted above; offsets are
            // non-negative, strides are usize); `c` is written at (i·n + j) < m·n = c.len()
            // with distinct offsets for distinct (i, j); `a`, `b` are shared borrows and `c`
            // the only mutable one, so the buffers do not overlap.
            unsafe {
                $inner(
                    m,
                    k,
                    n,
                    1.0,
                    a.data.as_ptr(),
                    a.rs as isize,
                    a.cs as isize,
                    b.data.as_ptr(),
                    b.rs as isize,
                    b.cs as isize,
                    beta,
                    c.as_mut_ptr(),
                    n as isize,
                    1,
                );
            }
        }
    };
}

gemm_fn!(sgemm, f32, matrixmultiply::sgemm);
gemm_fn!(dgemm, f64, matrixmultiply::dgemm);

#[cfg(test)]
mod tests {
    use super::*;

    /// Naive reference product of `a` (m×k, stored transposed if `ta`) and `b` (k×n, stored
    /// transposed if `tb`).
    fn naive(m: usize, k: usize, n: usize, a: &[f64], ta: bool, b: &[f64], tb: bool) -> Vec<f64> {
        let at = |i: usize, p: usize| if ta { a[p * m + i] } else { a[i * k + p] };
        let bt = |p: usize, j: usize| if tb { b[j * k + p] } else { b[p * n + j] };
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| at(i, p) * bt(p, j)).sum();
            }
        }
        c
    }

    /// The view of `data` as the logical `rows × cols` operand, stored transposed if `t`.
    fn view<T>(data: &[T], rows: usize, cols: usize, t: bool) -> Mat<'_, T> {
        if t {
            Mat::new(data, cols, rows).t()
        } else {
            Mat::new(data, rows, cols)
        }
    }

    #[test]
    fn matches_naive_product_for_every_transpose() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.71).cos()).collect();
        for ta in [false, true] {
            for tb in [false, true] {
                let want = naive(m, k, n, &a, ta, &b, tb);
                let mut c = vec![1.0; m * n];
                dgemm(view(&a, m, k, ta), view(&b, k, n, tb), 0.0, &mut c);
                for (x, y) in c.iter().zip(&want) {
                    assert!((x - y).abs() < 1e-12, "{ta:?} {tb:?}: {x} vs {y}");
                }
                let af: Vec<f32> = a.iter().map(|&v| v as f32).collect();
                let bf: Vec<f32> = b.iter().map(|&v| v as f32).collect();
                let mut cf = vec![1.0f32; m * n];
                sgemm(view(&af, m, k, ta), view(&bf, k, n, tb), 1.0, &mut cf);
                for (x, y) in cf.iter().zip(&want) {
                    assert!((f64::from(*x) - (y + 1.0)).abs() < 1e-5);
                }
            }
        }
    }

    /// A product split into blocks of rows gives the bits of the whole product, also when the
    /// rows are those of a transposed operand (columns of the stored matrix).
    #[test]
    fn row_blocks_give_the_bits_of_the_whole_product() {
        let (m, k, n) = (37, 300, 11);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.71).cos()).collect();
        for ta in [false, true] {
            let mut whole = vec![0.0f32; m * n];
            sgemm(view(&a, m, k, ta), Mat::new(&b, k, n), 0.0, &mut whole);
            let mut blocks = vec![0.0f32; m * n];
            for (j, c) in blocks.chunks_mut(16 * n).enumerate() {
                let a = view(&a, m, k, ta).rows(16 * j, c.len() / n);
                sgemm(a, Mat::new(&b, k, n), 0.0, c);
            }
            assert_eq!(whole, blocks, "transposed: {ta}");
        }
    }
}
