"""Helpers shared by the bench scripts: run a command that prints one JSON line, alternate two
implementations over several rounds in one bench run, compare medians, and record each
comparison for `bench/run_all.py` (the `make bench` summary table and results/bench/)."""
import json
import os
import statistics
import subprocess


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
