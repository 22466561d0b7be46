"""CLAD's ODIN score on a stored run, for a grid of temperatures and perturbation sizes (issue
16, a diagnosis: no retraining, never a table row).

    OCVIS_DATA_ROOT=../shared/datasets python bench/clad_odin_sweep.py RUNS_DIR RUN_ID \\
        [--eps 0,0.0014,0.005,0.02,0.04] [--temperature 1,1000]
        # -> rows appended to bench/results/clad_odin_sweep.csv

The paper says only "following ODIN"; ``ocvis`` uses ODIN's CIFAR-10 setting (T = 1000, eps =
0.0014 in pixel units). The authors' code multiplies the signed gradient by 50 / (79 / 255)
in standardised units, about 0.04 pixel units at its THG default eps = 0.001 (official code
notes, section 2a). This script says how much the choice moves a stored run's AUROC. The
task is rebuilt from the run's own record (dataset, protocol, normal classes, n_train, seed).
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "results" / "clad_odin_sweep.csv"
FIELDS = ["run_id", "dataset", "normal", "temperature", "eps", "auroc", "seconds"]


def floats(s: str) -> list[float]:
    return [float(v) for v in s.split(",") if v.strip()]


def main(argv=None) -> list[dict]:
    from ocvis.bench import append_result
    from ocvis.experiment import stored_config, task_of_run
    from ocvis.metrics import evaluate
    from ocvis.runs import RunStore

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs")
    ap.add_argument("run_id")
    ap.add_argument("--eps", type=floats, default=floats("0,0.0014,0.005,0.02,0.04"))
    ap.add_argument("--temperature", type=floats, default=floats("1,1000"))
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args(argv)

    store = RunStore(a.runs)
    meta = store.read(a.run_id)
    cls, cfg = stored_config(meta)
    t = meta["task"]
    task = task_of_run(meta)
    rows = []
    for temp in a.temperature:
        for eps in a.eps:
            m = cls(replace(cfg, temperature=temp, odin_eps=eps))
            m.load_state_dict(store.model_state(a.run_id))
            t0 = time.perf_counter()
            s = m.scores(task.x_test)["odin"]
            row = {"run_id": a.run_id, "dataset": t["dataset"], "normal": t["normal"],
                   "temperature": temp, "eps": eps,
                   "auroc": round(100 * evaluate(s, task.y_test)["auroc"], 2),
                   "seconds": round(time.perf_counter() - t0, 1)}
            print(row, flush=True)
            rows.append(row)
    for row in rows:
        append_result(Path(a.out), {k: row[k] for k in FIELDS})
    return rows


if __name__ == "__main__":
    main()
