"""Explain: Integrated Gradients and GradCAM of the score through a KDE detector."""
import numpy as np
import streamlit as st

from ocvis.ui.common import sidebar, user_errors
from ocvis.ui.explain import (SOURCES, TARGETS, explanation_grid, head_name, heatmaps,
                              pick_samples, png_bytes)
from ocvis.ui.runs import finished_runs, run_method, run_picker

st.set_page_config(page_title="ocvis · Explain", layout="wide")
st.title("Explain")
st.caption("Two-stage paper, Sec. 3.2.1: a KDE on the learned features makes the normality "
           "score differentiable end to end, so Integrated Gradients and GradCAM show which "
           "pixels make an image look normal or abnormal.")
runs = finished_runs()
if not runs:
    sidebar()
    st.info("No finished run yet: train one on the Train page.")
    st.stop()
c1, c2, c3 = st.columns([3, 2, 1])
with c1:
    run = run_picker("Run", "explain_run", runs)
sidebar(run)
default_src = "selected" if (st.session_state.get("ocvis_selected") or {}).get("run") == \
    run["id"] else "anomalous"
source = c2.selectbox("Samples", list(SOURCES), index=list(SOURCES).index(default_src),
                      format_func=SOURCES.get, key="explain_source")
n = c3.number_input("How many", 1, 32, 8, key="explain_n")
c4, c5, c6 = st.columns(3)
with user_errors():
    method = run_method(run["id"])
heads = list(method.explain_heads)
if not heads:
    st.info(f"{method.title}: its score is not differentiable (e.g. HOG features), so it "
            "cannot be explained by gradients.")
    st.stop()
head = c4.selectbox("Score through", heads, key="explain_head",
                    format_func=lambda h: head_name(method, h))
steps = c6.select_slider("IG steps", [16, 32, 64, 128, 256], value=128, key="explain_steps")

with user_errors():
    samples = pick_samples(run, source, int(n))
if not samples:
    st.info("Nothing selected for this run: select points on the Latent space page, or "
            "choose another source.")
    st.stop()
target = c5.selectbox("Explain", list(TARGETS), key="explain_target",
                      format_func=TARGETS.get,
                      help="auto: for an image the explained score flags as abnormal (below the 10 % "
                           "quantile of its training scores) the map shows what raises its "
                           "anomaly score, otherwise what makes it look normal")
with user_errors():
    res = heatmaps(run["id"], tuple(samples), head, st.session_state.get("explain_layer"),
                   int(steps), target)
c7, _ = st.columns([1, 2])
if res["layers"]:
    layer = c7.selectbox("GradCAM layer", res["layers"], index=res["layers"].index(res["layer"]),
                         key="explain_layer",
                         help="convolution layers whose GradCAM maps of these images are not "
                              "constant; default: the deepest with a map of at least 8 x 8")
elif method.cam_layers():
    c7.caption("No convolution layer gives a non-constant GradCAM map for these images.")
else:
    c7.caption("GradCAM needs convolution layers (deep methods only).")
img, tops = explanation_grid(res)
cols = "image | Integrated Gradients" + (" | GradCAM" if res["cam"] is not None else "")
st.image(img, caption=f"{cols} — one colour scale per column for all rows (bar: 0 at the "
                      "bottom, the top value below)", width="content")
scales = [f"IG: 0 … {tops['ig']:.2e} (|attribution| per pixel)"]
if "cam" in tops:
    scales.append(f"GradCAM ({res['layer']}): 0 … {tops['cam']:.2e}")
st.caption(" · ".join(scales))
rows = [f"{i + 1}: {'anomaly' if e == 'anomaly' else 'normality'} explained, normality score "
        f"{s:.3g}, |gradient| {g:.1e}, total |IG| {t:.1e}" for i, (e, s, g, t) in
        enumerate(zip(res["explained"], res["score"], res["gradient"], res["ig_total"]))]
st.caption(" · ".join(rows) + f" · flagged abnormal below {res['threshold']:.3g}")
flat = np.flatnonzero(res["flat"])
if len(flat):
    st.warning(f"Image(s) {', '.join(str(i + 1) for i in flat)}: the score barely changes with "
               f"the pixels near the image (its gradient is below 1/1000 of the spread of "
               f"the run's scores, {res['spread']:.2e}); GradCAM and gradient maps show "
               "numerical noise here, not evidence. A saturated latent (a sigmoid at 0 or "
               "1) does this.")
worst = float(res["completeness"].max())
st.caption(f"IG completeness error ≤ {100 * worst:.1f} %")
st.download_button("Download PNG", png_bytes(img), file_name=f"explain-{run['id']}.png",
                   mime="image/png")
