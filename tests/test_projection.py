"""Projections: shapes, seeding, subsample + transform, caching per run."""
import numpy as np
import pytest

from ocvis.errors import DataError
from ocvis.projection import cached_projection, project, run_latents
from ocvis.runs import RunStore


@pytest.fixture(scope="module")
def z():
    rng = np.random.default_rng(0)
    return np.r_[rng.normal(size=(150, 16)), rng.normal(4, 1, size=(150, 16))].astype(np.float32)


def test_pca_and_umap(z):
    for m in ("pca", "umap"):
        xy = project(z, m, seed=0)
        assert xy.shape == (300, 2) and np.isfinite(xy).all()
    a, b = project(z, "umap", seed=1), project(z, "umap", seed=1)
    np.testing.assert_allclose(a, b)
    # the two blobs stay apart
    xy = project(z, "pca")
    assert abs(xy[:150, 0].mean() - xy[150:, 0].mean()) > 3 * xy[:150, 0].std()


def test_subsample_then_transform(z):
    xy = project(z, "umap", seed=0, max_fit=100)
    assert xy.shape == (300, 2) and np.isfinite(xy).all()
    t = project(z, "tsne", seed=0, max_fit=100)
    assert t.shape == (300, 2)


def test_bad_input():
    with pytest.raises(DataError):
        project(np.zeros((2, 3)), "pca")
    with pytest.raises(DataError, match="unknown projection"):
        project(np.zeros((10, 3)), "mds")


def test_run_groups_and_cache(tmp_path, z):
    st = RunStore(tmp_path)
    rid = st.create({"method": "ics"})
    st.write_arrays(rid, train_latent=z[:100], test_latent=z[100:],
                    y_test=np.r_[np.zeros(100), np.ones(100)].astype(int),
                    split_atypical=np.arange(100) < 10)
    zz, group, index = run_latents(st.arrays(rid))
    assert len(zz) == 300 and np.bincount(group).tolist() == [90, 10, 100, 100]
    a = cached_projection(st, rid, "pca")
    files = [p.name for p in (tmp_path / rid).iterdir() if p.name.startswith("proj-")]
    assert len(files) == 1
    b = cached_projection(st, rid, "pca")
    np.testing.assert_array_equal(a, b)
