"""Reconstruction quality of the splitting autoencoder (issue 20): SSIM of each normal
training image to its reconstruction, with and without re-estimating the batch-norm
statistics after training (``bn_recalibrate``), ``cpu`` preset.

    OCVIS_DATA_ROOT=../shared/datasets python bench/split_quality.py digits:0 mnist:3 cifar10:0

Writes bench/results/split_quality.csv (one row per task and setting).
"""
from __future__ import annotations

import csv
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ocvis.data import make_task  # noqa: E402
from ocvis.methods.split_ae import SPLIT_PRESETS, SplitAutoencoder, SplitConfig  # noqa: E402
from ocvis.ssim import ssim  # noqa: E402


def main(specs: list[str]) -> int:
    rows = []
    for spec in specs:
        ds, cls = spec.split(":")
        task = make_task(ds, normal=[int(cls)], n_train=None if ds == "digits" else 4000)
        x = task.x_train
        for recal in (False, True):
            m = SplitAutoencoder(SplitConfig(**SPLIT_PRESETS["cpu"], reuse_pretrain=False,
                                             bn_recalibrate=recal))
            t0 = time.perf_counter()
            m.pretrain(x)
            xh = m.reconstruct(x)
            s = ssim(x, xh).numpy()
            row = {"task": spec, "n": len(x), "bn_recalibrate": int(recal),
                   "steps": len(m.history), "train_s": f"{time.perf_counter() - t0:.1f}",
                   "ssim_min": f"{s.min():.3f}", "ssim_median": f"{np.median(s):.3f}",
                   "ssim_max": f"{s.max():.3f}",
                   "recon_std": f"{xh.flatten(1).std(1).mean():.4f}",
                   "input_std": f"{x.flatten(1).std(1).mean():.4f}",
                   "mse": f"{((x - xh) ** 2).mean():.4f}", "threads": torch.get_num_threads()}
            rows.append(row)
            print(row, flush=True)
    out = ROOT / "bench" / "results" / "split_quality.csv"
    with out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:] or ["digits:0", "mnist:3", "cifar10:0"]))
