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
class HOGConfig(ShallowConfig):
    cells_per_block: int = option(2, "HOG cells per block side (feature-learning paper: 2, "
                                     "which gives its 144 / 324 features)", min=1, max=4)


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
    Config = HOGConfig
    explain_heads = ()  # scikit-image's HOG is not differentiable

    def _embed(self, x):
        from skimage.feature import hog

        imgs = _crop(x, self.config.crop_border).permute(0, 2, 3, 1).numpy()
        rgb = imgs.shape[-1] == 3
        feats = [hog(im if rgb else im[..., 0], orientations=9, pixels_per_cell=(8, 8),
                     cells_per_block=(self.config.cells_per_block,) * 2,
                     block_norm="L2-Hys",
                     channel_axis=-1 if rgb else None) for im in imgs]
        return np.asarray(feats, dtype=np.float64)


# ----------------------------------------------------------- end-to-end ICS paper baselines
E2E_PAPER = "Schlachter, Liao, Yang 2019, Deep One-Class Classification Using Intra-Class Splitting"
E2E_KEY = "ics_end_to_end"


@dataclass
class E2EShallowConfig(ShallowConfig):
    nu: float = option(0.15, "OC-SVM nu (end-to-end paper Sec. 3.1: 0.15)", min=0.001,
                       max=1.0)


@dataclass
class E2EHOGConfig(HOGConfig):
    nu: float = option(0.15, "OC-SVM nu (end-to-end paper: 0.15)", min=0.001, max=1.0)
    cells_per_block: int = option(3, "HOG cells per block side (end-to-end paper: 3)",
                                  min=1, max=4)


@dataclass
class IForestConfig(ShallowConfig):
    detector: str = option("iforest", "one-class detector on the pixels",
                           choices=("iforest", "ocsvm", "kde", "gde"))


class PixelOCSVM(Original):
    """Raw pixels + OC-SVM with the end-to-end paper's nu = 0.15 (Table 1's OCSVM)."""

    name = "ocsvm"
    title = "OC-SVM on raw pixels (nu = 0.15)"
    paper = E2E_PAPER
    paper_key = E2E_KEY
    paper_label = "OCSVM"
    paper_also = {"clad": "OCSVM"}
    table_order = 32
    Config = E2EShallowConfig


class PixelIForest(Original):
    """Isolation Forest on raw pixels (Table 1's IF)."""

    name = "iforest"
    title = "Isolation Forest on raw pixels"
    paper = E2E_PAPER
    paper_key = E2E_KEY
    paper_label = "IF"
    table_order = 33
    Config = IForestConfig
    explain_heads = ("kde",)


class HOGE2E(HOG):
    """HOG with the end-to-end paper's settings (9 orientations, 8 x 8 pixels per cell,
    3 x 3 cells per block) + OC-SVM (nu = 0.15)."""

    name = "hog-e2e"
    title = "HOG (3 x 3 blocks) + OC-SVM (nu = 0.15)"
    paper = E2E_PAPER
    paper_key = E2E_KEY
    paper_label = "HOG"
    table_order = 34
    Config = E2EHOGConfig
