#!/usr/bin/env bash
# run_gtest.sh GSIM_RUN LIBMCGQ BINARY [GTEST ARGS...]
#
# The ctest emulator of the gpusim label (tests/CMakeLists.txt): runs one
# GoogleTest binary on GPGPU-Sim through GSIM_RUN (the harness's gsim-run).
# - Test listing (--gtest_list_tests, at ctest time) runs natively: it makes
#   no CUDA call and must print nothing but the list.
# - The kernels live in LIBMCGQ (libmcgq.so); the simulator reads PTX from the
#   executable unless PYTORCH_BIN names the library that holds them.
# - The simulator writes hundreds of lines per launch to stdout, mixed with
#   the test's own output; all of it goes to a log under $MCGQ_GPUSIM_LOGS
#   (default: a temporary folder), and only the test's lines are echoed.
# Exit status: the test binary's.
set -u
gsim_run=$1 lib=$2 bin=$3
shift 3
for arg in "$@"; do
  [[ $arg == --gtest_list_tests ]] && exec "$bin" "$@"
done

logs=${MCGQ_GPUSIM_LOGS:-${TMPDIR:-/tmp}}
mkdir -p "$logs"
name=$(basename "$bin")
for arg in "$@"; do
  [[ $arg == --gtest_filter=* ]] && name="$name.${arg#--gtest_filter=}"
done
log="$logs/${name//[^A-Za-z0-9._-]/_}.log"

PYTORCH_BIN="$lib" GSIM_QUIET=1 GSIM_LOG="$log" "$gsim_run" "$bin" "$@"
rc=$?

# The test's own lines: from gtest's first line on, minus the simulator's
# chatter (each kernel launch prints a block of these).
sed -n '/^Running main() from/,$p' "$log" | grep -Ev \
  '^(GPGPU-Sim|gpgpu_|Destroy streams|padded cta size|Max CTA|Maximum size is|Calculate Maxium|self exe links|11\.0$|kernel_|event update|-+$|\s*$)' \
  | grep -v '^[[:space:]]*$'
launches=$(grep -c '^GPGPU-Sim PTX: cudaLaunch' "$log")
echo "gpusim: exit $rc, $launches kernel launches, simulator log: $log"
exit $rc
