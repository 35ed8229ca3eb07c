"""Volumetric IoU of two occupancy grids or two sets of integer voxel coordinates.

IoU = |A ∩ B| / |A ∪ B|, counted in voxels.

Convention (COM4D): the paper text does not define its IoU; COM4D builds on PartCrafter,
whose evaluation code (`src/utils/metric_utils.py`, as published in PartCrafter forks)
voxelises each mesh SOLID (surface voxels, then filled) at pitch 2/64
inside [-1, 1]^3 (a 64^3 grid) and takes the IoU of the two voxel-coordinate sets. This
module does no voxelisation: voxelise with the same pitch and origin for both shapes
(`fourdlib.geometry` owns voxelisation) and pass the results here. A point cloud
voxelised at a resolution gives a surface-shell IoU, not a solid one; say which you report.
"""
from __future__ import annotations

import torch

from ._checks import any_torch, as_tensor, finish, pick_device


def _iou_grids(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a, b (B, D, H, W) bool -> (B,) float64."""
    inter = (a & b).flatten(1).sum(1).double()
    union = (a | b).flatten(1).sum(1).double()
    if bool((union == 0).any()):
        raise ValueError(f"volume_iou: both grids are empty in item(s) {torch.nonzero(union == 0).flatten().tolist()} (IoU undefined)")
    return inter / union


def _iou_coords(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a (Ma, 3), b (Mb, 3) integer voxel coordinates -> scalar float64 (duplicates count once)."""
    ua, ub = torch.unique(a, dim=0), torch.unique(b, dim=0)
    both = torch.cat([ua, ub])
    if both.shape[0] == 0:
        raise ValueError("volume_iou: both voxel sets are empty (IoU undefined)")
    _, counts = torch.unique(both, dim=0, return_counts=True)                  # 2 = in both sets
    return (counts == 2).sum().double() / counts.numel()


def _kind(t: torch.Tensor, name: str) -> str:
    if t.dtype == torch.bool:
        if t.ndim < 3:
            raise ValueError(f"{name}: a boolean occupancy grid needs >= 3 dims (D, H, W), got shape {tuple(t.shape)}")
        return "grid"
    if t.is_floating_point() or t.is_complex():
        raise ValueError(f"{name}: got {t.dtype}; pass a boolean occupancy grid (threshold it, e.g. occ > 0.5) "
                         "or integer voxel coordinates (M, 3)")
    if t.ndim == 2 and t.shape[1] == 3:
        return "coords"
    raise ValueError(f"{name}: integer input must be voxel coordinates of shape (M, 3), got shape {tuple(t.shape)}; "
                     "occupancy grids must be boolean")


def volume_iou(a, b):
    """Volumetric IoU of occupancy grids or voxel sets.

    a, b: boolean grids of the same shape (D, H, W), or (..., D, H, W) for a batch (one IoU per
    leading index); integer voxel coordinates (M_a, 3) and (M_b, 3) in the same grid (M may be
    0 on one side: IoU 0); or lists of either, one IoU per pair. Returns a float for one pair,
    else a float64 array (numpy if both inputs were numpy, else a tensor).
    """
    to_np = not any_torch(a, b)
    device = pick_device(a, b)
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        if not (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple))):
            raise ValueError("volume_iou: give both inputs as lists, or neither")
        if len(a) != len(b) or len(a) == 0:
            raise ValueError(f"volume_iou: lists must be non-empty and of equal length, got {len(a)} and {len(b)}")
        vals = [_one(as_tensor(x, f"a[{i}]", device), as_tensor(y, f"b[{i}]", device), f"[{i}]")
                for i, (x, y) in enumerate(zip(a, b))]
        if any(v.ndim for v in vals):
            raise ValueError("volume_iou: list items must be single grids (D, H, W) or voxel sets (M, 3), not batches")
        return finish(torch.stack(vals), True, to_np)
    ta, tb = as_tensor(a, "a", device), as_tensor(b, "b", device)
    v = _one(ta, tb, "")
    if v.ndim == 0:
        return float(v)
    return v.cpu().numpy() if to_np else v


def _one(a: torch.Tensor, b: torch.Tensor, where: str) -> torch.Tensor:
    ka, kb = _kind(a, "a" + where), _kind(b, "b" + where)
    if ka != kb:
        raise ValueError(f"volume_iou: a{where} is {ka} but b{where} is {kb}; compare like with like")
    if ka == "coords":
        return _iou_coords(a.long(), b.long())
    if a.shape != b.shape:
        raise ValueError(f"volume_iou: grid shapes differ: a{where} {tuple(a.shape)} vs b{where} {tuple(b.shape)}")
    lead = a.shape[:-3]
    v = _iou_grids(a.reshape(-1, *a.shape[-3:]), b.reshape(-1, *b.shape[-3:]))
    return v.reshape(lead) if lead else v[0]
