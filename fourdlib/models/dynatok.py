"""DynaTok (ICML 2026, arXiv 2606.12189): 4D reconstruction from partial point clouds with
latent tokens, read top to bottom.

    partial clouds (B, S, N, 3)          unordered, incomplete, no correspondence
      -> normalise (one median centre / scale per sequence)               normalize_batch
      -> tokenizer: per frame, M FPS anchors cross-attend to the frame's points,
         then self-attention                        (B*S, M, D)           DynaTok.tokenize
      -> spatio-temporal transformer: intra-frame attention (B*S, M, D) alternating with
         cross-frame attention over all S*M tokens of a sequence (B, S*M, D); 3D RoPE
         from the anchors' coordinates                                   DynaTok.encode
      -> residual latents Z_s = G + H_s, G = frame 1's output, H_1 = 0
      -> flow-matching decoder v(x_t, t | Z_s): query points cross-attend to Z_s
                                                                          DynaTok.velocity
      -> integrate the ODE from uniform noise: any number of points per frame   decode
      -> back to world units                                              reconstruct

Training uses only the flow-matching loss on GT surface points (`loss`).

Choices the paper leaves open (ours, and why)
---------------------------------------------
- FPS starts at the point farthest from the origin (of the normalised frame). Any fixed
  index (FPS's default 0) would make the anchors depend on the order of the points; this
  start depends only on the set of points, so permuting or duplicating the points gives
  the same anchors, and the tokens are the same up to float error (tested).
- Residual latents. If G = Z_1 and H_s = Z_s - G were only a relabelling of the
  transformer's outputs, "H_1 = 0" would be true by arithmetic and mean nothing. Here the
  transformer's output for frame 1 IS the reference G and its outputs for frames s > 1
  ARE the residuals H_s; the latent the decoder sees is Z_s = G + H_s, and H_1 is set to
  zero by construction. So every frame's latent literally starts from frame 1's, and
  decoding G alone, or Z with H zeroed, shows what the reference holds. Two learned
  vectors make this learnable for a transformer that otherwise treats frames as a set:
  `ref_embed`, added to frame 1's tokens (the transformer must know which frame's output
  is absolute and which are offsets), and `slot_embed` (M, D), added to token slot m of
  every frame (residual slot m is added to G's slot m; the slot embedding lets slot m of
  frame s find slot m of frame 1 in the cross-frame attention).
- No frame index or time embedding: apart from the reference flag the frames form a set,
  so a model trained on S = 8 frames runs on 16 (the paper's evaluation) or any number.
- temporal=False (the paper's "per-frame only" ablation) makes every transformer layer
  intra-frame AND turns the residual off (Z_s = the frame's own output; G = Z_1,
  H_s = Z_s - G is then only reported), since adding frame 1's tokens to every frame
  would itself carry information across frames. Same parameters otherwise.
- Decoder: query points attend to the tokens only, not to each other, so every point is
  an independent sample of the frame's surface distribution: sampling cost is linear in
  the number of points and any number can be drawn, in chunks. The time t conditions the
  decoder through adaLN-Zero (DiT). The latents enter the decoder without a LayerNorm: a
  norm would make it blind to each token's scale, and training then shrank |G| until
  G + H_s ~ H_s (|H_s| / |G| reached ~7 after 2000 tiny steps, against ~1.3 without it).
- Training times: one t per frame by default (`time_per="frame"`): every point of a frame
  shares it, as in sampling where the ODE moves all points together, and the adaLN
  modulation is then computed once per frame instead of once per point (a tiny training
  step took 0.54 s instead of 0.78 s on 2 CPU cores). With B*S = 32 frames per batch the batch still
  covers [0, 1] well. `time_per="point"` draws one t per point (lower-variance
  gradients, costlier); both are the same loss in expectation.
- Normalisation: one centre and scale per sequence (fourdlib.geometry.normalize), from
  the partial input of all frames (norm_frame="all") or of frame 1 only ("first": the
  coordinates are then aligned to frame 1, the reference). GT targets use the same
  numbers. The network works in normalised space, where the uniform prior [-1, 1]^3 and
  the Fourier / RoPE frequencies are set.
- D and depths are not in the paper: see CONFIGS.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
from einops import rearrange
from torch import nn

from ..geometry.fps import farthest_point_sample, gather_points
from ..geometry.normalize import median_center_scale
from ..nn import Block, FourierFeatures, Mlp, MultiHeadAttention, RotaryEmbedding3D, TimestepEmbedder, modulate
from ..train import flow_matching as fm
from ..train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

__all__ = ["DynaTokConfig", "CONFIGS", "DynaTok", "normalize_batch", "loss", "decode", "reconstruct",
           "save_model", "load_model", "make_dataset", "config_table", "count_parameters", "MODEL_NAME"]

MODEL_NAME = "dynatok"


# ======================================================================================
# Config: one row per scale
# ======================================================================================


@dataclass(frozen=True)
class DynaTokConfig:
    # ---- data
    input_points: int = 512     # N: partial points per frame given to the tokenizer
    train_frames: int = 8       # S: frames per training window
    eval_frames: int = 16       # frames per evaluation window (the paper: 16)
    train_points: int = 512     # GT points per frame used as flow-matching targets x1
    eval_points: int = 2048     # points generated per frame at evaluation
    norm_frame: str = "all"     # "all": centre/scale from every frame's input; "first": frame 1's
    # ---- tokenizer
    num_tokens: int = 32        # M: FPS anchors = tokens per frame
    dim: int = 128              # D: token width (also the decoder's width)
    heads: int = 4
    fourier_bands: int = 6      # NeRF-style frequencies pi * 2^k, k = 0..bands-1
    tok_depth: int = 1          # self-attention layers after the anchor cross-attention
    # ---- spatio-temporal transformer
    st_depth: int = 4           # layers, alternating intra-frame / cross-frame (starting intra)
    temporal: bool = True       # False: the per-frame-only ablation (no cross-frame information)
    residual: bool = True       # Z_s = G + H_s (only with temporal=True)
    rope_scale: float = 32.0    # RoPE: one radian of the fastest pair per 1/32 of the unit distance
    rope_base: float = 100.0    # slowest wavelength 2*pi*100/32 ~ 20 units > the normalised scene
    mlp_ratio: float = 4.0      # MLP width / D in the tokenizer and the transformer
    # ---- flow-matching decoder
    dec_depth: int = 2          # cross-attention layers of the velocity network
    dec_mlp_ratio: float = 2.0  # the decoder runs once per point and ODE step: keep it lean
    prior: str = "uniform"      # x0 ~ U([-1, 1]^3), as the paper
    time_dist: str = "uniform"  # training t ~ U(0, 1)
    time_per: str = "frame"     # one t per "frame" or per "point" in training (see module doc)
    sample_steps: int = 32      # ODE steps at evaluation (Heun: 2 velocity evaluations per step)
    sample_method: str = "heun"
    # ---- training (AdamW with linear warm-up; fourdlib.train.train adds a cosine decay)
    steps: int = 2000
    batch_size: int = 4         # sequences per process (the paper: 8 per GPU)
    lr: float = 1e-3
    warmup_steps: int = 100
    weight_decay: float = 0.01

    def __post_init__(self):
        for name in ("input_points", "train_frames", "eval_frames", "train_points", "eval_points",
                     "num_tokens", "dim", "heads", "fourier_bands", "st_depth", "dec_depth",
                     "sample_steps", "steps", "batch_size"):
            v = getattr(self, name)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                raise ValueError(f"DynaTokConfig.{name} must be a positive int, got {v!r}")
        if not (isinstance(self.tok_depth, int) and self.tok_depth >= 0):
            raise ValueError(f"DynaTokConfig.tok_depth must be an int >= 0, got {self.tok_depth!r}")
        if self.num_tokens > self.input_points:
            raise ValueError(f"DynaTokConfig: num_tokens (M={self.num_tokens}) exceeds input_points "
                             f"(N={self.input_points}); FPS cannot pick more anchors than points")
        if self.dim % self.heads or (self.dim // self.heads) % 2 or self.dim // self.heads < 6:
            raise ValueError(f"DynaTokConfig: dim={self.dim} / heads={self.heads} must give an even head "
                             "dim >= 6 (3D RoPE turns at least one pair per axis)")
        choices = {"norm_frame": ("all", "first"), "prior": fm.PRIORS, "time_dist": fm.TIME_DISTRIBUTIONS,
                   "time_per": ("frame", "point"), "sample_method": tuple(fm.METHODS)}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"DynaTokConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}")

    @property
    def uses_residual(self) -> bool:
        """Whether Z_s = G + H_s is built (needs cross-frame information, so temporal=True)."""
        return self.temporal and self.residual

    @property
    def ref_frame(self) -> int | None:
        """The `ref_frame` argument of fourdlib.geometry.normalize for `norm_frame`."""
        return 0 if self.norm_frame == "first" else None

    def train_config(self, **overrides):
        """A fourdlib.train.TrainConfig with this row's steps, batch, lr, warm-up, decay."""
        from ..train import TrainConfig

        kw = dict(steps=self.steps, batch_size=self.batch_size, lr=self.lr,
                  warmup_steps=self.warmup_steps, weight_decay=self.weight_decay)
        return TrainConfig(**{**kw, **overrides})


# One row per scale. The paper's row ("full"): N = 8192 input points, M = 512 tokens, S = 8
# training frames and 16 for evaluation, AdamW at lr 1e-3 with linear warm-up, 250k steps,
# 8 sequences per GPU on 8 GPUs (torchrun: batch_size is per process). Not in the paper,
# so ours: D = 512 with 8 heads, 2 tokenizer + 12 spatio-temporal + 6 decoder layers (about
# ViT-B's width and depth; 71M parameters), the warm-up length, 2048 GT points per frame as
# targets, the ODE steps, and coordinates aligned to frame 1 (norm_frame="first", the frame
# the residual latents refer to). tiny is the CPU prototype (1.8M parameters, ~0.5 s
# a step on 2 idle cores: 1200 steps in ~10 min); small is sized for about an hour on one
# GPU (untimed: 40 s a step on 2 CPU cores); smoke runs in seconds.
_COLUMNS = ("input_points", "num_tokens", "dim", "heads", "tok_depth", "st_depth", "dec_depth",
            "train_frames", "eval_frames", "train_points", "eval_points", "sample_steps",
            "steps", "batch_size", "lr", "warmup_steps", "norm_frame")
_TABLE = {
    #          N     M    D    heads tok  st  dec   S  S_eval x1    eval  ode   steps   batch lr    warm-up norm
    "smoke": (128,   16,  32,  2,    1,   2,  1,    4,  4,   128,  256,  4,    20,      2,   1e-3, 2,    "first"),
    "tiny":  (512,   32,  128, 4,    1,   4,  2,    8,  16,  512,  2048, 16,   1200,    4,   1e-3, 100,  "first"),
    "small": (2048,  128, 256, 8,    2,   8,  3,    8,  16,  2048, 8192, 32,   30_000,  8,   1e-3, 1000, "first"),
    "full":  (8192,  512, 512, 8,    2,   12, 6,    8,  16,  2048, 8192, 64,   250_000, 8,   1e-3, 5000, "first"),
}
CONFIGS: dict[str, DynaTokConfig] = {name: DynaTokConfig(**dict(zip(_COLUMNS, row, strict=True)))
                                     for name, row in _TABLE.items()}


def config_table():
    """CONFIGS as a pandas DataFrame (one row per scale, every field), for notebooks."""
    import pandas as pd

    return pd.DataFrame({name: dataclasses.asdict(c) for name, c in CONFIGS.items()}).T


# ======================================================================================
# Normalisation (one centre / scale per sequence)
# ======================================================================================


def normalize_batch(partial: torch.Tensor, lengths: torch.Tensor | None = None, ref_frame: int | None = None):
    """Median centre / scale of each sequence's INPUT; returns (normalised, center (B, 3), scale (B,)).

    partial (B, S, N, 3); lengths (B, S) valid points per frame (rows beyond are padding,
    ignored by the medians) or None. ref_frame None pools all frames, 0 uses frame 1 only.
    Apply the same numbers to the GT: gt_n = (gt - center[:, None, None]) / scale[:, None, None, None].
    """
    B, S, N, _ = partial.shape
    centers, scales = [], []
    for b in range(B):  # a few sequences per batch; the medians sort all their points at once
        n = [N] * S if lengths is None else lengths[b].tolist()
        c, s = median_center_scale([partial[b, i, : n[i]] for i in range(S)], ref_frame=ref_frame)
        centers.append(c)
        scales.append(s)
    center, scale = torch.stack(centers).to(partial), torch.stack(scales).to(partial)  # (B, 3), (B,)
    return (partial - center[:, None, None]) / scale[:, None, None, None], center, scale


# ======================================================================================
# The network
# ======================================================================================


class CrossAttentionBlock(nn.Module):
    """Queries attend to a context, then an MLP (pre-norm). With cond_dim, adaLN-Zero
    modulation as in DiT (the decoder's timestep). Unlike fourdlib.nn.Block there is no
    self-attention: queries never see each other (anchors pool points; decoder points are
    independent samples).

        x = x + gate1 * attn(modulate(norm(x)), norm_c(context))
        x = x + gate2 * mlp(modulate(norm2(x)))

    norm_c is a LayerNorm, or nothing with norm_context=False (the decoder, see DynaTok).
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
        self.adaln = None
        if adaln:
            self.adaln = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, 6 * dim))
            nn.init.zeros_(self.adaln[1].weight)  # the block starts as the identity
            nn.init.zeros_(self.adaln[1].bias)

    def forward(self, x, context, cond=None, context_mask=None):
        """x (B, L, dim), context (B, Lc, dim), cond (B, cond_dim) or (B, L, cond_dim) -> (B, L, dim)."""
        context = self.norm_context(context)
        if self.adaln is None:
            x = x + self.attn(self.norm1(x), context, mask=context_mask)
            return x + self.mlp(self.norm2(x))
        mod = self.adaln(cond)
        if mod.dim() < x.dim():
            mod = mod.unsqueeze(-2)  # (B, 1, 6*dim): one modulation for every query of a frame
        shift1, scale1, gate1, shift2, scale2, gate2 = mod.chunk(6, dim=-1)
        x = x + gate1 * self.attn(modulate(self.norm1(x), shift1, scale1), context, mask=context_mask)
        return x + gate2 * self.mlp(modulate(self.norm2(x), shift2, scale2))


class DynaTok(nn.Module):
    """Tokenizer + spatio-temporal transformer + flow-matching velocity field.

    Everything works in normalised coordinates (see `normalize_batch`); `reconstruct` wraps
    normalisation, encoding, sampling and the way back to world units.
    forward(partial, x_t, t) = velocity(x_t, t, encode(partial)["Z"]), plus the latents:
    the one call the training loop makes (under DDP it is what syncs gradients).
    """

    def __init__(self, cfg: DynaTokConfig):
        super().__init__()
        self.cfg = cfg
        D, H, M = cfg.dim, cfg.heads, cfg.num_tokens
        self.fourier = FourierFeatures(3, num_bands=cfg.fourier_bands)  # xyz -> 3 + 6 * bands, no weights
        # tokenizer
        self.point_embed = nn.Linear(self.fourier.out_dim, D)  # shared by anchors (queries) and points (keys)
        self.anchor_attn = CrossAttentionBlock(D, H, cfg.mlp_ratio)
        self.tok_blocks = nn.ModuleList([Block(D, H, cfg.mlp_ratio, qk_norm=True) for _ in range(cfg.tok_depth)])
        # spatio-temporal transformer
        self.rope = RotaryEmbedding3D(D // H, base=cfg.rope_base, scale=cfg.rope_scale)
        if cfg.uses_residual:
            self.slot_embed = nn.Parameter(torch.randn(M, D) * 0.02)  # identity of token slot m
            self.ref_embed = nn.Parameter(torch.randn(D) * 0.02)      # "this frame is the reference"
        self.st_blocks = nn.ModuleList([Block(D, H, cfg.mlp_ratio, qk_norm=True) for _ in range(cfg.st_depth)])
        self.latent_norm = nn.LayerNorm(D, eps=1e-6)
        self.latent_proj = nn.Linear(D, D)  # no norm after it: |H_s| is free to be small
        # flow-matching decoder
        self.query_embed = nn.Linear(self.fourier.out_dim, D)
        self.time_embed = TimestepEmbedder(D, t_scale=1000.0)  # t in [0, 1] spans the frequencies
        # No LayerNorm on the latents: a norm would make the decoder blind to each token's
        # scale, and the network could then shrink G until G + H_s ~ H_s, bypassing the reference.
        self.dec_blocks = nn.ModuleList([CrossAttentionBlock(D, H, cfg.dec_mlp_ratio, cond_dim=D, norm_context=False)
                                         for _ in range(cfg.dec_depth)])
        self.out_norm = nn.LayerNorm(D, eps=1e-6, elementwise_affine=False)
        self.out_adaln = nn.Sequential(nn.SiLU(), nn.Linear(D, 2 * D))
        self.out = nn.Linear(D, 3)
        for layer in (self.out_adaln[1], self.out):  # DiT's zero-initialised final layer: v = 0 at start
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    # ---------------------------------------------------------------- 1. tokenizer
    def tokenize(self, points: torch.Tensor, lengths: torch.Tensor | None = None):
        """Per-frame tokens: points (F, N, 3) -> tokens (F, M, D), anchors (F, M, 3).

        F = B*S frames are independent here. lengths (F,): valid points per frame, the
        rest is padding (masked out of the attention, never an anchor).
        """
        N = points.shape[1]
        valid = None if lengths is None else torch.arange(N, device=points.device) < lengths[:, None]  # (F, N)
        with torch.no_grad():
            radius = points.float().norm(dim=-1)                          # (F, N)
            if valid is not None:
                radius = radius.masked_fill(~valid, -1.0)
            start = radius.argmax(dim=1)                                  # farthest from the origin
            idx = farthest_point_sample(points, self.cfg.num_tokens, start=start, lengths=lengths)  # (F, M)
        anchors = gather_points(points, idx)                              # (F, M, 3)
        queries = self.point_embed(self.fourier(anchors))                 # (F, M, D)
        keys = self.point_embed(self.fourier(points))                     # (F, N, D)
        mask = None if valid is None else valid[:, None, None, :]         # (F, 1, 1, N)
        tokens = self.anchor_attn(queries, keys, context_mask=mask)       # (F, M, D): softmax-pooled points
        for blk in self.tok_blocks:
            tokens = blk(tokens)                                          # local context between anchors
        return tokens, anchors

    # ---------------------------------------------------------------- 2.+3. transformer, residual latents
    def encode(self, partial: torch.Tensor, lengths: torch.Tensor | None = None) -> dict:
        """partial (B, S, N, 3) normalised -> dict of latents:

        Z (B, S, M, D)  what the decoder of frame s reads (= G + H_s with the residual)
        G (B, M, D)     reference tokens (frame 1's output)
        H (B, S, M, D)  residuals, H[:, 0] == 0 exactly
        anchors (B, S, M, 3), tokens (B, S, M, D) (the tokenizer's output, before the transformer)
        """
        if partial.dim() != 4 or partial.shape[-1] != 3:
            raise ValueError(f"DynaTok.encode expects partial clouds (B, S, N, 3), got {tuple(partial.shape)}")
        B, S, N, _ = partial.shape
        cfg = self.cfg
        flat_len = None if lengths is None else lengths.reshape(B * S)
        tokens, anchors = self.tokenize(rearrange(partial, "b s n c -> (b s) n c"), flat_len)
        cos, sin = self.rope(anchors)                                     # (B*S, M, head_dim) each
        rope_frame = (cos, sin)
        rope_global = (rearrange(cos, "(b s) m e -> b (s m) e", b=B), rearrange(sin, "(b s) m e -> b (s m) e", b=B))

        h = rearrange(tokens, "(b s) m d -> b s m d", b=B)
        if cfg.uses_residual:
            is_ref = (torch.arange(S, device=h.device) == 0).to(h.dtype)     # (S,)
            h = h + self.slot_embed + is_ref[:, None, None] * self.ref_embed  # (B, S, M, D)
        for i, blk in enumerate(self.st_blocks):
            if cfg.temporal and i % 2 == 1:  # cross-frame: every token sees all S*M tokens of its sequence
                h = rearrange(blk(rearrange(h, "b s m d -> b (s m) d"), rope=rope_global),
                              "b (s m) d -> b s m d", s=S)
            else:                            # intra-frame: tokens see their own frame only
                h = rearrange(blk(rearrange(h, "b s m d -> (b s) m d"), rope=rope_frame),
                              "(b s) m d -> b s m d", b=B)
        out = self.latent_proj(self.latent_norm(h))                      # (B, S, M, D)

        if cfg.uses_residual:
            G = out[:, 0]                                                 # (B, M, D) reference
            H = torch.cat([torch.zeros_like(out[:, :1]), out[:, 1:]], 1)  # (B, S, M, D), H_1 = 0
            Z = G[:, None] + H
        else:  # per-frame latents; G and H only describe them
            Z, G = out, out[:, 0]
            H = Z - G[:, None]
        return {"Z": Z, "G": G, "H": H, "anchors": rearrange(anchors, "(b s) m c -> b s m c", b=B),
                "tokens": rearrange(tokens, "(b s) m d -> b s m d", b=B)}

    # ---------------------------------------------------------------- 4. velocity field
    def velocity(self, x: torch.Tensor, t, Z: torch.Tensor) -> torch.Tensor:
        """v(x_t, t | Z_s): x (B, S, P, 3), Z (B, S, M, D) -> (B, S, P, 3).

        t: a number, (B,), (B, S) (one time per frame) or (B, S, P) (one per point).
        """
        B, S, P, _ = x.shape
        if Z.shape[:2] != (B, S):
            raise ValueError(f"velocity: x is (B, S) = {(B, S)} but Z is {tuple(Z.shape[:2])}")
        t = torch.as_tensor(t, device=x.device, dtype=torch.float32)
        if t.dim() == 3:
            cond = self.time_embed(rearrange(t.expand(B, S, P), "b s p -> (b s) p"))  # (B*S, P, D)
        else:
            t = t.reshape(*t.shape, *([1] * (2 - t.dim()))).expand(B, S)
            cond = self.time_embed(rearrange(t, "b s -> (b s)"))                          # (B*S, D)
        h = self.query_embed(self.fourier(rearrange(x, "b s p c -> (b s) p c")))         # (B*S, P, D)
        context = rearrange(Z, "b s m d -> (b s) m d")
        for blk in self.dec_blocks:
            h = blk(h, context, cond=cond)
        mod = self.out_adaln(cond)
        shift, scale = (mod if mod.dim() == 3 else mod[:, None]).chunk(2, dim=-1)
        v = self.out(modulate(self.out_norm(h), shift, scale))                           # (B*S, P, 3)
        return rearrange(v, "(b s) p c -> b s p c", b=B)

    def forward(self, partial, x, t, lengths=None):
        """(velocity (B, S, P, 3), latents dict): encode + velocity in one call (training)."""
        latents = self.encode(partial, lengths)
        return self.velocity(x, t, latents["Z"]), latents


# ======================================================================================
# Training loss, sampling, reconstruction
# ======================================================================================


def _unwrap(model):
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def loss(model, batch: dict):
    """Flow-matching loss of one batch, for fourdlib.train.train.

    batch: "partial" (B, S, N, 3) and "surface" (B, S, Ns, 3) in world units (as
    SequenceDataset gives them). Both are normalised with the partial input's numbers; up
    to cfg.train_points GT points per frame are the targets x1. Returns (loss, logs) with
    logs "h_rel" = mean |H_s| / mean |G| over s > 1 (how far frames move from the reference).
    """
    cfg = _unwrap(model).cfg
    if "partial" not in batch or "surface" not in batch:
        raise KeyError(f"DynaTok loss needs batch['partial'] and batch['surface'], got keys {sorted(batch)}")
    partial, surface = batch["partial"], batch["surface"]
    if partial.dim() != 4 or surface.dim() != 4 or partial.shape[:2] != surface.shape[:2]:
        raise ValueError(f"partial (B, S, N, 3) and surface (B, S, Ns, 3) must share B and S, got "
                         f"{tuple(partial.shape)} and {tuple(surface.shape)}")
    partial_n, center, scale = normalize_batch(partial, ref_frame=cfg.ref_frame)
    x1 = (surface - center[:, None, None]) / scale[:, None, None, None]          # (B, S, Ns, 3)
    B, S, Ns, _ = x1.shape
    if Ns > cfg.train_points:  # a random subset of GT points per frame
        idx = torch.rand(B, S, Ns, device=x1.device).argsort(-1)[..., : cfg.train_points]
        x1 = torch.gather(x1, 2, idx[..., None].expand(-1, -1, -1, 3))            # (B, S, P, 3)
    t_shape = (B, S) if cfg.time_per == "frame" else x1.shape[:3]
    t = fm.sample_time(t_shape, cfg.time_dist, device=x1.device)

    latents = {}

    def velocity_fn(xt, t):
        v, lat = model(partial_n, xt, t)  # model(...), not .velocity: DDP syncs gradients in forward
        latents.update(lat)
        return v

    value = fm.flow_matching_loss(velocity_fn, x1, t=t, prior=cfg.prior)
    with torch.no_grad():
        h_rel = latents["H"][:, 1:].float().norm(dim=-1).mean() / latents["G"].float().norm(dim=-1).mean()
    return value, {"h_rel": h_rel}


@torch.no_grad()
def decode(model, Z: torch.Tensor, num_points: int | None = None, steps: int | None = None,
           method: str | None = None, *, generator: torch.Generator | None = None,
           chunk_size: int | None = None, return_path: bool = False, progress: bool = False) -> torch.Tensor:
    """Sample points from latents by integrating the flow ODE, in NORMALISED coordinates.

    Z: (B, S, M, D) per-frame latents, or (B, M, D) one latent per sequence (e.g. G alone).
      Decode "H zeroed" as decode(model, G[:, None].expand(-1, S, -1, -1)) or simply G.
    num_points per frame (default cfg.eval_points); steps / method default to cfg's.
    chunk_size: points per frame integrated at once (the points are independent, so
      chunking changes nothing but memory).
    Returns (B, S, num_points, 3), or (B, num_points, 3) for a (B, M, D) input; with
    return_path, the whole trajectory (steps + 1, ...) (no chunking then).
    """
    net = _unwrap(model)
    cfg = net.cfg
    num_points = num_points or cfg.eval_points
    steps, method = steps or cfg.sample_steps, method or cfg.sample_method
    single = Z.dim() == 3
    if single:
        Z = Z[:, None]
    if Z.dim() != 4 or Z.shape[-1] != cfg.dim:
        raise ValueError(f"decode expects Z of shape (B, S, M, {cfg.dim}) or (B, M, {cfg.dim}), got {tuple(Z.shape)}")
    B, S = Z.shape[:2]
    gen_device = generator.device if generator is not None else Z.device
    x0 = fm.sample_prior((B, S, num_points, 3), cfg.prior, generator=generator, device=gen_device).to(Z.device)

    def velocity_fn(x, t):
        return net.velocity(x, t, Z)

    if return_path:
        out = fm.integrate(velocity_fn, x0, steps, method, return_path=True, progress=progress)
        return out[:, :, 0] if single else out
    chunk = chunk_size or num_points
    out = torch.cat([fm.integrate(velocity_fn, c, steps, method, progress=progress)
                     for c in x0.split(chunk, dim=2)], dim=2)             # (B, S, P, 3)
    return out[:, 0] if single else out


def _check_partial(partial) -> torch.Tensor:
    partial = torch.as_tensor(partial)
    if partial.dim() != 4 or partial.shape[-1] != 3:
        raise ValueError(f"partial clouds must be (B, S, N, 3), got shape {tuple(partial.shape)}")
    if partial.shape[1] < 1 or partial.shape[2] < 1:
        raise ValueError(f"partial clouds of shape {tuple(partial.shape)} hold no frames or no points")
    if not partial.is_floating_point():
        partial = partial.float()
    if not bool(torch.isfinite(partial).all()):
        raise ValueError("partial clouds contain NaN or inf")
    return partial


@torch.no_grad()
def reconstruct(model, partial, num_points: int | None = None, steps: int | None = None,
                method: str | None = None, *, lengths: torch.Tensor | None = None,
                generator: torch.Generator | None = None, chunk_size: int | None = None,
                return_latents: bool = False, slots: torch.Tensor | None = None,
                center: torch.Tensor | None = None, scale: torch.Tensor | None = None):
    """Complete point clouds in WORLD units: partial (B, S, N, 3) -> (B, S, num_points, 3).

    Normalises each sequence (cfg.norm_frame), encodes, samples num_points per frame with
    `steps` ODE steps of `method` (defaults from the config), and maps back. lengths (B, S):
    valid points per frame of a padded batch. With return_latents, also the latents dict
    (plus "center" (B, 3) and "scale" (B,)).
    slots (B, K) long: decode only these frames of each window (-> (B, K, num_points, 3));
    decoding is the costly part. center (B, 3) / scale (B,): normalise with these numbers
    instead of the input's own (e.g. a context ablation that feeds altered windows but must
    keep the real sequence's coordinates).
    """
    net = _unwrap(model)
    partial = _check_partial(partial)
    B, S = partial.shape[:2]
    if (center is None) != (scale is None):
        raise ValueError("reconstruct: give both center and scale, or neither")
    if center is None:
        partial_n, center, scale = normalize_batch(partial, lengths, ref_frame=net.cfg.ref_frame)
    else:
        center, scale = center.to(partial), scale.to(partial)
        partial_n = (partial - center[:, None, None]) / scale[:, None, None, None]
    latents = net.encode(partial_n, lengths)
    Z = latents["Z"]                                                        # (B, S, M, D)
    if slots is not None:
        slots = torch.as_tensor(slots, device=Z.device)
        if slots.dim() != 2 or slots.shape[0] != B or slots.dtype != torch.long:
            raise ValueError(f"slots must be a (B={B}, K) long tensor, got {slots.dtype} {tuple(slots.shape)}")
        if bool(((slots < 0) | (slots >= S)).any()):
            raise ValueError(f"slots must lie in [0, {S}), got {slots.min().item()}..{slots.max().item()}")
        Z = Z[torch.arange(B, device=Z.device)[:, None], slots]             # (B, K, M, D)
    points = decode(net, Z, num_points, steps, method, generator=generator, chunk_size=chunk_size)
    points = points.float() * scale[:, None, None, None] + center[:, None, None]
    if return_latents:
        return points, {**latents, "center": center, "scale": scale}
    return points


# ======================================================================================
# Checkpoints that know their config, and the dataset of a config
# ======================================================================================


def save_model(path, model, optimizer=None, *, step: int = 0, **fields) -> Path:
    """save_checkpoint with the model's config stored as a plain dict under "model_config"
    ({"name": "dynatok", **asdict(cfg)}), so that `load_model` can rebuild the model."""
    net = _unwrap(model)
    return save_checkpoint(path, net, optimizer, step=step,
                           model_config={"name": MODEL_NAME, **dataclasses.asdict(net.cfg)}, **fields)


def load_model(path, config: DynaTokConfig | None = None, map_location="cpu") -> DynaTok:
    """Build a DynaTok from a checkpoint's stored config and load its weights (eval mode).

    config: needed only for checkpoints without "model_config" (e.g. written by
    fourdlib.train.train); if both exist they must agree. Raises CheckpointError for a
    truncated or foreign file, another model's checkpoint, or a config mismatch.
    """
    state = load_checkpoint(path, map_location=map_location)
    stored = state.get("model_config")
    if stored is None:
        if config is None:
            raise CheckpointError(f"checkpoint at {path} stores no model config (it was not written by "
                                  "dynatok.save_model); pass config=CONFIGS[scale] of the run that wrote it")
        cfg = config
    else:
        if not isinstance(stored, dict) or stored.get("name") != MODEL_NAME:
            name = stored.get("name") if isinstance(stored, dict) else type(stored).__name__
            raise CheckpointError(f"checkpoint at {path} holds a {name!r} model, not {MODEL_NAME!r}")
        fields = {k: v for k, v in stored.items() if k != "name"}
        try:
            cfg = DynaTokConfig(**fields)
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"checkpoint at {path}: its model config does not make a DynaTokConfig "
                                  f"({e}); was it written by another fourdlib version?") from e
        if config is not None and config != cfg:
            diff = [f"{k}: checkpoint {getattr(cfg, k)!r} vs given {getattr(config, k)!r}"
                    for k in fields if getattr(cfg, k) != getattr(config, k)]
            raise CheckpointError(f"checkpoint at {path} was written with another config: {'; '.join(diff)}")
    model = DynaTok(cfg)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint at {path} does not fit a DynaTok built from its config: {e}") from e
    return model.eval()


def make_dataset(cfg: DynaTokConfig, folder, split: str | None = None, train: bool = True, **options):
    """The SequenceDataset this config trains (train=True: cfg.train_frames, random windows)
    or evaluates on (train=False: cfg.eval_frames, fixed draws). options go to
    SequenceDataset (e.g. foreground_only=True)."""
    from ..data.dataset import SequenceDataset

    return SequenceDataset(folder, split=split, frames=cfg.train_frames if train else cfg.eval_frames,
                           points=cfg.input_points,
                           surface_points=cfg.train_points if train else cfg.eval_points, train=train, **options)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


if __name__ == "__main__":
    for name, c in CONFIGS.items():
        print(f"{name:6s} {count_parameters(DynaTok(c)) / 1e6:7.2f}M parameters")
