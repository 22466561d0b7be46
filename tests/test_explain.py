"""Explanations: shapes, finiteness, IG completeness within 5 %, non-zero KDE gradients."""
import numpy as np
import pytest
import torch

from ocvis.data import make_task
from ocvis.errors import DataError
from ocvis.explain import Explainer, default_cam_layer, normalise_heat, overlay
from ocvis.methods import make_method


@pytest.fixture(scope="module")
def fitted():
    task = make_task("digits", "one-class", 0)
    m = make_method("ics", "tiny", reuse_pretrain=False).fit(task)
    return m, task.x_test[:8]


@pytest.mark.parametrize("head", ["kde", "own"])
def test_integrated_gradients(fitted, head):
    m, x = fitted
    e = Explainer(m, head)
    attr, delta, s, sb = e.integrated_gradients(x, n_steps=64)
    assert attr.shape == x.shape and torch.isfinite(attr).all()
    # completeness: sum of attributions = score(x) - score(baseline), within 5 % of each
    # difference (floored at a tenth of the batch's largest; completeness_error)
    total = attr.flatten(1).sum(1).double()
    diff = (s - sb).numpy()
    floor = 0.1 * np.abs(diff).max()
    assert (np.abs(total.numpy() - diff) <= 0.05 * np.maximum(np.abs(diff), floor)).all(), \
        (e.steps_used_, total.numpy(), diff)
    assert 64 <= e.steps_used_ <= 1024
    assert (attr.flatten(1).abs().sum(1) > 0).all()  # gradients flow through the KDE


def test_gradcam_default_layer_and_shape(fitted):
    m, x = fitted
    e = Explainer(m)
    assert default_cam_layer(e.layers) == "conv3"  # deepest map >= 8 x 8 (8 x 8)
    cam = e.gradcam(x)
    assert cam.shape == (8, 1, 32, 32) and torch.isfinite(cam).all() and (cam >= 0).all()
    cam1 = e.gradcam(x, layer="conv1")
    assert cam1.shape == (8, 1, 32, 32)
    with pytest.raises(DataError, match="unknown layer"):
        e.gradcam(x, layer="fc9")


def test_kde_score_matches_detector(fitted):
    m, x = fitted
    from ocvis.detectors import make_detector

    e = Explainer(m, "kde")
    ref = make_detector("kde").fit(m.train_features_).score_samples(m.embed(x))
    np.testing.assert_allclose(e.score(x).numpy(), ref, rtol=1e-5, atol=1e-7)
    own = Explainer(m, "own")  # the OC-SVM decision function in torch
    np.testing.assert_allclose(own.score(x).numpy(), m.score_samples(x), rtol=1e-5, atol=1e-7)


def test_shallow_and_not_differentiable():
    task = make_task("digits", "one-class", 1)
    p = make_method("pca").fit(task)
    a, d, s, sb = Explainer(p, "own").integrated_gradients(task.x_test[:4])
    assert a.shape == (4, 1, 32, 32)
    with pytest.raises(DataError, match="convolution"):
        Explainer(p).gradcam(task.x_test[:2])
    with pytest.raises(DataError, match="no differentiable"):
        Explainer(make_method("hog").fit(task))
    with pytest.raises(DataError, match="not differentiable"):
        Explainer(make_method("pca", detector="iforest").fit(task), "own")


def test_overlay_image(fitted):
    m, x = fitted
    heat = normalise_heat(np.random.default_rng(0).random((8, 1, 32, 32)))
    img = overlay(x, heat, scale=2)
    assert img.shape == (8, 64, 64, 3) and img.dtype == np.uint8


class _SigmoidCode(torch.nn.Module):
    """x -> sigmoid(sharpness * (x @ w)): 16 random projections squashed by a sigmoid."""

    def __init__(self, w: torch.Tensor, sharpness: float) -> None:
        super().__init__()
        self.register_buffer("w", w)
        self.sharpness = sharpness

    def forward(self, x):
        return torch.sigmoid(self.sharpness * (x.flatten(1).double() - 0.2) @ self.w)


def _sigmoid_method(sharpness: float, task):
    """A features + KDE method whose sigmoid features are healthy (sharpness 1) or
    saturated at exactly 0 / 1 (sharpness 1e5, like a collapsed sigmoid latent)."""
    from ocvis.methods.base import FeatureMethod

    w = torch.from_numpy(np.random.default_rng(0).normal(0, 0.05, (1024, 16)))

    class Sig(FeatureMethod):
        name = "test-sigmoid"
        explain_heads = ("kde",)

        def torch_features(self):
            return _SigmoidCode(w, sharpness)

        def _embed(self, x):
            with torch.no_grad():
                return self.torch_features()(x).numpy()

    m = Sig(detector="kde").fit(task.x_train)
    return m


def test_flat_gradient_warning_for_a_saturated_model_not_a_healthy_one():
    """With saturated sigmoid features the KDE score is flat in the pixels (its maps would
    be noise stretched to full colour): the warning is raised; healthy features: not."""
    task = make_task("digits", "one-class", 0)
    x = task.x_test[:8]
    for sharpness, expect_flat in ((1.0, False), (1e5, True)):
        m = _sigmoid_method(sharpness, task)
        z = m.embed(task.x_test)
        saturated = ((z < 0.02) | (z > 0.98)).mean()
        scores = m.score_samples(task.x_test)
        spread = float(np.subtract(*np.percentile(scores, [75, 25])))
        assert spread > 0  # the scores differ between images either way
        res = Explainer(m, "kde").explain(x, score_spread=spread, n_steps=32)
        assert res["flat"].all() == expect_flat and res["flat"].any() == expect_flat, \
            (sharpness, saturated, res["gradient"], spread)
        assert (saturated > 0.99) == expect_flat


def test_explain_auto_target_and_informative_layers(fitted):
    m, x = fitted
    e = Explainer(m, "kde")
    s = e.score(x).numpy()
    thr = float(np.median(s))
    res = e.explain(x, threshold=thr, n_steps=32)
    assert list(res["explained"]) == ["anomaly" if v <= thr else "normality" for v in s]
    forced = e.explain(x, target="normality", n_steps=32)
    flip = res["explained"] == "anomaly"
    np.testing.assert_allclose(res["ig"][flip], -forced["ig"][flip], rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(res["ig"][~flip], forced["ig"][~flip], rtol=1e-5, atol=1e-9)
    layers = e.informative_layers(x)
    assert layers and set(layers) <= {n for n, _, _ in e.layers}
    for name in layers:
        cam = e.gradcam(x, name).flatten(1)
        assert (cam.max(1).values > cam.min(1).values).any()
