//! A small dense MLP — `Linear → act → … → Linear` — with forward, exact manual backward
//! (input and parameter gradients) and the Adam optimiser, all in f64.
//!
//! Parameters are one flat vector: for each layer `l` (in order) its weight `W_l`
//! (`// (out, in)`, row-major) then its bias `b_l` (`// (out)`). The last layer is linear (no
//! activation), so a network with sizes `[in, out]` is an affine map. Weights start as
//! `N(0, gain/in)` (gain 2 for ReLU, 1 otherwise) from the counters listed in the
//! [module doc](super), biases at 0.

use microdiff_runtime::noise::{Domain, NoiseStream};

use super::{INIT_DRAW, MAX_LAYERS, VaeError, add, counter, mul};

/// The nonlinearity between layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `tanh a`.
    Tanh,
    /// `max(a, 0)` (derivative 0 at 0).
    Relu,
    /// `a · sigmoid(a)`.
    Silu,
}

impl Activation {
    /// The activation of pre-activation `a`.
    #[must_use]
    pub fn apply(self, a: f64) -> f64 {
        match self {
            Activation::Tanh => a.tanh(),
            Activation::Relu => a.max(0.0),
            Activation::Silu => a / (1.0 + (-a).exp()),
        }
    }

    /// Its derivative at `a`.
    #[must_use]
    pub fn derivative(self, a: f64) -> f64 {
        match self {
            Activation::Tanh => {
                let t = a.tanh();
                1.0 - t * t
            }
            Activation::Relu => {
                if a > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::Silu => {
                let s = 1.0 / (1.0 + (-a).exp());
                s * (1.0 + a * (1.0 - s))
            }
        }
    }
}

/// A dense MLP: layer widths `sizes[0] → sizes[1] → … → sizes[L]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    sizes: Vec<usize>,
    activation: Activation,
    /// Flat parameters (layout in the module doc).
    params: Vec<f64>,
    /// Start of `W_l` in `params`, for each layer.
    offsets: Vec<usize>,
}

/// What [`Dense::forward`] keeps for [`Dense::backward`]: each layer's input and each hidden
/// layer's pre-activation, for a batch of `n` rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    n: usize,
    /// Input of layer `l`. // (n, sizes[l])
    inputs: Vec<Vec<f64>>,
    /// Pre-activation of hidden layer `l` (the output of linear layer `l`, `l < L − 1`).
    pre: Vec<Vec<f64>>,
    /// The network's output. // (n, sizes[L])
    output: Vec<f64>,
}

impl Trace {
    /// The output of the forward pass. // (n, out)
    #[must_use]
    pub fn output(&self) -> &[f64] {
        &self.output
    }

    /// Rows in the batch.
    #[must_use]
    pub fn rows(&self) -> usize {
        self.n
    }
}

impl Dense {
    /// A network with widths `sizes` (at least two, all ≥ 1, at most [`MAX_LAYERS`] layers),
    /// initialised from `NoiseStream::new(seed, stream, TrainNoise)` (see the module doc).
    pub fn new(
        sizes: &[usize],
        activation: Activation,
        seed: u64,
        stream: u32,
    ) -> Result<Self, VaeError> {
        if sizes.len() < 2 || sizes.len() > MAX_LAYERS + 1 {
            return Err(VaeError::Config {
                field: "sizes",
                reason: format!("needs 2..={} widths, got {}", MAX_LAYERS + 1, sizes.len()),
            });
        }
        if sizes.contains(&0) {
            return Err(VaeError::Config {
                field: "sizes",
                reason: format!("widths must be ≥ 1, got {sizes:?}"),
            });
        }
        let mut offsets = Vec::with_capacity(sizes.len() - 1);
        let mut total = 0usize;
        for w in sizes.windows(2) {
            offsets.push(total);
            let weights = mul(w[0], w[1], "layer weights")?;
            counter(weights, "layer weights")?;
            total = add(total, add(weights, w[1], "layer parameters")?, "parameters")?;
        }
        let mut params = vec![0.0; total];
        let gain = if activation == Activation::Relu {
            2.0
        } else {
            1.0
        };
        let ns = NoiseStream::new(seed, stream, Domain::TrainNoise);
        for (l, (w, &off)) in sizes.windows(2).zip(&offsets).enumerate() {
            let (fan_in, fan_out) = (w[0], w[1]);
            let scale = (gain / fan_in as f64).sqrt();
            // l < MAX_LAYERS, so the draw stays below EVAL_DRAW; the element fits in u32
            // (checked above).
            let draw = INIT_DRAW + l as u32;
            for (e, p) in params[off..off + fan_in * fan_out].iter_mut().enumerate() {
                *p = scale * f64::from(ns.normal(draw, e as u32));
            }
        }
        Ok(Self {
            sizes: sizes.to_vec(),
            activation,
            params,
            offsets,
        })
    }

    /// Input width.
    #[must_use]
    pub fn input_dim(&self) -> usize {
        self.sizes[0]
    }

    /// Output width.
    #[must_use]
    pub fn output_dim(&self) -> usize {
        self.sizes[self.sizes.len() - 1]
    }

    /// Number of linear layers.
    #[must_use]
    pub fn layers(&self) -> usize {
        self.offsets.len()
    }

    /// The activation between layers.
    #[must_use]
    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// The flat parameters (layout in the module doc).
    #[must_use]
    pub fn params(&self) -> &[f64] {
        &self.params
    }

    /// The flat parameters, mutable.
    pub fn params_mut(&mut self) -> &mut [f64] {
        &mut self.params
    }

    /// Layer widths, input first.
    #[must_use]
    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }

    /// Layer `layer`'s weight (`// (out, in)`, row-major) and bias; empty slices past the last
    /// layer.
    #[must_use]
    pub fn layer(&self, layer: usize) -> (&[f64], &[f64]) {
        let Some(&off) = self.offsets.get(layer) else {
            return (&[], &[]);
        };
        let (fan_in, fan_out) = (self.sizes[layer], self.sizes[layer + 1]);
        let nw = fan_in * fan_out;
        (
            &self.params[off..off + nw],
            &self.params[off + nw..off + nw + fan_out],
        )
    }

    /// Overwrites layer `layer`'s weight (`// (out, in)`, row-major) and bias.
    pub fn set_layer(
        &mut self,
        layer: usize,
        weight: &[f64],
        bias: &[f64],
    ) -> Result<(), VaeError> {
        let Some(&off) = self.offsets.get(layer) else {
            return Err(VaeError::Config {
                field: "layer",
                reason: format!("{layer} ≥ {} layers", self.layers()),
            });
        };
        let (fan_in, fan_out) = (self.sizes[layer], self.sizes[layer + 1]);
        let nw = fan_in * fan_out;
        check_len("weight", nw, weight.len())?;
        check_len("bias", fan_out, bias.len())?;
        self.params[off..off + nw].copy_from_slice(weight);
        self.params[off + nw..off + nw + fan_out].copy_from_slice(bias);
        Ok(())
    }

    /// Forward pass of `n = x.len() / input_dim` rows (`x`: `// (n, in)`), keeping what the
    /// backward pass needs.
    pub fn forward(&self, x: &[f64]) -> Result<Trace, VaeError> {
        let fan_in0 = self.input_dim();
        if !x.len().is_multiple_of(fan_in0) {
            return Err(VaeError::Shape {
                what: "network input",
                expected: (x.len() / fan_in0 + 1) * fan_in0,
                found: x.len(),
            });
        }
        let n = x.len() / fan_in0;
        // Every intermediate is n × width; check the largest once.
        let widest = self.sizes.iter().copied().max().unwrap_or(0);
        mul(n, widest, "activations")?;
        let last = self.layers() - 1;
        let mut inputs = Vec::with_capacity(self.layers());
        let mut pre = Vec::with_capacity(last);
        let mut h = x.to_vec();
        for l in 0..last {
            let a = self.linear(l, &h, n);
            let next: Vec<f64> = a.iter().map(|&v| self.activation.apply(v)).collect();
            inputs.push(std::mem::replace(&mut h, next));
            pre.push(a);
        }
        let output = self.linear(last, &h, n);
        inputs.push(h);
        Ok(Trace {
            n,
            inputs,
            pre,
            output,
        })
    }

    /// The output only (no trace kept).
    pub fn apply(&self, x: &[f64]) -> Result<Vec<f64>, VaeError> {
        Ok(self.forward(x)?.output)
    }

    /// Backward pass: given `dy = ∂loss/∂output` (`// (n, out)`), **adds** `∂loss/∂params` to
    /// `grad` (same layout as [`params`](Self::params); `+=` so several passes through one
    /// network accumulate) and returns `∂loss/∂input` (`// (n, in)`).
    pub fn backward(
        &self,
        trace: &Trace,
        dy: &[f64],
        grad: &mut [f64],
    ) -> Result<Vec<f64>, VaeError> {
        let n = trace.n;
        check_len("output gradient", n * self.output_dim(), dy.len())?;
        check_len("parameter gradient", self.params.len(), grad.len())?;
        if trace.inputs.len() != self.layers() {
            return Err(VaeError::Shape {
                what: "trace layers",
                expected: self.layers(),
                found: trace.inputs.len(),
            });
        }
        let mut delta = dy.to_vec();
        for l in (0..self.layers()).rev() {
            let (fan_in, fan_out) = (self.sizes[l], self.sizes[l + 1]);
            let off = self.offsets[l];
            let w = &self.params[off..off + fan_in * fan_out];
            let input = &trace.inputs[l];
            let (gw, rest) = grad[off..].split_at_mut(fan_in * fan_out);
            let gb = &mut rest[..fan_out];
            let mut dx = vec![0.0; n * fan_in];
            for r in 0..n {
                let d = &delta[r * fan_out..(r + 1) * fan_out];
                let xin = &input[r * fan_in..(r + 1) * fan_in];
                let dxr = &mut dx[r * fan_in..(r + 1) * fan_in];
                for (o, &dv) in d.iter().enumerate() {
                    gb[o] += dv;
                    let wrow = &w[o * fan_in..(o + 1) * fan_in];
                    let grow = &mut gw[o * fan_in..(o + 1) * fan_in];
                    for i in 0..fan_in {
                        grow[i] += dv * xin[i];
                        dxr[i] += dv * wrow[i];
                    }
                }
            }
            if l > 0 {
                for (g, &a) in dx.iter_mut().zip(&trace.pre[l - 1]) {
                    *g *= self.activation.derivative(a);
                }
            }
            delta = dx;
        }
        Ok(delta)
    }

    /// `h W_lᵀ + b_l` for `n` rows of `h`.
    fn linear(&self, l: usize, h: &[f64], n: usize) -> Vec<f64> {
        let (fan_in, fan_out) = (self.sizes[l], self.sizes[l + 1]);
        let off = self.offsets[l];
        let w = &self.params[off..off + fan_in * fan_out];
        let b = &self.params[off + fan_in * fan_out..off + fan_in * fan_out + fan_out];
        let mut y = vec![0.0; n * fan_out];
        for r in 0..n {
            let xr = &h[r * fan_in..(r + 1) * fan_in];
            for o in 0..fan_out {
                let wrow = &w[o * fan_in..(o + 1) * fan_in];
                let mut s = b[o];
                for i in 0..fan_in {
                    s += wrow[i] * xr[i];
                }
                y[r * fan_out + o] = s;
            }
        }
        y
    }
}

/// `Ok` if `found == expected`, else [`VaeError::Shape`].
pub(crate) fn check_len(what: &'static str, expected: usize, found: usize) -> Result<(), VaeError> {
    if expected == found {
        Ok(())
    } else {
        Err(VaeError::Shape {
            what,
            expected,
            found,
        })
    }
}

/// Adam's hyperparameters (Kingma & Ba 2015).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    /// Step size.
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Added to `sqrt(v̂)`.
    pub eps: f64,
}

impl Default for AdamConfig {
    /// `lr = 1e-3, β = (0.9, 0.999), ε = 1e-8`, the paper's defaults.
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// Adam state for one flat parameter vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Adam {
    config: AdamConfig,
    m: Vec<f64>,
    v: Vec<f64>,
    t: i32,
}

impl Adam {
    /// Zero moments for `len` parameters; checks the hyperparameters.
    pub fn new(len: usize, config: AdamConfig) -> Result<Self, VaeError> {
        let ok = config.lr.is_finite()
            && config.lr > 0.0
            && (0.0..1.0).contains(&config.beta1)
            && (0.0..1.0).contains(&config.beta2)
            && config.eps.is_finite()
            && config.eps > 0.0;
        if !ok {
            return Err(VaeError::Config {
                field: "adam",
                reason: format!("needs lr > 0, β in [0, 1), ε > 0; got {config:?}"),
            });
        }
        Ok(Self {
            config,
            m: vec![0.0; len],
            v: vec![0.0; len],
            t: 0,
        })
    }

    /// One descent step on `params` with gradient `grad`, bias-corrected.
    pub fn step(&mut self, params: &mut [f64], grad: &[f64]) -> Result<(), VaeError> {
        check_len("adam parameters", self.m.len(), params.len())?;
        check_len("adam gradient", self.m.len(), grad.len())?;
        self.t = self.t.saturating_add(1);
        let AdamConfig {
            lr,
            beta1,
            beta2,
            eps,
        } = self.config;
        let c1 = 1.0 - beta1.powi(self.t);
        let c2 = 1.0 - beta2.powi(self.t);
        for (((p, &g), m), v) in params
            .iter_mut()
            .zip(grad)
            .zip(&mut self.m)
            .zip(&mut self.v)
        {
            *m = beta1 * *m + (1.0 - beta1) * g;
            *v = beta2 * *v + (1.0 - beta2) * g * g;
            *p -= lr * (*m / c1) / ((*v / c2).sqrt() + eps);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Central-difference step: balances truncation (h²·f‴ ≈ 1e-12) against rounding
    /// (ε·|f|/h ≈ 1e-10).
    const FD_STEP: f64 = 1e-6;
    /// Agreement required, relative to `max(1, |g|)`: a few times the finite-difference error
    /// above; a wrong backward is off by O(1).
    const FD_TOL: f64 = 1e-6;

    /// `Σ c_k y_k` for fixed weights `c`, so `dy = c`.
    fn loss(net: &Dense, x: &[f64], c: &[f64]) -> f64 {
        net.apply(x)
            .unwrap()
            .iter()
            .zip(c)
            .map(|(y, c)| y * c)
            .sum()
    }

    #[test]
    fn backward_matches_finite_differences() {
        for act in [Activation::Tanh, Activation::Relu, Activation::Silu] {
            let mut net = Dense::new(&[3, 5, 4, 2], act, 7, 0).unwrap();
            // Non-zero biases, so ReLU kinks are away from the probe points.
            for p in net.params_mut().iter_mut() {
                *p += 0.05;
            }
            let n = 3;
            let ns = NoiseStream::new(11, 0, Domain::TrainNoise);
            let x: Vec<f64> = (0..n * 3)
                .map(|e| f64::from(ns.normal(0, e as u32)))
                .collect();
            let c: Vec<f64> = (0..n * 2)
                .map(|e| f64::from(ns.normal(1, e as u32)))
                .collect();
            let trace = net.forward(&x).unwrap();
            let mut grad = vec![0.0; net.params().len()];
            let dx = net.backward(&trace, &c, &mut grad).unwrap();
            for (k, &g) in grad.iter().enumerate() {
                let mut plus = net.clone();
                plus.params_mut()[k] += FD_STEP;
                let mut minus = net.clone();
                minus.params_mut()[k] -= FD_STEP;
                let fd = (loss(&plus, &x, &c) - loss(&minus, &x, &c)) / (2.0 * FD_STEP);
                assert!(
                    (fd - g).abs() <= FD_TOL * g.abs().max(1.0),
                    "{act:?} param {k}: backward {g} vs fd {fd}"
                );
            }
            for k in 0..x.len() {
                let mut xp = x.clone();
                xp[k] += FD_STEP;
                let mut xm = x.clone();
                xm[k] -= FD_STEP;
                let fd = (loss(&net, &xp, &c) - loss(&net, &xm, &c)) / (2.0 * FD_STEP);
                assert!(
                    (fd - dx[k]).abs() <= FD_TOL * dx[k].abs().max(1.0),
                    "{act:?} input {k}: backward {} vs fd {fd}",
                    dx[k]
                );
            }
        }
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert!(Dense::new(&[3], Activation::Tanh, 0, 0).is_err());
        assert!(Dense::new(&[3, 0, 2], Activation::Tanh, 0, 0).is_err());
        assert!(Dense::new(&[usize::MAX, 2], Activation::Tanh, 0, 0).is_err());
        let net = Dense::new(&[3, 2], Activation::Tanh, 0, 0).unwrap();
        assert!(net.forward(&[1.0; 4]).is_err());
        let t = net.forward(&[1.0; 3]).unwrap();
        assert!(net.backward(&t, &[1.0; 3], &mut [0.0; 8]).is_err());
        assert!(
            Adam::new(
                2,
                AdamConfig {
                    lr: -1.0,
                    ..AdamConfig::default()
                }
            )
            .is_err()
        );
    }

    #[test]
    fn adam_minimises_a_quadratic() {
        let mut p = vec![3.0, -2.0];
        let mut adam = Adam::new(
            2,
            AdamConfig {
                lr: 0.05,
                ..AdamConfig::default()
            },
        )
        .unwrap();
        for _ in 0..2000 {
            let g: Vec<f64> = p.iter().map(|&v| 2.0 * (v - 1.0)).collect();
            adam.step(&mut p, &g).unwrap();
        }
        assert!(p.iter().all(|&v| (v - 1.0).abs() < 1e-3), "{p:?}");
    }
}
