"""Diagnose feature quality of the autoencoder methods on one class.

    python bench/diag_features.py DATASET CLASS REDUCTION PRETRAIN_EPOCHS EPOCHS METHODS
    e.g. OCVIS_DATA_ROOT=../shared/datasets python bench/diag_features.py mnist 3 mean 8 8 cae,cls,ics

Prints, per method: AUROC with the paper's OC-SVM (nu 0.1, gamma 1/#features), the mean
per-dimension standard deviation of the training features (how spread / saturated the
sigmoid latent is) and, for comparison, AUROC of an OC-SVM with gamma = 10.
"""
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sklearn.svm import OneClassSVM  # noqa: E402

from ocvis.data import make_task  # noqa: E402
from ocvis.methods import make_method  # noqa: E402
from ocvis.metrics import evaluate  # noqa: E402

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
ds, c, red = sys.argv[1], int(sys.argv[2]), sys.argv[3]
e1, e3 = int(sys.argv[4]), int(sys.argv[5])
task = make_task(ds, "one-class", c, n_train=4000)


def auc(s):
    return round(evaluate(s, task.y_test)["auroc"], 4)


for name in sys.argv[6].split(","):
    t = time.time()
    m = make_method(name, "cpu", pretrain_epochs=e1, epochs=e3, rec_reduction=red).fit(task)
    ftr, fte = m.embed(task.x_train), m.embed(task.x_test)
    g10 = auc(OneClassSVM(nu=0.1, gamma=10).fit(ftr).decision_function(fte))
    print("RESULT", name, red, "auroc", auc(m.score_samples(task.x_test)), "per-dim std",
          ftr.std(0).mean().round(4), "gamma10", g10, round(time.time() - t), "s", flush=True)
