"""Where CLAD's gap on a latent-multiclass scenario comes from: the pseudo-labels or the
confidence score (issue 16, a diagnosis; never a table row).

    OCVIS_DATA_ROOT=../shared/datasets python bench/clad_oracle.py --dataset cifar10 \\
        --scenario THG --labels oracle [--preset cpu] [--n-train 4000] [--seed 0] \\
        [--set key=value ...]   # -> one line appended to bench/results/clad_oracle.csv

``--labels`` says what the ResNet classifier of CLAD is trained on, everything else being the
method as it is (its autoencoder is still trained, so the row's cost is comparable):

* ``dec``: CLAD as in the paper (the pseudo-labels of DEC);
* ``kmeans``: the k-means labels DEC starts from (DEC skipped);
* ``oracle``: the true latent classes of the training images (K = the number of normal
  classes). This uses labels no one-class method may see: it bounds what the classifier's
  confidence can reach at this budget when the self-labelling were perfect.

The row records the ODIN and maximum-softmax AUROC on the scenario's test set, the share of
the largest pseudo-class and the normalised mutual information between the labels the
classifier was trained on and the true latent classes.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "results" / "clad_oracle.csv"
FIELDS = ["dataset", "scenario", "labels", "preset", "overrides", "seed", "n_train", "k",
          "largest_share", "nmi_true", "odin", "msp", "cpu_s"]


def main(argv=None) -> dict:
    from sklearn.metrics import normalized_mutual_info_score, roc_auc_score

    from ocvis.bench import append_result
    from ocvis.cli import parse_overrides
    from ocvis.data import make_task
    from ocvis.methods import make_method

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--scenario", default="THG")
    ap.add_argument("--labels", choices=("dec", "kmeans", "oracle"), default="oracle")
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--n-train", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args(argv)

    task = make_task(a.dataset, "latent-multiclass", a.scenario, n_train=a.n_train or None,
                     seed=a.seed)
    given = parse_overrides(a.sets, ["clad"])
    overrides = dict(given)
    true = np.unique(task.train_classes, return_inverse=True)[1]  # 0 .. (classes - 1)
    if a.labels == "oracle":
        overrides["clusters"] = int(true.max()) + 1
    if a.labels == "kmeans":
        overrides["dec_epochs"] = 0
    m = make_method("clad", a.preset, seed=a.seed, **overrides)
    if a.labels == "oracle":
        def oracle_dec(x, ae, hooks):
            labels = true.astype(np.int64)
            m.train_pseudo_labels_ = labels
            m.dec_epochs_run_, m.dec_changed_, m.dec_shares_ = 0, [], []
            m.dec_guarded_, m.kmeans_inertia_ = False, float("nan")
            return labels
        m._dec = oracle_dec
    t0 = time.process_time()
    m.fit(task)
    lab = np.asarray(m.train_pseudo_labels_)
    s = m.scores(task.x_test)
    cpu = time.process_time() - t0
    row = {"dataset": a.dataset, "scenario": a.scenario, "labels": a.labels,
           "preset": a.preset, "overrides": ";".join(f"{k}={v}" for k, v in
                                                     sorted(given.items())),
           "seed": a.seed, "n_train": len(task.x_train), "k": int(m.config.clusters),
           "largest_share": round(float(np.bincount(lab).max()) / len(lab), 4),
           "nmi_true": round(float(normalized_mutual_info_score(true, lab)), 4),
           # the scores are normality (higher = more normal); y_test is 1 for abnormal
           "odin": round(100 * roc_auc_score(task.y_test, -s["odin"]), 2),
           "msp": round(100 * roc_auc_score(task.y_test, -s["msp"]), 2),
           "cpu_s": round(cpu)}
    append_result(Path(a.out), {k: row[k] for k in FIELDS})
    print(row)
    return row


if __name__ == "__main__":
    main()
