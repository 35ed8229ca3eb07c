"""Native 4D VAE (fourdlib.models.native4d_vae): STD / STU blocks, the VAE, its losses, its config."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from fourdlib.data.synthetic.primitives import make_primitive_sequence
from fourdlib.models.native4d_vae import (CONFIGS, STD, STU, Native4DVAE, Native4DVAEConfig, bce_dice, child_sites,
                                          choose_lambda, collate, kl_divergence, loss, occupancy_iou, reconstruct,
                                          sequence_item)
from fourdlib.models.native4d_vae.model import (PointMapVAE, build_model, pointmap_frames, pointmap_voxels,
                                                render_loss)
from fourdlib.sparse import SparseTensor

CFG = dataclasses.replace(CONFIGS["smoke"], train_frames=4)  # lambda up to 2


@pytest.fixture(scope="module")
def batch():
    seq = make_primitive_sequence(0, num_frames=4, image_size=(32, 32))
    return collate([sequence_item(seq, CFG.resolution, CFG.render_size)])


def random_frames(F=4, R=8, P=60, C=16, seed=0):
    """F frames of random distinct cells of an R^3 grid, stride 1."""
    g = torch.Generator().manual_seed(seed)
    coords, feats = [], []
    for _ in range(F):
        cells = torch.randperm(R**3, generator=g)[:P]
        coords.append(torch.stack([cells // (R * R), cells // R % R, cells % R], 1))
        feats.append(torch.randn(P, C, generator=g))
    return SparseTensor.from_list(coords, feats)


def test_std_outputs_the_strided_coarse_cells_once_per_lambda_frames():
    torch.manual_seed(0)
    x = random_frames()
    std = STD(16, heads=2, window=2, mlp_ratio=2.0, max_period=100.0)
    t = torch.arange(4.0)
    for lam in (1, 2, 4):
        y = std(x, t, lam)
        assert y.batch_size == 4 // lam and y.stride == 2 and y.num_channels == 16
        for g in range(4 // lam):  # group g = union over its frames of unique floor(cell / 2)
            want = {tuple(c) for f in range(g * lam, (g + 1) * lam) for c in (x.sample(f)[0] // 2).tolist()}
            got = [tuple(c) for c in y.sample(g)[0].tolist()]
            assert len(got) == len(set(got)) and set(got) == want


def test_std_window_attention_is_local():
    torch.manual_seed(0)
    x = random_frames(F=4, R=8)
    std = STD(16, heads=2, window=2, mlp_ratio=2.0, max_period=100.0).eval()  # windows: 4^3 fine cells x lam frames
    t = torch.arange(4.0)
    y0 = std(x, t, 2)
    # perturb every fine token of one window: group 0 (frames 0, 1), fine cells in [0, 4)^3
    w = (x.coords[:, 0] < 2) & (x.coords[:, 1:] < 4).all(1)
    assert w.any()
    x2 = SparseTensor(x.coords, x.feats + 5 * w[:, None].float(), x.offsets)
    y1 = std(x2, t, 2)
    assert torch.equal(y0.coords, y1.coords)
    inside = (y0.coords[:, 0] == 0) & (y0.coords[:, 1:] < 2).all(1)              # coarse cells of that window
    assert not torch.allclose(y0.feats[inside], y1.feats[inside])
    torch.testing.assert_close(y0.feats[~inside], y1.feats[~inside], rtol=0, atol=1e-6)


def test_lambda_is_the_largest_that_divides_every_sequence():
    assert choose_lambda([8, 4], 4) == 4
    assert choose_lambda([8, 6], 4) == 2
    assert choose_lambda([8, 12], 2) == 2
    assert choose_lambda([3, 8], 4) == 1
    assert choose_lambda([5], 4) == 1


def test_stu_restores_the_frame_count_on_the_children():
    torch.manual_seed(0)
    x = random_frames(F=2, R=4, P=20, C=16)
    x = SparseTensor(x.coords, x.feats, x.offsets, stride=2)                     # 2 groups on a stride-2 grid
    stu = STU(16, 8, heads=2, window=2, mlp_ratio=2.0, max_period=100.0)
    for lam in (1, 2, 4):
        y = stu(x, torch.arange(2.0 * lam), lam)
        assert y.batch_size == 2 * lam and y.stride == 1 and y.num_channels == 8
        for f in range(2 * lam):  # frame f = every child of group f // lam's cells
            assert len(y.sample(f)[0]) == 8 * len(x.sample(f // lam)[0])
    assert len(child_sites(x)) == 8 * len(x)


def test_vae_forward_shapes_and_ranges(batch):
    torch.manual_seed(0)
    model = Native4DVAE(CFG).eval()
    out = model(batch, gt_pruning=True)  # untrained, its own pruning keeps almost nothing
    assert out["lam"] == 2
    L = CFG.latent_resolution
    assert out["mean"].shape == (2, CFG.latent_channels, L, L, L) == out["logvar"].shape
    sites = out["sites"]
    assert sites.batch_size == 4 and sites.stride == 1
    assert out["occ_logit"].shape == (len(sites),) and out["rgb"].shape == (len(sites), 3)
    assert len(sites) > 0 and out["rgb"].abs().max() <= 1 and int(sites.coords[:, 1:].max()) < CFG.resolution
    coords, colors = reconstruct(model, batch)
    assert coords.shape[1] == 4 and colors.shape == (len(coords), 3)
    assert (colors >= 0).all() and (colors <= 1).all()
    assert model(batch, lam=1)["mean"].shape[0] == 4
    with pytest.raises(ValueError, match="lambda"):
        model(batch, lam=3)


def test_pruning_follows_the_logit_threshold(batch):
    torch.manual_seed(0)
    model = Native4DVAE(CFG).eval()
    n = {}
    for tau in (-1e9, 1e9):
        model.cfg = dataclasses.replace(CFG, prune_logit=tau)
        out = model(batch, gt_pruning=False)
        before = len(out["prune"][0][0])
        n[tau] = len(out["sites"])
        assert n[tau] == 8 * int((out["prune"][0][1] > tau).sum()) and n[tau] <= 8 * before
    assert n[1e9] == 0 and n[-1e9] > 0
    model.cfg = dataclasses.replace(CFG, prune_logit=1e9)               # nothing predicted, GT kept
    assert len(model(batch, gt_pruning=True)["sites"]) > 0


def test_each_loss_term_is_finite_and_differentiable(batch):
    torch.manual_seed(0)
    # the GT structure kept: an untrained decoder prunes (nearly) every site, leaving the final heads no input
    model = Native4DVAE(dataclasses.replace(CFG, prune_with_gt=True)).train()
    total, logs = loss(model, batch)
    for name in ("bce", "dice", "rgb", "render", "kl"):
        assert torch.isfinite(logs[name]), name
    total.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    # each term alone reaches the parameters
    out = model(batch)
    occ = torch.sigmoid(out["occ_logit"])
    r = render_loss(batch, out["sites"], occ, (out["rgb"] + 1) / 2, CFG.render_size)
    gr = torch.autograd.grad(r, [model.rgb_head.weight, model.occ_head.weight], retain_graph=True)
    assert all(g.abs().sum() > 0 for g in gr)
    b, d = bce_dice(out["occ_logit"], out["occ_logit"] > 0)
    assert torch.autograd.grad(b + d, model.occ_head.weight)[0].abs().sum() > 0


def test_loss_stays_finite_when_the_decoder_prunes_everything(batch):
    # training on the predicted structure alone (prune_with_gt=False) prunes every site early on
    torch.manual_seed(0)
    model = Native4DVAE(dataclasses.replace(CFG, prune_logit=1e9, prune_with_gt=False)).train()
    total, logs = loss(model, batch)
    assert logs["sites"] == 0 and torch.isfinite(total)
    assert float(logs["dice_final"]) == pytest.approx(1.0)      # nothing found
    total.backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())


def test_kl_is_zero_at_the_prior_and_bce_dice_at_the_target():
    z = torch.zeros(2, 4, 3, 3, 3)
    assert float(kl_divergence(z, z)) == 0.0
    assert float(kl_divergence(z + 1, z)) == pytest.approx(0.5)
    target = torch.tensor([1.0, 0, 1, 0])
    bce, dice = bce_dice((target * 2 - 1) * 50, target)
    assert float(bce) < 1e-6 and float(dice) < 1e-6
    assert occupancy_iou(torch.tensor([[0, 1, 1, 1], [0, 2, 2, 2]]), torch.tensor([[0, 1, 1, 1]])) == 0.5


def test_bad_config_values_name_the_field():
    for field, value in [("resolution", 18), ("temporal_ratio", 3), ("dim", 12), ("heads", 0),
                         ("prune_logit", "x"), ("w_kl", -1.0), ("train_frames", 6)]:
        with pytest.raises(ValueError, match=field):
            Native4DVAEConfig(**{**dataclasses.asdict(CONFIGS["tiny"]), field: value})
    for c in CONFIGS.values():
        assert c.resolution % c.latent_resolution == 0


@pytest.mark.slow
def test_overfits_one_sequence(batch):
    cfg = dataclasses.replace(CFG, dim=32, stem_channels=16)
    torch.manual_seed(0)
    model = Native4DVAE(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    first = None
    for _ in range(STEPS):
        total, logs = loss(model, batch)
        first = float(total) if first is None else first   # not bce_final: 0 while nothing is decoded yet
        opt.zero_grad()
        total.backward()
        opt.step()
    coords, _ = reconstruct(model.eval(), batch)
    iou = occupancy_iou(coords, batch["coords"])
    print(f"loss {first:.3f} -> {float(total):.3f}, reconstruction IoU {iou:.3f}")
    assert float(total) < 0.3 * first
    assert iou > 0.5


STEPS = 150


def test_sequence_windows_keep_frame_numbers_and_restart_times(batch):
    from fourdlib.models.native4d_vae import sequence_windows
    from fourdlib.models.native4d_vae.model import frame_times
    item = {k: v for k, v in batch.items()}                             # one 4-frame sequence
    w = sequence_windows(item, 3)                                       # windows of 3 and 1 frames
    assert w["num_frames"].tolist() == [3, 1]
    assert torch.equal(w["coords"], item["coords"]) and torch.equal(w["colors"], item["colors"])
    assert frame_times(w["num_frames"]).tolist() == [0, 1, 2, 0]      # time restarts in every window
    assert torch.equal(sequence_windows(item, 8)["num_frames"], item["num_frames"])
    with pytest.raises(ValueError, match="length"):
        sequence_windows(item, 0)


# ------------------------------------------------------------------ the PointMapVAE baseline (table 1, row 1)

PM = dataclasses.replace(CFG, representation="pointmap")


@pytest.fixture(scope="module")
def pm_batch():
    seq = make_primitive_sequence(0, num_frames=4, image_size=(32, 32))
    item = sequence_item(seq, PM.resolution, PM.render_size)
    item["pointmap"] = pointmap_frames(seq, item, PM.resolution)
    return seq, collate([item])


def test_gt_pointmap_voxelises_to_the_naive_voxels(pm_batch):
    from fourdlib.data.voxels import sequence_voxels

    seq, batch = pm_batch
    pm = batch["pointmap"]
    assert pm.shape == (4, 7, 32, 32)
    valid = pm[:, 6] > 0.5
    assert torch.equal(valid, torch.as_tensor(seq.depth[:, 0] > 0))
    assert pm[:, :3].abs().max() <= 1 and (pm[:, :6][~valid[:, None].expand(-1, 6, -1, -1)] == 0).all()
    coords, colors = pointmap_voxels(pm, PM.resolution)
    naive = sequence_voxels(seq, resolution=PM.resolution, method="points")   # same grid: bounds from every pixel
    assert torch.equal(coords, torch.as_tensor(naive.coords))                 # both sorted by (frame, i, j, k)
    torch.testing.assert_close(colors, torch.as_tensor(naive.colors), atol=2e-3, rtol=0)


def test_pointmap_vae_latent_is_the_voxel_latents_size(pm_batch, batch):
    _, b = pm_batch
    torch.manual_seed(0)
    out = build_model(PM)(b)
    assert isinstance(build_model(PM), PointMapVAE) and isinstance(build_model(CFG), Native4DVAE)
    assert out["xyz"].shape == (4, 3, 32, 32) and out["rgb"].abs().max() <= 1 and out["mask_logit"].shape == (4, 32, 32)
    voxel_z = Native4DVAE(CFG)(batch, lam=CFG.temporal_ratio)["z"]
    assert out["z"].numel() == voxel_z.numel()                                  # images 2R wide: equal budgets
    assert out["z"].shape[0] == 4 // PM.temporal_ratio                          # one latent per lambda frames


def test_pointmap_vae_refuses_what_it_cannot_encode(pm_batch, batch):
    _, b = pm_batch
    model = build_model(PM)
    with pytest.raises(ValueError, match="pointmaps"):
        model(batch)                                                            # a voxel batch: no pointmap
    odd = {**b, "pointmap": b["pointmap"][:3], "num_frames": torch.tensor([3])}
    with pytest.raises(ValueError, match="multiple of lambda"):
        model(odd)
    with pytest.raises(ValueError, match="multiples of"):
        model({**b, "pointmap": b["pointmap"][..., :30, :30]})
    with pytest.raises(ValueError, match="representation"):
        dataclasses.replace(PM, representation="mesh")


PM_STEPS = 300


def test_pointmap_vae_overfits_one_sequence(pm_batch):
    _, b = pm_batch
    torch.manual_seed(0)
    model = build_model(dataclasses.replace(PM, dim=32, stem_channels=16))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    first = None
    for _ in range(PM_STEPS):
        total, logs = loss(model, b)                                            # dispatches to pointmap_loss
        first = float(total.detach()) if first is None else first
        opt.zero_grad()
        total.backward()
        opt.step()
    naive, _ = pointmap_voxels(b["pointmap"], PM.resolution)
    coords, colors = reconstruct(model.eval(), b)
    iou = occupancy_iou(coords, naive)
    print(f"loss {first:.3f} -> {float(total):.3f}, mask IoU {float(logs['mask_iou']):.3f}, voxel IoU {iou:.3f}")
    assert float(total) < 0.3 * first and float(logs["mask_iou"]) > 0.8
    assert iou > 0.5 and colors.min() >= 0 and colors.max() <= 1
