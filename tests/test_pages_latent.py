"""AppTest of the Latent space and Explain pages with a stored tiny run."""
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ocvis.experiment import run_experiment
from ocvis.runs import RunStore
from waiting import wait_until

PAGES = Path(__file__).resolve().parents[1] / "pages"


@pytest.fixture(autouse=True)
def _fresh(fresh_streamlit):
    yield


@pytest.fixture
def run_id():
    meta = run_experiment({"dataset": "digits", "protocol": "one-class", "normal": [0],
                           "n_train": None, "ratio": 10.0, "seed": 0}, "ics", "tiny",
                          {"reuse_pretrain": False}, store=RunStore())
    return meta["id"]


def test_latent_page_pca_and_umap(run_id):
    at = AppTest.from_file(str(PAGES / "4_Latent_Space.py"), default_timeout=120).run()
    assert not at.exception
    at.selectbox(key="latent_proj").set_value("pca").run()
    assert not at.exception
    charts = at.get("plotly_chart")
    assert charts, "the scatter is drawn"
    assert any("typical normal" in str(c.proto) for c in charts)
    # UMAP runs as a background job, then the scatter appears from the cache
    at.selectbox(key="latent_proj").set_value("umap").run()
    assert not at.exception
    from ocvis.ui.jobs import job_manager
    jobs = [j for j in job_manager().jobs() if j.kind == "projection"]
    assert jobs
    job_manager().wait(jobs[0], 300)
    assert jobs[0].status == "done", jobs[0].error
    def scatter_shown():
        at.run()
        assert not at.exception
        return any("typical normal" in str(c.proto) for c in at.get("plotly_chart"))

    wait_until(scatter_shown, what="the UMAP scatter", every=0.3)
    assert not at.exception
    assert any("typical normal" in str(c.proto) for c in at.get("plotly_chart"))
    assert list((RunStore().path(run_id)).glob("proj-umap-*.npy"))


def test_latent_page_without_runs():
    at = AppTest.from_file(str(PAGES / "4_Latent_Space.py"), default_timeout=60).run()
    assert not at.exception and "No finished run" in at.info[0].value


def test_explain_page(run_id):
    at = AppTest.from_file(str(PAGES / "6_Explain.py"), default_timeout=120).run()
    assert not at.exception
    assert at.get("imgs") or at.get("image")
    assert any("completeness" in c.value for c in at.caption)
    at.selectbox(key="explain_head").set_value("own").run()
    assert not at.exception
    at.selectbox(key="explain_source").set_value("selected").run()
    assert not at.exception and "Nothing selected" in at.info[0].value
    # a selection made on the latent page is explained
    at.session_state["ocvis_selected"] = {"run": run_id, "samples": [["test", 0], ["train", 1]]}
    at.run()
    assert not at.exception
    assert any("completeness" in c.value for c in at.caption)


def test_score_colours_are_not_taken_by_outliers():
    """Coloured by anomaly score, one far-out score must not flatten all other points into
    one colour: the colour range is the 1st-99th percentile; the values stay exact."""
    import numpy as np

    from ocvis.ui.figures import latent_scatter

    rng = np.random.default_rng(0)
    score = rng.normal(size=500)
    score[7] = -1e4  # one huge anomaly
    fig = latent_scatter(rng.normal(size=(500, 2)), np.zeros(500, int), score, "score")
    m = fig.data[0].marker
    anomaly = -score
    assert m.cmax < 10 and m.cmin > -10
    assert m.cmin == pytest.approx(np.percentile(anomaly, 1), rel=1e-5)
    assert m.cmax == pytest.approx(np.percentile(anomaly, 99), rel=1e-5)
    assert np.asarray(m.color)[7] == pytest.approx(1e4)


def test_true_class_legend_names_the_classes():
    """Coloured by a categorical column with class names (the "true class" colour), the
    legend names each class and counts its points; without names, label and value."""
    import numpy as np

    from ocvis.ui.figures import latent_scatter

    xy = np.zeros((5, 2))
    classes = np.array([0, 2, 2, 0, 2])
    fig = latent_scatter(xy, np.zeros(5, int), color_by="values", values=classes,
                         categorical=True, value_label="true class",
                         value_names=["airplane", "automobile", "bird"])
    assert [t.name for t in fig.data] == ["airplane (2)", "bird (3)"]
    assert sorted(np.concatenate([t.customdata for t in fig.data])) == [0, 1, 2, 3, 4]
    plain = latent_scatter(xy, np.zeros(5, int), color_by="values", values=classes,
                           categorical=True, value_label="pseudo_label")
    assert [t.name for t in plain.data] == ["pseudo_label 0 (2)", "pseudo_label 2 (3)"]
    # digit names equal to the values say nothing new: keep "true class 3"
    digits = latent_scatter(xy, np.zeros(5, int), color_by="values", values=classes,
                            categorical=True, value_label="true class",
                            value_names=[str(d) for d in range(10)])
    assert [t.name for t in digits.data] == ["true class 0 (2)", "true class 2 (3)"]
