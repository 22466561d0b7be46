"""Cached access to the run store for pages."""
from __future__ import annotations

import streamlit as st



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
    from ocvis.ui.common import set_current_run_id

    set_current_run_id(run_id)


def finished_runs(kind: str = "experiment") -> list[dict]:
    return [r for r in run_store().list()
            if r.get("kind", "experiment") == kind and r.get("status") == "done"]


def run_label(r: dict) -> str:
    mt = r.get("metrics") or {}
    auc = f" · AUROC {100 * mt['auroc']:.1f}" if isinstance(mt.get("auroc"), (int, float)) \
        else ""
    return f"{r.get('method', '?')} · {r.get('task_name', '?')} · {r.get('preset', '')}{auc} · {r['id'][-4:]}"


def run_picker(label: str = "Run", key: str = "run_pick", runs: list[dict] | None = None,
               default: str | None = None):
    """Select a finished run (default: the session's current run, else the newest)."""
    runs = finished_runs() if runs is None else runs
    if not runs:
        return None
    ids = [r["id"] for r in runs]
    from ocvis.ui.common import current_run_id

    want = default or current_run_id()
    idx = ids.index(want) if want in ids else 0
    by_id = {r["id"]: r for r in runs}
    rid = st.selectbox(label, ids, index=idx, key=key, format_func=lambda i: run_label(by_id[i]))
    return by_id[rid]


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def run_method(run_id: str):
    from ocvis.experiment import load_run_method

    return load_run_method(run_store(), run_id)


@st.cache_resource(show_spinner="Rebuilding the task…", max_entries=4)
def run_task(run_id: str):
    from ocvis.experiment import task_of_run

    return task_of_run(run_store().read(run_id))


METRIC_LABELS = (("auroc", "AUROC"), ("aupr_in", "AUPR-in"), ("aupr_out", "AUPR-out"),
                 ("bacc", "Balanced acc."))


def _pct(v) -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return "–"
    return f"{100 * v:.1f}" if v == v else "–"


def show_run_result(run: dict) -> None:
    """Metrics, training time, warnings (divergence included) of a finished run."""
    status = run.get("status")
    if status != "done":
        if status in ("failed", "cancelled", "interrupted", "broken"):
            st.caption(f"Run `{run.get('id')}`: {status}.")
        return
    mt = run.get("metrics") if isinstance(run.get("metrics"), dict) else {}
    cols = st.columns(5)
    for col, (k, lab) in zip(cols, METRIC_LABELS):
        col.metric(lab, _pct(mt.get(k)))
    cols[4].metric("Training", f"{float(run.get('fit_seconds') or 0):.0f} s")
    div = (run.get("info") or {}).get("divergence") if isinstance(run.get("info"), dict) \
        else None
    if div:
        st.error(f"Training did not converge: {div}. The scores of this run mean little; "
                 "try a smaller learning rate.")
    st.success(f"Stored as run `{run['id']}`. See Latent space, Evaluate and Explain.")
    if mt.get("message"):
        st.warning(mt["message"])
    for note in run.get("notes") or []:
        st.warning(note)
