"""The run store: one directory per run, written atomically, readable after a restart.

``<runs root>/<run id>/``
  ``run.json``      metadata: method, task, preset, config + seed, status, times, metrics,
                    error (rewritten atomically on every change)
  ``history.json``  per-step named losses
  ``arrays.npz``    per-sample scores, labels, latents, split similarity / mask
  ``model.pt``      the method's ``state_dict`` (tensors only: ``weights_only=True``)

Status: ``queued`` -> ``running`` -> ``done`` | ``failed`` | ``cancelled``. While a run is
queued or running, the process that owns it holds its *lease*: a ``.lease`` file it touches
every few seconds (:meth:`RunStore.hold`). A run that says ``queued`` / ``running`` but whose
lease is older than ``LEASE_SECONDS`` (or missing) is reported as ``interrupted`` -- a
process id alone is not proof of life, it may have been reused by another process. A
directory without a readable ``run.json``, or one whose fields have the wrong types, is
listed as ``broken``: neither hides the others.
"""
from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from ocvis.config import runs_root
from ocvis.errors import OcvisError

log = logging.getLogger(__name__)
STATUSES = ("queued", "running", "done", "failed", "cancelled", "interrupted", "broken")
FINAL = ("done", "failed", "cancelled", "interrupted", "broken")
ACTIVE = ("queued", "running")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}$")
HEARTBEAT_SECONDS = 5.0
LEASE_SECONDS = 45.0   # a lease not touched for this long belongs to a dead process
LEASE_FILE = ".lease"
# field -> the types a readable run.json may hold there (anything else: the run is broken)
_FIELD_TYPES = {"created": (int, float), "started": (int, float), "finished": (int, float),
                "status": (str,), "method": (str,), "kind": (str,), "preset": (str,),
                "task": (dict,), "metrics": (dict,), "config": (dict,), "overrides": (dict,),
                "metrics_by_score": (dict,), "info": (dict,), "notes": (list,),
                "fit_seconds": (int, float), "seed": (int,), "task_name": (str,)}


class _Leases:
    """The leases this process holds: one daemon thread touches every held ``.lease`` file
    each ``HEARTBEAT_SECONDS`` (reference-counted, so nested holders share one lease)."""

    def __init__(self) -> None:
        self._held: dict[Path, int] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def hold(self, path: Path) -> None:
        with self._lock:
            self._held[path] = self._held.get(path, 0) + 1
            if self._held[path] == 1:
                _touch(path)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._beat, name="ocvis-leases",
                                                daemon=True)
                self._thread.start()

    def release(self, path: Path) -> None:
        with self._lock:
            n = self._held.get(path, 0) - 1
            if n > 0:
                self._held[path] = n
                return
            self._held.pop(path, None)
        try:
            path.unlink()
        except OSError:
            pass

    def _beat(self) -> None:
        while True:
            time.sleep(HEARTBEAT_SECONDS)
            with self._lock:
                paths = list(self._held)
            for p in paths:
                if not p.parent.is_dir():  # the run was deleted
                    with self._lock:
                        self._held.pop(p, None)
                    continue
                _touch(p)


def _touch(path: Path) -> None:
    try:
        path.write_text(f"{os.getpid()} {time.time():.3f}\n")
    except OSError as exc:
        log.warning("could not renew the lease %s: %s", path, exc)


_LEASES = _Leases()


def lease_alive(run_dir: Path, now: float | None = None) -> bool:
    """True when the run's lease was renewed within ``LEASE_SECONDS``."""
    try:
        age = (time.time() if now is None else now) - (run_dir / LEASE_FILE).stat().st_mtime
    except OSError:
        return False
    return age < LEASE_SECONDS


def _atomic_write(path: Path, data: bytes) -> None:
    """Write a file so that readers see the old or the new content, never a half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are for reading by others too
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-able: {type(o).__name__}")


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", str(s)).strip("-").lower()[:40] or "x"


class RunStore:
    """Runs on disk under ``root`` (default ``$OCVIS_RUNS_DIR`` or ``./runs``)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else runs_root()

    # -- paths -------------------------------------------------------------------------
    def path(self, run_id: str) -> Path:
        if not _ID_RE.match(run_id or ""):
            raise OcvisError(f"invalid run id {run_id!r}")
        return self.root / run_id

    def new_id(self, method: str, label: str) -> str:
        return (f"{time.strftime('%Y%m%d-%H%M%S')}-{_slug(method)}-{_slug(label)}-"
                f"{secrets.token_hex(2)}")

    # -- writing -----------------------------------------------------------------------
    def create(self, meta: dict[str, Any]) -> str:
        """A new run directory. A run created ``queued`` (the default) or ``running`` is
        held by this process (its lease) until :meth:`release`."""
        run_id = meta.get("id") or self.new_id(meta.get("method", "run"),
                                               meta.get("task_name", "task"))
        p = self.path(run_id)
        p.mkdir(parents=True, exist_ok=False)
        meta = {"id": run_id, "status": "queued", "created": time.time(),
                "pid": os.getpid(), **meta}
        meta["id"] = run_id
        if meta["status"] in ACTIVE:
            _LEASES.hold(p / LEASE_FILE)  # before run.json: never seen queued without one
        self._write_meta(run_id, meta)
        return run_id

    def hold(self, run_id: str) -> None:
        """Hold the run's lease while this process works on it (counted: every ``hold``
        and the ``create`` of an active run needs one :meth:`release`)."""
        _LEASES.hold(self.path(run_id) / LEASE_FILE)

    def release(self, run_id: str) -> None:
        """Give up one hold of the run's lease."""
        _LEASES.release(self.path(run_id) / LEASE_FILE)

    def _write_meta(self, run_id: str, meta: dict) -> None:
        _atomic_write(self.path(run_id) / "run.json",
                      json.dumps(meta, indent=1, default=_json_default).encode())

    def update(self, run_id: str, **fields: Any) -> dict:
        """Merge ``fields`` into the stored run.json as it is on disk (no liveness or
        validity verdicts are written back)."""
        if not self.path(run_id).is_dir():
            raise OcvisError(f"no run {run_id!r} in {self.root}")
        try:
            meta = json.loads((self.path(run_id) / "run.json").read_text())
            if not isinstance(meta, dict):
                meta = {}
        except (OSError, ValueError):
            meta = {}
        meta["id"] = run_id
        meta.update(fields)
        if fields.get("status") == "running":
            meta["pid"] = os.getpid()
        self._write_meta(run_id, meta)
        return meta

    def write_history(self, run_id: str, records: list[dict]) -> None:
        _atomic_write(self.path(run_id) / "history.json",
                      json.dumps(records, default=_json_default).encode())

    def write_arrays(self, run_id: str, **arrays: np.ndarray) -> None:
        import io

        buf = io.BytesIO()
        np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()
                                    if v is not None})
        _atomic_write(self.path(run_id) / "arrays.npz", buf.getvalue())

    def write_model(self, run_id: str, state_dict: dict) -> None:
        import io

        import torch

        buf = io.BytesIO()
        torch.save({k: v.detach().cpu() if isinstance(v, torch.Tensor) else v
                    for k, v in state_dict.items()}, buf)
        _atomic_write(self.path(run_id) / "model.pt", buf.getvalue())

    def write_file(self, run_id: str, name: str, data: bytes) -> None:
        if "/" in name or name.startswith("."):
            raise OcvisError(f"invalid file name {name!r}")
        _atomic_write(self.path(run_id) / name, data)

    # -- reading -----------------------------------------------------------------------
    def read(self, run_id: str) -> dict:
        p = self.path(run_id) / "run.json"
        try:
            meta = json.loads(p.read_text())
            if not isinstance(meta, dict):
                raise ValueError("run.json is not an object")
        except FileNotFoundError:
            if not self.path(run_id).is_dir():
                raise OcvisError(f"no run {run_id!r} in {self.root}") from None
            return {"id": run_id, "status": "broken", "_broken": "run.json is missing"}
        except (ValueError, OSError) as exc:
            return {"id": run_id, "status": "broken", "_broken": f"unreadable run.json: {exc}"}
        bad = _bad_fields(meta)
        if bad:
            return {"id": run_id, "status": "broken",
                    "_broken": f"run.json has malformed field(s): {bad}"}
        meta["id"] = run_id
        if meta.get("status") in ACTIVE and not lease_alive(self.path(run_id)):
            meta["status"] = "interrupted"
            meta.setdefault("error", "the process that ran this job ended before it finished")
        return meta

    def history(self, run_id: str) -> list[dict]:
        p = self.path(run_id) / "history.json"
        try:
            data = json.loads(p.read_text())
            return data if isinstance(data, list) else []
        except (FileNotFoundError, ValueError, OSError):
            return []

    def arrays(self, run_id: str) -> dict[str, np.ndarray]:
        p = self.path(run_id) / "arrays.npz"
        try:
            with np.load(p, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except FileNotFoundError:
            return {}
        except Exception as exc:  # noqa: BLE001 - a corrupt file is reported, not raised
            raise OcvisError(f"run {run_id}: arrays.npz is unreadable ({exc})") from exc

    def model_state(self, run_id: str) -> dict:
        import torch

        p = self.path(run_id) / "model.pt"
        if not p.exists():
            raise OcvisError(f"run {run_id} has no stored model")
        try:
            return torch.load(p, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001
            raise OcvisError(f"run {run_id}: model.pt is unreadable ({exc})") from exc

    def list(self) -> list[dict]:
        """Every run, newest first; broken ones included with ``status = "broken"``."""
        if not self.root.is_dir():
            return []
        out = []
        for p in self.root.iterdir():
            if not p.is_dir() or p.name.startswith(".") or not _ID_RE.match(p.name):
                continue
            try:
                out.append(self.read(p.name))
            except Exception as exc:  # noqa: BLE001 - never let one run hide the others
                out.append({"id": p.name, "status": "broken", "_broken": str(exc)})
        out.sort(key=lambda m: (_created(m), m["id"]), reverse=True)
        return out

    def delete(self, run_id: str) -> None:
        p = self.path(run_id)
        if p.is_dir():
            shutil.rmtree(p)


def _created(meta: dict) -> float:
    v = meta.get("created")
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0.0


def _bad_fields(meta: dict) -> str:
    """The fields of a run.json whose values have the wrong type, as a readable list."""
    bad = []
    for k, types in _FIELD_TYPES.items():
        v = meta.get(k)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, types):
            bad.append(f"{k}={v!r:.40}")
    if isinstance(meta.get("status"), str) and meta["status"] not in STATUSES:
        bad.append(f"status={meta['status']!r:.40}")
    return ", ".join(bad)
