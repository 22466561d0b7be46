"""Image grids built on the server as one picture (fast to send, no per-image widgets)."""
from __future__ import annotations

import numpy as np

from ocvis.imaging import to_hwc_float


def to_hwc_uint8(x) -> np.ndarray:
    """``N x C x H x W`` floats in [0, 1] or uint8 (tensor or array) -> ``N x H x W x 3``."""
    a = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
    if a.dtype == np.uint8:
        a = a[None] if a.ndim == 3 else a
        a = a.transpose(0, 2, 3, 1)
        return np.repeat(a, 3, axis=-1) if a.shape[-1] == 1 else a
    return np.clip(np.rint(to_hwc_float(a) * 255.0), 0, 255).astype(np.uint8)


def grid(x, ncols: int = 10, pad: int = 2, scale: int = 2, pad_value: int = 255) -> np.ndarray:
    """Tile images into one ``H x W x 3`` uint8 picture, each image up-scaled by ``scale``."""
    imgs = to_hwc_uint8(x)
    return grid_hwc(imgs, ncols, pad, scale, pad_value)


def grid_hwc(imgs: np.ndarray, ncols: int = 10, pad: int = 2, scale: int = 1,
             pad_value: int = 255) -> np.ndarray:
    """Tile ``N x H x W x 3`` uint8 images."""
    n = len(imgs)
    if n == 0:
        return np.full((8, 8, 3), pad_value, np.uint8)
    if scale > 1:
        imgs = imgs.repeat(scale, axis=1).repeat(scale, axis=2)
    h, w = imgs.shape[1:3]
    ncols = max(1, min(ncols, n))
    nrows = (n + ncols - 1) // ncols
    out = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, 3), pad_value, np.uint8)
    for i, im in enumerate(imgs):
        r, c = divmod(i, ncols)
        out[pad + r * (h + pad): pad + r * (h + pad) + h,
            pad + c * (w + pad): pad + c * (w + pad) + w] = im
    return out
