"""Helpers shared by the bench scripts: run a command that prints one JSON line, alternate two
implementations over several rounds in one bench run, compare medians, and record each
comparison for `bench/run_all.py` (the `make bench` summary table and results/bench/)."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def run_json(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        tail = "\n".join(r.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"{' '.join(cmd[:3])} ... exited with {r.returncode}:\n{tail}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def alternate(ours_cmd, ref_cmd, runs, key):
    """Runs the two commands alternately `runs` times; returns (ours, ref) lists of `key` (of
    the whole JSON objects when `key` is None)."""
    ours, ref = [], []
    for _ in range(runs):
        for cmd, out in ((ours_cmd, ours), (ref_cmd, ref)):
            r = run_json(cmd)
            out.append(r if key is None else r[key])
    return ours, ref


def record(name, ours, ref, unit, ratio, target, higher_is_better=True, note="", extra_ok=True):
    """Appends one comparison to the file named by $STOCHLAB_BENCH_OUT (JSON lines), when set,
    for bench/run_all.py. `ratio` and `target` are as printed: with higher_is_better the ratio
    must reach the target, otherwise stay at or under it; `extra_ok` is any other condition of
    the verdict (e.g. accuracy). A ratio of None means no comparison could be made."""
    path = os.environ.get("STOCHLAB_BENCH_OUT")
    if not path:
        return
    row = {"name": name, "stochlab": ours, "reference": ref, "unit": unit, "ratio": ratio,
           "target": target, "higher_is_better": higher_is_better, "extra_ok": extra_ok, "note": note}
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def verdict(label, ours, ref, target, unit, higher_is_better=True):
    """Prints one line comparing medians and records it; returns the ratio (>1 means stochlab
    is better)."""
    mo, mr = statistics.median(ours), statistics.median(ref)
    ratio = mo / mr if higher_is_better else mr / mo
    line = (f"{label}: stochlab {mo:10.4g} {unit}, python {mr:10.4g} {unit} "
            f"(medians of {len(ours)}), stochlab/python speed {ratio:.2f}x")
    if target is not None:
        line += f" (target >= {target:.3g}x) " + ("PASS" if ratio >= target else "BELOW TARGET")
    print(line, flush=True)
    record(label, mo, mr, unit, ratio, target)
    return ratio


def time_steps(step, steps, warmup, device):
    """Calls `step()` `warmup` times, then times `steps` calls, synchronising CUDA on both sides
    of the timed loop; returns (seconds per step, the last call's result)."""
    import torch

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    for _ in range(warmup):
        step()
    sync()
    start = time.perf_counter()
    last = None
    for _ in range(steps):
        last = step()
    sync()
    return (time.perf_counter() - start) / steps, last


def step_bench(name, doc, script, reference, label, target, steps, warmup):
    """The command line of a per-step timing benchmark (`stochlab bench <name>` against the
    Python `reference(steps, warmup, device)` returning a JSON-able dict with
    `seconds_per_step`): alone it prints the reference's JSON line; with --compare it alternates
    the two, prints the verdict against `target(device)` (None: no target) and a JSON summary."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=steps)
    p.add_argument("--warmup", type=int, default=warmup)
    p.add_argument("--device", default="cpu")
    p.add_argument("--compare", action="store_true")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--bin", default="target/release/stochlab")
    args = p.parse_args()
    if not args.compare:
        print(json.dumps(reference(args.steps, args.warmup, args.device)))
        return
    sizes = ["--steps", str(args.steps), "--warmup", str(args.warmup)]
    ours, ref = alternate(
        [args.bin, "--device", args.device, "bench", name, *sizes],
        [sys.executable, script, *sizes, "--device", args.device],
        args.runs, "seconds_per_step")
    ratio = verdict(f"{label} on {args.device} (seconds/step)", ours, ref, target(args.device), "s",
                    higher_is_better=False)
    print(json.dumps({"bench": name, "device": args.device, "stochlab": ours, "python": ref,
                      "speed_ratio_stochlab_over_python": ratio}))
