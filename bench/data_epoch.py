#!/usr/bin/env python3
"""One epoch of MNIST training batches (batch 128, random shift of up to 2 pixels with zero
padding): stochlab's on-device batched pipeline vs a torch.utils.data.DataLoader over the same
tensors with the same augmentation applied per sample (the usual torchvision-style
pipeline RandomCrop(28, padding=2) then Normalize, written with torch ops), in one bench run. Start-up (reading the
files) is excluded from both. Each prints one JSON line; --compare alternates them.

Target (issue 3): stochlab >= 3x faster.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import alternate, verdict  # noqa: E402

TARGET = 3.0


def load_mnist_train(data_dir):
    import numpy as np
    import torch

    def idx(path):
        raw = open(path, "rb").read()
        ndim = raw[3]
        dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
        return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)

    x = torch.from_numpy(idx(os.path.join(data_dir, "mnist/train-images-idx3-ubyte")).copy()).float().div_(255).unsqueeze(1)
    y = torch.from_numpy(idx(os.path.join(data_dir, "mnist/train-labels-idx1-ubyte")).copy()).long()
    return x, y


class ShiftedMnist:
    """Map-style dataset: random shift by up to `pad` pixels, zero-filled, per sample."""

    def __init__(self, x, y, pad):
        import torch
        self.torch = torch
        self.x, self.y, self.pad = x, y, pad
        self.mean, self.std = x.mean(), x.std()

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        torch, p = self.torch, self.pad
        img = torch.nn.functional.pad(self.x[i], (p, p, p, p))
        dy, dx = torch.randint(0, 2 * p + 1, (2,)).tolist()
        img = img[:, dy:dy + 28, dx:dx + 28]
        return (img - self.mean) / self.std, self.y[i]


def reference(data_dir, epochs):
    import torch

    torch.manual_seed(0)
    x, y = load_mnist_train(data_dir)
    loader = torch.utils.data.DataLoader(ShiftedMnist(x, y, 2), batch_size=128, shuffle=True, num_workers=0)
    times, checksum = [], 0.0
    for _ in range(epochs + 1):  # the first epoch warms up
        start = time.perf_counter()
        total = torch.zeros(())
        for xb, yb in loader:
            total += xb.sum()
        checksum = total.item()
        times.append(time.perf_counter() - start)
    return {"bench": "data-epoch", "impl": "python", "seconds": min(times[1:]), "checksum": checksum,
            "threads": torch.get_num_threads()}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=os.environ.get("STOCHLAB_DATA", "data"))
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--compare", action="store_true")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--bin", default="target/release/stochlab")
    args = p.parse_args()
    if not args.compare:
        print(json.dumps(reference(args.data_dir, args.epochs)))
        return
    ours, ref = alternate(
        [args.bin, "--device", "cpu", "--data-dir", args.data_dir, "bench", "data-epoch", "--steps", str(args.epochs)],
        [sys.executable, __file__, "--data-dir", args.data_dir, "--epochs", str(args.epochs)],
        args.runs, "seconds")
    ratio = verdict("data-epoch MNIST batch 128 + shift (seconds/epoch)", ours, ref, TARGET, "s", higher_is_better=False)
    print(json.dumps({"bench": "data-epoch", "stochlab": ours, "python": ref, "ratio": ratio, "target": TARGET}))


if __name__ == "__main__":
    main()
