"""What CLAD's pseudo-labels follow when they do not follow the classes: the images' colour?
(issue 16, a diagnosis of stored runs: no training, never a table row).

    OCVIS_DATA_ROOT=../shared/datasets python bench/clad_colour.py RUNS_DIR RUN_ID [RUN_ID...]
        # -> one row per run appended to bench/results/clad_colour.csv

On CIFAR-10 the pseudo-labels of the ``cpu`` preset have an NMI of 0.03-0.05 with the true
classes. For each run this rebuilds the training images from the run's own record and
describes every image by six colour statistics (mean and standard deviation of each RGB
channel; the channel itself for grey images). It reports

* ``nmi_true``: the run's pseudo-labels against the true classes (as ``column_nmi``);
* ``nmi_colour_kmeans``: the pseudo-labels against k-means (same K, seeded) on the
  standardised colour statistics: how far DEC's clusters are colour clusters;
* ``colour_accuracy``: 5-fold accuracy of a logistic regression that predicts the
  pseudo-label from the six statistics, next to ``majority`` (the largest cluster's share,
  what a predictor without information reaches) -- and the same for the true class
  (``colour_accuracy_true``, ``majority_true``): what the colour says about the classes;
* ``auroc_colour_*``: for the test set, the AUROC of the distance of an image's colour
  statistics to the normal training images' mean (standardised; a one-line colour
  detector), next to the run's own AUROC: whether the run's score does no better than colour.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "results" / "clad_colour.csv"


def colour_stats(x) -> np.ndarray:
    """``N x C x H x W`` images (array or CPU tensor) -> ``N x 2C`` (mean and std of each
    channel)."""
    x = np.asarray(x, np.float64).reshape(len(x), x.shape[1], -1)
    return np.concatenate([x.mean(2), x.std(2)], 1)


def describe(store, run_id: str) -> dict:
    from sklearn.cluster import KMeans
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import normalized_mutual_info_score, roc_auc_score
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ocvis.experiment import task_of_run

    meta = store.read(run_id)
    arr = store.arrays(run_id)
    t = meta["task"]
    task = task_of_run(meta)
    labels = np.asarray(arr["train_col.pseudo_label"])
    true = np.asarray(task.train_classes)
    if len(labels) != len(true):
        raise SystemExit(f"{run_id}: {len(labels)} pseudo-labels for {len(true)} training "
                         "images: not the run's task")
    feats = colour_stats(task.x_train)
    scaler = StandardScaler().fit(feats)
    z = scaler.transform(feats)
    k = len(np.unique(labels))
    colour_km = KMeans(k, n_init=10, random_state=0).fit_predict(z)

    def predictability(y) -> tuple[float, float]:
        counts = np.bincount(np.unique(y, return_inverse=True)[1])
        folds = int(min(5, counts.min())) if len(counts) > 1 else 0
        if folds < 2:
            return float("nan"), float(counts.max() / len(y))
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        acc = cross_val_score(clf, feats, y, cv=folds).mean()
        return float(acc), float(counts.max() / len(y))

    acc, major = predictability(labels)
    acc_true, major_true = predictability(true)
    test = scaler.transform(colour_stats(task.x_test))
    dist = np.sqrt((test ** 2).sum(1))  # the training mean is 0 after standardising
    y_abnormal = np.asarray(task.y_test)  # 1 = abnormal
    metrics = meta.get("metrics_by_score") or {}
    return {
        "run_id": run_id, "dataset": t["dataset"], "normal": t["normal"],
        "seed": t.get("seed", 0), "clusters": k,
        "nmi_true": f"{normalized_mutual_info_score(true, labels):.3f}",
        "nmi_colour_kmeans": f"{normalized_mutual_info_score(colour_km, labels):.3f}",
        "colour_accuracy": f"{acc:.3f}", "majority": f"{major:.3f}",
        "colour_accuracy_true": f"{acc_true:.3f}", "majority_true": f"{major_true:.3f}",
        "auroc_colour_distance": f"{100 * roc_auc_score(y_abnormal, dist):.2f}",
        **{f"auroc_run_{s}": f"{100 * m['auroc']:.2f}" for s, m in metrics.items()
           if m.get("auroc") is not None},
    }


def main(argv=None) -> list[dict]:
    from ocvis.bench import append_result
    from ocvis.runs import RunStore

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs")
    ap.add_argument("run_ids", nargs="+")
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args(argv)
    store = RunStore(a.runs)
    rows = []
    for rid in a.run_ids:
        row = describe(store, rid)
        append_result(Path(a.out), row)
        print(row, flush=True)
        rows.append(row)
    return rows


if __name__ == "__main__":
    main()
