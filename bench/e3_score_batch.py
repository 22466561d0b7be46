"""E3Outlier scoring speed against ``score_views`` (views per forward pass) on one thread.

    python bench/e3_score_batch.py [--images 256] [--views 64,128,256,512,1024]
    # -> appends rows to bench/results/e3_score_batch.csv

Scoring runs the classifier on every (image, operation) view: 480,000 views for a
Fashion-MNIST task of 6,667 images with the 72 regular affine operations, more than the
training of the ``cpu`` preset sees. The views are made per batch, and ``score_views`` bounds
how many go through one forward pass. This times ``_op_scores`` of an untrained WRN (the
``cpu`` preset's WRN-10-2, or ``--widen``) on random images of the MNIST and the CIFAR-10
shape for each setting, and checks that every setting gives the same scores (the networks
are in eval mode, so only the float summation order differs).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--views", default="64,128,256,512,1024")
    ap.add_argument("--widen", type=int, default=2)
    ap.add_argument("--ops", default="ra")
    args = ap.parse_args(argv)
    import numpy as np
    import torch

    from ocvis.bench import append_result
    from ocvis.methods import make_method

    torch.set_num_threads(1)
    out = ROOT / "bench" / "results" / "e3_score_batch.csv"
    for shape in ((1, 28, 28), (3, 32, 32)):
        g = torch.Generator().manual_seed(0)
        x = torch.rand(args.images, *shape, generator=g)
        ref = None
        for views in (int(v) for v in args.views.split(",")):
            m = make_method("e3outlier", "cpu", ops=args.ops, widen=args.widen,
                            score_views=views)
            torch.manual_seed(0)
            m.build("net", "wrn", in_channels=shape[0], num_classes=len(m.ops_),
                    depth=m.config.depth, widen=args.widen)
            m._op_scores(x[:16])  # warm-up
            t0 = time.perf_counter()
            s = m._op_scores(x)
            sec = time.perf_counter() - t0
            if ref is None:
                ref = s
            diff = max(float(np.abs(s[k] - ref[k]).max()) for k in ref)
            n_views = args.images * len(m.ops_)
            row = {"shape": "x".join(map(str, shape)), "network": f"WRN-10-{args.widen}",
                   "operations": len(m.ops_), "images": args.images, "score_views": views,
                   "ms_per_view": f"{1e3 * sec / n_views:.3f}", "seconds": f"{sec:.1f}",
                   "max_abs_diff": f"{diff:.1e}", "threads": 1,
                   "date": time.strftime("%Y-%m-%d %H:%M")}
            append_result(out, row)
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
