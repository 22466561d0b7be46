"""Runs: every stored run, compare two, export, delete, make one the current run."""
from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path
from typing import Callable

import pandas as pd
import streamlit as st

from ocvis.ui.common import RUN_KEY, sidebar
from ocvis.ui.figures import loss_figure, metrics_bar
from ocvis.ui.runs import run_store, set_current_run

METRICS = {"auroc": "AUROC", "aupr_in": "AUPR-in", "aupr_out": "AUPR-out",
           "bacc": "Balanced acc."}
ACTIVE = ("queued", "running")
_WIDGETS = ("runs_manage", "runs_cmp_a", "runs_cmp_b", "runs_del_ok")


def _pct(v) -> float | None:
    """A metric fraction as a percentage; None when missing or not a finite number."""
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return 100 * v if v == v and abs(v) != float("inf") else None


def _num(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def run_row(meta: dict) -> dict:
    """One table row of a run's metadata; tolerant of anything a broken run.json holds."""
    task = meta.get("task") if isinstance(meta.get("task"), dict) else {}
    mt = meta.get("metrics") if isinstance(meta.get("metrics"), dict) else {}
    normal = task.get("normal")
    normal = ", ".join(map(str, normal)) if isinstance(normal, (list, tuple)) else \
        ("" if normal is None else str(normal))
    created = _num(meta.get("created"))
    status = str(meta.get("status", "?"))
    reason = meta.get("_broken") or (meta.get("error") if status != "done" else "") or ""
    return {"method": str(meta.get("method", "")), "dataset": str(task.get("dataset", "")),
            "normal": normal, "protocol": str(task.get("protocol", "one-class") if task else ""),
            "preset": str(meta.get("preset", "")),
            "seed": _num(meta.get("seed", task.get("seed"))),
            "AUROC": _pct(mt.get("auroc")), "BACC": _pct(mt.get("bacc")),
            "train s": _num(meta.get("fit_seconds")), "status": status,
            "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(created))
            if created is not None else "", "reason": str(reason),
            "kind": "" if status == "broken" else str(meta.get("kind", "experiment")),
            "id": meta.get("id", "?")}


def runs_table(runs: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([run_row(r) for r in runs])


def run_zip(run_dir: Path) -> bytes:
    """The run directory's own regular files as an in-memory zip (``<run id>/<file>``)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted(run_dir.iterdir()):
            if p.is_file() and not p.is_symlink() and not p.name.startswith("."):
                z.write(p, f"{run_dir.name}/{p.name}")
    return buf.getvalue()


def zip_maker(run_dir: Path) -> Callable[[], bytes]:
    """Deferred zip: built only when the user clicks the download button."""
    return lambda: run_zip(run_dir)


def short_label(r: dict) -> str:
    task = r.get("task") if isinstance(r.get("task"), dict) else {}
    what = r.get("task_name") or task.get("dataset") or "?"
    return f"{r.get('method', '?')} · {what} · {r.get('status', '?')} · {r['id'][-4:]}"


def _metrics(r: dict) -> dict:
    return r.get("metrics") if isinstance(r.get("metrics"), dict) else {}


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.1f}"


def compare_table(a: dict, b: dict) -> pd.DataFrame:
    """Metrics (%) and a few facts of two runs side by side, as text."""
    rows = [*((lab, _fmt(_pct(_metrics(a).get(k))), _fmt(_pct(_metrics(b).get(k))))
              for k, lab in METRICS.items()),
            ("train s", _fmt(_num(a.get("fit_seconds"))), _fmt(_num(b.get("fit_seconds")))),
            *((k, str(a.get(k, "")), str(b.get(k, ""))) for k in ("preset", "device", "status"))]
    return pd.DataFrame(rows, columns=["", "A", "B"])


def _delete(run_id: str) -> None:
    """Button callback: delete the run, forget widgets pointing at it, leave a message."""
    meta = run_store().read(run_id)
    if meta.get("status") in ACTIVE:
        st.session_state["runs_flash"] = ("error", f"Run `{run_id}` is {meta['status']}: "
                                                   "cancel it on the Train page first.")
        return
    run_store().delete(run_id)
    for k in _WIDGETS:
        st.session_state.pop(k, None)
    if st.session_state.get(RUN_KEY) == run_id:
        st.session_state.pop(RUN_KEY, None)
    st.session_state["runs_flash"] = ("success", f"Deleted run `{run_id}`.")


st.set_page_config(page_title="ocvis · Runs", layout="wide")
st.title("Runs")
flash = st.session_state.pop("runs_flash", None)
if flash:
    getattr(st, flash[0])(flash[1])
runs = run_store().list()
if not runs:
    sidebar()
    st.info("No runs stored yet: train one on the **Train** page.")
    st.stop()

st.caption(f"{len(runs)} run(s) in `{run_store().root}`, newest first.")
st.dataframe(runs_table(runs), hide_index=True, use_container_width=True, key="runs-table",
             placeholder="–", column_config={
                 "AUROC": st.column_config.NumberColumn(format="%.1f"),
                 "BACC": st.column_config.NumberColumn(format="%.1f"),
                 "train s": st.column_config.NumberColumn(format="%.1f"),
                 "seed": st.column_config.NumberColumn(format="%d"),
                 "reason": st.column_config.TextColumn(width="medium")})
by_id = {r["id"]: r for r in runs}
ids = list(by_id)

# --------------------------------------------------------------------------- manage
st.subheader("Manage a run")
current = st.session_state.get(RUN_KEY)
rid = st.selectbox("Run", ids, index=ids.index(current) if current in ids else 0,
                   key="runs_manage", format_func=lambda i: short_label(by_id[i]))
meta = by_id[rid]
c1, c2, c3 = st.columns(3)
usable = meta.get("status") == "done" and meta.get("kind", "experiment") == "experiment"
if c1.button("Set as current run", key="runs_set_current", disabled=not usable,
             help="Pages that show one run (Latent space, Evaluate, Explain) open this one."
             if usable else "Only a finished experiment run can be the current run."):
    set_current_run(rid)
    st.toast(f"Current run: {rid}")
c2.download_button("Export as .zip", zip_maker(run_store().path(rid)), file_name=f"{rid}.zip",
                   mime="application/zip", key="runs_zip", on_click="ignore",
                   help="run.json, history, arrays and weights of this run only")
with c3:
    sure = st.checkbox("I want to delete this run", key="runs_del_ok")
    st.button("Delete", key="runs_delete", type="primary", disabled=not sure,
              on_click=_delete, args=(rid,))
if meta.get("status") == "broken":
    st.error(f"Broken run: {meta.get('_broken', 'unreadable')}")
elif meta.get("error"):
    st.warning(f"{meta.get('status', '').capitalize()}: {meta['error']}")

# --------------------------------------------------------------------------- compare
st.subheader("Compare two runs")
readable = [i for i in ids if by_id[i].get("status") != "broken"]
if len(readable) < 2:
    st.info("Compare needs two readable runs: train another one on the Train page.")
else:
    ca, cb = st.columns(2)
    a_id = ca.selectbox("Run A", readable, index=0, key="runs_cmp_a",
                        format_func=lambda i: short_label(by_id[i]))
    b_id = cb.selectbox("Run B", readable, index=1, key="runs_cmp_b",
                        format_func=lambda i: short_label(by_id[i]))
    if a_id == b_id:
        st.info("Pick two different runs.")
    else:
        ra, rb = by_id[a_id], by_id[b_id]
        for col, r, tag in ((ca, ra, "a"), (cb, rb, "b")):
            col.plotly_chart(loss_figure(run_store().history(r["id"]), height=320),
                             use_container_width=True, key=f"runs-loss-{tag}")
        t1, t2 = st.columns([2, 3])
        t1.dataframe(compare_table(ra, rb), hide_index=True, use_container_width=True,
                     key="runs-compare")
        bars = {f"{tag} · {short_label(r)}": {lab: _pct(_metrics(r).get(k))
                                               for k, lab in METRICS.items()}
                for tag, r in (("A", ra), ("B", rb))}
        t2.plotly_chart(metrics_bar(bars, tuple(METRICS.values())), use_container_width=True,
                        key="runs-bars")
sidebar()
