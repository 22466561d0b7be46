"""Session state, caches and the sidebar shared by every page."""
from __future__ import annotations

import json
import warnings
from contextlib import contextmanager
from typing import Iterator

import streamlit as st
from streamlit.errors import StreamlitAPIException

from ocvis.errors import OcvisError

TASK_KEY = "ocvis_task_cfg"
RUN_KEY = "ocvis_current_run"
DEFAULT_TASK = {"dataset": "digits", "protocol": "one-class", "normal": [0], "n_train": None,
                "ratio": 10.0, "seed": 0}


STATE_FILE = ".ui_state.json"  # in the run store: the last task and run of this server


def _state_path():
    from ocvis.config import runs_root

    return runs_root() / STATE_FILE


def _read_state() -> dict:
    try:
        data = json.loads(_state_path().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_state(**fields) -> None:
    """Remember the last task / run for a reload or a new tab (best effort)."""
    from ocvis.runs import _atomic_write

    state = _read_state()
    if all(state.get(k) == v for k, v in fields.items()):
        return
    state.update(fields)
    try:
        _atomic_write(_state_path(), json.dumps(state).encode())
    except OSError:
        pass


def _valid_task(cfg) -> dict | None:
    if not isinstance(cfg, dict) or not isinstance(cfg.get("dataset"), str):
        return None
    return {**DEFAULT_TASK, **{k: v for k, v in cfg.items() if k in DEFAULT_TASK}}


def _from_query(key: str):
    try:
        raw = st.query_params.get(key)
    except Exception:  # noqa: BLE001 - no query parameters (AppTest, bare mode)
        return None
    if not raw:
        return None
    if key == "run":
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return None


def task_config() -> dict:
    """The task the user chose on the Data page. A new session (a reload, a new tab) takes
    it from the URL (``?task=``), else from the server's last task, else digits class 0."""
    cfg = st.session_state.get(TASK_KEY)
    if not cfg:
        cfg = _valid_task(_from_query("task")) or _valid_task(_read_state().get("task")) \
            or dict(DEFAULT_TASK)
        st.session_state[TASK_KEY] = cfg
    return cfg


def set_task_config(cfg: dict) -> None:
    st.session_state[TASK_KEY] = dict(cfg)
    _write_state(task=dict(cfg))


def current_run_id() -> str | None:
    """The current run: this session's, else the URL's (``?run=``), else the server's last."""
    rid = st.session_state.get(RUN_KEY)
    if not rid:
        rid = _from_query("run") or _read_state().get("run")
        if rid and _run_exists(rid):
            st.session_state[RUN_KEY] = rid
        else:
            rid = None
    return rid


def _run_exists(rid: str) -> bool:
    from ocvis.ui.runs import run_store

    try:
        return run_store().path(rid).is_dir()
    except OcvisError:
        return False


def set_current_run_id(run_id: str | None) -> None:
    if run_id:
        st.session_state[RUN_KEY] = run_id
    else:
        st.session_state.pop(RUN_KEY, None)
    _write_state(run=run_id)


def _sync_url() -> None:
    """Keep the task and the run in the URL, so a reload of any page restores them."""
    try:
        want = {"task": json.dumps(task_config(), separators=(",", ":"), sort_keys=True)}
        rid = st.session_state.get(RUN_KEY)
        if rid:
            want["run"] = rid
        elif "run" in st.query_params:
            del st.query_params["run"]
        if any(st.query_params.get(k) != v for k, v in want.items()):
            st.query_params.update(want)
    except Exception:  # noqa: BLE001 - only a convenience
        pass


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


PAGES = (("app.py", "Overview", ":material/home:"),
         ("pages/1_Data.py", "Data", ":material/dataset:"),
         ("pages/2_Split.py", "Split", ":material/call_split:"),
         ("pages/3_Train.py", "Train", ":material/model_training:"),
         ("pages/4_Latent_Space.py", "Latent space", ":material/scatter_plot:"),
         ("pages/5_Evaluate.py", "Evaluate", ":material/monitoring:"),
         ("pages/6_Explain.py", "Explain", ":material/lightbulb:"),
         ("pages/7_Runs.py", "Runs", ":material/history:"))


def task_caption(cfg: dict) -> str:
    """The task in Markdown, with class names (see :func:`ocvis.data.task_label`)."""
    from ocvis.data import task_label

    return task_label(cfg, markdown=True)


def sidebar(run: dict | None = None) -> None:
    """Navigation, the current task and the current run, on every page.

    ``run``: the run the page shows (it becomes the current run); otherwise the session's
    current run. The run's own task is shown with it, so a page about a run trained on
    another task says so."""
    from ocvis.ui.runs import run_store

    if run is not None and run.get("id") and st.session_state.get(RUN_KEY) != run["id"]:
        set_current_run_id(run["id"])
    _sync_url()
    with st.sidebar:
        for path, label, icon in PAGES:
            try:
                st.page_link(path, label=label, icon=icon)
            except StreamlitAPIException:  # a page run on its own (AppTest): no app pages
                break
        st.divider()
        st.caption("Current task (Data page)")
        st.markdown(task_caption(task_config()))
        rid = current_run_id()
        st.caption("Current run")
        if not rid:
            st.markdown("none yet")
            return
        meta = run
        if meta is None or meta.get("id") != rid:
            try:
                meta = run_store().read(rid)
            except OcvisError:
                st.markdown("none yet")
                return
        st.markdown(f"`{meta.get('method', '?')}` · {meta.get('status', '?')} · "
                    f"`…{rid[-9:]}`")
        st.markdown("trained on " + task_caption(meta.get("task") or {}))
