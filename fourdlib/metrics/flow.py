"""Scene-flow and 3D-tracking metrics: EPE3D, Acc strict / relaxed, outliers, APD, τ.

pred, gt: (..., 3) vectors in correspondence (same shape), metres; mask (...) bool picks
the valid ones (e.g. `Sequence4D.flow_valid`). Every metric POOLS all selected vectors of
the call into one number (a python float): call per sample / per frame and average the
results when a paper averages per sample. e = ||pred - gt||_2 per vector.

EPE3D          mean e.
Acc strict     share with e < 0.05 m OR e / ||gt|| < 5 %.
Acc relaxed    share with e < 0.1 m  OR e / ||gt|| < 10 %.
Outliers       share with e > 0.3 m  OR e / ||gt|| > 10 %.
    This is the FlowNet3D / HPLFlowNet convention (Liu et al. 2019; Gu et al. 2019, whose
    evaluation code divides by ||gt|| + 1e-4, kept here so zero GT flow is finite).
APD            average over thresholds δ of the share with e <= δ (Average Percent of points
    within Delta). Any4D reports "APD" for scene flow and 3D tracking against St4RTrack
    but the text we have does not list its δ; we use St4RTrack's evaluation code
    (`track_eval_util.py`): fixed metric thresholds δ in {0.1, 0.3, 0.5, 1.0} m with "<=",
    its metric stand-in for TAP-Vid's {1, 2, 4, 8} pixel thresholds.
τ (inlier_ratio)   share with e / ||gt|| < 3 %. Any4D's "τ" is not defined in the text
    we have; Any4D builds on MapAnything, whose benchmark (after the Robust Multi-View
    Depth benchmark, Schröppel et al. 2022) calls the inlier ratio at relative error 1.03
    "τ", so we take that, with the error relative to the GT vector. A relative error is
    meaningless for zero GT flow (static points), so apply τ to POINTS AFTER MOTION
    (reference point + flow, in the world / first-camera frame) rather than to raw flow
    vectors; the function itself scores whatever vectors it is given.
No alignment is done here: Any4D is metric. Up-to-scale methods must be aligned before
scoring (St4RTrack scales by the ratio of median point norms), and the table must say so.
"""
from __future__ import annotations

import torch

from ._checks import as_float, as_mask, as_tensor, check_finite, pick_device

HPL_EPS = 1e-4                        # HPLFlowNet's ||gt|| + eps in the relative error
APD_THRESHOLDS = (0.1, 0.3, 0.5, 1.0)  # metres, St4RTrack's fixed metric thresholds
TAU_THRESHOLD = 0.03                  # 3 % relative error (1.03 inlier ratio)


def _errors(pred, gt, mask, fn: str):
    """-> e (P,) and ||gt|| (P,) float64 over the selected vectors."""
    device = pick_device(pred, gt)
    p, g = as_float(as_tensor(pred, "pred", device), "pred"), as_float(as_tensor(gt, "gt", device), "gt")
    if p.shape != g.shape:
        raise ValueError(f"{fn}: shapes differ: pred {tuple(p.shape)} vs gt {tuple(g.shape)}")
    if p.ndim == 0 or p.shape[-1] != 3:
        raise ValueError(f"{fn}: last dimension must be 3 (x, y, z), got shape {tuple(p.shape)}")
    check_finite(p, "pred")
    check_finite(g, "gt")
    p, g = p.double(), g.double()
    if mask is not None:
        m = as_mask(mask, "mask", p.shape[:-1], device)
        p, g = p[m], g[m]
    p, g = p.reshape(-1, 3), g.reshape(-1, 3)
    if p.shape[0] == 0:
        raise ValueError(f"{fn}: no vectors to score (empty input or the mask selects nothing)")
    return (p - g).norm(dim=-1), g.norm(dim=-1)


@torch.no_grad()
def epe3d(pred, gt, mask=None) -> float:
    """End-point error: mean Euclidean distance between predicted and GT vectors."""
    e, _ = _errors(pred, gt, mask, "epe3d")
    return float(e.mean())


@torch.no_grad()
def scene_flow_metrics(pred, gt, mask=None) -> dict:
    """{'epe3d', 'acc_strict', 'acc_relax', 'outliers'} (HPLFlowNet convention, see module doc)."""
    e, n = _errors(pred, gt, mask, "scene_flow_metrics")
    rel = e / (n + HPL_EPS)
    share = lambda b: float(b.double().mean())
    return {"epe3d": float(e.mean()),
            "acc_strict": share((e < 0.05) | (rel < 0.05)),
            "acc_relax": share((e < 0.1) | (rel < 0.1)),
            "outliers": share((e > 0.3) | (rel > 0.1))}


@torch.no_grad()
def apd(pred, gt, mask=None, *, thresholds=APD_THRESHOLDS) -> float:
    """Average over δ in `thresholds` (metres) of the share of vectors with error <= δ."""
    ths = [float(t) for t in (thresholds if isinstance(thresholds, (list, tuple)) else [thresholds])]
    if not ths or any(not t > 0 for t in ths):
        raise ValueError(f"apd: thresholds must be a non-empty list of positive distances, got {thresholds!r}")
    e, _ = _errors(pred, gt, mask, "apd")
    return float(torch.stack([(e <= t).double().mean() for t in ths]).mean())


@torch.no_grad()
def inlier_ratio(pred, gt, mask=None, *, threshold: float = TAU_THRESHOLD) -> float:
    """τ: share of vectors whose relative error ||pred - gt|| / ||gt|| is below `threshold`.

    A GT vector of zero length makes the relative error undefined: it is an error here
    (score points after motion, not static flow vectors; see the module docstring).
    """
    if not float(threshold) > 0:
        raise ValueError(f"inlier_ratio: threshold must be positive, got {threshold!r}")
    e, n = _errors(pred, gt, mask, "inlier_ratio")
    if bool((n == 0).any()):
        raise ValueError(f"inlier_ratio: {int((n == 0).sum())} GT vector(s) have zero length, the relative error "
                         "is undefined (score points after motion, or mask those out)")
    return float((e / n < float(threshold)).double().mean())
