"""Training step time with and without bfloat16 autocast (setting ``mixed_precision``).

    OCVIS_DATA_ROOT=../shared/datasets OMP_NUM_THREADS=1 \
        python bench/amp_speed.py rotnet,contrastive-da,e3outlier --n-train 400

One epoch of each method's ``cpu`` preset on the first N training images of CIFAR-10
airplane, once per mode, one thread; prints the mean time per training step (from the
run's history: training only, not the scoring) and the last loss. A timing, so it lives
here and not in tests/.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    import torch

    from ocvis.data import make_task
    from ocvis.methods import make_method

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("methods")
    ap.add_argument("--n-train", type=int, default=400)
    ap.add_argument("--modes", default="off,auto")
    ap.add_argument("--dataset", default="cifar10")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    task = make_task(args.dataset, normal=[0], n_train=args.n_train)
    for name in args.methods.split(","):
        for mode in args.modes.split(","):
            m = make_method(name, "cpu", epochs=1, mixed_precision=mode)
            m.fit(task)
            h = m.history.records
            print(f"{name:15s} mixed_precision={mode:4s} autocast={m.autocast_dtype()}: "
                  f"{len(h)} steps, {h[-1]['time'] / len(h) * 1000:.0f} ms per step, last "
                  f"loss {h[-1]['losses']['total']:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
