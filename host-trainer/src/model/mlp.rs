//! Forward and backward passes of the residual MLP over any [`Backend`].

use microdiff_kernels::Activation;

use super::{LN_EPS, Layout, MAX_PERIOD, MlpConfig, Slot};
use crate::backend::{Activated, Backend, Linear, LnArgs, ParamGrads, ResidualLnOut};

/// Everything the forward pass keeps for the backward pass, for one batch size.
pub struct Activations<B: Backend> {
    /// Batch size these buffers hold.
    pub batch: usize,
    pub(crate) x: B::Buf, // (b, d) network input
    t: B::Buf,            // (b) time values
    c: B::Buf,            // (b) class ids
    temb: B::Buf,         // (b, e)
    u1: B::Buf,           // (b, h) W_t1·temb + b
    a1: B::Buf,           // (b, h) silu(u1)
    tproj: B::Buf,        // (b, h) scratch of the stem's residual add
    h_in: Vec<B::Buf>,    // (b, h) residual stream entering block k; last = entering the head
    ln: Vec<B::Buf>,      // (b, h) LN output of block k; last = head LN
    stats: Vec<B::Buf>,   // (b, 2) LN mean / rstd
    z: Vec<B::Buf>,       // (b, f) block pre-activation
    a: Vec<B::Buf>,       // (b, f) block activation
    a_out: B::Buf,        // (b, h) head activation
    /// Network output (b, d).
    pub out: B::Buf,
    // Gradient scratch.
    dh: B::Buf,
    dtmp_h: B::Buf,
    dtmp_h2: B::Buf,
    dtmp_f: B::Buf,
    dtmp_f2: B::Buf,
    /// (b, d) gradient w.r.t. the network input; only allocated (and computed by the backward
    /// pass) when asked for, since training never needs it.
    dx: Option<B::Buf>,
}

impl<B: Backend> Activations<B> {
    /// The gradient w.r.t. the network input left by the last backward pass, when the buffers
    /// were made by [`Mlp::activations_with_input_grad`].
    pub fn input_grad(&self) -> Option<&B::Buf> {
        self.dx.as_ref()
    }
}

/// The network bound to a backend and a shape.
pub struct Mlp {
    /// Shape.
    pub config: MlpConfig,
    /// Tensor offsets.
    pub layout: Layout,
}

impl Mlp {
    /// The network of `config`.
    pub fn new(config: MlpConfig) -> Self {
        Mlp {
            layout: Layout::new(&config),
            config,
        }
    }

    /// Buffers for batches of `batch` rows.
    pub fn activations<B: Backend>(&self, be: &B, batch: usize) -> Activations<B> {
        let c = &self.config;
        let (b, d, h, f, e) = (batch, c.data_dim, c.hidden, c.ff, c.temb);
        let n = c.blocks;
        Activations {
            batch,
            x: be.zeros(b * d),
            t: be.zeros(b),
            c: be.zeros(b),
            temb: be.zeros(b * e),
            u1: be.zeros(b * h),
            a1: be.zeros(b * h),
            tproj: be.zeros(b * h),
            h_in: (0..=n).map(|_| be.zeros(b * h)).collect(),
            ln: (0..=n).map(|_| be.zeros(b * h)).collect(),
            stats: (0..=n).map(|_| be.zeros(2 * b)).collect(),
            z: (0..n).map(|_| be.zeros(b * f)).collect(),
            a: (0..n).map(|_| be.zeros(b * f)).collect(),
            a_out: be.zeros(b * h),
            out: be.zeros(b * d),
            dh: be.zeros(b * h),
            dtmp_h: be.zeros(b * h),
            dtmp_h2: be.zeros(b * h),
            dtmp_f: be.zeros(b * f),
            dtmp_f2: be.zeros(b * f),
            dx: None,
        }
    }

    /// [`Mlp::activations`] whose backward pass also computes the gradient w.r.t. the network
    /// input ([`Activations::input_grad`]): vector–Jacobian products for the likelihood.
    pub fn activations_with_input_grad<B: Backend>(&self, be: &B, batch: usize) -> Activations<B> {
        let mut acts = self.activations(be, batch);
        acts.dx = Some(be.zeros(batch * self.config.data_dim));
        acts
    }

    /// Forward pass: `x` (b×d), time values (b), class ids (b, as f32; ignored when
    /// unconditional) → `acts.out` (b×d).
    pub fn forward<B: Backend>(
        &self,
        be: &B,
        params: &B::Buf,
        acts: &mut Activations<B>,
        x: &[f32],
        t: &[f32],
        classes: &[f32],
    ) {
        be.write(&mut acts.x, x);
        self.forward_filled(be, params, acts, t, classes);
    }

    /// [`Mlp::forward`] with the input already in `acts.x` (written there on the device, e.g. by
    /// the noising operation, so it never travels through the host).
    pub(crate) fn forward_filled<B: Backend>(
        &self,
        be: &B,
        params: &B::Buf,
        acts: &mut Activations<B>,
        t: &[f32],
        classes: &[f32],
    ) {
        let c = &self.config;
        let l = &self.layout;
        let (b, d, h, f, e) = (acts.batch, c.data_dim, c.hidden, c.ff, c.temb);
        be.write(&mut acts.t, t);
        be.write(&mut acts.c, classes);
        // Stem: input projection + time MLP + class embedding.
        be.linear_fwd(
            linear(l.w_in, l.b_in, b, d, h),
            params,
            &acts.x,
            &mut acts.h_in[0],
        );
        be.time_embed(&acts.t, &mut acts.temb, e, MAX_PERIOD);
        be.linear_act_fwd(
            Activation::Silu,
            linear(l.w_t1, l.b_t1, b, e, h),
            params,
            &acts.temb,
            &mut acts.u1,
            &mut acts.a1,
        );
        // The layer norm that reads the residual stream entering block k (k = blocks: the
        // head's), fused into the operation that writes that stream.
        let ln_at = |k: usize| {
            let (gamma, beta) = match l.blocks.get(k) {
                Some(blk) => (blk.ln_g.offset, blk.ln_b.offset),
                None => (l.ln_g.offset, l.ln_b.offset),
            };
            LnArgs {
                gamma,
                beta,
                eps: LN_EPS,
            }
        };
        if let Some(table) = l.table {
            be.embed_add(params, table.offset, &acts.c, &mut acts.h_in[0], h);
        }
        // tproj = h_0 + W_t2·a1 + b_t2, then swapped in as h_0 (tproj is not needed later).
        be.linear_residual_ln_fwd(
            linear(l.w_t2, l.b_t2, b, h, h),
            ln_at(0),
            params,
            &acts.a1,
            &acts.h_in[0],
            ResidualLnOut {
                y: &mut acts.tproj,
                normed: &mut acts.ln[0],
                stats: &mut acts.stats[0],
            },
        );
        std::mem::swap(&mut acts.h_in[0], &mut acts.tproj);
        // Residual blocks.
        for (k, blk) in l.blocks.iter().enumerate() {
            be.linear_act_fwd(
                c.act,
                linear(blk.w1, blk.b1, b, h, f),
                params,
                &acts.ln[k],
                &mut acts.z[k],
                &mut acts.a[k],
            );
            // h_{k+1} = h_k + W2·a + b2, and its layer norm.
            let (lo, hi) = acts.h_in.split_at_mut(k + 1);
            be.linear_residual_ln_fwd(
                linear(blk.w2, blk.b2, b, f, h),
                ln_at(k + 1),
                params,
                &acts.a[k],
                &lo[k],
                ResidualLnOut {
                    y: &mut hi[0],
                    normed: &mut acts.ln[k + 1],
                    stats: &mut acts.stats[k + 1],
                },
            );
        }
        // Head.
        let n = c.blocks;
        be.act_fwd(c.act, &acts.ln[n], &mut acts.a_out);
        be.linear_fwd(
            linear(l.w_out, l.b_out, b, h, d),
            params,
            &acts.a_out,
            &mut acts.out,
        );
    }

    /// Backward pass from `dout` (b×d, the loss gradient w.r.t. `acts.out`), accumulating into
    /// `grads` (same layout as the parameters; the caller zeroes it per step).
    pub fn backward<B: Backend>(
        &self,
        be: &B,
        params: &B::Buf,
        acts: &mut Activations<B>,
        dout: &B::Buf,
        grads: &mut B::Buf,
    ) {
        let c = &self.config;
        let l = &self.layout;
        let (b, d, h, f, e) = (acts.batch, c.data_dim, c.hidden, c.ff, c.temb);
        let n = c.blocks;
        let ln = |g: Slot, bt: Slot| LnArgs {
            gamma: g.offset,
            beta: bt.offset,
            eps: LN_EPS,
        };
        // Head: out = W_out·act(LN(h_n)) + b_out.
        be.linear_act_bwd(
            linear(l.w_out, l.b_out, b, h, d),
            ParamGrads { params, grads },
            Activated {
                act: c.act,
                z: &acts.ln[n],
                a: &acts.a_out,
            },
            dout,
            &mut acts.dtmp_h,
            &mut acts.dtmp_h2,
        );
        be.fill_zero(&mut acts.dh);
        be.layernorm_bwd(
            ln(l.ln_g, l.ln_b).rows(b, h),
            ParamGrads { params, grads },
            &acts.h_in[n],
            &acts.stats[n],
            &acts.dtmp_h2,
            &mut acts.dh,
        );
        // Blocks, last first: h_{k+1} = h_k + r_k, so dh flows to h_k unchanged plus through r_k.
        for k in (0..n).rev() {
            let blk = &l.blocks[k];
            be.linear_act_bwd(
                linear(blk.w2, blk.b2, b, f, h),
                ParamGrads { params, grads },
                Activated {
                    act: c.act,
                    z: &acts.z[k],
                    a: &acts.a[k],
                },
                &acts.dh,
                &mut acts.dtmp_f,
                &mut acts.dtmp_f2,
            );
            be.linear_bwd(
                linear(blk.w1, blk.b1, b, h, f),
                ParamGrads { params, grads },
                &acts.ln[k],
                &acts.dtmp_f2,
                Some(&mut acts.dtmp_h),
            );
            // dh += LN_bwd(dtmp_h)
            be.layernorm_bwd(
                ln(blk.ln_g, blk.ln_b).rows(b, h),
                ParamGrads { params, grads },
                &acts.h_in[k],
                &acts.stats[k],
                &acts.dtmp_h,
                &mut acts.dh,
            );
        }
        // Stem: h_0 = W_in·x + b_in + tproj + E[c].
        be.linear_bwd(
            linear(l.w_in, l.b_in, b, d, h),
            ParamGrads { params, grads },
            &acts.x,
            &acts.dh,
            acts.dx.as_mut(),
        );
        if let Some(table) = l.table {
            be.embed_add_bwd(&acts.c, &acts.dh, grads, table.offset, table.rows, h);
        }
        be.linear_act_bwd(
            linear(l.w_t2, l.b_t2, b, h, h),
            ParamGrads { params, grads },
            Activated {
                act: Activation::Silu,
                z: &acts.u1,
                a: &acts.a1,
            },
            &acts.dh,
            &mut acts.dtmp_h,
            &mut acts.dtmp_h2,
        );
        be.linear_bwd(
            linear(l.w_t1, l.b_t1, b, e, h),
            ParamGrads { params, grads },
            &acts.temb,
            &acts.dtmp_h2,
            None,
        );
    }
}

/// The layer with weights at `w` and bias at `bias`, over `b` rows of `i` inputs to `o`
/// outputs.
fn linear(w: Slot, bias: Slot, b: usize, i: usize, o: usize) -> Linear {
    Linear {
        w: w.offset,
        bias: Some(bias.offset),
        b,
        i,
        o,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::Cpu;

    fn config(classes: usize, act: Activation) -> MlpConfig {
        MlpConfig {
            data_dim: 3,
            hidden: 8,
            ff: 12,
            temb: 6,
            blocks: 2,
            classes,
            act,
        }
    }

    /// Loss = Σ out·w for a fixed random w, so dL/dout = w.
    fn loss(
        m: &Mlp,
        p: &[f32],
        acts: &mut Activations<Cpu>,
        x: &[f32],
        t: &[f32],
        c: &[f32],
        w: &[f32],
    ) -> f64 {
        m.forward(&Cpu, &p.to_vec(), acts, x, t, c);
        acts.out
            .iter()
            .zip(w)
            .map(|(&o, &w)| o as f64 * w as f64)
            .sum()
    }

    /// Finite differences in f32 are noisy: central differences with step 1e-2 on a network
    /// whose outputs are O(1) have truncation error ~1e-4 and rounding error ~1e-5, so compare
    /// with a relative-plus-absolute tolerance.
    const FD_STEP: f32 = 1e-2;
    const FD_TOL: f64 = 2e-2;

    #[test]
    fn gradients_match_finite_differences() {
        for (classes, act) in [
            (0, Activation::Silu),
            (3, Activation::GeluTanh),
            (2, Activation::Relu),
        ] {
            let cfg = config(classes, act);
            let m = Mlp::new(cfg);
            let mut p = cfg.init(7);
            // Give biases and LN parameters non-trivial values so their gradients are tested too.
            for (i, v) in p.iter_mut().enumerate() {
                *v += 0.05 * ((i * 37 % 11) as f32 - 5.0) / 5.0;
            }
            let b = 4;
            let x: Vec<f32> = (0..b * 3)
                .map(|i| ((i * 13 % 7) as f32 - 3.0) / 3.0)
                .collect();
            let t: Vec<f32> = vec![3.0, 250.0, 640.0, 999.0];
            let c: Vec<f32> = (0..b).map(|i| (i % (classes + 1).max(1)) as f32).collect();
            let w: Vec<f32> = (0..b * 3)
                .map(|i| ((i * 5 % 9) as f32 - 4.0) / 4.0)
                .collect();
            let mut acts = m.activations(&Cpu, b);
            m.forward(&Cpu, &p, &mut acts, &x, &t, &c);
            let mut grads = vec![0.0f32; p.len()];
            m.backward(&Cpu, &p, &mut acts, &w, &mut grads);
            let mut worst = 0.0f64;
            // Every parameter of this small network.
            for i in 0..p.len() {
                if classes == 2 && act == Activation::Relu {
                    // ReLU kinks make finite differences unreliable; check a sample only.
                    if i % 7 != 0 {
                        continue;
                    }
                }
                let mut pp = p.clone();
                pp[i] += FD_STEP;
                let lp = loss(&m, &pp, &mut acts, &x, &t, &c, &w);
                pp[i] -= 2.0 * FD_STEP;
                let lm = loss(&m, &pp, &mut acts, &x, &t, &c, &w);
                let fd = (lp - lm) / (2.0 * FD_STEP as f64);
                let err = (fd - grads[i] as f64).abs() / (1.0 + fd.abs());
                worst = worst.max(err);
                assert!(
                    err < FD_TOL,
                    "param {i}: backward {} vs finite difference {fd} ({act:?})",
                    grads[i]
                );
            }
            assert!(worst > 0.0);
        }
    }

    /// Forward and backward give the same bits on 1, 2 and 3 threads. Under `cfg(test)` the
    /// CPU backend splits even these small shapes across threads, so every parallel path is
    /// taken (products, fused epilogues, layer norms, the time embedding), with row counts that
    /// are not multiples of the row-block size.
    #[test]
    fn input_gradient_matches_finite_differences() {
        let cfg = config(3, Activation::Silu);
        let m = Mlp::new(cfg);
        let p = cfg.init(11);
        let b = 4;
        let x: Vec<f32> = (0..b * 3)
            .map(|i| ((i * 13 % 7) as f32 - 3.0) / 3.0)
            .collect();
        let t: Vec<f32> = vec![3.0, 250.0, 640.0, 999.0];
        let c: Vec<f32> = vec![0.0, 1.0, 2.0, 3.0];
        let w: Vec<f32> = (0..b * 3)
            .map(|i| ((i * 5 % 9) as f32 - 4.0) / 4.0)
            .collect();
        let mut acts = m.activations_with_input_grad(&Cpu, b);
        m.forward(&Cpu, &p, &mut acts, &x, &t, &c);
        let mut grads = vec![0.0f32; p.len()];
        m.backward(&Cpu, &p, &mut acts, &w, &mut grads);
        let dx = acts.input_grad().expect("allocated").clone();
        assert!(m.activations(&Cpu, b).input_grad().is_none());
        for i in 0..x.len() {
            let mut xp = x.clone();
            xp[i] += FD_STEP;
            let lp = loss(&m, &p, &mut acts, &xp, &t, &c, &w);
            xp[i] -= 2.0 * FD_STEP;
            let lm = loss(&m, &p, &mut acts, &xp, &t, &c, &w);
            let fd = (lp - lm) / (2.0 * FD_STEP as f64);
            let err = (fd - dx[i] as f64).abs() / (1.0 + fd.abs());
            assert!(
                err < FD_TOL,
                "x[{i}]: backward {} vs finite difference {fd}",
                dx[i]
            );
        }
        assert!(dx.iter().any(|&v| v != 0.0));
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let small = MlpConfig {
            data_dim: 16,
            hidden: 64,
            ff: 96,
            temb: 16,
            blocks: 2,
            classes: 4,
            act: Activation::Silu,
        };
        let wider = MlpConfig {
            data_dim: 16,
            hidden: 128,
            ff: 160,
            temb: 32,
            blocks: 1,
            classes: 4,
            act: Activation::Silu,
        };
        for (cfg, b) in [(small, 67), (wider, 131)] {
            let m = Mlp::new(cfg);
            let p = cfg.init(3);
            let x: Vec<f32> = (0..b * 16)
                .map(|i| ((i * 31 % 17) as f32 - 8.0) / 8.0)
                .collect();
            let t: Vec<f32> = (0..b).map(|i| (i * 13 % 1000) as f32).collect();
            let c: Vec<f32> = (0..b).map(|i| (i % 5) as f32).collect();
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                pool.install(|| {
                    let mut acts = m.activations(&Cpu, b);
                    m.forward(&Cpu, &p, &mut acts, &x, &t, &c);
                    let mut grads = vec![0.0f32; p.len()];
                    let dout = acts.out.clone();
                    m.backward(&Cpu, &p, &mut acts, &dout, &mut grads);
                    (acts.out.clone(), grads)
                })
            };
            let one = run(1);
            assert!(one.1.iter().any(|&g| g != 0.0));
            assert_eq!(one, run(2), "batch {b}");
            assert_eq!(one, run(3), "batch {b}");
        }
    }
}
