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
