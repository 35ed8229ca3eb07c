"""Evaluate the Native 4D VAE (or an ablation) by autoencoding held-out sequences, beside the
trivial codec of the same latent size and the voxelisation floor, frame by frame.

    data = make_dataset(cfg, course_data("creatures", "tiny"), "unseen_motion", train=False)
    df = evaluate(model, data)              # one row per (sequence, frame)
    comparison_table({"native": df, "w/o ST-Attn": evaluate(conv_model, data)})
    summarize(df, by="split")

What is evaluated
-----------------
Every frame of every sequence of the dataset (VoxelSequenceDataset with train=False: all
frames, the sequence's own grid), encoded in windows of cfg.train_frames frames as the model
trained (`model.sequence_windows`; lambda = the largest of 1, 2, 4 up to cfg.temporal_ratio
dividing every window's frame count). The model encodes the GT voxels (latent mean, no
sampling), decodes them with its own pruning, and keeps the voxels with occupancy >
`threshold` (0.5).

The reference geometry is the OBSERVED surface of each frame: the frame's depth maps turned
into meshes (`depth_to_mesh`, the same meshes the voxels were made from) and `surface_points`
area-uniform samples drawn on them (seeded per sequence and frame). A voxel set is scored by
its voxel CENTRES against those samples. So geometry is judged against the continuous surface
the voxels encode, not against the GT voxels themselves (which would score a perfect copy as
perfect and hide the grid's own error: the floor row shows that error).

Metrics (fourdlib.metrics.pointcloud_metrics, Euclidean distances, strict "<")
------------------------------------------------------------------------------
    cd_l1            Chamfer-L1 = (Acc + Comp) / 2, mean nearest-neighbour distances (metres)
                     in both directions (OccNet's convention; the paper does not define its
                     CD-L1, see fourdlib.metrics.pointcloud); cd_l1_vox = the same in voxels
    precision@τ, recall@τ, fscore@τ at the paper's τ = 0.005, 0.001, 0.0005 SCALED to our
                     voxel size: the paper's grids are 1024^3 voxels over a unit-side cube
                     (our reading: voxel 1/1024, so 0.001 is 1.024 voxels), hence
                     τ_ours = τ_paper x 1024 x voxel_size = 5.12, 1.024, 0.512 voxels. Columns
                     keep the paper's label (precision@0.001 = our 1.024 voxels). If the paper
                     meant a [-1, 1] cube, every threshold would be half as many voxels.
    iou              occupancy IoU of the voxel set with the GT voxels (same grid, exact)
    voxels           occupied voxels in the frame
    psnr             colour PSNR (fourdlib.metrics.psnr, data range 1, whole image on black) of
                     the voxel set rendered (occupancy 1, its colours; fourdlib.render.voxels)
                     from a NOVEL view against the GT voxels rendered there: the frame's
                     camera orbited by `novel_view_deg` (90) about the vertical axis (+z, the
                     generator's up) through the GT voxels' centroid, at cfg.render_size^2. No
                     training step renders from there (the rendering loss uses the frame's own
                     camera). The floor's PSNR is NaN: its render IS the target.
Columns: sequence, file, split, frame, lam, voxel_size (metres), gt_voxels, then X_<metric>
for X in
    pred    the model's reconstruction
    codec   the trivial codec at the latent's size (`trivial_codec`): the GT voxels
            downsampled to the latent grid (cfg.latent_resolution^3: a coarse cell is occupied
            when any voxel in it is, colour = the mean), every coarse cell upsampled to all of
            its (R / L)^3 voxels; over time only every lambda-th frame is kept (the first of each
            group of lambda, as the latent has one grid per group) and repeated. It stores at
            most 4 numbers (occupancy, colour) per latent cell, the latent cfg.latent_channels;
            a VAE that does not beat it has learnt nothing.
    floor   the GT voxels themselves: the quantisation floor of CD and precision / recall at
            this resolution (what a perfect autoencoder scores); iou 1, psnr NaN.
    naive   the GT pointmap voxelised: view 0's depth pixels back-projected and voxelised on
            the same grid (`model.pointmap_voxels`, the same cells as
            sequence_voxels(method="points")), i.e. what a PERFECT PointMapVAE scores here
            (its floor): one point per pixel, so the holes between pixels stay holes.
A PointMapVAE (cfg.representation = "pointmap", the table-1 baseline) is evaluated the same
way: its decoded points of pixels with mask > threshold voxelised on the sequence's grid
(`model.reconstruct`), lambda its fixed cfg.temporal_ratio.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ...data.capture import points_on_mesh, sample_surface
from ...data.voxels import _merge_meshes
from ...geometry.cameras import invert_rigid
from ...geometry.depth_mesh import depth_to_mesh
from ...metrics import pointcloud_metrics, psnr
from ...render.voxels import render_voxels
from ...repro.frames import mean_by
from ...train.distributed import unwrap
from .model import (PointMapVAE, VoxelSequenceDataset, choose_lambda, occupancy_iou, pointmap_frames, pointmap_voxels,
                    reconstruct, sequence_windows)

__all__ = ["PAPER_TAUS", "PAPER_VOXEL", "REFERENCES", "TABLE_COLUMNS", "thresholds", "surface_samples",
           "voxel_centers", "trivial_codec", "orbit_camera", "voxel_metrics", "evaluate", "summarize",
           "comparison_table"]

PAPER_VOXEL = 1.0 / 1024          # the paper's voxel: 1024^3 cells over a unit-side cube (our reading)
PAPER_TAUS = (0.005, 0.001, 0.0005)  # table 1: @0.005, @0.001; tables 2-4: @0.001, @0.0005


def thresholds(voxel_size: float) -> dict[str, float]:
    """{paper label: τ in metres at our voxel size} = τ_paper / PAPER_VOXEL x voxel_size."""
    return {f"{t:g}": t / PAPER_VOXEL * float(voxel_size) for t in PAPER_TAUS}


def surface_samples(seq, frame: int, n: int, seed: int = 0) -> np.ndarray:
    """(n, 3) points drawn area-uniformly on frame `frame`'s depth meshes (every view,
    `depth_to_mesh` with its default edge cut: what sequence_voxels voxelised); (0, 3) when
    the frame has no surface."""
    meshes = [depth_to_mesh(seq.depth[frame, v], seq.intrinsics[frame, v], seq.cam_to_world[frame, v])
              for v in range(seq.depth.shape[1])]
    verts, faces, _ = _merge_meshes(meshes)
    if len(faces) == 0:
        return np.zeros((0, 3), np.float32)
    face, bary = sample_surface(verts.astype(np.float64), faces, n, np.random.default_rng(seed))
    return points_on_mesh(verts.astype(np.float64), faces, face, bary).astype(np.float32)


def voxel_centers(coords: torch.Tensor, origin, voxel_size: float) -> np.ndarray:
    """(P, 3) world positions of the centres of cells (P, 3) (i, j, k): origin + (ijk + 0.5) h."""
    c = np.asarray(coords, np.float64).reshape(-1, 3)
    return (np.asarray(origin, np.float64) + (c + 0.5) * float(voxel_size)).astype(np.float32)


def trivial_codec(coords: torch.Tensor, colors: torch.Tensor, num_frames: int, lam: int, factor: int):
    """The trivial codec of the module docstring on one sequence's voxels (P, 4) (t, i, j, k)
    with colours (P, 3): keep frames lam g, downsample cells by `factor`, upsample to all
    factor^3 children, repeat each kept frame for its lam frames. Returns (coords, colors),
    sorted by frame."""
    coords, colors = torch.as_tensor(coords).long(), torch.as_tensor(colors).float()
    if not (isinstance(lam, int) and lam >= 1 and isinstance(factor, int) and factor >= 1):
        raise ValueError(f"trivial_codec: lam and factor must be ints >= 1, got {lam!r}, {factor!r}")
    key = coords[coords[:, 0] % lam == 0]                                       # the kept frames' voxels
    kcol = colors[coords[:, 0] % lam == 0]
    cells = torch.cat([key[:, :1] // lam, key[:, 1:] // factor], 1)           # (group, coarse cell)
    uniq, inv = torch.unique(cells, dim=0, return_inverse=True)                # sorted by group
    count = torch.bincount(inv, minlength=len(uniq)).float()[:, None]
    mean = torch.zeros(len(uniq), 3).index_add_(0, inv, kcol) / count          # (C, 3) coarse colours
    r = torch.arange(factor)
    child = torch.stack(torch.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)  # (factor^3, 3)
    fine = (uniq[:, None, 1:] * factor + child).reshape(-1, 3)                 # (C * f^3, 3)
    group = uniq[:, :1].repeat_interleave(len(child), 0)
    fcol = mean.repeat_interleave(len(child), 0)
    out_c, out_col = [], []
    for k in range(lam):                                                       # each kept frame, lam times
        frame = group * lam + k
        ok = frame[:, 0] < num_frames
        out_c.append(torch.cat([frame[ok], fine[ok]], 1))
        out_col.append(fcol[ok])
    out_c, out_col = torch.cat(out_c), torch.cat(out_col)
    order = torch.argsort(out_c[:, 0], stable=True)
    return out_c[order], out_col[order]


def orbit_camera(world_to_cam: torch.Tensor, center, degrees: float, up=(0.0, 0.0, 1.0)) -> torch.Tensor:
    """The camera world_to_cam (4, 4) moved on a circle about the axis `up` through `center`
    (3,) by `degrees` (it keeps looking at the same place relative to `center`)."""
    axis = torch.as_tensor(up, dtype=torch.float64)
    axis = axis / axis.norm()
    a = math.radians(degrees)
    Kx = torch.tensor([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]],
                      dtype=torch.float64)
    R = torch.eye(3, dtype=torch.float64) + math.sin(a) * Kx + (1 - math.cos(a)) * Kx @ Kx   # Rodrigues
    c = torch.as_tensor(np.asarray(center, np.float64))
    M = torch.eye(4, dtype=torch.float64)
    M[:3, :3], M[:3, 3] = R, c - R @ c                                        # rotate about the axis through c
    c2w = M @ invert_rigid(world_to_cam.double())
    return invert_rigid(c2w).to(world_to_cam.dtype)


def voxel_metrics(points: np.ndarray, surface: np.ndarray, voxel_size: float) -> dict:
    """cd_l1, cd_l1_vox, precision@τ, recall@τ, fscore@τ (paper labels, see `thresholds`) of
    voxel centres (P, 3) against surface samples (N, 3). No points: precision, recall, F 0 and
    CD inf (nothing reconstructed); no surface: NaN everywhere."""
    taus = thresholds(voxel_size)
    if len(surface) == 0:
        return {k: np.nan for k in _metric_names()}
    if len(points) == 0:
        return {"cd_l1": np.inf, "cd_l1_vox": np.inf, **{f"{m}@{t}": 0.0 for t in taus
                                                            for m in ("precision", "recall", "fscore")}}
    m = pointcloud_metrics(points, surface, taus=list(taus.values()), backend="auto")
    out = {"cd_l1": float(m["chamfer_l1"]), "cd_l1_vox": float(m["chamfer_l1"]) / float(voxel_size)}
    for label, t in taus.items():
        for name in ("precision", "recall", "fscore"):
            out[f"{name}@{label}"] = float(m[f"{name}@{t:g}"])
    return out


def _metric_names():
    return ["cd_l1", "cd_l1_vox"] + [f"{m}@{t:g}" for t in PAPER_TAUS for m in ("precision", "recall", "fscore")]


def _render(coords3, colors, w2c, K, size, item, f):
    return render_voxels(coords3, torch.ones(len(coords3)), colors.float(), w2c, K, size, size,
                         voxel_size=float(item["voxel_size"][f]), origin=item["origin"][f].double(),
                         validate=False).image


@torch.no_grad()
def evaluate(model, dataset: VoxelSequenceDataset, *, surface_points: int = 4096, novel_view_deg: float = 90.0,
             threshold: float = 0.5, max_sequences: int | None = None, progress: bool = True) -> pd.DataFrame:
    """One row per (sequence, frame) with the columns of the module docstring.

    model: a Native4DVAE (either block) or a PointMapVAE. dataset: a VoxelSequenceDataset built with
    train=False (make_dataset(cfg, folder, split, train=False)). surface_points: samples on
    each frame's observed surface. novel_view_deg: the PSNR view's orbit angle (None: no
    PSNR). max_sequences: the first that many sequences only.
    """
    if not isinstance(dataset, VoxelSequenceDataset):
        raise TypeError(f"evaluate needs a VoxelSequenceDataset (make_dataset(cfg, folder, split, train=False)), "
                        f"got {type(dataset).__name__}")
    if dataset.train:
        raise ValueError("evaluate needs whole, fixed sequences: build the dataset with train=False")
    if max_sequences is not None and not (isinstance(max_sequences, int) and max_sequences >= 1):
        raise ValueError(f"max_sequences must be None or an int >= 1, got {max_sequences!r}")
    net = unwrap(model)
    cfg = net.cfg
    if dataset.resolution != cfg.resolution:
        raise ValueError(f"the dataset voxelises at {dataset.resolution}^3, the model works at {cfg.resolution}^3")
    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    factor = cfg.resolution // cfg.latent_resolution
    n_seq = len(dataset) if max_sequences is None else min(max_sequences, len(dataset))
    rows = []
    try:
        for i in tqdm(range(n_seq), desc="evaluate", disable=not progress, unit="seq"):
            item = dataset[i]
            T = int(item["num_frames"][0])
            seq = dataset.sequence(i)
            if "pointmap" not in item:  # any dataset of the voxels serves a PointMapVAE too
                item = {**item, "pointmap": pointmap_frames(seq, item, cfg.resolution)}
            batch = {k: v.to(device) for k, v in sequence_windows(item, cfg.train_frames).items()}
            lam = (cfg.temporal_ratio if isinstance(net, PointMapVAE)
                   else choose_lambda(batch["num_frames"], cfg.temporal_ratio))
            pred_c, pred_col = (x.cpu() for x in reconstruct(net, batch, lam=lam, threshold=threshold))
            gt_pointmap = item["pointmap"]
            sets = {"pred": (pred_c, pred_col), "codec": trivial_codec(item["coords"], item["colors"], T, lam, factor),
                    "floor": (item["coords"], item["colors"]),
                    "naive": pointmap_voxels(gt_pointmap, cfg.resolution)}
            entry = dataset.entries[i]
            for f in range(T):
                h = float(item["voxel_size"][f])
                origin = item["origin"][f]
                gt4 = item["coords"][item["coords"][:, 0] == f]
                gt3 = gt4[:, 1:]
                surface = surface_samples(seq, f, surface_points, seed=1000003 * i + f)
                row = {"sequence": i, "file": entry["file"], "split": entry["split"], "frame": f, "lam": lam,
                       "voxel_size": h, "gt_voxels": len(gt3)}
                view = None
                if novel_view_deg is not None and len(gt3):
                    centroid = voxel_centers(gt3, origin, h).mean(0)
                    w2c = orbit_camera(item["world_to_cam"][f], centroid, novel_view_deg)
                    target = _render(gt3, item["colors"][item["coords"][:, 0] == f], w2c, item["K"][f],
                                     cfg.render_size, item, f)
                    view = (w2c, target)
                for name, (c, col) in sets.items():
                    rows_f = c[:, 0] == f
                    c3, colf = c[rows_f, 1:], col[rows_f]
                    for k, v in voxel_metrics(voxel_centers(c3, origin, h), surface, h).items():
                        row[f"{name}_{k}"] = v
                    row[f"{name}_iou"] = occupancy_iou(c[rows_f], gt4)
                    row[f"{name}_voxels"] = len(c3)
                    if view is None or name == "floor":
                        row[f"{name}_psnr"] = np.nan
                    else:
                        img = _render(c3, colf, view[0], item["K"][f], cfg.render_size, item, f)
                        row[f"{name}_psnr"] = float(psnr(img.clamp(0, 1), view[1], data_range=1.0))
                rows.append(row)
    finally:
        if was_training:
            net.train()
    return pd.DataFrame(rows)


_KEYS = ("sequence", "frame", "lam", "voxel_size")


def summarize(df: pd.DataFrame, by: str | list[str] | None = None) -> pd.DataFrame:
    """Mean of every metric column, one row per value of `by` (e.g. "split"; None: one row
    overall); every frame weighs the same, NaN skipped. Adds "frames": the rows averaged."""
    return mean_by(df, by, skip=_KEYS)


# ------------------------------------------------------------------ the comparison table
# (label, column suffix): the paper's table-1 metrics (precision / recall at its thresholds scaled
# to our voxel, CD-L1 in voxels so that it reads like the paper's CD x 1024), then ours
TABLE_COLUMNS = {"Pre@0.005": "precision@0.005", "Recall@0.005": "recall@0.005",
                 "Pre@0.001": "precision@0.001", "Recall@0.001": "recall@0.001",
                 "Pre@0.0005": "precision@0.0005", "Recall@0.0005": "recall@0.0005",
                 "CD-L1 (voxels)": "cd_l1_vox", "IoU": "iou", "PSNR (novel view)": "psnr", "voxels": "voxels"}
# the reference rows, read from the first evaluated frame table (they depend on the data and on
# the config's latent grid and lambda, not on the weights)
REFERENCES = {
    "trivial codec (latent-grid voxels, every λ-th frame repeated)": "codec",
    "floor: GT voxels at the same resolution": "floor",
    "PointMapVAE floor: GT pointmap voxelised (one point per pixel)": "naive",
}


def _table_row(df: pd.DataFrame, prefix: str) -> dict:
    """Means over frames of one model or reference. A frame decoded to no voxel has an infinite
    CD: CD is averaged over the frames with voxels, and "empty frames" says how many had none
    (so one empty frame neither hides nor turns the whole column into inf)."""
    row = {name: df[f"{prefix}_{col}"].mean() for name, col in TABLE_COLUMNS.items()}
    empty = df[f"{prefix}_voxels"] == 0
    row["CD-L1 (voxels)"] = df.loc[~empty, f"{prefix}_cd_l1_vox"].mean() if (~empty).any() else float("nan")
    row["empty frames"] = float(empty.mean())
    return row


def comparison_table(results: dict[str, pd.DataFrame], references: bool = True) -> pd.DataFrame:
    """Rows: each model of `results` ({label: evaluate(...) frame table}, all on the same
    frames), then the reference rows (REFERENCES, from the first table); columns
    TABLE_COLUMNS (means over frames, NaN skipped; CD over the frames with at least one voxel)
    and "empty frames" (the fraction of frames decoded to no voxel)."""
    if not results:
        raise ValueError("comparison_table: no results")
    first = next(iter(results.values()))
    for label, df in results.items():
        if len(df) != len(first) or not (df[["file", "frame"]].to_numpy() == first[["file", "frame"]].to_numpy()).all():
            raise ValueError(f"comparison_table: {label!r} was evaluated on other frames than {next(iter(results))!r}")
    rows = {label: _table_row(df, "pred") for label, df in results.items()}
    if references:
        for label, prefix in REFERENCES.items():
            rows[label] = _table_row(first, prefix)
    return pd.DataFrame.from_dict(rows, orient="index")[[*TABLE_COLUMNS, "empty frames"]]
