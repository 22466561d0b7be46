"""CLAD (Park et al. 2021): DEC's soft assignment and target, the stopping rule, ODIN,
deterministic pseudo-labels, a fit on the digits' latent-multiclass scenario, bench rows of
scenarios and the papers' numbers of a baseline used by two papers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ocvis.data import make_task
from ocvis.methods import make_method
from ocvis.metrics import evaluate
from ocvis.nets.clad_net import soft_assignment, target_distribution

# the cpu preset, smaller: the autoencoder is trained enough (60 steps) for DEC to find
# several clusters on the digits and the classifier to be confident on the normal ones
FIT = {"pretrain_epochs": 1, "dec_epochs": 10, "epochs": 1, "clusters": 5, "kmeans_init": 5,
       "classifier_width": 0.25}
QUICK = {"min_steps": 0, "pretrain_epochs": 2, "dec_epochs": 3, "epochs": 1, "clusters": 4,
         "kmeans_init": 2, "ae_batch_size": 128, "dec_max_share": 1.0}


@pytest.fixture(scope="module")
def cur():
    return make_task("digits", "latent-multiclass", "CUR")


@pytest.fixture(scope="module")
def fitted(cur):
    return make_method("clad", "cpu", **FIT).fit(cur)


def test_soft_assignment_and_target_on_a_hand_made_example():
    z = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    mu = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    q = soft_assignment(z, mu)  # q_ij ~ 1 / (1 + d^2): [1, 1/5] per row
    assert torch.allclose(q, torch.tensor([[1 / 1.2, 0.2 / 1.2], [0.2 / 1.2, 1 / 1.2]]))
    p = target_distribution(q)  # f_j = 1 for both clusters: p ~ q^2 = [1, 1/25]
    assert torch.allclose(p, torch.tensor([[1 / 1.04, 0.04 / 1.04], [0.04 / 1.04, 1 / 1.04]]))
    assert torch.allclose(p.sum(1), torch.ones(2))
    # the target favours the small cluster: frequencies f = (2 q, ...) lower p of a big one
    q2 = torch.tensor([[0.6, 0.4], [0.6, 0.4], [0.5, 0.5]])
    p2 = target_distribution(q2)
    f = q2.sum(0)
    w = q2 ** 2 / f
    assert torch.allclose(p2, w / w.sum(1, keepdim=True))
    assert (p2[:2, 0] > q2[:2, 0]).all()  # sharpened towards the nearer centre


def test_odin_perturbation_raises_the_maximum_softmax():
    from ocvis.methods.clad import _Classifier, _MaxSoftmax, odin_perturb

    torch.manual_seed(0)
    clf = _Classifier("resnet", 1, 5, (1, 1, 1, 1), 0.125).eval()
    x = torch.rand(32, 1, 32, 32)
    tempered = _MaxSoftmax(clf, 1000.0)
    with torch.no_grad():
        before = tempered(x)
    x_t = odin_perturb(clf, x, 1000.0, 0.002)
    assert (x_t - x).abs().max() <= 0.002 + 1e-7
    with torch.no_grad():
        after = tempered(x_t)
    assert (after > before).float().mean() >= 0.9
    assert float((after - before).mean()) > 0


def test_fit_beats_random_and_pseudo_labels_are_deterministic(fitted, cur):
    m = fitted
    scores = m.scores(cur.x_test)
    assert list(scores) == ["odin", "msp"]
    assert evaluate(scores["odin"], cur.y_test)["auroc"] > 0.6
    a, b = m.pseudo_labels(cur.x_train), m.pseudo_labels(cur.x_train)
    assert np.array_equal(a, b)  # the latent mean, never a sample
    assert np.array_equal(a, m.train_pseudo_labels_)
    cols = m.sample_columns(cur.x_test[:20])
    assert set(cols) == {"pseudo_label", "predicted_label"}
    assert cols["pseudo_label"].dtype == np.int64 and cols["pseudo_label"].max() < 5
    info = m.fit_info()
    assert sum(info["clusters"]["sizes"]) == len(cur.x_train)
    assert info["dec"]["epochs_run"] == len(info["dec"]["labels_changed"])


def test_dec_stopping_rule(cur):
    stop_at_once = make_method("clad", "tiny", **{**QUICK, "dec_tol": 1.0}).fit(cur)
    dec = stop_at_once.fit_info()["dec"]
    assert dec["epochs_run"] == 1 and dec["stopped_by_rule"]
    never = make_method("clad", "tiny", **{**QUICK, "dec_tol": 0.0}).fit(cur)
    dec = never.fit_info()["dec"]
    assert dec["epochs_run"] == 3 and not dec["stopped_by_rule"]


def test_collapse_guard_keeps_the_last_epoch_under_the_share():
    from ocvis.methods.clad import _CollapseGuard, largest_share

    assert largest_share(torch.tensor([0, 0, 0, 1])) == 0.75
    net = torch.nn.Linear(2, 2)
    w0 = net.weight.detach().clone()
    guard = _CollapseGuard(0.6, [net], torch.tensor([0, 0, 1, 1]))
    with torch.no_grad():
        net.weight.add_(1.0)  # an epoch that stays under the share is the one to keep
    w1 = net.weight.detach().clone()
    assert not guard.collapsed(torch.tensor([0, 1, 1, 2]))
    with torch.no_grad():
        net.weight.add_(1.0)  # then one that puts 3 of 4 images into one cluster
    assert guard.collapsed(torch.tensor([1, 1, 1, 2])) and guard.fired
    assert guard.restore().tolist() == [0, 1, 1, 2]
    assert torch.equal(net.weight, w1) and not torch.equal(net.weight, w0)
    off = _CollapseGuard(1.0, [net], torch.tensor([0, 1]))
    assert not off.collapsed(torch.tensor([0, 0])) and not off.fired


def test_dec_guard_in_a_fit_restores_nets_and_labels_together(cur):
    """With a share no clustering of the digits meets, the guard fires after DEC's first
    epoch and puts k-means' encoder and centres back: the kept pseudo-labels are what the
    restored nets predict."""
    m = make_method("clad", "tiny", **{**QUICK, "dec_max_share": 0.1}).fit(cur)
    dec = m.fit_info()["dec"]
    assert dec["stopped_by_guard"] and not dec["stopped_by_rule"] and dec["epochs_run"] == 1
    assert len(dec["largest_share"]) == 1 and dec["largest_share"][0] > 0.1
    assert np.array_equal(m.pseudo_labels(cur.x_train), m.train_pseudo_labels_)


def test_collapsed_clusters_are_flagged(cur, monkeypatch):
    from ocvis.bench import detector_columns
    from ocvis.methods.clad import CLAD

    m = make_method("clad", "tiny")
    m.train_pseudo_labels_ = np.zeros(len(cur.x_train), np.int64)
    info = CLAD.fit_info(m)
    assert not info["detector"]["converged"] and "one cluster" in info["detector"]["problem"]
    assert detector_columns(info)["detector_ok"] == 0


def test_state_dict_round_trip(fitted, cur):
    from ocvis.methods.clad import CLAD

    sd = fitted.state_dict()
    m2 = CLAD(fitted.config).load_state_dict(sd)
    x = cur.x_test[:16]
    for k, v in fitted.scores(x).items():
        assert np.allclose(m2.scores(x)[k], v)
    assert np.array_equal(m2.pseudo_labels(x), fitted.pseudo_labels(x))
    assert m2.fit_info()["dec"] == fitted.fit_info()["dec"]


def test_explanations_through_the_classifier(fitted, cur):
    from ocvis.explain import Explainer

    assert set(fitted.explain_heads) == {"msp", "tempered"}
    res = Explainer(fitted, "msp").explain(cur.x_test[:3], n_steps=8)
    assert res["ig"].shape == tuple(cur.x_test[:3].shape) and np.isfinite(res["ig"]).all()


def test_bench_rows_of_scenarios_and_baseline_paper_numbers(tmp_path):
    from ocvis.bench import bench, read_rows
    from ocvis.papers import paper_value

    out = tmp_path / "t.csv"
    bench(["pca"], "digits", ["CUR", "MIX"], [0], "cpu", out, protocol="latent-multiclass")
    rows = read_rows(out)
    assert sorted(r["normal_class"] for r in rows) == ["CUR", "MIX"]
    assert {r["protocol"] for r in rows} == {"latent-multiclass"}
    bench(["pca"], "digits", [0], [0], "cpu", out)  # a one-class row of class 0 is another row
    assert len(read_rows(out)) == 3
    # Deep SVDD is a baseline of two papers; CIFAR-10 classes are named in CLAD's tables
    assert paper_value("deep-svdd", "mnist", "CUR") == 81.7
    assert paper_value("deep-svdd", "mnist", 0) == 98.0
    assert paper_value("clad", "cifar10", 3) == 60.1


def test_pseudo_label_agreement_with_the_latent_classes_in_run_and_row(tmp_path):
    """A scenario run records how far its pseudo-labels follow the true latent classes (NMI on
    the training images, measured after fit); the bench row carries it, a table written
    before the column existed gains it from the stored runs, and a one-class run has none."""
    import csv

    from ocvis.bench import add_label_agreement, bench, read_rows
    from ocvis.metrics import label_agreement
    from ocvis.runs import RunStore

    store, out = RunStore(tmp_path / "runs"), tmp_path / "t.csv"
    bench(["clad"], "digits", ["CUR", 0], [0], "tiny", out, store=store,
          protocol="latent-multiclass")
    rows = {r["normal_class"]: r for r in read_rows(out)}
    meta = store.read(rows["CUR"]["run_id"])
    arr = store.arrays(rows["CUR"]["run_id"])
    want = label_agreement(arr["train_col.pseudo_label"], arr["train_classes"])
    assert meta["column_nmi"]["pseudo_label"] == pytest.approx(want)
    assert 0.0 <= want <= 1.0
    assert float(rows["CUR"]["nmi_pseudo_label"]) == pytest.approx(want, abs=5e-4)
    # class 0 alone as a latent-multiclass task: one true class, nothing to agree with
    assert "column_nmi" not in store.read(rows["0"]["run_id"])
    assert not rows["0"].get("nmi_pseudo_label")

    # an older table: the column blanked out comes back from the stored run
    table = read_rows(out)
    with out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(table[0]))
        w.writeheader()
        w.writerows({**r, "nmi_pseudo_label": "", "nmi_predicted_label": ""} for r in table)
    assert add_label_agreement(out, store) == 1
    again = {r["normal_class"]: r for r in read_rows(out)}
    assert again["CUR"]["nmi_pseudo_label"] == rows["CUR"]["nmi_pseudo_label"]
    assert add_label_agreement(out, store) == 0  # nothing left to add
