"""fourdlib.layers: building blocks the methods share (named so as not to shadow torch.nn).

attention.py   attention (SDPA / xformers / math reference), varlen_attention (packed
               variable-length sequences), MultiHeadAttention
blocks.py      Mlp, adaLN-Zero (adaln_zero, modulate), Block (pre-norm transformer / DiT
               block), CrossAttentionBlock, frame_attention / global_attention (tokens
               (B, S, M, D) attending within a frame or across all frames)
dpt.py         DPTHead (reassemble + fusion: tokens of 4 layers -> a dense map), its
               ResidualConvUnit and FusionBlock
embeddings.py  FourierFeatures, RotaryEmbedding1D / 3D + apply_rotary,
               timestep_embedding + TimestepEmbedder
"""
from .attention import MultiHeadAttention, attention, cu_seqlens_from_lengths, varlen_attention
from .blocks import Block, CrossAttentionBlock, Mlp, adaln_zero, frame_attention, global_attention, modulate
from .dpt import DPTHead, FusionBlock, ResidualConvUnit
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
    "CrossAttentionBlock",
    "adaln_zero",
    "modulate",
    "frame_attention",
    "global_attention",
    "DPTHead",
    "FusionBlock",
    "ResidualConvUnit",
    "FourierFeatures",
    "RotaryEmbedding1D",
    "RotaryEmbedding3D",
    "apply_rotary",
    "rotate_half",
    "timestep_embedding",
    "TimestepEmbedder",
]
