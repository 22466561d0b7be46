from ocvis.papers import paper_rows, paper_value, table


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
