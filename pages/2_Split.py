"""Intra-class split: train the splitting autoencoder, then move rho and look at both groups."""
import numpy as np
import streamlit as st

from ocvis.methods.split_ae import SplitAutoencoder
from ocvis.split import reconstruction_quality, split_from_similarity
from ocvis.ui.common import current_task, sidebar, task_config, user_errors
from ocvis.ui.figures import histogram_with_threshold
from ocvis.ui.images import grid
from ocvis.ui.jobs import job_manager, live_job, queue_summary
from ocvis.ui.runs import arrays, latest_run

st.set_page_config(page_title="ocvis · Split", layout="wide")
sidebar()
st.title("Intra-class split")
st.caption("Schlachter et al. 2019, Sec. 3.2: an autoencoder reconstructs every normal "
           "training image; the ρ % with the lowest SSIM to their reconstruction are "
           "*atypical*, the rest *typical*.")
cfg = task_config()
with user_errors():
    task, _ = current_task()
st.markdown(f"Task: **{task.name}** — {len(task.x_train)} training images")

splitter = SplitAutoencoder
c1, c2, c3, c4 = st.columns(4)
presets = list(splitter.presets)
preset = c1.selectbox("Preset", presets, index=presets.index("cpu"),
                      help="cpu: minutes on 2 cores · paper: the full budget · tiny: a smoke test")
epochs = c2.number_input("Autoencoder epochs", min_value=1, max_value=1000, step=1,
                         value=int(splitter.presets[preset]["epochs"]))
metric = c3.selectbox("Similarity", ["ssim", "mse"], help="SSIM as in the paper, or -MSE")
start = c4.button("Train splitting autoencoder", type="primary", width="stretch")
overrides = {"epochs": int(epochs), "similarity": metric}
if start:
    job = job_manager().submit_split(cfg, preset, overrides)
    st.session_state["split_job"] = job.id
queue_summary()

job_id = st.session_state.get("split_job")
job = job_manager().get(job_id) if job_id else None
if job is not None and job.params.get("task") == cfg:
    live_job(job_id, "split")

run = latest_run("split", cfg)
if run is None:
    st.info("No split for this task yet: train the splitting autoencoder above.")
    st.stop()

arr = arrays(run["id"])
sim = arr["similarity"]
rho_default = float(st.session_state.get("ocvis_rho", run.get("rho", 10.0)))
rho = st.slider("ρ: % of the normal training data that is atypical", 0.0, 50.0, rho_default,
                step=0.5, key="split_rho")
st.session_state["ocvis_rho"] = rho  # the Train page's default for ICS
with st.spinner("re-splitting"):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sp = split_from_similarity(sim, rho, metric=run.get("similarity", "ssim"))
m = st.columns(4)
m[0].metric("Typical", int(sp.typical.sum()))
m[1].metric("Atypical", int(sp.atypical.sum()))
m[2].metric("Threshold", f"{sp.threshold:.4f}")
m[3].metric("Autoencoder", f"{run.get('fit_seconds', 0):.0f} s",
            help="reused from the cache" if run.get("pretrain_reused") else None)
if sp.atypical.sum() == 0:
    st.warning("ρ gives no atypical sample: ICS would train with closeness only.")
label = "SSIM" if run.get("similarity", "ssim") == "ssim" else "−MSE"
x = task.x_train
if len(x) != len(sim):
    st.error("This split was computed on other training images; train it again.")
    st.stop()
q = reconstruction_quality(x, arr["recon_uint8"], sim)
r = st.columns(4)
r[0].metric(f"{label} min", f"{q['similarity_min']:.3f}")
r[1].metric(f"{label} median", f"{q['similarity_median']:.3f}")
r[2].metric(f"{label} max", f"{q['similarity_max']:.3f}")
r[3].metric("Reconstruction contrast", f"{100 * q['contrast']:.0f} %",
            help="median per-image standard deviation of the reconstructions, relative to "
                 "the inputs'")
if q["flat"]:
    st.warning(f"The reconstructions are nearly constant (contrast {100 * q['contrast']:.0f} % "
               "of the inputs'): the split ranks images by their similarity to a blur, not "
               "by how typical they are. Train the autoencoder longer (more epochs or the "
               "paper preset).")
st.plotly_chart(histogram_with_threshold(sim, sp.threshold, groups=sp.atypical, xaxis=label),
                width="stretch", key="split-hist")

order = np.argsort(sim, kind="stable")
k = st.slider("Images per gallery", 8, 48, 16, step=8)
g1, g2 = st.columns(2)
with g1:
    st.subheader("Most typical")
    idx = order[::-1][:k]
    st.image([grid(x[i:i + 1], ncols=1, scale=3, pad=0) for i in idx],
             caption=[f"{label} {sim[i]:.3f}" for i in idx], width=72)
with g2:
    st.subheader("Most atypical")
    idx = order[:k]
    st.image([grid(x[i:i + 1], ncols=1, scale=3, pad=0) for i in idx],
             caption=[f"{label} {sim[i]:.3f}" for i in idx], width=72)

st.subheader("Original vs reconstruction (most atypical first)")
n_pairs = min(12, len(order))
idx = order[:n_pairs]
recon = arr["recon_uint8"][idx]
st.image(grid(np.concatenate([(x[idx].numpy() * 255).round().astype(np.uint8), recon]),
              ncols=n_pairs, scale=3),
         caption="top: original · bottom: reconstruction", width="stretch")
