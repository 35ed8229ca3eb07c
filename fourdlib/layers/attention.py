"""Attention: one functional core with interchangeable backends, a multi-head module, and
a variable-length (packed) variant for sequences of different lengths in one batch.

Backends
  "sdpa"      ``torch.nn.functional.scaled_dot_product_attention``; on CUDA it picks the
              flash or memory-efficient kernel by itself. The default ("auto").
  "xformers"  ``xformers.ops.memory_efficient_attention``; CUDA only (xformers has no
              CPU kernels), used only when asked for.
  "math"      softmax(Q K^T / sqrt(d)) V written out in float32: the reference the tests
              compare every other path against. O(L^2) memory; not for training.

Shapes: dense attention works on (B, H, L, d) tensors, varlen attention on packed
(total, H, d) tensors with cumulative sequence lengths ``cu_seqlens`` (flash-attn's
"varlen" convention). Attention runs in the input dtype (bf16 works); only "math"
upcasts internally, then casts back.
"""
from __future__ import annotations

import importlib.util
import math
import warnings

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .embeddings import apply_rotary

__all__ = [
    "attention",
    "varlen_attention",
    "cu_seqlens_from_lengths",
    "MultiHeadAttention",
]

_BACKENDS = ("auto", "sdpa", "xformers", "math")
_VARLEN_BACKENDS = ("auto", "loop", "masked", "nested", "xformers", "flash")


def _has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


# ----------------------------------------------------------------------------------------
# Dense attention on (B, H, L, d)
# ----------------------------------------------------------------------------------------


def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(
            f"attention expects q, k, v of shape (B, H, L, d); got {tuple(q.shape)}, "
            f"{tuple(k.shape)}, {tuple(v.shape)}"
        )
    if q.shape[:2] != k.shape[:2] or k.shape[:2] != v.shape[:2]:
        raise ValueError(
            f"q, k, v must share batch and head sizes (B, H); got {tuple(q.shape[:2])}, "
            f"{tuple(k.shape[:2])}, {tuple(v.shape[:2])}"
        )
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k head dims differ: {q.shape[-1]} vs {k.shape[-1]}")
    if k.shape[2] != v.shape[2]:
        raise ValueError(f"k and v have different lengths: {k.shape[2]} vs {v.shape[2]}")
    if k.shape[2] == 0:
        raise ValueError("attention over an empty key set (Lk = 0): every query attends to nothing")
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"q, k, v must share a dtype; got {q.dtype}, {k.dtype}, {v.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k, v must be on one device; got {q.device}, {k.device}, {v.device}")


def _check_mask(mask: torch.Tensor, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Mask convention (as SDPA): bool True = may attend; a float mask is added to the
    scores (use -inf to forbid). Must broadcast to (B, H, Lq, Lk)."""
    target = (q.shape[0], q.shape[1], q.shape[2], k.shape[2])
    try:
        if mask.dim() > 4 or torch.broadcast_shapes(mask.shape, target) != target:
            raise RuntimeError
    except RuntimeError:
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} does not broadcast to (B, H, Lq, Lk) = {target}; "
            "a key-padding mask of shape (B, Lk) is passed as mask[:, None, None, :]"
        ) from None
    if mask.device != q.device:
        raise ValueError(f"mask is on {mask.device} but q is on {q.device}")
    if mask.dtype == torch.bool:
        # A query row with no allowed key has no softmax: SDPA returns NaN or 0 depending on
        # the kernel. Refuse it instead of returning a silent wrong answer.
        if not mask.any(dim=-1).all():
            raise ValueError("mask leaves some query with no key to attend to (an all-False row)")
        return mask
    if not mask.is_floating_point():
        raise ValueError(f"mask must be bool or floating point, got {mask.dtype}")
    return mask.to(q.dtype)


def math_attention(q, k, v, mask=None):
    """Reference: softmax(Q K^T / sqrt(d) + mask) V in float32, cast back to q's dtype."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    scores = torch.einsum("bhqd,bhkd->bhqk", q.float(), k.float()) * scale  # (B, H, Lq, Lk)
    if mask is not None:
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:
            scores = scores + mask.float()
    weights = scores.softmax(dim=-1)  # softmax subtracts the row max: stable
    return torch.einsum("bhqk,bhkd->bhqd", weights, v.float()).to(q.dtype)


def _xformers_attention(q, k, v):
    import xformers.ops as xops

    # xformers uses (B, L, H, d); a transpose keeps the last dim contiguous, which it needs.
    out = xops.memory_efficient_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    return out.transpose(1, 2)


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Scaled dot-product attention.

    q: (B, H, Lq, d), k: (B, H, Lk, d), v: (B, H, Lk, dv) -> (B, H, Lq, dv), in q's dtype.
    mask: bool (True = may attend) or additive float, broadcastable to (B, H, Lq, Lk).
      A bool mask that leaves a query with no key is refused (the check reads the mask:
      one host sync on CUDA; masks are rare in these models, so it is worth it).
    backend: "auto" (= "sdpa"), "sdpa", "xformers" (CUDA only, no mask), "math" (reference).
    """
    if backend not in _BACKENDS:
        raise ValueError(f"unknown attention backend {backend!r}; choose one of {_BACKENDS}")
    _check_qkv(q, k, v)
    if mask is not None:
        mask = _check_mask(mask, q, k)

    if backend == "math":
        return math_attention(q, k, v, mask)
    if backend == "xformers":
        if not q.is_cuda:
            raise RuntimeError(
                "backend='xformers' needs CUDA tensors: xformers has no CPU kernels. "
                "Use backend='sdpa' (or 'auto') on CPU."
            )
        if not _has_module("xformers"):
            raise RuntimeError("backend='xformers' was asked for but xformers is not installed")
        if mask is not None:
            raise ValueError(
                "backend='xformers' takes no dense mask here; use backend='sdpa' for dense masks "
                "or varlen_attention for block-diagonal (variable-length) ones"
            )
        return _xformers_attention(q, k, v)
    # "auto" and "sdpa": PyTorch chooses flash / memory-efficient / math kernels itself.
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


# ----------------------------------------------------------------------------------------
# Variable-length attention on packed (total, H, d) tensors
# ----------------------------------------------------------------------------------------


def cu_seqlens_from_lengths(lengths: torch.Tensor) -> torch.Tensor:
    """Sequence lengths (n,) -> cumulative offsets (n + 1,) starting at 0, int64."""
    lengths = torch.as_tensor(lengths)
    if lengths.dim() != 1 or lengths.dtype.is_floating_point or (lengths < 0).any():
        raise ValueError("lengths must be a 1-D tensor of non-negative integers")
    return F.pad(lengths.long().cumsum(0), (1, 0))


def _check_cu_seqlens(cu: torch.Tensor, total: int, name: str) -> torch.Tensor:
    if not isinstance(cu, torch.Tensor) or cu.dim() != 1 or cu.dtype.is_floating_point:
        raise ValueError(f"{name} must be a 1-D integer tensor of cumulative offsets")
    if cu.numel() < 2:
        raise ValueError(f"{name} needs at least 2 entries (n_sequences + 1), got {cu.numel()}")
    cu = cu.long()
    if cu[0] != 0:
        raise ValueError(f"{name} must start at 0, got {int(cu[0])}")
    if (cu[1:] < cu[:-1]).any():
        raise ValueError(f"{name} must be non-decreasing")
    if cu[-1] != total:
        raise ValueError(f"{name} ends at {int(cu[-1])} but the packed tensor has {total} tokens")
    return cu


def _varlen_loop(q, k, v, cu_q, cu_k):
    """One SDPA call per sequence. On CPU this beats a block-diagonal mask (measured 6.6x,
    see dependency notes): no work is spent on the masked-out blocks."""
    outs = []
    for a, b, c, e in zip(cu_q[:-1].tolist(), cu_q[1:].tolist(), cu_k[:-1].tolist(), cu_k[1:].tolist()):
        if b == a:  # a sequence with no queries contributes no output rows
            continue
        # (L, H, d) -> (H, L, d): SDPA treats the leading dim as batch
        o = F.scaled_dot_product_attention(q[a:b].transpose(0, 1), k[c:e].transpose(0, 1), v[c:e].transpose(0, 1))
        outs.append(o.transpose(0, 1))  # (Lq_i, H, dv)
    if not outs:
        return q.new_zeros(0, q.shape[1], v.shape[2])
    return torch.cat(outs, dim=0)


def _segment_ids(cu: torch.Tensor) -> torch.Tensor:
    """(n + 1,) offsets -> (total,) sequence index of every token."""
    n = cu.numel() - 1
    return torch.repeat_interleave(torch.arange(n, device=cu.device), cu[1:] - cu[:-1])


def _varlen_masked(q, k, v, cu_q, cu_k):
    """One attention call over everything with a block-diagonal boolean mask.
    O(total_q * total_k) memory: a reference, not a production path."""
    seg_q, seg_k = _segment_ids(cu_q.to(q.device)), _segment_ids(cu_k.to(q.device))
    mask = seg_q[:, None] == seg_k[None, :]  # (Tq, Tk): True inside a sequence's block
    qh, kh, vh = (rearrange(t, "t h d -> 1 h t d") for t in (q, k, v))
    out = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask)
    return rearrange(out, "1 h t d -> t h d")


def _varlen_nested(q, k, v, cu_q, cu_k):
    """PyTorch nested (jagged) tensors + SDPA: on CUDA this dispatches to the flash /
    memory-efficient kernels with no padding. Needs only torch."""
    device = q.device
    nq = torch.nested.nested_tensor_from_jagged(q, offsets=cu_q.to(device))  # (n, j, H, d)
    nk = torch.nested.nested_tensor_from_jagged(k, offsets=cu_k.to(device))
    nv = torch.nested.nested_tensor_from_jagged(v, offsets=cu_k.to(device))
    with warnings.catch_warnings():
        # torch's CPU fallback for jagged SDPA goes through the older strided nested layout
        # and warns that it is a prototype; the result is correct (tested), so keep quiet.
        warnings.filterwarnings("ignore", message="The PyTorch API of nested tensors is in prototype")
        out = F.scaled_dot_product_attention(nq.transpose(1, 2), nk.transpose(1, 2), nv.transpose(1, 2))
    return out.transpose(1, 2).values()  # back to packed (Tq, H, dv)


def _varlen_xformers(q, k, v, cu_q, cu_k):
    from xformers.ops import fmha

    bias = fmha.attn_bias.BlockDiagonalMask.from_seqlens(
        q_seqlen=(cu_q[1:] - cu_q[:-1]).tolist(), kv_seqlen=(cu_k[1:] - cu_k[:-1]).tolist()
    )
    # xformers wants (1, total, H, d) for block-diagonal biases
    return fmha.memory_efficient_attention(q[None], k[None], v[None], attn_bias=bias)[0]


def _varlen_flash(q, k, v, cu_q, cu_k):
    from flash_attn import flash_attn_varlen_func

    lq, lk = cu_q[1:] - cu_q[:-1], cu_k[1:] - cu_k[:-1]
    return flash_attn_varlen_func(
        q, k, v,
        cu_q.to(device=q.device, dtype=torch.int32), cu_k.to(device=q.device, dtype=torch.int32),
        int(lq.max()), int(lk.max()),
    )


def _pick_varlen_backend(q: torch.Tensor) -> str:
    if not q.is_cuda:
        return "loop"
    if q.dtype in (torch.float16, torch.bfloat16) and _has_module("flash_attn"):
        return "flash"
    if _has_module("xformers"):
        return "xformers"
    return "nested"


def varlen_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    cu_seqlens_k: torch.Tensor | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Attention within each of n packed sequences; no token sees another sequence.

    q: (Tq, H, d), k: (Tk, H, d), v: (Tk, H, dv) -> (Tq, H, dv).
    cu_seqlens_q: (n + 1,) offsets, sequence i's queries are q[cu_q[i]:cu_q[i+1]];
    cu_seqlens_k likewise for keys (defaults to cu_seqlens_q: self-attention).
    Used for window attention where windows hold different numbers of tokens.

    backend:
      "auto"      CPU: "loop". CUDA: "flash" (flash_attn installed, fp16/bf16), else
                  "xformers" (installed), else "nested".
      "loop"      one SDPA call per sequence (fastest on CPU).
      "masked"    one SDPA call with a block-diagonal bool mask (reference; O(Tq*Tk) memory).
      "nested"    torch nested jagged tensors + SDPA (no extra dependency; fast on CUDA).
      "xformers"  xformers BlockDiagonalMask (CUDA only).
      "flash"     flash_attn.flash_attn_varlen_func (CUDA only, fp16/bf16).
    """
    if backend not in _VARLEN_BACKENDS:
        raise ValueError(f"unknown varlen backend {backend!r}; choose one of {_VARLEN_BACKENDS}")
    if q.dim() != 3 or k.dim() != 3 or v.dim() != 3:
        raise ValueError(
            f"varlen_attention expects packed (total, H, d) tensors; got {tuple(q.shape)}, "
            f"{tuple(k.shape)}, {tuple(v.shape)}"
        )
    if q.shape[1] != k.shape[1] or k.shape[1] != v.shape[1]:
        raise ValueError(f"q, k, v head counts differ: {q.shape[1]}, {k.shape[1]}, {v.shape[1]}")
    if q.shape[2] != k.shape[2]:
        raise ValueError(f"q and k head dims differ: {q.shape[2]} vs {k.shape[2]}")
    if k.shape[0] != v.shape[0]:
        raise ValueError(f"k and v have different token counts: {k.shape[0]} vs {v.shape[0]}")
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"q, k, v must share a dtype; got {q.dtype}, {k.dtype}, {v.dtype}")
    if cu_seqlens_k is None:
        cu_seqlens_k = cu_seqlens_q
    cu_q = _check_cu_seqlens(cu_seqlens_q, q.shape[0], "cu_seqlens_q")
    cu_k = _check_cu_seqlens(cu_seqlens_k, k.shape[0], "cu_seqlens_k")
    if cu_q.numel() != cu_k.numel():
        raise ValueError(
            f"cu_seqlens_q describes {cu_q.numel() - 1} sequences but cu_seqlens_k {cu_k.numel() - 1}"
        )
    lq, lk = cu_q[1:] - cu_q[:-1], cu_k[1:] - cu_k[:-1]
    if ((lq > 0) & (lk == 0)).any():
        raise ValueError("some sequence has queries but no keys: those queries attend to nothing")

    if backend == "auto":
        backend = _pick_varlen_backend(q)
    if backend in ("xformers", "flash"):
        if not q.is_cuda:
            raise RuntimeError(
                f"varlen backend {backend!r} needs CUDA tensors (it has no CPU kernels); use 'loop' on CPU"
            )
        module = "xformers" if backend == "xformers" else "flash_attn"
        if not _has_module(module):
            raise RuntimeError(f"varlen backend {backend!r} was asked for but {module} is not installed")
        if backend == "flash" and q.dtype not in (torch.float16, torch.bfloat16):
            raise ValueError(f"varlen backend 'flash' needs float16 or bfloat16, got {q.dtype}")
        return (_varlen_xformers if backend == "xformers" else _varlen_flash)(q, k, v, cu_q, cu_k)
    if backend == "masked":
        return _varlen_masked(q, k, v, cu_q, cu_k)
    if backend == "nested":
        if (lq == 0).any():
            raise ValueError("varlen backend 'nested' does not take empty sequences; use 'loop'")
        return _varlen_nested(q, k, v, cu_q, cu_k)
    return _varlen_loop(q, k, v, cu_q, cu_k)


# ----------------------------------------------------------------------------------------
# Modules
# ----------------------------------------------------------------------------------------


class MultiHeadAttention(nn.Module):
    """Multi-head self- or cross-attention.

    Self-attention: ``attn(x)``; cross-attention: ``attn(x, context)`` with context of
    width ``kv_dim``. Optional rotary position embedding on q and k (pass ``pos`` and let
    the module's ``rotary`` turn it into cos/sin, or pass precomputed ``rope=(cos, sin)``),
    optional qk-norm (RMSNorm per head on q and k, as in ViT-22B / DiT variants / VGGT:
    bounds the logits, which keeps bf16 training stable).

    Packed variable-length input: x of shape (T, dim) with ``cu_seqlens`` (and a packed
    context with ``context_cu_seqlens``) runs ``varlen_attention``: tokens attend only
    within their own sequence (e.g. Native4D's windows). Its backend follows ``backend``:
    "xformers" -> "xformers", "math" -> "masked", otherwise "auto".
    """

    def __init__(
        self,
        dim: int,
        heads: int = 8,
        kv_dim: int | None = None,
        qkv_bias: bool = True,
        qk_norm: bool = False,
        rotary: nn.Module | None = None,
        backend: str = "auto",
    ):
        super().__init__()
        if dim % heads != 0:
            raise ValueError(f"dim={dim} is not divisible by heads={heads}")
        if backend not in _BACKENDS:
            raise ValueError(f"unknown attention backend {backend!r}; choose one of {_BACKENDS}")
        self.heads, self.head_dim, self.backend = heads, dim // heads, backend
        self.to_q = nn.Linear(dim, dim, bias=qkv_bias)
        self.to_kv = nn.Linear(kv_dim or dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.q_norm = nn.RMSNorm(self.head_dim, eps=1e-6) if qk_norm else None
        self.k_norm = nn.RMSNorm(self.head_dim, eps=1e-6) if qk_norm else None
        self.rotary = rotary

    def _rope(self, pos, rope, name, packed):
        """positions or (cos, sin) -> (cos, sin) broadcastable to q / k."""
        if pos is not None:
            if self.rotary is None:
                raise ValueError(f"{name} given but this attention has no rotary embedding")
            rope = self.rotary(pos)
        if rope is None:
            return None
        cos, sin = rope
        if cos.shape[-1] != self.head_dim:
            raise ValueError(f"rotary cos/sin have last dim {cos.shape[-1]}, expected head_dim={self.head_dim}")
        if packed:  # q is (T, H, d): (T, d) -> (T, 1, d)
            return cos[..., None, :], sin[..., None, :]
        if cos.dim() == 3:  # q is (B, H, L, d): (B, L, d) -> (B, 1, L, d), same for every head
            return cos[:, None], sin[:, None]
        return cos, sin

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        pos: torch.Tensor | None = None,
        context_pos: torch.Tensor | None = None,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        context_rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        cu_seqlens: torch.Tensor | None = None,
        context_cu_seqlens: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x: (B, Lq, dim), context: (B, Lk, kv_dim) or None (self-attention) -> (B, Lq, dim).
        Packed: x (Tq, dim), context (Tk, kv_dim) or None, cu_seqlens (n + 1,),
        context_cu_seqlens (n + 1,) (default cu_seqlens) -> (Tq, dim).

        mask: broadcastable to (B, H, Lq, Lk) (see ``attention``); dense input only.
        pos / rope: positions or (cos, sin) of the queries; context_pos / context_rope: of
        the keys (default: the queries' own, which is right for self-attention only).
        """
        packed = cu_seqlens is not None
        if x.dim() != (2 if packed else 3):
            raise ValueError(
                f"x must be {'(T, dim) when cu_seqlens is given' if packed else '(B, L, dim)'}, got {tuple(x.shape)}"
            )
        if packed and mask is not None:
            raise ValueError("mask cannot be combined with cu_seqlens: the sequences are the mask")
        if not packed and context_cu_seqlens is not None:
            raise ValueError("context_cu_seqlens given without cu_seqlens")
        self_attn = context is None
        context = x if self_attn else context
        if packed:
            q = rearrange(self.to_q(x), "t (h d) -> t h d", h=self.heads)
            k, v = rearrange(self.to_kv(context), "t (two h d) -> two t h d", two=2, h=self.heads)
        else:
            q = rearrange(self.to_q(x), "b l (h d) -> b h l d", h=self.heads)
            k, v = rearrange(self.to_kv(context), "b l (two h d) -> two b h l d", two=2, h=self.heads)
        if self.q_norm is not None:
            # in float32: under autocast q, k are bf16 while the norm weights stay fp32
            q, k = self.q_norm(q.float()).to(q.dtype), self.k_norm(k.float()).to(k.dtype)

        rope_q = self._rope(pos, rope, "pos", packed)
        rope_k = self._rope(context_pos, context_rope, "context_pos", packed)
        if rope_q is not None and rope_k is None:
            if not self_attn:
                raise ValueError("cross-attention with rotary embedding needs context_pos or context_rope")
            rope_k = rope_q
        if (rope_q is None) != (rope_k is None):
            raise ValueError("rotary embedding must be applied to both queries and keys")
        if rope_q is not None:
            q, k = apply_rotary(q, *rope_q), apply_rotary(k, *rope_k)

        if packed:
            backend = {"xformers": "xformers", "math": "masked"}.get(self.backend, "auto")
            out = varlen_attention(q, k, v, cu_seqlens, context_cu_seqlens, backend=backend)  # (Tq, H, d)
            return self.proj(rearrange(out, "t h d -> t (h d)"))
        out = attention(q, k, v, mask=mask, backend=self.backend)  # (B, H, Lq, d)
        return self.proj(rearrange(out, "b h l d -> b l (h d)"))
