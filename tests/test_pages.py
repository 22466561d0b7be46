"""AppTest of the Split and Train pages with tiny real jobs on digits."""
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ROOT / "pages"


@pytest.fixture(autouse=True)
def _fresh(fresh_streamlit):
    yield


def _until(at, cond, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        at.run()
        assert not at.exception, at.exception
        if cond(at):
            return at
        time.sleep(0.3)
    raise AssertionError("condition not reached")


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
    job = _jm().wait(_jm().get(job_id), 120)
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
    _jm().wait(job, 120)
    assert job.status == "done", job.error
    _until(at, lambda a: any(m.label == "AUROC" for m in a.metric))
    from ocvis.ui.runs import run_store
    run = run_store().read(job.run_id)
    assert run["status"] == "done" and run["method"] == "ics"
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
    t0 = time.time()
    while len(job.history) < 2 and time.time() - t0 < 60:
        time.sleep(0.1)
    assert job.status == "running"
    # "switch page": another page runs in the same session, the job goes on
    other = AppTest.from_file(str(PAGES / "1_Data.py"), default_timeout=60).run()
    assert not other.exception
    n = len(job.history)
    time.sleep(1.0)
    assert job.status == "running" and len(job.history) > n
    at.run()
    cancel = [b for b in at.button if b.label == "Cancel"]
    assert cancel
    cancel[0].click().run()
    _jm().wait(job, 10)
    assert job.status == "cancelled"
    from ocvis.ui.runs import run_store
    assert run_store().read(job.run_id)["status"] == "cancelled"


def test_overview_demo_button_queues_split_and_ics():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    jm = _jm()
    at.button[0].click().run()
    ids = at.session_state["demo_jobs"]
    assert [jm.get(i).kind for i in ids] == ["split", "experiment"]
    for i in ids:
        jm.cancel(i)
    for i in ids:
        jm.wait(jm.get(i), 30)
