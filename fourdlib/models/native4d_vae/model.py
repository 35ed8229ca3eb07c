"""Native 4D VAE (arXiv 2026, "Native Spatio-temporal 4D Variational AutoEncoder"), read top to bottom.

    sequence of coloured voxels, one grid per sequence (sequence_item / collate)
      coords (P, 4) (frame, i, j, k), colours (P, 3)                      batch["coords"], ["colors"]
      -> + Plücker ray from the frame's camera to each voxel centre (eq. 11)  voxel_inputs
      -> spatial stem: submanifold sparse convs + stride-2 sparse conv (eq. 12)
      -> STD blocks (eqs. 1-6): stride-2 sparse conv, 4D sinusoidal encoding, coarse
         queries attend to fine + coarse tokens of their 4D window, frames of a window
         averaged: one coarse token set per lambda frames                  STD
      -> dense grid -> Conv3D + MLP -> KL latent (mean, logvar)  (G, C', L, L, L)  (eq. 14)
    decoder (mirrored)
      -> Conv3D + MLP -> every latent cell a token -> STU blocks (eqs. 7-10): each token
         copied to its lambda frames with the 4D encoding, window attention, sparse
         transposed conv onto all 8 children                              STU
      -> early pruning: occupancy logit > tau (eq. 16), then sparse up-conv to all children
      -> heads: tanh colour, sigmoid occupancy (eq. 17)
    loss (sec. 3.4): BCE + Dice (final and pruning stage), colour MSE, rendering loss
    through fourdlib.render.voxels, KL; weights (1, 1, 0.5, 1, 0.001)
    training data: VoxelSequenceDataset / make_dataset (a dataset folder's depth videos as
    voxels, windows of cfg.train_frames frames), one sequence per step (`as_batch`)
    ablation "w/o ST-Attn" (table 1, row 2; cfg.block = "conv"): ConvMix in STD / STU

How we read what the paper leaves open (and why)
------------------------------------------------
- Temporal ratio lambda (eq. 3): one lambda per batch, the largest of (1, 2, 4) up to
  cfg.temporal_ratio that divides EVERY sequence's frame count (`choose_lambda`), so no
  frame is dropped (the paper's floor(M / lambda) would drop the tail). The paper varies
  lambda across training (a curriculum: 1 first, raised every 4k steps); pass `lam=` to
  the model / `loss` to do that. The whole VAE compresses time by lambda once: the FIRST
  STD block merges lambda frames, later STD blocks use lambda = 1 (eq. 13 has a single
  lambda for the stack); the LAST STU block mirrors it. Groups are then global: with every
  sequence's frame count a multiple of lambda, global frame f belongs to group f // lambda.
- Spatial ratio gamma = 2 (what the sparse conv supports); a larger gamma is a stack of blocks.
- "w/o ST-Attn" (table 1, row 2): the paper says only that the attention module is replaced
  by "a decoupled structure consisting of 3D spatial and 1D temporal convolutions". We keep
  everything else of STD / STU (strided conv, 4D encoding, the merge over lambda frames /
  the copy to lambda frames, the up-conv) and replace only the window attention by
  `ConvMix`: a 3^3 submanifold sparse conv within each frame, then a kernel-3 conv along
  time at each cell (taps t-1, t, t+1 of the same sequence; a missing neighbour is zero),
  then an FFN, each pre-norm with a residual. So the ablation differs in how tokens meet,
  not in what is compressed: STD's conv variant sees the fine tokens only through the
  strided conv, its attention sees them directly.
- Batches: torch's default collate cannot stack sequences of different voxel counts, and
  fourdlib.train.runs passes the loop no collate_fn, so the course trains one sequence per
  step (the paper's batch size too); `collate` packs several for hand-written loops.
- Sequences longer than the training window (cfg.train_frames) are encoded window by window
  (`sequence_windows`): the 4D encoding's time is the frame's index in its window, so a
  whole 16-frame sequence would ask the model about times it never trained on.
- 4D positional encoding (eq. 2): sinusoids of x, y, z, t, D/4 channels each (the 3D
  variant extended by t), added to the tokens. Positions are in FINEST-grid cells: a
  cell's index times its stride, which is eq. 2's gamma x-hat for the coarse tokens, so a
  place has the same code at every resolution. t is the frame index in its sequence; a
  merged group j has time lambda j (eq. 7 then gives its frames lambda j + k).
- Windows: a window is (lambda consecutive frames of one sequence) x (a cube of
  cfg.window^3 cells of the block's coarse grid); a fine token belongs to the window of
  its parent cell. Windows are sorted and packed for `varlen_attention` (windows =
  cu_seqlens), so no token sees another window.
- Eq. 5 / 9, "MHA(Q, K, V) + FFN(Q)": a parallel pre-norm block with a residual,
  q + MHA(LN q, LN kv) + FFN(LN q).
- STU keys (eq. 8), "the expanded tokens of frame j and {s_i}": frame j's expanded tokens
  plus the un-expanded coarse tokens of its group (without the encoding), both within the
  window; queries are frame j's expanded tokens. Eq. 10's up-conv writes onto all 8
  children of every site: the decoder makes structure, pruning removes it.
- Dense latent: the STD output is densified on the (R / 2^(stem_down + num_std))^3 grid
  (empty cells zero) as eq. 14 says; tiny's latent grid is 8^3 per group of frames, small
  enough to keep dense, so the latent is never sparse here.
- Pruning threshold (eq. 16), "sigma(MLP(s)) > -0.5": a sigmoid is never below 0, so
  read literally it keeps everything. We read tau = -0.5 as a threshold on the LOGIT
  (keep when logit > -0.5, i.e. sigmoid > 0.378): a slightly recall-leaning cut, which is
  what pruning wants (a pruned site cannot come back; a kept empty one is rejected by the
  final head). cfg.prune_logit holds it. The pruning head's bias starts at -2 (about the
  share of occupied children), so an untrained decoder prunes most sites instead of
  keeping all of them. Training prunes on the prediction too, as inference does
  (cfg.prune_with_gt = False). Teacher forcing (also keeping every GT-occupied site while
  training) looks kinder but fails: the fine stage's sparse convs then always see the complete
  structure, and on the sparser structure its own pruning leaves they decode almost nothing
  (a few voxels a frame). The option is kept for that comparison.
  Pruning happens before EVERY decoder up-conv (stem_down of them; one in every CONFIGS row,
  as the paper prunes once, at 256^3 of 512^3).
- Camera (eq. 11): view 0 of each frame (the frame's RGB-D camera), ray from its centre o
  to the voxel centre p, plucker(o, p - o), both in the grid's normalised frame ([-1, 1]^3
  cube) so the moment is independent of the scene's scale.
- Losses: BCE and Dice on the predicted site set; Dice's GT sum counts ALL GT voxels
  (also those the pruning lost, so losing them costs). The pruning stage's BCE + Dice
  (targets: a coarse cell is occupied when any finest voxel in it is) are added to the
  final ones. Colour MSE on GT-occupied predicted sites, colours in [-1, 1] (tanh). The
  rendering loss renders predicted (sigmoid occupancy, colour) and GT voxels (occupancy 1)
  from the frame's camera at render_size^2 on black, mean squared error over all pixels
  (the GT render is valid everywhere), averaged over frames. KL is the mean over latent
  elements of 0.5 (mu^2 + var - 1 - log var).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...data.voxels import sequence_voxels
from ...geometry.cameras import invert_rigid, plucker
from ...geometry.voxelize import voxelize_points
from ...layers import Mlp, MultiHeadAttention, timestep_embedding
from ...render.voxels import render_voxels
from ...sparse import (SparseConv3d, SparseConvTranspose3d, SparseTensor, coord_keys, coords_bounds,
                       dense_to_sparse, lookup, sparse_to_dense)
from ...train.distributed import unwrap
from .config import LAMBDAS, Native4DVAEConfig

__all__ = ["Native4DVAE", "PointMapVAE", "build_model", "pointmap_frames", "pointmap_loss", "pointmap_voxels",
           "STD", "STU", "ConvMix", "VoxelSequenceDataset", "make_dataset", "as_batch", "voxel_item",
           "window_item", "sequence_windows", "frame_cameras", "merge_frames", "expand_frames", "temporal_neighbours",
           "choose_lambda", "sequence_item", "collate", "loss", "reconstruct",
           "bce_dice", "kl_divergence", "occupied_at", "occupancy_iou", "child_sites", "select_sites",
           "pos_enc_4d", "window_attention"]


# ======================================================================================
# Data: one sequence -> voxels + cameras; several -> one packed batch
# ======================================================================================


def sequence_item(seq, resolution: int, render_size: int, view: int = 0, method: str = "mesh") -> dict:
    """A Sequence4D -> tensors of its coloured voxels on one grid and its frames' cameras.

    coords (P, 4) int64 (t, i, j, k); colors (P, 3) in [0, 1] (0.5 grey without rgb);
    world_to_cam (T, 4, 4) and K (T, 3, 3) of `view`, K scaled to render_size^2 images;
    origin (T, 3), voxel_size (T,) of the grid (repeated per frame, so `collate` is a cat).
    """
    vox = sequence_voxels(seq, resolution=resolution, method=method)
    return voxel_item(vox, *frame_cameras(seq, render_size, view))


def frame_cameras(seq, render_size: int, view: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(world_to_cam (T, 4, 4), K (T, 3, 3) scaled to render_size^2 images) of a Sequence4D's view."""
    H, W = seq.depth.shape[2:4]
    K = torch.as_tensor(seq.intrinsics[:, view], dtype=torch.float32).clone()   # (T, 3, 3)
    K[:, 0] *= render_size / W
    K[:, 1] *= render_size / H
    return invert_rigid(torch.as_tensor(seq.cam_to_world[:, view], dtype=torch.float32)), K


def voxel_item(vox, world_to_cam: torch.Tensor, K: torch.Tensor) -> dict:
    """`sequence_item`'s tensors from voxels already made (a data.voxels.SequenceVoxels, one
    cubic grid) and one camera per frame: world_to_cam (T, 4, 4), K (T, 3, 3) in pixels of
    the render size."""
    T = vox.num_frames
    colors = vox.colors if vox.colors is not None else np.full((len(vox.coords), 3), 0.5, np.float32)
    return {"coords": torch.as_tensor(np.asarray(vox.coords)).long(),
            "colors": torch.as_tensor(np.asarray(colors, np.float32)).float(),
            "world_to_cam": torch.as_tensor(world_to_cam, dtype=torch.float32).reshape(T, 4, 4),
            "K": torch.as_tensor(K, dtype=torch.float32).reshape(T, 3, 3),
            "origin": torch.as_tensor(np.asarray(vox.origin), dtype=torch.float32).expand(T, 3).clone(),
            "voxel_size": torch.full((T,), float(np.asarray(vox.voxel_size).reshape(-1)[0])),
            "num_frames": torch.tensor([T])}


def window_item(item: dict, start: int, length: int) -> dict:
    """Frames [start, start + length) of one `sequence_item`, renumbered from 0 (same grid)."""
    T = int(item["num_frames"][0])
    if not (0 <= start and length >= 1 and start + length <= T):
        raise ValueError(f"window_item: frames [{start}, {start + length}) are not within the {T} frames")
    t = item["coords"][:, 0]
    rows = (t >= start) & (t < start + length)
    coords = item["coords"][rows].clone()
    coords[:, 0] -= start
    per_frame = {k: item[k][start:start + length] for k in ("world_to_cam", "K", "origin", "voxel_size", "pointmap")
                 if k in item}
    return {"coords": coords, "colors": item["colors"][rows], **per_frame, "num_frames": torch.tensor([length])}


def sequence_windows(item: dict, length: int) -> dict:
    """One `sequence_item` cut into windows of `length` frames (the last one shorter), collated
    into one batch. Frames keep their numbers (collate numbers them window after window), while
    frame times restart at 0 in every window, as in training: a model trained on windows of
    cfg.train_frames frames has never seen a time beyond them (on longer sequences decoded
    whole, the frames past the training window come out thin or empty)."""
    if not (isinstance(length, int) and length >= 1):
        raise ValueError(f"sequence_windows: length must be an int >= 1, got {length!r}")
    T = int(item["num_frames"][0])
    return collate([window_item(item, s, min(length, T - s)) for s in range(0, T, length)])


def as_batch(batch: dict) -> dict:
    """A `collate` batch as it is; one `sequence_item` as torch's default DataLoader collate
    delivers it (batch size 1: a leading dimension of 1 on every tensor) without that dimension."""
    if batch["coords"].dim() == 3:
        if batch["coords"].shape[0] != 1:
            raise ValueError("as_batch: items stacked by the default collate must come one at a time "
                             "(batch_size=1); use collate() for several sequences")
        return {k: v[0] for k, v in batch.items()}
    return batch


def collate(items: list[dict]) -> dict:
    """Items of `sequence_item` -> one batch: frames numbered globally (sequence after
    sequence), so coords (P, 4) = (global frame, i, j, k) and num_frames (S,) per sequence."""
    counts = torch.cat([it["num_frames"] for it in items])
    start = F.pad(counts.cumsum(0), (1, 0))
    coords = []
    for it, s in zip(items, start.tolist()):
        c = it["coords"].clone()
        c[:, 0] += s
        coords.append(c)
    keys = ("colors", "world_to_cam", "K", "origin", "voxel_size") + (("pointmap",) if "pointmap" in items[0] else ())
    batch = {k: torch.cat([it[k] for it in items]) for k in keys}
    return {**batch, "coords": torch.cat(coords), "num_frames": counts}


def choose_lambda(num_frames, max_lambda: int = 4) -> int:
    """The largest lambda in (1, 2, 4), at most max_lambda, dividing every sequence's frame count."""
    counts = [int(n) for n in torch.as_tensor(num_frames).reshape(-1).tolist()]
    return max(l for l in LAMBDAS if l <= max_lambda and all(n % l == 0 for n in counts))


def frame_times(num_frames: torch.Tensor) -> torch.Tensor:
    """(S,) frame counts -> (F,) float index of each global frame within its sequence."""
    start = F.pad(num_frames.cumsum(0), (1, 0))[:-1]
    f = torch.arange(int(num_frames.sum()), device=num_frames.device)
    return (f - torch.repeat_interleave(start, num_frames)).float()


class VoxelSequenceDataset(torch.utils.data.Dataset):
    """The sequences of a dataset folder as coloured voxels (`sequence_item`: depth video ->
    mesh -> voxels on one grid per sequence, view 0's camera), voxelised once and cached.

    train=True: a window of `frames` consecutive frames from a random start (torch's global
    RNG, so a seeded run and its resume replay it); train=False: the first `frames` frames
    (None: the whole sequence), the same every time. Items are single sequences (num_frames
    (1,)); `collate` packs several, and `as_batch` takes the default collate's batch of one.
    pointmaps=True: items also hold "pointmap" (T, 7, H, W) (`pointmap_frames`), the
    PointMapVAE's input, on the same grid.
    """

    def __init__(self, folder, split: str | None = None, *, resolution: int, render_size: int,
                 frames: int | None = None, train: bool = True, method: str = "mesh", cache: bool = True,
                 pointmaps: bool = False):
        from ...data.dataset import read_manifest

        self.folder, self.split = Path(folder), split
        entries = read_manifest(folder)["sequences"]
        if split is not None:
            entries = [e for e in entries if e["split"] == split]
        if not entries:
            have = sorted({e["split"] for e in read_manifest(folder)["sequences"]})
            raise ValueError(f"{folder}: no sequences for split={split!r} (splits here: {have})")
        if frames is not None and not (isinstance(frames, int) and frames >= 1):
            raise ValueError(f"frames must be None or an int >= 1, got {frames!r}")
        self.entries, self.frames, self.train, self.method, self.cache = entries, frames, train, method, cache
        self.resolution, self.render_size, self.pointmaps = resolution, render_size, bool(pointmaps)
        self._items: dict[int, dict] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def sequence(self, i: int):
        """The whole Sequence4D behind item i, read from disk."""
        from ...data.sequence import Sequence4D

        return Sequence4D.load(self.folder / self.entries[i]["file"])

    def full_item(self, i: int) -> dict:
        """Item i's whole sequence as `sequence_item` (cached when cache=True)."""
        if i in self._items:
            return self._items[i]
        seq = self.sequence(i)
        item = sequence_item(seq, self.resolution, self.render_size, method=self.method)
        if self.pointmaps:
            item["pointmap"] = pointmap_frames(seq, item, self.resolution)
        if self.cache:
            self._items[i] = item
        return item

    def __getitem__(self, i: int) -> dict:
        item = self.full_item(i)
        T = int(item["num_frames"][0])
        S = T if self.frames is None else self.frames
        if S > T:
            raise ValueError(f"{self.entries[i]['file']}: {T} frames, fewer than the window of {S}")
        start = int(torch.randint(0, T - S + 1, ())) if self.train and T > S else 0
        return item if S == T else window_item(item, start, S)


def make_dataset(cfg: Native4DVAEConfig, folder, split: str | None = None, train: bool = True, **options):
    """The VoxelSequenceDataset this config trains on (train=True: windows of cfg.train_frames
    frames, random starts) or evaluates on (train=False: whole sequences). options go to
    VoxelSequenceDataset (e.g. method="points", the table-4 ablation's naive voxels); a
    PointMapVAE config's items carry their pointmaps."""
    if train and cfg.batch_size != 1:
        # fourdlib.train.runs hands the dataset to the loop without a collate_fn, and torch's
        # default collate cannot stack sequences of different voxel counts
        raise ValueError(f"Native4DVAEConfig.batch_size={cfg.batch_size}: the run machinery batches with torch's "
                         "default collate, which takes one voxel sequence at a time; use batch_size=1 (the paper's)")
    frames = cfg.train_frames if train else options.pop("frames", None)
    options.setdefault("pointmaps", cfg.representation == "pointmap")
    return VoxelSequenceDataset(folder, split, resolution=cfg.resolution, render_size=cfg.render_size,
                                frames=frames, train=train, **options)


# ======================================================================================
# Sparse helpers
# ======================================================================================


def select_sites(x: SparseTensor, keep: torch.Tensor) -> SparseTensor:
    """The rows of x where keep (P,) is True (a fresh map cache)."""
    coords = x.coords[keep]
    offsets = F.pad(torch.bincount(coords[:, 0], minlength=x.batch_size).cumsum(0), (1, 0))
    return SparseTensor(coords, x.feats[keep], offsets, x.stride, validate=False)


def child_sites(x: SparseTensor) -> SparseTensor:
    """All 8 children of every site, on the grid of half the stride (targets of an up-conv)."""
    if x.stride < 2:
        raise ValueError("child_sites: x is already on the finest grid (stride 1)")
    r = torch.arange(2, device=x.coords.device)
    off = torch.stack(torch.meshgrid(r, r, r, indexing="ij"), -1).reshape(8, 3)       # (8, 3)
    cells = x.coords[:, None, 1:] * 2 + off                                            # (P, 8, 3)
    b = x.coords[:, None, :1].expand(-1, 8, 1)
    coords = torch.cat([b, cells], -1).reshape(-1, 4)  # parents are sorted by b, so their children are too
    return SparseTensor.sites(coords, x.offsets * 8, x.stride // 2)


def occupied_at(coords: torch.Tensor, stride: int, gt_coords: torch.Tensor) -> torch.Tensor:
    """(P,) bool: does cell (b, i, j, k) of the grid of `stride` hold any finest GT voxel?"""
    gt = gt_coords.clone()
    gt[:, 1:] = torch.div(gt[:, 1:], stride, rounding_mode="floor")
    bounds = coords_bounds(coords, gt)
    return torch.isin(coord_keys(coords, bounds), coord_keys(gt, bounds))


def occupancy_iou(pred_coords: torch.Tensor, gt_coords: torch.Tensor) -> float:
    """|pred ∩ gt| / |pred ∪ gt| of two (P, 4) sets of occupied (frame, i, j, k) cells."""
    bounds = coords_bounds(pred_coords, gt_coords)
    kp, kg = coord_keys(pred_coords, bounds).unique(), coord_keys(gt_coords, bounds).unique()
    inter = int(torch.isin(kp, kg).sum())
    union = len(kp) + len(kg) - inter
    return inter / union if union else 1.0


# ======================================================================================
# 4D positional encoding and window attention (shared by STD and STU)
# ======================================================================================


def pos_enc_4d(cells: torch.Tensor, stride: int, t: torch.Tensor, dim: int, max_period: float) -> torch.Tensor:
    """Sinusoids of (x, y, z, t), dim / 4 channels each (eq. 2). cells (P, 3) of a grid of
    `stride` (positions = cells * stride, finest-grid units), t (P,) frames -> (P, dim)."""
    pos = cells.float() * stride                                                      # (P, 3)
    parts = [timestep_embedding(pos[:, a], dim // 4, max_period) for a in range(3)]
    parts.append(timestep_embedding(t.float(), dim // 4, max_period))
    return torch.cat(parts, -1)


def window_attention(attn: MultiHeadAttention, q: torch.Tensor, q_win: torch.Tensor, kv: torch.Tensor,
                     kv_win: torch.Tensor) -> torch.Tensor:
    """Each query attends to the keys of its own window only.

    q (Pq, D), kv (Pk, D); q_win (Pq, 4), kv_win (Pk, 4) int64 window labels (time slot,
    wi, wj, wk). Windows are sorted and packed (-> cu_seqlens) for varlen attention.
    Every query's window must hold a key. Returns (Pq, D) in q's row order.
    """
    bounds = coords_bounds(q_win, kv_win)
    kq, kk = coord_keys(q_win, bounds, check=False), coord_keys(kv_win, bounds, check=False)
    ids, inv = torch.unique(torch.cat([kq, kk]), return_inverse=True)                 # window number per token
    iq, ik = inv[: len(kq)], inv[len(kq):]
    oq, ok = torch.argsort(iq, stable=True), torch.argsort(ik, stable=True)
    cu_q = F.pad(torch.bincount(iq, minlength=len(ids)).cumsum(0), (1, 0))
    cu_k = F.pad(torch.bincount(ik, minlength=len(ids)).cumsum(0), (1, 0))
    out = attn(q[oq], kv[ok], cu_seqlens=cu_q, context_cu_seqlens=cu_k)               # (Pq, D), window order
    return torch.empty_like(out).index_copy_(0, oq, out)                                # back to q's order


class WindowBlock(nn.Module):
    """Eq. 5 / 9: q + MHA(LN q, LN kv) + FFN(LN q), attention within windows (parallel block)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm_q, self.norm_kv = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, heads, qk_norm=True)
        self.ffn = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, q, q_win, kv, kv_win):
        qn = self.norm_q(q)
        return q + window_attention(self.attn, qn, q_win, self.norm_kv(kv), kv_win) + self.ffn(qn)


# ======================================================================================
# STD: spatio-temporal downsampling (eqs. 1-6)
# ======================================================================================


class STD(nn.Module):
    """Frames (b = global frame) at stride s -> groups of lam frames (b = frame // lam) at stride 2s.

    block="attention" (the paper): coarse queries attend to the fine + coarse tokens of their 4D
    window (eqs. 4-5). block="conv" (its "w/o ST-Attn" ablation): the coarse tokens are mixed by
    a 3D spatial sparse conv then a 1D temporal conv (`ConvMix`) instead; the strided conv, the
    4D encoding and the merge over lam frames are the same, so only the mixing differs."""

    def __init__(self, dim: int, heads: int, window: int, mlp_ratio: float, max_period: float,
                 block: str = "attention"):
        super().__init__()
        self.dim, self.window, self.max_period, self.kind = dim, window, max_period, block
        self.down = SparseConv3d(dim, dim, kernel_size=2, stride=2)
        if block == "attention":
            self.block = WindowBlock(dim, heads, mlp_ratio)
        else:
            self.mix = ConvMix(dim, mlp_ratio)

    def forward(self, x: SparseTensor, t: torch.Tensor, lam: int) -> SparseTensor:
        """x: (P, D) over F frames; t (F,) frame times; lam divides F (and each sequence)."""
        if x.batch_size % lam:
            raise ValueError(f"STD: {x.batch_size} frames are not a multiple of lambda={lam}")
        xc = self.down(x)                                                               # eq. 1: (Pc, D), stride 2s
        coarse = xc.feats + pos_enc_4d(xc.coords[:, 1:], xc.stride, t[xc.coords[:, 0]], self.dim, self.max_period)
        if self.kind == "conv":                                                         # ablation: 3D conv, 1D conv
            return merge_frames(xc, self.mix(xc.replace_feats(coarse), t), lam)
        fine = x.feats + pos_enc_4d(x.coords[:, 1:], x.stride, t[x.coords[:, 0]], self.dim, self.max_period)
        # eq. 3-4: window = (group of lam frames, cube of window^3 coarse cells); fine tokens by their parent
        gq, gf = xc.coords[:, :1] // lam, x.coords[:, :1] // lam                     # (Pc, 1), (P, 1)
        q_win = torch.cat([gq, xc.coords[:, 1:] // self.window], 1)                  # (Pc, 4)
        f_win = torch.cat([gf, x.coords[:, 1:] // (2 * self.window)], 1)             # (P, 4)
        h = self.block(coarse, q_win, torch.cat([fine, coarse]), torch.cat([f_win, q_win]))  # eq. 5: (Pc, D)
        return merge_frames(xc, h, lam)                                               # eq. 6


def merge_frames(xc: SparseTensor, h: torch.Tensor, lam: int) -> SparseTensor:
    """Eq. 6: average the tokens h (Pc, D) of the lam frames of a group at each cell of xc
    (b = frame) -> one token set per group (b = frame // lam), sorted by group."""
    cells = torch.cat([xc.coords[:, :1] // lam, xc.coords[:, 1:]], 1)                 # (Pc, 4)
    keys = coord_keys(cells, coords_bounds(cells), check=False)
    uniq, inv = torch.unique(keys, return_inverse=True)                               # sorted: by group first
    coords = cells.new_zeros(len(uniq), 4).index_copy_(0, inv, cells)
    count = torch.bincount(inv, minlength=len(uniq)).to(h.dtype)[:, None]
    feats = h.new_zeros(len(uniq), h.shape[1]).index_add_(0, inv, h) / count
    G = xc.batch_size // lam
    offsets = F.pad(torch.bincount(coords[:, 0], minlength=G).cumsum(0), (1, 0))
    return SparseTensor(coords, feats, offsets, xc.stride, validate=False)


def expand_frames(x: SparseTensor, t: torch.Tensor, lam: int, dim: int, max_period: float):
    """Eq. 7: each group token (b = group) copied to its lam frames lam j + k with the 4D
    encoding of its output time t (F,). Returns (y: the copies sorted by frame, feats =
    token + encoding; base (rows of y): the token without the encoding)."""
    k = torch.arange(lam, device=x.coords.device)
    frame = (x.coords[:, :1] * lam + k).reshape(-1)                                   # (P * lam,) frame lam j + k
    cells = x.coords[:, 1:].repeat_interleave(lam, 0)                                 # (P * lam, 3)
    base = x.feats.repeat_interleave(lam, 0)                                          # (P * lam, D)
    q = base + pos_enc_4d(cells, x.stride, t[frame], dim, max_period)                 # eq. 7
    order = torch.argsort(frame, stable=True)                                         # rows sorted by frame
    coords = torch.cat([frame[:, None], cells], 1)[order]
    offsets = F.pad(torch.bincount(frame, minlength=x.batch_size * lam).cumsum(0), (1, 0))
    return SparseTensor(coords, q[order], offsets, x.stride, validate=False), base[order]


# ======================================================================================
# STU: spatio-temporal upsampling (eqs. 7-10)
# ======================================================================================


class STU(nn.Module):
    """Groups (b = group) at stride s -> frames (b = lam * group + k) on all children at stride s / 2.

    block="attention" (the paper): window attention among the expanded tokens (eqs. 8-9);
    block="conv" (the "w/o ST-Attn" ablation): `ConvMix` on them instead (see STD)."""

    def __init__(self, dim: int, out_dim: int, heads: int, window: int, mlp_ratio: float, max_period: float,
                 block: str = "attention"):
        super().__init__()
        self.dim, self.window, self.max_period, self.kind = dim, window, max_period, block
        if block == "attention":
            self.block = WindowBlock(dim, heads, mlp_ratio)
        else:
            self.mix = ConvMix(dim, mlp_ratio)
        self.up = SparseConvTranspose3d(dim, out_dim, kernel_size=2, stride=2)

    def forward(self, x: SparseTensor, t: torch.Tensor, lam: int) -> SparseTensor:
        """x: (P, D) over G groups; t (G * lam,) times of the output frames."""
        F_out = x.batch_size * lam
        if t.numel() != F_out:
            raise ValueError(f"STU: {x.batch_size} groups x lambda={lam} = {F_out} frames, but {t.numel()} times")
        y, base = expand_frames(x, t, lam, self.dim, self.max_period)                # eq. 7
        if self.kind == "conv":
            h = self.mix(y, t)
        else:
            win = torch.cat([y.coords[:, :1], y.coords[:, 1:] // self.window], 1)    # eq. 8: (frame, cube)
            h = self.block(y.feats, win, torch.cat([y.feats, base]), torch.cat([win, win]))  # eq. 9
        y = y.replace_feats(h)
        return self.up(y, child_sites(y))                                             # eq. 10


# ======================================================================================
# The "w/o ST-Attn" ablation: decoupled 3D spatial + 1D temporal sparse convolution
# ======================================================================================


def temporal_neighbours(coords: torch.Tensor, t: torch.Tensor, offset: int) -> torch.Tensor:
    """(P,) row of the site at (frame + offset, same cell) of the same sequence, -1 if none.
    coords (P, 4) (global frame, i, j, k); t (F,) each global frame's index in its sequence
    (frames of one sequence are consecutive, so frame + offset is in it iff its t differs by offset)."""
    f = coords[:, 0] + offset
    ok = (f >= 0) & (f < t.numel())
    fc = f.clamp(0, t.numel() - 1)
    ok &= t[fc] == t[coords[:, 0]] + offset
    query = torch.cat([fc[:, None], coords[:, 1:]], 1)
    bounds = coords_bounds(coords, query)
    keys_sorted, order = torch.sort(coord_keys(coords, bounds, check=False))
    row = lookup(keys_sorted, order, coord_keys(query, bounds, check=False))
    return torch.where(ok, row, torch.full_like(row, -1))


class ConvMix(nn.Module):
    """The naive 4D operator the paper replaces: a 3^3 submanifold sparse conv within each
    frame, then a kernel-3 conv along time at each cell (a neighbour frame without that
    cell counts as zero), then an FFN; each pre-norm with a residual:
        h = x + S(GELU(LN x)),  h = h + T(GELU(LN h)),  out = h + FFN(LN h)."""

    def __init__(self, dim: int, mlp_ratio: float):
        super().__init__()
        self.norm_s, self.norm_t, self.norm_f = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.spatial = SparseConv3d(dim, dim, 3)
        self.temporal = nn.ModuleList([nn.Linear(dim, dim, bias=o == 0) for o in (-1, 0, 1)])  # taps t-1, t, t+1
        self.ffn = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: SparseTensor, t: torch.Tensor) -> torch.Tensor:
        """x: (P, D), b = global frame; t (F,) frame times. Returns (P, D) in x's row order."""
        h = x.feats + self.spatial(x.replace_feats(F.gelu(self.norm_s(x.feats)))).feats      # 3D spatial
        a = F.gelu(self.norm_t(h))
        mixed = self.temporal[1](a)
        for o, lin in ((-1, self.temporal[0]), (1, self.temporal[2])):                     # 1D temporal
            row = temporal_neighbours(x.coords, t, o)
            mixed = mixed + lin(torch.where((row >= 0)[:, None], a[row.clamp(min=0)], torch.zeros_like(a)))
        h = h + mixed
        return h + self.ffn(self.norm_f(h))


# ======================================================================================
# The VAE
# ======================================================================================


class SparseResBlock(nn.Module):
    """x + conv(GELU(LN(conv(GELU(LN x))))), two submanifold 3^3 sparse convs."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.conv1, self.conv2 = SparseConv3d(dim, dim, 3), SparseConv3d(dim, dim, 3)

    def forward(self, x: SparseTensor) -> SparseTensor:
        h = self.conv1(x.replace_feats(F.gelu(self.norm1(x.feats))))
        h = self.conv2(h.replace_feats(F.gelu(self.norm2(h.feats))))
        return x.replace_feats(x.feats + h.feats)


def voxel_inputs(batch: dict, resolution: int) -> torch.Tensor:
    """(P, 9) encoder input per voxel: colour in [-1, 1] and the Plücker ray (d, o x d) from
    the frame's camera centre o to the voxel centre p (eq. 11), in the grid's [-1, 1]^3 frame."""
    coords, f = batch["coords"], batch["coords"][:, 0]
    h = batch["voxel_size"][f][:, None]                                               # (P, 1) metres per cell
    origin = batch["origin"][f]                                                       # (P, 3)
    p = origin + (coords[:, 1:].float() + 0.5) * h                                    # (P, 3) voxel centres
    w2c = batch["world_to_cam"][f]                                                    # (P, 4, 4)
    o = -(w2c[:, :3, :3].transpose(1, 2) @ w2c[:, :3, 3:])[..., 0]                    # (P, 3) camera centres
    centre, half = origin + h * resolution / 2, h * resolution / 2
    p_n, o_n = (p - centre) / half, (o - centre) / half
    return torch.cat([batch["colors"] * 2 - 1, plucker(o_n, p_n - o_n)], 1)


class Native4DVAE(nn.Module):
    """forward(batch, lam=None, sample=None) -> dict of the decoded voxels and the latent.

    Output keys: "sites" (SparseTensor of the decoded finest sites, b = global frame),
    "occ_logit" (P,), "rgb" (P, 3) in [-1, 1], "prune" [(sites before pruning, logit (P_l,))
    per decoder level], "mean", "logvar", "z" (G, C', L, L, L), "lam".
    """

    def __init__(self, cfg: Native4DVAEConfig):
        super().__init__()
        self.cfg = cfg
        C0, D, H, Cz = cfg.stem_channels, cfg.dim, cfg.heads, cfg.latent_channels
        blk = dict(heads=H, window=cfg.window, mlp_ratio=cfg.mlp_ratio, max_period=cfg.pe_max_period,
                   block=cfg.block)
        widths = [C0] * cfg.stem_down + [D]                                           # stem level widths
        # encoder
        self.enc_in = nn.Linear(9, C0)                                                # colour + Plücker
        self.enc_res = nn.ModuleList([SparseResBlock(widths[i]) for i in range(cfg.stem_down)])
        self.enc_down = nn.ModuleList([SparseConv3d(widths[i], widths[i + 1], 2, stride=2)
                                       for i in range(cfg.stem_down)])
        self.std = nn.ModuleList([STD(D, **blk) for _ in range(cfg.num_std)])
        self.enc_out = nn.Sequential(nn.Conv3d(D, D, 3, padding=1), nn.GELU(), nn.Conv3d(D, 2 * Cz, 1))  # Conv3D + MLP
        # decoder
        self.dec_in = nn.Sequential(nn.Conv3d(Cz, D, 3, padding=1), nn.GELU(), nn.Conv3d(D, D, 1))
        self.stu = nn.ModuleList([STU(D, D, **blk) for _ in range(cfg.num_std)])
        self.prune_head = nn.ModuleList([nn.Linear(widths[i + 1], 1) for i in range(cfg.stem_down)])
        self.dec_res = nn.ModuleList([SparseResBlock(widths[i + 1]) for i in range(cfg.stem_down)])
        self.dec_up = nn.ModuleList([SparseConvTranspose3d(widths[i + 1], widths[i], 2, 2)
                                     for i in range(cfg.stem_down)])
        self.out_res = SparseResBlock(C0)
        self.occ_head, self.rgb_head = nn.Linear(C0, 1), nn.Linear(C0, 3)
        for head in self.prune_head:  # start near the share of occupied children: prune most, not none
            nn.init.constant_(head.bias, -2.0)

    # ---- encoder -------------------------------------------------------------------

    def encode(self, batch: dict, lam: int):
        """batch -> mean, logvar (G, C', L, L, L), G = frames / lam."""
        cfg, coords = self.cfg, batch["coords"]
        if coords.numel() and int(coords[:, 1:].max()) >= cfg.resolution:
            raise ValueError(f"encode: voxel coords reach {int(coords[:, 1:].max())}, outside the "
                             f"{cfg.resolution}^3 grid of this config")
        Fn = int(batch["num_frames"].sum())
        offsets = F.pad(torch.bincount(coords[:, 0], minlength=Fn).cumsum(0), (1, 0))
        x = SparseTensor(coords, self.enc_in(voxel_inputs(batch, cfg.resolution)), offsets, validate=False)
        for res, down in zip(self.enc_res, self.enc_down):                            # eq. 12
            x = down(res(x))
        t = frame_times(batch["num_frames"])                                          # (F,)
        for i, std in enumerate(self.std):                                            # eq. 13: lambda in block 1
            x = std(x, t, lam if i == 0 else 1)
            if i == 0:
                t = t[::lam]                                                          # group j's time: lambda j
        dense = sparse_to_dense(x, (cfg.latent_resolution,) * 3)                      # (G, D, L, L, L)
        mean, logvar = self.enc_out(dense).chunk(2, 1)                                # eq. 14
        return mean, logvar.clamp(-30.0, 20.0)

    # ---- decoder -------------------------------------------------------------------

    def decode(self, z: torch.Tensor, num_frames: torch.Tensor, lam: int, gt_coords: torch.Tensor | None = None):
        """z (G, C', L, L, L) -> decoded sites, logits, colours. gt_coords (P, 4): also keep
        the GT-occupied sites at each pruning (training's teacher forcing); None: prediction only."""
        cfg = self.cfg
        h = self.dec_in(z)                                                            # (G, D, L, L, L)
        x = dense_to_sparse(h, torch.ones_like(h[:, 0], dtype=torch.bool), stride=2 ** (cfg.stem_down + cfg.num_std))
        t_frames = frame_times(num_frames)
        for i in reversed(range(cfg.num_std)):                                        # mirror: lambda in the last
            lam_i = lam if i == 0 else 1
            x = self.stu[i](x, t_frames if i == 0 else t_frames[::lam], lam_i)        # eq. 15
        prune = []
        for i in reversed(range(cfg.stem_down)):
            logit = self.prune_head[i](x.feats)[:, 0]                                 # eq. 16
            keep = logit > cfg.prune_logit
            if gt_coords is not None:
                keep = keep | occupied_at(x.coords, x.stride, gt_coords)
            prune.append((x, logit))
            x = select_sites(x, keep)
            x = self.dec_up[i](self.dec_res[i](x), child_sites(x))                   # sparse up-conv
        x = self.out_res(x)
        return {"sites": x, "occ_logit": self.occ_head(x.feats)[:, 0],                # eq. 17
                "rgb": torch.tanh(self.rgb_head(x.feats)), "prune": prune}

    def forward(self, batch: dict, lam: int | None = None, sample: bool | None = None,
                gt_pruning: bool | None = None) -> dict:
        """Encode, sample z (training: mean + sigma eps; eval: mean), decode.
        gt_pruning default: training and cfg.prune_with_gt."""
        lam = choose_lambda(batch["num_frames"], self.cfg.temporal_ratio) if lam is None else lam
        if lam not in LAMBDAS or any(int(n) % lam for n in batch["num_frames"].tolist()):
            raise ValueError(f"lambda={lam} must be in {LAMBDAS} and divide every sequence's frame count "
                             f"{batch['num_frames'].tolist()}")
        sample = self.training if sample is None else sample
        gt_pruning = (self.training and self.cfg.prune_with_gt) if gt_pruning is None else gt_pruning
        mean, logvar = self.encode(batch, lam)
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp() if sample else mean
        out = self.decode(z, batch["num_frames"], lam, batch["coords"] if gt_pruning else None)
        return {**out, "mean": mean, "logvar": logvar, "z": z, "lam": lam}


# ======================================================================================
# Losses (sec. 3.4)
# ======================================================================================


def bce_dice(logit: torch.Tensor, target: torch.Tensor, num_positive: int | None = None, eps: float = 1e-5):
    """Eq. 18-19 on one site set: (BCE, Dice). num_positive: every GT-occupied cell, also
    those missing from the site set (default: the positives among the sites)."""
    target = target.to(logit.dtype)
    # an empty site set (everything pruned) has no BCE term, and Dice 1: nothing found
    bce = F.binary_cross_entropy_with_logits(logit, target) if logit.numel() else logit.sum()
    p = torch.sigmoid(logit)
    n_pos = target.sum() if num_positive is None else num_positive
    dice = 1 - (2 * (p * target).sum() + eps) / (p.sum() + n_pos + eps)
    return bce, dice


def kl_divergence(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, 1)), averaged over latent elements."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).mean()


def _num_cells(gt_coords: torch.Tensor, stride: int) -> int:
    c = gt_coords.clone()
    c[:, 1:] = torch.div(c[:, 1:], stride, rounding_mode="floor")
    return len(coord_keys(c, coords_bounds(c), check=False).unique())


def render_loss(batch: dict, sites: SparseTensor, occ: torch.Tensor, rgb01: torch.Tensor, size: int) -> torch.Tensor:
    """Eq. 21: per frame, render predicted (occ, colour) and GT voxels from the frame's
    camera at size^2 on black; mean squared error over pixels, averaged over frames."""
    gt = batch["coords"]
    losses = []
    for f in range(sites.batch_size):
        lo, hi = int(sites.offsets[f]), int(sites.offsets[f + 1])
        g = gt[:, 0] == f
        cam = dict(world_to_cam=batch["world_to_cam"][f], K=batch["K"][f], width=size, height=size,
                   voxel_size=float(batch["voxel_size"][f]), origin=batch["origin"][f], validate=False)
        pred = render_voxels(sites.coords[lo:hi, 1:], occ[lo:hi], rgb01[lo:hi], **cam).image
        with torch.no_grad():
            target = render_voxels(gt[g, 1:], torch.ones(int(g.sum()), device=gt.device), batch["colors"][g], **cam).image
        losses.append((pred - target).pow(2).mean())
    return torch.stack(losses).mean()


def loss(model, batch: dict, lam: int | None = None):
    """Eq. 22 for fourdlib.train.train: (loss, logs) with each term (bce and dice include
    the pruning stage's), the occupancy IoU at 0.5 and the number of decoded sites.
    A PointMapVAE's loss is `pointmap_loss` (one loss for every run of the method)."""
    net = unwrap(model)
    if isinstance(net, PointMapVAE):
        return pointmap_loss(model, batch)
    cfg = net.cfg
    batch = as_batch(batch)
    out = model(batch, lam=lam)
    gt, sites = batch["coords"], out["sites"]
    # 4D losses on the finest decoded sites
    occ_t = occupied_at(sites.coords, 1, gt)
    bce, dice = bce_dice(out["occ_logit"], occ_t, len(gt))
    logs = {"bce_final": bce.detach(), "dice_final": dice.detach()}
    for x, logit in out["prune"]:                                                    # intermediate (pruning) stage
        b2, d2 = bce_dice(logit, occupied_at(x.coords, x.stride, gt), _num_cells(gt, x.stride))
        bce, dice = bce + b2, dice + d2
    bounds = coords_bounds(sites.coords, gt)
    keys_sorted, order = torch.sort(coord_keys(gt, bounds, check=False))
    row = lookup(keys_sorted, order, coord_keys(sites.coords, bounds, check=False))   # GT row of each site, -1 if none
    hit = row >= 0
    rgb = F.mse_loss(out["rgb"][hit], batch["colors"][row[hit]] * 2 - 1) if bool(hit.any()) \
        else out["rgb"].sum() * 0                                                     # eq. 20
    occ = torch.sigmoid(out["occ_logit"])
    render = render_loss(batch, sites, occ, (out["rgb"] + 1) / 2, cfg.render_size) if cfg.w_render > 0 \
        else occ.sum() * 0
    kl = kl_divergence(out["mean"], out["logvar"])
    total = cfg.w_bce * bce + cfg.w_dice * dice + cfg.w_rgb * rgb + cfg.w_render * render + cfg.w_kl * kl
    with torch.no_grad():
        iou = occupancy_iou(sites.coords[occ > 0.5], gt)
    logs.update(bce=bce.detach(), dice=dice.detach(), rgb=rgb.detach(), render=render.detach(), kl=kl.detach(),
                iou=torch.tensor(iou), sites=torch.tensor(float(len(sites))))
    return total, logs


@torch.no_grad()
def reconstruct(model, batch: dict, lam: int | None = None, threshold: float = 0.5):
    """Encode (latent mean) and decode with the model's own pruning: (coords (P, 4) (global
    frame, i, j, k) of the sites with occupancy > threshold, colours (P, 3) in [0, 1]).
    A PointMapVAE: its decoded points of pixels with mask > threshold, voxelised (`pointmap_voxels`)."""
    net = unwrap(model)
    if isinstance(net, PointMapVAE):
        out = net(as_batch(batch), sample=False)
        decoded = torch.cat([out["xyz"], out["rgb"], torch.sigmoid(out["mask_logit"])[:, None]], 1)
        return pointmap_voxels(decoded, net.cfg.resolution, threshold)
    out = net(as_batch(batch), lam=lam, sample=False, gt_pruning=False)
    keep = torch.sigmoid(out["occ_logit"]) > threshold
    return out["sites"].coords[keep], ((out["rgb"][keep] + 1) / 2).clamp(0, 1)


# ======================================================================================
# The baseline of table 1, row 1: PointMapVAE
# ======================================================================================
# What the paper compares against (sec. 4.2.1): a video VAE (Wan's) fed the depth video's
# pointmaps, each pixel's xyz in place of its colour, decoded back to one point per pixel.
# Ours at course scale, built like such a video VAE but trained from scratch like the voxel
# VAE (the paper fine-tunes a pretrained one): 3D convolutions over (frames, pixels) of view
# 0's pointmap video, stride-2 stages in space (the first log2(lambda) also halve time), a KL
# latent, a mirrored decoder (transposed convs), heads for xyz, colour and a
# valid-pixel mask. Its latent has the voxel VAE's size: (H/s, W/s, C' L) per group of lambda
# frames with s = 2^(stem_down + num_std + 1), the voxel latent's depth axis L folded into
# channels; equal to L^3 C' when the images are 2R pixels wide, as in every course data set
# (64 px for R = 32). lambda is fixed to cfg.temporal_ratio (strided convs, not a merge), so
# every sequence's frame count must be a multiple of it. Evaluated like the voxel VAE: the
# decoded points of valid pixels voxelised on the sequence's grid (`pointmap_voxels`).

def pointmap_frames(seq, item: dict, resolution: int, view: int = 0) -> torch.Tensor:
    """(T, 7, H, W) pointmap video of a Sequence4D's `view` on the grid of `item` (its
    `sequence_item`): xyz of every pixel back-projected in the grid's [-1, 1]^3 frame, rgb in
    [-1, 1] (0 without rgb), valid = 1 where depth > 0; xyz and rgb 0 on invalid pixels."""
    from ...geometry.cameras import unproject_depth

    depth = torch.as_tensor(np.asarray(seq.depth[:, view], np.float64))              # (T, H, W)
    pts = unproject_depth(depth, torch.as_tensor(np.asarray(seq.intrinsics[:, view], np.float64)),
                          torch.as_tensor(np.asarray(seq.cam_to_world[:, view], np.float64)))  # (T, H, W, 3)
    half = item["voxel_size"].double()[:, None, None, None] * resolution / 2
    xyz = (pts - item["origin"].double()[:, None, None] - half) / half                # grid centre -> 0
    valid = (depth > 0)[..., None]
    rgb = (torch.as_tensor(np.asarray(seq.rgb[:, view], np.float32)) / 127.5 - 1 if seq.rgb is not None
           else torch.zeros(*depth.shape, 3))
    pm = torch.cat([xyz.float() * valid, rgb.float() * valid, valid.float()], -1)     # (T, H, W, 7)
    return pm.permute(0, 3, 1, 2).contiguous()


class ResBlock3d(nn.Module):
    """x + conv(SiLU(GN(conv(SiLU(GN(x)))))) with 3^3 kernels over (frames, rows, columns)."""

    def __init__(self, c: int):
        super().__init__()
        self.net = nn.Sequential(nn.GroupNorm(min(8, c), c), nn.SiLU(), nn.Conv3d(c, c, 3, padding=1),
                                 nn.GroupNorm(min(8, c), c), nn.SiLU(), nn.Conv3d(c, c, 3, padding=1))

    def forward(self, x):
        return x + self.net(x)


class PointMapVAE(nn.Module):
    """forward(batch, sample=None) -> dict: "xyz" (F, 3, H, W) in the grid's [-1, 1]^3 frame,
    "rgb" (F, 3, H, W) in [-1, 1], "mask_logit" (F, H, W), "mean", "logvar", "z" (G, C' L, H/s, W/s).

    batch: `collate` / `sequence_windows` of items with a "pointmap" (make_dataset with
    cfg.representation = "pointmap" adds it). Sequences are run one at a time (each its own
    (1, 7, T, H, W) video), so they may differ in length."""

    def __init__(self, cfg: Native4DVAEConfig):
        super().__init__()
        self.cfg = cfg
        down = cfg.stem_down + cfg.num_std + 1                                        # space: / 2^down
        t_down = cfg.temporal_ratio.bit_length() - 1                                  # time: / lambda
        widths = [cfg.stem_channels] + [cfg.dim] * down
        Cz = cfg.latent_channels * cfg.latent_resolution                              # L folded into channels
        strides = [(2 if i < t_down else 1, 2, 2) for i in range(down)]
        # residual blocks below full resolution only: most pixels are empty, and full-resolution
        # 3^3 convs would cost most of the compute for little (a stride-2 conv already sees 3^3)
        res = lambda i: ResBlock3d(widths[i]) if i > 0 else nn.Identity()
        self.enc_in = nn.Conv3d(7, widths[0], 3, padding=1)                           # xyz, rgb, valid
        self.enc = nn.ModuleList([nn.Sequential(res(i), nn.Conv3d(widths[i], widths[i + 1], 3, stride=strides[i],
                                                                  padding=1))
                                  for i in range(down)])
        self.enc_out = nn.Sequential(ResBlock3d(widths[-1]), nn.GroupNorm(min(8, widths[-1]), widths[-1]), nn.SiLU(),
                                     nn.Conv3d(widths[-1], 2 * Cz, 1))
        self.dec_in = nn.Sequential(nn.Conv3d(Cz, widths[-1], 3, padding=1), ResBlock3d(widths[-1]))
        self.dec = nn.ModuleList([nn.Sequential(nn.ConvTranspose3d(widths[i + 1], widths[i], strides[i], stride=strides[i]),
                                                res(i))
                                  for i in reversed(range(down))])
        self.head = nn.Sequential(nn.GroupNorm(min(8, widths[0]), widths[0]), nn.SiLU(),
                                  nn.Conv3d(widths[0], 7, 3, padding=1))              # xyz, rgb, mask
        self.scale = 2 ** down

    def encode(self, video: torch.Tensor):
        """(1, 7, T, H, W) -> mean, logvar (1, C' L, T / lambda, H / s, W / s)."""
        x = self.enc_in(video)
        for stage in self.enc:
            x = stage(x)
        mean, logvar = self.enc_out(x).chunk(2, 1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(1, C' L, T / lambda, H / s, W / s) -> (1, 7, T, H, W) raw outputs."""
        x = self.dec_in(z)
        for stage in self.dec:
            x = stage(x)
        return self.head(x)

    def forward(self, batch: dict, sample: bool | None = None) -> dict:
        cfg = self.cfg
        if "pointmap" not in batch:
            raise ValueError("PointMapVAE needs the batch's pointmaps: build the dataset with make_dataset(cfg, ...) "
                             "for a config with representation='pointmap' (it adds 'pointmap' to every item)")
        pm, counts = batch["pointmap"], batch["num_frames"].tolist()                  # (F, 7, H, W)
        H, W = pm.shape[-2:]
        if H % self.scale or W % self.scale:
            raise ValueError(f"PointMapVAE: {H} x {W} pointmaps, the sides must be multiples of {self.scale}")
        if any(n % cfg.temporal_ratio for n in counts):
            raise ValueError(f"PointMapVAE: every sequence's frame count must be a multiple of lambda = "
                             f"temporal_ratio = {cfg.temporal_ratio} (its strided time convs); got {counts}")
        sample = self.training if sample is None else sample
        outs, latents = [], []
        for video in pm.split(counts):                                                # one sequence at a time
            mean, logvar = self.encode(video.transpose(0, 1)[None])                   # (1, 7, T, H, W)
            z = mean + torch.randn_like(mean) * (0.5 * logvar).exp() if sample else mean
            outs.append(self.decode(z)[0].transpose(0, 1))                            # (T, 7, H, W)
            latents.append(torch.cat([mean, logvar, z]).transpose(1, 2))              # (3, G, C' L, h, w)
        out = torch.cat(outs)
        mean, logvar, z = torch.cat(latents, 1)
        return {"xyz": out[:, :3], "rgb": torch.tanh(out[:, 3:6]), "mask_logit": out[:, 6],
                "mean": mean, "logvar": logvar, "z": z, "lam": cfg.temporal_ratio}


def build_model(cfg: Native4DVAEConfig) -> nn.Module:
    """The model cfg.representation names: Native4DVAE ("voxels") or PointMapVAE ("pointmap").
    The run machinery builds every run through this, so either is rebuilt from its config."""
    return {"voxels": Native4DVAE, "pointmap": PointMapVAE}[cfg.representation](cfg)


def pointmap_loss(model, batch: dict):
    """The PointMapVAE's loss (loss() sends it here): BCE + Dice on the valid-pixel mask
    (weights w_bce, w_dice), L1 of xyz on GT-valid pixels in grid units (weight 1: the geometry
    term, the voxel VAE's occupancy has no equivalent), colour MSE on GT-valid pixels (w_rgb),
    KL (w_kl). No rendering term: the pointmap is already the image."""
    net = unwrap(model)
    cfg = net.cfg
    batch = as_batch(batch)
    out = model(batch)
    pm = batch["pointmap"]
    valid = pm[:, 6] > 0.5                                                             # (F, H, W)
    bce, dice = bce_dice(out["mask_logit"].flatten(), valid.flatten())
    xyz = (out["xyz"] - pm[:, :3]).abs().sum(1)[valid].mean()
    rgb = (out["rgb"] - pm[:, 3:6]).pow(2).mean(1)[valid].mean()
    kl = kl_divergence(out["mean"], out["logvar"])
    total = cfg.w_bce * bce + cfg.w_dice * dice + xyz + cfg.w_rgb * rgb + cfg.w_kl * kl
    with torch.no_grad():
        pred = out["mask_logit"] > 0
        iou = (pred & valid).sum() / (pred | valid).sum().clamp(min=1)
    return total, {"bce": bce.detach(), "dice": dice.detach(), "xyz": xyz.detach(), "rgb": rgb.detach(),
                   "kl": kl.detach(), "mask_iou": iou}


def pointmap_voxels(pointmap: torch.Tensor, resolution: int, threshold: float = 0.5):
    """Pointmaps (F, 7, H, W) (xyz in the grid frame, rgb in [-1, 1], channel 6 the valid
    probability) -> voxels on the grid (`voxelize_points` on the [-1, 1]^3 cube at `resolution`):
    coords (P, 4) (frame, i, j, k) of the cells holding a pixel with channel 6 > threshold,
    colours (P, 3) in [0, 1] the mean of their pixels. The GT pointmap gives the naive
    "back-project and voxelise" voxels (what a perfect PointMapVAE scores); points outside
    the grid are dropped."""
    grid = dict(resolution=resolution, bounds=[[-1.0] * 3, [1.0] * 3], outside="drop")
    coords, colors = [torch.zeros(0, 4, dtype=torch.long)], [torch.zeros(0, 3)]
    for f in range(len(pointmap)):
        px = pointmap[f].detach().flatten(1).T.double()                                # (H W, 7)
        px = px[(px[:, 6] > threshold) & (px[:, :3].abs() <= 1).all(1)]               # voxelize_points refuses
        if len(px):                                                                    # an empty cloud
            vox = voxelize_points(px[:, :3], (px[:, 3:6] + 1) / 2, **grid)
            coords.append(F.pad(vox.coords, (1, 0), value=f))
            colors.append(vox.colors)
    return torch.cat(coords), torch.cat(colors).clamp(0, 1)
