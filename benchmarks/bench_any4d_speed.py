"""Any4D speed: frames/s of one N-view pass against the pairwise baseline (the same model on
(reference, view i), i = 1..N-1: N - 1 passes of 2 views; fourdlib.models.any4d.predict_pairwise).

    python benchmarks/bench_any4d_speed.py                          # CPU, tiny config, N = 2 4 8 16
    python benchmarks/bench_any4d_speed.py --scale smoke --views 2 4 --threads 1
    python benchmarks/bench_any4d_speed.py --device cuda --scale small --views 4 8 16 32

Inference only (`predict`: encoders, alternating attention, DPT heads, composition), every
input modality, an untrained model of the config row's size (speed does not depend on the
weights), random images and depth of the row's resolution. frames/s counts the N output
frames of one clip; best of --repeats after a warm-up (benchmarks/timing.py). On CUDA the
forward runs under bf16 autocast. Prints the load average: on a shared machine the figures
are pessimistic, and the ratio is what to read.

Where the ratio comes from: the N-view pass runs global attention over N·M tokens (cost
~N² M² in attention, ~N M in the rest), pairwise runs N - 1 passes over 2 views (~4(N-1) M²
and ~2(N-1) M): the reference view is encoded N - 1 times. At tiny sizes the per-token work
(patch encoders, MLPs, DPT heads) dominates, so pairwise does about 2(N-1)/N times the work
(plus N - 2 more calls' overhead): the N-view pass approaches 2x faster, more once attention's
N² M² matters (long clips, many tokens). Measured on 1 busy CPU thread, tiny (64 tokens per
view): N = 2 0.97x, 4 1.6x, 8 2.2x, 16 2.4x (110 frames/s one pass at N = 16).
"""
from __future__ import annotations

import argparse
import dataclasses
import os

import torch

from fourdlib.models.any4d import CONFIGS, Any4D, predict, predict_pairwise
from fourdlib.train.runs import count_parameters
from timing import best_time  # benchmarks/timing.py


def clip(cfg, N, device, seed=0):
    """A batch of one clip of N random views (rgb, depth, K, identity-rotation poses on a line)."""
    g = torch.Generator().manual_seed(seed)
    H = W = cfg.image_size
    K = torch.tensor([[H * 1.2, 0, W / 2], [0, H * 1.2, H / 2], [0, 0, 1.0]])
    c2w = torch.eye(4).repeat(N, 1, 1)
    c2w[:, 0, 3] = torch.linspace(0, 0.5, N)
    batch = {"rgb": torch.rand(1, N, H, W, 3, generator=g), "depth": 2 + torch.rand(1, N, H, W, generator=g),
             "K": K.expand(1, N, 3, 3).clone(), "cam_to_world": c2w[None],
             "doppler": torch.randn(1, N, H, W, generator=g) * 0.1}
    return {k: v.to(device) for k, v in batch.items()}


def bench(scale, views, device, repeats):
    cfg = dataclasses.replace(CONFIGS[scale], views=2, clip_frames=max(views))
    torch.manual_seed(0)
    model = Any4D(cfg).to(device).eval()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    amp = dict(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    rows = []
    for N in views:
        batch = clip(cfg, N, device)

        def one_pass():
            with torch.autocast(**amp):
                return predict(model, batch)

        def pairwise():
            with torch.autocast(**amp):
                return predict_pairwise(model, batch)

        t_one, _ = best_time(one_pass, repeats, sync)
        t_pair, _ = best_time(pairwise, repeats, sync)
        rows.append((N, N / t_one, N / t_pair, t_pair / t_one))
    return cfg, count_parameters(model), rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", default="tiny", choices=list(CONFIGS))
    ap.add_argument("--views", type=int, nargs="+", default=[2, 4, 8, 16], help="N: views per clip")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if min(args.views) < 2:
        ap.error("--views: every N must be >= 2 (a reference and one other view)")
    device = torch.device(args.device)
    cfg, params, rows = bench(args.scale, args.views, device, args.repeats)
    where = f"cuda ({torch.cuda.get_device_name(device)}, bf16)" if device.type == "cuda" else \
        f"cpu ({torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f})"
    print(f"Any4D {args.scale}: {cfg.image_size}x{cfg.image_size}, patch {cfg.patch_size} "
          f"({(cfg.image_size // cfg.patch_size) ** 2} tokens per view), D={cfg.dim}, {cfg.depth} layers, "
          f"{params / 1e6:.1f} M parameters; {where}; inference, best of {args.repeats}")
    print(f"{'N':>4} {'one pass fr/s':>14} {'pairwise fr/s':>14} {'speed-up':>9}")
    for N, f_one, f_pair, ratio in rows:
        print(f"{N:>4} {f_one:>14.1f} {f_pair:>14.1f} {ratio:>8.2f}x")


if __name__ == "__main__":
    main()
