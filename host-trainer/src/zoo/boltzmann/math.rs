//! Numerical helpers: stable logistic functions, streaming log-sum-exp, checks.

use super::{BoltzmannError, Result};

/// `1 / (1 + e^{−x})`, without overflow.
pub(super) fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `log(1 + e^x)`, without overflow or cancellation.
pub(super) fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// Streaming `log Σ exp(x)`: one pass, rescaled when a new maximum arrives.
#[derive(Debug, Clone, Copy)]
pub(super) struct LogSumExp {
    /// Largest term so far.
    max: f64,
    /// `Σ exp(x − max)`.
    sum: f64,
}

impl LogSumExp {
    /// The empty sum (`log 0 = −∞`).
    pub(super) fn new() -> Self {
        Self {
            max: f64::NEG_INFINITY,
            sum: 0.0,
        }
    }

    /// Adds `exp(x)`.
    pub(super) fn add(&mut self, x: f64) {
        if x > self.max {
            self.sum = self.sum * (self.max - x).exp() + 1.0;
            self.max = x;
        } else {
            self.sum += (x - self.max).exp();
        }
    }

    /// `log` of the sum.
    pub(super) fn value(&self) -> f64 {
        self.max + self.sum.ln()
    }
}

/// Checks every value of `x` is finite.
pub(super) fn check_finite(what: &'static str, x: &[f64]) -> Result<()> {
    match x.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        Some((index, &value)) => Err(BoltzmannError::NonFinite { what, index, value }),
        None => Ok(()),
    }
}

/// Checks `x.len() == expected`.
pub(super) fn check_len(what: &'static str, x: &[f64], expected: usize) -> Result<()> {
    if x.len() == expected {
        Ok(())
    } else {
        Err(BoltzmannError::Shape {
            what,
            expected,
            found: x.len(),
        })
    }
}

/// Checks `units ≤ MAX_EXACT_UNITS` and returns the number of states `2^units`.
pub(super) fn states(what: &'static str, units: usize) -> Result<u64> {
    if units > super::MAX_EXACT_UNITS {
        return Err(BoltzmannError::TooManyUnits {
            what,
            units,
            max: super::MAX_EXACT_UNITS,
        });
    }
    Ok(1u64 << units)
}

/// A hyper-parameter check: `Err(BadParameter)` unless `ok`.
pub(super) fn require(
    ok: bool,
    name: &'static str,
    value: f64,
    expected: &'static str,
) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(BoltzmannError::BadParameter {
            name,
            value,
            expected,
        })
    }
}

/// Gray-code enumeration of `{0,1}^n`: calls `flip(i, on)` for each bit change, starting from
/// the all-zero state, then `visit` on every state (the first call sees all zeros). `2^n`
/// states in all; `n ≤ MAX_EXACT_UNITS` is the caller's check.
pub(super) fn gray_enumerate(n: usize, mut flip: impl FnMut(usize, bool), mut visit: impl FnMut()) {
    let total = 1u64 << n;
    let mut state = 0u64;
    visit();
    for k in 1..total {
        let i = k.trailing_zeros() as usize;
        state ^= 1 << i;
        flip(i, state & (1 << i) != 0);
        visit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logistic_functions_are_stable() {
        assert_eq!(sigmoid(1000.0), 1.0);
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert!((sigmoid(0.3) - 1.0 / (1.0 + (-0.3f64).exp())).abs() < 1e-15);
        assert_eq!(softplus(1000.0), 1000.0);
        assert!((softplus(0.7) - (1.0 + 0.7f64.exp()).ln()).abs() < 1e-15);
        let mut l = LogSumExp::new();
        for x in [1000.0, 1000.0, -5.0] {
            l.add(x);
        }
        assert!((l.value() - (1000.0 + (2.0 + (-1005.0f64).exp()).ln())).abs() < 1e-12);
    }
}
