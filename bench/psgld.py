#!/usr/bin/env python3
"""Time for 4 chains x 2000 pSGLD steps (Li et al. 2016's preconditioned SGLD, as in
sgmcmc-potential, Thaler et al. 2023) on an energy model trained by force matching: a 2-32-32-1
tanh MLP E(x); a step draws a mini-batch of 32 of 500 configurations, forces f = -dE/dx by
autograd with create_graph (the double backward), U = N/(2 B sigma^2) sum |f - y|^2 + |theta|^2 / 2,
then the RMSprop-preconditioned Langevin update theta -= eps G grad + sqrt(2 eps G) xi with
G = 1/(lambda + sqrt(v)), v = alpha v + (1 - alpha) grad^2 (alpha 0.9, lambda 1e-5) and the
polynomially decaying step 5e-3 -> 5e-4. The reference is the loop a PyTorch user writes: one
nn.Module per chain, stepped in turn. stochlab's `bench psgld` runs the four chains as one
batched [4, P] parameter matrix through bayes::samplers::sg_sample. --compare alternates the two.

Target (issue 19): stochlab at least 1.5x faster than the Python loop.
"""
import argparse
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import alternate, verdict  # noqa: E402

TARGET = 1.5
CHAINS, N, FORCE_VAR = 4, 500, 0.01
FIRST, LAST, POWER, ALPHA, LAM = 5e-3, 5e-4, 0.33, 0.9, 1e-5


def step_size(t, steps):
    n = steps - 1
    r = (LAST / FIRST) ** (1.0 / POWER)
    b = n * r / (1.0 - r)
    return FIRST * (b / (b + t)) ** POWER


def reference(steps, warmup, batch, device):
    import torch
    from torch import nn
    torch.manual_seed(0)
    x = torch.randn(N, 2, device=device)
    y = torch.randn(N, 2, device=device)
    nets = [nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(),
                          nn.Linear(32, 1)).to(device) for _ in range(CHAINS)]

    def run(steps):
        vs = [[torch.ones_like(p) for p in net.parameters()] for net in nets]
        for t in range(steps):
            eps = step_size(t, steps)
            for net, v in zip(nets, vs):
                idx = torch.randint(N, (batch,), device=device)
                xb = x[idx].requires_grad_(True)
                e = net(xb).sum()
                f = -torch.autograd.grad(e, xb, create_graph=True)[0]
                params = list(net.parameters())
                u = (f - y[idx]).square().sum() * (N / (batch * 2.0 * FORCE_VAR)) \
                    + sum(p.square().sum() for p in params) * 0.5
                grads = torch.autograd.grad(u, params)
                with torch.no_grad():
                    for p, g, vv in zip(params, grads, v):
                        vv.mul_(ALPHA).add_(g.square(), alpha=1.0 - ALPHA)
                        gm = 1.0 / (vv.sqrt() + LAM)
                        p.add_(-eps * gm * g + (2.0 * eps * gm).sqrt() * torch.randn_like(p))
        return float(u)

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    if warmup >= 2:
        run(warmup)
    sync()
    start = time.perf_counter()
    last = run(steps)
    sync()
    return {"bench": "psgld", "impl": "python", "device": device, "chains": CHAINS, "steps": steps,
            "batch": batch, "seconds": time.perf_counter() - start, "last_potential": last,
            "threads": torch.get_num_threads()}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--compare", action="store_true")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--bin", default="target/release/stochlab")
    args = p.parse_args()
    if not args.compare:
        print(json.dumps(reference(args.steps, args.warmup, args.batch_size, args.device)))
        return
    sizes = ["--steps", str(args.steps), "--warmup", str(args.warmup), "--batch-size", str(args.batch_size)]
    ours, ref = alternate(
        [args.bin, "--device", args.device, "bench", "psgld", *sizes],
        [sys.executable, __file__, *sizes, "--device", args.device],
        args.runs, "seconds")
    ratio = verdict(f"pSGLD {CHAINS} chains x {args.steps} steps on {args.device} (seconds)",
                    ours, ref, TARGET, "s", higher_is_better=False)
    print(json.dumps({"bench": "psgld", "device": args.device, "stochlab": ours, "python": ref,
                      "speed_ratio_stochlab_over_python": ratio}))


if __name__ == "__main__":
    main()
