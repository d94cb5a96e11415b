//! The fully visible Boltzmann machine over `d` binary units:
//! `E(s) = −bᵀs − Σ_{i<j} W_ij s_i s_j`, `W` symmetric with a zero diagonal.
//!
//! Everything here is exact, by enumerating the `2^d` states (`d ≤ MAX_EXACT_UNITS`) in Gray
//! code order: the log-partition function, the model's first and second moments, the mean
//! log-likelihood of a data set and its gradient by moment matching
//! (`∂ℓ/∂b_i = ⟨s_i⟩_data − ⟨s_i⟩_model`, `∂ℓ/∂W_ij = ⟨s_i s_j⟩_data − ⟨s_i s_j⟩_model`), and
//! fitting by gradient ascent. The log-likelihood is concave in `(b, W)`, so the fit reaches
//! the maximum-entropy model whose moments equal the data's.

use super::math::{LogSumExp, check_finite, check_len, gray_enumerate, require, states};
use super::{BinaryData, BoltzmannError, Result};

/// A fully visible Boltzmann machine (see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub struct Fvbm {
    /// Number of units.
    d: usize,
    /// Biases `(d,)`.
    b: Vec<f64>,
    /// Couplings `(d, d)` row-major, symmetric, zero diagonal.
    w: Vec<f64>,
}

/// First and second moments of `d` binary units.
#[derive(Debug, Clone, PartialEq)]
pub struct Moments {
    /// `⟨s_i⟩`, `(d,)`.
    pub mean: Vec<f64>,
    /// `⟨s_i s_j⟩`, `(d, d)` row-major (diagonal = `mean`).
    pub second: Vec<f64>,
}

/// Gradient of the mean log-likelihood.
#[derive(Debug, Clone, PartialEq)]
pub struct FvbmGradient {
    /// `∂ℓ/∂b_i`, `(d,)`.
    pub b: Vec<f64>,
    /// `(d, d)` symmetric with a zero diagonal: entry `(i, j)` is the derivative with respect
    /// to the single coupling `W_ij = W_ji`.
    pub w: Vec<f64>,
}

/// Settings of [`Fvbm::fit`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitConfig {
    /// Step size of gradient ascent (> 0). The Hessian is minus the covariance of the
    /// `n = d + d(d−1)/2` statistics, whose largest eigenvalue is at most its trace `≤ n/4`,
    /// so steps below `8/n` always converge; the default 0.5 is safe up to `d = 5` and usually
    /// well beyond (the bound is loose).
    pub learning_rate: f64,
    /// Largest number of steps.
    pub max_steps: usize,
    /// Stop when every gradient component is at most this in absolute value (≥ 0).
    pub tolerance: f64,
}

impl Default for FitConfig {
    fn default() -> Self {
        Self {
            learning_rate: 0.5,
            max_steps: 5000,
            tolerance: 1e-6,
        }
    }
}

/// What [`Fvbm::fit`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct FitReport {
    /// Mean log-likelihood before the first step.
    pub initial_log_likelihood: f64,
    /// Mean log-likelihood after the last step.
    pub final_log_likelihood: f64,
    /// Steps taken.
    pub steps: usize,
    /// Largest absolute gradient component at the end (the moment mismatch).
    pub max_gradient: f64,
}

impl Fvbm {
    /// The machine with all parameters zero (the uniform distribution) over `d ≥ 1` units.
    pub fn zeros(d: usize) -> Result<Self> {
        if d == 0 {
            return Err(BoltzmannError::NoUnits { what: "fvbm" });
        }
        let dd = d.checked_mul(d).ok_or(BoltzmannError::Overflow {
            what: "fvbm couplings",
        })?;
        Ok(Self {
            d,
            b: vec![0.0; d],
            w: vec![0.0; dd],
        })
    }

    /// A machine from biases `b` `(d,)` and couplings `w` `(d, d)` row-major, checked to be
    /// finite, exactly symmetric and zero on the diagonal.
    pub fn from_parts(b: Vec<f64>, w: Vec<f64>) -> Result<Self> {
        let d = b.len();
        let mut m = Self::zeros(d)?;
        check_len("fvbm W", &w, m.w.len())?;
        check_finite("fvbm b", &b)?;
        check_finite("fvbm W", &w)?;
        for i in 0..d {
            if w[i * d + i] != 0.0 {
                return Err(BoltzmannError::Diagonal {
                    i,
                    value: w[i * d + i],
                });
            }
            for j in i + 1..d {
                if w[i * d + j] != w[j * d + i] {
                    return Err(BoltzmannError::NotSymmetric { i, j });
                }
            }
        }
        m.b = b;
        m.w = w;
        Ok(m)
    }

    /// Number of units.
    #[must_use]
    pub fn units(&self) -> usize {
        self.d
    }

    /// Biases `(d,)`.
    #[must_use]
    pub fn biases(&self) -> &[f64] {
        &self.b
    }

    /// Couplings `(d, d)` row-major.
    #[must_use]
    pub fn couplings(&self) -> &[f64] {
        &self.w
    }

    /// `E(s)` of one state `s` `(d,)` with values in {0, 1}.
    pub fn energy(&self, s: &[f64]) -> Result<f64> {
        check_len("state", s, self.d)?;
        BinaryData::new(s.to_vec(), self.d)?;
        Ok(self.energy_unchecked(s))
    }

    /// `E(s)` without checks.
    fn energy_unchecked(&self, s: &[f64]) -> f64 {
        let d = self.d;
        let mut e = 0.0;
        for i in 0..d {
            if s[i] == 0.0 {
                continue;
            }
            let row = &self.w[i * d..(i + 1) * d];
            let pair: f64 = (i + 1..d).filter(|&j| s[j] != 0.0).map(|j| row[j]).sum();
            e -= self.b[i] + pair;
        }
        e
    }

    /// Enumerates all states: `visit(E(s), s)` for each (Gray code order; `s` as 0/1).
    fn enumerate(&self, mut visit: impl FnMut(f64, &[f64])) -> Result<()> {
        states("fvbm", self.d)?;
        let d = self.d;
        let s = std::cell::RefCell::new(vec![0.0; d]);
        // field[i] = b_i + Σ_j W_ij s_j; flipping s_i on changes E by −field[i].
        let field = std::cell::RefCell::new(self.b.clone());
        let energy = std::cell::Cell::new(0.0);
        gray_enumerate(
            d,
            |i, on| {
                let mut f = field.borrow_mut();
                let sign = if on { 1.0 } else { -1.0 };
                energy.set(energy.get() - sign * f[i]);
                s.borrow_mut()[i] = if on { 1.0 } else { 0.0 };
                let row = &self.w[i * d..(i + 1) * d];
                for (fk, w) in f.iter_mut().zip(row) {
                    *fk += sign * w;
                }
            },
            || visit(energy.get(), &s.borrow()),
        );
        Ok(())
    }

    /// `log Z = log Σ_s exp(−E(s))`, exact; `TooManyUnits` when `d > MAX_EXACT_UNITS`.
    pub fn log_partition(&self) -> Result<f64> {
        let mut l = LogSumExp::new();
        self.enumerate(|e, _| l.add(-e))?;
        Ok(l.value())
    }

    /// The model's exact moments `⟨s_i⟩`, `⟨s_i s_j⟩`.
    pub fn moments(&self) -> Result<Moments> {
        let log_z = self.log_partition()?;
        let d = self.d;
        let mut m = Moments {
            mean: vec![0.0; d],
            second: vec![0.0; d * d],
        };
        let mut on = Vec::with_capacity(d);
        self.enumerate(|e, s| {
            let p = (-e - log_z).exp();
            on.clear();
            on.extend((0..d).filter(|&i| s[i] != 0.0));
            for &i in &on {
                m.mean[i] += p;
                for &j in &on {
                    m.second[i * d + j] += p;
                }
            }
        })?;
        Ok(m)
    }

    /// Checks `data` has this machine's width.
    fn check_data(&self, data: &BinaryData) -> Result<()> {
        if data.dim() == self.d {
            Ok(())
        } else {
            Err(BoltzmannError::Shape {
                what: "data row",
                expected: self.d,
                found: data.dim(),
            })
        }
    }

    /// Mean log-likelihood `−⟨E⟩_data − log Z` of `data` (rows of `d` units), in nats.
    pub fn mean_log_likelihood(&self, data: &BinaryData) -> Result<f64> {
        self.check_data(data)?;
        let log_z = self.log_partition()?;
        let e: f64 = data.iter().map(|s| self.energy_unchecked(s)).sum();
        Ok(-e / data.rows() as f64 - log_z)
    }

    /// Gradient of [`mean_log_likelihood`](Self::mean_log_likelihood) by moment matching.
    pub fn gradient(&self, data: &BinaryData) -> Result<FvbmGradient> {
        self.check_data(data)?;
        let dm = data_moments(data);
        let mm = self.moments()?;
        let d = self.d;
        let b = dm.mean.iter().zip(&mm.mean).map(|(a, m)| a - m).collect();
        let mut w: Vec<f64> = dm
            .second
            .iter()
            .zip(&mm.second)
            .map(|(a, m)| a - m)
            .collect();
        for i in 0..d {
            w[i * d + i] = 0.0;
        }
        Ok(FvbmGradient { b, w })
    }

    /// Fits by exact gradient ascent on the mean log-likelihood of `data`.
    pub fn fit(&mut self, data: &BinaryData, config: &FitConfig) -> Result<FitReport> {
        require(
            config.learning_rate.is_finite() && config.learning_rate > 0.0,
            "learning_rate",
            config.learning_rate,
            "a finite number > 0",
        )?;
        require(
            config.tolerance.is_finite() && config.tolerance >= 0.0,
            "tolerance",
            config.tolerance,
            "a finite number ≥ 0",
        )?;
        let initial_log_likelihood = self.mean_log_likelihood(data)?;
        let mut steps = 0;
        let mut max_gradient;
        loop {
            let g = self.gradient(data)?;
            max_gradient = g.b.iter().chain(&g.w).fold(0.0f64, |a, v| a.max(v.abs()));
            if max_gradient <= config.tolerance || steps == config.max_steps {
                break;
            }
            for (p, gi) in self.b.iter_mut().zip(&g.b) {
                *p += config.learning_rate * gi;
            }
            for (p, gi) in self.w.iter_mut().zip(&g.w) {
                *p += config.learning_rate * gi;
            }
            steps += 1;
            if !self.b.iter().chain(&self.w).all(|v| v.is_finite()) {
                return Err(BoltzmannError::Diverged { epoch: steps });
            }
        }
        Ok(FitReport {
            initial_log_likelihood,
            final_log_likelihood: self.mean_log_likelihood(data)?,
            steps,
            max_gradient,
        })
    }
}

/// The empirical moments of `data`.
#[must_use]
pub fn data_moments(data: &BinaryData) -> Moments {
    let d = data.dim();
    let mut m = Moments {
        mean: vec![0.0; d],
        second: vec![0.0; d * d],
    };
    for s in data.iter() {
        for i in (0..d).filter(|&i| s[i] != 0.0) {
            m.mean[i] += 1.0;
            for j in (0..d).filter(|&j| s[j] != 0.0) {
                m.second[i * d + j] += 1.0;
            }
        }
    }
    let n = data.rows() as f64;
    for v in m.mean.iter_mut().chain(m.second.iter_mut()) {
        *v /= n;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use microdiff_runtime::noise::{Domain, NoiseStream};

    /// A random machine: b, W ~ N(0, scale²).
    fn random(d: usize, scale: f64, seed: u64) -> Fvbm {
        let s = NoiseStream::new(seed, 0, Domain::TrainNoise);
        let b = (0..d)
            .map(|i| scale * f64::from(s.normal(0, i as u32)))
            .collect();
        let mut w = vec![0.0; d * d];
        for i in 0..d {
            for j in i + 1..d {
                let v = scale * f64::from(s.normal(1, (i * d + j) as u32));
                w[i * d + j] = v;
                w[j * d + i] = v;
            }
        }
        Fvbm::from_parts(b, w).unwrap()
    }

    /// Independent brute force: recursion over states, the full double sum, plain `exp`/`ln`.
    fn brute_log_z(m: &Fvbm) -> f64 {
        let d = m.units();
        fn rec(m: &Fvbm, s: &mut Vec<f64>, d: usize) -> f64 {
            if s.len() == d {
                let mut e = 0.0;
                for i in 0..d {
                    e -= m.biases()[i] * s[i];
                    for j in 0..d {
                        if i != j {
                            e -= 0.5 * m.couplings()[i * d + j] * s[i] * s[j];
                        }
                    }
                }
                return (-e).exp();
            }
            let mut t = 0.0;
            for v in [0.0, 1.0] {
                s.push(v);
                t += rec(m, s, d);
                s.pop();
            }
            t
        }
        rec(m, &mut Vec::new(), d).ln()
    }

    /// A structured data set over 5 units with every first and second moment inside (0, 1):
    /// each of the 32 states, repeated 1 + (a fixed hash) mod 5 times.
    fn structured() -> BinaryData {
        let mut x = Vec::new();
        for s in 0u32..32 {
            let reps =
                1 + (s.wrapping_mul(2_654_435_761) >> 7) % 5 + 3 * u32::from(s.count_ones() == 2);
            for _ in 0..reps {
                x.extend((0..5).map(|i| f64::from((s >> i) & 1)));
            }
        }
        BinaryData::new(x, 5).unwrap()
    }

    #[test]
    fn log_partition_matches_brute_force() {
        for d in 1..=12 {
            let m = random(d, 0.6, d as u64);
            let (a, b) = (m.log_partition().unwrap(), brute_log_z(&m));
            // Gray-code sums vs direct sums: rounding only.
            assert!(
                (a - b).abs() < 1e-10 * b.abs().max(1.0),
                "d={d}: {a} vs {b}"
            );
        }
        assert!((Fvbm::zeros(7).unwrap().log_partition().unwrap() - 7.0 * 2f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn too_many_units_and_bad_input_are_errors() {
        assert!(matches!(
            Fvbm::zeros(21).unwrap().log_partition(),
            Err(BoltzmannError::TooManyUnits { units: 21, .. })
        ));
        assert!(matches!(
            Fvbm::zeros(0),
            Err(BoltzmannError::NoUnits { .. })
        ));
        assert!(matches!(
            Fvbm::from_parts(vec![0.0; 2], vec![0.0, 1.0, 2.0, 0.0]),
            Err(BoltzmannError::NotSymmetric { i: 0, j: 1 })
        ));
        assert!(matches!(
            Fvbm::from_parts(vec![0.0; 2], vec![1.0, 0.0, 0.0, 0.0]),
            Err(BoltzmannError::Diagonal { i: 0, .. })
        ));
        assert!(matches!(
            Fvbm::from_parts(vec![f64::NAN, 0.0], vec![0.0; 4]),
            Err(BoltzmannError::NonFinite { .. })
        ));
        let m = Fvbm::zeros(3).unwrap();
        let data = BinaryData::new(vec![1.0, 0.0], 2).unwrap();
        assert!(matches!(
            m.mean_log_likelihood(&data),
            Err(BoltzmannError::Shape { .. })
        ));
        let cfg = FitConfig {
            learning_rate: -1.0,
            ..FitConfig::default()
        };
        assert!(matches!(
            Fvbm::zeros(2).unwrap().fit(&data, &cfg),
            Err(BoltzmannError::BadParameter { .. })
        ));
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let m = random(4, 0.7, 11);
        let data = structured();
        let data = BinaryData::new(
            data.as_slice()
                .chunks(5)
                .flat_map(|r| r[..4].to_vec())
                .collect(),
            4,
        )
        .unwrap();
        let g = m.gradient(&data).unwrap();
        let d = 4;
        let h = 1e-5;
        let ll = |b: &[f64], w: &[f64]| {
            Fvbm::from_parts(b.to_vec(), w.to_vec())
                .unwrap()
                .mean_log_likelihood(&data)
                .unwrap()
        };
        // Central differences: error O(h²·ℓ''') ≈ 1e-10 plus rounding ε·ℓ/h ≈ 1e-11.
        const TOL: f64 = 1e-7;
        for i in 0..d {
            let (mut bp, mut bm) = (m.biases().to_vec(), m.biases().to_vec());
            bp[i] += h;
            bm[i] -= h;
            let fd = (ll(&bp, m.couplings()) - ll(&bm, m.couplings())) / (2.0 * h);
            assert!((fd - g.b[i]).abs() < TOL, "b{i}: {fd} vs {}", g.b[i]);
            for j in i + 1..d {
                let (mut wp, mut wm) = (m.couplings().to_vec(), m.couplings().to_vec());
                // W_ij and W_ji are one parameter: move both.
                for a in [i * d + j, j * d + i] {
                    wp[a] += h;
                    wm[a] -= h;
                }
                let fd = (ll(m.biases(), &wp) - ll(m.biases(), &wm)) / (2.0 * h);
                assert!(
                    (fd - g.w[i * d + j]).abs() < TOL,
                    "w{i}{j}: {fd} vs {}",
                    g.w[i * d + j]
                );
            }
        }
    }

    #[test]
    fn fit_raises_likelihood_and_matches_moments() {
        let data = structured();
        let mut m = Fvbm::zeros(5).unwrap();
        let r = m
            .fit(
                &data,
                &FitConfig {
                    learning_rate: 0.5,
                    max_steps: 20_000,
                    tolerance: 1e-7,
                },
            )
            .unwrap();
        assert!(
            r.final_log_likelihood > r.initial_log_likelihood + 0.01,
            "{r:?}"
        );
        // Max-entropy property: the fitted model's moments equal the data's.
        let (dm, mm) = (data_moments(&data), m.moments().unwrap());
        for (a, b) in dm
            .mean
            .iter()
            .chain(&dm.second)
            .zip(mm.mean.iter().chain(&mm.second))
        {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        assert!(r.max_gradient <= 1e-7, "{r:?}");
    }
}
