"""Benchmark: batched torch SSIM (ocvis.ssim) vs a per-image skimage loop.

Usage: python bench/bench_ssim.py [--n 4000] [--repeats 5] [--seed 0]

Images are smooth random patterns in [0, 1]; "reconstructions" are blurred and
noised copies (like an autoencoder's output).  Both implementations use the
Wang et al. 2004 settings (Gaussian sigma=1.5, 11x11 window, population
covariance, data_range=1).  Results go to bench/results/ssim_speed.csv.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from skimage.metrics import structural_similarity

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
from ocvis.ssim import ssim  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "ssim_speed.csv"
FIELDS = ["n", "channels", "torch_seconds", "skimage_seconds", "speedup", "max_abs_diff", "device", "torch_threads"]


def make_pairs(n: int, channels: int, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Smooth random images and blurred + noised reconstructions, float64 in [0, 1]."""
    raw = gaussian_filter(rng.standard_normal((n, channels, size, size)), sigma=(0, 0, 2.0, 2.0))
    lo = raw.min(axis=(1, 2, 3), keepdims=True)
    hi = raw.max(axis=(1, 2, 3), keepdims=True)
    x = (raw - lo) / (hi - lo)
    x_hat = gaussian_filter(x, sigma=(0, 0, 1.0, 1.0)) + rng.normal(0.0, 0.05, x.shape)
    return x, np.clip(x_hat, 0.0, 1.0)


def time_torch(x: torch.Tensor, y: torch.Tensor, repeats: int) -> tuple[float, np.ndarray]:
    """Best-of-`repeats` wall time (after one warm-up call) and the result."""
    with torch.no_grad():
        out = ssim(x[:8], y[:8])  # warm-up: allocator, BLAS init
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = ssim(x, y)
            if out.is_cuda:
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
    return best, out.cpu().numpy()


def time_skimage(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    kw = dict(data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    multichannel = x.shape[1] > 1
    t0 = time.perf_counter()
    out = np.empty(len(x))
    for i in range(len(x)):
        if multichannel:
            out[i] = structural_similarity(x[i], y[i], channel_axis=0, **kw)
        else:
            out[i] = structural_similarity(x[i, 0], y[i, 0], **kw)
    return time.perf_counter() - t0, out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000, help="image pairs per run")
    parser.add_argument("--size", type=int, default=32, help="image height = width")
    parser.add_argument("--repeats", type=int, default=5, help="torch timing repeats (best is kept; skimage runs once)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rng = np.random.default_rng(args.seed)
    rows = []
    for channels in (1, 3):
        x, y = make_pairs(args.n, channels, args.size, rng)
        xt = torch.from_numpy(x).to(device)
        yt = torch.from_numpy(y).to(device)
        t_torch, s_torch = time_torch(xt, yt, args.repeats)
        t_sk, s_sk = time_skimage(x, y)
        row = {
            "n": args.n,
            "channels": channels,
            "torch_seconds": round(t_torch, 6),
            "skimage_seconds": round(t_sk, 6),
            "speedup": round(t_sk / t_torch, 2),
            "max_abs_diff": float(np.abs(s_torch - s_sk).max()),
            "device": str(device),
            "torch_threads": torch.get_num_threads(),
        }
        rows.append(row)
        print(
            f"n={args.n} channels={channels} {args.size}x{args.size}: "
            f"torch {t_torch:.4f} s | skimage loop {t_sk:.3f} s | "
            f"speed-up {row['speedup']:.1f}x | max |diff| {row['max_abs_diff']:.2e} | "
            f"mean SSIM {s_sk.mean():.3f} | device {device}, torch threads {row['torch_threads']}"
        )

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
