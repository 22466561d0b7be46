"""The job manager of this server and the live job panel (a fragment that polls a job).

The jobs run in a worker process (:mod:`ocvis.jobs`); a panel only reads the job's record in
this process, so a refresh costs the server little and never the job: the loss chart is
down-sampled to a few hundred points per curve, and a finished job's panel stops polling.
"""
from __future__ import annotations

import streamlit as st

from ocvis.train import divergence
from ocvis.ui.figures import loss_figure

REFRESH_SECONDS = 1.0        # the status line and progress bar
CHART_REFRESH_SECONDS = 1.5  # the loss chart: each redraw costs the browser a re-render
FIRST_POINT_REFRESH_SECONDS = 0.5  # a job that has no point yet: show its first one quickly
MAX_CHART_POINTS = 300       # per curve: enough for the shape, cheap to draw


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


def render_status(job, key: str) -> None:
    """Title with the status line, progress bar, Cancel button / outcome of ``job``."""
    view = job.view()
    st.markdown(f"{job.title} — {job_status_line(view)}")
    st.progress(min(1.0, max(0.0, view["fraction"])), text=view["message"] or view["status"])
    if view["status"] in ("queued", "running"):
        if st.button("Cancel", key=f"{key}-cancel-{job.id}", type="secondary",
                     disabled=view["cancel_requested"]):
            job_manager().cancel(job.id)
            st.toast("Cancelling… the job stops before its next step.")
    elif view["status"] == "failed":
        st.error(f"The job failed: {view['error']}")
    elif view["status"] == "cancelled":
        st.warning(f"Cancelled. {view['message']}")


def render_chart(job, key: str) -> None:
    """The loss curves of ``job`` (thinned) and a divergence warning."""
    full = list(job.history)
    st.plotly_chart(loss_figure(thin_history(full)), width="stretch", key=f"{key}-loss")
    div = divergence(full)
    if div:
        st.warning(f"The loss looks diverged: {div}. Consider cancelling and lowering the "
                   "learning rate.")


def render_job(job, key: str) -> None:
    """Status and chart of ``job`` (static: no refresh)."""
    render_status(job, key)
    render_chart(job, key)


def live_job(job_id: str | None, key: str, on_done=None) -> None:
    """Two fragments for ``job_id``: the status every second, the loss chart every
    :data:`CHART_REFRESH_SECONDS` (each redraw costs the browser a Plotly re-render, the
    dominant cost of an open page); both every half second until the first point arrives,
    then the page reruns once at the calmer pace. When the job ends the page reruns once so
    results below the panel appear, and the panel stops polling."""
    job0 = job_manager().get(job_id) if job_id else None
    running = job0 is not None and not job0.done
    first = running and not job0.history
    status_every = (FIRST_POINT_REFRESH_SECONDS if first else REFRESH_SECONDS) if running \
        else None
    chart_every = (FIRST_POINT_REFRESH_SECONDS if first else CHART_REFRESH_SECONDS) \
        if running else None

    @st.fragment(run_every=status_every)
    def _status():
        job = job_manager().get(job_id) if job_id else None
        if job is None:
            st.info("No job yet.")
            return
        render_status(job, key)
        done_key = f"{key}-seen-done-{job.id}"
        if job.done and not st.session_state.get(done_key):
            st.session_state[done_key] = True
            if on_done is not None:
                on_done(job)
            st.rerun()
        elif first and job.history:  # the first point: slow down to the normal pace
            st.rerun()

    @st.fragment(run_every=chart_every)
    def _chart():
        job = job_manager().get(job_id) if job_id else None
        if job is not None:
            render_chart(job, key)

    _status()
    _chart()


def live_run_curve(run_id: str, key: str, height: int = 320) -> None:
    """The loss curve of a stored run. While a process trains it (a CLI or ``bench`` run, or
    a job of this or another dashboard) the curve is re-read from the history the run
    flushes (:data:`ocvis.experiment.HISTORY_FLUSH_SECONDS`) and redrawn at that pace; when
    the run ends the page reruns once and the polling stops."""
    from ocvis.experiment import HISTORY_FLUSH_SECONDS
    from ocvis.runs import ACTIVE
    from ocvis.ui.runs import run_store

    running = run_store().read(run_id).get("status") in ACTIVE

    @st.fragment(run_every=HISTORY_FLUSH_SECONDS if running else None)
    def _curve():
        meta = run_store().read(run_id)
        hist = run_store().history(run_id)
        if hist:
            st.plotly_chart(loss_figure(thin_history(hist), height=height), width="stretch",
                            key=f"{key}-loss")
            last = hist[-1]
            if meta.get("status") in ACTIVE:
                where = f"stage `{last.get('stage', '?')}`"
                if last.get("epochs"):
                    where += f", epoch {last.get('epoch', '?')} of {last['epochs']}"
                st.caption(f"Training: {len(hist)} steps so far ({where}), read from the run "
                           f"directory every {HISTORY_FLUSH_SECONDS:g} s.")
        else:
            st.caption("No training step recorded yet." if meta.get("status") in ACTIVE
                       else "This run has no loss history.")
        if running and meta.get("status") not in ACTIVE:
            st.rerun()  # it ended: redraw the page once (status, metrics) and stop polling

    _curve()


def queue_summary() -> None:
    c = job_manager().counts()
    if c["running"] or c["queued"]:
        st.caption(f"Jobs: {'1 running' if c['running'] else 'none running'}, "
                   f"{c['queued']} queued (one at a time, in a worker process with "
                   f"{c['threads']} torch thread{'s' if c['threads'] != 1 else ''})")
