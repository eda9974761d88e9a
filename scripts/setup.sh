#!/usr/bin/env bash
# Installs what building and testing mcgq needs on Debian/Ubuntu, and only
# what is missing: safe to run again (it then does nothing).
#   apt: build-essential cmake ninja-build libgtest-dev libbenchmark-dev
#        libopenmpi-dev openmpi-bin clang libclang-rt-<clang version>-dev
#   pip: numpy pytest matplotlib scikit-learn scikit-build-core, torch (CPU
#        wheel from download.pytorch.org when reachable, else PyPI's)
# As root it calls apt-get directly, otherwise through sudo.  The CUDA
# toolkit is not installed here (it is optional: without nvcc the library is
# built for the CPU only).
set -euo pipefail

APT_PACKAGES=(build-essential cmake ninja-build libgtest-dev libbenchmark-dev
              libopenmpi-dev openmpi-bin clang)
PY_MODULES=(numpy pytest matplotlib sklearn scikit_build_core)   # import names
declare -A PIP_NAME=([sklearn]=scikit-learn [scikit_build_core]=scikit-build-core)

say() { printf 'setup.sh: %s\n' "$*"; }

as_root() {
  if [[ $(id -u) == 0 ]]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else say "need root (or sudo) to run: $*" >&2; return 1
  fi
}

APT_UPDATED=0
apt_install() {  # apt_install <packages...>
  [[ $# -gt 0 ]] || return 0
  if ! command -v apt-get >/dev/null; then
    say "no apt-get here: install these yourself: $*" >&2
    return 1
  fi
  if [[ $APT_UPDATED == 0 ]]; then
    as_root apt-get update -qq
    APT_UPDATED=1
  fi
  say "apt-get install $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=()
for p in "${APT_PACKAGES[@]}"; do installed "$p" || missing+=("$p"); done
apt_install "${missing[@]}"

# libFuzzer and the sanitizer runtimes ship with clang's own version.
clang_major=$(clang --version 2>/dev/null | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -1)
if [[ -n $clang_major ]] && ! installed "libclang-rt-$clang_major-dev"; then
  if apt-cache show "libclang-rt-$clang_major-dev" >/dev/null 2>&1 ||
     { [[ $APT_UPDATED == 0 ]] && as_root apt-get update -qq && APT_UPDATED=1 &&
       apt-cache show "libclang-rt-$clang_major-dev" >/dev/null 2>&1; }; then
    apt_install "libclang-rt-$clang_major-dev"
  else
    say "no libclang-rt-$clang_major-dev package; assuming clang $clang_major ships libFuzzer itself"
  fi
fi

PYTHON=${PYTHON:-python3}
if ! command -v "$PYTHON" >/dev/null; then apt_install python3 python3-pip; fi
pip_missing=()
for m in "${PY_MODULES[@]}"; do
  "$PYTHON" -c "import $m" 2>/dev/null || pip_missing+=("${PIP_NAME[$m]:-$m}")
done
if [[ ${#pip_missing[@]} -gt 0 ]]; then
  "$PYTHON" -m pip --version >/dev/null 2>&1 || apt_install python3-pip
  say "pip install ${pip_missing[*]}"
  pip_args=(-q install)
  [[ $(id -u) == 0 ]] || pip_args+=(--user)
  # Debian's own python refuses pip installs (PEP 668) unless told otherwise.
  "$PYTHON" -m pip "${pip_args[@]}" "${pip_missing[@]}" ||
    "$PYTHON" -m pip "${pip_args[@]}" --break-system-packages "${pip_missing[@]}"
fi
# torch is only needed by the Python hook's tests; the CPU wheel is enough.
if ! "$PYTHON" -c "import torch" 2>/dev/null; then
  torch_args=(-q install)
  [[ $(id -u) == 0 ]] || torch_args+=(--user)
  say "pip install torch (CPU wheel)"
  "$PYTHON" -m pip "${torch_args[@]}" torch --index-url https://download.pytorch.org/whl/cpu ||
    "$PYTHON" -m pip "${torch_args[@]}" torch ||
    "$PYTHON" -m pip "${torch_args[@]}" --break-system-packages torch
fi
say "everything needed is installed"
