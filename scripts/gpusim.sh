#!/usr/bin/env bash
# gpusim.sh - run the GPU tests on a GPU simulator, on a machine without a GPU.
#
#   1. installs the harness at $MCGQ_GPUSIM_PREFIX (default /opt/gpgpusim), or
#      brings it up to date: ../shared/gpgpusim/setup.sh builds GPGPU-Sim
#      (functional mode, with the shared patches and the project's own in
#      tests/gpusim/patches/) and a private CUDA 11.8 toolchain, 3-9 min once;
#   2. configures and builds build-gpusim: the same sources, compiled by that
#      nvcc 11.8 for sm_70 with PTX embedded and the shared cudart (the
#      simulator stands in for libcudart.so), MCGQ_GPUSIM_RUN set so that the
#      gpu tests get the label gpusim and run through tests/gpusim/run_gtest.sh;
#   3. ctest -L gpusim: every GPU test case on the simulator, bit for bit
#      against the CPU reference (graph-capture and NCCL tests skip there,
#      saying why);
#   4. counts kernel launches per mcgqEncodeAsync / mcgqDecodeAverageAsync
#      call for 1, 10 and 161 (ResNet-50) layers from the simulator's log
#      (tests/gpusim/launch_probe.c), printed one line per case.
#
# What it proves: the kernels' PTX computes the CPU reference's bits; CUB
# 1.x, warp intrinsics, atomics, launch configurations and scratch layouts
# work; how many kernels a call launches.  What it cannot: races (blocks run
# one after another), real timing, ptxas code generation, CUDA graphs, NCCL.
#
# Environment: MCGQ_GPUSIM_PREFIX, JOBS (ctest -j and build), MCGQ_GPUSIM_DIR
# (build folder, default build-gpusim), MCGQ_GPUSIM_FILTER (a ctest -R regex,
# for a quick subset), MCGQ_GPUSIM_LAUNCHES_OUT (also write the launch table
# to this file).  Exit status: nonzero if the harness, the build, a test or
# the launch count failed.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PREFIX=${MCGQ_GPUSIM_PREFIX:-/opt/gpgpusim}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
BUILD=${MCGQ_GPUSIM_DIR:-build-gpusim}
HARNESS="$ROOT/../shared/gpgpusim/setup.sh"
say() { printf '\n==== gpusim.sh: %s\n' "$*"; }

# ---------------------------------------------------------------- 1. harness
# The shared harness plus the project's own simulator patches
# (tests/gpusim/patches/*.patch): setup.sh applies every *.patch beside it in
# name order and rebuilds the simulator when any patch changes, so it runs
# from a folder that holds both; when everything is current it only checks
# (a few seconds, no download).
if [[ -x $HARNESS ]]; then
  staged="${TMPDIR:-/tmp}/mcgq-gpusim-harness"
  rm -rf "$staged" && mkdir -p "$staged"
  cp "$(dirname "$HARNESS")"/setup.sh "$(dirname "$HARNESS")"/*.patch "$staged"/
  ln -s "$(dirname "$HARNESS")"/gpgpu-sim-*.tar.gz "$staged"/
  cp "$ROOT"/tests/gpusim/patches/*.patch "$staged"/
  say "GPU simulator harness at $PREFIX (first install or a changed patch: 3-9 minutes)"
  if ! PREFIX="$PREFIX" JOBS="$JOBS" "$staged/setup.sh"; then
    echo "gpusim.sh: harness setup failed" >&2
    exit 1
  fi
elif [[ -x $PREFIX/bin/gsim-run && -x $PREFIX/cuda-11.8/bin/nvcc ]]; then
  echo "gpusim.sh: no harness at $HARNESS: using the simulator installed at $PREFIX as it is"
else
  echo "gpusim.sh: no simulator at $PREFIX and no harness at $HARNESS" >&2
  exit 3
fi

# ---------------------------------------------------------- 2. configure+build
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
say "configure $BUILD (nvcc 11.8, sm_70 + PTX, shared cudart)"
cmake -S . -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DMCGQ_ENABLE_CUDA=ON \
  -DCMAKE_CUDA_COMPILER="$PREFIX/cuda-11.8/bin/nvcc" \
  -DCMAKE_CUDA_HOST_COMPILER=g++-11 \
  -DCMAKE_CUDA_ARCHITECTURES=70 \
  -DCMAKE_CUDA_RUNTIME_LIBRARY=Shared \
  -DMCGQ_GPUSIM_RUN="$PREFIX/bin/gsim-run" \
  -DMCGQ_ENABLE_MPI=OFF -DMCGQ_ENABLE_BENCH=OFF -DMCGQ_ENABLE_EXAMPLES=OFF \
  -DMCGQ_ENABLE_TOOLS=OFF || exit 1
say "build $BUILD"
cmake --build "$BUILD" -j "$JOBS" || exit 1
BUILD="$(cd "$BUILD" && pwd)"  # gsim-run runs programs in a folder of its own
# The simulator replaces libcudart.so.11.0; a binary that picked up another
# runtime would fail every CUDA call with "driver insufficient".
for bin in "$BUILD"/tests/mcgq_test_gpu_encode "$BUILD"/tests/mcgq_test_gpu_decode \
           "$BUILD"/tests/mcgq_gpusim_launch_probe; do
  if ! readelf -d "$bin" | grep -q 'libcudart.so.11.0'; then
    echo "gpusim.sh: $bin is not linked against libcudart.so.11.0" >&2
    exit 1
  fi
done

# --------------------------------------------------------------- 3. the tests
say "ctest -L gpusim -j $JOBS (simulator logs: $BUILD/gpusim-logs)"
rm -rf "$BUILD/gpusim-logs"
ctest --test-dir "$BUILD" -L gpusim -j "$JOBS" --output-on-failure \
  ${MCGQ_GPUSIM_FILTER:+-R "$MCGQ_GPUSIM_FILTER"} | tee "$BUILD/gpusim-ctest.txt"
tests_rc=${PIPESTATUS[0]}

# ------------------------------------------------------- 4. launches per call
say "kernel launches per call (counted in the simulator's log)"
probe_log="$BUILD/gpusim-logs/launch_probe.log"
mkdir -p "$BUILD/gpusim-logs"
probe_rc=0
if grep -q 'gpusim_launch_budget .*Passed' "$BUILD/gpusim-ctest.txt" 2>/dev/null; then
  # the ctest gpusim_launch_budget ran the probe in this run: read its log
  # rather than simulate the same calls again (about 4 minutes)
  probe_log="$BUILD/gpusim-logs/launch_budget.log"
else
  PYTORCH_BIN="$BUILD/host/libmcgq.so" GSIM_QUIET=1 GSIM_LOG="$probe_log" \
    "$PREFIX/bin/gsim-run" "$BUILD/tests/mcgq_gpusim_launch_probe" \
    "$ROOT/bench/models/resnet50.txt"
  probe_rc=$?
fi
table=$(python3 "$ROOT/tests/gpusim/count_launches.py" "$probe_log")
count_rc=$?
[[ $probe_rc != 0 ]] && { echo "gpusim.sh: launch probe exited $probe_rc (log: $probe_log)"; count_rc=1; }
echo "$table"
if [[ -n ${MCGQ_GPUSIM_LAUNCHES_OUT:-} ]]; then
  echo "$table" > "$MCGQ_GPUSIM_LAUNCHES_OUT"
fi

say "summary"
# why tests skipped on the simulator (their own words, from the logs)
grep -h '^GPU simulator: .*needs a real GPU' "$BUILD"/gpusim-logs/*.log 2>/dev/null | sort | uniq -c
# ctest's own summary lines, last, for test.sh and the reader
grep -E 'tests passed|tests failed out of|^Total Test time' "$BUILD/gpusim-ctest.txt"
if [[ $tests_rc != 0 || $count_rc != 0 ]]; then
  echo "gpusim.sh: FAILED (ctest exit $tests_rc, launch count exit $count_rc)"
  exit 1
fi
echo "gpusim.sh: all gpusim tests passed"
