"""Image metrics for rendered views: PSNR and SSIM (C4G, Native 4D VAE colour).

PSNR = 10 log10(L^2 / MSE), MSE over all pixels and channels of ONE image, L the data
range (the span of possible values: 1 for [0, 1] floats, 255 for uint8). Identical
images give +inf, as in scikit-image. A batch gives one PSNR per image; papers then
average those per-image values (not the MSEs).

SSIM (Wang, Bovik, Sheikh, Simoncelli 2004), the reference MATLAB convention that
scikit-image's `structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False)` also follows:
  local means / variances / covariance under an 11 x 11 Gaussian window (σ = 1.5,
  normalised), evaluated only where the window fits inside the image ("valid"),
  SSIM(x, y) = ((2 μx μy + C1)(2 σxy + C2)) / ((μx² + μy² + C1)(σx² + σy² + C2)),
  C1 = (0.01 L)², C2 = (0.03 L)², averaged over the valid pixels and then over channels.
Images must be at least 11 x 11. Computed in float64 whatever the input dtype.

LPIPS (reported by C4G and common in novel-view synthesis) is NOT implemented: it needs
pretrained network weights (AlexNet/VGG + the LPIPS linear heads), and fourdlib never
downloads weights at run time. Use the `lpips` package with weights you provide.

Layout: channel_axis=-1 (default) for (..., H, W, C) images, as `Sequence4D.rgb`;
channel_axis=-3 for torch's (..., C, H, W); channel_axis=None for grey (..., H, W).
Leading dims are a batch: the result has their shape (a float for a single image).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._checks import any_torch, as_tensor, check_finite, pick_device

SSIM_WIN, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03


def _prep(pred, gt, channel_axis, data_range, fn: str):
    """-> pred, gt (N, C, H, W) float64, batch shape, numpy-out flag, data range L."""
    to_np, device = not any_torch(pred, gt), pick_device(pred, gt)
    p, g = as_tensor(pred, "pred", device), as_tensor(gt, "gt", device)
    shape = tuple(p.shape)
    if p.shape != g.shape:
        raise ValueError(f"{fn}: image shapes differ: pred {tuple(p.shape)} vs gt {tuple(g.shape)}")
    inferred_unit = data_range is None and g.is_floating_point()
    if data_range is None:
        if g.dtype == torch.uint8:
            data_range = 255.0
        elif g.is_floating_point():
            data_range = 1.0
        else:
            raise ValueError(f"{fn}: cannot infer data_range for dtype {g.dtype}; pass data_range")
    data_range = float(data_range)
    if not math.isfinite(data_range) or data_range <= 0:
        raise ValueError(f"{fn}: data_range must be positive, got {data_range}")
    p, g = p.double(), g.double()
    check_finite(p, "pred")
    check_finite(g, "gt")
    # a GT outside the declared range means wrong units (e.g. [0, 255] floats scored as [0, 1])
    lo, hi = (float(g.min()), float(g.max())) if g.numel() else (0.0, 0.0)
    tol = 1e-6 * data_range
    if (inferred_unit and (lo < -tol or hi > 1 + tol)) or hi - lo > data_range + tol:
        raise ValueError(f"{fn}: gt spans {lo:g}..{hi:g}, outside data_range={data_range:g}"
                         f"{' (inferred for float images)' if inferred_unit else ''}; images in [0, 255] "
                         "need data_range=255")
    if channel_axis is None:
        p, g = p[..., None], g[..., None]                                      # (..., H, W, 1)
    else:
        if not -p.ndim <= channel_axis < p.ndim:
            raise ValueError(f"{fn}: channel_axis {channel_axis} is out of range for shape {tuple(p.shape)}")
        p, g = p.movedim(channel_axis, -1), g.movedim(channel_axis, -1)        # (..., H, W, C)
    if p.ndim < 3:
        raise ValueError(f"{fn}: expected images (H, W{', C' if channel_axis is not None else ''}), got shape {shape}")
    lead, (H, W, C) = p.shape[:-3], p.shape[-3:]
    if H == 0 or W == 0 or C == 0:
        raise ValueError(f"{fn}: empty image (H, W, C) = ({H}, {W}, {C})")
    p = p.reshape(-1, H, W, C).permute(0, 3, 1, 2)                             # (N, C, H, W)
    g = g.reshape(-1, H, W, C).permute(0, 3, 1, 2)
    return p, g, tuple(lead), to_np, data_range


def _out(v: torch.Tensor, lead, to_np):
    if not lead:
        return float(v[0])
    v = v.reshape(lead)
    return v.cpu().numpy() if to_np else v


@torch.no_grad()
def psnr(pred, gt, *, data_range: float | None = None, channel_axis: int | None = -1):
    """Peak signal-to-noise ratio in dB, per image. data_range: 255 for uint8 GT, else 1.0
    unless given (a GT spanning more than data_range is an error, it means wrong units)."""
    p, g, lead, to_np, L = _prep(pred, gt, channel_axis, data_range, "psnr")
    mse = (p - g).pow(2).flatten(1).mean(1)                                    # (N,)
    return _out(10 * torch.log10(L * L / mse), lead, to_np)                   # mse 0 -> inf


def _gaussian_1d(device) -> torch.Tensor:
    x = torch.arange(SSIM_WIN, dtype=torch.float64, device=device) - SSIM_WIN // 2
    g = torch.exp(-x * x / (2 * SSIM_SIGMA ** 2))
    return g / g.sum()


@torch.no_grad()
def ssim(pred, gt, *, data_range: float | None = None, channel_axis: int | None = -1):
    """Structural similarity (Gaussian 11 x 11, σ = 1.5, K1 = 0.01, K2 = 0.03), per image."""
    p, g, lead, to_np, L = _prep(pred, gt, channel_axis, data_range, "ssim")
    N, C, H, W = p.shape
    if H < SSIM_WIN or W < SSIM_WIN:
        raise ValueError(f"ssim: images must be at least {SSIM_WIN} x {SSIM_WIN} pixels, got {H} x {W}")
    k = _gaussian_1d(p.device)

    def blur(z):                                                              # (N, C, H, W) -> valid (N, C, H-10, W-10)
        z = z.reshape(N * C, 1, H, W)
        z = F.conv2d(z, k.view(1, 1, 1, -1))                                  # along W
        z = F.conv2d(z, k.view(1, 1, -1, 1))                                  # along H
        return z.reshape(N, C, H - SSIM_WIN + 1, W - SSIM_WIN + 1)

    mx, my = blur(p), blur(g)
    vx, vy, cxy = blur(p * p) - mx * mx, blur(g * g) - my * my, blur(p * g) - mx * my
    c1, c2 = (SSIM_K1 * L) ** 2, (SSIM_K2 * L) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return _out(s.flatten(1).mean(1), lead, to_np)                            # mean over channels and pixels
