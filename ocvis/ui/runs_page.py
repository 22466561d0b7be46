"""Helpers of the Runs page: the runs table, comparison, zip export, delete."""
from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path
from typing import Callable
import pandas as pd
import streamlit as st

from ocvis.ui.common import current_run_id, set_current_run_id
from ocvis.ui.runs import run_store


METRICS = {"auroc": "AUROC", "aupr_in": "AUPR-in", "aupr_out": "AUPR-out",
           "bacc": "Balanced acc."}
ACTIVE = ("queued", "running")
_WIDGETS = ("runs_manage", "runs_cmp_a", "runs_cmp_b", "runs_del_ok")


def pct(v) -> float | None:
    """A metric fraction as a percentage; None when missing or not a finite number."""
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return 100 * v if v == v and abs(v) != float("inf") else None


def num(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def run_row(meta: dict) -> dict:
    """One table row of a run's metadata; tolerant of anything a broken run.json holds."""
    task = meta.get("task") if isinstance(meta.get("task"), dict) else {}
    mt = meta.get("metrics") if isinstance(meta.get("metrics"), dict) else {}
    normal = task.get("normal")
    normal = ", ".join(map(str, normal)) if isinstance(normal, (list, tuple)) else \
        ("" if normal is None else str(normal))
    created = num(meta.get("created"))
    status = str(meta.get("status", "?"))
    reason = meta.get("_broken") or (meta.get("error") if status != "done" else "") or ""
    return {"method": str(meta.get("method", "")), "dataset": str(task.get("dataset", "")),
            "normal": normal, "protocol": str(task.get("protocol", "one-class") if task else ""),
            "preset": str(meta.get("preset", "")),
            "seed": num(meta.get("seed", task.get("seed"))),
            "AUROC": pct(mt.get("auroc")), "BACC": pct(mt.get("bacc")),
            "train s": num(meta.get("fit_seconds")), "status": status,
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


def metrics_of(r: dict) -> dict:
    return r.get("metrics") if isinstance(r.get("metrics"), dict) else {}


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.1f}"


def compare_table(a: dict, b: dict) -> pd.DataFrame:
    """Metrics (%) and a few facts of two runs side by side, as text."""
    rows = [*((lab, _fmt(pct(metrics_of(a).get(k))), _fmt(pct(metrics_of(b).get(k))))
              for k, lab in METRICS.items()),
            ("train s", _fmt(num(a.get("fit_seconds"))), _fmt(num(b.get("fit_seconds")))),
            *((k, str(a.get(k, "")), str(b.get(k, ""))) for k in ("preset", "device", "status"))]
    return pd.DataFrame(rows, columns=["", "A", "B"])


def delete_run(run_id: str) -> None:
    """Button callback: delete the run, forget widgets pointing at it, leave a message."""
    meta = run_store().read(run_id)
    if meta.get("status") in ACTIVE:
        st.session_state["runs_flash"] = ("error", f"Run `{run_id}` is {meta['status']}: "
                                                   "cancel it on the Train page first.")
        return
    run_store().delete(run_id)
    for k in _WIDGETS:
        st.session_state.pop(k, None)
    if current_run_id() == run_id:
        set_current_run_id(None)
    st.session_state["runs_flash"] = ("success", f"Deleted run `{run_id}`.")
