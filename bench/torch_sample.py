#!/usr/bin/env python3
"""PyTorch (CPU) twin of host-trainer/examples/sample_throughput.rs: batched DDPM sampling.

The network is torch_train.py's `Net` (imported, not copied), randomly initialised with a fixed
seed; weights do not change the work. Sampling is microdiff's `ddpm:S` program
(host-trainer/src/sampler/ancestral.rs on the grid of sampler/mod.rs), with the same timesteps
and the same coefficients, computed here in float64 with the same formulas and cast to f32:

    T = 1000 training steps, beta_t = 1e-4 + (0.02 - 1e-4) (t - 1)/(T - 1), t = 1..T
    abar_0 = 1, abar_t = abar_{t-1} (1 - beta_t)                  (running product, as Rust)
    tau_i = round(i T / S), i = 1..S     ("trailing" spacing; round half away from zero)
    grid  = tau_S, ..., tau_1, 0         step i goes from t = grid[i] to s = grid[i + 1]
    alpha = sqrt(abar), sigma = sqrt(1 - abar) at each grid point
    beta_{t|s} = beta_t if t - s == 1 else 1 - (alpha_t / alpha_s)^2
    a = sqrt(1 - beta_{t|s})
    x <- (1/a) x - beta_{t|s}/(sigma_t a) eps(x, t - 1, c) + sqrt(beta_{t|s}) z   (no z on the last step)

starting from x = z ~ N(0, I). The network sees the time value t - 1 (0-based step). With
S = 100 the grid is 1000, 990, ..., 10, 0: the network sees 999, 989, ..., 9.

For the conditional shape the class of sample i is i % 10; one evaluation per step (no
guidance). Noise comes from torch.randn (microdiff's Philox stream differs; the work does not).

Usage: torch_sample.py --shape toy|digits [--samples N] [--steps S] [--batch B] [--threads T]
Prints one JSON object with the same fields as the Rust example.
"""

import argparse
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_train import SHAPES, Net, peak  # noqa: E402

TRAIN_STEPS = 1000
BETA_START, BETA_END = 1e-4, 0.02


def f32(v):
    """`v` rounded to the nearest float32, as a Python float (exactly representable)."""
    return torch.tensor(v, dtype=torch.float32).item()


def ddpm_program(steps, big_t=TRAIN_STEPS):
    """microdiff's `ddpm:steps` program (variance beta, no clipping) as a list of
    (time value, c_x, c_eps, sigma) per step, all f32 values; sigma is 0.0 on the last step.

    Every float64 operation is the one Rust performs (schedule.rs `BetaSchedule::beta`,
    `Process::alpha_bars`; sampler/mod.rs `ddpm_timesteps` (Trailing), `grid`, `Path::new`;
    ancestral.rs `build`), so the f32 coefficients are the blob's bit for bit.
    """
    if not 1 <= steps <= big_t:
        raise SystemExit(f"--steps must be in 1..{big_t}")
    betas = [BETA_START + (BETA_END - BETA_START) * (t - 1) / (big_t - 1) for t in range(1, big_t + 1)]
    abar = [1.0]
    for b in betas:
        abar.append(abar[-1] * (1.0 - b))
    # Rust's f64::round rounds half away from zero (Python's round() rounds half to even);
    # the values are positive, and v - floor(v) is exact.
    taus = []
    for i in range(1, steps + 1):
        v = (i * big_t) / steps
        k = math.floor(v)
        taus.append(k + 1 if v - k >= 0.5 else k)
    grid = taus[::-1] + [0]
    alpha = [math.sqrt(abar[t]) for t in grid]
    sigma = [math.sqrt(1.0 - abar[t]) for t in grid]
    prog = []
    for i in range(steps):
        t, s = grid[i], grid[i + 1]
        if t - s == 1:
            beta = betas[t - 1]
        else:
            r = alpha[i] / alpha[i + 1]
            beta = 1.0 - r * r
        a = math.sqrt(1.0 - beta)
        c_x = 1.0 / a
        c_eps = -beta / sigma[i] / a
        noise = math.sqrt(beta) if i + 1 < steps else 0.0
        prog.append((f32(t - 1.0), f32(c_x), f32(c_eps), f32(noise)))
    return prog


def macs_per_eval(d, h, f, e, blocks):
    """Multiply-accumulates of one network evaluation: sum of in*out over the linear layers
    (input, both time-embedding layers, the blocks, the head); the class table is a gather."""
    return d * h + e * h + h * h + blocks * 2 * h * f + h * d


def sample(net, prog, n, batch, d, classes, steps=None):
    """Draws `n` samples in batches of `batch` with the first `steps` steps of `prog` (all by
    default); returns the last batch's x (the samples' values are not otherwise used)."""
    prog = prog if steps is None else prog[:steps]
    x = None
    for start in range(0, n, batch):
        b = min(batch, n - start)
        c = torch.arange(start, start + b) % classes if classes > 0 else None
        x = torch.randn(b, d)
        z = torch.empty(b, d)
        tv = torch.empty(b)
        for time_value, c_x, c_eps, noise in prog:
            tv.fill_(time_value)
            eps = net(x, tv, c)
            x.mul_(c_x).add_(eps, alpha=c_eps)
            if noise != 0.0:
                torch.randn(b, d, out=z)
                x.add_(z, alpha=noise)
    return x


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", choices=sorted(SHAPES), required=True)
    p.add_argument("--samples", type=int, default=2000)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch", type=int, default=0, help="samples per batch (default: all)")
    p.add_argument("--warmup-steps", type=int, default=5, help="steps of the untimed batch")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    args = p.parse_args()
    if args.samples < 1:
        raise SystemExit("--samples must be >= 1")
    batch = args.batch if args.batch > 0 else args.samples
    batch = min(batch, args.samples)

    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    d, h, f, e, nblocks, classes, _, _ = SHAPES[args.shape]
    net = Net(d, h, f, e, nblocks, classes).eval()
    n_params = sum(q.numel() for q in net.parameters())
    prog = ddpm_program(args.steps)

    with torch.inference_mode():
        # One untimed batch of a few steps: thread pool start-up, allocator, first-call costs.
        sample(net, prog, batch, batch, d, classes, steps=max(1, min(args.warmup_steps, args.steps)))
        start = time.perf_counter()
        x = sample(net, prog, args.samples, batch, d, classes)
        seconds = time.perf_counter() - start
    if not bool(torch.isfinite(x).all()):
        raise SystemExit("samples are not finite")

    evals = args.samples * args.steps
    macs = macs_per_eval(d, h, f, e, nblocks)
    gflops = 2.0 * macs * evals / seconds / 1e9
    model, cores, mhz, isa, fpc = peak()
    used = min(args.threads, cores)
    peak_threads = used * mhz / 1000.0 * fpc
    print(
        json.dumps(
            {
                "impl": "torch",
                "torch_version": torch.__version__,
                "shape": args.shape,
                "threads": args.threads,
                "params": n_params,
                "samples": args.samples,
                "batch": batch,
                "steps": args.steps,
                "evaluations": evals,
                "seconds": seconds,
                "samples_per_sec": args.samples / seconds,
                "evals_per_sec": evals / seconds,
                "macs_per_eval": macs,
                "gflops_per_sec": gflops,
                "cpu_model": model,
                "cpu_cores": cores,
                "cpu_mhz": mhz,
                "peak_assumption": isa,
                "peak_gflops_threads": peak_threads,
                "pct_of_peak": 100.0 * gflops / peak_threads if peak_threads > 0 else None,
            }
        )
    )


if __name__ == "__main__":
    main()
