"""2-D projections of latents (UMAP / PCA / t-SNE), seeded and cached per run.

UMAP (umap-learn) is imported lazily; ``NUMBA_CACHE_DIR`` is pointed at a writable folder
first so numba's compiled kernels are cached and later server starts are warm. Above
``max_fit`` points UMAP is fitted on a seeded subsample and ``transform`` places the rest
(t-SNE has no transform, so it is computed on the subsample and the rest is placed by its
nearest fitted neighbour).
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os

import numpy as np

from ocvis.config import cache_root
from ocvis.errors import DataError

log = logging.getLogger(__name__)
METHODS = ("umap", "pca", "tsne")
MAX_FIT = 5000


def _numba_cache() -> None:
    if not os.environ.get("NUMBA_CACHE_DIR"):
        d = cache_root() / "numba"
        try:
            d.mkdir(parents=True, exist_ok=True)
            os.environ["NUMBA_CACHE_DIR"] = str(d.resolve())
        except OSError as exc:
            log.warning("no numba cache: %s", exc)


def warm_up_umap(seed: int = 0) -> float:
    """Compile umap-learn's and pynndescent's numba kernels (~30 s on 2 cores, once per
    process: many are not cached on disk) on throw-away data big enough (> 4096 points) to
    take the same nearest-neighbour path as real runs. Returns the seconds it took."""
    import time

    t0 = time.perf_counter()
    _numba_cache()
    import umap

    z = np.random.default_rng(seed).random((4200, 8), dtype=np.float32)
    r = umap.UMAP(n_components=2, n_epochs=5, random_state=seed, n_jobs=1,
                  transform_seed=seed).fit(z[:4100])
    r.transform(z[4100:])
    return time.perf_counter() - t0


def project(z: np.ndarray, method: str = "umap", seed: int = 0, max_fit: int = MAX_FIT,
            n_neighbors: int = 15, min_dist: float = 0.1, n_epochs: int = 200) -> np.ndarray:
    """``N x D`` latents -> ``N x 2`` float32 coordinates."""
    z = np.asarray(z, dtype=np.float32)
    if z.ndim != 2 or len(z) < 3:
        raise DataError("a projection needs at least 3 latent vectors (N x D)")
    if not np.isfinite(z).all():
        raise DataError("latents contain NaN or infinite values")
    if method not in METHODS:
        raise DataError(f"unknown projection {method!r}; choose one of {', '.join(METHODS)}")
    rng = np.random.default_rng(seed)
    fit_idx = np.sort(rng.choice(len(z), size=max_fit, replace=False)) if len(z) > max_fit \
        else np.arange(len(z))
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit(z[fit_idx]).transform(z).astype(
            np.float32)
    if method == "umap":
        _numba_cache()
        import umap  # lazy: heavy import (numba)

        nn = max(2, min(n_neighbors, len(fit_idx) - 1))
        # 200 epochs (umap-learn's choice for large sets) instead of 500 for < 10,000 points:
        # the layout is settled by then and the page opens in seconds
        reducer = umap.UMAP(n_components=2, n_neighbors=nn, min_dist=min_dist,
                            n_epochs=n_epochs, random_state=seed, n_jobs=1,
                            transform_seed=seed)
        out = np.empty((len(z), 2), np.float32)
        out[fit_idx] = reducer.fit_transform(z[fit_idx])
        rest = np.setdiff1d(np.arange(len(z)), fit_idx)
        if len(rest):
            out[rest] = reducer.transform(z[rest])
        return out
    from sklearn.manifold import TSNE
    from sklearn.neighbors import NearestNeighbors

    perp = float(min(30.0, max(2.0, (len(fit_idx) - 1) / 3)))
    emb = TSNE(n_components=2, random_state=seed, perplexity=perp, init="pca").fit_transform(
        z[fit_idx]).astype(np.float32)
    out = np.empty((len(z), 2), np.float32)
    out[fit_idx] = emb
    rest = np.setdiff1d(np.arange(len(z)), fit_idx)
    if len(rest):
        nn = NearestNeighbors(n_neighbors=1).fit(z[fit_idx])
        out[rest] = emb[nn.kneighbors(z[rest], return_distance=False)[:, 0]]
    return out


def run_latents(arrays: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Latents of a stored run in plotting order: train then test.

    Returns ``(z, group, index)`` where ``group`` is 0 typical normal (train), 1 atypical
    normal (train), 2 test normal, 3 test abnormal (the feature-learning paper's Fig. 3),
    and ``index`` the sample's index within its split. Unsupervised runs (transductive) use
    the test part only, grouped as inlier (2) / outlier (3).
    """
    need = ["test_latent", "y_test"] + ([] if "y_train_hidden" in arrays else ["train_latent"])
    missing = [k for k in need if k not in arrays]
    if missing:
        raise DataError(f"this run has no stored {', '.join(missing)} (its arrays.npz is "
                        "missing or incomplete): train it again")
    zte = arrays["test_latent"]
    yte = arrays["y_test"].astype(int)
    if "y_train_hidden" in arrays:
        return zte, np.where(yte == 1, 3, 2), np.arange(len(zte))
    ztr = arrays["train_latent"]
    aty = arrays.get("split_atypical")
    g_tr = np.where(aty, 1, 0) if aty is not None and len(aty) == len(ztr) else \
        np.zeros(len(ztr), int)
    z = np.concatenate([ztr, zte])
    group = np.concatenate([g_tr, np.where(yte == 1, 3, 2)])
    index = np.concatenate([np.arange(len(ztr)), np.arange(len(zte))])
    return z, group, index


def point_values(arrays: dict) -> dict[str, tuple[np.ndarray, bool]]:
    """Per-point values to colour a projection by, aligned with :func:`run_latents`:
    ``"anomaly score"`` (the primary score, negated), ``"anomaly: <name>"`` for every named
    score of a run with several, and every stored per-sample column (``test_col.<name>`` /
    ``train_col.<name>``, e.g. pseudo-labels), and ``"true class"`` (the dataset's class of
    each image, to set a method's grouping against). Values are ``(array, categorical)``; a
    column that is missing for part of the points is left out."""
    transductive = "y_train_hidden" in arrays
    n_tr = 0 if transductive else len(arrays.get("train_latent", ()))

    def both(train_key: str, test_key: str) -> np.ndarray | None:
        te = arrays.get(test_key)
        if te is None:
            return None
        if transductive:
            return np.asarray(te)
        tr = arrays.get(train_key)
        if tr is None or len(tr) != n_tr:
            return None
        return np.concatenate([np.asarray(tr), np.asarray(te)])

    out: dict[str, tuple[np.ndarray, bool]] = {}
    primary = both("train_scores", "test_scores")
    if primary is not None:
        out["anomaly score"] = (-primary.astype(np.float64), False)
    for key in sorted(arrays):
        if key.startswith("test_scores."):
            name = key[len("test_scores."):]
            v = both(f"train_scores.{name}", key)
            if v is not None and not (primary is not None and np.array_equal(v, primary)):
                out[f"anomaly: {name}"] = (-v.astype(np.float64), False)
    for key in sorted(arrays):
        if key.startswith("test_col."):
            name = key[len("test_col."):]
            v = both(f"train_col.{name}", key)
            if v is not None:
                categorical = v.dtype.kind in "iub" or (v.dtype.kind == "U")
                out[name] = (v, bool(categorical and len(np.unique(v)) <= 50))
    classes = both("train_classes", "test_classes")
    if classes is not None and len(np.unique(classes)) > 1:
        out["true class"] = (classes, len(np.unique(classes)) <= 50)
    return out


GROUP_NAMES = ("typical normal (train)", "atypical normal (train)", "test normal",
               "test abnormal")


def cached_projection(store, run_id: str, method: str = "umap", seed: int = 0,
                      **params) -> np.ndarray:
    """The projection of a run's latents, computed once and kept in its run directory."""
    key = hashlib.sha1(json.dumps({"m": method, "s": seed, **params},
                                  sort_keys=True).encode()).hexdigest()[:12]
    name = f"proj-{method}-{key}.npy"
    path = store.path(run_id) / name
    if path.exists():
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            log.warning("recomputing unreadable projection %s", path)
    z, _, _ = run_latents(store.arrays(run_id))
    xy = project(z, method, seed=seed, **params)
    buf = io.BytesIO()
    np.save(buf, xy)
    store.write_file(run_id, name, buf.getvalue())
    return xy
