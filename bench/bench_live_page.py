"""Does an open Train page slow the job it shows? (issue 20)

    OCVIS_DATA_ROOT=../shared/datasets python bench/bench_live_page.py [--load 2] [--repeats 1]

Starts ``streamlit run app.py`` with a fresh run store whose remembered task is MNIST class 3
with 4,000 training images, and ``--load`` other CPU-bound processes (busy loops, one per
core by default). In headless Chromium it starts an ICS ``cpu`` run on the Train page twice:

* **page open**: the Train page (live loss chart, status, refreshing every second) stays
  open until the run ends;
* **no page**: right after the click the tab goes to ``about:blank``; the run is followed
  through its ``run.json`` on disk.

For each run the training speed is the number of stage-3 ("joint") steps divided by their
wall time, taken from the run's own history (the stage-1 autoencoder of the second run comes
from the cache, so the joint stage is the part both runs train). Also measured while the
page is open: the server process's CPU time (user + system, children excluded: the job
runs in the worker process) per second of wall time. Results: bench/results/live_page.csv.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from browser_utils import (browser, chromium_path, sidebar_link, streamlit_server,  # noqa: E402
                           wait_for_app)

RESULTS = ROOT / "bench" / "results" / "live_page.csv"
TASK = {"dataset": "mnist", "protocol": "one-class", "normal": [3], "n_train": 4000,
        "ratio": 10.0, "seed": 0}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (its children not included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick


def joint_rate(history: list[dict]) -> tuple[float, int]:
    """(steps per second, steps) of the joint stage from a run's step records."""
    j = [r for r in history if r.get("stage") == "joint"]
    if len(j) < 2:
        return float("nan"), len(j)
    return (len(j) - 1) / (j[-1]["time"] - j[0]["time"]), len(j)


def newest_run(runs: Path, known: set[str]) -> str:
    while True:
        new = [p.name for p in runs.iterdir() if p.is_dir() and p.name not in known
               and "-ics-" in p.name]
        if new:
            return sorted(new)[-1]
        time.sleep(0.2)


def wait_done(run_dir: Path, timeout: float) -> dict:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            meta = json.loads((run_dir / "run.json").read_text())
            if meta.get("status") in ("done", "failed", "cancelled"):
                return meta
        except (OSError, ValueError):
            pass
        time.sleep(1.0)
    raise TimeoutError(f"{run_dir.name} did not finish in {timeout:.0f} s")


def one_run(page, server, runs: Path, keep_open: bool, timeout: float) -> dict:
    known = {p.name for p in runs.iterdir()} if runs.exists() else set()
    page.goto(str(server))
    wait_for_app(page)
    sidebar_link(page, "Train").click()
    page.get_by_role("heading", name="Train").first.wait_for(timeout=60_000)
    wait_for_app(page)
    page.get_by_role("button", name="Start").click()
    runs.mkdir(exist_ok=True)
    rid = newest_run(runs, known)
    pid = server.proc.pid
    c0, t0 = cpu_seconds(pid), time.monotonic()
    if not keep_open:
        page.goto("about:blank")
    meta = wait_done(runs / rid, timeout)
    c1, t1 = cpu_seconds(pid), time.monotonic()
    hist = json.loads((runs / rid / "history.json").read_text())
    rate, n = joint_rate(hist)
    return {"page": "open" if keep_open else "none", "run": rid, "status": meta["status"],
            "joint_steps": n, "steps_per_s": rate, "wall_s": t1 - t0,
            "server_cpu_pct": 100 * (c1 - c0) / (t1 - t0), "threads": meta.get("threads")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--load", type=int, default=os.cpu_count() or 2,
                    help="CPU-bound busy processes beside the server (default: one per core)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=3600.0)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if chromium_path() is None:
        print("no Chromium at /usr/bin/chromium (apt-get install chromium)")
        return 2
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(args.load)]
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            runs = tmp / "runs"
            runs.mkdir()
            (runs / ".ui_state.json").write_text(json.dumps({"task": TASK}))
            with streamlit_server(tmp) as server, browser() as b:
                page = b.new_page(viewport={"width": 1400, "height": 1000})
                # the first run trains stage 1 (cached for the others): not measured
                warm = one_run(page, server, runs, False, args.timeout)
                print("warm-up run:", warm, flush=True)
                for r in range(args.repeats):
                    for keep in (True, False):
                        row = one_run(page, server, runs, keep, args.timeout)
                        row.update(repeat=r, load=args.load, cores=os.cpu_count())
                        rows.append(row)
                        print(row, flush=True)
    finally:
        for p in busy:
            p.kill()
    by = {k: [r["steps_per_s"] for r in rows if r["page"] == k] for k in ("open", "none")}
    mean = {k: sum(v) / len(v) for k, v in by.items()}
    ratio = mean["open"] / mean["none"]
    cpu = [r["server_cpu_pct"] for r in rows if r["page"] == "open"]
    print(f"joint steps/s with the Train page open {mean['open']:.2f}, with no page "
          f"{mean['none']:.2f}: ratio {ratio:.2f} (target >= 0.80); server CPU while the "
          f"page is shown {sum(cpu) / len(cpu):.1f} % of one core; load {args.load} busy "
          "processes")
    new = not args.out.exists()
    with args.out.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["date", "page", "repeat", "load", "cores", "run",
                                          "status", "joint_steps", "steps_per_s", "wall_s",
                                          "server_cpu_pct", "threads"])
        if new:
            w.writeheader()
        for r in rows:
            w.writerow({"date": time.strftime("%Y-%m-%d %H:%M"), **{
                k: (f"{v:.3f}" if isinstance(v, float) else v) for k, v in r.items()}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
