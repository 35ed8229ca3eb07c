"""Evaluate C4G (or the per-pixel baseline) by novel-view synthesis on held-out frames, with
trivial references and a floor computed on the same frames.

    data = make_dataset(cfg, course_data("scenes", "tiny"), "test", train=False)
    df = evaluate(model, data)               # one row per (sequence, held-out target frame)
    comparison_table({"C4G": df, "per-pixel": evaluate(pixel_model, data)})

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
from tqdm.auto import tqdm

from ...geometry.cameras import unproject_depth
from ...metrics import psnr, ssim
from ...repro.frames import mean_by
from ...train.distributed import unwrap
from .model import ClipDataset, Gaussians, predict, render

__all__ = ["REFERENCES", "TABLE_COLUMNS", "image_metrics", "nearest_input", "splat_pixels", "render_points",
           "evaluate", "summarize", "comparison_table", "gap_table"]


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
