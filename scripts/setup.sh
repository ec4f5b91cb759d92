#!/usr/bin/env bash
# Installs every Debian package ScaleLab needs to build, test and run the demo.
# Idempotent: when everything is already present it prints one line and exits.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config clang-format
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  libpqxx-dev libpq-dev postgresql
  prometheus-cpp-dev libspdlog-dev libfmt-dev libyaml-cpp-dev
  libtorch-dev libopenblas0-pthread libgloo-dev
  libceres-dev libeigen3-dev gnuplot-nox
  libssl-dev catch2 curl dict-gcide
  slurm-wlm munge
)
# kubectl checks deploy/kubernetes offline (tests/launcher). Debian's kubernetes-client conflicts
# with another kubectl package (Google's) where one is already installed; either will do.
if ! command -v kubectl >/dev/null 2>&1; then PACKAGES+=(kubernetes-client); fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
