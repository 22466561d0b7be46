"""The numbers the papers report (``ocvis/data/paper_results.csv``, shipped with ocvis).

Columns: paper, dataset, normal_class, method, metric, value, std. Values are percentages.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd

CSV = Path(__file__).parent / "data" / "paper_results.csv"
# our method names -> (paper, the paper's method label)
PAPER_METHOD = {
    "ics": ("ics_feature_learning", "ICS"),
    "cae": ("ics_feature_learning", "CAE"),
    "cls": ("ics_feature_learning", "CLS"),
    "original": ("ics_feature_learning", "Original"),
    "pca": ("ics_feature_learning", "PCA"),
    "hog": ("ics_feature_learning", "HOG"),
}


@lru_cache(maxsize=1)
def table() -> pd.DataFrame:
    df = pd.read_csv(CSV, dtype={"normal_class": str})
    return df


def paper_value(method: str, dataset: str, normal_class, metric: str = "auroc") -> float | None:
    """The paper's value (percent) for our method name, or None if it reports none."""
    if method not in PAPER_METHOD:
        return None
    paper, label = PAPER_METHOD[method]
    df = table()
    m = df[(df.paper == paper) & (df.dataset == dataset) & (df.method == label)
           & (df.metric == metric) & (df.normal_class == str(normal_class))]
    return float(m.value.iloc[0]) if len(m) else None


def paper_rows(method: str | None = None, dataset: str | None = None) -> pd.DataFrame:
    df = table()
    if method in PAPER_METHOD:
        paper, label = PAPER_METHOD[method]
        df = df[(df.paper == paper) & (df.method == label)]
    if dataset:
        df = df[df.dataset == dataset]
    return df
