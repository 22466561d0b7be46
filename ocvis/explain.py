"""Visual explanations of one-class scores (two-stage paper, Sec. 3.2.1 and Fig. 6).

The normality score is made end-to-end differentiable by putting a differentiable detector
on top of the learned features: ``score(x) = KDE(f(x))`` (the paper's choice), or the
method's own detector when it is differentiable (OC-SVM's RBF decision function, GDE's
log-likelihood). Attributions (captum):

* :meth:`Explainer.integrated_gradients`: IG from a black baseline; completeness
  ``sum(attr) = score(x) - score(baseline)`` holds up to the integration error
  (``delta`` is returned to check it).
* :meth:`Explainer.gradcam`: GradCAM on a convolution layer of the encoder, by default the
  deepest one whose map is still at least 8 x 8 (the paper autoencoder's last convolution is
  2 x 2, too coarse), up-sampled bilinearly to the image.

Heatmaps are overlaid on the images on the server (:func:`overlay`).
"""
from __future__ import annotations

import contextlib
import math

import numpy as np
import torch
from torch import nn

from ocvis.detectors import GDE, KDE, OCSVM
from ocvis.errors import DataError

MIN_CAM_SIZE = 8
#: a score whose gradient (L1 over the pixels) is below this fraction of the spread of the
#: run's scores is flat in the pixels: its maps show numerical noise, not evidence
FLAT_GRADIENT = 1e-3


class OCSVMModule(nn.Module):
    """scikit-learn OneClassSVM's RBF decision function in torch:
    ``sum_i alpha_i exp(-gamma ||f - sv_i||^2) - rho``."""

    def __init__(self, svm: OCSVM) -> None:
        super().__init__()
        if getattr(svm, "kernel", "rbf") != "rbf" or getattr(svm, "standardize", False):
            raise DataError("only an RBF OC-SVM on unscaled features is differentiable here")
        m = svm.model_
        self.register_buffer("sv", torch.as_tensor(m.support_vectors_, dtype=torch.float64))
        self.register_buffer("alpha", torch.as_tensor(m.dual_coef_[0], dtype=torch.float64))
        self.register_buffer("rho", torch.as_tensor(float(m.intercept_[0]), dtype=torch.float64))
        self.gamma = float(svm.gamma_)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        f = f.to(torch.float64)
        d2 = (f.pow(2).sum(1, keepdim=True) + self.sv.pow(2).sum(1) - 2 * f @ self.sv.T)
        return torch.exp(-self.gamma * d2.clamp_min(0)) @ self.alpha + self.rho


class GDEModule(nn.Module):
    """Gaussian log-likelihood of :class:`~ocvis.detectors.GDE` in torch."""

    def __init__(self, gde: GDE) -> None:
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(gde.mean_, dtype=torch.float64))
        self.register_buffer("precision", torch.as_tensor(gde.precision_, dtype=torch.float64))
        self.const = float(gde.logdet_ + len(gde.mean_) * math.log(2 * math.pi))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        d = f.to(torch.float64) - self.mean
        return -0.5 * ((d @ self.precision * d).sum(1) + self.const)


def detector_module(detector) -> nn.Module:
    """A differentiable torch version of a fitted detector (KDE, OC-SVM, GDE)."""
    if isinstance(detector, KDE):
        return detector.module_
    if isinstance(detector, OCSVM):
        return OCSVMModule(detector)
    if isinstance(detector, GDE):
        return GDEModule(detector)
    raise DataError(f"the {getattr(detector, 'name', type(detector).__name__)} detector is not "
                    "differentiable; explain through the KDE head instead")


class ScoreModel(nn.Module):
    """``x -> head(features(x))``: one normality score per image."""

    def __init__(self, features: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.features = features
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).to(torch.float64)


class _Signed(nn.Module):
    """``sign * model(x)``: the explainer flips it to explain the anomaly score."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.inner = model
        self.sign = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        return out if self.sign == 1.0 else -out


def completeness_error(delta, score, base_score) -> np.ndarray:
    """IG's completeness error per image: ``|sum(attr) - (score - score(baseline))|`` over
    ``|score - score(baseline)|``, the latter floored at a tenth of the batch's largest
    difference (an image that scores almost like the black baseline would otherwise turn a
    negligible absolute error into a huge relative one)."""
    d = np.abs(np.asarray(delta, np.float64))
    diff = np.abs(np.asarray(score, np.float64) - np.asarray(base_score, np.float64))
    floor = max(0.1 * float(diff.max()) if diff.size else 0.0, 1e-12)
    return d / np.maximum(diff, floor)


def default_cam_layer(layers: list[tuple[str, nn.Module, int]]) -> str:
    """The deepest convolution whose output is at least 8 x 8."""
    ok = [name for name, _, size in layers if size >= MIN_CAM_SIZE]
    if not ok:
        raise DataError("no convolution layer with a map of at least 8 x 8")
    return ok[-1]


class Explainer:
    """IG and GradCAM of a fitted method's normality score through one of its
    ``explain_heads`` (``"kde"``: a KDE on its features, the two-stage paper's choice;
    ``"own"``: its own detector or network), from ``method.score_model(head)``."""

    def __init__(self, method, head: str = "kde") -> None:
        heads = tuple(getattr(method, "explain_heads", ()))
        if not heads:
            raise DataError(f"{method.name} has no differentiable score to explain")
        if head not in heads:
            raise DataError(f"{method.name} cannot be explained through {head!r}; choose one "
                            f"of {', '.join(heads)}")
        self.method = method
        self.head = head
        self.model = _Signed(method.score_model(head)).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.layers = method.cam_layers()

    def _device(self) -> torch.device:
        try:
            return next(self.model.parameters()).device
        except StopIteration:
            return torch.device("cpu")

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """The normality score (whatever is being explained)."""
        with torch.no_grad():
            return self.model.inner(x.to(self._device())).cpu()

    def integrated_gradients(self, x: torch.Tensor, n_steps: int = 64, baseline=None,
                             tolerance: float = 0.05, max_steps: int = 1024):
        """Returns ``(attributions like x, delta per image, score(x), score(baseline))``.

        Adaptive: the number of integration steps doubles from ``n_steps`` (up to
        ``max_steps``) until every image's completeness error, :func:`completeness_error`,
        is within ``tolerance`` (a steep score along the path from the black baseline --
        a sigmoid latent switching -- needs more steps). ``steps_used_`` says how many."""
        from captum.attr import IntegratedGradients

        x = self._check(x).to(self._device())
        base = torch.zeros_like(x) if baseline is None else baseline.to(x)
        s, sb = self.score(x), self.score(base)
        ig = IntegratedGradients(self.model)
        n = max(2, int(n_steps))
        # about 512 network forwards per internal batch: a score that runs the network on
        # several views of each image (E3Outlier's mean over K operations) says how many
        views = max(1, int(getattr(self.model.inner, "views_per_image", 1)))
        per_batch = max(1, 512 // (max(1, len(x)) * views)) * len(x)
        while True:
            attr, delta = ig.attribute(x, baselines=base, n_steps=n,
                                       internal_batch_size=per_batch,
                                       return_convergence_delta=True)
            delta = delta.detach().cpu()
            if completeness_error(delta, s, sb).max() <= tolerance or n >= max_steps:
                break
            n = min(2 * n, max_steps)
        self.steps_used_ = n
        return attr.detach().cpu(), delta, s, sb

    def gradcam(self, x: torch.Tensor, layer: str | None = None) -> torch.Tensor:
        """GradCAM heatmaps ``N x 1 x H x W`` (ReLU of the gradient-weighted map)."""
        from captum.attr import LayerAttribution, LayerGradCam

        if not self.layers:
            raise DataError(f"{self.method.name} has no convolution layers for GradCAM")
        names = [n for n, _, _ in self.layers]
        layer = layer or default_cam_layer(self.layers)
        if layer not in names:
            raise DataError(f"unknown layer {layer!r}; choose one of {', '.join(names)}")
        module = dict((n, m) for n, m, _ in self.layers)[layer]
        x = self._check(x).to(self._device())
        cam = LayerGradCam(self.model, module).attribute(x, relu_attributions=True)
        cam = LayerAttribution.interpolate(cam.to(torch.float32), tuple(x.shape[-2:]),
                                           interpolate_mode="bilinear")
        return cam.detach().cpu()

    def cam_is_informative(self, x: torch.Tensor, layer: str) -> bool:
        """False when the layer's GradCAM maps of ``x`` are all constant (e.g. all zero, or
        a 1 x 1 map up-sampled): such a layer shows nothing and is not offered."""
        cam = self.gradcam(x, layer).flatten(1)
        return bool((cam.max(1).values - cam.min(1).values > 1e-12 *
                     cam.abs().max().clamp_min(1e-30)).any() and cam.abs().max() > 0)

    def informative_layers(self, x: torch.Tensor) -> list[str]:
        """The GradCAM layers whose maps of ``x`` are not constant."""
        return [n for n, _, _ in self.layers if self.cam_is_informative(x, n)]

    def explain(self, x: torch.Tensor, threshold: float | None = None, target: str = "auto",
                n_steps: int = 64, layer: str | None = None,
                score_spread: float | None = None) -> dict:
        """IG and GradCAM of each image's *anomaly* score (``-normality``) if the detector
        calls it abnormal (normality at or below ``threshold``), of its *normality* score
        otherwise (``target="auto"``); ``"normality"`` / ``"anomaly"`` force one.

        Returns arrays for display plus the checks: ``explained`` ("anomaly" / "normality"
        per image), IG ``completeness`` error, and ``flat`` per image when the score barely
        depends on the pixels near the image: the L1 norm of its gradient is below
        :data:`FLAT_GRADIENT` of ``score_spread`` (the spread of the run's scores); GradCAM
        and any gradient map then show numerical noise stretched to full colour. (IG may
        still be large: it integrates from a black image, across a saturated layer's
        transition.)"""
        x = self._check(x)
        score = self.score(x).numpy()
        if target == "auto":
            abnormal = score <= threshold if threshold is not None and np.isfinite(threshold) \
                else np.zeros(len(x), bool)
        elif target in ("anomaly", "normality"):
            abnormal = np.full(len(x), target == "anomaly")
        else:
            raise DataError(f"target must be auto, anomaly or normality, not {target!r}")
        sign = np.where(abnormal, -1.0, 1.0)
        attr, delta, sc, base = self.integrated_gradients(x, n_steps=n_steps)
        # IG is linear in the explained output: IG(-f) = -IG(f)
        ig = attr.numpy() * sign[:, None, None, None]
        rel = completeness_error(delta, sc, base)
        cam = None
        if self.layers:
            cam = np.zeros((len(x), 1, *x.shape[-2:]), np.float32)
            for flip in (False, True):  # GradCAM is not linear: one pass per sign
                idx = np.flatnonzero(abnormal == flip)
                if len(idx):
                    with self._negated(flip):
                        cam[idx] = self.gradcam(x[torch.from_numpy(idx)], layer).numpy()
        total = np.abs(ig).reshape(len(x), -1).sum(1)
        grad = self.gradient_norm(x)
        spread = score_spread if score_spread and score_spread > 0 else \
            float(np.std(score)) or 1.0
        return {"x": x.numpy(), "ig": ig, "cam": cam, "score": score,
                "explained": np.where(abnormal, "anomaly", "normality"),
                "completeness": rel, "ig_steps": self.steps_used_, "ig_total": total,
                "gradient": grad, "flat": grad < FLAT_GRADIENT * spread, "spread": spread}

    def gradient_norm(self, x: torch.Tensor) -> np.ndarray:
        """Per image, the L1 norm of the score's gradient at the image: by how much the
        score can change, to first order, when every pixel moves by its full range."""
        x = self._check(x).to(self._device()).detach().clone().requires_grad_(True)
        with torch.enable_grad():
            out = self.model.inner(x)
            (g,) = torch.autograd.grad(out.sum(), x)
        return g.detach().abs().flatten(1).sum(1).cpu().numpy().astype(np.float64)

    @contextlib.contextmanager
    def _negated(self, flip: bool):
        """Explain ``-score`` inside the block (the anomaly score) when ``flip``."""
        if not flip:
            yield
            return
        self.model.sign = -1.0
        try:
            yield
        finally:
            self.model.sign = 1.0

    @staticmethod
    def _check(x) -> torch.Tensor:
        x = torch.as_tensor(x, dtype=torch.float32)
        if x.ndim != 4:
            raise DataError("explain expects images shaped N x C x H x W")
        return x


# ----------------------------------------------------------------------------- drawing
_CMAP = np.array([[0.0, 0.0, 0.5], [0.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0],
                  [1.0, 0.0, 0.0], [0.5, 0.0, 0.0]])  # jet-like anchors


def colormap(v: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> RGB floats in [0, 1] (jet-like)."""
    v = np.clip(np.asarray(v, float), 0, 1) * (len(_CMAP) - 1)
    lo = np.floor(v).astype(int).clip(0, len(_CMAP) - 2)
    t = (v - lo)[..., None]
    return _CMAP[lo] * (1 - t) + _CMAP[lo + 1] * t


def heat_magnitude(heat: np.ndarray) -> np.ndarray:
    """``N x H x W``: |heat| summed over the channels (IG) or the map itself (GradCAM)."""
    h = np.asarray(heat, float)
    return np.abs(h).sum(1) if h.ndim == 4 else np.abs(h)


def scale_heat(heat: np.ndarray, top: float | None = None) -> tuple[np.ndarray, float]:
    """Magnitudes scaled to [0, 1] by one value for all images (``top``, default the 99th
    percentile over every image shown), so maps of different images compare, and a map that
    is tiny stays dark. Returns ``(scaled, top)``."""
    m = heat_magnitude(heat)
    if top is None:
        top = float(np.percentile(m, 99)) if m.size else 0.0
    if not top > 0:
        return np.zeros_like(m), 0.0
    return np.clip(m / top, 0, 1), top


def colorbar(height: int, width: int = 14, top: float = 1.0) -> np.ndarray:
    """A vertical bar of the colour map (0 at the bottom, ``top`` at the top), uint8."""
    v = np.linspace(1, 0, height)[:, None].repeat(width, 1)
    return np.clip(np.rint(colormap(v) * 255), 0, 255).astype(np.uint8)


def normalise_heat(heat: np.ndarray, signed: bool = False) -> np.ndarray:
    """Per image: |heat| summed over channels, scaled to [0, 1] by its 99th percentile."""
    h = np.asarray(heat, float)
    if h.ndim == 4:
        h = np.abs(h).sum(1) if not signed else h.sum(1)
    out = np.empty_like(h)
    for i in range(len(h)):
        a = np.abs(h[i])
        hi = np.percentile(a, 99) if a.max() > 0 else 1.0
        out[i] = np.clip(a / (hi or 1.0), 0, 1)
    return out


def overlay(images, heat: np.ndarray, alpha: float = 0.5, scale: int = 4) -> np.ndarray:
    """Blend ``N x H x W`` heat in [0, 1] over ``N x C x H x W`` images -> ``N x H' x W' x 3``
    uint8 (up-scaled by ``scale`` with nearest neighbours)."""
    from ocvis.imaging import to_hwc_float

    img = to_hwc_float(images)
    grey = img.mean(-1, keepdims=True).repeat(3, -1)
    col = colormap(heat)
    out = (1 - alpha) * grey + alpha * col
    out = np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)
    if scale > 1:
        out = out.repeat(scale, 1).repeat(scale, 2)
    return out
