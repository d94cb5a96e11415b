//! The binary–binary restricted Boltzmann machine: `nv` visible and `nh` hidden units,
//! `E(v, h) = −bᵀv − cᵀh − hᵀWv` with `W` of shape `(nh, nv)` row-major.
//!
//! Owns the model: its energy and free energy `F(v) = −bᵀv − Σ_j softplus(c_j + W_j·v)`, the
//! exact log-partition function by enumerating the smaller layer (at most `MAX_EXACT_UNITS`
//! units), exact mean log-likelihoods, the conditionals `p(h_j = 1 | v) = σ(c_j + W_j·v)` and
//! `p(v_i = 1 | h) = σ(b_i + Wᵀ_i h)` and the block Gibbs sweep at an inverse temperature,
//! shared by training, replica exchange and AIS.

use microdiff_runtime::noise::{Domain, NoiseStream};

use super::math::{
    LogSumExp, check_finite, check_len, gray_enumerate, require, sigmoid, softplus, states,
};
use super::noise::{DRAW_INIT, bernoulli, index};
use super::{BinaryData, BoltzmannError, Result};

/// A binary–binary RBM (see the module doc). Parameters are always finite.
#[derive(Debug, Clone, PartialEq)]
pub struct Rbm {
    /// Visible units.
    nv: usize,
    /// Hidden units.
    nh: usize,
    /// Weights `(nh, nv)` row-major.
    pub(super) w: Vec<f64>,
    /// Visible biases `(nv,)`.
    pub(super) b: Vec<f64>,
    /// Hidden biases `(nh,)`.
    pub(super) c: Vec<f64>,
}

impl Rbm {
    /// All parameters zero (the uniform distribution); `nv, nh ≥ 1`.
    pub fn zeros(nv: usize, nh: usize) -> Result<Self> {
        if nv == 0 {
            return Err(BoltzmannError::NoUnits {
                what: "rbm visible",
            });
        }
        if nh == 0 {
            return Err(BoltzmannError::NoUnits { what: "rbm hidden" });
        }
        let n = nv.checked_mul(nh).ok_or(BoltzmannError::Overflow {
            what: "rbm weights",
        })?;
        // Elements of noise draws are `replica·(nv + nh) + unit`: one replica must fit a u32.
        index(
            "rbm units",
            nv.checked_add(nh)
                .ok_or(BoltzmannError::Overflow { what: "rbm units" })?,
        )?;
        Ok(Self {
            nv,
            nh,
            w: vec![0.0; n],
            b: vec![0.0; nv],
            c: vec![0.0; nh],
        })
    }

    /// A machine from weights `w` `(nh, nv)` row-major, visible biases `b` `(nv,)` and hidden
    /// biases `c` `(nh,)`, all finite.
    pub fn from_parts(nv: usize, nh: usize, w: Vec<f64>, b: Vec<f64>, c: Vec<f64>) -> Result<Self> {
        let mut m = Self::zeros(nv, nh)?;
        check_len("rbm W", &w, m.w.len())?;
        check_len("rbm b", &b, nv)?;
        check_len("rbm c", &c, nh)?;
        check_finite("rbm W", &w)?;
        check_finite("rbm b", &b)?;
        check_finite("rbm c", &c)?;
        (m.w, m.b, m.c) = (w, b, c);
        Ok(m)
    }

    /// Weights `W_ji ~ N(0, scale²)` (element `j·nv + i` of draw `DRAW_INIT`, stream 0, of the
    /// `TrainNoise` domain of `seed`), biases zero.
    pub fn random(nv: usize, nh: usize, scale: f64, seed: u64) -> Result<Self> {
        require(
            scale.is_finite() && scale >= 0.0,
            "scale",
            scale,
            "a finite number ≥ 0",
        )?;
        let mut m = Self::zeros(nv, nh)?;
        index("rbm weights", m.w.len())?;
        let noise = NoiseStream::new(seed, 0, Domain::TrainNoise);
        for (e, w) in m.w.iter_mut().enumerate() {
            *w = scale * f64::from(noise.normal(DRAW_INIT, e as u32));
        }
        Ok(m)
    }

    /// Visible units.
    #[must_use]
    pub fn nv(&self) -> usize {
        self.nv
    }

    /// Hidden units.
    #[must_use]
    pub fn nh(&self) -> usize {
        self.nh
    }

    /// Weights `(nh, nv)` row-major.
    #[must_use]
    pub fn weights(&self) -> &[f64] {
        &self.w
    }

    /// Visible biases `(nv,)`.
    #[must_use]
    pub fn visible_bias(&self) -> &[f64] {
        &self.b
    }

    /// Hidden biases `(nh,)`.
    #[must_use]
    pub fn hidden_bias(&self) -> &[f64] {
        &self.c
    }

    /// Checks a state of `n` units is 0/1 of the right length.
    fn check_state(what: &'static str, x: &[f64], n: usize) -> Result<()> {
        check_len(what, x, n)?;
        match x.iter().enumerate().find(|&(_, &v)| v != 0.0 && v != 1.0) {
            Some((index, &value)) => Err(BoltzmannError::NotBinary { index, value }),
            None => Ok(()),
        }
    }

    /// Checks `data` rows have `nv` units.
    pub(super) fn check_data(&self, data: &BinaryData) -> Result<()> {
        if data.dim() == self.nv {
            Ok(())
        } else {
            Err(BoltzmannError::Shape {
                what: "data row",
                expected: self.nv,
                found: data.dim(),
            })
        }
    }

    /// `E(v, h)` of binary `v` `(nv,)` and `h` `(nh,)`.
    pub fn energy(&self, v: &[f64], h: &[f64]) -> Result<f64> {
        Self::check_state("v", v, self.nv)?;
        Self::check_state("h", h, self.nh)?;
        Ok(self.energy_unchecked(v, h))
    }

    /// `E(v, h)` without checks.
    pub(super) fn energy_unchecked(&self, v: &[f64], h: &[f64]) -> f64 {
        let mut e = -dot(&self.b, v) - dot(&self.c, h);
        for (j, &hj) in h.iter().enumerate() {
            if hj != 0.0 {
                e -= dot(&self.w[j * self.nv..(j + 1) * self.nv], v);
            }
        }
        e
    }

    /// Free energy `F(v)` of a binary `v` `(nv,)`.
    pub fn free_energy(&self, v: &[f64]) -> Result<f64> {
        Self::check_state("v", v, self.nv)?;
        Ok(self.free_energy_unchecked(v))
    }

    /// `F(v)` without checks.
    pub(super) fn free_energy_unchecked(&self, v: &[f64]) -> f64 {
        let mut f = -dot(&self.b, v);
        for j in 0..self.nh {
            f -= softplus(self.c[j] + dot(&self.w[j * self.nv..(j + 1) * self.nv], v));
        }
        f
    }

    /// `log Z`, exact, enumerating the smaller layer; `TooManyUnits` when both layers have
    /// more than `MAX_EXACT_UNITS` units.
    pub fn log_partition(&self) -> Result<f64> {
        let (nv, nh) = (self.nv, self.nh);
        let mut l = LogSumExp::new();
        if nv <= nh {
            states("rbm visible", nv)?;
            // act[j] = c_j + W_j·v, bias = bᵀv, updated per Gray-code flip.
            let act = std::cell::RefCell::new(self.c.clone());
            let bias = std::cell::Cell::new(0.0);
            gray_enumerate(
                nv,
                |i, on| {
                    let s = if on { 1.0 } else { -1.0 };
                    bias.set(bias.get() + s * self.b[i]);
                    for (j, a) in act.borrow_mut().iter_mut().enumerate() {
                        *a += s * self.w[j * nv + i];
                    }
                },
                || l.add(bias.get() + act.borrow().iter().map(|&a| softplus(a)).sum::<f64>()),
            );
        } else {
            states("rbm hidden", nh)?;
            let act = std::cell::RefCell::new(self.b.clone());
            let bias = std::cell::Cell::new(0.0);
            gray_enumerate(
                nh,
                |j, on| {
                    let s = if on { 1.0 } else { -1.0 };
                    bias.set(bias.get() + s * self.c[j]);
                    for (a, w) in act
                        .borrow_mut()
                        .iter_mut()
                        .zip(&self.w[j * nv..(j + 1) * nv])
                    {
                        *a += s * w;
                    }
                },
                || l.add(bias.get() + act.borrow().iter().map(|&a| softplus(a)).sum::<f64>()),
            );
        }
        Ok(l.value())
    }

    /// Exact marginals `p(v_i = 1)` of the visible units (enumerating the visible layer, so
    /// `nv ≤ MAX_EXACT_UNITS`).
    pub fn visible_marginals(&self) -> Result<Vec<f64>> {
        let n = states("rbm visible", self.nv)?;
        let log_z = self.log_partition()?;
        let mut m = vec![0.0; self.nv];
        let mut v = vec![0.0; self.nv];
        for s in 0..n {
            for (i, vi) in v.iter_mut().enumerate() {
                *vi = ((s >> i) & 1) as f64;
            }
            let p = (-self.free_energy_unchecked(&v) - log_z).exp();
            for (mi, vi) in m.iter_mut().zip(&v) {
                *mi += p * vi;
            }
        }
        Ok(m)
    }

    /// Mean exact log-likelihood `−⟨F(v)⟩_data − log Z`, in nats.
    pub fn mean_log_likelihood(&self, data: &BinaryData) -> Result<f64> {
        self.check_data(data)?;
        let log_z = self.log_partition()?;
        Ok(-self.mean_free_energy(data) - log_z)
    }

    /// `⟨F(v)⟩_data` (rows already checked).
    pub(super) fn mean_free_energy(&self, data: &BinaryData) -> f64 {
        data.iter()
            .map(|v| self.free_energy_unchecked(v))
            .sum::<f64>()
            / data.rows() as f64
    }

    /// Hidden activations `out[j] = c_j + W_j·v`.
    pub(super) fn hidden_act(&self, v: &[f64], out: &mut [f64]) {
        for (j, o) in out.iter_mut().enumerate() {
            *o = self.c[j] + dot(&self.w[j * self.nv..(j + 1) * self.nv], v);
        }
    }

    /// Visible activations `out[i] = b_i + Σ_j W_ji h_j`.
    pub(super) fn visible_act(&self, h: &[f64], out: &mut [f64]) {
        out.copy_from_slice(&self.b);
        for (j, &hj) in h.iter().enumerate() {
            if hj != 0.0 {
                for (o, w) in out.iter_mut().zip(&self.w[j * self.nv..(j + 1) * self.nv]) {
                    *o += hj * w;
                }
            }
        }
    }

    /// Mean squared error per unit of the mean-field reconstruction
    /// `σ(b + Wᵀσ(c + Wv))` of each row of `data` (rows already checked).
    pub(super) fn reconstruction_error(&self, data: &BinaryData) -> f64 {
        let (mut a, mut pv) = (vec![0.0; self.nh], vec![0.0; self.nv]);
        let mut err = 0.0;
        for v in data.iter() {
            self.hidden_act(v, &mut a);
            a.iter_mut().for_each(|x| *x = sigmoid(*x));
            self.visible_act(&a, &mut pv);
            err += v
                .iter()
                .zip(&pv)
                .map(|(x, p)| (x - sigmoid(*p)).powi(2))
                .sum::<f64>();
        }
        err / (data.rows() * self.nv) as f64
    }

    /// One block Gibbs sweep at inverse temperature `beta`: `h ~ p_β(h | v)`, then
    /// `v ~ p_β(v | h)`, of `p_β(v, h) ∝ exp(−β E(v, h) + (1 − β) b_baseᵀv)` (`base` `None`
    /// means zero base biases, the plain tempered machine). Noise: element `offset + i` of
    /// `draw` for visible unit `i`, `offset + nv + j` for hidden unit `j` (the caller checked
    /// these fit a u32). `act` is scratch of `max(nv, nh)` values.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn gibbs_sweep(
        &self,
        v: &mut [f64],
        h: &mut [f64],
        beta: f64,
        base: Option<&[f64]>,
        noise: &NoiseStream,
        draw: u32,
        offset: u32,
        act: &mut [f64],
    ) {
        let (nv, nh) = (self.nv, self.nh);
        self.hidden_act(v, &mut act[..nh]);
        for (j, (hj, a)) in h.iter_mut().zip(&act[..nh]).enumerate() {
            *hj = bernoulli(noise, draw, offset + (nv + j) as u32, sigmoid(beta * a));
        }
        self.visible_act(h, &mut act[..nv]);
        for (i, (vi, a)) in v.iter_mut().zip(&act[..nv]).enumerate() {
            let base_i = base.map_or(0.0, |bb| (1.0 - beta) * bb[i]);
            *vi = bernoulli(noise, draw, offset + i as u32, sigmoid(beta * a + base_i));
        }
    }
}

/// `Σ a_i b_i` in index order.
pub(super) fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A random machine: W ~ N(0, w_scale²), b, c ~ N(0, bias_scale²).
    pub(in super::super) fn random_rbm(
        nv: usize,
        nh: usize,
        w_scale: f64,
        bias_scale: f64,
        seed: u64,
    ) -> Rbm {
        let mut m = Rbm::random(nv, nh, w_scale, seed).unwrap();
        let s = NoiseStream::new(seed, 1, Domain::TrainNoise);
        for (i, b) in m.b.iter_mut().enumerate() {
            *b = bias_scale * f64::from(s.normal(0, i as u32));
        }
        for (j, c) in m.c.iter_mut().enumerate() {
            *c = bias_scale * f64::from(s.normal(1, j as u32));
        }
        m
    }

    /// Brute force over all `(v, h)`: plain sums of `exp(−E)`.
    fn brute_log_z(m: &Rbm) -> f64 {
        let mut z = 0.0;
        for sv in 0u32..1 << m.nv() {
            let v: Vec<f64> = (0..m.nv()).map(|i| f64::from((sv >> i) & 1)).collect();
            for sh in 0u32..1 << m.nh() {
                let h: Vec<f64> = (0..m.nh()).map(|j| f64::from((sh >> j) & 1)).collect();
                z += (-m.energy(&v, &h).unwrap()).exp();
            }
        }
        z.ln()
    }

    #[test]
    fn log_partition_matches_brute_force_both_ways() {
        for (nv, nh) in [(5, 3), (3, 6), (4, 4), (1, 7)] {
            let m = random_rbm(nv, nh, 0.8, 0.5, (nv * 10 + nh) as u64);
            let (a, b) = (m.log_partition().unwrap(), brute_log_z(&m));
            assert!((a - b).abs() < 1e-10, "{nv}x{nh}: {a} vs {b}");
            // The free energy sums h out exactly.
            let v = vec![1.0; nv];
            let mut z = 0.0;
            for sh in 0u32..1 << nh {
                let h: Vec<f64> = (0..nh).map(|j| f64::from((sh >> j) & 1)).collect();
                z += (-m.energy(&v, &h).unwrap()).exp();
            }
            assert!((m.free_energy(&v).unwrap() + z.ln()).abs() < 1e-12);
        }
        // Marginals sum the enumerated distribution.
        let m = random_rbm(4, 3, 1.0, 0.5, 3);
        let marg = m.visible_marginals().unwrap();
        assert!(marg.iter().all(|p| (0.0..=1.0).contains(p)));
    }

    #[test]
    fn errors_instead_of_panics() {
        assert!(matches!(
            Rbm::zeros(21, 21).unwrap().log_partition(),
            Err(BoltzmannError::TooManyUnits { .. })
        ));
        assert!(Rbm::zeros(21, 12).unwrap().log_partition().is_ok());
        assert!(matches!(
            Rbm::zeros(0, 3),
            Err(BoltzmannError::NoUnits { .. })
        ));
        assert!(matches!(
            Rbm::zeros(usize::MAX, 3),
            Err(BoltzmannError::Overflow { .. })
        ));
        assert!(matches!(
            Rbm::from_parts(2, 2, vec![0.0; 3], vec![0.0; 2], vec![0.0; 2]),
            Err(BoltzmannError::Shape { .. })
        ));
        assert!(matches!(
            Rbm::from_parts(1, 1, vec![f64::INFINITY], vec![0.0], vec![0.0]),
            Err(BoltzmannError::NonFinite { .. })
        ));
        let m = Rbm::zeros(2, 2).unwrap();
        assert!(matches!(
            m.free_energy(&[0.0, 2.0]),
            Err(BoltzmannError::NotBinary { .. })
        ));
        let data = BinaryData::new(vec![1.0; 3], 3).unwrap();
        assert!(matches!(
            m.mean_log_likelihood(&data),
            Err(BoltzmannError::Shape { .. })
        ));
        assert!(matches!(
            Rbm::random(2, 2, f64::NAN, 0),
            Err(BoltzmannError::BadParameter { .. })
        ));
    }
}
