"""FPS on the CPU: ours against our torch reference loop and the fpsample package.

    python benchmarks/bench_fps.py [--repeats 5] [--height 7]

One float32 cloud of uniform random points per case. Columns: `farthest_point_sample`
(the library's CPU path), `farthest_point_sample_torch` (the batched torch loop, also the
CUDA path), fpsample's exact `fps_sampling` and its approximate `bucket_fps_kdline_sampling`
(bucket tree of height --height). Each time is the median of --repeats timed calls, each
after a warm-up call (timing.best_time with one repeat), the four methods taking turns so
that a load from other processes hits them alike (the load average is printed: on a
shared machine the figures are pessimistic). `ours/exact` is the overhead of
our wrapper (argument checks, reversing the cloud for the tie rule) over fpsample itself;
`same` says whether ours, the torch loop and fpsample exact picked identical indices.
"""
import argparse
import os

import fpsample
import numpy as np
import torch

from fourdlib.geometry.fps import farthest_point_sample, farthest_point_sample_torch
from timing import best_time, median_times  # benchmarks/timing.py

SIZES = [(8192, 512), (8192, 2048), (32768, 512)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--height", type=int, default=7, help="bucket tree height h of the approximate FPS")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, fpsample {fpsample.__version__}; "
          f"median of {args.repeats}, ms; load average {os.getloadavg()[0]:.1f}")
    print(f"{'N -> k':>14s} {'ours':>9s} {'torch':>9s} {'exact':>9s} {'bucket':>9s} {'ours/exact':>11s} "
          f"{'torch/ours':>11s}  same")
    g = torch.Generator().manual_seed(0)
    for n, k in SIZES:
        x = torch.rand(n, 3, generator=g)
        pc = x.numpy()
        cases = {"ours": lambda: farthest_point_sample(x, k),
                 "torch": lambda: farthest_point_sample_torch(x, k),
                 "exact": lambda: fpsample.fps_sampling(pc, k, start_idx=0),
                 "bucket": lambda: fpsample.bucket_fps_kdline_sampling(pc, k, args.height, start_idx=0)}
        t = median_times(cases, args.repeats)
        picks = [cases[name]() for name in ("ours", "torch", "exact")]
        same = all(np.array_equal(np.asarray(p), np.asarray(picks[0])) for p in picks)
        print(f"{f'{n} -> {k}':>14s} " + " ".join(f"{t[c] * 1e3:9.1f}" for c in cases)
              + f" {t['ours'] / t['exact']:10.2f}x {t['torch'] / t['ours']:10.1f}x  {same}", flush=True)


if __name__ == "__main__":
    main()
