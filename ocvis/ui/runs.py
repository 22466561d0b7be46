"""Cached access to the run store for pages."""
from __future__ import annotations

import streamlit as st

from ocvis.ui.common import RUN_KEY


@st.cache_resource(show_spinner=False)
def run_store():
    from ocvis.runs import RunStore

    return RunStore()


@st.cache_data(show_spinner=False, max_entries=16)
def run_arrays(run_id: str, mtime: float) -> dict:
    """Arrays of a finished run (cached per run and file time)."""
    return run_store().arrays(run_id)


def arrays(run_id: str) -> dict:
    p = run_store().path(run_id) / "arrays.npz"
    return run_arrays(run_id, p.stat().st_mtime if p.exists() else 0.0)


def latest_run(kind: str, task_cfg: dict, status: str = "done", method: str | None = None):
    """The newest stored run of ``kind`` for this task (after a restart too)."""
    for r in run_store().list():
        if r.get("kind", "experiment") != kind or r.get("status") != status:
            continue
        if method and r.get("method") != method:
            continue
        if r.get("task") == task_cfg:
            return r
    return None


def set_current_run(run_id: str) -> None:
    st.session_state[RUN_KEY] = run_id
