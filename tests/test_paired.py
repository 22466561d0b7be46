"""bench/paired.py: per-class differences of two stored scores, or of two settings."""

import pytest

from bench_scripts import load


@pytest.fixture()
def paired_mod():
    return load("paired")


def _table(path, rows):
    from ocvis.bench import BENCH_COLUMNS, write_table

    full = []
    for cls, overrides, kde, rot in rows:
        r = dict.fromkeys(BENCH_COLUMNS, "")
        r.update(dataset="cifar10", protocol="one-class", method="rotnet", normal_class=cls,
                 seed="0", preset="cpu", score="kde", auroc=f"{kde:.2f}",
                 overrides=overrides, auroc_rotation=f"{rot:.2f}")
        full.append(r)
    write_table(path, full)


def test_paired_scores_and_settings(tmp_path, paired_mod, capsys):
    t = tmp_path / "t.csv"
    _table(t, [("0", "", 70.0, 75.0), ("3", "", 60.0, 50.0), ("10", "", 80.0, 90.0),
               ("0", "epochs=40", 78.0, 76.0)])
    from ocvis.bench import results_frame

    df = results_frame([t])
    both = paired_mod.paired(df, "rotnet", "kde", "rotation")
    assert list(both["normal_class"]) == ["0", "3", "10"]       # numeric order
    assert list(both["a - b"]) == pytest.approx([-5.0, 10.0, -10.0])
    # the same score at two settings: only the classes both have
    longer = paired_mod.paired(df, "rotnet", "kde", "kde", "epochs=40", "")
    assert list(longer["normal_class"]) == ["0"] and longer["a - b"].iloc[0] == pytest.approx(8)
    assert paired_mod.main([str(t), "--method", "rotnet", "--a", "kde", "--b", "rotation"]) == 0
    out = capsys.readouterr().out
    # mean of (-5, 10, -10) = -1.67, sample std 10.41, SE 6.01, kde ahead on 1 of 3
    assert "mean -1.67, std 10.41, SE 6.01; kde ahead on 1 of 3" in out
