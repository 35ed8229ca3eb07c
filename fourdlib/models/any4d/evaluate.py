"""Any4D's evaluation: scene flow (EPE, APD, τ) and video depth (AbsRel, δ < 1.25) on
held-out clips, beside two trivial flow references, metric and GT-scale-aligned apart.

    rows = evaluate(model, dataset)        # one row per (clip, method), a DataFrame
    summary(rows)                          # mean per method

Flow is scored on the reference view's valid pixels (GT depth > 0) for views 1..N-1 (view
0's flow is zero by definition), all pixels and moving-object pixels ("_dyn" columns),
in metres in the reference camera's frame (fourdlib.metrics.flow):
  epe   mean ||M_pred - M_gt||.
  apd   mean over δ in {0.1, 0.3, 0.5, 1.0} m of the share with error <= δ (St4RTrack's
        thresholds; Any4D's are not in the text we have).
  tau   the share of points whose relative error is below 3 %, on POINTS AFTER MOTION:
        ||(X0 + M_pred) - (X0 + M_gt)|| / ||X0 + M_gt|| < 0.03 with X0 the GT reference point
        (reference-camera frame). The paper's exact τ is not public; this is MapAnything's
        inlier ratio at 1.03 (see fourdlib.metrics.flow), applied to points after motion
        because raw flow is zero on static points. The error is the flow error, the
        denominator the point's distance to the reference camera.
Depth: metric z-depth s · D · r_z against GT over every view (abs_rel, delta1), and the
same after per-clip median scaling to the GT ("_aligned"; a separate number, never mixed
with the metric one). Flow with the GT-consistent scale in place of the predicted one
(s* = z_gt / z_pred) is "epe_aligned".

Pairwise baseline (row "Any4D pairwise", evaluate(..., pairwise=True)): the SAME model run
on two views at a time, (reference, view i) for i = 1..N-1, chained over the clip: N - 1
passes of 2 views instead of one pass of N (`predict_pairwise`). What the one N-view pass
buys over a two-frame model, in accuracy here and in frames/s in
benchmarks/bench_any4d_speed.py.

A real pair (`evaluate_deepdeform`): the same scores on a DeepDeform RGB-D pair with GT scene
flow, resampled to the model's size; identity poses (DeepDeform has none), the object's pixels.

Trivial references (rows "zero flow", "depth difference"):
  zero flow         M = 0: every static pixel is exact; what a model must beat on moving ones.
  depth difference  the GT reference point projected into view i with the GT pose and
                    intrinsics, moved to the GT depth of view i at that pixel (nearest),
                    along view i's ray: only motion along view i's line of sight is
                    recovered; 0 where the point leaves the image or meets no depth.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from torch.utils.data import default_collate

from ...geometry.cameras import project, unproject_depth
from ...metrics.depth import depth_metrics
from ...metrics.flow import apd, epe3d, inlier_ratio
from .model import gt_factors, model_inputs, predict, views_batch

__all__ = ["zero_flow", "depth_difference_flow", "predict_pairwise", "gt_scale", "flow_scores", "evaluate", "summary",
           "evaluate_deepdeform"]

# batch entries with one slice per view (dim 1); the rest belong to the clip
PER_VIEW = ("rgb", "depth", "K", "cam_to_world", "doppler", "flow", "frames")


def zero_flow(batch: dict) -> torch.Tensor:
    """The zero-flow reference, (B, N, H, W, 3)."""
    return torch.zeros_like(batch["flow"])


def depth_difference_flow(batch: dict) -> torch.Tensor:
    """The depth-difference reference (module docstring), (B, N, H, W, 3), metres."""
    depth, K, c2w = batch["depth"], batch["K"], batch["cam_to_world"]
    B, N, H, W = depth.shape
    x0 = unproject_depth(depth[:, 0], K[:, 0], c2w[:, 0]).reshape(B, 1, H * W, 3).expand(B, N, H * W, 3)
    uv, z = project(x0, K, c2w)                                            # (B, N, H*W, 2), (B, N, H*W)
    col, row = uv[..., 0].floor().long(), uv[..., 1].floor().long()
    inside = (z > 0) & (col >= 0) & (col < W) & (row >= 0) & (row < H)
    idx = (row.clamp(0, H - 1) * W + col.clamp(0, W - 1))
    d_i = torch.gather(depth.reshape(B, N, H * W), 2, idx)                 # GT depth of view i at that pixel
    ok = inside & (d_i > 0) & (depth[:, :1].reshape(B, 1, H * W) > 0)
    # the same continuous pixel in view i at depth d_i: x0 moved along view i's ray
    cam = torch.linalg.solve(K, torch.cat([uv, torch.ones_like(z)[..., None]], -1).transpose(-1, -2))
    xi_cam = cam.transpose(-1, -2) * d_i[..., None]                        # (B, N, H*W, 3), z = d_i
    xi = xi_cam @ c2w[..., :3, :3].transpose(-1, -2) + c2w[..., None, :3, 3]
    flow = torch.where(ok[..., None], xi - x0, torch.zeros_like(x0))
    return flow.reshape(B, N, H, W, 3)


@torch.no_grad()
def predict_pairwise(model, batch: dict, keep=None) -> dict[str, torch.Tensor]:
    """The pairwise baseline: `predict` on two views at a time, (view 0, view i) for i = 1..N-1,
    put together into `predict`'s dict for all N views (same keys and shapes).

    Each pass sees the reference and one other view, so it predicts view i's geometry, pose
    and the reference pixels' flow to time i from that pair alone (a two-frame model made of
    the same weights). Every pass has its own normalisation and metric scale s_i; the
    assembled factors are expressed in the first pass's (scale s_1): view i's depth,
    translation and motion are multiplied by s_i / s_1, so that s_1 · T R D and s_1 · F are
    exactly pass i's own metric points and flow. View 0's factors are the first pass's. The
    metric outputs (points, flow, zdepth) are each pass's own. With N = 2 this is `predict`.
    """
    N = batch["rgb"].shape[1]
    if N < 2:
        raise ValueError(f"predict_pairwise needs a reference and at least one other view, got N = {N}")
    if N == 2:
        return predict(model, batch, keep)                                # one pair: the model's own pass
    passes = []
    for i in range(1, N):
        pair = {k: (v[:, [0, i]] if k in PER_VIEW else v) for k, v in batch.items()}
        passes.append(predict(model, pair, keep))
    first = passes[0]
    s1 = first["scale"]
    out = {}
    for k in first:
        if k == "scale":
            out[k] = s1
            continue
        views = [first[k][:, :1]]
        for p in passes:
            r = (p["scale"] / s1).reshape(-1, *([1] * (p[k].dim() - 1)))     # (B, 1, ...)
            x = p[k][:, 1:]
            if k in ("depth", "motion", "trans", "points_n", "flow_n"):   # lengths in pass i's units
                x = x * r
            elif k == "cam_to_world":                                     # its translation, likewise
                x = torch.cat([torch.cat([x[..., :3, :3], x[..., :3, 3:] * r], -1), x[..., 3:, :]], -2)
            views.append(x)
        out[k] = torch.cat(views, 1)
    return out


def gt_scale(out: dict, gt: dict) -> torch.Tensor:
    """(B,) the GT-consistent metric scale s* = z_gt / z_pred of `predict`'s outputs `out`:
    z_pred the mean distance of the predicted normalised points to the origin over the pixels
    with GT depth (the loss's normalisation), gt from `gt_factors`. s* · flow_n is the flow
    "aligned" to the GT scale."""
    valid = gt["valid"]
    z_pred = (out["points_n"].norm(dim=-1) * valid).sum((1, 2, 3)) / valid.sum((1, 2, 3)).clamp_min(1)
    return gt["z"] / z_pred.clamp_min(1e-6)


def flow_scores(pred: torch.Tensor, batch: dict, b: int = 0) -> dict:
    """epe, apd, tau (+ "_dyn" on moving pixels; NaN where there are none) of clip b's flow
    pred (B, N, H, W, 3) against batch["flow"] (module docstring)."""
    gt, valid, dyn = batch["flow"][b, 1:], batch["flow_valid"][b], batch["dynamic"][b]
    N1 = gt.shape[0]
    x0 = unproject_depth(batch["depth"][b, 0], batch["K"][b, 0], batch["cam_to_world"][b, 0])  # (H, W, 3)
    x0 = x0.expand(N1, *x0.shape)
    p = pred[b, 1:]
    out = {}
    for suffix, mask in (("", valid), ("_dyn", valid & dyn)):
        m = mask.expand(N1, *mask.shape)
        if not bool(m.any()):
            out.update({f"epe{suffix}": math.nan, f"apd{suffix}": math.nan, f"tau{suffix}": math.nan})
            continue
        out[f"epe{suffix}"] = epe3d(p, gt, m)
        out[f"apd{suffix}"] = apd(p, gt, m)
        out[f"tau{suffix}"] = inlier_ratio(x0 + p, x0 + gt, m)
    return out


@torch.no_grad()
def evaluate(model, dataset, *, keep=None, max_items: int | None = None, references: bool = True,
             pairwise: bool = False) -> pd.DataFrame:
    """One row per (clip, method) over the first max_items clips of `dataset` (a ViewDataset,
    train=False for fixed clips): method "Any4D" (inputs `keep`, default all of the model's),
    then "Any4D pairwise" (`predict_pairwise`) when pairwise=True, then "zero flow" and
    "depth difference" when references=True. Columns: clip, method,
    epe, apd, tau (+ _dyn), epe_aligned, abs_rel, delta1, abs_rel_aligned, delta1_aligned,
    scale_log_err (|log s / s*|; model rows only)."""
    model = model.eval()
    cfg = model.cfg
    keep = ("rgb",) + cfg.extra_inputs if keep is None else tuple(keep)
    rows = []
    n = len(dataset) if max_items is None else min(max_items, len(dataset))
    for i in range(n):
        batch = default_collate([dataset[i]])
        gt = gt_factors(batch, model_inputs(batch), cfg.motion)
        methods = {"Any4D": predict}
        if pairwise:
            methods["Any4D pairwise"] = predict_pairwise
        for method, fn in methods.items():
            out = fn(model, batch, keep)
            s_star = gt_scale(out, gt)
            aligned = s_star[:, None, None, None, None] * out["flow_n"]
            row = {"clip": i, "method": method, **flow_scores(out["flow"], batch),
                   "epe_aligned": flow_scores(aligned, batch)["epe"],
                   "scale_log_err": float((out["scale"] / s_star).log().abs()[0])}
            metric = depth_metrics(out["zdepth"][0], batch["depth"][0])
            al = depth_metrics(out["zdepth"][0], batch["depth"][0], align="median")
            row.update(abs_rel=metric["abs_rel"], delta1=metric["delta1"], abs_rel_aligned=al["abs_rel"],
                       delta1_aligned=al["delta1"])
            rows.append(row)
        if references:
            rows.append({"clip": i, "method": "zero flow", **flow_scores(zero_flow(batch), batch)})
            rows.append({"clip": i, "method": "depth difference", **flow_scores(depth_difference_flow(batch), batch)})
    return pd.DataFrame(rows)


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean of every score per method (NaN-skipping), methods in their first-seen order."""
    order = list(dict.fromkeys(rows["method"]))
    return rows.drop(columns="clip").groupby("method", sort=False).mean().reindex(order)


@torch.no_grad()
def evaluate_deepdeform(model, folder, *, size: int | None = None, keep=None, pair: str | None = None,
                        return_maps: bool = False):
    """Any4D on a REAL pair: a DeepDeform sequence folder with GT scene flow (source -> target).

    What is evaluated: the model's metric flow of the source frame's pixels to the target's
    time (`predict` on the 2 views, source first: the reference), against DeepDeform's GT
    scene flow, with flow_scores' EPE, APD and τ (module docstring), on the pixels with valid
    GT flow AND valid source depth AND inside the source's object mask. DeepDeform has no
    camera poses: as `load_deepdeform`, world = the source camera and both poses are identity,
    so the GT flow (motion relative to the camera, source camera frame) is exactly the
    allocentric flow in the reference camera's frame that Any4D predicts. Inputs `keep`:
    default every input of the model but Doppler (none in DeepDeform), the identity poses
    included (as `infer.reconstruct` does).

    Rows (DataFrame, columns method, epe, apd, tau, scale_log_err, abs_rel, delta1; the last
    three on model rows only): "Any4D"; "Any4D (GT-scale aligned)", the same flow at the
    GT-consistent scale s* (`gt_scale`, as evaluate's epe_aligned); "zero flow" (its EPE is the
    mean GT flow norm on the scored pixels); "depth difference" (`depth_difference_flow` with
    the identity poses: each source point moved along its own ray to the target's depth at the
    same pixel). abs_rel / delta1: the model's metric z-depth of both frames against the sensor.

    Resampling (`fourdlib.data.deepdeform.deepdeform_pair`): centred square crop of k x size
    pixels (k the largest odd integer that fits; 448 x 448 for size 64), RGB averaged over
    k x k blocks, depth, GT flow and mask taken at each block's centre pixel (no blending
    across depth edges; the output pixel's ray is that pixel's ray), intrinsics shifted and
    divided by k exactly. size: default the model's cfg.image_size (it must be a multiple of
    the patch size).

    Caveat: the course's committed runs were trained on synthetic 64 x 64 scenes of rigid
    objects filmed by a moving camera; a real deforming shirt seen by a still sensor, with
    sensor-noise depth, is far outside that (domain gap). Report what it scores as it is,
    including when it loses to zero flow.

    return_maps=True returns (rows, maps) with maps of numpy arrays for drawing: rgb (2, H, W, 3)
    uint8, depth (2, H, W) metres, points (H, W, 3) the source points (source camera frame),
    scored (H, W) bool, gt_flow (H, W, 3) (0 off the scored pixels), pred_flow, aligned_flow,
    depth_difference_flow (H, W, 3), pred_depth (2, H, W).
    """
    from ...data.deepdeform import deepdeform_pair

    model = model.eval()
    cfg = model.cfg
    size = cfg.image_size if size is None else int(size)
    if size % cfg.patch_size:
        raise ValueError(f"size {size} is not a multiple of the model's patch size {cfg.patch_size}")
    keep = ("rgb",) + tuple(m for m in cfg.extra_inputs if m != "doppler") if keep is None else tuple(keep)
    if "doppler" in keep:
        raise ValueError("DeepDeform has no Doppler measurements; leave 'doppler' out of keep")
    p = deepdeform_pair(folder, size, pair)
    seq = p.sequence
    batch = views_batch(list(seq.rgb[:, 0]), list(seq.depth[:, 0]), list(seq.intrinsics[:, 0]),
                        list(seq.cam_to_world[:, 0]))
    scored = np.isfinite(p.flow).all(-1) & (seq.depth[0, 0] > 0) & p.mask
    if not scored.any():
        raise ValueError(f"{folder}: no pixel with GT flow, depth and object mask at size {size}")
    gt_flow = torch.from_numpy(np.where(scored[..., None], np.nan_to_num(p.flow), 0).astype(np.float32))
    batch["flow"] = torch.stack([torch.zeros_like(gt_flow), gt_flow])[None]          # (1, 2, H, W, 3)
    batch["flow_valid"] = torch.from_numpy(scored)[None]
    batch["dynamic"] = batch["flow_valid"]        # the scored pixels are the deforming object's
    gt = gt_factors(batch, model_inputs(batch), cfg.motion)
    out = predict(model, batch, keep)
    s_star = gt_scale(out, gt)
    aligned = s_star[:, None, None, None, None] * out["flow_n"]
    dd = depth_difference_flow(batch)

    def scores(flow):
        return {k: v for k, v in flow_scores(flow, batch).items() if not k.endswith("_dyn")}   # _dyn = all here

    depth = depth_metrics(out["zdepth"][0], batch["depth"][0])
    rows = pd.DataFrame([
        {"method": "Any4D", **scores(out["flow"]), "scale_log_err": float((out["scale"] / s_star).log().abs()[0]),
         "abs_rel": depth["abs_rel"], "delta1": depth["delta1"]},
        {"method": "Any4D (GT-scale aligned)", **scores(aligned)},
        {"method": "zero flow", **scores(zero_flow(batch))},
        {"method": "depth difference", **scores(dd)},
    ])
    if not return_maps:
        return rows
    as_np = lambda x: x.float().cpu().numpy()
    maps = {"rgb": seq.rgb[:, 0], "depth": seq.depth[:, 0], "scored": scored,
            "points": as_np(unproject_depth(batch["depth"][0, 0], batch["K"][0, 0])),
            "gt_flow": as_np(gt_flow), "pred_flow": as_np(out["flow"][0, 1]), "aligned_flow": as_np(aligned[0, 1]),
            "depth_difference_flow": as_np(dd[0, 1]), "pred_depth": as_np(out["zdepth"][0])}
    return rows, maps
