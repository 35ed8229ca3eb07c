"""COM4D's evaluation: the paper's metrics on generated scenes, beside the baselines and a floor.

Metrics (every one in the NORMALISED scene frame of data.py, a cube of half-side ~1, as
PartCrafter's [-1, 1]^3 meshes; see fourdlib.metrics for the conventions)
    CD            Chamfer distance, COM4D / PartCrafter convention: mean d(GT -> pred) + mean
                  d(pred -> GT), Euclidean (chamfer_distance(kind="l1", reduction="sum")),
                  per object and frame ("CD") and on the union of a frame's objects ("scene CD")
    F-score@0.1   strict "<" at tau = 0.1
    IoU           volumetric IoU of solid voxels (pred occupancy > 0.5 against the GT grid of
                  data.prepare_sequence, same cells), per object and frame
    penetration IoU   inter-object overlap: for each frame and each pair of objects, the IoU of
                  their predicted solids, averaged over pairs (LOWER is better; the GT is ~0)
Predicted surfaces are the shell cells of the decoded occupancy grid (model.occupancy_to_points:
the same with or without scikit-image); GT surfaces are the generator's surface samples.

Methods compared on a sequence (`evaluate_sequence`)
    mix             COM4D's attention mixing (model.sample_latents)
    stitched        per-object generation stitched without mixing (mix=False)
    frame_by_frame  every frame its own 3D snapshot (no temporal blocks, no history)
    vae_floor       the VAE's reconstruction of the GT latents: what the generator could at best reach
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ...data.dataset import read_manifest
from ...data.sequence import Sequence4D
from ...metrics import chamfer_distance, f_score, volume_iou
from ...train.distributed import unwrap
from .data import prepare_sequence, scene_inputs
from .model import decode_occupancy, occupancy_to_points, sample_latents

__all__ = ["METHODS", "scene_metrics", "penetration_iou", "evaluate_sequence", "evaluate_split", "summarize"]

METHODS = ("mix", "stitched", "frame_by_frame", "vae_floor")
TAU = 0.1


def penetration_iou(solid: torch.Tensor) -> float:
    """Mean IoU over pairs of objects of their solids: solid (O, R, R, R) bool -> float (nan
    with fewer than two non-empty objects). Lower is better."""
    keep = [s for s in solid if bool(s.any())]
    vals = [float(volume_iou(a, b)) for i, a in enumerate(keep) for b in keep[i + 1:]]
    return float(np.mean(vals)) if vals else math.nan


def _cloud_metrics(pred: torch.Tensor, gt: torch.Tensor) -> tuple[float, float]:
    if len(pred) == 0:                                       # an empty prediction has no Chamfer distance
        return math.nan, 0.0
    return (float(chamfer_distance(pred, gt, kind="l1", reduction="sum")), float(f_score(pred, gt, TAU)))


def scene_metrics(probs: torch.Tensor, gt_surface: torch.Tensor, gt_occ: torch.Tensor) -> dict:
    """Metrics of one scene. probs (O, F, R, R, R) predicted occupancy, gt_surface (O, F, N, 3),
    gt_occ (O, F, R, R, R) bool. Returns means (nan-aware) and "cd_per_frame" (F,) scene CD per
    frame (the drift curve), "empty" the share of object-frames predicted empty."""
    O, F_ = probs.shape[:2]
    solid = probs > 0.5
    cd, fs, iou, empty = [], [], [], 0
    scene_cd, scene_f, pen = [], [], []
    for f in range(F_):
        preds = []
        for o in range(O):
            p = occupancy_to_points(solid[o, f])
            preds.append(p)
            empty += len(p) == 0
            c, s = _cloud_metrics(p, gt_surface[o, f])
            cd.append(c)
            fs.append(s)
            if bool(solid[o, f].any() | gt_occ[o, f].any()):
                iou.append(float(volume_iou(solid[o, f], gt_occ[o, f].bool())))
        c, s = _cloud_metrics(torch.cat(preds), gt_surface[:, f].reshape(-1, 3))
        scene_cd.append(c)
        scene_f.append(s)
        pen.append(penetration_iou(solid[:, f]))
    nanmean = lambda v: float(np.nanmean(v)) if np.isfinite(v).any() else math.nan  # noqa: E731
    return {"CD": nanmean(cd), "F-score@0.1": float(np.mean(fs)), "IoU": nanmean(iou) if iou else math.nan,
            "scene CD": nanmean(scene_cd), "scene F-score@0.1": float(np.mean(scene_f)),
            "penetration IoU": nanmean(pen), "empty": empty / (O * F_), "cd_per_frame": np.asarray(scene_cd)}


@torch.no_grad()
def evaluate_sequence(model, prepared: dict, methods=METHODS, *, frames=None, seed: int = 0) -> dict:
    """{method: scene_metrics(...)} for one prepared sequence (data.prepare_sequence).

    frames: which frames (default all). Objects that no chosen frame shows (empty masks) are
    left out of generation and metrics alike, counted in "unseen objects". Sampling is seeded
    by `seed` (one generator per method)."""
    net = unwrap(model).eval()
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; choose from {METHODS}")
    inp = scene_inputs(prepared, frames)
    seen = inp["masks"][0].flatten(1).sum(1) > 0                            # (O,): objects the frames show
    if not bool(seen.any()):
        raise ValueError("no object of this sequence is seen in the chosen frames")
    for key in ("masks", "dynamic", "obj_valid", "surface", "occ"):          # the model cannot place the others
        inp[key] = inp[key][:, seen]
    gt_surface, gt_occ = inp["surface"][0], inp["occ"][0]
    R = gt_occ.shape[-1]
    out = {}
    for name in methods:
        if name == "vae_floor":
            z, _ = net.vae.encode(inp["surface"])                            # (1, O, F, K, C)
        else:
            gen = torch.Generator().manual_seed(seed)
            z = sample_latents(net, inp["image"], inp["masks"], inp["dynamic"], inp["obj_valid"],
                               mix=name != "stitched", frame_by_frame=name == "frame_by_frame", generator=gen)
        out[name] = {**scene_metrics(decode_occupancy(net, z[0], R), gt_surface, gt_occ),
                     "unseen objects": int((~seen).sum())}
    return out


def evaluate_split(model, folder, split: str = "eval_mixed", methods=METHODS, *, max_sequences: int | None = None,
                   seed: int = 0, progress: bool = False) -> pd.DataFrame:
    """One row per (sequence, method) of a data split: the means of scene_metrics, the number
    of objects and frames; "cd_per_frame" stays a list (plot it for drift)."""
    cfg = unwrap(model).cfg
    entries = [e for e in read_manifest(folder)["sequences"] if e["split"] == split][:max_sequences]
    if not entries:
        raise ValueError(f"{folder}: no sequences in split {split!r}")
    rows = []
    for i, e in enumerate(entries):
        p = prepare_sequence(Sequence4D.load(Path(folder) / e["file"]), cfg, seed + i)
        res = evaluate_sequence(model, p, methods, seed=seed + i)
        for name, m in res.items():
            rows.append({"sequence": e["file"], "method": name, "objects": len(p["names"]),
                         "dynamic": int(p["dynamic"].sum()), "frames": p["rgb"].shape[0],
                         **{k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in m.items()}})
        if progress:
            print(f"{i + 1}/{len(entries)} {e['file']}")
    return pd.DataFrame(rows)


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Mean of every metric per method (rows in METHODS order), from evaluate_split's table."""
    cols = ["CD", "F-score@0.1", "IoU", "scene CD", "scene F-score@0.1", "penetration IoU", "empty", "unseen objects"]
    out = table.groupby("method")[cols].mean()
    return out.reindex([m for m in METHODS if m in out.index])
