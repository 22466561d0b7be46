"""bench/gpu_paper.py: a probe row, then one row with the epochs that fit, both labelled."""
import csv
import json

from bench_scripts import ROOT, load


def test_probe_then_main_run_rows_carry_their_epochs(tmp_path, monkeypatch):
    mod = load("gpu_paper")
    monkeypatch.chdir(ROOT)
    out = tmp_path / "out"
    rc = mod.main(["--method", "rotnet", "--dataset", "digits", "--preset", "tiny",
                   "--cls", "0", "--probe-epochs", "2", "--max-epochs", "4",
                   "--deadline", "1e7", "--name", "gpu_t", "--out-dir", str(tmp_path),
                   "--runs", str(tmp_path / "runs"), "--copy-to", str(out)])
    assert rc == 0
    rows = [r for r in csv.DictReader((tmp_path / "gpu_t.csv").open())
            if r["normal_class"] == "0"]
    assert sorted(r["overrides"] for r in rows) == ["epochs=2", "epochs=4"]
    assert all(r["preset"] == "tiny" and float(r["auroc"]) > 50 for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["probe_epochs"] == 2 and summary["epochs"] == 4 and summary["ok"]
    assert summary["seconds_per_epoch"] > 0 and summary["full_schedule_hours"] > 0
    hist = json.loads((out / "history_main.json").read_text())
    assert max(h["epoch"] for h in hist if h["stage"] == "representation") == 4
    assert (out / "gpu_t.csv").exists()
