#!/usr/bin/env python3
"""Top Hessian eigenvalue of the MNIST MLP (784-256-256-10, ReLU) on a batch of random inputs:
first gradients with create_graph, then 20 power iterations of Hessian-vector products by
torch.autograd.grad (double backward), reading the Rayleigh quotient each iteration. stochlab's
`bench hessian` does the same. --compare alternates the two in one bench run.

Target (issue 8): stochlab never slower (>= 1.0x).
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import alternate, verdict  # noqa: E402


def reference(batch, iters, device):
    import torch
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                                torch.nn.ReLU(), torch.nn.Linear(256, 10)).to(device)
    x = torch.randn(batch, 784, device=device)
    y = torch.randint(10, (batch,), device=device)
    params = list(model.parameters())
    times, value = [], None
    for i in range(6):
        t = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        grads = torch.autograd.grad(loss, params, create_graph=True)
        v = [torch.randn_like(p) for p in params]
        norm = torch.sqrt(sum((a * a).sum() for a in v))
        v = [a / norm for a in v]
        for _ in range(iters):
            gv = sum((g * a).sum() for g, a in zip(grads, v))
            hv = torch.autograd.grad(gv, params, retain_graph=True)
            value = sum((a * h).sum() for a, h in zip(v, hv)).item()
            norm = torch.sqrt(sum((h * h).sum() for h in hv))
            v = [h.detach() / norm for h in hv]
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if i > 0:
            times.append(time.perf_counter() - t)
    times.sort()
    return {"bench": "hessian", "impl": "python", "device": device, "seconds": times[len(times) // 2],
            "lambda_max": value, "threads": torch.get_num_threads()}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", default="target/release/stochlab")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--compare", action="store_true")
    p.add_argument("--reference", action="store_true", help="print the Python reference's JSON only")
    a = p.parse_args()
    if a.reference:
        print(json.dumps(reference(a.batch_size, a.iters, a.device)))
        return 0
    ours = [a.bin, "bench", "hessian", "--device", a.device, "--batch-size", str(a.batch_size),
            "--steps", str(a.iters)]
    ref = [sys.executable, __file__, "--reference", "--device", a.device, "--batch-size", str(a.batch_size),
           "--iters", str(a.iters)]
    o, r = alternate(ours, ref, a.runs, "seconds")
    ratio = verdict(f"hessian top eigenvalue ({a.iters} power iterations, batch {a.batch_size}) [{a.device}]",
                    o, r, 1.0, "s", higher_is_better=False)
    return 0 if ratio >= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
