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

Columns (X = pred, input, union or floor; R = one of the regions above)
------------------------------------------------------------------------
    X_acc, X_acc_R     accuracy: mean over X's points of the distance to the nearest GT
                       point (pred -> GT); _R averages over the points whose nearest GT
                       point lies in R (so "acc_visible" is how sharp the visible part is)
    X_comp, X_comp_R   completeness: mean over GT points (of R) of the distance to the
                       nearest point of X (GT -> pred)
    pred_nc            normal consistency (OccNet): predicted points get PCA normals
                       (`estimate_normals(k=normals_k)`, NOT oriented): the metric averages
                       |cos|, so the sign of either normal does not matter.
    floor_nc           the same NC for the floor sample (PCA normals, same k): the NC a
                       perfect surface sample reaches at num_points points with PCA normals
    chance_nc          NC of the predicted points with uniformly random unit normals: the
                       chance level for unsigned normals (expected 0.5); computed, not assumed
    floor_shared       fraction of the floor sample's points that are also reference GT
                       points (0 when the stored GT allows a disjoint draw; see floor below)
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
    floor   a second GT sample of frame s with num_points points, scored exactly like pred:
            what a perfect model that samples the true surface would score at this point
            count (its completeness is not 0: num_points samples leave gaps). Drawn from the
            stored GT surface samples (`dataset.surface_pool`, the same rows in every frame)
            among the rows NOT in the reference (`item["surface_rows"]`), uniformly without
            replacement, with a generator seeded by (seed, sequence index), so it is
            independent of the reference and deterministic. When fewer than num_points
            rows lie outside the reference (e.g. the reference already holds every stored
            sample), it takes all of those plus reference rows drawn without replacement
            (then with repeats if num_points exceeds the stored count); floor_shared says
            what fraction came from the reference, and a shared point's accuracy is 0, so
            floor_acc is then optimistic. A dataset without `surface_pool` (a list of items)
            only has the reference, so its floor is drawn from the reference alone.

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

           "current" changes two things at once: the model loses the other frames (lost
           information) and it sees a window of S identical frames, which it never saw in
           training (distribution shift). To tell them apart: (1) the per-frame model
           (temporal=False) fed the same copies is the reference for the copies themselves
           (with norm="window" it is blind to them, see above); (2) train a DynaTok with
           cfg.train_copies > 0 (SequenceDataset copies=: a share of its training windows
           are exactly such copies). It has seen copies, so its remaining drop from "all"
           to "current" is lost information; the part of the ordinary model's drop that
           it removes was shift.

Determinism: the ODE noise comes from torch.Generator seeded with seed + sequence index;
the floor draw and chance_nc's random normals have generators of their own, derived from the
same two numbers, so they never change the ODE noise (nor the pred columns).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ...geometry.normals import estimate_normals
from ...metrics import nearest_neighbors, normal_consistency
from ...repro.frames import mean_by, per_sequence_wins  # per_sequence_wins: re-exported for the notebooks
from ...train.distributed import unwrap
from .model import normalize_batch, reconstruct

__all__ = ["REGIONS", "CONTEXTS", "TABLE_COLUMNS", "REFERENCES", "region_masks", "predict_frames", "evaluate",
           "summarize", "comparison_table", "per_sequence_wins"]

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
    from `windows` (the "current" context normalises with the real window's numbers). With
    per-frame centres (norm_frame="each") and copies of one frame per window, every slot of
    window b takes frame b's centre: the copies are all frame b.
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
        _, center, scale = normalize_batch(norm_from, ref_frame=net.cfg.ref_frame, per_frame=net.cfg.per_frame_center)
        if center.dim() == 3:                         # (B, S', 3): window b is copies of frame slots[b, 0]
            b = torch.arange(len(center), device=center.device)
            center = center[b, torch.as_tensor(slots, device=center.device)[:, 0]][:, None].expand(-1, windows.shape[1], 3)
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


def _floor_rows(pool_size: int, reference: torch.Tensor, n: int, gen: torch.Generator) -> tuple[torch.Tensor, float]:
    """n rows of a pool of GT samples for the floor sample (see the module doc): rows outside
    `reference` first, uniformly without replacement; if too few, reference rows; if the
    pool is smaller than n, random repeats. Returns the rows and the fraction of them that
    are reference rows."""
    is_ref = torch.zeros(pool_size, dtype=torch.bool)
    is_ref[torch.as_tensor(reference).long()] = True
    others, refs = (~is_ref).nonzero()[:, 0], is_ref.nonzero()[:, 0]
    rows = others[torch.randperm(len(others), generator=gen)[:n]]
    if len(rows) < n:
        rows = torch.cat([rows, refs[torch.randperm(len(refs), generator=gen)[: n - len(rows)]]])
    if len(rows) < n:
        rows = torch.cat([rows, torch.randint(0, pool_size, (n - len(rows),), generator=gen)])
    return rows, float(is_ref[rows].double().mean())


def _floor_sample(dataset, i: int, item: dict, n: int, seed: int) -> tuple[torch.Tensor, float]:
    """(S, n, 3) floor sample of item i and its shared fraction (module doc, "floor")."""
    gt = item["surface"].float()
    pool_of = getattr(dataset, "surface_pool", None)
    if pool_of is not None and "surface_rows" in item:
        pool, _ = pool_of(i, item["frames"])
        reference = item["surface_rows"]
    else:   # only the reference is known
        pool, reference = gt, torch.arange(gt.shape[1])
    # its own stream, so the floor never shifts the ODE noise (generator seed + i)
    gen = torch.Generator().manual_seed(1_000_003 * (seed + i) + 1)
    rows, shared = _floor_rows(pool.shape[1], reference, n, gen)
    return torch.as_tensor(pool)[:, rows].float(), shared


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
            floor, shared = _floor_sample(dataset, i, item, pred.shape[1], seed)   # as many points as pred
            cols |= _cloud_metrics(floor, gt, regions, "floor")
            floor_normals = torch.stack([estimate_normals(p, k=normals_k) for p in floor])
            cols["floor_nc"] = np.asarray(normal_consistency(floor, floor_normals, gt, gt_normals).cpu())
            # uniformly random directions: normalised isotropic Gaussians
            noise = torch.randn(pred.shape, generator=torch.Generator().manual_seed(1_000_003 * (seed + i) + 2))
            cols["chance_nc"] = np.asarray(normal_consistency(pred, noise / noise.norm(dim=-1, keepdim=True),
                                                              gt, gt_normals).cpu())
            cols["floor_shared"] = np.full(S, shared)
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
    # numeric columns only: labels a caller added (e.g. a "model" column) are not metrics
    return mean_by(df, by, skip={"sequence", "frame", "frame_index", "context", "norm", "file"})


# ------------------------------------------------------------------ the comparison table
# (label, column suffix) of the table every DynaTok result is shown in, README included
TABLE_COLUMNS = {"Acc": "acc", "Comp": "comp", "Comp: visible": "comp_visible",
                 "Comp: hidden here, seen elsewhere": "comp_hidden_seen_elsewhere",
                 "Comp: never seen": "comp_never_seen", "Acc: visible": "acc_visible", "NC": "nc"}
# the reference rows, read from any evaluated frame table (they do not depend on the model)
REFERENCES = {
    "union of all input frames (as given)": "union",
    "input of the current frame": "input",
    "floor: a second GT sample of the same size": "floor",
    "chance (NC of random normals)": "chance",
}


def comparison_table(results: dict[str, pd.DataFrame], references: bool = True) -> pd.DataFrame:
    """Rows: each model of `results` ({label: evaluate(...) frame table}), then the reference
    rows (REFERENCES: union, input, floor, chance, from the first table); columns
    TABLE_COLUMNS; every frame weighs the same, NaNs (empty regions) skipped."""
    if not results:
        raise ValueError("comparison_table: no results")
    rows = {label: {name: df[f"pred_{col}"].mean() for name, col in TABLE_COLUMNS.items()}
            for label, df in results.items()}
    if references:
        first = next(iter(results.values()))
        for label, prefix in REFERENCES.items():
            rows[label] = {name: first[f"{prefix}_{col}"].mean() for name, col in TABLE_COLUMNS.items()
                           if f"{prefix}_{col}" in first}
    return pd.DataFrame.from_dict(rows, orient="index")[list(TABLE_COLUMNS)]

