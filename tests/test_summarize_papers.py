"""bench/summarize_papers.py: the paper comparison and the seeds section of a table with a
``_seeds`` sibling."""

import pytest

from bench_scripts import load


@pytest.fixture()
def summarize():
    return load("summarize_papers").summarize


def _write(path, rows):
    from ocvis.bench import BENCH_COLUMNS, write_table

    full = []
    for method, cls, seed, auroc in rows:
        r = dict.fromkeys(BENCH_COLUMNS, "")
        r.update(dataset="mnist", protocol="one-class", method=method, normal_class=cls,
                 seed=str(seed), preset="cpu", score="score", auroc=f"{auroc:.2f}")
        full.append(r)
    write_table(path, full)


def test_seeds_sibling_enters_only_the_seeds_section(tmp_path, summarize):
    main = tmp_path / "mnist_e2e_cpu.csv"
    _write(main, [("ics-e2e", "2", 0, 90.0), ("ics-e2e", "3", 0, 94.0)])
    _write(tmp_path / "mnist_e2e_cpu_seeds.csv",
           [("ics-e2e", "3", 1, 92.0), ("ics-e2e", "3", 2, 96.0)])
    text = "\n".join(summarize(main))
    # the ten-class style mean is the main table's (90 + 94) / 2, paper: Table 1's 91.7, 96.6
    assert "| mnist | one-class | ics-e2e | cpu  | score | ics_end_to_end: ICS-E2E | 2 | " \
           "92.00 | 92.00 | 94.15 |" in text
    # class 3 over seeds 0, 1, 2: mean 94, sample std 2
    assert "| mnist | ics-e2e | score | 3 | 3 | 94.00 ± 2.00 |" in text
    assert text.count("| mnist | ics-e2e | score | 3 |") == 1
    assert "| mnist | ics-e2e | score | 2 |" not in text   # one seed only


def test_deep_svdd_seeds_listed_once_for_two_papers(tmp_path, summarize):
    main = tmp_path / "t.csv"
    _write(main, [("deep-svdd", "3", 0, 90.0), ("deep-svdd", "3", 1, 92.0)])
    text = "\n".join(summarize(main))
    assert "ics_end_to_end: DSVDD" in text and "clad: DeepSVDD" in text
    assert text.count("| mnist | deep-svdd | score | 3 | 2 | 91.00 ± 1.41 |") == 1


def test_flipped_mean_replaces_aurocs_under_50(tmp_path, summarize):
    main = tmp_path / "t.csv"
    _write(main, [("ics-e2e", "4", 0, 40.0), ("ics-e2e", "5", 0, 70.0)])
    text = "\n".join(summarize(main))
    # ours (40 + 70) / 2 = 55; flipped (60 + 70) / 2 = 65
    assert "| 2 | 55.00 | 65.00 |" in text


def test_a_score_some_rows_lack_counts_only_the_rows_that_have_it(tmp_path, summarize):
    """A score added to a method after some rows ran (e.g. RotNet's ``rotation_p0``):
    its mean and class count are over the rows that have it."""
    from ocvis.bench import BENCH_COLUMNS, write_table

    rows = []
    for cls, extra in (("0", "80.00"), ("1", ""), ("2", "60.00")):
        r = dict.fromkeys(BENCH_COLUMNS, "")
        r.update(dataset="cifar10", protocol="one-class", method="rotnet", normal_class=cls,
                 seed="0", preset="cpu", score="kde", auroc="70.00", auroc_new=extra)
        rows.append(r)
    main = tmp_path / "t.csv"
    write_table(main, rows)
    text = "\n".join(summarize(main))
    assert "| new | – | 2 | 70.00 | 70.00 | – |" in text
    assert "| kde | two_stage: RotNet + KDE | 3 | 70.00 |" in text


def test_papers_of_another_protocol_kind_are_not_compared(tmp_path, summarize):
    from ocvis.bench import BENCH_COLUMNS, write_table

    def row(dataset, protocol, method, cls, auroc):
        r = dict.fromkeys(BENCH_COLUMNS, "")
        r.update(dataset=dataset, protocol=protocol, method=method, normal_class=cls,
                 seed="0", preset="cpu", score="score", auroc=f"{auroc:.2f}")
        return r

    t = tmp_path / "t.csv"
    write_table(t, [row("fashion-mnist", "unsupervised-10", "cae", "0", 80.0),
                    row("mnist", "latent-multiclass", "deep-svdd", "MIX", 70.0)])
    text = "\n".join(summarize(t))
    # a CAE trained on contaminated data is not the ICS paper's one-class CAE (89.5 there)
    assert "ics_feature_learning" not in text
    assert "| fashion-mnist | unsupervised-10 | cae | cpu  | score | – | 1 | 80.00 |" in text
    # Deep SVDD on the MIX scenario: CLAD's number (69.7); the end-to-end paper has no MIX
    assert "| mnist | latent-multiclass | deep-svdd | cpu  | score | clad: DeepSVDD | 1 | " \
           "70.00 | 70.00 | 69.70 |" in text
    assert "ics_end_to_end" not in text


def test_grouping_agreement_section_per_class_over_seeds(tmp_path, summarize):
    """Rows with ``nmi_<column>`` (CLAD's pseudo-labels against the true classes) get the
    per-class mean over seeds; a table without such columns has no such section."""
    from ocvis.bench import BENCH_COLUMNS, write_table

    rows = []
    for cls, seed, nmi in (("CUR", 0, "0.500"), ("CUR", 1, "0.700"), ("MIX", 0, "0.710")):
        r = dict.fromkeys(BENCH_COLUMNS, "")
        r.update(dataset="mnist", protocol="latent-multiclass", method="clad",
                 normal_class=cls, seed=str(seed), preset="cpu", score="odin", auroc="90.00",
                 nmi_pseudo_label=nmi)
        rows.append(r)
    main = tmp_path / "t.csv"
    write_table(main, rows)
    text = "\n".join(summarize(main))
    assert "| mnist | latent-multiclass | clad | cpu  | pseudo_label | " \
           "CUR 0.600 (2 seeds), MIX 0.710 |" in text
    plain = tmp_path / "p.csv"
    _write(plain, [("ics-e2e", "2", 0, 90.0)])
    assert "NMI" not in "\n".join(summarize(plain))
