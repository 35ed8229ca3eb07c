"""DynaTok evaluation (fourdlib.models.dynatok.evaluate): regions, metrics and the context ablation.

Most tests replace the model by a fake `predict_frames` (GT itself, only its visible part,
or a recorder), on a hand-made sequence whose answers are known: a unit sphere seen from
three directions around z, so the poles are never seen.
"""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from fourdlib.models.dynatok import evaluate as de
from fourdlib.models.dynatok import CONFIGS, DynaTok, reconstruct

S, NS, N = 3, 600, 200


def _sphere(n):
    """Fibonacci sphere: n roughly even unit vectors (n, 3)."""
    i = torch.arange(n, dtype=torch.float64) + 0.5
    z = 1 - 2 * i / n
    phi = math.pi * (1 + 5 ** 0.5) * i
    r = (1 - z * z).sqrt()
    return torch.stack([r * phi.cos(), r * phi.sin(), z], -1).float()


def _item(all_visible_first=False, moving=False):
    """A sphere (static, or moving along x) seen from 3 directions in the xy plane."""
    base = _sphere(NS)
    shift = torch.tensor([[0.5 * s if moving else 0.0, 0, 0] for s in range(S)])
    gt = base[None] + shift[:, None]                                           # (S, NS, 3)
    dirs = torch.tensor([[math.cos(a), math.sin(a), 0.0] for a in (0, 2 * math.pi / 3, 4 * math.pi / 3)])
    visible = (base @ dirs.T).T > 0.5                                          # (S, NS)
    if all_visible_first:
        visible[0] = True
    # the partial cloud of frame s: its visible GT points, repeated up to N rows
    partial = torch.stack([gt[s][visible[s].nonzero()[:, 0]][torch.arange(N) % int(visible[s].sum())]
                           for s in range(S)])                                 # (S, N, 3)
    return {"partial": partial, "surface": gt, "surface_normals": base[None].expand(S, -1, -1).clone(),
            "visible": visible, "frames": torch.arange(S)}


def _mean_min_dist(a, b):
    """Independent reference: mean over a's points of the distance to the nearest point of b."""
    return torch.cdist(a.double(), b.double()).min(1).values.mean().item()


def _fake_gt(*items, only_visible=False):
    """predict_frames that returns GT (or only frame s's visible GT points, repeated to NS
    rows) of the item whose frame 0 the window starts with (in both contexts)."""
    def fake(model, windows, slots, **kw):
        item, = [it for it in items if torch.equal(windows[0, 0], it["partial"][0])]
        gt, vis = item["surface"], item["visible"]
        if only_visible:
            gt = torch.stack([gt[s][vis[s].nonzero()[:, 0]][torch.arange(NS) % int(vis[s].sum())] for s in range(S)])
        return gt[slots]                                                       # (B, K, NS, 3)
    return fake


def test_region_masks_partition_and_hand_case():
    vis = torch.tensor([[1, 0, 0, 1],
                        [0, 0, 1, 1]], dtype=torch.bool)
    r = de.region_masks(vis)
    assert torch.equal(r["visible"], vis)
    assert torch.equal(r["hidden_seen_elsewhere"], torch.tensor([[0, 0, 1, 0], [1, 0, 0, 0]], dtype=torch.bool))
    assert torch.equal(r["never_seen"], torch.tensor([[0, 1, 0, 0], [0, 1, 0, 0]], dtype=torch.bool))
    rnd = torch.rand(5, 200, generator=torch.Generator().manual_seed(0)) < 0.3
    total = sum(m.int() for m in de.region_masks(rnd).values())
    assert torch.equal(total, torch.ones_like(total))                          # every point in exactly one region
    with pytest.raises(ValueError, match="bool"):
        de.region_masks(rnd.float())


def test_gt_prediction_scores_zero_everywhere(monkeypatch):
    item = _item()
    monkeypatch.setattr(de, "predict_frames", _fake_gt(item))
    df = de.evaluate(None, [item], context="all", progress=False)
    assert len(df) == S and list(df["frame"]) == list(range(S))
    for r in ("", *(f"_{k}" for k in de.REGIONS)):
        assert np.allclose(df[f"pred_acc{r}"], 0, atol=1e-6) and np.allclose(df[f"pred_comp{r}"], 0, atol=1e-6)
    assert (df["pred_nc"] > 0.97).all()                                        # PCA normals of a sphere ~ radial
    # the region sizes partition the GT samples
    assert (df[[f"n_gt_{k}" for k in de.REGIONS]].sum(axis=1) == NS).all()
    assert (df[[f"n_gt_{k}" for k in de.REGIONS]] > 0).all().all()


def test_visible_only_prediction_leaves_hidden_regions_incomplete(monkeypatch):
    item = _item()
    monkeypatch.setattr(de, "predict_frames", _fake_gt(item, only_visible=True))
    df = de.evaluate(None, [item], progress=False)
    assert np.allclose(df["pred_acc"], 0, atol=1e-6)                           # every predicted point is on the GT
    assert np.allclose(df["pred_comp_visible"], 0, atol=1e-6)
    regions = de.region_masks(item["visible"])
    for s in range(S):
        vis_pts = item["surface"][s][item["visible"][s]]
        for k in ("hidden_seen_elsewhere", "never_seen"):
            ref = _mean_min_dist(item["surface"][s][regions[k][s]], vis_pts)
            assert ref > 0.2                                                   # clearly incomplete
            assert df[f"pred_comp_{k}"][s] == pytest.approx(ref, rel=1e-5)
        assert df["pred_comp"][s] == pytest.approx(_mean_min_dist(item["surface"][s], vis_pts), rel=1e-5)


def test_input_and_union_references(monkeypatch):
    item = _item()
    monkeypatch.setattr(de, "predict_frames", _fake_gt(item))
    df = de.evaluate(None, [item], progress=False)
    union = item["partial"].reshape(-1, 3)
    for s in range(S):
        gt, part = item["surface"][s], item["partial"][s]
        assert df["input_acc"][s] == pytest.approx(_mean_min_dist(part, gt), abs=1e-6)   # input points are GT points
        assert df["input_comp"][s] == pytest.approx(_mean_min_dist(gt, part), rel=1e-5)
        assert df["union_comp_never_seen"][s] == pytest.approx(
            _mean_min_dist(gt[de.region_masks(item["visible"])["never_seen"][s]], union), rel=1e-5)
    # static shape: the union of the inputs holds every point seen by some frame
    assert np.allclose(df["input_comp_visible"], 0, atol=1e-6)
    assert np.allclose(df["union_comp_visible"], 0, atol=1e-6)
    assert np.allclose(df["union_comp_hidden_seen_elsewhere"], 0, atol=1e-6)
    assert (df["input_comp_hidden_seen_elsewhere"] > 0.2).all()


def test_union_of_a_moving_shape_is_misaligned(monkeypatch):
    item = _item(moving=True)
    monkeypatch.setattr(de, "predict_frames", _fake_gt(item))
    df = de.evaluate(None, [item], progress=False)
    assert (df["union_acc"] > 0.1).all()                                       # points from where the sphere was
    assert (df["union_comp_hidden_seen_elsewhere"] > 0.05).all()


def test_empty_region_gives_nan_and_summarize_skips_it(monkeypatch):
    item, other = _item(all_visible_first=True), _item()                       # frame 0 of item sees everything
    monkeypatch.setattr(de, "predict_frames", _fake_gt(item, other, only_visible=True))
    df = de.evaluate(None, [item, other], progress=False)
    first = df[df["sequence"] == 0]
    assert first["pred_comp_never_seen"].isna().all() and first["pred_acc_never_seen"].isna().all()
    assert first["n_gt_never_seen"].eq(0).all()
    assert math.isnan(first["pred_comp_hidden_seen_elsewhere"].iloc[0])        # nothing hidden in frame 0
    assert not first["pred_comp_hidden_seen_elsewhere"].iloc[1:].isna().any()
    summary = de.summarize(df)
    assert summary.loc["all", "frames"] == 2 * S
    for col in ("pred_comp_never_seen", "pred_comp_hidden_seen_elsewhere", "pred_comp"):
        assert summary.loc["all", col] == pytest.approx(np.nanmean(df[col].to_numpy()))
    # predicted and input points are GT points visible in their frame, and the union's points
    # were seen by some frame: no point of theirs is nearest to a GT point of these regions
    nan_cols = {"pred_acc_hidden_seen_elsewhere", "input_acc_hidden_seen_elsewhere",
                "pred_acc_never_seen", "input_acc_never_seen", "union_acc_never_seen"}
    assert df[sorted(nan_cols)].isna().all().all()
    assert set(summary.columns[summary.isna().any()]) == nan_cols
    # a label column a caller adds (e.g. which model) groups, and is never averaged
    two = pd.concat([df.assign(model="a"), df.assign(model="b")])
    by_model = de.summarize(two, by=["model", "context"])
    assert "model" not in by_model.columns and len(by_model) == 2
    assert de.summarize(two, by=None)["pred_comp"].iloc[0] == pytest.approx(summary.loc["all", "pred_comp"])


def test_context_current_feeds_the_current_frame_in_every_slot(monkeypatch):
    item = _item(moving=True)
    calls = []

    def recorder(model, windows, slots, **kw):
        calls.append((windows.clone(), slots.clone()))
        return item["surface"][slots]

    monkeypatch.setattr(de, "predict_frames", recorder)
    de.evaluate(None, [item], context="current", progress=False)
    (windows, slots), = calls
    assert windows.shape == (S, S, N, 3) and torch.equal(slots, torch.arange(S)[:, None])
    for b in range(S):
        for slot in range(S):
            assert torch.equal(windows[b, slot], item["partial"][b])
    calls.clear()
    de.evaluate(None, [item], context="all", progress=False)
    (windows, slots), = calls
    assert torch.equal(windows, item["partial"][None]) and torch.equal(slots, torch.arange(S)[None])


def test_predict_frames_matches_reconstruct_and_evaluate_runs_a_real_model():
    torch.manual_seed(0)
    cfg = CONFIGS["smoke"]
    model = DynaTok(cfg).eval()
    item = _item(moving=True)
    w = item["partial"][None]
    a = de.predict_frames(model, w, torch.arange(S)[None], num_points=64, steps=2,
                          generator=torch.Generator().manual_seed(1))
    b = reconstruct(model, w, num_points=64, steps=2, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(a, b, atol=1e-5)
    one = de.predict_frames(model, w, torch.tensor([[2]]), num_points=64, steps=2)
    assert one.shape == (1, 1, 64, 3)
    kw = dict(num_points=64, steps=2, progress=False, seed=3)
    d1 = de.evaluate(model, [item], context="current", **kw)
    d2 = de.evaluate(model, [item], context="current", **kw)
    pd.testing.assert_frame_equal(d1, d2)                                      # deterministic for a seed
    assert np.isfinite(d1["pred_acc"]).all() and not model.training


@pytest.mark.parametrize("norm_frame", ["first", "each"])
def test_per_frame_model_is_blind_to_the_context_ablation_only_with_window_norm(norm_frame):
    """temporal=False sees no other frame, so feeding copies of frame s changes nothing as
    long as the normalisation is the window's (the ODE noise is the same: (1, S, P, 3) and
    (S, 1, P, 3) draws are the same numbers in the same order). The temporal model is not."""
    import dataclasses

    def randomised(model):  # the zero-initialised (adaLN-Zero) layers would hide Z from the decoder
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0, 0.2)
        return model

    item = _item(moving=True)
    kw = dict(num_points=64, steps=2, progress=False)
    torch.manual_seed(0)
    per_frame = randomised(DynaTok(dataclasses.replace(CONFIGS["smoke"], temporal=False, norm_frame=norm_frame)))
    a = de.evaluate(per_frame, [item], context="all", **kw)
    b = de.evaluate(per_frame, [item], context="current", norm="window", **kw)
    c = de.evaluate(per_frame, [item], context="current", norm="fed", **kw)
    assert np.allclose(a["pred_acc"], b["pred_acc"], rtol=1e-4) and np.allclose(a["pred_comp"], b["pred_comp"], rtol=1e-4)
    if norm_frame == "first":   # the shape moves: another centre ("each" centres every frame on itself anyway)
        assert not np.allclose(a["pred_acc"], c["pred_acc"], rtol=1e-3)
    torch.manual_seed(0)
    temporal = randomised(DynaTok(dataclasses.replace(CONFIGS["smoke"], norm_frame=norm_frame)))
    a = de.evaluate(temporal, [item], context="all", **kw)
    b = de.evaluate(temporal, [item], context="current", **kw)
    assert not np.allclose(a["pred_acc"], b["pred_acc"], rtol=1e-3)


def test_bad_input_errors():
    item = _item()
    with pytest.raises(ValueError, match="context"):
        de.evaluate(None, [item], context="bogus", progress=False)
    with pytest.raises(ValueError, match="norm must be"):
        de.evaluate(None, [item], norm="median", progress=False)
    with pytest.raises(ValueError, match="max_sequences"):
        de.evaluate(None, [item], max_sequences=0, progress=False)
    with pytest.raises(ValueError, match="empty"):
        de.evaluate(None, [], progress=False)
    with pytest.raises(ValueError, match="'visible'"):
        de.evaluate(None, [{k: v for k, v in item.items() if k != "visible"}], progress=False)
    bad = {**item, "visible": item["visible"][:2]}
    with pytest.raises(ValueError, match="do not agree"):
        de.evaluate(None, [bad], progress=False)
    model = DynaTok(CONFIGS["smoke"])
    with pytest.raises(ValueError, match="slots must lie"):
        de.predict_frames(model, item["partial"][None], torch.tensor([[S]]))
    with pytest.raises(ValueError, match="norm_from must be"):
        de.predict_frames(model, item["partial"][None], torch.tensor([[0]]), norm_from=item["partial"])
    with pytest.raises(ValueError, match="windows must be"):
        de.predict_frames(model, item["partial"], torch.tensor([[0]]))
    with pytest.raises(ValueError, match="empty DataFrame"):
        de.summarize(pd.DataFrame())


# ------------------------------------------------- union, floor and chance NC (known answers)
def _region_acc(cloud, gt, mask):
    """Brute force: mean distance of the cloud points whose nearest GT point lies in mask."""
    d = torch.cdist(cloud.double(), gt.double())
    near, idx = d.min(1)
    keep = mask[idx]
    return near[keep].mean().item() if keep.any() else math.nan


def _record_clouds(monkeypatch):
    """Wrap _cloud_metrics to keep the cloud each prefix was scored with."""
    seen, real = {}, de._cloud_metrics

    def recording(cloud, gt, regions, prefix):
        seen[prefix] = cloud.clone()
        return real(cloud, gt, regions, prefix)

    monkeypatch.setattr(de, "_cloud_metrics", recording)
    return seen


class _PoolDataset:
    """Dataset-like: item 0 is `item` whose `surface` is rows `rows` of the stored `pool`
    (S, M, 3), as SequenceDataset gives it; `surface_pool` returns the whole pool."""

    def __init__(self, item, pool, rows):
        self.item = {**item, "surface": pool[:, rows], "surface_normals": pool[:, rows].clone(),
                     "surface_rows": rows}
        self.pool = pool

    def __len__(self):
        return 1

    def __getitem__(self, i):
        return self.item

    def surface_pool(self, i, frames):
        assert torch.equal(frames, self.item["frames"])
        return self.pool[frames], self.pool[frames].clone()


def test_union_columns_match_brute_force_per_region(monkeypatch):
    item = _item(moving=True)                                                  # misaligned union: nonzero values
    monkeypatch.setattr(de, "predict_frames", _fake_gt(item))
    df = de.evaluate(None, [item], progress=False)
    union = item["partial"].reshape(-1, 3)
    regions = de.region_masks(item["visible"])
    for s in range(S):
        gt = item["surface"][s]
        assert df["union_acc"][s] == pytest.approx(_mean_min_dist(union, gt), rel=1e-5)
        assert df["union_comp"][s] == pytest.approx(_mean_min_dist(gt, union), rel=1e-5)
        for k in de.REGIONS:
            want = _region_acc(union, gt, regions[k][s])
            got = df[f"union_acc_{k}"][s]
            assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, rel=1e-5)
            assert df[f"union_comp_{k}"][s] == pytest.approx(_mean_min_dist(gt[regions[k][s]], union), rel=1e-5)


def test_floor_is_a_disjoint_gt_sample_with_a_known_score(monkeypatch):
    """The stored GT holds the reference sphere and the same sphere scaled by 1 + eps: the
    floor (as many points as pred) must be exactly the scaled copy, every point eps away
    from its twin, so floor_acc = floor_comp = eps in every region."""
    eps = 1e-3
    item = _item()
    base = item["surface"]
    pool = torch.cat([base, base * (1 + eps)], 1)                              # (S, 2 NS, 3)
    ds = _PoolDataset(item, pool, torch.arange(NS))
    monkeypatch.setattr(de, "predict_frames", lambda model, w, slots, **kw: base[slots])
    seen = _record_clouds(monkeypatch)
    df = de.evaluate(None, ds, progress=False)
    floor = seen["floor"]
    assert floor.shape == (S, NS, 3)
    for s in range(S):                                                         # the scaled copy, permuted
        assert {tuple(p) for p in floor[s].tolist()} == {tuple(p) for p in pool[s, NS:].tolist()}
    assert (df["floor_shared"] == 0).all()
    for r in ("", *(f"_{k}" for k in de.REGIONS)):
        assert np.allclose(df[f"floor_acc{r}"], eps, rtol=1e-3) and np.allclose(df[f"floor_comp{r}"], eps, rtol=1e-3)
    assert (df["floor_nc"] > 0.97).all()                                       # PCA normals of a dense sphere
    # the pred columns are those of the plain list (the floor takes nothing from them)
    plain = de.evaluate(None, [ds.item], progress=False)
    pred_cols = [c for c in df.columns if c.startswith(("pred_", "input_", "union_", "n_gt_"))]
    pd.testing.assert_frame_equal(df[pred_cols], plain[pred_cols])


def test_floor_falls_back_to_reference_rows_and_says_so(monkeypatch):
    item = _item()
    base = item["surface"]
    monkeypatch.setattr(de, "predict_frames", lambda model, w, slots, **kw: base[slots])
    # a list of items: only the reference is known, so the floor is the reference itself
    df = de.evaluate(None, [item], progress=False)
    assert (df["floor_shared"] == 1).all()
    assert np.allclose(df["floor_acc"], 0, atol=1e-6) and np.allclose(df["floor_comp"], 0, atol=1e-6)
    # 2 NS stored rows, NS reference, 3 NS / 2 floor points: all NS others + NS / 2 reference rows
    pool = torch.cat([base, base * 1.01], 1)
    more = torch.cat([base, base[:, : NS // 2]], 1)                            # pred of 3 NS / 2 points
    monkeypatch.setattr(de, "predict_frames", lambda model, w, slots, **kw: more[slots])
    seen = _record_clouds(monkeypatch)
    df = de.evaluate(None, _PoolDataset(item, pool, torch.arange(NS)), progress=False)
    assert seen["floor"].shape == (S, 3 * NS // 2, 3)
    assert np.allclose(df["floor_shared"], 1 / 3)
    scaled = (seen["floor"].norm(dim=-1) - 1).abs() > 5e-3                     # points of the scaled copy
    assert (scaled.sum(1) == NS).all()


def test_floor_equals_pred_when_the_model_returns_that_gt_sample(monkeypatch):
    """Scored exactly like pred: a model whose output IS the floor sample gets the floor's
    numbers in every column (acc, comp, per region and NC)."""
    item = _item(moving=True)
    g = torch.Generator().manual_seed(0)
    pool = torch.cat([item["surface"], _sphere(3 * NS)[None] + item["surface"][:, :1] - _sphere(NS)[None, :1]], 1)
    rows = torch.randperm(4 * NS, generator=g)[:NS]                            # reference: random rows
    ds = _PoolDataset(item, pool, rows)
    for seed in (0, 5):
        floor, shared = de._floor_sample(ds, 0, ds.item, NS, seed)
        assert shared == 0 and not (set(map(tuple, floor[0].tolist())) & set(map(tuple, ds.item["surface"][0].tolist())))
        monkeypatch.setattr(de, "predict_frames", lambda model, w, slots, **kw: floor[slots])
        df = de.evaluate(None, ds, progress=False, seed=seed)
        for c in [c for c in df.columns if c.startswith("pred_")]:
            np.testing.assert_allclose(df[c], df[c.replace("pred_", "floor_", 1)], rtol=1e-12, err_msg=c)
    again = de.evaluate(None, ds, progress=False, seed=5)
    pd.testing.assert_frame_equal(df, again)                                   # deterministic for the seed
    other = de.evaluate(None, ds, progress=False, seed=6)
    assert not np.allclose(df["floor_comp"], other["floor_comp"])              # another draw for another seed


def test_chance_nc_is_about_one_half(monkeypatch):
    item = _item()
    monkeypatch.setattr(de, "predict_frames", _fake_gt(item))
    df = de.evaluate(None, [item], progress=False)
    # |cos| of a uniform direction with a fixed one is uniform on [0, 1]: mean 1/2, and each
    # frame averages 2 * NS such terms (sd about 0.29 / sqrt(1200) ~ 0.008)
    assert np.allclose(df["chance_nc"], 0.5, atol=0.04)
    assert (df["pred_nc"] > df["chance_nc"] + 0.4).all()
    assert not np.allclose(df["chance_nc"], df["chance_nc"].iloc[0], atol=0)  # drawn per frame, not a constant


def test_floor_from_a_sequence_dataset_never_reuses_reference_rows(tmp_path, monkeypatch):
    """End to end with stored files: 2 NS stored GT samples, a reference of NS, a floor of
    NS: the floor is exactly the stored rows the reference left out."""
    from fourdlib.data import Sequence4D, SequenceDataset, write_manifest

    base = _sphere(2 * NS).numpy()
    dirs = np.array([[math.cos(a), math.sin(a), 0.0] for a in (0, 2 * math.pi / 3, 4 * math.pi / 3)])
    vis = (base @ dirs.T).T > 0.5
    Sequence4D(times=np.arange(S) * 0.1, partial_points=[base[v] for v in vis],
               surface_points=np.repeat(base[None], S, 0), surface_normals=np.repeat(base[None], S, 0),
               surface_visible=vis).save(tmp_path / "s.npz")
    write_manifest(tmp_path, [{"file": "s.npz", "split": "test"}], {})
    ds = SequenceDataset(tmp_path, frames=S, points=N, surface_points=NS, train=False)
    item = ds[0]
    assert torch.equal(item["surface"], torch.from_numpy(base)[item["surface_rows"]][None].expand(S, -1, -1))
    monkeypatch.setattr(de, "predict_frames", lambda model, w, slots, **kw: item["surface"][slots])
    seen = _record_clouds(monkeypatch)
    df = de.evaluate(None, ds, progress=False)
    assert (df["floor_shared"] == 0).all() and np.allclose(df["pred_acc"], 0, atol=1e-6)
    floor = {tuple(p) for p in seen["floor"][0].tolist()}
    ref = {tuple(p) for p in item["surface"][0].tolist()}
    assert len(floor) == NS and not floor & ref and floor | ref == {tuple(p) for p in base.tolist()}
    # scored like pred: brute-force distances between the two disjoint halves
    for s in range(S):
        f, gt = seen["floor"][s], item["surface"][s]
        assert df["floor_acc"][s] == pytest.approx(_mean_min_dist(f, gt), rel=1e-5) and df["floor_acc"][s] > 0
        assert df["floor_comp"][s] == pytest.approx(_mean_min_dist(gt, f), rel=1e-5)
