"""The one Method interface: a method that is not features + detector (its score is its own
network's output, several scores, a per-sample column) appears in Train, Evaluate, Latent
and Explain with no page-specific code; configs load tolerantly; runs stored by the code
before the interface change still open in every page."""
from __future__ import annotations

import math
import os
import re
import sys
import tarfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from ocvis.errors import DataError, OcvisWarning
from ocvis.runs import RunStore
from waiting import GENEROUS, wait_until

ROOT = Path(__file__).resolve().parents[1]
PAGES = ROOT / "pages"
LEGACY = Path(__file__).parent / "data" / "legacy_runs_v0.tar.xz"


@pytest.fixture(autouse=True)
def _fresh(fresh_streamlit):
    yield


@pytest.fixture
def plugin(monkeypatch):
    """Register the test plugin the way a lab's method is registered, and remove it after."""
    from ocvis import methods

    tests_dir = str(Path(__file__).parent)
    monkeypatch.setenv("OCVIS_METHOD_PLUGINS", "ocvis_test_plugin")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [tests_dir, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    sys.modules.pop("ocvis_test_plugin", None)  # imported afresh: registers again
    assert methods.load_plugins() == ["ocvis_test_plugin"]
    yield methods.get_method("test-rotnet")
    methods.METHODS.pop("test-rotnet", None)


def _page(name: str, **state) -> AppTest:
    at = AppTest.from_file(str(PAGES / name), default_timeout=180)
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    assert not at.exception, at.exception
    return at


def test_plugin_method_in_every_page(plugin):
    from ocvis.ui.jobs import job_manager

    # Train: the generated form, a job, live curves, a stored run with both scores
    at = _page("3_Train.py")
    at.selectbox(key="train_method").set_value("test-rotnet").run()
    at.selectbox(key="train_preset").set_value("tiny").run()
    assert not at.exception
    at.button[0].click().run()
    job = job_manager().get(at.session_state["train_job"])
    assert job_manager().wait(job, GENEROUS).status == "done", job.error
    run = RunStore().read(job.run_id)
    assert run["score_names"] == ["p_upright", "rotation_mean"]
    assert set(run["metrics_by_score"]) == {"p_upright", "rotation_mean"}
    assert run["metrics"] == run["metrics_by_score"]["p_upright"]
    assert {h["stage"] for h in RunStore().history(job.run_id)} == {"rotation"}
    arr = RunStore().arrays(job.run_id)
    assert {"test_scores.p_upright", "test_scores.rotation_mean",
            "test_col.predicted_rotation", "train_col.predicted_rotation"} <= set(arr)
    assert set(np.unique(arr["test_col.predicted_rotation"])) <= {0, 1, 2, 3}

    # Evaluate: both scores, switchable; the metrics follow the choice
    at = _page("5_Evaluate.py")
    score_box = at.selectbox(key="eval_score")
    assert list(score_box.options) == ["p_upright", "rotation_mean"]
    score_box.set_value("rotation_mean").run()
    assert not at.exception
    table = next(d.value for d in at.dataframe if "ours (%)" in d.value.columns)
    auroc = float(table.loc[table.metric == "AUROC", "ours (%)"].iloc[0])
    assert auroc == pytest.approx(100 * run["metrics_by_score"]["rotation_mean"]["auroc"])

    # Latent: the method's column and second score are colour choices; the PCA scatter
    at = _page("4_Latent_Space.py")
    colour = at.selectbox(key="latent_color")
    assert {"predicted_rotation", "anomaly: rotation_mean"} <= set(colour.options)
    at.selectbox(key="latent_proj").set_value("pca").run()
    at.selectbox(key="latent_color").set_value("predicted_rotation").run()
    assert not at.exception
    charts = " ".join(str(c.proto) for c in at.get("plotly_chart"))
    assert re.search(r"predicted_rotation [0-3] \(\d+\)", charts)  # one trace per label

    # Explain: only the method's own score; IG and GradCAM through its network
    at = _page("6_Explain.py")
    from ocvis.ui.explain import HEAD_NAMES

    assert list(at.selectbox(key="explain_head").options) == [HEAD_NAMES["own"]]
    assert list(at.selectbox(key="explain_layer").options) == ["conv1", "conv2"]
    assert any("completeness" in c.value for c in at.caption)

    # Overview: listed with its scores like the built-in methods
    at = AppTest.from_file(str(PAGES.parent / "app.py"), default_timeout=180).run()
    assert not at.exception, at.exception
    methods = next(d.value for d in at.dataframe if "scores" in d.value.columns)
    assert methods.set_index("method").loc["test-rotnet", "scores"] == \
        "p_upright, rotation_mean"
    job_manager().shutdown()


def test_plugin_state_dict_rebuilds_the_network(plugin):
    from ocvis.data import make_task
    from ocvis.experiment import load_run_method, run_experiment

    meta = run_experiment({"dataset": "digits", "normal": [2], "seed": 1}, "test-rotnet",
                          "tiny", store=RunStore())
    task = make_task("digits", normal=[2], seed=1)
    m = load_run_method(RunStore(), meta["id"])
    stored = RunStore().arrays(meta["id"])
    np.testing.assert_allclose(m.score_samples(task.x_test), stored["test_scores"],
                               rtol=1e-5, atol=1e-6)


def test_fit_leaves_the_global_random_state_alone(plugin):
    from ocvis.methods import make_method

    x = np.random.default_rng(0).random((40, 1, 32, 32)).astype(np.float32)
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    a = make_method("test-rotnet", "tiny", seed=5).fit(x)
    assert torch.equal(torch.rand(3), expected)
    b = make_method("test-rotnet", "tiny", seed=5).fit(x)  # and the fit is reproducible
    np.testing.assert_array_equal(a.score_samples(x), b.score_samples(x))


# --------------------------------------------------------------------------- configs
@dataclass
class _Cfg:
    from ocvis.methods.base import option

    lr: float = option(0.1, "learning rate", min=0.0)
    sizes: tuple = option((64, 32), "layer sizes", min=1)
    name: str = option("a", "a name", choices=("a", "b"))


def test_config_loading_is_tolerant_and_validated():
    from ocvis.methods.base import config_from_dict, parse_field_value, validate_config

    with pytest.warns(OcvisWarning, match="ignoring unknown setting"):
        cfg = config_from_dict(_Cfg, {"lr": 0.5, "gone": 1, "config_version": 9})
    assert cfg == _Cfg(lr=0.5)  # missing settings take their defaults
    with pytest.raises(DataError, match="unknown setting"):
        config_from_dict(_Cfg, {"gone": 1}, strict=True)
    assert config_from_dict(_Cfg, {"sizes": [8, 4]}).sizes == (8, 4)  # JSON list -> tuple
    assert parse_field_value(_Cfg, "sizes", "16, 8,4") == (16, 8, 4)
    with pytest.raises(DataError, match="is not a int"):
        parse_field_value(_Cfg, "sizes", "16, x")
    for bad in ({"lr": math.nan}, {"lr": math.inf}, {"sizes": (0,)}, {"name": "c"}):
        with pytest.raises(DataError):
            validate_config(_Cfg(**bad))


def test_tuple_field_round_trips_through_the_train_form(plugin, monkeypatch):
    from ocvis.methods.base import option

    cls = plugin

    @dataclass
    class WithTuple(cls.Config):
        dims: tuple = option((512, 128), "head widths", min=1)

    monkeypatch.setattr(cls, "Config", WithTuple)
    at = _page("3_Train.py")
    at.selectbox(key="train_method").set_value("test-rotnet").run()
    at.selectbox(key="train_preset").set_value("tiny").run()
    box = at.text_input(key="train-test-rotnet-tiny-dims")
    assert box.value == "512, 128"
    box.set_value("256, 64, 32").run()
    assert not at.exception
    from ocvis.ui.forms import config_form  # noqa: F401  (the form's result is what Start uses)
    at.button[0].click().run()
    from ocvis.ui.jobs import job_manager

    job = job_manager().get(at.session_state["train_job"])
    assert job.params["overrides"]["dims"] == (256, 64, 32)
    job_manager().cancel(job.id)


# --------------------------------------------------------------------------- old runs
@pytest.fixture
def legacy_runs() -> dict[str, str]:
    """Runs written by ocvis before the Method interface change (tests/data), unpacked
    into this test's run store: {method: run id}."""
    root = RunStore().root
    root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(LEGACY) as tf:
        members = [m for m in tf.getmembers() if m.name.startswith("runs/")]
        for m in members:
            m.name = m.name[len("runs/"):]
        tf.extractall(root, members=[m for m in members if m.name], filter="data")
    out = {}
    for r in RunStore().list():
        out[r["method"]] = r["id"]
    return out


def test_runs_stored_before_the_change_open_everywhere(legacy_runs):
    from ocvis.experiment import load_run_method, task_of_run

    assert set(legacy_runs) == {"ics", "pca", "original", "split"}
    store = RunStore()
    for method in ("ics", "pca", "original"):
        rid = legacy_runs[method]
        meta = store.read(rid)
        assert meta["status"] == "done"
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # their configs hold no unknown setting
            m = load_run_method(store, rid)
        task = task_of_run(meta)
        arr = store.arrays(rid)
        # the same features (network and weights restored exactly) ...
        np.testing.assert_allclose(m.embed(task.x_test), arr["test_latent"], rtol=1e-4,
                                   atol=1e-5)
        # ... and the detector re-fitted on them: since issue 13 the OC-SVM converges, so
        # the scores of these old, unconverged fits are close in rank, not equal
        from scipy.stats import spearmanr

        assert spearmanr(m.score_samples(task.x_test), arr["test_scores"]).statistic > 0.9
    for method in ("ics", "pca", "original"):
        rid = legacy_runs[method]
        for page, key in (("5_Evaluate.py", "eval_run"), ("4_Latent_Space.py", "latent_run"),
                          ("6_Explain.py", "explain_run")):
            at = _page(page, ocvis_current_run=rid)
            assert at.selectbox(key=key).value == rid
            assert not at.error, (method, page, [e.value for e in at.error])
            if page == "6_Explain.py":
                assert any("completeness" in c.value for c in at.caption), method
    # the old split run opens on the Split page of its task
    split = store.read(legacy_runs["split"])
    at = _page("2_Split.py", ocvis_task_cfg=split["task"])
    assert any(m.label == "Atypical" for m in at.metric)
    assert _page("7_Runs.py").dataframe


def test_every_score_of_a_several_score_method_is_described():
    """The Evaluate page's caption for a chosen score comes from the method's score_help:
    every method that stores several scores says what each one measures."""
    from ocvis.methods import METHODS
    from ocvis.ui.evaluate import score_help

    for name, cls in METHODS.items():
        m = cls()
        names = m.score_names
        if len(names) < 2:
            continue
        for s in names:
            assert score_help(name, s), f"{name}: score {s!r} has no description"
    assert score_help("no-such-method", "kde") == ""
