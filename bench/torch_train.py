#!/usr/bin/env python3
"""PyTorch (CPU) twin of host-trainer/examples/train_throughput.rs.

The same residual-MLP diffusion network, the same batch, the same training step:

    h   = W_in x + b_in + W_t2 silu(W_t1 sinusoidal(t) + b_t1) + b_t2 (+ E[class])
    h   = h + W_2 silu(W_1 LN(h) + b_1) + b_2            x blocks
    out = W_out silu(LN(h)) + b_out

step = draw a batch of examples, t ~ U{1..1000} (the network sees t - 1), eps ~ N(0, I),
x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps (linear betas 1e-4..0.02), labels replaced by the null
class with probability cfg_dropout, MSE against eps, backward, clip_grad_norm_(1.0), AdamW
(lr 2e-3 with microdiff's warm-up + cosine schedule, betas 0.9/0.999, eps 1e-8, no weight
decay: microdiff's defaults), EMA of the parameters (decay min(0.999, (1+s)/(10+s))), and
the loss read back every step (microdiff checks it is finite).

Usage: torch_train.py --shape toy|digits --steps N --threads T [--warmup W]
Prints one JSON object with the same fields as the Rust example.
"""

import argparse
import json
import math
import os
import time

import torch
from torch import nn

MAX_PERIOD = 10_000.0
LN_EPS = 1e-5

# name: (data_dim, hidden, ff, temb, blocks, classes, batch, cfg_dropout)
SHAPES = {
    "toy": (2, 128, 256, 32, 3, 0, 128, 0.0),
    "digits": (64, 256, 512, 32, 3, 10, 256, 0.1),
}


class Block(nn.Module):
    def __init__(self, hidden, ff):
        super().__init__()
        self.ln = nn.LayerNorm(hidden, eps=LN_EPS)
        self.fc1 = nn.Linear(hidden, ff)
        self.fc2 = nn.Linear(ff, hidden)
        self.act = nn.SiLU()

    def forward(self, h):
        return h + self.fc2(self.act(self.fc1(self.ln(h))))


class Net(nn.Module):
    def __init__(self, data_dim, hidden, ff, temb, blocks, classes):
        super().__init__()
        self.inp = nn.Linear(data_dim, hidden)
        self.t1 = nn.Linear(temb, hidden)
        self.t2 = nn.Linear(hidden, hidden)
        self.table = nn.Embedding(classes + 1, hidden) if classes > 0 else None
        self.blocks = nn.ModuleList(Block(hidden, ff) for _ in range(blocks))
        self.ln = nn.LayerNorm(hidden, eps=LN_EPS)
        self.out = nn.Linear(hidden, data_dim)
        self.act = nn.SiLU()
        # kernels/src/embed.rs: freq_i = exp(-ln(max_period) * i / half), [sin(t f), cos(t f)].
        half = temb // 2
        i = torch.arange(half, dtype=torch.float32)
        self.register_buffer("freqs", torch.exp(-math.log(MAX_PERIOD) * i / half))

    def forward(self, x, t, c):
        a = t[:, None] * self.freqs[None, :]
        temb = torch.cat([torch.sin(a), torch.cos(a)], dim=1)
        h = self.inp(x) + self.t2(nn.functional.silu(self.t1(temb)))
        if self.table is not None:
            h = h + self.table(c)
        for b in self.blocks:
            h = b(h)
        return self.out(self.act(self.ln(h)))


def lr_at(step, total, lr=2e-3, lr_min=1e-5, warmup=100):
    """microdiff's OptimConfig::lr_at."""
    if step <= warmup:
        return lr * step / warmup
    progress = min((step - warmup) / max(total - warmup, 1), 1.0)
    return lr_min + (lr - lr_min) * 0.5 * (1.0 + math.cos(math.pi * progress))


def flops_per_step(d, h, f, e, blocks, batch):
    """Matrix-product FLOPs of one step: 6*B*M - 2*B*(d*h + e*h) (see the Rust example)."""
    m = d * h + e * h + h * h + blocks * 2 * h * f + h * d
    return 6 * batch * m - 2 * batch * (d * h + e * h)


def peak():
    """Cores x reported MHz x flops/cycle, from /proc/cpuinfo (as the Rust example)."""
    model, mhz, flags, cores = "unknown", 0.0, set(), 0
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, val = line.partition(":")
                key, val = key.strip(), val.strip()
                if key == "processor":
                    cores += 1
                elif key == "model name" and model == "unknown":
                    model = val
                elif key == "cpu MHz" and mhz == 0.0:
                    mhz = float(val)
                elif key == "flags" and not flags:
                    flags = set(val.split())
    except OSError:
        pass
    if "avx512f" in flags:
        isa, fpc = "avx512f: 2 FMA units x 16 f32 lanes x 2 flops", 64.0
    elif "avx2" in flags and "fma" in flags:
        isa, fpc = "avx2+fma: 2 FMA units x 8 f32 lanes x 2 flops", 32.0
    else:
        isa, fpc = "sse: 2 units x 4 f32 lanes x 2 flops", 16.0
    return model, max(cores, 1), mhz, isa, fpc


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", choices=sorted(SHAPES), required=True)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument(
        "--adam",
        choices=["fused", "foreach", "loop"],
        default="fused",
        help="AdamW implementation (fused is the fastest on CPU)",
    )
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    d, h, f, e, nblocks, classes, batch, cfg_dropout = SHAPES[args.shape]
    net = Net(d, h, f, e, nblocks, classes)
    params = [q for q in net.parameters()]
    n_params = sum(q.numel() for q in params)
    kw = {"fused": True} if args.adam == "fused" else {"foreach": args.adam == "foreach"}
    opt = torch.optim.AdamW(params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, **kw)
    ema = [q.detach().clone() for q in params]

    # Seeded synthetic data of the shape's size (as the Rust example: 4096 normal rows).
    n = 4096
    data = torch.randn(n, d)
    labels = torch.randint(0, classes, (n,)) if classes > 0 else None
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    abar = torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1.0 - betas, 0)])
    sqrt_ab = abar.sqrt().float()
    sqrt_1mab = (1.0 - abar).sqrt().float()
    total = args.warmup + args.steps

    def step(s):
        with torch.no_grad():
            idx = torch.randint(0, n, (batch,))
            x0 = data[idx]
            t = torch.randint(1, 1001, (batch,))
            eps = torch.randn(batch, d)
            xt = sqrt_ab[t, None] * x0 + sqrt_1mab[t, None] * eps
            tv = (t - 1).float()
            if labels is not None:
                c = labels[idx]
                c = torch.where(torch.rand(batch) < cfg_dropout, torch.full_like(c, classes), c)
            else:
                c = None
        out = net(xt, tv, c)
        loss = nn.functional.mse_loss(out, eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
        for g in opt.param_groups:
            g["lr"] = lr_at(s, total)
        opt.step()
        with torch.no_grad():
            decay = min(0.999, (1.0 + s) / (10.0 + s))
            torch._foreach_lerp_(ema, params, 1.0 - decay)
        value = loss.item()
        if not math.isfinite(value):
            raise SystemExit(f"loss is not finite at step {s}")
        return value

    for s in range(1, args.warmup + 1):
        step(s)
    start = time.perf_counter()
    loss = 0.0
    for s in range(args.warmup + 1, total + 1):
        loss = step(s)
    seconds = time.perf_counter() - start

    flops = flops_per_step(d, h, f, e, nblocks, batch)
    gflops = flops * args.steps / seconds / 1e9
    model, cores, mhz, isa, fpc = peak()
    used = min(args.threads, cores)
    print(
        json.dumps(
            {
                "impl": "torch",
                "torch_version": torch.__version__,
                "adam": args.adam,
                "shape": args.shape,
                "threads": args.threads,
                "batch": batch,
                "params": n_params,
                "warmup": args.warmup,
                "steps": args.steps,
                "seconds": seconds,
                "ms_per_step": 1e3 * seconds / args.steps,
                "samples_per_sec": batch * args.steps / seconds,
                "flops_per_step": float(flops),
                "gflops_per_sec": gflops,
                "cpu_model": model,
                "cpu_cores": cores,
                "cpu_mhz": mhz,
                "peak_assumption": isa,
                "peak_gflops_machine": cores * mhz / 1000.0 * fpc,
                "peak_gflops_threads": used * mhz / 1000.0 * fpc,
                "pct_of_peak": 100.0 * gflops / (used * mhz / 1000.0 * fpc),
                "final_loss": loss,
            }
        )
    )


if __name__ == "__main__":
    main()
