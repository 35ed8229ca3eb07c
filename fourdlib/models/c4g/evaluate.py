"""Evaluate C4G (or the per-pixel baseline) by novel-view synthesis on held-out frames, with
trivial references and a floor computed on the same frames; and by point tracking through
its Gaussians and its lifted 4D feature field (second half of this file).

    data = make_dataset(cfg, course_data("scenes", "tiny"), "test", train=False)
    df = evaluate(model, data)               # one row per (sequence, held-out target frame)
    comparison_table({"C4G": df, "per-pixel": evaluate(pixel_model, data)})
    tracking_table(model, data)              # 2D point tracking against GT tracks

What is evaluated
-----------------
Each sequence's first clip (ClipDataset with train=False): the S input frames evenly spaced
over the clip go to the model; EVERY other frame of the clip is a target. A target frame is
a novel time and a novel view (the generator's camera moves every frame, one view per
frame). The model's Gaussians for the target time are rendered at the target camera with
`model.render` (black background, as the generator's images where nothing is seen) and
compared with the target's RGB. `clip_frames` / `input_frames` evaluate other clips than
the training ones (the encoder takes any S): e.g. a longer clip with the same S spaces the
inputs further apart in time, the "large temporal gap" setting of the paper.

Columns (one row per (sequence, target frame))
-----------------------------------------------
    sequence, frame      item index in the dataset, target frame index in the sequence
    time                 the target's time (seconds)
    gap                  frames between the target and the nearest input frame
    nearest_frame        that input frame (ties: the earlier one)
    X_psnr, X_ssim       PSNR (dB) and SSIM of X's image against the target's RGB
                         (fourdlib.metrics: per image, data range 1, SSIM with the 11 x 11
                         Gaussian window; an identical image gives PSNR inf)
    X_gaussians          Gaussians X renders (per target time)
with X:
    pred      the model's Gaussians at the target time ("pred_gaussians": N for C4G,
              S x (H/stride) x (W/stride) for the per-pixel baseline)
    nearest   the image of the input frame nearest in time, copied as it is ("nothing
              moves and the camera stays"); no Gaussians (nearest_gaussians = 0)
    union     every input pixel with depth back-projected to a small isotropic Gaussian of
              its colour (`splat_pixels`: opaque, std = point_scale x the pixel's footprint
              at its depth), ALL input frames together, rendered as they are with the same
              renderer at the target camera: "stack the frames". point_scale defaults to
              0.2: the renderer adds a 0.3 px^2 low-pass to every Gaussian, so a splat is
              about 0.6 px wide anyway; on the smoke scenes wider splats (0.3 ... 0.7)
              lowered union and floor PSNR and SSIM alike. Moving objects appear
              where they were (ghosts); parts no input saw stay black.
    floor     the TARGET frame's own RGB-D pixels splatted the same way and rendered at the
              target camera: what the GT scene scores when it is turned into per-pixel
              Gaussians and rendered like everything else. It measures what splatting at
              pixel density itself costs (edges softened by the Gaussians' width, pixels
              without depth left black, which the generator's images also are). It is not
              a bound on what optimised Gaussians can reach (they can beat it); it is the
              reference for "is the renderer the limit" (on the smoke scenes at 32 x 32:
              about 28.6 dB, SSIM 0.88). Chance level: none given (no meaningful random
              image for PSNR/SSIM).
"""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from einops import rearrange
from tqdm.auto import tqdm

from ...data.tracks import point_tracks
from ...geometry.cameras import project, unproject_depth
from ...metrics import psnr, ssim
from ...repro.frames import mean_by
from ...train.distributed import unwrap
from .model import C4G, ClipDataset, Gaussians, lift_features, model_inputs, predict, render

__all__ = ["REFERENCES", "TABLE_COLUMNS", "image_metrics", "nearest_input", "splat_pixels", "render_points",
           "evaluate", "summarize", "comparison_table", "gap_table",
           "TRACK_METHODS", "DELTAS", "compositing_weights", "carry_points", "nearest_colour", "match_features",
           "track_points", "tracking_errors", "tracking_summary", "tracking_table"]


def image_metrics(pred: torch.Tensor, gt: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(PSNR (N,), SSIM (N,)) of images (N, H, W, 3) in [0, 1] (fourdlib.metrics, data range 1)."""
    pred, gt = pred.detach().float().cpu(), gt.detach().float().cpu()
    return np.asarray(psnr(pred, gt, data_range=1.0)), np.asarray(ssim(pred, gt, data_range=1.0))


def nearest_input(target_frames, input_frames) -> torch.Tensor:
    """For each target frame (V,), the position in input_frames (S,) of the input nearest in
    time (frame index); ties go to the earlier input."""
    t = torch.as_tensor(target_frames).long()
    s = torch.as_tensor(input_frames).long()
    # distance first, then the input's own frame index: argmin of a combined key breaks ties early
    d = (t[:, None] - s[None, :]).abs() * (int(s.max()) + 1) + s[None, :]
    return d.argmin(1)


def splat_pixels(rgb, depth, K, cam_to_world, *, point_scale: float = 0.2) -> Gaussians:
    """Every pixel with depth of frames (S, H, W, 3) / (S, H, W) / (S, 3, 3) / (S, 4, 4) as one
    opaque isotropic Gaussian in world units: at its back-projected point, with its colour and
    std = point_scale x depth / sqrt(fx fy) (point_scale pixels of its own camera).
    Returns Gaussians of shape (1, 1, G, ...) (one clip, one time; `Gaussians` layout)."""
    rgb, depth = torch.as_tensor(rgb).float(), torch.as_tensor(depth).float()
    K, c2w = torch.as_tensor(K).float(), torch.as_tensor(cam_to_world).float()
    if depth.dim() != 3 or rgb.shape != (*depth.shape, 3) or K.shape != (depth.shape[0], 3, 3) \
            or c2w.shape != (depth.shape[0], 4, 4):
        raise ValueError(f"splat_pixels: rgb (S, H, W, 3), depth (S, H, W), K (S, 3, 3), cam_to_world (S, 4, 4) "
                         f"must agree, got {tuple(rgb.shape)}, {tuple(depth.shape)}, {tuple(K.shape)}, "
                         f"{tuple(c2w.shape)}")
    if not point_scale > 0:
        raise ValueError(f"splat_pixels: point_scale must be positive, got {point_scale!r}")
    valid = depth > 0
    points = unproject_depth(depth, K, c2w)[valid]                             # (G, 3)
    focal = (K[:, 0, 0] * K[:, 1, 1]).sqrt()[:, None, None].expand_as(depth)   # (S, H, W)
    sigma = point_scale * depth[valid] / focal[valid]                          # (G,) metres
    G = points.shape[0]

    def one(a):  # (G, ...) -> (1, 1, G, ...)
        return a[None, None]

    return Gaussians(one(points), one(torch.tensor([1.0, 0, 0, 0]).expand(G, 4)), one(sigma[:, None].expand(G, 3)),
                     one(torch.ones(G)), one(rgb[valid]), one(torch.zeros(G, 0)))


def render_points(g: Gaussians, K, cam_to_world, height: int, width: int) -> torch.Tensor:
    """Images (V, H, W, 3) of one set of Gaussians (1, 1, G, ...) seen by V cameras K (V, 3, 3),
    cam_to_world (V, 4, 4), with model.render (black background)."""
    K, c2w = torch.as_tensor(K).float(), torch.as_tensor(cam_to_world).float()
    V = K.shape[0]
    g = Gaussians(*(a.expand(1, V, *a.shape[2:]) for a in g))                  # the same points at every camera
    return render(g, K[None], c2w[None], height, width).image[0]


def _clips(dataset, clip_frames: int | None, input_frames: int | None) -> ClipDataset:
    """The dataset's fixed clips with EVERY held-out frame of a clip as a target (and the
    clip / input counts overridden if given)."""
    if not isinstance(dataset, ClipDataset):
        raise TypeError(f"evaluate needs a ClipDataset (make_dataset(cfg, folder, split, train=False)), "
                        f"got {type(dataset).__name__}")
    if dataset.train:
        raise ValueError("evaluate needs fixed clips: build the dataset with train=False "
                         "(make_dataset(cfg, folder, split, train=False))")
    clip = dataset.clip if clip_frames is None else clip_frames
    S = dataset.S if input_frames is None else input_frames
    if not (isinstance(clip, int) and isinstance(S, int) and 1 <= S < clip):
        raise ValueError(f"evaluate: need 1 <= input_frames ({S}) < clip_frames ({clip}), so that some frame "
                         "of the clip is held out")
    shortest = min(seq["rgb"].shape[0] for seq in dataset.sequences)
    if clip > shortest:
        raise ValueError(f"evaluate: clip_frames={clip} exceeds the shortest sequence ({shortest} frames)")
    # ClipDataset(train=False) takes the held-out frames first as targets: V = clip - S is all of
    # them. A shallow copy shares the loaded sequences instead of reading the files again.
    clips = copy.copy(dataset)
    clips.clip, clips.S, clips.V = clip, S, clip - S
    return clips


@torch.no_grad()
def evaluate(model, dataset, *, clip_frames: int | None = None, input_frames: int | None = None,
             point_scale: float = 0.2, max_sequences: int | None = None, progress: bool = True) -> pd.DataFrame:
    """One row per (sequence, held-out target frame) with the columns of the module docstring.

    model: C4G or PixelGaussians (anything `model.predict` takes). dataset: a ClipDataset
    built with train=False. clip_frames / input_frames: evaluate other clips than the
    dataset's (default its own). point_scale: width of the union / floor Gaussians in pixels
    (see `splat_pixels`). max_sequences: the first that many items only.
    """
    clips = _clips(dataset, clip_frames, input_frames)
    if max_sequences is not None and not (isinstance(max_sequences, int) and max_sequences >= 1):
        raise ValueError(f"max_sequences must be None or an int >= 1, got {max_sequences!r}")
    if len(clips) == 0:
        raise ValueError("evaluate: the dataset is empty")
    n_seq = len(clips) if max_sequences is None else min(max_sequences, len(clips))
    net = unwrap(model)
    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    rows = []
    try:
        for i in tqdm(range(n_seq), desc="evaluate", disable=not progress, unit="seq"):
            item = clips[i]
            gt = item["target_rgb"]                                             # (V, H, W, 3)
            V, H, W = gt.shape[:3]
            batch = {k: v[None].to(device) for k, v in item.items()}             # a batch of one clip
            g = predict(net, batch)                                            # (1, V, G, ...) world units
            pred = render(g, batch["target_K"], batch["target_cam_to_world"], H, W).image[0].cpu()
            near = nearest_input(item["target_frames"], item["frames"])       # (V,) positions in the inputs
            union = splat_pixels(item["rgb"], item["depth"], item["K"], item["cam_to_world"],
                                 point_scale=point_scale)
            union_img = render_points(union, item["target_K"], item["target_cam_to_world"], H, W)
            floor_img, floor_count = [], []
            for v in range(V):                                                  # each target from its own pixels
                own = splat_pixels(gt[v:v + 1], item["target_depth"][v:v + 1], item["target_K"][v:v + 1],
                                   item["target_cam_to_world"][v:v + 1], point_scale=point_scale)
                floor_img.append(render_points(own, item["target_K"][v:v + 1],
                                               item["target_cam_to_world"][v:v + 1], H, W)[0])
                floor_count.append(own.count)
            cols = {}
            for name, img in (("pred", pred), ("nearest", item["rgb"][near]), ("union", union_img),
                              ("floor", torch.stack(floor_img))):
                cols[f"{name}_psnr"], cols[f"{name}_ssim"] = image_metrics(img, gt)
            near_frames = item["frames"][near]
            rows.append(pd.DataFrame({
                "sequence": i, "frame": item["target_frames"].numpy(), "time": item["target_times"].double().numpy(),
                "gap": (item["target_frames"] - near_frames).abs().numpy(), "nearest_frame": near_frames.numpy(),
                **cols, "pred_gaussians": g.count, "nearest_gaussians": 0, "union_gaussians": union.count,
                "floor_gaussians": np.asarray(floor_count)}))
    finally:
        if was_training:
            net.train()
    return pd.concat(rows, ignore_index=True)


_KEYS = ("sequence", "frame", "time", "gap", "nearest_frame")


def summarize(df: pd.DataFrame, by: str | list[str] | None = None) -> pd.DataFrame:
    """Mean of every metric column, one row per value of `by` (e.g. "gap"; None: one row
    overall); every target frame weighs the same. Adds "frames": the rows averaged."""
    return mean_by(df, by, skip=_KEYS)


# ------------------------------------------------------------------ the comparison table
TABLE_COLUMNS = {"PSNR": "psnr", "SSIM": "ssim", "Gaussians": "gaussians"}
# the reference rows, read from any evaluated frame table (they do not depend on the model)
REFERENCES = {
    "nearest input frame (copied)": "nearest",
    "union of all input frames' pixels (splatted as they are)": "union",
    "floor: the target's own RGB-D pixels splatted": "floor",
}


def _check_results(results: dict, fn: str):
    if not results:
        raise ValueError(f"{fn}: no results")
    first = next(iter(results.values()))
    for label, df in results.items():  # references are read from the first table: same frames needed
        if len(df) != len(first) or not (df[["sequence", "frame"]].to_numpy() == first[["sequence", "frame"]]
                                         .to_numpy()).all():
            raise ValueError(f"{fn}: {label!r} was evaluated on other frames than {next(iter(results))!r}")
    return first


def comparison_table(results: dict[str, pd.DataFrame], references: bool = True) -> pd.DataFrame:
    """Rows: each model of `results` ({label: evaluate(...) frame table}, all on the same
    frames), then the reference rows (REFERENCES, from the first table); columns
    TABLE_COLUMNS (means over target frames; Gaussians per target time)."""
    first = _check_results(results, "comparison_table")
    rows = {label: {name: df[f"pred_{col}"].mean() for name, col in TABLE_COLUMNS.items()}
            for label, df in results.items()}
    if references:
        for label, prefix in REFERENCES.items():
            rows[label] = {name: first[f"{prefix}_{col}"].mean() for name, col in TABLE_COLUMNS.items()}
    return pd.DataFrame.from_dict(rows, orient="index")[list(TABLE_COLUMNS)]


def gap_table(results: dict[str, pd.DataFrame], metric: str = "psnr", references: bool = True) -> pd.DataFrame:
    """Mean `metric` ("psnr" or "ssim") per temporal gap (columns: frames to the nearest
    input), one row per model and reference as in `comparison_table`."""
    if metric not in ("psnr", "ssim"):
        raise ValueError(f"gap_table: metric must be 'psnr' or 'ssim', got {metric!r}")
    first = _check_results(results, "gap_table")
    rows = {label: df.groupby("gap")[f"pred_{metric}"].mean() for label, df in results.items()}
    if references:
        rows |= {label: first.groupby("gap")[f"{prefix}_{metric}"].mean() for label, prefix in REFERENCES.items()}
    out = pd.DataFrame(rows).T
    out.columns.name = "gap (frames)"
    return out


# ======================================================================================
# Point tracking through C4G's Gaussians and its lifted 4D feature field
# ======================================================================================
# A query is a pixel (u, v) of an INPUT frame t0 of a clip; a method predicts where the
# surface point seen there is in frame t (any frame of the clip: inputs and held-out frames,
# each with its own camera). Ground truth: fourdlib.data.tracks.point_tracks (the GT mesh
# carried to frame t, projected, visible by a depth test against frame t's GT depth).
# Positions are continuous pixel coordinates; the query pixel's centre is (u + 0.5, v + 0.5).
#
#   gaussians  the query's 3D point x (the input depth at the pixel, back-projected: t0 is an
#              input frame, so its depth is model input) is carried by the Gaussians that
#              make its colour: x_t = x + sum_n w_n (mu_n(t) - mu_n(t0)) / sum_n w_n, with
#              w_n the compositing weights of the query pixel in camera t0 at time t0
#              (`compositing_weights`), then projected into camera t. Anchoring on x rather
#              than taking sum_n w_n mu_n(t) itself: Gaussians are extended, their weighted
#              centre lies off the surface (behind it, beside a silhouette), and that bias
#              would be an error even for a perfect motion; with the anchor t = t0 gives the
#              query pixel exactly and only the Gaussians' MOTION is measured. Works for the
#              per-pixel baseline too (each of its Gaussians also moves with t).
#   features   the 4D feature field: the encoder's output tokens (B, S, P, D) lifted into the
#              Gaussians by the last decoder layer's cross-attention (model.lift_features),
#              splatted at time t into camera t (normalised by alpha, pixels with alpha >=
#              0.5 only). The query's descriptor is the same field rendered at (t0, camera t0)
#              at the query pixel; the prediction is the pixel of frame t with the highest
#              cosine similarity (integer pixel centres). The descriptor comes from the field,
#              not from frame t0's own token (bilinear on the patch grid): a single token and
#              an attention-weighted mix of tokens are not comparable (tried on 8 held-out tiny
#              scenes with a briefly trained model: delta_avg 0.00 with the frame's token,
#              0.49 / 0.26 on static / moving points with the field's). Why the encoder tokens: no
#              pretrained 2D backbone (DINO etc.) can be downloaded here, and they are the
#              model's own per-frame, per-patch features, the very keys the attention weights
#              index; colour would give 3 channels that the "colour" reference already uses.
#              C4G only (the per-pixel baseline has no queries).
#   static     reference: x reprojected into camera t, nothing moves (camera motion is known:
#              an input of the model). On static surfaces this is exact.
#   colour     reference: nearest colour, the pixel of frame t whose RGB is closest (squared
#              distance) to the query pixel's RGB in frame t0; ties go to the pixel nearest the
#              query pixel. It sees frame t's image, which the model does not for held-out t.
#   zero       reference: zero motion, the query pixel itself.
# `window` (half-size in pixels, None = the whole image) restricts the two matching methods
# (features, colour) to pixels within window px of the query pixel in u and in v.
#
# Metrics (tracking_summary): end-point error in pixels (median, mean) and the fraction of
# points within 1, 2, 4, 8 px and their mean delta_avg (TAP-Vid's <delta^x_avg; TAP-Vid
# measures at 256 x 256 with thresholds 1 ... 16, we at the data's own size, e.g. 64 x 64,
# which is stricter relative to the image), over (query, frame t != t0) pairs where the
# point is visible in frame t (it is visible at t0 by construction). Predictions are clipped
# to the image rectangle before the error is taken: a visible GT point is inside it, so this
# only shortens errors, and a point carried behind the camera (whose projection means
# nothing) costs at most the image diagonal instead of an unbounded mean. Points on moving
# objects and on the static scene are reported apart: the queries are drawn per input frame,
# up to `points_per_frame` from each group (moving objects cover ~1-5 % of a frame's pixels).

TRACK_METHODS = {
    "gaussians": "C4G's Gaussians: the query point carried by the motion of the Gaussians compositing it",
    "features": "lifted 4D feature field (encoder tokens): best cosine match of the query's descriptor",
    "static": "reference: back-project and reproject, nothing moves (camera motion only)",
    "colour": "reference: nearest colour in frame t",
    "zero": "reference: zero motion (the query pixel)",
}
DELTAS = (1, 2, 4, 8)  # px thresholds of the delta_avg accuracy


def compositing_weights(g: Gaussians, K, cam_to_world, height: int, width: int, pixels, chunk: int = 256):
    """Weights (Q, G) of each Gaussian in the colour of each query pixel: a pixel's image is
    sum_n w_n c_n + (1 - alpha) background, w_n = alpha_n T_n, sum_n w_n = alpha.

    g: one set of Gaussians (1, 1, G, ...) in world units; K (3, 3), cam_to_world (4, 4);
    pixels (Q, 2) long (u, v) = (column, row). Rendered with one-hot colours (the identity,
    `chunk` channels per pass), so the weights are the renderer's own (culling, early stop).
    """
    if g.means.dim() != 4 or g.means.shape[:2] != (1, 1):
        raise ValueError(f"compositing_weights: one set of Gaussians (1, 1, G, ...) expected, got means "
                         f"{tuple(g.means.shape)}")
    pixels = torch.as_tensor(pixels).long()
    _check_pixels(pixels, height, width)
    G, like = g.count, g.means
    K, c2w = torch.as_tensor(K).to(like)[None, None], torch.as_tensor(cam_to_world).to(like)[None, None]
    out = []
    for c0 in range(0, G, chunk):
        n = min(chunk, G - c0)
        onehot = torch.zeros(G, n, dtype=like.dtype, device=like.device)
        onehot[c0:c0 + n] = torch.eye(n, dtype=like.dtype, device=like.device)  # Gaussian c0 + j -> channel j
        img = render(g._replace(colors=onehot[None, None], features=onehot[None, None, :, :0]), K, c2w,
                     height, width).image[0, 0]                              # (H, W, n)
        out.append(img[pixels[:, 1].to(img.device), pixels[:, 0].to(img.device)])
    return torch.cat(out, 1)                                                 # (Q, G)


def carry_points(points, weights, means_from, means_to, min_alpha: float = 1e-3):
    """Carry 3D points by the motion of the Gaussians that composite them:

        x_t = x + sum_n w_n (mu_n(t) - mu_n(t0)) / sum_n w_n

    points (Q, 3) at the query time; weights (Q, G) (`compositing_weights`); means_from (G, 3)
    the Gaussians' centres at the query time, means_to (F, G, 3) at F other times.
    Returns (F, Q, 3). A pixel no Gaussian covers (alpha < min_alpha) keeps its point.
    """
    alpha = weights.sum(1, keepdim=True)                                      # (Q, 1)
    w = torch.where(alpha >= min_alpha, weights / alpha.clamp_min(min_alpha), torch.zeros_like(weights))
    return points[None] + torch.einsum("qg,fgd->fqd", w, means_to - means_from[None])


def _check_pixels(pixels: torch.Tensor, height: int, width: int) -> None:
    if pixels.dim() != 2 or pixels.shape[1] != 2:
        raise ValueError(f"query pixels must be (Q, 2) integer (u, v), got shape {tuple(pixels.shape)}")
    bad = (pixels[:, 0] < 0) | (pixels[:, 0] >= width) | (pixels[:, 1] < 0) | (pixels[:, 1] >= height)
    if bool(bad.any()):
        raise ValueError(f"query pixel {pixels[bad][0].tolist()} (u, v) is outside the {width} x {height} image")


def _best_pixel(cost: torch.Tensor, centre: torch.Tensor, window: int | None) -> torch.Tensor:
    """Per query the pixel centre (u, v) of least cost (Q, H, W); ties (within 1e-7) go to the
    pixel nearest `centre` (Q, 2); only pixels within `window` px (in u and v) of it if set."""
    Q, H, W = cost.shape
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float64) + 0.5, torch.arange(W, dtype=torch.float64) + 0.5,
                          indexing="ij")
    grid = torch.stack([u, v], -1).to(cost.device)                           # (H, W, 2) pixel centres
    off = grid[None] - centre.to(grid)[:, None, None]                        # (Q, H, W, 2)
    cost = cost.double()
    if window is not None:
        cost = torch.where(off.abs().amax(-1) <= window, cost, torch.full_like(cost, float("inf")))
    tie = cost <= cost.flatten(1).amin(1)[:, None, None] + 1e-7
    key = torch.where(tie, (off ** 2).sum(-1), torch.full_like(cost, float("inf")))
    return grid.reshape(-1, 2)[key.flatten(1).argmin(1)].float()            # (Q, 2)


def nearest_colour(query_rgb, image, centre, window: int | None = None) -> torch.Tensor:
    """The nearest-colour reference: query_rgb (Q, 3), image (H, W, 3), centre (Q, 2) the query
    pixels' centres -> (Q, 2) the centre of the pixel of least squared RGB distance."""
    cost = ((image[None] - query_rgb[:, None, None]) ** 2).sum(-1)           # (Q, H, W)
    return _best_pixel(cost, centre, window)


def match_features(descriptors, field, valid, centre, window: int | None = None) -> torch.Tensor:
    """Best cosine match of descriptors (Q, C) in a feature image field (H, W, C), over the
    pixels where valid (H, W) (anywhere if none is): (Q, 2) pixel centres."""
    d = F.normalize(descriptors.float(), dim=-1)
    f = F.normalize(field.float(), dim=-1)
    cost = 1 - torch.einsum("qc,hwc->qhw", d, f)                             # in [0, 2]
    if bool(valid.any()):
        cost = torch.where(valid[None], cost, torch.full_like(cost, 3.0))     # worse than any valid pixel
    return _best_pixel(cost, centre, window)


def _check_frames(frames, T: int, what: str) -> torch.Tensor:
    frames = torch.as_tensor(frames)
    if frames.dim() != 1 or frames.is_floating_point() or bool(((frames < 0) | (frames >= T)).any()):
        raise ValueError(f"{what} must be a 1-D tensor of frame indices in 0 ... {T - 1}, got {frames.tolist()}")
    return frames.long()


@torch.no_grad()
def track_points(model, views: dict, inputs, query_frame: int, pixels, frames, *, methods=None,
                 window: int | None = None) -> dict[str, torch.Tensor]:
    """Predicted positions of query pixels of one input frame in other frames, per method.

    model: C4G (every method) or PixelGaussians (all but "features").
    views: one sequence's frames as ClipDataset keeps them (dataset.sequences[i]): rgb
      (T, H, W, 3), depth (T, H, W), K (T, 3, 3), cam_to_world (T, 4, 4), times (T,).
    inputs (S,): the frames the model reads; query_frame: one of them.
    pixels (Q, 2) long (u, v) of the query frame, each with depth > 0.
    frames (F,): frames to predict the queries in (the query frame itself may be one).
    methods: keys of TRACK_METHODS (default: all the model supports); window: see above.
    Returns {method: (F, Q, 2) continuous pixel coordinates}.
    """
    net = unwrap(model)
    T, H, W = views["depth"].shape
    inputs = _check_frames(inputs, T, "inputs")
    frames = _check_frames(frames, T, "frames")
    if not (isinstance(query_frame, (int, np.integer)) and 0 <= query_frame < T):
        raise ValueError(f"query_frame {query_frame!r} is not a frame of the sequence (0 ... {T - 1})")
    if int(query_frame) not in inputs.tolist():
        raise ValueError(f"query_frame {query_frame} is not one of the model's input frames {inputs.tolist()}: "
                         "the query's 3D point comes from an input frame's depth")
    pixels = torch.as_tensor(pixels)
    if pixels.is_floating_point():
        raise ValueError(f"query pixels must be integer (u, v), got {pixels.dtype}")
    pixels = pixels.long()
    _check_pixels(pixels, H, W)
    t0 = int(query_frame)
    depth0 = views["depth"][t0][pixels[:, 1], pixels[:, 0]]                   # (Q,)
    if bool((depth0 <= 0).any()):
        raise ValueError(f"query pixel {pixels[depth0 <= 0][0].tolist()} of frame {t0} has no depth: no 3D point "
                         "to track")
    supported = [m for m in TRACK_METHODS if m != "features" or isinstance(net, C4G)]
    methods = supported if methods is None else list(methods)
    for m in methods:
        if m not in TRACK_METHODS:
            raise ValueError(f"unknown tracking method {m!r}; choose from {list(TRACK_METHODS)}")
        if m not in supported:
            raise ValueError(f"tracking method {m!r} needs a C4G (query Gaussians), got {type(net).__name__}")
    if window is not None and not (isinstance(window, int) and window >= 0):
        raise ValueError(f"window must be None or an int >= 0 (pixels), got {window!r}")

    K, c2w, rgb = views["K"].float(), views["cam_to_world"].float(), views["rgb"].float()
    centre = pixels.float() + 0.5                                             # (Q, 2) query pixel centres
    x0 = unproject_depth(views["depth"][t0], K[t0], c2w[t0])[pixels[:, 1], pixels[:, 0]]  # (Q, 3) world
    out = {}
    if "zero" in methods:
        out["zero"] = centre[None].expand(len(frames), -1, -1).clone()
    if "static" in methods:
        out["static"] = project(x0[None].expand(len(frames), -1, -1), K[frames], c2w[frames])[0]
    if "colour" in methods:
        q_rgb = rgb[t0][pixels[:, 1], pixels[:, 0]]                           # (Q, 3)
        out["colour"] = torch.stack([nearest_colour(q_rgb, rgb[f], centre, window) for f in frames.tolist()])
    if not {"gaussians", "features"} & set(methods):
        return {m: out[m] for m in methods}

    device = next(net.parameters()).device
    times = torch.cat([views["times"][t0:t0 + 1], views["times"][frames]])   # (1 + F,): the query time first
    batch = {"rgb": rgb[inputs], "depth": views["depth"][inputs], "K": K[inputs], "cam_to_world": c2w[inputs],
             "times": views["times"][inputs], "target_times": times}
    batch = {k: v[None].to(device) for k, v in batch.items()}
    was_training = net.training
    net.eval()
    try:
        inp = model_inputs(batch)
        if isinstance(net, C4G):
            tokens = net.encoder(inp["x"], inp["times"])                      # (1, S, P, D)
            g, A = net.decode(tokens, inp["target_times"], return_attention=True)
        else:
            g = net(inp["x"], inp["times"], inp["target_times"])
        g = g.to_world(inp["center"], inp["scale"])                           # (1, 1 + F, G, ...) metres
    finally:
        if was_training:
            net.train()
    if "gaussians" in methods:
        g0 = Gaussians(*(a[:, :1] for a in g))                                # the Gaussians at t0
        w = compositing_weights(g0, K[t0], c2w[t0], H, W, pixels).cpu()       # (Q, G)
        means = g.means[0].cpu()                                              # (1 + F, G, 3)
        x_t = carry_points(x0, w, means[0], means[1:])                        # (F, Q, 3)
        out["gaussians"] = project(x_t, K[frames], c2w[frames])[0]
    if "features" in methods:
        p = net.cfg.patch_size
        feats = rearrange(tokens, "b s (h w) d -> b s h w d", h=H // p)       # the encoder's tokens as 2D maps
        f = lift_features(A, feats, (H // p, W // p))                         # (1, N, D)
        field_g = g._replace(colors=f[:, None].expand(-1, g.means.shape[1], -1, -1), features=f[:, None, :, :0]
                             .expand(-1, g.means.shape[1], -1, -1))
        cams = torch.cat([torch.tensor([t0]), frames])
        r = render(field_g, K[cams][None].to(device), c2w[cams][None].to(device), H, W)
        field = (r.image[0] / r.alpha[0, ..., None].clamp_min(1e-6)).cpu()   # (1 + F, H, W, D)
        valid = (r.alpha[0] >= 0.5).cpu()
        desc = field[0][pixels[:, 1], pixels[:, 0]]                           # (Q, D) the query's descriptors
        out["features"] = torch.stack([match_features(desc, field[1 + i], valid[1 + i], centre, window)
                                       for i in range(len(frames))])
    return {m: out[m] for m in methods}


@torch.no_grad()
def tracking_errors(model, dataset, *, points_per_frame: int = 32, methods=None, window: int | None = None,
                    clip_frames: int | None = None, input_frames: int | None = None,
                    max_sequences: int | None = None, depth_tol: float = 0.02, seed: int = 0,
                    progress: bool = True) -> pd.DataFrame:
    """One row per (sequence, query, frame t) where the query's point is visible in frame t != t0.

    dataset: a ClipDataset built with train=False (as for `evaluate`) whose sequences have GT
    meshes (the synthetic generator's do). Each sequence's first clip: every input frame is a
    query frame, with up to `points_per_frame` random pixels on moving objects (object_dynamic)
    and as many on the rest (pixels with depth; numpy RNG seeded by (seed, sequence, frame));
    every other frame of the clip is a target. clip_frames / input_frames: as in `evaluate`.
    Columns: sequence, query_frame, frame, gap (|t - t0| in frames), u, v (query pixel), moving
    (the query is on a moving object), gt_u, gt_v, and X_err (end-point error in pixels) for
    each method X (see TRACK_METHODS).
    """
    clips = _clips(dataset, clip_frames, input_frames)
    if not (isinstance(points_per_frame, int) and points_per_frame >= 1):
        raise ValueError(f"points_per_frame must be an int >= 1, got {points_per_frame!r}")
    if max_sequences is not None and not (isinstance(max_sequences, int) and max_sequences >= 1):
        raise ValueError(f"max_sequences must be None or an int >= 1, got {max_sequences!r}")
    n_seq = len(clips) if max_sequences is None else min(max_sequences, len(clips))
    rows = []
    for i in tqdm(range(n_seq), desc="tracking", disable=not progress, unit="seq"):
        seq = clips.sequence(i)
        inputs, _ = clips.frames(i)
        clip = torch.arange(int(inputs[0]), int(inputs[0]) + clips.clip)     # the clip's frames (train=False: fixed)
        moving_objects = (np.zeros(0, bool) if seq.object_dynamic is None else seq.object_dynamic)
        for t0 in inputs.tolist():
            every = point_tracks(seq, t0, frames=np.array([t0]))              # every pixel that sees a surface
            moving = np.isin(every.instance, np.nonzero(moving_objects)[0])
            rng = np.random.default_rng([seed, i, t0])
            pick = np.concatenate([rng.permutation(np.nonzero(group)[0])[:points_per_frame]
                                   for group in (moving, ~moving)])
            pixels = every.pixels[pick]
            targets = clip[clip != t0]
            gt = point_tracks(seq, t0, pixels, targets.numpy(), depth_tol=depth_tol)
            pred = track_points(model, clips.sequences[i], inputs, t0, torch.from_numpy(pixels), targets,
                                methods=methods, window=window)
            f_idx, q_idx = np.nonzero(gt.visible)                             # visible (frame, query) pairs
            H, W = clips.sequences[i]["depth"].shape[1:]
            size = np.array([W, H], np.float64)                               # (u, v) bounds of the image
            cols = {f"{m}_err": np.linalg.norm(np.clip(uv.double().numpy()[f_idx, q_idx], 0, size)
                                               - gt.uv[f_idx, q_idx], axis=-1)
                    for m, uv in pred.items()}
            rows.append(pd.DataFrame({
                "sequence": i, "query_frame": t0, "frame": gt.frames[f_idx], "gap": np.abs(gt.frames[f_idx] - t0),
                "u": pixels[q_idx, 0], "v": pixels[q_idx, 1], "moving": moving[pick][q_idx],
                "gt_u": gt.uv[f_idx, q_idx, 0], "gt_v": gt.uv[f_idx, q_idx, 1], **cols}))
    return pd.concat(rows, ignore_index=True)


def tracking_summary(errors: pd.DataFrame, by: str | None = None) -> pd.DataFrame:
    """Per (points, method) [, by]: median and mean end-point error (px), the fraction within each
    of DELTAS px, their mean delta_avg, and the number of (query, frame) pairs. points: "moving
    objects" / "static scene" (the query's object; see `tracking_errors`). by: e.g. "gap"."""
    methods = [c[:-4] for c in errors.columns if c.endswith("_err")]
    if not methods:
        raise ValueError("tracking_summary: no X_err columns (give it tracking_errors' table)")
    if by is not None and by not in errors.columns:
        raise ValueError(f"tracking_summary: no column {by!r} to group by; columns are {list(errors.columns)}")
    out = []
    for points, part in (("moving objects", errors[errors["moving"]]), ("static scene", errors[~errors["moving"]])):
        groups = [(None, part)] if by is None else list(part.groupby(by))
        for key, grp in groups:
            for m in methods:
                e = grp[f"{m}_err"].to_numpy()
                within = {f"<{d} px": float((e < d).mean()) if len(e) else np.nan for d in DELTAS}
                row = {"points": points, "method": m, **({} if by is None else {by: key}),
                       "EPE median (px)": float(np.median(e)) if len(e) else np.nan,
                       "EPE mean (px)": float(e.mean()) if len(e) else np.nan, **within,
                       "delta_avg": float(np.mean(list(within.values()))), "pairs": len(e)}
                out.append(row)
    index = ["points", "method"] + ([] if by is None else [by])
    return pd.DataFrame(out).set_index(index)


def tracking_table(model, dataset, *, by: str | None = None, **kwargs) -> pd.DataFrame:
    """`tracking_summary` of `tracking_errors(model, dataset, **kwargs)`: per-method tracking
    metrics on moving objects and on the static scene, the references beside the model."""
    return tracking_summary(tracking_errors(model, dataset, **kwargs), by=by)
