#!/usr/bin/env python3
"""Time per Adam step over a ResNet-20's parameters: stochlab's optimizer (flat buffers) vs
torch.optim.Adam with its defaults (foreach where torch enables it by default), fixed random
gradients, optimizer step only. --compare alternates the two in one bench run.

Target (issue 4): stochlab's time per step <= 1.1x Python's.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import alternate, verdict  # noqa: E402

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
    for _ in range(warmup):
        opt.step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        opt.step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    secs = time.perf_counter() - start
    return {"bench": "adam-step", "impl": "python", "device": device, "tensors": len(params),
            "params": sum(p.numel() for p in params), "seconds_per_step": secs / steps,
            "threads": torch.get_num_threads()}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--device", default="cpu")
    p.add_argument("--compare", action="store_true")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--bin", default="target/release/stochlab")
    args = p.parse_args()
    if not args.compare:
        print(json.dumps(reference(args.steps, args.warmup, args.device)))
        return
    ours, ref = alternate(
        [args.bin, "--device", args.device, "bench", "adam-step", "--steps", str(args.steps), "--warmup", str(args.warmup)],
        [sys.executable, __file__, "--steps", str(args.steps), "--warmup", str(args.warmup), "--device", args.device],
        args.runs, "seconds_per_step")
    ratio = verdict(f"adam-step ResNet-20 on {args.device} (seconds/step)", ours, ref,
                    TARGET if args.device == "cpu" else None, "s", higher_is_better=False)
    print(json.dumps({"bench": "adam-step", "device": args.device, "stochlab": ours, "python": ref,
                      "time_ratio_stochlab_over_python": 1 / ratio}))


if __name__ == "__main__":
    main()
