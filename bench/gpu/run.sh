#!/usr/bin/env bash
# The GPU benchmark of issue 6, in one command on a lent GPU machine (bench/README.md, "GPU
# benchmark", has the device tool's call). From the repository root, with gpu-deps/ carried:
#
#   bench/gpu/run.sh [OUT_DIR]          (default: $OUT, else ./gpu-out)
#
# Steps, each with its own time limit inside a total budget (SCALELAB_GPU_BUDGET_S, default 450 s,
# under the 8 minutes the issue allows and the device tool's 10-minute command limit):
#   1. the machine: GPU, driver, nvcc, g++, glibc, Python torch, against gpu-deps/MANIFEST;
#   2. the card's bf16 matrix rate through Python torch (8192^3, mean of 10 after 3 warm-ups;
#      independent of our build), then nvidia-smi samples in the background;
#   3. configure (bench/gpu/configure.sh: runtime-only, pip torch's LibTorch, CUDA arch 90) and
#      build the bench and the gpu-labelled tests with -j16, keeping going past a failed target;
#   4. the gpu-labelled test binaries, their measured errors collected ("measured ..." lines);
#   5. scalelab-train-bench --throughput: the 124M Transformer in bf16 autocast with our kernels,
#      batch chosen by memory, a fixed number of steps cut short by a time budget;
#   6. summary.json from all of it.
# Files in OUT_DIR (at most 8, for the device tool): run.log, build.log, tests.log, bench.jsonl,
# matmul_py.json, nvidia_smi.csv, summary.json. Exit status 0 when the bench line has an MFU.
# For a dry run on a machine without a GPU (every step runs, the tests skip, the bench refuses
# --device=cuda): SCALELAB_TORCH_PREFIX names a LibTorch's cmake prefix instead of python3's
# torch, SCALELAB_GPU_BUILD the build folder (default build-gpu).
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=${1:-${OUT:-$repo/gpu-out}}
mkdir -p "$out"
budget_s=${SCALELAB_GPU_BUDGET_S:-450}
start_s=$(date +%s)
build=${SCALELAB_GPU_BUILD:-$repo/build-gpu}
deps="$repo/gpu-deps"

elapsed() { echo $(($(date +%s) - start_s)); }
left() { echo $((budget_s - $(elapsed))); }
say() { echo "[run.sh +$(elapsed)s] $*"; }

# The steps, unindented for the Python heredocs inside; its output goes to run.log as well.
main() {
# ---- 1. The machine -------------------------------------------------------------------------
say "machine"
if [[ ! -f $deps/MANIFEST ]]; then
  say "FATAL: no gpu-deps/MANIFEST: run bench/gpu/pack_deps.sh here first and name gpu-deps in carry"
  return 1
fi
[[ -d /usr/local/cuda/bin ]] && export PATH="/usr/local/cuda/bin:$PATH"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader || true
nvcc --version | tail -2 || true
g++ --version | head -1 || true
ldd --version | head -1 || true
cmake --version | head -1 || true
say "gpu-deps needs: $(grep '^needs:' "$deps/MANIFEST")"
libstdcxx=$(g++ -print-file-name=libstdc++.so.6 2>/dev/null)
say "this libstdc++ has up to: $(strings "$libstdcxx" 2>/dev/null | grep -o '^GLIBCXX_[0-9.]*' | sort -V | tail -1)"
torch_prefix=${SCALELAB_TORCH_PREFIX:-$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null)}
say "python torch: $(python3 -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.is_available(), torch.compiled_with_cxx11_abi())' 2>&1 | tail -1)"
torch_lib=$(dirname "$torch_prefix")/../lib
if [[ -f $torch_lib/libtorch_cpu.so ]]; then
  say "libtorch_cpu.so defines google::protobuf symbols: $(nm -DC "$torch_lib/libtorch_cpu.so" | grep -c ' T google::protobuf')"
else
  say "no $torch_lib/libtorch_cpu.so to look into"
fi
if [[ -z $torch_prefix || ! -f $torch_prefix/Torch/TorchConfig.cmake ]]; then
  say "FATAL: no Torch/TorchConfig.cmake under '$torch_prefix' (python3's torch, or SCALELAB_TORCH_PREFIX)"
  return 1
fi

# ---- 2. The card's matrix rate through Python (before the build: no CPU contention), and
# nvidia-smi samples in the background --------------------------------------------------------
say "python matmul"
timeout 90 env -u LD_LIBRARY_PATH python3 - >"$out/matmul_py.json" <<'PY'
import json, time, torch
n, reps = 8192, 10
a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
for _ in range(3):
    a @ b
torch.cuda.synchronize()
t = time.perf_counter()
for _ in range(reps):
    a @ b
torch.cuda.synchronize()
seconds = (time.perf_counter() - t) / reps
print(json.dumps({"bench": "matmul_py", "n": n, "dtype": "bf16", "reps": reps,
                  "tflops": 2 * n**3 / seconds / 1e12, "torch": torch.__version__,
                  "device": torch.cuda.get_device_name()}))
PY
say "python matmul: $(cat "$out/matmul_py.json" 2>/dev/null)"
nvidia-smi --query-gpu=timestamp,memory.used,memory.total,utilization.gpu,clocks.sm,power.draw \
  --format=csv -l 1 >"$out/nvidia_smi.csv" 2>/dev/null &
smi_pid=$!

# ---- 3. Configure and build -----------------------------------------------------------------
export LD_LIBRARY_PATH="$deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# libprotobuf needs zlib; the carried one only where the machine has none.
ldconfig -p 2>/dev/null | grep -q 'libz.so.1 ' || export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$deps/zlib"
CUDACXX=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
export CUDACXX
export TORCH_CUDA_ARCH_LIST=9.0
say "configure (torch at $torch_prefix)"
if ! timeout 150 "$repo/bench/gpu/configure.sh" "$build" "$torch_prefix" 90 \
  -DCMAKE_CUDA_COMPILER="$CUDACXX" >"$out/build.log" 2>&1; then
  tail -40 "$out/build.log"
  say "FATAL: configure failed (build.log)"
  return 1
fi
targets=(scalelab-train-bench scalelab_kernels_gpu_test scalelab_model_gpu_test)
build_limit=$(($(left) - 120))
say "build ${targets[*]} with -j16, at most ${build_limit}s"
timeout "$build_limit" ninja -C "$build" -j16 -k 0 "${targets[@]}" >>"$out/build.log" 2>&1
build_status=$?
grep -E "error|FAILED" "$out/build.log" | head -30
say "build exit $build_status"

# ---- 4. The gpu-labelled tests --------------------------------------------------------------
: >"$out/tests.log"
for test in scalelab_kernels_gpu_test scalelab_model_gpu_test; do
  binary="$build/tests/model/$test"
  if [[ ! -x $binary ]]; then
    say "test $test: not built"
    continue
  fi
  timeout 60 "$binary" >>"$out/tests.log" 2>&1
  say "test $test: exit $? ($(grep -E '^(All tests passed|test cases:)' "$out/tests.log" | tail -1))"
done
grep -h "measured" "$out/tests.log" | sed 's/^ *//' | sort -u | head -60

# ---- 5. The 124M Transformer in bf16 ----------------------------------------------------------
bench_status=1
if [[ -x $build/bin/scalelab-train-bench ]]; then
  train_budget=$(($(left) - 60))
  ((train_budget > 90)) && train_budget=90
  say "scalelab-train-bench: timed steps cut at ${train_budget}s, process limit $(($(left) - 10))s"
  timeout $(($(left) - 10)) "$build/bin/scalelab-train-bench" --throughput --device=cuda \
    --precision=bf16 --configs=gpt124m --warmup=5 --steps=50 --time_budget_s="$train_budget" \
    >"$out/bench.jsonl" 2>"$out/bench.err"
  say "bench exit $?"
  cat "$out/bench.err" "$out/bench.jsonl"
  rm -f "$out/bench.err"
  grep -q '"mfu":' "$out/bench.jsonl" && bench_status=0
else
  say "scalelab-train-bench: not built"
fi

# ---- 6. Summary -----------------------------------------------------------------------------
env -u LD_LIBRARY_PATH python3 - "$out" "$build_status" "$(elapsed)" >"$out/summary.json" <<'PY'
import json, re, sys
out, build_status, elapsed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def lines(name):
    try:
        with open(f"{out}/{name}") as f:
            return [json.loads(l) for l in f if l.startswith("{")]
    except (OSError, ValueError):
        return []
try:
    tests = open(f"{out}/tests.log", errors="replace").read()
except OSError:
    tests = ""
summary = {
    "elapsed_s": elapsed,
    "build_exit": build_status,
    "matmul_py": (lines("matmul_py.json") or [None])[0],
    "bench": lines("bench.jsonl"),
    "tests_summary": re.findall(r"^(?:All tests passed.*|test cases:.*)$", tests, re.M),
    "tests_measured": sorted(set(m.strip() for m in re.findall(r"measured .*", tests))),
}
print(json.dumps(summary, indent=1))
PY
kill "$smi_pid" 2>/dev/null
say "done in $(elapsed)s; results in $out"
return $bench_status
}

main 2>&1 | tee -a "$out/run.log"
exit "${PIPESTATUS[0]}"
