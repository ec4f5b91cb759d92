#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite: fast suites in parallel, then the slow ones
# (integration with real processes, the end-to-end demo) one at a time.
#   scripts/test.sh            build/ with the default options
# Environment: SCALELAB_BUILD_DIR (default build), SCALELAB_CMAKE_ARGS (extra cmake flags),
#              SCALELAB_SKIP_SETUP=1 to skip the package check, SCALELAB_SKIP_BUILD=1 when the
#              build folder is up to date already (CI builds it first).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BUILD_DIR=${SCALELAB_BUILD_DIR:-$ROOT/build}

if [ "${SCALELAB_SKIP_SETUP:-0}" != 1 ]; then bash scripts/setup.sh; fi
if [ "${SCALELAB_SKIP_BUILD:-0}" != 1 ]; then
  # shellcheck disable=SC2086
  cmake -S . -B "$BUILD_DIR" -G Ninja ${SCALELAB_CMAKE_ARGS:-} >/dev/null
  cmake --build "$BUILD_DIR" -j"$(nproc)"
fi
cd "$BUILD_DIR"
ctest --output-on-failure -LE slow -j"$(nproc)" --timeout 300
ctest --output-on-failure -L slow --timeout 900
