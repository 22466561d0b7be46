"""Two-stage deep one-class classification (Sohn et al. 2021): losses, views, detectors."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from ocvis import augment as A
from ocvis.data import make_task
from ocvis.methods import make_method
from ocvis.methods.two_stage import contrastive_loss, rotation_batch
from ocvis.metrics import evaluate


@pytest.fixture(scope="module")
def task():
    return make_task("digits", normal=[0])


def test_contrastive_loss_on_a_hand_made_batch():
    """Two views that coincide and are orthogonal to every other image: each positive
    logit is 1/tau, every negative 0."""
    b, tau = 4, 0.2
    z = torch.eye(b, 8)
    one_way = contrastive_loss(z, z, tau, "one-way")
    expect = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + (b - 1)))
    assert float(one_way) == pytest.approx(expect, rel=1e-6)
    nt = contrastive_loss(z, z, tau, "nt-xent")
    expect_nt = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + (2 * b - 2)))
    assert float(nt) == pytest.approx(expect_nt, rel=1e-6)
    # embeddings are normalised inside: a scaled view gives the same loss
    assert float(contrastive_loss(3 * z, z, tau)) == pytest.approx(expect, rel=1e-6)
    # swapping the views' partners makes it worse
    assert float(contrastive_loss(z, z.roll(1, 0), tau)) > expect


def test_rotation_labels():
    x = torch.rand(3, 1, 32, 32)
    views, k = rotation_batch(x, rotations=4)
    assert k.tolist() == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3
    for i in range(12):
        assert torch.equal(views[i], torch.rot90(x[i % 3], int(k[i]), (1, 2)))
    one, k1 = rotation_batch(x, torch.Generator().manual_seed(0), rotations=1)
    assert one.shape == x.shape and set(k1.tolist()) <= {0, 1, 2, 3}
    assert torch.equal(one[0], torch.rot90(x[0], int(k1[0]), (1, 2)))


def test_distribution_augmentation_multiplies_instances_by_four(task):
    plain = make_method("contrastive", "tiny", epochs=1, min_steps=0, batch_size=16)
    da = make_method("contrastive-da", "tiny", epochs=1, min_steps=0, batch_size=16)
    n = len(task.x_train)
    assert da.steps_per_epoch(4 * n) == -(-4 * n // 16)
    plain.fit(task)
    da.fit(task)
    assert len(da.history) == da.steps_per_epoch(4 * n)
    assert len(plain.history) == plain.steps_per_epoch(n)
    assert len(da.history) >= 3.5 * len(plain.history)


def test_views_differ_per_image_and_are_seeded():
    x = torch.rand(1, 3, 32, 32).repeat(6, 1, 1, 1)  # six copies of one image
    v = A.simclr_views(x, torch.Generator().manual_seed(1))
    assert v.shape == x.shape and v.min() >= 0 and v.max() <= 1
    assert len({round(float(t.sum()), 4) for t in v}) == 6  # independent draws per image
    w = A.simclr_views(x, torch.Generator().manual_seed(1))
    assert torch.equal(v, w)
    grey = A.simclr_views(torch.rand(4, 1, 32, 32), torch.Generator().manual_seed(0))
    assert grey.shape == (4, 1, 32, 32)


def test_detectors_equal_scikit_learn_where_they_overlap(task):
    from sklearn.mixture import GaussianMixture
    from sklearn.svm import OneClassSVM

    m = make_method("rotnet", "tiny").fit(task)
    f = m.train_features_
    fn = f / np.linalg.norm(f, axis=1, keepdims=True)
    ft = m.embed(task.x_test)
    ftn = ft / np.linalg.norm(ft, axis=1, keepdims=True)
    gamma = 10.0 / (fn.shape[1] * fn.var())  # App. A.4
    assert m.detectors_["kde"].gamma_ == pytest.approx(gamma, rel=1e-9)
    assert m.detectors_["ocsvm"].gamma_ == pytest.approx(gamma, rel=1e-9)
    sk = OneClassSVM(kernel="rbf", gamma=gamma, nu=0.5,
                     tol=m.detectors_["ocsvm"].tol_).fit(fn)
    np.testing.assert_allclose(m.scores(task.x_test)["ocsvm"], sk.decision_function(ftn),
                               rtol=1e-6, atol=1e-9)
    lin = OneClassSVM(kernel="linear", nu=0.5).fit(f)
    np.testing.assert_allclose(m.scores(task.x_test)["linear_ocsvm"],
                               lin.decision_function(ft), rtol=1e-6, atol=1e-9)
    gmm = GaussianMixture(1, covariance_type="full", random_state=0).fit(fn)
    assert spearmanr(m.scores(task.x_test)["gde"], gmm.score_samples(ftn)).statistic > 0.999


@pytest.mark.parametrize("name", ["rotnet", "contrastive-da"])
def test_tiny_fit_on_digits_beats_random(task, name):
    m = make_method(name, "tiny").fit(task)
    scores = m.scores(task.x_test)
    assert set(scores) >= {"kde", "ocsvm", "gde", "linear_ocsvm"}
    assert list(scores)[0] == "kde"  # the primary score first
    assert evaluate(scores["kde"], task.y_test)["auroc"] > 0.7
    info = m.fit_info()
    assert not info["representation"]["collapsed"]
    assert set(info["detectors"]) == {"kde", "ocsvm", "gde", "linear_ocsvm"}


def test_collapsed_representation_is_flagged(task, monkeypatch):
    from ocvis.methods.two_stage import ContrastiveDA

    m = make_method("contrastive-da", "tiny")
    rng = np.random.default_rng(0)
    const = rng.random(32)
    monkeypatch.setattr(ContrastiveDA, "_embed", lambda self, x: np.tile(const, (len(x), 1))
                        + 1e-9 * rng.random((len(x), 32)))
    m.fit(task)
    info = m.fit_info()
    assert info["representation"]["collapsed"]
    assert not info["detector"]["converged"] and "collapsed" in info["detector"]["problem"]
    from ocvis.bench import detector_columns

    assert detector_columns(info)["detector_ok"] == 0


def test_explanations_through_kde_and_rotation(task):
    from ocvis.explain import Explainer

    m = make_method("rotnet", "tiny").fit(task)
    assert set(m.explain_heads) == {"kde", "ocsvm", "gde", "rotation", "rotation_p0"}
    x = task.x_test[:4]
    for head in ("kde", "rotation", "rotation_p0"):
        e = Explainer(m, head)
        res = e.explain(x, n_steps=16)
        assert res["ig"].shape == tuple(x.shape) and np.isfinite(res["ig"]).all()
        assert res["cam"] is not None and res["cam"].shape == (4, 1, 32, 32)
    assert [n for n, _, _ in m.cam_layers()] == ["layer1", "layer2", "layer3", "layer4"]


def test_state_dict_round_trip(task):
    m = make_method("contrastive", "tiny").fit(task)
    m2 = make_method("contrastive", "tiny").load_state_dict(m.state_dict())
    a, b = m.scores(task.x_test[:30]), m2.scores(task.x_test[:30])
    assert list(a) == list(b)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-7)


def test_bench_rows_carry_every_score_and_the_overrides(tmp_path):
    """A run with several scores adds one auroc_<score> column per further score (means
    included); rows run with other settings are rows of their own, not skipped as done."""
    import csv

    from ocvis.bench import bench, read_rows

    out = tmp_path / "t.csv"
    bench(["rotnet"], "digits", [0], [0], "tiny", out, n_train=200)
    bench(["rotnet"], "digits", [0], [0], "tiny", out, n_train=200, overrides={"epochs": 2})
    rows = read_rows(out)
    assert sorted(r["overrides"] for r in rows) == ["", "epochs=2"]
    for r in rows:
        assert r["score"] == "kde" and float(r["cpu_seconds"]) > 0
        for s in ("ocsvm", "gde", "linear_ocsvm", "rotation", "rotation_p0"):
            assert 0 <= float(r[f"auroc_{s}"]) <= 100
    means = [r for r in csv.DictReader(out.open()) if r["normal_class"] == "mean"]
    assert len(means) == 2 and all(m["auroc_rotation"] for m in means)
    bench(["rotnet"], "digits", [0], [0], "tiny", out, n_train=200, overrides={"epochs": 2})
    assert len(read_rows(out)) == 2  # done rows are skipped, settings included


def test_rotation_scores_with_and_without_test_time_augmentation(task):
    """``rotation`` = mean_k log p(k | rot_k x) over the four turns, ``rotation_p0`` =
    log p(0 | x) of the image as it is, both from the rotation head's softmax."""
    m = make_method("rotnet", "tiny").fit(task)
    x = task.x_test[:16]
    s = m.scores(x)
    bb, head = m.backbone_.eval(), m.nets["head"].eval()
    with torch.no_grad():
        logp = [torch.log_softmax(head(bb(torch.rot90(x, k, (2, 3)))), 1)[:, k].double()
                for k in range(4)]
    np.testing.assert_allclose(s["rotation_p0"], logp[0].numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(s["rotation"], torch.stack(logp).mean(0).numpy(), rtol=1e-4,
                               atol=1e-5)
    assert not np.allclose(s["rotation"], s["rotation_p0"])


def test_rows_gain_the_scores_added_after_they_ran(tmp_path, monkeypatch):
    """A row run before a method gained a score gets its column from the stored model (no
    retraining), the run gets the score too, and the other columns stay as they were."""
    from ocvis.bench import add_missing_scores, bench, read_rows
    from ocvis.experiment import load_run_method, task_of_run
    from ocvis.methods import two_stage
    from ocvis.runs import RunStore

    out, store = tmp_path / "t.csv", RunStore(tmp_path / "runs")
    with monkeypatch.context() as mp:  # the method as it was: one rotation score
        mp.setattr(two_stage, "ROTATION_TURNS", {"rotation": (0, 1, 2, 3)})
        mp.setattr(two_stage.RotNet, "extra_scores", ("rotation",))
        bench(["rotnet"], "digits", [0], [0], "tiny", out, n_train=200, store=store)
    before = read_rows(out)[0]
    assert "auroc_rotation_p0" not in before
    assert add_missing_scores(out, store) == 1
    after = read_rows(out)[0]
    assert {k: v for k, v in after.items() if k != "auroc_rotation_p0"} == before
    meta = store.read(after["run_id"])
    task = task_of_run(meta)
    fresh = load_run_method(store, after["run_id"]).scores(task.x_test)["rotation_p0"]
    auroc = evaluate(fresh, task.y_test)["auroc"]
    assert float(after["auroc_rotation_p0"]) == pytest.approx(100 * auroc, abs=0.01)
    assert meta["metrics_by_score"]["rotation_p0"]["auroc"] == pytest.approx(auroc)
    np.testing.assert_allclose(store.arrays(after["run_id"])["test_scores.rotation_p0"], fresh)
    assert add_missing_scores(out, store) == 0  # nothing left to add


def _first_bn_input_mean(m, x) -> tuple[torch.Tensor, torch.Tensor]:
    """The first backbone batch norm's running mean, and the channel mean of its input over
    the clean images ``x`` (the network in eval mode)."""
    bn = next(b for b in m.backbone_.modules() if isinstance(b, torch.nn.BatchNorm2d))
    seen = []
    h = bn.register_forward_pre_hook(lambda mod, inp: seen.append(inp[0].detach()))
    try:
        m.embed(x)
    finally:
        h.remove()
    return bn.running_mean.clone(), torch.cat(seen).mean((0, 2, 3))


def test_batch_norm_statistics_come_from_training_or_the_clean_images(task):
    """``bn_stats="clean"`` re-estimates the backbone's statistics on the clean training
    images (the running mean is then their channel mean); ``"training"`` (the default, the
    authors' code) keeps the averages of the augmented, rotated training views, which differ."""
    x = task.x_train
    clean = make_method("rotnet", "tiny", bn_stats="clean").fit(task)
    running, data = _first_bn_input_mean(clean, x)
    torch.testing.assert_close(running, data, atol=1e-4, rtol=1e-4)
    trained = make_method("rotnet", "tiny").fit(task)
    assert trained.config.bn_stats == "training"
    running, data = _first_bn_input_mean(trained, x)
    assert (running - data).abs().max() > 1e-3


def test_runs_stored_before_bn_stats_reload_as_clean(tmp_path):
    """A stored config without ``bn_stats`` was trained with the statistics re-estimated on
    the clean images, so it reloads as ``"clean"``; a config that has it keeps it."""
    from ocvis.bench import bench, read_rows
    from ocvis.experiment import load_run_method
    from ocvis.runs import RunStore

    out, store = tmp_path / "t.csv", RunStore(tmp_path / "runs")
    bench(["rotnet"], "digits", [0], [0], "tiny", out, n_train=200, store=store)
    rid = read_rows(out)[0]["run_id"]
    assert load_run_method(store, rid).config.bn_stats == "training"
    cfg = dict(store.read(rid)["config"])
    del cfg["bn_stats"]
    store.update(rid, config=cfg)
    assert load_run_method(store, rid).config.bn_stats == "clean"


def test_contrastive_loss_is_float32_under_autocast():
    """Under bfloat16 autocast (a training step's) the similarities are still computed in
    float32: the loss equals the float32 one."""
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(16, 32, generator=g), torch.randn(16, 32, generator=g)
    for kind in ("one-way", "nt-xent"):
        plain = contrastive_loss(z1, z2, 0.2, kind)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = contrastive_loss(z1.bfloat16(), z2.bfloat16(), 0.2, kind)
            rounded = contrastive_loss(z1.bfloat16().float(), z2.bfloat16().float(), 0.2, kind)
        assert mixed.dtype == torch.float32
        assert float(mixed) == pytest.approx(float(rounded), abs=1e-6)  # no rounding inside
        assert float(mixed) == pytest.approx(float(plain), rel=2e-2)


def test_a_run_stored_before_bn_stats_is_a_repetition_of_a_clean_run():
    """Evaluate groups repetitions by the config as :func:`stored_config` reads it: a run
    stored without ``bn_stats`` (trained with the clean statistics) is the same setting as
    a new ``bn_stats="clean"`` run and another setting than a ``"training"`` run; the seed
    does not separate them."""
    from ocvis.experiment import stored_config
    from ocvis.methods import preset_values
    from ocvis.ui.evaluate import setting_of

    old = {k: v for k, v in preset_values("rotnet", "tiny").items() if k != "bn_stats"}

    def meta(seed, **cfg):
        return {"method": "rotnet", "preset": "tiny", "task": {"protocol": "one-class"},
                "config": {**cfg, "seed": seed}}

    assert stored_config(meta(0, **old))[1].bn_stats == "clean"
    assert setting_of(meta(0, **old)) == setting_of(meta(1, **old, bn_stats="clean"))
    assert setting_of(meta(0, **old)) != setting_of(meta(0, **old, bn_stats="training"))
    # a very old run without a stored config: its preset and overrides
    bare = {"method": "rotnet", "preset": "tiny", "overrides": {"epochs": 3}}
    assert stored_config(bare)[1].epochs == 3
