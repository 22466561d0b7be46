"""Benchmark: seconds from opening the Latent space page to the scatter, in a real browser.

    python bench/bench_latent_open.py RUN_ID [--on-demand] [--cold-numba] [--out FILE]

Copies the stored run RUN_ID (from $OCVIS_RUNS_DIR) into a temporary run store, starts a
fresh ``streamlit run app.py`` on it, and in headless Debian Chromium (Playwright) measures:

* umap_first_open: the Latent space page opened in the new server -> all points on the
  scatter (target 15 s). By default the run keeps the UMAP projection made after its
  training (what the dashboard's jobs and ``ocvis run`` do); ``--on-demand`` deletes it
  first, so the page computes it as a background job in the fresh server process;
* umap_cached_switch: to the Evaluate page and back through the sidebar -> all points
  (projection cached in the run; target 1 s);
* pca: "PCA" chosen in the Projection box -> the scatter shows new coordinates (2 s).

Numba's compiled kernels (only on-demand UMAP needs them): by default the machine's cache
($OCVIS_CACHE_DIR/numba) is copied in; ``--cold-numba`` starts from an empty one.
Results: bench/results/latent_open.csv, one block of rows per scenario.
"""
from __future__ import annotations

import argparse
import csv
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from browser_utils import (browser, chromium_path, exception_text, has_exception,  # noqa: E402
                           sidebar_link, streamlit_server, trace_points, wait_for_app)

from ocvis.config import cache_root, runs_root  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "latent_open.csv"
TARGETS = {"umap_first_open": 15.0, "umap_cached_switch": 1.0, "pca": 2.0}

_SIGNATURE_JS = """(key) => {
    const box = document.querySelector('.st-key-' + CSS.escape(key));
    const plot = box && box.querySelector('.js-plotly-plot');
    if (!plot || !Array.isArray(plot.data)) return '';
    return plot.data.map(t => {
        const x = t && t.x;
        if (x == null) return '';
        if (typeof x.bdata === 'string') return x.bdata.slice(0, 64);
        return String(Array.from(x).slice(0, 4));
    }).join('|');
}"""


def wait_points(page, key: str, n: int, t0: float, timeout: float, srv,
                old_signature: str | None = None) -> float:
    """Seconds since ``t0`` until chart ``key`` has ``n`` points (and, when given, other
    coordinates than ``old_signature``)."""
    while time.monotonic() - t0 < timeout:
        if has_exception(page):
            raise AssertionError(srv.describe("exception:\n" + exception_text(page)))
        if trace_points(page, key) >= n and (
                old_signature is None or page.evaluate(_SIGNATURE_JS, key) != old_signature):
            return time.monotonic() - t0
        time.sleep(0.05)
    raise AssertionError(srv.describe(f"chart {key} did not show {n} points in {timeout} s"))


def measure(run_id: str, tmp: Path, on_demand: bool, cold_numba: bool,
            timeout: float) -> dict:
    src = runs_root() / run_id
    if not (src / "run.json").exists():
        raise SystemExit(f"no stored run {run_id} in {runs_root()}")
    dst = tmp / "runs" / run_id
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("proj-*") if on_demand else None)
    if not on_demand and not list(dst.glob("proj-umap-*.npy")):
        raise SystemExit(f"run {run_id} has no UMAP projection yet: use --on-demand")
    numba_dir = tmp / "numba"
    if not cold_numba and (cache_root() / "numba").is_dir():
        shutil.copytree(cache_root() / "numba", numba_dir)
    import numpy as np

    with np.load(dst / "arrays.npz") as arr:
        n_points = len(arr["test_scores"]) + (len(arr["train_latent"])
                                               if "train_latent" in arr else 0)
    key = f"scatter-{run_id}"
    out = {"run": run_id, "points": n_points, "scenario": scenario(on_demand, cold_numba)}
    t_srv = time.monotonic()
    with streamlit_server(tmp, {"NUMBA_CACHE_DIR": numba_dir}) as srv, browser() as b:
        out["server_start"] = time.monotonic() - t_srv
        page = b.new_page(viewport={"width": 1400, "height": 1100})
        t0 = time.monotonic()
        page.goto(srv + "/Latent_Space")
        out["umap_first_open"] = wait_points(page, key, n_points, t0, timeout, srv)
        wait_for_app(page)
        sidebar_link(page, "Evaluate").click()
        page.get_by_role("heading", name="Evaluate").first.wait_for(timeout=60_000)
        wait_for_app(page)
        t0 = time.monotonic()
        sidebar_link(page, "Latent_Space").click()
        page.get_by_role("heading", name="Latent space").first.wait_for(timeout=60_000)
        out["page_switch_heading"] = time.monotonic() - t0  # no target: Streamlit's share
        out["umap_cached_switch"] = wait_points(page, key, n_points, t0, timeout, srv)
        wait_for_app(page)
        old = page.evaluate(_SIGNATURE_JS, key)
        page.get_by_label("Projection").click()  # the selectbox's input
        t0 = time.monotonic()
        page.get_by_role("option", name="PCA").click()
        out["pca"] = wait_points(page, key, n_points, t0, timeout, srv, old_signature=old)
        page.screenshot(path=str(tmp / "latent_open.png"), full_page=True)
    return out


def scenario(on_demand: bool, cold_numba: bool) -> str:
    if not on_demand:
        return "projected after training"
    return "on demand, " + ("cold" if cold_numba else "warm") + " numba cache"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_id")
    ap.add_argument("--on-demand", action="store_true",
                    help="delete the run's projections: the page computes UMAP itself")
    ap.add_argument("--cold-numba", action="store_true",
                    help="start with an empty numba cache (the first start on a machine)")
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if chromium_path() is None:
        print("skip: /usr/bin/chromium or the playwright package is missing", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="ocvis-latent-bench-") as d:
        res = measure(args.run_id, Path(d), args.on_demand, args.cold_numba, args.timeout)
    rows = []
    for k, v in res.items():
        tgt = TARGETS.get(k)
        rows.append({"metric": k, "value": f"{v:.3f}" if isinstance(v, float) else v,
                     "target_seconds": "" if tgt is None else tgt,
                     "ok": "" if tgt is None else str(v <= tgt).lower(),
                     "command": "python bench/bench_latent_open.py " + " ".join(
                         sys.argv[1:] if argv is None else argv)})
        print(f"{k:>16}: {rows[-1]['value']}" + (f" (target <= {tgt} s)" if tgt else ""))
    for r in rows:
        r["scenario"] = res["scenario"]
    old = []
    if args.out.exists():  # keep the rows of the other scenarios
        with args.out.open() as f:
            old = [r for r in csv.DictReader(f) if r["scenario"] != res["scenario"]]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["scenario", "metric", "value", "target_seconds",
                                          "ok", "command"])
        w.writeheader()
        w.writerows(old + rows)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
