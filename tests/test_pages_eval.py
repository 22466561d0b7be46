"""AppTest of the Evaluate and Runs pages with one stored tiny ICS run on digits."""
from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from ocvis.runs import RunStore

ROOT = Path(__file__).resolve().parents[1]
PAGES = ROOT / "pages"
TASK = {"dataset": "digits", "normal": [0], "seed": 0}
_CACHE: dict[str, Path] = {}


@pytest.fixture(autouse=True)
def _fresh(fresh_streamlit):
    yield


@pytest.fixture
def stored_run(tmp_path_factory) -> str:
    """A finished tiny ICS run in this test's run store (trained once, then copied)."""
    store = RunStore()
    if "run" not in _CACHE:
        meta = run_experiment_tiny(store)
        keep = tmp_path_factory.mktemp("eval-run") / meta["id"]
        shutil.copytree(store.path(meta["id"]), keep)
        _CACHE["run"] = keep
        return meta["id"]
    src = _CACHE["run"]
    shutil.copytree(src, store.path(src.name))
    return src.name


def run_experiment_tiny(store: RunStore) -> dict:
    from ocvis.experiment import run_experiment

    return run_experiment(dict(TASK), "ics", "tiny", {"reuse_pretrain": False}, store=store)


def _page(name: str) -> AppTest:
    at = AppTest.from_file(str(PAGES / name), default_timeout=60).run()
    assert not at.exception, at.exception
    return at


def _table(at: AppTest, column: str):
    """The first dataframe with a column ``column`` (AppTest does not expose their keys)."""
    found = [d.value for d in at.dataframe if column in d.value.columns]
    assert found, f"no table with a column {column!r}"
    return found[0]


def test_ui_store_is_the_tests_store(stored_run):
    from ocvis.ui.runs import run_store

    assert run_store().root == RunStore().root
    assert run_store().read(stored_run)["status"] == "done"


def test_evaluate_page(stored_run):
    at = _page("5_Evaluate.py")
    charts = at.get("plotly_chart")
    assert len(charts) >= 3  # ROC, PR, score histogram
    metrics = _table(at, "metric")
    assert list(metrics["metric"]) == ["AUROC", "AUPR-in", "AUPR-out", "Balanced accuracy"]
    auroc = RunStore().read(stored_run)["metrics"]["auroc"]
    assert metrics["ours (%)"].iloc[0] == pytest.approx(100 * auroc)
    per_class = _table(at, "normal class")
    assert list(per_class["normal class"]) == [0] and list(per_class["runs"]) == [1]
    dl = at.get("download_button")
    assert any(b.proto.label.startswith("Download per-sample scores") for b in dl)
    # the histogram can switch between counts and each group's share
    first = at.toggle(key="eval_hist_share").value
    titles = {True: "% of its group", False: "test images"}
    assert titles[first] in at.get("plotly_chart")[2].proto.spec
    at.toggle(key="eval_hist_share").set_value(not first).run()
    assert not at.exception, at.exception
    assert titles[not first] in at.get("plotly_chart")[2].proto.spec
    # the image groups follow the pool choice without error
    at.radio(key="eval_pool").set_value("normal").run()
    assert not at.exception, at.exception
    assert at.get("image")


def test_score_histogram_shares_when_one_group_dominates():
    from ocvis.ui.figures import score_histogram

    rng = np.random.default_rng(0)
    scores = np.r_[rng.normal(1, 1, 100), rng.normal(-1, 1, 900)]
    y = np.r_[np.zeros(100), np.ones(900)]
    fig = score_histogram(scores, y, 0.0)  # 9:1 -> each group as % of its images
    assert [t.histnorm for t in fig.data] == ["percent", "percent"]
    assert fig.layout.yaxis.title.text == "% of its group"
    counts = score_histogram(scores, y, 0.0, share=False)
    assert [t.histnorm for t in counts.data] == ["", ""]
    assert counts.layout.yaxis.title.text == "test images"
    balanced = score_histogram(scores[:200], np.r_[np.zeros(100), np.ones(100)])
    assert balanced.data[0].histnorm == ""


def test_per_class_table_averages_only_repetitions_of_the_run():
    from ocvis.ui.evaluate import per_class_table

    def run(seed, epochs, auroc, rot, n_train=None, protocol="one-class", normal=0, **task):
        return {"method": "rotnet", "preset": "cpu", "status": "done",
                "task": {"dataset": "cifar10", "protocol": protocol, "normal": [normal],
                         "seed": seed, "n_train": n_train, **task},
                "config": {"seed": seed, "epochs": epochs, "lr": 0.01},
                "primary_score": "kde", "metrics": {"auroc": auroc, "bacc": 0.6},
                "metrics_by_score": {"kde": {"auroc": auroc, "bacc": 0.6},
                                     "rotation": {"auroc": rot, "bacc": 0.7}}}

    runs = [run(0, 18, 0.70, 0.80), run(1, 18, 0.72, 0.82),
            run(0, 4, 0.50, 0.60),                       # a calibration run: other epochs
            run(0, 18, 0.40, 0.40, n_train=4000),        # another training-set size
            run(0, 18, 0.30, 0.30, protocol="unsupervised")]
    pc = per_class_table(runs, "cifar10", "rotnet", "cpu", score="kde", like=runs[0])
    assert list(pc["runs"]) == [2]
    assert pc["AUROC ours"].iloc[0] == pytest.approx(71.0)
    rot = per_class_table(runs, "cifar10", "rotnet", "cpu", score="rotation", like=runs[0])
    assert rot["AUROC ours"].iloc[0] == pytest.approx(81.0)
    # a score none of the runs stored: no row rather than the primary score's numbers
    assert per_class_table(runs, "cifar10", "rotnet", "cpu", score="gde", like=runs[0]).empty
    calib = per_class_table(runs, "cifar10", "rotnet", "cpu", like=runs[2])
    assert list(calib["runs"]) == [1] and calib["AUROC ours"].iloc[0] == pytest.approx(50.0)
    # unsupervised runs by their inlier class, one outlier ratio at a time; their paper
    # reports only means, so no paper value per class
    runs += [run(1, 18, 0.90, 0.9, protocol="unsupervised", normal=3, ratio=10.0),
             run(0, 18, 0.80, 0.8, protocol="unsupervised", normal=3, ratio=20.0)]
    unsup = per_class_table(runs, "cifar10", "rotnet", "cpu", like=runs[4])  # ratio 10 (default)
    assert list(unsup["normal class"]) == [0, 3] and list(unsup["runs"]) == [1, 1]
    assert list(unsup["AUROC ours"]) == pytest.approx([30.0, 90.0])
    assert unsup["AUROC paper"].isna().all()
    at20 = per_class_table(runs, "cifar10", "rotnet", "cpu", like=runs[-1])
    assert list(at20["normal class"]) == [3] and at20["AUROC ours"].iloc[0] == pytest.approx(80)


def test_evaluate_scores_csv(stored_run):
    from ocvis.ui.evaluate import scores_csv

    a = RunStore().arrays(stored_run)
    meta = RunStore().read(stored_run)
    csv = scores_csv(a, meta["metrics"]["threshold"]).decode()
    head = csv.splitlines()[0].split(",")
    assert head[:6] == ["index", "class", "label", "normality_score", "anomaly_score",
                        "validation"]
    assert len(csv.splitlines()) == len(a["test_scores"]) + 1
    from ocvis.ui.evaluate import single_normal_class

    assert single_normal_class(meta, a) == 0


def test_runs_page_lists_broken_and_deletes(stored_run):
    store = RunStore()
    broken = store.root / "20000101-000000-broken-run"
    broken.mkdir(parents=True)
    (broken / "run.json").write_text('{"method": "ics", "task": {"data')
    at = _page("7_Runs.py")
    table = _table(at, "reason")
    assert set(table["id"]) == {stored_run, broken.name}
    row = table.set_index("id").loc[broken.name]
    assert row["status"] == "broken" and "unreadable run.json" in row["reason"]
    good = table.set_index("id").loc[stored_run]
    assert good["status"] == "done" and good["method"] == "ics" and good["dataset"] == "digits"
    assert good["AUROC"] == pytest.approx(100 * store.read(stored_run)["metrics"]["auroc"])
    assert at.get("download_button")
    # set as current run
    at.selectbox(key="runs_manage").set_value(stored_run).run()
    at.button(key="runs_set_current").click().run()
    assert not at.exception, at.exception
    assert at.session_state["ocvis_current_run"] == stored_run
    # the broken run: an error message, not an exception; deletion needs the checkbox
    at.selectbox(key="runs_manage").set_value(broken.name).run()
    assert not at.exception, at.exception
    assert any("Broken run" in e.value for e in at.error)
    assert at.button(key="runs_delete").disabled
    at.checkbox(key="runs_del_ok").check().run()
    at.button(key="runs_delete").click().run()
    assert not at.exception, at.exception
    assert not broken.exists() and store.path(stored_run).is_dir()
    assert any("Deleted" in s.value for s in at.success)
    assert set(_table(at, "reason")["id"]) == {stored_run}
    # delete the last run: the page says there is none
    at.selectbox(key="runs_manage").set_value(stored_run).run()
    at.checkbox(key="runs_del_ok").check().run()
    at.button(key="runs_delete").click().run()
    assert not at.exception, at.exception
    assert not store.path(stored_run).exists()
    assert "ocvis_current_run" not in at.session_state
    assert any("No runs stored yet" in i.value for i in at.info)


def _steps(n: int) -> list[dict]:
    """``n`` step records as the engine's ``on_step`` writes them."""
    return [{"stage": "pretrain", "epoch": 1 + k // 4, "epochs": 20, "step": k % 4 + 1,
             "steps": 4, "global_step": k + 1, "losses": {"rec": 1.0 / (k + 1)}}
            for k in range(n)]


def test_runs_page_shows_the_curve_of_a_run_another_process_trains(stored_run):
    """A run trained elsewhere (CLI, bench) is held by that process's lease and flushes its
    history; the Runs page draws it, says how far it is, and keeps the finished run's curve."""
    store = RunStore()
    rid = store.create({"method": "cae", "task": dict(TASK), "status": "running",
                        "task_name": "digits-0"})
    try:
        store.write_history(rid, _steps(3))
        at = _page("7_Runs.py")
        at.selectbox(key="runs_manage").set_value(rid).run()
        assert not at.exception, at.exception
        assert any("3 steps so far (stage `pretrain`, epoch 1 of 20)" in c.value
                   for c in at.caption)
        assert len(at.get("plotly_chart")) >= 1
        store.write_history(rid, _steps(7))
        at.run()
        assert any("7 steps so far (stage `pretrain`, epoch 2 of 20)" in c.value
                   for c in at.caption)
    finally:
        store.update(rid, status="failed", error="test over")
        store.release(rid)
    at.run()
    assert not at.exception, at.exception
    assert not any("steps so far" in c.value for c in at.caption)
    assert any("test over" in w.value for w in at.warning)
    # the finished tiny ICS run: its curve, no "so far"
    at.selectbox(key="runs_manage").set_value(stored_run).run()
    assert not at.exception, at.exception
    assert len(at.get("plotly_chart")) >= 1


def test_runs_zip_has_only_the_runs_files(stored_run):
    from ocvis.ui.runs_page import run_zip

    store = RunStore()
    (store.root / "other-run").mkdir()
    (store.root / "other-run" / "run.json").write_text("{}")
    data = run_zip(store.path(stored_run))
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert sorted(names) == sorted(f"{stored_run}/{p.name}"
                                   for p in store.path(stored_run).iterdir())
    assert f"{stored_run}/run.json" in names and f"{stored_run}/arrays.npz" in names


def test_runs_page_compares_two_runs(stored_run):
    store = RunStore()
    second = store.root / (stored_run[:-4] + "beef")
    shutil.copytree(store.path(stored_run), second)
    at = _page("7_Runs.py")
    assert at.selectbox(key="runs_cmp_a").value != at.selectbox(key="runs_cmp_b").value
    # the managed run's curve, the two compared runs' curves, the metrics bars
    assert [c.key for c in at.get("plotly_chart")] == ["runs-manage-loss", "runs-loss-a",
                                                       "runs-loss-b", "runs-bars"]
    cmp = _table(at, "B")
    assert list(cmp.columns) == ["", "A", "B"]
    assert cmp.iloc[0]["A"] == cmp.iloc[0]["B"]  # same metrics (copied run)


@pytest.mark.parametrize("page", ["5_Evaluate.py", "7_Runs.py"])
def test_pages_without_runs_say_so(page):
    at = _page(page)
    assert at.info, "expected an info message"
    assert any("Train" in i.value for i in at.info)
    assert not at.get("plotly_chart")


def test_evaluate_page_unsupervised_labels(stored_run):
    """A run whose task is unsupervised labels the groups inlier / outlier."""
    import json

    store = RunStore()
    p = store.path(stored_run) / "run.json"
    meta = json.loads(p.read_text())
    meta["task"]["protocol"] = "unsupervised"
    p.write_text(json.dumps(meta))
    # the rebuilt task would differ: the page warns and still shows everything else
    at = _page("5_Evaluate.py")
    specs = [c.proto.spec for c in at.get("plotly_chart")]
    assert any('"inlier (' in sp and '"outlier (' in sp for sp in specs)
    assert any("transductively" in c.value for c in at.caption)
    metrics = _table(at, "metric")
    # E3Outlier's tables are means per outlier ratio: looked up, none for ICS on digits
    assert metrics["paper (%)"].isna().all()
    assert np.isfinite(metrics["ours (%)"]).all()


def test_loss_chart_axes_name_the_terms_they_carry():
    from ocvis.ui.figures import loss_figure

    def rec(k, **losses):
        return {"stage": "train", "epoch": 0, "epochs": 1, "step": k, "steps": 5,
                "global_step": k + 1, "losses": losses}

    # RotNet: one cross-entropy, no second axis, no ICS titles
    fig = loss_figure([rec(k, ce=1.4 - 0.1 * k, total=1.4 - 0.1 * k) for k in range(5)])
    assert fig.layout.yaxis.title.text == "cross-entropy / total"
    assert fig.layout.yaxis2.visible is False
    # a reconstruction with a tiny L2 penalty: the penalty moves right
    fig = loss_figure([rec(k, rec=0.5, l2=1e-4, total=0.5) for k in range(5)])
    assert fig.layout.yaxis.title.text == "reconstruction / total"
    assert fig.layout.yaxis2.title.text == "L2" and fig.layout.yaxis2.visible
    assert {t.name: t.yaxis for t in fig.data} == {"rec · train": "y", "l2 · train": "y2",
                                                   "total · train": "y"}
