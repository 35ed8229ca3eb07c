"""Any4D ("Unified Feed-Forward Metric 4D Reconstruction", arXiv 2512.10935): N frames in,
per-pixel metric geometry and scene flow out in one forward pass, read top to bottom.

    a clip: N views (RGB + optional depth, intrinsics, poses, Doppler), view 0 the reference
      -> per pixel: normalised depth, unit camera rays, Doppler; per view:
         the pose relative to view 0                                        model_inputs
      -> which inputs this batch keeps (training: the paper's dropout)      modality_dropout
      -> patch encoder (RGB) + one encoder per modality, SUMMED into the
         patch features (B, N, M, D); + patch position, + the learnable
         reference-view embedding on view 0; + one scale token per view     Any4D.encode
      -> transformer alternating frame-wise / global attention              Any4D.encode
      -> heads: DPT (reassemble + fusion) for geometry: ray directions R_i,
         normalised depth D_i (along the ray), confidence; DPT for motion;
         pose T_i (translation + quaternion); metric scale s (exp)          Any4D.forward
      -> compose: G_i = s · T_i · R_i · D_i (Eq. 2), M_i = s · F_i (Eq. 3)  compose
      -> scale-invariant losses, 10x on moving pixels, scale loss only
         where the data is metric                                           loss

Frames of reference (Any4D Sec. 3.1): egocentric factors (R_i, D_i) live in camera i's
frame; allocentric factors (T_i, F_i) in the world, which is the REFERENCE camera's frame
(view 0). F_i is the scene flow of the reference view's pixels from time 0 to time i: an
(H, W, 3) map on view 0's pixel grid, predicted from view i's tokens (which see view 0
through global attention). Everything but s is scale-normalised: the network never has to
output metres, and s alone carries the metric scale.

Motion representations (cfg.motion, the paper's Table 5), what the motion head predicts
for view i on the reference pixels, and how it becomes allocentric flow F_i:
  allocentric  F_i itself (Any4D).
  egocentric   E_i = (camera i's view of the point at time i) - (camera 0's at time 0);
               F_i = egocentric_to_allocentric(E_i, G_0, T_0, T_i) with the PREDICTED
               geometry and poses (fourdlib.geometry.flow).
  points       P_i, the reference points after motion, world frame; F_i = P_i - G_0.
Each is supervised in its own representation; evaluation converts to F_i and scores that.

Choices (ours where the paper is silent)
----------------------------------------
- Patch encoder. No pretrained DINOv2 can be downloaded here, so RGB goes through a
  patch embedding (one p x p conv) trained from scratch. At full scale a pretrained
  DINOv2 ViT-L/14 plugs in by replacing `Any4D.rgb_embed`: any module mapping (B*N, 3, H,
  W) images to (B*N, D, H/14, W/14) patch features (DINOv2's patch tokens, reshaped, after
  a Linear from 1024 to D) is what `encode` sums the other modalities into; nothing
  downstream depends on how the patch features were made (cfg.patch_size = 14).
- Modality encoders: depth (depth / mean valid depth of its view, valid flag), rays (unit
  directions in the camera frame, from K) and Doppler (m/s, valid flag) are per-pixel maps,
  each through its own p x p patch conv; the log of each view's mean depth (the metric cue
  the normalisation removes) through a Linear; the pose relative to view 0 (quaternion,
  translation / the clip's mean camera distance, log of that distance) through an MLP, added
  to every token of its view. All summed into the RGB patch features (the paper's
  aggregation by summation).
- Modality dropout (Sec. 3.2): per batch, with probability p_multimodal = 0.7 the model is
  conditioned on more than images, and then each extra input (depth, rays, pose, Doppler)
  is dropped independently with p_drop = 0.5; otherwise images only. RGB is never dropped,
  so a batch always has at least one input.
- Positions: fixed 2D sine-cosine embedding of the patch grid (MAE style), so a view
  without rays still knows where its patches are; no frame-time embedding (views are a set
  apart from the reference, as in the paper).
- Scale token: one learnable token appended to every view's patch tokens; it takes part
  in frame-wise and global attention, and the scale head reads the mean over views.
- Heads: rays = normalise(raw + (0, 0, 1)) (start looking forward); depth = exp(raw);
  confidence = 1 + exp(raw); pose: mean-pooled tokens of each view -> MLP -> translation,
  quaternion normalise(raw + (1, 0, 0, 0)); scale = exp(MLP(scale token)).
- DPT hooks: the outputs of layers (k+1) * depth / 4 - 1, k = 0..3 (12 layers: 2, 5, 8, 11).
- Normalisation (MapAnything / Any4D Eq. 7-10): GT geometry is divided by z_gt, the mean
  distance of the valid GT points (all views, world frame) to the world origin; the
  predicted T R D by its own z_pred, the same mean over the same pixels. Every geometry
  and flow loss compares pred / z_pred with GT / z_gt, so it is scale-invariant. The
  metric scale s is supervised as log s against log(z_gt / z_pred) (z_pred detached):
  exactly the factor that makes s · T R D metric.
- Depth is z-depth in the data and depth ALONG the ray in the factors: D = z / r_z.
"""
from __future__ import annotations


import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ...data.dataset import clip_sources
from ...data.sequence import MAX_DEPTH_M, ROT_TOL, FormatError, Sequence4D
from ...geometry.cameras import invert_rigid, quaternion_to_matrix, transform_points, unproject_depth
from ...geometry.flow import (allocentric_to_egocentric, compose_points, doppler_velocity, egocentric_to_allocentric,
                              rigid_object_flow)
from ...geometry.rotations import matrix_to_quaternion
from ...layers import Block, DPTHead, Mlp, frame_attention, global_attention
from ...train.distributed import unwrap
from .config import EXTRA_MODALITIES, Any4DConfig

__all__ = ["ViewDataset", "make_dataset", "views_batch", "check_batch", "model_inputs", "modality_dropout",
           "Any4D", "compose", "gt_factors", "loss", "predict"]


# ======================================================================================
# 0. Data: N views of a clip, with dense allocentric flow of the reference pixels
# ======================================================================================


class ViewDataset(torch.utils.data.Dataset):
    """N views of Sequence4D sequences of rigid objects, as Any4D trains on them.

    sources: a dataset folder (manifest.json + .npz, see fourdlib.data.dataset; `split`
    selects its entries) or a list of Sequence4D. Each needs rgb, depth, intrinsics,
    cam_to_world, masks, object_poses and object_dynamic, view 0 of each frame (one moving
    camera). Dense GT flow comes from the objects' rigid poses (`rigid_object_flow`), so
    every object must be rigid (MOVi-like scenes without creatures: the course's data);
    this is checked against the sequence's own mesh-exact scene flow on load.

    Which frames: a window of `clip_frames` consecutive frames (train=True: a random start,
    torch's global RNG; train=False: the first), of which `views` evenly spaced frames (its
    first and last included) are the views; the first is the reference.

    An item is a dict of tensors, poses and flow in the REFERENCE camera's frame:
      rgb (N, H, W, 3) float in [0, 1]; depth (N, H, W) z-depth metres (0 = nothing seen);
      K (N, 3, 3); cam_to_world (N, 4, 4) camera i -> reference camera (view 0: identity);
      flow (N, H, W, 3) allocentric flow of view 0's pixels from time 0 to view i's time;
      flow_valid (H, W) bool (view 0 has depth there); dynamic (H, W) bool (a moving object);
      doppler (N, H, W) m/s, radial velocity of each pixel's point over the next frame step
      (the previous step for a sequence's last frame; 0 without depth);
      metric () bool (GT in metres: the scale loss applies); frames (N,) long; index ().
    """

    def __init__(self, sources, clip_frames: int, views: int, *, train: bool = True, split: str | None = None):
        if not 2 <= views <= clip_frames:
            raise ValueError(f"need 2 <= views ({views}) <= clip_frames ({clip_frames})")
        self.clip, self.N, self.train = clip_frames, views, train
        self.sources, self.sequences = clip_sources(sources, split, _arrays, clip_frames)   # paths or Sequence4Ds

    def __len__(self) -> int:
        return len(self.sequences)

    def sequence(self, i: int) -> Sequence4D:
        """The whole Sequence4D of item i (read again from its file when the dataset is a folder)."""
        src = self.sources[i]
        return src if isinstance(src, Sequence4D) else Sequence4D.load(src)

    def frames(self, i: int) -> torch.Tensor:
        """(N,) sequence frame indices of item i's views (random start when train=True)."""
        T = self.sequences[i]["rgb"].shape[0]
        start = int(torch.randint(0, T - self.clip + 1, ())) if self.train else 0
        return start + torch.from_numpy(np.linspace(0, self.clip - 1, self.N).round().astype(np.int64))

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        s = self.sequences[i]
        f = self.frames(i)
        ref = int(f[0])
        c2w = s["cam_to_world"][f]                                        # (N, 4, 4) sequence world
        to_ref = invert_rigid(c2w[0])                                     # sequence world -> reference camera
        # flow of the reference pixels, rotated into the reference camera's frame (a displacement)
        x0 = unproject_depth(s["depth"][ref], s["K"][ref], c2w[0]).reshape(-1, 3)   # (H*W, 3)
        inst0 = s["instance"][ref].reshape(-1)
        flow = torch.stack([rigid_object_flow(x0, inst0, s["object_poses"][ref], s["object_poses"][int(t)])
                            for t in f])                                  # (N, H*W, 3)
        flow = flow @ to_ref[:3, :3].T
        H, W = s["depth"].shape[1:]
        valid0 = s["depth"][ref] > 0
        dynamic = valid0 & s["object_dynamic"][inst0.long().clamp_min(0)].reshape(H, W) & (inst0 >= 0).reshape(H, W)
        rel = to_ref @ c2w
        rel[0] = torch.eye(4)                                             # exactly, not up to rounding
        return {"rgb": s["rgb"][f].float() / 255.0, "depth": s["depth"][f], "K": s["K"][f],
                "cam_to_world": rel, "flow": flow.reshape(-1, H, W, 3), "flow_valid": valid0,
                "dynamic": dynamic, "doppler": torch.stack([_doppler(s, int(t)) for t in f]),
                "metric": torch.tensor(True), "frames": f, "index": torch.tensor(i)}


def _doppler(s: dict, t: int) -> torch.Tensor:
    """(H, W) radial velocity (m/s) of frame t's pixels: `doppler_velocity` of their egocentric
    flow to the next frame (from the previous one, reversed, at the last frame)."""
    T = s["times"].shape[0]
    nxt, sign = (t + 1, 1.0) if t + 1 < T else (t - 1, -1.0)
    dt = abs(float(s["times"][nxt] - s["times"][t]))
    x = unproject_depth(s["depth"][t], s["K"][t], s["cam_to_world"][t]).reshape(-1, 3)
    allo = rigid_object_flow(x, s["instance"][t].reshape(-1), s["object_poses"][t], s["object_poses"][nxt])
    ego = allocentric_to_egocentric(allo, x, s["cam_to_world"][t], s["cam_to_world"][nxt])
    p = transform_points(invert_rigid(s["cam_to_world"][t]), x)             # camera-t coordinates
    v = doppler_velocity(p, sign * ego, dt).reshape(s["depth"].shape[1:])
    return torch.where(s["depth"][t] > 0, v, torch.zeros_like(v))


def _arrays(seq: Sequence4D, name: str) -> dict[str, torch.Tensor]:
    """View 0 of every frame as tensors, checked: the objects are rigid (flow from poses is exact)."""
    need = ("rgb", "depth", "intrinsics", "cam_to_world", "masks", "object_poses", "object_dynamic")
    missing = [k for k in need if getattr(seq, k) is None]
    if missing:
        raise FormatError(f"{name}: Any4D needs RGB-D frames with cameras, instance masks and object poses; "
                          f"missing {missing}")
    s = {"rgb": torch.from_numpy(seq.rgb[:, 0]), "depth": torch.from_numpy(seq.depth[:, 0]),
         "K": torch.from_numpy(seq.intrinsics[:, 0]), "cam_to_world": torch.from_numpy(seq.cam_to_world[:, 0]),
         "instance": torch.from_numpy(seq.masks[:, 0].astype(np.int16) - 1),          # -1: nothing seen
         "object_poses": torch.from_numpy(seq.object_poses), "object_dynamic": torch.from_numpy(seq.object_dynamic),
         "times": torch.from_numpy(seq.times)}
    if seq.scene_flow is not None and seq.flow_pixels is not None:  # the mesh-exact flow must match the rigid one
        r, (u, v) = seq.flow_ref, seq.flow_pixels.T
        x = torch.from_numpy(seq.flow_points)
        inst = s["instance"][r][v, u]
        for t in range(seq.num_frames):
            rigid = rigid_object_flow(x, inst, s["object_poses"][r], s["object_poses"][t])
            err = float((rigid - torch.from_numpy(seq.scene_flow[t])).norm(dim=-1).max())
            if err > 1e-3:
                raise FormatError(f"{name}: flow from the object poses differs from the sequence's scene flow by "
                                  f"{err:.3f} m at frame {t}: an object deforms (a creature?). Any4D's course data "
                                  "needs rigid objects (generate scenes with creature_prob=0)")
    return s


def make_dataset(cfg: Any4DConfig, sources, split: str | None = None, train: bool = True) -> ViewDataset:
    """ViewDataset with cfg's clip_frames and views."""
    return ViewDataset(sources, cfg.clip_frames, cfg.views, train=train, split=split)


def views_batch(rgb, depth, K, cam_to_world) -> dict[str, torch.Tensor]:
    """A batch of one clip (B = 1) from per-view lists: rgb N x (H, W, 3) uint8 or float in
    [0, 1], depth N x (H, W) metres (0 = none), K N x (3, 3), cam_to_world N x (4, 4) in any
    world (made relative to view 0 here). Refuses views of different sizes; see check_batch."""
    if not (len(rgb) == len(depth) == len(K) == len(cam_to_world)) or len(rgb) < 2:
        raise ValueError(f"views_batch: need the same number (>= 2) of rgb, depth, K and cam_to_world views, got "
                         f"{len(rgb)}, {len(depth)}, {len(K)}, {len(cam_to_world)}")
    sizes = {tuple(np.shape(x)[:2]) for x in list(rgb) + list(depth)}
    if len(sizes) != 1:
        raise ValueError(f"views_batch: the images and depth maps have different sizes {sorted(sizes)}; "
                         "resize them to one size first")
    img = torch.stack([torch.as_tensor(np.asarray(x)) for x in rgb])
    img = img.float() / 255.0 if img.dtype == torch.uint8 else img.float()
    c2w = torch.stack([torch.as_tensor(np.asarray(x), dtype=torch.float32) for x in cam_to_world])
    batch = {"rgb": img[None], "depth": torch.stack([torch.as_tensor(np.asarray(x), dtype=torch.float32)
                                                     for x in depth])[None],
             "K": torch.stack([torch.as_tensor(np.asarray(x), dtype=torch.float32) for x in K])[None],
             "cam_to_world": (invert_rigid(c2w[0]) @ c2w)[None]}
    check_batch(batch)
    return batch


# ======================================================================================
# 1. What the network sees: checked inputs, normalised per-pixel maps and poses
# ======================================================================================


def check_batch(batch: dict) -> None:
    """Refuse input the model would silently misread, with a ValueError that says what is wrong.

    rgb (B, N, H, W, 3), depth (B, N, H, W) of the same H x W; K (B, N, 3, 3); cam_to_world
    (B, N, 4, 4) rigid; depth finite, >= 0, in metres (median of a view <= MAX_DEPTH_M), and
    some depth in every reference view (the normalisation and the flow start there).
    """
    rgb, depth, K, c2w = (batch.get(k) for k in ("rgb", "depth", "K", "cam_to_world"))
    if any(x is None for x in (rgb, depth, K, c2w)):
        raise ValueError("Any4D input needs rgb, depth, K and cam_to_world")
    if rgb.dim() != 5 or rgb.shape[-1] != 3:
        raise ValueError(f"rgb must be (B, N, H, W, 3), got {tuple(rgb.shape)}")
    B, N, H, W, _ = rgb.shape
    if tuple(depth.shape) != (B, N, H, W):
        raise ValueError(f"depth must be (B, N, H, W) = {(B, N, H, W)} like the images, got {tuple(depth.shape)} "
                         "(images and depth maps of different sizes?)")
    if tuple(K.shape) != (B, N, 3, 3) or tuple(c2w.shape) != (B, N, 4, 4):
        raise ValueError(f"K must be (B, N, 3, 3) and cam_to_world (B, N, 4, 4) for (B, N) = {(B, N)}, got "
                         f"{tuple(K.shape)} and {tuple(c2w.shape)}")
    if not bool(torch.isfinite(depth).all()) or bool((depth < 0).any()):
        raise ValueError("depth must be finite and >= 0 (0 = no measurement)")
    for b in range(B):
        if not bool((depth[b, 0] > 0).any()):
            raise ValueError(f"clip {b}: the reference view (view 0) has no valid depth")
        for n in range(N):
            d = depth[b, n][depth[b, n] > 0]
            if d.numel() and float(d.median()) > MAX_DEPTH_M:
                raise ValueError(f"clip {b}, view {n}: median depth {float(d.median()):.0f} > {MAX_DEPTH_M:.0f}: "
                                 "depth in millimetres? Give metres")
    R = c2w[..., :3, :3].double()
    err = (R.transpose(-1, -2) @ R - torch.eye(3, dtype=R.dtype)).abs().amax(dim=(-1, -2))
    bottom = (c2w[..., 3, :].double() - torch.tensor([0, 0, 0, 1.0], dtype=R.dtype)).abs().amax(-1)
    if bool((err > ROT_TOL).any()) or bool((torch.linalg.det(R) < 0).any()) or bool((bottom > 1e-6).any()):
        raise ValueError("cam_to_world is not a rigid transform (orthonormal rotation with det +1, last row "
                         "0 0 0 1); scaled or sheared poses are refused")


def model_inputs(batch: dict) -> dict[str, torch.Tensor]:
    """Per-pixel and per-view inputs of every modality, normalised (check_batch first):

    rgb (B, N, H, W, 3) in [-1, 1]; rays (B, N, H, W, 3) unit directions, camera frame;
    depth (B, N, H, W, 2) = [depth / mean valid depth of the view, valid];
    depth_scale (B, N, 1) log mean valid depth (metres; 0 for a view without depth);
    pose (B, N, 8) = [quaternion 4, translation / mean camera distance 3, log that distance];
    doppler (B, N, H, W, 2) = [m/s, valid] (zeros when the batch has no Doppler).
    """
    check_batch(batch)
    rgb, depth, K, c2w = batch["rgb"], batch["depth"], batch["K"], batch["cam_to_world"]
    B, N, H, W, _ = rgb.shape
    rays = F.normalize(unproject_depth(torch.ones_like(depth), K), dim=-1)      # (B, N, H, W, 3)
    valid = (depth > 0).to(depth.dtype)
    mean_depth = (depth * valid).sum((-1, -2)) / valid.sum((-1, -2)).clamp_min(1)   # (B, N)
    depth_in = torch.stack([depth / mean_depth.clamp_min(1e-6)[..., None, None], valid], -1)
    depth_scale = torch.where(mean_depth > 0, mean_depth.clamp_min(1e-6).log(), torch.zeros_like(mean_depth))
    t = c2w[..., :3, 3]                                                          # (B, N, 3)
    dist = t.norm(dim=-1).mean(1, keepdim=True).clamp_min(1e-3)                  # (B, 1) mean camera distance
    pose = torch.cat([matrix_to_quaternion(c2w[..., :3, :3]), t / dist[..., None],
                      dist.log()[..., None].expand(B, N, 1)], -1)
    dop = batch.get("doppler")
    dop = torch.zeros_like(depth) if dop is None else dop
    return {"rgb": rgb * 2 - 1, "rays": rays, "depth": depth_in, "depth_scale": depth_scale[..., None],
            "pose": pose, "doppler": torch.stack([dop * valid, valid], -1)}


# ======================================================================================
# 2. Modality dropout
# ======================================================================================


def modality_dropout(available, p_multimodal: float = 0.7, p_drop: float = 0.5, generator=None) -> tuple[str, ...]:
    """The inputs one training batch keeps: ("rgb", *kept extras). RGB is never dropped.

    With probability p_multimodal the batch is conditioned on more than images; then each
    extra input of `available` (a subset of EXTRA_MODALITIES) is kept independently with
    probability 1 - p_drop. Otherwise images only. Any4D: 0.7 and 0.5.
    """
    unknown = set(available) - set(EXTRA_MODALITIES)
    if unknown:
        raise ValueError(f"modality_dropout: unknown inputs {sorted(unknown)}; choose from {EXTRA_MODALITIES}")
    if not available or float(torch.rand((), generator=generator)) >= p_multimodal:
        return ("rgb",)
    draws = torch.rand(len(available), generator=generator)
    return ("rgb",) + tuple(m for m, u in zip(available, draws.tolist()) if u >= p_drop)


# ======================================================================================
# 3. The model: encoders, alternating attention, heads
# ======================================================================================


def grid_embedding(h: int, w: int, dim: int) -> torch.Tensor:
    """(h*w, dim) fixed 2D sine-cosine position embedding of a patch grid (MAE): half the
    channels encode the row, half the column, each as sines and cosines of 1/10000^(k/d)."""
    q = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(q, dtype=torch.float32) / max(q, 1))
    y, x = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    parts = [f(c.reshape(-1, 1) * omega) for c in (y, x) for f in (torch.sin, torch.cos)]
    emb = torch.cat(parts, -1)
    return F.pad(emb, (0, dim - emb.shape[1]))


class Any4D(nn.Module):
    """N views -> factored per-pixel geometry and motion + poses + metric scale.

    forward(inputs, keep) with inputs from `model_inputs` and keep the inputs to use
    (("rgb", ...), see `modality_dropout`) returns a dict (scale-normalised except scale):
      rays (B, N, H, W, 3) unit, camera frame; depth (B, N, H, W) along the ray;
      conf (B, N, H, W) >= 1; motion (B, N, H, W, 3) on view 0's pixel grid, in the
      representation cfg.motion names; cam_to_world (B, N, 4, 4) camera i -> world (view 0);
      quat (B, N, 4); trans (B, N, 3); scale (B,) metric scale s.
    """

    def __init__(self, cfg: Any4DConfig):
        super().__init__()
        self.cfg = cfg
        D, p = cfg.dim, cfg.patch_size
        self.rgb_embed = nn.Conv2d(3, D, p, stride=p)          # the patch encoder (DINOv2 at full scale)
        channels = {"depth": 2, "rays": 3, "doppler": 2}
        self.pixel_encoders = nn.ModuleDict({m: nn.Conv2d(channels[m], D, p, stride=p)
                                             for m in cfg.extra_inputs if m in channels})
        if "depth" in cfg.extra_inputs:
            self.depth_scale_embed = nn.Linear(1, D)
        if "pose" in cfg.extra_inputs:
            self.pose_embed = Mlp(8, D, D)
        self.ref_embed = nn.Parameter(torch.randn(D) * 0.02)   # marks view 0: the world frame
        self.scale_token = nn.Parameter(torch.randn(D) * 0.02)
        self.blocks = nn.ModuleList([Block(D, cfg.heads, cfg.mlp_ratio, qk_norm=True) for _ in range(cfg.depth)])
        self.norm = nn.LayerNorm(D, eps=1e-6)
        self.hooks = [max(0, (k + 1) * cfg.depth // 4 - 1) for k in range(4)]
        self.geometry_head = DPTHead(D, 3 + 1 + 1, cfg.dpt_features)   # rays, log depth, confidence
        self.motion_head = DPTHead(D, 3, cfg.dpt_features)
        self.pose_head = Mlp(D, D, 3 + 4)
        self.scale_head = Mlp(D, D, 1)

    def encode(self, inputs: dict, keep) -> tuple[list[torch.Tensor], torch.Tensor]:
        """-> (the tokens of the 4 DPT layers, each (B, N, M, D); the final tokens (B, N, M + 1, D),
        patch tokens then the scale token)."""
        bad = set(keep) - {"rgb", *self.cfg.extra_inputs}
        if "rgb" not in keep or bad:
            raise ValueError(f"keep must hold 'rgb' and only inputs of modalities={self.cfg.modalities!r} "
                             f"({('rgb',) + self.cfg.extra_inputs}), got {tuple(keep)}")
        B, N, H, W, _ = inputs["rgb"].shape
        p = self.cfg.patch_size
        h, w = H // p, W // p

        def patches(conv, x):  # (B, N, H, W, C) -> (B, N, M, D)
            y = conv(rearrange(x, "b n h w c -> (b n) c h w"))
            return rearrange(y, "(b n) d h w -> b n (h w) d", b=B)

        x = patches(self.rgb_embed, inputs["rgb"])                          # (B, N, M, D)
        for m in self.cfg.extra_inputs:                                     # the paper's sum of encodings
            if m in self.pixel_encoders:
                e = patches(self.pixel_encoders[m], inputs[m])
            elif m == "pose":
                e = self.pose_embed(inputs["pose"])[:, :, None]
            if m == "depth":
                e = e + self.depth_scale_embed(inputs["depth_scale"])[:, :, None]
            # a dropped input is encoded and multiplied by 0 rather than skipped: every
            # parameter then gets a gradient each step, which DistributedDataParallel requires
            x = x + (e if m in keep else 0 * e)
        x = x + grid_embedding(h, w, self.cfg.dim).to(x)
        x = torch.cat([x[:, :1] + self.ref_embed, x[:, 1:]], 1)            # the reference view
        x = torch.cat([x, self.scale_token.expand(B, N, 1, -1)], 2)         # (B, N, M + 1, D)
        hooked = []
        for i, blk in enumerate(self.blocks):
            x = frame_attention(blk, x) if i % 2 == 0 else global_attention(blk, x)
            hooked += [x[:, :, :-1]] * self.hooks.count(i)
        return hooked, self.norm(x)

    def forward(self, inputs: dict, keep=("rgb",)) -> dict[str, torch.Tensor]:
        B, N, H, W, _ = inputs["rgb"].shape
        p = self.cfg.patch_size
        hooked, tokens = self.encode(inputs, keep)
        layers = [rearrange(t, "b n m d -> (b n) m d") for t in hooked]
        geo = rearrange(self.geometry_head(layers, (H // p, W // p), (H, W)), "(b n) c h w -> b n h w c", b=B)
        motion = rearrange(self.motion_head(layers, (H // p, W // p), (H, W)), "(b n) c h w -> b n h w c", b=B)
        rays = F.normalize(geo[..., :3] + geo.new_tensor([0, 0, 1.0]), dim=-1)
        depth = geo[..., 3].clamp(-10, 10).exp()                            # clamped: no overflow early on
        conf = 1 + geo[..., 4].clamp(max=10).exp()
        pose = self.pose_head(tokens[:, :, :-1].mean(2))                    # (B, N, 7)
        trans, quat = pose[..., :3], F.normalize(pose[..., 3:] + pose.new_tensor([1.0, 0, 0, 0]), dim=-1)
        c2w = torch.cat([torch.cat([quaternion_to_matrix(quat), trans[..., None]], -1),
                         pose.new_tensor([0, 0, 0, 1.0]).expand(B, N, 1, 4)], -2)
        scale = self.scale_head(tokens[:, :, -1].mean(1))[:, 0].clamp(-10, 10).exp()   # (B,)
        return {"rays": rays, "depth": depth, "conf": conf, "motion": motion, "cam_to_world": c2w,
                "quat": quat, "trans": trans, "scale": scale}


# ======================================================================================
# 4. Composition: G_i = s · T_i · R_i · D_i, M_i = s · F_i
# ======================================================================================


def compose(out: dict, motion: str) -> dict[str, torch.Tensor]:
    """The factors of `Any4D.forward` -> point maps and allocentric flow.

    points_n (B, N, H, W, 3) = T_i · R_i · D_i, flow_n (B, N, H, W, 3) = F_i (converted from
    the motion representation `motion` with the predicted factors), both scale-normalised;
    points = s · points_n (Eq. 2) and flow = s · flow_n (Eq. 3), metres.
    """
    ones = torch.ones_like(out["scale"])
    points_n = compose_points(ones, out["cam_to_world"], out["rays"], out["depth"])    # (B, N, H, W, 3)
    B, N, H, W, _ = points_n.shape
    x0 = points_n[:, :1].expand(B, N, H, W, 3)                            # the reference points, world frame
    m = out["motion"]
    if motion == "allocentric":
        flow_n = m
    elif motion == "egocentric":
        flow_n = egocentric_to_allocentric(m.reshape(B, N, H * W, 3), x0.reshape(B, N, H * W, 3),
                                           out["cam_to_world"][:, :1].expand(B, N, 4, 4),
                                           out["cam_to_world"]).reshape(B, N, H, W, 3)
    elif motion == "points":
        flow_n = m - x0
    else:
        raise ValueError(f"unknown motion representation {motion!r}")
    s = out["scale"][:, None, None, None, None]
    return {"points_n": points_n, "flow_n": flow_n, "points": s * points_n, "flow": s * flow_n}


# ======================================================================================
# 5. Targets and the loss
# ======================================================================================


def gt_factors(batch: dict, inputs: dict, motion: str) -> dict[str, torch.Tensor]:
    """GT in the model's factors, metres: rays (B, N, H, W, 3), depth along the ray (B, N, H, W),
    valid (B, N, H, W), points (B, N, H, W, 3) world (view 0) frame, z () mean distance of the
    valid points to the origin per clip (B,), motion (B, N, H, W, 3) in representation `motion`."""
    rays, depth, c2w = inputs["rays"], batch["depth"], batch["cam_to_world"]
    valid = depth > 0
    ray_depth = depth / rays[..., 2].clamp_min(1e-6)                       # z-depth -> along the ray
    points = compose_points(torch.ones(depth.shape[0]).to(depth), c2w, rays, ray_depth)
    z = (points.norm(dim=-1) * valid).sum((1, 2, 3)) / valid.sum((1, 2, 3)).clamp_min(1)
    B, N, H, W, _ = points.shape
    flow = batch["flow"]
    x0 = points[:, :1].expand(B, N, H, W, 3)
    if motion == "allocentric":
        target = flow
    elif motion == "egocentric":
        target = allocentric_to_egocentric(flow.reshape(B, N, H * W, 3), x0.reshape(B, N, H * W, 3),
                                           c2w[:, :1].expand(B, N, 4, 4), c2w).reshape(B, N, H, W, 3)
    else:
        target = x0 + flow
    return {"rays": rays, "depth": ray_depth, "valid": valid, "points": points, "z": z, "motion": target,
            "cam_to_world": c2w}


def _masked_mean(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    w = w.to(x.dtype)
    return (x * w).sum() / w.sum().clamp_min(1e-6)


def loss(model, batch: dict, keep=None):
    """Scale-invariant Any4D loss of one batch (see ViewDataset), for fourdlib.train.train.

    keep: the inputs to use; default: `modality_dropout` while training (cfg.modality_dropout),
    every input of cfg.modalities otherwise. Terms (each pred / z_pred against GT / z_gt):
    rays (L2 of unit directions), depth (L1 along the ray), points (confidence-weighted L2,
    c e - alpha log c), pose (translation L1 + quaternion distance up to sign), flow (L2 of the
    motion representation, cfg.dynamic_weight on pixels of moving objects), scale (|log s -
    log(z_gt / z_pred)| on clips whose GT is metric only). Returns (loss, logs); logs also hold
    "flow_epe" (metres, composed metric allocentric flow on view 0's valid pixels, views 1..N-1).
    """
    net = unwrap(model)
    cfg = net.cfg
    inputs = model_inputs(batch)
    if keep is None:
        keep = (modality_dropout(cfg.extra_inputs, cfg.p_multimodal, cfg.p_drop)
                if model.training and cfg.modality_dropout else ("rgb",) + cfg.extra_inputs)
    out = model(inputs, keep)
    gt = gt_factors(batch, inputs, cfg.motion)
    pred = compose(out, cfg.motion)
    valid = gt["valid"]
    z_gt = gt["z"].clamp_min(1e-6)[:, None, None, None]                   # (B, 1, 1, 1)
    z_pred = ((pred["points_n"].norm(dim=-1) * valid).sum((1, 2, 3)) / valid.sum((1, 2, 3)).clamp_min(1))
    zp = z_pred.clamp_min(1e-6)[:, None, None, None]

    l_rays = (out["rays"] - gt["rays"]).norm(dim=-1).mean()
    l_depth = _masked_mean((out["depth"] / zp - gt["depth"] / z_gt).abs(), valid)
    err = (pred["points_n"] / zp[..., None] - gt["points"] / z_gt[..., None]).norm(dim=-1)
    l_points = _masked_mean(out["conf"] * err - cfg.conf_alpha * out["conf"].log(), valid)
    t_gt = gt["cam_to_world"][..., :3, 3] / z_gt[:, :, 0]
    l_trans = (out["trans"] / zp[:, :, 0] - t_gt).abs().sum(-1).mean()
    q_gt = matrix_to_quaternion(gt["cam_to_world"][..., :3, :3])
    l_quat = torch.minimum((out["quat"] - q_gt).norm(dim=-1), (out["quat"] + q_gt).norm(dim=-1)).mean()
    # flow of the reference pixels, every view; 10x on moving objects
    w = (batch["flow_valid"] * (1 + (cfg.dynamic_weight - 1) * batch["dynamic"].to(z_gt.dtype)))[:, None]
    e_flow = (out["motion"] / zp[..., None] - gt["motion"] / z_gt[..., None]).norm(dim=-1)   # (B, N, H, W)
    l_flow = _masked_mean(e_flow, w.expand_as(e_flow))
    metric = batch.get("metric", torch.ones(valid.shape[0], dtype=torch.bool)).to(valid.device)
    log_err = (out["scale"].log() - (gt["z"].clamp_min(1e-6) / z_pred.detach().clamp_min(1e-6)).log()).abs()
    l_scale = log_err[metric].mean() if bool(metric.any()) else out["scale"].sum() * 0
    total = (l_rays + l_depth + l_points + l_trans + l_quat + cfg.flow_weight * l_flow
             + cfg.scale_weight * l_scale)
    with torch.no_grad():
        m = batch["flow_valid"][:, None].expand(-1, pred["flow"].shape[1] - 1, -1, -1)
        epe = (pred["flow"][:, 1:] - batch["flow"][:, 1:]).norm(dim=-1)
        flow_epe = epe[m].mean() if bool(m.any()) else epe.sum() * 0
    logs = {"rays": l_rays.detach(), "depth": l_depth.detach(), "points": l_points.detach(),
            "trans": l_trans.detach(), "quat": l_quat.detach(), "flow": l_flow.detach(), "scale": l_scale.detach(),
            "flow_epe": flow_epe}
    return total, logs


@torch.no_grad()
def predict(model, batch: dict, keep=None) -> dict[str, torch.Tensor]:
    """Metric outputs of one batch: the factors of `Any4D.forward` + `compose`'s points / flow
    (metres, world = view 0's camera) + zdepth (B, N, H, W) metric z-depth (s · D · r_z).
    keep: the inputs to use (default: every input of cfg.modalities)."""
    cfg = unwrap(model).cfg
    keep = ("rgb",) + cfg.extra_inputs if keep is None else tuple(keep)
    out = model(model_inputs(batch), keep)
    comp = compose(out, cfg.motion)
    zdepth = out["scale"][:, None, None, None] * out["depth"] * out["rays"][..., 2]
    return {**out, **comp, "zdepth": zdepth}
