#!/usr/bin/env python3
"""KSG mutual information: stochlab (k-d tree, all cores; and one thread) vs the npeet-plus
package's mi() (KSG on scikit-learn's k-d tree), the same samples in one bench run.

n = 10 000 correlated Gaussian pairs, d = 2+2 and 4+4, k = 3, true MI 2 nats; 5 datasets each.
Speed: median seconds per estimate. Accuracy: mean |estimate - true| over the datasets.
Target (issue 6): stochlab >= 3x faster on CPU, error no larger.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import record, run_json  # noqa: E402

TARGET = 3.0


def dataset(n, d, mi, seed):
    import numpy as np
    rng = np.random.default_rng(seed)
    rho = np.sqrt(1 - np.exp(-2 * mi / d))
    x = rng.standard_normal((n, d))
    y = rho * x + np.sqrt(1 - rho * rho) * rng.standard_normal((n, d))
    return x, y


def npeet_seconds(x, y, k, reps):
    from npeet_plus import estimators
    import numpy as np
    times, est = [], None
    for i in range(reps + 1):
        np.random.seed(i)
        t = time.perf_counter()
        est = estimators.mi(x, y, k=k, base=np.e)
        if i > 0:
            times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2], est


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", default="target/release/stochlab")
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--k", type=int, default=3)
    p.add_argument("--mi", type=float, default=2.0)
    p.add_argument("--datasets", type=int, default=5)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    import numpy as np
    ok = True
    for d in (2, 4):
        rows = {"stochlab": [], "stochlab-1-thread": [], "npeet-plus": []}
        errs = {key: [] for key in rows}
        for s in range(a.datasets):
            x, y = dataset(a.n, d, a.mi, s)
            with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
                np.savetxt(f, np.hstack([x, y]), delimiter=",", fmt="%.17g")
                path = f.name
            try:
                for key, env in (("stochlab", {}), ("stochlab-1-thread", {"STOCHLAB_THREADS": "1"})):
                    cmd = [a.bin, "bench", "ksg", "--input", path, "--dx", str(d), "--k", str(a.k),
                           "--steps", str(a.reps), "--warmup", "1", "--device", a.device]
                    out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                                         env={**os.environ, **env, "OMP_NUM_THREADS": "1"}).stdout
                    r = json.loads(out.strip().splitlines()[-1])
                    rows[key].append(r["seconds"])
                    errs[key].append(abs(r["mi_nats"] - a.mi))
                secs, est = npeet_seconds(x, y, a.k, a.reps)
                rows["npeet-plus"].append(secs)
                errs["npeet-plus"].append(abs(est - a.mi))
            finally:
                os.unlink(path)
        med = {key: sorted(v)[len(v) // 2] for key, v in rows.items()}
        err = {key: sum(v) / len(v) for key, v in errs.items()}
        for key in ("stochlab", "stochlab-1-thread"):
            ratio = med["npeet-plus"] / med[key]
            line = (f"ksg d={d}+{d} n={a.n} k={a.k} [{a.device}]: {key} {med[key] * 1e3:8.2f} ms, "
                    f"npeet-plus {med['npeet-plus'] * 1e3:8.2f} ms -> {ratio:5.2f}x faster; "
                    f"mean |error| {err[key]:.4f} vs {err['npeet-plus']:.4f} nats")
            accurate = err[key] <= err["npeet-plus"] + 0.005
            note = f"mean |error| {err[key]:.4f} vs {err['npeet-plus']:.4f} nats" + ("" if accurate else ", larger")
            if key == "stochlab":
                good = ratio >= TARGET and accurate
                ok &= good
                line += f" (target >= {TARGET}x, error no larger) " + ("PASS" if good else "BELOW TARGET")
            print(line, flush=True)
            record(f"ksg d={d}+{d} n={a.n} k={a.k} {key} [{a.device}]", med[key], med["npeet-plus"], "s", ratio,
                   TARGET if key == "stochlab" else None, note=note, extra_ok=accurate)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
