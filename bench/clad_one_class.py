"""CLAD's one-class rows next to what they are compared with (issue 16), as a markdown table.

    python bench/clad_one_class.py bench/results/cifar10_clad_cpu.csv \\
        --colour bench/results/clad_colour.csv --baseline bench/results/cifar10_e2e_cpu.csv

One line per normal class of the table's ``one-class`` CLAD rows (seed 0 unless ``--seed``):
CLAD's ODIN and max-softmax AUROC, the paper's CLAD number, how many pseudo-classes DEC left
and the share of the largest (``clad_colour.py``'s row of the same run), the AUROC of the
colour-distance detector of that row, the baseline table's Deep SVDD row of the class (same
protocol, seed and training-set size, or nothing) and the CLAD paper's Deep SVDD number; a
mean row over the classes, and on how many classes CLAD is ahead of the colour distance and
of Deep SVDD. Nothing is trained.
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


def one_class_table(table: str, colour: str | None = None, baseline: str | None = None,
                    seed: int = 0, method: str = "clad",
                    baseline_method: str = "deep-svdd") -> pd.DataFrame:
    """The rows as a frame (class order of the table's class numbers); the tables are read
    as every summary reads them (:func:`ocvis.bench.results_frame`: no mean or failed rows)."""
    df = results_frame(table)
    df = df[(df.protocol == "one-class") & (df.method == method) & (df.seed == str(seed))]
    if df.empty:
        raise SystemExit(f"{table}: no one-class {method} rows of seed {seed}")
    col = pd.read_csv(colour).drop_duplicates("run_id", keep="last").set_index("run_id") \
        if colour else None
    base = None
    if baseline:
        b = results_frame(baseline)
        base = b[(b.protocol == "one-class") & (b.method == baseline_method)
                 & (b.seed == str(seed))]
    out = []
    for _, r in df.sort_values("normal_class", key=lambda s: s.astype(int)).iterrows():
        c = col.loc[r.run_id] if col is not None and r.run_id in col.index else None
        bd = base[(base.normal_class == r.normal_class) & (base.n_train == r.n_train)] \
            if base is not None else pd.DataFrame()
        out.append({
            "class": f"{r.normal_class} {r.class_name}",
            "odin": float(r.auroc), "msp": float(r.get("auroc_msp", NAN)),
            "paper": float(r.paper_auroc),
            "clusters": "" if c is None else f"{int(c.clusters)} ({100 * c.majority:.0f} %)",
            "colour": NAN if c is None else float(c.auroc_colour_distance),
            "deep_svdd": float(bd.auroc.iloc[0]) if len(bd) else NAN,
            "paper_deep_svdd": paper_value_of("clad", "DeepSVDD", r.dataset, r.normal_class)
            or NAN,
            "cpu_s": float(r.cpu_seconds),
        })
    return pd.DataFrame(out)


def markdown(t: pd.DataFrame) -> str:
    heads = ["class", "CLAD ODIN", "max softmax", "paper CLAD", "pseudo-classes (largest)",
             "colour distance", "Deep SVDD (ours)", "paper Deep SVDD", "CPU s"]
    keys = ["odin", "msp", "paper", "clusters", "colour", "deep_svdd", "paper_deep_svdd",
            "cpu_s"]

    def cell(k, v) -> str:
        return markdown_cell(v, 0 if k == "cpu_s" else 2)

    lines = markdown_table(heads, ([r["class"]] + [cell(k, r[k]) for k in keys]
                                   for _, r in t.iterrows()))
    means = {k: t[k].mean() if t[k].notna().all() else NAN  # NaN where any class lacks it
             for k in keys if k != "clusters"}
    lines.append("| **mean** (" + f"{len(t)} classes) | " + " | ".join(
        "" if k == "clusters" else f"**{cell(k, means[k])}**" for k in keys) + " |")
    notes = []
    for k, name in (("colour", "the colour distance"), ("deep_svdd", "our Deep SVDD")):
        both = t[t[k].notna()]
        if len(both):
            notes.append(f"CLAD (ODIN) ahead of {name} on {int((both.odin > both[k]).sum())} "
                         f"of {len(both)} classes")
    return "\n".join(lines) + ("\n\n" + "; ".join(notes) + "." if notes else "") + "\n"


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("table")
    ap.add_argument("--colour", help="clad_colour.py's CSV (pseudo-classes, colour distance)")
    ap.add_argument("--baseline", help="a table with Deep SVDD one-class rows")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    text = markdown(one_class_table(a.table, a.colour, a.baseline, a.seed))
    print(text)
    return text


if __name__ == "__main__":
    main()
