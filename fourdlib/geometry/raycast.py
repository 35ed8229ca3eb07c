"""CPU ray casting of triangle meshes into depth / instance / face-id images.

Used by the synthetic generator and by the real-data loaders that render partial views
of an animated mesh, so that both produce partial clouds the same way. Backend: trimesh
with Embree (`embreex`), the fastest small install measured (`../shared/dependency-notes.md`).
Not differentiable.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from .cameras import camera_rays, project


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


class Raycaster:
    """Ray casting against one triangle mesh; builds the Embree BVH once per mesh.

    A deforming mesh needs one `Raycaster` per frame; reuse it for every view and for the
    visibility queries of that frame.
    """

    def __init__(self, vertices, faces):
        faces = np.asarray(faces)
        if faces.ndim != 2 or faces.shape[1] != 3:
            raise ValueError(f"Raycaster: faces must have shape (F, 3), got {faces.shape}")
        vertices = np.asarray(vertices, np.float64)
        if vertices.ndim != 2 or vertices.shape[1] != 3 or not np.isfinite(vertices).all():
            raise ValueError(f"Raycaster: vertices must be finite with shape (Nv, 3), got {vertices.shape}")
        self.mesh = trimesh.Trimesh(vertices, faces, process=False)
        try:
            from trimesh.ray.ray_pyembree import RayMeshIntersector
            self._inter = RayMeshIntersector(self.mesh)
        except Exception:  # Embree missing: trimesh's pure-numpy fallback (slow, same answers)
            self._inter = trimesh.ray.ray_triangle.RayMeshIntersector(self.mesh)

    def cast_rays(self, origins, directions):
        """First hit of each ray. origins / directions (R, 3) world (directions need not be unit).

        Returns (face (R,) int64 with -1 for a miss, distance along the unit ray (R,),
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
        if len(self.mesh.faces) == 0 or R == 0:
            return face, dist, bary, pts
        tri, ray, loc = self._inter.intersects_id(origins, directions, multiple_hits=False,
                                                  return_locations=True)
        if len(tri):
            face[ray], pts[ray] = tri, loc
            dist[ray] = np.einsum("ij,ij->i", loc - origins[ray], directions[ray])
            bary[ray] = trimesh.triangles.points_to_barycentric(self.mesh.triangles[tri], loc)
        return face, dist, bary, pts

    def cast_view(self, K, cam_to_world, H: int, W: int) -> RayHits:
        """Ray-cast one pinhole view (conventions of `fourdlib.data.sequence`)."""
        origins, dirs = camera_rays(np.asarray(K, np.float32), np.asarray(cam_to_world, np.float32), H, W)
        face, dist, bary, pts = self.cast_rays(origins.reshape(-1, 3), dirs.reshape(-1, 3))
        axis = np.asarray(cam_to_world, np.float64)[:3, 2]                  # camera +z in world
        zdepth = dist * (dirs.reshape(-1, 3).astype(np.float64) @ axis)     # distance -> z-depth
        zdepth[face < 0] = 0
        return RayHits(depth=zdepth.reshape(H, W).astype(np.float32), face=face.reshape(H, W),
                       bary=bary.reshape(H, W, 3).astype(np.float32),
                       points=pts.reshape(H, W, 3).astype(np.float32))

    def points_visible(self, points, K, cam_to_world, H: int, W: int, tol: float = 1e-3):
        """Which world points (N, 3) ON the mesh a camera sees: in front, inside the image,
        not occluded.

        A point counts as visible when the first mesh hit along the ray from the camera
        centre towards it is no closer than the point itself minus `tol` metres (`tol`
        absorbs float error and grazing hits).
        """
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
        face, hit_dist, _, _ = self.cast_rays(np.broadcast_to(centre, d.shape), d)
        vis[idx] = (face < 0) | (hit_dist >= dist - tol)
        return vis
