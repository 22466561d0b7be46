"""Run store and experiments: atomic files, listing, broken runs, CLI run."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ocvis.errors import OcvisError, TrainingError
from ocvis.experiment import run_experiment
from ocvis.runs import RunStore

ROOT = Path(__file__).resolve().parents[1]


def test_store_roundtrip(tmp_path):
    st = RunStore(tmp_path)
    rid = st.create({"method": "pca", "task_name": "digits/one-class/0"})
    assert st.read(rid)["status"] == "queued"
    st.update(rid, status="done", metrics={"auroc": 0.9})
    st.write_arrays(rid, a=np.arange(3), b=None)
    st.write_history(rid, [{"losses": {"rec": 1.0}}])
    st.write_model(rid, {"w": torch.ones(2)})
    assert st.read(rid)["metrics"]["auroc"] == 0.9
    assert st.arrays(rid)["a"].tolist() == [0, 1, 2] and "b" not in st.arrays(rid)
    assert st.history(rid)[0]["losses"]["rec"] == 1.0
    assert torch.equal(st.model_state(rid)["w"], torch.ones(2))
    assert [r["id"] for r in st.list()] == [rid]
    st.delete(rid)
    assert st.list() == []


def test_broken_and_interrupted_runs_are_listed(tmp_path):
    st = RunStore(tmp_path)
    ok = st.create({"method": "pca"})
    st.update(ok, status="done")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "run.json").write_text('{"method": "ics", "stat')
    (tmp_path / "empty").mkdir()
    dead = st.create({"method": "cae"})
    st.release(dead)  # its process ended: nobody renews the lease
    meta = json.loads((tmp_path / dead / "run.json").read_text())
    meta.update(status="running", pid=2**22 + 12345)
    (tmp_path / dead / "run.json").write_text(json.dumps(meta))
    by_id = {r["id"]: r["status"] for r in st.list()}
    assert by_id == {ok: "done", "half": "broken", "empty": "broken", dead: "interrupted"}
    with pytest.raises(OcvisError, match="invalid run id"):
        st.path("../etc")


def test_run_experiment_stores_everything(tmp_path):
    st = RunStore(tmp_path)
    meta = run_experiment({"dataset": "digits", "normal": [1], "seed": 0}, "ics", "tiny",
                          {"reuse_pretrain": False}, store=st)
    rid = meta["id"]
    saved = st.read(rid)
    assert saved["status"] == "done" and 0 <= saved["metrics"]["auroc"] <= 1
    assert saved["config"]["rho"] == 10.0 and saved["seed"] == 0
    arr = st.arrays(rid)
    assert arr["test_scores"].shape == arr["y_test"].shape
    assert arr["train_latent"].shape[1] == 64 and arr["split_atypical"].dtype == bool
    hist = st.history(rid)
    assert {h["stage"] for h in hist} == {"pretrain", "joint"}
    from ocvis.methods import make_method
    m = make_method("ics", "tiny").load_state_dict(st.model_state(rid))
    from ocvis.data import make_task
    t = make_task("digits", "one-class", [1])
    np.testing.assert_allclose(m.score_samples(t.x_test), arr["test_scores"], rtol=1e-4,
                               atol=1e-5)


def test_failed_run_keeps_curves(tmp_path, monkeypatch):
    """A loss that turns NaN on the 4th step: the run fails, says why, keeps 3 steps."""
    import ocvis.losses as losses

    real, calls = losses.reconstruction, {"n": 0}

    def flaky(x, xh, reduction="sum"):
        calls["n"] += 1
        out = real(x, xh, reduction)
        return out * float("nan") if calls["n"] >= 4 else out

    monkeypatch.setattr(losses, "reconstruction", flaky)
    st = RunStore(tmp_path)
    with pytest.raises(TrainingError, match="diverged"):
        run_experiment({"dataset": "digits", "normal": [2]}, "cae", "tiny",
                       {"reuse_pretrain": False, "pretrain_epochs": 5}, store=st)
    (run,) = st.list()
    assert run["status"] == "failed" and "diverged" in run["error"]
    assert len(st.history(run["id"])) == 3


def test_stored_run_writes_its_curves_while_it_trains(tmp_path, monkeypatch):
    """Any stored run (CLI, bench, a page's job) flushes its history during training, so the
    dashboard can draw the live curve of a run another process is training."""
    import ocvis.experiment as experiment
    from ocvis.train import Hooks

    monkeypatch.setattr(experiment, "HISTORY_FLUSH_SECONDS", 0.0)
    st = RunStore(tmp_path)
    seen: list[int] = []

    class Peek(Hooks):
        def on_step(self, event):
            (rid,) = [r["id"] for r in st.list()]
            assert st.read(rid)["status"] == "running"
            seen.append(len(st.history(rid)))

    meta = run_experiment({"dataset": "digits", "normal": [2]}, "cae", "tiny",
                          {"reuse_pretrain": False, "pretrain_epochs": 3}, store=st,
                          hooks=Peek())
    # the recorder runs before the peek: by step k the file holds k records
    assert seen == list(range(1, len(seen) + 1)) and len(seen) >= 3
    assert len(st.history(meta["id"])) == len(seen)


def test_cli_run_and_bench(tmp_path):
    env = {"OCVIS_RUNS_DIR": str(tmp_path / "runs"), "PATH": "/usr/bin:/bin",
           "OCVIS_CACHE_DIR": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-m", "ocvis", "run", "--method", "pca",
                          "--dataset", "digits", "--normal", "3", "--seed", "0",
                          "--projection", "pca"],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    assert "auroc" in out and "stored as run" in out and "PCA projection of" in out
    (rid,) = [r["id"] for r in RunStore(tmp_path / "runs").list()]
    assert list((tmp_path / "runs" / rid).glob("proj-pca-*.npy"))  # the Latent page's cache
    res = subprocess.run([sys.executable, "-m", "ocvis", "bench", "--methods", "pca,hog",
                          "--dataset", "digits", "--classes", "0,1", "--out-dir",
                          str(tmp_path), "--name", "t"], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True)
    lines = (tmp_path / "t.csv").read_text().splitlines()
    assert len(lines) == 1 + 4 + 2  # header, 4 rows, 2 mean rows
    again = subprocess.run([sys.executable, "-m", "ocvis", "bench", "--methods", "pca,hog",
                            "--dataset", "digits", "--classes", "0,1", "--out-dir",
                            str(tmp_path), "--name", "t"], cwd=ROOT, env=env,
                           capture_output=True, text=True, check=True)
    assert "AUROC" not in again.stdout  # every row present: nothing re-run
    assert (tmp_path / "t.csv").read_text().splitlines() == lines
    # bench keeps every row's run (features, scores), named in the table
    rows = list(csv.DictReader(open(tmp_path / "t.csv")))
    ids = {r["run_id"] for r in rows if r["normal_class"] != "mean"}
    assert len(ids) == 4 and ids <= {r["id"] for r in RunStore(tmp_path / "runs").list()}
    assert {r["detector_ok"] for r in rows if r["normal_class"] != "mean"} == {"1"}
    assert all(float(r["peak_rss_mib"]) > 10 for r in rows if r["normal_class"] != "mean")
    subprocess.run([sys.executable, "-m", "ocvis", "bench", "--methods", "pca",
                    "--dataset", "digits", "--classes", "2", "--out-dir", str(tmp_path),
                    "--name", "t", "--no-store"], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    assert len(RunStore(tmp_path / "runs").list()) == 5  # --no-store kept none
    # rescore: the detector re-fitted on the stored features, without retraining
    before = {(r["method"], r["normal_class"]): r for r in rows}
    out = subprocess.run([sys.executable, "-m", "ocvis", "rescore", str(tmp_path / "t.csv"),
                          "--set", "detector=kde"], cwd=ROOT, env=env, capture_output=True,
                         text=True, check=True).stdout
    assert "re-scored 4 row(s)" in out
    after = {(r["method"], r["normal_class"]): r
             for r in csv.DictReader(open(tmp_path / "t.csv"))}
    assert after[("pca", "0")]["auroc"] != before[("pca", "0")]["auroc"]
    assert after[("pca", "2")]["run_id"] == ""  # the --no-store row is left as it was
    bad = subprocess.run([sys.executable, "-m", "ocvis", "run", "--dataset", "nope"],
                         cwd=ROOT, env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown dataset" in bad.stderr
    del res


def test_peak_rss_window_of_a_bench_row():
    """A row's ``peak_rss_mib`` is the peak while it ran: an allocation inside the window
    raises it, and a new window starts from the memory resident now, not the old peak."""
    import numpy as np

    from ocvis.memory import peak_rss_mib, reset_peak_rss

    if not reset_peak_rss():
        pytest.skip("this system cannot reset the peak RSS")
    low = peak_rss_mib()
    a = np.ones(256 * 2 ** 20 // 8)  # 256 MiB, every page written
    high = peak_rss_mib()
    del a
    assert high >= low + 200
    reset_peak_rss()
    assert peak_rss_mib() < high - 200


def test_two_bench_processes_fill_one_table(tmp_path):
    """Two `bench` runs on one table (different classes, at the same time) keep each other's
    rows: each row is merged into the table as it is on disk when it finishes."""
    import threading

    from ocvis.bench import read_rows as _read_rows, bench

    out = tmp_path / "shared.csv"
    threads = [threading.Thread(target=bench, args=(["pca", "original"], "digits", [c], [0],
                                                    "cpu", out)) for c in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = _read_rows(out)
    assert sorted((r["method"], r["normal_class"]) for r in rows) == [
        ("original", "0"), ("original", "1"), ("pca", "0"), ("pca", "1")]
    means = [r for r in csv.DictReader(out.open()) if r["normal_class"] == "mean"]
    assert {m["method"]: m["class_name"] for m in means} == {"pca": "2 rows",
                                                              "original": "2 rows"}


def test_bench_keeps_rows_of_another_training_size_apart(tmp_path):
    """A table's rows are not skipped as done, nor replaced, on behalf of a request with
    another number of training images: that is an error naming the table."""
    from ocvis.bench import bench, read_rows
    from ocvis.errors import DataError

    store = RunStore(tmp_path / "runs")
    out = tmp_path / "t.csv"
    bench(["pca"], "digits", [0], [0], "cpu", out, n_train=100, store=store)
    (row,) = [r for r in read_rows(out) if r["normal_class"] != "mean"]
    assert row["n_train"] == "100"
    for other in (0, 50):
        with pytest.raises(DataError, match="100 images"):
            bench(["pca"], "digits", [0], [0], "cpu", out, n_train=other, store=store)
    bench(["pca"], "digits", [0], [0], "cpu", out, n_train=100, store=store)  # done: skipped
    assert len(store.list()) == 1


def test_table_mean_row_is_the_mean_over_classes_not_rows(tmp_path):
    """A class with three seeds weighs as much in the mean row as a class with one."""
    from ocvis.bench import write_table

    def row(c, seed, auroc):
        return {"dataset": "digits", "protocol": "one-class", "method": "pca",
                "normal_class": str(c), "class_name": str(c), "seed": str(seed),
                "preset": "cpu", "overrides": "", "score": "", "auroc": str(auroc)}

    out = tmp_path / "t.csv"
    write_table(out, [row(0, 0, 90.0), row(0, 1, 80.0), row(0, 2, 70.0), row(1, 0, 50.0)])
    (m,) = [r for r in csv.DictReader(out.open()) if r["normal_class"] == "mean"]
    assert float(m["auroc"]) == pytest.approx((80.0 + 50.0) / 2)  # not (90+80+70+50)/4
    assert m["class_name"] == "2 classes, 4 rows"
