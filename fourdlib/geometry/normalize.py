"""Median-based normalisation of a point-cloud sequence (DynaTok: "Inputs/targets are
normalized using median-based scales"; the paper gives no formula, this is ours).

    center = per-axis median of the input points            (3,)
    scale  = median distance of the input points to center  ()
    x_normalised = (x - center) / scale

Choices, and why:
- ONE center and scale per sequence, pooled over all input frames (or taken from one
  reference frame): normalising each frame on its own would remove the very motion the
  model must predict (a walking person would stay put).
- Computed from the partial INPUT only and then applied, with the same numbers, to the
  targets: at test time there is no ground truth to normalise with, so a model trained
  with GT-derived scales would see inputs it never met in training.
- Medians, not mean/max: a depth sensor's flying pixels and far background points are a
  few percent of a cloud but can sit metres away. They drag a mean and dominate a max
  (bounding box) scale; the medians move by about the outliers' share of the points,
  whatever their distance (breakdown point 50%).
- After normalisation half of the input points lie within distance 1 of the origin.
  A compact object then lies mostly inside [-1, 1]^3; elongated shapes or scenes reach
  roughly +-2..3, so pick voxel bounds from the normalised data, not blindly.
- Equivariant: normalising a * x + b (a > 0) gives the same output as x.

Displacements (scene flow, velocities) have no position: transform them as `v / scale`.
"""
from __future__ import annotations

import numpy as np
import torch


def _frames(frames):
    """-> (list of (N_t, 3) tensors, is_numpy, how to rebuild the caller's container)."""
    if isinstance(frames, (list, tuple)):
        if len(frames) == 0:
            raise ValueError("normalize: got an empty list of frames")
        is_np = isinstance(frames[0], np.ndarray)
        ts = [torch.as_tensor(f) for f in frames]
        kind = "list"
    else:
        is_np = isinstance(frames, np.ndarray)
        t = torch.as_tensor(frames)
        if t.ndim == 2:
            ts, kind = [t], "single"
        elif t.ndim == 3:
            ts, kind = list(t.unbind(0)), "stacked"
        else:
            raise ValueError(f"normalize: points must be (N, 3), (T, N, 3) or a list of (N_t, 3), got shape {tuple(t.shape)}")
    for i, t in enumerate(ts):
        if t.ndim != 2 or t.shape[-1] != 3:
            raise ValueError(f"normalize: frame {i} must be (N, 3), got shape {tuple(t.shape)}")
    return ts, is_np, kind


def _rebuild(ts, is_np, kind):
    ts = [t.numpy() if is_np else t for t in ts]
    if kind == "single":
        return ts[0]
    if kind == "stacked":
        return np.stack(ts) if is_np else torch.stack(ts)
    return ts


def _median(x: torch.Tensor) -> torch.Tensor:
    """Median along dim 0, averaging the two middle values for an even count (like numpy)."""
    s = x.sort(0).values
    m = s.shape[0]
    return 0.5 * (s[(m - 1) // 2] + s[m // 2])


def median_center_scale(frames, ref_frame: int | None = None):
    """(center (3,), scale ()) of a sequence's INPUT points, same kind as given.

    frames     (N, 3), (T, N, 3), or a list of T (N_t, 3) clouds (numpy or torch).
    ref_frame  None: pool the points of all frames; an int: that frame only.
    """
    ts, is_np, _ = _frames(frames)
    if ref_frame is not None:
        if not -len(ts) <= ref_frame < len(ts):
            raise ValueError(f"median_center_scale: ref_frame={ref_frame} but there are {len(ts)} frames")
        ts = [ts[ref_frame]]
    dtype = ts[0].dtype if ts[0].is_floating_point() else torch.float32
    pts = torch.cat([t.to(torch.float64 if t.device.type == "cpu" else torch.float32) for t in ts])  # (sum N_t, 3)
    if len(pts) == 0:
        raise ValueError("median_center_scale: the input frames hold no points")
    if not bool(torch.isfinite(pts).all()):
        raise ValueError("median_center_scale: points contain NaN or inf")
    center = _median(pts)                                                      # (3,)
    scale = _median((pts - center).norm(dim=-1))                               # ()
    if not bool(scale > 0):
        raise ValueError("median_center_scale: scale is 0 (half the points or more coincide with the centre)")
    center, scale = center.to(dtype), scale.to(dtype)
    return (center.numpy(), scale.numpy()) if is_np else (center, scale)


def normalize_points(frames, center=None, scale=None, ref_frame: int | None = None):
    """(x - center) / scale for every frame; returns (normalised, center, scale).

    With center/scale None they are computed from `frames` (`median_center_scale`); pass
    the numbers of the INPUT to normalise the targets the same way:

        inp_n, c, s = normalize_points(partial_points)        # from the partial input
        gt_n, _, _ = normalize_points(gt_points, c, s)        # never from the GT
        pred_world = denormalize_points(pred_n, c, s)
    """
    if (center is None) != (scale is None):
        raise ValueError("normalize_points: give both center and scale, or neither")
    if center is None:
        center, scale = median_center_scale(frames, ref_frame)
    ts, is_np, kind = _frames(frames)
    c, s = torch.as_tensor(center), torch.as_tensor(scale)
    if c.shape != (3,) or s.numel() != 1:
        raise ValueError(f"normalize_points: center must be (3,) and scale a number, got {tuple(c.shape)} and {tuple(s.shape)}")
    if not bool(s > 0):
        raise ValueError(f"normalize_points: scale must be > 0, got {float(s)}")
    out = [((t - c.to(t)) / s.to(t)) for t in ts]
    return _rebuild(out, is_np, kind), center, scale


def denormalize_points(frames, center, scale):
    """Inverse of `normalize_points`: x * scale + center, same containers and kinds."""
    ts, is_np, kind = _frames(frames)
    c, s = torch.as_tensor(center), torch.as_tensor(scale)
    return _rebuild([t * s.to(t) + c.to(t) for t in ts], is_np, kind)
