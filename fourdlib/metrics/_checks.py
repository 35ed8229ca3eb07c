"""Input checks and numpy/torch plumbing shared by the metric modules.

Every metric takes numpy arrays or torch tensors (or a mix: GT from a `Sequence4D` is
numpy, predictions are tensors) and works in torch internally. A result comes back as
numpy when every array input was numpy, else as a tensor on the inputs' device.
Bad input raises ValueError naming the argument and the problem; metrics never
silently skip NaNs or reshape what they were given.
"""
from __future__ import annotations

import numpy as np
import torch


def any_torch(*xs) -> bool:
    """True if any input (or any element of a list input) is a torch tensor."""
    for x in xs:
        if isinstance(x, torch.Tensor):
            return True
        if isinstance(x, (list, tuple)) and any(isinstance(e, torch.Tensor) for e in x):
            return True
    return False


def pick_device(*xs) -> torch.device:
    """The first CUDA (or other non-CPU) device among tensor inputs, else CPU."""
    for x in xs:
        for e in (x if isinstance(x, (list, tuple)) else [x]):
            if isinstance(e, torch.Tensor) and e.device.type != "cpu":
                return e.device
    return torch.device("cpu")


def as_tensor(x, name: str, device=None) -> torch.Tensor:
    """A tensor view of x (zero-copy for CPU numpy), floats kept as they are."""
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        try:
            t = torch.as_tensor(np.ascontiguousarray(x))                     # negative strides (a[::-1]) need a copy
        except (TypeError, ValueError, RuntimeError) as e:
            raise ValueError(f"{name}: cannot read {type(x).__name__} as an array ({e})") from None
    return t if device is None else t.to(device)


def as_float(t: torch.Tensor, name: str) -> torch.Tensor:
    """Float view of t: half/bfloat16 go to float32 (a metric needs the precision), ints to float64."""
    if t.dtype == torch.bool:
        raise ValueError(f"{name}: expected numbers, got a boolean array")
    if t.dtype in (torch.float16, torch.bfloat16):
        return t.float()
    if not t.is_floating_point():
        return t.double()
    return t


def check_finite(t: torch.Tensor, name: str) -> None:
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"{name}: contains {bad} NaN/inf value(s)")


def as_mask(m, name: str, shape, device) -> torch.Tensor:
    """A boolean mask of exactly `shape` (no broadcasting: a wrong mask is an error)."""
    t = as_tensor(m, name, device)
    if t.dtype != torch.bool:
        raise ValueError(f"{name}: must be a boolean mask, got dtype {t.dtype}")
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{name}: shape {tuple(t.shape)} does not match the data's {tuple(shape)}")
    return t


def finish(values: torch.Tensor, batched: bool, to_numpy: bool):
    """Per-item results (B,) -> python float when one item was given, else (B,) array/tensor."""
    if not batched:
        return float(values[0])
    return values.cpu().numpy() if to_numpy else values
