#!/usr/bin/env bash
# The README's demo end to end on a smaller sweep (examples/e2e-small.yaml), in a fresh state
# folder: embedded PostgreSQL, scheduler, two workers, GCIDE data, and the loss check.
#   run_demo.sh BUILD_DIR
set -euo pipefail
BUILD_DIR=$(cd "$1" && pwd)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STATE=$(mktemp -d /tmp/scalelab_e2e_XXXXXX)
chmod 755 "$STATE"
trap 'rm -rf "$STATE"' EXIT
SCALELAB_SKIP_SETUP=1 SCALELAB_SKIP_BUILD=1 SCALELAB_CHECK=1 \
  SCALELAB_BUILD_DIR="$BUILD_DIR" SCALELAB_STATE_DIR="$STATE" \
  bash "$ROOT/scripts/demo.sh" "$ROOT/examples/e2e-small.yaml" </dev/null
