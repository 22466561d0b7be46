"""The methods of the later papers reach Latent, Evaluate and Explain with no page-specific
code: a CLAD run (latent-multiclass scenario, several scores, pseudo-labels as a per-sample
column) and an E3Outlier run (unsupervised protocol, transductive)."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ocvis.experiment import run_experiment
from ocvis.runs import RunStore

PAGES = Path(__file__).resolve().parents[1] / "pages"
CASES = {
    "clad": ({"dataset": "digits", "protocol": "latent-multiclass", "normal": "CUR",
              "seed": 0}, {"pretrain_epochs": 1, "dec_epochs": 1, "epochs": 1}),
    "e3outlier": ({"dataset": "digits", "protocol": "unsupervised", "normal": [0],
                   "ratio": 10.0, "seed": 0}, {}),
}


@pytest.fixture(autouse=True)
def _fresh(fresh_streamlit):
    yield


@pytest.mark.parametrize("method", list(CASES))
def test_latent_evaluate_explain(method):
    task, overrides = CASES[method]
    meta = run_experiment(dict(task), method, "tiny", overrides, store=RunStore())
    assert len(meta["score_names"]) > 1
    at = AppTest.from_file(str(PAGES / "4_Latent_Space.py"), default_timeout=120).run()
    assert not at.exception, at.exception
    at.selectbox(key="latent_proj").set_value("pca").run()
    assert not at.exception, at.exception
    colours = at.selectbox(key="latent_color").options
    if method == "clad":
        assert any("pseudo_label" in str(o) for o in colours), colours
        # the digits' CUR scenario has several true classes: a colour, and the pseudo-labels'
        # agreement with them under the scatter
        assert "true class" in colours
        at.selectbox(key="latent_color").set_value("pseudo_label").run()
        assert not at.exception, at.exception
        nmi = meta["column_nmi"]["pseudo_label"]
        assert any(f"NMI {nmi:.3f}" in c.value for c in at.caption), [c.value for c in at.caption]
    else:
        assert any("predicted_operation" in str(o) for o in colours), colours
        # an operation predicted for each image is no clustering of the images: no NMI
        assert "column_nmi" not in meta
    ev = AppTest.from_file(str(PAGES / "5_Evaluate.py"), default_timeout=120).run()
    assert not ev.exception, ev.exception
    tables = [d.value for d in ev.dataframe if "metric" in d.value.columns]
    assert tables and list(tables[0]["metric"])[0] == "AUROC"
    assert tables[0]["ours (%)"].iloc[0] == pytest.approx(100 * meta["metrics"]["auroc"])
    assert len(ev.get("plotly_chart")) >= 3
    paper = tables[0].get("paper (%)")
    if method == "clad":  # CLAD's digits scenario has no paper value; MNIST's would
        assert paper is not None and paper.isna().all()
    from ocvis.ui.evaluate import paper_class_of

    key = paper_class_of(meta)
    assert key == ("CUR" if method == "clad" else "mean@outlier_ratio=10%")
    ex = AppTest.from_file(str(PAGES / "6_Explain.py"), default_timeout=300)
    ex.run()
    assert not ex.exception, ex.exception
    ex.number_input(key="explain_n").set_value(1).run()
    assert not ex.exception, ex.exception
    heads = ex.selectbox(key="explain_head").options
    assert heads, "a head to explain through"
    # each head under the method's own name for it, not its key ("msp", "ne")
    from ocvis.methods import get_method

    names = get_method(method).explain_head_names
    assert list(heads) == [names[h] for h in get_method(method).explain_heads]


def test_evaluate_describes_the_chosen_score():
    meta = run_experiment(dict(CASES["e3outlier"][0]), "e3outlier", "tiny", {},
                          store=RunStore())
    ev = AppTest.from_file(str(PAGES / "5_Evaluate.py"), default_timeout=120).run()
    assert not ev.exception, ev.exception
    assert ev.selectbox(key="eval_score").value == meta["primary_score"] == "ne"
    assert any("negative entropy" in c.value for c in ev.caption)
    ev.selectbox(key="eval_score").set_value("ssd_iforest").run()
    assert not ev.exception, ev.exception
    assert any("Isolation Forest" in c.value for c in ev.caption)
