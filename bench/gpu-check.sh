#!/usr/bin/env bash
# Runs every experiment's --smoke config on CUDA and on CPU with the same seed and compares the
# final metrics. Data, initial weights and batch order are drawn on the CPU, so the two runs do
# the same computation and differ only by floating point: losses must agree to a relative
# tolerance and accuracies to an absolute one. Needs a CUDA machine; prints a table, writes
# gpu-check.csv, exits non-zero on any failure.
#
#   bash bench/gpu-check.sh                 # uses target/release/stochlab (or .gpu/stochlab)
#   BIN=... OUT_DIR=... LOSS_RTOL=... ACC_ATOL=... bash bench/gpu-check.sh
# Smoke configs that read datasets (diffgrad: digits) need data/ there too: carry data/sklearn
# (small) with the binary. An experiment whose data is missing is reported as skipped.
set -uo pipefail
BIN=${BIN:-}
if [ -z "$BIN" ]; then
  if [ -x .gpu/stochlab ]; then BIN=.gpu/stochlab; else BIN=target/release/stochlab; fi
fi
OUT_DIR=${OUT_DIR:-bench/out}
LOSS_RTOL=${LOSS_RTOL:-0.01}
ACC_ATOL=${ACC_ATOL:-0.02}
SEED=${SEED:-0}
results=$(mktemp -d)
mkdir -p "$OUT_DIR"
status=0
for exp in $("$BIN" list --names); do
  for dev in cpu cuda; do
    start=$(date +%s%N)
    if ! "$BIN" train "$exp" --smoke --quiet --device "$dev" --seed "$SEED" --results "$results/$dev" >"$results/$exp-$dev.log" 2>&1; then
      if grep -q "is missing .*make data" "$results/$exp-$dev.log"; then
        echo "SKIP $exp: $(tail -n 1 "$results/$exp-$dev.log")"
        continue
      fi
      echo "FAIL $exp on $dev: $(tail -n 1 "$results/$exp-$dev.log")"
      status=1
    fi
    echo "$exp $dev $(( ($(date +%s%N) - start) / 1000000 ))" >>"$results/times.txt"
  done
done
python3 - "$results" "$OUT_DIR/gpu-check.csv" "$LOSS_RTOL" "$ACC_ATOL" <<'PY' || status=1
import csv, glob, json, sys
root, out, rtol, atol = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
times = {}
for line in open(f"{root}/times.txt"):
    exp, dev, secs = line.split()
    times[(exp, dev)] = float(secs) / 1000.0
def final(dev, exp):
    runs = glob.glob(f"{root}/{dev}/{exp}/*/run.json")
    return json.load(open(runs[0])) if runs else None
rows, bad = [], 0
for exp in sorted({e for e, _ in times}):
    cpu, gpu = final("cpu", exp), final("cuda", exp)
    if not cpu and not gpu:
        continue  # skipped above: its data is missing
    if not cpu or not gpu or cpu["status"] != "completed" or gpu["status"] != "completed":
        print(f"FAIL {exp}: a run did not complete"); bad += 1; continue
    for key, a in cpu["final_metrics"].items():
        b = gpu["final_metrics"].get(key)
        if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
            continue
        # Counts (epochs, steps, seeds) must agree exactly; losses to rtol; accuracies, errors
        # and other fractions to atol; any other statistic to either.
        if isinstance(a, int) and isinstance(b, int):
            ok = a == b
        elif "loss" in key:
            ok = abs(a - b) <= rtol * max(abs(a), 1e-12)
        elif "acc" in key or "err" in key or "gates_off" in key:
            ok = abs(a - b) <= atol
        else:
            ok = abs(a - b) <= max(atol, rtol * max(abs(a), abs(b)))
        bad += not ok
        rows.append([exp, key, a, b, abs(a - b), "ok" if ok else "MISMATCH",
                     f"{times[(exp, 'cpu')]:.2f}", f"{times[(exp, 'cuda')]:.2f}", gpu.get("device_name", "")])
        print(f"{'ok ' if ok else 'BAD'} {exp:24} {key:14} cpu={a:<12.6g} cuda={b:<12.6g} |diff|={abs(a-b):.3g}")
with open(out, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["experiment", "metric", "cpu", "cuda", "abs_diff", "verdict", "cpu_seconds", "cuda_seconds", "gpu"])
    w.writerows(rows)
print(f"gpu-check: {sum(r[5] == 'ok' for r in rows)} metrics agree, {bad} problems -> {out}")
sys.exit(1 if bad else 0)
PY
# Curvature of the CPU classifier run on both devices: the same checkpoint, batch and start
# vectors (drawn on the CPU), so the top eigenvalues and the trace must agree to LOSS_RTOL.
run=$(ls -d "$results"/cpu/classifier/*/ 2>/dev/null | head -n 1)
if [ -n "$run" ]; then
  for dev in cpu cuda; do
    "$BIN" curvature "$run" --device "$dev" --what top-k,trace --k 3 --tol 1e-6 --batch 128 >"$results/curv-$dev.log" 2>&1 \
      || { echo "FAIL curvature on $dev: $(tail -n 1 "$results/curv-$dev.log")"; status=1; }
  done
  python3 - "$run/curvature.csv" "$LOSS_RTOL" <<'PY' || status=1
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
half = len(rows) // 2
bad = 0
for a, b in zip(rows[:half], rows[half:]):  # the cpu rows, then the cuda rows
    x, y = float(a["value"]), float(b["value"])
    tol = float(sys.argv[2]) * max(abs(x), 1e-12) + (4 * float(a["error"]) if a["quantity"] == "trace" else 0)
    ok = abs(x - y) <= tol
    bad += not ok
    print(f"{'ok ' if ok else 'BAD'} curvature {a['quantity']} {a['index']:3} cpu={x:<12.6g} cuda={y:<12.6g}")
sys.exit(1 if bad else 0)
PY
fi
rm -rf "$results"
exit $status
