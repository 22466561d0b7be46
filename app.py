"""ocvis: overview page of the dashboard (`streamlit run app.py`)."""
import streamlit as st

from ocvis.ui.common import set_task_config, sidebar
from ocvis.ui.jobs import job_manager, live_job, queue_summary
from ocvis.ui.runs import run_store, set_current_run

st.set_page_config(page_title="ocvis", page_icon="🔎", layout="wide")

st.title("ocvis — deep one-class classification")
st.markdown(
    "Load images and pick the **normal** class (*Data*), split it into typical and atypical "
    "samples (*Split*), train a one-class method with live loss curves (*Train*), look at "
    "its latent space, its scores and why a sample looks abnormal.")

import os  # noqa: E402

DEMO_TASK = {"dataset": "digits", "protocol": "one-class", "normal": [0], "n_train": None,
             "ratio": 10.0, "seed": 0}
DEMO_PRESET = os.environ.get("OCVIS_DEMO_PRESET", "cpu")  # tests: "tiny"
left, right = st.columns([2, 1])
with left:
    st.subheader("Demo")
    st.markdown("Runs the whole flow on the bundled digits (class 0 normal) with the `cpu` "
                "preset: the intra-class split, then ICS training and evaluation.")
    if st.button("Run the digits demo", type="primary"):
        set_task_config(DEMO_TASK)
        jm = job_manager()
        split_job = jm.submit_split(DEMO_TASK, DEMO_PRESET)
        train_job = jm.submit_experiment(DEMO_TASK, "ics", DEMO_PRESET)
        st.session_state["split_job"] = split_job.id
        st.session_state["demo_jobs"] = [split_job.id, train_job.id]
        st.session_state.setdefault("train_jobs", []).append(train_job.id)
        set_current_run(train_job.run_id)
    demo = [job_manager().get(j) for j in st.session_state.get("demo_jobs", [])]
    demo = [j for j in demo if j is not None]
    if demo:
        current = next((j for j in demo if not j.done), demo[-1])
        live_job(current.id, "demo")
        if all(j.done for j in demo):
            run = run_store().read(demo[-1].run_id)
            if run.get("status") == "done":
                st.success(f"Demo finished: AUROC {100 * run['metrics']['auroc']:.1f} — open "
                           "*Latent space*, *Evaluate* or *Explain*.")
with right:
    from ocvis.train import device_description, resolve_device

    st.subheader("This machine")
    dev = resolve_device()
    st.metric("Device", device_description(dev) if dev.type != "cpu" else "CPU")
    if dev.type == "cpu":
        st.caption(f"{os.cpu_count()} cores; training jobs use "
                   f"{job_manager().torch_threads} torch thread(s) so the server stays "
                   "responsive")
    queue_summary()
sidebar()

from ocvis.data import describe_datasets  # noqa: E402  (fast: no dataset is read)

st.subheader("Datasets")
st.dataframe(describe_datasets(), hide_index=True, width="stretch")

st.subheader("Methods")
from ocvis.methods import describe_methods  # noqa: E402

st.dataframe(describe_methods(), hide_index=True, width="stretch", key="overview-methods",
             column_config={"what": st.column_config.TextColumn(width="large"),
                            "paper": st.column_config.TextColumn(width="medium")})
st.caption("Every method trains on the Train page and opens in Latent space, Evaluate and "
           "Explain; a run stores all the scores listed (the first is the primary one).")

st.subheader("Recent runs")
runs = run_store().list()[:8]
if runs:
    st.dataframe([{"run": r["id"], "method": r.get("method"), "task": r.get("task_name"),
                   "status": r.get("status"),
                   "AUROC": round(100 * r["metrics"]["auroc"], 1)
                   if isinstance(r.get("metrics"), dict) and r["metrics"].get("auroc") is not None
                   else None} for r in runs], hide_index=True, width="stretch")
else:
    st.caption("No runs yet.")
