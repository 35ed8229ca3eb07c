"""Rotation matrices -> unit quaternions, the inverse of `cameras.quaternion_to_matrix`.

Scalar-first (w, x, y, z) with w >= 0 (q and -q are the same rotation; the sign is fixed so
that a regression target is unique). Torch tensors or numpy arrays, any leading dims.
"""
from __future__ import annotations

import torch

from .cameras import _back, _to_torch

__all__ = ["matrix_to_quaternion"]


def matrix_to_quaternion(R):
    """Rotation matrices (..., 3, 3) -> unit quaternions (..., 4), (w, x, y, z), w >= 0.

    Shepperd's method: of the four ways to read q from R, each element uses the one whose
    divisor (4 w, 4 x, 4 y or 4 z) is largest, so no division by a value near zero.
    """
    is_np, (R,) = _to_torch(R)
    R = R.double() if is_np else R
    if R.shape[-2:] != (3, 3):
        raise ValueError(f"matrix_to_quaternion: expected (..., 3, 3), got {tuple(R.shape)}")
    m00, m11, m22 = R[..., 0, 0], R[..., 1, 1], R[..., 2, 2]
    # 4 q_k^2 for k = w, x, y, z; the candidate rows below are q scaled by 4 q_k
    sq = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    cand = torch.stack([
        torch.stack([sq[..., 0], R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1),
        torch.stack([R[..., 2, 1] - R[..., 1, 2], sq[..., 1], R[..., 1, 0] + R[..., 0, 1], R[..., 0, 2] + R[..., 2, 0]], -1),
        torch.stack([R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] + R[..., 0, 1], sq[..., 2], R[..., 2, 1] + R[..., 1, 2]], -1),
        torch.stack([R[..., 1, 0] - R[..., 0, 1], R[..., 0, 2] + R[..., 2, 0], R[..., 2, 1] + R[..., 1, 2], sq[..., 3]], -1),
    ], -2)                                                                  # (..., 4 candidates, 4)
    best = sq.argmax(-1)                                                    # (...,)
    q = torch.gather(cand, -2, best[..., None, None].expand(*best.shape, 1, 4))[..., 0, :]
    q = torch.nn.functional.normalize(q, dim=-1)
    return _back(is_np, torch.where(q[..., :1] < 0, -q, q))
