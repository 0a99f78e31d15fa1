#!/usr/bin/env python3
"""Time to evaluate one generation of 100 CartPole policies (Such et al. 2017's deep GA, as in
the neuroevolution experiment: 4-16-16-2 tanh MLP, argmax action, CartPole-v1 dynamics, 500
steps at most). The reference is the loop the deep-neuroevolution code runs per worker, in
PyTorch + NumPy: for each individual, a torch model and a NumPy cart stepped one observation at a
time. stochlab's `bench ga-generation` evaluates the same individuals from the same initial
states with the whole population batched (one bmm forward per environment step). The
population is a late-generation one: Gaussian perturbations (sigma 0.3 relative) of a
balancing controller, so most episodes run long, as they do once the GA has solved the task.
Both sides must return the same episode lengths (the run fails otherwise).

Target (issue 20): stochlab at least 3x faster.
"""
import argparse
import json
import math
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import alternate, record, verdict  # noqa: E402

TARGET = 3.0
SIZES = (4, 16, 16, 2)
GRAVITY, MC, MP, L, FORCE, TAU = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
TM, PML = MC + MP, MP * L
X_LIM, TH_LIM = 2.4, 12 * 2 * math.pi / 360


def population(n, seed=0):
    """Rows [state(4), params]: a balancing controller h = tanh(theta + 0.5 theta_dot + 0.05 x +
    0.1 x_dot) in hidden unit 0, passed on by unit 0 of the second layer, logits (-h, h),
    perturbed per individual."""
    import numpy as np
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        w1 = rng.normal(0, 0.3, (4, 16)) / 2
        w1[:, 0] = np.array([0.1, 0.2, 2.0, 1.0]) * 5 * (1 + rng.normal(0, 0.3, 4))
        b1 = np.zeros(16)
        w2 = rng.normal(0, 0.3, (16, 16)) / 4
        w2[0, 0] = 3.0
        b2 = np.zeros(16)
        w3 = rng.normal(0, 0.1, (16, 2))
        w3[0] = [-1.0, 1.0]
        b3 = np.zeros(2)
        theta = np.concatenate([w1.ravel(), b1, w2.ravel(), b2, w3.ravel(), b3])
        state = rng.uniform(-0.05, 0.05, 4)
        rows.append(np.concatenate([state, theta]).astype(np.float32).astype(np.float64))
    return np.array(rows)


def step(s, a):
    x, x_dot, th, th_dot = s
    force = FORCE if a == 1 else -FORCE
    sin, cos = math.sin(th), math.cos(th)
    temp = (force + PML * th_dot * th_dot * sin) / TM
    th_acc = (GRAVITY * sin - cos * temp) / (L * (4.0 / 3.0 - MP * cos * cos / TM))
    x_acc = temp - PML * th_acc * cos / TM
    s = [x + TAU * x_dot, x_dot + TAU * x_acc, th + TAU * th_dot, th_dot + TAU * th_acc]
    return s, not (-X_LIM <= s[0] <= X_LIM and -TH_LIM <= s[2] <= TH_LIM)


def reference(rows, runs, warmup):
    import numpy as np
    import torch
    from torch import nn

    def model(theta):
        layers, off = [], 0
        for i, (a, b) in enumerate(zip(SIZES[:-1], SIZES[1:])):
            lin = nn.Linear(a, b)
            with torch.no_grad():
                lin.weight.copy_(torch.tensor(theta[off:off + a * b].reshape(a, b).T, dtype=torch.float32))
                off += a * b
                lin.bias.copy_(torch.tensor(theta[off:off + b], dtype=torch.float32))
                off += b
            layers.append(lin)
            if i < len(SIZES) - 2:
                layers.append(nn.Tanh())
        return nn.Sequential(*layers)

    def generation():
        out = []
        with torch.no_grad():
            for row in rows:
                net = model(row[4:])
                s, ret = list(row[:4]), 0
                for _ in range(500):
                    obs = torch.from_numpy(np.asarray(s, dtype=np.float32))[None]
                    a = int(net(obs).argmax(1))
                    s, done = step(s, a)
                    ret += 1
                    if done:
                        break
                out.append(ret)
        return out

    for _ in range(warmup):
        generation()
    times, rets = [], None
    for _ in range(max(runs, 1)):
        start = time.perf_counter()
        rets = generation()
        times.append(time.perf_counter() - start)
    times.sort()
    return {"bench": "ga-generation", "impl": "python", "population": len(rows),
            "seconds": times[len(times) // 2], "return_sum": float(sum(rets)),
            "threads": torch.get_num_threads()}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--population", type=int, default=100)
    p.add_argument("--input", help="CSV written by a --compare run (reference mode)")
    p.add_argument("--steps", type=int, default=1, help="timed generations per process")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--compare", action="store_true")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--bin", default="target/release/stochlab")
    args = p.parse_args()
    import numpy as np
    if not args.compare:
        rows = np.loadtxt(args.input, delimiter=",", ndmin=2) if args.input else population(args.population)
        print(json.dumps(reference(rows, args.steps, args.warmup)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "population.csv")
        np.savetxt(path, population(args.population), delimiter=",", fmt="%.17g")
        sizes = ["--steps", str(args.steps), "--warmup", str(args.warmup)]
        ours, ref = alternate(
            [args.bin, "--device", args.device, "bench", "ga-generation", "--input", path, *sizes],
            [sys.executable, __file__, "--input", path, *sizes],
            args.runs, None)
    same = all(o["return_sum"] == r["return_sum"] for o, r in zip(ours, ref))
    mean_len = ours[0]["return_sum"] / args.population
    print(f"mean episode length {mean_len:.1f}; stochlab and python episode lengths agree: {same}")
    ratio = verdict(f"GA generation of {args.population} CartPole policies on {args.device} (seconds)",
                    [o["seconds"] for o in ours], [r["seconds"] for r in ref], TARGET, "s",
                    higher_is_better=False)
    if not same:
        record("GA generation returns agree", None, None, "", None, None, extra_ok=False,
               note="stochlab and python returns differ")
        sys.exit(1)
    print(json.dumps({"bench": "ga-generation", "device": args.device, "stochlab": ours, "python": ref,
                      "speed_ratio_stochlab_over_python": ratio, "mean_episode_length": mean_len}))


if __name__ == "__main__":
    main()
