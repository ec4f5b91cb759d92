#!/usr/bin/env bash
# Collects what the runtime-only build (SCALELAB_RUNTIME_ONLY) needs and a lent GPU machine lacks
# into gpu-deps/ at the repository root (ignored by git), to be named in the device tool's `carry`.
# Run here, on the Debian 12 development machine; bench/gpu/run.sh uses the folder there.
#
#   bench/gpu/pack_deps.sh [--out DIR]      (default: <repo>/gpu-deps)
#
# What it takes, all from this machine's Debian packages, laid out as under /usr so that the
# packages' own CMake config files (which locate everything relative to themselves) still work:
#   protobuf   headers, libprotobuf.so (the generated messages link it) and protoc with the
#              shared libraries it runs on (behind a wrapper that sets LD_LIBRARY_PATH for it);
#   abseil     headers, every libabsl_*.so (abslTargets.cmake checks that each file it names
#              exists) and its CMake config;
#   yaml-cpp   headers, libyaml-cpp.so and its CMake config (runspec/ parses YAML);
#   Catch2     the v2 header, libCatch2WithMain.a and its CMake config (Catch.cmake included);
#   zlib       libz.so.1, apart: libprotobuf needs it, run.sh adds it only if the machine has none.
# It refuses to finish when the folder would exceed 48 MiB (the device tool carries at most 64 MiB
# with the working tree), and writes gpu-deps/MANIFEST: package versions, sizes, and the newest
# glibc and libstdc++ symbol versions the libraries need (run.sh checks them on the machine).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out="$repo/gpu-deps"
if [[ $# -ge 2 && $1 == --out ]]; then
  out=$2
elif [[ $# -gt 0 ]]; then
  echo "usage: $0 [--out DIR]" >&2
  exit 2
fi
multiarch=x86_64-linux-gnu
sys_lib=/usr/lib/$multiarch
limit_mib=48

require() {
  local path
  for path in "$@"; do
    if [[ ! -e $path ]]; then
      echo "pack_deps: missing $path; install the Debian package that has it" \
        "(libprotobuf-dev protobuf-compiler libabsl-dev libyaml-cpp-dev catch2)" >&2
      exit 1
    fi
  done
}
require /usr/include/google/protobuf/message.h /usr/include/absl/base/config.h \
  /usr/include/yaml-cpp/yaml.h /usr/include/catch2/catch.hpp /usr/bin/protoc \
  "$sys_lib/libprotobuf.so" "$sys_lib/cmake/absl/abslConfig.cmake" \
  "$sys_lib/cmake/yaml-cpp/yaml-cpp-config.cmake" /usr/lib/cmake/Catch2/Catch2Config.cmake \
  /usr/lib/libCatch2WithMain.a

rm -rf "$out"
mkdir -p "$out/usr/include/google" "$out/usr/lib/$multiarch/cmake" "$out/usr/lib/cmake" \
  "$out/protoc/bin" "$out/protoc/lib" "$out/zlib" "$out/bin"

# Headers.
cp -a /usr/include/google/protobuf "$out/usr/include/google/"
cp -a /usr/include/absl /usr/include/yaml-cpp /usr/include/catch2 "$out/usr/include/"

# Libraries (with their symlinks) and CMake configs.
cp -a "$sys_lib"/libprotobuf.so "$sys_lib"/libprotobuf.so.* "$out/usr/lib/$multiarch/"
cp -a "$sys_lib"/libabsl_*.so "$sys_lib"/libabsl_*.so.* "$out/usr/lib/$multiarch/"
cp -a "$sys_lib"/libyaml-cpp.so "$sys_lib"/libyaml-cpp.so.* "$out/usr/lib/$multiarch/"
cp -a "$sys_lib/cmake/absl" "$sys_lib/cmake/yaml-cpp" "$out/usr/lib/$multiarch/cmake/"
cp -a /usr/lib/cmake/Catch2 "$out/usr/lib/cmake/"
cp -a /usr/lib/libCatch2WithMain.a "$out/usr/lib/"

# protoc and what it runs on, apart from the libraries the build links.
cp /usr/bin/protoc "$out/protoc/bin/protoc"
for lib in libprotoc.so.32 libprotobuf.so.32; do
  cp -L "$sys_lib/$lib" "$out/protoc/lib/$lib"
done
cp -L "$(readlink -f /lib/$multiarch/libz.so.1)" "$out/zlib/libz.so.1"
cat >"$out/bin/protoc" <<'WRAP'
#!/bin/sh
# Debian 12's protoc, on the libraries carried beside it (and a carried zlib if needed). A protoc
# finds the well-known types (google/protobuf/timestamp.proto) only next to its own install
# prefix; here they are among the carried headers, so that folder is one more proto path.
here=$(cd "$(dirname "$0")/.." && pwd)
LD_LIBRARY_PATH="$here/protoc/lib:${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$here/zlib" \
  exec "$here/protoc/bin/protoc" "--proto_path=$here/usr/include" "$@"
WRAP
chmod +x "$out/bin/protoc"

# What the shared libraries need from the C and C++ runtimes of the machine they run on.
newest() {  # newest symbol version with prefix $1 among the ELF files given
  local prefix=$1
  shift
  objdump -T "$@" 2>/dev/null | grep -o "${prefix}_[0-9.]*" | sort -u -V | tail -1
}
shopt -s nullglob
elfs=("$out/usr/lib/$multiarch"/*.so.*.* "$out"/protoc/bin/protoc "$out"/protoc/lib/*.so.*)
{
  echo "# gpu-deps packed by bench/gpu/pack_deps.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host: $(grep -m1 "^PRETTY_NAME=" /etc/os-release | cut -d= -f2 | tr -d '"'), $(uname -m)"
  for pkg in libprotobuf-dev protobuf-compiler libabsl-dev libyaml-cpp-dev catch2 zlib1g; do
    echo "package: $pkg $(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null || echo '?')"
  done
  echo "needs: $(newest GLIBC "${elfs[@]}") $(newest GLIBCXX "${elfs[@]}") $(newest CXXABI "${elfs[@]}")"
  echo "size_kib: $(du -sk "$out" | cut -f1)"
} >"$out/MANIFEST"

size_mib=$(($(du -sk "$out" | cut -f1) / 1024))
if ((size_mib > limit_mib)); then
  echo "pack_deps: $out is $size_mib MiB, over the $limit_mib MiB allowed for carry" >&2
  exit 1
fi
cat "$out/MANIFEST"
echo "pack_deps: wrote $out ($size_mib MiB)"
