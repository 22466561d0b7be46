"""Shallow baselines of the ICS feature-learning paper (Sec. 4.1.3), each + OC-SVM.

* ``original``: raw pixels (784 features for MNIST / Fashion-MNIST, 3072 for CIFAR-10).
* ``pca``: the first 64 principal components of the training images.
* ``hog``: scikit-image HOG, 9 orientations, 8x8-pixel cells, 2x2-cell blocks, which gives
  the paper's lengths: 144 on 28 x 28 grey images and 324 on 32 x 32 RGB ones.

Choice: the paper works on the original 28 x 28 grey images, our tasks hold them padded to
32 x 32, so ``crop_border=-1`` (auto) removes the 2-pixel padding of 1-channel images
before computing features (RGB images are used whole). Set 0 to keep the padding.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ocvis.methods.base import DetectorConfig, FeatureMethod, option

PAPER = "Schlachter et al. 2019, One-Class Feature Learning Using Intra-Class Splitting"
PAPER_KEY = "ics_feature_learning"


@dataclass
class ShallowConfig(DetectorConfig):
    crop_border: int = option(-1, "pixels cropped from each side before the features "
                                  "(-1 = auto: 2 for grey 32x32 images = MNIST padding)",
                              min=-1, max=8)


@dataclass
class PCAConfig(ShallowConfig):
    n_components: int = option(64, "principal components (paper: 64)", min=1, max=3072)


def _crop(x: torch.Tensor, border: int) -> torch.Tensor:
    if border == -1:
        border = 2 if x.shape[1] == 1 else 0
    return x[:, :, border:x.shape[2] - border, border:x.shape[3] - border] if border else x


class _PixelFeatures(torch.nn.Module):
    """Crop + flatten (+ an optional fixed linear map): differentiable shallow features."""

    def __init__(self, border: int, mean=None, components=None) -> None:
        super().__init__()
        self.border = border
        self.register_buffer("mean", None if mean is None else torch.as_tensor(mean))
        self.register_buffer("components",
                             None if components is None else torch.as_tensor(components))

    def forward(self, x):
        f = _crop(x, self.border).flatten(1).to(torch.float64)
        if self.components is not None:
            f = (f - self.mean) @ self.components.T
        return f


class Original(FeatureMethod):
    """Raw pixels + OC-SVM."""

    name = "original"
    title = "Original pixels + OC-SVM"
    paper = PAPER
    paper_key = PAPER_KEY
    paper_label = "Original"
    table_order = 3
    Config = ShallowConfig

    def _embed(self, x):
        return _crop(x, self.config.crop_border).flatten(1).numpy().astype(np.float64)

    def torch_features(self):
        return _PixelFeatures(self.config.crop_border)


class PCA(FeatureMethod):
    """First 64 PCA components + OC-SVM."""

    name = "pca"
    title = "PCA (64) + OC-SVM"
    paper = PAPER
    paper_key = PAPER_KEY
    paper_label = "PCA"
    table_order = 4
    Config = PCAConfig

    def _fit_features(self, x, hooks):
        from sklearn.decomposition import PCA as SkPCA

        flat = _crop(x, self.config.crop_border).flatten(1).numpy().astype(np.float64)
        k = min(self.config.n_components, flat.shape[0], flat.shape[1])
        p = SkPCA(n_components=k, random_state=self.config.seed).fit(flat)
        self.mean_ = p.mean_
        self.components_ = p.components_

    def _embed(self, x):
        flat = _crop(x, self.config.crop_border).flatten(1).numpy().astype(np.float64)
        return (flat - self.mean_) @ self.components_.T

    def torch_features(self):
        return _PixelFeatures(self.config.crop_border, self.mean_, self.components_)

    def _net_state(self):
        return {"mean": torch.from_numpy(self.mean_), "components": torch.from_numpy(self.components_)}

    def _load_net_state(self, sd):
        self.mean_ = sd["mean"].numpy()
        self.components_ = sd["components"].numpy()


class HOG(FeatureMethod):
    """Histogram of oriented gradients (Dalal & Triggs 2005) + OC-SVM."""

    name = "hog"
    title = "HOG + OC-SVM"
    paper = PAPER
    paper_key = PAPER_KEY
    paper_label = "HOG"
    table_order = 5
    Config = ShallowConfig
    explain_heads = ()  # scikit-image's HOG is not differentiable

    def _embed(self, x):
        from skimage.feature import hog

        imgs = _crop(x, self.config.crop_border).permute(0, 2, 3, 1).numpy()
        rgb = imgs.shape[-1] == 3
        feats = [hog(im if rgb else im[..., 0], orientations=9, pixels_per_cell=(8, 8),
                     cells_per_block=(2, 2), block_norm="L2-Hys",
                     channel_axis=-1 if rgb else None) for im in imgs]
        return np.asarray(feats, dtype=np.float64)
