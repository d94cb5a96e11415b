//! Optimisation schedule: learning rate (linear warm-up, then cosine decay), EMA decay, and
//! gradient-norm clipping. The update arithmetic itself is a backend operation
//! ([`crate::backend::Backend::adamw`], [`crate::backend::Backend::ema`]).

use serde::{Deserialize, Serialize};

use crate::backend::AdamW;

/// Everything about how parameters are updated.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OptimConfig {
    /// Peak learning rate.
    pub lr: f32,
    /// Learning rate at the end of the cosine decay.
    pub lr_min: f32,
    /// Linear warm-up steps from 0 to `lr`.
    pub warmup: u64,
    /// AdamW hyper-parameters.
    pub adamw: AdamW,
    /// EMA decay of the weights that get exported (0 disables EMA: export the raw weights).
    pub ema_decay: f32,
    /// Global gradient-norm clip (0 disables).
    pub grad_clip: f32,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            lr: 2e-3,
            lr_min: 1e-5,
            warmup: 100,
            adamw: AdamW::default(),
            ema_decay: 0.999,
            grad_clip: 1.0,
        }
    }
}

impl OptimConfig {
    /// Learning rate at optimizer step `step` (1-based) of `total`: `lr·step/warmup` during
    /// warm-up, then `lr_min + ½(lr − lr_min)(1 + cos(π·progress))`.
    pub fn lr_at(&self, step: u64, total: u64) -> f32 {
        if step <= self.warmup && self.warmup > 0 {
            return self.lr * step as f32 / self.warmup as f32;
        }
        let span = total.saturating_sub(self.warmup).max(1);
        let progress = ((step - self.warmup.min(step)) as f64 / span as f64).min(1.0);
        let cos = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
        (self.lr_min as f64 + (self.lr - self.lr_min) as f64 * cos) as f32
    }

    /// EMA decay at step `step`: `min(decay, (1 + step)/(10 + step))`, so the average is not
    /// dominated by the random initial weights early on.
    pub fn ema_at(&self, step: u64) -> f32 {
        let warm = (1.0 + step as f32) / (10.0 + step as f32);
        self.ema_decay.min(warm)
    }

    /// Factor to scale gradients with global norm `norm` by (1 when no clipping is needed).
    pub fn clip_factor(&self, norm: f32) -> f32 {
        if self.grad_clip > 0.0 && norm > self.grad_clip {
            self.grad_clip / norm
        } else {
            1.0
        }
    }

    /// Checks the values make sense.
    pub fn validate(&self) -> Result<(), String> {
        let ok = self.lr > 0.0
            && self.lr_min >= 0.0
            && self.lr_min <= self.lr
            && (0.0..1.0).contains(&self.ema_decay)
            && self.grad_clip >= 0.0
            && (0.0..1.0).contains(&self.adamw.beta1)
            && (0.0..1.0).contains(&self.adamw.beta2)
            && self.adamw.eps > 0.0
            && self.adamw.weight_decay >= 0.0;
        if ok {
            Ok(())
        } else {
            Err("optimizer settings out of range (lr > 0, 0 <= lr_min <= lr, decays in [0, 1), clip >= 0)".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine() {
        let o = OptimConfig {
            lr: 1.0,
            lr_min: 0.0,
            warmup: 10,
            ..Default::default()
        };
        assert_eq!(o.lr_at(5, 110), 0.5);
        assert_eq!(o.lr_at(10, 110), 1.0);
        assert!((o.lr_at(60, 110) - 0.5).abs() < 1e-6);
        assert!(o.lr_at(110, 110).abs() < 1e-6);
        assert!(o.lr_at(500, 110).abs() < 1e-6);
    }

    #[test]
    fn ema_warms_up_and_clip_caps() {
        let o = OptimConfig::default();
        assert!(o.ema_at(0) < 0.2);
        assert_eq!(o.ema_at(1_000_000), o.ema_decay);
        assert_eq!(o.clip_factor(0.5), 1.0);
        assert_eq!(o.clip_factor(4.0), 0.25);
    }
}
