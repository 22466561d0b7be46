"""Summarise the reproduction tables written by ``python -m ocvis bench``.

    python bench/summarize_tables.py [--preset cpu] [--out bench/results/summary_cpu.md]

Reads ``bench/results/<dataset>_<preset>.csv`` for MNIST, Fashion-MNIST and CIFAR-10 and
writes a Markdown summary: per dataset, the number of classes done, the mean AUROC and
balanced accuracy of every method next to the paper's over the same classes (the table's
own mean rows), and a per-class AUROC table (ours / paper). Nothing is recomputed: the
figures are the CSV's rows, in the CSV's method order.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"
DATASETS = ("mnist", "fashion-mnist", "cifar10")


def _f(v) -> str:
    return "–" if pd.isna(v) else f"{float(v):.2f}"


def summarize(df: pd.DataFrame, dataset: str) -> list[str]:
    is_mean = df["normal_class"].astype(str) == "mean"
    means = df[is_mean].set_index("method")
    rows = df[~is_mean].copy()
    rows["normal_class"] = rows["normal_class"].astype(int)
    methods = list(means.index)
    out = [f"## {dataset}", "",
           "| method | classes | AUROC ours | AUROC paper | gap | BACC ours | BACC paper |",
           "|---|---|---|---|---|---|---|"]
    for m in methods:
        r = means.loc[m]
        n = rows.loc[rows["method"] == m, "normal_class"].nunique()
        out.append(f"| {m} | {n} | {_f(r['auroc'])} | {_f(r['paper_auroc'])} | "
                   f"{_f(r['auroc'] - r['paper_auroc'])} | {_f(r['bacc'])} | "
                   f"{_f(r['paper_bacc'])} |")
    out += ["", "AUROC per class, ours / paper:", "",
            "| class | " + " | ".join(methods) + " |",
            "|---" * (len(methods) + 1) + "|"]
    for c in sorted(rows["normal_class"].unique()):
        cells = []
        for m in methods:
            r = rows[(rows["method"] == m) & (rows["normal_class"] == c)]
            cells.append("–" if r.empty else
                         f"{_f(r['auroc'].iloc[0])} / {_f(r['paper_auroc'].iloc[0])}")
        name = rows.loc[rows["normal_class"] == c, "class_name"].iloc[0]
        label = f"{c}" if str(name) == str(c) else f"{c} {name}"
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    return out + [""]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--out", type=Path, default=None,
                    help="Markdown file (default bench/results/summary_<preset>.md)")
    args = ap.parse_args(argv)
    lines = [f"# Reproduction tables, `{args.preset}` preset",
             "", (f"Written by `python bench/summarize_tables.py --preset {args.preset}` "
                  "from the CSV files beside this one."), ""]
    for ds in DATASETS:
        path = RESULTS / f"{ds}_{args.preset}.csv"
        if path.exists():
            lines += summarize(pd.read_csv(path), ds)
        else:
            lines += [f"## {ds}", "", f"no table yet ({path.name})", ""]
    text = "\n".join(lines)
    out = args.out or RESULTS / f"summary_{args.preset}.md"
    out.write_text(text)
    print(text)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
