"""Explain: Integrated Gradients and GradCAM of the score through a KDE detector."""
import streamlit as st

from ocvis.ui.common import sidebar, user_errors
from ocvis.ui.explain import (HEAD_NAMES, SOURCES, explanation_grid, heatmaps, pick_samples,
                              png_bytes)
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
                    format_func=lambda h: HEAD_NAMES.get(h, h))
with user_errors():
    layers = [name for name, _, _ in method.cam_layers()]
if layers:
    from ocvis.explain import default_cam_layer

    default_layer = default_cam_layer(method.cam_layers())
    layer = c5.selectbox("GradCAM layer", layers, index=layers.index(default_layer),
                         key="explain_layer", help="default: deepest convolution with a map "
                                                   "of at least 8x8")
else:
    layer = None
    c5.caption("GradCAM needs convolution layers (deep methods only).")
steps = c6.select_slider("IG steps", [16, 32, 64, 128, 256], value=128, key="explain_steps")

with user_errors():
    samples = pick_samples(run, source, int(n))
if not samples:
    st.info("Nothing selected for this run: select points on the Latent space page, or "
            "choose another source.")
    st.stop()
with user_errors():
    res = heatmaps(run["id"], tuple(samples), head, layer, int(steps))
img = explanation_grid(res)
st.image(img, caption="image | Integrated Gradients | GradCAM" if res["cam"] is not None
         else "image | Integrated Gradients", width="content")
worst = float(res["completeness"].max())
st.caption(f"Scores: {', '.join(f'{s:.3f}' for s in res['score'])} · IG completeness error "
           f"≤ {100 * worst:.1f} %")
st.download_button("Download PNG", png_bytes(img), file_name=f"explain-{run['id']}.png",
                   mime="image/png")
