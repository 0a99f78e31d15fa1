#!/usr/bin/env python3
"""Training-step throughput of the `classifier` loop: stochlab vs the same loop in PyTorch.

Reference (default): MLP 784-256-256-10, Adam (torch.optim defaults for the device), random
inputs, per epoch a shuffled index, per step index_select, forward, cross-entropy, backward,
step, with the loss and correct count kept on the device and read once per epoch -- the work
`stochlab bench classifier-step` does. Prints one JSON line.

--compare: alternates stochlab and this reference over --runs rounds per batch size, in one
bench run, and prints the medians and their ratio against the targets of issue 2.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import alternate, verdict  # noqa: E402

TARGETS = {256: 1.0, 16: 1.4}  # stochlab / python, CPU
STEPS = {256: 300, 16: 2000}


def reference(batch_size, steps, warmup, device):
    import torch

    torch.manual_seed(0)
    n = 8192
    x = torch.randn(n, 784, device=device)
    y = torch.randint(10, (n,), device=device)
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, 10),
    ).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    total, done, epoch = warmup + steps, 0, 0
    start = time.perf_counter()
    checksum = 0.0
    while done < total:
        order = torch.randperm(n, device=device)
        losses, correct = [], []
        for i in range(n // batch_size):
            if done == warmup:
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                start = time.perf_counter()
            if done == total:
                break
            idx = order[i * batch_size:(i + 1) * batch_size]
            xb, yb = x.index_select(0, idx), y.index_select(0, idx)
            opt.zero_grad()
            logits = model(xb)
            loss = torch.nn.functional.cross_entropy(logits, yb)
            loss.backward()
            opt.step()
            losses.append(loss.detach())
            correct.append((logits.argmax(-1) == yb).sum())
            done += 1
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if losses:
            checksum += torch.stack(losses).double().sum().item()
            torch.stack(correct).sum().item()
        epoch += 1
    secs = time.perf_counter() - start
    return {
        "bench": "classifier-step", "impl": "python", "device": device,
        "batch_size": batch_size, "steps": steps, "seconds": secs,
        "steps_per_sec": steps / secs, "threads": torch.get_num_threads(),
        "loss_checksum": checksum,
    }


def compare(args):
    rows = []
    for bs in (256, 16):
        steps = str(STEPS[bs])
        ours, ref = alternate(
            [args.bin, "--device", args.device, "bench", "classifier-step", "--batch-size", str(bs), "--steps", steps],
            [sys.executable, __file__, "--batch-size", str(bs), "--steps", steps, "--device", args.device],
            args.runs, "steps_per_sec")
        target = TARGETS[bs] if args.device == "cpu" else None
        ratio = verdict(f"classifier-step batch {bs:>3} on {args.device} (steps/s)", ours, ref, target, "steps/s")
        rows.append({"batch_size": bs, "stochlab": ours, "python": ref, "ratio": ratio, "target": target})
    print(json.dumps({"bench": "classifier-step", "device": args.device, "rows": rows}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--device", default="cpu")
    p.add_argument("--compare", action="store_true")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--bin", default="target/release/stochlab")
    args = p.parse_args()
    if args.compare:
        compare(args)
    else:
        print(json.dumps(reference(args.batch_size, args.steps, args.warmup, args.device)))


if __name__ == "__main__":
    main()
