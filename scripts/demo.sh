#!/usr/bin/env bash
# The ScaleLab demo on the embedded default: installs packages, builds, prepares GCIDE text as
# byte-token shards, starts a private PostgreSQL + the scheduler + two CPU workers, submits a
# sweep, shows live progress, and prints each run's final validation loss from the store.
#
#   scripts/demo.sh [MANIFEST]            default examples/tiny-scaling.yaml; a pipeline manifest
#                                         (examples/sft-rl-study.yaml) ends with its evaluations
#                                         and `scalelab predict` instead of a scaling-law fit
# Environment:
#   SCALELAB_STATE_DIR  where the database, data and logs go (default .scalelab)
#   SCALELAB_BUILD_DIR  build folder (default build)
#   SCALELAB_SKIP_SETUP=1 / SCALELAB_SKIP_BUILD=1  skip those steps (used by the e2e test)
#   SCALELAB_CHECK=1    exit non-zero unless every run succeeded with a validation loss below
#                       the data's unigram entropy minus 0.5 nats
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
MANIFEST=${1:-examples/tiny-scaling.yaml}
STATE_DIR=$(mkdir -p "${SCALELAB_STATE_DIR:-$ROOT/.scalelab}" && cd "${SCALELAB_STATE_DIR:-$ROOT/.scalelab}" && pwd)
BUILD_DIR=${SCALELAB_BUILD_DIR:-$ROOT/build}
BIN="$BUILD_DIR/bin"
say() { printf '\033[1m== %s\033[0m\n' "$*"; }

if [ "${SCALELAB_SKIP_SETUP:-0}" != 1 ]; then
  say "installing packages (scripts/setup.sh)"
  bash scripts/setup.sh
fi
if [ "${SCALELAB_SKIP_BUILD:-0}" != 1 ]; then
  say "building into $BUILD_DIR"
  cmake -S . -B "$BUILD_DIR" -G Ninja >/dev/null
  cmake --build "$BUILD_DIR" -j"$(nproc)" --target scalelab scalelab-scheduler scalelab-worker scalelab-train
fi

DATA="$STATE_DIR/data/gcide"
if ! grep -q '"format": "llmc-bin"' "$DATA/meta.json" 2>/dev/null; then
  say "preparing GCIDE dictionary text as byte tokens in $DATA"
  "$BIN/scalelab" data --input=/usr/share/dictd/gcide.dict.dz --data_output="$DATA" \
    --skip_bytes=2000 --max_bytes=6000000
fi
ENTROPY=$(sed -E 's/.*"unigram_entropy_nats": ([0-9.]+).*/\1/' "$DATA/meta.json")

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

say "starting the scheduler (embedded PostgreSQL in $STATE_DIR/postgres or the folder it names)"
rm -f "$STATE_DIR/scheduler.port"
"$BIN/scalelab-scheduler" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 \
  --data_dir="$STATE_DIR" --port_file="$STATE_DIR/scheduler.port" \
  >"$STATE_DIR/scheduler.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 600); do
  [ -s "$STATE_DIR/scheduler.port" ] && break
  if ! kill -0 "${PIDS[0]}" 2>/dev/null; then
    echo "scheduler exited; its log:" >&2; tail -20 "$STATE_DIR/scheduler.log" >&2; exit 1
  fi
  sleep 0.1
done
read -r GRPC_PORT METRICS_PORT <"$STATE_DIR/scheduler.port"
# Running as root in a folder the OS user postgres cannot enter (a clone in /root), the
# scheduler keeps the cluster elsewhere and notes where (services/store/embedded_postgres.h).
if [ -s "$STATE_DIR/postgres/CLUSTER_LOCATION" ]; then
  echo "PostgreSQL cluster in $(cat "$STATE_DIR/postgres/CLUSTER_LOCATION") (user postgres cannot enter $STATE_DIR)"
fi
export SCALELAB_ADDR=127.0.0.1:$GRPC_PORT
echo "scheduler at $SCALELAB_ADDR, metrics at http://127.0.0.1:$METRICS_PORT/metrics"

for n in 1 2; do
  "$BIN/scalelab-worker" --scheduler="$SCALELAB_ADDR" --name="demo-worker-$n" --cpu_slots=1 \
    --threads_per_run=1 --data_root="$STATE_DIR" --work_dir="$STATE_DIR/worker-$n" \
    >"$STATE_DIR/worker-$n.log" 2>&1 &
  PIDS+=($!)
done

say "submitting $MANIFEST"
SUBMITTED=$("$BIN/scalelab" submit "$MANIFEST" --output=json)
SWEEP=$(printf '%s' "$SUBMITTED" | sed -nE 's/^ *"id": "?([0-9]+)"?,?$/\1/p' | head -1)
echo "sweep $SWEEP submitted"
START=$(date +%s)
"$BIN/scalelab" watch "$SWEEP"
ELAPSED=$(( $(date +%s) - START ))

if grep -qE '^stages:' "$MANIFEST"; then
  # A post-training study (a pipeline: pretrain -> SFT -> GRPO -> eval): no scaling-law fit; the
  # evaluations of every stage and the ranking of the RL-outcome proxies instead.
  say "the study's runs by stage, from the store (sweep took ${ELAPSED}s)"
  "$BIN/scalelab" status "$SWEEP"
  say "pass@k on the test split of every run"
  "$BIN/scalelab" evals sweep "$SWEEP" --split=test
  say "which post-SFT measure predicts the post-RL pass@1 best"
  "$BIN/scalelab" predict "$SWEEP" --points_out="$STATE_DIR/study-$SWEEP.csv"
  echo "the study's points: $STATE_DIR/study-$SWEEP.csv; logs: $STATE_DIR/*.log"
  exit 0
fi

say "final validation loss of each run, from the store (sweep took ${ELAPSED}s)"
"$BIN/scalelab" status "$SWEEP"
echo "unigram entropy of the training text: $ENTROPY nats/token (a model that ignores context)"

say "the fitted scaling law (the scheduler fits each finished fit group by itself)"
# (Read the whole answer first: with pipefail, `| grep -q` would fail the pipeline by SIGPIPE.)
for _ in $(seq 1 600); do
  FITS=$("$BIN/scalelab" fit "$SWEEP" --output=json 2>/dev/null || true)
  case "$FITS" in *'"law"'*) break ;; esac
  sleep 0.5
done
# The demo's runs use 1e10..1e13 FLOPs; allocations for budgets around and beyond them.
"$BIN/scalelab" fit "$SWEEP" --budgets=1e12,1e13,1e14,1e15
PLOT="$STATE_DIR/sweep-$SWEEP.svg"
if "$BIN/scalelab" plot "$SWEEP" --out="$PLOT"; then
  echo "plot of loss against compute, the fitted law, the frontier and isoFLOP minima: $PLOT"
fi
say "carbon of the sweep"
"$BIN/scalelab" report carbon "$SWEEP"
echo "logs: $STATE_DIR/{scheduler,worker-1,worker-2}.log; metrics: $STATE_DIR/worker-*/run-*"

if [ "${SCALELAB_CHECK:-0}" = 1 ]; then
  "$BIN/scalelab" runs --sweep="$SWEEP" --output=json >"$STATE_DIR/runs.json"
  python3 - "$STATE_DIR/runs.json" "$ENTROPY" <<'PY'
import json, sys
runs = json.load(open(sys.argv[1])).get("runs", [])
entropy = float(sys.argv[2])
bad = [r for r in runs if r.get("state") != "RUN_STATE_SUCCEEDED" or r.get("val_loss", 99) > entropy - 0.5]
for r in runs:
    print(f"check: run {r['id']} {r.get('state')} val_loss={r.get('val_loss')}")
if not runs or bad:
    sys.exit(f"check failed: {len(bad)} of {len(runs)} runs did not succeed below {entropy - 0.5:.3f} nats")
print(f"check passed: {len(runs)} runs succeeded below unigram entropy - 0.5 = {entropy - 0.5:.3f}")
no_record = [r["id"] for r in runs if int(r.get("record", {}).get("n_params", 0)) <= 0]
if no_record:
    sys.exit(f"check failed: runs {no_record} have no run record (N, D, C)")
PY
  "$BIN/scalelab" fit "$SWEEP" --output=json >"$STATE_DIR/fits.json"
  python3 - "$STATE_DIR/fits.json" "$PLOT" <<'PY'
import json, os, sys
fits = json.load(open(sys.argv[1])).get("fits", [])
usable = [f for f in fits if f.get("parameters")]
if not usable:
    sys.exit(f"check failed: no usable fit stored: {fits}")
plot = sys.argv[2]
if not os.path.exists(plot) or b"<svg" not in open(plot, "rb").read(4096):
    sys.exit(f"check failed: no SVG plot at {plot}")
print(f"check passed: {len(usable)} fit(s) stored ({usable[0]['law']}), plot at {plot}")
PY
fi
