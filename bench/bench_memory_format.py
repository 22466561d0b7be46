"""Seconds per training step of the paper autoencoder on the CPU: contiguous vs channels-last.

    python bench/bench_memory_format.py [--threads 1,2] [--channels 1] [--repeats 4]
    # -> bench/results/memory_format.csv

One Adam step on a batch of 64 random 32 x 32 images, L_rec only; the two layouts are
interleaved (``repeats`` rounds of 10 timed steps each after 2 warm-up steps) and the median
is reported. ``ocvis.train.to_device`` uses channels-last on the CPU because of this.
"""
from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from ocvis.nets.paper_ae import PaperAutoencoder  # noqa: E402


def seconds_per_step(channels_last: bool, channels: int, steps: int = 10) -> float:
    torch.manual_seed(0)
    x = torch.rand(64, channels, 32, 32)
    m = PaperAutoencoder(channels)
    if channels_last:
        m = m.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(m.parameters())

    def step():
        _, xh = m(x)
        loss = (xh - x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) / steps


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" /
                    "memory_format.csv")
    args = ap.parse_args()
    rows = []
    for th in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(th)
        res = {False: [], True: []}
        for _ in range(args.repeats):
            for cl in (False, True):
                res[cl].append(seconds_per_step(cl, args.channels))
        a, b = statistics.median(res[False]), statistics.median(res[True])
        rows.append({"threads": th, "channels": args.channels,
                     "contiguous_s_per_step": f"{a:.4f}", "channels_last_s_per_step": f"{b:.4f}",
                     "speedup": f"{a / b:.3f}",
                     "command": "python bench/bench_memory_format.py " + " ".join(sys.argv[1:])})
        print(rows[-1], flush=True)
    with args.out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
