"""Explain-page helpers: choose samples, compute heatmaps (cached), build the image grid."""
from __future__ import annotations

import io

import numpy as np
import streamlit as st

from ocvis.errors import OcvisError
from ocvis.explain import Explainer, normalise_heat, overlay
from ocvis.imaging import to_hwc_float
from ocvis.ui.images import grid_hwc
from ocvis.ui.runs import arrays, run_method, run_task

HEAD_NAMES = {"kde": "KDE on the features (two-stage paper)",
              "own": "the method's own detector / network"}
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


@st.cache_data(show_spinner="Computing Integrated Gradients and GradCAM…", max_entries=16)
def heatmaps(run_id: str, samples: tuple, head: str, layer: str | None, n_steps: int):
    """IG and GradCAM for the samples (cached per run, samples and settings)."""
    method = run_method(run_id)
    task = run_task(run_id)
    import torch

    x = torch.stack([task.x_train[i] if s == "train" else task.x_test[i] for s, i in samples])
    e = Explainer(method, head)
    attr, delta, score, base = e.integrated_gradients(x, n_steps=n_steps)
    cam = e.gradcam(x, layer) if e.layers else None
    rel = (delta.abs() / (score - base).abs().clamp_min(1e-12)).numpy()
    return {"x": x.numpy(), "ig": attr.numpy(), "cam": None if cam is None else cam.numpy(),
            "score": score.numpy(), "completeness": rel,
            "layers": [n for n, _, _ in e.layers]}


def explanation_grid(res: dict, scale: int = 4) -> np.ndarray:
    """Rows of image | IG overlay | GradCAM overlay."""
    x = res["x"]
    img = np.clip(np.rint(to_hwc_float(x) * 255), 0, 255).astype(np.uint8)
    img = img.repeat(scale, 1).repeat(scale, 2)
    cols = [img, overlay(x, normalise_heat(res["ig"]), scale=scale)]
    if res["cam"] is not None:
        cols.append(overlay(x, normalise_heat(res["cam"]), scale=scale))
    tiles = np.stack(cols, 1).reshape(-1, *img.shape[1:])
    return grid_hwc(tiles, ncols=len(cols), pad=3)


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()
