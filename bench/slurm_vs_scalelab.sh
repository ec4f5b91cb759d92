#!/usr/bin/env bash
# ScaleLab's dispatch rate against Slurm's on this machine, in one run (issue 9, "Speed and
# scale", third benchmark): N trivial runs dispatched to completion through ScaleLab's local
# workers, then N trivial `sbatch` jobs on a private single-node Slurm (scripts/slurm_local.sh,
# Debian's slurm-wlm with a minimal configuration: scheduler defaults, select/cons_tres,
# proctrack/pgid, no accounting). Prints both rates and their ratio.
#
#   bench/slurm_vs_scalelab.sh [N]          N defaults to 1000; e.g. 100 for a quick run
#
# Environment: SCALELAB_BUILD_DIR (default build; needs scalelab, scalelab-scheduler,
# scalelab-worker, scalelab-train), WORKERS (default 2) x SLOTS (default 1) run slots, and the
# Slurm node gets WORKERS x SLOTS CPUs, so both sides run as many jobs at once. BENCH_DIR
# (default /tmp/scalelab-slurm-bench) holds the database, data, logs and Slurm state.
#
# A trivial ScaleLab run is the smallest real run the trainer accepts: a 1-layer transformer of
# width 8 trained for one step of 64 tokens (one eval of 64 tokens at the end), a real
# `scalelab-train` child process per run, reporting its metrics and completion to the scheduler.
# A trivial Slurm job is `sbatch --wrap=true` (no trainer at all: the comparison flatters Slurm).
# Both clocks run from the first submission to the last completion.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${1:-1000}
BUILD_DIR=${SCALELAB_BUILD_DIR:-$ROOT/build}
BIN="$BUILD_DIR/bin"
WORKERS=${WORKERS:-2}
SLOTS=${SLOTS:-1}
BENCH_DIR=${BENCH_DIR:-/tmp/scalelab-slurm-bench}
for tool in scalelab scalelab-scheduler scalelab-worker scalelab-train; do
  [ -x "$BIN/$tool" ] || { echo "no $BIN/$tool: build it first" >&2; exit 1; }
done
rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR"

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  bash "$ROOT/scripts/slurm_local.sh" stop "$BENCH_DIR/slurm" >/dev/null 2>&1 || true
}
trap cleanup EXIT
now() { date +%s.%N; }

# --- ScaleLab --------------------------------------------------------------------------------
python3 -c "
import random
random.seed(1)
words = ['the', 'of', 'and', 'a', 'to', 'in', 'is', 'scale', 'law', 'run', 'token', 'model']
print(' '.join(random.choice(words) for _ in range(40000)))" >"$BENCH_DIR/corpus.txt"
"$BIN/scalelab" data --input="$BENCH_DIR/corpus.txt" --data_output="$BENCH_DIR/data/text" >/dev/null

"$BIN/scalelab-scheduler" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 \
  --data_dir="$BENCH_DIR" --port_file="$BENCH_DIR/scheduler.port" \
  >"$BENCH_DIR/scheduler.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 600); do [ -s "$BENCH_DIR/scheduler.port" ] && break; sleep 0.1; done
read -r GRPC_PORT _ <"$BENCH_DIR/scheduler.port"
export SCALELAB_ADDR=127.0.0.1:$GRPC_PORT
for n in $(seq 1 "$WORKERS"); do
  "$BIN/scalelab-worker" --scheduler="$SCALELAB_ADDR" --name="bench-worker-$n" \
    --cpu_slots="$SLOTS" --threads_per_run=1 --data_root="$BENCH_DIR" \
    --work_dir="$BENCH_DIR/worker-$n" --metrics_listen= >"$BENCH_DIR/worker-$n.log" 2>&1 &
  PIDS+=($!)
done

SEEDS=$(seq -s, 1 "$N")
cat >"$BENCH_DIR/trivial.yaml" <<YAML
name: trivial-runs
project: bench
kind: pretrain
base:
  model: {family: transformer, d_model: 8, n_layers: 1, n_heads: 1, seq_len: 16}
  data: {sources: {text: data/text}}
  train: {tokens: 64, batch_tokens: 64, lr: 1e-2, schedule: constant}
  eval: {every_tokens: 64, val_tokens: 64}
  resources: {cpus: 1}
sweep:
  grid: {train.seed: [$SEEDS]}
YAML
sleep 1  # the workers register
START=$(now)
SUBMITTED=$("$BIN/scalelab" submit "$BENCH_DIR/trivial.yaml" --output=json)
SWEEP=$(printf '%s' "$SUBMITTED" | sed -nE 's/^ *"id": "?([0-9]+)"?,?$/\1/p' | head -1)
"$BIN/scalelab" watch "$SWEEP" >"$BENCH_DIR/watch.log" 2>&1 || true
END=$(now)
"$BIN/scalelab" runs --sweep="$SWEEP" --output=json >"$BENCH_DIR/runs.json"
SUCCEEDED=$(grep -c '"RUN_STATE_SUCCEEDED"' "$BENCH_DIR/runs.json" || true)
SCALELAB_S=$(python3 -c "print(f'{$END - $START:.2f}')")
for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
PIDS=()
if [ "$SUCCEEDED" -ne "$N" ]; then
  echo "scalelab: only $SUCCEEDED of $N runs succeeded (logs in $BENCH_DIR)" >&2
  exit 1
fi

# --- Slurm -----------------------------------------------------------------------------------
bash "$ROOT/scripts/slurm_local.sh" start "$BENCH_DIR/slurm" $((WORKERS * SLOTS)) >/dev/null
export SLURM_CONF="$BENCH_DIR/slurm/slurm.conf"
START=$(now)
for _ in $(seq 1 "$N"); do
  sbatch --parsable --job-name=trivial --output=/dev/null --cpus-per-task=1 --wrap=true >/dev/null
done
while [ -n "$(squeue --noheader --name=trivial --states=PD,CF,R,CG --format=%i | head -1)" ]; do
  sleep 0.2
done
END=$(now)
COMPLETED=$(squeue --noheader --name=trivial --states=CD --format=%i | wc -l)
SLURM_S=$(python3 -c "print(f'{$END - $START:.2f}')")

python3 - "$N" "$SCALELAB_S" "$SLURM_S" "$COMPLETED" "$WORKERS" "$SLOTS" <<'PY'
import sys
n, ours_s, slurm_s, completed, workers, slots = sys.argv[1:]
n = int(n); ours_s = float(ours_s); slurm_s = float(slurm_s)
ours = n / ours_s; slurm = n / slurm_s
print(f"scalelab: {n} trivial runs in {ours_s:.1f} s = {ours:.2f} runs/s ({workers} workers x {slots} slots)")
print(f"slurm:    {n} trivial sbatch jobs in {slurm_s:.1f} s = {slurm:.2f} jobs/s "
      f"({completed} COMPLETED; node with {int(workers) * int(slots)} CPUs)")
print(f"ratio:    {ours / slurm:.2f}x Slurm (target >= 50x)")
PY
