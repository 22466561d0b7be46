"""One experiment end to end (task -> fit -> scores -> metrics -> run store), and the
benchmark tables built from many of them. Used by the CLI, the UI's jobs and ``bench/``."""
from __future__ import annotations

import contextlib
import csv
import logging
import math
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ocvis.errors import Cancelled, DataError, OcvisError
from ocvis.train import Hooks, device_description, resolve_device

log = logging.getLogger(__name__)


class _Recorder(Hooks):
    """Keeps the step records so a failed run still stores its curves."""

    def __init__(self) -> None:
        self.records: list[dict] = []

    def on_step(self, event: dict) -> None:
        self.records.append(event)


def task_label(task) -> str:
    return task.name


def run_experiment(task_cfg: dict, method: str, preset: str = "cpu",
                   overrides: dict | None = None, *, store=None, hooks: Hooks | None = None,
                   run_id: str | None = None) -> dict:
    """Build the task, fit ``method``, score the test set, evaluate, store the run.

    ``task_cfg`` holds the arguments of :func:`ocvis.data.make_task` (dataset, protocol,
    normal, n_train, ratio, seed). The method's seed is the task's seed unless overridden.
    Returns the run's metadata (with ``metrics``); with ``store`` a run directory is written
    even when fitting fails or is cancelled (status, error and the curves so far).
    """
    from ocvis.methods import make_method
    from ocvis.metrics import evaluate
    from ocvis.train import MultiHooks

    overrides = dict(overrides or {})
    seed = int(task_cfg.get("seed", 0))
    overrides.setdefault("seed", seed)
    recorder = _Recorder()
    all_hooks = MultiHooks([recorder, hooks])
    meta: dict[str, Any] = {"method": method, "preset": preset, "task": dict(task_cfg),
                            "overrides": overrides, "seed": overrides["seed"]}
    if store is not None and run_id is None:
        run_id = store.create({**meta, "task_name": f"{task_cfg.get('dataset')}-"
                                                    f"{task_cfg.get('normal')}"})
    if store is not None:
        store.update(run_id, status="running", started=time.time())
    m = None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            task = task_from_config(task_cfg)
            m = make_method(method, preset, **overrides)
            device = resolve_device(getattr(m.config, "device", "auto"))
            meta.update(task_name=task.name, config=asdict(m.config), title=m.title,
                        device=device_description(device), task_summary=task.summary())
            if store is not None:
                store.update(run_id, **meta)
            m.fit(task, hooks=all_hooks)
            all_hooks.on_status("scoring the test set")
            t_score = time.perf_counter()
            test_scores = m.score_samples(task.x_test)
            test_latent = m.embed(task.x_test)
            score_seconds = time.perf_counter() - t_score
            metrics = evaluate(test_scores, task.y_test, task.val_mask)
        notes = list(task.notes) + [str(w.message) for w in caught
                                    if issubclass(w.category, UserWarning)]
        fit_seconds = float(m.fit_seconds_)
        if getattr(m, "pretrain_reused_", False):
            fit_seconds += float(getattr(m, "pretrain_seconds_", 0.0))
        meta.update(status="done", metrics=metrics, fit_seconds=fit_seconds,
                    pretrain_reused=bool(getattr(m, "pretrain_reused_", False)),
                    score_seconds=score_seconds, notes=notes, finished=time.time())
        if store is not None:
            arrays = dict(test_scores=test_scores, train_scores=m.detector_.train_scores_,
                          train_latent=np.asarray(m.train_features_, np.float32),
                          test_latent=np.asarray(test_latent, np.float32),
                          y_test=task.y_test, test_classes=task.test_classes,
                          val_mask=task.val_mask, train_classes=task.train_classes)
            if task.y_train_hidden is not None:
                arrays["y_train_hidden"] = task.y_train_hidden
            sp = getattr(m, "split_", None)
            if sp is not None:
                arrays.update(split_similarity=sp.similarity, split_atypical=sp.atypical)
            store.write_arrays(run_id, **arrays)
            store.write_model(run_id, m.state_dict())
            store.write_history(run_id, m.history.to_json())
            store.update(run_id, **meta)
    except Exception as exc:
        _store_failure(store, run_id, meta, recorder, exc)
        raise
    meta["id"] = run_id
    return meta


def load_run_method(store, run_id: str):
    """Rebuild the fitted method of a stored run (weights loaded with weights_only=True)."""
    from ocvis.methods import make_method

    meta = store.read(run_id)
    if meta.get("status") != "done" or meta.get("kind", "experiment") != "experiment":
        raise OcvisError(f"run {run_id} has no finished model ({meta.get('status')})")
    cfg = dict(meta.get("config") or {})
    m = make_method(meta["method"], meta.get("preset", "cpu"), **cfg)
    return m.load_state_dict(store.model_state(run_id))


def task_from_config(cfg: dict):
    """``make_task`` from a task configuration as the UI and the run store keep it."""
    from ocvis.data import make_task

    return make_task(cfg.get("dataset", "digits"), cfg.get("protocol", "one-class"),
                     cfg.get("normal", 0), n_train=cfg.get("n_train"),
                     ratio=cfg.get("ratio", 10.0), seed=int(cfg.get("seed", 0)))


def task_of_run(meta: dict):
    """The task a run was trained on, rebuilt from its stored configuration (deterministic)."""
    return task_from_config(meta.get("task") or {})


def _store_failure(store, run_id, meta, recorder, exc: BaseException) -> None:
    """Record why a run ended early (cancelled / failed) with the curves it had."""
    if isinstance(exc, Cancelled):
        meta.update(status="cancelled", error=str(exc))
    else:
        meta.update(status="failed", error=str(exc) if isinstance(exc, OcvisError)
                    else f"{type(exc).__name__}: {exc}")
    meta["finished"] = time.time()
    if store is None:
        return
    try:
        store.write_history(run_id, recorder.records)
        store.update(run_id, **meta)
    except Exception as exc:  # noqa: BLE001 - never hide the original error
        log.warning("could not record the failure of run %s: %s", run_id, exc)


def run_split(task_cfg: dict, preset: str = "cpu", overrides: dict | None = None, *,
              store=None, hooks: Hooks | None = None, run_id: str | None = None) -> dict:
    """Stages 1 and 2 of ICS alone: train the splitting autoencoder (cached, so a later ICS
    run with the same settings reuses it), reconstruct every normal training image and
    measure its similarity. The typical / atypical cut is then free to move (``rho``)."""
    from ocvis.methods import make_method
    from ocvis.split import split
    from ocvis.train import MultiHooks

    overrides = dict(overrides or {})
    overrides.setdefault("seed", int(task_cfg.get("seed", 0)))
    recorder = _Recorder()
    all_hooks = MultiHooks([recorder, hooks])
    meta: dict[str, Any] = {"method": "split", "kind": "split", "preset": preset,
                            "task": dict(task_cfg), "overrides": overrides,
                            "seed": overrides["seed"]}
    if store is not None and run_id is None:
        run_id = store.create({**meta, "task_name": f"{task_cfg.get('dataset')}-"
                                                    f"{task_cfg.get('normal')}"})
    if store is not None:
        store.update(run_id, status="running", started=time.time())
    try:
        task = task_from_config(task_cfg)
        m = make_method("ics", preset, **overrides)
        from ocvis.methods.base import validate_config

        validate_config(m.config)
        meta.update(task_name=task.name, config=asdict(m.config), title="Intra-class split",
                    device=device_description(resolve_device(m.config.device)),
                    task_summary=task.summary())
        if store is not None:
            store.update(run_id, **meta)
        t0 = time.perf_counter()
        m.pretrain(task.x_train, all_hooks)
        all_hooks.on_status(f"measuring {m.config.similarity.upper()} of every reconstruction")
        x_hat = m.reconstruct(task.x_train)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            sp = split(task.x_train, x_hat, rho=m.config.rho, metric=m.config.similarity)
        fit_seconds = time.perf_counter() - t0
        if getattr(m, "pretrain_reused_", False):
            fit_seconds += float(getattr(m, "pretrain_seconds_", 0.0))
        meta.update(status="done", fit_seconds=fit_seconds, finished=time.time(),
                    rho=m.config.rho, similarity=m.config.similarity,
                    pretrain_reused=bool(getattr(m, "pretrain_reused_", False)),
                    n_atypical=int(sp.atypical.sum()))
        if store is not None:
            recon = (x_hat.clamp(0, 1) * 255).round().to(dtype=torch.uint8)
            store.write_arrays(run_id, similarity=sp.similarity, atypical=sp.atypical,
                               recon_uint8=recon.numpy(), train_classes=task.train_classes)
            store.write_history(run_id, m.history.to_json())
            store.update(run_id, **meta)
    except Exception as exc:
        _store_failure(store, run_id, meta, recorder, exc)
        raise
    meta["id"] = run_id
    meta["split"] = sp
    return meta


# ----------------------------------------------------------------------------- bench
BENCH_COLUMNS = ["dataset", "method", "normal_class", "class_name", "seed", "preset", "n_train",
                 "auroc", "bacc", "aupr_in", "aupr_out", "paper_auroc", "paper_bacc",
                 "train_seconds", "pretrain_reused", "device", "finished"]


def _read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return [r for r in csv.DictReader(f) if r.get("normal_class") != "mean"]


def _write_table(path: Path, rows: list[dict]) -> None:
    """Rows + one mean row per (dataset, method, preset); atomically replaced."""
    from ocvis.runs import _atomic_write
    import io

    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["method"], r["preset"]), []).append(r)
    means = []
    for (ds, meth, preset), rs in groups.items():
        def mean(col):
            vals = [float(r[col]) for r in rs if r.get(col) not in ("", None)
                    and not math.isnan(float(r[col]))]
            return f"{np.mean(vals):.2f}" if vals else ""
        means.append({"dataset": ds, "method": meth, "normal_class": "mean",
                      "class_name": f"{len(rs)} rows", "seed": "", "preset": preset,
                      "n_train": "", **{c: mean(c) for c in ("auroc", "bacc", "aupr_in",
                                                                "aupr_out", "paper_auroc",
                                                                "paper_bacc", "train_seconds")},
                      "pretrain_reused": "", "device": "", "finished": ""})
    order = {"ics": 0, "cls": 1, "cae": 2, "original": 3, "pca": 4, "hog": 5}
    rows = sorted(rows, key=lambda r: (r["dataset"], order.get(r["method"], 9), r["method"],
                                       int(r["normal_class"]), int(r["seed"])))
    means.sort(key=lambda r: (r["dataset"], order.get(r["method"], 9), r["method"]))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=BENCH_COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows + means)
    _atomic_write(path, buf.getvalue().encode())


def _row_key(r: dict) -> tuple:
    return (r["dataset"], r["method"], str(r["normal_class"]), str(r["seed"]), r["preset"])


@contextlib.contextmanager
def _table_lock(path: Path):
    """Exclusive lock next to a table, so several ``bench`` processes can fill one table
    (e.g. one per core, on different classes) without losing each other's rows."""
    try:
        import fcntl
    except ImportError:  # not POSIX: one process per table
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _add_row(path: Path, row: dict) -> None:
    """Merge ``row`` into the table on disk (re-read under the lock) and rewrite it."""
    with _table_lock(path):
        rows = [r for r in _read_rows(path) if _row_key(r) != _row_key(row)]
        _write_table(path, rows + [row])


def bench(methods: list[str], dataset: str, classes: list[int], seeds: list[int],
          preset: str, out: Path, n_train: int | None = 4000, overrides: dict | None = None,
          store=None) -> Path:
    """Fill ``out`` row by row (one per method, class, seed); rows present are skipped.

    Methods of one (class, seed) run back to back so that the deep ones share the cached
    stage-1 autoencoder.
    """
    from ocvis.data import load_dataset
    from ocvis.papers import paper_value

    ds = load_dataset(dataset)
    for seed in seeds:
        for c in classes:
            for meth in methods:
                key = (dataset, meth, str(c), str(seed), preset)
                # read again before each row: another process may have added it meanwhile
                if key in {_row_key(r) for r in _read_rows(out)}:
                    continue
                log.info("bench: %s %s class %s seed %s", meth, dataset, c, seed)
                t0 = time.perf_counter()
                from dataclasses import fields as _fields

                from ocvis.methods import get_method

                names = {f.name for f in _fields(get_method(meth).Config)}
                ov = {k: v for k, v in (overrides or {}).items() if k in names}
                meta = run_experiment({"dataset": dataset, "protocol": "one-class",
                                       "normal": [c], "n_train": n_train, "seed": seed},
                                      meth, preset, ov, store=store)
                mt = meta["metrics"]
                pct = lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) \
                    else f"{100 * v:.2f}"
                row = {"dataset": dataset, "method": meth, "normal_class": c,
                       "class_name": ds.classes[c], "seed": seed, "preset": preset,
                       "n_train": meta["task_summary"]["train"],
                       "auroc": pct(mt["auroc"]), "bacc": pct(mt["bacc"]),
                       "aupr_in": pct(mt["aupr_in"]), "aupr_out": pct(mt["aupr_out"]),
                       "paper_auroc": paper_value(meth, dataset, c, "auroc") or "",
                       "paper_bacc": paper_value(meth, dataset, c, "bacc") or "",
                       "train_seconds": f"{meta['fit_seconds']:.1f}",
                       "pretrain_reused": int(meta.get("pretrain_reused", False)),
                       "device": meta["device"], "finished": time.strftime("%Y-%m-%d %H:%M")}
                _add_row(out, {k: str(v) for k, v in row.items()})
                print(f"{meth:8s} {dataset} class {c} seed {seed}: AUROC {row['auroc']} "
                      f"(paper {row['paper_auroc']}), BACC {row['bacc']} (paper "
                      f"{row['paper_bacc']}), {time.perf_counter() - t0:.0f} s", flush=True)
    return out


# ----------------------------------------------------------------------------- CLI
def _parse_overrides(items: list[str]) -> dict:
    out = {}
    for it in items or []:
        if "=" not in it:
            raise DataError(f"--set expects key=value, got {it!r}")
        k, v = it.split("=", 1)
        for conv in (int, float):
            try:
                out[k] = conv(v)
                break
            except ValueError:
                continue
        else:
            out[k] = {"true": True, "false": False}.get(v.lower(), v)
    return out


def _normal_arg(s: str):
    parts = [p for p in s.split(",") if p]
    return [int(p) if p.lstrip("-").isdigit() else p for p in parts]


def _cmd_run(args) -> int:
    from ocvis.runs import RunStore

    task_cfg = {"dataset": args.dataset, "protocol": args.protocol,
                "normal": _normal_arg(args.normal), "n_train": args.n_train,
                "ratio": args.ratio, "seed": args.seed}
    if args.protocol == "latent-multiclass" and not args.normal.replace(",", "").isdigit():
        task_cfg["normal"] = args.normal
    store = None if args.no_store else RunStore()

    class Progress(Hooks):
        def on_epoch(self, e):
            losses = ", ".join(f"{k} {v:.4g}" for k, v in e["losses"].items())
            print(f"  {e['stage']} epoch {e['epoch']}/{e['epochs']}: {losses}", flush=True)

        def on_status(self, m):
            print(f"  {m}", flush=True)

    meta = run_experiment(task_cfg, args.method, args.preset, _parse_overrides(args.set),
                          store=store, hooks=Progress())
    mt = meta["metrics"]
    print(f"{meta['title']} on {meta['task_name']} ({meta['device']}, "
          f"{meta['fit_seconds']:.1f} s)")
    for k in ("auroc", "aupr_in", "aupr_out", "bacc"):
        print(f"  {k:8s} {100 * mt[k]:.2f}")
    if mt.get("message"):
        print(f"  note: {mt['message']}")
    if store is not None:
        print(f"stored as run {meta['id']} in {store.root}")
        if args.projection != "none" and meta.get("status", "done") == "done":
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
    from ocvis.data import load_dataset
    from ocvis.runs import RunStore

    methods = [m for m in args.methods.split(",") if m]
    n_cls = len(load_dataset(args.dataset).classes)
    classes = list(range(n_cls)) if args.classes == "all" else \
        [int(c) for c in args.classes.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    name = args.name or f"{args.dataset}_{args.preset}"
    out = Path(args.out_dir) / f"{name}.csv"
    bench(methods, args.dataset, classes, seeds, args.preset, out,
          n_train=None if args.n_train == 0 else args.n_train,
          overrides=_parse_overrides(args.set), store=RunStore() if args.store else None)
    print(f"wrote {out}")
    return 0


def add_commands(sub) -> None:
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
    b.add_argument("--classes", default="all")
    b.add_argument("--seeds", default="0")
    b.add_argument("--preset", default="cpu")
    b.add_argument("--n-train", type=int, default=4000, help="0 = all")
    b.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    b.add_argument("--name", default=None, help="table name (default <dataset>_<preset>)")
    b.add_argument("--out-dir", default=str(Path("bench") / "results"))
    b.add_argument("--store", action="store_true",
                   help="also keep each row's run directory in $OCVIS_RUNS_DIR (latents, "
                        "weights: the Latent / Explain pages can open it)")
    b.set_defaults(func=_cmd_bench)
