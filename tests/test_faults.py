"""Faults: a killed writer, concurrent sessions, degenerate data and inputs (hypothesis)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from ocvis.data import OcvisWarning, make_task
from ocvis.errors import DataError
from ocvis.metrics import evaluate
from ocvis.methods import make_method
from ocvis.runs import RunStore
from waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]

WRITER = r"""
import sys, time, numpy as np
from ocvis.runs import RunStore
st = RunStore(sys.argv[1])
rid = st.create({"method": "ics", "task_name": "victim"})
st.update(rid, status="running")
print(rid, flush=True)
i = 0
while True:  # keep rewriting big files until killed mid-way
    st.write_arrays(rid, big=np.random.rand(400_000))
    st.write_history(rid, [{"step": k} for k in range(i)])
    i += 1
    if i == 3:
        print("wrote", flush=True)  # the writer is in its loop: kill it from now on
"""


def test_killed_while_writing_a_run(tmp_path, monkeypatch):
    import ocvis.runs

    st = RunStore(tmp_path)
    ok = st.create({"method": "pca", "task_name": "survivor"})
    st.update(ok, status="done", metrics={"auroc": 0.9})
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    victim = proc.stdout.readline().strip()
    assert proc.stdout.readline().strip() == "wrote"  # proof that the writer had started
    assert RunStore(tmp_path).read(victim)["status"] == "running"  # its lease is fresh
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # nobody renews the lease now: the run reads as interrupted once it is stale
    monkeypatch.setattr(ocvis.runs, "LEASE_SECONDS", 1.0)
    runs = wait_until(lambda: (lambda rs: rs if rs[victim]["status"] == "interrupted" else
                               None)({r["id"]: r for r in RunStore(tmp_path).list()}),
                      what="the killed run to read as interrupted")
    assert runs[ok]["status"] == "done" and runs[ok]["metrics"]["auroc"] == 0.9
    assert "ended before it finished" in runs[victim]["error"]
    # whatever was written is whole: the arrays file is readable and the history is JSON
    arr = RunStore(tmp_path).arrays(victim)
    assert arr["big"].shape == (400_000,)
    assert isinstance(RunStore(tmp_path).history(victim), list)
    json.loads((tmp_path / victim / "run.json").read_text())


def test_two_sessions_submit_at_once():
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    st.cache_resource.clear()
    page = str(ROOT / "pages" / "3_Train.py")
    a = AppTest.from_file(page, default_timeout=60).run()
    b = AppTest.from_file(page, default_timeout=60).run()
    for at in (a, b):
        at.selectbox(key="train_method").set_value("pca").run()
    a.button[0].click().run()
    b.button[0].click().run()
    from ocvis.ui.jobs import job_manager

    jm = job_manager()
    ja, jb = jm.get(a.session_state["train_job"]), jm.get(b.session_state["train_job"])
    assert ja.id != jb.id
    states = {ja.status, jb.status}
    assert states <= {"queued", "running", "done"}
    assert not (ja.status == "running" and jb.status == "running")  # never both at once
    assert jm.wait(ja, 300).status == "done", ja.error
    assert jm.wait(jb, 300).status == "done", jb.error
    assert ja.status == jb.status == "done"
    from ocvis.ui.runs import run_store

    listed = {r["id"] for r in run_store().list()}
    assert {ja.run_id, jb.run_id} <= listed  # both results kept, seen by both sessions
    assert ja.started < jb.started and jb.started >= ja.finished - 0.01 or \
        jb.started < ja.started and ja.started >= jb.finished - 0.01
    st.cache_resource.clear()


def test_constant_images_warn_and_still_score():
    x = torch.full((20, 1, 32, 32), 0.5)
    with pytest.warns(OcvisWarning, match="identical"):
        m = make_method("original").fit(x)
    assert np.isfinite(m.score_samples(torch.rand(3, 1, 32, 32))).all()


def test_fewer_images_than_a_batch_and_zero_atypical():
    x = torch.rand(5, 1, 32, 32)
    with pytest.warns(OcvisWarning, match="atypical"):
        m = make_method("ics", "tiny", reuse_pretrain=False).fit(x)
    assert m.split_.atypical.sum() == 0
    assert np.isfinite(m.score_samples(x)).all()


def test_nan_scores_message():
    with pytest.raises(DataError, match="NaN or infinite"):
        evaluate(np.array([1.0, np.inf, 0.0]), np.array([0, 1, 0]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scores=hs.lists(hs.floats(-1e6, 1e6), min_size=1, max_size=40),
       data=hs.data())
def test_metrics_on_any_finite_input(scores, data):
    n = len(scores)
    y = np.array(data.draw(hs.lists(hs.integers(0, 1), min_size=n, max_size=n)))
    val = np.array(data.draw(hs.lists(hs.booleans(), min_size=n, max_size=n)))
    r = evaluate(np.array(scores), y, val)
    if y.min() == y.max():
        assert np.isnan(r["auroc"]) and r["message"]
    else:
        for k in ("auroc", "aupr_in", "aupr_out"):
            assert 0.0 <= r[k] <= 1.0
        assert np.isnan(r["bacc"]) or 0.0 <= r["bacc"] <= 1.0
    # ties everywhere: AUROC is exactly one half
    if y.min() != y.max():
        assert evaluate(np.zeros(n), y)["auroc"] == pytest.approx(0.5)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(normal=hs.sets(hs.integers(0, 9), min_size=1, max_size=9),
       n_train=hs.one_of(hs.none(), hs.integers(1, 300)), seed=hs.integers(0, 5))
def test_one_class_protocol_invariants(normal, n_train, seed):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OcvisWarning)
        t = make_task("digits", "one-class", sorted(normal), n_train=n_train, seed=seed)
    assert set(np.unique(t.train_classes)) <= normal
    assert n_train is None or len(t.x_train) <= n_train
    assert np.array_equal(t.y_test, (~np.isin(t.test_classes, sorted(normal))).astype(int))
    assert t.val_mask.sum() == sum(round(0.2 * (t.y_test == v).sum()) for v in (0, 1))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inlier=hs.integers(0, 9), ratio=hs.floats(0.5, 49.0), seed=hs.integers(0, 3))
def test_unsupervised_protocol_invariants(inlier, ratio, seed):
    try:
        t = make_task("digits", "unsupervised", inlier, ratio=ratio, seed=seed)
    except DataError as exc:  # too few other images or no outlier at all: a clear message
        assert "ratio" in str(exc) or "outlier" in str(exc)
        return
    n_in = int((t.y_test == 0).sum())
    assert int(t.y_test.sum()) == round(ratio / (100 - ratio) * n_in)
    assert (t.test_classes[t.y_test == 0] == inlier).all()
    assert (t.test_classes[t.y_test == 1] != inlier).all()
