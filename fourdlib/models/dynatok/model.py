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
  G + H_s ~ H_s, bypassing the reference (notebook 02 measures |H_s| / |G|).
- Training times: one t per frame by default (`time_per="frame"`): every point of a frame
  shares it, as in sampling where the ODE moves all points together, and the adaLN
  modulation is then computed once per frame instead of once per point (a cheaper step;
  benchmarks/bench_dynatok.py). With B*S = 32 frames per batch the batch still covers
  [0, 1] well. `time_per="point"` draws one t per point (lower-variance
  gradients, costlier); both are the same loss in expectation.
- Normalisation: one centre and scale per sequence (fourdlib.geometry.normalize), from
  the partial input of all frames (norm_frame="all") or of frame 1 only ("first": the
  coordinates are then aligned to frame 1, the reference). A shape that travels (a
  walking animal) leaves a sequence-wide cube, so norm_frame="each" centres every frame on
  its own input's median (one scale per sequence): the model sees each frame where the
  object is, as a camera that follows it would (a deviation from the paper, which does not
  say). GT targets use the same numbers. The network works in normalised space, where the uniform prior [-1, 1]^3 and
  the Fourier / RoPE frequencies are set.
- D and depths are not in the paper: see config.py.
"""
from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from ...geometry.fps import farthest_point_sample, gather_points
from ...geometry.normalize import median_center_scale
from ...layers import (Block, CrossAttentionBlock, FourierFeatures, RotaryEmbedding3D, TimestepEmbedder, adaln_zero,
                       frame_attention, global_attention, modulate)
from ...train import flow_matching as fm
from ...train.distributed import unwrap
from .config import DynaTokConfig

__all__ = ["DynaTok", "normalize_batch", "expand_center", "loss", "decode", "reconstruct"]


# ======================================================================================
# Normalisation (one centre / scale per sequence)
# ======================================================================================


def normalize_batch(partial: torch.Tensor, lengths: torch.Tensor | None = None, ref_frame: int | None = None,
                    per_frame: bool = False):
    """Median centre / scale of each sequence's INPUT; returns (normalised, center, scale (B,)).

    partial (B, S, N, 3); lengths (B, S) valid points per frame (rows beyond are padding,
    ignored by the medians) or None. ref_frame None pools all frames, 0 uses frame 1 only.
    center is (B, 3), or (B, S, 3) with per_frame=True: every frame centred on its own
    median, the scale pooled over the centred frames (norm_frame="each").
    Apply the same numbers to the GT: gt_n = (gt - expand_center(center)) / scale[:, None, None, None].
    """
    B, S, N, _ = partial.shape
    centers, scales = [], []
    for b in range(B):  # a few sequences per batch; the medians sort all their points at once
        n = [N] * S if lengths is None else lengths[b].tolist()
        frames = [partial[b, i, : n[i]] for i in range(S)]
        if per_frame:
            c = torch.stack([median_center_scale(f)[0] for f in frames])                 # (S, 3)
            s = median_center_scale([f - c[i] for i, f in enumerate(frames)])[1]
        else:
            c, s = median_center_scale(frames, ref_frame=ref_frame)
        centers.append(c)
        scales.append(s)
    center, scale = torch.stack(centers).to(partial), torch.stack(scales).to(partial)  # (B, [S,] 3), (B,)
    return (partial - expand_center(center)) / scale[:, None, None, None], center, scale


def expand_center(center: torch.Tensor) -> torch.Tensor:
    """(B, 3) -> (B, 1, 1, 3), or per-frame (B, S, 3) -> (B, S, 1, 3): broadcasts over (B, S, N, 3)."""
    return center[:, None, None] if center.dim() == 2 else center[:, :, None]


# ======================================================================================
# The network
# ======================================================================================


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
        self.out_adaln = adaln_zero(D, D, 2)  # shift, scale
        self.out = nn.Linear(D, 3)
        nn.init.zeros_(self.out.weight)  # DiT's zero-initialised final layer: v = 0 at start
        nn.init.zeros_(self.out.bias)

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
        rope = tuple(rearrange(r, "(b s) m e -> b s m e", b=B) for r in self.rope(anchors))  # cos, sin (B, S, M, head_dim)

        h = rearrange(tokens, "(b s) m d -> b s m d", b=B)
        if cfg.uses_residual:
            is_ref = (torch.arange(S, device=h.device) == 0).to(h.dtype)     # (S,)
            h = h + self.slot_embed + is_ref[:, None, None] * self.ref_embed  # (B, S, M, D)
        for i, blk in enumerate(self.st_blocks):
            if cfg.temporal and i % 2 == 1:  # cross-frame: every token sees all S*M tokens of its sequence
                h = global_attention(blk, h, rope=rope)
            else:                            # intra-frame: tokens see their own frame only
                h = frame_attention(blk, h, rope=rope)
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


def _check_batch(batch: dict):
    if "partial" not in batch or "surface" not in batch:
        raise KeyError(f"DynaTok loss needs batch['partial'] and batch['surface'], got keys {sorted(batch)}")
    partial, surface = batch["partial"], batch["surface"]
    if partial.dim() != 4 or surface.dim() != 4 or partial.shape[:2] != surface.shape[:2]:
        raise ValueError(f"partial (B, S, N, 3) and surface (B, S, Ns, 3) must share B and S, got "
                         f"{tuple(partial.shape)} and {tuple(surface.shape)}")
    return partial, surface


def loss(model, batch: dict):
    """Flow-matching loss of one batch, for fourdlib.train.train.

    batch: "partial" (B, S, N, 3) and "surface" (B, S, Ns, 3) in world units (as
    SequenceDataset gives them). Both are normalised with the partial input's numbers; up
    to cfg.train_points GT points per frame are the targets x1. Returns (loss, logs) with
    logs "h_rel" = mean |H_s| / mean |G| over s > 1 (how far frames move from the reference).
    """
    cfg = unwrap(model).cfg
    partial, surface = _check_batch(batch)
    partial_n, center, scale = normalize_batch(partial, ref_frame=cfg.ref_frame, per_frame=cfg.per_frame_center)
    x1 = (surface - expand_center(center)) / scale[:, None, None, None]          # (B, S, Ns, 3)
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
    net = unwrap(model)
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
    (plus "center" (B, 3), or (B, S, 3) for norm_frame="each", and "scale" (B,)).
    slots (B, K) long: decode only these frames of each window (-> (B, K, num_points, 3));
    decoding is the costly part. center (B, 3) or (B, S, 3) / scale (B,): normalise with these numbers
    instead of the input's own (e.g. a context ablation that feeds altered windows but must
    keep the real sequence's coordinates).
    """
    net = unwrap(model)
    partial = _check_partial(partial)
    B, S = partial.shape[:2]
    if (center is None) != (scale is None):
        raise ValueError("reconstruct: give both center and scale, or neither")
    if center is None:
        partial_n, center, scale = normalize_batch(partial, lengths, ref_frame=net.cfg.ref_frame,
                                                   per_frame=net.cfg.per_frame_center)
    else:
        center, scale = center.to(partial), scale.to(partial)
        partial_n = (partial - expand_center(center)) / scale[:, None, None, None]
    out_center = center
    latents = net.encode(partial_n, lengths)
    Z = latents["Z"]                                                        # (B, S, M, D)
    if slots is not None:
        slots = torch.as_tensor(slots, device=Z.device)
        if slots.dim() != 2 or slots.shape[0] != B or slots.dtype != torch.long:
            raise ValueError(f"slots must be a (B={B}, K) long tensor, got {slots.dtype} {tuple(slots.shape)}")
        if bool(((slots < 0) | (slots >= S)).any()):
            raise ValueError(f"slots must lie in [0, {S}), got {slots.min().item()}..{slots.max().item()}")
        Z = Z[torch.arange(B, device=Z.device)[:, None], slots]             # (B, K, M, D)
        if center.dim() == 3:                                               # per-frame centres follow
            out_center = center[torch.arange(B, device=center.device)[:, None], slots.to(center.device)]
    points = decode(net, Z, num_points, steps, method, generator=generator, chunk_size=chunk_size)
    points = points.float() * scale[:, None, None, None] + expand_center(out_center)
    if return_latents:
        return points, {**latents, "center": center, "scale": scale}
    return points
