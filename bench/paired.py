"""Paired per-class comparison of two AUROC columns of bench tables (same class, same seed).

    python bench/paired.py bench/results/cifar10_two_stage_cpu.csv --method rotnet \\
        --a kde --b rotation
    python bench/paired.py A.csv [B.csv ...] --method rotnet --a kde --b kde \\
        --a-settings "" --b-settings epochs=40

``--a`` / ``--b`` name a score (``kde`` = the table's ``auroc`` column when it is the row's
primary score, else ``auroc_<score>``); ``--a-settings`` / ``--b-settings`` pick rows by their
``overrides`` (default: rows without overrides for both). Prints one line per class present
on both sides (a, b, a - b) and the mean of a - b with its sample std, standard error and the
number of classes where a is ahead: the figures the notes quote for claims such as "KDE on
RotNet features beats the rotation score". Several tables are read as one.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def column(df: pd.DataFrame, score: str) -> pd.Series:
    """The AUROC of ``score`` per row (NaN where the row lacks it)."""
    own = df["auroc"].where(df["score"] == score) if "score" in df else None
    other = df[f"auroc_{score}"] if f"auroc_{score}" in df else None
    if own is None and other is None:
        raise SystemExit(f"no AUROC column for score {score!r}")
    if own is None:
        return other
    return own if other is None else own.fillna(other)


def paired(df: pd.DataFrame, method: str, a: str, b: str, a_settings: str = "",
           b_settings: str = "", dataset: str | None = None) -> pd.DataFrame:
    """Per (dataset, class, seed): AUROC of ``a`` and of ``b`` and their difference."""
    d = df[df["method"] == method]
    if dataset:
        d = d[d["dataset"] == dataset]
    key = ["dataset", "normal_class", "seed"]
    left = d[d["overrides"] == a_settings].assign(a=lambda x: column(x, a))[key + ["a"]]
    right = d[d["overrides"] == b_settings].assign(b=lambda x: column(x, b))[key + ["b"]]
    both = left.dropna().merge(right.dropna(), on=key)
    both["a - b"] = both["a"] - both["b"]
    return both.sort_values(key, key=lambda s: s.map(lambda v: (len(str(v)), str(v))))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tables", nargs="+", type=Path)
    ap.add_argument("--method", required=True)
    ap.add_argument("--a", required=True)
    ap.add_argument("--b", required=True)
    ap.add_argument("--a-settings", default="")
    ap.add_argument("--b-settings", default="")
    ap.add_argument("--dataset")
    args = ap.parse_args(argv)
    from ocvis.bench import results_frame

    t = paired(results_frame(args.tables), args.method, args.a, args.b, args.a_settings,
               args.b_settings, args.dataset)
    if t.empty:
        print("no class has both scores")
        return 1
    name_a = f"{args.a}{' ' + args.a_settings if args.a_settings else ''}"
    name_b = f"{args.b}{' ' + args.b_settings if args.b_settings else ''}"
    print(f"| dataset | class | seed | {name_a} | {name_b} | difference |")
    print("|---|---|---|---|---|---|")
    for _, r in t.iterrows():
        print(f"| {r['dataset']} | {r['normal_class']} | {r['seed']} | {r['a']:.2f} | "
              f"{r['b']:.2f} | {r['a - b']:+.2f} |")
    diff = t["a - b"]
    n = len(diff)
    std = float(diff.std(ddof=1)) if n > 1 else float("nan")
    print(f"\n{args.method}: {name_a} minus {name_b} over {n} class(es): mean "
          f"{diff.mean():+.2f}, std {std:.2f}, SE {std / math.sqrt(n):.2f}; "
          f"{name_a} ahead on {int((diff > 0).sum())} of {n}; means {t['a'].mean():.2f} vs "
          f"{t['b'].mean():.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
