#!/usr/bin/env bash
# make test-slurm: a real single-node Slurm (Debian's slurm-wlm and munge, no cgroups) runs a
# small sweep as a job array; checks every task completed and summary.csv; then requeues a
# running task (as preemption does) and checks it resumed from its checkpoint. Needs root.
set -euo pipefail
BIN=$(realpath "${BIN:-target/release/stochlab}")
host=$(hostname)
say() { echo "test-slurm: $*"; }
fail() { echo "test-slurm: FAIL: $*" >&2; exit 1; }

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  say "installing slurm-wlm and munge"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q slurm-wlm munge >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q slurm-wlm munge >/dev/null; }
fi

state=$(mktemp -d /tmp/stochlab-slurm.XXXX)
chmod 755 "$state"
cpus=$(nproc)
mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))
mkdir -p /etc/slurm "$state/spool" "$state/slurmd" /run/munge /var/log/munge /var/lib/munge
cat >/etc/slurm/slurm.conf <<CONF
ClusterName=stochlab-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
StateSaveLocation=$state/spool
SlurmdSpoolDir=$state/slurmd
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
cp /etc/slurm/slurm.conf /etc/slurm-llnl.conf 2>/dev/null || true

cleanup() {
  pkill -x slurmctld 2>/dev/null || true
  pkill -x slurmd 2>/dev/null || true
  sleep 1
}
trap cleanup EXIT
cleanup
[ -f /etc/munge/munge.key ] || { mkdir -p /etc/munge; dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; }
chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
chmod 400 /etc/munge/munge.key
pgrep -x munged >/dev/null || su -s /bin/sh munge -c munged 2>/dev/null || munged --force
slurmctld -c
slurmd -c
for _ in $(seq 60); do
  sinfo -h -o %T 2>/dev/null | grep -qE "idle|mix|alloc" && break
  sleep 1
done
sinfo -h -o %T | grep -qE "idle|mix|alloc" || { cat "$state/slurmctld.log" "$state/slurmd.log" >&2 || true; fail "the Slurm node never came up"; }
say "slurm is up ($(sinfo -h -o '%P %T %c'))"

results=$(mktemp -d /tmp/stochlab-slurm-results.XXXX)
wait_array() {
  local id=$1
  for _ in $(seq 600); do
    [ -z "$(squeue -h -j "$id" 2>/dev/null)" ] && return 0
    sleep 1
  done
  fail "array $id did not finish"
}

# 1. A small sweep as an array: every task completes; summary.csv groups the seeds.
"$BIN" sweep classifier optim.lr=0.01,0.02 seed=0..1 --smoke --name slurm-grid \
  --results "$results" --backend slurm --max-concurrent 2 --cpus-per-task 1 >"$state/submit.out"
id=$(cat "$results/sweeps/slurm-grid/slurm_job_id")
say "submitted array $id"
wait_array "$id"
"$BIN" sweep status "$results/sweeps/slurm-grid" | tee "$state/status.out"
grep -q "4 completed" "$state/status.out" || fail "not every array task completed"
"$BIN" sweep summary "$results/sweeps/slurm-grid" --group-by optim.lr >/dev/null
rows=$(tail -n +2 "$results/sweeps/slurm-grid/summary.csv" | awk -F, '$2 == 2' | wc -l)
[ "$rows" -eq 2 ] || fail "summary.csv should have 2 groups of 2 seeds: $(cat "$results/sweeps/slurm-grid/summary.csv")"

# 2. Preemption: requeue a running task; it checkpoints on SIGTERM and resumes when rerun.
"$BIN" sweep classifier data.n_train=100000 train.epochs=6 --name slurm-requeue \
  --results "$results" --backend slurm --requeue --cpus-per-task 1 >/dev/null
id=$(cat "$results/sweeps/slurm-requeue/slurm_job_id")
run_dir=$(find "$results/sweeps/slurm-requeue/runs" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | head -1)
for _ in $(seq 120); do
  run_dir=$(find "$results/sweeps/slurm-requeue/runs" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | head -1)
  [ -n "$run_dir" ] && [ -f "$run_dir/checkpoints/latest" ] && break
  sleep 1
done
[ -n "$run_dir" ] || fail "the requeue job never started"
say "requeueing ${id} while it runs"
scontrol requeue "${id}_0" 2>/dev/null || scontrol requeue "$id"
wait_array "$id"
for _ in $(seq 300); do
  grep -q '"status": "completed"' "$run_dir/run.json" 2>/dev/null && break
  sleep 1
  [ -z "$(squeue -h -j "$id" 2>/dev/null)" ] && ! grep -q '"status": "completed"' "$run_dir/run.json" && sleep 2
done
grep -q '"status": "completed"' "$run_dir/run.json" || fail "the requeued task did not complete: $(cat "$run_dir/run.json")"
grep -q '"from_epoch"' "$run_dir/run.json" || fail "the requeued task started over instead of resuming"
epochs=$(tail -n +2 "$run_dir/metrics.csv" | cut -d, -f1 | tr '\n' ' ')
[ "$epochs" = "1 2 3 4 5 6 " ] || fail "metrics.csv epochs after resume: $epochs"
say "requeued task resumed from its checkpoint ($(grep -c from_epoch "$run_dir/run.json") resume)"
rm -rf "$results" "$state"
say "ok"
echo "test-slurm: 2 passed, 0 failed"
