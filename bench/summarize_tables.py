"""Summarise the ICS-paper reproduction tables written by ``python -m ocvis bench``.

    python bench/summarize_tables.py [--preset cpu] [--no-rescore] [--out FILE]

Reads ``bench/results/<dataset>_<preset>.csv`` (seed 0, all classes) and
``<dataset>_<preset>_seeds.csv`` (seeds 1-2 on two classes) for MNIST, Fashion-MNIST and
CIFAR-10 and writes a Markdown summary (default ``bench/results/summary_<preset>.md``):

* per dataset and method: classes done, mean AUROC with the paper's default detector (the
  converged OC-SVM, nu 0.1, gamma 1 / D) next to the paper's mean over the same classes, and
  the same stored features re-scored with two documented detector variants: OC-SVM on
  standardised features (``standardize=true``) and KDE. The variants are computed with
  ``python -m ocvis rescore`` on copies under ``bench/results/variants/`` (no retraining;
  ``--no-rescore`` reuses the copies as they are);
* per class: ours / paper;
* seeds: for the classes with three seeds, mean +- std (sample std, n = 3) of ICS and CLS and
  of their difference per seed, so a margin can be compared with the seed spread.

Nothing else is recomputed: every figure is a table row or a mean of rows.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
DATASETS = ("mnist", "fashion-mnist", "cifar10")
VARIANTS = {"std": {"standardize": True}, "kde": {"detector": "kde"}}


def _f(v) -> str:
    return "–" if v is None or pd.isna(v) else f"{float(v):.2f}"


def _rows(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, dtype={"normal_class": str})
    df = df[df["normal_class"] != "mean"].copy()
    if "protocol" in df:
        df = df[df["protocol"].fillna("one-class") == "one-class"]
    df["normal_class"] = df["normal_class"].astype(int)
    return df


def variant_tables(path: Path, rescore: bool) -> dict[str, pd.DataFrame]:
    """The table re-scored with each detector variant (copies under results/variants)."""
    from ocvis.bench import rescore_table
    from ocvis.runs import RunStore

    out = {}
    vdir = RESULTS / "variants"
    vdir.mkdir(exist_ok=True)
    for name, settings in VARIANTS.items():
        vp = vdir / f"{path.stem}_{name}.csv"
        if rescore or not vp.exists():
            shutil.copyfile(path, vp)
            rescore_table(vp, RunStore(), **settings)
        out[name] = _rows(vp)
    return out


def summarize(ds: str, preset: str, rescore: bool) -> list[str]:
    path = RESULTS / f"{ds}_{preset}.csv"
    if not path.exists():
        return [f"## {ds}", "", f"no table yet ({path.name})", ""]
    rows = _rows(path)
    var = variant_tables(path, rescore)
    from ocvis.methods import table_order

    methods = sorted(rows["method"].unique(), key=table_order)
    out = [f"## {ds}", "",
           "| method | classes | AUROC (paper's OC-SVM) | paper | gap | OC-SVM standardised | "
           "KDE | BACC | paper BACC | detector fits ok |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for m in methods:
        r = rows[rows["method"] == m]
        cells = [m, str(r["normal_class"].nunique()), _f(r["auroc"].mean()),
                 _f(r["paper_auroc"].mean()), _f(r["auroc"].mean() - r["paper_auroc"].mean())]
        for name in VARIANTS:
            v = var[name]
            v = v[(v["method"] == m) & v["run_id"].notna()]
            cells.append(_f(v["auroc"].mean()) if len(v) == len(r) else
                         f"{_f(v['auroc'].mean())} ({len(v)} rows)")
        ok = pd.to_numeric(r["detector_ok"], errors="coerce")
        cells += [_f(r["bacc"].mean()), _f(r["paper_bacc"].mean()),
                  f"{int(ok.sum())}/{len(r)}"]
        out.append("| " + " | ".join(cells) + " |")
    out += ["", "AUROC per class, ours (paper's OC-SVM) / paper:", "",
            "| class | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    for c in sorted(rows["normal_class"].unique()):
        cells = []
        for m in methods:
            r = rows[(rows["method"] == m) & (rows["normal_class"] == c)]
            cells.append("–" if r.empty else
                         f"{_f(r['auroc'].iloc[0])} / {_f(r['paper_auroc'].iloc[0])}")
        name = rows.loc[rows["normal_class"] == c, "class_name"].iloc[0]
        out.append(f"| {c} {name} | " + " | ".join(cells) + " |")
    out += [""] + seeds_section(ds, preset, rows)
    return out + [""]


def seeds_section(ds: str, preset: str, seed0: pd.DataFrame) -> list[str]:
    path = RESULTS / f"{ds}_{preset}_seeds.csv"
    if not path.exists():
        return ["No seed table yet.", ""]
    s = pd.concat([_rows(path), seed0[seed0["method"].isin(["ics", "cls"])]])
    s = s[s["method"].isin(["ics", "cls"])]
    out = ["Seeds (AUROC, mean +- std over the seeds present, paper's OC-SVM):", "",
           "| class | seeds | ICS | CLS | ICS - CLS |", "|---|---|---|---|---|"]
    pairs, spread = [], []
    for c in sorted(s["normal_class"].unique()):
        sc = s[s["normal_class"] == c]
        piv = sc.pivot_table(index="seed", columns="method", values="auroc")
        if not {"ics", "cls"} <= set(piv.columns):
            continue
        piv = piv.dropna()
        d = piv["ics"] - piv["cls"]

        def ms(v):
            return f"{v.mean():.2f} ± {v.std(ddof=1):.2f}" if len(v) > 1 else f"{v.mean():.2f}"

        out.append(f"| {c} | {len(piv)} | {ms(piv['ics'])} | {ms(piv['cls'])} | {ms(d)} |")
        pairs.append(d.to_numpy())
        spread += [piv[m].std(ddof=1) for m in ("ics", "cls") if len(piv) > 1]
    if pairs:
        d = np.concatenate(pairs)
        line = (f"Over all {len(d)} (class, seed) pairs: ICS - CLS = {d.mean():.2f} "
                f"(std {d.std(ddof=1) if len(d) > 1 else float('nan'):.2f}, standard error "
                f"{d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float('nan'):.2f})")
        if spread:
            line += (f"; seed-to-seed std of one method on one class, mean over "
                     f"{len(spread)} (class, method): {np.mean(spread):.2f}")
        out += ["", line + "."]
    return out + [""]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--no-rescore", action="store_true",
                    help="reuse the variant copies under bench/results/variants")
    ap.add_argument("--out", type=Path, default=None,
                    help="Markdown file (default bench/results/summary_<preset>.md)")
    args = ap.parse_args(argv)
    lines = [f"# ICS reproduction tables, `{args.preset}` preset", "",
             f"Written by `python bench/summarize_tables.py --preset {args.preset}` from the "
             "CSV files beside this one (stored runs re-scored for the detector variants).", ""]
    for ds in DATASETS:
        lines += summarize(ds, args.preset, not args.no_rescore)
    text = "\n".join(lines)
    out = args.out or RESULTS / f"summary_{args.preset}.md"
    out.write_text(text)
    print(text)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
