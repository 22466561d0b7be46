#!/usr/bin/env bash
# Fill the three ICS-paper reproduction tables (issue 13: converged detectors, stored runs)
# with one bench process per core:
#   OCVIS_DATA_ROOT=../shared/datasets bash bench/fill_tables.sh [preset]
# Seed 0, all classes, the six methods of the paper  -> bench/results/<dataset>_<preset>.csv
# Seeds 1 and 2, ICS and CLS, two classes per dataset -> bench/results/<dataset>_<preset>_seeds.csv
# Each process runs one thread; rows already in a table are skipped (a stopped fill resumes),
# and both lanes share tables safely (rows are merged under a lock). Every row's run (its
# features and scores) is kept in $OCVIS_RUNS_DIR, so `python -m ocvis rescore TABLE`
# re-fits a detector without retraining. Logs: bench/results/fill_<lane>.log (not committed).
set -euo pipefail
cd "$(dirname "$0")/.."
PRESET=${1:-cpu}
PY=${PY:-.venv/bin/python}
M=ics,cls,cae,original,pca,hog
export OMP_NUM_THREADS=1
run() {  # run dataset classes seeds methods [name]
  local name=${5:-$1_$PRESET}
  nice -n 10 "$PY" -m ocvis bench --methods "$4" --dataset "$1" --classes "$2" \
    --seeds "$3" --preset "$PRESET" --name "$name"
}
lane_a() {
  run mnist all 0 "$M"
  run cifar10 0,1,2,3,4 0 "$M"
  run mnist 3,8 1,2 ics,cls "mnist_${PRESET}_seeds"
  run cifar10 0,3 1,2 ics,cls "cifar10_${PRESET}_seeds"
}
lane_b() {
  run fashion-mnist all 0 "$M"
  run cifar10 5,6,7,8,9 0 "$M"
  run fashion-mnist 0,6 1,2 ics,cls "fashion-mnist_${PRESET}_seeds"
}
lane_a > "bench/results/fill_a.log" 2>&1 &
lane_b > "bench/results/fill_b.log" 2>&1 &
wait
