"""C4G ("Learning Global Motion with Compact Gaussians for Feed-Forward 4D Reconstruction",
2026 project page): a video in, a fixed number of 3D Gaussians per target time out, read
top to bottom.

    a clip: S input frames (RGB-D + known cameras + times), V target views (camera + time)
      -> one centre / scale per clip from the input depth points          scene_normalization
      -> per pixel: rgb, normalised world point, valid, Plücker ray (13)   frame_inputs
      -> video encoder: patchify each frame, + frame-time embedding, a ViT
         alternating frame-wise and global attention     (B, S, P, D)      VideoEncoder
      -> query decoder: N learnable queries attend to each other and to all
         S*P tokens -> canonical Gaussians (B, N, ...)                     C4G.decode
      -> target time t: each Gaussian's position = canonical + offset(h, t)
         -> Gaussians (B, V, N, ...) for the V target times
      -> back to world units, splat into each target camera; L1 on RGB
         (+ depth)                                                         loss, render
      -> (no training) the last decoder layer's cross-attention A (B, N, S*P)
         pools any per-frame 2D features into the N Gaussians: a 4D
         feature field                                                     lift_features

What C4G replaces, built here as the baseline on the same encoder: pixel-aligned Gaussians
(`PixelGaussians`), one per (stride x stride) pixels of EVERY input frame, so their number
grows as S x H x W while C4G's stays N (`num_gaussians`). The paper's argument: a
pixel-aligned Gaussian only knows its own frame, so the same surface is duplicated once per
frame and each copy must be moved to the target time on its own (ghosts); a query gathers
evidence of one piece of surface from every frame and moves it once.

Not built here (the paper has it): the diffusion-based rendering enhancement. Feature
lifting is built training-free: `C4G.decode(..., return_attention=True)` also returns the
last decoder layer's cross-attention (queries -> all frames' tokens, averaged over heads) and
`lift_features` pools per-frame 2D features with it, f_n = sum_k A[n, k] F[k]; put them in
`Gaussians.features` and `render(features=True)` splats them at any time and camera
(the paper's learned feature decoder is not built; evaluate.py uses the field for point
tracking). `feature_dim` > 0 gives every Gaussian extra learned channels of its own.

Choices (ours; the project page gives no architecture details beyond its figure)
--------------------------------------------------------------------------------
- Input at course scale. There is no pretrained VGGT here (no download), so the encoder
  is trained from scratch and is given the geometry a VGGT would have inferred: per pixel
  RGB in [0, 1], the depth pixel's world point (normalised; zero where depth is 0) and its
  valid flag, and the pixel's Plücker ray (d, o x d) from the generator's known camera,
  also in normalised coordinates. 3 + 3 + 1 + 6 = 13 channels (`IN_CHANNELS`). The rays
  also tell the encoder where each patch looks, so there is no patch-position table and
  the model runs at any image size divisible by the patch.
- At full scale a pretrained VGGT-like backbone plugs in by replacing `VideoEncoder`: any
  module that maps the S frames to tokens (B, S, P, D) (VGGT's aggregator output after a
  linear projection to D, with the frame-time embedding added) is what `C4G.decode`
  reads; nothing downstream depends on how the tokens were made.
- Time. Input frame times and target times are mapped to [0, 1] by the first and last
  INPUT times of the clip (`normalize_times`), so a target between input frames is an
  interpolation, and a model trained on 2-second clips reads a 4-second one as the same
  [0, 1]. Both go through a sinusoidal embedding + MLP (`TimestepEmbedder`): added to every
  token of its frame in the encoder, and to the decoded queries for the target time.
- Position modulation: canonical position + time-conditioned offset. The decoder runs ONCE
  per clip, without the target time: query n becomes a canonical Gaussian (anchor_n +
  a predicted shift, scale, rotation, opacity, colour, features). Then its position at
  target time t is canonical + Mlp(h_n + e(t)): the query's feature h_n, which gathered
  that piece of surface from all frames, holds its trajectory, and the MLP reads it out
  at t. Only positions depend on t (the page: "decoded Gaussian positions are modulated
  by the target timestamp"); scale, rotation, opacity and colour are shared over time.
  Same t twice gives the same Gaussians exactly; V target times cost one small MLP each.
- Anchors: each query owns a learnable canonical start position, initialised uniformly in
  [-1, 1]^3 of the normalised scene (DETR-style reference points), so at the first step
  the Gaussians are spread over the scene instead of piled up at its centre.
- Heads (normalised units): scale = exp of a log-scale bounded to [log min_scale,
  log max_scale] by a sigmoid (no collapse to zero, no Gaussian larger than the scene);
  rotation = normalised (raw + (1, 0, 0, 0)) quaternion w, x, y, z (starts near identity);
  opacity = sigmoid; colour = sigmoid RGB; features raw. All heads start small (weights of
  std 0.02; the time offsets' 0.002, so Gaussians start at their canonical positions) but
  not zero, so every part of the network has a gradient from the first step.
- Baseline positions: a pixel-aligned Gaussian sits ON its pixel's ray at a predicted
  signed distance t from the ray's point nearest the scene centre (p0 = d x m from the
  Plücker coordinates (d, m), so the head needs no camera pose), plus the same kind of
  time-conditioned offset as C4G (Mlp(token + e(t)), one per Gaussian). With stride > 1
  the rays of a stride x stride block are averaged: for a pinhole camera (all rays through
  its centre o, m = o x d) the mean (d, m) is exactly the ray through o along the mean
  direction.
- Loss: L1 on RGB over all target pixels (3DGS's photometric L1, without its D-SSIM term),
  plus depth_weight x L1 on z-depth over the pixels where the GT has depth, divided by the
  clip's scale (so the weight means the same at any scene size). Black background, like
  the generator's images where nothing is seen.
- Normalisation: one median centre / scale per clip from the input frames' depth points
  (fourdlib.geometry.normalize: robust to a few far pixels). The network lives in that
  space; `Gaussians.to_world` maps back to metres for the renderer.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ...data.dataset import clip_sources
from ...data.sequence import FormatError, Sequence4D
from ...geometry.cameras import camera_rays, invert_rigid, plucker, unproject_depth
from ...geometry.normalize import median_center_scale
from ...layers import Block, Mlp, TimestepEmbedder, frame_attention, global_attention
from ...layers.attention import MultiHeadAttention
from ...render.gaussians import Rendered, render_gaussians
from ...train.distributed import unwrap
from .config import C4GConfig

__all__ = ["IN_CHANNELS", "ClipDataset", "make_dataset", "scene_normalization", "frame_inputs", "normalize_times",
           "model_inputs", "Gaussians", "VideoEncoder", "attention_weights", "C4G", "lift_features", "PixelGaussians",
           "build_model", "predict", "render", "loss"]

IN_CHANNELS = 13          # rgb 3 + world point 3 + valid 1 + Plücker ray 6
TIME_FREQ_DIM = 64        # sinusoids of the time embedding
TIME_MAX_PERIOD = 100.0   # slowest sinusoid: 1/100 of the fastest (time_freq rad per clip)


# ======================================================================================
# 0. Data: clips of RGB-D frames and their target views
# ======================================================================================


class ClipDataset(torch.utils.data.Dataset):
    """Clips of `clip_frames` consecutive frames of Sequence4D sequences, as C4G trains on them.

    sources: a dataset folder (manifest.json + .npz, see fourdlib.data.dataset; `split`
    selects its entries) or a list of Sequence4D. Each needs rgb, depth, intrinsics and
    cam_to_world; only view 0 of each frame is used (the generator films with one moving
    camera, so a frame has exactly one view).

    Which frames: the S = `input_frames` inputs are evenly spaced over the clip, its first
    and last frames included. There is one camera per frame, so a novel view is a frame the
    encoder did not see: its camera AND its time differ from every input's. Targets are the
    V = `target_views` frames rendered for the loss:
      train=True   a random clip start, and V distinct frames of the clip drawn at random
                   (held-out and input frames alike), in time order; torch's global RNG.
      train=False  the first clip of each sequence; the held-out frames first, then input
                   frames if V is larger, in time order (the same every call).

    An item is a dict of tensors:
      rgb (S, H, W, 3) float in [0, 1]; depth (S, H, W) z-depth metres, 0 = nothing seen;
      K (S, 3, 3); cam_to_world (S, 4, 4); times (S,) seconds; frames (S,) long
      target_rgb (V, H, W, 3); target_depth (V, H, W); target_K (V, 3, 3);
      target_cam_to_world (V, 4, 4); target_times (V,); target_frames (V,); index ()
    The default DataLoader collate stacks them into a batch (a leading B).
    `sequence(i)` gives item i's whole Sequence4D (meshes, masks, ...: for evaluation, e.g. GT
    point tracks); only the views above are kept in memory.
    """

    def __init__(self, sources, clip_frames: int, input_frames: int, target_views: int, *, train: bool = True,
                 split: str | None = None):
        if not 1 <= input_frames <= clip_frames or not 1 <= target_views <= clip_frames:
            raise ValueError(f"need 1 <= input_frames ({input_frames}) and target_views ({target_views}) "
                             f"<= clip_frames ({clip_frames})")
        self.clip, self.S, self.V, self.train = clip_frames, input_frames, target_views, train
        self.sources, self.sequences = clip_sources(sources, split, _views, clip_frames)   # paths or Sequence4Ds

    def __len__(self) -> int:
        return len(self.sequences)

    def sequence(self, i: int) -> Sequence4D:
        """The whole Sequence4D of item i (read again from its file when the dataset is a folder)."""
        if not 0 <= i < len(self.sources):
            raise IndexError(f"sequence {i} out of range for a dataset of {len(self.sources)}")
        src = self.sources[i]
        return src if isinstance(src, Sequence4D) else Sequence4D.load(src)

    def frames(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs (S,), targets (V,)) frame indices of item i (random when train=True)."""
        T = self.sequences[i]["rgb"].shape[0]
        start = int(torch.randint(0, T - self.clip + 1, ())) if self.train else 0
        inputs = torch.from_numpy(np.linspace(0, self.clip - 1, self.S).round().astype(np.int64))
        if self.train:
            targets = torch.randperm(self.clip)[: self.V].sort().values
        else:
            held = [f for f in range(self.clip) if f not in inputs.tolist()]
            targets = torch.tensor(sorted((held + inputs.tolist())[: self.V]))
        return start + inputs, start + targets

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        seq = self.sequences[i]
        inputs, targets = self.frames(i)
        item = {"index": torch.tensor(i), "frames": inputs, "target_frames": targets}
        for prefix, f in (("", inputs), ("target_", targets)):
            for key, value in seq.items():
                item[prefix + key] = value[f]
        return item


def _views(seq: Sequence4D, name: str) -> dict[str, torch.Tensor]:
    """View 0 of every frame as tensors: rgb (T, H, W, 3) in [0, 1], depth, K, cam_to_world, times."""
    missing = [f for f in ("rgb", "depth", "intrinsics", "cam_to_world") if getattr(seq, f) is None]
    if missing:
        raise FormatError(f"{name}: C4G needs RGB-D frames with cameras; missing {missing}")
    return {"rgb": torch.from_numpy(seq.rgb[:, 0]).float() / 255.0, "depth": torch.from_numpy(seq.depth[:, 0]),
            "K": torch.from_numpy(seq.intrinsics[:, 0]), "cam_to_world": torch.from_numpy(seq.cam_to_world[:, 0]),
            "times": torch.from_numpy(seq.times).float()}


def make_dataset(cfg: C4GConfig, sources, split: str | None = None, train: bool = True) -> ClipDataset:
    """ClipDataset with cfg's clip_frames, input_frames and target_views."""
    return ClipDataset(sources, cfg.clip_frames, cfg.input_frames, cfg.target_views, train=train, split=split)


# ======================================================================================
# 1. What the network sees: normalised coordinates, per-pixel inputs, times in [0, 1]
# ======================================================================================


def scene_normalization(depth: torch.Tensor, K: torch.Tensor, cam_to_world: torch.Tensor):
    """One (center (B, 3), scale (B,)) per clip: the medians of its input frames' depth points.

    depth (B, S, H, W) (0 = no depth), K (B, S, 3, 3), cam_to_world (B, S, 4, 4).
    x_normalised = (x - center) / scale; lengths are divided by scale.
    """
    points = unproject_depth(depth, K, cam_to_world)                   # (B, S, H, W, 3)
    centers, scales = [], []
    for b in range(depth.shape[0]):                                     # a few clips per batch
        valid = depth[b] > 0
        if not bool(valid.any()):
            raise ValueError(f"clip {b} of the batch has no depth in any input frame: nothing to normalise with")
        c, s = median_center_scale(points[b][valid])
        centers.append(c)
        scales.append(s)
    return torch.stack(centers).to(depth), torch.stack(scales).to(depth)


def frame_inputs(rgb, depth, K, cam_to_world, center, scale) -> torch.Tensor:
    """Per-pixel encoder input (B, S, H, W, IN_CHANNELS) in normalised coordinates:

    [rgb (3) in [0, 1], world point of the depth pixel (3, zero where depth = 0), valid (1),
     Plücker ray (d, o x d) of the pixel (6)].
    """
    B, S, H, W = depth.shape
    c, s = center[:, None, None, None], scale[:, None, None, None, None]  # (B, 1, 1, 1, 3), (B, 1, 1, 1, 1)
    origins, dirs = camera_rays(K, cam_to_world, H, W)                 # (B, S, H, W, 3) each
    rays = plucker((origins - c) / s, dirs)                            # (B, S, H, W, 6)
    valid = (depth > 0)[..., None].to(rgb.dtype)                       # (B, S, H, W, 1)
    points = (unproject_depth(depth, K, cam_to_world) - c) / s * valid  # (B, S, H, W, 3)
    return torch.cat([rgb, points, valid, rays], dim=-1)


def normalize_times(times: torch.Tensor, target_times: torch.Tensor):
    """Map times (B, S) and target_times (B, V) so that the first input is 0 and the last 1.

    A clip with one input frame (or equal times) keeps its spacing in seconds.
    """
    t0 = times[:, :1]
    span = times[:, -1:] - t0
    span = torch.where(span > 0, span, torch.ones_like(span))
    return (times - t0) / span, (target_times - t0) / span


def model_inputs(batch: dict) -> dict:
    """A batch (see ClipDataset) -> what the models take, plus the way back to world units:

    x (B, S, H, W, IN_CHANNELS), times (B, S) and target_times (B, V) in clip units,
    center (B, 3), scale (B,).
    """
    for key in ("rgb", "depth", "K", "cam_to_world", "times", "target_times"):
        if key not in batch:
            raise KeyError(f"C4G needs batch[{key!r}] (see ClipDataset); got keys {sorted(batch)}")
    rgb, depth, K, c2w = batch["rgb"], batch["depth"], batch["K"], batch["cam_to_world"]
    if depth.dim() != 4 or rgb.shape != (*depth.shape, 3):
        raise ValueError(f"rgb (B, S, H, W, 3) and depth (B, S, H, W) must agree, got {tuple(rgb.shape)} "
                         f"and {tuple(depth.shape)}")
    with torch.no_grad():  # data, not parameters
        center, scale = scene_normalization(depth, K, c2w)
        x = frame_inputs(rgb, depth, K, c2w, center, scale)
        times, target_times = normalize_times(batch["times"], batch["target_times"])
    return {"x": x, "times": times, "target_times": target_times, "center": center, "scale": scale}


# ======================================================================================
# 2. Gaussians: what both models output
# ======================================================================================


class Gaussians(NamedTuple):
    """G Gaussians per (clip b, target time v), in fourdlib.render.gaussians' conventions."""
    means: torch.Tensor      # (B, V, G, 3)  positions (normalised units out of a model, metres after to_world)
    quats: torch.Tensor      # (B, V, G, 4)  unit quaternions w, x, y, z
    scales: torch.Tensor     # (B, V, G, 3)  standard deviations along the Gaussian's axes, > 0
    opacities: torch.Tensor  # (B, V, G)     in [0, 1]
    colors: torch.Tensor     # (B, V, G, 3)  RGB in [0, 1]
    features: torch.Tensor   # (B, V, G, F)  extra channels (F = cfg.feature_dim, may be 0)

    @property
    def count(self) -> int:
        """G, the number of Gaussians per target time."""
        return self.means.shape[2]

    def to_world(self, center: torch.Tensor, scale: torch.Tensor) -> "Gaussians":
        """Normalised -> world units: means * scale + center, scales * scale (center (B, 3), scale (B,))."""
        return self._replace(means=self.means * scale[:, None, None, None] + center[:, None, None],
                             scales=self.scales * scale[:, None, None, None])


def _heads(raw: torch.Tensor, cfg: C4GConfig):
    """Split a head's raw output (..., 1 + 3 + 4 + 1 + 3 + F) into (position-ish (...,),
    scales (..., 3), quats (..., 4), opacities (...,), colors (..., 3), features (..., F));
    the first chunk's width is the caller's (3 for a C4G shift, 1 for a ray distance)."""
    first = raw.shape[-1] - (3 + 4 + 1 + 3 + cfg.feature_dim)
    pos, log_s, q, o, rgb, feat = raw.split([first, 3, 4, 1, 3, cfg.feature_dim], dim=-1)
    lo, hi = np.log(cfg.min_scale), np.log(cfg.max_scale)
    scales = torch.exp(lo + (hi - lo) * torch.sigmoid(log_s))        # bounded: no collapse, no giants
    identity = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=q.dtype, device=q.device)
    quats = F.normalize(q + identity, dim=-1)                          # starts near the identity rotation
    return pos, scales, quats, torch.sigmoid(o[..., 0]), torch.sigmoid(rgb), feat


def _small_init(linear: nn.Linear, std: float = 0.02) -> nn.Linear:
    """Small but non-zero weights: outputs start near their bias, every input still gets a gradient."""
    nn.init.normal_(linear.weight, std=std)
    nn.init.zeros_(linear.bias)
    return linear


# ======================================================================================
# 3. Video encoder
# ======================================================================================


class VideoEncoder(nn.Module):
    """A small ViT over the S frames of a clip: x (B, S, H, W, C) + times (B, S) -> tokens (B, S, P, D).

    Course scale: C = IN_CHANNELS (rgb, normalised depth point, valid, Plücker ray; see
    `frame_inputs`), trained from scratch. Each frame is cut into p x p patches, one token
    each (P = H W / p^2), the frame's time embedding is added to its tokens, and the layers
    alternate attention within each frame and across all S*P tokens (as VGGT's alternating
    aggregator). Full scale: replace this module by a pretrained VGGT-like backbone whose
    tokens are projected to D and given the same time embedding; C4G.decode only reads
    (B, S, P, D).
    """

    def __init__(self, cfg: C4GConfig):
        super().__init__()
        self.cfg = cfg
        D, p = cfg.dim, cfg.patch_size
        self.patch_embed = nn.Linear(IN_CHANNELS * p * p, D)
        self.time_embed = TimestepEmbedder(D, freq_dim=TIME_FREQ_DIM, max_period=TIME_MAX_PERIOD, t_scale=cfg.time_freq)
        self.blocks = nn.ModuleList([Block(D, cfg.heads, cfg.mlp_ratio, qk_norm=True) for _ in range(cfg.enc_depth)])
        self.norm = nn.LayerNorm(D, eps=1e-6)  # the decoder's cross-attention reads these unnormalised

    def forward(self, x: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        p = self.cfg.patch_size
        if x.dim() != 5 or x.shape[-1] != IN_CHANNELS or x.shape[2] % p or x.shape[3] % p:
            raise ValueError(f"VideoEncoder expects x (B, S, H, W, {IN_CHANNELS}) with H, W divisible by {p}, "
                             f"got {tuple(x.shape)}")
        patches = rearrange(x, "b s (h p1) (w p2) c -> b s (h w) (p1 p2 c)", p1=p, p2=p)
        h = self.patch_embed(patches) + self.time_embed(times)[:, :, None]   # (B, S, P, D)
        for i, blk in enumerate(self.blocks):
            h = frame_attention(blk, h) if i % 2 == 0 else global_attention(blk, h)
        return self.norm(h)


# ======================================================================================
# 4. C4G: query Gaussians
# ======================================================================================


def attention_weights(attn: MultiHeadAttention, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """The softmax weights (B, heads, Lq, Lk) that `attn(x, context)` applies to its values.

    x (B, Lq, dim), context (B, Lk, kv_dim): the module's own inputs. The shared attention
    (fourdlib.layers) runs SDPA, which never materialises the weights, so they are computed
    here from the module's own q / k projections and qk-norms: softmax(q k^T / sqrt(d)).
    Dense attention without mask or rotary embedding only (what C4G's decoder uses); the
    tests check weights @ values through `attn.proj` against `attn(x, context)`.
    """
    if x.dim() != 3 or context.dim() != 3 or x.shape[0] != context.shape[0]:
        raise ValueError(f"attention_weights: x (B, Lq, dim) and context (B, Lk, kv_dim) must share B, "
                         f"got {tuple(x.shape)} and {tuple(context.shape)}")
    if attn.rotary is not None:
        raise ValueError("attention_weights: attention with a rotary embedding is not supported")
    q = rearrange(attn.to_q(x), "b l (h d) -> b h l d", h=attn.heads)
    k, _ = rearrange(attn.to_kv(context), "b l (two h d) -> two b h l d", two=2, h=attn.heads)
    if attn.q_norm is not None:
        q, k = attn.q_norm(q.float()).to(q.dtype), attn.k_norm(k.float()).to(k.dtype)
    scores = torch.einsum("bhqd,bhkd->bhqk", q.float(), k.float()) / np.sqrt(attn.head_dim)
    return scores.softmax(-1).to(q.dtype)                                # (B, heads, Lq, Lk)


def lift_features(attention: torch.Tensor, feats: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Per-frame 2D features -> one feature per query Gaussian: f_n = sum_k A[n, k] F[k].

    attention (B, N, S*P): C4G.decode(..., return_attention=True)'s weights of each query
      over the S frames' P = h*w patch tokens (rows sum to 1).
    feats (B, S, Hf, Wf, C): any per-frame feature maps (the encoder's tokens, colours, a 2D
      backbone's features) at the patch grid or an integer multiple of it; a finer map is
      average-pooled to the grid first, so F[k] is the mean feature over patch k's pixels.
    grid (h, w): the token grid, (H / patch_size, W / patch_size).
    Returns (B, N, C). Rows of A sum to 1, so a constant map lifts to that constant.
    """
    h, w = grid
    if feats.dim() != 5 or attention.dim() != 3 or feats.shape[0] != attention.shape[0]:
        raise ValueError(f"lift_features: attention (B, N, S*P) and feats (B, S, Hf, Wf, C) must share B, "
                         f"got {tuple(attention.shape)} and {tuple(feats.shape)}")
    B, S, Hf, Wf, C = feats.shape
    if attention.shape[2] != S * h * w:
        raise ValueError(f"lift_features: attention covers {attention.shape[2]} tokens but feats have S = {S} "
                         f"frames of a {h} x {w} grid ({S * h * w} tokens)")
    if Hf % h or Wf % w:
        raise ValueError(f"lift_features: feature maps of {Hf} x {Wf} are not a multiple of the {h} x {w} token grid")
    pooled = F.avg_pool2d(rearrange(feats, "b s y x c -> (b s) c y x"), (Hf // h, Wf // w))  # (B*S, C, h, w)
    tokens = rearrange(pooled, "(b s) c y x -> b (s y x) c", b=B)      # (B, S*P, C): the encoder's token order
    return torch.einsum("bnk,bkc->bnc", attention.to(tokens.dtype), tokens)


class C4G(nn.Module):
    """Video encoder + N learnable queries -> N Gaussians per target time (normalised units).

    forward(x, times, target_times) = decode(encoder(x, times), target_times):
    x (B, S, H, W, IN_CHANNELS), times (B, S), target_times (B, V) -> Gaussians (B, V, N, ...).
    """

    def __init__(self, cfg: C4GConfig):
        super().__init__()
        self.cfg = cfg
        D, N = cfg.dim, cfg.num_queries
        self.encoder = VideoEncoder(cfg)
        self.queries = nn.Parameter(torch.randn(N, D) * 0.02)
        self.anchors = nn.Parameter(torch.rand(N, 3) * 2 - 1)  # canonical start positions over the normalised scene
        # self-attention (queries share out the surface) + cross-attention to every frame's tokens + MLP
        self.dec_blocks = nn.ModuleList([Block(D, cfg.heads, cfg.mlp_ratio, context_dim=D, qk_norm=True)
                                         for _ in range(cfg.dec_depth)])
        self.dec_norm = nn.LayerNorm(D, eps=1e-6)
        # shift from the anchor 3, log-scale 3, rotation 4, opacity 1, rgb 3, features F
        self.head = _small_init(nn.Linear(D, 3 + 3 + 4 + 1 + 3 + cfg.feature_dim))
        self.target_time_embed = TimestepEmbedder(D, freq_dim=TIME_FREQ_DIM, max_period=TIME_MAX_PERIOD,
                                                  t_scale=cfg.time_freq)
        self.motion = Mlp(D, int(D * cfg.mlp_ratio), 3)          # offset of the position at time t
        _small_init(self.motion.fc2, 0.002)                      # start close to the canonical positions

    def num_gaussians(self, frames: int, height: int, width: int) -> int:
        """Gaussians per target time: N, whatever the frames and image size (the arguments are
        there to match PixelGaussians.num_gaussians)."""
        return self.cfg.num_queries

    def decode(self, tokens: torch.Tensor, target_times: torch.Tensor, *, return_attention: bool = False):
        """tokens (B, S, P, D), target_times (B, V) in clip units -> Gaussians (B, V, N, ...).

        return_attention=True: (Gaussians, A) with A (B, N, S*P) the LAST decoder layer's
        cross-attention over all frames' tokens (frame-major, as `rearrange(tokens, "b s p d ->
        b (s p) d")`), averaged over heads. The last layer because its queries have already
        gathered (earlier layers) and shared out (self-attention) their surface, so it is the
        attention closest to the h_n the heads decode; the first layer's queries are the same
        learned vectors for every clip. Used by `lift_features`.
        """
        B, V = target_times.shape
        context = rearrange(tokens, "b s p d -> b (s p) d")              # every frame's tokens
        h = self.queries.expand(B, -1, -1)                               # (B, N, D)
        seen = {}                                                        # the last cross-attention's inputs
        hook = None
        if return_attention:  # a pre-hook sees exactly what the block passes to its cross-attention
            hook = self.dec_blocks[-1].cross_attn.register_forward_pre_hook(
                lambda module, args: seen.update(x=args[0], context=args[1]))
        try:
            for blk in self.dec_blocks:
                h = blk(h, context=context)
        finally:
            if hook is not None:
                hook.remove()
        h = self.dec_norm(h)
        shift, scales, quats, opacities, colors, features = _heads(self.head(h), self.cfg)
        canonical = self.anchors + shift                                 # (B, N, 3)
        e = self.target_time_embed(target_times)                         # (B, V, D)
        offset = self.motion(h[:, None] + e[:, :, None])                 # (B, V, N, 3)

        def per_time(a):  # time-independent attributes, shared by the V target times (no copy)
            return a[:, None].expand(B, V, *a.shape[1:])

        g = Gaussians(canonical[:, None] + offset, per_time(quats), per_time(scales), per_time(opacities),
                      per_time(colors), per_time(features))
        if not return_attention:
            return g
        A = attention_weights(self.dec_blocks[-1].cross_attn, seen["x"], seen["context"]).mean(1)  # (B, N, S*P)
        return g, A

    def forward(self, x: torch.Tensor, times: torch.Tensor, target_times: torch.Tensor) -> Gaussians:
        return self.decode(self.encoder(x, times), target_times)


# ======================================================================================
# 5. The baseline C4G replaces: pixel-aligned Gaussians
# ======================================================================================


class PixelGaussians(nn.Module):
    """The same encoder, one Gaussian per stride x stride pixels of every input frame.

    forward(x, times, target_times) -> Gaussians (B, V, S * (H/stride) * (W/stride), ...),
    normalised units. Position: on the (block-averaged) pixel ray at a predicted signed
    distance from the ray's point nearest the scene centre, plus a time-conditioned offset.
    """

    def __init__(self, cfg: C4GConfig):
        super().__init__()
        self.cfg = cfg
        D, k = cfg.dim, cfg.patch_size // cfg.pixel_stride               # k x k Gaussians per patch token
        self.encoder = VideoEncoder(cfg)
        self.head = _small_init(nn.Linear(D, k * k * (1 + 3 + 4 + 1 + 3 + cfg.feature_dim)))
        self.target_time_embed = TimestepEmbedder(D, freq_dim=TIME_FREQ_DIM, max_period=TIME_MAX_PERIOD,
                                                  t_scale=cfg.time_freq)
        self.motion = Mlp(D, int(D * cfg.mlp_ratio), k * k * 3)
        _small_init(self.motion.fc2, 0.002)

    def num_gaussians(self, frames: int, height: int, width: int) -> int:
        """Gaussians per target time: frames x (H / stride) x (W / stride)."""
        s = self.cfg.pixel_stride
        return frames * (height // s) * (width // s)

    def forward(self, x: torch.Tensor, times: torch.Tensor, target_times: torch.Tensor) -> Gaussians:
        B, S, H, W, _ = x.shape
        V, p, s = target_times.shape[1], self.cfg.patch_size, self.cfg.pixel_stride
        k, w = p // s, W // p
        tokens = self.encoder(x, times)                                  # (B, S, P, D)
        raw = rearrange(self.head(tokens), "b s (h w) (k1 k2 c) -> b s (h k1 w k2) c", w=w, k1=k, k2=k)
        dist, scales, quats, opacities, colors, features = _heads(raw, self.cfg)   # (B, S, h*k*w*k, ...)

        # the ray of each stride x stride block: mean Plücker coordinates (exact for a pinhole camera)
        rays = rearrange(x[..., 7:13], "b s (h s1) (w s2) c -> b s (h w) (s1 s2) c", s1=s, s2=s).mean(-2)
        d_len = rays[..., :3].norm(dim=-1, keepdim=True)
        d, m = rays[..., :3] / d_len, rays[..., 3:] / d_len              # unit direction, moment
        on_ray = torch.cross(d, m, dim=-1) + dist * d                    # (B, S, G_s, 3): p0 + t d

        e = self.target_time_embed(target_times)                         # (B, V, D)
        offset = self.motion(tokens[:, None] + e[:, :, None, None])      # (B, V, S, P, k*k*3)
        offset = rearrange(offset, "b v s (h w) (k1 k2 c) -> b v (s h k1 w k2) c", w=w, k1=k, k2=k)

        def per_time(a):  # (B, S, G_s, ...) -> (B, V, S*G_s, ...), shared by the V target times
            a = a.flatten(1, 2)
            return a[:, None].expand(B, V, *a.shape[1:])

        return Gaussians(per_time(on_ray) + offset, per_time(quats), per_time(scales), per_time(opacities),
                         per_time(colors), per_time(features))


def build_model(cfg: C4GConfig) -> nn.Module:
    """The model cfg.decoder names: C4G ("queries") or PixelGaussians ("pixels"), same encoder.

    The run machinery builds every run through this (course.METHOD.model_cls), so a run of
    either decoder is rebuilt from its stored config alone."""
    return {"queries": C4G, "pixels": PixelGaussians}[cfg.decoder](cfg)


# ======================================================================================
# 6. Rendering and the loss
# ======================================================================================


def predict(model, batch: dict) -> Gaussians:
    """Gaussians in WORLD units (metres) for the batch's target times: (B, V, G, ...).

    Works for C4G and PixelGaussians (anything with forward(x, times, target_times))."""
    inputs = model_inputs(batch)
    g = model(inputs["x"], inputs["times"], inputs["target_times"])
    return g.to_world(inputs["center"], inputs["scale"])


def render(g: Gaussians, K: torch.Tensor, cam_to_world: torch.Tensor, height: int, width: int, *,
           background=None, features: bool = False, **kwargs) -> Rendered:
    """Splat Gaussians (B, V, G, ...) in world units into cameras K (B, V, 3, 3), cam_to_world (B, V, 4, 4).

    Returns Rendered(image (B, V, H, W, 3), or 3 + F channels [rgb, features] with
    features=True; depth (B, V, H, W); alpha (B, V, H, W)). background None is black.
    kwargs go to fourdlib.render.gaussians.render_gaussians (e.g. checkpoint_tiles=True).
    """
    B, V = g.means.shape[:2]
    if K.shape[:2] != (B, V) or cam_to_world.shape[:2] != (B, V):
        raise ValueError(f"render: Gaussians for (B, V) = {(B, V)} but cameras K {tuple(K.shape)}, "
                         f"cam_to_world {tuple(cam_to_world.shape)}")
    colors = torch.cat([g.colors, g.features], -1) if features else g.colors
    world_to_cam = invert_rigid(cam_to_world)
    outs = [render_gaussians(g.means[b, v], g.quats[b, v], g.scales[b, v], g.opacities[b, v], colors[b, v],
                             world_to_cam[b, v], K[b, v], width, height, background=background, **kwargs)
            for b in range(B) for v in range(V)]
    return Rendered(*(torch.stack(parts).reshape(B, V, *parts[0].shape) for parts in zip(*outs)))


def loss(model, batch: dict):
    """Rendering loss of one batch (see ClipDataset), for fourdlib.train.train.

    Renders the predicted Gaussians into each target view at its time; L1 on RGB plus
    cfg.depth_weight x L1 on z-depth (pixels with GT depth, divided by the clip's scale).
    Returns (loss, logs) with logs "rgb_l1", "depth_l1" (normalised units) and "psnr" (dB).
    """
    cfg = unwrap(model).cfg
    inputs = model_inputs(batch)
    g = model(inputs["x"], inputs["times"], inputs["target_times"]).to_world(inputs["center"], inputs["scale"])
    gt_rgb, gt_depth = batch["target_rgb"], batch["target_depth"]                # (B, V, H, W, 3), (B, V, H, W)
    out = render(g, batch["target_K"], batch["target_cam_to_world"], gt_rgb.shape[2], gt_rgb.shape[3])
    rgb_l1 = (out.image - gt_rgb).abs().mean()
    valid = gt_depth > 0
    depth_err = (out.depth - gt_depth).abs() / inputs["scale"][:, None, None, None]
    depth_l1 = depth_err[valid].mean() if bool(valid.any()) else depth_err.sum() * 0
    total = rgb_l1 + cfg.depth_weight * depth_l1 if cfg.depth_weight > 0 else rgb_l1
    with torch.no_grad():
        psnr = -10 * torch.log10(((out.image - gt_rgb) ** 2).mean().clamp_min(1e-10))
    return total, {"rgb_l1": rgb_l1.detach(), "depth_l1": depth_l1.detach(), "psnr": psnr}
