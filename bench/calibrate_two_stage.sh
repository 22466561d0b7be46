#!/usr/bin/env bash
# Calibrate the two-stage methods' `cpu` preset (issue 14) on two CIFAR-10 classes, one
# thread, all 5,000 training images of the class:
#   OCVIS_DATA_ROOT=../shared/datasets bash bench/calibrate_two_stage.sh
# Rows (every detector's AUROC, wall and CPU seconds, the epochs as `overrides`) go to
# bench/results/cifar10_cpu_calibration.csv; rows already there are skipped.
# Epoch counts come from one-epoch timings (s per epoch on 5,000 images, one thread):
# rotnet ~85, contrastive-da ~110, contrastive ~45, dae ~35; plus ~100 s of scoring.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=1
cal() {  # method epochs [more --set]
  "$PY" -m ocvis bench --methods "$1" --dataset cifar10 --classes "${CLASSES:-0,3}" --seeds 0 \
    --preset cpu --n-train 5000 --set "epochs=$2" "${@:3}" --name cifar10_cpu_calibration
}
cal rotnet 12
cal contrastive-da 10
# the AUROC-per-minute slope: shorter and longer schedules on the same two classes
cal rotnet 4
cal contrastive-da 4
cal rotnet 18
