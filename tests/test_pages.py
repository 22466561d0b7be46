"""AppTest of the Split and Train pages with tiny real jobs on digits."""
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from waiting import GENEROUS, wait_until

ROOT = Path(__file__).resolve().parents[1]
PAGES = ROOT / "pages"


@pytest.fixture(autouse=True)
def _fresh(fresh_streamlit):
    yield


def _until(at, cond, timeout=GENEROUS):
    """Rerun the page until ``cond(at)`` holds (a generous timeout: only a hang fails)."""
    def again():
        at.run()
        assert not at.exception, at.exception
        return cond(at)
    wait_until(again, timeout, "the page to show the expected state", every=0.3)
    return at


def _jm():
    from ocvis.ui.jobs import job_manager
    return job_manager()


def test_split_page_trains_and_moves_rho():
    at = AppTest.from_file(str(PAGES / "2_Split.py"), default_timeout=60).run()
    assert not at.exception
    assert any("No split" in i.value for i in at.info)
    at.selectbox[0].set_value("tiny")
    at.button[0].click().run()
    job_id = at.session_state["split_job"]
    job = _jm().wait(_jm().get(job_id), GENEROUS)
    assert job.status == "done", job.error
    _until(at, lambda a: len(a.metric) >= 3)
    n_train = int(at.metric[0].value) + int(at.metric[1].value)
    assert int(at.metric[1].value) == int(0.10 * n_train)
    at.slider[0].set_value(20.0).run()
    assert not at.exception
    assert int(at.metric[1].value) == int(0.20 * n_train)
    assert at.session_state["ocvis_rho"] == 20.0
    # history and run stored
    assert len(job.history) > 0
    from ocvis.ui.runs import run_store
    assert run_store().read(job.run_id)["status"] == "done"


def test_train_page_runs_job_and_stores_run():
    at = AppTest.from_file(str(PAGES / "3_Train.py"), default_timeout=60).run()
    assert not at.exception
    at.selectbox(key="train_preset").set_value("tiny").run()
    at.button[0].click().run()
    job = _jm().get(at.session_state["train_job"])
    assert job is not None
    _jm().wait(job, GENEROUS)
    assert job.status == "done", job.error
    _until(at, lambda a: any(m.label == "AUROC" for m in a.metric))
    from ocvis.ui.runs import run_store
    run = run_store().read(job.run_id)
    assert run["status"] == "done" and run["method"] == "ics" and run["preset"] == "tiny"
    assert run["config"]["epochs"] == 1 and run["config"]["pretrain_epochs"] == 1
    # the stored metrics are those of the stored scores, and the page shows them
    from ocvis.metrics import evaluate
    arr = run_store().arrays(job.run_id)
    again = evaluate(arr["test_scores"], arr["y_test"], arr["val_mask"])
    assert 0.5 < run["metrics"]["auroc"] == pytest.approx(again["auroc"])
    shown = {m.label: m.value for m in at.metric}
    assert shown["AUROC"] == f"{100 * run['metrics']['auroc']:.1f}"
    assert shown["Balanced acc."] == f"{100 * run['metrics']['bacc']:.1f}"
    assert len(run_store().history(job.run_id)) == len(job.history) > 0
    assert at.session_state["ocvis_current_run"] == job.run_id
    # the loss chart is drawn with one trace per term and stage
    charts = at.get("plotly_chart")
    assert charts


def test_train_page_cancel_and_page_switch_keeps_job():
    at = AppTest.from_file(str(PAGES / "3_Train.py"), default_timeout=60).run()
    at.selectbox(key="train_method").set_value("cae").run()
    # a long job: many epochs
    exp = [e for e in at.expander]
    assert exp
    at.number_input(key="train-cae-cpu-pretrain_epochs").set_value(300).run()
    at.button[0].click().run()
    job = _jm().get(at.session_state["train_job"])
    wait_until(lambda: len(job.history) >= 2, what="two training steps")
    assert job.status == "running"
    # "switch page": another page runs in the same session, the job goes on
    other = AppTest.from_file(str(PAGES / "1_Data.py"), default_timeout=60).run()
    assert not other.exception
    n = len(job.history)
    wait_until(lambda: len(job.history) > n, what="more steps after the page switch")
    assert job.status == "running"
    at.run()
    cancel = [b for b in at.button if b.label == "Cancel"]
    assert cancel
    cancel[0].click().run()
    _jm().wait(job, GENEROUS)
    assert job.status == "cancelled"
    from ocvis.ui.runs import run_store
    assert run_store().read(job.run_id)["status"] == "cancelled"


def test_overview_demo_button_runs_split_and_ics(monkeypatch):
    """The demo queues the split and ICS on digits, both finish, and the page reports the
    AUROC of the stored run (the demo's preset is "tiny" here to keep the test short)."""
    monkeypatch.setenv("OCVIS_DEMO_PRESET", "tiny")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    jm = _jm()
    at.button[0].click().run()
    ids = at.session_state["demo_jobs"]
    jobs = [jm.get(i) for i in ids]
    assert [j.kind for j in jobs] == ["split", "experiment"]
    for j in jobs:
        assert jm.wait(j, GENEROUS).status == "done", j.error
    from ocvis.ui.runs import run_store
    split, run = (run_store().read(j.run_id) for j in jobs)
    assert split["kind"] == "split" and split["n_atypical"] > 0
    assert run["method"] == "ics" and run["task"]["dataset"] == "digits"
    _until(at, lambda a: any("Demo finished" in s.value for s in a.success))
    msg = next(s.value for s in at.success if "Demo finished" in s.value)
    assert f"AUROC {100 * run['metrics']['auroc']:.1f}" in msg
    assert at.session_state["ocvis_current_run"] == jobs[1].run_id
