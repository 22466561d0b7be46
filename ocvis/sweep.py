"""Hyperparameter sweeps with Ray Tune, scored on a validation split of the *training* data.

    python -m ocvis sweep --method ics --dataset mnist --normal 3 \\
        --param lr=1e-4:1e-2:log --param alpha=0.1:10:log --trials 8 [--ray ADDRESS] \\
        [--preset cpu] [--seed 0] [--save NAME]

Validation (the two-stage paper's practice, never the test split): ``val_fraction`` of the
normal class's training images are held out as validation normals, and as many training
images of the other classes (at most) are the validation anomalies; the method is fitted on
the rest of the normal training images. The objective is the validation AUROC of the
method's primary score.

Search: ``trials`` configurations drawn by Tune's random search with a fixed seed (the same
seed gives the same configurations and, runs being deterministic for a thread count, the
same best trial). Early stopping: ASHA over training budgets; a deep method is trained with
a third, then all of its epochs (each budget from scratch, so a budget's score is the score
of that training length) and ASHA stops the trials whose short-budget score is in the worse
part; a method without epochs has one budget. The best configuration is printed and saved as
a named preset (``<presets_dir>/<method>/<name>.json``) that ``--preset NAME`` on the command
line and the Train page's preset list load.
"""
from __future__ import annotations

import math
import tempfile
from dataclasses import fields, replace
from typing import Callable

import numpy as np

from ocvis.errors import DataError


def parse_param(spec: str) -> tuple[str, float, float, bool]:
    """``name=lo:hi[:log]`` -> (name, lo, hi, log)."""
    if "=" not in spec:
        raise DataError(f"--param expects name=lo:hi[:log], got {spec!r}")
    name, rng = spec.split("=", 1)
    parts = rng.split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "log"):
        raise DataError(f"--param expects name=lo:hi[:log], got {spec!r}")
    try:
        lo, hi = float(parts[0]), float(parts[1])
    except ValueError as exc:
        raise DataError(f"--param {spec!r}: bounds must be numbers") from exc
    if not lo < hi or (len(parts) == 3 and lo <= 0):
        raise DataError(f"--param {spec!r}: need lo < hi (and lo > 0 for log)")
    return name.strip(), lo, hi, len(parts) == 3


def validation_task(dataset: str, normal: int, val_fraction: float = 0.2, seed: int = 0,
                    n_train: int | None = None):
    """A one-class task whose test set is a labelled split of the training data."""
    from ocvis.data import make_task

    task = make_task(dataset, "one-class", [normal], n_train=n_train, seed=seed)
    from ocvis.data import load_dataset
    from ocvis.data.protocols import to_float

    ds = load_dataset(dataset)
    rng = np.random.default_rng(seed)
    n = len(task.x_train)
    n_val = max(2, int(round(val_fraction * n)))
    if n - n_val < 2:
        raise DataError(f"too few training images ({n}) for a validation split")
    perm = rng.permutation(n)
    val, fit = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    others = np.flatnonzero(ds.y_train != normal)
    abn = np.sort(rng.choice(others, size=min(n_val, len(others)), replace=False))
    x_val = np.concatenate([task.x_train[val].numpy(), to_float(ds.x_train[abn]).numpy()])
    import torch

    y_val = np.concatenate([np.zeros(len(val), np.int64), np.ones(len(abn), np.int64)])
    return replace(task, name=task.name + "/validation", x_train=task.x_train[fit],
                   x_test=torch.from_numpy(x_val), y_test=y_val,
                   test_classes=np.concatenate([np.full(len(val), normal),
                                                ds.y_train[abn]]),
                   val_mask=np.zeros(len(y_val), bool),
                   train_classes=None if task.train_classes is None else task.train_classes[fit])


def _budgets(method: str, preset: str) -> list[float]:
    from ocvis.methods import get_method, preset_values

    cls = get_method(method)
    has_epochs = "epochs" in {f.name for f in fields(cls.Config)}
    return [1 / 3, 1.0] if has_epochs and preset_values(method, preset).get("epochs") \
        else [1.0]


def _typed(cls, values: dict) -> dict:
    """Sampled floats rounded for integer settings."""
    proto = cls.Config()
    return {k: int(round(v)) if isinstance(getattr(proto, k), int)
            and not isinstance(getattr(proto, k), bool) else float(v) for k, v in values.items()}


def _trainable(method: str, preset: str, budgets: list[float]) -> Callable:
    def trainable(config: dict, task=None) -> None:
        import torch
        from ray import tune

        from ocvis.methods import get_method, make_method, preset_values
        from ocvis.metrics import evaluate

        torch.set_num_threads(1)
        params = _typed(get_method(method), config)
        full = preset_values(method, preset).get("epochs")
        for frac in budgets:
            kw = dict(params)
            if full and frac < 1:
                kw["epochs"] = max(1, int(math.ceil(full * frac)))
            m = make_method(method, preset, **kw).fit(task)
            auroc = evaluate(m.score_samples(task.x_test), task.y_test)["auroc"]
            tune.report({"val_auroc": float(auroc)})
    return trainable


def sweep(method: str, dataset: str, normal: int, params: list[str], trials: int = 8,
          preset: str = "cpu", seed: int = 0, address: str | None = None,
          val_fraction: float = 0.2, n_train: int | None = None, save: str | None = None,
          num_cpus: int | None = None, progress: Callable[[str], None] = print) -> dict:
    """Run the sweep; returns ``{"best": config, "val_auroc": ..., "trials": [...],
    "preset": saved name or None, "path": ...}``."""
    from ocvis.cluster import ray_session, require_ray
    from ocvis.methods import get_method, save_preset

    require_ray()
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import BasicVariantGenerator

    cls = get_method(method)
    names = {f.name for f in fields(cls.Config)}
    space = {}
    for spec in params:
        name, lo, hi, log = parse_param(spec)
        if name not in names:
            raise DataError(f"{method} has no setting {name!r}; known: {', '.join(sorted(names))}")
        space[name] = tune.loguniform(lo, hi) if log else tune.uniform(lo, hi)
    if not space:
        raise DataError("give at least one --param name=lo:hi[:log]")
    task = validation_task(dataset, normal, val_fraction, seed, n_train)
    budgets = _budgets(method, preset)
    with ray_session(address, num_cpus), tempfile.TemporaryDirectory() as tmp:
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(_trainable(method, preset, budgets),
                                                     task=task), {"cpu": 1}),
            param_space=space,
            tune_config=tune.TuneConfig(
                metric="val_auroc", mode="max", num_samples=trials,
                search_alg=BasicVariantGenerator(random_state=seed),
                scheduler=ASHAScheduler(max_t=len(budgets), grace_period=1,
                                        reduction_factor=2)),
            run_config=tune.RunConfig(storage_path=tmp, name="ocvis-sweep", verbose=0))
        results = tuner.fit()
        rows = []
        for r in results:
            if r.metrics is None or "val_auroc" not in r.metrics:
                continue
            rows.append({"config": {k: r.config[k] for k in space},
                         "val_auroc": float(r.metrics["val_auroc"]),
                         "budgets": int(r.metrics.get("training_iteration", 1))})
    if not rows:
        raise DataError("no trial finished")
    # the best finished the full budget; ties broken by the trial order (seeded)
    full = [r for r in rows if r["budgets"] == len(budgets)] or rows
    best = max(full, key=lambda r: r["val_auroc"])
    for r in rows:
        progress(f"trial {r['config']}: validation AUROC {100 * r['val_auroc']:.2f} "
                 f"({r['budgets']}/{len(budgets)} budgets)")
    out = {"best": _typed(cls, best["config"]), "val_auroc": best["val_auroc"], "trials": rows,
           "preset": None, "path": None}
    if save:
        values = out["best"]
        path = save_preset(method, save, values, base=preset,
                           source={"sweep": {"dataset": dataset, "normal": normal,
                                             "trials": trials, "seed": seed,
                                             "val_auroc": best["val_auroc"],
                                             "params": params}})
        out.update(preset=save, path=str(path))
    return out
