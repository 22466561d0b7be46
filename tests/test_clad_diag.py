"""bench/clad_oracle.py and bench/clad_odin_sweep.py: CLAD diagnoses (issue 16)."""
import csv
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from ocvis.data import make_task
from ocvis.experiment import run_experiment
from ocvis.runs import RunStore

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("labels", ["oracle", "kmeans"])
def test_clad_oracle_trains_the_classifier_on_the_named_labels(tmp_path, labels):
    out = tmp_path / "oracle.csv"
    row = _load("clad_oracle").main(["--dataset", "digits", "--scenario", "CUR", "--labels",
                                     labels, "--preset", "tiny", "--n-train", "0", "--out",
                                     str(out)])
    task = make_task("digits", "latent-multiclass", "CUR")
    shares = np.bincount(task.train_classes).max() / len(task.train_classes)
    if labels == "oracle":  # the true digits: K = 3, perfect agreement
        assert row["k"] == 3 and row["nmi_true"] == 1.0
        assert row["largest_share"] == round(float(shares), 4)
    else:  # k-means of the tiny preset (K = 3), no DEC epoch
        assert row["k"] == 3 and 0.0 <= row["nmi_true"] < 1.0
    assert 0 <= row["odin"] <= 100 and 0 <= row["msp"] <= 100
    with out.open() as f:
        assert [r["labels"] for r in csv.DictReader(f)] == [labels]


def test_clad_odin_sweep_reproduces_the_stored_score(tmp_path):
    store = RunStore(tmp_path / "runs")
    meta = run_experiment({"dataset": "digits", "protocol": "latent-multiclass",
                           "normal": "CUR", "seed": 0}, "clad", "tiny", store=store)
    cfg = meta["config"]
    rows = _load("clad_odin_sweep").main([
        str(tmp_path / "runs"), meta["id"], "--eps", f"0,{cfg['odin_eps']}",
        "--temperature", str(cfg["temperature"]), "--out", str(tmp_path / "sweep.csv")])
    assert [r["eps"] for r in rows] == [0.0, cfg["odin_eps"]]
    # the run's own setting gives the run's own AUROC
    assert rows[1]["auroc"] == pytest.approx(100 * meta["metrics"]["auroc"], abs=0.01)


def test_colour_stats_on_hand_made_images():
    mod = _load("clad_colour")
    x = np.zeros((2, 3, 2, 2))
    x[0, 0] = 1.0                      # image 0: red everywhere
    x[1, 2] = [[0.0, 1.0], [0.0, 1.0]]  # image 1: half blue
    s = mod.colour_stats(x)
    assert s.shape == (2, 6)
    np.testing.assert_allclose(s[0], [1, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(s[1], [0, 0, 0.5, 0, 0, 0.5])


def test_clad_colour_describes_a_stored_run(tmp_path):
    store = RunStore(tmp_path / "runs")
    meta = run_experiment({"dataset": "digits", "protocol": "latent-multiclass",
                           "normal": "CUR", "seed": 0}, "clad", "tiny", store=store)
    out = tmp_path / "colour.csv"
    row, = _load("clad_colour").main([str(tmp_path / "runs"), meta["id"], "--out", str(out)])
    # the same agreement with the true classes as the run recorded after training
    assert float(row["nmi_true"]) == pytest.approx(meta["column_nmi"]["pseudo_label"],
                                                   abs=1e-3)
    assert 0 <= float(row["nmi_colour_kmeans"]) <= 1
    assert float(row["majority"]) <= 1 and float(row["colour_accuracy_true"]) <= 1
    assert float(row["auroc_run_odin"]) == pytest.approx(100 * meta["metrics"]["auroc"],
                                                         abs=0.01)
    assert 0 <= float(row["auroc_colour_distance"]) <= 100
    with out.open() as f:
        assert [r["run_id"] for r in csv.DictReader(f)] == [meta["id"]]
