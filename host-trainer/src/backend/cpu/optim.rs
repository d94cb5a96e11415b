//! AdamW on the CPU — the one implementation: the CPU backend's `adamw` and fused `update`
//! (AdamW, EMA and the zeroing of the gradients in one pass), and the digits classifier's
//! optimiser ([`crate::eval::classifier`]) all run [`AdamRule`] through [`adam_chunk`].
//!
//! The rule has two options so that both users keep their exact bits: how the bias
//! corrections are applied ([`BiasCorrection`]) and whether tiny moments are flushed to zero
//! ([`AdamRule::flush_below`]); and weight decay is chosen per call ([`Decay`]): by a 0/1 mask
//! per element (the backend) or for a whole tensor (the classifier: weights yes, biases no).
//! The arithmetic of one element does not depend on the chunking, so the backend's parallel
//! split over fixed chunks gives the same bits for any thread count.

use rayon::prelude::*;

use super::pool::{ELEM_COST, REDUCE_CHUNK, map_chunks, tasks};
use crate::backend::fastmath::multiversion;
use crate::backend::{AdamStep, AdamW, UpdateStep};

/// How [`AdamRule`] applies the bias corrections `1 − βᵗ`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BiasCorrection {
    /// Multiplies by `1/(1 − βᵗ)`, computed once per step: the training backend's form (the
    /// CUDA kernel multiplies by the same reciprocals). The per-element divisions were the
    /// update's bottleneck (a vector division costs as much as 10–20 multiplications), and
    /// the result differs from dividing by at most an ulp of `m̂` and `v̂`.
    Reciprocal,
    /// Divides by `1 − βᵗ` per element: the digits classifier's form, kept because its trained
    /// weights (and the figures made with it) are pinned to these bits.
    Divide,
}

/// Which elements of a tensor get decoupled weight decay (`p −= lr·λ·p`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Decay<'a> {
    /// None.
    None,
    /// All.
    All,
    /// Those where the mask (0 or 1 per element, the tensor's length) is 1.
    Mask(&'a [f32]),
}

/// AdamW's per-element rule for one step (Loshchilov & Hutter 2019, with bias correction).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AdamRule {
    hp: AdamW,
    lr: f32,
    /// `1 − β₁ᵗ`, `1 − β₂ᵗ` and their reciprocals.
    bc1: f32,
    bc2: f32,
    inv_bc1: f32,
    inv_bc2: f32,
    correction: BiasCorrection,
    /// Moments below this are set to 0 after their update.
    flush: Option<f32>,
}

impl AdamRule {
    /// The rule of `step`, with [`BiasCorrection::Reciprocal`] and no flushing.
    pub(crate) fn new(step: AdamStep) -> Self {
        let AdamStep { hp, step, lr } = step;
        let bc1 = 1.0 - hp.beta1.powi(step as i32);
        let bc2 = 1.0 - hp.beta2.powi(step as i32);
        AdamRule {
            hp,
            lr,
            bc1,
            bc2,
            inv_bc1: 1.0 / bc1,
            inv_bc2: 1.0 / bc2,
            correction: BiasCorrection::Reciprocal,
            flush: None,
        }
    }

    /// The same rule with the bias corrections applied as `correction` says.
    pub(crate) fn correction(self, correction: BiasCorrection) -> Self {
        AdamRule { correction, ..self }
    }

    /// The same rule, setting moments whose magnitude is below `threshold` to 0 after their
    /// update (before they are used). Parameters that get exact-zero gradients (dead ReLU
    /// units) have moments that decay geometrically into subnormals, where x86 arithmetic is
    /// ~100× slower.
    pub(crate) fn flush_below(self, threshold: f32) -> Self {
        AdamRule {
            flush: Some(threshold),
            ..self
        }
    }

    /// [`Decay::Mask`] of `mask`, or [`Decay::None`] when λ is 0: the mask holds 0 or 1, so
    /// λ·mask is +0 either way and need not be read.
    fn masked<'a>(&self, mask: &'a [f32]) -> Decay<'a> {
        if self.hp.weight_decay == 0.0 {
            Decay::None
        } else {
            Decay::Mask(mask)
        }
    }

    /// Updates `p`, `m`, `v` from the gradients `g` (all the same length).
    #[inline(always)]
    fn apply(&self, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], decay: Decay<'_>) {
        // One monomorphic loop per option, so the backend's loop has no test in it.
        match (self.flush.is_some(), self.correction) {
            (false, BiasCorrection::Reciprocal) => self.apply_as::<false, false>(p, g, m, v, decay),
            (false, BiasCorrection::Divide) => self.apply_as::<false, true>(p, g, m, v, decay),
            (true, BiasCorrection::Reciprocal) => self.apply_as::<true, false>(p, g, m, v, decay),
            (true, BiasCorrection::Divide) => self.apply_as::<true, true>(p, g, m, v, decay),
        }
    }

    #[inline(always)]
    fn apply_as<const FLUSH: bool, const DIVIDE: bool>(
        &self,
        p: &mut [f32],
        g: &[f32],
        m: &mut [f32],
        v: &mut [f32],
        decay: Decay<'_>,
    ) {
        let hp = &self.hp;
        let flush = self.flush.unwrap_or(0.0);
        let n = p.len();
        let (g, m, v) = (&g[..n], &mut m[..n], &mut v[..n]);
        let step = |p: &mut f32, g: f32, m: &mut f32, v: &mut f32, decay: f32| {
            *m = hp.beta1 * *m + (1.0 - hp.beta1) * g;
            *v = hp.beta2 * *v + (1.0 - hp.beta2) * g * g;
            if FLUSH {
                if m.abs() < flush {
                    *m = 0.0;
                }
                if *v < flush {
                    *v = 0.0;
                }
            }
            let update = if DIVIDE {
                (*m / self.bc1) / ((*v / self.bc2).sqrt() + hp.eps)
            } else {
                let mhat = *m * self.inv_bc1;
                let vhat = *v * self.inv_bc2;
                mhat / (vhat.sqrt() + hp.eps)
            };
            *p -= self.lr * (update + decay * *p);
        };
        match decay {
            Decay::None => {
                for j in 0..n {
                    step(&mut p[j], g[j], &mut m[j], &mut v[j], 0.0);
                }
            }
            Decay::All => {
                for j in 0..n {
                    step(&mut p[j], g[j], &mut m[j], &mut v[j], hp.weight_decay);
                }
            }
            Decay::Mask(mask) => {
                let mask = &mask[..n];
                for j in 0..n {
                    step(
                        &mut p[j],
                        g[j],
                        &mut m[j],
                        &mut v[j],
                        hp.weight_decay * mask[j],
                    );
                }
            }
        }
    }
}

multiversion! {
    /// One AdamW step of `rule` over `p`, `m`, `v` with gradients `g` (all the same length),
    /// on this thread.
    pub(crate) fn adam_chunk(rule: &AdamRule, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], decay: Decay<'_>) {
        rule.apply(p, g, m, v, decay);
    }
}

/// The settings of one fused update ([`crate::backend::Backend::update`]).
struct UpdateRule {
    adam: AdamRule,
    clip: f32,
    ema_decay: f32,
}

multiversion! {
    /// One chunk of [`crate::backend::Backend::update`]: the arithmetic of `scale`, `adamw`
    /// and `ema` in turn, then the gradients zeroed.
    fn update_chunk(rule: &UpdateRule, p: &mut [f32], g: &mut [f32], m: &mut [f32], v: &mut [f32], mask: &[f32], e: &mut [f32]) {
        if rule.clip != 1.0 {
            g.iter_mut().for_each(|g| *g *= rule.clip);
        }
        rule.adam.apply(p, g, m, v, rule.adam.masked(mask));
        ema_chunk(e, p, rule.ema_decay);
        g.fill(0.0);
    }
}

/// `e = d·e + (1 − d)·p` element-wise.
#[inline(always)]
fn ema_chunk(e: &mut [f32], p: &[f32], d: f32) {
    for (e, &p) in e.iter_mut().zip(p) {
        *e = d * *e + (1.0 - d) * p;
    }
}

/// [`crate::backend::Backend::adamw`].
pub(super) fn adamw(
    params: &mut [f32],
    grads: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    decay_mask: &[f32],
    step: AdamStep,
) {
    let rule = AdamRule::new(step);
    let c = REDUCE_CHUNK;
    if tasks(params.len() * 4 * ELEM_COST, params.len().div_ceil(c)) <= 1 {
        adam_chunk(&rule, params, grads, m, v, rule.masked(decay_mask));
    } else {
        params
            .par_chunks_mut(c)
            .zip(grads.par_chunks(c))
            .zip(m.par_chunks_mut(c).zip(v.par_chunks_mut(c)))
            .zip(decay_mask.par_chunks(c))
            .for_each(|(((p, g), (m, v)), mask)| adam_chunk(&rule, p, g, m, v, rule.masked(mask)));
    }
}

/// [`crate::backend::Backend::update`].
pub(super) fn update(
    params: &mut [f32],
    grads: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    decay_mask: &[f32],
    ema: &mut [f32],
    step: UpdateStep,
) {
    let rule = UpdateRule {
        adam: AdamRule::new(step.adam),
        clip: step.clip,
        ema_decay: step.ema_decay,
    };
    let c = REDUCE_CHUNK;
    if tasks(params.len() * 6 * ELEM_COST, params.len().div_ceil(c)) <= 1 {
        update_chunk(&rule, params, grads, m, v, decay_mask, ema);
    } else {
        params
            .par_chunks_mut(c)
            .zip(grads.par_chunks_mut(c))
            .zip(m.par_chunks_mut(c).zip(v.par_chunks_mut(c)))
            .zip(decay_mask.par_chunks(c).zip(ema.par_chunks_mut(c)))
            .for_each(|(((p, g), (m, v)), (mask, e))| update_chunk(&rule, p, g, m, v, mask, e));
    }
}

/// [`crate::backend::Backend::ema`].
pub(super) fn ema(ema: &mut [f32], params: &[f32], decay: f32) {
    map_chunks(ema, ELEM_COST, |j, e| {
        ema_chunk(
            e,
            &params[j * REDUCE_CHUNK..j * REDUCE_CHUNK + e.len()],
            decay,
        );
    });
}
