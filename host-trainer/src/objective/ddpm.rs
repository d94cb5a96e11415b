//! DDPM with ε-prediction and L_simple (Ho et al. 2020, Algorithm 1; the derivation of the
//! ε-parameterisation is in `../shared/references/002_…`, eqs. 34–35): draw a step
//! t ~ U{1, …, T}, ε ~ N(0, I), regress ε̂(√ᾱ_t·x₀ + √(1−ᾱ_t)·ε, t) onto ε.

/// `(c₀, c_ε)`: the target is ε.
pub const TARGET: (f32, f32) = (0.0, 1.0);

/// The step `t = 1 + ⌊u·T⌋` (clamped to T) for `u` in (0, 1).
pub fn sample_step(steps: usize, u: f32) -> f64 {
    let t = 1 + (u as f64 * steps as f64).floor() as usize;
    t.min(steps) as f64
}

#[cfg(test)]
mod tests {
    #[test]
    fn steps_cover_1_to_t() {
        assert_eq!(super::sample_step(1000, 1e-7), 1.0);
        assert_eq!(super::sample_step(1000, 0.9999999), 1000.0);
        assert_eq!(super::sample_step(10, 0.55), 6.0);
    }
}
