"""Pinhole cameras: projection, unprojection, rays, Plücker coordinates, look-at poses.

Conventions are those of `fourdlib.data.sequence` (OpenCV camera axes, camera-to-world
poses, z-depth in metres, pixel centres at i + 0.5). Every function takes torch
tensors or numpy arrays with any leading batch dims and returns the same kind it was
given, so the data code (numpy) and the models (torch, CUDA) share one implementation.
"""
from __future__ import annotations

import numpy as np
import torch


def _to_torch(*xs):
    is_np = any(isinstance(x, np.ndarray) for x in xs)
    ts = [None if x is None else torch.as_tensor(
        x.copy() if isinstance(x, np.ndarray) and not x.flags.writeable else x) for x in xs]
    return is_np, ts


def _back(is_np, *ts):
    out = tuple(t.numpy() if is_np and isinstance(t, torch.Tensor) else t for t in ts)
    return out if len(out) > 1 else out[0]


def transform_points(T, x):
    """Apply 4x4 rigid transforms T (..., 4, 4) to points x (..., N, 3)."""
    is_np, (T, x) = _to_torch(T, x)
    T = T.to(x.dtype)
    return _back(is_np, x @ T[..., :3, :3].transpose(-1, -2) + T[..., None, :3, 3])


def invert_rigid(T):
    """Inverse of rigid 4x4 transforms (..., 4, 4) without a general matrix inverse."""
    is_np, (T,) = _to_torch(T)
    R, t = T[..., :3, :3], T[..., :3, 3:]
    out = torch.zeros_like(T)
    out[..., :3, :3] = R.transpose(-1, -2)
    out[..., :3, 3:] = -R.transpose(-1, -2) @ t
    out[..., 3, 3] = 1
    return _back(is_np, out)


def pixel_centers(H: int, W: int, dtype=torch.float32, device=None):
    """(H, W, 2) pixel-centre coordinates (u, v) = (col + 0.5, row + 0.5)."""
    v, u = torch.meshgrid(torch.arange(H, dtype=dtype, device=device) + 0.5,
                          torch.arange(W, dtype=dtype, device=device) + 0.5, indexing="ij")
    return torch.stack([u, v], -1)


def unproject_depth(depth, K, cam_to_world=None):
    """Back-project a z-depth map to a point map.

    depth (..., H, W) metres, K (..., 3, 3), cam_to_world (..., 4, 4) or None (camera frame).
    Returns points (..., H, W, 3); pixels with depth 0 land on the camera centre, so mask them.
    """
    is_np, (depth, K, c2w) = _to_torch(depth, K, cam_to_world)
    depth = depth.float() if not depth.is_floating_point() else depth
    K = K.to(depth.dtype)
    H, W = depth.shape[-2:]
    uv = pixel_centers(H, W, depth.dtype, depth.device)                       # (H, W, 2)
    fx, fy = K[..., 0, 0, None, None], K[..., 1, 1, None, None]
    cx, cy = K[..., 0, 2, None, None], K[..., 1, 2, None, None]
    x = (uv[..., 0] - cx) / fx * depth
    y = (uv[..., 1] - cy) / fy * depth
    pts = torch.stack([x, y, depth], -1)                                      # (..., H, W, 3)
    if c2w is not None:
        c2w = c2w.to(depth.dtype)
        pts = torch.einsum("...ij,...hwj->...hwi", c2w[..., :3, :3], pts) + c2w[..., None, None, :3, 3]
    return _back(is_np, pts)


def depth_to_points(depth, K, cam_to_world=None, mask=None):
    """Valid pixels of ONE depth map (H, W) as a point cloud.

    Returns (points (N, 3), pixels (N, 2) int (u, v)). `mask` (H, W) bool restricts the pixels.
    """
    is_np, (depth,) = _to_torch(depth)
    if depth.ndim != 2:
        raise ValueError(f"depth_to_points: expected one (H, W) depth map, got shape {tuple(depth.shape)}")
    pts = unproject_depth(depth, torch.as_tensor(K), None if cam_to_world is None else torch.as_tensor(cam_to_world))
    keep = depth > 0
    if mask is not None:
        keep &= torch.as_tensor(mask, dtype=torch.bool)
    rows, cols = torch.nonzero(keep, as_tuple=True)
    return _back(is_np, pts[rows, cols], torch.stack([cols, rows], -1).int())


def project(points, K, cam_to_world=None):
    """Project world points (..., N, 3) into a camera.

    Returns (uv (..., N, 2) continuous pixel coords, z (..., N) depth in the camera);
    points behind the camera have z <= 0 and meaningless uv.
    """
    is_np, (points, K, c2w) = _to_torch(points, K, cam_to_world)
    K = K.to(points.dtype)
    if c2w is not None:
        points = transform_points(invert_rigid(c2w.to(points.dtype)), points)
    z = points[..., 2]
    uv1 = points @ K.transpose(-1, -2)
    uv = uv1[..., :2] / z.clamp_min(1e-9)[..., None]
    return _back(is_np, uv, z)


def camera_rays(K, cam_to_world, H: int, W: int):
    """World-space rays through every pixel centre.

    K (..., 3, 3), cam_to_world (..., 4, 4). Returns origins (..., H, W, 3) and unit
    directions (..., H, W, 3). A ray's z-depth d is reached at distance d / (dir · optical axis).
    """
    is_np, (K, c2w) = _to_torch(K, cam_to_world)
    ones = torch.ones(K.shape[:-2] + (H, W), dtype=K.dtype, device=K.device)
    pts = unproject_depth(ones, K, c2w)                                       # depth 1 points
    origins = c2w[..., None, None, :3, 3].to(K.dtype).expand_as(pts)
    dirs = torch.nn.functional.normalize(pts - origins, dim=-1)
    return _back(is_np, origins.contiguous(), dirs)


def plucker(origins, directions):
    """Plücker coordinates (d, o x d) of rays (..., 3) -> (..., 6); d is normalised first.

    The moment o x d does not depend on which point o of the line is used, which is why
    Plücker rays make a camera-independent per-pixel embedding.
    """
    is_np, (o, d) = _to_torch(origins, directions)
    d = torch.nn.functional.normalize(d, dim=-1)
    return _back(is_np, torch.cat([d, torch.cross(o, d, dim=-1)], -1))


def look_at(eye, target, up=(0.0, 0.0, 1.0)):
    """Camera-to-world pose (4, 4) of a camera at `eye` looking at `target` (OpenCV axes).

    Batched: eye and target (..., 3). `up` is the world up direction (+z by convention).
    """
    is_np, (eye, target, up) = _to_torch(eye, target, up)
    eye, target = eye.double(), target.double()
    up = up.to(eye.device).double().expand_as(eye)
    fwd = torch.nn.functional.normalize(target - eye, dim=-1)                 # camera +z
    right = torch.cross(fwd, up, dim=-1)                                      # camera +x
    bad = right.norm(dim=-1, keepdim=True) < 1e-8                             # looking straight up/down
    alt = torch.tensor([0.0, 1.0, 0.0], dtype=eye.dtype, device=eye.device).expand_as(eye)
    right = torch.where(bad, torch.cross(fwd, alt, dim=-1), right)
    right = torch.nn.functional.normalize(right, dim=-1)
    down = torch.cross(fwd, right, dim=-1)                                    # camera +y
    T = torch.zeros(eye.shape[:-1] + (4, 4), dtype=torch.float64, device=eye.device)
    T[..., :3, 0], T[..., :3, 1], T[..., :3, 2], T[..., :3, 3] = right, down, fwd, eye
    T[..., 3, 3] = 1
    return _back(is_np, T.float())


def intrinsics_from_fov(fov_y_deg: float, H: int, W: int):
    """K (3, 3) float32 numpy for a pinhole camera with vertical field of view fov_y (degrees)."""
    f = 0.5 * H / np.tan(np.deg2rad(fov_y_deg) / 2)
    return np.array([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]], np.float32)


def quaternion_to_matrix(q, scalar_first: bool = True):
    """Unit quaternions (..., 4) -> rotation matrices (..., 3, 3); normalised first.

    scalar_first=True reads (w, x, y, z) (Kubric, k3d's Gaussians); False reads (x, y, z, w)
    (glTF). Numpy arrays stay numpy, in float64.
    """
    is_np, (q,) = _to_torch(q)
    q = q.double() if is_np else q
    q = torch.nn.functional.normalize(q, dim=-1)
    w, x, y, z = q.unbind(-1) if scalar_first else q[..., [3, 0, 1, 2]].unbind(-1)
    R = torch.stack([
        torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        torch.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        torch.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1)], -2)
    return _back(is_np, R)
