"""Batched image augmentations on tensors, with an independent draw for every image.

``torchvision.transforms.v2`` draws one set of parameters per call, so a batch would get the
same crop and jitter for every image; these functions draw per image from a
``torch.Generator`` and work on the whole batch at once (no per-image Python loop):

* :func:`random_resized_crop`: square crops (``torchvision.ops.roi_align``, bilinear);
* :func:`random_hflip`, :func:`rotate90` (per-image number of quarter turns);
* :func:`color_jitter`: brightness (additive, as the two-stage paper's TensorFlow code),
  contrast, saturation, hue, in a fixed order;
* :func:`random_grayscale`;
* :func:`simclr_views`: the two-stage paper's view augmentation (App. A.4 and its code's
  ``aug_list = cnr0.5+hflip+jitter_b0.4_c0.4_s0.4_h0.4+gray0.2``; the code's blur is dead).

Images are ``N x C x H x W`` floats in [0, 1]; grey images (``C == 1``) skip the colour steps.
"""
from __future__ import annotations

import math

import torch

_GREY = torch.tensor([0.299, 0.587, 0.114])


def _u(n: int, lo: float, hi: float, g: torch.Generator | None) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def random_resized_crop(x: torch.Tensor, g: torch.Generator | None = None,
                        scale: tuple[float, float] = (0.25, 1.0)) -> torch.Tensor:
    """A square crop of each image covering ``scale`` of its area (uniform), resized back."""
    from torchvision.ops import roi_align

    n, _, h, w = x.shape
    area = _u(n, *scale, g)
    side = torch.sqrt(area) * min(h, w)
    x0 = torch.rand(n, generator=g) * (w - side)
    y0 = torch.rand(n, generator=g) * (h - side)
    boxes = torch.stack([torch.arange(n, dtype=x.dtype), x0, y0, x0 + side, y0 + side], 1)
    return roi_align(x, boxes.to(x.device, x.dtype), output_size=(h, w), spatial_scale=1.0,
                     sampling_ratio=2, aligned=True)


def random_hflip(x: torch.Tensor, g: torch.Generator | None = None,
                 p: float = 0.5) -> torch.Tensor:
    flip = (torch.rand(len(x), generator=g) < p).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def rotate90(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Rotate image ``i`` by ``k[i]`` quarter turns (counter-clockwise, ``torch.rot90``)."""
    out = x.clone()
    for q in range(1, 4):
        sel = (k == q).nonzero(as_tuple=True)[0]
        if len(sel):
            out[sel] = torch.rot90(x[sel], q, dims=(2, 3))
    return out


def _grey(x: torch.Tensor) -> torch.Tensor:
    return (x * _GREY.to(x)[None, :, None, None]).sum(1, keepdim=True)


def _hue_shift(x: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Rotate the hue of each image by ``turns`` of a full circle (YIQ rotation)."""
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322],
                           [0.211, -0.523, 0.312]], dtype=x.dtype, device=x.device)
    to_rgb = torch.linalg.inv(to_yiq)
    th = 2 * math.pi * turns.to(x)
    c, s = torch.cos(th), torch.sin(th)
    rot = torch.zeros(len(x), 3, 3, dtype=x.dtype, device=x.device)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = c, -s, s, c
    m = to_rgb @ rot @ to_yiq                       # N x 3 x 3
    return torch.einsum("nij,njhw->nihw", m, x)


def color_jitter(x: torch.Tensor, g: torch.Generator | None = None, brightness: float = 0.4,
                 contrast: float = 0.4, saturation: float = 0.4,
                 hue: float = 0.4) -> torch.Tensor:
    """Per image: add U(-b, b) (TensorFlow's ``random_brightness``), scale the contrast and
    the saturation by U(1-c, 1+c), turn the hue by U(-h, h) of a full circle (TensorFlow's
    ``random_hue`` delta, as torchvision's hue factor); clamped to [0, 1]."""
    n = len(x)
    dev = x.device
    x = x + _u(n, -brightness, brightness, g).to(dev)[:, None, None, None]
    mean = x.mean((1, 2, 3), keepdim=True)
    x = (x - mean) * _u(n, 1 - contrast, 1 + contrast, g).to(dev)[:, None, None, None] + mean
    if x.shape[1] == 3:
        grey = _grey(x)
        x = grey + (x - grey) * _u(n, 1 - saturation, 1 + saturation, g).to(dev)[
            :, None, None, None]
        if hue > 0:
            x = _hue_shift(x, _u(n, -hue, hue, g))
    return x.clamp(0.0, 1.0)


def random_grayscale(x: torch.Tensor, g: torch.Generator | None = None,
                     p: float = 0.2) -> torch.Tensor:
    if x.shape[1] != 3:
        return x
    pick = (torch.rand(len(x), generator=g) < p).to(x.device)
    return torch.where(pick[:, None, None, None], _grey(x).expand_as(x), x)


def simclr_views(x: torch.Tensor, g: torch.Generator | None = None,
                 crop_scale: tuple[float, float] = (0.25, 1.0), jitter: float = 0.4,
                 grey_p: float = 0.2) -> torch.Tensor:
    """One augmented view of every image: crop, flip, colour jitter, greyscale."""
    x = random_resized_crop(x, g, crop_scale)
    x = random_hflip(x, g)
    if jitter > 0:
        x = color_jitter(x, g, jitter, jitter, jitter, jitter)
    return random_grayscale(x, g, grey_p)
