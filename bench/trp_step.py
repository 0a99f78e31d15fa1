#!/usr/bin/env python3
"""Time for the SVD work of one TRP step (Xu et al. 2020) on ResNet-20: for each of the 18
block convs, the spatial (C*H) x (N*W) layout, a thin torch.linalg.svd, the energy-0.9
truncation and the nuclear subgradient U_k V_k^T back in the conv's shape. stochlab's
`bench trp-step` does the same through libtorch. --compare alternates the two in one bench run.

Target (issue 22): stochlab at least as fast as Python (speed ratio >= 1.0).
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import alternate, verdict  # noqa: E402

TARGET = 1.0


def weights(device):
    import torch
    torch.manual_seed(0)
    out, c_in = [], 16
    for width in (16, 32, 64):
        for _ in range(3):
            out.append(torch.randn(width, c_in, 3, 3, device=device) * 0.1)
            out.append(torch.randn(width, width, 3, 3, device=device) * 0.1)
            c_in = width
    return out


def step(ws, energy=0.9):
    import torch
    ranks = []
    for w in ws:
        n, c, h, k = w.shape
        m = w.permute(1, 2, 0, 3).reshape(c * h, n * k)
        u, s, vh = torch.linalg.svd(m, full_matrices=False)
        e = s.double().square()
        cum = e.cumsum(-1)
        mask = ((cum - e) < energy * cum[-1:]).to(s.dtype)
        back = lambda x: x.reshape(c, h, n, k).permute(2, 0, 1, 3).contiguous()  # noqa: E731
        _low = back((u * (s * mask)) @ vh)
        _sub = back((u * mask) @ vh)
        ranks.append(mask.sum())
    return torch.stack(ranks)


def reference(steps, warmup, device):
    import torch
    with torch.no_grad():
        ws = weights(device)
        for _ in range(warmup):
            step(ws)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        last = None
        for _ in range(steps):
            last = step(ws)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        secs = time.perf_counter() - start
    return {"bench": "trp-step", "impl": "python", "device": device, "layers": len(ws),
            "seconds_per_step": secs / steps, "rank_sum": int(last.sum()), "threads": torch.get_num_threads()}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--compare", action="store_true")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--bin", default="target/release/stochlab")
    args = p.parse_args()
    if not args.compare:
        print(json.dumps(reference(args.steps, args.warmup, args.device)))
        return
    ours, ref = alternate(
        [args.bin, "--device", args.device, "bench", "trp-step", "--steps", str(args.steps), "--warmup", str(args.warmup)],
        [sys.executable, __file__, "--steps", str(args.steps), "--warmup", str(args.warmup), "--device", args.device],
        args.runs, "seconds_per_step")
    ratio = verdict(f"trp-step ResNet-20 SVDs on {args.device} (seconds/step)", ours, ref, TARGET, "s",
                    higher_is_better=False)
    print(json.dumps({"bench": "trp-step", "device": args.device, "stochlab": ours, "python": ref,
                      "speed_ratio_stochlab_over_python": ratio}))


if __name__ == "__main__":
    main()
