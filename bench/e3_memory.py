"""Peak memory of E3Outlier with all K = 111 operations on CIFAR-10 (issue 17).

    OCVIS_DATA_ROOT=../shared/datasets python bench/e3_memory.py [--images 500] [--widen 4]
    # -> appends a row to bench/results/e3_memory.csv

Loads the whole CIFAR-10 dataset and builds the unsupervised task (inlier class 0, 10 %
outliers: 6,667 images), fits E3Outlier with the paper's operation set (111) and network
(WRN-10-4), one epoch with one operation per image, and scores with every operation: the
transformed views are made per batch (at most ``score_views`` per forward pass), so
memory does not grow with N x K. ``--images`` subsamples the contaminated set to keep the run
short on a CPU (the peak comes from a batch, not from N); 0 = all 6,667 (``--widen 2``, the
`cpu` preset's width: 69 s on 500 images, 858 s on all, one core, 2026-12-07; WRN-10-4 has
about four times the convolutions). Reports the process's
peak RSS (``ocvis.memory.peak_rss_mib``) after loading, after fit, after scoring, next to
what materialising the N x K views would take.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--widen", type=int, default=4)
    args = ap.parse_args(argv)
    from ocvis.bench import append_result
    from ocvis.memory import peak_rss_mib
    from ocvis.data import make_task
    from ocvis.methods import make_method

    t0 = time.time()
    task = make_task("cifar10", "unsupervised", 0, ratio=10.0)
    n_full = len(task.x_train)
    if args.images:
        k = args.images
        task = replace(task, x_train=task.x_train[:k], x_test=task.x_train[:k],
                       y_test=task.y_test[:k], y_train_hidden=task.y_train_hidden[:k])
    after_load = peak_rss_mib()
    m = make_method("e3outlier", "paper", epochs=1, ops_per_image=1, widen=args.widen)
    m.fit(task)
    after_fit = peak_rss_mib()
    s = m.scores(task.x_test)
    after_score = peak_rss_mib()
    n = len(task.x_train)
    views_gib = n_full * 111 * 3 * 32 * 32 * 4 / 2 ** 30
    row = {"images": n, "contaminated_set": n_full, "operations": 111,
           "network": f"WRN-10-{args.widen}", "rss_after_load_mib": f"{after_load:.0f}",
           "rss_after_fit_mib": f"{after_fit:.0f}", "rss_peak_mib": f"{after_score:.0f}",
           "materialised_views_gib": f"{views_gib:.1f}",
           "scores_finite": int(all(abs(v).max() < float("inf") for v in s.values())),
           "seconds": f"{time.time() - t0:.0f}", "date": time.strftime("%Y-%m-%d %H:%M")}
    out = ROOT / "bench" / "results" / "e3_memory.csv"
    append_result(out, row)
    print(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
