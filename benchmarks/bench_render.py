"""Gaussian rasteriser timings: the tiled torch path (forward, forward + backward), gsplat on CUDA.

    python benchmarks/bench_render.py [--repeats 3] [--threads N] [--device cuda]

Scenes: G random Gaussians in a box in front of the camera, their size shrinking with G so
that the image stays about as covered (each Gaussian about a few pixels across, like a
trained scene). For each image size and G it prints the best of `repeats` wall-clock times,
images/s and Gaussians/s of the forward pass, and the tiles' load: the most Gaussians any
16 x 16 tile composites and the size of one (pixels x Gaussians) float tensor of that tile
(autograd keeps several of them per tile until backward; on CUDA the peak memory is printed). "one tile" is the same
renderer with a single tile over the whole image: the dense pixels x Gaussians compositor,
run only where that tensor is under 256 MB. On CUDA (--device cuda), gsplat's rasteriser
runs on the same scene when installed, with its max abs difference to ours.
"""
import argparse
import math

import torch

from fourdlib.geometry import intrinsics_from_fov, invert_rigid, look_at
from fourdlib.render import (gaussians_per_tile, gsplat_available, project_gaussians, render_gaussians,
                             render_gaussians_gsplat)
from timing import best_time, time_forward_backward  # benchmarks/timing.py

CASES = [(64, 64, 1_000), (128, 128, 5_000), (256, 256, 20_000)]   # H, W, G


def scene(G, H, W, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    means = torch.rand(G, 3, generator=g) * 2 - 1                              # a 2 m box round the origin
    quats = torch.randn(G, 4, generator=g)
    scales = (torch.rand(G, 3, generator=g) * 0.5 + 0.5) * 0.6 / math.sqrt(G) ** (2 / 3)
    opacities = torch.rand(G, generator=g) * 0.9 + 0.1
    colors = torch.rand(G, 3, generator=g)
    w2c = invert_rigid(torch.as_tensor(look_at([0.5, -3.5, 1.0], [0.0, 0.0, 0.0])))
    K = torch.as_tensor(intrinsics_from_fov(45, H, W))
    return [t.to(device) for t in (means, quats, scales, opacities, colors, w2c, K)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tile-size", type=int, default=16)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
          f"CUDA: {torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}, device {device}")
    print(f"{'image':>9s} {'G':>6s} {'path':18s} {'fwd ms':>9s} {'fwd+bwd ms':>11s} {'images/s':>9s} "
          f"{'Gaussians/s':>12s}  tiles")
    for H, W, G in CASES:
        means, quats, scales, opacities, colors, w2c, K = scene(G, H, W, device)
        params = [t.requires_grad_() for t in (means, quats, scales, opacities, colors)]
        proj = project_gaussians(*params[:4], w2c, K, W, H)
        per_tile = gaussians_per_tile(proj, W, H, args.tile_size)
        ts2 = args.tile_size ** 2
        load = (f"{len(proj.ids)} visible; per {args.tile_size}x{args.tile_size} tile mean "
                f"{per_tile.float().mean():.0f}, max {per_tile.max()} Gaussians -> "
                f"{ts2 * per_tile.max() * 4 / 2 ** 20:.2f} MB per (P, K) tensor")

        paths = [(f"torch tile {args.tile_size}", dict(tile_size=args.tile_size), load)]
        dense_mb = H * W * len(proj.ids) * 4 / 2 ** 20
        if dense_mb < 256:
            paths.append(("torch one tile", dict(tile_size=max(H, W)), f"{dense_mb:.1f} MB per (P, K) tensor"))
        for name, kw, note in paths:
            def fwd():
                with torch.no_grad():
                    return render_gaussians(means, quats, scales, opacities, colors, w2c, K, W, H, **kw)

            def fwd_bwd():
                out = render_gaussians(*params, w2c, K, W, H, **kw)
                (out.image.sum() + out.depth.sum()).backward()
                return out

            t_f, t_fb, memory = time_forward_backward(fwd, fwd_bwd, args.repeats, device)
            note += memory
            print(f"{H:4d}x{W:<4d} {G:6d} {name:18s} {t_f * 1e3:9.1f} {t_fb * 1e3:11.1f} {1 / t_f:9.2f} "
                  f"{G / t_f:12.3g}  {note}", flush=True)

        if device.type == "cuda" and gsplat_available():
            def g_fwd():
                with torch.no_grad():
                    return render_gaussians_gsplat(means, quats, scales, opacities, colors, w2c, K, W, H)

            def g_fwd_bwd():
                out = render_gaussians_gsplat(*params, w2c, K, W, H)
                (out.image.sum() + out.depth.sum()).backward()
                return out

            torch.cuda.reset_peak_memory_stats()
            t_f, theirs = best_time(g_fwd, args.repeats, sync)
            t_fb, _ = best_time(g_fwd_bwd, args.repeats, sync)
            with torch.no_grad():
                ours = render_gaussians(means, quats, scales, opacities, colors, w2c, K, W, H, alpha_max=0.999)
            diff = max((a - b).abs().max().item() for a, b in zip(ours, theirs))
            print(f"{H:4d}x{W:<4d} {G:6d} {'gsplat CUDA':18s} {t_f * 1e3:9.1f} {t_fb * 1e3:11.1f} {1 / t_f:9.2f} "
                  f"{G / t_f:12.3g}  max abs diff to torch {diff:.1e}; "
                  f"peak CUDA memory {torch.cuda.max_memory_allocated() / 2 ** 20:.0f} MB", flush=True)
        elif device.type == "cuda":
            print(f"{'':9s} {'':6s} gsplat CUDA        not installed")


if __name__ == "__main__":
    main()
