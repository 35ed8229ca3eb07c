"""Sparse conv on the CPU: our torch path against dense conv3d (and spconv) on the same grid.

    python benchmarks/bench_sparse.py [--repeats 3] [--res 64] [--channels 32] [--backward]

One sample on a res^3 grid per case; the active sites are a spherical shell (a voxelised
surface, like the VAE's input: each site has ~10-20 active neighbours out of 27) thick
enough to hold about the asked number of sites, or uniform random sites (few neighbours).
Columns: `cold` is one submanifold conv (kernel 3, C -> C channels) including building its
neighbour map, `warm` the same conv with the map cached on the tensor (every layer after
the first at one resolution), `dense` torch's conv3d on the full res^3 grid (what a user
would otherwise run on a CPU; its output at the active sites is the same). `Mvox/s` is
active sites per second of the warm sparse conv; `max|d|` the largest difference between
sparse and dense at the sites. With --backward, the times are forward + backward.
When spconv imports (`pip install spconv`, its CPU build; the `spconv` extra), two more
columns: `sp cold` is spconv's SubMConv3d building its index pairs, `sp warm` the same layer
with the pairs cached in the tensor's indice_dict, and `sp|d|` the largest difference to
our output, sites matched by coordinates. spconv always runs single-threaded here, whatever
OMP_NUM_THREADS says: its CPU build races with more than one torch thread (wrong, run-to-run
different results on grids above a few hundred voxels), and its backward needs its CUDA
stream lookup replaced by 0 (done here) to run on a CPU. Compare at OMP_NUM_THREADS=1.
Each time is the median of --repeats calls, each after a warm-up (timing.best_time with one
repeat), the methods taking turns; the load average is printed (on a shared machine the
figures are pessimistic). Set OMP_NUM_THREADS to choose the thread count.
"""
import argparse
import os

import torch
import torch.nn.functional as F

from fourdlib.sparse import (SparseTensor, coord_keys, coords_bounds, dense_weight, lookup, sparse_conv3d,
                             sparse_to_dense)
from timing import best_time, median_times  # benchmarks/timing.py

try:
    import spconv.pytorch as spconv
    spconv.ops.get_current_stream = lambda: 0  # its backward asks CUDA for a stream; the CPU path ignores it
except ImportError:
    spconv = None

SIZES = [("shell", 10_000), ("shell", 50_000), ("random", 50_000)]


def sites(kind, n, res, g):
    """(P, 3) int64 cells: a spherical shell of about n cells, or n random distinct cells."""
    if kind == "random":
        idx = torch.randperm(res**3, generator=g)[:n].sort().values  # flat cell indices
        return torch.stack([idx // (res * res), idx // res % res, idx % res], 1)
    ijk = torch.stack(torch.meshgrid(*[torch.arange(res)] * 3, indexing="ij"), -1).reshape(-1, 3)
    dist = (ijk.float() - (res - 1) / 2).norm(dim=1)
    r = 0.42 * res
    order = (dist - r).abs().argsort()  # grow the shell outwards from radius r
    return ijk[order[:n].sort().values]


def single_thread(fn):
    """fn() with one torch thread (spconv's CPU build races with more), then the old count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn()
    finally:
        torch.set_num_threads(threads)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--backward", action="store_true", help="time forward + backward")
    args = ap.parse_args()
    res, C = args.res, args.channels
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; {res}^3 grid, {C} -> {C} channels, "
          f"kernel 3, {'forward + backward' if args.backward else 'forward'}; median of {args.repeats}, ms; "
          f"load average {os.getloadavg()[0]:.1f}")
    sp_cols = ["sp cold", "sp warm"] if spconv is not None else []
    print(f"{'sites':>16s} {'nbrs':>5s} {'cold':>9s} {'warm':>9s} {'dense':>9s} "
          + "".join(f"{c:>9s} " for c in sp_cols) + f"{'dense/warm':>11s} {'Mvox/s':>7s} {'max|d|':>8s}"
          + (f" {'sp|d|':>8s}" if sp_cols else ""))
    if spconv is None:
        print("(no spconv columns: `pip install spconv` to add them)")
    g = torch.Generator().manual_seed(0)
    w = (torch.randn(27, C, C, generator=g) / (27 * C) ** 0.5).requires_grad_(args.backward)
    b = torch.zeros(C, requires_grad=args.backward)
    for kind, n in SIZES:
        cells = sites(kind, n, res, g)
        feats = torch.randn(len(cells), C, generator=g).requires_grad_(args.backward)
        x = SparseTensor.from_list([cells], [feats])
        grid = sparse_to_dense(x, (res,) * 3).detach().requires_grad_(args.backward)  # (1, C, res, res, res)
        wd = dense_weight(w, 3).detach().contiguous().requires_grad_(args.backward)

        def run(out):
            if args.backward:
                out.sum().backward()
            return out

        # cold: a tensor with the same sites but an empty map cache, as a new batch has
        cases = {"cold": lambda: run(sparse_conv3d(SparseTensor(x.coords, feats, x.offsets, validate=False),
                                                   w, b, 3).feats),
                 "warm": lambda: run(sparse_conv3d(x, w, b, 3).feats),
                 "dense": lambda: run(F.conv3d(grid, wd, b.detach(), padding=1))}
        if spconv is not None:
            layer = spconv.SubMConv3d(C, C, 3, padding=1, indice_key="subm")
            with torch.no_grad():  # our (27, C, C) -> spconv's [Cout, 3, 3, 3, Cin]
                layer.weight.copy_(w.detach().view(3, 3, 3, C, C).permute(4, 0, 1, 2, 3))
                layer.bias.copy_(b.detach())
            layer.weight.requires_grad_(args.backward)
            layer.bias.requires_grad_(args.backward)
            indices = x.coords.int().contiguous()  # int32, contiguous: spconv ignores strides
            fresh = lambda: spconv.SparseConvTensor(feats, indices, [res] * 3, 1)  # empty indice_dict
            cached = single_thread(lambda: layer(fresh()))  # its indice_dict holds the pairs now
            cases["sp cold"] = lambda: single_thread(lambda: run(layer(fresh()).features))
            cases["sp warm"] = lambda: single_thread(lambda: run(layer(cached.replace_feature(feats)).features))
        t = median_times(cases, args.repeats)
        with torch.no_grad():
            out = sparse_conv3d(x, w, b, 3).feats
            ref = F.conv3d(grid, wd, b, padding=1)[0].permute(1, 2, 3, 0)[tuple(cells.T)]
        pairs = x.cache[("conv", 3, 1)]
        nbrs = sum(len(p[0]) for p in pairs if p is not None) / len(cells)
        line = (f"{f'{kind} {len(cells)}':>16s} {nbrs:5.1f} " + " ".join(f"{t[c] * 1e3:9.1f}" for c in cases)
                + f" {t['dense'] / t['warm']:10.1f}x {len(cells) / t['warm'] / 1e6:7.2f} "
                f"{(out - ref).abs().max():8.1e}")
        if spconv is not None:
            with torch.no_grad():
                sp = single_thread(lambda: layer(fresh()))
            bounds = coords_bounds(x.coords, sp.indices.long())
            keys, order = torch.sort(coord_keys(sp.indices.long(), bounds))
            rows = lookup(keys, order, coord_keys(x.coords, bounds))  # our sites in spconv's rows
            line += f" {(sp.features[rows] - out).abs().max():8.1e}" if (rows >= 0).all() else "  missing"
        print(line, flush=True)


if __name__ == "__main__":
    main()
