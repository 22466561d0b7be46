"""Latent space: 2-D projections of a run's features in the paper's four groups."""
import numpy as np
import streamlit as st

from ocvis.projection import GROUP_NAMES, point_values, run_latents
from ocvis.ui.common import sidebar, user_errors
from ocvis.ui.figures import latent_scatter
from ocvis.ui.images import grid
from ocvis.ui.jobs import job_manager, live_job
from ocvis.ui.runs import arrays, finished_runs, run_picker, run_store, run_task

st.set_page_config(page_title="ocvis · Latent space", layout="wide")
st.title("Latent space")
st.caption("Feature-learning paper, Fig. 3: typical normal (green) and atypical normal "
           "(yellow) training samples, test normal (grey) and test abnormal (red).")
runs = finished_runs()
if not runs:
    sidebar()
    st.info("No finished run yet: train one on the Train page.")
    st.stop()

c1, c2, c3, c4 = st.columns([3, 1, 1, 1])
with c1:
    run = run_picker("Run", "latent_run", runs)
sidebar(run)
method = c2.selectbox("Projection", ["umap", "pca", "tsne"], key="latent_proj",
                      format_func=str.upper)
with user_errors():
    first_values = point_values(arrays(run["id"]))
color_by = c3.selectbox("Colour", ["four groups", *first_values], key="latent_color",
                        help="the paper's four groups, a score of the run (anomaly = "
                             "−normality), a per-sample value the method stores, or the "
                             "images' true classes")
compare = c4.checkbox("Compare two runs", key="latent_compare",
                      help="e.g. closeness only (cls) vs ICS, as in the paper's Fig. 3")
chosen = [run]
if compare:
    others = [r for r in runs if r["id"] != run["id"]]
    if others:
        chosen.append(run_picker("Second run", "latent_run2", others, default=others[0]["id"]))
    else:
        st.info("Only one finished run: train another (e.g. `cls`) to compare.")


def projection_or_job(r: dict):
    """Cached coordinates, else compute (PCA inline; UMAP / t-SNE as a background job)."""
    from ocvis.projection import cached_projection

    store = run_store()
    name_prefix = f"proj-{method}-"
    cached = [p for p in store.path(r["id"]).glob(f"{name_prefix}*.npy")]
    if cached or method == "pca":
        with user_errors(), st.spinner("projecting…"):
            return cached_projection(store, r["id"], method, seed=int(r.get("seed", 0)))
    jm = job_manager()
    key = f"proj-job-{r['id']}-{method}"
    job = jm.get(st.session_state.get(key, ""))
    if job is None or job.status in ("failed", "cancelled"):
        if job is not None and job.status == "failed":
            st.error(f"The projection failed: {job.error}")
        job = jm.submit_projection(r["id"], method, seed=int(r.get("seed", 0)))
        st.session_state[key] = job.id
    if job.status == "done":
        return cached_projection(store, r["id"], method, seed=int(r.get("seed", 0)))
    live_job(job.id, f"proj-{r['id'][-4:]}")
    return None


cols = st.columns(len(chosen))
selected_rows = {}
for col, r in zip(cols, chosen):
    with col:
        with user_errors():
            arr = arrays(r["id"])
            z, group, index = run_latents(arr)
        xy = projection_or_job(r)
        if xy is None:
            continue
        n_tr = len(arr["train_latent"]) if "y_train_hidden" not in arr else 0
        score = np.concatenate([arr["train_scores"][:n_tr], arr["test_scores"]])
        vals = point_values(arr).get(color_by)
        fig = latent_scatter(xy, group, color_by="values" if vals is not None else "group",
                             values=None if vals is None else vals[0],
                             categorical=bool(vals is not None and vals[1]),
                             value_label=color_by,
                             value_names=r.get("class_names") if color_by == "true class"
                             else None,
                             title=f"{r.get('method')} · {r.get('task_name')}")
        ev = st.plotly_chart(fig, width="stretch", key=f"scatter-{r['id']}",
                             on_select="rerun", selection_mode=("points", "box", "lasso"))
        pts = (ev or {}).get("selection", {}).get("points", []) if ev else []
        rows = sorted({int(fig.data[p["curve_number"]].customdata[p["point_index"]])
                       for p in pts if "curve_number" in p and "point_index" in p})
        selected_rows[r["id"]] = (rows, group, index, score, n_tr)
        nmi = (r.get("column_nmi") or {}).get(color_by)
        if nmi is not None:
            st.caption(f"{color_by} against the true classes of the training images: "
                       f"NMI {nmi:.3f} (1 = the same grouping, 0 = unrelated)")

st.subheader("Selection")
sel_run = run["id"]
rows, group, index, score, n_tr = selected_rows.get(sel_run, ([], None, None, None, 0))
if not rows:
    st.caption("Select points on the (first) scatter with a click, box or lasso to see them "
               "here; they can then be explained on the Explain page.")
    st.stop()
task = run_task(sel_run)
rows = rows[:48]
imgs, caps, picks = [], [], []
for row in rows:
    g, i = int(group[row]), int(index[row])
    is_train = g in (0, 1)
    x = task.x_train[i] if is_train else task.x_test[i]
    imgs.append(grid(x[None], ncols=1, scale=3, pad=0))
    caps.append(f"{GROUP_NAMES[g].split(' (')[0]} · anomaly {-score[row]:.3f}")
    picks.append(["train" if is_train else "test", i])
st.session_state["ocvis_selected"] = {"run": sel_run, "samples": picks}
st.image(imgs, caption=caps, width=84)
st.caption(f"{len(picks)} selected sample(s) — open the Explain page to see why.")
