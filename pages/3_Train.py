"""Train: choose a method and its hyperparameters, start it as a job, watch the curves."""
import streamlit as st

from ocvis.methods import METHODS
from ocvis.ui.common import current_task, sidebar, task_config, user_errors
from ocvis.ui.forms import config_form
from ocvis.ui.jobs import job_manager, live_job, queue_summary
from ocvis.ui.runs import run_store, set_current_run

st.set_page_config(page_title="ocvis · Train", layout="wide")
st.title("Train")
cfg = task_config()
with user_errors():
    task, _ = current_task()
st.markdown(f"Task: **{task.name}** — {len(task.x_train)} training images, "
            f"{len(task.x_test)} test images")

names = list(METHODS)
c1, c2 = st.columns([3, 1])
name = c1.selectbox("Method", names, format_func=lambda n: METHODS[n].title, key="train_method")
method_cls = METHODS[name]
presets = list(method_cls.presets)
preset = c2.selectbox("Preset", presets, index=presets.index("cpu") if "cpu" in presets else 0,
                      key="train_preset")
st.caption(f"Paper: {method_cls.paper}")
defaults = {}
if "rho" in method_cls.Config.__dataclass_fields__ and "ocvis_rho" in st.session_state:
    defaults["rho"] = float(st.session_state["ocvis_rho"])  # chosen on the Split page
with st.expander("Hyperparameters (paper defaults)", expanded=False):
    overrides = config_form(method_cls, preset, "train", defaults)

if st.button("Start", type="primary"):
    job = job_manager().submit_experiment(cfg, name, preset, overrides)
    st.session_state.setdefault("train_jobs", []).append(job.id)
    st.session_state["train_job"] = job.id
    set_current_run(job.run_id)
    st.toast(f"Queued {method_cls.title}" if job_manager().active() else "Started")

sidebar()
queue_summary()
jm = job_manager()
mine = [jm.get(j) for j in st.session_state.get("train_jobs", []) if jm.get(j)]
# show the running job of this session, else the newest one
shown = next((j for j in mine if j.status == "running"), None) or (mine[-1] if mine else None)
if shown is None:
    st.info("Choose a method and press Start. Training runs in the background: you can switch "
            "pages or close the browser, the run is stored when it ends.")
    st.stop()
live_job(shown.id, "train")
waiting = [j for j in mine if j.status == "queued"]
if waiting:
    st.caption("Queued: " + ", ".join(j.title for j in waiting))

if shown.done and shown.run_id:
    run = run_store().read(shown.run_id)
    if run.get("status") == "done":
        mt = run["metrics"]
        cols = st.columns(5)
        for col, (k, lab) in zip(cols, [("auroc", "AUROC"), ("aupr_in", "AUPR-in"),
                                        ("aupr_out", "AUPR-out"), ("bacc", "Balanced acc.")]):
            col.metric(lab, f"{100 * mt[k]:.1f}")
        cols[4].metric("Training", f"{run.get('fit_seconds', 0):.0f} s")
        st.success(f"Stored as run `{shown.run_id}`. See Latent space, Evaluate and Explain.")
        for note in run.get("notes", []):
            st.warning(note)
