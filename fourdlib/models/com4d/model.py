"""COM4D (CVPR 2026): compositional 4D scenes without ever training on one, read top to bottom.

    object surfaces (.., N, 3)  --FPS + cross-attention-->  vecset latent z (K, C)      ShapeVAE
    z + query points            --occupancy decoder-->      logits; grid -> mesh/points  ShapeVAE.decode
    frame RGB + object mask     --small CNN-->              context tokens (L, D)        ConditionEncoder
    latents (B, O, F, K, C), one time per latent, object / frame / static-dynamic embeddings
        -> DiT: even blocks SPATIAL (the objects of one frame attend to each other),
                odd blocks TEMPORAL (the frames of one object attend to each other),
                every block cross-attends to its latent's own context tokens      COM4D.forward
        -> velocity (B, O, F, K, C) of rectified flow

Training (`loss`; the stage comes from the model's step counter, see config.py):
  1. VAE: occupancy BCE + KL on single objects and single frames.
  2. Attention parsing: batches alternate between static multi-object scenes (F = 1; spatial
     blocks active, temporal blocks local) and single-object animations (O = 1; temporal
     blocks active, spatial blocks local). "Local" = each latent attends to its own K tokens.
     One time per latent (the paper's t_i). With probability cfg.single_prob a sample is
     degenerate (one object / one frame), as the paper's 0.3.
  3. Diffusion forcing: from cfg.df_start, some latents of a sample are CLEAN (t = 1 here):
     a prefix of an animation's frames (history) or some objects of a scene (static
     conditioning); they enter the DiT as they are and carry no loss.
  Training never sees a sample with several objects AND several frames.

Sampling (`sample_latents`, attention mixing over the objects x frames matrix):
  frame 0: every object together (spatial blocks over all objects, temporal blocks local);
  static objects: that latent, clean, in every frame; they skip temporal attention (local);
  dynamic objects: windows of W = cfg.train_frames frames, spatial blocks per frame over
  all objects (static ones clean), temporal blocks per dynamic object over the window's
  frames; the first window has frame 0 clean, each later window keeps the last
  cfg.history_frames generated frames clean (history-guided sliding window).
  Baselines: mix=False (per-object generation stitched: spatial blocks local everywhere);
  frame_by_frame=True (a static-only run: every frame its own snapshot, no temporal blocks).

Conventions and choices (ours, and why)
---------------------------------------
- Time: fourdlib.train.flow_matching's convention x_t = (1 - t) noise + t data, so t = 1 is
  CLEAN. The paper writes diffusion forcing's clean history as noise level 0; same thing.
- Latent layout (B, O, F, K, C) throughout. Static training scenes have F = 1, animations
  O = 1: the general embedding rule "object embedding e_o + frame embedding e_f" then IS the
  paper's cross injection (a scene's latents all get the single-frame embedding e_0, an
  animation's latents the single-object embedding e_0), and attention mixing at inference
  uses both indices at once. Frame embeddings are relative to the window (W of them).
- Conditioning: the paper cross-attends to DINOv2 features of the scene image (spatial
  blocks) and SAM-mask features (temporal blocks); neither can be downloaded here. Ours is a
  small CNN trained with the DiT: RGB of the frame (view 0) + the object's instance mask as a
  4th channel -> (H/p)(W/p) tokens, so every latent (o, f) reads the whole scene and knows
  which object it is. Every block cross-attends to its latent's own tokens (a block-diagonal
  context mask when latents are grouped). The generator's instance masks stand in for SAM's.
- The VAE encodes each object in the SCENE's normalised frame (data.py), not in its own
  canonical box, so an object's latent carries its placement (the layout is what spatial
  attention and the penetration metric are about). FPS starts at the point farthest from
  the origin, as DynaTok's tokenizer (its pieces are the same: FourierFeatures, the FPS of
  fourdlib.geometry, a CrossAttentionBlock; DynaTok has no standalone tokenizer class to
  import, so the dozen lines are composed again here from the shared pieces).
- The DiT sees VAE posterior means divided by `latent_scale`, their std over the first DiT
  batch (Stable Diffusion's scale factor), stored as a buffer in checkpoints.

Not yet: multi-GPU training. The VAE stage calls the VAE directly (not the DDP-wrapped
forward, so DDP would not average its gradients) and each stage leaves parameters unused
(DDP without find_unused_parameters refuses that); one process trains every stage.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ...geometry.fps import farthest_point_sample, gather_points
from ...layers import Block, CrossAttentionBlock, FourierFeatures, TimestepEmbedder, adaln_zero, modulate
from ...train import flow_matching as fm
from ...train.distributed import unwrap
from .config import COM4DConfig

__all__ = ["ShapeVAE", "ConditionEncoder", "COM4D", "role_masks", "loss", "vae_loss", "dit_loss",
           "sample_latents", "grid_points", "decode_occupancy", "occupancy_to_points", "occupancy_to_mesh"]


# ======================================================================================
# 1. Shape VAE: vecset latents (K x C per object and frame), occupancy decoder
# ======================================================================================


class ShapeVAE(nn.Module):
    """Surface points (n, N, 3) -> posterior (mean, logvar) (n, K, C) -> occupancy logits at queries."""

    def __init__(self, cfg: COM4DConfig):
        super().__init__()
        self.cfg = cfg
        D, H = cfg.vae_dim, cfg.vae_heads
        self.fourier = FourierFeatures(3, num_bands=cfg.fourier_bands)
        self.point_embed = nn.Linear(self.fourier.out_dim, D)          # anchors (queries) and points (keys)
        self.anchor_attn = CrossAttentionBlock(D, H)
        self.enc_blocks = nn.ModuleList([Block(D, H, qk_norm=True) for _ in range(cfg.vae_enc_depth)])
        self.to_moments = nn.Linear(D, 2 * cfg.latent_dim)              # KL bottleneck: mean, log-variance
        self.from_latent = nn.Linear(cfg.latent_dim, D)
        self.dec_blocks = nn.ModuleList([Block(D, H, qk_norm=True) for _ in range(cfg.vae_dec_depth)])
        self.query_embed = nn.Linear(self.fourier.out_dim, D)
        self.query_attn = CrossAttentionBlock(D, H)                      # queries never see each other
        self.occ_head = nn.Sequential(nn.LayerNorm(D), nn.Linear(D, 1))

    def encode(self, points: torch.Tensor):
        """points (..., N, 3) -> mean, logvar (..., K, C)."""
        if points.dim() < 2 or points.shape[-1] != 3:
            raise ValueError(f"ShapeVAE.encode expects points (..., N, 3), got {tuple(points.shape)}")
        lead, N = points.shape[:-2], points.shape[-2]
        if N < self.cfg.num_latents:
            raise ValueError(f"ShapeVAE.encode: {N} points per object, fewer than num_latents={self.cfg.num_latents}")
        x = points.reshape(-1, N, 3)                                      # (n, N, 3)
        with torch.no_grad():                                             # start where the set decides, not the order
            idx = farthest_point_sample(x, self.cfg.num_latents, start=x.float().norm(dim=-1).argmax(1))
        anchors = gather_points(x, idx)                                   # (n, K, 3)
        h = self.anchor_attn(self.point_embed(self.fourier(anchors)),
                             self.point_embed(self.fourier(x)))           # (n, K, D): points pooled per anchor
        for blk in self.enc_blocks:
            h = blk(h)
        mean, logvar = self.to_moments(h).chunk(2, dim=-1)                # (n, K, C) each
        logvar = logvar.clamp(-20.0, 10.0)
        return mean.reshape(*lead, *mean.shape[1:]), logvar.reshape(*lead, *logvar.shape[1:])

    def latent_tokens(self, z: torch.Tensor) -> torch.Tensor:
        """z (n, K, C) -> decoder tokens (n, K, D) (computed once, queried in chunks)."""
        h = self.from_latent(z)
        for blk in self.dec_blocks:
            h = blk(h)
        return h

    def query(self, tokens: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Occupancy logits at x (n, Q, 3) from tokens (n, K, D) -> (n, Q)."""
        q = self.query_embed(self.fourier(x))                             # (n, Q, D)
        return self.occ_head(self.query_attn(q, tokens))[..., 0]

    def decode(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """z (..., K, C), queries x (..., Q, 3) -> logits (..., Q)."""
        lead = z.shape[:-2]
        tokens = self.latent_tokens(z.reshape(-1, *z.shape[-2:]))
        out = self.query(tokens, x.reshape(-1, *x.shape[-2:]))
        return out.reshape(*lead, out.shape[-1])


# ======================================================================================
# 2. Conditioning encoder: frame RGB + one object's mask -> tokens
# ======================================================================================


class ConditionEncoder(nn.Module):
    """image (n, 3, H, W) in [-1, 1] and mask (n, H, W) in {0, 1} -> tokens (n, (H/p)(W/p), D).

    A 3x3 convolution at full resolution (edges of the mask against the image), then a
    p x p patchify, a learned position per patch and a LayerNorm."""

    def __init__(self, cfg: COM4DConfig):
        super().__init__()
        D, p = cfg.dim, cfg.patch_size
        self.conv = nn.Sequential(nn.Conv2d(4, D // 4, 3, padding=1), nn.GELU(approximate="tanh"),
                                  nn.Conv2d(D // 4, D, p, stride=p))
        self.pos = nn.Parameter(torch.randn((cfg.image_size // p) ** 2, D) * 0.02)
        self.norm = nn.LayerNorm(D, eps=1e-6)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = torch.cat([image, mask[:, None] * 2 - 1], 1)                 # (n, 4, H, W)
        h = rearrange(self.conv(x), "n d h w -> n (h w) d")
        if h.shape[1] != self.pos.shape[0]:
            raise ValueError(f"ConditionEncoder: images of {tuple(image.shape[-2:])} give {h.shape[1]} tokens; the "
                             f"model was built for {self.pos.shape[0]} (image_size)")
        return self.norm(h + self.pos)


# ======================================================================================
# 3. The DiT: block roles by parity over the (objects x frames) latent matrix
# ======================================================================================


def role_masks(obj_valid: torch.Tensor, dynamic: torch.Tensor, num_frames: int, *, spatial: bool, temporal: bool):
    """Which latents a latent may attend to, for each block kind.

    obj_valid, dynamic (B, O) bool. Returns
      spatial  (B, F, O, O): in frame f, object o sees object o' (all valid objects when
               `spatial`, else only itself: local attention);
      temporal (B, O, F, F): object o's frame f sees frame f' (all frames for a valid DYNAMIC
               object when `temporal`, else only itself: static objects skip temporal attention).
    """
    B, O = obj_valid.shape
    eye_o = torch.eye(O, dtype=torch.bool, device=obj_valid.device)
    eye_f = torch.eye(num_frames, dtype=torch.bool, device=obj_valid.device)
    sp = (obj_valid[:, None, None, :] | eye_o) if spatial else eye_o.expand(B, 1, O, O)
    moving = (dynamic & obj_valid)[:, :, None, None]
    tp = (moving | eye_f) if temporal else eye_f.expand(B, O, num_frames, num_frames)
    return sp.expand(B, num_frames, O, O), tp.expand(B, O, num_frames, num_frames)


def _grouped(blk: Block, h, cond, ctx, allowed, group: str):
    """Run `blk` with attention restricted by `allowed` between latents.

    h, cond (B, O, F, K, D); ctx (B, O, F, L, D). group "frame": sequences are the O*K tokens
    of one frame, allowed (B, F, O, O); "object": the F*K tokens of one object, allowed
    (B, O, F, F). Every token cross-attends to its own latent's L context tokens only. When
    no latent may see another, each latent runs alone (K tokens): the local attention path.
    """
    B, O, F, K, D = h.shape
    L = ctx.shape[3]
    n = allowed.shape[-1]
    if bool((allowed == torch.eye(n, dtype=torch.bool, device=h.device)).all()):
        flat = "b o f k d -> (b o f) k d"
        out = blk(rearrange(h, flat), cond=rearrange(cond, flat), context=rearrange(ctx, flat))
        return rearrange(out, "(b o f) k d -> b o f k d", b=B, o=O)
    if group == "frame":
        into, back = "b o f k d -> (b f) (o k) d", "(b f) (o k) d -> b o f k d"
        sizes = dict(b=B, f=F, o=O)
    else:
        into, back = "b o f k d -> (b o) (f k) d", "(b o) (f k) d -> b o f k d"
        sizes = dict(b=B, o=O, f=F)
    mask = allowed.reshape(-1, n, n).repeat_interleave(K, 1).repeat_interleave(K, 2)[:, None]     # (G, 1, nK, nK)
    own = torch.eye(n, dtype=torch.bool, device=h.device).repeat_interleave(K, 0).repeat_interleave(L, 1)  # (nK, nL)
    out = blk(rearrange(h, into), cond=rearrange(cond, into), context=rearrange(ctx, into),
              mask=mask, context_mask=own[None, None])
    return rearrange(out, back, **sizes)


class COM4D(nn.Module):
    """Shape VAE + conditioning encoder + parity DiT. `forward` is the DiT's velocity."""

    def __init__(self, cfg: COM4DConfig):
        super().__init__()
        self.cfg = cfg
        D, C = cfg.dim, cfg.latent_dim
        self.vae = ShapeVAE(cfg)
        self.cond_encoder = ConditionEncoder(cfg)
        self.x_embed = nn.Linear(C, D)
        self.time_embed = TimestepEmbedder(D, t_scale=1000.0)            # t in [0, 1] spans the frequencies
        # compositional latent space
        self.object_embed = nn.Parameter(torch.randn(cfg.max_objects, D) * 0.02)   # e_o
        self.frame_embed = nn.Parameter(torch.randn(cfg.train_frames, D) * 0.02)   # e_f, relative to the window
        self.motion_embed = nn.Parameter(torch.randn(2, D) * 0.02)                 # static, dynamic
        self.blocks = nn.ModuleList([Block(D, cfg.heads, cfg.mlp_ratio, context_dim=D, cond_dim=D, qk_norm=True)
                                     for _ in range(cfg.depth)])
        self.out_norm = nn.LayerNorm(D, eps=1e-6, elementwise_affine=False)
        self.out_adaln = adaln_zero(D, D, 2)
        self.out = nn.Linear(D, C)
        nn.init.zeros_(self.out.weight)                                   # v = 0 at the start (DiT)
        nn.init.zeros_(self.out.bias)
        self.register_buffer("latent_scale", torch.zeros(()))             # set by the first DiT batch
        self.register_buffer("step", torch.zeros((), dtype=torch.long))   # training stage (config.py)

    @staticmethod
    def block_role(i: int) -> str:
        """Block i's role: "spatial" for even i, "temporal" for odd i."""
        return "spatial" if i % 2 == 0 else "temporal"

    def encode_condition(self, image: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """image (B, F, 3, H, W), masks (B, O, F, H, W) -> context tokens (B, O, F, L, D)."""
        B, O, F_ = masks.shape[:3]
        if image.shape[:2] != (B, F_):
            raise ValueError(f"image (B, F) = {tuple(image.shape[:2])} does not match masks' (B, F) = {(B, F_)}")
        img = image[:, None].expand(B, O, *image.shape[1:])                  # (B, O, F, 3, H, W)
        tok = self.cond_encoder(img.reshape(-1, *image.shape[2:]), masks.reshape(-1, *masks.shape[3:]).to(image))
        return tok.reshape(B, O, F_, *tok.shape[1:])

    def forward(self, z, t, context, obj_valid, dynamic, *, spatial: bool = True, temporal: bool = True):
        """Velocity of latents z (B, O, F, K, C) at per-latent times t (B, O, F) (or a number).

        context (B, O, F, L, D) from encode_condition; obj_valid, dynamic (B, O) bool.
        spatial / temporal: whether even / odd blocks attend across objects / frames (else
        local). Returns (B, O, F, K, C).
        """
        cfg = self.cfg
        if z.dim() != 5 or z.shape[-1] != cfg.latent_dim:
            raise ValueError(f"COM4D expects latents (B, O, F, K, {cfg.latent_dim}), got {tuple(z.shape)}")
        B, O, F_, K, _ = z.shape
        if O > cfg.max_objects:
            raise ValueError(f"{O} objects; the model takes at most max_objects={cfg.max_objects}")
        if F_ > cfg.train_frames:
            raise ValueError(f"{F_} frames at once; the model's frame embeddings cover train_frames="
                             f"{cfg.train_frames} (use the sliding window of sample_latents)")
        t = torch.as_tensor(t, device=z.device, dtype=torch.float32)
        t = t.reshape(*t.shape, *([1] * (3 - t.dim()))).expand(B, O, F_)
        h = self.x_embed(z) + self.object_embed[:O, None, None] + self.frame_embed[:F_, None]  # (B, O, F, K, D)
        if cfg.motion_embed:
            h = h + self.motion_embed[dynamic.long()][:, :, None, None]
        cond = self.time_embed(t)[:, :, :, None].expand(-1, -1, -1, K, -1)  # (B, O, F, K, D): one time per latent
        sp, tp = role_masks(obj_valid, dynamic, F_, spatial=spatial, temporal=temporal)
        for i, blk in enumerate(self.blocks):
            if self.block_role(i) == "spatial":
                h = _grouped(blk, h, cond, context, sp, "frame")
            else:
                h = _grouped(blk, h, cond, context, tp, "object")
        shift, scale = self.out_adaln(cond).chunk(2, dim=-1)
        return self.out(modulate(self.out_norm(h), shift, scale))           # (B, O, F, K, C)


# ======================================================================================
# 4. Training: VAE stage, attention parsing, diffusion forcing
# ======================================================================================


def vae_loss(net: COM4D, part: dict):
    """Occupancy BCE + kl_weight * KL of the valid object-frames of one half-batch.

    Uses "vae_surface"/"vae_queries"/"vae_occ" when present (shrunk animations)."""
    cfg = net.cfg
    surface = part.get("vae_surface", part["surface"])                  # (B, O, F, N, 3)
    queries = part.get("vae_queries", part["queries"])                  # (B, O, F, Q, 3)
    occ = part.get("vae_occ", part["occ"])                              # (B, O, F, Q)
    valid = part["obj_valid"][:, :, None].expand(surface.shape[:3])     # (B, O, F)
    mean, logvar = net.vae.encode(surface[valid])                       # (n, K, C)
    z = mean + torch.randn_like(mean) * (0.5 * logvar).exp()
    logits = net.vae.decode(z, queries[valid])                          # (n, Q)
    bce = F.binary_cross_entropy_with_logits(logits, occ[valid])
    kl = 0.5 * (mean.square() + logvar.exp() - 1 - logvar).sum(-1).mean()
    with torch.no_grad():
        acc = ((logits > 0).float() == occ[valid]).float().mean()
    return bce + cfg.kl_weight * kl, {"bce": bce.detach(), "kl": kl.detach(), "occ_acc": acc}


def dit_loss(model, part: dict, kind: str, diffusion_forcing: bool):
    """Rectified-flow loss of one half-batch: kind "static" (spatial blocks active) or
    "dynamic" (temporal blocks active); with diffusion_forcing, clean latents as in the module doc."""
    net = unwrap(model)
    cfg = net.cfg
    surface, valid = part["surface"], part["obj_valid"].clone()         # (B, O, F, N, 3), (B, O)
    image, masks, dynamic = part["image"], part["masks"], part["dynamic"]
    B, O, F_ = surface.shape[:3]
    dev = surface.device
    if kind == "dynamic" and F_ > 1 and float(torch.rand(())) < cfg.single_prob:  # a degenerate one-frame batch
        f = int(torch.randint(0, F_, ()))
        surface, image, masks, F_ = surface[:, :, f:f + 1], image[:, f:f + 1], masks[:, :, f:f + 1], 1
    if kind == "static":                                                 # degenerate samples: one object kept
        one = torch.rand(B, device=dev) < cfg.single_prob
        keep = torch.multinomial(valid.float(), 1)[:, 0]                  # a random valid object per sample
        only = torch.zeros_like(valid).scatter_(1, keep[:, None], True)
        valid = torch.where(one[:, None], only, valid)
    with torch.no_grad():
        mean, _ = net.vae.encode(surface)                                 # (B, O, F, K, C) posterior means
        if float(net.latent_scale) == 0:                                  # the first DiT batch fixes the scale
            net.latent_scale.fill_(float(mean[valid].std()))
        x1 = mean / net.latent_scale
    t = fm.sample_time((B, O, F_), cfg.time_dist, device=dev)            # one time per latent
    clean = torch.zeros(B, O, F_, dtype=torch.bool, device=dev)
    if diffusion_forcing:
        hist = torch.rand(B, device=dev) < cfg.history_prob
        if kind == "dynamic" and F_ > 1:                                  # a prefix of frames is history
            h = torch.randint(1, F_, (B,), device=dev)
            clean = hist[:, None, None] & (torch.arange(F_, device=dev) < h[:, None])[:, None, :]
        elif kind == "static":                                            # some objects are given, clean
            pick = (torch.rand(B, O, device=dev) < 0.5) & valid
            pick &= pick.sum(1, keepdim=True) < valid.sum(1, keepdim=True)  # at least one left to generate
            clean = (hist[:, None] & pick)[:, :, None].expand(B, O, F_)
    t = torch.where(clean, torch.ones_like(t), t)
    x0 = torch.randn_like(x1)
    xt = fm.interpolate(x0, x1, t)                                        # clean latents: x_t = x1 exactly
    ctx = net.encode_condition(image, masks)
    v = model(xt, t, ctx, valid, dynamic, spatial=kind == "static", temporal=kind == "dynamic")
    err = (v.float() - fm.target_velocity(x0, x1).float()).square().mean((-1, -2))   # (B, O, F)
    weight = (valid[:, :, None] & ~clean).float()
    value = (err * weight).sum() / weight.sum().clamp(min=1)
    return value, {f"flow_{kind}": value.detach(), "clean_frac": clean.float().mean()}


def loss(model, batch: dict):
    """One training step's loss, for fourdlib.train.train; the stage comes from the model's
    step counter (advanced here): VAE (both halves of the batch), then attention parsing with
    static and dynamic halves on alternate steps, then the same with diffusion forcing.

    batch: {"static": ..., "dynamic": ...} as data.CompositionalDataset gives them."""
    net = unwrap(model)
    cfg = net.cfg
    step = int(net.step)
    net.step += 1
    if step < cfg.vae_steps:
        ls, logs_s = vae_loss(net, batch["static"])
        ld, logs_d = vae_loss(net, batch["dynamic"])
        return ls + ld, {"bce": (logs_s["bce"] + logs_d["bce"]) / 2, "kl": (logs_s["kl"] + logs_d["kl"]) / 2,
                         "occ_acc": (logs_s["occ_acc"] + logs_d["occ_acc"]) / 2}
    kind = "static" if (step - cfg.vae_steps) % 2 == 0 else "dynamic"
    value, logs = dit_loss(model, batch[kind], kind, diffusion_forcing=cfg.diffusion_forcing and step >= cfg.df_start)
    # log both kinds every step (the other one from its last step): a history logged every
    # second step would otherwise only ever show one of them
    net._last_flow = {**getattr(net, "_last_flow", {}), **logs}
    return value, {"flow_static": math.nan, "flow_dynamic": math.nan, **net._last_flow}


# ======================================================================================
# 5. Sampling: attention mixing over objects x frames, history-guided sliding window
# ======================================================================================


def _check_scene(cfg: COM4DConfig, image, masks, dynamic, obj_valid):
    if masks.dim() != 5:
        raise ValueError(f"masks must be (B, O, F, H, W), got {tuple(masks.shape)}")
    B, O, F_ = masks.shape[:3]
    if O == 0:
        raise ValueError("the scene has no objects (masks hold O = 0)")
    if O > cfg.max_objects:
        raise ValueError(f"the scene has {O} objects; the model takes at most max_objects={cfg.max_objects}")
    if image.dim() != 5 or image.shape[:2] != (B, F_) or image.shape[2] != 3:
        raise ValueError(f"image must be (B, F, 3, H, W) with (B, F) = {(B, F_)}, got {tuple(image.shape)}")
    if dynamic.shape != (B, O) or obj_valid.shape != (B, O):
        raise ValueError(f"dynamic and obj_valid must be (B, O) = {(B, O)}, got {tuple(dynamic.shape)}, "
                         f"{tuple(obj_valid.shape)}")
    if not bool(obj_valid.any(1).all()):
        raise ValueError("a scene of the batch has no valid object")
    empty = (masks.flatten(2).sum(-1) == 0) & obj_valid
    if bool(empty.any()):
        b, o = torch.nonzero(empty)[0].tolist()
        raise ValueError(f"the mask of object {o} (scene {b}) covers nothing in every frame")
    if F_ > 1 and bool((dynamic & obj_valid).any()) and F_ < cfg.train_frames:
        raise ValueError(f"a sequence of {F_} frames is shorter than the window train_frames={cfg.train_frames}")


@torch.no_grad()
def sample_latents(model, image, masks, dynamic, obj_valid=None, *, mix: bool = True, frame_by_frame: bool = False,
                   steps: int | None = None, method: str | None = None, generator: torch.Generator | None = None):
    """Generate a scene's latents (B, O, F, K, C) in VAE units (see the module doc).

    image (B, F, 3, H, W) in [-1, 1]; masks (B, O, F, H, W); dynamic, obj_valid (B, O) bool.
    mix=False: the stitched per-object baseline; frame_by_frame=True: the static-only baseline.
    Raises ValueError for no objects, too many, an empty mask, a sequence shorter than the window.
    """
    net = unwrap(model)
    cfg = net.cfg
    masks = masks.float()
    dynamic = dynamic.bool()
    obj_valid = torch.ones_like(dynamic) if obj_valid is None else obj_valid.bool()
    _check_scene(cfg, image, masks, dynamic, obj_valid)
    if float(net.latent_scale) == 0:
        raise ValueError("this model's DiT was never trained (latent_scale is unset)")
    steps, method = steps or cfg.sample_steps, method or cfg.sample_method
    B, O, F_ = masks.shape[:3]
    K, C, W, Hh = cfg.num_latents, cfg.latent_dim, cfg.train_frames, cfg.history_frames
    ctx = net.encode_condition(image, masks)                               # (B, O, F, L, D)
    gdev = generator.device if generator is not None else image.device
    noise = torch.randn(B, O, F_, K, C, generator=generator, device=gdev).to(image.device)

    def solve(x, clean, frames, spatial, temporal):
        """Integrate the latents of `frames` from noise, clean ones held fixed."""
        x = torch.where(clean[..., None, None], x[:, :, frames], noise[:, :, frames])
        t0 = clean.float()                                                 # clean: t = 1 already

        def velocity(x, t):
            return net(x, t, ctx[:, :, frames], obj_valid, dynamic, spatial=spatial, temporal=temporal)
        return fm.integrate_per_latent(velocity, x, t0, steps, method)

    z = torch.zeros(B, O, F_, K, C, device=image.device)
    none = torch.zeros(B, O, 1, dtype=torch.bool, device=image.device)
    if frame_by_frame:                                                     # static-only baseline
        for f in range(F_):
            z[:, :, f:f + 1] = solve(z, none, [f], mix, False)
        return z * net.latent_scale
    z[:, :, :1] = solve(z, none, [0], mix, False)                          # frame 0: the 3D scene
    moving = dynamic & obj_valid
    z[:, :, 1:] = z[:, :, :1]                                              # static objects: clean copies
    if not bool(moving.any()):                                             # a static scene is one snapshot
        return z * net.latent_scale
    done = 1                                                               # frames already generated
    while done < F_:
        start = max(0, min(done - Hh, F_ - W)) if done > 1 else 0         # keep Hh frames of history
        frames = list(range(start, start + min(W, F_)))
        clean = ~moving[:, :, None] | (torch.tensor(frames, device=z.device) < done)[None, None]
        z[:, :, frames] = solve(z, clean, frames, mix, True)
        done = frames[-1] + 1
    return z * net.latent_scale


# ======================================================================================
# 6. Decoding: occupancy grids, surface points, meshes
# ======================================================================================


def grid_points(resolution: int, device=None) -> torch.Tensor:
    """Centres (R^3, 3) of the cells of an R^3 grid over [-1, 1]^3, in (i, j, k) order (the
    data's grids, data.grid_lookup, use the same cells)."""
    c = (torch.arange(resolution, device=device, dtype=torch.float32) + 0.5) / resolution * 2 - 1
    return torch.stack(torch.meshgrid(c, c, c, indexing="ij"), -1).reshape(-1, 3)


@torch.no_grad()
def decode_occupancy(model, z: torch.Tensor, resolution: int | None = None, max_queries: int = 1 << 17) -> torch.Tensor:
    """Occupancy probabilities (..., R, R, R) of latents z (..., K, C) (VAE units).

    Equal latents (a static object's copies in every frame) are decoded once; at most
    `max_queries` query points go through the decoder at once (memory)."""
    net = unwrap(model)
    R = resolution or net.cfg.eval_resolution
    lead = z.shape[:-2]
    flat = z.reshape(-1, *z.shape[-2:])
    unique, inverse = torch.unique(flat.flatten(1), dim=0, return_inverse=True)
    x = grid_points(R, z.device)
    probs = []
    for zs in unique.reshape(-1, *z.shape[-2:]).split(max(1, max_queries // len(x))):
        tokens = net.vae.latent_tokens(zs)                                   # (g, K, D)
        chunk = max(1, max_queries // len(zs))
        probs.append(torch.cat([net.vae.query(tokens, c[None].expand(len(zs), -1, -1)).sigmoid()
                                for c in x.split(chunk)], 1))                # (g, R^3)
    return torch.cat(probs)[inverse].reshape(*lead, R, R, R)


def occupancy_to_points(occ: torch.Tensor) -> torch.Tensor:
    """Surface points of a solid grid (R, R, R) bool over [-1, 1]^3: the centres of occupied
    cells with an empty (or out-of-grid) face neighbour -> (M, 3); (0, 3) if empty."""
    R = occ.shape[-1]
    pad = F.pad(occ[None, None].float(), (1, 1, 1, 1, 1, 1))[0, 0].bool()
    inner = torch.ones_like(occ)
    for axis in range(3):
        for s in (0, 2):
            inner &= pad.narrow(axis, s, R).narrow((axis + 1) % 3, 1, R).narrow((axis + 2) % 3, 1, R)
    shell = occ & ~inner
    return (torch.nonzero(shell).float() + 0.5) / R * 2 - 1


def occupancy_to_mesh(probs, level: float = 0.5):
    """Marching cubes (scikit-image) on an occupancy grid (R, R, R) over [-1, 1]^3 ->
    (vertices (V, 3) float32 in [-1, 1], faces (F, 3) int64). Needs scikit-image; without it,
    use occupancy_to_points."""
    try:
        from skimage.measure import marching_cubes
    except ImportError as e:
        raise ImportError("occupancy_to_mesh needs scikit-image (pip install scikit-image); "
                          "occupancy_to_points gives surface points without it") from e
    import numpy as np
    p = np.asarray(torch.as_tensor(probs).float().cpu())
    R = p.shape[-1]
    if not (p.min() < level < p.max()):
        raise ValueError(f"occupancy_to_mesh: the grid never crosses level {level} (no surface)")
    v, f, _, _ = marching_cubes(np.pad(p, 1), level)                        # pad: close surfaces at the border
    return ((v - 1 + 0.5) / R * 2 - 1).astype(np.float32), f.astype(np.int64)
