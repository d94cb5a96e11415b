//! Denoising score matching in continuous time for the VE and VP SDEs (Song et al. 2021,
//! eq. 7; `../shared/references/003_…` and `004_…`): t ~ U(t_min, 1), x_t = α(t)·x₀ + σ(t)·ε,
//! λ(t) = σ(t)². The network predicts ε, so the weighted loss is the MSE on ε (see the module
//! doc of [`crate::objective`]); the score is recovered as −ε̂/σ(t).

/// `t = t_min + u·(1 − t_min)` for `u` in (0, 1): never below `t_min`, where σ would vanish.
pub fn sample_time(t_min: f64, u: f32) -> f64 {
    t_min + u as f64 * (1.0 - t_min)
}

#[cfg(test)]
mod tests {
    #[test]
    fn time_stays_in_range() {
        assert!(super::sample_time(1e-3, 1e-7) >= 1e-3);
        assert!(super::sample_time(1e-3, 0.9999999) <= 1.0);
    }
}
