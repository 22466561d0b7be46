"""Compare method settings on one one-class task (4,000 training images, seed 0).

    OCVIS_DATA_ROOT=../shared/datasets python bench/compare_configs.py DATASET CLASS SPEC...
    SPEC = method[:key=value[:key=value...]], e.g. ics:batch_mode=mixed cls ics:epochs=16

Each SPEC starts from the `cpu` preset; prints AUROC / balanced accuracy (%) and the seconds
the fit took (the stage-1 autoencoder is reused from the cache when settings allow).
"""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ocvis.data import make_task  # noqa: E402
from ocvis.methods import make_method  # noqa: E402
from ocvis.metrics import evaluate  # noqa: E402


def parse(v: str):
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    return v


ds, c = sys.argv[1], int(sys.argv[2])
task = make_task(ds, "one-class", c, n_train=4000)
for spec in sys.argv[3:]:
    name, *kv = spec.split(":")
    ov = {k: parse(v) for k, v in (x.split("=", 1) for x in kv)}
    t = time.time()
    m = make_method(name, "cpu", **ov).fit(task)
    r = evaluate(m.score_samples(task.x_test), task.y_test, task.val_mask)
    print("RESULT", ds, c, spec, "auroc", round(100 * r["auroc"], 2), "bacc",
          round(100 * r["bacc"], 2), "stage-1 reused", getattr(m, "pretrain_reused_", None),
          round(time.time() - t), "s", flush=True)
