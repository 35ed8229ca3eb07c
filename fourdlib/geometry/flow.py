"""Scene flow in two frames of reference, radial (Doppler) velocity, rigid-object flow, and
the factored point map G = s · T · R · D.

Conventions are those of `fourdlib.data.sequence` (camera-to-world poses, OpenCV camera
axes, metres). A point x is seen at a reference time and at a later time t:

    allocentric flow   A = x_t - x_ref, both in the WORLD frame (what `Sequence4D.scene_flow`
                       holds; Any4D's world is the reference camera's frame).
    egocentric flow    E = W_t^-1 x_t - W_ref^-1 x_ref: the point in the camera of time t
                       minus the point in the camera of the reference time, i.e. the motion
                       the moving sensor sees (a static point has E != 0 when the camera moves).

with W_ref, W_t the cameras' camera-to-world poses. Each converts into the other exactly
given the reference points and the two poses:

    A = W_t (W_ref^-1 x_ref + E) - x_ref          E = W_t^-1 (x_ref + A) - W_ref^-1 x_ref

Doppler: a radar measures the radial velocity of a point, the rate at which its distance to
the sensor changes. Any4D simulates it "as the radial component of egocentric scene flow";
here, over one frame step dt, for a point p (camera coordinates at the earlier time) with
egocentric flow E over the step:

    doppler = (p / ||p||) · E / dt       (m/s; > 0 moving away from the sensor)

Every function takes torch tensors or numpy arrays with any leading batch dims and returns
the kind it was given (as `fourdlib.geometry.cameras`).
"""
from __future__ import annotations

import torch

from .cameras import _back, _to_torch, invert_rigid, transform_points

__all__ = ["allocentric_to_egocentric", "egocentric_to_allocentric", "doppler_velocity", "rigid_object_flow",
           "compose_points"]


def egocentric_to_allocentric(ego_flow, points_ref, cam_to_world_ref, cam_to_world_t):
    """Egocentric flow E (..., N, 3) of world points x_ref (..., N, 3) -> allocentric flow (..., N, 3).

    cam_to_world_ref / cam_to_world_t (..., 4, 4): the cameras at the reference time and at t.
    A = W_t (W_ref^-1 x_ref + E) - x_ref.
    """
    is_np, (E, x, Wr, Wt) = _to_torch(ego_flow, points_ref, cam_to_world_ref, cam_to_world_t)
    x_cam_t = transform_points(invert_rigid(Wr), x) + E                  # the point at t, camera t's frame
    return _back(is_np, transform_points(Wt, x_cam_t) - x)


def allocentric_to_egocentric(allo_flow, points_ref, cam_to_world_ref, cam_to_world_t):
    """Allocentric flow A (..., N, 3) of world points x_ref (..., N, 3) -> egocentric flow (..., N, 3).

    E = W_t^-1 (x_ref + A) - W_ref^-1 x_ref (the inverse of `egocentric_to_allocentric`).
    """
    is_np, (A, x, Wr, Wt) = _to_torch(allo_flow, points_ref, cam_to_world_ref, cam_to_world_t)
    return _back(is_np, transform_points(invert_rigid(Wt), x + A) - transform_points(invert_rigid(Wr), x))


def doppler_velocity(points_cam, ego_flow, dt):
    """Radial velocity (..., N) of points p (..., N, 3) in the sensor's camera frame whose
    egocentric flow over a step of dt seconds is E (..., N, 3): (p / ||p||) · E / dt.

    dt: a positive number or a tensor broadcastable to (..., N). A point at the camera
    centre (||p|| = 0, e.g. a pixel without depth) gets 0.
    """
    is_np, (p, E, dt) = _to_torch(points_cam, ego_flow, dt)
    dt = dt.to(p.dtype)
    if bool((dt <= 0).any()):
        raise ValueError("doppler_velocity: dt must be positive (seconds between the two frames)")
    r = p.norm(dim=-1)
    radial = (p * E).sum(-1) / r.clamp_min(1e-12)
    return _back(is_np, torch.where(r > 0, radial / dt, torch.zeros_like(radial)))


def rigid_object_flow(points, instance, object_poses_ref, object_poses_t):
    """Allocentric flow (..., N, 3) of world points (..., N, 3) that ride on rigid objects.

    instance (..., N) int: the object index of each point, -1 for none (flow 0).
    object_poses_ref / object_poses_t (K, 4, 4): object-to-world poses at the two times.
    Point x on object k moves to P_k(t) P_k(ref)^-1 x: exact for rigid objects only (a
    deforming creature's root pose does not move its limbs).
    """
    is_np, (x, inst, Pr, Pt) = _to_torch(points, instance, object_poses_ref, object_poses_t)
    inst = inst.long()
    if Pr.shape != Pt.shape or Pr.dim() != 3 or Pr.shape[-2:] != (4, 4):
        raise ValueError(f"rigid_object_flow: object poses must both be (K, 4, 4), got {tuple(Pr.shape)} "
                         f"and {tuple(Pt.shape)}")
    K = Pr.shape[0]
    if bool((inst >= K).any()) or bool((inst < -1).any()):
        raise ValueError(f"rigid_object_flow: instance indices must lie in [-1, {K - 1}]")
    motion = (Pt.to(x.dtype) @ invert_rigid(Pr.to(x.dtype)))             # (K, 4, 4): ref -> t, per object
    M = motion[inst.clamp_min(0)]                                         # (..., N, 4, 4)
    moved = (M[..., :3, :3] @ x[..., None])[..., 0] + M[..., :3, 3]
    return _back(is_np, torch.where((inst >= 0)[..., None], moved - x, torch.zeros_like(x)))


def compose_points(scale, cam_to_world, ray_dirs, ray_depth):
    """The factored point map G = s · T · R · D (Any4D Eq. 2) in the world frame.

    scale (...,) metric scale s (a number or one per sample); cam_to_world (..., 4, 4) the
    pose T in the scale-normalised world; ray_dirs (..., H, W, 3) unit ray directions R in the
    camera frame; ray_depth (..., H, W) depth D ALONG each ray (not z-depth), scale-normalised.
    Returns (..., H, W, 3): s * (T's rotation (R D) + T's translation).
    """
    is_np, (s, T, R, D) = _to_torch(scale, cam_to_world, ray_dirs, ray_depth)
    local = R * D[..., None]                                              # (..., H, W, 3) camera frame
    H, W = local.shape[-3:-1]
    world = transform_points(T, local.reshape(*local.shape[:-3], H * W, 3)).reshape(local.shape)
    s = s.to(world.dtype)
    return _back(is_np, s.reshape(*s.shape, *([1] * (world.dim() - s.dim()))) * world)
