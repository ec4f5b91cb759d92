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
# scalelab-worker, scalelab-train), SCALELAB_TRAINER (default the build's scalelab-train; e.g.
# another build's when this one has no model), WORKERS (default 4) x SLOTS (default 4) run
# slots, and the Slurm node gets WORKERS x SLOTS CPUs, so both sides run as many jobs at once.
# BENCH_DIR (default /tmp/scalelab-slurm-bench) holds the database, data, logs and Slurm state.
# SIDES=scalelab or SIDES=slurm runs one side only (while developing; no ratio then).
#
# Also printed: the scheduler's own time per call of the worker's RPCs (its
# scalelab_scheduler_rpc_duration_seconds histogram: mean and the bucket bound under which 99%
# fell), i.e. the lease and report round trips without the network.
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
WORKERS=${WORKERS:-4}
SLOTS=${SLOTS:-4}
SIDES=${SIDES:-both}
TRAINER=${SCALELAB_TRAINER:-$BIN/scalelab-train}
BENCH_DIR=${BENCH_DIR:-/tmp/scalelab-slurm-bench}
for tool in "$BIN/scalelab" "$BIN/scalelab-scheduler" "$BIN/scalelab-worker" "$TRAINER"; do
  [ -x "$tool" ] || { echo "no $tool: build it first" >&2; exit 1; }
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

SCALELAB_S=""
SLURM_S=""
COMPLETED=""
# --- ScaleLab --------------------------------------------------------------------------------
if [ "$SIDES" != slurm ]; then
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
read -r GRPC_PORT METRICS_PORT <"$BENCH_DIR/scheduler.port"
export SCALELAB_ADDR=127.0.0.1:$GRPC_PORT
for n in $(seq 1 "$WORKERS"); do
  "$BIN/scalelab-worker" --scheduler="$SCALELAB_ADDR" --name="bench-worker-$n" \
    --cpu_slots="$SLOTS" --threads_per_run=1 --data_root="$BENCH_DIR" --trainer="$TRAINER" \
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
curl -s "http://127.0.0.1:$METRICS_PORT/metrics" >"$BENCH_DIR/scheduler.metrics" || true
for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
PIDS=()
if [ "$SUCCEEDED" -ne "$N" ]; then
  echo "scalelab: only $SUCCEEDED of $N runs succeeded (logs in $BENCH_DIR)" >&2
  exit 1
fi
python3 - "$BENCH_DIR/scheduler.metrics" <<'PY'
import re, sys
buckets, sums, counts = {}, {}, {}
for line in open(sys.argv[1]):
    m = re.match(r'scalelab_scheduler_rpc_duration_seconds_(bucket|sum|count)\{(.*)\} (\S+)', line)
    if not m:
        continue
    kind, labels, value = m.group(1), dict(re.findall(r'(\w+)="([^"]*)"', m.group(2))), float(m.group(3))
    method = labels.get('method')
    if kind == 'bucket':
        buckets.setdefault(method, []).append((float(labels['le']), value))
    elif kind == 'sum':
        sums[method] = value
    else:
        counts[method] = value
for method in ('LeaseRuns', 'ReportMetrics', 'ReportArtifacts', 'CompleteRun', 'Heartbeat'):
    n = counts.get(method, 0)
    if not n:
        continue
    p99 = next((le for le, c in sorted(buckets[method]) if c >= 0.99 * n), float('inf'))
    print(f"scheduler {method}: {int(n)} calls, mean {1000 * sums[method] / n:.2f} ms, "
          f"99% under {1000 * p99:g} ms")
PY
fi

# --- Slurm -----------------------------------------------------------------------------------
if [ "$SIDES" != scalelab ]; then
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
fi

python3 - "$N" "$SCALELAB_S" "$SLURM_S" "$COMPLETED" "$WORKERS" "$SLOTS" <<'PY'
import sys
n, ours_s, slurm_s, completed, workers, slots = sys.argv[1:]
n = int(n)
if ours_s:
    ours = n / float(ours_s)
    print(f"scalelab: {n} trivial runs in {float(ours_s):.1f} s = {ours:.2f} runs/s "
          f"({workers} workers x {slots} slots)")
if slurm_s:
    slurm = n / float(slurm_s)
    print(f"slurm:    {n} trivial sbatch jobs in {float(slurm_s):.1f} s = {slurm:.2f} jobs/s "
          f"({completed} COMPLETED; node with {int(workers) * int(slots)} CPUs)")
if ours_s and slurm_s:
    print(f"ratio:    {ours / slurm:.2f}x Slurm (target >= 50x)")
PY
