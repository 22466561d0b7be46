"""Session state, caches and the sidebar shared by every page."""
from __future__ import annotations

import json
import warnings
from contextlib import contextmanager
from typing import Iterator

import streamlit as st

from ocvis.errors import OcvisError

TASK_KEY = "ocvis_task_cfg"
RUN_KEY = "ocvis_current_run"
DEFAULT_TASK = {"dataset": "digits", "protocol": "one-class", "normal": [0], "n_train": None,
                "ratio": 10.0, "seed": 0}


def task_config() -> dict:
    """The task the user chose on the Data page (defaults: digits, class 0)."""
    cfg = st.session_state.get(TASK_KEY)
    if not cfg:
        cfg = dict(DEFAULT_TASK)
        st.session_state[TASK_KEY] = cfg
    return cfg


def set_task_config(cfg: dict) -> None:
    st.session_state[TASK_KEY] = dict(cfg)


@st.cache_resource(show_spinner="Loading dataset…", max_entries=4)
def cached_dataset(name: str, root: str | None = None):
    from ocvis.data import load_dataset

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset(name, root=root)
    return ds, [str(w.message) for w in caught]


@st.cache_resource(show_spinner="Building task…", max_entries=8)
def _cached_task(cfg_json: str):
    from ocvis.experiment import task_from_config

    cfg = json.loads(cfg_json)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        task = task_from_config(cfg)
    return task, [str(w.message) for w in caught]


def current_task(cfg: dict | None = None):
    """(task, warnings) for ``cfg`` (default: the session's task)."""
    cfg = task_config() if cfg is None else cfg
    return _cached_task(json.dumps(cfg, sort_keys=True))


@contextmanager
def user_errors() -> Iterator[None]:
    """Show an ``ocvis`` error as a message instead of a traceback, then stop the page."""
    try:
        yield
    except OcvisError as exc:
        st.error(str(exc))
        st.stop()


def sidebar() -> None:
    """Current task and current run, on every page."""
    cfg = task_config()
    with st.sidebar:
        st.caption("Current task")
        normal = cfg["normal"]
        normal = ", ".join(map(str, normal)) if isinstance(normal, list) else str(normal)
        extra = f" · outliers {cfg.get('ratio')} %" if cfg["protocol"] == "unsupervised" else ""
        st.markdown(f"**{cfg['dataset']}** · {cfg['protocol']} · normal: {normal}{extra}"
                    f" · seed {cfg.get('seed', 0)}")
        run = st.session_state.get(RUN_KEY)
        st.caption("Current run")
        st.markdown(f"`{run}`" if run else "none yet")
