#!/usr/bin/env bash
# Training throughput and quality of scalelab-train on one CPU thread.
#
# Builds byte-level token shards of English text from the GCIDE dictionary (Debian package
# dict-gcide) with `scalelab data`, then trains a few model sizes on 1e6 tokens each and prints,
# per size: steps, mean training tokens/s (evaluation excluded), final val_loss, and the wall
# time. The unigram entropy of the training bytes (from meta.json) is printed first: a model that
# learned anything beyond byte frequencies ends well below it.
#
#   bench/train_throughput.sh [path/to/scalelab-train] [tokens]
#
# Defaults: build/bin/scalelab-train, 1e6 tokens; the `scalelab` CLI is taken from beside the
# trainer unless $SCALELAB_CLI names it. Scratch files go to $BENCH_DIR
# (default /tmp/scalelab-bench). Run it on an otherwise idle machine: the numbers are per core.
set -euo pipefail

TRAIN="${1:-build/bin/scalelab-train}"
TOKENS="${2:-1e6}"
BENCH_DIR="${BENCH_DIR:-/tmp/scalelab-bench}"
DICT=/usr/share/dictd/gcide.dict.dz
DATA="$BENCH_DIR/gcide"

CLI="${SCALELAB_CLI:-$(dirname "$TRAIN")/scalelab}"
if [[ ! -x "$TRAIN" ]]; then
  echo "no trainer at $TRAIN; build the scalelab-train target first" >&2
  exit 1
fi

# Older runs of this script left raw-byte train.bin/val.bin here; only llm.c shards are read now.
if ! grep -q '"format": "llmc-bin"' "$DATA/meta.json" 2>/dev/null; then
  [[ -r "$DICT" ]] || { echo "need $DICT (apt-get install dict-gcide)" >&2; exit 1; }
  [[ -x "$CLI" ]] || { echo "no scalelab CLI at $CLI; build the scalelab target first" >&2; exit 1; }
  mkdir -p "$BENCH_DIR"
  # 3 MB of dictionary text without its markup; the first 95% trains, the last 5% validates.
  # (zcat dies of SIGPIPE once head has enough; that is expected, not an error.)
  { zcat "$DICT" || true; } | head -c 3000000 | sed 's/<[^>]*>//g' > "$BENCH_DIR/corpus.txt"
  "$CLI" data --input="$BENCH_DIR/corpus.txt" --data_output="$DATA" --max_bytes=0 \
    --val_fraction=0.05
fi

# The loss of the best context-free byte model, in nats/token.
sed -E 's/.*"unigram_entropy_nats": ([0-9.]+).*/unigram entropy of the training bytes: \1 nats\/token/' \
  "$DATA/meta.json"

printf '%-40s %6s %12s %9s %8s\n' "config" "steps" "tokens/s" "val_loss" "wall_s"
for config in \
    "d_model: 32, n_layers: 2, n_heads: 4" \
    "d_model: 64, n_layers: 2, n_heads: 4" \
    "d_model: 96, n_layers: 3, n_heads: 4" \
    "d_model: 128, n_layers: 4, n_heads: 4"; do
  out="$BENCH_DIR/run.jsonl"
  spec="$BENCH_DIR/spec.yaml"
  # One RunSpec per size (runspec/spec_file.h); everything not named takes runspec's defaults.
  cat > "$spec" <<SPEC
kind: RUN_KIND_PRETRAIN
config:
  model: {$config, seq_len: 64}
  data: {sources: {gcide: "$DATA"}}
  train: {tokens: $TOKENS, batch_tokens: 4096, lr: 3e-3, warmup: 0.05}
  eval: {every_tokens: 2e5}
execution: {device: cpu, threads: 1}
SPEC
  start=$(date +%s.%N)
  "$TRAIN" --spec="$spec" > "$out" 2> "$BENCH_DIR/run.log"
  end=$(date +%s.%N)
  awk -v config="$config" -v wall="$(awk -v s="$start" -v e="$end" 'BEGIN { print e - s }')" '
    /"name":"tokens_per_s"/ { match($0, /"value":[^,]*/); tps += substr($0, RSTART + 8, RLENGTH - 8); n++ }
    /"name":"val_loss"/ { match($0, /"value":[^,]*/); val = substr($0, RSTART + 8, RLENGTH - 8) }
    /"name":"train_loss"/ { match($0, /"step":[0-9]*/); steps = substr($0, RSTART + 7, RLENGTH - 7) }
    END { printf "%-40s %6d %12.0f %9.4f %8.1f\n", config, steps, tps / n, val, wall }' "$out"
done
