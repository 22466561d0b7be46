from ocvis.papers import paper_rows, paper_value, paper_value_of, table


def test_paper_values_from_shipped_table():
    assert paper_value("ics", "mnist", 3) == 96.5          # Table 4, digit 3
    assert paper_value("ics", "mnist", 3, "bacc") == 90.9  # Table 1
    assert paper_value("hog", "cifar10", 9, "bacc") == 53.0
    assert paper_value("nope", "mnist", 3) is None
    assert paper_value("ics", "digits", 3) is None
    means = paper_rows("ics").query("metric == 'auroc'").groupby("dataset").value.mean()
    assert round(means["mnist"], 1) == 96.3 and round(means["cifar10"], 1) == 62.8
    assert {"paper", "dataset", "normal_class", "method", "metric", "value"} <= set(table())


def test_scores_are_matched_to_the_papers_labels():
    from ocvis.papers import paper_value_of, score_labels

    assert ("rotation", "two_stage", "RotNet (end-to-end)") in score_labels("rotnet")
    assert ("kde", "two_stage", "RotNet + KDE") in score_labels("rotnet")
    # the paper's Contrastive (DA) row is its OC-SVM, not the primary KDE score
    assert score_labels("contrastive-da") == [("ocsvm", "two_stage",
                                               "Contrastive (DA) + OC-SVM")]
    assert ("reconstruction", "e3outlier", "CAE") in score_labels("cae")
    assert {(k, v) for _, k, v in score_labels("deep-svdd")} == {
        ("ics_end_to_end", "DSVDD"), ("clad", "DeepSVDD")}
    assert paper_value_of("e3outlier", "E3Outlier", "cifar10",
                          "mean@outlier_ratio=10%") == 83.5


def test_paper_values_respect_the_protocol():
    # the ICS paper's one-class CAE on Fashion-MNIST 0 is 89.5; an unsupervised CAE run (the
    # E3Outlier paper's setting, which reports only means) has no per-class paper value
    assert paper_value("cae", "fashion-mnist", 0) == 89.5
    assert paper_value("cae", "fashion-mnist", 0, protocol="one-class") == 89.5
    assert paper_value("cae", "fashion-mnist", 0, protocol="unsupervised") is None
    assert paper_value("e3outlier", "fashion-mnist", 0, protocol="unsupervised") is None
    assert paper_value("ics-e2e", "mnist", 2, protocol="unsupervised") is None
    assert paper_value("ics-e2e", "mnist", 2, protocol="one-class") == 91.7


def test_refresh_paper_values_rewrites_stale_columns(tmp_path):
    from ocvis.bench import BENCH_COLUMNS, read_rows, refresh_paper_values, write_table

    def row(method, protocol, cls, paper, paper_bacc=""):
        r = dict.fromkeys(BENCH_COLUMNS, "")
        r.update(dataset="fashion-mnist", protocol=protocol, method=method, normal_class=cls,
                 seed="0", preset="cpu", auroc="80.00", paper_auroc=paper,
                 paper_bacc=paper_bacc)
        return r

    path = tmp_path / "t.csv"
    # a stale unsupervised row carrying the one-class paper's value, a right one-class row
    # and a one-class row whose paper value is missing
    write_table(path, [row("cae", "unsupervised-10", "0", "89.5"),
                       row("cae", "one-class", "0", "89.5", "80.6"),
                       row("ics-e2e", "one-class", "4", "")])
    assert refresh_paper_values(path) == 2
    got = {(r["method"], r["protocol"]): r for r in read_rows(path)}
    assert got[("cae", "unsupervised-10")]["paper_auroc"] == ""
    assert got[("cae", "one-class")]["paper_auroc"] == "89.5"
    assert float(got[("ics-e2e", "one-class")]["paper_auroc"]) == 90.2
    assert got[("cae", "one-class")]["auroc"] == "80.00"     # metrics untouched
    assert refresh_paper_values(path) == 0                  # idempotent


def test_paper_values_follow_the_chosen_score():
    # RotNet: the paper's 91.3 is RotNet + KDE; its rotation score has no CIFAR-10 number
    assert paper_value("rotnet", "cifar10", "mean", score="kde") == 91.3
    assert paper_value("rotnet", "cifar10", "mean", score="rotation") is None
    # Contrastive (DA): the paper's 92.5 is with the OC-SVM, not our primary KDE score
    assert paper_value("contrastive-da", "cifar10", "mean", score="ocsvm") == 92.5
    assert paper_value("contrastive-da", "cifar10", "mean", score="kde") is None
    # E3Outlier: NE is "E3Outlier", SSD-IF its own row, PL none
    key = "mean@outlier_ratio=10%"
    assert paper_value("e3outlier", "cifar10", key, protocol="unsupervised", score="ne") == 83.5
    assert paper_value("e3outlier", "cifar10", key, protocol="unsupervised", score="pl") is None
    assert paper_value("e3outlier", "cifar10", key, protocol="unsupervised",
                       score="ssd_iforest") == paper_value_of("e3outlier", "SSD-IF", "cifar10",
                                                              key)
