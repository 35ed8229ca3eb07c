"""DPT head (Ranftl et al. 2021, "Vision Transformers for Dense Prediction"): tokens of four
transformer layers -> a dense per-pixel map at the input resolution.

    tokens of 4 layers, each (B, h*w, D) on the h x w patch grid
      reassemble: -> (B, D, h, w) -> 1x1 conv -> resample to 4x, 2x, 1x, 1/2x the grid
                  (transposed conv / identity / strided conv) -> 3x3 conv to `features`
      fusion:     deepest level first; each block adds the next (finer) level through a
                  residual conv unit, refines, and upsamples 2x (bilinear) to the next level
      head:       3x3 conv -> upsample to (H, W) -> 3x3 conv -> ReLU -> 1x1 conv to out_channels

Early layers keep fine spatial detail, late ones global context; DPT puts the late (coarse)
levels at low resolution and the early ones at high resolution and lets the fusion blocks
mix them on the way up. The output is raw (no activation): the method decides what its
channels mean (depth, rays, confidence, flow...).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

__all__ = ["DPTHead", "ResidualConvUnit", "FusionBlock"]


class ResidualConvUnit(nn.Module):
    """x + conv(relu(conv(relu(x)))), 3x3 convolutions, channels kept."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class FusionBlock(nn.Module):
    """(x + RCU(skip)) -> RCU -> bilinear resize to `size` -> 1x1 conv; skip=False: the deepest
    level, which has nothing to add (and so no skip unit, whose weights would get no gradient)."""

    def __init__(self, channels: int, skip: bool = True):
        super().__init__()
        self.skip_unit = ResidualConvUnit(channels) if skip else None
        self.unit = ResidualConvUnit(channels)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x, skip=None, *, size):
        if (skip is None) != (self.skip_unit is None):
            raise ValueError("FusionBlock: give skip exactly when the block was built with skip=True")
        if skip is not None:
            x = x + self.skip_unit(skip)
        x = self.unit(x)
        return self.out(F.interpolate(x, size=size, mode="bilinear", align_corners=False))


class DPTHead(nn.Module):
    """Tokens of 4 layers on an h x w patch grid -> (B, out_channels, H, W).

    dim: token width D; features: channels of the fused maps; layer_channels: channels of
    the four reassembled levels (finest first).
    forward(layers, grid=(h, w), size=(H, W)): layers a list of 4 tensors (B, h*w, D),
    ordered early -> late.
    """

    def __init__(self, dim: int, out_channels: int, features: int = 64,
                 layer_channels: tuple[int, int, int, int] | None = None):
        super().__init__()
        lc = layer_channels or (features // 2, features, features, features)
        if len(lc) != 4:
            raise ValueError(f"DPTHead: layer_channels must name 4 levels, got {lc!r}")
        self.project = nn.ModuleList([nn.Conv2d(dim, c, 1) for c in lc])
        self.resample = nn.ModuleList([
            nn.ConvTranspose2d(lc[0], lc[0], 4, stride=4),                  # 4x the grid
            nn.ConvTranspose2d(lc[1], lc[1], 2, stride=2),                  # 2x
            nn.Identity(),                                                  # 1x
            nn.Conv2d(lc[3], lc[3], 3, stride=2, padding=1),                # 1/2x
        ])
        self.to_features = nn.ModuleList([nn.Conv2d(c, features, 3, padding=1, bias=False) for c in lc])
        self.fusion = nn.ModuleList([FusionBlock(features, skip=k < 3) for k in range(4)])
        self.head = nn.Sequential(nn.Conv2d(features, features // 2, 3, padding=1))
        self.out = nn.Sequential(nn.Conv2d(features // 2, features // 2, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(features // 2, out_channels, 1))

    def forward(self, layers, grid: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
        if len(layers) != 4:
            raise ValueError(f"DPTHead: expected the tokens of 4 layers, got {len(layers)}")
        h, w = grid
        levels = []
        for tokens, proj, resample, to_f in zip(layers, self.project, self.resample, self.to_features):
            if tokens.dim() != 3 or tokens.shape[1] != h * w:
                raise ValueError(f"DPTHead: tokens must be (B, h*w={h * w}, D), got {tuple(tokens.shape)}")
            x = rearrange(tokens, "b (h w) d -> b d h w", h=h, w=w)
            levels.append(to_f(resample(proj(x))))          # (B, F, 4h, 4w), (2h, 2w), (h, w), (h/2, w/2)
        l1, l2, l3, l4 = levels
        x = self.fusion[3](l4, size=l3.shape[-2:])           # coarsest first, up to the next level
        x = self.fusion[2](x, l3, size=l2.shape[-2:])
        x = self.fusion[1](x, l2, size=l1.shape[-2:])
        x = self.fusion[0](x, l1, size=(2 * l1.shape[-2], 2 * l1.shape[-1]))   # 8x the grid
        x = F.interpolate(self.head(x), size=size, mode="bilinear", align_corners=False)
        return self.out(x)                                   # (B, out_channels, H, W)
