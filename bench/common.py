"""Helpers shared by the bench scripts: run a command that prints one JSON line, alternate two
implementations over several rounds in one bench run, compare medians."""
import json
import statistics
import subprocess


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def alternate(ours_cmd, ref_cmd, runs, key):
    """Runs the two commands alternately `runs` times; returns (ours, ref) lists of `key`."""
    ours, ref = [], []
    for _ in range(runs):
        ours.append(run_json(ours_cmd)[key])
        ref.append(run_json(ref_cmd)[key])
    return ours, ref


def verdict(label, ours, ref, target, unit, higher_is_better=True):
    """Prints one line comparing medians; returns the ratio (>1 means stochlab is better)."""
    mo, mr = statistics.median(ours), statistics.median(ref)
    ratio = mo / mr if higher_is_better else mr / mo
    line = (f"{label}: stochlab {mo:10.4g} {unit}, python {mr:10.4g} {unit} "
            f"(medians of {len(ours)}), stochlab/python speed {ratio:.2f}x")
    if target is not None:
        line += f" (target >= {target:.3g}x) " + ("PASS" if ratio >= target else "BELOW TARGET")
    print(line, flush=True)
    return ratio
