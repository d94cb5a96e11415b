//! Safe, length-checked wrappers over `matrixmultiply`'s `sgemm` / `dgemm` for contiguous
//! row-major matrices, with an optional transpose of either operand (a transpose is only a
//! swap of strides, nothing is copied).
//!
//! The `unsafe` here is confined to these two calls; each checks every slice length against the
//! shapes first, so the raw pointers handed to `matrixmultiply` stay in bounds.
//!
//! `matrixmultiply` picks its SIMD kernel at run time (SSE2 / AVX / FMA / AVX-512), so results
//! are bit-identical run to run on one machine but may differ in the last bits between CPUs.

/// How an operand is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// Use the matrix as stored: `rows × cols` row-major.
    N,
    /// Use its transpose: the logical `rows × cols` operand is stored `cols × rows` row-major.
    T,
}

impl Op {
    /// (row stride, column stride) of a logical `rows × cols` operand.
    fn strides(self, rows: usize, cols: usize) -> (isize, isize) {
        match self {
            Op::N => (cols as isize, 1),
            Op::T => (1, rows as isize),
        }
    }
}

macro_rules! gemm_fn {
    ($name:ident, $ty:ty, $inner:path) => {
        /// `c = op(a) · op(b) + beta · c` with `op(a)` `m × k`, `op(b)` `k × n` and `c` `m × n`,
        /// all contiguous row-major. Panics if a slice length disagrees with the shapes.
        #[allow(clippy::too_many_arguments)]
        pub(crate) fn $name(
            m: usize,
            k: usize,
            n: usize,
            a: &[$ty],
            op_a: Op,
            b: &[$ty],
            op_b: Op,
            beta: $ty,
            c: &mut [$ty],
        ) {
            assert_eq!(a.len(), m * k, "gemm: a has the wrong length");
            assert_eq!(b.len(), k * n, "gemm: b has the wrong length");
            assert_eq!(c.len(), m * n, "gemm: c has the wrong length");
            if m == 0 || n == 0 {
                return;
            }
            if k == 0 {
                // matrixmultiply handles k = 0 too, but be explicit: the product is zero.
                c.iter_mut().for_each(|v| *v *= beta);
                return;
            }
            let (rsa, csa) = op_a.strides(m, k);
            let (rsb, csb) = op_b.strides(k, n);
            // SAFETY: the lengths were checked above. With the strides from `Op::strides`, the
            // largest offset read from `a` is (m−1)·rsa + (k−1)·csa = m·k − 1 (either layout),
            // likewise k·n − 1 for `b`, and `c` is written at (i·n + j) < m·n with distinct
            // offsets for distinct (i, j), so nothing aliases; `a`, `b` are shared borrows and
            // `c` the only mutable one, so the buffers do not overlap.
            unsafe {
                $inner(
                    m,
                    k,
                    n,
                    1.0,
                    a.as_ptr(),
                    rsa,
                    csa,
                    b.as_ptr(),
                    rsb,
                    csb,
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

    /// Naive reference product.
    fn naive(m: usize, k: usize, n: usize, a: &[f64], ta: Op, b: &[f64], tb: Op) -> Vec<f64> {
        let at = |i: usize, p: usize| match ta {
            Op::N => a[i * k + p],
            Op::T => a[p * m + i],
        };
        let bt = |p: usize, j: usize| match tb {
            Op::N => b[p * n + j],
            Op::T => b[j * k + p],
        };
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| at(i, p) * bt(p, j)).sum();
            }
        }
        c
    }

    #[test]
    fn matches_naive_product_for_every_transpose() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.71).cos()).collect();
        for ta in [Op::N, Op::T] {
            for tb in [Op::N, Op::T] {
                let want = naive(m, k, n, &a, ta, &b, tb);
                let mut c = vec![1.0; m * n];
                dgemm(m, k, n, &a, ta, &b, tb, 0.0, &mut c);
                for (x, y) in c.iter().zip(&want) {
                    assert!((x - y).abs() < 1e-12, "{ta:?} {tb:?}: {x} vs {y}");
                }
                let af: Vec<f32> = a.iter().map(|&v| v as f32).collect();
                let bf: Vec<f32> = b.iter().map(|&v| v as f32).collect();
                let mut cf = vec![1.0f32; m * n];
                sgemm(m, k, n, &af, ta, &bf, tb, 1.0, &mut cf);
                for (x, y) in cf.iter().zip(&want) {
                    assert!((f64::from(*x) - (y + 1.0)).abs() < 1e-5);
                }
            }
        }
    }
}
