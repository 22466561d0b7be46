"""bench/clad_oracle.py and bench/clad_odin_sweep.py: CLAD diagnoses (issue 16)."""
import csv

import numpy as np
import pytest

from ocvis.data import make_task
from ocvis.experiment import run_experiment
from ocvis.runs import RunStore

from bench_scripts import load


@pytest.mark.parametrize("labels", ["oracle", "kmeans"])
def test_clad_oracle_trains_the_classifier_on_the_named_labels(tmp_path, labels):
    out = tmp_path / "oracle.csv"
    row = load("clad_oracle").main(["--dataset", "digits", "--scenario", "CUR", "--labels",
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
    rows = load("clad_odin_sweep").main([
        str(tmp_path / "runs"), meta["id"], "--eps", f"0,{cfg['odin_eps']}",
        "--temperature", str(cfg["temperature"]), "--out", str(tmp_path / "sweep.csv")])
    assert [r["eps"] for r in rows] == [0.0, cfg["odin_eps"]]
    # the run's own setting gives the run's own AUROC
    assert rows[1]["auroc"] == pytest.approx(100 * meta["metrics"]["auroc"], abs=0.01)


def test_colour_stats_on_hand_made_images():
    mod = load("clad_colour")
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
    row, = load("clad_colour").main([str(tmp_path / "runs"), meta["id"], "--out", str(out)])
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


def test_clad_one_class_joins_rows_colour_and_baseline_by_run_and_class(tmp_path):
    head = ("dataset,protocol,method,normal_class,class_name,seed,n_train,auroc,auroc_msp,"
            "paper_auroc,cpu_seconds,run_id\n")
    (tmp_path / "t.csv").write_text(
        head + "cifar10,one-class,clad,1,automobile,0,4000,50.00,51.00,64.4,3000,r1\n"
        "cifar10,one-class,clad,0,airplane,0,4000,60.00,58.00,73.0,2000,r0\n"
        "cifar10,one-class,clad,0,airplane,1,4000,99.00,99.00,73.0,2000,s1\n"  # seed 1
        "cifar10,latent-multiclass,clad,THG,THG,0,4000,48.00,47.00,74.9,2500,x\n")
    (tmp_path / "c.csv").write_text(
        "run_id,clusters,majority,auroc_colour_distance\nr0,3,0.860,52.00\nr1,7,0.489,64.00\n")
    (tmp_path / "b.csv").write_text(
        "protocol,method,normal_class,seed,n_train,auroc\n"
        "one-class,deep-svdd,0,0,4000,70.00\none-class,deep-svdd,1,0,2000,10.00\n"
        "one-class,ocsvm,1,0,4000,20.00\n")
    mod = load("clad_one_class")
    t = mod.one_class_table(str(tmp_path / "t.csv"), str(tmp_path / "c.csv"),
                            str(tmp_path / "b.csv"))
    assert list(t["class"]) == ["0 airplane", "1 automobile"]  # seed 0, one-class, by number
    assert list(t.odin) == [60.0, 50.0] and list(t.colour) == [52.0, 64.0]
    assert t.clusters[0] == "3 (86 %)"
    # Deep SVDD of the same class and training-set size only (automobile's is n = 2,000)
    assert t.deep_svdd[0] == 70.0 and np.isnan(t.deep_svdd[1])
    assert t.paper_deep_svdd[0] == 61.7  # the CLAD paper's table, airplane
    text = mod.markdown(t)
    assert "**55.00**" in text  # mean ODIN over the two classes
    assert "ahead of the colour distance on 1 of 2 classes" in text
    assert "ahead of our Deep SVDD on 0 of 1 classes" in text


def test_clad_one_class_says_when_the_table_has_no_such_rows(tmp_path):
    (tmp_path / "t.csv").write_text(
        "dataset,protocol,method,normal_class,class_name,seed,n_train,auroc,paper_auroc,"
        "cpu_seconds,run_id\ncifar10,latent-multiclass,clad,THG,THG,0,4000,48,74.9,1,x\n")
    with pytest.raises(SystemExit, match="no one-class clad rows of seed 0"):
        load("clad_one_class").one_class_table(str(tmp_path / "t.csv"))
