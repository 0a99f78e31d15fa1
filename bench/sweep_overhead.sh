#!/usr/bin/env bash
# Sweep overhead (issue 7): 32 smoke jobs of `classifier` run one by one as plain
# `stochlab train` processes (their own run times, summed), then the same 32 jobs as
# `stochlab sweep --workers 2`. Target: the sweep's wall time <= 1.25 x (sum of the jobs' own
# times) / 2.
set -euo pipefail
BIN=${BIN:-target/release/stochlab}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
lrs=(0.001 0.002 0.003 0.004 0.005 0.006 0.007 0.008)
start=$(date +%s%N)
for lr in "${lrs[@]}"; do
  for seed in 0 1 2 3; do
    "$BIN" train classifier --smoke -q --results "$tmp/plain" "optim.lr=$lr" --seed "$seed" >/dev/null
  done
done
plain=$(( ($(date +%s%N) - start) / 1000000 ))
start=$(date +%s%N)
"$BIN" sweep classifier --smoke -q --results "$tmp/sweep" --workers 2 --name overhead \
  "optim.lr=$(IFS=,; echo "${lrs[*]}")" seed=0..3 >/dev/null
sweep=$(( ($(date +%s%N) - start) / 1000000 ))
python3 - "$plain" "$sweep" "$(dirname "$0")" <<'PY'
import sys
sys.path.insert(0, sys.argv[3])
from common import record
plain, sweep = int(sys.argv[1]) / 1000, int(sys.argv[2]) / 1000
ratio = sweep / (plain / 2)
print(f"sweep overhead: 32 smoke jobs one by one {plain:.1f} s (half: {plain / 2:.1f} s); "
      f"sweep --workers 2 {sweep:.1f} s -> {ratio:.2f}x of half (target <= 1.25x) {'PASS' if ratio <= 1.25 else 'ABOVE TARGET'}")
record("sweep overhead: 32 smoke jobs, --workers 2 vs half their own times", sweep, plain / 2, "s", ratio, 1.25,
       higher_is_better=False)
PY
