#!/usr/bin/env python3
"""Time to draw 10k points from a 2-D VP score model (Song et al. 2021) by 500 reverse-time
Euler-Maruyama steps, the score-sde experiment's sampler: x <- x + [f - g^2 s](-dt) + g sqrt(dt) z
with f = -beta(t) x / 2, g = sqrt(beta(t)), beta from 0.1 to 20, s = -net(x, t) / sigma_t and
net = [x, sin/cos(2 pi t W)] -> 3 x 128 SiLU -> 2 (16 Fourier features, random weights: the
timing does not depend on them). stochlab's `bench score-sampling` runs its own sampler
(sde::sample::Sampler with sde::score::MlpScore) on the same sizes. --compare alternates the two
in one bench run.

Target (issue 18): stochlab at least as fast as Python PyTorch (speed ratio >= 1.0).
"""
import argparse
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import alternate, verdict  # noqa: E402

TARGET = 1.0
BETA_MIN, BETA_MAX, EPS = 0.1, 20.0, 1e-3


def reference(points, steps, warmup, device):
    import torch
    from torch import nn
    torch.manual_seed(0)
    w = torch.randn(16, device=device)
    layers, width = [], 2 + 32
    for h in (128, 128, 128):
        layers += [nn.Linear(width, h), nn.SiLU()]
        width = h
    net = nn.Sequential(*layers, nn.Linear(width, 2)).to(device)

    def score(x, t):
        proj = t[:, None] * w[None, :] * (2 * math.pi)
        h = net(torch.cat([x, proj.sin(), proj.cos()], 1))
        int_beta = t * BETA_MIN + t.square() * (0.5 * (BETA_MAX - BETA_MIN))
        std = (1 - torch.exp(-int_beta)).sqrt()
        return -h / std[:, None]

    def sample(x, n):
        dt = -1.0 / n
        x_mean = x
        for i in range(n):
            ti = 1.0 + (EPS - 1.0) * i / (n - 1)
            t = torch.full((x.shape[0],), ti, device=device)
            beta = t * (BETA_MAX - BETA_MIN) + BETA_MIN
            f = x * (-0.5 * beta)[:, None]
            g = beta.sqrt()[:, None]
            x_mean = x + (f - g.square() * score(x, t)) * dt
            x = x_mean + g * math.sqrt(-dt) * torch.randn_like(x)
        return x_mean

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    with torch.no_grad():
        x_t = torch.randn(points, 2, device=device)
        if warmup >= 2:
            sample(x_t, warmup)
        sync()
        start = time.perf_counter()
        x = sample(x_t, steps)
        sync()
        secs = time.perf_counter() - start
    return {"bench": "score-sampling", "impl": "python", "device": device, "points": points,
            "em_steps": steps, "seconds": secs, "mean_abs": float(x.abs().mean()),
            "threads": torch.get_num_threads()}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--points", type=int, default=10000)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--device", default="cpu")
    p.add_argument("--compare", action="store_true")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--bin", default="target/release/stochlab")
    args = p.parse_args()
    if not args.compare:
        print(json.dumps(reference(args.points, args.steps, args.warmup, args.device)))
        return
    sizes = ["--steps", str(args.steps), "--warmup", str(args.warmup)]
    ours, ref = alternate(
        [args.bin, "--device", args.device, "bench", "score-sampling", "--batch-size", str(args.points), *sizes],
        [sys.executable, __file__, "--points", str(args.points), *sizes, "--device", args.device],
        args.runs, "seconds")
    ratio = verdict(f"score-sde sampling {args.points} points x {args.steps} EM steps on {args.device} (seconds)",
                    ours, ref, TARGET, "s", higher_is_better=False)
    print(json.dumps({"bench": "score-sampling", "device": args.device, "stochlab": ours, "python": ref,
                      "speed_ratio_stochlab_over_python": ratio}))


if __name__ == "__main__":
    main()
