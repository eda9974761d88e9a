#!/usr/bin/env bash
# Installs a built mcgq into a scratch prefix, builds examples/embed against
# it with find_package(mcgq), and runs both programs on 2 MPI ranks.  The
# build dir must be built (everything its install rules name: cmake --build).
#   scripts/check_embed.sh [build-dir] [prefix]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
prefix=${2:-/tmp/mcgq-prefix}
embed_build=$(mktemp -d /tmp/mcgq-embed.XXXXXX)
trap 'rm -rf "$embed_build"' EXIT

cmake --install "$build" --prefix "$prefix"
cmake -S "$root/examples/embed" -B "$embed_build" -G Ninja \
      -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix"
cmake --build "$embed_build" -j2

mpirun_flags=(-np 2)
if [ "$(id -u)" = 0 ]; then mpirun_flags+=(--allow-run-as-root --oversubscribe); fi
export LD_LIBRARY_PATH="$prefix/lib:$prefix/lib64:${LD_LIBRARY_PATH:-}"
mpirun "${mpirun_flags[@]}" "$embed_build/c_train_step"
mpirun "${mpirun_flags[@]}" "$embed_build/cpp_framework"
echo "check_embed: OK"
