#!/usr/bin/env python3
"""Time for the SVD work of one TRP step (Xu et al. 2020) on ResNet-20: for each of the 18
block convs, the spatial (C*H) x (N*W) layout, a thin torch.linalg.svd, the energy-0.9
truncation and the nuclear subgradient U_k V_k^T back in the conv's shape. stochlab's
`bench trp-step` does the same through libtorch. --compare alternates the two in one bench run.

Target (issue 22): stochlab at least as fast as Python (speed ratio >= 1.0).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import step_bench, time_steps  # noqa: E402

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
        secs, last = time_steps(lambda: step(ws), steps, warmup, device)
    return {"bench": "trp-step", "impl": "python", "device": device, "layers": len(ws),
            "seconds_per_step": secs, "rank_sum": int(last.sum()), "threads": torch.get_num_threads()}


if __name__ == "__main__":
    step_bench("trp-step", __doc__, __file__, reference, "trp-step ResNet-20 SVDs",
               lambda device: TARGET, steps=50, warmup=5)
