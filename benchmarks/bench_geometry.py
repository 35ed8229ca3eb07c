"""Geometry timings: FPS, normal estimation, voxelisation of points and of a mesh.

    python benchmarks/bench_geometry.py [--repeats 3]

Runs every case on the CPU, and again on CUDA when present (where the CUDA result is
compared with the CPU one). Prints the best of `repeats` wall-clock times. FPS on the CPU
is fpsample's compiled loop and on CUDA our batched torch loop, so "same indices" checks
the two implementations against each other; `bench_fps.py` times the CPU ones in detail.
"""
import argparse

import torch
import trimesh

from fourdlib.geometry import estimate_normals, farthest_point_sample, voxelize_mesh, voxelize_points
from timing import best_time  # benchmarks/timing.py


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    sphere = trimesh.creation.icosphere(5)                                     # 20k triangles
    cases = [  # name, function of a device, how to compare two results
        ("FPS 8 x 8192 -> 512", lambda d, x=torch.rand(8, 8192, 3, generator=g): farthest_point_sample(x.to(d), 512),
         lambda a, b: f"same indices: {torch.equal(a.cpu(), b.cpu())}"),
        ("FPS 16384 -> 1024", lambda d, x=torch.rand(16384, 3, generator=g): farthest_point_sample(x.to(d), 1024),
         lambda a, b: f"same indices: {torch.equal(a.cpu(), b.cpu())}"),
        ("normals 8192 pts, k=16", lambda d, x=torch.nn.functional.normalize(torch.randn(8192, 3, generator=g), dim=1):
         estimate_normals(x.to(d), 16),
         lambda a, b: f"min |cos| to CPU: {(a.cpu() * b.cpu()).sum(1).abs().min():.4f}"),
        ("voxelize 100k pts, 256^3", lambda d, x=torch.rand(100_000, 3, generator=g): voxelize_points(
            x.to(d), x.to(d), resolution=256, bounds=(0, 1)),
         lambda a, b: f"same voxels: {torch.equal(a.coords.cpu(), b.coords.cpu())}"),
        ("voxelize mesh 20k tri, 128^3", lambda d: voxelize_mesh(
            torch.as_tensor(sphere.vertices, device=d), torch.as_tensor(sphere.faces, device=d),
            vertex_colors=torch.as_tensor(sphere.vertices, device=d), resolution=128, bounds=(-1.1, 1.1)),
         lambda a, b: f"same voxels: {torch.equal(a.coords.cpu(), b.coords.cpu())}"),
    ]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
          f"CUDA: {torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}")
    for name, fn, compare in cases:
        t_cpu, out_cpu = best_time(lambda: fn("cpu"), args.repeats)
        print(f"{name:30s} CPU  {t_cpu * 1e3:9.1f} ms", flush=True)
        if torch.cuda.is_available():
            t_gpu, out_gpu = best_time(lambda: fn("cuda"), args.repeats, torch.cuda.synchronize)
            print(f"{name:30s} CUDA {t_gpu * 1e3:9.1f} ms   ({compare(out_cpu, out_gpu)})", flush=True)


if __name__ == "__main__":
    main()
