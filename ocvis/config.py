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
