"""ocvis.ssim must reproduce skimage's structural_similarity (Wang et al. 2004 settings)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from skimage.metrics import structural_similarity

from ocvis.ssim import default_win_size, ssim, ssim_numpy

TOL = 1e-4
SK_KW = dict(data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)


def _skimage_ssim(a: np.ndarray, b: np.ndarray, **extra) -> np.ndarray:
    """Per-image skimage SSIM for N x C x H x W arrays (channel axis 0 of each image)."""
    kw = {**SK_KW, **extra}
    out = []
    for ai, bi in zip(a, b):
        if ai.shape[0] == 1:
            out.append(structural_similarity(ai[0], bi[0], **kw))
        else:
            out.append(structural_similarity(ai, bi, channel_axis=0, **kw))
    return np.asarray(out)


def _smooth(rng: np.random.Generator, n: int, c: int, size: int = 32) -> np.ndarray:
    """Smooth random images in [0, 1] (blurred noise, rescaled per image)."""
    sig = rng.uniform(0.5, 4.0)
    img = gaussian_filter(rng.standard_normal((n, c, size, size)), sigma=(0, 0, sig, sig))
    lo = img.min(axis=(1, 2, 3), keepdims=True)
    hi = img.max(axis=(1, 2, 3), keepdims=True)
    return (img - lo) / (hi - lo)


def _pairs(rng: np.random.Generator, n: int, c: int) -> tuple[np.ndarray, np.ndarray]:
    """Mix of unstructured and structured pairs, including an identical pair first."""
    q = n // 4
    x_unif = rng.random((q, c, 32, 32))
    y_unif = rng.random((q, c, 32, 32))
    x_sm = _smooth(rng, q, c)
    y_sm = np.clip(x_sm + rng.normal(0, rng.uniform(0.01, 0.3), x_sm.shape), 0, 1)
    x_blur = _smooth(rng, q, c)
    y_blur = gaussian_filter(x_blur, sigma=(0, 0, 1.0, 1.0))
    r = n - 3 * q
    x_id = _smooth(rng, r, c)
    y_id = x_id.copy()
    # Constant images (zero variance) exercise the C1/C2 stabilisers.
    x_id[-1] = 0.5
    y_id[-1] = 0.25
    x = np.concatenate([x_id, x_unif, x_sm, x_blur])
    y = np.concatenate([y_id, y_unif, y_sm, y_blur])
    return x, y


@pytest.mark.parametrize("channels", [1, 3])
def test_matches_skimage(channels: int) -> None:
    rng = np.random.default_rng(1234 + channels)
    x, y = _pairs(rng, 250, channels)
    ours = ssim_numpy(x, y)
    ref = _skimage_ssim(x, y)
    assert ours.shape == (250,) and ours.dtype == np.float64
    np.testing.assert_allclose(ours, ref, rtol=0, atol=TOL)
    assert ours[0] == pytest.approx(1.0, abs=1e-12)  # identical pair
    # Sanity: the set is not degenerate (wide range of SSIM values).
    assert ref.min() < 0.2 and ref.max() > 0.95


def test_identical_images_give_one() -> None:
    x = torch.from_numpy(_smooth(np.random.default_rng(0), 4, 3))
    np.testing.assert_allclose(ssim(x, x.clone()).numpy(), 1.0, atol=1e-12)


@pytest.mark.parametrize(
    "extra",
    [
        dict(win_size=7),
        dict(win_size=3, sigma=0.8),  # filter radius > crop pad: boundary reflection matters
        dict(gaussian_weights=False),
        dict(gaussian_weights=False, win_size=5, use_sample_covariance=True),
    ],
)
def test_matches_skimage_other_settings(extra: dict) -> None:
    rng = np.random.default_rng(7)
    x = rng.random((6, 2, 13, 17))
    y = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1)
    kw = {**SK_KW, **extra}
    ours = ssim_numpy(x, y, **kw)
    np.testing.assert_allclose(ours, _skimage_ssim(x, y, **extra), rtol=0, atol=TOL)


def test_float32_input_and_torch_output() -> None:
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.random((5, 1, 16, 16)).astype(np.float32))
    y = torch.from_numpy(rng.random((5, 1, 16, 16)).astype(np.float32))
    out = ssim(x, y)
    assert out.dtype == torch.float64 and out.shape == (5,)
    ref = _skimage_ssim(x.double().numpy(), y.double().numpy())
    np.testing.assert_allclose(out.numpy(), ref, rtol=0, atol=TOL)
    assert ssim(x, y, reduction="mean").item() == pytest.approx(ref.mean(), abs=TOL)
    assert ssim(x, y, reduction="sum").item() == pytest.approx(ref.sum(), abs=5 * TOL)


def test_default_win_size() -> None:
    assert default_win_size(True, 1.5) == 11
    assert default_win_size(False) == 7


@pytest.mark.parametrize(
    "xs, ys, kw",
    [
        ((2, 1, 32, 32), (2, 1, 32, 31), {}),  # shape mismatch
        ((2, 1, 32, 32), (3, 1, 32, 32), {}),  # batch mismatch
        ((1, 32, 32), (1, 32, 32), {}),  # not 4-D
        ((2, 1, 1, 32, 32), (2, 1, 1, 32, 32), {}),  # 5-D
        ((2, 1, 10, 32), (2, 1, 10, 32), {}),  # H < 11
        ((2, 1, 32, 8), (2, 1, 32, 8), {}),  # W < 11
        ((2, 1, 32, 32), (2, 1, 32, 32), {"win_size": 4}),  # even window
        ((2, 1, 32, 32), (2, 1, 32, 32), {"data_range": 0.0}),
        ((2, 1, 32, 32), (2, 1, 32, 32), {"reduction": "max"}),
        ((2, 1, 32, 32), (2, 1, 32, 32), {"batch_size": 0}),
    ],
)
def test_bad_inputs_raise(xs: tuple, ys: tuple, kw: dict) -> None:
    with pytest.raises(ValueError):
        ssim(torch.zeros(xs), torch.zeros(ys), **kw)


def test_small_image_ok_with_small_window() -> None:
    x = torch.rand(3, 1, 8, 8, dtype=torch.float64)
    out = ssim(x, x, win_size=7)
    np.testing.assert_allclose(out.numpy(), 1.0, atol=1e-12)


@pytest.mark.parametrize("batch_size", [1, 7, 64])
def test_chunking_is_identical(batch_size: int) -> None:
    rng = np.random.default_rng(11)
    x, y = _pairs(rng, 40, 3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    whole = ssim(xt, yt, batch_size=1024)
    chunked = ssim(xt, yt, batch_size=batch_size)
    assert torch.equal(whole, chunked)


def test_chunking_identical_beyond_internal_block() -> None:
    # 300 grey 32x32 images exceed the internal cache-sized block (192 images).
    rng = np.random.default_rng(12)
    x, y = _pairs(rng, 300, 1)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    whole = ssim(xt, yt)
    for bs in (1, 50, 299):
        assert torch.equal(whole, ssim(xt, yt, batch_size=bs))
    np.testing.assert_allclose(whole.numpy(), _skimage_ssim(x, y), rtol=0, atol=TOL)


def test_gradient_flows() -> None:
    x = torch.rand(2, 1, 16, 16, dtype=torch.float64)
    y = torch.rand(2, 1, 16, 16, dtype=torch.float64, requires_grad=True)
    loss = ssim(x, y, reduction="mean")
    loss.backward()
    assert y.grad is not None and torch.isfinite(y.grad).all()
    # Differentiable path gives the same values as the fast no-grad path.
    with torch.no_grad():
        assert torch.allclose(loss, ssim(x, y, reduction="mean"), rtol=0, atol=1e-14)
    # Finite-difference check of one gradient entry.
    eps = 1e-6
    y2 = y.detach().clone()
    y2[0, 0, 3, 4] += eps
    fd = (ssim(x, y2, reduction="mean") - loss.detach()) / eps
    assert fd.item() == pytest.approx(y.grad[0, 0, 3, 4].item(), abs=1e-5)


def test_float32_inputs_are_accurate_and_chunk_independent() -> None:
    """float32 inputs take the float32 path (centred maps): still within 1e-6 of skimage
    (float64) for structured and unstructured pairs, identical pairs give 1."""
    rng = np.random.default_rng(7)
    x, y = _pairs(rng, 120, 1)
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    xt, yt = torch.from_numpy(x32), torch.from_numpy(y32)
    out = ssim(xt, yt)
    assert out.dtype == torch.float64
    ref = _skimage_ssim(x32.astype(np.float64), y32.astype(np.float64))
    np.testing.assert_allclose(out.numpy(), ref, rtol=0, atol=1e-6)
    assert abs(out[0].item() - 1.0) < 1e-6  # identical pair
    assert torch.equal(out, ssim(xt, yt, batch_size=7))
    # the differentiable path agrees with the in-place one
    yg = yt.clone().requires_grad_(True)
    np.testing.assert_allclose(ssim(xt, yg).detach().numpy(), out.numpy(), rtol=0, atol=1e-6)
    # worst case for float32: binary images (local variance = E[x^2] - E[x]^2 of two equal
    # numbers in flat regions) still within the 1e-4 contract
    xb = (rng.random((60, 1, 4, 4)) > 0.5).repeat(8, 2).repeat(8, 3).astype(np.float32)
    yb = np.clip(xb + (rng.random(xb.shape) < 0.02) * 0.7, 0, 1).astype(np.float32)
    ours = ssim(torch.from_numpy(xb), torch.from_numpy(yb)).numpy()
    np.testing.assert_allclose(ours, _skimage_ssim(xb.astype(np.float64), yb.astype(np.float64)),
                               rtol=0, atol=TOL)
