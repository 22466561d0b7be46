"""E3Outlier (Wang et al. 2019): the 111 surrogate operations, the score formulas, the
contamination labels kept away from fit, a fit on digits, and the CAE baselines' scores."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from ocvis.data import make_task
from ocvis.methods import make_method
from ocvis.metrics import evaluate
from ocvis.surrogate_ops import apply_op, apply_ops, invert_right_angle, operation_set

from bench_scripts import load


@pytest.fixture(scope="module")
def task():
    return make_task("digits", "unsupervised", 0, ratio=10.0)


def test_111_distinct_operations_identity_first():
    assert [len(operation_set(s)) for s in ("ra", "ra+ia", "all")] == [72, 88, 111]
    ops = operation_set("all")
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert torch.equal(apply_op(x, ops[0]), x)
    outs = torch.cat([apply_op(x, op) for op in ops]).flatten(1)
    assert outs.shape == (111, 3 * 32 * 32)
    d = torch.cdist(outs, outs)
    d.fill_diagonal_(float("inf"))
    assert float(d.min()) > 1.0  # every pair of transformed images differs
    assert len({op.label() for op in ops}) == 111


def test_right_angle_operations_are_invertible_and_batched_ops_match():
    ops = operation_set("ra")
    x = torch.rand(4, 1, 32, 32)
    exact = [op for op in ops if not op.tx and not op.ty]
    assert len(exact) == 8  # flip x 4 quarter turns
    for op in exact:
        assert torch.equal(invert_right_angle(apply_op(x, op), op), x)
    t = torch.tensor([5, 0, 71, 5])
    y = apply_ops(x, t, ops)
    for i in range(4):
        assert torch.equal(y[i], apply_op(x[i:i + 1], ops[int(t[i])])[0])
    # a shift moves the content by a quarter of the side (reflected border)
    right = next(op for op in ops if op.tx == 1 and not op.ty and not op.k and not op.flip)
    assert torch.equal(apply_op(x, right)[..., 8:], x[..., :24])


def test_score_formulas_on_a_hand_made_probability_table():
    from ocvis.methods.e3outlier import op_scores

    p = torch.tensor([[0.7, 0.2, 0.1], [1.0, 0.0, 0.0]], dtype=torch.float64)
    s = op_scores(p.log(), torch.tensor([1, 0]))  # log 0 = -inf in row 2
    assert torch.allclose(s["pl"], torch.tensor([0.2, 1.0], dtype=torch.float64))
    assert torch.allclose(s["mp"], torch.tensor([0.7, 1.0], dtype=torch.float64))
    ne = 0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1)
    assert torch.allclose(s["ne"], torch.tensor([ne, 0.0], dtype=torch.float64))
    assert all(torch.isfinite(v).all() for v in s.values())


def test_contamination_labels_never_reach_fit(task, monkeypatch):
    from ocvis.methods.e3outlier import E3Outlier

    seen = []
    orig = E3Outlier._fit

    def spy(self, x, hooks):
        seen.append(x)
        return orig(self, x, hooks)

    monkeypatch.setattr(E3Outlier, "_fit", spy)
    a = make_method("e3outlier", "tiny").fit(task)
    flipped = replace(task, y_train_hidden=1 - task.y_train_hidden, y_test=1 - task.y_test,
                      train_classes=np.zeros_like(task.train_classes))
    b = make_method("e3outlier", "tiny").fit(flipped)
    assert all(isinstance(v, torch.Tensor) and v.shape == task.x_train.shape for v in seen)
    for k in ("ne", "pl", "mp", "ssd_iforest"):
        assert np.array_equal(a.train_scores_[k], b.train_scores_[k])


def test_fit_on_digits_beats_random(task):
    m = make_method("e3outlier", "tiny", epochs=3, ops_per_image=8).fit(task)
    s = m.scores(task.x_test)  # the transductive set: scores reused from the fit
    assert list(s) == ["ne", "pl", "mp", "ssd_iforest"]
    assert all(np.isfinite(v).all() for v in s.values())
    assert evaluate(s["ne"], task.y_test)["auroc"] > 0.6
    fresh = m.scores(task.x_test.clone())  # another tensor: computed again, same values
    assert np.allclose(fresh["ne"], s["ne"])
    assert m._score_views() == (64 if m.device_.type == "cpu" else 1024)  # the default
    for views in (1, 1024):  # one operation of the batch's images a pass; 16 a pass
        m.config.score_views = views
        other = m._op_scores(task.x_test.clone())
        for name in ("ne", "pl", "mp"):
            assert np.allclose(other[name], s[name], rtol=0, atol=1e-5), name  # float32 net
    m.config.score_views = 0
    from ocvis.explain import Explainer

    res = Explainer(m, "ne").explain(task.x_test[:2], n_steps=4)
    assert np.isfinite(res["ig"]).all()


def test_cae_baselines_store_the_reconstruction_error(task):
    m = make_method("cae-iforest", "tiny").fit(task)
    assert m.config.detector == "iforest"
    s = m.scores(task.x_test[:50])
    assert set(s) == {"score", "reconstruction"} and (s["reconstruction"] <= 0).all()
    assert set(m.train_scores_) == {"score", "reconstruction"}
    # one CAE run stores CAE-IF too: its Isolation Forest is cae-iforest's primary score
    cae = make_method("cae", "tiny").fit(task)
    c = cae.scores(task.x_test[:50])
    assert list(c) == ["score", "reconstruction", "iforest"]
    assert np.allclose(c["reconstruction"], s["reconstruction"], atol=1e-6)
    assert np.allclose(c["iforest"], s["score"], atol=1e-9)
    assert not np.allclose(c["score"], c["iforest"])  # the OC-SVM is another detector
    assert np.allclose(cae.train_scores_["iforest"], m.train_scores_["score"], atol=1e-9)
    # restored from its state (detectors refitted on the stored features): the same scores
    again = make_method("cae", "tiny")
    again.load_state_dict(cae.state_dict())
    r = again.scores(task.x_test[:50])
    assert all(np.allclose(r[k], c[k], atol=1e-9) for k in c)
    assert set(again.train_scores_) == set(c)


def test_e3_table_puts_each_class_beside_its_baselines_and_the_paper_mean(tmp_path):
    head = ("dataset,protocol,method,normal_class,class_name,seed,score,auroc,aupr_in,aupr_out,"
            "cpu_seconds,overrides,auroc_reconstruction,auroc_pl,auroc_mp,auroc_ssd_iforest,"
            "auroc_iforest\n")
    rows = [
        "cifar10,unsupervised-10,e3outlier,1,automobile,0,ne,80,97,40,900,,,70,75,60,",
        "cifar10,unsupervised-10,cae,1,automobile,0,score,50,,,600,,55,,,,99",
        "cifar10,unsupervised-10,cae-iforest,1,automobile,0,score,85,,,300,,55,,,,",
        "cifar10,unsupervised-10,e3outlier,0,airplane,0,ne,60,93,11,967,,,65,62,51,",
        "cifar10,unsupervised-10,cae,0,airplane,0,score,61,,,624,,68,,,,",
        "cifar10,unsupervised-10,cae-iforest,0,airplane,0,score,65,,,364,,68,,,,",
        # CAE-IF from the cae run's own Isolation Forest: no cae-iforest row for cat
        "cifar10,unsupervised-10,e3outlier,3,cat,0,ne,70,90,20,950,,,60,61,52,",
        "cifar10,unsupervised-10,cae,3,cat,0,score,58,,,610,,65,,,,72",
        # left out: another ratio, another seed, other settings, a class without baselines
        "cifar10,unsupervised-20,e3outlier,0,airplane,0,ne,10,,,1,,,,,,",
        "cifar10,unsupervised-10,e3outlier,0,airplane,1,ne,10,,,1,,,,,,",
        "cifar10,unsupervised-10,e3outlier,0,airplane,0,ne,10,,,1,ops_per_image=72,,,,,",
        "cifar10,unsupervised-10,e3outlier,2,bird,0,ne,99,,,1,,,,,,",
    ]
    (tmp_path / "t.csv").write_text(head + "\n".join(rows) + "\n")
    mod = load("e3_table")
    t = mod.e3_tables([str(tmp_path / "t.csv")])["cifar10"]
    assert list(t["class"]) == ["0 airplane", "1 automobile", "2 bird", "3 cat"]
    assert list(t["ne"]) == [60.0, 80.0, 99.0, 70.0] and list(t["cae"][:2]) == [68.0, 55.0]
    # a cae-iforest row wins over the cae run's forest (automobile: 85, not 99)
    assert list(t["cae_if"][[0, 1, 3]]) == [65.0, 85.0, 72.0] and np.isnan(t["cae_if"][2])
    assert list(t["ssd_if"][:2]) == [51.0, 60.0]
    assert list(t["cae_ocsvm"][:2]) == [61.0, 50.0] and np.isnan(t["cae"][2])
    text = mod.markdown("cifar10", t)
    # the mean is over the three classes with every method: (60 + 80 + 70) / 3, not bird's 99
    assert "| **mean** (3 classes) | **70.00** |" in text
    assert "| paper (all classes) | 83.50 |" in text  # the paper's CIFAR-10 mean at 10 %
    assert "NE ahead of CAE on 2 of 3 classes" in text
    assert "NE ahead of CAE-IF on 0 of 3 classes" in text
    assert "NE mean -13.50 from the paper's 83.5" in text
    with pytest.raises(SystemExit, match="no unsupervised-5 rows"):
        mod.e3_tables([str(tmp_path / "t.csv")], ratio=5)
    # at 20 % there is only E3Outlier: its mean and gap are given, the baselines named absent
    t20 = mod.e3_tables([str(tmp_path / "t.csv")], ratio=20)["cifar10"]
    text20 = mod.markdown("cifar10", t20, ratio=20)
    assert "| **mean** (1 class) | **10.00** |" in text20
    assert "no CAE rows at 20 %" in text20 and "NE mean" in text20
