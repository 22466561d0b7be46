"""How much the released end-to-end code's model selection on test labels adds to the AUROC.

The released ICS end-to-end code (official_code_notes.md, section 3) evaluates every 100
iterations on "validation" = the first 30 % of the test normals and of the test anomalies,
keeps the checkpoint with the best AUROC there and prints that checkpoint's AUROC on the
other 70 % as its result. ``ics-e2e`` never does this (it reports the last iteration). This
script measures the difference without giving ``fit`` any test label: it trains ``ics-e2e``
as the bench does, copies the network every ``--every`` iterations through a training hook,
and scores each copy afterwards (batch-norm statistics re-estimated on the training images,
as for the final model).

Rows go to ``bench/results/<dataset>_e2e_selection.csv`` (one per class and seed; done rows
are skipped): the last iteration's AUROC on the whole test set and on the 70 %, the selected
checkpoint's AUROC on the 70 %, and the AUROC of every checkpoint.

    OCVIS_DATA_ROOT=... python bench/e2e_selection.py --dataset fashion-mnist --classes 0-9
"""
from __future__ import annotations

import argparse
import copy
import csv
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ocvis.data import make_task  # noqa: E402
from ocvis.methods import make_method  # noqa: E402
from ocvis.train import Hooks, recalibrate_batchnorm  # noqa: E402

FIELDS = ["dataset", "normal_class", "seed", "preset", "n_train", "iterations", "every",
          "auroc_last_all", "auroc_last_70", "auroc_selected_70", "selected_iteration",
          "auroc_by_iteration", "cpu_seconds"]


class Snapshots(Hooks):
    """Copies the classifier every ``every`` iterations of the ``train`` stage."""

    def __init__(self, method, every: int, steps_per_iteration: int):
        self.method, self.every, self.per = method, every, steps_per_iteration
        self.states: list[tuple[int, dict]] = []

    def on_step(self, event: dict) -> None:
        if event.get("stage") != "train":
            return
        step = int(event["step"]) + (int(event["epoch"]) - 1) * int(event["steps"])  # 1-based
        if step % (self.every * self.per) == 0:
            net = self.method.nets["icsnet"]
            self.states.append((step // self.per, copy.deepcopy(net.state_dict())))


def first_30_percent(y: np.ndarray) -> np.ndarray:
    """The released code's "validation" part: the first 30 % of each label, in test order."""
    val = np.zeros(len(y), bool)
    for label in (0, 1):
        idx = np.flatnonzero(y == label)
        val[idx[: int(0.3 * len(idx))]] = True
    return val


def normality(method, state: dict, x: torch.Tensor, x_train: torch.Tensor) -> np.ndarray:
    net = copy.deepcopy(method.nets["icsnet"])
    net.load_state_dict(state)
    recalibrate_batchnorm(net, x_train, method.device_, forward=lambda b: net(b))
    net.eval()
    return method.predict(lambda b: net(b)[0], x).numpy()  # the logit: same ranking


def one(dataset: str, cls: int, seed: int, preset: str, n_train: int, every: int,
        overrides: dict) -> dict:
    task = make_task(dataset, "one-class", cls, n_train=n_train, seed=seed)
    m = make_method("ics-e2e", preset, seed=seed, **overrides)
    hooks = Snapshots(m, every, len(m.terms))
    t0 = time.process_time()
    m.fit(task, hooks=hooks)
    y = np.asarray(task.y_test)           # 1 = anomaly
    val = first_30_percent(y)
    x_tr = torch.as_tensor(np.asarray(task.x_train))
    x_te = torch.as_tensor(np.asarray(task.x_test))
    aurocs = {}
    for it, state in hooks.states:
        s = normality(m, state, x_te, x_tr)
        aurocs[it] = (roc_auc_score(y[val], -s[val]), roc_auc_score(y[~val], -s[~val]))
    last = m.scores(task.x_test)["score"]
    best = max(aurocs, key=lambda k: aurocs[k][0])
    return {"dataset": dataset, "normal_class": cls, "seed": seed, "preset": preset,
            "n_train": n_train, "iterations": m.config.iterations, "every": every,
            "auroc_last_all": round(100 * roc_auc_score(y, -last), 2),
            "auroc_last_70": round(100 * roc_auc_score(y[~val], -last[~val]), 2),
            "auroc_selected_70": round(100 * aurocs[best][1], 2),
            "selected_iteration": best,
            "auroc_by_iteration": " ".join(f"{k}:{100 * v[1]:.2f}" for k, v in aurocs.items()),
            "cpu_seconds": round(time.process_time() - t0)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--classes", default="0-9", help="e.g. 0-9 or 0,4,8")
    p.add_argument("--seeds", default="0")
    p.add_argument("--preset", default="cpu")
    p.add_argument("--n-train", type=int, default=4000)
    p.add_argument("--every", type=int, default=50, help="iterations between copies")
    p.add_argument("--set", action="append", default=[], help="k=v option override")
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    classes = (list(range(int(a.classes.split("-")[0]), int(a.classes.split("-")[1]) + 1))
               if "-" in a.classes else [int(c) for c in a.classes.split(",")])
    overrides = {}
    for kv in a.set:
        k, v = kv.split("=", 1)
        overrides[k] = type(getattr(make_method("ics-e2e", a.preset).config, k))(v)
    out = Path(a.out or f"bench/results/{a.dataset}_e2e_selection.csv")
    done = set()
    if out.exists():
        with out.open() as f:
            done = {(int(r["normal_class"]), int(r["seed"]), r["preset"], int(r["n_train"]),
                     int(r["iterations"])) for r in csv.DictReader(f)}
    iters = make_method("ics-e2e", a.preset, **overrides).config.iterations
    for seed in [int(s) for s in a.seeds.split(",")]:
        for c in classes:
            if (c, seed, a.preset, a.n_train, iters) in done:
                continue
            row = one(a.dataset, c, seed, a.preset, a.n_train, a.every, overrides)
            new = not out.exists()
            with out.open("a", newline="") as f:
                w = csv.DictWriter(f, FIELDS)
                if new:
                    w.writeheader()
                w.writerow(row)
            print(f"{a.dataset} {c} seed {seed}: last {row['auroc_last_all']} (70 %: "
                  f"{row['auroc_last_70']}), selected at {row['selected_iteration']}: "
                  f"{row['auroc_selected_70']}  [{row['cpu_seconds']} CPU s]", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    main()
