"""End-to-end ICS (Schlachter, Liao, Yang 2019), Deep SVDD and that paper's baselines."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ocvis.data import make_task
from ocvis.methods import make_method
from ocvis.methods.ics_e2e import closeness_loss, dispersion_loss, intra_class_loss
from ocvis.metrics import evaluate
from ocvis.nets.ics_net import DistanceNet, ICSNet, LeNetSVDD


@pytest.fixture(scope="module")
def task():
    return make_task("digits", normal=[0])


def test_losses_on_hand_made_examples():
    d = torch.tensor([0.0, 0.5, 0.9])
    assert float(closeness_loss(d)) == pytest.approx(
        -(math.log(1.0) + math.log(0.5) + math.log(0.1)) / 3, rel=1e-5)
    assert float(dispersion_loss(torch.tensor([1.0, 0.5]))) == pytest.approx(
        -(math.log(1.0) + math.log(0.5)) / 2, rel=1e-5)
    # eq. 3: p(atypical) = sigmoid(-logit); typical image (y=0) with logit 2, atypical (y=1)
    # with logit -1
    p = [1 / (1 + math.exp(2.0)), 1 / (1 + math.exp(-1.0))]
    want = -(math.log(1 - p[0]) + math.log(p[1])) / 2
    got = intra_class_loss(torch.tensor([2.0, -1.0]), torch.tensor([0.0, 1.0]))
    assert float(got) == pytest.approx(want, rel=1e-6)
    assert math.isfinite(float(closeness_loss(torch.ones(3))))  # log(0) guarded


def test_distance_subnetwork_range():
    torch.manual_seed(0)
    dist = DistanceNet(16)
    zi, zj = torch.randn(200, 16) * 50, torch.randn(200, 16) * 50
    d = dist(zi, zj)
    assert d.shape == (200,) and (d >= 0).all() and (d <= 1).all()
    same = dist(zi, zi)  # identical latents: sigmoid of the bias alone
    assert torch.allclose(same, torch.sigmoid(dist.fc.bias).expand(200))


def test_icsnet_shapes():
    logit, z = ICSNet(3, latent_dim=64)(torch.rand(5, 3, 32, 32))
    assert logit.shape == (5,) and z.shape == (5, 64)


def test_deep_svdd_centre_and_bias_free(task):
    m = make_method("deep-svdd", "tiny").fit(task)
    phi = m.phi_
    assert isinstance(phi, LeNetSVDD)
    biases = [n for n, p in phi.named_parameters() if n.endswith("bias")]
    assert biases == []  # no bias: the trivial "all to c" solution is impossible
    bns = [mod for mod in phi.modules() if isinstance(mod, torch.nn.BatchNorm2d)]
    assert bns and not any(b.affine for b in bns)
    c = m.nets["centre"].c
    assert (c.abs() >= 0.1 - 1e-7).all()  # |c_i| >= eps
    # c is the mean of phi after pre-training, moved away from 0: where the mean is already
    # beyond eps it is kept exactly; the scores are minus the squared distances to it
    z = torch.from_numpy(m.embed(task.x_train)).float()
    s = m.score_samples(task.x_test[:10])
    d = ((torch.from_numpy(m.embed(task.x_test[:10])).float() - c) ** 2).sum(1)
    np.testing.assert_allclose(s, -d.numpy(), rtol=1e-4, atol=1e-6)
    assert z.shape[1] == 32
    # the state dict restores the centre (a registered buffer)
    m2 = make_method("deep-svdd", "tiny").load_state_dict(m.state_dict())
    assert torch.equal(m2.nets["centre"].c, c)
    np.testing.assert_allclose(m2.score_samples(task.x_test[:10]), s, rtol=1e-5)


def test_deep_svdd_collapse_check(task):
    """A representation that maps every image onto c is flagged; a trained one is not, and
    its bench row says so."""
    from ocvis.bench import detector_columns
    from ocvis.methods.deep_svdd import spread_check

    c = torch.tensor([3.0, -4.0])  # |c| / sqrt(D) = 3.54
    z0 = torch.tensor([[4.0, -4.0], [2.0, -4.0]])  # 1 away from c each
    collapsed = spread_check(z0, c.repeat(5, 1) + 1e-6 * torch.randn(5, 2), c)
    assert collapsed["collapsed"] and collapsed["rms_initial"] == pytest.approx(1.0)
    assert collapsed["rms_final"] < 1e-5
    spread = spread_check(z0, z0 * 0.5 + c * 0.5, c)  # halfway to c: shrunk, not collapsed
    assert not spread["collapsed"] and spread["rms_final"] == pytest.approx(0.5)
    m = make_method("deep-svdd", "tiny").fit(task)
    info = m.fit_info()
    assert not info["spread"]["collapsed"] and info["spread"]["rms_final"] > 0
    assert detector_columns(info)["detector_ok"] == 1
    m.spread_ = {**info["spread"], "collapsed": True, "per_dim_std_rel": 1e-6}
    cols = detector_columns(m.fit_info())
    assert cols["detector_ok"] == 0 and "collapsed" in cols["detector_problem"]


def test_deep_svdd_gcn_preprocessing(task):
    from ocvis.methods.deep_svdd import gcn_l1

    x = torch.rand(6, 1, 8, 8) * torch.arange(1, 7).view(6, 1, 1, 1)  # different contrasts
    g = gcn_l1(x)
    torch.testing.assert_close(g.mean(dim=(1, 2, 3)), torch.zeros(6), atol=1e-5, rtol=0)
    torch.testing.assert_close(g.abs().mean(dim=(1, 2, 3)), torch.ones(6))
    torch.testing.assert_close(gcn_l1(3 * x + 0.5), g, atol=1e-5, rtol=1e-5)  # contrast-free
    m = make_method("deep-svdd", "tiny", preprocess="gcn-l1").fit(task)
    pre = m.nets["gcn"]
    seen = pre(task.x_train.float())
    assert float(seen.min()) == pytest.approx(0.0, abs=1e-6)  # the training range -> [0, 1]
    assert float(seen.max()) == pytest.approx(1.0, abs=1e-6)
    assert m.fit_info()["gcn_max"] > m.fit_info()["gcn_min"]
    # the representation is the encoder behind the preprocessing, for scores and embeddings
    z = m.nets["ae"].encoder(seen[:10]).detach()
    np.testing.assert_allclose(m.embed(task.x_train[:10]), z.numpy(), rtol=1e-4, atol=1e-5)
    s = m.score_samples(task.x_test[:10])
    m2 = make_method("deep-svdd", "tiny", preprocess="gcn-l1").load_state_dict(m.state_dict())
    assert torch.equal(m2.nets["gcn"].hi, pre.hi)
    np.testing.assert_allclose(m2.score_samples(task.x_test[:10]), s, rtol=1e-5)
    assert len(m2.cam_layers()) == 2


def test_soft_boundary_radius(task):
    m = make_method("deep-svdd", "tiny", objective="soft-boundary", epochs=2,
                    warmup_epochs=0, nu=0.2).fit(task)
    r = float(m.nets["centre"].R)
    assert r > 0
    inside = (m.score_samples(task.x_train) >= 0).mean()
    assert 0.5 < inside <= 1.0  # about 1 - nu inside the sphere


@pytest.mark.parametrize("name,preset,over", [
    ("ics-e2e", "cpu", {"iterations": 60}), ("nnwds", "cpu", {"iterations": 60}),
    ("deep-svdd", "tiny", {"pretrain_epochs": 3, "epochs": 3}), ("ssim-error", "tiny", {}),
    ("ocsvm", "cpu", {}), ("iforest", "cpu", {}), ("hog-e2e", "cpu", {})])
def test_tiny_fit_on_digits_beats_random(task, name, preset, over):
    m = make_method(name, preset, **over).fit(task)
    assert evaluate(m.score_samples(task.x_test), task.y_test)["auroc"] > 0.6


def test_naive_nn_runs_and_warns(task):
    from ocvis.errors import OcvisWarning

    with pytest.warns(OcvisWarning, match="one label"):
        m = make_method("naive-nn", "tiny").fit(task)
    assert np.isfinite(m.score_samples(task.x_test)).all()


def test_e2e_paper_values_are_attached():
    from ocvis.papers import paper_value

    assert paper_value("ics-e2e", "mnist", 0) == pytest.approx(98.9)
    assert paper_value("deep-svdd", "mnist", 0) == pytest.approx(98.0)
    assert paper_value("ocsvm", "mnist", 1) == pytest.approx(99.2)
    assert paper_value("ssim-error", "mnist", 0) == pytest.approx(98.7)


def test_split_ssim_range_reaches_the_split():
    """``split_ssim_range`` (the released code's SSIM range 2) is the SSIM data range of the
    split: same autoencoder, same reconstructions, similarities of ssim(..., data_range)."""
    from ocvis.data import make_task
    from ocvis.methods.split_ae import SplitAutoencoder, SplitConfig
    from ocvis.ssim import ssim

    task = make_task("digits", normal=[0])
    m = SplitAutoencoder(SplitConfig(epochs=1, reuse_pretrain=False))
    m.pretrain(task.x_train)
    x_hat = m.reconstruct(task.x_train)
    one = m.compute_split(task.x_train, x_hat=x_hat).similarity
    m.config.ssim_data_range = 2.0
    two = m.compute_split(task.x_train, x_hat=x_hat).similarity
    ref = ssim(task.x_train, x_hat, data_range=2.0, exact=True).numpy()
    np.testing.assert_allclose(two, ref, rtol=1e-6, atol=1e-9)
    assert np.all(two >= one - 1e-9) and np.any(two > one + 1e-6)  # larger C1, C2
    # the end-to-end method hands its option to the split it builds
    e2e = make_method("ics-e2e", "tiny", split_ssim_range=2.0, reuse_pretrain=False)
    e2e.fit(task)
    assert e2e.split_.similarity.max() <= 1.0
    np.testing.assert_allclose(
        np.sort(e2e.split_.similarity),
        np.sort(_split_of("tiny", task, 2.0)), rtol=1e-6)


def _split_of(preset, task, data_range):
    from ocvis.methods.ics_e2e import E2E_PRESETS
    from ocvis.methods.split_ae import SplitAutoencoder, SplitConfig

    p = E2E_PRESETS[preset]
    m = SplitAutoencoder(SplitConfig(epochs=p["split_epochs"], seed=0, reuse_pretrain=False,
                                     ssim_data_range=data_range))
    m.pretrain(task.x_train)
    return m.compute_split(task.x_train).similarity


def test_released_splitting_autoencoder_shapes_and_use():
    """The released end-to-end code's splitting autoencoder: 2 x 2 x 128 latent, no conv
    biases, reconstructions in [0, 1]; selectable for the split with its own cache key."""
    from ocvis.methods.split_ae import SplitAutoencoder, SplitConfig
    from ocvis.nets.e2e_ae import ReleasedE2EAutoencoder

    net = ReleasedE2EAutoencoder(in_channels=3)
    with torch.no_grad():
        z, x_hat = net(torch.rand(5, 3, 32, 32))
    assert z.shape == (5, 2 * 2 * 128) and x_hat.shape == (5, 3, 32, 32)
    assert float(x_hat.min()) >= 0.0 and float(x_hat.max()) <= 1.0
    convs = [m for m in net.modules() if isinstance(m, torch.nn.modules.conv._ConvNd)]
    assert len(convs) == 4 * 2 + 1 + 4 + 1 and all(m.bias is None for m in convs)
    task = make_task("digits", normal=[0])
    x = torch.as_tensor(np.asarray(task.x_train))
    keys = {n: SplitAutoencoder(SplitConfig(network=n, epochs=1)).cache_key(x)
            for n in ("paper", "released-e2e")}
    assert keys["paper"] != keys["released-e2e"]
    # it learns: with the released code's N(0, 0.01) kernels and no biases it stayed at
    # a grey constant (loss flat), so a split compared the images with grey
    ae = SplitAutoencoder(SplitConfig(network="released-e2e", epochs=1, min_steps=60,
                                      reuse_pretrain=False))
    ae.pretrain(x)
    rec = [r["losses"]["rec"] for r in ae.history.records if r.get("stage") == "pretrain"]
    assert np.mean(rec[-10:]) < 0.6 * np.mean(rec[:3])
    m = make_method("ics-e2e", "tiny", split_network="released-e2e", reuse_pretrain=False)
    import warnings

    from ocvis.errors import OcvisWarning
    with warnings.catch_warnings():  # one epoch of it on digits may still be flat (flagged)
        warnings.simplefilter("ignore", OcvisWarning)
        m.fit(task)
    assert m.split_.atypical.sum() == int(0.1 * len(task.x_train))


def test_flat_split_reconstructions_are_flagged(monkeypatch):
    """A splitting autoencoder that reconstructs a constant makes the split meaningless:
    ICS-E2E warns and its fit_info marks the run (the bench row's detector_ok = 0)."""
    from ocvis.bench import detector_columns
    from ocvis.errors import OcvisWarning
    from ocvis.methods.split_ae import SplitAutoencoder

    task = make_task("digits", normal=[0])
    good = make_method("ics-e2e", "tiny", reuse_pretrain=False)
    good.fit(task)
    assert not good.fit_info()["split"]["flat"]
    assert detector_columns(good.fit_info())["detector_ok"] == ""
    monkeypatch.setattr(SplitAutoencoder, "reconstruct",
                        lambda self, x: torch.full_like(torch.as_tensor(x), 0.5))
    flat = make_method("ics-e2e", "tiny", reuse_pretrain=False)
    with pytest.warns(OcvisWarning, match="nearly constant"):
        flat.fit(task)
    cols = detector_columns(flat.fit_info())
    assert cols["detector_ok"] == 0 and "flat split" in cols["detector_problem"]


def test_released_training_schedule(task, monkeypatch):
    """``train_schedule="released"``: per iteration 3 joint distance steps (closeness +
    dispersion) then 4 classifier steps, as the released code; NNwDS takes the 4 classifier
    steps only; ``split_optimizer`` reaches the splitting autoencoder."""
    import ocvis.methods.deep as deep

    made = []
    real = deep.make_optimizer
    monkeypatch.setattr(deep, "make_optimizer",
                        lambda name, *a, **k: made.append(name) or real(name, *a, **k))
    terms = {"cls", "disp", "ic"}

    def trained_terms(m):
        return [sorted(set(r["losses"]) & terms) for r in m.history.records
                if r.get("stage") == "train"]

    m = make_method("ics-e2e", "tiny", iterations=2, train_schedule="released",
                    split_optimizer="rmsprop", reuse_pretrain=False).fit(task)
    assert trained_terms(m) == ([["cls", "disp"]] * 3 + [["ic"]] * 4) * 2
    assert made == ["rmsprop"]  # the split's optimiser (ICS-E2E builds its own Adam)
    w = make_method("nnwds", "tiny", iterations=3, train_schedule="released").fit(task)
    assert trained_terms(w) == [["ic"]] * 12
    p = make_method("ics-e2e", "tiny", iterations=2).fit(task)
    assert trained_terms(p) == [["cls"], ["ic"], ["disp"]] * 2
    good = make_method("ics-e2e", "cpu", iterations=15, train_schedule="released").fit(task)
    assert evaluate(good.score_samples(task.x_test), task.y_test)["auroc"] > 0.6
