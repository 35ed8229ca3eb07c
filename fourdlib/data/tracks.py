"""Ground-truth 2D point tracks of a `Sequence4D`, for point-tracking evaluation (TAP-Vid style).

A query is a pixel (u, v) of frame t0 (view `view`). Its track in frame t is where the
SURFACE POINT seen at that pixel centre is in frame t, projected into frame t's camera:

    1. ray-cast frame t0's mesh through the pixel centre -> (triangle, barycentric) of the hit
       (the same ray casting `capture` made the depth with, so hits = pixels with depth > 0)
    2. the point at frame t = the same barycentric mix of frame t's vertices (the mesh has a
       fixed topology, so this is exact for rigid motion, skinning and any deformation alike:
       nothing is chained frame to frame and there is no drift)
    3. project with frame t's camera (continuous pixel coordinates; the query pixel's centre
       is (u + 0.5, v + 0.5), see `fourdlib.data.sequence`)
    4. visible in frame t: in front of the camera, inside the image, and the GT depth of the
       pixel it falls in agrees with the point's own camera z to within depth_tol x z (a
       depth test, as a data set with depth but no mesh would do it; a point that falls on a
       silhouette pixel which sees the background counts as hidden, which errs on the safe side).

Needs the GT mesh (mesh_vertices, mesh_faces: the synthetic generator and glTF loaders have
them) and the cameras and depth. A sequence with scene flow only (real data) has tracks for
its flow_ref frame's pixels alone (flow_pixels, flow_points + scene_flow); that case is not
handled here.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..geometry.cameras import project
from ..geometry.raycast import Raycaster
from .capture import points_on_mesh
from .sequence import FormatError, Sequence4D

__all__ = ["PointTracks", "point_tracks"]


class PointTracks(NamedTuple):
    """GT tracks of Q query pixels of one frame through F frames (one view)."""
    query_frame: int
    pixels: np.ndarray     # (Q, 2) int64 (u, v) = (column, row) of the query pixels in the query frame
    frames: np.ndarray     # (F,) int64 frame indices
    uv: np.ndarray         # (F, Q, 2) float64 continuous pixel coordinates in each frame
    depth: np.ndarray      # (F, Q) float64 the point's camera z in each frame (metres)
    visible: np.ndarray    # (F, Q) bool: in front, inside the image and passing the depth test
    points: np.ndarray     # (F, Q, 3) float64 world positions (metres)
    instance: np.ndarray   # (Q,) int16 object index of the surface each query sees


def point_tracks(seq: Sequence4D, query_frame: int, pixels=None, frames=None, *, view: int = 0,
                 depth_tol: float = 0.02) -> PointTracks:
    """GT tracks of pixels of frame `query_frame` (see the module docstring).

    pixels: (Q, 2) int (u, v) = (column, row); default every pixel of the query frame with
      depth (what the camera sees there), in row-major order. A pixel that sees nothing has
      no track and is refused.
    frames: (F,) frame indices to follow them to; default all frames.
    depth_tol: relative depth agreement of the visibility test.
    """
    missing = [f for f in ("mesh_vertices", "mesh_faces", "depth", "intrinsics", "cam_to_world")
               if getattr(seq, f) is None]
    if missing:
        raise FormatError(f"point_tracks needs the GT mesh, depth and cameras; {seq.name} lacks {missing}")
    T, V, H, W = seq.depth.shape
    if not (isinstance(query_frame, (int, np.integer)) and 0 <= query_frame < T):
        raise ValueError(f"point_tracks: query_frame {query_frame!r} is not a frame of {seq.name} (0 ... {T - 1})")
    if not (isinstance(view, (int, np.integer)) and 0 <= view < V):
        raise ValueError(f"point_tracks: view {view!r} out of range (the sequence has {V} views)")
    if not depth_tol > 0:
        raise ValueError(f"point_tracks: depth_tol must be positive, got {depth_tol!r}")
    frames = np.arange(T) if frames is None else np.asarray(frames)
    if frames.ndim != 1 or frames.dtype.kind not in "iu" or ((frames < 0) | (frames >= T)).any():
        raise ValueError(f"point_tracks: frames must be a 1-D array of frame indices in 0 ... {T - 1}, got {frames}")
    t0, K, c2w = int(query_frame), seq.intrinsics[:, view], seq.cam_to_world[:, view]

    hits = Raycaster(seq.mesh_vertices[t0], seq.mesh_faces).cast_view(K[t0], c2w[t0], H, W)  # as capture did
    if pixels is None:
        rows, cols = np.nonzero(hits.hit)
        pixels = np.stack([cols, rows], 1)
    pixels = np.asarray(pixels)
    if pixels.ndim != 2 or pixels.shape[1] != 2 or pixels.dtype.kind not in "iu":
        raise ValueError(f"point_tracks: pixels must be (Q, 2) integer (u, v), got {pixels.dtype} {pixels.shape}")
    pixels = pixels.astype(np.int64)
    outside = (pixels[:, 0] < 0) | (pixels[:, 0] >= W) | (pixels[:, 1] < 0) | (pixels[:, 1] >= H)
    if outside.any():
        raise ValueError(f"point_tracks: query pixel {pixels[outside][0].tolist()} is outside the {W} x {H} image")
    face = hits.face[pixels[:, 1], pixels[:, 0]]
    if (face < 0).any():
        raise ValueError(f"point_tracks: query pixel {pixels[face < 0][0].tolist()} of frame {t0} sees nothing "
                         "(no surface, depth 0): it has no track")
    bary = hits.bary[pixels[:, 1], pixels[:, 0]].astype(np.float64)

    points = points_on_mesh(seq.mesh_vertices[frames].astype(np.float64), seq.mesh_faces, face, bary)  # (F, Q, 3)
    uv, z = project(points, K[frames].astype(np.float64), c2w[frames].astype(np.float64))           # (F, Q, 2), (F, Q)
    inside = (z > 1e-6) & (uv[..., 0] >= 0) & (uv[..., 0] < W) & (uv[..., 1] >= 0) & (uv[..., 1] < H)
    col = np.clip(np.floor(uv[..., 0]), 0, W - 1).astype(np.int64)
    row = np.clip(np.floor(uv[..., 1]), 0, H - 1).astype(np.int64)
    seen = seq.depth[frames[:, None], view, row, col]                                 # (F, Q) GT depth there
    visible = inside & (seen > 0) & (np.abs(seen - z) <= depth_tol * z)
    instance = (seq.mesh_instance[face] if seq.mesh_instance is not None else np.zeros(len(face))).astype(np.int16)
    return PointTracks(t0, pixels, frames.astype(np.int64), uv, z, visible, points, instance)
