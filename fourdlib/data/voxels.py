"""Depth video -> dynamic coloured voxels: the Native 4D VAE's input (Sec. 3.1, fig. 3).

`sequence_voxels` turns the RGB-D views of a `Sequence4D` (synthetic or real) into the
occupied cells of ONE grid, fixed for the whole sequence so that a cell means the same
place in every frame, with the colour blended per voxel:

    method="mesh"    each view's depth -> `depth_to_mesh` (neighbouring pixels connected,
                     triangles stretched across depth edges dropped) -> the views' meshes
                     of a frame voxelised together (`voxelize_mesh`, exact, area-weighted
                     colour): the paper's pipeline, no holes between pixels;
    method="points"  back-project the valid pixels (`depth_to_points`) and voxelise the
                     points (`voxelize_points`, mean colour): the naive path of the paper's
                     fig. 3(a) / table-4 ablation, which leaves holes once a voxel is
                     smaller than the spacing of neighbouring pixels.

The result's `coords` (M, 4) = (t, i, j, k) sorted by t is already the layout of
`fourdlib.sparse.SparseTensor` (frame t as its sample b): `SequenceVoxels.to_sparse()`.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from ..geometry.cameras import depth_to_points
from ..geometry.depth_mesh import DEFAULT_MAX_EDGE_RATIO, depth_to_mesh
from ..geometry.voxelize import Voxels, grid_spec, voxelize_mesh, voxelize_points, voxels_to_points
from .sequence import Sequence4D

METHODS = ("mesh", "points")


class SequenceVoxels(NamedTuple):
    """Coloured voxels of every frame on one grid (numpy). Cell (i, j, k) covers
    origin + [i, i+1) x [j, j+1) x [k, k+1) times voxel_size."""

    coords: np.ndarray          # (M, 4) int64 (t, i, j, k), sorted by t then (i, j, k); no duplicates
    colors: np.ndarray | None   # (M, 3) float32 blended colour in [0, 1]; None when the sequence has no rgb
    counts: np.ndarray          # (M,) int64 mesh pieces / points that fell in each voxel
    origin: np.ndarray          # (3,) float64 world position of the grid's lowest corner
    voxel_size: np.ndarray      # (3,) float64 edge lengths of a cell (metres)
    resolution: np.ndarray      # (3,) int64 cells per axis
    num_frames: int             # T (a frame may have no voxels)

    @property
    def bounds(self) -> np.ndarray:
        """(2, 3) [[min xyz], [max xyz]] of the grid: `bounds=` for the voxelize functions."""
        return np.stack([self.origin, self.origin + self.voxel_size * self.resolution])

    def frame(self, t: int) -> Voxels:
        """Frame t as `Voxels(coords (M_t, 3), colors (M_t, 3) or None, counts (M_t,))`."""
        if not 0 <= t < self.num_frames:
            raise IndexError(f"frame {t} is not in [0, {self.num_frames})")
        rows = self.coords[:, 0] == t
        return Voxels(self.coords[rows, 1:], None if self.colors is None else self.colors[rows], self.counts[rows])

    def centers(self) -> np.ndarray:
        """(M, 3) float32 world positions of the voxel centres (row for row with coords)."""
        return voxels_to_points(self.coords[:, 1:], resolution=self.resolution, bounds=self.bounds)

    def to_sparse(self):
        """A `SparseTensor` with one sample per frame; feats are the colours (M, 3), or a
        column of ones (occupancy) without colours."""
        from ..sparse.tensor import SparseTensor

        feats = self.colors if self.colors is not None else np.ones((len(self.coords), 1), np.float32)
        return SparseTensor.from_coords(torch.from_numpy(self.coords), torch.from_numpy(feats),
                                        batch_size=self.num_frames)


def _views(seq: Sequence4D):
    """(t, v, depth (H, W), K, cam_to_world, rgb (H, W, 3) uint8 or None) for every view."""
    T, V = seq.depth.shape[:2]
    for t in range(T):
        for v in range(V):
            yield t, v, seq.depth[t, v], seq.intrinsics[t, v], seq.cam_to_world[t, v], \
                None if seq.rgb is None else seq.rgb[t, v]


def sequence_bounds(seq: Sequence4D, padding: float = 0.02) -> np.ndarray:
    """(2, 3) bounds of a CUBE holding every back-projected pixel of every frame and view:
    centred on their bounding box, side = its longest extent x (1 + 2 padding). A cube, so
    that `resolution` R gives cubic voxels; one box for all frames, so the grid is fixed."""
    if seq.depth is None:
        raise ValueError("sequence_bounds: the sequence has no depth")
    if not padding >= 0:
        raise ValueError(f"sequence_bounds: padding must be >= 0, got {padding!r}")
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    for _, _, d, K, c2w, _ in _views(seq):
        pts, _ = depth_to_points(d, K, c2w)                                    # (N, 3)
        if len(pts):
            lo, hi = np.minimum(lo, pts.min(0)), np.maximum(hi, pts.max(0))
    if not np.isfinite(lo).all():
        raise ValueError("sequence_bounds: no pixel of any frame has depth > 0")
    centre, side = (lo + hi) / 2, float((hi - lo).max()) * (1 + 2 * padding)
    side = max(side, 1e-3)                                                     # a single pixel still gets a box
    side += 1e-5 * (side + float(np.abs(centre).max()))                       # float32 rounding of the meshes
    return np.stack([centre - side / 2, centre + side / 2])


def _inside(x: np.ndarray, box: np.ndarray) -> np.ndarray:
    return ((x >= box[0]) & (x <= box[1])).all(-1)


def sequence_voxels(seq: Sequence4D, *, resolution: int = 64, bounds=None, method: str = "mesh",
                    max_edge_ratio: float = DEFAULT_MAX_EDGE_RATIO, padding: float = 0.02,
                    outside: str = "error") -> SequenceVoxels:
    """Per-frame coloured voxels of a sequence's depth video on one grid (module docstring).

    resolution  cells per axis (int, or 3 ints with explicit bounds).
    bounds      (2, 3) box of the grid, or None: `sequence_bounds(seq, padding)`, the cube
                around every frame's back-projected pixels (cubic voxels).
    method      "mesh" (depth -> mesh -> voxels, the paper) or "points" (the naive path).
    max_edge_ratio  the depth-edge cut of `depth_to_mesh` (mesh only).
    outside     "error" or "drop" for geometry outside explicit `bounds` ("drop" crops).

    Colours are the rgb / 255 blended per voxel (None if `seq.rgb` is None). A frame with
    no valid pixel (or nothing inside the bounds with outside="drop") has no rows.
    """
    fn = "sequence_voxels"
    if method not in METHODS:
        raise ValueError(f"{fn}: method must be one of {METHODS}, got {method!r}")
    if outside not in ("error", "drop"):
        raise ValueError(f"{fn}: outside must be 'error' or 'drop', got {outside!r}")
    if seq.depth is None:
        raise ValueError(f"{fn}: the sequence has no depth video (seq.depth is None)")
    box = sequence_bounds(seq, padding) if bounds is None else np.asarray(bounds, np.float64)
    origin, size, res = grid_spec(resolution=resolution, bounds=box)           # validates both
    box = np.stack([origin.numpy(), (origin + size * res).numpy()])
    T = seq.num_frames
    grid = dict(resolution=res.numpy(), bounds=box, outside=outside)

    coords, colors, counts = [], [], []
    frames: dict[int, list] = {t: [] for t in range(T)}
    for t, _, d, K, c2w, rgb in _views(seq):
        if method == "mesh":
            v, f, c = depth_to_mesh(d, K, c2w, rgb, max_edge_ratio=max_edge_ratio)
            frames[t].append((v, f, c))
        else:
            p, pix = depth_to_points(d, K, c2w)                                # (N, 3), (N, 2) (u, v)
            c = None if rgb is None else rgb[pix[:, 1], pix[:, 0]].astype(np.float32) / 255
            frames[t].append((p, None, c))
    for t in range(T):
        if method == "mesh":
            v, f, c = _merge_meshes(frames[t])
            if outside == "drop" and len(f):  # faces wholly outside the box touch no cell
                tri = v[f]                                                     # (F, 3, 3)
                f = f[(tri.max(1) >= box[0]).all(-1) & (tri.min(1) <= box[1]).all(-1)]
            if len(f) == 0:
                continue
            vox = voxelize_mesh(v, f, vertex_colors=c, **grid)
        else:
            p = np.concatenate([x[0] for x in frames[t]])                     # (N, 3)
            c = None if seq.rgb is None else np.concatenate([x[2] for x in frames[t]])
            if outside == "drop":
                keep = _inside(p, box)
                p, c = p[keep], None if c is None else c[keep]
            if len(p) == 0:
                continue
            vox = voxelize_points(p, c, **grid)
        coords.append(np.concatenate([np.full((len(vox.coords), 1), t, np.int64), vox.coords], 1))
        colors.append(vox.colors)
        counts.append(vox.counts)
    has_col = seq.rgb is not None
    if coords:
        coords_a, counts_a = np.concatenate(coords), np.concatenate(counts)
        col = np.clip(np.concatenate(colors), 0, 1).astype(np.float32) if has_col else None
    else:
        coords_a, counts_a = np.zeros((0, 4), np.int64), np.zeros(0, np.int64)
        col = np.zeros((0, 3), np.float32) if has_col else None
    return SequenceVoxels(coords_a, col, counts_a, origin.numpy(), size.numpy(), res.numpy(), T)


def _merge_meshes(meshes):
    """One mesh (vertices (V, 3), faces (F, 3), colours (V, 3) or None) from several."""
    vs, fs, cs, n = [], [], [], 0
    for v, f, c in meshes:
        vs.append(v), fs.append(f + n), cs.append(c)
        n += len(v)
    col = None if any(c is None for c in cs) else np.concatenate(cs)
    return np.concatenate(vs), np.concatenate(fs), col
