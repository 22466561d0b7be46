#!/usr/bin/env bash
# Fill the three reproduction tables of issue 3 with one bench process per core.
#   OCVIS_DATA_ROOT=../shared/datasets bash bench/fill_tables.sh [preset]
# Each process runs one thread (about 1.4x the throughput of one two-thread process on
# these 2 cores); rows already in bench/results/<dataset>_<preset>.csv are skipped, and the
# two lanes share the CIFAR-10 table safely (rows are merged under a lock). Logs go to
# bench/results/fill_<lane>.log (not committed).
set -euo pipefail
cd "$(dirname "$0")/.."
PRESET=${1:-cpu}
PY=${PY:-.venv/bin/python}
M=ics,cls,cae,original,pca,hog
export OMP_NUM_THREADS=1
lane() {  # lane NAME dataset:classes ...
  local name=$1; shift
  for spec in "$@"; do
    nice -n 10 "$PY" -m ocvis bench --methods "$M" --dataset "${spec%%:*}" \
      --classes "${spec#*:}" --seeds 0 --preset "$PRESET"
  done > "bench/results/fill_$name.log" 2>&1
}
lane a mnist:all cifar10:0,1,2,3,4 &
lane b fashion-mnist:all cifar10:5,6,7,8,9 &
wait
