"""How fast Cancel ends a running training job (moved out of the tests: a timing).

    python bench/bench_cancel.py [--repeats 5]

Starts a long CAE job on digits through the job manager, waits for a few steps, cancels,
and measures the time from the cancel to the job's "cancelled" state. Prints one line per
repeat and the median; appends the result to bench/results/cancel_latency.csv.
"""
from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ocvis.jobs import JobManager  # noqa: E402
from ocvis.runs import RunStore  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    lat = []
    with tempfile.TemporaryDirectory() as tmp:
        jm = JobManager(RunStore(Path(tmp) / "runs"), torch_threads=1)
        for r in range(args.repeats):
            job = jm.submit_experiment({"dataset": "digits", "normal": [1], "seed": r}, "cae",
                                       "cpu", {"pretrain_epochs": 500, "reuse_pretrain": False})
            while len(job.history) < 5:
                time.sleep(0.01)
            t0 = time.perf_counter()
            jm.cancel(job.id)
            while not job.done:
                time.sleep(0.001)
            lat.append(time.perf_counter() - t0)
            print(f"repeat {r}: cancelled {lat[-1] * 1000:.0f} ms after the click "
                  f"({job.status})", flush=True)
        jm.shutdown()
    med = statistics.median(lat)
    print(f"median {med * 1000:.0f} ms, max {max(lat) * 1000:.0f} ms over {len(lat)} repeats")
    out = ROOT / "bench" / "results" / "cancel_latency.csv"
    new = not out.exists()
    with out.open("a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["date", "repeats", "median_ms", "max_ms"])
        w.writerow([time.strftime("%Y-%m-%d %H:%M"), len(lat), f"{med * 1000:.0f}",
                    f"{max(lat) * 1000:.0f}"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
