"""Sparse-voxel rasteriser timings: the tiled torch ray caster (forward, forward + backward).

    python benchmarks/bench_render_voxels.py [--repeats 3] [--threads N] [--device cuda]

Scenes: the surface voxels of a sphere (a shell two cells thick, like a voxelised surface) in
an R^3 grid spanning [-1, 1]^3, occupancy in [0.5, 1], colour from position, seen from 3.5 m so
that the sphere fills about half the image. For each image size, R and tile size (default 8
and 16) it prints the best of `repeats` wall-clock times, images/s and pixels/s of the forward
pass, and the tiles' load: the most voxels any tile casts against and the size of one (pixels x
voxels) float tensor of that tile (the slab test holds a few (P, K, 3) ones; autograd keeps the
(P, K) ones until backward; on CUDA the peak memory is printed). "one tile" is the same renderer
with a single tile over the whole image, run only where its (pixels x voxels) tensor is under 256 MB.
"""
import argparse

import torch

from fourdlib.geometry import intrinsics_from_fov, invert_rigid, look_at
from fourdlib.render.voxels import render_voxels, voxels_per_tile
from timing import time_forward_backward  # benchmarks/timing.py

CASES = [(64, 64, 32), (128, 128, 64)]   # H, W, R (grid cells per axis)


def scene(R, H, W, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    cells = torch.stack(torch.meshgrid(*[torch.arange(R)] * 3, indexing="ij"), -1).reshape(-1, 3)
    size = 2.0 / R
    centres = (cells + 0.5) * size - 1                                          # (R^3, 3) in [-1, 1]^3
    r = centres.norm(dim=-1)
    coords = cells[(r < 0.8) & (r > 0.8 - 2 * size)]                           # the shell
    V = len(coords)
    occ = torch.rand(V, generator=g) * 0.5 + 0.5
    colors = (coords.float() + 0.5) / R                                         # (V, 3) RGB from position
    w2c = invert_rigid(torch.as_tensor(look_at([0.8, -3.3, 1.0], [0.0, 0.0, 0.0])))
    K = torch.as_tensor(intrinsics_from_fov(45, H, W))
    return [t.to(device) for t in (coords, occ, colors, w2c, K)] + [dict(voxel_size=size, origin=(-1.0, -1.0, -1.0))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tile-sizes", type=int, nargs="+", default=[8, 16])
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
          f"CUDA: {torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}, device {device}")
    print(f"{'image':>9s} {'R':>4s} {'voxels':>7s} {'path':16s} {'fwd ms':>9s} {'fwd+bwd ms':>11s} {'images/s':>9s} "
          f"{'pixels/s':>10s}  tiles")
    for H, W, R in CASES:
        coords, occ, colors, w2c, K, grid = scene(R, H, W, device)
        params = [t.clone().requires_grad_() for t in (occ, colors)]
        paths = []
        for ts in args.tile_sizes:
            per_tile = voxels_per_tile(coords, grid["voxel_size"], grid["origin"], w2c, K, W, H, ts)
            load = (f"per {ts}x{ts} tile mean {per_tile.float().mean():.0f}, max {per_tile.max()} "
                    f"voxels -> {ts * ts * per_tile.max() * 4 / 2 ** 20:.2f} MB per (P, K) tensor")
            paths.append((f"torch tile {ts}", dict(tile_size=ts), load))
        dense_mb = H * W * len(coords) * 4 / 2 ** 20
        if dense_mb < 256:
            paths.append(("torch one tile", dict(tile_size=max(H, W)), f"{dense_mb:.1f} MB per (P, K) tensor"))
        for name, kw, note in paths:
            def fwd():
                with torch.no_grad():
                    return render_voxels(coords, occ, colors, w2c, K, W, H, **grid, **kw)

            def fwd_bwd():
                out = render_voxels(coords, *params, w2c, K, W, H, **grid, **kw)
                (out.image.sum() + out.depth.sum()).backward()
                return out

            t_f, t_fb, memory = time_forward_backward(fwd, fwd_bwd, args.repeats, device)
            note += memory
            print(f"{H:4d}x{W:<4d} {R:4d} {len(coords):7d} {name:16s} {t_f * 1e3:9.1f} {t_fb * 1e3:11.1f} "
                  f"{1 / t_f:9.2f} {H * W / t_f:10.3g}  {note}", flush=True)


if __name__ == "__main__":
    main()
