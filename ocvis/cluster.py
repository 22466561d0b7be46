"""Benchmark tables on a Ray cluster (optional: ``pip install -r requirements-cluster.txt``).

    python -m ocvis bench ... --ray              # a local Ray instance on this machine
    python -m ocvis bench ... --ray auto         # the cluster this machine belongs to
    python -m ocvis bench ... --ray ray://head:10001

Every (method, class, seed) row is a Ray task that declares its resources (``num_cpus``,
one torch thread per CPU given; ``num_gpus`` when the preset wants a GPU). The task runs the
row in a temporary run store on the worker and sends back the row and its run directory
(packed), so the driver writes both: rows are merged into the same CSV tables as the local
path (``ocvis.bench.add_row``, under the table's lock) and runs into the driver's run store,
or into a shared folder the user names (``--runs-dir``; workers then write there directly).

Failures: a task whose worker process dies, or that raises, is retried once by Ray
(``max_retries=1``, ``retry_exceptions=True``); if it fails again its row is written with the
reason in the ``error`` column (and no metrics), and the next ``bench`` retries it. No row is
lost or written twice: the driver is the only writer and a row's key is unique in a table.
The workers see the driver's ``OCVIS_*`` settings and ``PYTHONPATH`` (a cluster needs the
datasets under the same ``OCVIS_DATA_ROOT`` on every node).
"""
from __future__ import annotations

import contextlib
import io
import os
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Callable

from ocvis.errors import DataError

ENV_PREFIXES = ("OCVIS_",)


def require_ray():
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise DataError("Ray is not installed: pip install -r requirements-cluster.txt "
                        "(or run without --ray)") from exc
    return ray


def _worker_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)}
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([root, *paths]))
    return env


def _pack(folder: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return buf.getvalue()


def _unpack(data: bytes, root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(root, filter="data")


def run_row(meth, dataset, c, seed, preset, n_train, overrides, protocol, ratio, threads,
            runs_dir: str | None, store_runs: bool):
    """One table row on a Ray worker: ``(row, packed run or None)``."""
    import torch

    from ocvis.bench import bench_row
    from ocvis.runs import RunStore

    torch.set_num_threads(max(1, int(threads)))
    if not store_runs:
        return bench_row(meth, dataset, c, seed, preset, n_train, overrides, None, protocol,
                         ratio), None
    if runs_dir:  # a folder every worker and the driver see
        row = bench_row(meth, dataset, c, seed, preset, n_train, overrides,
                        RunStore(Path(runs_dir)), protocol, ratio)
        return row, None
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(Path(tmp))
        row = bench_row(meth, dataset, c, seed, preset, n_train, overrides, store, protocol,
                        ratio)
        return row, _pack(store.path(row["run_id"])) if row.get("run_id") else None


def failed_row(meth, dataset, c, seed, preset, overrides, protocol, ratio, reason: str) -> dict:
    from ocvis.bench import overrides_text, protocol_label, row_settings

    return {"dataset": dataset, "protocol": protocol_label(protocol, ratio), "method": meth,
            "normal_class": str(c), "class_name": str(c), "seed": str(seed), "preset": preset,
            "overrides": overrides_text(row_settings(meth, overrides)),
            "finished": time.strftime("%Y-%m-%d %H:%M"), "error": reason[:300]}


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None):
    """Connect to ``address`` (a running cluster) or start a local Ray instance (``num_cpus``
    worker CPUs, default all) with the workers' environment, unless this process already has
    one; shut down on exit only what was started here."""
    ray = require_ray()
    started = not ray.is_initialized()
    if started:
        kw = {"num_cpus": num_cpus} if address is None and num_cpus else {}
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": _worker_env()}, **kw)
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def ray_bench(methods: list[str], dataset: str, classes: list, seeds: list[int], preset: str,
              out: Path, n_train: int | None = 4000, overrides: dict | None = None,
              store=None, progress: Callable[[str], None] | None = None,
              protocol: str = "one-class", ratio: float = 10.0, address: str | None = None,
              cpus_per_task: int = 1, gpus_per_task: float | None = None,
              runs_dir: str | None = None, num_cpus: int | None = None) -> Path:
    """:func:`ocvis.bench.bench` with every row a Ray task (see the module docstring).
    ``address`` None starts a local Ray instance (``num_cpus`` worker CPUs, default all)."""
    ray = require_ray()
    from ocvis.bench import add_row, progress_line, todo_rows

    todo = todo_rows(methods, dataset, classes, seeds, preset, out, overrides, protocol, ratio,
                     n_train=n_train)
    if not todo:
        return out
    with ray_session(address, num_cpus):
        if gpus_per_task is None:  # the paper presets are a GPU's budget: ask for one if any
            has_gpu = ray.cluster_resources().get("GPU", 0) > 0
            gpus_per_task = 1.0 if preset == "paper" and has_gpu else 0.0
        task = ray.remote(num_cpus=cpus_per_task, num_gpus=gpus_per_task, max_retries=1,
                          retry_exceptions=True)(run_row)
        refs = {}
        for meth, c, seed in todo:
            ref = task.remote(meth, dataset, c, seed, preset, n_train, overrides, protocol,
                              ratio, cpus_per_task, runs_dir, store is not None)
            refs[ref] = (meth, c, seed, time.perf_counter())
        while refs:
            (ref,), _ = ray.wait(list(refs), num_returns=1)
            meth, c, seed, t0 = refs.pop(ref)
            try:
                row, packed = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - failed twice: record it
                reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else \
                    type(exc).__name__
                row, packed = failed_row(meth, dataset, c, seed, preset, overrides, protocol,
                                         ratio, f"{type(exc).__name__}: {reason}"), None
            if packed is not None and store is not None:
                _unpack(packed, Path(store.root))
            add_row(out, row)
            if progress is not None:
                progress(progress_line(row, time.perf_counter() - t0))
    return out

