"""Helpers of the Evaluate page: tables, CSV export and curves of stored runs."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ocvis.errors import OcvisError
from ocvis.metrics import curves
from ocvis.papers import paper_value
from ocvis.ui.runs import arrays


METRIC_NAMES = {"auroc": "AUROC", "aupr_in": "AUPR-in", "aupr_out": "AUPR-out",
                "bacc": "Balanced accuracy"}


def task_of(meta: dict) -> dict:
    t = meta.get("task")
    return t if isinstance(t, dict) else {}


def single_normal_class(meta: dict, a: dict | None = None,
                        protocols: tuple[str, ...] = ("one-class",)) -> int | None:
    """The normal class index of a run of one of ``protocols`` with exactly one normal
    class, else None (``"unsupervised"`` too: its inlier class, whose training set also
    holds the outliers).

    Read from the run's task; a class given by name is recovered from the stored labels.
    """
    t = task_of(meta)
    if t.get("protocol", "one-class") not in protocols:
        return None
    n = t.get("normal")
    if isinstance(n, (list, tuple)):
        if len(n) != 1:
            return None
        n = n[0]
    if isinstance(n, int) and not isinstance(n, bool):
        return n
    if isinstance(n, str) and n.isdigit():
        return int(n)
    if a is not None and "y_test" in a and "test_classes" in a:
        normal = np.unique(a["test_classes"][a["y_test"] == 0])
        if len(normal) == 1:
            return int(normal[0])
    return None


def paper_class_of(meta: dict, a: dict | None = None):
    """The key of a run's task in the papers' tables: the class index of a one-class run,
    the scenario of a latent-multiclass run (``"CUR"``), ``"mean@outlier_ratio=10%"`` for an
    unsupervised run (E3Outlier reports means per ratio); None when there is none."""
    t = task_of(meta)
    proto = t.get("protocol", "one-class")
    if proto == "latent-multiclass":
        n = t.get("normal")
        return n.upper() if isinstance(n, str) and not n.isdigit() else None
    if proto == "unsupervised":
        try:
            return f"mean@outlier_ratio={float(t.get('ratio', 10.0)):g}%"
        except (TypeError, ValueError):
            return None
    return single_normal_class(meta, a)


def score_sets(meta: dict, a: dict) -> dict[str, np.ndarray]:
    """The run's test scores by name, primary first (a run of one score: its name only)."""
    names = [n for n in (meta.get("score_names") or []) if f"test_scores.{n}" in a]
    if names:
        return {n: np.asarray(a[f"test_scores.{n}"], float) for n in names}
    primary = meta.get("primary_score") or "score"
    return {primary: np.asarray(a["test_scores"], float)}


def score_help(method: str | None, name: str) -> str:
    """The method's one-line description of score ``name`` ("" when it has none or the
    method is unknown, e.g. a plugin no longer loaded)."""
    from ocvis.methods import get_method

    try:
        return get_method(str(method)).score_help.get(name, "")
    except OcvisError:  # DataError: unknown method
        return ""


def stored_metrics(meta: dict, name: str) -> dict | None:
    """The metrics a run stored for its score ``name`` (``metrics`` for the primary score of
    runs from before ``metrics_by_score``), or None."""
    by = meta.get("metrics_by_score")
    if isinstance(by, dict) and isinstance(by.get(name), dict):
        return by[name]
    if name == (meta.get("primary_score") or "score") and isinstance(meta.get("metrics"), dict):
        return meta["metrics"]
    return None


def metrics_of_score(meta: dict, name: str, scores: np.ndarray, a: dict) -> dict:
    """Stored metrics of score ``name`` (computed from the arrays for older runs)."""
    from ocvis.metrics import evaluate

    mt = stored_metrics(meta, name)
    return mt if mt is not None else evaluate(scores, a["y_test"], a.get("val_mask"))


def num(v) -> float | None:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None


def metrics_table(meta: dict, normal_class: int | None,
                  metrics: dict | None = None, score: str | None = None) -> pd.DataFrame:
    """Our metrics in % and, for a single normal class, the paper's value for that score
    (default the primary one) and protocol, and the gap."""
    mt = metrics if metrics is not None else (meta.get("metrics") or {})
    t = task_of(meta)
    dataset = t.get("dataset", "")
    rows = []
    for k, name in METRIC_NAMES.items():
        ours = num(mt.get(k))
        row = {"metric": name, "ours (%)": None if ours is None else 100 * ours}
        if normal_class is not None:
            paper = paper_value(meta.get("method", ""), dataset, normal_class, k,
                                t.get("protocol", "one-class"), score)
            row["paper (%)"] = paper
            row["ours − paper"] = (100 * ours - paper) if ours is not None and paper is not None \
                else None
        rows.append(row)
    return pd.DataFrame(rows)


_NOT_SETTINGS = ("seed", "device")  # what may differ between runs averaged in one row


def setting_of(meta: dict) -> tuple:
    """What makes two runs repetitions of one experiment (they may differ only in the seed):
    method, preset, protocol, training-set size, the outlier ratio of an unsupervised run
    and every option of the method's config as :func:`~ocvis.experiment.stored_config` reads
    it (so a run stored before a setting existed groups with a new run that sets it to what
    it meant then). Runs of a method this version does not know compare their raw stored
    config."""
    from dataclasses import asdict

    from ocvis.experiment import stored_config

    t = task_of(meta)
    try:
        cfg = asdict(stored_config(meta, quiet=True)[1])
    except (OcvisError, TypeError, ValueError):
        cfg = meta.get("config") if isinstance(meta.get("config"), dict) else \
            (meta.get("overrides") if isinstance(meta.get("overrides"), dict) else {})
    opts = tuple(sorted((k, repr(v)) for k, v in cfg.items()
                        if k not in _NOT_SETTINGS and k != "config_version"))
    protocol = t.get("protocol", "one-class")
    ratio = None
    if protocol == "unsupervised":
        try:
            ratio = float(t.get("ratio", 10.0))
        except (TypeError, ValueError):
            ratio = t.get("ratio")
    return (meta.get("method"), meta.get("preset"), protocol, t.get("n_train"), ratio, opts)


def per_class_table(runs: list[dict], dataset: str, method: str, preset: str,
                    score: str | None = None, like: dict | None = None) -> pd.DataFrame:
    """One row per normal class over the finished single-normal-class runs of
    dataset/method/preset (one-class runs, and unsupervised runs by their inlier class): our
    mean AUROC / BACC (over seeds) next to the paper's (none per class for the unsupervised
    protocol: its paper reports means).

    ``like``: only runs with the same setting as this run (:func:`setting_of`: protocol,
    training-set size, options; a calibration run with other epochs is another experiment).
    ``score``: the metrics of that stored score (runs without it are left out); default the
    primary one."""
    groups: dict[int, list[dict]] = {}
    key = setting_of(like) if like is not None else None
    for r in runs:
        t = task_of(r)
        if t.get("dataset") != dataset or r.get("method") != method \
                or r.get("preset") != preset:
            continue
        if key is not None and setting_of(r) != key:
            continue
        c = single_normal_class(r, protocols=("one-class", "unsupervised"))
        if c is not None:
            groups.setdefault(c, []).append(r)
    from ocvis.data import class_names

    def metrics(r: dict) -> dict:
        return (stored_metrics(r, score) if score else r.get("metrics")) or {}

    names = class_names(dataset) or ()
    protocol = task_of(like).get("protocol", "one-class") if like is not None else "one-class"
    rows = []
    for c in sorted(groups):
        rs = [r for r in groups[c] if metrics(r)]
        if not rs:
            continue

        def mean(k: str) -> float | None:
            vals = [num(metrics(r).get(k)) for r in rs]
            vals = [v for v in vals if v is not None]
            return 100 * float(np.mean(vals)) if vals else None

        rows.append({"normal class": c,
                     "name": names[c] if 0 <= c < len(names) else str(c), "runs": len(rs),
                     "AUROC ours": mean("auroc"),
                     "AUROC paper": paper_value(method, dataset, c, "auroc", protocol, score),
                     "BACC ours": mean("bacc"),
                     "BACC paper": paper_value(method, dataset, c, "bacc", protocol, score)})
    return pd.DataFrame(rows, columns=["normal class", "name", "runs", "AUROC ours",
                                       "AUROC paper", "BACC ours", "BACC paper"])


def scores_csv(a: dict, threshold: float | None, scores: np.ndarray | None = None,
               sets: dict[str, np.ndarray] | None = None) -> bytes:
    """Per-sample test scores as CSV (label 1 = abnormal; anomaly score = −normality):
    the shown score, every named score of the run and its per-sample columns."""
    s = np.asarray(a["test_scores"] if scores is None else scores, float)
    n = len(s)
    df = pd.DataFrame({
        "index": np.arange(n),
        "class": a.get("test_classes", np.full(n, -1)),
        "label": a["y_test"].astype(int),
        "normality_score": s,
        "anomaly_score": -s,
        "validation": a.get("val_mask", np.zeros(n, bool)).astype(int)})
    if threshold is not None:
        df["predicted_abnormal"] = (s <= threshold).astype(int)
    if sets and len(sets) > 1:
        for name, v in sets.items():
            df[f"normality_{name}"] = np.asarray(v, float)
    for key in sorted(a):
        if key.startswith("test_col.") and len(a[key]) == n:
            df[key[len("test_col."):]] = a[key]
    return df.to_csv(index=False).encode()


def short_name(r: dict) -> str:
    return f"{r.get('method', '?')} · {r.get('task_name', '?')} · {r['id'][-4:]}"


def curves_of(r: dict, scores: np.ndarray | None = None,
              metrics: dict | None = None) -> dict | None:
    """ROC / PR curves of a run (its primary score, or ``scores``) with the AUROC and
    AUPR-out (stored, or ``metrics``); None if undefined."""
    try:
        a = arrays(r["id"])
        c = curves(a["test_scores"] if scores is None else scores, a["y_test"])
    except (OcvisError, KeyError):
        return None
    mt = metrics if metrics is not None else (r.get("metrics") or {})
    return {**c, "auroc": num(mt.get("auroc")), "aupr_out": num(mt.get("aupr_out"))}
