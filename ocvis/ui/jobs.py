"""The job manager of this server and the live job panel (a fragment that polls a job).

The jobs run in a worker process (:mod:`ocvis.jobs`); a panel only reads the job's record in
this process, so a refresh costs the server little and never the job: the loss chart is
down-sampled to a few hundred points per curve, and a finished job's panel stops polling.
"""
from __future__ import annotations

import streamlit as st

from ocvis.train import divergence
from ocvis.ui.figures import loss_figure

REFRESH_SECONDS = 1.0
FIRST_POINT_REFRESH_SECONDS = 0.5  # a job that has no point yet: show its first one quickly
MAX_CHART_POINTS = 600             # per curve: enough for the shape, cheap to send


@st.cache_resource(show_spinner=False, validate=lambda jm: not jm.closed)
def job_manager():
    """One manager per server process: jobs survive reruns, page switches and reloads."""
    # imported here, in the script thread, before any other thread may import them: two
    # threads importing one package at once can deadlock on its module locks
    import ocvis.experiment  # noqa: F401
    import ocvis.methods  # noqa: F401
    from ocvis.jobs import JobManager

    return JobManager(warm=True)


def _fmt_seconds(s) -> str:
    if s is None:
        return "…"
    s = int(round(s))
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


def job_status_line(view: dict) -> str:
    """The one way a job's status is written, from one :meth:`Job.view` (same moment)."""
    bits = [f"**{view['status']}**"]
    if view["status"] == "running" and view.get("stage"):
        n = view.get("n_stages") or 1
        stage = view["stage"] if n < 2 else \
            f"{view['stage']} (stage {int(view.get('stage_index') or 0) + 1}/{n})"
        bits.append(f"{stage} · epoch {view.get('epoch') or 0}/{view.get('epochs') or '?'} · "
                    f"step {view.get('step') or 0}/{view.get('steps') or '?'}")
    if view["status"] == "running":
        eta = view.get("eta")
        bits.append(f"elapsed {_fmt_seconds(view['elapsed'])}" +
                    (f", stage ETA {_fmt_seconds(eta)}" if eta is not None else ""))
        if view.get("threads"):
            bits.append(f"{view['threads']} torch thread{'s' if view['threads'] != 1 else ''}")
    elif view["status"] in ("done", "failed", "cancelled"):
        bits.append(f"after {_fmt_seconds(view['elapsed'])}")
    if view.get("cancel_requested") and view["status"] == "running":
        bits.append("cancelling…")
    return " · ".join(bits)


def thin_history(history: list[dict], max_points: int = MAX_CHART_POINTS) -> list[dict]:
    """Every k-th step record (and the last), so each curve has at most ~``max_points``."""
    n = len(history)
    if n <= max_points:
        return history
    k = -(-n // max_points)
    out = history[::k]
    if out[-1] is not history[-1]:
        out.append(history[-1])
    return out


def render_job(job, key: str) -> None:
    """Progress bar, status, loss curves and a Cancel button for ``job``."""
    view = job.view()
    st.markdown(f"{job.title} — {job_status_line(view)}")
    st.progress(min(1.0, max(0.0, view["fraction"])), text=view["message"] or view["status"])
    full = list(job.history)
    st.plotly_chart(loss_figure(thin_history(full)), width="stretch", key=f"{key}-loss")
    div = divergence(full)
    if div:
        st.warning(f"The loss looks diverged: {div}. Consider cancelling and lowering the "
                   "learning rate.")
    if view["status"] in ("queued", "running"):
        if st.button("Cancel", key=f"{key}-cancel-{job.id}", type="secondary",
                     disabled=view["cancel_requested"]):
            job_manager().cancel(job.id)
            st.toast("Cancelling… the job stops before its next step.")
    elif view["status"] == "failed":
        st.error(f"The job failed: {view['error']}")
    elif view["status"] == "cancelled":
        st.warning(f"Cancelled. {view['message']}")


def live_job(job_id: str | None, key: str, on_done=None) -> None:
    """A fragment that redraws ``job_id`` every second while it runs; when it ends, the
    whole page reruns once so results below the panel appear."""

    job0 = job_manager().get(job_id) if job_id else None
    waiting_first = job0 is not None and not job0.done and not job0.history
    every = FIRST_POINT_REFRESH_SECONDS if waiting_first else REFRESH_SECONDS

    @st.fragment(run_every=every if job0 is not None and not job0.done else None)
    def _panel():
        job = job_manager().get(job_id) if job_id else None
        if job is None:
            st.info("No job yet.")
            return
        render_job(job, key)
        done_key = f"{key}-seen-done-{job.id}"
        if job.done and not st.session_state.get(done_key):
            st.session_state[done_key] = True
            if on_done is not None:
                on_done(job)
            st.rerun()

    _panel()


def queue_summary() -> None:
    c = job_manager().counts()
    if c["running"] or c["queued"]:
        st.caption(f"Jobs: {'1 running' if c['running'] else 'none running'}, "
                   f"{c['queued']} queued (one at a time, in a worker process with "
                   f"{c['threads']} torch thread{'s' if c['threads'] != 1 else ''})")
