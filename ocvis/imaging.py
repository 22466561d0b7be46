"""Image array helpers shared by the library and the UI (no Streamlit here)."""
from __future__ import annotations

import numpy as np


def to_hwc_float(x) -> np.ndarray:
    """``N x C x H x W`` (tensor / array, floats in [0, 1] or uint8) -> ``N x H x W x 3``."""
    a = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
    if a.ndim == 3:
        a = a[None]
    a = a.astype(np.float64) / 255.0 if a.dtype == np.uint8 else a.astype(np.float64)
    a = a.transpose(0, 2, 3, 1)
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    return a
