"""Train: choose a method and its hyperparameters, start it as a job, watch the curves."""
import streamlit as st

from ocvis.methods import METHODS, available_presets
from ocvis.ui.common import current_task, sidebar, task_config, user_errors
from ocvis.ui.forms import config_form
from ocvis.ui.jobs import job_manager, live_job, queue_summary
from ocvis.ui.runs import run_store, set_current_run, show_run_result

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
presets = available_presets(method_cls.name)  # built-in, then saved by `sweep`
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
# a running training job is always shown (after a reload or from another tab too), else
# this session's newest, else the server's newest
experiments = [j for j in jm.jobs() if j.kind == "experiment"]
running = next((j for j in experiments if j.status == "running"), None)
shown = running or (mine[-1] if mine else None) or (experiments[0] if experiments else None)
if shown is None:
    st.info("Choose a method and press Start. Training runs in the background: you can switch "
            "pages or close the browser, the run is stored when it ends.")
    st.stop()
live_job(shown.id, "train")
waiting = [j for j in jm.queued() if j.kind == "experiment"]
if waiting:
    st.caption("Queued: " + ", ".join(j.title for j in waiting))

if shown.done and shown.run_id:
    show_run_result(run_store().read(shown.run_id))
