import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def shared_datasets() -> Path | None:
    """The real dataset copies beside the repository (CI has them), or $OCVIS_TEST_DATA."""
    env = os.environ.get("OCVIS_TEST_DATA")
    cands = [Path(env)] if env else []
    cands.append(ROOT.parent / "shared" / "datasets")
    for c in cands:
        if (c / "MNIST" / "raw").is_dir():
            return c
    return None


SHARED = shared_datasets()
needs_shared = pytest.mark.skipif(SHARED is None,
                                  reason="real datasets not found (../shared/datasets or "
                                         "$OCVIS_TEST_DATA)")


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ocvis-cache")


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory, monkeypatch, session_cache):
    """Every test writes runs into its own folder; decoded datasets are cached per session."""
    base = tmp_path_factory.mktemp("ocvis")
    monkeypatch.setenv("OCVIS_RUNS_DIR", str(base / "runs"))
    monkeypatch.setenv("OCVIS_UMAP_WARMUP", "0")  # no background compile during tests
    monkeypatch.setenv("OCVIS_CACHE_DIR", str(session_cache))
    monkeypatch.setenv("OCVIS_UPLOAD_DIR", str(base / "uploads"))
    # folder datasets: the tests' own temporary folders are allowed besides the defaults
    monkeypatch.setenv("OCVIS_FOLDER_ROOTS", os.pathsep.join(
        [str(SHARED or base / "data"), str(base / "uploads"),
         str(tmp_path_factory.getbasetemp())]))
    if SHARED is not None:
        monkeypatch.setenv("OCVIS_DATA_ROOT", str(SHARED))
    else:
        monkeypatch.setenv("OCVIS_DATA_ROOT", str(base / "data"))
    yield


@pytest.fixture(autouse=True)
def _no_leaked_jobs():
    """After every test: cancel and join every job it started, so a failed or hurried test
    cannot leave a job running into the next one (jobs change process-wide state such as
    the warning filters and the torch threads)."""
    yield
    from ocvis.jobs import live_managers

    stuck = [jm for jm in live_managers() if not jm.shutdown(timeout=300)]
    assert not stuck, "a job worker did not stop within 300 s of being cancelled"


@pytest.fixture
def fresh_streamlit():
    """Empty Streamlit caches (and so a new job manager) before and after a page test."""
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_resource.clear()
