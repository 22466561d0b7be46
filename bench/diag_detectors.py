"""Is it the features or the detector? Re-score a stored run's features with other detectors.

    python bench/diag_detectors.py RUN_ID        # uses $OCVIS_RUNS_DIR

Prints how saturated the sigmoid latent is (per-dimension standard deviation, share of
values below 0.02 or above 0.98) and the test AUROC of OC-SVMs (nu = 0.1) with the paper's
gamma = 1 / #features and with other scalings: gamma 1 and 10, gamma = 1 / (D * Var),
standardised features, and the sigmoid's logits. Nothing is trained; takes seconds.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.svm import OneClassSVM  # noqa: E402

from ocvis.runs import RunStore  # noqa: E402


def auroc(tr, te, y, gamma) -> float:
    s = OneClassSVM(nu=0.1, gamma=gamma).fit(tr).decision_function(te)
    return 100 * roc_auc_score(y, -s)  # y = 1 abnormal; higher decision = more normal


def main() -> int:
    store = RunStore()
    rid = sys.argv[1]
    meta, a = store.read(rid), store.arrays(rid)
    tr = a["train_latent"].astype(np.float64)
    te = a["test_latent"].astype(np.float64)
    y = a["y_test"]
    d = tr.shape[1]
    sd = tr.std(0)
    print(f"{rid}: {meta.get('method')} on {meta.get('task_name')}, stored AUROC "
          f"{100 * meta['metrics']['auroc']:.2f}")
    print(f"features {tr.shape}: per-dimension std mean {sd.mean():.2e} (min {sd.min():.1e}, "
          f"max {sd.max():.1e}); share of values < 0.02 or > 0.98: "
          f"{((tr < 0.02) | (tr > 0.98)).mean():.3f}")
    rows = [("gamma = 1/#features (paper)", auroc(tr, te, y, 1 / d)),
            ("gamma = 1", auroc(tr, te, y, 1.0)),
            ("gamma = 10", auroc(tr, te, y, 10.0)),
            ("gamma = 1/(D*Var) (sklearn 'scale')", auroc(tr, te, y, 1 / (d * tr.var())))]
    sc = StandardScaler().fit(tr)
    rows.append(("standardised, gamma = 1/#features",
                 auroc(sc.transform(tr), sc.transform(te), y, 1 / d)))
    if tr.min() >= 0 and tr.max() <= 1:
        def logit(v):
            v = np.clip(v, 1e-7, 1 - 1e-7)
            return np.log(v) - np.log1p(-v)
        rows.append(("logits, gamma = 1/#features", auroc(logit(tr), logit(te), y, 1 / d)))
    for name, v in rows:
        print(f"  {name:40s} AUROC {v:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
