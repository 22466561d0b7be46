"""Wall time of a small table filled locally (one process, one thread) vs by a local Ray
instance of N worker CPUs (issue 19): two methods x 3 digits classes x 2 seeds, tiny preset.

    python bench/bench_ray_table.py [--cpus 2]     # -> bench/results/ray_table.csv

Both tables are checked to be row-for-row identical (AUROC of the stored runs within 1e-6).
The Ray time includes starting the local instance (also reported on its own: with rows of a
second each, start-up and the workers' first imports are most of it).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpus", type=int, default=2)
    args = ap.parse_args(argv)
    import torch

    from ocvis.bench import append_result, bench, read_rows
    from ocvis.cluster import ray_bench, ray_session
    from ocvis.runs import RunStore

    table = (["cae", "cls"], "digits", [0, 1, 2], [0, 1], "tiny")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        import os

        os.environ["OCVIS_CACHE_DIR"] = str(tmp / "cache")  # no stage 1 from earlier runs
        torch.set_num_threads(1)
        t0 = time.perf_counter()
        bench(*table, tmp / "local.csv", store=RunStore(tmp / "l"))
        t_local = time.perf_counter() - t0
        os.environ["OCVIS_CACHE_DIR"] = str(tmp / "cache2")
        t0 = time.perf_counter()
        with ray_session(num_cpus=args.cpus):
            t_start = time.perf_counter() - t0
            ray_bench(*table, tmp / "ray.csv", store=RunStore(tmp / "r"), num_cpus=args.cpus)
            t_ray = time.perf_counter() - t0

        def aurocs(path, root):
            return {(r["method"], r["normal_class"], r["seed"]): json.loads(
                (root / r["run_id"] / "run.json").read_text())["metrics"]["auroc"]
                for r in read_rows(path)}

        a, b = aurocs(tmp / "local.csv", tmp / "l"), aurocs(tmp / "ray.csv", tmp / "r")
        same = a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-6 for k in a)
    row = {"rows": len(a), "local_seconds": f"{t_local:.1f}", "ray_seconds": f"{t_ray:.1f}",
           "ratio_local_over_ray": f"{t_local / t_ray:.2f}",
           "ray_start_seconds": f"{t_start:.1f}",
           "ratio_without_start": f"{t_local / (t_ray - t_start):.2f}", "ray_cpus": args.cpus,
           "identical": int(same), "date": time.strftime("%Y-%m-%d %H:%M")}
    out = ROOT / "bench" / "results" / "ray_table.csv"
    append_result(out, row)
    print(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
