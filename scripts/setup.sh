#!/usr/bin/env bash
# Installs what building and testing mcgq needs on Debian/Ubuntu, and only
# what is missing: safe to run again (it then does nothing).
#   apt: build-essential cmake ninja-build libgtest-dev libbenchmark-dev
#        libopenmpi-dev openmpi-bin clang libclang-rt-<clang version>-dev
#   pip: numpy pytest matplotlib scikit-learn scikit-build-core, torch (CPU
#        wheel from download.pytorch.org when reachable, else PyPI's, which
#        is the CUDA build: about 4 GB with its nvidia-* wheels)
# As root it calls apt-get directly, otherwise through sudo.  The CUDA
# toolkit is not installed here (it is optional: without nvcc the library is
# built for the CPU only).  When another process holds apt's lock (e.g.
# unattended-upgrades on a fresh machine) it waits, saying so, instead of
# failing.
set -euo pipefail
# shellcheck source=waiting.sh
source "$(dirname "${BASH_SOURCE[0]}")/waiting.sh"

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
apt_update() {
  wait_for_apt_lock
  as_root apt-get "${APT_LOCK_WAIT[@]}" update -qq
  APT_UPDATED=1
}

apt_install() {  # apt_install <packages...>
  [[ $# -gt 0 ]] || return 0
  if ! command -v apt-get >/dev/null; then
    say "no apt-get here: install these yourself: $*" >&2
    return 1
  fi
  if [[ $APT_UPDATED == 0 ]]; then
    apt_update
  fi
  say "apt-get install $*"
  wait_for_apt_lock
  as_root env DEBIAN_FRONTEND=noninteractive apt-get "${APT_LOCK_WAIT[@]}" install -y -qq \
    --no-install-recommends "$@"
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=()
for p in "${APT_PACKAGES[@]}"; do installed "$p" || missing+=("$p"); done
apt_install "${missing[@]}"

# libFuzzer and the sanitizer runtimes ship with clang's own version.
clang_major=$(clang --version 2>/dev/null | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -1)
if [[ -n $clang_major ]] && ! installed "libclang-rt-$clang_major-dev"; then
  if apt-cache show "libclang-rt-$clang_major-dev" >/dev/null 2>&1 ||
     { [[ $APT_UPDATED == 0 ]] && apt_update &&
       apt-cache show "libclang-rt-$clang_major-dev" >/dev/null 2>&1; }; then
    apt_install "libclang-rt-$clang_major-dev"
  else
    say "no libclang-rt-$clang_major-dev package; assuming clang $clang_major ships libFuzzer itself"
  fi
fi

PYTHON=${PYTHON:-python3}
if ! command -v "$PYTHON" >/dev/null; then apt_install python3 python3-pip; fi
PIP_ARGS=(-q install)
[[ $(id -u) == 0 ]] || PIP_ARGS+=(--user)
# Debian's own python refuses pip installs (PEP 668) unless told otherwise;
# asking first avoids a failed attempt that prints pip's refusal.
if "$PYTHON" -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))'; then
  PIP_ARGS+=(--break-system-packages)
fi

# reachable URL: whether an HTTP(S) GET of URL answers within 10 s.
reachable() {
  "$PYTHON" - "$1" <<'PY' 2>/dev/null
import sys, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=10).close()
except Exception:
    sys.exit(1)
PY
}
pip_missing=()
for m in "${PY_MODULES[@]}"; do
  "$PYTHON" -c "import $m" 2>/dev/null || pip_missing+=("${PIP_NAME[$m]:-$m}")
done
if [[ ${#pip_missing[@]} -gt 0 ]]; then
  "$PYTHON" -m pip --version >/dev/null 2>&1 || apt_install python3-pip
  say "pip install ${pip_missing[*]}"
  with_progress "pip install ${pip_missing[*]}" "$PYTHON" -m pip "${PIP_ARGS[@]}" "${pip_missing[@]}"
fi
# torch is only needed by the Python hook's tests; the CPU wheel is enough.
# Only an index that answers is tried, so the expected fallback prints no
# errors.
TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
if ! "$PYTHON" -c "import torch" 2>/dev/null; then
  if reachable "$TORCH_CPU_INDEX/torch/"; then
    say "pip install torch (CPU wheel from $TORCH_CPU_INDEX, about 200 MB)"
    with_progress "pip install torch" "$PYTHON" -m pip "${PIP_ARGS[@]}" torch \
      --index-url "$TORCH_CPU_INDEX" || {
      say "the CPU wheel failed to install: trying PyPI's torch (the CUDA build, about 4 GB)"
      with_progress "pip install torch" "$PYTHON" -m pip "${PIP_ARGS[@]}" torch
    }
  else
    say "$TORCH_CPU_INDEX cannot be reached: pip install torch from PyPI, which is" \
        "the CUDA build (about 4 GB with its nvidia-* wheels; several minutes)"
    with_progress "pip install torch" "$PYTHON" -m pip "${PIP_ARGS[@]}" torch
  fi
fi
say "everything needed is installed"
