"""Data: choose a dataset, a protocol and the normal class(es); look at the samples."""
import numpy as np
import plotly.graph_objects as go
import streamlit as st

from ocvis.data import DATASETS, PROTOCOLS, SCENARIOS, first_per_class
from ocvis.ui.common import (cached_dataset, current_task, set_task_config, sidebar,
                             task_config, user_errors)
from ocvis.ui.images import grid

st.set_page_config(page_title="ocvis · Data", layout="wide")
st.title("Data")
cfg = dict(task_config())


def _init(key: str, value) -> None:
    """Widgets keep their state under a key; a page visit starts from the task config."""
    if key not in st.session_state:
        st.session_state[key] = value


names = list(DATASETS) + ["folder"]
_init("data_dataset", "folder" if cfg["dataset"].startswith("folder:") else cfg["dataset"])
_init("data_protocol", cfg["protocol"])
_init("data_seed", int(cfg.get("seed", 0)))
c1, c2, c3 = st.columns([2, 2, 1])
choice = c1.selectbox("Dataset", names, key="data_dataset",
                      format_func=lambda n: DATASETS[n].title if n in DATASETS else
                      "Folder of images (class sub-folders)")
if choice == "folder":
    with c1.expander("Upload a .zip of images"):
        up = st.file_uploader(r"Class folders (`cats/\*.png`, `dogs/\*.png`), a "
                              r"`{train,test}/<class>/\*` layout, or images in one folder "
                              "(all normal)", type=["zip"], key="data_upload")
        if up is not None and st.session_state.get("data_upload_done") != up.file_id:
            from ocvis.uploads import extract_zip

            with user_errors(), st.spinner("Checking and extracting…"):
                report = extract_zip(up, up.name)
            st.session_state["data_upload_done"] = up.file_id
            st.session_state["data_folder"] = str(report.path)
            st.success(f"{report.images} images in {len(report.classes)} class(es) saved to "
                       f"{report.path}")
            for m in report.messages:
                st.warning(m)
    _init("data_folder", cfg["dataset"][len("folder:"):]
          if cfg["dataset"].startswith("folder:") else "")
    path = c1.text_input("Folder path on the server", key="data_folder",
                         help="<folder>/<class>/*.png, or <folder>/{train,test}/<class>/*")
    if not path:
        st.info("Enter the path of a folder of images.")
        st.stop()
    dataset = f"folder:{path}"
else:
    dataset = choice
protocol = c2.selectbox("Protocol", PROTOCOLS, key="data_protocol",
                        help="one-class: ICS papers · latent-multiclass: CLAD · "
                             "unsupervised: E3Outlier (contaminated, transductive)")
seed = c3.number_input("Seed", min_value=0, step=1, key="data_seed")

with user_errors():
    ds, ds_warnings = cached_dataset(dataset)
for w in ds_warnings:
    st.warning(w)

if dataset != cfg["dataset"]:
    # a new dataset starts from its own defaults: no class or training-set size of the
    # previous one (a "1000 training images" would warn on a 30-image folder)
    cfg["n_train"] = None
    st.session_state["data_ntrain"] = 0
if dataset != cfg["dataset"] or protocol != cfg["protocol"]:
    cfg["normal"] = [0]  # a new dataset or protocol starts from its first class
    for k in ("data_normal", "data_scenario"):
        st.session_state.pop(k, None)
normal_default = cfg["normal"] if isinstance(cfg["normal"], list) else [0]
normal_default = [c for c in normal_default if isinstance(c, int) and c < len(ds.classes)] or [0]
n_train, ratio = cfg.get("n_train"), cfg.get("ratio", 10.0)
if protocol == "latent-multiclass" and SCENARIOS.get(ds.name):
    scen = list(SCENARIOS[ds.name])
    cur = cfg["normal"] if isinstance(cfg["normal"], str) and cfg["normal"] in scen else scen[0]
    _init("data_scenario", cur)
    normal = st.selectbox("Normal scenario (super-category)", scen, key="data_scenario",
                          format_func=lambda s: f"{s}: " + ", ".join(
                              ds.classes[i] for i in SCENARIOS[ds.name][s]))
else:
    label = "Inlier class" if protocol == "unsupervised" else "Normal class(es)"
    _init("data_normal", normal_default[:1] if protocol == "unsupervised" else normal_default)
    normal = st.multiselect(label, list(range(len(ds.classes))), key="data_normal",
                            format_func=lambda i: f"{i}: {ds.classes[i]}",
                            max_selections=1 if protocol == "unsupervised" else None)
    if not normal:
        st.info("Choose at least one normal class.")
        st.stop()
if protocol == "unsupervised":
    _init("data_ratio", float(ratio) if ratio in (5, 10, 15, 20, 25) else 10.0)
    ratio = st.select_slider("Outlier ratio (%)", options=[5.0, 10.0, 15.0, 20.0, 25.0],
                             key="data_ratio")
else:
    _init("data_ntrain", int(n_train or 0))
    n = st.number_input("Training images (0 = all normal training images; the ICS paper "
                        "uses 4000)", min_value=0, step=500, key="data_ntrain",
                        help="The first images of the normal class; with several normal "
                             "classes each gives a share in proportion to its size.")
    n_train = int(n) or None

new_cfg = {"dataset": dataset, "protocol": protocol, "normal": normal, "n_train": n_train,
           "ratio": float(ratio), "seed": int(seed)}
set_task_config(new_cfg)
sidebar()

with user_errors():
    task, task_warnings = current_task(new_cfg)
for w in task_warnings:
    st.warning(w)

s = task.summary()
m = st.columns(4)
m[0].metric("Training images", s["train"])
m[1].metric("Test images", s["test"])
m[2].metric("Test normal", s["test normal"])
m[3].metric("Test abnormal", s["test abnormal"])
if task.transductive:
    st.caption("Unsupervised protocol: the contaminated set is both fitted (without labels) "
               "and scored; the outlier labels are used only for evaluation.")

left, right = st.columns([3, 2])
with left:
    st.subheader("Training samples")
    k = min(60, len(task.x_train))
    # spread over the normal classes (a class-sorted copy would show the first class only)
    pick = first_per_class(task.train_classes, np.arange(len(task.x_train)), k)
    caption = f"{k} of {len(task.x_train)} training images"
    if not task.transductive and len(task.normal_classes) > 1:
        cls, n = np.unique(task.train_classes, return_counts=True)
        caption += " (" + ", ".join(f"{task.class_names[c]} {m}" for c, m in zip(cls, n)) + ")"
    st.image(grid(task.x_train[pick], ncols=12, scale=2), caption=caption)
with right:
    st.subheader("Class counts")
    counts = ds.class_counts()
    fig = go.Figure()
    for split in ("train", "test"):
        fig.add_bar(name=split, x=list(ds.classes), y=counts[split])
    normal_idx = set(task.normal_classes)
    fig.update_layout(barmode="group", height=320, margin=dict(l=10, r=10, t=10, b=10),
                      legend=dict(orientation="h"),
                      xaxis=dict(type="category"))  # digit names "0".."9" are labels, not numbers
    st.plotly_chart(fig, width="stretch")
    st.caption("Normal: " + ", ".join(ds.classes[i] for i in sorted(normal_idx)) +
               f" · source: {ds.source}")
