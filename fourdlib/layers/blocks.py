"""Transformer blocks the methods share: an MLP, one adaLN-Zero modulation, a self-attention
(DiT) block, a cross-attention-only block, and attention within / across the frames of
(B, S, M, D) tokens.

adaLN-Zero (DiT, Peebles & Xie 2023): a conditioning vector (e.g. a timestep embedding)
gives per-channel shift, scale and gate for each branch. The projection starts at zero, so
every gate is 0 and a block starts as the identity, which makes deep stacks train stably.
`adaln_zero` builds that projection once for every block here and for output heads.

Within / across frames: many 4D models alternate attention over the tokens of one frame
(B*S sequences of M tokens) with attention over the tokens of all frames of a sample (B
sequences of S*M tokens). `frame_attention` / `global_attention` are those two reshapes
around any block, so a model's forward pass reads as the alternation itself.
"""
from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from .attention import MultiHeadAttention

__all__ = ["Mlp", "modulate", "adaln_zero", "Block", "CrossAttentionBlock", "frame_attention",
           "global_attention"]


class Mlp(nn.Module):
    """Linear -> GELU (tanh approximation, as ViT/DiT) -> Linear."""

    def __init__(self, dim: int, hidden: int, out_dim: int | None = None):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(hidden, out_dim or dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN modulation: x * (1 + scale) + shift (scale = 0 leaves x unchanged)."""
    return x * (1 + scale) + shift


def adaln_zero(cond_dim: int, dim: int, chunks: int) -> nn.Sequential:
    """SiLU -> Linear(cond_dim, chunks * dim), initialised to zero: `chunks` modulation
    vectors (shift, scale, gate, ...) that all start at 0."""
    proj = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, chunks * dim))
    nn.init.zeros_(proj[1].weight)
    nn.init.zeros_(proj[1].bias)
    return proj


def _modulation(adaln: nn.Module, cond: torch.Tensor, x: torch.Tensor, chunks: int):
    """The `chunks` modulation vectors of `cond`, broadcastable to x: a per-sample cond
    (B, cond_dim) against tokens (B, L, dim) gets a token axis."""
    mod = adaln(cond)                       # (B, chunks*dim), (B, L, chunks*dim) or packed (T, chunks*dim)
    if mod.dim() < x.dim():
        mod = mod.unsqueeze(-2)             # (B, 1, chunks*dim): one modulation for every token of a sample
    return mod.chunk(chunks, dim=-1)


class Block(nn.Module):
    """Pre-norm transformer block: self-attention, optional cross-attention, MLP.

        x = x + attn(norm1(x))                     # + gate, with adaLN
        x = x + cross_attn(norm_c(x), context)     # if context_dim is set
        x = x + mlp(norm2(x))                      # + gate, with adaLN

    With ``cond_dim`` it is a DiT block with adaLN-Zero. ``cond`` may be per sample
    (B, cond_dim) or per token (B, L, cond_dim), e.g. a noise level per token for diffusion
    forcing. The cross-attention branch is not modulated (PixArt-alpha style).
    Packed variable-length tokens (x of shape (T, dim) with ``cu_seqlens``) work too: the
    norms and the MLP act per token, attention stays within each sequence.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: float = 4.0,
        context_dim: int | None = None,
        cond_dim: int | None = None,
        qkv_bias: bool = True,
        qk_norm: bool = False,
        rotary: nn.Module | None = None,
        backend: str = "auto",
    ):
        super().__init__()
        adaln = cond_dim is not None
        # with adaLN the conditioning supplies scale and shift, so the norms carry none
        self.norm1 = nn.LayerNorm(dim, eps=1e-6, elementwise_affine=not adaln)
        self.attn = MultiHeadAttention(dim, heads, qkv_bias=qkv_bias, qk_norm=qk_norm, rotary=rotary, backend=backend)
        self.cross_attn = None
        if context_dim is not None:
            self.norm_cross = nn.LayerNorm(dim, eps=1e-6)
            self.cross_attn = MultiHeadAttention(
                dim, heads, kv_dim=context_dim, qkv_bias=qkv_bias, qk_norm=qk_norm, backend=backend
            )
        self.norm2 = nn.LayerNorm(dim, eps=1e-6, elementwise_affine=not adaln)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.adaln = adaln_zero(cond_dim, dim, 6) if adaln else None

    def forward(
        self,
        x: torch.Tensor,
        cond: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
        pos: torch.Tensor | None = None,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        cu_seqlens: torch.Tensor | None = None,
        context_cu_seqlens: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x: (B, L, dim); cond: (B, cond_dim) or (B, L, cond_dim); context: (B, Lc, context_dim).
        mask / context_mask: for self- / cross-attention (see ``attention``); pos / rope: the
        tokens' rotary positions for self-attention.
        Packed variable-length input: x (T, dim), cu_seqlens (n + 1,), cond per token
        (T, cond_dim), context (Tc, context_dim) with context_cu_seqlens (n + 1,)."""
        if (cond is None) != (self.adaln is None):
            raise ValueError("cond must be given exactly when the block was built with cond_dim")
        if (context is None) != (self.cross_attn is None):
            raise ValueError("context must be given exactly when the block was built with context_dim")

        if self.adaln is None:
            x = x + self.attn(self.norm1(x), mask=mask, pos=pos, rope=rope, cu_seqlens=cu_seqlens)
        else:
            shift1, scale1, gate1, shift2, scale2, gate2 = _modulation(self.adaln, cond, x, 6)
            h = modulate(self.norm1(x), shift1, scale1)
            x = x + gate1 * self.attn(h, mask=mask, pos=pos, rope=rope, cu_seqlens=cu_seqlens)

        if self.cross_attn is not None:
            x = x + self.cross_attn(
                self.norm_cross(x), context, mask=context_mask,
                cu_seqlens=cu_seqlens, context_cu_seqlens=context_cu_seqlens,
            )

        if self.adaln is None:
            return x + self.mlp(self.norm2(x))
        return x + gate2 * self.mlp(modulate(self.norm2(x), shift2, scale2))


class CrossAttentionBlock(nn.Module):
    """Queries attend to a context, then an MLP (pre-norm); no self-attention, so queries
    never see each other (e.g. anchors pooling points, or decoder points that must stay
    independent samples). With ``cond_dim``, adaLN-Zero as in `Block`.

        x = x + gate1 * attn(modulate(norm1(x)), norm_c(context))
        x = x + gate2 * mlp(modulate(norm2(x)))

    norm_c is a LayerNorm, or nothing with norm_context=False (a context whose scale
    carries information).
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, cond_dim: int | None = None,
                 qk_norm: bool = False, norm_context: bool = True):
        super().__init__()
        adaln = cond_dim is not None
        self.norm1 = nn.LayerNorm(dim, eps=1e-6, elementwise_affine=not adaln)
        self.norm_context = nn.LayerNorm(dim, eps=1e-6) if norm_context else nn.Identity()
        self.attn = MultiHeadAttention(dim, heads, kv_dim=dim, qk_norm=qk_norm)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6, elementwise_affine=not adaln)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.adaln = adaln_zero(cond_dim, dim, 6) if adaln else None

    def forward(self, x, context, cond=None, context_mask=None):
        """x (B, L, dim), context (B, Lc, dim), cond (B, cond_dim) or (B, L, cond_dim) -> (B, L, dim)."""
        if (cond is None) != (self.adaln is None):
            raise ValueError("cond must be given exactly when the block was built with cond_dim")
        context = self.norm_context(context)
        if self.adaln is None:
            x = x + self.attn(self.norm1(x), context, mask=context_mask)
            return x + self.mlp(self.norm2(x))
        shift1, scale1, gate1, shift2, scale2, gate2 = _modulation(self.adaln, cond, x, 6)
        x = x + gate1 * self.attn(modulate(self.norm1(x), shift1, scale1), context, mask=context_mask)
        return x + gate2 * self.mlp(modulate(self.norm2(x), shift2, scale2))


def _check_tokens(h: torch.Tensor, rope) -> None:
    if h.dim() != 4:
        raise ValueError(f"tokens must be (B, S, M, D), got shape {tuple(h.shape)}")
    if rope is not None and tuple(rope[0].shape[:3]) != tuple(h.shape[:3]):
        raise ValueError(f"rope (cos, sin) must be (B, S, M, head_dim) like the tokens' (B, S, M) = "
                         f"{tuple(h.shape[:3])}, got {tuple(rope[0].shape)}")


def frame_attention(block: nn.Module, h: torch.Tensor, rope=None, **kwargs) -> torch.Tensor:
    """Run `block` on the tokens of each frame separately: h (B, S, M, D) -> (B, S, M, D).

    The block sees B*S sequences of M tokens. rope: (cos, sin), each (B, S, M, head_dim),
    the tokens' rotary angles. kwargs go to the block (e.g. cond of shape (B*S, ...)).
    """
    _check_tokens(h, rope)
    B = h.shape[0]
    if rope is not None:
        rope = tuple(rearrange(r, "b s m e -> (b s) m e") for r in rope)
    out = block(rearrange(h, "b s m d -> (b s) m d"), rope=rope, **kwargs)      # (B*S, M, D)
    return rearrange(out, "(b s) m d -> b s m d", b=B)


def global_attention(block: nn.Module, h: torch.Tensor, rope=None, **kwargs) -> torch.Tensor:
    """Run `block` on all tokens of all frames of a sample together: h (B, S, M, D) -> same.

    The block sees B sequences of S*M tokens. rope as in `frame_attention`.
    """
    _check_tokens(h, rope)
    S = h.shape[1]
    if rope is not None:
        rope = tuple(rearrange(r, "b s m e -> b (s m) e") for r in rope)
    out = block(rearrange(h, "b s m d -> b (s m) d"), rope=rope, **kwargs)      # (B, S*M, D)
    return rearrange(out, "b (s m) d -> b s m d", s=S)
