"""Benchmark tables on a local Ray instance (skipped without Ray): the same rows as the local
path for the same thread count, and no row lost when a worker process is killed."""
from __future__ import annotations

import csv
import json
import os
import signal
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from waiting import GENEROUS, wait_until

ray = pytest.importorskip("ray", reason="Ray is optional: pip install -r "
                                        "requirements-cluster.txt")

from ocvis.bench import bench, read_rows  # noqa: E402
from ocvis.cluster import ray_bench  # noqa: E402
from ocvis.runs import RunStore  # noqa: E402

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module", autouse=True)
def _ray_can_start():
    """Skip (with the reason) where a local Ray instance cannot start, e.g. a container
    without the shared memory Ray needs; the tests start their own instances."""
    try:
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"a local Ray instance cannot start here: {exc}")
    finally:
        if ray.is_initialized():
            ray.shutdown()


def _metrics(store: RunStore, rows) -> dict:
    out = {}
    for r in rows:
        meta = json.loads((store.path(r["run_id"]) / "run.json").read_text())
        out[(r["method"], r["normal_class"], r["seed"])] = meta["metrics"]["auroc"]
    return out


def test_ray_table_equals_the_local_table(tmp_path, fresh_streamlit):
    args = (["cae", "cls"], "digits", [0, 1, 2], [0, 1], "tiny")
    # the Ray runs go to the dashboard's store ($OCVIS_RUNS_DIR), the local ones elsewhere
    local_store, ray_store = RunStore(tmp_path / "local"), RunStore()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the Ray tasks run one thread each (one CPU)
    try:
        bench(*args, tmp_path / "local.csv", store=local_store)
    finally:
        torch.set_num_threads(threads)
    lines = []
    ray_bench(*args, tmp_path / "ray.csv", store=ray_store, num_cpus=2,
              progress=lines.append)
    a, b = read_rows(tmp_path / "local.csv"), read_rows(tmp_path / "ray.csv")
    assert len(a) == len(b) == 12 and not any(r.get("error") for r in b)
    cols = ("method", "normal_class", "seed", "auroc", "bacc", "aupr_in", "aupr_out",
            "threads", "detector_ok")
    assert sorted(tuple(r[c] for c in cols) for r in a) == \
        sorted(tuple(r[c] for c in cols) for r in b)
    ma, mb = _metrics(local_store, a), _metrics(ray_store, b)  # runs written by the driver
    assert ma.keys() == mb.keys() and all(abs(ma[k] - mb[k]) < 1e-6 for k in ma)
    assert len(lines) == 12
    ray_bench(*args, tmp_path / "ray.csv", store=ray_store, num_cpus=2)  # nothing to do
    assert len(read_rows(tmp_path / "ray.csv")) == 12
    # the Runs page lists the cluster's runs like local ones
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(TESTS.parent / "pages" / "7_Runs.py"), default_timeout=120).run()
    assert not at.exception, at.exception
    listed = next(d.value for d in at.dataframe if "AUROC" in d.value.columns).set_index("id")
    assert set(listed.index) == {r["run_id"] for r in b}
    for r in b:
        assert listed.loc[r["run_id"], "status"] == "done"
        assert listed.loc[r["run_id"], "AUROC"] == pytest.approx(
            100 * mb[(r["method"], r["normal_class"], r["seed"])], abs=1e-6)


def test_killed_worker_loses_no_row(tmp_path, monkeypatch):
    gate = tmp_path / "gate"
    gate.mkdir()
    monkeypatch.setenv("OCVIS_TEST_GATE", str(gate))
    monkeypatch.setenv("OCVIS_METHOD_PLUGINS", "ray_gate_plugin")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS),
                                                       os.environ.get("PYTHONPATH", "")]))
    import ray_gate_plugin  # noqa: F401 - registers gated-pca in the driver too

    out = tmp_path / "t.csv"
    errors = []

    def fill():
        try:
            ray_bench(["gated-pca"], "digits", [0, 1], [0], "cpu", out,
                      store=RunStore(tmp_path / "runs"), num_cpus=2)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=fill)
    t.start()
    started = wait_until(lambda: sorted(gate.iterdir()), what="a row started on a worker",
                         timeout=GENEROUS)
    victim = int(started[0].name.split("-")[0])
    os.kill(victim, signal.SIGKILL)
    (gate / "release").write_text("go")
    t.join(GENEROUS)
    assert not t.is_alive() and not errors, errors
    rows = read_rows(out)
    assert sorted(r["normal_class"] for r in rows) == ["0", "1"]
    assert not any(r.get("error") for r in rows), [r.get("error") for r in rows]
    starts = [p for p in gate.iterdir() if p.name != "release"]
    assert len(starts) == 3  # two rows, the killed one started twice
    assert len({r["run_id"] for r in rows}) == 2
    header = next(csv.reader(out.open()))
    assert "error" in header


def test_sweep_on_digits_is_reproducible_and_saves_its_best(tmp_path, monkeypatch):
    from ocvis.methods import available_presets, make_method
    from ocvis.sweep import sweep, validation_task

    monkeypatch.setenv("OCVIS_PRESETS_DIR", str(tmp_path / "presets"))
    task = validation_task("digits", 3, 0.2, seed=0)
    assert set(np.unique(task.y_test)) == {0, 1}  # labelled, from the training split only
    assert (task.test_classes[task.y_test == 0] == 3).all()
    args = dict(method="cae", dataset="digits", normal=3,
                params=["lr=1e-4:1e-2:log", "latent_dim=8:64"], trials=8, preset="tiny",
                seed=0, num_cpus=2, progress=lambda line: None)
    a = sweep(**args, save="swept")
    b = sweep(**args)
    assert len(a["trials"]) == len(b["trials"]) == 8
    assert a["best"] == b["best"]  # the same seed, the same best trial
    assert a["val_auroc"] == pytest.approx(b["val_auroc"], abs=1e-9)
    assert "swept" in available_presets("cae")
    m = make_method("cae", "swept")
    assert m.config.latent_dim == a["best"]["latent_dim"]
    assert m.config.lr == pytest.approx(a["best"]["lr"])

