"""Intra-class splitting of the normal class into typical / atypical samples.

Implements the split of Schlachter et al., 2019, "One-Class Feature Learning
Using Intra-Class Splitting" (Sec. 3.2 and 3.4.2): an autoencoder reconstructs
every normal training sample, the similarity between ``x`` and ``x_hat`` is
measured (SSIM by default, see :mod:`ocvis.ssim`), and the
``floor(rho / 100 * N)`` samples with the LOWEST similarity are declared
"atypical"; the rest are "typical".

Ties are broken deterministically by a stable sort: among equal similarities
the sample with the lower index counts as less similar (becomes atypical first).
"""

from __future__ import annotations

import logging
import math
import numbers
import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

import numpy as np
import torch

from ocvis.ssim import ssim

logger = logging.getLogger(__name__)

__all__ = ["SplitResult", "split", "split_from_similarity", "n_atypical",
           "reconstruction_quality"]
#: reconstructions whose contrast (per-image standard deviation) is below this fraction of
#: the inputs' are "nearly constant": a split by similarity to them says little
FLAT_CONTRAST = 0.3

Metric = Literal["ssim", "mse"]
_METRICS = ("ssim", "mse")


def _check_rho(rho: float) -> float:
    if isinstance(rho, bool) or not isinstance(rho, numbers.Real):
        raise ValueError(f"rho must be a real number in [0, 100), got {rho!r}")
    rho = float(rho)
    if not (0.0 <= rho < 100.0):  # also rejects NaN
        raise ValueError(f"rho must be in [0, 100) (percent of atypical samples), got {rho}")
    return rho


def n_atypical(rho: float, n: int) -> int:
    """Number of atypical samples, ``floor(rho / 100 * n)``, computed exactly.

    The decimal value of ``rho`` is used (``Fraction(repr(rho))``) so that e.g.
    rho=29, n=100 gives 29, not 28 as naive float arithmetic would.
    """
    rho = _check_rho(rho)
    return math.floor(Fraction(repr(rho)) * n / 100)


@dataclass(frozen=True, eq=False)
class SplitResult:
    """Outcome of an intra-class split (arrays are read-only).

    Attributes:
        similarity: float64 (N,), higher = reconstruction more similar to input
            (SSIM, or -MSE for ``metric="mse"``).
        atypical: bool (N,), True for the ``floor(rho/100*N)`` least similar samples.
        threshold: similarity at the boundary = lowest similarity among the
            typical samples.  Atypical samples have ``similarity <= threshold``,
            typical ones ``>= threshold``; without ties ``atypical == (similarity
            < threshold)``.
        rho: percentage of atypical samples requested, in [0, 100).
        metric: "ssim" or "mse".
    """

    similarity: np.ndarray
    atypical: np.ndarray
    threshold: float
    rho: float
    metric: str
    # Stable ascending order of `similarity`, cached so with_rho() needs no re-sort.
    _order: np.ndarray = field(repr=False)

    @property
    def typical(self) -> np.ndarray:
        """Boolean mask of typical samples (``~atypical``)."""
        return ~self.atypical

    @property
    def n_atypical(self) -> int:
        """Number of atypical samples."""
        return int(self.atypical.sum())

    def with_rho(self, rho: float) -> SplitResult:
        """Re-threshold the stored similarities at a new ``rho`` (no recomputation)."""
        return _split_sorted(self.similarity, self._order, rho, self.metric)


def _split_sorted(similarity: np.ndarray, order: np.ndarray, rho: float, metric: str) -> SplitResult:
    n = similarity.shape[0]
    k = n_atypical(rho, n)
    if k == 0:
        warnings.warn(
            f"rho={rho} with N={n} samples gives zero atypical samples "
            f"(need rho >= {100.0 / n:.4g} for at least one)",
            UserWarning,
            stacklevel=3,
        )
    atypical = np.zeros(n, dtype=np.bool_)
    atypical[order[:k]] = True
    atypical.setflags(write=False)
    # rho < 100 guarantees k < n, so order[k] exists.
    threshold = float(similarity[order[k]])
    return SplitResult(
        similarity=similarity,
        atypical=atypical,
        threshold=threshold,
        rho=float(rho),
        metric=metric,
        _order=order,
    )


def split_from_similarity(similarity: np.ndarray | torch.Tensor, rho: float = 10.0, metric: str = "ssim") -> SplitResult:
    """Split given precomputed per-sample similarities (higher = more similar)."""
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}")
    _check_rho(rho)
    if isinstance(similarity, torch.Tensor):
        similarity = similarity.detach().cpu().numpy()
    sim = np.array(similarity, dtype=np.float64)  # copy: the result owns its data
    if sim.ndim != 1:
        raise ValueError(f"similarity must be 1-D (one value per sample), got shape {sim.shape}")
    if sim.shape[0] == 0:
        raise ValueError("cannot split an empty set of samples")
    if not np.all(np.isfinite(sim)):
        raise ValueError("similarity contains NaN or infinite values")
    sim.setflags(write=False)
    # Stable sort: equal similarities keep index order, so ties are deterministic.
    order = np.argsort(sim, kind="stable")
    order.setflags(write=False)
    return _split_sorted(sim, order, rho, metric)


def _as_tensor(a: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a.detach()
    return torch.as_tensor(np.asarray(a))


def _neg_mse(x: torch.Tensor, x_hat: torch.Tensor, batch_size: int) -> torch.Tensor:
    parts = []
    for start in range(0, x.shape[0], batch_size):
        d = x[start : start + batch_size].to(torch.float64) - x_hat[start : start + batch_size].to(torch.float64)
        parts.append(-(d * d).flatten(start_dim=1).mean(dim=1))
    return torch.cat(parts)


def split(
    x: np.ndarray | torch.Tensor,
    x_hat: np.ndarray | torch.Tensor,
    rho: float = 10.0,
    metric: str = "ssim",
    *,
    data_range: float = 1.0,
    batch_size: int = 1024,
) -> SplitResult:
    """Split samples ``x`` by how well they are reconstructed by ``x_hat``.

    ``x`` and ``x_hat`` are N x C x H x W (or N x H x W, treated as one channel)
    torch tensors or numpy arrays with values in [0, data_range].  For
    ``metric="ssim"`` similarity is the per-image SSIM (:func:`ocvis.ssim.ssim`
    with Wang et al. defaults); for ``"mse"`` it is ``-MSE`` per image.  The
    ``floor(rho/100*N)`` least similar samples are atypical.
    """
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}")
    _check_rho(rho)
    xt, yt = _as_tensor(x), _as_tensor(x_hat)
    if xt.shape != yt.shape:
        raise ValueError(f"x and x_hat shapes differ: {tuple(xt.shape)} vs {tuple(yt.shape)}")
    if xt.ndim == 3:  # N x H x W greyscale
        xt, yt = xt.unsqueeze(1), yt.unsqueeze(1)
    if xt.ndim != 4:
        raise ValueError(f"x must be N x C x H x W or N x H x W, got shape {tuple(xt.shape)}")
    if xt.shape[0] == 0:
        raise ValueError("cannot split an empty set of samples")
    if yt.device != xt.device:
        yt = yt.to(xt.device)
    with torch.no_grad():
        if metric == "ssim":
            # the exact (float64) path: a split equal to skimage's ranking, and to the splits
            # stored before the faster float32 path existed (it costs ~0.1 s per 4,000 images)
            sim = ssim(xt, yt, data_range=data_range, batch_size=batch_size, exact=True)
        else:
            sim = _neg_mse(xt, yt, batch_size)
    logger.debug("split: N=%d metric=%s rho=%s", xt.shape[0], metric, rho)
    return split_from_similarity(sim, rho, metric)


def reconstruction_quality(x, x_hat, similarity) -> dict:
    """How faithful the splitting autoencoder's reconstructions are: the similarity range
    and the contrast of the reconstructions relative to the inputs (median per-image
    standard deviation ratio). ``flat`` is True when the reconstructions are nearly
    constant (contrast below :data:`FLAT_CONTRAST`), i.e. the split ranks images by their
    similarity to a blur rather than by how typical they are."""
    xt = _as_tensor(x).to(torch.float64).flatten(1)
    yt = _as_tensor(x_hat).to(torch.float64).flatten(1)
    if yt.max() > 1.5:  # stored as uint8
        yt = yt / 255.0
    if xt.max() > 1.5:
        xt = xt / 255.0
    sx, sy = float(xt.std(1).median()), float(yt.std(1).median())
    contrast = sy / sx if sx > 0 else float("nan")
    sim = np.asarray(similarity, dtype=np.float64)
    return {"similarity_min": float(sim.min()), "similarity_median": float(np.median(sim)),
            "similarity_max": float(sim.max()), "contrast": contrast,
            "flat": bool(np.isfinite(contrast) and contrast < FLAT_CONTRAST)}
