#!/usr/bin/env python3
"""Time per Adam step over a ResNet-20's parameters: stochlab's optimizer (flat buffers) vs
torch.optim.Adam with its defaults (foreach where torch enables it by default), fixed random
gradients, optimizer step only. --compare alternates the two in one bench run.

Target (issue 4): stochlab's time per step <= 1.1x Python's.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import step_bench, time_steps  # noqa: E402

TARGET = 1 / 1.1  # speed ratio: python_time / stochlab_time >= 1/1.1


def resnet20_params(device):
    """The parameter shapes of He et al.'s ResNet-20 (option A shortcuts), as stochlab builds it."""
    import torch
    shapes = [(16, 3, 3, 3), (16,), (16,)]
    c_in = 16
    for width in (16, 32, 64):
        for _ in range(3):
            shapes += [(width, c_in, 3, 3), (width,), (width,), (width, width, 3, 3), (width,), (width,)]
            c_in = width
    shapes += [(10, 64), (10,)]
    return [torch.randn(s, device=device, requires_grad=True) for s in shapes]


def reference(steps, warmup, device):
    import torch
    torch.manual_seed(0)
    params = resnet20_params(device)
    for p in params:
        p.grad = torch.randn_like(p)
    opt = torch.optim.Adam(params, lr=1e-3)
    secs, _ = time_steps(opt.step, steps, warmup, device)
    return {"bench": "adam-step", "impl": "python", "device": device, "tensors": len(params),
            "params": sum(p.numel() for p in params), "seconds_per_step": secs,
            "threads": torch.get_num_threads()}


if __name__ == "__main__":
    step_bench("adam-step", __doc__, __file__, reference, "adam-step ResNet-20",
               lambda device: TARGET if device == "cpu" else None, steps=500, warmup=50)
