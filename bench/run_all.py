#!/usr/bin/env python3
"""`make bench`: runs every benchmark (a failing or slow one never hides the others), repeats a
benchmark whose ratio falls within the noise band of its target before judging it, prints one
summary table at the end (benchmark, stochlab, reference, ratio, target, result), appends its
rows with the date, commit and machine to results/bench/history.csv, and exits non-zero after
the table when something is below target or failed to run.

Each bench script prints its own lines as it goes and records its comparisons through
common.record() into the file named by $STOCHLAB_BENCH_OUT.
"""
import argparse
import csv
import datetime
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def benches(bin_, device, data_dir):
    py = sys.executable
    mnist = os.path.join(data_dir, "mnist", "train-images-idx3-ubyte")
    return [
        {"name": "classifier-step", "cmd": [py, f"{HERE}/classifier_step.py", "--compare", "--bin", bin_,
                                            "--device", device]},
        {"name": "adam-step", "cmd": [py, f"{HERE}/adam_step.py", "--compare", "--bin", bin_, "--device", device]},
        {"name": "trp-step", "cmd": [py, f"{HERE}/trp_step.py", "--compare", "--bin", bin_, "--device", device]},
        {"name": "score-sampling", "cmd": [py, f"{HERE}/score_sampling.py", "--compare", "--bin", bin_,
                                           "--device", device]},
        {"name": "psgld", "cmd": [py, f"{HERE}/psgld.py", "--compare", "--bin", bin_, "--device", device]},
        {"name": "ga-generation", "cmd": [py, f"{HERE}/ga_generation.py", "--compare", "--bin", bin_,
                                          "--device", device]},
        {"name": "hessian", "cmd": [py, f"{HERE}/hessian_power.py", "--compare", "--bin", bin_, "--device", device]},
        {"name": "curvature", "cmd": [py, f"{HERE}/hessian_top.py", "--bin", bin_, "--device", device],
         "module": ("pyhessian", ["pyhessian==0.1", "--no-deps"])},
        {"name": "sweep-overhead", "cmd": ["bash", f"{HERE}/sweep_overhead.sh"], "env": {"BIN": bin_}},
        {"name": "data-epoch", "cmd": [py, f"{HERE}/data_epoch.py", "--compare", "--bin", bin_,
                                       "--data-dir", data_dir],
         "skip": None if os.path.exists(mnist) else "needs MNIST: make data-mnist"},
        {"name": "ksg", "cmd": [py, f"{HERE}/ksg_npeet.py", "--bin", bin_, "--device", device],
         "module": ("npeet_plus", ["npeet-plus==0.2.0"])},
    ]


def ensure(module, pip_args):
    """Imports `module`, installing it with pip when missing; returns an error text or None."""
    probe = [sys.executable, "-c", f"import {module}"]
    if subprocess.run(probe, capture_output=True).returncode == 0:
        return None
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", *pip_args], capture_output=True, text=True)
    if r.returncode != 0 or subprocess.run(probe, capture_output=True).returncode != 0:
        return f"could not install {pip_args[0]}: " + (r.stderr.strip().splitlines() or ["?"])[-1]
    return None


def in_band(row, noise):
    r, t = row.get("ratio"), row.get("target")
    return r is not None and t is not None and abs(r / t - 1.0) <= noise


def attempt(bench):
    """Runs one bench script; returns (exit code, recorded rows)."""
    with tempfile.NamedTemporaryFile("r", suffix=".jsonl") as out:
        env = {**os.environ, **bench.get("env", {}), "STOCHLAB_BENCH_OUT": out.name}
        rc = subprocess.run(bench["cmd"], env=env, cwd=ROOT).returncode
        rows = [json.loads(line) for line in out.read().splitlines() if line.strip()]
    return rc, rows


def judge(bench, attempts, noise):
    """One summary row per comparison, over the attempts: median ratio, verdict, note."""
    names = []
    for _, rows in attempts:
        names += [r["name"] for r in rows if r["name"] not in names]
    out = []
    for name in names:
        rows = [r for _, rs in attempts for r in rs if r["name"] == name]
        last = rows[-1]
        ratios = [r["ratio"] for r in rows if r["ratio"] is not None]
        ratio = statistics.median(ratios) if ratios else None
        target, higher = last["target"], last.get("higher_is_better", True)
        # Conditions besides the ratio (e.g. accuracy) must hold in every attempt.
        extra_ok = all(r.get("extra_ok", True) for r in rows)
        if ratio is None:
            result = "BELOW TARGET" if target is not None else "—"
        elif target is None:
            result = "no target"
        else:
            ok = (ratio >= target if higher else ratio <= target) and extra_ok
            result = "PASS" if ok else "BELOW TARGET"
        notes = [last.get("note") or ""]
        if len(rows) > 1:
            notes.append(f"ran {len(rows)}x (a ratio of this benchmark was within ±{noise:.0%} of its target): "
                         + ", ".join(f"{r:.2f}" for r in ratios) + ", median judged")
        med = lambda k: statistics.median(r[k] for r in rows) if all(r[k] is not None for r in rows) else None  # noqa: E731
        out.append({"benchmark": name, "stochlab": med("stochlab"), "reference": med("reference"),
                    "unit": last["unit"], "ratio": ratio, "target": target,
                    "direction": ">=" if higher else "<=", "result": result, "attempts": len(rows),
                    "note": "; ".join(n for n in notes if n)})
    rc = attempts[-1][0]
    if not out:
        out.append({"benchmark": bench["name"], "stochlab": None, "reference": None, "unit": "", "ratio": None,
                    "target": None, "direction": "", "result": "ERROR", "attempts": len(attempts),
                    "note": f"exited with {rc} before reporting; see its output above"})
    elif rc != 0 and all(r["result"] == "PASS" for r in out):
        out[-1]["note"] += f"; script exited with {rc}"
    return out


def fmt(v, digits=4):
    return "—" if v is None else f"{v:.{digits}g}"


def table(rows):
    head = ["benchmark", "stochlab", "reference", "unit", "ratio", "target", "result", "note"]
    body = [[r["benchmark"], fmt(r["stochlab"]), fmt(r["reference"]), r["unit"],
             "—" if r["ratio"] is None else f"{r['ratio']:.2f}x",
             "—" if r["target"] is None else f"{r['direction']} {r['target']:.3g}x", r["result"], r["note"]]
            for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    widths[-1] = 0  # the note runs on
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths[:-1]] + ["----"])] + [line(b) for b in body])


def machine(device):
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{socket.gethostname()}; {cpu}; {os.cpu_count()} cpus; device {device}"


def commit():
    git = lambda *a: subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True)  # noqa: E731
    head = git("rev-parse", "--short=12", "HEAD").stdout.strip() or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    return head + ("-dirty" if dirty else "")


COLUMNS = ["date", "commit", "machine", "benchmark", "stochlab", "reference", "unit", "ratio", "target",
           "direction", "result", "attempts", "note"]


def append_history(path, rows, device):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if os.path.exists(path):
        with open(path, newline="") as f:
            header = next(csv.reader(f), None)
        if header != COLUMNS:
            raise SystemExit(f"bench: {path} has other columns ({header}); move it away to start a new one")
    new = not os.path.exists(path)
    stamp = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    with open(path, "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(COLUMNS)
        for r in rows:
            w.writerow([stamp, commit(), machine(device)] + ["" if r[c] is None else r[c] for c in COLUMNS[3:]])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", default="target/release/stochlab")
    p.add_argument("--device", default="cpu")
    p.add_argument("--data-dir", default=os.environ.get("STOCHLAB_DATA", "data"))
    p.add_argument("--only", help="comma-separated benchmark names (default: all)")
    p.add_argument("--noise", type=float, default=0.10,
                   help="a ratio within this fraction of its target is measured again before judging")
    p.add_argument("--repeats", type=int, default=2, help="extra runs for a ratio within the noise band")
    p.add_argument("--history", default=os.path.join(ROOT, "results", "bench", "history.csv"))
    a = p.parse_args()
    all_benches = benches(a.bin, a.device, a.data_dir)
    if a.only:
        wanted = a.only.split(",")
        unknown = [w for w in wanted if w not in [b["name"] for b in all_benches]]
        if unknown:
            raise SystemExit(f"bench: unknown benchmark {', '.join(unknown)}; available: "
                             + ", ".join(b["name"] for b in all_benches))
        all_benches = [b for b in all_benches if b["name"] in wanted]
    summary = []
    for bench in all_benches:
        print(f"\n=== bench {bench['name']} ===", flush=True)
        if bench.get("skip"):
            print(f"bench: skipping {bench['name']} ({bench['skip']})", flush=True)
            summary.append({"benchmark": bench["name"], "stochlab": None, "reference": None, "unit": "",
                            "ratio": None, "target": None, "direction": "", "result": "SKIPPED", "attempts": 0,
                            "note": bench["skip"]})
            continue
        missing = bench.get("module") and ensure(*bench["module"])
        if missing:
            print(f"bench: {bench['name']}: {missing}", flush=True)
            summary.append({"benchmark": bench["name"], "stochlab": None, "reference": None, "unit": "",
                            "ratio": None, "target": None, "direction": "", "result": "ERROR", "attempts": 0,
                            "note": missing})
            continue
        attempts = [attempt(bench)]
        while len(attempts) <= a.repeats and any(in_band(r, a.noise) for r in attempts[-1][1]):
            print(f"bench: {bench['name']}: a ratio is within ±{a.noise:.0%} of its target; measuring again",
                  flush=True)
            attempts.append(attempt(bench))
        summary += judge(bench, attempts, a.noise)
    print("\n" + table(summary), flush=True)
    append_history(a.history, summary, a.device)
    bad = [r["benchmark"] for r in summary if r["result"] in ("BELOW TARGET", "ERROR")]
    print(f"\nbench: rows appended to {a.history}", flush=True)
    if bad:
        print(f"bench: below target or failed: {', '.join(bad)}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
