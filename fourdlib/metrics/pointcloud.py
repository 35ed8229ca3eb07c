"""Point-cloud metrics: accuracy, completeness, Chamfer, precision / recall / F-score, NC.

Everything here rests on ONE nearest-neighbour search, `nearest_neighbors`:
  - CPU (numpy arrays, CPU tensors): a KD-tree (pykdtree: orders of magnitude faster than
    a chunked cdist on CPU; benchmarks/bench_metrics.py);
  - CUDA tensors: exact `torch.cdist` over chunks of query rows (at most `MAX_PAIRS`
    distances in memory at once) and a min over the reference points. It uses the
    direct-difference kernel (`donot_use_mm_for_euclid_dist`): the |x|^2 + |y|^2 - 2 x.y
    matmul shortcut loses most digits of small neighbour distances in float32 (worse with
    TF32 switched on), which would shift the metrics far beyond 1e-5.
The torch path runs on CPU too (`backend="torch"`), which is how the tests compare the two.
Metrics are evaluation, not losses: no gradients flow through them.

Inputs and outputs
------------------
pred, gt: one cloud (N, 3); a batch (B, N, 3); or a list of B clouds (N_b, 3) whose
sizes differ (partial clouds do). numpy or torch, mixed is fine. One cloud -> a python
float; a batch -> one value per item, a (B,) float64 numpy array when every input was
numpy, else a float64 tensor on the inputs' device. Distances are in the clouds' units
(metres in fourdlib). Per-point distances (e.g. to average completeness over a region of
the GT such as "visible here" / "hidden here but seen elsewhere" / "never seen", see
`fourdlib.data.sequence`) come from `nearest_neighbors(gt, pred)[0]`, or directly from the
`mask=` argument of `completeness` and the `gt_regions=` argument of `pointcloud_metrics`.

Definitions (d(x, Y) = min_{y in Y} ||x - y||_2, the Euclidean distance, not squared)
-------------------------------------------------------------------------------
accuracy      Acc  = mean_{p in P} d(p, G)           (pred -> GT, one-sided Chamfer)
completeness  Comp = mean_{g in G} d(g, P)           (GT -> pred)
              with squared=True, d^2 is averaged instead.
chamfer       kind="l1": mean Euclidean distances; kind="l2": mean SQUARED distances.
              reduction="mean": (Acc + Comp) / 2;  reduction="sum": Acc + Comp.
precision@τ   |{p in P : d(p, G) < τ}| / |P|      recall@τ  |{g in G : d(g, P) < τ}| / |G|
F-score@τ     2 P R / (P + R), 0 when P = R = 0  (Tatarchenko et al. 2019; strict "<")
NC            normal consistency, OccNet: ( mean_{p} |n_p . n_{NN_G(p)}|
              + mean_{g} |n_g . n_{NN_P(g)}| ) / 2, normals normalised first; the absolute
              value makes it blind to flipped normals (signed=True drops it).

Whose convention (and which argument values reproduce it)
---------------------------------------------------------
OccNet / ConvONet (Mescheder et al. 2019): Chamfer-L1 = chamfer(kind="l1",
    reduction="mean"); Chamfer-L2 = chamfer(kind="l2", reduction="mean"); NC as above.
DynaTok: Acc (pred -> GT) and Comp (GT -> pred) one-sided Chamfer and NC. The paper text
    we have does not say whether distances are squared; we use Euclidean (not squared)
    distances, as OccNet, whose Acc / Comp / NC names DynaTok's tables follow.
COM4D: CD, F-Score, IoU. The paper text does not define them; COM4D builds on PartCrafter /
    TripoSG, whose evaluation code (`src/utils/metric_utils.py`, as published in
    PartCrafter forks and a COM4D fork; not in the official COM4D repository) computes
    CD = mean d(G->P) + mean d(P->G) with Euclidean distances -> chamfer(kind="l1",
    reduction="sum"), and F-score with τ = 0.1 and strict "<" on 10k mesh samples
    (meshes normalised to [-1, 1]^3). IoU: see `fourdlib.metrics.volume`.
Native 4D VAE: Pre@τ, Recall@τ (τ = 0.005 / 0.001 / 0.0005) and CD-L1, not defined in the
    text; we take precision_recall with strict "<" and chamfer(kind="l1",
    reduction="mean") (OccNet's Chamfer-L1).
Point-completion papers (PoinTr etc.): CD-l1 = chamfer(kind="l1", reduction="mean"),
    CD-l2 = chamfer(kind="l2", reduction="sum").
"""
from __future__ import annotations

import numpy as np
import torch
from pykdtree.kdtree import KDTree

from ._checks import any_torch, as_float, as_mask, as_tensor, check_finite, finish, pick_device

MAX_PAIRS = 1 << 26  # torch path: at most this many query-reference distances at once (256 MB fp32)


# ---------------------------------------------------------------- inputs
def _as_clouds(x, name: str, device, dim: int = 3):
    """-> (list of (N_b, dim) float tensors, batched, uniform) with every cloud checked."""
    if isinstance(x, (list, tuple)):
        if len(x) == 0:
            raise ValueError(f"{name}: empty list of clouds")
        clouds, batched, uniform = [as_tensor(c, f"{name}[{b}]", device) for b, c in enumerate(x)], True, False
        for b, c in enumerate(clouds):
            if c.ndim != 2:
                raise ValueError(f"{name}[{b}]: expected an (N, {dim}) cloud, got shape {tuple(c.shape)}")
    else:
        t = as_tensor(x, name, device)
        if t.ndim == 2:
            clouds, batched = [t], False
        elif t.ndim == 3:
            clouds, batched = list(t.unbind(0)), True
            if len(clouds) == 0:
                raise ValueError(f"{name}: empty batch (B = 0)")
        else:
            raise ValueError(f"{name}: expected (N, {dim}), (B, N, {dim}) or a list of (N_b, {dim}) clouds, "
                             f"got shape {tuple(t.shape)}")
        uniform = True
    out = []
    for b, c in enumerate(clouds):
        where = f"{name}[{b}]" if batched else name
        if c.shape[-1] != dim:
            raise ValueError(f"{where}: last dimension must be {dim} (x, y, z), got shape {tuple(c.shape)}")
        if c.shape[0] == 0:
            raise ValueError(f"{where}: empty point cloud (0 points)")
        c = as_float(c, where)
        check_finite(c, where)
        out.append(c)
    return out, batched, uniform


def _prepare(pred, gt, backend: str):
    if backend not in ("auto", "kdtree", "torch"):
        raise ValueError(f"backend must be 'auto', 'kdtree' or 'torch', got {backend!r}")
    device = pick_device(pred, gt)
    preds, bp, _ = _as_clouds(pred, "pred", device)
    gts, bg, _ = _as_clouds(gt, "gt", device)
    if bp != bg:
        raise ValueError(f"pred is {'a batch' if bp else 'one cloud'} but gt is {'a batch' if bg else 'one cloud'}; "
                         "give both as batches (B, N, 3) / lists, or both as single (N, 3) clouds")
    if len(preds) != len(gts):
        raise ValueError(f"batch sizes differ: pred has {len(preds)} clouds, gt has {len(gts)}")
    return preds, gts, bp, not any_torch(pred, gt)


def _as_masks(mask, clouds, name: str, batched: bool):
    """Per-item boolean masks matching each cloud's point count (or None)."""
    if mask is None:
        return [None] * len(clouds)
    dev = clouds[0].device
    if isinstance(mask, (list, tuple)):
        if len(mask) != len(clouds):
            raise ValueError(f"{name}: {len(mask)} masks for {len(clouds)} clouds")
        return [as_mask(m, f"{name}[{b}]", (c.shape[0],), dev) for b, (m, c) in enumerate(zip(mask, clouds))]
    if not batched:
        return [as_mask(mask, name, (clouds[0].shape[0],), dev)]
    t = as_tensor(mask, name, dev)
    if t.ndim != 2 or t.shape[0] != len(clouds):
        raise ValueError(f"{name}: expected (B, N) = ({len(clouds)}, N) or a list of masks, got shape {tuple(t.shape)}")
    return [as_mask(m, f"{name}[{b}]", (c.shape[0],), dev) for b, (m, c) in enumerate(zip(t.unbind(0), clouds))]


def _check_tau(tau) -> float:
    try:
        t = float(tau)
    except (TypeError, ValueError):
        raise ValueError(f"tau must be a positive number, got {tau!r}") from None
    if not np.isfinite(t) or t <= 0:
        raise ValueError(f"tau must be a positive finite distance, got {tau!r}")
    return t


# ---------------------------------------------------------------- the one NN search
def _nn_kdtree(q: torch.Tensor, r: torch.Tensor):
    dtype = torch.promote_types(q.dtype, r.dtype)
    qn = np.ascontiguousarray(q.to(dtype).cpu().numpy())
    rn = np.ascontiguousarray(r.to(dtype).cpu().numpy())
    d, i = KDTree(rn).query(qn, k=1)                                      # Euclidean, (N,) each
    return torch.from_numpy(d).to(q.device), torch.from_numpy(i.astype(np.int64)).to(q.device)


def _nn_torch(q: torch.Tensor, r: torch.Tensor, chunk_size: int | None):
    dtype = torch.promote_types(q.dtype, r.dtype)
    q, r = q.to(dtype), r.to(dtype)
    rows = chunk_size or max(1, MAX_PAIRS // r.shape[0])
    dist, idx = [], []
    for qc in q.split(rows):                                                 # qc (n, 3)
        d = torch.cdist(qc[None], r[None], compute_mode="donot_use_mm_for_euclid_dist")[0]  # (n, M)
        m, i = d.min(dim=1)
        dist.append(m)
        idx.append(i)
    return torch.cat(dist), torch.cat(idx)


@torch.no_grad()
def _nn(q: torch.Tensor, r: torch.Tensor, backend: str, chunk_size: int | None = None):
    """Distance (N,) and index (N,) of each query point's nearest reference point."""
    use_tree = backend == "kdtree" or (backend == "auto" and q.device.type == "cpu")
    return _nn_kdtree(q, r) if use_tree else _nn_torch(q, r, chunk_size)


def nearest_neighbors(query, ref, *, backend: str = "auto", chunk_size: int | None = None):
    """Nearest reference point of every query point: (dist, idx).

    query (N, 3) / (B, N, 3) / list of (N_b, 3); ref likewise with the same batch size.
    dist: Euclidean (not squared) distance, idx: int64 index into the reference cloud;
    shaped like the query: (N,), (B, N) or lists. backend "auto" = KD-tree on CPU, chunked
    exact cdist on CUDA; "kdtree" / "torch" force one (both give the same distances).
    chunk_size: query rows per cdist call on the torch path (default: MAX_PAIRS / M).
    """
    if backend not in ("auto", "kdtree", "torch"):
        raise ValueError(f"backend must be 'auto', 'kdtree' or 'torch', got {backend!r}")
    device = pick_device(query, ref)
    qs, bq, uniform = _as_clouds(query, "query", device)
    rs, br, _ = _as_clouds(ref, "ref", device)
    if bq != br or len(qs) != len(rs):
        raise ValueError(f"query and ref batch sizes differ: {len(qs) if bq else 'single'} vs {len(rs) if br else 'single'}")
    out = [_nn(q, r, backend, chunk_size) for q, r in zip(qs, rs)]
    to_np = not any_torch(query, ref)
    conv = (lambda t: t.cpu().numpy()) if to_np else (lambda t: t)
    if not bq:
        return conv(out[0][0]), conv(out[0][1])
    if uniform:
        return conv(torch.stack([d for d, _ in out])), conv(torch.stack([i for _, i in out]))
    return [conv(d) for d, _ in out], [conv(i) for _, i in out]


# ---------------------------------------------------------------- reducers (one implementation each)
def _mean_dist(d: torch.Tensor, mask, squared: bool, what: str) -> torch.Tensor:
    if mask is not None:
        d = d[mask]
        if d.numel() == 0:
            raise ValueError(f"{what}: the mask selects no points (use the per-point distances for regions that may be empty)")
    d = d.double()
    return (d * d if squared else d).mean()


def _chamfer(acc: torch.Tensor, comp: torch.Tensor, reduction: str) -> torch.Tensor:
    return 0.5 * (acc + comp) if reduction == "mean" else acc + comp


def _within(d: torch.Tensor, tau: float, mask=None) -> torch.Tensor:
    if mask is not None:
        d = d[mask]
        if d.numel() == 0:
            raise ValueError("recall: the region mask selects no points")
    return (d < tau).double().mean()


def _fscore(p: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    s = p + r
    return torch.where(s > 0, 2 * p * r / s.clamp_min(1e-300), torch.zeros_like(s))


def _unit_normals(n: torch.Tensor, name: str) -> torch.Tensor:
    n = n.double()
    norm = n.norm(dim=-1, keepdim=True)
    if bool((norm < 1e-12).any()):
        raise ValueError(f"{name}: {int((norm < 1e-12).sum())} normal(s) have zero length")
    return n / norm


def _nc_onesided(n_query: torch.Tensor, n_ref: torch.Tensor, idx: torch.Tensor, signed: bool) -> torch.Tensor:
    cos = (n_query * n_ref[idx]).sum(-1)                                       # (N,)
    return (cos if signed else cos.abs()).mean()


def _check_choice(value, name, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


# ---------------------------------------------------------------- public metrics
def accuracy(pred, gt, *, squared: bool = False, mask=None, backend: str = "auto"):
    """Acc = mean over predicted points of the distance to the nearest GT point (pred -> GT).

    mask (optional): boolean over the PREDICTED points, averages over that subset only.
    squared=True averages d^2 instead of d. See the module docstring for conventions.
    """
    preds, gts, batched, to_np = _prepare(pred, gt, backend)
    masks = _as_masks(mask, preds, "mask", batched)
    vals = [_mean_dist(_nn(p, g, backend)[0], m, squared, "accuracy") for p, g, m in zip(preds, gts, masks)]
    return finish(torch.stack(vals), batched, to_np)


def completeness(pred, gt, *, squared: bool = False, mask=None, backend: str = "auto"):
    """Comp = mean over GT points of the distance to the nearest predicted point (GT -> pred).

    mask (optional): boolean over the GT points, e.g. `surface_visible[t]` or
    `~vis[t] & vis.any(0)` to score completion of regions hidden in frame t.
    """
    preds, gts, batched, to_np = _prepare(pred, gt, backend)
    masks = _as_masks(mask, gts, "mask", batched)
    vals = [_mean_dist(_nn(g, p, backend)[0], m, squared, "completeness") for p, g, m in zip(preds, gts, masks)]
    return finish(torch.stack(vals), batched, to_np)


def chamfer_distance(pred, gt, *, kind: str = "l1", reduction: str = "mean", backend: str = "auto"):
    """Symmetric Chamfer distance.

    kind="l1": Euclidean distances (OccNet's "Chamfer-L1"); kind="l2": squared distances.
    reduction="mean": (Acc + Comp) / 2 (OccNet); "sum": Acc + Comp (COM4D / PartCrafter).
    """
    _check_choice(kind, "kind", ("l1", "l2"))
    _check_choice(reduction, "reduction", ("mean", "sum"))
    preds, gts, batched, to_np = _prepare(pred, gt, backend)
    sq = kind == "l2"
    vals = [_chamfer(_mean_dist(_nn(p, g, backend)[0], None, sq, "chamfer"),
                     _mean_dist(_nn(g, p, backend)[0], None, sq, "chamfer"), reduction)
            for p, g in zip(preds, gts)]
    return finish(torch.stack(vals), batched, to_np)


def precision_recall(pred, gt, tau: float, *, backend: str = "auto"):
    """(precision, recall) at distance τ: share of pred points within τ of GT, and vice versa.

    Strict "<" (Tatarchenko et al. 2019). Returns two floats, or two (B,) arrays for a batch.
    """
    tau = _check_tau(tau)
    preds, gts, batched, to_np = _prepare(pred, gt, backend)
    pr = [(_within(_nn(p, g, backend)[0], tau), _within(_nn(g, p, backend)[0], tau)) for p, g in zip(preds, gts)]
    return (finish(torch.stack([a for a, _ in pr]), batched, to_np),
            finish(torch.stack([b for _, b in pr]), batched, to_np))


def f_score(pred, gt, tau: float, *, backend: str = "auto"):
    """F-score at τ = 2 P R / (P + R) (0 when both are 0), P / R from `precision_recall`."""
    tau = _check_tau(tau)
    preds, gts, batched, to_np = _prepare(pred, gt, backend)
    vals = [_fscore(_within(_nn(p, g, backend)[0], tau), _within(_nn(g, p, backend)[0], tau))
            for p, g in zip(preds, gts)]
    return finish(torch.stack(vals), batched, to_np)


def _normals_like(normals, clouds, name: str):
    ns, _, _ = _as_clouds(normals, name, clouds[0].device)
    if len(ns) != len(clouds):
        raise ValueError(f"{name}: {len(ns)} normal sets for {len(clouds)} clouds")
    for b, (n, c) in enumerate(zip(ns, clouds)):
        if n.shape != c.shape:
            raise ValueError(f"{name}[{b}]: shape {tuple(n.shape)} does not match its cloud's {tuple(c.shape)}")
    return [_unit_normals(n, name) for n in ns]


def normal_consistency(pred, pred_normals, gt, gt_normals, *, signed: bool = False, backend: str = "auto"):
    """Normal consistency (OccNet): mean |cos| between each point's normal and its nearest
    neighbour's normal in the other cloud, averaged over both directions.

    Normals are normalised first (zero-length normals are an error). signed=True keeps the
    sign of the cosine, so flipped normals give -1 instead of 1.
    """
    preds, gts, batched, to_np = _prepare(pred, gt, backend)
    nps, ngs = _normals_like(pred_normals, preds, "pred_normals"), _normals_like(gt_normals, gts, "gt_normals")
    vals = []
    for p, g, n_p, n_g in zip(preds, gts, nps, ngs):
        i_pg, i_gp = _nn(p, g, backend)[1], _nn(g, p, backend)[1]
        vals.append(0.5 * (_nc_onesided(n_p, n_g, i_pg, signed) + _nc_onesided(n_g, n_p, i_gp, signed)))
    return finish(torch.stack(vals), batched, to_np)


def pointcloud_metrics(pred, gt, *, taus=(), pred_normals=None, gt_normals=None, gt_regions=None,
                       backend: str = "auto") -> dict:
    """Every point-cloud metric from two NN searches (pred -> GT and GT -> pred).

    Returns a dict with 'accuracy', 'completeness', 'chamfer_l1' and 'chamfer_l2' (OccNet
    halves; double them for the sum convention), 'precision@τ', 'recall@τ', 'fscore@τ' for
    each τ in taus (key formatted with :g), 'normal_consistency' when both normal sets are
    given, and for each name -> GT-point mask in gt_regions 'completeness/name' and
    'recall@τ/name'. Values as for the single metrics (floats, or (B,) per batch item).
    """
    taus = [_check_tau(t) for t in (taus if isinstance(taus, (list, tuple)) else [taus])]
    preds, gts, batched, to_np = _prepare(pred, gt, backend)
    if (pred_normals is None) != (gt_normals is None):
        raise ValueError("normal consistency needs both pred_normals and gt_normals (got only one)")
    nps = _normals_like(pred_normals, preds, "pred_normals") if pred_normals is not None else None
    ngs = _normals_like(gt_normals, gts, "gt_normals") if gt_normals is not None else None
    regions = {k: _as_masks(m, gts, f"gt_regions[{k!r}]", batched) for k, m in (gt_regions or {}).items()}

    rows = []
    for b, (p, g) in enumerate(zip(preds, gts)):
        d_pg, i_pg = _nn(p, g, backend)                                        # (N,) pred -> GT
        d_gp, i_gp = _nn(g, p, backend)                                        # (M,) GT -> pred
        acc, comp = _mean_dist(d_pg, None, False, "accuracy"), _mean_dist(d_gp, None, False, "completeness")
        acc2, comp2 = _mean_dist(d_pg, None, True, "accuracy"), _mean_dist(d_gp, None, True, "completeness")
        row = {"accuracy": acc, "completeness": comp,
               "chamfer_l1": _chamfer(acc, comp, "mean"), "chamfer_l2": _chamfer(acc2, comp2, "mean")}
        for t in taus:
            pr, rc = _within(d_pg, t), _within(d_gp, t)
            row[f"precision@{t:g}"], row[f"recall@{t:g}"], row[f"fscore@{t:g}"] = pr, rc, _fscore(pr, rc)
        if nps is not None:
            row["normal_consistency"] = 0.5 * (_nc_onesided(nps[b], ngs[b], i_pg, False)
                                               + _nc_onesided(ngs[b], nps[b], i_gp, False))
        for k, masks in regions.items():
            row[f"completeness/{k}"] = _mean_dist(d_gp, masks[b], False, f"completeness/{k}")
            for t in taus:
                row[f"recall@{t:g}/{k}"] = _within(d_gp, t, masks[b])
        rows.append(row)
    return {k: finish(torch.stack([r[k] for r in rows]), batched, to_np) for k in rows[0]}
