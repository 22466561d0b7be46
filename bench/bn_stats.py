"""Which images the backbone's batch-norm statistics come from, and what that does to a
stored RotNet / Contrastive-DA run's scores.

    OCVIS_DATA_ROOT=../shared/datasets python bench/bn_stats.py RUN_ID [RUN_ID ...] \
        [--out bench/results/FILE.csv]

Until session 12, :mod:`ocvis.methods.two_stage` re-estimated the backbone's batch-norm
running statistics on the clean training images as they are (upright, un-augmented;
``bn_stats="clean"`` now); the MLP head kept the statistics of training, where every batch
mixes the four turns (RotNet, Contrastive-DA) of augmented views. The authors' code scores
with the moving averages of training (``bn_stats="training"``, the default now). For each
stored run this script re-estimates the backbone's statistics three ways, refits the
detectors on the training features and scores the test set:

* ``upright``: the clean training images (``bn_stats="clean"``);
* ``four-turns``: the clean training images under all four turns (training's mix of turns);
* ``training-views``: the augmented views of training, under all four turns for RotNet and
  Contrastive-DA (what the running averages of training estimate, like the authors' code
  and ``bn_stats="training"``).

Per variant: AUROC of every score and, for RotNet, the rotation head's accuracy per turn on
the first 1,000 clean training images. Nothing is written to the stored run.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from diag_rotation import turn_accuracy  # noqa: E402  (fractions per turn)

VARIANTS = ("upright", "four-turns", "training-views")


def _views(m, x: torch.Tensor, variant: str, g: torch.Generator) -> torch.Tensor:
    from ocvis import augment as A
    from ocvis.methods.two_stage import rotation_batch

    turns = m.name in ("rotnet", "contrastive-da")
    if variant == "upright" or (variant == "four-turns" and not turns):
        return x
    if variant == "training-views":
        c = m.config
        x = A.simclr_views(x, g, (getattr(c, "crop_scale", 0.25), 1.0),
                           getattr(c, "jitter", 0.4))
    return rotation_batch(x, g, 4)[0] if turns else x


def recalibrate(m, x: torch.Tensor, variant: str, seed: int = 0) -> None:
    """Re-estimate the backbone's batch-norm statistics on ``variant``'s views of ``x``."""
    from ocvis.train import recalibrate_batchnorm

    g = torch.Generator().manual_seed(seed)
    bb = m.backbone_
    batches = [_views(m, b, variant, g) for b in torch.split(x, 64)]
    recalibrate_batchnorm(bb, torch.cat(batches), m.device_)


def main(argv=None) -> int:
    from ocvis.experiment import load_run_method, task_of_run
    from ocvis.metrics import evaluate
    from ocvis.runs import RunStore

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--out", help="append one CSV row per run, variant and score")
    a = ap.parse_args(argv)
    store = RunStore()
    rows = []
    for rid in a.runs:
        meta = store.read(rid)
        task = task_of_run(meta)
        x = torch.as_tensor(task.x_train).float()
        xt = torch.as_tensor(task.x_test).float()
        y = np.asarray(task.y_test)
        for variant in VARIANTS:
            m = load_run_method(store, rid)  # a fresh copy: variants never stack
            recalibrate(m, x, variant)
            m.train_features_ = m.embed(x)
            m._fit_detector()
            scores = m.scores(xt)
            aurocs = {k: 100 * evaluate(v, y)["auroc"] for k, v in scores.items()}
            turns = [100 * t for t in turn_accuracy(m, x[:1000])] if m.name == "rotnet" else []
            print(f"{rid} {variant:15s} " + " ".join(f"{k} {v:.2f}" for k, v in aurocs.items())
                  + ("  turns " + " / ".join(f"{t:.1f}" for t in turns) if turns else ""),
                  flush=True)
            for k, v in aurocs.items():
                rows.append({"run_id": rid, "method": meta.get("method"),
                             "dataset": task.dataset,
                             "normal_class": ",".join(map(str, task.normal_classes)),
                             "variant": variant, "score": k, "auroc": f"{v:.2f}",
                             "turn_accuracy": " / ".join(f"{t:.1f}" for t in turns)})
    if a.out and rows:
        path = Path(a.out)
        new = not path.exists()
        with path.open("a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            if new:
                w.writeheader()
            w.writerows(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
