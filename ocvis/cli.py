"""Command line: ``python -m ocvis {datasets,run,bench,sweep,perf,rescore} ...`` (the same
library as the UI).

The commands print; the library they call only logs."""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from ocvis.errors import DataError, OcvisError
from ocvis.train import Hooks


def _cmd_datasets(args: argparse.Namespace) -> int:
    from ocvis.data import describe_datasets

    rows = describe_datasets(args.root)
    w = max(len(r["name"]) for r in rows)
    print(f"{'name':<{w}}  present  classes  channels  location")
    for r in rows:
        print(f"{r['name']:<{w}}  {'yes' if r['present'] else 'no ':<7}  {r['classes']:>7}  "
              f"{r['channels']:>8}  {r['location']}")
    print("\nAlso: folder:<path> for any folder of images (<path>/<class>/*). "
          "Data root: $OCVIS_DATA_ROOT.")
    return 0


def parse_overrides(items: list[str], methods: list[str]) -> dict:
    """``--set key=value`` items typed by the methods' config fields; a key no method has
    is an error that lists the known settings (before any training starts)."""
    from dataclasses import fields

    from ocvis.methods import get_method
    from ocvis.methods.base import parse_field_value

    configs = [get_method(m).Config for m in methods]
    out = {}
    for it in items or []:
        if "=" not in it:
            raise DataError(f"--set expects key=value, got {it!r}")
        k, v = (s.strip() for s in it.split("=", 1))
        owner = next((c for c in configs if k in {f.name for f in fields(c)}), None)
        if owner is None:
            known = sorted({f.name for c in configs for f in fields(c)})
            raise DataError(f"unknown setting {k!r} for {', '.join(methods)}; known: "
                            f"{', '.join(known)}")
        out[k] = parse_field_value(owner, k, v)
    return out


def _normal_arg(s: str):
    parts = [p for p in s.split(",") if p]
    return [int(p) if p.lstrip("-").isdigit() else p for p in parts]


class _Progress(Hooks):
    def on_epoch(self, e):
        losses = ", ".join(f"{k} {v:.4g}" for k, v in e["losses"].items())
        print(f"  {e['stage']} epoch {e['epoch']}/{e['epochs']}: {losses}", flush=True)

    def on_status(self, m):
        print(f"  {m}", flush=True)


def _cmd_run(args) -> int:
    from ocvis.experiment import run_experiment
    from ocvis.runs import RunStore

    task_cfg = {"dataset": args.dataset, "protocol": args.protocol,
                "normal": _normal_arg(args.normal), "n_train": args.n_train,
                "ratio": args.ratio, "seed": args.seed}
    if args.protocol == "latent-multiclass" and not args.normal.replace(",", "").isdigit():
        task_cfg["normal"] = args.normal
    overrides = parse_overrides(args.set, [args.method])
    store = None if args.no_store else RunStore()
    meta = run_experiment(task_cfg, args.method, args.preset, overrides, store=store,
                          hooks=_Progress())
    print(f"{meta['title']} on {meta['task_name']} ({meta['device']}, "
          f"{meta['fit_seconds']:.1f} s)")
    for name, mt in meta["metrics_by_score"].items():
        head = f"  score {name}" + (" (primary)" if name == meta["primary_score"] else "")
        if len(meta["metrics_by_score"]) > 1:
            print(head)
        for k in ("auroc", "aupr_in", "aupr_out", "bacc"):
            print(f"  {k:8s} {100 * mt[k]:.2f}")
    mt = meta["metrics"]
    if mt.get("message"):
        print(f"  note: {mt['message']}")
    for note in meta.get("notes", []):
        print(f"  warning: {note}")
    if store is not None:
        print(f"stored as run {meta['id']} in {store.root}")
        if args.projection != "none":
            # as the dashboard does after training: the Latent page then opens at once
            from ocvis.projection import cached_projection

            t0 = time.perf_counter()
            try:
                xy = cached_projection(store, meta["id"], args.projection,
                                       seed=int(task_cfg["seed"]))
                print(f"  {args.projection.upper()} projection of {len(xy)} points kept in "
                      f"the run ({time.perf_counter() - t0:.1f} s)")
            except OcvisError as exc:
                print(f"  no {args.projection} projection: {exc}")
    return 0


def _cmd_bench(args) -> int:
    from ocvis.bench import bench
    from ocvis.data import load_dataset
    from ocvis.runs import RunStore

    methods = [m for m in args.methods.split(",") if m]
    overrides = parse_overrides(args.set, methods)
    from ocvis.data.protocols import SCENARIOS

    if args.protocol == "latent-multiclass":
        known = list(SCENARIOS.get(args.dataset, {}))
        classes = known if args.classes == "all" else \
            [c.strip().upper() for c in args.classes.split(",") if c.strip()]
        bad = [c for c in classes if c not in known]
        if bad or not classes:
            raise DataError(f"unknown scenario(s) {', '.join(bad) or '(none)'} for "
                            f"{args.dataset}; known: {', '.join(known) or 'none'}")
    else:
        n_cls = len(load_dataset(args.dataset).classes)
        classes = list(range(n_cls)) if args.classes == "all" else \
            [int(c) for c in args.classes.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    name = args.name or f"{args.dataset}_{args.preset}"
    out = Path(args.out_dir) / f"{name}.csv"
    if args.no_store:
        store = None
    else:
        store = RunStore(Path(args.runs_dir)) if args.runs_dir else RunStore()
    kw = dict(n_train=None if args.n_train == 0 else args.n_train, overrides=overrides,
              store=store,
              progress=lambda line: print(line, flush=True), protocol=args.protocol,
              ratio=args.ratio)
    if args.ray is not None:
        from ocvis.cluster import ray_bench

        ray_bench(methods, args.dataset, classes, seeds, args.preset, out,
                  address=None if args.ray == "local" else args.ray,
                  cpus_per_task=args.cpus_per_task, gpus_per_task=args.gpus_per_task,
                  runs_dir=args.runs_dir, num_cpus=args.ray_cpus, **kw)
    else:
        bench(methods, args.dataset, classes, seeds, args.preset, out, **kw)
    print(f"wrote {out}")
    return 0


def _cmd_sweep(args) -> int:
    from ocvis.sweep import sweep

    if not str(args.normal).isdigit():
        raise DataError(f"--normal must be a class index, got {args.normal!r}")
    res = sweep(args.method, args.dataset, int(args.normal), args.param, trials=args.trials,
                preset=args.preset, seed=args.seed,
                address=None if args.ray in (None, "local") else args.ray,
                val_fraction=args.val_fraction, n_train=args.n_train or None,
                save=args.save, num_cpus=args.ray_cpus,
                progress=lambda line: print(line, flush=True))
    print(f"best: {res['best']} (validation AUROC {100 * res['val_auroc']:.2f})")
    if res["preset"]:
        print(f"saved as preset {res['preset']!r} of {args.method}: {res['path']} "
              f"(use --preset {res['preset']})")
    return 0


def _cmd_perf(args) -> int:
    from ocvis.perf import BENCHES, run

    only = [b for b in args.only.split(",") if b] if args.only else None
    bad = [b for b in only or [] if b not in BENCHES]
    if bad:
        raise DataError(f"unknown benchmark(s) {', '.join(bad)}; known: {', '.join(BENCHES)}")
    out = run(only, quick=args.quick, out=Path(args.out) if args.out else None,
              progress=lambda line: print(line, flush=True))
    print(f"wrote {out}")
    return 0


def _cmd_rescore(args) -> int:
    from ocvis.bench import add_label_agreement, add_missing_scores, refresh_paper_values, \
        rescore_table
    from ocvis.methods.base import DetectorConfig, parse_field_value
    from ocvis.runs import RunStore

    settings = {}
    for it in args.set:
        if "=" not in it:
            raise DataError(f"--set expects key=value, got {it!r}")
        k, v = (x.strip() for x in it.split("=", 1))
        settings[k] = parse_field_value(DetectorConfig, k, v)
    if args.paper_only:
        n = refresh_paper_values(Path(args.table))
        print(f"paper values changed in {n} row(s) of {args.table}")
        return 0
    if args.add_scores:
        n = add_missing_scores(Path(args.table), RunStore(),
                               progress=lambda l: print(l, flush=True))
        print(f"added scores to {n} row(s) of {args.table} from their stored models")
        n = add_label_agreement(Path(args.table), RunStore())
        print(f"added pseudo-label agreement (nmi_<column>) to {n} row(s) of {args.table}")
        return 0
    n = rescore_table(Path(args.table), RunStore(), progress=lambda l: print(l, flush=True),
                      **settings)
    print(f"re-scored {n} row(s) of {args.table} from their stored features")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ocvis", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("datasets", help="list datasets, where their files are, and if present")
    d.add_argument("--root", default=None, help="data root (default $OCVIS_DATA_ROOT or ./data)")
    d.set_defaults(func=_cmd_datasets)
    r = sub.add_parser("run", help="run one experiment, print and store its metrics")
    r.add_argument("--method", default="ics")
    r.add_argument("--dataset", default="digits")
    r.add_argument("--protocol", default="one-class")
    r.add_argument("--normal", default="0", help="class index/name, comma list, or scenario")
    r.add_argument("--n-train", type=int, default=None)
    r.add_argument("--ratio", type=float, default=10.0, help="outlier %% (unsupervised)")
    r.add_argument("--preset", default="cpu")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set epochs=3")
    r.add_argument("--no-store", action="store_true", help="do not write a run directory")
    r.add_argument("--projection", default="umap", choices=["umap", "pca", "none"],
                   help="2-D projection of the latents computed and kept in the run for the "
                        "Latent page (default umap; about 40 s in a new process on 2 cores)")
    r.set_defaults(func=_cmd_run)
    b = sub.add_parser("bench", help="fill a benchmark table, one row per method/class/seed")
    b.add_argument("--methods", default="ics,cls,cae,original,pca,hog")
    b.add_argument("--dataset", default="mnist")
    b.add_argument("--protocol", default="one-class",
                   choices=["one-class", "latent-multiclass", "unsupervised"])
    b.add_argument("--classes", default="all",
                   help="class indices, or scenarios (e.g. CUR,STR,MIX) for latent-multiclass")
    b.add_argument("--ratio", type=float, default=10.0, help="outlier %% (unsupervised)")
    b.add_argument("--seeds", default="0")
    b.add_argument("--preset", default="cpu")
    b.add_argument("--n-train", type=int, default=4000, help="0 = all")
    b.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    b.add_argument("--name", default=None, help="table name (default <dataset>_<preset>)")
    b.add_argument("--out-dir", default=str(Path("bench") / "results"))
    b.add_argument("--no-store", action="store_true",
                   help="do not keep each row's run directory (by default every row's run, "
                        "with its features and scores, is kept in $OCVIS_RUNS_DIR: the pages "
                        "open it and `rescore` re-fits its detector without retraining)")
    b.add_argument("--store", action="store_true", help=argparse.SUPPRESS)  # the default now
    b.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run every row as a Ray task: a local Ray instance without ADDRESS, "
                        "else 'auto' or ray://host:port (pip install -r "
                        "requirements-cluster.txt)")
    b.add_argument("--ray-cpus", type=int, default=None,
                   help="CPUs of the local Ray instance (default: all)")
    b.add_argument("--cpus-per-task", type=int, default=1,
                   help="CPUs (= torch threads) per row with --ray")
    b.add_argument("--gpus-per-task", type=float, default=None,
                   help="GPUs per row with --ray (default: 1 for the paper preset when the "
                        "cluster has GPUs, else 0)")
    b.add_argument("--runs-dir", default=None,
                   help="run store for the rows' runs (a folder shared by the cluster's "
                        "nodes with --ray; default $OCVIS_RUNS_DIR)")
    b.set_defaults(func=_cmd_bench)
    sw = sub.add_parser("sweep", help="hyperparameter sweep with Ray Tune on a validation "
                                      "split of the training data")
    sw.add_argument("--method", required=True)
    sw.add_argument("--dataset", default="digits")
    sw.add_argument("--normal", default="0", help="normal class index")
    sw.add_argument("--param", action="append", default=[], metavar="NAME=LO:HI[:log]")
    sw.add_argument("--trials", type=int, default=8)
    sw.add_argument("--preset", default="cpu", help="the preset the trials start from")
    sw.add_argument("--seed", type=int, default=0)
    sw.add_argument("--val-fraction", type=float, default=0.2,
                    help="share of the normal training images held out for validation")
    sw.add_argument("--n-train", type=int, default=0, help="0 = all")
    sw.add_argument("--save", default=None, metavar="NAME",
                    help="save the best configuration as preset NAME")
    sw.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                    help="a cluster address (default: a local Ray instance)")
    sw.add_argument("--ray-cpus", type=int, default=None)
    sw.set_defaults(func=_cmd_sweep)
    pf = sub.add_parser("perf", help="run the performance benchmarks (ratios against "
                                     "references measured in the same run)")
    pf.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    pf.add_argument("--only", default="", help="comma-separated: ssim, engine, ae-step, "
                                               "detectors, umap, dashboard")
    pf.add_argument("--out", default=None, help="CSV (default bench/results/perf.csv)")
    pf.set_defaults(func=_cmd_perf)
    rs = sub.add_parser("rescore", help="re-fit the detector of every stored row of a table "
                                        "on its stored features (no retraining)")
    rs.add_argument("table", help="a bench CSV, e.g. bench/results/mnist_cpu.csv")
    rs.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="detector settings, e.g. --set detector=kde or --set nu=0.05")
    rs.add_argument("--paper-only", action="store_true",
                    help="only rewrite the paper_auroc / paper_bacc columns from the current "
                         "paper table (any method, no run needed)")
    rs.add_argument("--add-scores", action="store_true",
                    help="score each row's stored model on its test set for the scores its "
                         "method gained since (new auroc_<score> columns; no retraining), "
                         "and add the nmi_<column> columns of stored per-sample groupings")
    rs.set_defaults(func=_cmd_rescore)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except OcvisError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `python -m ocvis bench | head`: stop quietly
        return 1
