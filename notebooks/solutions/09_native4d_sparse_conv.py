"""Solutions to the exercises of notebooks/09_native4d_sparse_conv.ipynb.

Run: python notebooks/solutions/09_native4d_sparse_conv.py  (seconds at FOURD_SCALE=smoke, under a
minute at tiny once the course data exist; the first run generates them).
"""
import math
import os
import statistics
import time

import torch
import torch.nn.functional as F

from fourdlib.data.voxels import sequence_voxels
from fourdlib.models.native4d_vae import CONFIGS, course_data, make_dataset
from fourdlib.sparse import (SparseTensor, build_kernel_map, dense_weight, downsample_sites, sparse_conv3d,
                             sparse_to_dense)

scale = os.environ.get("FOURD_SCALE", "tiny")
RES = {"smoke": 32, "tiny": 64, "small": 128}[scale]          # notebook 08's grid
f64 = torch.float64


def voxels(body_plan="quadruped"):
    """Notebook 08's voxels as a SparseTensor (colours as features): the first train sequence of
    this body plan (else the first), depth -> mesh -> voxels on a RES^3 grid."""
    data = make_dataset(CONFIGS[scale], course_data("creatures", scale, progress=False), "train", train=False)
    plans = [e["body_plan"] for e in data.entries]
    seq = data.sequence(plans.index(body_plan) if body_plan in plans else 0)
    return sequence_voxels(seq, resolution=RES).to_sparse()


def hash_coords(coords, box):
    """(..., 4) (t, i, j, k) -> (...,) int64 flat index in a box of (T, R0, R1, R2) cells (the notebook's)."""
    _, R0, R1, R2 = box
    t, i, j, k = coords.unbind(-1)
    return ((t * R0 + i) * R1 + j) * R2 + k


def exercise_1_dilation():
    """A dense conv turns every cell next to a non-zero cell non-zero: the active set grows by one
    cell in every direction per layer; a submanifold conv keeps exactly the P sites."""
    x = voxels()
    P, T = len(x), x.batch_size
    occ = sparse_to_dense(x.replace_feats(torch.ones(P, 1)), (RES,) * 3)          # (T, 1, R, R, R)
    ones = torch.ones(1, 1, 3, 3, 3)                                                # positive weights: no cancellation
    counts, dense = [], occ
    for _ in range(10):
        dense = F.conv3d(dense, ones, padding=1)
        counts.append(int((dense > 0).sum()))
    w = torch.rand(27, 1, 1, dtype=torch.float32) + 0.1
    sub = sparse_conv3d(sparse_conv3d(x.replace_feats(torch.ones(P, 1)), w, None), w, None)
    assert len(sub) == P and torch.equal(sub.coords, x.coords)                      # the sites never change
    assert counts[0] > P and all(a < b for a, b in zip(counts, counts[1:]))
    print(f"{P} sites; non-zero cells after 1 dense layer {counts[0]} ({counts[0] / P:.1f}x), after 2 {counts[1]} "
          f"({counts[1] / P:.1f}x), after 10 {counts[9]} ({counts[9] / P:.0f}x, {counts[9] / (T * RES ** 3):.0%} of the "
          f"grid). The submanifold stack keeps {len(sub)} sites.")


def neighbour_map_strided(fine, coarse, box, stride, kernel=3):
    """For each kernel offset d: (fine rows, coarse rows) with fine cell = stride * coarse cell + d,
    d in {-(K-1)/2 .. }^3 (padding (K-1)/2, as conv3d's): the notebook's neighbour_map with a stride."""
    r = torch.arange(kernel) - (kernel - 1) // 2
    offsets = torch.stack(torch.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
    keys, order = hash_coords(fine, box).sort()
    size = torch.tensor(box[1:])
    pairs = []
    for d in offsets:
        cells = coarse[:, 1:] * stride + d
        inside = ((cells >= 0) & (cells < size)).all(1)
        q = hash_coords(torch.cat([coarse[:, :1], cells], 1), box)
        pos = torch.searchsorted(keys, q).clamp(max=len(keys) - 1)
        found = inside & (keys[pos] == q)
        pairs.append((order[pos[found]], found.nonzero()[:, 0]))
    return pairs


def exercise_2_kernel3_stride2():
    """Kernel 3, stride 2, padding 1 from scratch = the library = conv3d(stride=2, padding=1) at the
    coarse sites; the dense op is also non-zero at coarse cells with no fine site inside."""
    x = voxels()
    P, T = len(x), x.batch_size
    box = (T, RES, RES, RES)
    coarse = downsample_sites(x, 2).coords                                          # (P', 4) unique floor(c / 2)
    pairs = neighbour_map_strided(x.coords, coarse, box, stride=2)
    g = torch.Generator().manual_seed(0)
    Cin, Cout = x.num_channels, 4
    feats = x.feats.to(f64).requires_grad_()
    weight = (torch.randn(27, Cin, Cout, generator=g, dtype=f64) / math.sqrt(27 * Cin)).requires_grad_()
    bias = torch.randn(Cout, generator=g, dtype=f64)
    ours = bias.expand(len(coarse), -1).clone()
    for d, (rows_in, rows_out) in enumerate(pairs):
        ours = ours.index_add(0, rows_out, feats[rows_in] @ weight[d])
    lib = sparse_conv3d(x.replace_feats(feats), weight, bias, kernel_size=3, stride=2).feats
    grid = sparse_to_dense(x.replace_feats(feats), (RES,) * 3)
    dense_full = F.conv3d(grid, dense_weight(weight, 3), bias, stride=2, padding=1)          # (T, Cout, R/2, ...)
    b, i, j, k = coarse.unbind(1)
    dense = dense_full.permute(0, 2, 3, 4, 1)[b, i, j, k]
    upstream = torch.randn(ours.shape, generator=g, dtype=f64)
    grads = [torch.autograd.grad((o * upstream).sum(), (feats, weight)) for o in (ours, lib, dense)]
    for other, other_grads in ((lib, grads[1]), (dense, grads[2])):
        assert float((ours - other).detach().abs().max()) < 1e-10
        assert all(float((a - c).abs().max()) < 1e-10 for a, c in zip(grads[0], other_grads))
    nonzero = (dense_full - bias.view(1, -1, 1, 1, 1)).detach().abs().amax(1) > 1e-12       # (T, R/2, R/2, R/2)
    extra = int(nonzero.sum()) - int(nonzero[b, i, j, k].sum())
    assert int(nonzero[b, i, j, k].sum()) == len(coarse)                                     # every site is reached
    print(f"kernel 3, stride 2: {P} fine -> {len(coarse)} coarse sites; ours = fourdlib = conv3d(stride 2, pad 1) "
          f"at the sites (outputs and gradients, float64). The dense result is also non-zero at {extra} coarse "
          f"cells ({extra / len(coarse):.0%} more) with no fine site inside: a fine site on a cell's border reaches "
          f"the neighbouring coarse cell through the kernel's overlap. The sparse op leaves them out (library "
          f"docstring: 'the sparse op omits them').")


def exercise_3_where_the_time_goes(repeats=3):
    """Both the map and the conv grow about linearly with the number of sites; building the map costs
    a few convs, so with the map cached it is soon a small share of a stack's time."""
    x = voxels()
    T = x.batch_size
    C = 16
    g = torch.Generator().manual_seed(0)
    w = torch.randn(27, C, C, generator=g) / math.sqrt(27 * C)

    def median_ms(fn):
        fn()
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return 1e3 * statistics.median(ts)

    rows = []
    n = 1
    while n <= T:
        m = int(x.offsets[n])                                                      # sites of the first n frames
        coords, offsets = x.coords[:m], x.offsets[:n + 1]
        xs = SparseTensor(coords, torch.randn(m, C, generator=g), offsets)
        with torch.no_grad():
            t_map = median_ms(lambda: build_kernel_map(coords, coords, 3, 1))
            sparse_conv3d(xs, w, None)                                              # caches the map on xs
            t_conv = median_ms(lambda: sparse_conv3d(xs, w, None))
        rows.append((n, m, t_map, t_conv))
        n *= 2
    print("frames   sites   map ms  conv ms   map us/site  conv us/site")
    for n, m, tm, tc in rows:
        print(f"{n:6d}  {m:6d}  {tm:7.1f}  {tc:7.1f}  {1e3 * tm / m:12.2f}  {1e3 * tc / m:12.2f}")
    n, m, tm, tc = rows[-1]
    layers = math.ceil(9 * tm / tc)                                                 # tm / (tm + L tc) < 0.1
    assert all(r[2] > 0 and r[3] > 0 for r in rows) and rows[-1][1] > rows[0][1]
    print(f"Per site, both stay roughly flat as the sites grow (linear in P; small sets pay a fixed overhead). "
          f"The map costs {tm / tc:.1f} convs here, so it is under 10 % of a stack's time from about {layers} "
          f"layers at one resolution (this machine, under load: the ratio matters, not the milliseconds).")


if __name__ == "__main__":
    exercise_1_dilation()
    exercise_2_kernel3_stride2()
    exercise_3_where_the_time_goes()
