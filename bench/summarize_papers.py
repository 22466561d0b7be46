"""Summarise any bench tables next to the papers' numbers, score by score.

    python bench/summarize_papers.py bench/results/cifar10_two_stage_cpu.csv ... \\
        [--out bench/results/summary_papers.md]

For every group of rows (dataset, protocol, method, preset, settings) and every score of the
runs that a paper reports (``ocvis.papers.score_labels``: e.g. RotNet's KDE score as
"RotNet + KDE", its rotation score as "RotNet (end-to-end)", the CAE's reconstruction error
as E3Outlier's "CAE"): our mean AUROC over the classes (or scenarios) present, and the
paper's value over the same classes, or the paper's mean over all classes when it reports
only that (marked "all classes"). Seeds: a class with several seeds enters the mean once,
as the mean of its seeds. "ours flipped" is the mean with every class's AUROC under 50
replaced by 100 - AUROC, what code that reports max(AUC, 1 - AUC) (CLAD's released code)
would print; ocvis never reports it as a result. The table also gives the mean +- std over seeds of each class that
has more than one. A table ``X.csv`` with a sibling ``X_seeds.csv`` (the queue's further
seeds of a few classes) gets those seeds in its seeds section only, merged with ``X.csv``'s
rows of the same classes and settings; its mean over classes stays that of ``X.csv``.
Rows with ``nmi_<column>`` values (a grouping's agreement with the true classes, e.g. CLAD's
pseudo-labels) get a section of those per class. Nothing is recomputed from runs.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _f(v) -> str:
    return "–" if v is None or pd.isna(v) else f"{float(v):.2f}"


def summarize(path: Path) -> list[str]:
    from ocvis.bench import results_frame
    from ocvis.papers import UNSUPERVISED_PAPERS, paper_value_of, score_labels

    df = results_frame(path)
    extra = path.with_name(f"{path.stem}_seeds.csv")
    more = results_frame(extra) if extra.exists() else df.iloc[:0]
    out = [f"## {path.name}", "",
           "| dataset | protocol | method | settings | score | paper label | classes | "
           "ours | ours flipped | paper |", "|---|---|---|---|---|---|---|---|---|---|"]
    seeds, seen, agreement = [], set(), []
    for (ds, proto, meth, preset, ov), g in df.groupby(
            ["dataset", "protocol", "method", "preset", "overrides"], sort=False):
        primary = g["score"].dropna().iloc[0] if "score" in g and g["score"].notna().any() \
            else "score"
        labels = score_labels(meth)
        named = {sc for sc, _, _ in labels}
        labels += [(c[len("auroc_"):], "", "") for c in g.columns
                   if c.startswith("auroc_") and g[c].notna().any() and c[len("auroc_"):]
                   not in named]
        if primary not in named:
            labels.insert(0, (primary, "", ""))
        # only papers of the rows' protocol kind (E3Outlier's numbers are for contaminated
        # training data, the others' for clean normal data); a score's line for a paper that
        # reports nothing here is left out when another paper does report it
        unsup = proto.startswith("unsupervised")
        labels = [(sc, k, lb) if not k or (k in UNSUPERVISED_PAPERS) == unsup else (sc, "", "")
                  for sc, k, lb in labels]
        lines: dict[str, list[tuple[bool, str]]] = {}
        for score, key, label in labels:
            col = "auroc" if score == primary else f"auroc_{score}"
            if col not in g:
                continue
            per_class = g.groupby("normal_class")[col].mean().dropna()  # rows with the score
            ours = per_class.mean()
            # what a paper that reports max(AUC, 1 - AUC) (CLAD's code) would print
            flipped = per_class.where(per_class >= 50, 100 - per_class).mean()
            paper, note = None, ""
            if key:
                vals = [paper_value_of(key, label, ds, c) for c in per_class.index]
                if all(v is not None for v in vals) and vals:
                    paper = sum(vals) / len(vals)
                else:
                    ratio = proto.split("-", 1)[1] if proto.startswith("unsupervised-") else None
                    mean_key = f"mean@outlier_ratio={ratio}%" if ratio else "mean"
                    paper = paper_value_of(key, label, ds, mean_key)
                    note = " (all classes)" if paper is not None else ""
            line = (f"| {ds} | {proto} | {meth} | {preset} {ov} | {score} | "
                    f"{f'{key}: {label}' if label else '–'} "
                    f"| {len(per_class)} | {_f(ours)} | {_f(flipped)} | {_f(paper)}{note} |")
            if line not in [t for _, t in lines.get(score, [])]:
                lines.setdefault(score, []).append((paper is not None, line))
            m = more[(more["dataset"] == ds) & (more["protocol"] == proto)
                     & (more["method"] == meth) & (more["preset"] == preset)
                     & (more["overrides"] == ov)]
            both = pd.concat([g[g["normal_class"].isin(m["normal_class"])], m]) if len(m) \
                else g
            multi = both.groupby("normal_class")[col].agg(["mean", "std", "count"])
            for c, r in multi[multi["count"] > 1].iterrows():
                if (ds, proto, meth, preset, ov, score, c) in seen:  # one score, two papers
                    continue
                seen.add((ds, proto, meth, preset, ov, score, c))
                seeds.append(f"| {ds} | {meth} | {score} | {c} | {int(r['count'])} | "
                             f"{r['mean']:.2f} ± {r['std']:.2f} |")
        for found in lines.values():
            out += [t for has, t in found if has] or [found[0][1]]
        for col in (c for c in g.columns if c.startswith("nmi_") and g[c].notna().any()):
            per_class = g.groupby("normal_class", sort=False)[col].agg(["mean", "count"]) \
                .dropna()
            agreement.append(
                f"| {ds} | {proto} | {meth} | {preset} {ov} | {col[len('nmi_'):]} | "
                + ", ".join(f"{c} {r['mean']:.3f}" + (f" ({int(r['count'])} seeds)"
                                                      if r["count"] > 1 else "")
                            for c, r in per_class.iterrows()) + " |")
    if seeds:
        out += ["", "Seeds (AUROC mean ± sample std):", "",
                "| dataset | method | score | class | seeds | AUROC |", "|---|---|---|---|---|---|",
                *seeds]
    if agreement:
        out += ["", "Agreement of a method's grouping of the training images with their true "
                "classes (NMI, mean over seeds):", "",
                "| dataset | protocol | method | settings | column | NMI by class |",
                "|---|---|---|---|---|---|", *agreement]
    return out + [""]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tables", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" /
                    "summary_papers.md")
    args = ap.parse_args(argv)
    lines = ["# Tables next to the papers", "",
             "Written by `python bench/summarize_papers.py " +
             " ".join(str(p.relative_to(ROOT)) if p.is_absolute() and ROOT in p.parents
                      else str(p) for p in args.tables) + "`.", ""]
    for p in args.tables:
        lines += summarize(p) if p.exists() else [f"## {p.name}", "", "no table yet", ""]
    text = "\n".join(lines)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
