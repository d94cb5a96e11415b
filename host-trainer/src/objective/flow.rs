//! Flow matching with the Gaussian conditional path of rectified flow / OT-CFM (Lipman et al.
//! 2023; Liu et al. 2023): x_t = t·x₀ + (1 − t)·ε, t ~ U(0, 1), regress the velocity
//! v̂(x_t, t) onto u_t = x₀ − ε (the general form u_t = σ̇/σ·(x − μ) + μ̇ of
//! `../shared/references/003_…` with μ_t = t·x₀, σ_t = 1 − t). Sampling integrates
//! dx/dt = v̂ from t = 0 (noise) to t = 1 (data).

/// `(c₀, c_ε)`: the target is x₀ − ε.
pub const TARGET: (f32, f32) = (1.0, -1.0);

/// `t = u`.
pub fn sample_time(u: f32) -> f64 {
    u as f64
}
