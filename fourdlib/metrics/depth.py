"""Depth metrics: AbsRel and δ < 1.25^k (Eigen et al. 2014), with optional scale alignment.

pred, gt: depth maps of the same shape (H, W), (T, H, W), ... in metres (z-depth, see
`fourdlib.data.sequence`). Valid pixels: gt > 0 (0 = no measurement), AND `mask` if given.
All valid pixels of the call are POOLED: pass one frame for a per-frame score, a whole
video (T, H, W) for the per-sequence score that video-depth benchmarks use.

AbsRel          mean |d̂ - d| / d
δ < t           share of pixels with max(d̂ / d, d / d̂) < t; defaults t = 1.25, 1.25², 1.25³
                ("delta1", "delta2", "delta3"). A non-positive prediction counts as a miss.
                The Robust-MVD / MapAnything inlier ratio τ is the same test at t = 1.03:
                thresholds={"tau": 1.03}.

Alignment (`align`), fitted on the valid pixels of the call, then applied to pred:
  None           metric depth, scored as predicted (Any4D is metric-scale).
  "median"       s = median(d) / median(d̂)  (per-image median scaling, Zhou et al. 2017).
  "scale"        least-squares scale s = Σ d̂ d / Σ d̂².
  "scale_shift"  least-squares s, t minimising Σ (s d̂ + t - d)²  (relative-depth methods,
                 MiDaS / DepthCrafter style; fitted here in depth, not disparity, space).
Any4D's video-depth table gives AbsRel and δ < 1.25; the text we have does not say how
(or whether) predictions were aligned. We score metric predictions with align=None and
report any alignment we apply next to the number.
"""
from __future__ import annotations

import torch

from ._checks import any_torch, as_float, as_mask, as_tensor, check_finite, pick_device

DEFAULT_THRESHOLDS = {"delta1": 1.25, "delta2": 1.25 ** 2, "delta3": 1.25 ** 3}
ALIGN_MODES = (None, "median", "scale", "scale_shift")


def _prep(pred, gt, mask, fn: str):
    """-> pred, gt as float64 tensors (input shape) and the valid-pixel mask."""
    device = pick_device(pred, gt)
    p, g = as_float(as_tensor(pred, "pred", device), "pred"), as_float(as_tensor(gt, "gt", device), "gt")
    if p.shape != g.shape:
        raise ValueError(f"{fn}: shapes differ: pred {tuple(p.shape)} vs gt {tuple(g.shape)}")
    if p.ndim < 2:
        raise ValueError(f"{fn}: expected depth maps (..., H, W), got shape {tuple(p.shape)}")
    check_finite(p, "pred")
    check_finite(g, "gt")
    if bool((g < 0).any()):
        raise ValueError(f"{fn}: gt has negative depths (invalid pixels must be 0)")
    valid = g > 0
    if mask is not None:
        valid = valid & as_mask(mask, "mask", g.shape, device)
    if not bool(valid.any()):
        raise ValueError(f"{fn}: no valid pixels (gt > 0{' and mask' if mask is not None else ''})")
    return p.double(), g.double(), valid


def _median(x: torch.Tensor) -> torch.Tensor:
    """numpy's median (mean of the two middle values); torch.median takes the lower one and
    torch.quantile refuses more than 2^24 values (a short video has more pixels)."""
    v = x.sort().values
    n = v.numel()
    return 0.5 * (v[(n - 1) // 2] + v[n // 2])


def _fit(p: torch.Tensor, g: torch.Tensor, mode: str):
    """(scale, shift) mapping the valid predictions p (P,) onto g (P,)."""
    if mode == "median":
        mp = _median(p)
        if not mp > 0:
            raise ValueError("align='median': the median predicted depth is not positive")
        return _median(g) / mp, torch.zeros((), dtype=p.dtype, device=p.device)
    if mode == "scale":
        den = (p * p).sum()
        if not den > 0:
            raise ValueError("align='scale': predictions are all zero")
        return (p * g).sum() / den, torch.zeros((), dtype=p.dtype, device=p.device)
    # scale_shift: normal equations of [p 1] [s t]^T = g, solved in float64
    A = torch.stack([p, torch.ones_like(p)], -1)                               # (P, 2)
    ata = A.T @ A
    if abs(float(torch.linalg.det(ata))) < 1e-12 * float(ata.abs().max()) ** 2:
        raise ValueError("align='scale_shift': predictions are constant, scale and shift are not determined")
    s, t = torch.linalg.solve(ata, A.T @ g)
    return s, t


def align_depth(pred, gt, mask=None, *, mode: str = "median"):
    """pred scaled (and shifted) onto gt, fitted on the valid pixels; same kind as pred.

    Returns (aligned pred, scale, shift) with scale / shift python floats.
    """
    if mode not in ALIGN_MODES[1:]:
        raise ValueError(f"mode must be one of {ALIGN_MODES[1:]}, got {mode!r}")
    p, g, valid = _prep(pred, gt, mask, "align_depth")
    s, t = _fit(p[valid], g[valid], mode)
    out = (p * s + t).to(as_float(as_tensor(pred, "pred"), "pred").dtype)
    return (out.cpu().numpy() if not any_torch(pred) else out), float(s), float(t)


@torch.no_grad()
def depth_metrics(pred, gt, mask=None, *, align: str | None = None, thresholds: dict = DEFAULT_THRESHOLDS) -> dict:
    """{'abs_rel', 'delta1', 'delta2', 'delta3'} (keys of `thresholds`) over the valid pixels.

    With align set, the fitted 'scale' and 'shift' are added to the dict.
    """
    if align not in ALIGN_MODES:
        raise ValueError(f"align must be one of {ALIGN_MODES}, got {align!r}")
    for k, t in thresholds.items():
        if not float(t) > 1:
            raise ValueError(f"thresholds[{k!r}] must be > 1 (a ratio), got {t!r}")
    p, g, valid = _prep(pred, gt, mask, "depth_metrics")
    p, g = p[valid], g[valid]                                                  # (P,)
    out = {}
    if align is not None:
        s, t = _fit(p, g, align)
        p = p * s + t
        out.update(scale=float(s), shift=float(t))
    res = {"abs_rel": float(((p - g).abs() / g).mean())}
    ratio = torch.where(p > 0, torch.maximum(p / g, g / p.clamp_min(1e-300)), torch.full_like(p, float("inf")))
    for k, t in thresholds.items():
        res[k] = float((ratio < float(t)).double().mean())
    return {**res, **out}
