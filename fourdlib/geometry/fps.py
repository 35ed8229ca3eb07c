"""Farthest point sampling (FPS): k well-spread points out of a cloud.

FPS picks a start point, then repeatedly the point farthest from everything picked so
far. The picks cover the cloud evenly (unlike a random subset, which clumps), which is
why point-cloud encoders (DynaTok's 8192 -> 512 tokens, PointNet++) use it to choose
token centres.

The loop over the k picks is inherently sequential. Two implementations, same picks:

- `farthest_point_sample_torch`, the reference: each step is one vectorised distance
  update over all B x N points, so a batch costs about as many kernel launches as one
  cloud, and nothing in the loop reads a value back to the host (no `.item()`), so on
  CUDA the k steps queue up without a sync. On a CPU the per-step overhead of a handful
  of torch ops dominates: the work per step is tiny (N distances).
- `farthest_point_sample` runs the same loop in compiled code (the `fpsample` package's
  exact FPS) for float32 clouds on the CPU, one cloud of the batch at a time, and the
  reference everywhere else. Timings: `benchmarks/bench_fps.py`.

Notebook 01 builds FPS from scratch and checks it against this module.
"""
from __future__ import annotations

import numbers

import fpsample
import numpy as np
import torch


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

    Float32 clouds on the CPU go through fpsample's compiled loop, which computes the
    same float32 squared distances in the same order as `farthest_point_sample_torch`
    and so returns the same indices; everything else (CUDA, float64) runs that torch loop.
    """
    return _fps(points, k, start, generator, lengths, compiled=True)


def farthest_point_sample_torch(points, k: int, start=None, generator: torch.Generator | None = None,
                                lengths=None) -> torch.Tensor:
    """`farthest_point_sample` as a batched torch loop, on any device and dtype.

    The reference that the compiled CPU path is tested against, and the CUDA path.
    """
    return _fps(points, k, start, generator, lengths, compiled=False)


def _fps(points, k, start, generator, lengths, compiled: bool):
    is_np = isinstance(points, np.ndarray)
    x, single, k, start, lengths = _check_fps_args(points, k, start, generator, lengths)
    # fpsample computes in float32 only. Rounding float64 coordinates to float32 would
    # move picks at near-ties (and ruin clouds far from the origin), so float64 keeps the
    # torch loop, exact in the caller's precision.
    if compiled and x.device.type == "cpu" and x.dtype == torch.float32:
        idx = _fps_compiled(x, k, start, lengths)
    else:
        idx = _fps_loop(x, k, start, lengths)
    idx = idx[0] if single else idx
    return idx.numpy() if is_np else idx


def _check_fps_args(points, k, start, generator, lengths):
    """Validate the arguments of `farthest_point_sample` and put them in one form.

    Returns x (B, N, D) float32 or float64 (detached), whether the input was one (N, D)
    cloud, k as an int, the first picks (B,) int64 and lengths (B,) int64 on x's device.
    """
    x = torch.as_tensor(points).detach()
    single = x.ndim == 2
    if single:
        x = x[None]
    if x.ndim != 3:
        raise ValueError(f"farthest_point_sample: points must be (N, 3) or (B, N, 3), got shape {tuple(x.shape)}")
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
    # One host sync for all the checks, before the loop (none inside it).
    min_len, max_len = int(lengths.min()), int(lengths.max())
    if min_len < 1 or max_len > N:
        raise ValueError(f"farthest_point_sample: lengths must lie in [1, {N}], got [{min_len}, {max_len}]")
    if k > min_len:
        what = f"the cloud has only {N} points" if min_len == N else f"the shortest cloud has only {min_len} valid points"
        raise ValueError(f"farthest_point_sample: k={k} but {what}")
    if dev.type == "cpu":
        # numpy, single-threaded: a torch op over the whole batch would leave torch's
        # OpenMP workers spinning, and on a busy CPU they slow the compiled loop after it.
        finite = all(np.isfinite(x[b, :n].numpy()).all() for b, n in enumerate(lengths.tolist()))
    else:
        valid = torch.arange(N, device=dev)[None] < lengths[:, None]            # (B, N)
        finite = torch.isfinite(x).all(-1)[valid].all()
    if not bool(finite):
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
    return x, single, k, cur, lengths


def _fps_loop(x, k, start, lengths):
    """FPS of every cloud at once: x (B, N, D), start and lengths (B,) -> (B, k) indices."""
    B, N, _ = x.shape
    valid = torch.arange(N, device=x.device)[None] < lengths[:, None]          # (B, N)
    x = torch.where(valid[..., None], x, 0)                                   # padding may hold NaN
    xt = x.transpose(1, 2).contiguous()                                        # (B, D, N): rows contiguous
    # min squared distance to the picked set; padding at -inf is never the argmax
    dist = torch.where(valid, torch.inf, -torch.inf).to(x.dtype)               # (B, N)
    idx = torch.empty(B, k, dtype=torch.long, device=x.device)
    cur = start
    for i in range(k):
        idx[:, i] = cur
        p = torch.gather(xt, 2, cur[:, None, None].expand(B, xt.shape[1], 1))  # (B, D, 1) the new pick
        d = (xt - p).square_().sum(1)                                          # (B, N)
        torch.minimum(dist, d, out=dist)
        cur = dist.argmax(1)                                                   # (B,)
    return idx


def _fps_compiled(x, k, start, lengths):
    """`_fps_loop` in fpsample's compiled exact FPS: x (B, N, D) float32 on the CPU.

    fpsample takes one (n, D) cloud per call (any D) and holds the GIL, so the batch is a
    plain loop over clouds, each given only its valid rows (no padding to mask). We always
    pass the start: left out, fpsample would draw it from numpy's global random state.
    Its distance is the same float32 sum of (p - q)**2 over D, in the same order, so its
    picks are ours bit for bit. That rests on both rounding alike: a build of fpsample that
    fused the multiply-adds could differ in the last bit and so, at a near-tie within one
    float32 ulp, pick the other point; the tests compare the two paths on every case.
    """
    idx = torch.empty(len(x), k, dtype=torch.long)
    for b, (n, s) in enumerate(zip(lengths.tolist(), start.tolist())):
        # fpsample's argmax keeps the LAST of equal maxima (`>=`), ours the first. Ties are
        # common (grids, duplicated points, and every pick once the distinct points run
        # out), so we run it on the cloud reversed, where its last is our first.
        rev = x[b, :n].numpy()[::-1]
        picks = fpsample.fps_sampling(rev, k, start_idx=n - 1 - s)             # start_idx: a Python int
        idx[b] = torch.from_numpy((n - 1) - picks.astype(np.int64))
    return idx


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
