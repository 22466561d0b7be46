"""AppTest: the pages open, switch datasets and show no exception."""
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from conftest import needs_shared
from ocvis.data import make_task

APP = Path(__file__).resolve().parents[1] / "app.py"
PAGES = APP.parent / "pages"


@pytest.fixture(autouse=True)
def _clear_caches():
    st.cache_data.clear()
    st.cache_resource.clear()
    yield


def test_app_overview():
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception
    assert "ocvis" in at.title[0].value
    # every registered method is listed with the scores its runs store
    from ocvis.methods import METHODS

    methods = next(d.value for d in at.dataframe if "scores" in d.value.columns)
    assert set(methods["method"]) == set(METHODS)
    rot = methods.set_index("method").loc["rotnet"]
    assert rot["scores"].split(", ")[:2] == ["kde", "ocsvm"] and "rotation" in rot["scores"]


def test_data_page_digits():
    at = AppTest.from_file(str(PAGES / "1_Data.py"), default_timeout=60).run()
    assert not at.exception
    assert [m.label for m in at.metric][:2] == ["Training images", "Test images"]
    assert at.metric[0].value != "0"
    # choose class 5 as the normal class
    at.multiselect[0].set_value([5]).run()
    assert not at.exception
    assert at.session_state["ocvis_task_cfg"]["normal"] == [5]
    # several normal classes: the sample grid says how many images each gives
    at.multiselect[0].set_value([1, 7]).run()
    task = make_task("digits", "one-class", [1, 7])
    counts = np.bincount(task.train_classes)
    assert at.get("image")[0].proto.imgs[0].caption == (
        f"60 of {len(task.x_train)} training images (1 {counts[1]}, 7 {counts[7]})")
    # unsupervised protocol shows the outlier ratio slider
    at.selectbox[1].set_value("unsupervised").run()
    assert not at.exception
    assert at.select_slider[0].label.startswith("Outlier ratio")


@needs_shared
def test_data_page_switches_datasets():
    at = AppTest.from_file(str(PAGES / "1_Data.py"), default_timeout=120).run()
    for name in ("mnist", "fashion-mnist", "digits"):
        at.selectbox[0].set_value(name).run()
        assert not at.exception, name
        assert at.session_state["ocvis_task_cfg"]["dataset"] == name


def test_data_page_bad_folder_is_a_message(tmp_path):
    at = AppTest.from_file(str(PAGES / "1_Data.py"), default_timeout=60).run()
    at.selectbox[0].set_value("folder").run()
    at.text_input[0].set_value(str(tmp_path / "nowhere")).run()
    assert not at.exception
    assert "does not exist" in at.error[0].value


def test_ui_imports_pandas_before_any_job_thread():
    """plotly peeks at ``sys.modules["pandas"]`` without importing it; a UMAP job importing
    pandas in its thread at the same time handed a page a half-initialised module. Importing
    ``ocvis.ui`` (every page does, first) must leave pandas fully imported."""
    import subprocess
    import sys

    code = ("import sys; assert 'pandas' not in sys.modules; import ocvis.ui; "
            "print('pandas' in sys.modules and hasattr(sys.modules['pandas'], 'Series'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=APP.parent, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == "True"
