//! How much memory each kernel touches through each pointer, from its other arguments.
//!
//! A kernel trusts its element counts, as on a GPU; there an overrun is an illegal-address
//! error, here it would corrupt the host process. So before a launch every pointer argument
//! is checked to have, inside its allocation, the elements the kernel will touch (the ABI
//! table of `microdiff_kernels::cuda`). A kernel without a rule here cannot be launched.

use crate::{Arg, EmuError, LaunchConfig};

/// f32 elements a pointer argument must have available: `(argument index, elements)`.
pub(crate) type Need = Vec<(usize, u64)>;

/// Reads `count` f32 values at an address (for rules that depend on buffer contents).
pub(crate) type Reader<'a> = &'a dyn Fn(u64, usize) -> Result<Vec<f32>, EmuError>;

/// `Arg::I32` at `i` as a non-negative count (a negative count means no iterations).
fn count(args: &[Arg], i: usize) -> u64 {
    match args.get(i) {
        Some(Arg::I32(v)) => u64::try_from(*v).unwrap_or(0),
        _ => 0,
    }
}

fn ptr(args: &[Arg], i: usize) -> u64 {
    match args.get(i) {
        Some(Arg::Ptr(p)) => *p,
        _ => 0,
    }
}

/// Rust's `c as usize` for a class id, as the kernels' `md_class_index`.
fn class_index(c: f32) -> u64 {
    if c >= 1.0 { c as u64 } else { 0 }
}

/// `None` when the kernel has no rule. `available(arg)` gives the f32 elements left in the
/// allocation of pointer argument `arg`; `read` reads device f32s (already checked in bounds).
pub(crate) fn need(
    kernel: &str,
    args: &[Arg],
    cfg: &LaunchConfig,
    available: &dyn Fn(usize) -> u64,
    read: Reader<'_>,
) -> Result<Option<Need>, EmuError> {
    let c = |i| count(args, i);
    let nonzero = |total: u64, v: u64| if total == 0 { 0 } else { v };
    let grid_x = u64::from(cfg.grid.0);
    Ok(Some(match kernel {
        "md_fill" | "md_scale" => vec![(0, c(2))],
        "md_add_assign" => vec![(0, c(2)), (1, c(2))],
        "md_bias_add" => {
            let t = c(2) * c(3);
            vec![(0, t), (1, nonzero(t, c(3)))]
        }
        "md_bias_grad" => vec![(0, c(2) * c(3)), (1, c(3))],
        "md_act_fwd" => vec![(1, c(3)), (2, c(3))],
        "md_act_bwd" => vec![(1, c(4)), (2, c(4)), (3, c(4))],
        "md_layernorm_fwd" => {
            let t = c(5) * c(6);
            vec![
                (0, t),
                (1, nonzero(t, c(6))),
                (2, nonzero(t, c(6))),
                (3, t),
                (4, 2 * c(5)),
            ]
        }
        "md_layernorm_bwd_dx" => {
            let t = c(5) * c(6);
            vec![(0, t), (1, nonzero(t, c(6))), (2, 2 * c(5)), (3, t), (4, t)]
        }
        "md_layernorm_bwd_params" => {
            let t = c(5) * c(6);
            let rows = nonzero(c(6), c(5));
            vec![(0, t), (1, 2 * rows), (2, t), (3, c(6)), (4, c(6))]
        }
        "md_time_embed" => {
            let half = c(3) / 2;
            vec![(0, nonzero(half, c(2))), (1, nonzero(half, c(2) * c(3)))]
        }
        "md_embed_add" => {
            let (rows, n) = (c(3), c(4));
            let t = rows * n;
            let mut need = vec![(1, nonzero(t, rows)), (2, t)];
            if t > 0 && available(1) >= rows {
                // The table row each class reads must exist.
                let rows_usize = usize::try_from(rows).unwrap_or(usize::MAX);
                let classes = read(ptr(args, 1), rows_usize)?;
                let top = classes.into_iter().map(class_index).max().unwrap_or(0);
                need.push((0, (top + 1) * n));
            }
            need
        }
        "md_embed_add_bwd" => {
            let (rows, n, table) = (c(3), c(4), c(5));
            let t = table * n;
            vec![(0, nonzero(t, rows)), (1, nonzero(t, rows * n)), (2, t)]
        }
        "md_normal_fill" => vec![(0, c(5))],
        "md_noise_and_target" => {
            let t = c(5) * c(6);
            vec![(0, t), (1, t), (2, nonzero(t, 4 * c(5))), (3, t), (4, t)]
        }
        "md_mse_grad" => vec![(0, c(3)), (1, c(3)), (2, c(3))],
        "md_sq_err_partials" => vec![(0, c(3)), (1, c(3)), (2, grid_x)],
        "md_sumsq_partials" => vec![(0, c(2)), (1, grid_x)],
        "md_adamw" => (0..5).map(|i| (i, c(12))).collect(),
        "md_ema" => vec![(0, c(3)), (1, c(3))],
        "md_sgd" => (0..3).map(|i| (i, c(5))).collect(),
        "md_col_sum" => vec![(0, c(3) * c(4)), (1, c(4))],
        "md_bernoulli" => {
            let t = c(7) * c(8);
            vec![(0, t), (1, t), (2, nonzero(t, c(7)))]
        }
        "md_reparam" => {
            let t = c(3) * c(4);
            vec![(0, 2 * t), (1, t), (2, nonzero(t, c(3) * c(5)))]
        }
        "md_reparam_bwd" => {
            let t = c(6) * c(7);
            vec![(1, 2 * t), (2, t), (3, nonzero(t, c(6) * c(8))), (4, 2 * t)]
        }
        "md_latent_partials" => {
            let t = c(4) * c(5);
            vec![(1, 2 * t), (2, t), (3, grid_x)]
        }
        "md_gauss_nll_grad" => {
            let t = c(5) * c(6);
            vec![(0, t), (1, 2 * t), (2, t), (3, 2 * t)]
        }
        "md_gauss_nll_partials" => {
            let t = c(3) * c(4);
            vec![(0, t), (1, 2 * t), (2, grid_x)]
        }
        "md_nll_grad" | "md_nll_partials" => {
            let (rows, dim) = if kernel == "md_nll_grad" {
                (c(6), c(7))
            } else {
                (c(5), c(6))
            };
            let t = rows * dim;
            // Log σ is read by the Gaussian (observation code 0) only.
            let gaussian = matches!(args.first(), Some(Arg::I32(0)));
            let out = if kernel == "md_nll_grad" { t } else { grid_x };
            vec![
                (1, t),
                (2, t),
                (3, if gaussian { nonzero(t, dim) } else { 0 }),
                (4, out),
            ]
        }
        "md_log_sigma_grad" => {
            let t = c(5) * c(6);
            vec![(0, t), (1, t), (2, c(6)), (3, c(6))]
        }
        // Test fixtures (cuda-emu/tests/fixtures/*.cu).
        "broken_missing_sync" | "broken_uninit_shared" => {
            vec![(0, grid_x * u64::from(cfg.block.0))]
        }
        "fixture_early_exit" => vec![(0, grid_x * u64::from(cfg.block.0 / 2))],
        _ => return Ok(None),
    }))
}
