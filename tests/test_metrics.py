import math

import numpy as np
import pytest

from ocvis.errors import DataError
from ocvis.metrics import balanced_accuracy, best_threshold, curves, evaluate, label_agreement


def test_perfect_and_inverted_scores():
    y = np.array([0, 0, 0, 1, 1])
    normal = np.array([5.0, 4.0, 3.0, 1.0, 0.0])
    r = evaluate(normal, y)
    assert r["auroc"] == 1.0 and r["aupr_in"] == 1.0 and r["aupr_out"] == 1.0
    assert r["bacc"] == 1.0
    assert evaluate(-normal, y)["auroc"] == 0.0


def test_hand_computed_auroc_and_bacc():
    y = np.array([0, 1, 0, 1])
    s = np.array([0.9, 0.8, 0.3, 0.1])  # anomaly -0.9, -0.8, -0.3, -0.1
    # pairs (abnormal, normal) ranked right: (1:-0.8 vs 0:-0.9) yes, vs (2:-0.3) no;
    # (3:-0.1) beats both -> 3 of 4
    assert evaluate(s, y)["auroc"] == pytest.approx(0.75)
    assert balanced_accuracy(y, np.array([0, 1, 1, 1])) == pytest.approx(0.75)


def test_threshold_from_validation_part():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(500), np.ones(500)].astype(int)
    s = rng.normal(size=1000) - 2 * y
    val = np.zeros(1000, bool)
    val[rng.choice(1000, 200, replace=False)] = True
    r = evaluate(s, y, val)
    assert r["threshold_on"] == "validation"
    t = best_threshold(-s[val], y[val])
    expect = balanced_accuracy(y[~val], -s[~val] >= t)
    assert r["bacc"] == pytest.approx(expect)
    assert 0.75 < r["bacc"] < 0.9


def test_single_label_gives_nan_with_message():
    r = evaluate(np.arange(4.0), np.zeros(4, int))
    assert math.isnan(r["auroc"]) and "only normal" in r["message"]


def test_nan_scores_are_an_error():
    with pytest.raises(DataError, match="NaN"):
        evaluate(np.array([0.0, np.nan]), np.array([0, 1]))


def test_curves_shapes():
    c = curves(np.array([3.0, 2.0, 1.0, 0.0]), np.array([0, 0, 1, 1]))
    assert c["fpr"][0] == 0 and c["tpr"][-1] == 1 and len(c["precision"]) == len(c["recall"])


def test_label_agreement_on_hand_made_groupings():
    classes = np.array([0, 0, 1, 1, 2, 2])
    # the same partition under other names: 1; a partition that cuts across every class: 0
    assert label_agreement(np.array([5, 5, 3, 3, 4, 4]), classes) == pytest.approx(1.0)
    assert label_agreement(np.array([0, 1, 0, 1, 0, 1]), classes) == pytest.approx(0.0)
    # one cluster for everything says nothing about the classes; a finer split is partial
    assert label_agreement(np.zeros(6, int), classes) == pytest.approx(0.0)
    assert 0.0 < label_agreement(np.array([0, 0, 1, 1, 1, 1]), classes) < 1.0
    # a single true class: there are no latent classes to find
    assert label_agreement(np.array([0, 1, 0, 1]), np.zeros(4, int)) is None
    with pytest.raises(DataError):
        label_agreement(np.zeros(3, int), classes)

