"""fourdlib.nn: building blocks the five methods share.

attention.py   attention (SDPA / xformers / math reference), varlen_attention (packed
               variable-length sequences), MultiHeadAttention, Mlp, Block (pre-norm
               transformer / DiT block with adaLN-Zero and optional cross-attention)
embeddings.py  FourierFeatures, RotaryEmbedding1D / 3D + apply_rotary,
               timestep_embedding + TimestepEmbedder
"""
from .attention import (
    Block,
    Mlp,
    MultiHeadAttention,
    attention,
    cu_seqlens_from_lengths,
    modulate,
    varlen_attention,
)
from .embeddings import (
    FourierFeatures,
    RotaryEmbedding1D,
    RotaryEmbedding3D,
    TimestepEmbedder,
    apply_rotary,
    rotate_half,
    timestep_embedding,
)

__all__ = [
    "attention",
    "varlen_attention",
    "cu_seqlens_from_lengths",
    "MultiHeadAttention",
    "Mlp",
    "Block",
    "modulate",
    "FourierFeatures",
    "RotaryEmbedding1D",
    "RotaryEmbedding3D",
    "apply_rotary",
    "rotate_half",
    "timestep_embedding",
    "TimestepEmbedder",
]
