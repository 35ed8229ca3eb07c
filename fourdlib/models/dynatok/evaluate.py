"""Evaluate DynaTok per frame and per region of visibility, with the input and a union of
the inputs as references.

    df = evaluate(model, make_dataset(cfg, "data/prims", "test", train=False),
                  num_points=2048, steps=16, context="all")
    summarize(df)                # mean of every metric (one row per context)

One row per (sequence, frame) of each evaluated window. Distances in world units (metres).

Regions (from the GT visibility record of the evaluated window, visible: (S, Ns) bool)
-------------------------------------------------------------------------------------
    visible                 visible[s]                      seen by frame s's camera
    hidden_seen_elsewhere   ~visible[s] & visible.any(0)    hidden now, seen in another frame
    never_seen              ~visible.any(0)                 no frame of the window saw it
They partition the GT samples of every frame. "hidden_seen_elsewhere" is where a temporal
model can beat a per-frame one: the other frames hold the geometry. A region with no GT
point in a frame gives NaN for that frame (and `summarize` skips NaNs).

Columns (X = pred, input or union; R = one of the regions above)
-----------------------------------------------------------------
    X_acc, X_acc_R     accuracy: mean over X's points of the distance to the nearest GT
                       point (pred -> GT); _R averages over the points whose nearest GT
                       point lies in R (so "acc_visible" is how sharp the visible part is)
    X_comp, X_comp_R   completeness: mean over GT points (of R) of the distance to the
                       nearest point of X (GT -> pred)
    pred_nc            normal consistency (OccNet): predicted points get PCA normals
                       (`estimate_normals(k=normals_k)`, NOT oriented): the metric averages
                       |cos|, so the sign of either normal does not matter.
    n_gt_R             GT points in region R in this frame
with X:
    pred    the model's completion of frame s (num_points samples)
    input   the partial cloud of frame s that the model was given (N points): the
            reference for "sharp enough": pred_acc_visible next to input_acc_visible.
            Its completeness is low only on the visible region, and is limited by its
            N points (a denser prediction can beat it there by density alone).
    union   the union of the partial clouds of ALL frames of the window, taken as they are
            (world coordinates of each frame), compared with the GT of frame s. The issue's
            prototype used it as the "just stack the frames" reference. For moving or
            deforming shapes the union is misaligned (it holds the shape where it WAS), so
            it is an upper-bound-ish reference for completeness that is only meaningful for
            slowly moving shapes; its accuracy shows how misaligned it is.

context
-------
"all"      the model sees the window as it is: frame s is completed from all S frames.
"current"  the context ablation: for frame s the window holds frame s's partial cloud in
           EVERY slot (S copies, frame s at its own slot, whose output is decoded), so the
           model cannot draw on the other frames. The median centre / scale still come
           from the whole real window (norm="window", the default), so a per-frame model
           gives the same result in both contexts; norm="fed" normalises the copies
           themselves, as `reconstruct` would, which also moves a per-frame model's result
           (a confound: on a 600-step tiny run it doubled pred_comp for temporal=False).
           Compare pred_comp_hidden_seen_elsewhere between "all" and "current": if the
           temporal model uses the other frames, "all" is clearly lower. (The regions
           are still those of the whole window, so the two contexts score the same points.)

Determinism: the ODE noise comes from torch.Generator seeded with seed + sequence index.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ...geometry.normals import estimate_normals
from ...metrics import nearest_neighbors, normal_consistency
from ...train.distributed import unwrap
from .model import normalize_batch, reconstruct

__all__ = ["REGIONS", "CONTEXTS", "region_masks", "predict_frames", "evaluate", "summarize"]

REGIONS = ("visible", "hidden_seen_elsewhere", "never_seen")
CONTEXTS = ("all", "current")


def region_masks(visible: torch.Tensor) -> dict[str, torch.Tensor]:
    """visible (S, Ns) bool -> {region: (S, Ns) bool}, the three regions of the module doc."""
    visible = torch.as_tensor(visible)
    if visible.dtype != torch.bool or visible.dim() != 2:
        raise ValueError(f"visible must be an (S, Ns) bool tensor, got {visible.dtype} of shape {tuple(visible.shape)}")
    seen = visible.any(0, keepdim=True)                                        # (1, Ns)
    return {"visible": visible, "hidden_seen_elsewhere": ~visible & seen, "never_seen": (~seen).expand_as(visible)}


@torch.no_grad()
def predict_frames(model, windows: torch.Tensor, slots: torch.Tensor, *, num_points: int | None = None,
                   steps: int | None = None, method: str | None = None,
                   generator: torch.Generator | None = None, norm_from: torch.Tensor | None = None) -> torch.Tensor:
    """Complete only some frames of each window, in WORLD units.

    windows (B, S, N, 3) partial clouds; slots (B, K) long: which frames of window b to
    decode. Returns (B, K, num_points, 3). Same steps as `dynatok.reconstruct` (normalise,
    encode the whole window, decode, map back) but decodes only the K chosen latents: the
    "current" context encodes S windows and needs one frame of each, and decoding is the
    costly part. With slots = arange(S) it equals `reconstruct` for the same generator.
    norm_from (B, S', N', 3): take the median centre / scale from these clouds instead of
    from `windows` (the "current" context normalises with the real window's numbers).
    """
    windows = torch.as_tensor(windows)
    if windows.dim() != 4 or windows.shape[-1] != 3:
        raise ValueError(f"windows must be (B, S, N, 3), got shape {tuple(windows.shape)}")
    net = unwrap(model)
    device = next(net.parameters()).device
    windows = windows.to(device).float()
    center = scale = None
    if norm_from is not None:
        norm_from = torch.as_tensor(norm_from).to(device).float()
        if norm_from.dim() != 4 or norm_from.shape[0] != windows.shape[0] or norm_from.shape[-1] != 3:
            raise ValueError(f"norm_from must be (B={windows.shape[0]}, S', N', 3), got shape {tuple(norm_from.shape)}")
        _, center, scale = normalize_batch(norm_from, ref_frame=net.cfg.ref_frame)
    return reconstruct(net, windows, num_points, steps, method, generator=generator,
                       slots=torch.as_tensor(slots).to(device), center=center, scale=scale)


# ---------------------------------------------------------------- per-region reductions
def _region_means(d: torch.Tensor, masks: dict[str, torch.Tensor], prefix: str) -> dict[str, np.ndarray]:
    """d (S, P) distances, masks {R: (S, P)} -> {prefix_R: (S,) mean of d over the mask, NaN if empty}."""
    d = d.double()
    out = {}
    for name, m in masks.items():
        count = m.sum(1)
        total = (d * m).sum(1)
        out[f"{prefix}_{name}"] = torch.where(count > 0, total / count.clamp_min(1), torch.nan).numpy()
    return out


def _cloud_metrics(cloud: torch.Tensor, gt: torch.Tensor, regions: dict[str, torch.Tensor], prefix: str) -> dict:
    """cloud (S, P, 3), gt (S, Ns, 3): accuracy and completeness, overall and per GT region."""
    d_pg, i_pg = nearest_neighbors(cloud, gt)                                  # (S, P) pred -> GT
    d_gp, _ = nearest_neighbors(gt, cloud)                                     # (S, Ns) GT -> pred
    # a predicted point belongs to the region of its nearest GT point
    pred_regions = {k: torch.gather(m, 1, i_pg) for k, m in regions.items()}   # (S, P) each
    out = {f"{prefix}_acc": d_pg.double().mean(1).numpy(), f"{prefix}_comp": d_gp.double().mean(1).numpy()}
    out |= {k.replace(f"{prefix}_", f"{prefix}_acc_", 1): v
            for k, v in _region_means(d_pg, pred_regions, prefix).items()}
    out |= {k.replace(f"{prefix}_", f"{prefix}_comp_", 1): v
            for k, v in _region_means(d_gp, regions, prefix).items()}
    return out


def _check_item(item: dict, i: int):
    for key in ("partial", "surface", "surface_normals", "visible"):
        if key not in item:
            raise ValueError(f"dataset item {i} has no {key!r}: evaluation needs GT surface samples, their "
                             "normals and the visibility record (a SequenceDataset of a synthetic set has them)")
    S = item["partial"].shape[0]
    if item["surface"].shape[0] != S or item["visible"].shape != item["surface"].shape[:2]:
        raise ValueError(f"dataset item {i}: partial {tuple(item['partial'].shape)}, surface "
                         f"{tuple(item['surface'].shape)} and visible {tuple(item['visible'].shape)} do not agree")


def evaluate(model, dataset, *, num_points: int | None = None, steps: int | None = None, method: str = "heun",
             context: str = "all", norm: str = "window", max_sequences: int | None = None, seed: int = 0,
             normals_k: int = 16, progress: bool = True) -> pd.DataFrame:
    """One row per (sequence, frame) with the columns of the module docstring.

    dataset: items as `SequenceDataset` gives them (make_dataset(cfg, folder, split,
    train=False) for fixed windows). num_points / steps default to the model config's
    eval_points / sample_steps. max_sequences: the first that many items only.
    norm (matters for context="current" only): "window" normalises with the median centre /
    scale of the real window, so that the ablation changes only what the model sees; "fed"
    normalises the fed window of copies itself, as `reconstruct` would (then a per-frame
    model's result changes too, because its coordinates change).
    """
    if context not in CONTEXTS:
        raise ValueError(f"context must be one of {CONTEXTS}, got {context!r}")
    if norm not in ("window", "fed"):
        raise ValueError(f"norm must be 'window' or 'fed', got {norm!r}")
    if max_sequences is not None and not (isinstance(max_sequences, int) and max_sequences >= 1):
        raise ValueError(f"max_sequences must be None or an int >= 1, got {max_sequences!r}")
    if len(dataset) == 0:
        raise ValueError("evaluate: the dataset is empty")
    n_seq = len(dataset) if max_sequences is None else min(max_sequences, len(dataset))
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    rows = []
    try:
        for i in tqdm(range(n_seq), desc=f"evaluate ({context})", disable=not progress, unit="seq"):
            item = dataset[i]
            _check_item(item, i)
            partial, gt = item["partial"].float(), item["surface"].float()     # (S, N, 3), (S, Ns, 3)
            gt_normals, visible = item["surface_normals"].float(), item["visible"].bool()
            S, N = partial.shape[:2]
            gen = torch.Generator().manual_seed(seed + i)
            if context == "all":                                               # one window, every frame
                pred = predict_frames(model, partial[None], torch.arange(S)[None], num_points=num_points,
                                      steps=steps, method=method, generator=gen)[0]
            else:                                                              # window b = frame b, S times
                windows = partial[:, None].expand(S, S, N, 3)                  # (S, S, N, 3)
                norm_from = partial[None].expand(S, S, N, 3) if norm == "window" else None
                pred = predict_frames(model, windows, torch.arange(S)[:, None], num_points=num_points,
                                      steps=steps, method=method, generator=gen, norm_from=norm_from)[:, 0]
            pred = pred.float().cpu()                                          # (S, P, 3)
            regions = region_masks(visible)
            union = partial.reshape(1, S * N, 3).expand(S, S * N, 3)           # (S, S*N, 3), same for every s

            cols = _cloud_metrics(pred, gt, regions, "pred")
            normals = torch.stack([estimate_normals(p, k=normals_k) for p in pred])   # (S, P, 3), unoriented
            cols["pred_nc"] = np.asarray(normal_consistency(pred, normals, gt, gt_normals).cpu())
            cols |= _cloud_metrics(partial, gt, regions, "input")
            cols |= _cloud_metrics(union, gt, regions, "union")
            cols |= {f"n_gt_{k}": m.sum(1).numpy() for k, m in regions.items()}
            meta = {"sequence": i, "frame": np.arange(S), "frame_index": item["frames"].numpy(), "context": context,
                    "norm": norm}
            if hasattr(dataset, "entries"):
                meta["file"] = dataset.entries[i]["file"]
            rows.append(pd.DataFrame({**meta, **cols}))
    finally:
        if was_training:
            model.train()
    return pd.concat(rows, ignore_index=True)


def summarize(df: pd.DataFrame, by: str | list[str] | None = "context") -> pd.DataFrame:
    """Mean of every metric column (NaN skipped: frames where a region is empty do not
    count for that region), one row per value of `by` (None: one row overall). Every frame
    weighs the same. Adds "frames": the number of rows averaged."""
    if df.empty:
        raise ValueError("summarize: empty DataFrame")
    skip = {"sequence", "frame", "frame_index", "context", "norm", "file"}
    keys = [] if by is None else [by] if isinstance(by, str) else list(by)
    # numeric columns only: labels a caller added (e.g. a "model" column) are not metrics
    metrics = [c for c in df.columns if c not in skip and c not in keys and pd.api.types.is_numeric_dtype(df[c])
               and not pd.api.types.is_bool_dtype(df[c])]
    if by is None:
        out = df[metrics].mean().to_frame().T
        out["frames"] = len(df)
        return out
    grouped = df.groupby(by)
    out = grouped[metrics].mean()
    out["frames"] = grouped.size()
    return out
