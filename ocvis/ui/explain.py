"""Explain-page helpers: choose samples, compute heatmaps (cached), build the image grid."""
from __future__ import annotations

import io
import threading

import numpy as np
import streamlit as st

from ocvis.errors import OcvisError
from ocvis.explain import Explainer, colorbar, overlay, scale_heat
from ocvis.imaging import to_hwc_float
from ocvis.ui.images import grid_hwc
from ocvis.ui.runs import arrays, run_method, run_task

HEAD_NAMES = {"kde": "KDE on the features (two-stage paper)",
              "own": "the method's own detector / network"}


def head_name(method, head: str) -> str:
    """How the Explain page names ``head``: the method's own name for it, else the common
    one ("kde", "own"), else the head itself."""
    return method.explain_head_names.get(head) or HEAD_NAMES.get(head, head)


SOURCES = {"anomalous": "Most anomalous test images", "atypical": "Most atypical training images",
           "selected": "Selected on the Latent space page", "normal": "Most normal test images"}


def pick_samples(run: dict, source: str, n: int) -> list[tuple[str, int]]:
    """``[(split, index)]`` of the samples to explain."""
    arr = arrays(run["id"])
    missing = [k for k in ("test_scores", "train_scores") if k not in arr]
    if missing:
        raise OcvisError(f"run {run['id']} has no stored {', '.join(missing)} (its arrays.npz "
                         "is missing or incomplete): train it again")
    if source == "anomalous":
        return [("test", int(i)) for i in np.argsort(arr["test_scores"], kind="stable")[:n]]
    if source == "normal":
        return [("test", int(i)) for i in np.argsort(-arr["test_scores"], kind="stable")[:n]]
    if source == "atypical":
        sim = arr.get("split_similarity")
        if sim is None:  # no split: lowest training score instead
            return [("train", int(i)) for i in np.argsort(arr["train_scores"])[:n]]
        return [("train", int(i)) for i in np.argsort(sim, kind="stable")[:n]]
    sel = st.session_state.get("ocvis_selected") or {}
    if sel.get("run") != run["id"]:
        return []
    return [(s, int(i)) for s, i in sel.get("samples", [])][:n]


TARGETS = {"auto": "anomaly score if flagged abnormal, else normality score",
           "normality": "normality score (what makes it look normal)",
           "anomaly": "anomaly score (what makes it look abnormal)"}


@st.cache_resource(max_entries=16)
def model_lock(run_id: str) -> threading.RLock:
    """One lock per run: its model object is shared by every session (``run_method`` is a
    cached resource), and GradCAM's temporary layer hooks of one explanation would fire in
    another's forward pass if two ran on it at once (two tabs, or a rerun that starts
    while the previous one is still inside the computation)."""
    return threading.RLock()


@st.cache_data(show_spinner="Scoring the training images through this head…",
               max_entries=16)
def head_reference(run_id: str, head: str) -> dict:
    """The explained head's own decision scale, from its scores on the run's training
    images: the threshold below which it flags an image (their 10 % quantile, the paper's
    nu) and the spread (interquartile range) that gradients are compared with."""
    method = run_method(run_id)
    task = run_task(run_id)
    with model_lock(run_id):
        s = Explainer(method, head).score(task.x_train[:4000]).numpy()
    q10, q25, q75 = np.percentile(s, [10, 25, 75])
    return {"threshold": float(q10), "spread": float(q75 - q25) or float(np.std(s)) or 1.0}


@st.cache_data(show_spinner="Computing Integrated Gradients and GradCAM…", max_entries=16)
def heatmaps(run_id: str, samples: tuple, head: str, layer: str | None, n_steps: int,
             target: str = "auto"):
    """IG and GradCAM for the samples (cached per run, samples and settings), with the
    GradCAM layers whose maps are not constant and the checks of :meth:`Explainer.explain`."""
    method = run_method(run_id)
    task = run_task(run_id)
    import torch

    x = torch.stack([task.x_train[i] if s == "train" else task.x_test[i] for s, i in samples])
    with model_lock(run_id):
        return _heatmaps(run_id, method, x, head, layer, n_steps, target)


def _heatmaps(run_id, method, x, head, layer, n_steps, target) -> dict:
    e = Explainer(method, head)
    layers = e.informative_layers(x) if e.layers else []
    if layer not in layers:  # the deepest informative one with a map of 8 x 8 or more
        big = [n for n, _, size in e.layers if n in layers and size >= 8]
        layer = big[-1] if big else (layers[-1] if layers else None)
    if e.layers and layer is None:
        e.layers = []  # no layer shows anything for these images
    ref = head_reference(run_id, head)
    res = e.explain(x, threshold=ref["threshold"], target=target, n_steps=n_steps,
                    layer=layer, score_spread=ref["spread"])
    res["threshold"] = ref["threshold"]
    res.update(layers=layers, layer=layer)
    return res


def explanation_grid(res: dict, scale: int = 4) -> tuple[np.ndarray, dict]:
    """Rows of image | IG overlay | GradCAM overlay, each map kind on one colour scale for
    all rows (a colour bar at the right); returns the picture and the scales' tops."""
    x = res["x"]
    img = np.clip(np.rint(to_hwc_float(x) * 255), 0, 255).astype(np.uint8)
    img = img.repeat(scale, 1).repeat(scale, 2)
    ig, ig_top = scale_heat(res["ig"])
    cols, tops = [img, overlay(x, ig, scale=scale)], {"ig": ig_top}
    if res["cam"] is not None:
        cam, cam_top = scale_heat(res["cam"])
        cols.append(overlay(x, cam, scale=scale))
        tops["cam"] = cam_top
    tiles = np.stack(cols, 1).reshape(-1, *img.shape[1:])
    grid = grid_hwc(tiles, ncols=len(cols), pad=3)
    bar = colorbar(grid.shape[0] - 6)
    pad = np.full((grid.shape[0], bar.shape[1] + 9, 3), 255, np.uint8)
    pad[3:3 + bar.shape[0], 6:6 + bar.shape[1]] = bar
    return np.concatenate([grid, pad], 1), tops


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()
