"""The numbers the papers report (``ocvis/data/paper_results.csv``, shipped with ocvis).

Columns: paper, dataset, normal_class, method, metric, value, std. Values are percentages.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd

CSV = Path(__file__).parent / "data" / "paper_results.csv"


def paper_method(method: str) -> tuple[str, str] | None:
    """(paper key, the paper's method label) of a registered method, from its class."""
    from ocvis.methods import METHODS

    cls = METHODS.get(method)
    if cls is None or not cls.paper_key or not cls.paper_label:
        return None
    return cls.paper_key, cls.paper_label


@lru_cache(maxsize=1)
def table() -> pd.DataFrame:
    df = pd.read_csv(CSV, dtype={"normal_class": str})
    return df


def paper_methods(method: str) -> list[tuple[str, str]]:
    """Every (paper key, label) under which a method appears: its own paper first, then the
    papers that use it as a baseline (the class's ``paper_also``, e.g. Deep SVDD is "DSVDD"
    in the end-to-end ICS paper and "DeepSVDD" in CLAD's)."""
    from ocvis.methods import METHODS

    out = [pm] if (pm := paper_method(method)) else []
    cls = METHODS.get(method)
    out += [(k, v) for k, v in (getattr(cls, "paper_also", None) or {}).items()
            if (k, v) not in out]
    return out


def score_labels(method: str) -> list[tuple[str, str, str]]:
    """(score, paper key, label) of every score of a method that some paper reports: the
    primary score under the method's own paper and the papers it is a baseline of, and the
    class's ``paper_scores`` (e.g. RotNet's rotation score = "RotNet (end-to-end)")."""
    from ocvis.methods import METHODS

    cls = METHODS.get(method)
    if cls is None:
        return []
    primary = cls().primary_score  # a property for some methods (the chosen detector)
    extra = [(s, k, v) for s, (k, v) in (getattr(cls, "paper_scores", None) or {}).items()]
    named = {(k, v) for _, k, v in extra}  # a label tied to another score than the primary
    return [(primary, k, v) for k, v in paper_methods(method) if (k, v) not in named] + extra


def paper_value_of(key: str, label: str, dataset: str, normal_class,
                   metric: str = "auroc") -> float | None:
    """A paper's value for its label (see :func:`paper_value` for class names)."""
    df = table()
    keys = {str(normal_class)}
    if str(normal_class).isdigit():
        from ocvis.data.protocols import class_names

        names = class_names(dataset) or ()
        if int(normal_class) < len(names):
            keys.add(str(names[int(normal_class)]))
    m = df[(df.paper == key) & (df.dataset == dataset) & (df.method == label)
           & (df.metric == metric) & (df.normal_class.isin(keys))]
    return float(m.value.iloc[0]) if len(m) else None


#: papers whose numbers are for contaminated training data (the ``unsupervised`` protocol);
#: every other paper's are for clean normal training data (one-class, latent-multiclass)
UNSUPERVISED_PAPERS = frozenset({"e3outlier"})


def paper_value(method: str, dataset: str, normal_class, metric: str = "auroc",
                protocol: str = "one-class", score: str | None = None) -> float | None:
    """The paper's value (percent) for our method name, or None if it reports none (the
    method's own paper first, then the papers it is a baseline of), from papers of the
    run's protocol kind only: an ``unsupervised`` run of ``cae`` is not compared with the
    ICS paper's one-class CAE. ``score``: the value the papers give for that stored score
    (:func:`score_labels`: RotNet's ``rotation`` is "RotNet (end-to-end)", E3Outlier's
    ``pl`` has none); default the method's primary score and every label of the method."""
    unsup = str(protocol).startswith("unsupervised")
    pairs = paper_methods(method) if score is None else \
        [(k, v) for sc, k, v in score_labels(method) if sc == score]
    for paper, label in pairs:
        if (paper in UNSUPERVISED_PAPERS) != unsup:
            continue
        v = paper_value_of(paper, label, dataset, normal_class, metric)
        if v is not None:
            return v
    return None


def paper_rows(method: str | None = None, dataset: str | None = None) -> pd.DataFrame:
    df = table()
    pms = paper_methods(method) if method else []
    if pms:
        keep = pd.Series(False, index=df.index)
        for paper, label in pms:
            keep |= (df.paper == paper) & (df.method == label)
        df = df[keep]
    if dataset:
        df = df[df.dataset == dataset]
    return df
