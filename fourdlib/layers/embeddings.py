"""Embeddings of positions and times: Fourier features, rotary embeddings (1D and 3D),
sinusoidal timestep embeddings.

All of them compute their sines and cosines in float32 and cast back at the end: in bf16
an angle of 100 rad already has an error of ~0.25 rad, which would scramble the result.
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = [
    "FourierFeatures",
    "RotaryEmbedding1D",
    "RotaryEmbedding3D",
    "apply_rotary",
    "rotate_half",
    "timestep_embedding",
    "TimestepEmbedder",
]


# ----------------------------------------------------------------------------------------
# Fourier features
# ----------------------------------------------------------------------------------------


class FourierFeatures(nn.Module):
    """Lift coordinates to sines and cosines of several frequencies (NeRF's positional
    encoding, or Tancik et al.'s random Fourier features).

    Why not raw xyz: networks have a spectral bias (Rahaman et al. 2019): an MLP fed raw
    coordinates learns smooth, low-frequency functions of them and fits fine detail very
    slowly. In attention the problem is sharper: the score between two tokens computed
    from raw coordinates is a bilinear function of (p, p'), so it cannot express "near" (a
    bump at p = p'). With Fourier features, gamma(p) . gamma(p') = sum_f cos(f (p - p')),
    a kernel that depends only on the offset and peaks at p = p' (Tancik et al. 2020), so
    locality becomes linear in the features. The highest frequency sets the finest detail
    that is easy to represent; too high gives noisy, aliased fits.

    Inputs are expected roughly in [-1, 1] (normalise the scene first).

    spacing:
      "log"       frequencies pi * 2^k, k = 0 .. log2(max_freq), num_bands of them spaced
                  evenly in log; with the default max_freq = 2^(num_bands-1) this is
                  exactly NeRF's encoding (pi, 2pi, 4pi, ...).
      "linear"    frequencies pi * linspace(1, max_freq, num_bands).
      "gaussian"  random directions: 2 pi B x with B ~ N(0, sigma^2) of shape
                  (num_bands, in_dim), fixed by ``seed`` (Tancik et al.'s Gaussian RFF).

    Output layout (..., out_dim):
      axis-aligned ("log"/"linear"): [x (if include_input), sin(x_i f_j), cos(x_i f_j)],
        the sin and cos blocks each ordered i-major (x_0 f_0, x_0 f_1, ..., x_1 f_0, ...);
        out_dim = in_dim * include_input + 2 * in_dim * num_bands.
      "gaussian": [x (if include_input), sin(2 pi B x), cos(2 pi B x)];
        out_dim = in_dim * include_input + 2 * num_bands.
    """

    def __init__(
        self,
        in_dim: int = 3,
        num_bands: int = 6,
        max_freq: float | None = None,
        spacing: str = "log",
        include_input: bool = True,
        sigma: float = 1.0,
        seed: int = 0,
    ):
        super().__init__()
        if in_dim < 1 or num_bands < 1:
            raise ValueError(f"in_dim and num_bands must be positive, got {in_dim}, {num_bands}")
        if spacing not in ("log", "linear", "gaussian"):
            raise ValueError(f"spacing must be 'log', 'linear' or 'gaussian', got {spacing!r}")
        self.in_dim, self.num_bands, self.spacing, self.include_input = in_dim, num_bands, spacing, include_input
        if spacing == "gaussian":
            g = torch.Generator().manual_seed(seed)
            # a persistent buffer: the random directions belong to the trained model
            self.register_buffer("B", torch.randn(num_bands, in_dim, generator=g) * sigma)
            n_features = num_bands
        else:
            max_freq = 2.0 ** (num_bands - 1) if max_freq is None else float(max_freq)
            if max_freq < 1:
                raise ValueError(f"max_freq must be >= 1 (the lowest band is 1), got {max_freq}")
            if spacing == "log":
                freqs = 2.0 ** torch.linspace(0.0, math.log2(max_freq), num_bands, dtype=torch.float64)
            else:
                freqs = torch.linspace(1.0, max_freq, num_bands, dtype=torch.float64)
            self.register_buffer("freqs", (math.pi * freqs).float(), persistent=False)  # (num_bands,)
            n_features = in_dim * num_bands
        self.out_dim = in_dim * include_input + 2 * n_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., in_dim) -> (..., out_dim), in x's dtype."""
        if x.shape[-1] != self.in_dim:
            raise ValueError(f"FourierFeatures expects (..., {self.in_dim}) coordinates, got {tuple(x.shape)}")
        xf = x.float()
        if self.spacing == "gaussian":
            angles = 2 * math.pi * xf @ self.B.T  # (..., num_bands)
        else:
            angles = (xf[..., :, None] * self.freqs).flatten(-2)  # (..., in_dim * num_bands)
        parts = [xf] if self.include_input else []
        parts += [angles.sin(), angles.cos()]
        return torch.cat(parts, dim=-1).to(x.dtype if x.is_floating_point() else torch.float32)


# ----------------------------------------------------------------------------------------
# Rotary position embedding (RoPE, Su et al. 2021)
# ----------------------------------------------------------------------------------------


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) on the two halves of the last dim: a 90 degree turn of each
    pair (x[j], x[j + d/2])."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each pair (x[j], x[j + d/2]) of x by the angle whose cos/sin are given.

    x: (..., L, d), e.g. (B, H, L, d); cos, sin: broadcastable to x, e.g. (L, d) or
    (B, 1, L, d). Computed in float32, returned in x's dtype.
    Because q and k are rotated by their own positions, q_rot . k_rot depends on the
    positions only through their difference: attention sees relative position.
    """
    if cos.shape[-1] != x.shape[-1] or sin.shape != cos.shape:
        raise ValueError(
            f"rotary cos/sin of shapes {tuple(cos.shape)}, {tuple(sin.shape)} do not match x's last dim {x.shape[-1]}"
        )
    xf = x.float()
    return (xf * cos + rotate_half(xf) * sin).to(x.dtype)


def _cos_sin(angles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., d/2) angles -> cos, sin of shape (..., d), laid out for rotate_half."""
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


class RotaryEmbedding1D(nn.Module):
    """RoPE over a 1D position (token index, frame index, time).

    forward(pos): pos (..., L) -> cos, sin of shape (..., L, dim), float32.
    Pair j turns by pos * scale * base^(-2j/dim): the fastest pair once per radian of
    position, the slowest once per ``base`` radians. Positions may be continuous.
    """

    def __init__(self, dim: int, base: float = 10000.0, scale: float = 1.0):
        super().__init__()
        if dim % 2 != 0 or dim < 2:
            raise ValueError(f"rotary dim must be even and >= 2, got {dim}")
        self.dim, self.scale = dim, scale
        inv_freq = base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)  # (dim/2,)
        self.register_buffer("inv_freq", inv_freq.float(), persistent=False)

    def forward(self, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        angles = (pos.float() * self.scale)[..., None] * self.inv_freq  # (..., L, dim/2)
        return _cos_sin(angles)


class RotaryEmbedding3D(nn.Module):
    """RoPE over continuous 3D positions (e.g. DynaTok's anchor xyz).

    The head dim's dim/2 rotation pairs are split into three groups, one per axis (as
    evenly as possible: head_dim 64 -> 11, 11, 10 pairs); the pairs of group a turn by
    x_a * scale * base^(-j/n_a), j = 0 .. n_a - 1. Then q . k depends only on the 3D
    offset between the two tokens: shifting the whole scene changes nothing.

    Scaling: the fastest pair turns by one radian per unit of ``pos * scale``, the slowest
    by 1/base. Coordinates normalised to [-1, 1] barely turn the fastest pair (2 rad
    across the whole scene), so the embedding could not tell neighbours apart. Choose
    ``scale`` so that one unit is the finest distance you want resolved (e.g. scale=32 for
    1/32 of the half-extent, or pass voxel indices with scale=1), and ``base`` so that the
    slowest wavelength 2*pi*base exceeds the scene extent in those units (no aliasing of
    far tokens): with scale=32 the extent is 64 units; base=100 gives ~628. Defaults:
    base=100 (as DUSt3R / CroCo's 2D RoPE over patch positions), scale=1.

    forward(pos): pos (..., L, 3) -> cos, sin of shape (..., L, dim), float32.
    """

    def __init__(self, dim: int, base: float = 100.0, scale: float = 1.0):
        super().__init__()
        if dim % 2 != 0 or dim < 6:
            raise ValueError(f"3D rotary dim must be even and >= 6 (one pair per axis), got {dim}")
        self.dim, self.scale = dim, scale
        n = dim // 2
        counts = [n // 3 + (a < n % 3) for a in range(3)]  # pairs per axis
        inv_freq = torch.cat([base ** (-torch.arange(c, dtype=torch.float64) / c) for c in counts])
        axis = torch.cat([torch.full((c,), a) for a, c in enumerate(counts)])  # which coordinate turns pair j
        self.register_buffer("inv_freq", inv_freq.float(), persistent=False)  # (dim/2,)
        self.register_buffer("axis", axis, persistent=False)  # (dim/2,)

    def forward(self, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if pos.shape[-1] != 3:
            raise ValueError(f"RotaryEmbedding3D expects positions of shape (..., L, 3), got {tuple(pos.shape)}")
        angles = (pos.float() * self.scale)[..., self.axis] * self.inv_freq  # (..., L, dim/2)
        return _cos_sin(angles)


# ----------------------------------------------------------------------------------------
# Timestep embedding
# ----------------------------------------------------------------------------------------


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps, DiT/ADM convention:

        f_j = max_period^(-j/half), j = 0 .. half-1, half = dim // 2
        emb = [cos(t f_0), ..., cos(t f_{half-1}), sin(t f_0), ..., sin(t f_{half-1})]

    (zero-padded by one if dim is odd). The fastest frequency is 1 rad per unit of t, so
    a t in [0, 1] (flow matching) should be scaled, e.g. by 1000, to span the frequencies
    the way DDPM's integer steps 0..999 do (see ``TimestepEmbedder(t_scale=...)``).

    t: any shape (...,), e.g. (B,) or (B, L) for one noise level per token -> (..., dim)
    float32.
    """
    if dim < 2:
        raise ValueError(f"timestep embedding dim must be >= 2, got {dim}")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[..., None] * freqs  # (..., half)
    emb = torch.cat([args.cos(), args.sin()], dim=-1)
    if dim % 2:
        emb = torch.nn.functional.pad(emb, (0, 1))
    return emb


class TimestepEmbedder(nn.Module):
    """timestep_embedding followed by an MLP (Linear -> SiLU -> Linear), as in DiT.

    t: (...,) -> (..., dim). ``t_scale`` multiplies t first (1000 for t in [0, 1]).
    """

    def __init__(self, dim: int, freq_dim: int = 256, max_period: float = 10000.0, t_scale: float = 1.0):
        super().__init__()
        self.freq_dim, self.max_period, self.t_scale = freq_dim, max_period, t_scale
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        emb = timestep_embedding(t * self.t_scale, self.freq_dim, self.max_period)
        return self.mlp(emb.to(self.mlp[0].weight.dtype))
