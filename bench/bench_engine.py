"""Engine overhead: ``ocvis.train.run_epochs`` with a live job recording every step vs. a
bare PyTorch loop, same model (paper autoencoder), data, batch size and optimiser.

    python bench/bench_engine.py [--n 2048] [--epochs 3] [--repeats 3]

Writes bench/results/engine_overhead.csv. Target: overhead <= 10 %.
"""
from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ocvis import losses as L  # noqa: E402
from ocvis.jobs import Job, JobHooks  # noqa: E402
from ocvis.nets import PaperAutoencoder  # noqa: E402
from ocvis.nets.paper_ae import conv_weights  # noqa: E402
from ocvis.train import batches, run_epochs, seed_everything  # noqa: E402


def bare(x, epochs, bs):
    g = seed_everything(0)
    model = PaperAutoencoder(1, 64)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    model.train()
    t0 = time.perf_counter()
    for _ in range(epochs):
        for idx in batches(len(x), bs, g):
            xb = x[idx]
            _, xh = model(xb)
            loss = L.reconstruction(xb, xh) + L.l2_penalty(conv_weights(model), 1e-6)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return time.perf_counter() - t0


def engine(x, epochs, bs):
    g = seed_everything(0)
    model = PaperAutoencoder(1, 64)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    job = Job(id="bench", kind="bench", title="bench", params={}, stages=("pretrain",))
    job.started = time.time()
    hooks = JobHooks(job)
    n_steps = len(list(batches(len(x), bs, torch.Generator(), shuffle=False)))
    state = {}

    def step(i):
        if i == 0:
            state["idx"] = list(batches(len(x), bs, g))
        xb = x[state["idx"][i]]
        _, xh = model(xb)
        return {"rec": L.reconstruction(xb, xh)}

    t0 = time.perf_counter()
    run_epochs(model, step, stage="pretrain", epochs=epochs, steps_per_epoch=n_steps,
               optimizer=opt, l2=1e-6, l2_params=conv_weights(model), hooks=hooks)
    dt = time.perf_counter() - t0
    assert len(job.history) == epochs * n_steps
    return dt


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2048)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    x = torch.rand(args.n, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    t_bare, t_eng = [], []
    engine(x[:256], 1, 64)  # warm-up
    for _ in range(args.repeats):  # interleaved so machine noise hits both alike
        t_bare.append(bare(x, args.epochs, 64))
        t_eng.append(engine(x, args.epochs, 64))
    mb, me = statistics.median(t_bare), statistics.median(t_eng)
    overhead = 100.0 * (me - mb) / mb
    print(f"bare loop {mb:.2f} s, engine + live job {me:.2f} s (median of {args.repeats}), "
          f"overhead {overhead:+.1f} % (target <= 10 %)")
    out = ROOT / "bench" / "results" / "engine_overhead.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["n_images", "epochs", "repeats", "torch_threads", "bare_seconds",
                    "engine_seconds", "overhead_percent", "command"])
        w.writerow([args.n, args.epochs, args.repeats, torch.get_num_threads(), f"{mb:.3f}",
                    f"{me:.3f}", f"{overhead:.2f}",
                    "python bench/bench_engine.py " + " ".join(sys.argv[1:])])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
