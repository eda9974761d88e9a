#!/usr/bin/env bash
# launch_budget.sh GSIM_RUN LIBMCGQ PROBE MODEL_TABLE LOG
#
# ctest gpusim_launch_budget (label gpusim): runs tests/gpusim/launch_probe.c
# on the GPU simulator and fails when an encode call launches more than 16
# kernels or a decode-average call more than 8 (issue 13), for 1, 10 and 161
# layers, with the defaults and with every stage-adding option, or when the
# device codec's state commit (after an encode with deferred state) is more
# than one launch.
set -u
gsim_run=$1 lib=$2 probe=$3 table=$4 log=$5
mkdir -p "$(dirname "$log")"
PYTORCH_BIN="$lib" GSIM_QUIET=1 GSIM_LOG="$log" "$gsim_run" "$probe" "$table"
rc=$?
if [[ $rc != 0 ]]; then
  echo "launch_budget: probe exited $rc (log: $log)"
  grep '^launch_probe' "$log"
  exit 1
fi
python3 "$(dirname "$0")/count_launches.py" "$log" --budget=encode=16 --budget=decode=8 --budget=commit=1
