"""Job functions for the job-manager tests, run in the manager's worker process
(``"job_targets:<name>"``). Gates between the test and the worker are files: the worker
waits for a file the test creates (generous timeouts, no fixed sleeps)."""
from __future__ import annotations

import os
import time
from pathlib import Path

from ocvis.errors import TrainingError


def _wait_file(path: str, timeout: float = 300.0) -> None:
    t0 = time.monotonic()
    while not Path(path).exists():
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.02)


def gated(params, hooks, store):
    """Say it started (a file), wait for the gate file, return ``params["value"]``."""
    Path(params["started"]).write_text(str(os.getpid()))
    _wait_file(params["gate"])
    return params.get("value")


def value(params, hooks, store):
    return params.get("value")


def pid(params, hooks, store):
    return os.getpid()


def steps_then_fail(params, hooks, store):
    hooks.on_stage("s", 1, 2)
    hooks.on_step({"stage": "s", "epoch": 1, "epochs": 1, "step": 1, "steps": 2,
                   "global_step": 1, "losses": {"rec": 1.0}, "time": 0.1})
    raise TrainingError("the loss diverged (rec is NaN)")


def crash(params, hooks, store):
    """The interpreter dies (as on a segfault or an out-of-memory kill)."""
    hooks.on_status("about to crash")
    os._exit(3)
