"""Methods: a small end-to-end fit on digits beats a random score; persistence; errors."""
import io
import numpy as np
import pytest
import torch

from ocvis.data import OcvisWarning, make_task
from ocvis.errors import DataError
from ocvis.methods import METHODS, config_fields, get_method, make_method
from ocvis.metrics import evaluate


@pytest.fixture(scope="module")
def task():
    return make_task("digits", "one-class", 0, seed=0)


@pytest.mark.parametrize("name", ["original", "pca", "hog"])
def test_shallow_baselines(task, name):
    m = make_method(name).fit(task)
    r = evaluate(m.score_samples(task.x_test), task.y_test, task.val_mask)
    assert r["auroc"] > 0.8
    assert len(m.history) == 0


def test_feature_lengths_match_paper():
    x = torch.rand(3, 1, 32, 32)
    assert make_method("original").embed(x).shape == (3, 784)
    assert make_method("hog").embed(x).shape == (3, 144)
    assert make_method("hog").embed(torch.rand(3, 3, 32, 32)).shape == (3, 324)
    assert make_method("original").embed(torch.rand(3, 3, 32, 32)).shape == (3, 3072)


def test_ics_end_to_end_beats_random(task):
    m = make_method("ics", "cpu", pretrain_epochs=6, epochs=4, min_steps=0, reuse_pretrain=False)
    m.fit(task)
    s = m.score_samples(task.x_test)
    assert s.shape == (len(task.x_test),) and np.isfinite(s).all()
    assert evaluate(s, task.y_test)["auroc"] > 0.7
    assert m.embed(task.x_test[:5]).shape == (5, 64)
    stages = {r["stage"] for r in m.history.records}
    assert stages == {"pretrain", "joint"}
    joint = [r for r in m.history.records if r["stage"] == "joint"]
    assert set(joint[0]["losses"]) == {"rec", "cls", "disp1", "disp2", "l2", "total"}
    # split: lowest 10 % SSIM are atypical
    sp = m.split_
    assert sp.atypical.sum() == int(0.1 * len(task.x_train))
    assert sp.similarity[sp.atypical].max() <= sp.similarity[sp.typical].min()


def test_state_dict_roundtrip(task):
    m = make_method("ics", "tiny", reuse_pretrain=False).fit(task)
    sd = m.state_dict()
    # tensors, plus the networks' build arguments as plain values
    assert all(isinstance(v, torch.Tensor) for k, v in sd.items() if k != "net.net_args")
    assert sd["net.net_args"] == {"model": {"kind": "paper_ae", "in_channels": 1,
                                            "latent_dim": 64}}
    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    sd = torch.load(buf, weights_only=True)  # what the run store does
    m2 = make_method("ics", "tiny").load_state_dict(sd)
    np.testing.assert_allclose(m2.score_samples(task.x_test[:20]),
                               m.score_samples(task.x_test[:20]), rtol=1e-5, atol=1e-6)
    p = make_method("pca").fit(task)
    p2 = make_method("pca").load_state_dict(p.state_dict())
    np.testing.assert_allclose(p2.score_samples(task.x_test), p.score_samples(task.x_test))


def test_seeded_fit_is_deterministic(task):
    a = make_method("cls", "tiny", reuse_pretrain=False, seed=3).fit(task)
    b = make_method("cls", "tiny", reuse_pretrain=False, seed=3).fit(task)
    assert [r["losses"]["total"] for r in a.history.records] == \
        [r["losses"]["total"] for r in b.history.records]


def test_pretrain_cache_is_reused(task, tmp_path, monkeypatch):
    # a cache of its own: other tests train the same stage 1 into the session's cache
    monkeypatch.setenv("OCVIS_CACHE_DIR", str(tmp_path))
    a = make_method("cae", "tiny").fit(task)
    b = make_method("ics", "tiny").fit(task)
    assert not a.pretrain_reused_ and b.pretrain_reused_
    pa = [r for r in a.history.records if r["stage"] == "pretrain"]
    pb = [r for r in b.history.records if r["stage"] == "pretrain"]
    assert pa == pb


def test_zero_atypical_falls_back_with_warning(task):
    m = make_method("ics", "tiny", rho=0.0, reuse_pretrain=False)
    with pytest.warns(OcvisWarning, match="atypical"):
        m.fit(task)
    assert "disp1" not in m.history.records[-1]["losses"]


def test_config_validation_and_fields():
    with pytest.raises(DataError, match="rho"):
        make_method("ics", "tiny", rho=150.0).fit(make_task("digits", "one-class", 1))
    with pytest.raises(DataError, match="unknown method"):
        get_method("nope")
    with pytest.raises(DataError, match="unknown preset"):
        make_method("ics", "huge")
    names = [f["name"] for f in config_fields(get_method("ics").Config)]
    assert {"alpha", "beta1", "beta2", "rho", "detector", "nu", "epochs"} <= set(names)
    for cls in METHODS.values():
        assert cls.paper and cls.title and {"paper", "cpu"} <= set(cls.presets)


def test_unfitted_and_too_small():
    with pytest.raises(DataError, match="not fitted"):
        make_method("pca").score_samples(torch.rand(2, 1, 32, 32))
    with pytest.raises(DataError, match="at least two"):
        make_method("ics", "tiny").fit(torch.rand(1, 1, 32, 32))


@pytest.mark.parametrize("det", ["kde", "gde", "iforest"])
def test_other_detectors(task, det):
    m = make_method("pca", detector=det).fit(task)
    r = evaluate(m.score_samples(task.x_test), task.y_test)
    assert r["auroc"] > 0.7


@pytest.mark.parametrize("mode", ["paired", "mixed"])
def test_ics_batch_modes(task, mode):
    m = make_method("ics", "tiny", batch_mode=mode, reuse_pretrain=False).fit(task)
    joint = [r for r in m.history.records if r["stage"] == "joint"]
    assert joint and all(r["losses"]["disp1"] <= 0 and r["losses"]["disp2"] <= 0
                         for r in joint)
    # paired: an epoch is a pass over the typical images; mixed: over all of them
    n_typ = int(m.split_.typical.sum())
    n = n_typ if mode == "paired" else len(task.x_train)
    assert joint[0]["steps"] == -(-n // 64) - (1 if n % 64 == 1 else 0)


def test_min_steps_raises_epochs_on_small_sets(task):
    m = make_method("cae", "tiny", min_steps=10, reuse_pretrain=False).fit(task)
    steps = {st: sum(1 for r in m.history.records if r["stage"] == st)
             for st in ("pretrain", "joint")}
    assert steps["pretrain"] >= 10 and steps["joint"] >= 10
    big = make_method("cae", "tiny", min_steps=10)
    assert big.epochs_for(1, 63) == 1 and big.epochs_for(1, 2) == 5 and \
        big.epochs_for(0, 2) == 0
