"""The job manager of this server and the live job panel (a fragment that polls a job)."""
from __future__ import annotations

import streamlit as st

from ocvis.ui.figures import loss_figure

REFRESH_SECONDS = 1.0
FIRST_POINT_REFRESH_SECONDS = 0.5  # a job that has no point yet: show its first one quickly
ACTIVE_JOB_KEY = "ocvis_active_job"


@st.cache_resource(show_spinner=False, validate=lambda jm: not jm.closed)
def job_manager():
    """One manager per server process: jobs survive reruns, page switches and reloads."""
    # imported here, in the script thread, before the manager's warm-up thread imports
    # them too: two threads importing one package at once can deadlock on its module locks
    # (seen: "_DeadlockError ... ocvis.methods.base" when the demo was clicked early)
    import ocvis.experiment  # noqa: F401
    import ocvis.methods  # noqa: F401
    from ocvis.jobs import JobManager

    return JobManager(warm=True)


def _fmt_seconds(s) -> str:
    if s is None:
        return "…"
    s = int(round(s))
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


def job_status_line(job) -> str:
    p = job.progress
    bits = [f"**{job.status}**"]
    if p.get("stage"):
        bits.append(f"{p['stage']} · epoch {p.get('epoch', 0)}/{p.get('epochs', '?')} · "
                    f"step {p.get('step', 0)}/{p.get('steps', '?')}")
    if job.status == "running":
        bits.append(f"elapsed {_fmt_seconds(job.elapsed())}, ETA {_fmt_seconds(p.get('eta'))}")
    return " · ".join(bits)


def render_job(job, key: str) -> None:
    """Progress bar, status, loss curves and a Cancel button for ``job``."""
    st.markdown(f"{job.title} — {job_status_line(job)}")
    st.progress(float(job.progress.get("fraction", 0.0 if not job.done else 1.0)),
                text=job.message or job.status)
    hist = list(job.history)
    st.plotly_chart(loss_figure(hist), width="stretch", key=f"{key}-loss")
    if job.status in ("queued", "running"):
        if st.button("Cancel", key=f"{key}-cancel-{job.id}", type="secondary"):
            job_manager().cancel(job.id)
            st.toast("Cancelling… the job stops before its next step.")
    elif job.status == "failed":
        st.error(f"The job failed: {job.error}")
    elif job.status == "cancelled":
        st.warning(f"Cancelled. {job.message}")


def live_job(job_id: str | None, key: str, on_done=None) -> None:
    """A fragment that redraws ``job_id`` every second while it runs; when it ends, the
    whole page reruns once so results below the panel appear."""

    job0 = job_manager().get(job_id) if job_id else None
    waiting_first = job0 is not None and not job0.done and not job0.history
    every = FIRST_POINT_REFRESH_SECONDS if waiting_first else REFRESH_SECONDS

    @st.fragment(run_every=every)
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
    jm = job_manager()
    active, queued = jm.active(), jm.queued()
    if active or queued:
        st.caption(f"Jobs: {'1 running' if active else 'none running'}, {len(queued)} queued "
                   "(one at a time on this machine)")
