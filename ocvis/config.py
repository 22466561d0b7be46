"""Where ocvis reads and writes files. Every location comes from the environment."""
from __future__ import annotations

import os
from pathlib import Path


def data_root() -> Path:
    """Root of the datasets: ``$OCVIS_DATA_ROOT``, default ``./data``."""
    return Path(os.environ.get("OCVIS_DATA_ROOT", "data")).expanduser()


def runs_root() -> Path:
    """Run store: ``$OCVIS_RUNS_DIR``, default ``./runs``."""
    return Path(os.environ.get("OCVIS_RUNS_DIR", "runs")).expanduser()


def cache_root() -> Path:
    """Decoded-dataset cache: ``$OCVIS_CACHE_DIR``, default ``./.cache``."""
    return Path(os.environ.get("OCVIS_CACHE_DIR", ".cache")).expanduser()


def upload_root() -> Path:
    """Where uploaded archives are extracted: ``$OCVIS_UPLOAD_DIR``, default ``./uploads``
    (its own folder, so a read-only or shared dataset root is never written to)."""
    return Path(os.environ.get("OCVIS_UPLOAD_DIR", "uploads")).expanduser()


def folder_roots() -> list[Path]:
    """Folders a ``folder:<path>`` dataset may come from: ``$OCVIS_FOLDER_ROOTS``
    (separated by ``os.pathsep``), default the data root and the upload folder. Anyone who
    reaches the dashboard can read images below these, so keep them narrow."""
    env = os.environ.get("OCVIS_FOLDER_ROOTS")
    roots = [p for p in env.split(os.pathsep) if p.strip()] if env else \
        [str(data_root()), str(upload_root())]
    return [Path(p).expanduser() for p in roots]
