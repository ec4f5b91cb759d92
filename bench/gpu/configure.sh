#!/usr/bin/env bash
# Configures the runtime-only build (SCALELAB_RUNTIME_ONLY) on the libraries packed by
# bench/gpu/pack_deps.sh into gpu-deps/: protobuf, abseil, yaml-cpp and Catch2 come only from
# there, LibTorch from the prefix given. Used by bench/gpu/run.sh on a lent GPU machine, and here
# to check the same configure against Debian's CPU LibTorch.
#
#   bench/gpu/configure.sh BUILD_DIR TORCH_CMAKE_PREFIX [CUDA_ARCHS] [extra cmake args...]
#
# TORCH_CMAKE_PREFIX: the folder holding Torch/TorchConfig.cmake's parent, e.g. the output of
# python3 -c 'import torch; print(torch.utils.cmake_prefix_path)'. CUDA_ARCHS defaults to 90.
set -euo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: $0 BUILD_DIR TORCH_CMAKE_PREFIX [CUDA_ARCHS] [cmake args...]" >&2
  exit 2
fi
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=$1
torch_prefix=$2
archs=${3:-90}
shift $(($# < 3 ? $# : 3))
deps="$repo/gpu-deps"
lib="$deps/usr/lib/x86_64-linux-gnu"
if [[ ! -f $deps/MANIFEST ]]; then
  echo "configure: no $deps/MANIFEST; run bench/gpu/pack_deps.sh first (and carry gpu-deps)" >&2
  exit 1
fi
if [[ ! -f $torch_prefix/Torch/TorchConfig.cmake ]]; then
  echo "configure: no Torch/TorchConfig.cmake under $torch_prefix" >&2
  exit 1
fi

cmake -S "$repo" -B "$build" -G Ninja \
  -DCMAKE_BUILD_TYPE=Release \
  -DSCALELAB_RUNTIME_ONLY=ON \
  -DSCALELAB_CUDA_ARCHS="$archs" \
  -DCMAKE_CUDA_ARCHITECTURES="$archs" \
  -DCMAKE_PREFIX_PATH="$torch_prefix" \
  -DTorch_DIR="$torch_prefix/Torch" \
  -Dabsl_DIR="$lib/cmake/absl" \
  -Dyaml-cpp_DIR="$lib/cmake/yaml-cpp" \
  -DCatch2_DIR="$deps/usr/lib/cmake/Catch2" \
  -DProtobuf_INCLUDE_DIR="$deps/usr/include" \
  -DProtobuf_LIBRARY="$lib/libprotobuf.so" \
  -DProtobuf_PROTOC_EXECUTABLE="$deps/bin/protoc" \
  "$@"
