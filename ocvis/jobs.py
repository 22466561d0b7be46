"""Background jobs for the UI, run in a worker *process* that never calls Streamlit.

A :class:`JobManager` (one per server) keeps a FIFO of jobs and a worker process that runs
them one at a time (two cores do not train two models faster than one). Training, the
split and projections therefore never share the server's interpreter: nothing a page does
(its refreshes, its own Python work) can take the GIL or a core from a job, and a job that
crashes the interpreter cannot take the server down -- the job is marked failed and the next
one gets a fresh worker.

The worker reports every event over a pipe (stage, step with its losses, status message,
the end); a supervisor thread of the manager applies them to the :class:`Job` records the
pages read. A cancel travels the other way and is honoured before the next training step.
Each job's run directory is written by the worker (and its history flushed every few
seconds), so the results survive the server.

A job's work is a named function ``"module:function"`` called in the worker as
``fn(params, hooks, store)``; :data:`TARGETS` holds the dashboard's own (experiment, split,
projection). :meth:`Job.view` gives one consistent status (stage, epoch, step, fraction,
ETA from the measured step time, thread count) that every page shows the same way.
"""
from __future__ import annotations

import importlib
import itertools
import logging
import os
import queue
import threading
import time
import traceback
import weakref
from dataclasses import dataclass, field
from typing import Any

from ocvis.errors import Cancelled, OcvisError
from ocvis.train import Hooks

log = logging.getLogger(__name__)
JOB_STATUSES = ("queued", "running", "done", "failed", "cancelled")
IDLE_WARM_SECONDS = 20.0  # compile UMAP once the worker has been idle this long
# (``$OCVIS_IDLE_SECONDS`` changes it for the worker process; tests make it short)
TARGETS = {"experiment": "ocvis.jobs:experiment_job", "split": "ocvis.jobs:split_job",
           "projection": "ocvis.jobs:projection_job"}


def default_torch_threads() -> int:
    """``$OCVIS_TORCH_THREADS`` or all cores but one (the server keeps one to answer)."""
    env = os.environ.get("OCVIS_TORCH_THREADS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, (os.cpu_count() or 2) - 1)


# ----------------------------------------------------------------------------- job targets
def experiment_job(params: dict, hooks: Hooks, store) -> dict:
    """Fit + evaluate + store a method (the Train page's Start button)."""
    from ocvis.experiment import run_experiment

    meta = run_experiment(params["task"], params["method"], params["preset"],
                          params.get("overrides"), store=store, hooks=hooks,
                          run_id=params.get("run_id"))
    return {"id": meta["id"], "metrics": meta.get("metrics"), "seed": meta.get("seed", 0)}


def split_job(params: dict, hooks: Hooks, store) -> dict:
    """Train the splitting autoencoder and compute every sample's similarity."""
    from ocvis.experiment import run_split

    meta = run_split(params["task"], params["preset"], params.get("overrides"), store=store,
                     hooks=hooks, run_id=params.get("run_id"))
    return {"id": meta["id"], "n_atypical": meta.get("n_atypical")}


def projection_job(params: dict, hooks: Hooks, store) -> list[int]:
    """Project a run's latents to 2-D (kept in its run directory)."""
    from ocvis.projection import cached_projection

    hooks.on_status(f"{params['method'].upper()} projection of the latents")
    return list(cached_projection(store, params["run"], params["method"],
                                  seed=int(params.get("seed", 0))).shape)


def _resolve(target: str):
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


# ----------------------------------------------------------------------------- the job
@dataclass
class Job:
    id: str
    kind: str
    title: str
    params: dict
    target: str = ""
    stages: tuple[str, ...] = ()
    status: str = "queued"
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    message: str = ""
    error: str | None = None
    result: Any = None
    run_id: str | None = None
    threads: int | None = None
    worker_pid: int | None = None
    history: list[dict] = field(default_factory=list)
    progress: dict = field(default_factory=dict)
    cancel_requested: bool = False
    background: bool = False  # queued by ocvis itself (a projection after training)
    _done: threading.Event = field(default_factory=threading.Event, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def done(self) -> bool:
        return self.status in ("done", "failed", "cancelled")

    def elapsed(self) -> float:
        if self.started is None:
            return 0.0
        return (self.finished or time.time()) - self.started

    def view(self) -> dict:
        """One consistent status for display: every field from the same moment."""
        with self._lock:
            p = dict(self.progress)
            v = {"id": self.id, "kind": self.kind, "title": self.title, "status": self.status,
                 "message": self.message, "error": self.error, "run_id": self.run_id,
                 "threads": self.threads, "n_history": len(self.history),
                 "elapsed": self.elapsed(), "cancel_requested": self.cancel_requested}
        v.update(stage=p.get("stage"), stage_index=p.get("stage_index"),
                 n_stages=p.get("n_stages"), epoch=p.get("epoch"), epochs=p.get("epochs"),
                 step=p.get("step"), steps=p.get("steps"),
                 fraction=1.0 if v["status"] == "done" else float(p.get("fraction", 0.0)),
                 eta=p.get("eta") if v["status"] == "running" else None,
                 step_seconds=p.get("step_seconds"))
        return v

    def snapshot(self) -> dict:  # kept for callers of the previous API
        return {**self.view(), "params": self.params}

    # -- applied by the manager's supervisor thread ----------------------------------------
    def _on_stage(self, stage: str, epochs: int, steps: int) -> None:
        with self._lock:
            seen = self.progress.setdefault("_seen", [])
            if stage not in seen:
                seen.append(stage)
            stages = list(self.stages) or seen
            si = stages.index(stage) if stage in stages else len(seen) - 1
            n = max(len(stages), len(seen))
            self.progress.update(stage=stage, stage_index=si, n_stages=n, epochs=epochs,
                                 steps=steps, epoch=1 if epochs else 0, step=0,
                                 fraction=min(1.0, si / max(1, n)), eta=None,
                                 _stage_t0=None, _ema=None)
            self.message = f"{stage}: {epochs} epoch(s) of {steps} step(s)"

    def _on_step(self, e: dict) -> None:
        with self._lock:
            self.history.append(e)
            p = self.progress
            if p.get("stage") != e["stage"]:  # a replayed stage (cached) without on_stage
                seen = p.setdefault("_seen", [])
                if e["stage"] not in seen:
                    seen.append(e["stage"])
                stages = list(self.stages) or seen
                p["stage_index"] = stages.index(e["stage"]) if e["stage"] in stages else \
                    len(seen) - 1
                p["n_stages"] = max(len(stages), len(seen))
                p["_ema"] = None
            # ETA from the measured time per step (an exponential average of this stage)
            t = float(e.get("time", 0.0))
            last = p.get("_last_t")
            if last is not None and p.get("stage") == e["stage"] and t > last:
                dt = t - last
                p["_ema"] = dt if p.get("_ema") is None else 0.9 * p["_ema"] + 0.1 * dt
            p["_last_t"] = t
            total = max(1, e["epochs"] * e["steps"])
            done = (e["epoch"] - 1) * e["steps"] + e["step"]
            si, n = p.get("stage_index", 0), max(1, p.get("n_stages", 1))
            p.update(stage=e["stage"], epoch=e["epoch"], epochs=e["epochs"], step=e["step"],
                     steps=e["steps"], global_step=e.get("global_step"),
                     fraction=min(1.0, (si + done / total) / n),
                     step_seconds=p.get("_ema"),
                     eta=None if p.get("_ema") is None else (total - done) * p["_ema"])

    def _finish(self, status: str, message: str = "", error: str | None = None,
                result: Any = None) -> None:
        with self._lock:
            self.status = status
            self.finished = time.time()
            if message:
                self.message = message
            self.error = error
            self.result = result
            if status == "done":
                self.progress["fraction"] = 1.0
        self._done.set()


# ----------------------------------------------------------------------------- manager
_MANAGERS: "weakref.WeakSet[JobManager]" = weakref.WeakSet()
_PROJECT_ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


class _Worker:
    """The worker's process, with the few calls the manager makes."""

    def __init__(self, popen) -> None:
        self.popen = popen
        self.pid = popen.pid

    def is_alive(self) -> bool:
        return self.popen.poll() is None

    @property
    def exitcode(self) -> int | None:
        return self.popen.poll()

    def join(self, timeout: float | None = None) -> None:
        import subprocess

        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pass

    def kill(self) -> None:
        try:
            self.popen.kill()
        except OSError:
            pass


def live_managers() -> list["JobManager"]:
    """Every job manager of this process that has not been shut down (tests clean up)."""
    return [m for m in list(_MANAGERS) if not m.closed]


class JobManager:
    """FIFO of jobs run one at a time by a worker process (see the module docstring)."""

    def __init__(self, store=None, torch_threads: int | None = None,
                 warm: bool = False) -> None:
        from ocvis.runs import RunStore

        self.store = store if store is not None else RunStore()
        self.torch_threads = torch_threads or default_torch_threads()
        self._jobs: dict[str, Job] = {}
        self._queue: list[Job] = []
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._warm = warm
        self.closed = False
        self.idle_swept = threading.Event()  # set when idle work has nothing left to do
        self.worker_pids: list[int] = []     # every worker process started (tests, bench)
        self._proc = None
        self._conn = None
        self._send_lock = threading.Lock()
        self._current: Job | None = None
        self._idle_busy = False  # the worker does idle work (UMAP compile, old projections)
        _MANAGERS.add(self)
        self._supervisor = threading.Thread(target=self._supervise, name="ocvis-jobs",
                                            daemon=True)
        self._supervisor.start()
        if warm:
            self._wake.set()  # start the worker now: its imports are done before a click

    # -- submitting ---------------------------------------------------------------------
    def submit(self, kind: str, title: str, target: str | None = None,
               params: dict | None = None, stages: tuple[str, ...] = (),
               run_id: str | None = None, background: bool = False) -> Job:
        """Queue ``target(params, hooks, store)`` (``"module:function"``, default the
        dashboard's function for ``kind``); its return value becomes ``job.result``.

        A ``background`` job (ocvis's own, e.g. the projection queued after training) waits
        behind every user job, and a user job submitted while one runs preempts it: the
        worker is restarted and the background job queued again, so a click on Start never
        waits for a UMAP of someone else's run."""
        target = target or TARGETS.get(kind)
        if not target:
            raise OcvisError(f"no job function for kind {kind!r}")
        with self._lock:
            if self.closed:
                raise OcvisError("the job manager has been shut down; reload the page")
            job = Job(id=f"job-{next(self._ids)}", kind=kind, title=title,
                      params=dict(params or {}), target=target, stages=tuple(stages),
                      run_id=run_id, background=background)
            self._jobs[job.id] = job
            if background:
                self._queue.append(job)
            else:  # before every background job
                k = next((i for i, j in enumerate(self._queue) if j.background),
                         len(self._queue))
                self._queue.insert(k, job)
            preempt = not background and self._current is not None and \
                self._current.background and self._current.status == "running"
        if preempt:
            self._preempt()
        self._wake.set()
        return job

    def _preempt(self) -> None:
        """End the running background job by restarting the worker; queue it again."""
        with self._lock:
            job = self._current
            if job is None or not job.background:
                return
            job._preempted = True
            proc = self._proc
        if proc is not None:
            log.info("%s (background) preempted by a user job", job.id)
            proc.kill()

    def _job_title(self, what: str, task_cfg: dict) -> str:
        from ocvis.data import task_label

        return f"{what} · {task_label(task_cfg)}"

    def submit_experiment(self, task_cfg: dict, method: str, preset: str = "cpu",
                          overrides: dict | None = None) -> Job:
        """Fit + evaluate + store a method (the Train page's Start button)."""
        from ocvis.methods import get_method

        cls = get_method(method)
        run_id = self.store.create({"method": method, "preset": preset, "task": dict(task_cfg),
                                    "overrides": dict(overrides or {}), "kind": "experiment",
                                    "task_name": f"{task_cfg.get('dataset')}-"
                                                 f"{task_cfg.get('normal')}"})
        return self.submit("experiment", self._job_title(cls.title, task_cfg), None,
                           {"task": dict(task_cfg), "method": method, "preset": preset,
                            "overrides": dict(overrides or {}), "run_id": run_id},
                           tuple(cls.stages), run_id=run_id)

    def submit_split(self, task_cfg: dict, preset: str = "cpu",
                     overrides: dict | None = None) -> Job:
        """Train the splitting autoencoder and compute every sample's similarity."""
        run_id = self.store.create({"method": "split", "preset": preset, "kind": "split",
                                    "task": dict(task_cfg), "overrides": dict(overrides or {}),
                                    "task_name": f"{task_cfg.get('dataset')}-"
                                                 f"{task_cfg.get('normal')}"})
        return self.submit("split", self._job_title("Intra-class split", task_cfg), None,
                           {"task": dict(task_cfg), "preset": preset,
                            "overrides": dict(overrides or {}), "run_id": run_id},
                           ("pretrain",), run_id=run_id)

    def submit_projection(self, run_id: str, method: str = "umap", seed: int = 0,
                          background: bool = False) -> Job:
        """Project a run's latents to 2-D (cached in the run directory). A projection of the
        same run and method that is already queued or running (e.g. the one queued right
        after training) is returned instead of queueing the same work twice."""
        with self._lock:
            for j in self._jobs.values():
                if j.kind == "projection" and j.params.get("run") == run_id and \
                        j.params.get("method") == method and \
                        j.status in ("queued", "running") and not j.cancel_requested:
                    if not background and j.background:  # a user now waits for it
                        j.background = False
                        if j in self._queue:
                            self._queue.remove(j)
                            k = next((i for i, q in enumerate(self._queue) if q.background),
                                     len(self._queue))
                            self._queue.insert(k, j)
                    return j
        return self.submit("projection", f"{method.upper()} of {run_id}", None,
                           {"run": run_id, "method": method, "seed": seed},
                           background=background)

    # -- reading ------------------------------------------------------------------------
    def jobs(self) -> list[Job]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.created, reverse=True)

    def get(self, job_id: str | None) -> Job | None:
        return self._jobs.get(job_id) if job_id else None

    def active(self) -> Job | None:
        with self._lock:
            return self._current if self._current is not None and \
                self._current.status == "running" else None

    def queued(self) -> list[Job]:
        with self._lock:
            return [j for j in self._queue if j.status == "queued"]

    def counts(self) -> dict:
        """Running / queued counts from one moment (the queue line of every page)."""
        with self._lock:
            running = self._current is not None and self._current.status == "running"
            return {"running": int(running),
                    "queued": sum(j.status == "queued" for j in self._queue),
                    "threads": self.torch_threads}

    def cancel(self, job_id: str) -> None:
        job = self._jobs.get(job_id)
        if job is None or job.done:
            return
        with self._lock:
            job.cancel_requested = True
            if job.status == "queued":
                if job in self._queue:
                    self._queue.remove(job)
                job._finish("cancelled", "cancelled before it started")
                self._release(job, "cancelled", "cancelled before it started")
                return
            is_current = job is self._current
        if is_current:
            self._send(("cancel", job.id))

    def wait(self, job: Job, timeout: float = 60.0) -> Job:
        """Block until ``job`` ends or ``timeout`` seconds pass (tests, CLI)."""
        job._done.wait(timeout)
        return job

    def shutdown(self, timeout: float = 120.0, grace: float = 5.0) -> bool:
        """Cancel every job, stop the worker process and wait for it. A job that does not
        end within ``grace`` seconds of its cancel (one with no training steps to stop
        between, such as a UMAP projection) is ended by killing the worker. True when
        everything ended within ``timeout`` seconds."""
        with self._lock:
            if self.closed and self._proc is None and not self._supervisor.is_alive():
                return True
            self.closed = True
            jobs = list(self._jobs.values())
            current = self._current
        for job in jobs:
            self.cancel(job.id)
        self._wake.set()
        if current is not None and not current._done.wait(grace):
            proc = self._proc
            if proc is not None:
                proc.kill()  # the supervisor sees it die and fails the job
        self._supervisor.join(timeout)
        ok = not self._supervisor.is_alive()
        proc = self._proc
        if proc is not None:
            proc.join(max(1.0, timeout / 4))
            if proc.is_alive():
                ok = False
                proc.kill()
                proc.join(10)
        return ok

    # -- the supervisor thread ------------------------------------------------------------
    def _send(self, msg) -> bool:
        with self._send_lock:
            conn = self._conn
            if conn is None:
                return False
            try:
                conn.send(msg)
                return True
            except (OSError, ValueError, BrokenPipeError):
                return False

    def _start_worker(self) -> None:
        """``python -m ocvis.jobs`` with one end of a socket pair: a fresh interpreter that
        imports nothing of the server's (multiprocessing's spawn would re-run the main
        script, which inside Streamlit is the page itself)."""
        import socket
        import subprocess
        import sys
        from multiprocessing.connection import Connection

        ours, theirs = socket.socketpair()
        idle = self._warm and os.environ.get("OCVIS_UMAP_WARMUP", "1") != "0"
        env = dict(os.environ)
        paths = [p for p in sys.path if p and os.path.isdir(p)]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(
            [str(_PROJECT_ROOT)] + paths + [env.get("PYTHONPATH", "")])).strip(os.pathsep)
        cmd = [sys.executable, "-m", "ocvis.jobs", "--fd", str(theirs.fileno()),
               "--threads", str(self.torch_threads), "--store", str(self.store.root)]
        cmd += ["--warm"] if self._warm else []
        cmd += ["--idle"] if idle else []
        proc = subprocess.Popen(cmd, pass_fds=(theirs.fileno(),), env=env,
                                stdin=subprocess.DEVNULL)
        theirs.close()
        self._proc, self._conn = _Worker(proc), Connection(ours.detach())
        self.worker_pids.append(proc.pid)

    def _supervise(self) -> None:
        while True:
            with self._lock:
                closed = self.closed
                nxt = None
                if self._current is None and self._queue and not closed:
                    nxt = self._queue.pop(0)
                    self._current = nxt
            if closed and self._current is None:
                self._stop_worker()
                return
            if nxt is not None and self._idle_busy and self._proc is not None:
                # the worker is compiling UMAP or projecting an old run while idle: a user
                # job must not wait for that (it cannot be interrupted): a fresh worker
                log.info("restarting the worker busy with idle work for %s", nxt.id)
                self._proc.kill()
                self._proc.join(10)
                self._proc, self._conn, self._idle_busy = None, None, False
            if nxt is not None or (self._warm and self._proc is None and not closed):
                if self._proc is None or not self._proc.is_alive():
                    try:
                        self._start_worker()
                    except Exception as exc:  # noqa: BLE001 - report on the job
                        log.error("cannot start the job worker: %s", exc)
                        if nxt is not None:
                            self._end(nxt, "failed", error=f"cannot start the worker: {exc}")
                        continue
            if nxt is not None:
                with nxt._lock:
                    nxt.status = "running"
                    nxt.started = time.time()
                    nxt.message = "starting"
                self._send(("run", nxt.id, nxt.target, nxt.params, nxt.run_id))
            if self._conn is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            try:
                ready = self._conn.poll(0.25)
            except (OSError, EOFError):
                ready = False
            if ready:
                try:
                    msg = self._conn.recv()
                except (EOFError, OSError):
                    self._worker_died()
                    continue
                self._handle(msg)
            elif self._proc is not None and not self._proc.is_alive():
                self._worker_died()

    def _handle(self, msg: tuple) -> None:
        kind, job_id = msg[0], msg[1]
        job = self._jobs.get(job_id) if job_id else None
        if kind == "idle_swept":
            self.idle_swept.set()
            return
        if kind == "idle":
            self._idle_busy = bool(msg[2])
            return
        if job is None:
            return
        if kind == "started":
            job.worker_pid, job.threads = msg[2]["pid"], msg[2]["threads"]
        elif kind == "stage":
            job._on_stage(*msg[2:])
        elif kind == "step":
            job._on_step(msg[2])
        elif kind == "status":
            job.message = msg[2]
        elif kind in ("done", "failed", "cancelled"):
            if kind == "done":
                self._end(job, "done", message="finished", result=msg[2])
            elif kind == "failed":
                self._end(job, "failed", error=msg[2])
            else:
                self._end(job, "cancelled", message=msg[2])

    def _end(self, job: Job, status: str, message: str = "", error: str | None = None,
             result: Any = None) -> None:
        job._finish(status, message, error, result)
        with self._lock:
            if self._current is job:
                self._current = None
        if status == "done" and job.kind == "experiment" and isinstance(result, dict):
            # the Latent page opens warm: UMAP right after training, queued
            try:
                self.submit_projection(job.run_id, "umap", seed=int(result.get("seed", 0)),
                                       background=True)
            except OcvisError:
                pass
        self._release(job)
        self._wake.set()

    def _release(self, job: Job, status: str | None = None, error: str | None = None) -> None:
        """Give up the lease the store took when the job's run was created (and record a
        final status the worker could not write)."""
        if not job.run_id:
            return
        try:
            if status is not None:
                self.store.update(job.run_id, status=status, error=error,
                                  finished=time.time())
        except OcvisError:
            pass
        self.store.release(job.run_id)

    def _worker_died(self) -> None:
        proc = self._proc
        code = proc.exitcode if proc is not None else None
        self._proc, self._conn = None, None
        job = self._current
        if job is not None and not job.done and getattr(job, "_preempted", False):
            with self._lock:  # back in the queue, behind the user's job
                job._preempted = False
                job.status, job.started, job.message = "queued", None, "waiting (preempted)"
                job.history.clear()
                job.progress.clear()
                self._current = None
                if not self.closed:
                    self._queue.append(job)
            self._wake.set()
            return
        if job is not None and not job.done:
            err = (f"the job's worker process ended unexpectedly (exit code {code}); the "
                   "server is fine and the next job gets a new worker")
            log.error("%s: %s", job.id, err)
            if job.run_id:
                try:
                    if self.store.read(job.run_id).get("status") not in (
                            "done", "failed", "cancelled"):
                        self.store.update(job.run_id, status="failed", error=err,
                                          finished=time.time())
                except OcvisError:
                    pass
            self._end(job, "failed", error=err)

    def _stop_worker(self) -> None:
        if self._conn is not None:
            self._send(("stop", None))
        proc = self._proc
        if proc is not None:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
                proc.join(10)
        if self._conn is not None:
            try:
                self._conn.close()
            except OSError:
                pass
        self._conn = None


# ----------------------------------------------------------------------------- the worker
class WorkerHooks(Hooks):
    """Engine hooks inside the worker: every event goes to the server over the pipe (the run
    skeleton, :mod:`ocvis.experiment`, flushes the history to the run directory)."""

    def __init__(self, send, job_id: str, cancel: threading.Event,
                 orphaned: threading.Event | None = None) -> None:
        self.send, self.job_id, self.cancel = send, job_id, cancel
        self.orphaned = orphaned or threading.Event()

    def on_stage(self, stage, epochs, steps):
        self.send(("stage", self.job_id, stage, epochs, steps))

    def on_step(self, e):
        self.send(("step", self.job_id, e))

    def on_status(self, message):
        self.send(("status", self.job_id, message))

    def should_stop(self):
        # cancelled, or the server is gone: nobody would see the result
        return self.cancel.is_set() or self.orphaned.is_set()


def warm_up() -> None:
    """Import what a first job would import lazily and take one tiny optimiser step, so the
    first real step of the first job reaches the loss chart quickly."""
    try:
        import sklearn.metrics  # noqa: F401
        import sklearn.svm  # noqa: F401
        import torch

        import ocvis.experiment  # noqa: F401
        import ocvis.methods  # noqa: F401
        from ocvis.data import load_dataset

        load_dataset("digits")
        net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(),
                                  torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 2))
        opt = torch.optim.Adam(net.parameters())
        net(torch.rand(8, 1, 8, 8)).square().mean().backward()
        opt.step()
    except Exception as exc:  # noqa: BLE001 - only an optimisation
        log.warning("warm-up failed: %s", exc)


def _project_idle_run(store, tried: set[str], method: str) -> bool:
    """Compute the projection of the newest finished run that has none (runs made by the
    CLI's ``bench --store`` or before a restart), so the Latent page opens at once; one run
    per call. False when there is nothing left to do."""
    from ocvis.projection import cached_projection

    for r in store.list():
        rid = r["id"]
        if rid in tried or r.get("status") != "done" or \
                r.get("kind", "experiment") != "experiment":
            continue
        tried.add(rid)
        if any(store.path(rid).glob(f"proj-{method}-*.npy")):
            continue
        try:
            t0 = time.perf_counter()
            cached_projection(store, rid, method, seed=int(r.get("seed", 0)))
            log.info("%s of run %s computed while idle (%.1f s)", method, rid,
                     time.perf_counter() - t0)
        except Exception as exc:  # noqa: BLE001 - only an optimisation
            log.warning("idle %s of run %s failed: %s", method, rid, exc)
        return True
    return False


def worker_main(conn, torch_threads: int, store_root: str, warm: bool, idle: bool) -> None:
    """The worker process: runs one job at a time, listens for cancels meanwhile."""
    import torch

    from ocvis.runs import RunStore

    torch.set_num_threads(torch_threads)
    store = RunStore(store_root)
    inbox: queue.Queue = queue.Queue()
    cancels: dict[str, threading.Event] = {}
    send_lock = threading.Lock()
    orphaned = threading.Event()

    def send(msg) -> None:
        with send_lock:
            conn.send(msg)

    def listen() -> None:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):  # the server closed the pipe or died
                orphaned.set()
                inbox.put(("stop", None))
                return
            if msg[0] == "cancel":
                cancels.setdefault(msg[1], threading.Event()).set()
            else:
                inbox.put(msg)
            if msg[0] == "stop":
                return

    threading.Thread(target=listen, name="ocvis-worker-listen", daemon=True).start()
    if warm:
        warm_up()
    method = os.environ.get("OCVIS_IDLE_PROJECTION", "umap")
    idle_seconds = float(os.environ.get("OCVIS_IDLE_SECONDS", IDLE_WARM_SECONDS))
    umap_ready, swept, tried = not idle or method != "umap", not idle, set()
    while True:
        try:
            msg = inbox.get(timeout=None if umap_ready and swept else idle_seconds)
        except queue.Empty:  # idle: compile UMAP now rather than on the Latent page
            send(("idle", None, True))  # the manager may restart us for a user job
            if not umap_ready:
                umap_ready = True
                try:
                    from ocvis.projection import warm_up_umap

                    log.info("UMAP warmed up in %.1f s", warm_up_umap())
                except Exception as exc:  # noqa: BLE001 - only an optimisation
                    log.warning("UMAP warm-up failed: %s", exc)
            else:
                swept = not _project_idle_run(store, tried, method)
                if swept:
                    send(("idle_swept", None))
            send(("idle", None, False))
            continue
        if msg[0] == "stop":
            return
        _, job_id, target, params, _run_id = msg  # the run is in params
        cancel = cancels.setdefault(job_id, threading.Event())
        send(("started", job_id, {"pid": os.getpid(), "threads": torch.get_num_threads()}))
        hooks = WorkerHooks(send, job_id, cancel, orphaned)
        try:
            if cancel.is_set():
                raise Cancelled("cancelled before it started")
            result = _resolve(target)(params, hooks, store)
            send(("done", job_id, result))
        except Cancelled as exc:
            send(("cancelled", job_id, str(exc)))
        except OcvisError as exc:
            send(("failed", job_id, str(exc)))
        except Exception as exc:  # noqa: BLE001 - a job never kills the worker
            log.error("job %s failed:\n%s", job_id, traceback.format_exc())
            send(("failed", job_id, f"{type(exc).__name__}: {exc}"))
        cancels.pop(job_id, None)
        swept = not idle


def _main(argv: list[str] | None = None) -> int:
    """Entry of the worker process (started by :meth:`JobManager._start_worker`)."""
    import argparse
    from multiprocessing.connection import Connection

    ap = argparse.ArgumentParser(prog="python -m ocvis.jobs")
    ap.add_argument("--fd", type=int, required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--store", required=True)
    ap.add_argument("--warm", action="store_true")
    ap.add_argument("--idle", action="store_true")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s ocvis-worker %(name)s: %(message)s")
    worker_main(Connection(a.fd), a.threads, a.store, a.warm, a.idle)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
