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


def paper_value(method: str, dataset: str, normal_class, metric: str = "auroc") -> float | None:
    """The paper's value (percent) for our method name, or None if it reports none."""
    pm = paper_method(method)
    if pm is None:
        return None
    paper, label = pm
    df = table()
    m = df[(df.paper == paper) & (df.dataset == dataset) & (df.method == label)
           & (df.metric == metric) & (df.normal_class == str(normal_class))]
    return float(m.value.iloc[0]) if len(m) else None


def paper_rows(method: str | None = None, dataset: str | None = None) -> pd.DataFrame:
    df = table()
    pm = paper_method(method) if method else None
    if pm is not None:
        paper, label = pm
        df = df[(df.paper == paper) & (df.method == label)]
    if dataset:
        df = df[df.dataset == dataset]
    return df
