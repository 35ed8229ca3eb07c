"""Film an animated triangle mesh with depth cameras: the one place a `Sequence4D` is
rendered from geometry.

Both the synthetic generator and the glTF loader call `capture`, so synthetic and real
animations give partial clouds made the same way: ray-cast RGB-D per view, back-project
the depth into an unordered partial cloud, and keep, for evaluation only, complete surface
samples, their per-frame visibility and the allocentric scene flow.

Correspondence comes from the mesh: a surface point is a (triangle, barycentric) pair, so
its position in any frame is the same barycentric mix of that frame's vertices. That is
how GT samples are tracked across frames and how scene flow is computed exactly.
"""
from __future__ import annotations

import numpy as np

from ..geometry.cameras import depth_to_points
from ..geometry.raycast import Raycaster
from .sequence import FormatError, Sequence4D


def sample_surface(vertices, faces, n: int, rng: np.random.Generator, weight=None):
    """Area-weighted random points on a mesh: returns (face (n,), bary (n, 3)).

    `weight` (F,) >= 0 scales each face's sampling density (0: never sampled).
    """
    tri = vertices[faces]                                                 # (F, 3, 3)
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    if weight is not None:
        weight = np.asarray(weight, np.float64)
        if weight.shape != area.shape or not (weight >= 0).all():
            raise FormatError(f"surface_face_weight: expected {area.shape} non-negative values, "
                              f"got shape {weight.shape}")
        area = area * weight
    if not area.sum() > 0:
        raise FormatError("mesh has zero surface area")
    face = rng.choice(len(faces), size=n, p=area / area.sum())
    r1, r2 = rng.random(n), rng.random(n)
    s = np.sqrt(r1)                                                       # uniform on a triangle
    bary = np.stack([1 - s, s * (1 - r2), s * r2], 1)
    return face, bary


def points_on_mesh(vertices, faces, face, bary):
    """Positions of (face, bary) surface points. vertices (..., Nv, 3) -> (..., n, 3)."""
    corners = vertices[..., faces[face], :]                               # (..., n, 3 corners, 3)
    return np.einsum("...ncd,nc->...nd", corners, bary)


def face_normals(vertices, faces):
    """Unit normals of every face, (..., F, 3), right-handed winding (counter-clockwise = out)."""
    tri = vertices[..., faces, :]                                         # (..., F, 3, 3)
    n = np.cross(tri[..., 1, :] - tri[..., 0, :], tri[..., 2, :] - tri[..., 0, :])
    return n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)


def capture(vertices, faces, intrinsics, cam_to_world, image_size, *, times=None,
            face_instance=None, face_colors=None, object_names=None, object_poses=None,
            object_dynamic=None, object_background=None, n_surface: int = 4096,
            surface_face_weight=None, flow_ref: int = 0, depth_noise: float = 0.0, seed: int = 0,
            meta=None) -> Sequence4D:
    """Render an animated mesh into a `Sequence4D`.

    vertices      (T, Nv, 3) world positions per frame (fixed topology), metres.
    faces         (F, 3) int triangles, counter-clockwise seen from outside.
    intrinsics    (3, 3), (V, 3, 3) or (T, V, 3, 3) pinhole K.
    cam_to_world  (T, V, 4, 4) camera poses per frame and view (a moving camera moves here).
    image_size    (H, W).
    face_instance (F,) object index per face (default: one object, index 0).
    face_colors   (F, 3) uint8 albedo (default grey); RGB is Lambert-shaded by a headlight.
    object_*      per-object metadata, see `Sequence4D` (defaults: one dynamic object).
    n_surface     GT surface samples, drawn once (area-weighted on frame `flow_ref`) and
                  tracked through every frame.
    surface_face_weight (F,) relative sampling density of the GT samples per face; 0 keeps
                  samples off faces that are not outer surface (e.g. buried inside another part).
    depth_noise   std of Gaussian noise (metres) added to valid depth, like a real sensor.
    """
    V_t = np.asarray(vertices, np.float64)
    faces = np.asarray(faces, np.int64)
    if V_t.ndim != 3 or V_t.shape[-1] != 3:
        raise FormatError(f"vertices: expected (T, Nv, 3), got {V_t.shape}")
    if not np.isfinite(V_t).all():
        raise FormatError("vertices: NaN or inf in the animated mesh")
    T, F = len(V_t), len(faces)
    H, W = image_size
    c2w = np.asarray(cam_to_world, np.float32)
    if c2w.ndim != 4 or c2w.shape[0] != T or c2w.shape[2:] != (4, 4):
        raise FormatError(f"cam_to_world: expected (T={T}, V, 4, 4), got {c2w.shape}")
    nV = c2w.shape[1]
    K = np.broadcast_to(np.asarray(intrinsics, np.float32), (T, nV, 3, 3)).copy()
    rng = np.random.default_rng(seed)
    face_instance = np.zeros(F, np.int16) if face_instance is None else np.asarray(face_instance, np.int16)
    albedo = np.full((F, 3), 180, np.uint8) if face_colors is None else np.asarray(face_colors, np.uint8)
    if object_names is None:
        object_names = [f"object{k}" for k in range(int(face_instance.max()) + 1)]
    nK = len(object_names)
    if object_dynamic is None:
        object_dynamic = np.ones(nK, bool)
    if object_background is None:
        object_background = np.zeros(nK, bool)
    if times is None:
        times = np.arange(T) / 24.0

    # GT surface samples, fixed on the mesh so that row i is one material point.
    s_face, s_bary = sample_surface(V_t[flow_ref], faces, n_surface, rng, surface_face_weight)
    surf = points_on_mesh(V_t, faces, s_face, s_bary)                     # (T, N, 3)
    surf_n = face_normals(V_t, faces)[:, s_face]                          # (T, N, 3)

    rgb = np.zeros((T, nV, H, W, 3), np.uint8)
    depth = np.zeros((T, nV, H, W), np.float32)
    masks = np.zeros((T, nV, H, W), np.int16)
    visible = np.zeros((T, n_surface), bool)
    partial, partial_rgb, partial_inst = [], [], []
    flow_face = flow_bary = flow_pix = None
    for t in range(T):
        caster = Raycaster(V_t[t], faces)                                 # one BVH per frame
        fn = face_normals(V_t[t], faces)
        pts_t, col_t, ins_t = [], [], []
        for v in range(nV):
            hits = caster.cast_view(K[t, v], c2w[t, v], H, W)
            hit = hits.hit
            d = hits.depth
            if depth_noise > 0:
                d = np.where(hit, np.maximum(d + rng.normal(0, depth_noise, d.shape), 1e-3), 0)
            depth[t, v] = d
            f = hits.face[hit]
            masks[t, v][hit] = face_instance[f] + 1
            view_dir = c2w[t, v, :3, 2]                                   # headlight shading
            shade = 0.35 + 0.65 * np.abs(fn[f] @ view_dir)
            rgb[t, v][hit] = np.clip(albedo[f] * shade[:, None], 0, 255).astype(np.uint8)
            p, pix = depth_to_points(depth[t, v], K[t, v], c2w[t, v])
            pts_t.append(p)
            col_t.append(rgb[t, v][pix[:, 1], pix[:, 0]])
            ins_t.append(masks[t, v][pix[:, 1], pix[:, 0]] - 1)
            visible[t] |= caster.points_visible(surf[t], K[t, v], c2w[t, v], H, W)
            if t == flow_ref and v == 0:
                flow_face, flow_bary = hits.face[hit], hits.bary[hit].astype(np.float64)
                rows, cols = np.nonzero(hit)
                flow_pix = np.stack([cols, rows], 1)
        partial.append(np.concatenate(pts_t))
        partial_rgb.append(np.concatenate(col_t))
        partial_inst.append(np.concatenate(ins_t))
        if len(partial[-1]) == 0:
            raise FormatError(f"capture: frame {t} sees nothing (no camera ray hits the mesh); "
                              f"check the camera poses")

    # Allocentric scene flow of frame flow_ref's observed points (view 0), exact from the mesh.
    track = points_on_mesh(V_t, faces, flow_face, flow_bary)              # (T, P, 3)
    flow = track - track[flow_ref]
    return Sequence4D(
        times=times, surface_points=surf, surface_normals=surf_n,
        surface_instance=face_instance[s_face], surface_visible=visible,
        mesh_vertices=V_t, mesh_faces=faces, mesh_instance=face_instance,
        rgb=rgb, depth=depth, masks=masks, intrinsics=K, cam_to_world=c2w,
        object_names=object_names, object_poses=object_poses, object_dynamic=object_dynamic,
        object_background=object_background, partial_points=partial, partial_colors=partial_rgb,
        partial_instance=partial_inst, flow_ref=flow_ref, flow_points=track[flow_ref],
        flow_pixels=flow_pix, scene_flow=flow, flow_valid=np.ones(flow.shape[:2], bool),
        meta=dict(meta or {}))

