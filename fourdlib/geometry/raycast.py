"""CPU ray casting of triangle meshes into depth / instance / face-id images.

Used by the synthetic generator and by the real-data loaders that render partial views
of an animated mesh, so that both produce partial clouds the same way. Backend: trimesh
with Embree (`embreex`), about 30 ms for a 256x256 view of 55k triangles
(`../shared/dependency-notes.md`). Not differentiable: the course's differentiable
renderers live in `fourdlib.render`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from .cameras import camera_rays


@dataclass
class RayHits:
    """Result of `cast_view` for one (H, W) image."""

    depth: np.ndarray      # (H, W) float32 z-depth in metres, 0 = no hit
    face: np.ndarray       # (H, W) int64 hit triangle, -1 = no hit
    bary: np.ndarray       # (H, W, 3) float32 barycentric coords of the hit in its triangle
    points: np.ndarray     # (H, W, 3) float32 world hit points (0 where no hit)

    @property
    def hit(self) -> np.ndarray:
        return self.face >= 0


def _intersector(vertices, faces):
    mesh = trimesh.Trimesh(np.asarray(vertices, np.float64), np.asarray(faces), process=False)
    try:
        from trimesh.ray.ray_pyembree import RayMeshIntersector
        return mesh, RayMeshIntersector(mesh)
    except Exception:  # Embree missing: trimesh's pure-numpy fallback (slow, same answers)
        return mesh, trimesh.ray.ray_triangle.RayMeshIntersector(mesh)


def cast_rays(vertices, faces, origins, directions):
    """First hit of each ray on a triangle mesh.

    vertices (Nv, 3), faces (F, 3), origins / directions (R, 3) world (directions need not
    be unit). Returns (face (R,) int64 with -1 for a miss, distance along the unit ray (R,),
    barycentric coords (R, 3), hit points (R, 3)).
    """
    origins = np.asarray(origins, np.float64).reshape(-1, 3)
    directions = np.asarray(directions, np.float64).reshape(-1, 3)
    directions = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    R = len(origins)
    face = np.full(R, -1, np.int64)
    dist = np.zeros(R, np.float64)
    bary = np.zeros((R, 3), np.float64)
    pts = np.zeros((R, 3), np.float64)
    if len(faces) == 0 or R == 0:
        return face, dist, bary, pts
    mesh, inter = _intersector(vertices, faces)
    tri, ray, loc = inter.intersects_id(origins, directions, multiple_hits=False, return_locations=True)
    if len(tri):
        face[ray], pts[ray] = tri, loc
        dist[ray] = np.einsum("ij,ij->i", loc - origins[ray], directions[ray])
        bary[ray] = trimesh.triangles.points_to_barycentric(mesh.triangles[tri], loc)
    return face, dist, bary, pts


def cast_view(vertices, faces, K, cam_to_world, H: int, W: int) -> RayHits:
    """Ray-cast one pinhole view (conventions of `fourdlib.data.sequence`)."""
    origins, dirs = camera_rays(np.asarray(K, np.float32), np.asarray(cam_to_world, np.float32), H, W)
    face, dist, bary, pts = cast_rays(vertices, faces, origins.reshape(-1, 3), dirs.reshape(-1, 3))
    axis = np.asarray(cam_to_world, np.float64)[:3, 2]                  # camera +z in world
    zdepth = dist * (dirs.reshape(-1, 3).astype(np.float64) @ axis)     # distance -> z-depth
    zdepth[face < 0] = 0
    return RayHits(depth=zdepth.reshape(H, W).astype(np.float32), face=face.reshape(H, W),
                   bary=bary.reshape(H, W, 3).astype(np.float32),
                   points=pts.reshape(H, W, 3).astype(np.float32))


def points_visible(points, vertices, faces, K, cam_to_world, H: int, W: int, tol: float = 1e-3):
    """Which world points (N, 3) a camera sees: in front, inside the image, not occluded.

    A point counts as visible when the first mesh hit along the ray from the camera centre
    towards it is no closer than the point itself minus `tol` metres (the point lies on
    the mesh; `tol` absorbs float error and grazing hits).
    """
    from .cameras import project

    points = np.asarray(points, np.float64)
    uv, z = project(points, np.asarray(K, np.float64), np.asarray(cam_to_world, np.float64))
    inside = (z > 1e-6) & (uv[:, 0] >= 0) & (uv[:, 0] < W) & (uv[:, 1] >= 0) & (uv[:, 1] < H)
    vis = np.zeros(len(points), bool)
    idx = np.nonzero(inside)[0]
    if len(idx) == 0:
        return vis
    centre = np.asarray(cam_to_world, np.float64)[:3, 3]
    d = points[idx] - centre
    dist = np.linalg.norm(d, axis=1)
    face, hit_dist, _, _ = cast_rays(vertices, faces, np.broadcast_to(centre, d.shape), d)
    vis[idx] = (face < 0) | (hit_dist >= dist - tol)
    return vis
