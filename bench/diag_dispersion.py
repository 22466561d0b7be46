"""Why ICS's latent collapses and whether dispersion can act (issue 13).

    OCVIS_DATA_ROOT=../shared/datasets OMP_NUM_THREADS=1 \\
        python bench/diag_dispersion.py mnist:4 fashion-mnist:0 [--variants paper,beta1,beta0.1,cls,cae]

For each task (4,000 training images, cpu preset, seed 0) trains CAE, CLS and ICS with the
paper's weights (alpha 1, beta 1e-5) and ICS variants with larger dispersion weights, then
reports for each: test AUROC of the (converged) OC-SVM, how saturated the sigmoid latent is
(share of values below 0.02 or above 0.98, mean per-dimension std), and the weighted loss
terms of the last epoch (does dispersion act at all?). Rows are appended to
bench/results/dispersion.csv as they finish (a stopped run keeps its rows).
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ocvis.experiment import run_experiment  # noqa: E402
from ocvis.runs import RunStore  # noqa: E402

VARIANTS = {
    "cae": ("cae", {}),
    "cls": ("cls", {}),
    "paper": ("ics", {}),
    "beta0.1": ("ics", {"beta1": 0.1, "beta2": 0.1}),
    "beta1": ("ics", {"beta1": 1.0, "beta2": 1.0}),
}
OUT = ROOT / "bench" / "results" / "dispersion.csv"
FIELDS = ["task", "variant", "method", "beta", "auroc", "saturated", "latent_std",
          "rec", "cls_w", "disp1_w", "disp2_w", "detector_ok", "outlier_frac", "run_id",
          "seconds"]


def last_epoch_terms(history: list[dict], weights: dict) -> dict:
    joint = [r for r in history if r.get("stage") == "joint"]
    if not joint:
        return {}
    last = max(r["epoch"] for r in joint)
    rec = [r["losses"] for r in joint if r["epoch"] == last]
    return {k: float(np.mean([r.get(k, 0.0) for r in rec])) * weights.get(k, 1.0)
            for k in ("rec", "cls", "disp1", "disp2")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tasks", nargs="+", help="dataset:class")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    args = ap.parse_args(argv)
    store = RunStore()
    done = set()
    if OUT.exists():
        done = {(r["task"], r["variant"]) for r in csv.DictReader(OUT.open())}
    for spec in args.tasks:
        ds, cls = spec.split(":")
        for v in args.variants.split(","):
            if (spec, v) in done:
                continue
            method, ov = VARIANTS[v]
            t0 = time.perf_counter()
            meta = run_experiment({"dataset": ds, "normal": [int(cls)], "n_train": 4000,
                                   "seed": 0}, method, "cpu", ov, store=store)
            arr = store.arrays(meta["id"])
            z = arr["train_latent"]
            cfg = meta["config"]
            w = {"cls": cfg.get("alpha", 0.0), "disp1": cfg.get("beta1", 0.0),
                 "disp2": cfg.get("beta2", 0.0)}
            terms = last_epoch_terms(store.history(meta["id"]), w)
            det = (meta.get("info") or {}).get("detector") or {}
            row = {"task": spec, "variant": v, "method": method,
                   "beta": cfg.get("beta1", ""), "auroc": f"{100 * meta['metrics']['auroc']:.2f}",
                   "saturated": f"{((z < 0.02) | (z > 0.98)).mean():.3f}",
                   "latent_std": f"{z.std(0).mean():.2e}",
                   "rec": f"{terms.get('rec', 0):.3e}", "cls_w": f"{terms.get('cls', 0):.3e}",
                   "disp1_w": f"{terms.get('disp1', 0):.3e}",
                   "disp2_w": f"{terms.get('disp2', 0):.3e}",
                   "detector_ok": int(bool(det.get("converged", True))),
                   "outlier_frac": f"{det.get('train_outlier_fraction', float('nan')):.3f}",
                   "run_id": meta["id"], "seconds": f"{time.perf_counter() - t0:.0f}"}
            new = not OUT.exists()
            with OUT.open("a", newline="") as f:
                wr = csv.DictWriter(f, fieldnames=FIELDS)
                if new:
                    wr.writeheader()
                wr.writerow(row)
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
