"""Chamfer-distance timings: one pair of 100k-point clouds, and a batch of 8 x 8192 points.

    python benchmarks/bench_metrics.py [--repeats 3]

CPU runs the KD-tree path (numpy in); with CUDA present the same clouds go through the
chunked-cdist path as CUDA tensors, and the two results are compared. Prints the best of
`repeats` wall-clock times (both NN directions, means included).
"""
import argparse

import numpy as np
import torch

from fourdlib.metrics import chamfer_distance
from timing import best_time  # benchmarks/timing.py


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    cases = {
        "2 x 100k points": (rng.random((100_000, 3), dtype=np.float32), rng.random((100_000, 3), dtype=np.float32)),
        "batch 8 x 8192": (rng.random((8, 8192, 3), dtype=np.float32), rng.random((8, 8192, 3), dtype=np.float32)),
    }
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
          f"CUDA: {torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}")
    for name, (a, b) in cases.items():
        t_cpu, v_cpu = best_time(lambda: chamfer_distance(a, b), args.repeats)
        print(f"{name:16s} CPU  KD-tree       {t_cpu * 1e3:9.1f} ms")
        if torch.cuda.is_available():
            ta, tb = torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda()
            t_gpu, v_gpu = best_time(lambda: chamfer_distance(ta, tb), args.repeats, torch.cuda.synchronize)
            v_gpu = v_gpu.cpu().numpy() if isinstance(v_gpu, torch.Tensor) else v_gpu
            rel = np.max(np.abs(np.asarray(v_gpu) - np.asarray(v_cpu)) / np.abs(np.asarray(v_cpu)))
            print(f"{name:16s} CUDA chunked cdist {t_gpu * 1e3:9.1f} ms   (max rel. diff to CPU {rel:.1e})")


if __name__ == "__main__":
    main()
