"""Reproduce the feature-learning paper's Fig. 3 and time projections and explanations.

    OCVIS_DATA_ROOT=../shared/datasets python bench/fig3_latent.py \
        [--dataset fashion-mnist] [--normal 0] [--preset cpu] [--methods cls,ics]

For each method: trains it on 4,000 normal images (or reuses a stored run with the same
settings in $OCVIS_RUNS_DIR), projects train + test latents with UMAP (fit on a seeded
5,000-point subsample, the rest transformed) and draws the four groups to
``bench/results/fig3_<dataset>_<class>_<method>.png``. It also times, on the stored run:
UMAP the first time (no cached file, new process state) and cached, PCA, and IG + GradCAM
of 8 images through the KDE head (128 IG steps, the Explain page's default); written to
``bench/results/latent_explain_timing.csv``.
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from ocvis.experiment import load_run_method, run_experiment, task_of_run  # noqa: E402
from ocvis.projection import GROUP_NAMES, cached_projection, run_latents  # noqa: E402
from ocvis.runs import RunStore  # noqa: E402

COLORS = ("#2ca02c", "#ffbf00", "#9e9e9e", "#d62728")


def find_stored(store, task_cfg, method, preset):
    """Newest finished run of ``method`` on this task with the preset's current settings.

    Runs made under older defaults (their stored config differs) are not reused, so a
    figure always shows what the current code trains (e.g. a ``bench --store`` row).
    """
    from dataclasses import asdict

    from ocvis.methods import make_method

    want = asdict(make_method(method, preset).config)
    found = [r for r in store.list()
             if r.get("status") == "done" and r.get("method") == method
             and r.get("task") == task_cfg and r.get("preset") == preset
             and r.get("config") == want]
    return max(found, key=lambda r: r["id"])["id"] if found else None


def find_or_train(store, task_cfg, method, preset):
    return find_stored(store, task_cfg, method, preset) or \
        run_experiment(task_cfg, method, preset, store=store)["id"]


def draw(xy, group, path, title, ticks=False):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 6), dpi=110)
    for g in (3, 0, 2, 1):  # many abnormal points at the back, the few atypical on top
        sel = group == g
        ax.scatter(xy[sel, 0], xy[sel, 1], s=3 if g >= 2 else 5, c=COLORS[g],
                   alpha=0.35 if g == 3 else 0.8, label=f"{GROUP_NAMES[g]} ({sel.sum()})",
                   linewidths=0)
    ax.set_title(title, fontsize=10)
    if not ticks:  # UMAP's axes have no unit; PCA's are latent units (kept to compare spreads)
        ax.set_xticks([])
        ax.set_yticks([])
    ax.legend(loc="lower left", fontsize=7, markerscale=3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--normal", type=int, default=0)
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--methods", default="cls,ics")
    ap.add_argument("--projection", default="umap", choices=["umap", "pca"],
                    help="pca keeps the latent space's scale (UMAP rescales distances), so "
                         "a collapsed latent shows as a small cloud")
    ap.add_argument("--no-timing", action="store_true",
                    help="reuse cached projections and skip the timings (redraw only)")
    args = ap.parse_args()
    store = RunStore()
    task_cfg = {"dataset": args.dataset, "protocol": "one-class", "normal": [args.normal],
                "n_train": 4000, "ratio": 10.0, "seed": 0}
    out_dir = ROOT / "bench" / "results"
    rows = []
    for method in args.methods.split(","):
        rid = find_or_train(store, task_cfg, method, args.preset)
        meta = store.read(rid)
        for p in ([] if args.no_timing else store.path(rid).glob("proj-*.npy")):
            p.unlink()  # time a first computation
        t0 = time.perf_counter()
        xy = cached_projection(store, rid, "umap", seed=0)
        t_umap = time.perf_counter() - t0
        t0 = time.perf_counter()
        cached_projection(store, rid, "umap", seed=0)
        t_cached = time.perf_counter() - t0
        t0 = time.perf_counter()
        cached_projection(store, rid, "pca", seed=0)
        t_pca = time.perf_counter() - t0
        arr = store.arrays(rid)
        if "split_atypical" not in arr:  # runs from before every AE method kept its split:
            ics = find_stored(store, task_cfg, "ics", args.preset)  # same stage-1 AE
            if ics is not None:
                arr["split_atypical"] = store.arrays(ics)["split_atypical"]
        _, group, _ = run_latents(arr)
        suffix = "" if args.projection == "umap" else f"_{args.projection}"
        png = out_dir / f"fig3_{args.dataset}_{args.normal}_{method}{suffix}.png"
        if args.projection != "umap":
            xy = cached_projection(store, rid, args.projection, seed=0)
        auroc = 100 * meta["metrics"]["auroc"]
        draw(xy, group, png, f"{method.upper()} · {meta['task_name']} · AUROC {auroc:.1f} "
                             f"({args.preset} preset, {args.projection.upper()})", ticks=args.projection == "pca")
        if args.no_timing:
            continue
        m = load_run_method(store, rid)
        task = task_of_run(meta)
        from ocvis.explain import Explainer

        order = np.argsort(store.arrays(rid)["test_scores"])[:8]
        x = task.x_test[order]
        t0 = time.perf_counter()
        e = Explainer(m, "kde")
        attr, delta, s, sb = e.integrated_gradients(x, n_steps=128)  # the Explain page default
        cam = e.gradcam(x)
        assert cam.shape[-2:] == x.shape[-2:]
        t_explain = time.perf_counter() - t0
        rel = float((delta.abs() / (s - sb).abs()).max())
        rows.append({"method": method, "run": rid, "n_points": len(xy),
                     "auroc": f"{auroc:.2f}", "umap_first_s": f"{t_umap:.2f}",
                     "umap_cached_s": f"{t_cached:.3f}", "pca_s": f"{t_pca:.2f}",
                     "ig_gradcam_8_images_s": f"{t_explain:.2f}",
                     "ig_completeness_max_rel_err": f"{rel:.4f}", "png": png.name})
        print(rows[-1], flush=True)
    if not rows:
        return 0
    with (out_dir / "latent_explain_timing.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) + ["command"])
        w.writeheader()
        for r in rows:
            w.writerow({**r, "command": "python bench/fig3_latent.py " + " ".join(sys.argv[1:])})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
