"""E3Outlier's unsupervised rows next to its baselines and the paper (issue 17), as markdown.

    python bench/e3_table.py bench/results/mnist_e3_cpu.csv bench/results/fashion-mnist_e3_cpu.csv \\
        bench/results/cifar10_e3_cpu.csv [--ratio 10] [--seed 0]

One section per dataset, one line per inlier class of the tables' ``unsupervised-<ratio>``
rows of the seed: E3Outlier's three scores (NE, the paper's default, then PL and MP) and
Isolation Forest on its penultimate features (SSD-IF), the ``cae`` row's reconstruction error
(the paper's "CAE") and its latent OC-SVM, the paper's "CAE-IF" (the ``cae-iforest`` row,
or where there is none the Isolation Forest that the ``cae`` run stores, ``auroc_iforest``:
the same trained autoencoder and forest seed, so the same number without training it twice),
E3Outlier's AUPR with inliers and with outliers as the positive class, and its CPU seconds.
Then the mean over the classes that have every column, the paper's mean at that ratio (it
reports no per-class numbers), and on how many classes NE is ahead of CAE and of CAE-IF.
A baseline with no row at that ratio (the issue asks for E3Outlier alone at 20 %) is left out
of the mean's condition. The spread over seeds of the classes run with several (the
``_seeds`` sibling table) is ``bench/summarize_papers.py``'s seeds section. Nothing is
trained.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ocvis.bench import markdown_cell, markdown_table, results_frame  # noqa: E402
from ocvis.papers import paper_value_of  # noqa: E402

NAN = float("nan")

#: (key, column heading, method of the row, column of that row, the paper's label, metric)
COLUMNS = (
    ("ne", "E3Outlier NE", "e3outlier", "auroc", "E3Outlier", "auroc"),
    ("pl", "PL", "e3outlier", "auroc_pl", None, None),
    ("mp", "MP", "e3outlier", "auroc_mp", None, None),
    ("ssd_if", "SSD-IF", "e3outlier", "auroc_ssd_iforest", "SSD-IF", "auroc"),
    ("cae", "CAE (reconstruction)", "cae", "auroc_reconstruction", "CAE", "auroc"),
    ("cae_ocsvm", "CAE latent OC-SVM", "cae", "auroc", None, None),
    ("cae_if", "CAE-IF", "cae-iforest", "auroc", "CAE-IF", "auroc"),
    ("aupr_in", "NE AUPR-in", "e3outlier", "aupr_in", "E3Outlier", "aupr_in"),
    ("aupr_out", "NE AUPR-out", "e3outlier", "aupr_out", "E3Outlier", "aupr_out"),
    ("cpu_s", "E3Outlier CPU s", "e3outlier", "cpu_seconds", None, None),
)
#: where a class has no row of a column's method: (method, column) that holds the same value
FALLBACK = {"cae_if": ("cae", "auroc_iforest")}


def e3_tables(tables, ratio: float = 10, seed: int = 0) -> dict[str, pd.DataFrame]:
    """{dataset: one row per inlier class (class-number order)}; the tables are read as
    every summary reads them (:func:`ocvis.bench.results_frame`: no mean or failed rows).
    Rows run with settings beyond the preset (``overrides``) are left out."""
    df = results_frame(tables)
    df = df[(df.protocol == f"unsupervised-{ratio:g}") & (df.seed == str(seed))
            & (df.overrides == "")]
    if df.empty:
        raise SystemExit(f"no unsupervised-{ratio:g} rows of seed {seed} in {', '.join(tables)}")
    out = {}
    for ds, d in df.groupby("dataset", sort=False):
        rows = []
        for c in sorted(d.normal_class.unique(), key=int):
            dc = d[d.normal_class == c]
            row = {"class": f"{c} {dc.class_name.iloc[0]}"}
            for key, _, meth, col, _, _ in COLUMNS:
                row[key] = _value(dc, meth, col)
                if pd.isna(row[key]) and key in FALLBACK:
                    row[key] = _value(dc, *FALLBACK[key])
            rows.append(row)
        out[ds] = pd.DataFrame(rows)
    return out


def _value(rows: pd.DataFrame, method: str, col: str) -> float:
    """``col`` of the last row of ``method`` (NaN: no such row or column, or empty)."""
    m = rows[rows.method == method]
    return float(m[col].iloc[-1]) if len(m) and col in m else NAN


def paper_means(dataset: str, ratio: float = 10) -> dict[str, float]:
    """The E3Outlier paper's mean over classes at that ratio, per column (NaN where none)."""
    where = f"mean@outlier_ratio={ratio:g}%"
    return {key: (paper_value_of("e3outlier", label, dataset, where, metric) or NAN)
            if label else NAN for key, _, _, _, label, metric in COLUMNS}


def markdown(dataset: str, t: pd.DataFrame, ratio: float = 10) -> str:
    keys = [k for k, *_ in COLUMNS]
    heads = ["class"] + [h for _, h, *_ in COLUMNS]

    def cell(k, v) -> str:
        return markdown_cell(v, 0 if k == "cpu_s" else 2)

    lines = [f"### {dataset}, {ratio:g} % outliers", "",
             *markdown_table(heads, ([r["class"]] + [cell(k, r[k]) for k in keys]
                                     for _, r in t.iterrows()))]
    # the classes every method of the table has run on (at 20 % the issue asks for E3Outlier
    # alone, so a baseline with no row at all does not empty the mean)
    need = ["ne"] + [k for k in ("cae", "cae_if") if t[k].notna().any()]
    full = t.dropna(subset=need)
    n = f"{len(full)} class" + ("" if len(full) == 1 else "es")
    lines.append(f"| **mean** ({n}) | " + " | ".join(
        f"**{cell(k, full[k].mean())}**" if len(full) else "–" for k in keys) + " |")
    paper = paper_means(dataset, ratio)
    lines.append("| paper (all classes) | " + " | ".join(cell(k, paper[k]) for k in keys)
                 + " |")
    notes = []
    for k, name in (("cae", "CAE"), ("cae_if", "CAE-IF")):
        if k in need:
            notes.append(f"NE ahead of {name} on {int((full['ne'] > full[k]).sum())} of {n}")
        else:
            notes.append(f"no {name} rows at {ratio:g} %")
    if len(full) and not pd.isna(paper["ne"]):
        notes.append(f"NE mean {full['ne'].mean() - paper['ne']:+.2f} from the paper's "
                     f"{paper['ne']:.1f}" + (" (not yet every class)" if len(full) < 10 else ""))
    return "\n".join(lines) + "\n\n" + "; ".join(notes) + ".\n"


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tables", nargs="+")
    ap.add_argument("--ratio", type=float, default=10, help="outlier percentage")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    text = "\n".join(markdown(ds, t, a.ratio)
                     for ds, t in e3_tables(a.tables, a.ratio, a.seed).items())
    print(text)
    return text


if __name__ == "__main__":
    main()
