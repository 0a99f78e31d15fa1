#!/usr/bin/env python3
"""Reference for the ib-tishby benchmark: the information-plane loop a researcher writes with
plain PyTorch and NumPy, for one seed, in the paper's configuration: the 12-bit dataset
(the same icosahedron rule), 12-10-7-5-4-3-2 tanh network, Adam lr 4e-4, batch 512, 8000
epochs with an 80 % stratified split, a per-batch Python loop; at the 274 IDNNs epochs, every
layer of all 4096 patterns binned into linspace(-1, 1, 30) with np.digitize and its entropies
taken with np.unique over the binned rows (I(X;T) = H(T), I(T;Y) = H(T) - sum_y p(y) H(T|y)),
plus the per-layer gradient mean/std over the epoch's mini-batches. Prints one JSON line.

--compare runs stochlab (1 seed, then 50 seeds) and this reference (1 seed) in one bench run.
Targets (issue 5, CPU): 1 seed >= 2.5x faster than the reference; 50 seeds >= 8x faster than
50 times the reference's one-seed time.
"""
import argparse
import itertools
import json
import math
import os
import subprocess
import sys
import time


def icosahedron_labels():
    p = (1 + 5 ** 0.5) / 2
    v = [(-1, p, 0), (0, -1, -p), (-p, 0, 1), (p, 0, 1), (1, p, 0), (p, 0, -1), (-p, 0, -1), (0, 1, p),
         (0, 1, -p), (1, -p, 0), (-1, -p, 0), (0, -1, p)]
    n2 = sum(c * c for c in v[0])
    ones = {(5, 3, 7, 0), (6, 5, 9, 1), (6, 5, 10, 0), (6, 6, 7, 2), (6, 6, 8, 1), (6, 6, 9, 0), (6, 7, 7, 1),
            (6, 9, 6, 0), (7, 8, 11, 2), (7, 8, 12, 1), (7, 9, 9, 3), (7, 9, 10, 2), (7, 10, 9, 2),
            (7, 10, 10, 1), (7, 12, 8, 1)}
    xs, ys = [], []
    for k in range(4096):
        bits = [(k >> (11 - b)) & 1 for b in range(12)]
        on = [b for b in range(12) if bits[b]]
        w = len(on)
        near = far = anti = 0
        for a, b in itertools.combinations(on, 2):
            d = sum(v[a][c] * v[b][c] for c in range(3)) / n2
            if d < -0.99:
                anti += 1
            elif d < 0:
                far += 1
            else:
                near += 1
        y = 0 if w <= 4 else 1 if w >= 8 else int((w, near, far, anti) in ones)
        xs.append(bits)
        ys.append(y)
    return xs, ys


def entropy(rows):
    import numpy as np
    _, counts = np.unique(rows, axis=0, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def reference(epochs, seed):
    import numpy as np
    import torch

    torch.manual_seed(seed)
    xs, ys = icosahedron_labels()
    x_all = torch.tensor(xs, dtype=torch.float32)
    y_all = torch.tensor(ys)
    y_np = np.array(ys)
    rng = np.random.default_rng(seed)
    train = np.concatenate([rng.permutation(np.where(y_np == c)[0])[: int(round(0.8 * (y_np == c).sum()))] for c in (0, 1)])
    x_train, y_train = x_all[train], y_all[train]
    widths = [12, 10, 7, 5, 4, 3, 2]
    layers = []
    for a, b in zip(widths, widths[1:]):
        lin = torch.nn.Linear(a, b)
        torch.nn.init.trunc_normal_(lin.weight, std=1 / math.sqrt(a), a=-2 / math.sqrt(a), b=2 / math.sqrt(a))
        torch.nn.init.zeros_(lin.bias)
        layers.append(lin)
    params = [p for l in layers for p in l.parameters()]
    opt = torch.optim.Adam(params, lr=4e-4)
    logged = set((np.unique(np.logspace(np.log2(1), np.log2(epochs), 400, dtype=int, base=2)) - 1).tolist())
    bins = np.linspace(-1, 1, 30)
    p_y = [float((y_np == c).mean()) for c in (0, 1)]
    records = 0
    start = time.perf_counter()
    for epoch in range(epochs):
        if epoch in logged:
            with torch.no_grad():
                h = x_all
                for i, l in enumerate(layers):
                    h = l(h)
                    t = torch.tanh(h) if i < len(layers) - 1 else torch.softmax(h, -1)
                    binned = np.clip(np.digitize(t.numpy(), bins) - 1, 0, 29)
                    h_t = entropy(binned)
                    h_t_y = sum(p_y[c] * entropy(binned[y_np == c]) for c in (0, 1))
                    records += (h_t, h_t - h_t_y) is not None
                    h = t if i < len(layers) - 1 else h
        grads = [] if epoch in logged else None
        perm = torch.randperm(len(train))
        for s in range(0, len(train), 512):
            idx = perm[s:s + 512]
            opt.zero_grad()
            h = x_train[idx]
            for i, l in enumerate(layers):
                h = l(h)
                if i < len(layers) - 1:
                    h = torch.tanh(h)
            loss = torch.nn.functional.cross_entropy(h, y_train[idx])
            loss.backward()
            if grads is not None:
                grads.append([l.weight.grad.detach().clone() for l in layers])
            opt.step()
        if grads:
            for j in range(len(layers)):
                g = torch.stack([gs[j] for gs in grads])
                mean = g.mean(0).norm().item()
                std = (g - g.mean(0)).pow(2).sum((1, 2)).mean().sqrt().item()
                records += mean / max(std, 1e-30) >= 0
    secs = time.perf_counter() - start
    return {"bench": "ib-tishby", "impl": "python", "seeds": 1, "epochs": epochs, "seconds": secs,
            "records": records, "threads": torch.get_num_threads()}


def stochlab(binary, seeds, epochs, results):
    start = time.perf_counter()
    subprocess.run([binary, "ib-analyze", "ib-tishby", "--device", "cpu", "-q", "--results", results,
                    f"seeds={seeds}", f"train.epochs={epochs}"], check=True, capture_output=True)
    return time.perf_counter() - start


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=8000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compare", action="store_true")
    p.add_argument("--bin", default="target/release/stochlab")
    p.add_argument("--seeds", type=int, default=50)
    args = p.parse_args()
    if not args.compare:
        print(json.dumps(reference(args.epochs, args.seed)))
        return
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        ours1 = stochlab(args.bin, 1, args.epochs, tmp)
        ref = json.loads(subprocess.run([sys.executable, __file__, "--epochs", str(args.epochs)], check=True,
                                        capture_output=True, text=True).stdout.splitlines()[-1])["seconds"]
        ours50 = stochlab(args.bin, args.seeds, args.epochs, tmp)
    r1, r50 = ref / ours1, args.seeds * ref / ours50
    print(f"ib-tishby {args.epochs} epochs on cpu: reference 1 seed {ref:.1f} s; stochlab 1 seed {ours1:.1f} s "
          f"-> {r1:.2f}x (target >= 2.5x) {'PASS' if r1 >= 2.5 else 'BELOW TARGET'}; stochlab {args.seeds} seeds "
          f"{ours50:.1f} s vs {args.seeds} x reference {args.seeds * ref:.0f} s -> {r50:.1f}x (target >= 8x) "
          f"{'PASS' if r50 >= 8 else 'BELOW TARGET'}")
    print(json.dumps({"bench": "ib-tishby", "epochs": args.epochs, "reference_1_seed_s": ref, "stochlab_1_seed_s": ours1,
                      f"stochlab_{args.seeds}_seeds_s": ours50, "speedup_1": r1, f"speedup_{args.seeds}": r50}))


if __name__ == "__main__":
    main()
