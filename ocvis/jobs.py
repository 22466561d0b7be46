"""Background jobs for the UI: threads that never call Streamlit.

A :class:`JobManager` runs submitted jobs one at a time in a worker thread (2 cores do not
train two models faster than one), so a second job waits in the queue instead of being lost
or fighting for the cores. Each :class:`Job` exposes its status (queued / running / done /
failed / cancelled), progress (stage, epoch, step, fraction, ETA), the loss history per
named term, the last status message and error, and a cancel flag that the engine checks
before every step. The UI keeps one manager in ``st.cache_resource`` so jobs survive reruns,
page switches and browser reloads; results land in the run store.
"""
from __future__ import annotations

import itertools
import logging
import os
import queue
import threading
import time
import traceback
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable

from ocvis.errors import Cancelled, OcvisError
from ocvis.train import Hooks

log = logging.getLogger(__name__)
JOB_STATUSES = ("queued", "running", "done", "failed", "cancelled")
HISTORY_FLUSH_SECONDS = 5.0
_STOP = (None, None)
IDLE_WARM_SECONDS = 20.0  # compile UMAP once the worker has been idle this long


def default_torch_threads() -> int:
    """``$OCVIS_TORCH_THREADS`` or all cores but one (the server keeps one to answer)."""
    env = os.environ.get("OCVIS_TORCH_THREADS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, (os.cpu_count() or 2) - 1)


def warm_up() -> None:
    """Import what a first job would import lazily (``torch.optim`` pulls ``torch._dynamo``,
    scikit-learn's datasets and SVM, ~3 s together) and take one tiny optimiser step, so the
    first real step of the first job reaches the loss chart quickly."""
    try:
        import sklearn.datasets  # noqa: F401
        import sklearn.metrics  # noqa: F401
        import sklearn.model_selection  # noqa: F401
        import sklearn.svm  # noqa: F401
        import torch

        import ocvis.experiment  # noqa: F401  (the Start button imports these)
        import ocvis.methods  # noqa: F401
        from ocvis.data import load_dataset

        load_dataset("digits")  # the default dataset, cached in memory for the first job
        net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(),
                                  torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 2))
        opt = torch.optim.Adam(net.parameters())
        net(torch.rand(8, 1, 8, 8)).square().mean().backward()
        opt.step()
    except Exception as exc:  # noqa: BLE001 - only an optimisation
        log.warning("warm-up failed: %s", exc)


@dataclass
class Job:
    id: str
    kind: str
    title: str
    params: dict
    stages: tuple[str, ...] = ()
    status: str = "queued"
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    message: str = ""
    error: str | None = None
    result: Any = None
    run_id: str | None = None
    history: list[dict] = field(default_factory=list)
    progress: dict = field(default_factory=dict)
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def done(self) -> bool:
        return self.status in ("done", "failed", "cancelled")

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        self._cancel.set()
        if self.status == "queued":
            self.status = "cancelled"
            self.finished = time.time()
            self.message = "cancelled before it started"

    def elapsed(self) -> float:
        if self.started is None:
            return 0.0
        return (self.finished or time.time()) - self.started

    def snapshot(self) -> dict:
        """A consistent, plain copy for display (the worker keeps appending)."""
        return {"id": self.id, "kind": self.kind, "title": self.title, "status": self.status,
                "message": self.message, "error": self.error, "run_id": self.run_id,
                "progress": dict(self.progress), "n_history": len(self.history),
                "elapsed": self.elapsed(), "params": self.params}


class JobHooks(Hooks):
    """Engine hooks that record into a job (and flush the curves to its run now and then)."""

    def __init__(self, job: Job, store=None) -> None:
        self.job = job
        self.store = store
        self._stage_index = -1
        self._stage_seen: list[str] = []
        self._last_flush = time.time()

    def on_stage(self, stage, epochs, steps):
        if stage not in self._stage_seen:
            self._stage_seen.append(stage)
        self.job.progress.update(stage=stage, epochs=epochs, steps=steps, epoch=0, step=0)
        self.job.message = f"{stage}: {epochs} epoch(s) of {steps} step(s)"

    def on_step(self, e):
        job = self.job
        job.history.append(e)
        stages = list(job.stages) or self._stage_seen
        k = max(1, len(stages))
        try:
            si = stages.index(e["stage"])
        except ValueError:
            si = len(self._stage_seen) - 1
        within = ((e["epoch"] - 1) * e["steps"] + e["step"]) / max(1, e["epochs"] * e["steps"])
        frac = min(1.0, (si + within) / k)
        el = job.elapsed()
        job.progress.update(stage=e["stage"], epoch=e["epoch"], epochs=e["epochs"],
                            step=e["step"], steps=e["steps"], global_step=e["global_step"],
                            fraction=frac,
                            eta=(el / frac - el) if frac > 0.01 else None)
        if self.store is not None and job.run_id and \
                time.time() - self._last_flush > HISTORY_FLUSH_SECONDS:
            self._last_flush = time.time()
            try:
                self.store.write_history(job.run_id, list(job.history))
            except OSError as exc:
                log.warning("could not flush history of %s: %s", job.run_id, exc)

    def on_status(self, message):
        self.job.message = message

    def should_stop(self):
        return self.job.cancel_requested


_MANAGERS: "weakref.WeakSet[JobManager]" = weakref.WeakSet()


def live_managers() -> list["JobManager"]:
    """Every job manager of this process that has not been shut down (tests clean up)."""
    return [m for m in list(_MANAGERS) if not m.closed]


class JobManager:
    """FIFO of jobs run by one daemon worker thread."""

    def __init__(self, store=None, torch_threads: int | None = None,
                 warm: bool = False) -> None:
        from ocvis.runs import RunStore

        self.store = store if store is not None else RunStore()
        self.torch_threads = torch_threads or default_torch_threads()
        self._jobs: dict[str, Job] = {}
        self._queue: queue.Queue = queue.Queue()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._warm = warm
        self.closed = False
        self.idle_swept = threading.Event()  # set when idle work has nothing left to do
        _MANAGERS.add(self)
        if warm:  # imports in their own thread: a job submitted meanwhile does not wait
            threading.Thread(target=warm_up, name="ocvis-warm-up", daemon=True).start()
            with self._lock:
                self._ensure_worker()

    # -- submitting ---------------------------------------------------------------------
    def submit(self, kind: str, title: str, fn: Callable[[Job, Hooks], Any],
               params: dict | None = None, stages: tuple[str, ...] = ()) -> Job:
        """Queue ``fn(job, hooks)``; its return value becomes ``job.result``."""
        with self._lock:
            if self.closed:
                raise OcvisError("the job manager has been shut down; reload the page")
            job = Job(id=f"job-{next(self._ids)}", kind=kind, title=title,
                      params=dict(params or {}), stages=tuple(stages))
            self._jobs[job.id] = job
            self._queue.put((job, fn))
            self._ensure_worker()
        return job

    def submit_experiment(self, task_cfg: dict, method: str, preset: str = "cpu",
                          overrides: dict | None = None) -> Job:
        """Fit + evaluate + store a method (the Train page's Start button)."""
        from ocvis.experiment import run_experiment
        from ocvis.methods import get_method

        cls = get_method(method)
        stages = tuple(getattr(cls, "stages", ()))
        run_id = self.store.create({"method": method, "preset": preset, "task": dict(task_cfg),
                                    "overrides": dict(overrides or {}), "kind": "experiment",
                                    "task_name": f"{task_cfg.get('dataset')}-"
                                                 f"{task_cfg.get('normal')}"})

        def fn(job: Job, hooks: Hooks):
            meta = run_experiment(task_cfg, method, preset, overrides, store=self.store,
                                  hooks=hooks, run_id=run_id)
            # the latent page opens warm: UMAP is computed right after training, queued
            self.submit_projection(run_id, "umap", seed=int(meta.get("seed", 0)))
            return meta

        job = self.submit("experiment", f"{cls.title} · {task_cfg.get('dataset')} "
                                        f"{task_cfg.get('normal')}", fn,
                          {"task": task_cfg, "method": method, "preset": preset,
                           "overrides": overrides or {}}, stages)
        job.run_id = run_id
        return job

    def submit_split(self, task_cfg: dict, preset: str = "cpu",
                     overrides: dict | None = None) -> Job:
        """Train the splitting autoencoder and compute every sample's similarity."""
        from ocvis.experiment import run_split

        run_id = self.store.create({"method": "split", "preset": preset, "kind": "split",
                                    "task": dict(task_cfg), "overrides": dict(overrides or {}),
                                    "task_name": f"{task_cfg.get('dataset')}-"
                                                 f"{task_cfg.get('normal')}"})

        def fn(job: Job, hooks: Hooks):
            return run_split(task_cfg, preset, overrides, store=self.store, hooks=hooks,
                             run_id=run_id)

        job = self.submit("split", f"Intra-class split · {task_cfg.get('dataset')} "
                                   f"{task_cfg.get('normal')}", fn,
                          {"task": task_cfg, "preset": preset, "overrides": overrides or {}},
                          ("pretrain",))
        job.run_id = run_id
        return job

    def submit_projection(self, run_id: str, method: str = "umap", seed: int = 0) -> Job:
        """Project a run's latents to 2-D (cached in the run directory). A projection of the
        same run and method that is already queued or running (e.g. the one queued right
        after training) is returned instead of queueing the same work twice."""
        from ocvis.projection import cached_projection

        params = {"run": run_id, "method": method}
        with self._lock:
            for j in self._jobs.values():
                if j.kind == "projection" and j.params == params and \
                        j.status in ("queued", "running") and not j.cancel_requested:
                    return j

        def fn(job: Job, hooks: Hooks):
            hooks.on_status(f"{method.upper()} projection of the latents")
            return cached_projection(self.store, run_id, method, seed=seed).shape

        return self.submit("projection", f"{method.upper()} of {run_id}", fn, params)

    # -- reading ------------------------------------------------------------------------
    def jobs(self) -> list[Job]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.created, reverse=True)

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def active(self) -> Job | None:
        return next((j for j in self.jobs() if j.status == "running"), None)

    def queued(self) -> list[Job]:
        return [j for j in self.jobs() if j.status == "queued"][::-1]

    def cancel(self, job_id: str) -> None:
        job = self._jobs.get(job_id)
        if job is not None:
            job.cancel()
            if job.status == "cancelled" and job.run_id:
                try:
                    self.store.update(job.run_id, status="cancelled",
                                      error="cancelled before it started",
                                      finished=time.time())
                except OcvisError:
                    pass

    def shutdown(self, timeout: float = 120.0) -> bool:
        """Cancel every job, stop the worker and wait for it (up to ``timeout`` seconds).
        True when the worker has ended."""
        with self._lock:
            self.closed = True
            jobs = list(self._jobs.values())
        for job in jobs:
            self.cancel(job.id)
        self._queue.put(_STOP)
        worker = self._worker
        if worker is not None and worker.is_alive() and worker is not threading.current_thread():
            worker.join(timeout)
            return not worker.is_alive()
        return True

    def wait(self, job: Job, timeout: float = 60.0) -> Job:
        """Block until ``job`` ends (tests, CLI)."""
        t0 = time.time()
        while not job.done and time.time() - t0 < timeout:
            time.sleep(0.05)
        return job

    # -- the worker -----------------------------------------------------------------------
    def _ensure_worker(self) -> None:
        if self.closed:
            return
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._loop, name="ocvis-jobs", daemon=True)
            self._worker.start()

    def _loop(self) -> None:
        import torch

        torch.set_num_threads(self.torch_threads)
        # $OCVIS_UMAP_WARMUP=0 turns the idle work off (the tests do)
        idle_work = self._warm and os.environ.get("OCVIS_UMAP_WARMUP", "1") != "0"
        umap_ready = not idle_work
        swept = not idle_work  # every stored run has its UMAP projection
        tried: set[str] = set()
        while True:
            try:
                job, fn = self._queue.get(
                    timeout=None if umap_ready and swept else IDLE_WARM_SECONDS)
            except queue.Empty:  # idle: compile UMAP now rather than on the latent page
                if self.closed:
                    return
                if not umap_ready:
                    umap_ready = True
                    try:
                        from ocvis.projection import warm_up_umap

                        log.info("UMAP warmed up in %.1f s", warm_up_umap())
                    except Exception as exc:  # noqa: BLE001 - only an optimisation
                        log.warning("UMAP warm-up failed: %s", exc)
                else:
                    swept = not self._project_idle_run(tried)
                    if swept:
                        self.idle_swept.set()
                continue
            if job is None:  # shutdown
                self._queue.task_done()
                return
            try:
                self._run(job, fn)
            finally:
                self._queue.task_done()
            swept = not idle_work

    def _project_idle_run(self, tried: set[str]) -> bool:
        """Compute the UMAP projection of the newest finished run that has none (runs made
        by the CLI's ``bench --store`` or before a restart), so the Latent page opens at once;
        one run per idle period, so a submitted job waits a few seconds at most. False when
        there is nothing left to do."""
        from ocvis.projection import cached_projection

        for r in self.store.list():
            rid = r["id"]
            if rid in tried or r.get("status") != "done" or \
                    r.get("kind", "experiment") != "experiment":
                continue
            tried.add(rid)
            if any(self.store.path(rid).glob("proj-umap-*.npy")):
                continue
            try:
                t0 = time.perf_counter()
                cached_projection(self.store, rid, "umap", seed=int(r.get("seed", 0)))
                log.info("UMAP of run %s computed while idle (%.1f s)", rid,
                         time.perf_counter() - t0)
            except Exception as exc:  # noqa: BLE001 - only an optimisation
                log.warning("idle UMAP of run %s failed: %s", rid, exc)
            return True
        return False

    def _run(self, job: Job, fn) -> None:
        try:
            self._run_job(job, fn)
        finally:
            if job.run_id:  # the lease the store took when the job's run was created
                self.store.release(job.run_id)

    def _run_job(self, job: Job, fn) -> None:
        if job.cancel_requested or job.status == "cancelled":
            job.status = "cancelled"
            job.finished = job.finished or time.time()
            return
        job.status = "running"
        job.started = time.time()
        job.message = "starting"
        hooks = JobHooks(job, self.store)
        try:
            job.result = fn(job, hooks)
            job.status = "done"
            job.message = "finished"
        except Cancelled as exc:
            job.status = "cancelled"
            job.message = str(exc)
        except OcvisError as exc:
            job.status = "failed"
            job.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - a job never kills the worker
            job.status = "failed"
            job.error = f"{type(exc).__name__}: {exc}"
            log.error("job %s failed:\n%s", job.id, traceback.format_exc())
        finally:
            job.finished = time.time()
            job.progress["fraction"] = 1.0 if job.status == "done" else \
                job.progress.get("fraction", 0.0)
