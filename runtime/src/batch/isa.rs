//! Instruction-set dispatch: the block executor compiled for AVX-512F, for AVX2 and for the
//! baseline, chosen at run time — this module's only `unsafe` is calling a version after the
//! CPU has been checked for its features.
//!
//! Every version performs the same IEEE operations in the same order (see [`super::lanes`]),
//! so the choice changes speed, never bits; the tests run every version the CPU has and
//! compare them.
#![allow(unsafe_code)]

use super::exec::{Block, run_block};
use super::lanes::Portable;
use super::prepare::BatchModel;
use crate::blob::program::Program;
use crate::error::Error;
use std::vec::Vec;

/// An instruction set the executor is compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// x86-64 with AVX-512F: tiles of 8 rows × 32 (or 16) samples in 16-lane registers.
    Avx512,
    /// x86-64 with AVX2: tiles of 4 rows × 16 samples in 8-lane registers.
    Avx2,
    /// Plain Rust for the target's baseline (SSE2 on x86-64, NEON on AArch64): tiles of 4
    /// rows × 8 samples, vectorised as far as the compiler manages.
    Baseline,
}

impl Isa {
    /// The widest version this CPU can run.
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                return Isa::Avx2;
            }
        }
        Isa::Baseline
    }

    /// Every version this CPU can run, widest first.
    pub fn available() -> Vec<Isa> {
        [Isa::Avx512, Isa::Avx2, Isa::Baseline]
            .into_iter()
            .filter(|&i| i.supported())
            .collect()
    }

    /// Whether this CPU can run `self`.
    pub fn supported(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            Isa::Baseline => true,
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Lower-case name, as printed in reports.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2 => "avx2",
            Isa::Baseline => "baseline",
        }
    }
}

/// [`run_block`] compiled for `isa`, which falls back to the baseline if the CPU lacks it.
pub(crate) fn run(
    isa: Isa,
    bm: &BatchModel<'_, '_>,
    program: Program<'_>,
    block: &mut Block<'_>,
    out: &mut [f32],
) -> Result<(), Error> {
    #[cfg(target_arch = "x86_64")]
    {
        if isa == Isa::Avx512
            && let Some(k) = x86::Avx512::new()
        {
            // SAFETY: `k` exists, so the CPU supports AVX-512F, the only requirement of
            // calling a function compiled with that target feature.
            return unsafe { x86::run_avx512(k, bm, program, block, out) };
        }
        if isa == Isa::Avx2
            && let Some(k) = x86::Avx2::new()
        {
            // SAFETY: `k` exists, so the CPU supports AVX2.
            return unsafe { x86::run_avx2(k, bm, program, block, out) };
        }
    }
    let _ = isa;
    run_block(Portable, bm, program, block, out)
}

// The AVX-512 intrinsics are stable since Rust 1.89: the batched executor (feature `std`,
// host only) needs 1.89, while device builds keep the crate's MSRV (README, "MSRV").
#[cfg(target_arch = "x86_64")]
#[allow(clippy::incompatible_msrv)]
mod x86 {
    use core::arch::x86_64::*;

    use super::super::exec::{Block, run_block};
    use super::super::lanes::{Kernels, PANEL, Packed, gemv_from};
    use super::super::prepare::BatchModel;
    use crate::blob::program::Program;
    use crate::error::Error;

    /// Proof that the CPU has AVX-512F: only [`Avx512::new`] makes one, after checking.
    #[derive(Debug, Clone, Copy)]
    pub(super) struct Avx512(());

    impl Avx512 {
        pub(super) fn new() -> Option<Self> {
            std::arch::is_x86_feature_detected!("avx512f").then_some(Avx512(()))
        }
    }

    /// Proof that the CPU has AVX2: only [`Avx2::new`] makes one, after checking.
    #[derive(Debug, Clone, Copy)]
    pub(super) struct Avx2(());

    impl Avx2 {
        pub(super) fn new() -> Option<Self> {
            std::arch::is_x86_feature_detected!("avx2").then_some(Avx2(()))
        }
    }

    /// The executor with every kernel inlined into AVX-512F code.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn run_avx512(
        k: Avx512,
        bm: &BatchModel<'_, '_>,
        program: Program<'_>,
        block: &mut Block<'_>,
        out: &mut [f32],
    ) -> Result<(), Error> {
        run_block(k, bm, program, block, out)
    }

    /// The executor with every kernel inlined into AVX2 code.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn run_avx2(
        k: Avx2,
        bm: &BatchModel<'_, '_>,
        program: Program<'_>,
        block: &mut Block<'_>,
        out: &mut [f32],
    ) -> Result<(), Error> {
        run_block(k, bm, program, block, out)
    }

    /// Whether every pointer a tile of `width` samples at `l0` forms stays inside `w`, `x`
    /// and `y` — checked once per call so the tile loops need no bounds checks.
    fn fits(w: &Packed, x: &[f32], y: &[f32], lanes: usize, l0: usize, width: usize) -> bool {
        l0 + width <= lanes
            && w.panels.len() >= (w.rows / PANEL) * w.cols * PANEL
            && x.len() >= w.cols * lanes
            && y.len() >= w.rows * lanes
    }

    /// Scale, bias and store of one accumulated row segment (the device's order: `acc · s`
    /// then `+ b`).
    macro_rules! finish {
        ($mul:ident, $add:ident, $set1:ident, $v:expr, $s:expr, $b:expr) => {{
            let mut v = $v;
            if let Some(s) = $s {
                v = $mul(v, $set1(s));
            }
            if let Some(b) = $b {
                v = $add(v, $set1(b));
            }
            v
        }};
    }

    impl Kernels for Avx512 {
        #[inline(always)]
        fn gemv(
            self,
            w: &Packed,
            scale: Option<&[f32]>,
            bias: Option<&[f32]>,
            x: &[f32],
            y: &mut [f32],
            lanes: usize,
        ) {
            let mut l0 = 0;
            while fits(w, x, y, lanes, l0, 32) {
                // SAFETY: `self` proves AVX-512F; `fits` bounds every access of the tile.
                unsafe { avx512_tiles::<2>(w, scale, bias, x, y, lanes, l0) };
                l0 += 32;
            }
            if fits(w, x, y, lanes, l0, 16) {
                // SAFETY: as above, for 16 samples.
                unsafe { avx512_tiles::<1>(w, scale, bias, x, y, lanes, l0) };
                l0 += 16;
            }
            gemv_from(w, scale, bias, x, y, lanes, l0);
        }
    }

    /// Row `r`'s int8 scale and bias, if any (no closures: they would not inline into the
    /// target-feature functions).
    #[inline(always)]
    fn row_params(
        scale: Option<&[f32]>,
        bias: Option<&[f32]>,
        r: usize,
    ) -> (Option<f32>, Option<f32>) {
        let s = match scale {
            Some(s) => s.get(r).copied(),
            None => None,
        };
        let b = match bias {
            Some(b) => b.get(r).copied(),
            None => None,
        };
        (s, b)
    }

    /// The dot products of `NP` consecutive panels (`NP × PANEL` rows, starting at `wp`) with
    /// samples `l0..l0 + 16·H`: `NP × PANEL × H` zmm accumulators, one x row loaded per column.
    ///
    /// # Safety
    /// AVX-512F; `wp` points at `NP` whole panels; `x` at `cols × lanes` values and
    /// `l0 + 16·H <= lanes`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn avx512_panels<const NP: usize, const H: usize>(
        wp: *const f32,
        cols: usize,
        xp: *const f32,
        lanes: usize,
        l0: usize,
    ) -> [[[__m512; H]; PANEL]; NP] {
        let mut acc = [[[_mm512_setzero_ps(); H]; PANEL]; NP];
        // SAFETY: the caller's bounds: column i of panel q is at q·cols·PANEL + i·PANEL, and
        // x row i spans i·lanes + l0 .. + 16·H <= cols·lanes.
        unsafe {
            for i in 0..cols {
                let xr = xp.add(i * lanes + l0);
                let mut xs = [_mm512_setzero_ps(); H];
                for (h, x) in xs.iter_mut().enumerate() {
                    *x = _mm512_loadu_ps(xr.add(16 * h));
                }
                for (q, aq) in acc.iter_mut().enumerate() {
                    let wq = wp.add(q * cols * PANEL + i * PANEL);
                    for (k, a) in aq.iter_mut().enumerate() {
                        let wk = _mm512_set1_ps(*wq.add(k));
                        for (ah, &xh) in a.iter_mut().zip(&xs) {
                            *ah = _mm512_add_ps(*ah, _mm512_mul_ps(wk, xh));
                        }
                    }
                }
            }
        }
        acc
    }

    /// Scales, biases and stores finished rows `r0..` of a tile of `16·H` samples.
    ///
    /// # Safety
    /// AVX-512F; every row `r0 + k` < rows, `y` at `rows × lanes` values, `l0 + 16·H <= lanes`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn avx512_store<const H: usize>(
        rows: &[[__m512; H]],
        r0: usize,
        scale: Option<&[f32]>,
        bias: Option<&[f32]>,
        yp: *mut f32,
        lanes: usize,
        l0: usize,
    ) {
        for (k, a) in rows.iter().enumerate() {
            let r = r0 + k;
            let (s, b) = row_params(scale, bias, r);
            for (h, &v) in a.iter().enumerate() {
                let v = finish!(_mm512_mul_ps, _mm512_add_ps, _mm512_set1_ps, v, s, b);
                // SAFETY: row r, samples l0 + 16h .. + 16 are inside y (caller's bounds).
                unsafe { _mm512_storeu_ps(yp.add(r * lanes + l0 + 16 * h), v) };
            }
        }
    }

    /// Samples `l0..l0 + 16·H` of every row: tiles of 8 rows × 16·H samples (8·H zmm
    /// accumulators), an odd panel as 4 rows, the tail rows one at a time. Each `mul`/`add`
    /// pair is the device's `acc = acc + w·x`.
    ///
    /// # Safety
    /// The CPU has AVX-512F and `fits(w, x, y, lanes, l0, 16·H)` holds.
    #[target_feature(enable = "avx512f")]
    // Measured: inlined into the executor this loop ran 20 % slower (toy shape, 2 threads).
    #[inline(never)]
    unsafe fn avx512_tiles<const H: usize>(
        w: &Packed,
        scale: Option<&[f32]>,
        bias: Option<&[f32]>,
        x: &[f32],
        y: &mut [f32],
        lanes: usize,
        l0: usize,
    ) {
        let cols = w.cols;
        let (xp, yp) = (x.as_ptr(), y.as_mut_ptr());
        let panel = (cols * PANEL).max(1);
        // SAFETY (every pointer below): x has cols × lanes elements and y rows × lanes
        // (`fits`), l0 + 16·H <= lanes, and each panel has cols × PANEL elements.
        unsafe {
            let triples = w.panels.chunks_exact(3 * panel);
            let rest = triples.remainder();
            let mut r0 = 0;
            for t in triples {
                let acc = avx512_panels::<3, H>(t.as_ptr(), cols, xp, lanes, l0);
                for a in &acc {
                    avx512_store(a, r0, scale, bias, yp, lanes, l0);
                    r0 += PANEL;
                }
            }
            if cols > 0 && rest.len() == 2 * panel {
                let acc = avx512_panels::<2, H>(rest.as_ptr(), cols, xp, lanes, l0);
                for a in &acc {
                    avx512_store(a, r0, scale, bias, yp, lanes, l0);
                    r0 += PANEL;
                }
            } else if cols > 0 && rest.len() == panel {
                let acc = avx512_panels::<1, H>(rest.as_ptr(), cols, xp, lanes, l0);
                avx512_store(&acc[0], r0, scale, bias, yp, lanes, l0);
                r0 += PANEL;
            }
            for row in w.tail.chunks_exact(cols.max(1)) {
                let mut a = [_mm512_setzero_ps(); H];
                for (i, &wi) in row.iter().enumerate() {
                    let xr = xp.add(i * lanes + l0);
                    let wk = _mm512_set1_ps(wi);
                    for (h, ah) in a.iter_mut().enumerate() {
                        *ah =
                            _mm512_add_ps(*ah, _mm512_mul_ps(wk, _mm512_loadu_ps(xr.add(16 * h))));
                    }
                }
                avx512_store(&[a], r0, scale, bias, yp, lanes, l0);
                r0 += 1;
            }
            if cols == 0 {
                for r in 0..w.rows {
                    avx512_store(&[[_mm512_setzero_ps(); H]], r, scale, bias, yp, lanes, l0);
                }
            }
        }
    }

    impl Kernels for Avx2 {
        #[inline(always)]
        fn gemv(
            self,
            w: &Packed,
            scale: Option<&[f32]>,
            bias: Option<&[f32]>,
            x: &[f32],
            y: &mut [f32],
            lanes: usize,
        ) {
            let mut l0 = 0;
            while fits(w, x, y, lanes, l0, 16) {
                // SAFETY: `self` proves AVX2; `fits` bounds every access of the tile.
                unsafe { avx2_tiles(w, scale, bias, x, y, lanes, l0) };
                l0 += 16;
            }
            gemv_from(w, scale, bias, x, y, lanes, l0);
        }
    }

    /// Samples `l0..l0 + 16` of every row: tiles of 4 rows × 16 samples (8 ymm accumulators),
    /// then the tail rows 1 × 16.
    ///
    /// # Safety
    /// The CPU has AVX2 and `fits(w, x, y, lanes, l0, 16)` holds.
    #[target_feature(enable = "avx2")]
    #[inline(never)]
    unsafe fn avx2_tiles(
        w: &Packed,
        scale: Option<&[f32]>,
        bias: Option<&[f32]>,
        x: &[f32],
        y: &mut [f32],
        lanes: usize,
        l0: usize,
    ) {
        let cols = w.cols;
        let (xp, yp) = (x.as_ptr(), y.as_mut_ptr());
        let sc = |r: usize| scale.and_then(|s| s.get(r).copied());
        let bi = |r: usize| bias.and_then(|b| b.get(r).copied());
        // SAFETY (every pointer below): as in `avx512_tiles`, with 16 samples.
        unsafe {
            for (p, panel) in w.panels.chunks_exact((cols * PANEL).max(1)).enumerate() {
                let wp = panel.as_ptr();
                let mut acc = [[_mm256_setzero_ps(); 2]; PANEL];
                for i in 0..cols {
                    let xr = xp.add(i * lanes + l0);
                    let x0 = _mm256_loadu_ps(xr);
                    let x1 = _mm256_loadu_ps(xr.add(8));
                    for (k, a) in acc.iter_mut().enumerate() {
                        let wk = _mm256_set1_ps(*wp.add(i * PANEL + k));
                        a[0] = _mm256_add_ps(a[0], _mm256_mul_ps(wk, x0));
                        a[1] = _mm256_add_ps(a[1], _mm256_mul_ps(wk, x1));
                    }
                }
                for (k, a) in acc.iter().enumerate() {
                    let r = p * PANEL + k;
                    let yr = yp.add(r * lanes + l0);
                    for (h, &v) in a.iter().enumerate() {
                        let v = finish!(
                            _mm256_mul_ps,
                            _mm256_add_ps,
                            _mm256_set1_ps,
                            v,
                            sc(r),
                            bi(r)
                        );
                        _mm256_storeu_ps(yr.add(8 * h), v);
                    }
                }
            }
            let r0 = (w.rows / PANEL) * PANEL;
            for (t, row) in w.tail.chunks_exact(cols.max(1)).enumerate() {
                let mut a = [_mm256_setzero_ps(); 2];
                for (i, &wi) in row.iter().enumerate() {
                    let xr = xp.add(i * lanes + l0);
                    let wk = _mm256_set1_ps(wi);
                    a[0] = _mm256_add_ps(a[0], _mm256_mul_ps(wk, _mm256_loadu_ps(xr)));
                    a[1] = _mm256_add_ps(a[1], _mm256_mul_ps(wk, _mm256_loadu_ps(xr.add(8))));
                }
                let r = r0 + t;
                let yr = yp.add(r * lanes + l0);
                for (h, &v) in a.iter().enumerate() {
                    let v = finish!(
                        _mm256_mul_ps,
                        _mm256_add_ps,
                        _mm256_set1_ps,
                        v,
                        sc(r),
                        bi(r)
                    );
                    _mm256_storeu_ps(yr.add(8 * h), v);
                }
            }
            if cols == 0 {
                for r in 0..w.rows {
                    let yr = yp.add(r * lanes + l0);
                    for h in 0..2 {
                        let v = finish!(
                            _mm256_mul_ps,
                            _mm256_add_ps,
                            _mm256_set1_ps,
                            _mm256_setzero_ps(),
                            sc(r),
                            bi(r)
                        );
                        _mm256_storeu_ps(yr.add(8 * h), v);
                    }
                }
            }
        }
    }
}
