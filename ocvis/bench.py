"""Benchmark tables: one row per (method, class, seed), filled by any number of processes.

A table is a CSV under ``bench/results/``; :func:`bench` appends a row as soon as its run
finishes (merged under a file lock, so one process per core can fill one table), skips rows
already there, and keeps one mean row per method. Methods sort by their class's
``table_order``.
"""
from __future__ import annotations

import contextlib
import csv
import functools
import io
import logging
import math
import time
from dataclasses import fields
from pathlib import Path
from typing import Callable

import numpy as np

from ocvis.errors import DataError
from ocvis.experiment import run_experiment
from ocvis.memory import peak_rss_mib, reset_peak_rss

log = logging.getLogger(__name__)
BENCH_COLUMNS = ["dataset", "protocol", "method", "normal_class", "class_name", "seed", "preset", "n_train",
                 "score", "auroc", "bacc", "aupr_in", "aupr_out", "paper_auroc", "paper_bacc",
                 "detector_ok", "outlier_frac", "detector_problem", "train_seconds",
                 "cpu_seconds", "peak_rss_mib", "pretrain_reused", "device", "threads",
                 "overrides", "run_id", "finished", "error"]
MEAN_COLUMNS = ("auroc", "bacc", "aupr_in", "aupr_out", "paper_auroc", "paper_bacc",
                "train_seconds", "cpu_seconds")
SCORE_PREFIX = "auroc_"  # one extra column per further score of a run: auroc_<score>
# one extra column per per-sample grouping a run made of its training images (CLAD's
# pseudo-labels): its NMI with their true latent classes (experiment's ``column_nmi``)
NMI_PREFIX = "nmi_"


def read_rows(path: Path) -> list[dict]:
    """The per-class rows of a table (mean rows left out)."""
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return [r for r in csv.DictReader(f) if r.get("normal_class") != "mean"]


def results_frame(paths) -> "pd.DataFrame":
    """The finished per-class rows of one or more tables as one DataFrame, for summaries:
    mean rows and failed rows left out, class / seed / settings as text, ``protocol`` and
    ``overrides`` present and filled (``protocol`` "one-class" where empty)."""
    import pandas as pd

    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    df = pd.concat([pd.read_csv(p, dtype={"normal_class": str, "overrides": str, "seed": str})
                    for p in paths], ignore_index=True)
    df = df[df["normal_class"] != "mean"].copy()
    if "error" in df:
        df = df[df["error"].isna() | (df["error"] == "")]
    for col in ("protocol", "overrides"):
        if col not in df:
            df[col] = ""
        df[col] = df[col].fillna("")
    df["protocol"] = df["protocol"].replace("", "one-class")
    return df


def markdown_cell(v, digits: int = 2) -> str:
    """A summary's table cell: text as it is, "–" for a missing number, else the number."""
    if isinstance(v, str):
        return v
    return "–" if v is None or math.isnan(v) else f"{v:.{digits}f}"


def markdown_table(heads, rows) -> list[str]:
    """The lines of a markdown table: the heading, its rule, one line per row of cells."""
    return ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads),
            *("| " + " | ".join(r) + " |" for r in rows)]


def _float(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def score_columns(rows: list[dict]) -> list[str]:
    """The ``auroc_<score>`` and ``nmi_<column>`` columns the rows have, in order of first
    appearance."""
    out: list[str] = []
    for r in rows:
        out += [k for k in r if k.startswith((SCORE_PREFIX, NMI_PREFIX)) and k not in out
                and r[k] not in (None, "")]
    return out


def write_table(path: Path, rows: list[dict]) -> None:
    """Rows + one mean row per (dataset, method, preset, overrides); atomically replaced.
    The mean row is class-balanced: the mean over classes of each class's mean over seeds.
    Runs with several scores (e.g. a two-stage run's KDE, OC-SVM, GDE and rotation scores)
    add one ``auroc_<score>`` column per further score."""
    from ocvis.methods import table_order
    from ocvis.runs import _atomic_write

    extra = score_columns(rows)
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], protocol_of(r), r["method"], r["preset"],
                           r.get("overrides") or ""), []).append(r)
    means = []
    for (ds, proto, meth, preset, ov), rs in groups.items():
        by_class: dict[str, list[dict]] = {}
        for r in rs:
            by_class.setdefault(str(r["normal_class"]), []).append(r)

        def mean(col):
            # class-balanced: each class's seeds are averaged first, so a table with extra
            # seeds on some classes still has the mean over its classes (not over its rows)
            per_class = []
            for crs in by_class.values():
                vals = [v for v in (_float(r.get(col)) for r in crs) if v is not None]
                if vals:
                    per_class.append(np.mean(vals))
            digits = 3 if col.startswith(NMI_PREFIX) else 2
            return f"{np.mean(per_class):.{digits}f}" if per_class else ""
        label = (f"{len(rs)} rows" if len(by_class) == len(rs)
                 else f"{len(by_class)} classes, {len(rs)} rows")
        means.append({"dataset": ds, "protocol": proto, "method": meth, "normal_class": "mean",
                      "class_name": label, "preset": preset, "overrides": ov,
                      "score": rs[0].get("score", ""),
                      **{c: mean(c) for c in (*MEAN_COLUMNS, *extra)}})
    rows = sorted(rows, key=lambda r: (r["dataset"], protocol_of(r), table_order(r["method"]),
                                       r.get("overrides") or "", _class_key(r["normal_class"]),
                                       int(r["seed"])))
    means.sort(key=lambda r: (r["dataset"], r["protocol"], table_order(r["method"]),
                              r["overrides"]))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=BENCH_COLUMNS + extra, lineterminator="\n", restval="",
                       extrasaction="ignore")
    w.writeheader()
    w.writerows(rows + means)
    _atomic_write(path, buf.getvalue().encode())


def protocol_of(r: dict) -> str:
    """A row's protocol (rows written before the column existed are one-class)."""
    return r.get("protocol") or "one-class"


def protocol_label(protocol: str, ratio: float | None = None) -> str:
    """``one-class``, ``latent-multiclass`` or ``unsupervised-<ratio>`` (the outlier %)."""
    return f"unsupervised-{ratio:g}" if protocol == "unsupervised" else protocol


def _class_key(c) -> tuple:
    s = str(c)
    return (0, int(s), "") if s.lstrip("-").isdigit() else (1, 0, s)


def row_key(r: dict) -> tuple:
    return (r["dataset"], protocol_of(r), r["method"], str(r["normal_class"]), str(r["seed"]),
            r["preset"], r.get("overrides") or "")


def overrides_text(overrides: dict | None) -> str:
    """The settings a row was run with beyond its preset, as ``key=value;key=value``."""
    def fmt(v):
        return ", ".join(map(str, v)) if isinstance(v, (tuple, list)) else str(v)
    return ";".join(f"{k}={fmt(v)}" for k, v in sorted((overrides or {}).items()))


@contextlib.contextmanager
def table_lock(path: Path):
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


def append_result(path: Path, row: dict) -> None:
    """Append one row to a benchmark script's own CSV (header written with the first)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)


def add_row(path: Path, row: dict) -> None:
    """Merge ``row`` into the table on disk (re-read under the lock) and rewrite it."""
    with table_lock(path):
        rows = [r for r in read_rows(path) if row_key(r) != row_key(row)]
        write_table(path, rows + [row])


def _pct(v) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.2f}"


def detector_columns(info: dict | None) -> dict:
    """The bench columns that say whether the run's detector fit is trustworthy."""
    det = (info or {}).get("detector") or {}
    frac = det.get("train_outlier_fraction")
    return {"detector_ok": "" if not det else int(bool(det.get("converged", True))),
            "outlier_frac": "" if frac is None else f"{frac:.3f}",
            "detector_problem": det.get("problem") or ""}


def nmi_columns(column_nmi: dict | None) -> dict:
    """A row's ``nmi_<column>`` columns from a run's ``column_nmi``."""
    return {f"{NMI_PREFIX}{k}": f"{v:.3f}" for k, v in (column_nmi or {}).items()}


def paper_columns(meth: str, dataset: str, c, protocol: str) -> dict:
    """A row's ``paper_auroc`` / ``paper_bacc`` (empty where the papers of the run's protocol
    kind report none)."""
    from ocvis.papers import paper_value

    return {f"paper_{m}": paper_value(meth, dataset, c, m, protocol) or ""
            for m in ("auroc", "bacc")}


def row_settings(meth: str, overrides: dict | None) -> dict:
    """The overrides that apply to ``meth`` (the ones its config has)."""
    from ocvis.methods import get_method

    names = {f.name for f in fields(get_method(meth).Config)}
    return {k: v for k, v in (overrides or {}).items() if k in names}


def todo_rows(methods, dataset, classes, seeds, preset, out: Path, overrides=None,
              protocol: str = "one-class", ratio: float = 10.0,
              n_train: int | None | object = ...) -> list[tuple]:
    """(method, class, seed) of the rows not yet in ``out`` (failed rows count as to do),
    in the order they are run: methods of one (class, seed) back to back.

    ``n_train`` (0 / None = all images), when given, must be what the table's rows of the
    same key were trained on: a row is not skipped as done, nor later replaced, on behalf of
    a run with another training-set size -- that is a :class:`DataError` asking for another
    table."""
    proto = protocol_label(protocol, ratio)
    have = {row_key(r): r for r in read_rows(out) if not r.get("error")}
    todo = []
    for seed in seeds:
        for c in classes:
            for meth in methods:
                done = have.get((dataset, proto, meth, str(c), str(seed), preset,
                                 overrides_text(row_settings(meth, overrides))))
                if done is None:
                    todo.append((meth, c, seed))
                elif n_train is not ...:
                    _check_n_train(done, out, dataset, protocol, c, seed, n_train, ratio)
    return todo


def _check_n_train(row: dict, out: Path, dataset, protocol, c, seed, n_train, ratio) -> None:
    """A done row was trained on as many images as this request would use (else raise)."""
    have = str(row.get("n_train") or "")
    if not have:
        return
    want = _train_size(dataset, protocol, c, int(seed), n_train or None, float(ratio))
    if int(float(have)) != want:
        asked = f"{n_train} training images" if n_train else "all training images"
        raise DataError(f"{out.name} already has {row['method']} class {c} seed {seed} "
                        f"trained on {have} images; this run asks for {asked} ({want}): "
                        "write it to another table (--name)")


@functools.lru_cache(maxsize=256)
def _train_size(dataset: str, protocol: str, c, seed: int, n_train, ratio: float) -> int:
    import warnings

    from ocvis.experiment import task_from_config

    with warnings.catch_warnings():  # "asked for more images than the class has"
        warnings.simplefilter("ignore")
        task = task_from_config(task_config(dataset, protocol, c, seed, n_train, ratio))
    return len(task.x_train)


def task_config(dataset: str, protocol: str, c, seed: int, n_train, ratio: float) -> dict:
    """The task of a row: class ``c`` (an index, or a scenario name) of ``dataset``."""
    task = {"dataset": dataset, "protocol": protocol, "seed": seed,
            "normal": c if isinstance(c, str) else [c], "n_train": n_train}
    if protocol == "unsupervised":
        task["ratio"] = ratio
    return task


def bench_row(meth: str, dataset: str, c, seed: int, preset: str, n_train: int | None = 4000,
              overrides: dict | None = None, store=None, protocol: str = "one-class",
              ratio: float = 10.0) -> dict:
    """Run one (method, class, seed) and return its table row (strings). ``peak_rss_mib`` is
    the process's peak resident memory while the row ran (data, model, training, scoring;
    on a system without a resettable peak, the process's peak so far)."""
    from ocvis.data import load_dataset

    ov = row_settings(meth, overrides)
    log.info("bench: %s %s class %s seed %s", meth, dataset, c, seed)
    reset_peak_rss()
    c0 = time.process_time()
    meta = run_experiment(task_config(dataset, protocol, c, seed, n_train, ratio), meth, preset,
                          ov, store=store)
    cpu = time.process_time() - c0
    peak = peak_rss_mib()
    mt = meta["metrics"]
    primary = meta.get("primary_score") or ""
    more = {f"{SCORE_PREFIX}{k}": _pct(v.get("auroc"))
            for k, v in (meta.get("metrics_by_score") or {}).items() if k != primary}
    more.update(nmi_columns(meta.get("column_nmi")))
    name = c if isinstance(c, str) else load_dataset(dataset).classes[c]
    row = {"dataset": dataset, "protocol": protocol_label(protocol, ratio), "method": meth,
           "normal_class": c, "class_name": name, "seed": seed, "preset": preset,
           "n_train": meta["task_summary"]["train"],
           "score": primary, "auroc": _pct(mt["auroc"]), "bacc": _pct(mt["bacc"]),
           "aupr_in": _pct(mt["aupr_in"]), "aupr_out": _pct(mt["aupr_out"]),
           **paper_columns(meth, dataset, c, protocol),
           **detector_columns(meta.get("info")),
           "train_seconds": f"{meta['fit_seconds']:.1f}", "cpu_seconds": f"{cpu:.0f}",
           "peak_rss_mib": "" if peak is None else f"{peak:.0f}",
           "pretrain_reused": int(meta.get("pretrain_reused", False)),
           "device": meta["device"], "threads": meta.get("threads", ""),
           "overrides": overrides_text(ov), "run_id": meta.get("id") or "",
           "finished": time.strftime("%Y-%m-%d %H:%M"), **more}
    return {k: str(v) for k, v in row.items()}


def progress_line(row: dict, seconds: float) -> str:
    if row.get("error"):
        return (f"{row['method']:8s} {row['dataset']} class {row['normal_class']} seed "
                f"{row['seed']}: FAILED ({row['error']})")
    return (f"{row['method']:8s} {row['dataset']} class {row['normal_class']} seed "
            f"{row['seed']}: AUROC {row['auroc']} (paper {row['paper_auroc']}), BACC "
            f"{row['bacc']} (paper {row['paper_bacc']}), {seconds:.0f} s")


def bench(methods: list[str], dataset: str, classes: list, seeds: list[int],
          preset: str, out: Path, n_train: int | None = 4000, overrides: dict | None = None,
          store=None, progress: Callable[[str], None] | None = None,
          protocol: str = "one-class", ratio: float = 10.0) -> Path:
    """Fill ``out`` row by row (one per method, class, seed); rows present are skipped.

    ``classes`` are class indices (``one-class``; the inlier class of ``unsupervised``, at
    ``ratio`` % outliers) or scenario names (``latent-multiclass``, e.g. ``"CUR"``).
    Methods of one (class, seed) run back to back so that the deep ones share the cached
    stage-1 autoencoder. ``overrides`` apply to the methods that have those settings.
    ``progress`` gets one line per finished row. (:func:`ocvis.cluster.ray_bench` does the
    same with every row a Ray task.)
    """
    for meth, c, seed in todo_rows(methods, dataset, classes, seeds, preset, out, overrides,
                                   protocol, ratio, n_train=n_train):
        # read again before each row: another process may have added it meanwhile
        if (meth, c, seed) not in todo_rows([meth], dataset, [c], [seed], preset, out,
                                            overrides, protocol, ratio, n_train=n_train):
            continue
        t0 = time.perf_counter()
        row = bench_row(meth, dataset, c, seed, preset, n_train, overrides, store, protocol,
                        ratio)
        add_row(out, row)
        if progress is not None:
            progress(progress_line(row, time.perf_counter() - t0))
    return out


def _read_run(store, rid: str, what: str) -> tuple[dict, dict] | None:
    """A stored run's record and arrays, or None (logged) where it cannot be read."""
    from ocvis.errors import OcvisError

    try:
        return store.read(rid), store.arrays(rid)
    except OcvisError as exc:
        log.warning("%s: run %s unreadable: %s", what, rid, exc)
        return None


def _merge_by_run(path: Path, added: dict[str, dict[str, str]]) -> int:
    """Add columns to the rows of ``path`` by run id (the table re-read under its lock, so
    rows other processes wrote meanwhile stay). Returns the number of runs given columns."""
    if added:
        with table_lock(path):
            rows = read_rows(path)
            for r in rows:
                r.update(added.get(r.get("run_id"), {}))
            write_table(path, rows)
    return len(added)


def add_missing_scores(path: Path, store, progress: Callable[[str], None] | None = None) -> int:
    """Give every row of ``path`` the ``auroc_<score>`` columns of scores its method gained
    after the row was run (e.g. RotNet's ``rotation_p0``): the run's stored model scores its
    rebuilt test set (inference only, no retraining), the new scores go into the run too
    (arrays and ``metrics_by_score``, so Evaluate shows them), and the row gets the
    columns. Scores a row already has are left as they are. The table is locked only to
    write. Returns the number of rows that gained columns."""
    from ocvis.errors import OcvisError
    from ocvis.experiment import load_run_method, task_of_run
    from ocvis.metrics import evaluate

    added: dict[str, dict[str, str]] = {}
    for r in read_rows(path):
        rid = r.get("run_id")
        if not rid or r.get("error"):
            continue
        try:
            meta = store.read(rid)
            m = load_run_method(store, rid)
        except OcvisError as exc:
            log.warning("add-scores: run %s not loadable: %s", rid, exc)
            continue
        have = set(meta.get("metrics_by_score") or {}) | {meta.get("primary_score")}
        missing = [k for k in m.score_names if k not in have]
        if not missing:
            continue
        task = task_of_run(meta)
        scores = m.scores(task.x_test)
        by_score = {k: evaluate(scores[k], task.y_test, task.val_mask) for k in missing}
        arrays = store.arrays(rid)
        train = getattr(m, "train_scores_", {}) or {}
        primary = meta.get("primary_score") or m.primary_score
        for part in ("test", "train"):  # a run of one score kept it unnamed
            if f"{part}_scores" in arrays:
                arrays.setdefault(f"{part}_scores.{primary}", arrays[f"{part}_scores"])
        arrays.update({f"test_scores.{k}": scores[k] for k in missing})
        arrays.update({f"train_scores.{k}": train[k] for k in missing if k in train})
        store.write_arrays(rid, **arrays)
        store.update(rid, metrics_by_score={**(meta.get("metrics_by_score") or {}),
                                            **by_score},
                     score_names=list(m.score_names))
        added[rid] = {f"{SCORE_PREFIX}{k}": str(_pct(v["auroc"])) for k, v in by_score.items()}
        if progress is not None:
            progress(f"{r['method']:8s} {r['dataset']} class {r['normal_class']} seed "
                     f"{r['seed']}: " + ", ".join(f"{k} {v}" for k, v in added[rid].items()))
    return _merge_by_run(path, added)


def add_label_agreement(path: Path, store) -> int:
    """Give every row of ``path`` whose method has ``grouping_columns`` (CLAD's pseudo-labels),
    stored for its training images (``train_col.<name>``), and no ``nmi_<name>`` column yet
    their agreement with the true classes (:func:`ocvis.metrics.label_agreement`), from the
    run's stored arrays (no model is loaded); the run's ``column_nmi`` is updated too.
    Returns the number of rows that gained columns."""
    from ocvis.errors import OcvisError
    from ocvis.methods import get_method
    from ocvis.metrics import grouping_agreement

    added: dict[str, dict[str, str]] = {}
    for r in read_rows(path):
        rid = r.get("run_id")
        if not rid or r.get("error") or any(k.startswith(NMI_PREFIX) and r[k] for k in r):
            continue
        try:
            names = get_method(r["method"]).grouping_columns
        except (KeyError, OcvisError):
            continue
        if not names:
            continue
        stored = _read_run(store, rid, "add-scores")
        if stored is None:
            continue
        meta, arr = stored
        classes = arr.get("train_classes")
        if classes is None:
            continue
        nmi = grouping_agreement({k[len("train_col."):]: v for k, v in arr.items()
                                  if k.startswith("train_col.")}, names, classes)
        if nmi:
            store.update(rid, column_nmi={**(meta.get("column_nmi") or {}), **nmi})
            added[rid] = nmi_columns(nmi)
    return _merge_by_run(path, added)


def refresh_paper_values(path: Path) -> int:
    """Rewrite every row's ``paper_auroc`` / ``paper_bacc`` from the current paper table and
    :func:`ocvis.papers.paper_value` (the run's protocol decides which papers count); the
    metrics are left as they are. Returns the number of rows whose values changed."""
    changed = 0
    with table_lock(path):
        rows = read_rows(path)
        for r in rows:
            new = {k: str(v) for k, v in paper_columns(
                r["method"], r["dataset"], r["normal_class"],
                r.get("protocol") or "one-class").items()}
            if any(str(r.get(k) or "") != v for k, v in new.items()):
                r.update(new)
                changed += 1
        write_table(path, rows)
    return changed


def rescore_table(path: Path, store, progress: Callable[[str], None] | None = None,
                  **detector_settings) -> int:
    """Re-fit every row's detector on its run's stored features (no retraining) with the
    current code, or with ``detector_settings`` (e.g. ``detector="kde"``, ``nu=0.05``), and
    rewrite the metrics and detector columns. Rows without a stored run are left as they
    are. Returns the number of rows re-scored."""
    from dataclasses import replace as dc_replace

    from ocvis.experiment import stored_config
    from ocvis.methods.base import FeatureMethod
    from ocvis.metrics import evaluate

    done = 0
    with table_lock(path):
        rows = read_rows(path)
        for r in rows:
            rid = r.get("run_id")
            if not rid:
                continue
            stored = _read_run(store, rid, "rescore")
            if stored is None:
                continue
            meta, arr = stored
            cls, cfg = stored_config(meta)
            if not issubclass(cls, FeatureMethod) or "train_latent" not in arr:
                continue
            cfg = dc_replace(cfg, **{k: v for k, v in detector_settings.items()
                                     if hasattr(cfg, k)})
            m = cls(cfg)
            det = m.make_detector().fit(arr["train_latent"].astype(np.float64))
            mt = evaluate(det.score_samples(arr["test_latent"].astype(np.float64)),
                          arr["y_test"], arr.get("val_mask"))
            r.update(auroc=_pct(mt["auroc"]), bacc=_pct(mt["bacc"]),
                     aupr_in=_pct(mt["aupr_in"]), aupr_out=_pct(mt["aupr_out"]),
                     **{k: str(v) for k, v in detector_columns(
                         {"detector": det.fit_info()}).items()})
            done += 1
            if progress is not None:
                progress(f"{r['method']:8s} {r['dataset']} class {r['normal_class']} seed "
                         f"{r['seed']}: AUROC {r['auroc']} ({'ok' if r['detector_ok'] == '1' else r['detector_problem']})")
        write_table(path, rows)
    return done
