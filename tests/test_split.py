"""Intra-class split (Schlachter et al. 2019, Sec. 3.2 / 3.4.2)."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import torch

from ocvis.split import SplitResult, n_atypical, split, split_from_similarity
from ocvis.ssim import ssim_numpy


def test_rho_percent_atypical() -> None:
    sim = np.random.default_rng(0).random(1000)
    res = split_from_similarity(sim, rho=10.0)
    assert res.atypical.dtype == np.bool_ and res.atypical.shape == (1000,)
    assert res.atypical.sum() == 100 and res.n_atypical == 100
    assert res.typical.sum() == 900
    assert np.array_equal(res.typical, ~res.atypical)
    assert res.rho == 10.0 and res.metric == "ssim"


@pytest.mark.parametrize("rho, n, k", [(10, 1000, 100), (29, 100, 29), (0.3, 1000, 3), (12.5, 7, 0), (99.9, 10, 9), (15, 7, 1)])
def test_n_atypical_is_exact_floor(rho: float, n: int, k: int) -> None:
    assert n_atypical(rho, n) == k


def test_atypical_are_lowest_similarity() -> None:
    sim = np.random.default_rng(1).normal(size=500)
    res = split_from_similarity(sim, rho=20.0)
    expected = np.zeros(500, dtype=bool)
    expected[np.argsort(sim)[:100]] = True
    assert np.array_equal(res.atypical, expected)
    assert sim[res.atypical].max() <= res.threshold <= sim[res.typical].min()
    assert res.threshold == sim[res.typical].min()


def test_ties_are_deterministic_lower_index_first() -> None:
    sim = np.array([0.5, 0.2, 0.5, 0.5, 0.9, 0.2, 0.5, 0.7, 0.5, 0.8])
    res = split_from_similarity(sim, rho=40.0)  # 4 atypical: both 0.2s, then the first two 0.5s
    assert np.flatnonzero(res.atypical).tolist() == [0, 1, 2, 5]
    assert res.threshold == 0.5
    again = split_from_similarity(sim.copy(), rho=40.0)
    assert np.array_equal(res.atypical, again.atypical)


def test_rho_zero_warns_and_marks_none() -> None:
    with pytest.warns(UserWarning, match="zero atypical"):
        res = split_from_similarity(np.arange(50.0), rho=0.0)
    assert not res.atypical.any()
    assert res.threshold == 0.0  # lowest typical similarity
    with pytest.warns(UserWarning, match="zero atypical"):
        split_from_similarity(np.arange(5.0), rho=10.0)  # floor(0.5) == 0


@pytest.mark.parametrize("rho", [-0.1, 100.0, 150.0, float("nan"), float("inf"), True, "10"])
def test_rho_out_of_range_raises(rho) -> None:
    with pytest.raises(ValueError):
        split_from_similarity(np.arange(10.0), rho=rho)
    with pytest.raises(ValueError):
        split(np.zeros((4, 1, 11, 11)), np.zeros((4, 1, 11, 11)), rho=rho)


def test_bad_similarity_and_metric_raise() -> None:
    with pytest.raises(ValueError):
        split_from_similarity(np.array([0.1, np.nan, 0.3]), rho=10)
    with pytest.raises(ValueError):
        split_from_similarity(np.zeros((3, 2)), rho=10)
    with pytest.raises(ValueError):
        split_from_similarity(np.zeros(0), rho=10)
    with pytest.raises(ValueError):
        split_from_similarity(np.zeros(5), rho=10, metric="psnr")
    with pytest.raises(ValueError):
        split(np.zeros((4, 1, 11, 11)), np.zeros((4, 1, 11, 12)))


def test_with_rho_consistent_and_no_recompute() -> None:
    sim = np.random.default_rng(2).random(300)
    base = split_from_similarity(sim, rho=5.0, metric="mse")
    for rho in (1.0, 10.0, 33.3, 50.0, 99.0):
        fresh = split_from_similarity(sim, rho=rho, metric="mse")
        moved = base.with_rho(rho)
        assert np.array_equal(moved.atypical, fresh.atypical)
        assert moved.threshold == fresh.threshold
        assert moved.rho == rho and moved.metric == "mse"
        assert moved.similarity is base.similarity  # re-threshold only, shared data
    # Monotone: a larger rho only adds atypical samples.
    assert np.all(base.with_rho(10).atypical <= base.with_rho(20).atypical)
    with pytest.warns(UserWarning):
        assert not base.with_rho(0).atypical.any()
    with pytest.raises(ValueError):
        base.with_rho(100)


def test_result_is_immutable() -> None:
    res = split_from_similarity(np.arange(10.0), rho=20)
    assert isinstance(res, SplitResult)
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.rho = 5.0  # type: ignore[misc]
    with pytest.raises(ValueError):
        res.atypical[0] = True
    with pytest.raises(ValueError):
        res.similarity[0] = 1.0


def _images(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Copies of one image, reconstructed with one noise pattern of growing amplitude.

    Values stay inside [0, 1] without clipping, so both MSE and SSIM strictly
    decrease with the index.
    """
    rng = np.random.default_rng(seed)
    base = 0.25 + 0.5 * rng.random((1, 1, 16, 16))
    pattern = rng.uniform(-1.0, 1.0, size=(1, 1, 16, 16))
    scale = np.linspace(0.0, 0.25, n)[:, None, None, None]
    x = np.repeat(base, n, axis=0)
    return x, x + scale * pattern


def test_mse_metric_ranks_worse_reconstructions_lower() -> None:
    x, x_hat = _images()
    res = split(x, x_hat, rho=25.0, metric="mse")
    assert res.metric == "mse"
    np.testing.assert_allclose(res.similarity, -((x - x_hat) ** 2).mean(axis=(1, 2, 3)))
    assert np.all(np.diff(res.similarity) < 0)  # noisier -> lower similarity
    assert np.flatnonzero(res.atypical).tolist() == list(range(30, 40))


def test_ssim_metric_torch_and_numpy_agree() -> None:
    x, x_hat = _images(seed=1)
    res_np = split(x, x_hat, rho=25.0)
    res_t = split(torch.from_numpy(x).float(), torch.from_numpy(x_hat).float(), rho=25.0)
    np.testing.assert_allclose(res_np.similarity, ssim_numpy(x, x_hat), atol=1e-12)
    np.testing.assert_allclose(res_t.similarity, res_np.similarity, atol=1e-5)
    assert res_np.similarity.dtype == np.float64
    assert np.all(np.diff(res_np.similarity) < 0)
    assert np.flatnonzero(res_np.atypical).tolist() == list(range(30, 40))
    # N x H x W greyscale input is accepted too.
    res_3d = split(x[:, 0], x_hat[:, 0], rho=25.0)
    np.testing.assert_array_equal(res_3d.similarity, res_np.similarity)


def test_no_warning_for_normal_rho() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        split_from_similarity(np.arange(100.0), rho=10)
