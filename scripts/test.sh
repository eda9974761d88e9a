#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run):
#   1. scripts/setup.sh (installs what is missing)
#   2. build-ci: release build (+ CUDA for one architecture, sm_90, when nvcc
#      exists), ctest -L 'cpu|mpi|gpu' (gpu tests skip without a device)
#   gpusim. scripts/gpusim.sh: the GPU tests executed on GPGPU-Sim (functional
#      mode), bit for bit against the CPU reference; installs the simulator
#      harness from ../shared/gpgpusim on first use (3-9 min); kernel
#      launches per call
#   3. build-asan: ASan + UBSan build of the host code, ctest -L cpu
#   4. build-fuzz: clang + libFuzzer, ctest -L fuzz (MCGQ_FUZZ_SECONDS, 60 s)
#   5. pip install . (CPU-only wheel), pytest python/tests against it; this
#      includes test_readme.py, which runs README's Python snippets and its
#      `mcgq` commands (with build-ci/tools/mcgq)
# The summary gives passed / failed / skipped counts per stage; steps that
# print nothing for long (fuzzing, pip) say every 20 s that they still run.
# A stage whose part of the tree or toolchain is missing is skipped and says
# so.  Exit status: nonzero if any stage failed.
# Environment: MCGQ_SKIP_SETUP=1, MCGQ_FUZZ_SECONDS=N, JOBS=N,
#              MCGQ_CUDA_ARCH (default 90),
#              MCGQ_STAGES="build gpusim asan fuzz python".
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=waiting.sh
source scripts/waiting.sh
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
FUZZ_SECONDS=${MCGQ_FUZZ_SECONDS:-60}
CUDA_ARCH=${MCGQ_CUDA_ARCH:-90}
STAGES=${MCGQ_STAGES:-"build gpusim asan fuzz python"}
export CTEST_OUTPUT_ON_FAILURE=1
if [[ $(id -u) == 0 ]]; then
  # mpirun refuses root unless told; CI runs as root.
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMPI_MCA_rmaps_base_oversubscribe=1  # 4 ranks on 2 cores

SUMMARY=()
FAILED=0
T0=$SECONDS
banner() { printf '\n==== test.sh: %s\n' "$*"; }
record() {  # record <stage> <PASS|FAIL|SKIP> <note>
  SUMMARY+=("$(printf '%-8s %-5s %s' "$1" "$2" "$3")")
  [[ $2 == FAIL ]] && FAILED=1
  return 0
}
wanted() { [[ " $STAGES " == *" $1 "* ]]; }
elapsed() { local s=$((SECONDS - $1)); printf '%dm%02ds' $((s / 60)) $((s % 60)); }

GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)

# ctest_counts <ctest output file>: "N passed, F failed, S skipped" from
# ctest's summary ("X% tests passed, F tests failed out of T") and its list
# of skipped tests (skipped ones count as passed in ctest's summary).
ctest_counts() {
  local total failed skipped
  total=$(grep -oE 'tests failed out of [0-9]+' "$1" | tail -1 | grep -oE '[0-9]+$')
  failed=$(grep -oE '[0-9]+ tests failed out of' "$1" | tail -1 | grep -oE '^[0-9]+')
  skipped=$(grep -cE '\(Skipped\)$' "$1")
  [[ -z $total ]] && { echo "no ctest summary"; return; }
  echo "$((total - failed - skipped)) passed, ${failed} failed, ${skipped} skipped"
}

# pytest_counts <pytest output file>: "N passed, F failed, S skipped" from
# pytest's final line ("3 failed, 40 passed, 2 skipped in 9.1s"); errors in
# collection or fixtures count as failed.
pytest_counts() {
  local line n
  line=$(grep -E '[0-9]+ (passed|failed|skipped|errors?)' "$1" | tail -1)
  [[ -z $line ]] && { echo "no pytest summary"; return; }
  _pytest_num() { n=$(grep -oE "[0-9]+ $1" <<<"$line" | grep -oE "^[0-9]+"); echo "${n:-0}"; }
  echo "$(_pytest_num passed) passed, $(( $(_pytest_num failed) + $(_pytest_num 'errors?') )) failed," \
       "$(_pytest_num skipped) skipped"
}

# configure_build_test <stage> <dir> <ctest label regex> <cmake args...>
configure_build_test() {
  local stage=$1 dir=$2 labels=$3 t=$SECONDS
  shift 3
  banner "$stage: configure $dir ($*)"
  if ! cmake -S . -B "$dir" "${GEN[@]}" "$@"; then
    record "$stage" FAIL "configure failed ($dir)"; return 1
  fi
  banner "$stage: build $dir"
  if ! cmake --build "$dir" -j "$JOBS"; then
    record "$stage" FAIL "build failed ($dir)"; return 1
  fi
  banner "$stage: ctest -L '$labels' in $dir"
  local out="$dir/ctest-$stage.txt"
  ctest --test-dir "$dir" -L "$labels" --output-on-failure --timeout 300 | tee "$out"
  if [[ ${PIPESTATUS[0]} == 0 ]]; then
    record "$stage" PASS "ctest -L '$labels' in $dir: $(ctest_counts "$out") ($(elapsed "$t"))"
  else
    record "$stage" FAIL "ctest -L '$labels' in $dir: $(ctest_counts "$out") ($(elapsed "$t"))"
  fi
}

# ------------------------------------------------------------------ setup
if [[ ${MCGQ_SKIP_SETUP:-0} == 1 ]]; then
  record setup SKIP "MCGQ_SKIP_SETUP=1"
else
  banner "setup"
  if scripts/setup.sh; then record setup PASS "scripts/setup.sh"
  else record setup FAIL "scripts/setup.sh"; fi
fi

# ------------------------------------------------------- main build (+CUDA)
NVCC=$(command -v nvcc || true)
[[ -z $NVCC && -x /usr/local/cuda/bin/nvcc ]] && NVCC=/usr/local/cuda/bin/nvcc
if wanted build; then
  if [[ -n $NVCC ]]; then
    CUDA_ARGS=(-DMCGQ_ENABLE_CUDA=ON -DCMAKE_CUDA_COMPILER="$NVCC"
               -DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCH")
  else
    echo "test.sh: no nvcc: building the CPU library only (gpu tests are not built)"
    CUDA_ARGS=(-DMCGQ_ENABLE_CUDA=OFF)
  fi
  configure_build_test build build-ci 'cpu|mpi|gpu' -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    "${CUDA_ARGS[@]}"
else
  record build SKIP "not in MCGQ_STAGES"
fi

# ------------------------------------------- GPU tests on the GPU simulator
if ! wanted gpusim; then
  record gpusim SKIP "not in MCGQ_STAGES"
elif [[ ! -x ${MCGQ_GPUSIM_PREFIX:-/opt/gpgpusim}/bin/gsim-run && ! -x ../shared/gpgpusim/setup.sh ]]; then
  record gpusim SKIP "no simulator installed and no harness at ../shared/gpgpusim"
else
  banner "gpusim: scripts/gpusim.sh (GPU tests on GPGPU-Sim)"
  t=$SECONDS
  mkdir -p build-gpusim
  JOBS=$JOBS scripts/gpusim.sh 2>&1 | tee build-gpusim/gpusim-stage.txt
  if [[ ${PIPESTATUS[0]} == 0 ]]; then
    record gpusim PASS "ctest -L gpusim in build-gpusim: $(ctest_counts build-gpusim/gpusim-stage.txt) ($(elapsed "$t"))"
  else
    record gpusim FAIL "ctest -L gpusim in build-gpusim: $(ctest_counts build-gpusim/gpusim-stage.txt) ($(elapsed "$t"))"
  fi
fi

# ------------------------------------------------------ ASan + UBSan (cpu)
if ! wanted asan; then
  record asan SKIP "not in MCGQ_STAGES"
elif ! grep -q MCGQ_ENABLE_SANITIZERS CMakeLists.txt; then
  record asan SKIP "CMakeLists.txt has no MCGQ_ENABLE_SANITIZERS option"
else
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  configure_build_test asan build-asan cpu -DCMAKE_BUILD_TYPE=Debug \
    -DMCGQ_ENABLE_SANITIZERS=ON -DMCGQ_ENABLE_CUDA=OFF -DMCGQ_ENABLE_MPI=OFF \
    -DMCGQ_ENABLE_BENCH=OFF -DMCGQ_ENABLE_EXAMPLES=OFF
fi

# ------------------------------------------------------------ libFuzzer
if ! wanted fuzz; then
  record fuzz SKIP "not in MCGQ_STAGES"
elif [[ ! -f tests/fuzz/CMakeLists.txt ]]; then
  record fuzz SKIP "tests/fuzz does not exist"
elif ! command -v clang >/dev/null || ! command -v clang++ >/dev/null; then
  record fuzz SKIP "no clang/clang++"
else
  t=$SECONDS
  FUZZ_ARGS=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang
             -DCMAKE_CXX_COMPILER=clang++ -DMCGQ_ENABLE_FUZZ=ON -DMCGQ_ENABLE_CUDA=OFF
             -DMCGQ_ENABLE_MPI=OFF -DMCGQ_ENABLE_BENCH=OFF -DMCGQ_ENABLE_EXAMPLES=OFF
             -DMCGQ_ENABLE_TOOLS=OFF -DMCGQ_FUZZ_SECONDS="$FUZZ_SECONDS")
  banner "fuzz: configure build-fuzz"
  if ! cmake -S . -B build-fuzz "${GEN[@]}" "${FUZZ_ARGS[@]}"; then
    record fuzz FAIL "configure failed (build-fuzz)"
  else
    # Only the fuzzers and their corpus: the rest of the suite is covered
    # by the asan stage.
    targets=$(cmake --build build-fuzz --target help 2>/dev/null |
              grep -o '^mcgq_fuzz[A-Za-z0-9_]*' | sort -u | tr '\n' ' ')
    banner "fuzz: build ${targets:-all}"
    # shellcheck disable=SC2086
    if ! cmake --build build-fuzz -j "$JOBS" ${targets:+--target $targets}; then
      record fuzz FAIL "build failed (build-fuzz)"
    else
      banner "fuzz: ctest -L fuzz (${FUZZ_SECONDS} s per fuzzer)"
      out=build-fuzz/ctest-fuzz.txt
      MCGQ_FUZZ_SECONDS=$FUZZ_SECONDS with_progress "fuzzing" \
        ctest --test-dir build-fuzz -L fuzz --output-on-failure 2>&1 | tee "$out"
      if [[ ${PIPESTATUS[0]} == 0 ]]; then
        record fuzz PASS "ctest -L fuzz, ${FUZZ_SECONDS} s each: $(ctest_counts "$out") ($(elapsed "$t"))"
      else
        record fuzz FAIL "ctest -L fuzz: $(ctest_counts "$out") ($(elapsed "$t"))"
      fi
    fi
  fi
fi

# ---------------------------------------------------------------- Python
if ! wanted python; then
  record python SKIP "not in MCGQ_STAGES"
elif [[ ! -d python/tests ]]; then
  record python SKIP "python/tests does not exist"
else
  # Test the package as a user gets it: `pip install .` (CPU-only here, the
  # wheel never links NCCL: see pyproject.toml), then pytest against the
  # installed copy, not the source folder.
  banner "python: pip install . + pytest python/tests"
  t=$SECONDS
  if ! with_progress "pip install ." python3 -m pip install -q --no-build-isolation . \
       -C cmake.define.MCGQ_ENABLE_CUDA=OFF -C build-dir=build-wheel; then
    record python FAIL "pip install . failed"
  fi
  # README's `mcgq` commands run against the build stage's CLI (test_readme.py
  # skips them, saying why, when there is none).
  [[ -x build-ci/tools/mcgq ]] && export MCGQ_CLI="$ROOT/build-ci/tools/mcgq"
  mkdir -p build-wheel
  out="$ROOT/build-wheel/pytest.txt"
  (cd python/tests &&
   MCGQ_VECTORS_DIR="$ROOT/tests/vectors" MCGQ_README="$ROOT/README.md" \
     python3 -m pytest -q -p no:cacheprovider -rs .) 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  case $rc in
    0) record python PASS "pytest python/tests: $(pytest_counts "$out") ($(elapsed "$t"))" ;;
    5) record python SKIP "pytest collected no tests" ;;
    *) record python FAIL "pytest python/tests exited $rc: $(pytest_counts "$out") ($(elapsed "$t"))" ;;
  esac
fi

banner "summary ($(elapsed "$T0"))"
printf '  %s\n' "${SUMMARY[@]}"
if [[ $FAILED != 0 ]]; then
  echo "test.sh: FAILED"
  exit 1
fi
echo "test.sh: all stages that ran passed"
