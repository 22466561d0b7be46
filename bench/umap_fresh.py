"""Time a UMAP projection of a stored run in a fresh process (what a fresh server pays).

    python bench/umap_fresh.py RUN_ID      # uses $OCVIS_RUNS_DIR and $OCVIS_CACHE_DIR

Deletes the run's cached UMAP projection first; prints import + fit/transform seconds.
Numba's compiled kernels are cached in $OCVIS_CACHE_DIR/numba, so only the very first
process on a machine compiles them.
"""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
t0 = time.perf_counter()
from ocvis.projection import _numba_cache, cached_projection  # noqa: E402
from ocvis.runs import RunStore  # noqa: E402

store = RunStore()
rid = sys.argv[1]
for p in store.path(rid).glob("proj-umap-*.npy"):
    p.unlink()
_numba_cache()
import umap  # noqa: E402,F401

t_import = time.perf_counter() - t0
t1 = time.perf_counter()
xy = cached_projection(store, rid, "umap", seed=0)
t_proj = time.perf_counter() - t1
print(f"points {len(xy)}: import {t_import:.1f} s, UMAP fit 5000 + transform rest "
      f"{t_proj:.1f} s, total {t_import + t_proj:.1f} s")
