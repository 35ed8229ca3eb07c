"""Farthest point sampling (FPS): k well-spread points out of a cloud.

FPS picks a start point, then repeatedly the point farthest from everything picked so
far. The picks cover the cloud evenly (unlike a random subset, which clumps), which is
why point-cloud encoders (DynaTok's 8192 -> 512 tokens, PointNet++) use it to choose
token centres.

The loop over the k picks is inherently sequential, but each step is one vectorised
distance update over all B x N points, so a batch costs about as many kernel launches as
one cloud (8192 -> 512 in well under 0.1 s on a laptop CPU, see
`benchmarks/bench_geometry.py`). Nothing in the loop reads a value back to the host
(no `.item()`), so on CUDA the k steps queue up without a sync.
"""
from __future__ import annotations

import numbers

import numpy as np
import torch


def _as_batch(points):
    points = torch.as_tensor(points)
    if points.ndim == 2:
        return points[None], True
    if points.ndim != 3:
        raise ValueError(f"farthest_point_sample: points must be (N, 3) or (B, N, 3), got shape {tuple(points.shape)}")
    return points, False


def farthest_point_sample(points, k: int, start=None, generator: torch.Generator | None = None,
                          lengths=None) -> torch.Tensor:
    """Indices of k farthest-point samples of each cloud.

    points   (B, N, D) or (N, D) tensor or array (D = 3 usually; any D works).
    k        number of samples, 1 <= k <= every cloud's length.
    start    index of the first pick: None -> 0 (deterministic), an int (same for every
             cloud), a (B,) tensor, or "random" (uniform among each cloud's valid points,
             drawn with `generator`).
    lengths  (B,) valid point counts for clouds padded to a common N: the points
             [lengths[b]:] of cloud b are padding and are never picked.
    Returns  (B, k) int64 indices (or (k,) for an (N, D) input), on points' device; a
             numpy input gives a numpy array.

    Ties are broken by the lowest index (`argmax` returns the first maximum). A cloud with
    fewer than k distinct points repeats points once every remaining distance is 0.
    """
    is_np = isinstance(points, np.ndarray)
    x, single = _as_batch(points)
    B, N, _ = x.shape
    dev = x.device
    if N == 0:
        raise ValueError("farthest_point_sample: the point cloud is empty")
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"farthest_point_sample: k must be a positive int, got {k!r}")
    k = int(k)
    if not x.is_floating_point():
        x = x.float()
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()  # distances in half precision tie far too often

    if lengths is None:
        lengths = torch.full((B,), N, dtype=torch.long, device=dev)
    else:
        lengths = torch.as_tensor(lengths, device=dev).long().reshape(-1)
        if lengths.shape[0] != B:
            raise ValueError(f"farthest_point_sample: lengths has {lengths.shape[0]} entries for a batch of {B}")
    valid = torch.arange(N, device=dev)[None] < lengths[:, None]                # (B, N)
    # One host sync for all the checks, before the loop (none inside it).
    min_len, max_len = int(lengths.min()), int(lengths.max())
    if min_len < 1 or max_len > N:
        raise ValueError(f"farthest_point_sample: lengths must lie in [1, {N}], got [{min_len}, {max_len}]")
    if k > min_len:
        what = f"the cloud has only {N} points" if min_len == N else f"the shortest cloud has only {min_len} valid points"
        raise ValueError(f"farthest_point_sample: k={k} but {what}")
    if not bool(torch.isfinite(x).all(-1)[valid].all()):
        raise ValueError("farthest_point_sample: points contain NaN or inf")

    if start is None:
        cur = torch.zeros(B, dtype=torch.long, device=dev)
    elif isinstance(start, str):
        if start != "random":
            raise ValueError(f"farthest_point_sample: start must be None, an int, a (B,) tensor or 'random', got {start!r}")
        gdev = generator.device if generator is not None else "cpu"
        u = torch.rand(B, generator=generator, device=gdev, dtype=torch.float64).to(dev)
        cur = (u * lengths).long().clamp_max(lengths - 1)
    else:
        cur = torch.as_tensor(start, device=dev).long().expand(B).clone()
        if bool(((cur < 0) | (cur >= lengths)).any()):
            raise ValueError(f"farthest_point_sample: start index {start} is outside the valid points")

    x = torch.where(valid[..., None], x, 0)                                   # padding may hold NaN
    xt = x.transpose(1, 2).contiguous()                                        # (B, D, N): rows contiguous
    # min squared distance to the picked set; padding at -inf is never the argmax
    dist = torch.where(valid, torch.inf, -torch.inf).to(x.dtype)               # (B, N)
    idx = torch.empty(B, k, dtype=torch.long, device=dev)
    for i in range(k):
        idx[:, i] = cur
        p = torch.gather(xt, 2, cur[:, None, None].expand(B, xt.shape[1], 1))  # (B, D, 1) the new pick
        d = (xt - p).square_().sum(1)                                          # (B, N)
        torch.minimum(dist, d, out=dist)
        cur = dist.argmax(1)                                                   # (B,)
    idx = idx[0] if single else idx
    return idx.numpy() if is_np else idx


def gather_points(points, idx):
    """Rows of `points` at `idx`: points (B, N, C) with idx (B, k) -> (B, k, C); also (N, C) with (k,).

    Works for any per-point features (colours, normals), not only xyz.
    """
    is_np = isinstance(points, np.ndarray)
    points = torch.as_tensor(points)
    idx = torch.as_tensor(idx, device=points.device).long()
    if points.ndim == 2:
        out = points[idx]
    else:
        out = torch.gather(points, 1, idx[..., None].expand(*idx.shape, points.shape[-1]))
    return out.numpy() if is_np else out


def fps_points(points, k: int, **kwargs):
    """`farthest_point_sample` followed by `gather_points`: returns (samples, indices)."""
    idx = farthest_point_sample(points, k, **kwargs)
    return gather_points(points, idx), idx
