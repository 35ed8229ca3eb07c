"""Sparse coloured voxels from point clouds and triangle meshes.

The Native 4D VAE works on "dynamic coloured voxels" (per frame, the occupied cells of a
regular grid, 256^3 .. 1024^3 in the paper, with the blended colour of what falls in
each; its depth videos are meshed first and the MESHES voxelised, because voxelising
back-projected points leaves holes), and COM4D's volume IoU on solid voxels at 64^3. A grid is fixed by an origin and a voxel size; give either

    voxel_size=h                        an unbounded grid aligned to the world origin, or
    resolution=R, bounds=(lo, hi)       R cells per axis spanning the box [lo, hi]
    voxel_size=h, bounds=(lo, hi)       cells of size h from lo, ceil((hi-lo)/h) per axis.

`bounds` is a (2, 3) array [[xmin, ymin, zmin], [xmax, ymax, zmax]] or a pair of
numbers (a cube). Cell (i, j, k) covers origin + [i, i+1) x [j, j+1) x [k, k+1) times
the voxel size (the upper bound of a bounded grid belongs to the last cell). Voxels come
back sorted by (i, j, k), so two voxelisations can be compared row by row. Everything
is torch underneath (CUDA-ready); numpy in gives numpy out.

Meshes are voxelised EXACTLY: a voxel is occupied when a triangle intersects the cell
(separating-axis triangle/box test, Akenine-Möller 2001). Triangles are first cut by
longest-edge bisection until no edge is longer than two voxels, so each piece can touch
only the 3 x 3 x 3 cells from its lowest corner and the test stays one vectorised pass.
Unlike sampling points on the triangles, this leaves no holes for thin or grazing
triangles (timings: `benchmarks/bench_geometry.py`). A triangle lying exactly on a cell face belongs to the cell above it, as a
point would (a floor at z = 0 with bounds (-1, 1) gives one layer, not two).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

_OUTSIDE = ("error", "drop")


class Voxels(NamedTuple):
    coords: torch.Tensor          # (M, 3) int64 cell indices (i, j, k), sorted
    colors: torch.Tensor | None   # (M, C) float32 mean colour (same units as given), None without colours
    counts: torch.Tensor          # (M,) int64 points (or mesh pieces) that fell in each voxel


def grid_spec(voxel_size=None, resolution=None, bounds=None):
    """(origin (3,), voxel size (3,), resolution (3,) or None) as float64/int64 CPU tensors."""
    if (voxel_size is None) == (resolution is None):
        raise ValueError("voxel grid: give exactly one of voxel_size or resolution (with bounds)")
    lo = hi = None
    if bounds is not None:
        b = torch.as_tensor(np.asarray(bounds, np.float64))
        if b.shape == (2,):
            b = b[:, None].expand(2, 3)
        if b.shape != (2, 3):
            raise ValueError(f"voxel grid: bounds must be (2, 3) [[min xyz], [max xyz]] or (lo, hi), got shape {tuple(b.shape)}")
        if not bool(torch.isfinite(b).all()) or not bool((b[1] > b[0]).all()):
            raise ValueError(f"voxel grid: bounds must be finite with max > min on every axis, got {b.tolist()}")
        lo, hi = b[0], b[1]
    if resolution is not None:
        if lo is None:
            raise ValueError("voxel grid: resolution needs bounds (the box the grid spans)")
        res = torch.as_tensor(np.asarray(resolution)).reshape(-1).expand(3)
        if res.is_floating_point() or not bool((res >= 1).all()):
            raise ValueError(f"voxel grid: resolution must be positive int(s), got {resolution!r}")
        res = res.long()
        return lo.clone(), (hi - lo) / res, res
    size = torch.as_tensor(np.asarray(voxel_size, np.float64)).reshape(-1).expand(3).clone()
    if not bool(torch.isfinite(size).all()) or not bool((size > 0).all()):
        raise ValueError(f"voxel grid: voxel_size must be finite and > 0, got {voxel_size!r}")
    if lo is None:
        return torch.zeros(3, dtype=torch.float64), size, None
    res = torch.ceil((hi - lo) / size - 1e-9).long().clamp_min(1)
    return lo.clone(), size, res


def _keys(cells: torch.Tensor, res: torch.Tensor):
    """Linear keys of cells (..., 3) in a grid of res (3,) cells: (i * Ry + j) * Rz + k."""
    return (cells[..., 0] * res[1] + cells[..., 1]) * res[2] + cells[..., 2]


def _cells(keys: torch.Tensor, res: torch.Tensor):
    k = keys % res[2]
    j = (keys // res[2]) % res[1]
    i = keys // (res[2] * res[1])
    return torch.stack([i, j, k], -1)


def _reduce(cells, counts, feats=None, weights=None, span=None):
    """Merge rows (cells (N, 3) in [0, span)) that share a cell.

    Returns (cells (M, 3) sorted, counts summed, weighted mean of feats (M, C) or None,
    weights summed or None). Means and weight sums merge again exactly with this function.
    """
    key = _keys(cells, span)
    uniq, inv = torch.unique(key, return_inverse=True)                         # sorted keys
    M = len(uniq)
    cnt = torch.zeros(M, dtype=torch.long, device=key.device).index_add_(0, inv, counts)
    mean = wsum = None
    if feats is not None:
        wsum = torch.zeros(M, dtype=weights.dtype, device=key.device).index_add_(0, inv, weights)
        mean = torch.zeros(M, feats.shape[1], dtype=feats.dtype, device=key.device)
        mean = mean.index_add_(0, inv, feats * weights[:, None]) / wsum[:, None]
    return _cells(uniq, span), cnt, mean, wsum


def _to_output(is_np, vox: Voxels) -> Voxels:
    if not is_np:
        return vox
    return Voxels(*(None if t is None else t.cpu().numpy() for t in vox))


def _check_colors(colors, n, what, fn):
    c = torch.as_tensor(colors)
    if c.ndim != 2 or c.shape[0] != n:
        raise ValueError(f"{fn}: {what} must be ({n}, C), got shape {tuple(c.shape)}")
    c = c.to(torch.float64)
    if not bool(torch.isfinite(c).all()):
        raise ValueError(f"{fn}: {what} contain NaN or inf")
    return c


def _outside_mask(x, origin, size, res):
    """Points (N, 3) outside the closed box of a bounded grid."""
    lo, hi = origin.to(x), (origin + size * res).to(x)
    return ((x < lo) | (x > hi)).any(-1)


def voxelize_points(points, colors=None, *, voxel_size=None, resolution=None, bounds=None,
                    outside: str = "error") -> Voxels:
    """Occupied voxels of a point cloud (N, 3) with the mean of `colors` (N, C) per voxel.

    Grid arguments as in the module docstring. `outside` ("error" or "drop") says what
    to do with points outside `bounds`. Returns `Voxels(coords (M, 3) int64, colors
    (M, C) float32 or None, counts (M,) int64)`, numpy if `points` is numpy.
    """
    fn = "voxelize_points"
    if outside not in _OUTSIDE:
        raise ValueError(f"{fn}: outside must be one of {_OUTSIDE}, got {outside!r}")
    is_np = isinstance(points, np.ndarray)
    p = torch.as_tensor(points)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"{fn}: points must be (N, 3), got shape {tuple(p.shape)}")
    if len(p) == 0:
        raise ValueError(f"{fn}: the point cloud is empty")
    dev = p.device
    x = p.to(torch.float64)                                                    # float64 on every device: same cells
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{fn}: points contain NaN or inf")
    c = None if colors is None else _check_colors(colors, len(x), "colors", fn).to(dev)
    origin, size, res = grid_spec(voxel_size, resolution, bounds)

    if res is not None:
        out = _outside_mask(x, origin, size, res)
        if bool(out.any()):
            if outside == "error":
                raise ValueError(f"{fn}: {int(out.sum())} of {len(x)} points lie outside bounds "
                                 f"{(origin).tolist()}..{(origin + size * res).tolist()} (pass outside='drop' to ignore them)")
            x, c = x[~out], None if c is None else c[~out]
            if len(x) == 0:
                raise ValueError(f"{fn}: every point lies outside the bounds")
    cells = torch.floor((x - origin.to(x)) / size.to(x)).long()                # (N, 3)
    if res is not None:
        cells = torch.minimum(cells, (res - 1).to(dev))                       # the upper bound joins the last cell
        shift, span = torch.zeros(3, dtype=torch.long, device=dev), res.to(dev)
    else:  # unbounded grid: shift cells to start at 0 for the linear keys
        shift = cells.min(0).values
        span = cells.max(0).values - shift + 1
        if float(span.double().prod()) >= 2.0 ** 62:
            raise ValueError(f"{fn}: the cloud spans {span.tolist()} voxels, too many for one grid; use a larger voxel_size")
    ones = torch.ones(len(cells), dtype=torch.long, device=dev)
    w = None if c is None else torch.ones(len(cells), dtype=c.dtype, device=dev)
    coords, cnt, col, _ = _reduce(cells - shift, ones, c, w, span)
    vox = Voxels(coords + shift, None if col is None else col.float(), cnt)
    return _to_output(is_np, vox)


# ---------------------------------------------------------------------------- meshes

PIECE_EDGE = 2  # voxels; bisect down to this, then test the (PIECE_EDGE + 1)^3 cells around each piece


def _bisect_longest(tri: torch.Tensor, att: torch.Tensor, max_edge: int):
    """Split triangles (T, 3, 3) (grid units) with attributes (T, 3, C) at the midpoint of
    their longest edge until no edge is longer than `max_edge` voxels. Returns (pieces, attrs).

    Bisection (not 4-way splitting) keeps slivers cheap: a long thin triangle becomes
    about 2L pieces, not L^2. Neighbours compute shared midpoints identically, so the
    pieces stay watertight to the bit."""
    done_t, done_a = [], []
    while len(tri):
        length = (tri.roll(-1, dims=1) - tri).norm(dim=-1)                     # (T, 3) edge j: v_j -> v_{j+1}
        big = length.max(1).values > max_edge
        done_t.append(tri[~big]), done_a.append(att[~big])
        tri, att, j = tri[big], att[big], length[big].argmax(1)
        r = torch.arange(len(tri), device=tri.device)
        ia, ib, ic = j, (j + 1) % 3, (j + 2) % 3                               # longest edge a -> b, opposite c
        a, b, c = tri[r, ia], tri[r, ib], tri[r, ic]
        xa, xb, xc = att[r, ia], att[r, ib], att[r, ic]
        m, xm = 0.5 * (a + b), 0.5 * (xa + xb)
        tri = torch.cat([torch.stack([a, m, c], 1), torch.stack([m, b, c], 1)])
        att = torch.cat([torch.stack([xa, xm, xc], 1), torch.stack([xm, xb, xc], 1)])
    return torch.cat(done_t), torch.cat(done_a)


def _tri_box_hits(tri: torch.Tensor, max_edge: int, eps: float = 1e-6):
    """Cells hit by small triangles (T, 3, 3) (grid units, edges <= max_edge).

    Returns (piece index (H,), cell (H, 3) long) for every (triangle, cell) pair that
    intersects. Separating-axis theorem: a triangle and a box are disjoint iff their
    projections are disjoint on one of 13 axes: the 3 box axes, the triangle normal and
    the 9 cross products of a triangle edge with a box axis. The box axes are tested on
    integer cells: only cells floor(min) .. floor(max) of the triangle's bounding box
    qualify, which also puts a triangle lying exactly on a cell face in the cell above it
    (the rule of floor() for points). The other 10 axes use closed cells, in float32 on
    coordinates relative to the lowest cell (small numbers, so exact enough).
    """
    lo, hi = torch.floor(tri.min(1).values), torch.floor(tri.max(1).values)    # (T, 3)
    r = torch.arange(max_edge + 1, device=tri.device)
    offsets = torch.stack(torch.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)  # (C, 3)
    v = (tri - lo[:, None]).float()                                            # (T, 3, 3) small
    e = v.roll(-1, dims=1) - v                                                 # (T, 3, 3) edges
    eye = torch.eye(3, device=v.device)
    n = torch.cross(e[:, 0], e[:, 1], dim=-1)                                  # (T, 3) face normal
    cross = torch.cross(e[:, :, None, :].expand(-1, 3, 3, 3), eye.expand(len(v), 3, 3, 3), dim=-1)
    axes = torch.cat([n[:, None], cross.reshape(-1, 9, 3)], 1)                 # (T, 10, 3)
    proj = torch.einsum("tak,tvk->tav", axes, v)                               # (T, 10, 3) vertices on axes
    half = 0.5 * axes.abs().sum(-1)                                            # (T, 10) box half-extent
    tol = eps * (1 + half)
    pmin = proj.min(-1).values - half - tol                                    # overlap iff pmin <= centre . axis
    pmax = proj.max(-1).values + half + tol                                    #         and centre . axis <= pmax
    centres = offsets.float() + 0.5                                            # (C, 3)
    # bounding box and face plane on all C cells, then the 9 edge axes on the survivors
    pc = n @ centres.T                                                         # (T, C)
    hit = (offsets <= (hi - lo)[:, None]).all(-1) & (pmin[:, :1] <= pc) & (pc <= pmax[:, :1])
    tid, cid = hit.nonzero(as_tuple=True)
    pc = torch.einsum("hak,hk->ha", axes[tid, 1:], centres[cid])               # (H, 9)
    ok = ((pmin[tid, 1:] <= pc) & (pc <= pmax[tid, 1:])).all(-1)
    tid, cid = tid[ok], cid[ok]
    return tid, lo[tid].long() + offsets[cid]


def _nearby_barycentric(tri: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Barycentric coords (H, 3) of a point of each triangle (H, 3, 3) near p (H, 3): the
    projection of p on the triangle's plane, clamped into the triangle (exactly the
    nearest point when the projection falls inside; the centroid for degenerate ones)."""
    a = tri[:, 0]
    e1, e2, q = tri[:, 1] - a, tri[:, 2] - a, p - a
    d11, d12, d22 = (e1 * e1).sum(-1), (e1 * e2).sum(-1), (e2 * e2).sum(-1)
    dq1, dq2 = (q * e1).sum(-1), (q * e2).sum(-1)
    den = d11 * d22 - d12 ** 2
    ok = den > 1e-12 * (d11 * d22).clamp_min(1e-300)
    den = torch.where(ok, den, 1.0)
    v, w = (d22 * dq1 - d12 * dq2) / den, (d11 * dq2 - d12 * dq1) / den
    b = torch.stack([1 - v - w, v, w], -1).clamp_min(0)
    b = b / b.sum(-1, keepdim=True).clamp_min(1e-300)
    return torch.where(ok[:, None], b, torch.full_like(b, 1 / 3))


def voxelize_mesh(vertices, faces, *, vertex_colors=None, face_colors=None, voxel_size=None,
                  resolution=None, bounds=None, outside: str = "error",
                  max_pieces: int = 1 << 15) -> Voxels:
    """Surface voxels of a triangle mesh: every cell a triangle passes through (exact).

    vertices (Nv, 3), faces (F, 3) int; optional vertex_colors (Nv, C) (interpolated over
    each triangle) or face_colors (F, C). Grid arguments as in the module docstring;
    `outside` ("error"/"drop") for vertices outside `bounds` (drop clips the mesh to the
    box). A voxel's colour is the area-weighted mean, over the bisection pieces touching
    it (at most 2 voxels across), of each piece's colour at its point nearest the voxel
    centre: the colour of the surface in and right around the voxel. `counts` holds the
    number of pieces touching each voxel. `max_pieces` bounds memory per pass.
    """
    fn = "voxelize_mesh"
    if outside not in _OUTSIDE:
        raise ValueError(f"{fn}: outside must be one of {_OUTSIDE}, got {outside!r}")
    if vertex_colors is not None and face_colors is not None:
        raise ValueError(f"{fn}: give vertex_colors or face_colors, not both")
    is_np = isinstance(vertices, np.ndarray)
    v = torch.as_tensor(vertices)
    dev = v.device
    f = torch.as_tensor(faces, device=dev)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"{fn}: vertices must be (Nv, 3), got shape {tuple(v.shape)}")
    if f.ndim != 2 or f.shape[1] != 3 or f.is_floating_point():
        raise ValueError(f"{fn}: faces must be (F, 3) integer, got shape {tuple(f.shape)} {f.dtype}")
    if len(f) == 0:
        raise ValueError(f"{fn}: the mesh has no faces")
    f = f.long()
    if bool((f < 0).any()) or bool((f >= len(v)).any()):
        raise ValueError(f"{fn}: faces index vertices outside [0, {len(v)})")
    fdt = torch.float64                                                        # same pieces and cells on every device
    v = v.to(fdt)
    if not bool(torch.isfinite(v).all()):
        raise ValueError(f"{fn}: vertices contain NaN or inf")
    origin, size, res = grid_spec(voxel_size, resolution, bounds)
    origin, size = origin.to(v), size.to(v)

    used = v[f.unique()]
    if res is not None:
        out = _outside_mask(used, origin, size, res)
        if bool(out.any()) and outside == "error":
            raise ValueError(f"{fn}: {int(out.sum())} vertices lie outside bounds {origin.tolist()}.."
                             f"{(origin + size * res.to(v)).tolist()} (pass outside='drop' to clip the mesh)")

    tri = (v[f] - origin) / size                                               # (F, 3, 3) grid units
    if vertex_colors is not None:
        att = _check_colors(vertex_colors, len(v), "vertex_colors", fn).to(dev)[f]          # (F, 3, C)
    elif face_colors is not None:
        att = _check_colors(face_colors, len(f), "face_colors", fn).to(dev)[:, None].expand(-1, 3, -1)
    else:
        att = torch.zeros(len(f), 3, 0, dtype=fdt, device=dev)
    has_col = att.shape[-1] > 0

    # Chunk the faces so that each chunk makes about max_pieces pieces (a triangle of area
    # A and longest edge L, in voxels, gives roughly 2A + L + 1 pieces, within 2x).
    e = tri.roll(-1, dims=1) - tri
    area = 0.5 * torch.cross(e[:, 0], e[:, 1], dim=-1).norm(dim=-1)
    est = 2 * area + e.norm(dim=-1).max(1).values + 1                          # (F,)
    chunk_sizes = torch.unique_consecutive((est.cumsum(0) / max_pieces).long(), return_counts=True)[1].tolist()

    if res is not None:
        shift, span = torch.zeros(3, dtype=torch.long, device=dev), res.to(dev)
    else:  # unbounded grid: keys relative to the mesh's lowest cell
        corners = tri.reshape(-1, 3)
        shift = torch.floor(corners.min(0).values).long() - 1
        span = torch.floor(corners.max(0).values).long() + 2 - shift
        if float(span.double().prod()) >= 2.0 ** 62:
            raise ValueError(f"{fn}: the mesh spans {span.tolist()} voxels, too many for one grid; use a larger voxel_size")
    area_scale = torch.stack([size[1] * size[2], size[2] * size[0], size[0] * size[1]])  # grid -> world area, per normal axis
    parts = []  # per pass: (cells, counts, mean colour, weight sum), merged within the pass
    for tri_c, att_c in zip(tri.split(chunk_sizes), att.split(chunk_sizes)):
        pieces, patt = _bisect_longest(tri_c, att_c, PIECE_EDGE)               # (P, 3, 3), (P, 3, C)
        for pc, pa in zip(pieces.split(max_pieces), patt.split(max_pieces)):
            pid, cells = _tri_box_hits(pc, PIECE_EDGE)                         # (H,), (H, 3)
            cells = cells - shift
            keep = ((cells >= 0) & (cells < span)).all(-1)                     # clip to the grid
            pid, cells = pid[keep], cells[keep]
            ones = torch.ones(len(pid), dtype=torch.long, device=dev)
            col = w = None
            if has_col:
                pe = pc.roll(-1, dims=1) - pc
                parea = 0.5 * (torch.cross(pe[:, 0], pe[:, 1], dim=-1) * area_scale).norm(dim=-1)
                w = parea[pid] + 1e-12 * float(area_scale.max())               # degenerate pieces still count
                bary = _nearby_barycentric(pc[pid], cells.to(pc) + shift.to(pc) + 0.5)
                col = torch.einsum("hv,hvc->hc", bary, pa[pid])                # piece colour near the cell centre
            parts.append(_reduce(cells, ones, col, w, span))
    cells = torch.cat([p[0] for p in parts])
    if len(cells) == 0:
        raise ValueError(f"{fn}: no triangle touches the grid (is the mesh outside the bounds?)")
    cnt = torch.cat([p[1] for p in parts])
    col = torch.cat([p[2] for p in parts]) if has_col else None
    w = torch.cat([p[3] for p in parts]) if has_col else None
    coords, cnt, col, _ = _reduce(cells, cnt, col, w, span)
    return _to_output(is_np, Voxels(coords + shift, None if col is None else col.float(), cnt))


def voxels_to_points(coords, *, voxel_size=None, resolution=None, bounds=None):
    """World positions (M, 3) float32 of voxel centres, for cells (M, 3) of the grid given
    by the same arguments as `voxelize_points` / `voxelize_mesh`."""
    is_np = isinstance(coords, np.ndarray)
    c = torch.as_tensor(coords)
    if c.ndim != 2 or c.shape[1] != 3:
        raise ValueError(f"voxels_to_points: coords must be (M, 3), got shape {tuple(c.shape)}")
    origin, size, _ = grid_spec(voxel_size, resolution, bounds)
    pts = (origin.to(c.device) + (c.double() + 0.5) * size.to(c.device)).float()
    return pts.numpy() if is_np else pts


def voxels_to_dense(coords, resolution):
    """Occupancy grid (R0, R1, R2) bool of cells (M, 3) in a bounded grid of `resolution`."""
    is_np = isinstance(coords, np.ndarray)
    c = torch.as_tensor(coords).long()
    res = torch.as_tensor(np.asarray(resolution)).reshape(-1).expand(3).long()
    if c.ndim != 2 or c.shape[1] != 3:
        raise ValueError(f"voxels_to_dense: coords must be (M, 3), got shape {tuple(c.shape)}")
    if bool(((c < 0) | (c >= res.to(c.device))).any()):
        raise ValueError(f"voxels_to_dense: coords outside the grid [0, {res.tolist()})")
    grid = torch.zeros(tuple(res.tolist()), dtype=torch.bool, device=c.device)
    grid[c[:, 0], c[:, 1], c[:, 2]] = True
    return grid.numpy() if is_np else grid


def fill_voxels(coords, resolution):
    """Solid voxels: the surface cells (M, 3) of a closed shape plus every cell they enclose.

    A cell is inside when no path of face-adjacent empty cells leads from it to the grid
    border (`scipy.ndimage.binary_fill_holes`). Surfaces from `voxelize_mesh` of a
    watertight mesh are closed in this sense, so nothing leaks. This is the "surface
    voxels, then filled" volume of the COM4D / PartCrafter IoU (`fourdlib.metrics.volume`).
    """
    from scipy.ndimage import binary_fill_holes

    is_np = isinstance(coords, np.ndarray)
    dev = torch.as_tensor(coords).device
    dense = voxels_to_dense(np.asarray(torch.as_tensor(coords).cpu()), resolution)
    solid = torch.from_numpy(np.argwhere(binary_fill_holes(dense)).astype(np.int64))  # sorted (i, j, k)
    return solid.numpy() if is_np else solid.to(dev)
