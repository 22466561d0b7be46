"""Issue 20: a reload keeps the task and the run; uploads keep a {train,test} layout; a
diverging run is flagged; the split's reconstructions are real; status lines agree."""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from ocvis.runs import RunStore

ROOT = Path(__file__).resolve().parents[1]
PAGES = ROOT / "pages"


@pytest.fixture(autouse=True)
def _fresh(fresh_streamlit):
    yield


def _png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (16, 16, 3), dtype=np.uint8)
                    ).save(buf, "PNG")
    return buf.getvalue()


def test_a_reload_keeps_the_task_and_the_run():
    at = AppTest.from_file(str(PAGES / "1_Data.py"), default_timeout=60).run()
    at.multiselect(key="data_normal").set_value([5]).run()
    at.number_input(key="data_seed").set_value(2).run()
    assert not at.exception
    chosen = at.session_state["ocvis_task_cfg"]
    assert chosen["normal"] == [5] and chosen["seed"] == 2
    # a reload is a new session: nothing in session_state
    for page in ("3_Train.py", "2_Split.py", "1_Data.py"):
        again = AppTest.from_file(str(PAGES / page), default_timeout=60).run()
        assert not again.exception
        assert again.session_state["ocvis_task_cfg"] == chosen, page
    side = " ".join(m.value for m in again.sidebar.markdown)
    assert "normal: 5" in side and "seed 2" in side
    # the URL carries it too: a link with ?task= opens that task in a fresh session
    (RunStore().root / ".ui_state.json").unlink()
    other = dict(chosen, normal=[7])
    fresh = AppTest.from_file(str(PAGES / "3_Train.py"), default_timeout=60)
    fresh.query_params["task"] = json.dumps(other)
    fresh.run()
    assert fresh.session_state["ocvis_task_cfg"]["normal"] == [7]


def test_the_current_run_survives_a_reload():
    from ocvis.experiment import run_experiment

    rid = run_experiment({"dataset": "digits", "normal": [4], "seed": 0}, "pca",
                         store=RunStore())["id"]
    other = run_experiment({"dataset": "digits", "normal": [6], "seed": 0}, "pca",
                           store=RunStore())["id"]
    at = AppTest.from_file(str(PAGES / "5_Evaluate.py"), default_timeout=60).run()
    at.selectbox(key="eval_run").set_value(rid).run()
    assert at.session_state["ocvis_current_run"] == rid
    for page, key in (("5_Evaluate.py", "eval_run"), ("6_Explain.py", "explain_run")):
        again = AppTest.from_file(str(PAGES / page), default_timeout=120).run()
        assert not again.exception
        assert again.selectbox(key=key).value == rid != other


def test_a_running_job_is_shown_on_the_train_page_after_a_reload():
    from ocvis.ui.jobs import job_manager

    at = AppTest.from_file(str(PAGES / "3_Train.py"), default_timeout=60).run()
    at.selectbox(key="train_method").set_value("cae").run()
    at.number_input(key="train-cae-cpu-pretrain_epochs").set_value(300).run()
    at.button[0].click().run()
    job = job_manager().get(at.session_state["train_job"])
    from waiting import wait_until

    wait_until(lambda: job.status == "running" and job.history, what="the job to run")
    reloaded = AppTest.from_file(str(PAGES / "3_Train.py"), default_timeout=60).run()
    assert not reloaded.exception
    assert "train_jobs" not in reloaded.session_state  # a new session ...
    text = " ".join(m.value for m in reloaded.markdown)
    assert job.title in text and "**running**" in text  # ... still shows the job
    assert any(b.label == "Cancel" for b in reloaded.button)
    job_manager().cancel(job.id)


def test_a_train_test_zip_keeps_its_split(tmp_path):
    from ocvis.data import load_image_folder
    from ocvis.uploads import extract_zip

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for split, n in (("train", 6), ("test", 3)):
            for cls in ("cats", "dogs"):
                for i in range(n):
                    z.writestr(f"pets/{split}/{cls}/{i}.png", _png(i + 10 * n))
    buf.seek(0)
    report = extract_zip(buf, "pets.zip", tmp_path)
    assert report.split_layout and report.classes == ["cats", "dogs"]
    assert (report.path / "train" / "cats").is_dir() and (report.path / "test" / "dogs").is_dir()
    ds = load_image_folder(report.path, use_cache=False)
    assert ds.classes == ("cats", "dogs")
    assert len(ds.x_train) == 12 and len(ds.x_test) == 6  # not re-split


def test_divergence_is_recognised_on_hand_made_curves():
    from ocvis.train import divergence

    def recs(values, stage="s"):
        return [{"stage": stage, "losses": {"total": v}} for v in values]

    assert divergence(recs(np.linspace(1.0, 0.1, 50))) is None          # converges
    assert divergence(recs(np.r_[np.linspace(1, .1, 40), [.12] * 10])) is None
    assert "ended at" in divergence(recs(np.linspace(0.1, 2.0, 50)))    # ends far above
    spike = np.r_[np.full(20, 0.2), np.full(10, 50.0), np.full(20, 0.2)]
    assert "rose to" in divergence(recs(spike))                          # blew up on the way
    assert divergence(recs(np.linspace(1, 0.1, 30)) + recs(np.linspace(0.5, 9, 30), "b")) \
        .startswith("the b loss")


def test_a_diverging_run_is_flagged_in_the_run_and_on_the_train_page():
    from ocvis.experiment import run_experiment
    from ocvis.ui.runs import show_run_result  # noqa: F401  (what the Train page draws)

    store = RunStore()
    meta = run_experiment({"dataset": "digits", "normal": [0], "seed": 0}, "cae", "cpu",
                          {"lr": 1.0, "pretrain_epochs": 2, "epochs": 2, "min_steps": 30,
                           "reuse_pretrain": False}, store=store)
    run = store.read(meta["id"])
    assert run["status"] == "done"
    assert "loss" in run["info"]["divergence"]
    assert any("did not converge" in n for n in run["notes"])
    healthy = run_experiment({"dataset": "digits", "normal": [0], "seed": 0}, "cae", "tiny",
                             {"reuse_pretrain": False}, store=store)
    assert "divergence" not in store.read(healthy["id"])["info"]
    import streamlit as st

    at = AppTest.from_function(_show, args=(meta["id"],), default_timeout=60).run()
    assert any("did not converge" in e.value for e in at.error)
    st.cache_resource.clear()


def _show(run_id):
    from ocvis.ui.runs import run_store, show_run_result

    show_run_result(run_store().read(run_id))


def test_split_reconstructions_are_not_flat():
    """With the cpu preset on digits the splitting autoencoder's reconstructions used to be
    a grey blob (eval-mode batch norm with near-initial statistics): SSIM 0.06-0.10."""
    from ocvis.data import make_task
    from ocvis.methods.split_ae import SPLIT_PRESETS, SplitAutoencoder, SplitConfig
    from ocvis.split import reconstruction_quality

    task = make_task("digits", normal=[0])
    m = SplitAutoencoder(SplitConfig(**SPLIT_PRESETS["cpu"], reuse_pretrain=False))
    m.pretrain(task.x_train)
    sp = m.compute_split(task.x_train)
    q = reconstruction_quality(task.x_train, m.reconstruct(task.x_train), sp.similarity)
    assert not q["flat"] and q["contrast"] > 0.6
    assert q["similarity_median"] > 0.5
    flat = SplitAutoencoder(SplitConfig(**SPLIT_PRESETS["cpu"], reuse_pretrain=False,
                                        bn_recalibrate=False))
    flat.pretrain(task.x_train)
    qf = reconstruction_quality(task.x_train, flat.reconstruct(task.x_train),
                                flat.compute_split(task.x_train).similarity)
    assert qf["flat"]  # the warning the Split page shows
