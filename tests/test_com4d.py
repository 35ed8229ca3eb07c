"""COM4D: block roles by parity (spatial mixes objects, temporal mixes frames, static objects
skip temporal attention), per-latent times, clean latents held fixed, the sliding window,
shapes, a VAE overfit at smoke size, clear errors for bad input."""
import dataclasses
import time

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from fourdlib.data.synthetic.compositional import make_compositional_sequence
from fourdlib.models import METHODS, get_method
from fourdlib.models.com4d import (CONFIGS, COM4D, course_data, decode_occupancy, loss, make_dataset,
                                   occupancy_to_points, prepare_sequence, sample_latents, scene_inputs)
from fourdlib.models.com4d.data import CompositionalDataset, grid_lookup, object_frames, _queries
from fourdlib.models.com4d.evaluate import evaluate_sequence, penetration_iou, scene_metrics
from fourdlib.models.com4d.model import _grouped, role_masks, vae_loss
from fourdlib.layers import Block
from fourdlib.train import flow_matching as fm

CFG = CONFIGS["smoke"]  # K = 16, C = 4, D = 32, W = 4 frames, 32 x 32 images


def _randomize(module, std=0.3, seed=0):
    """Non-zero weights everywhere (adaLN-Zero and the zero output layer make a fresh DiT the
    identity / zero, which would hide every dependence)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return module


def _scene(B=1, O=3, F=4, seed=0, cfg=CFG):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(B, O, F, cfg.num_latents, cfg.latent_dim, generator=g)
    image = torch.rand(B, F, 3, cfg.image_size, cfg.image_size, generator=g) * 2 - 1
    masks = (torch.rand(B, O, F, cfg.image_size, cfg.image_size, generator=g) > 0.7).float()
    return z, image, masks


def _bump(x, *index):
    """x with random noise added at x[index] (a constant would vanish in the LayerNorms)."""
    x = x.clone()
    g = torch.Generator().manual_seed(7)
    x[index] += torch.randn(x[index].shape, generator=g)
    return x


def _changed(a, b):
    """(B, O, F) bool: which latents' outputs differ."""
    return (a - b).abs().amax((-1, -2)) > 1e-4


# ----------------------------------------------------------------------------- config, registry, shapes

def test_config_rows_and_registry():
    assert set(CONFIGS) == {"smoke", "tiny", "small", "full"}
    assert CONFIGS["full"].max_objects == 8 and CONFIGS["full"].train_frames == 8 and CONFIGS["full"].depth == 21
    assert CONFIGS["full"].steps - CONFIGS["full"].vae_steps == 20_000       # the paper's DiT steps
    assert METHODS["com4d"] == "fourdlib.models.com4d" and get_method("com4d").name == "com4d"
    with pytest.raises(ValueError, match="history_frames"):
        dataclasses.replace(CFG, history_frames=CFG.train_frames)
    with pytest.raises(ValueError, match="vae_steps <= df_start <= steps"):
        dataclasses.replace(CFG, df_start=CFG.steps + 1)


def test_forward_shapes():
    net = COM4D(CFG)
    z, image, masks = _scene(B=2, O=3, F=4)
    ctx = net.encode_condition(image, masks)
    L = (CFG.image_size // CFG.patch_size) ** 2
    assert ctx.shape == (2, 3, 4, L, CFG.dim)
    v = net(z, torch.rand(2, 3, 4), ctx, torch.ones(2, 3, dtype=torch.bool), torch.tensor([[1, 0, 0], [0, 1, 0]]).bool())
    assert v.shape == z.shape and bool((v == 0).all())                       # zero-initialised output layer
    mean, logvar = net.vae.encode(torch.rand(2, 3, 64, 3) * 2 - 1)
    assert mean.shape == logvar.shape == (2, 3, CFG.num_latents, CFG.latent_dim)
    assert net.vae.decode(mean, torch.rand(2, 3, 50, 3)).shape == (2, 3, 50)
    assert decode_occupancy(net, mean[0], 8).shape == (3, 8, 8, 8)
    assert [net.block_role(i) for i in range(4)] == ["spatial", "temporal", "spatial", "temporal"]


# ----------------------------------------------------------------------------- attention roles

def _block_and_inputs(B=1, O=3, F=4, K=5, D=16, L=6, seed=0):
    blk = _randomize(Block(D, 2, context_dim=D, cond_dim=D, qk_norm=True), seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    h = torch.randn(B, O, F, K, D, generator=g)
    cond = torch.randn(B, O, F, 1, D, generator=g).expand(B, O, F, K, D)
    ctx = torch.randn(B, O, F, L, D, generator=g)
    return blk, h, cond, ctx


def test_spatial_block_mixes_objects_not_frames():
    blk, h, cond, ctx = _block_and_inputs()
    sp, _ = role_masks(torch.ones(1, 3, dtype=torch.bool), torch.zeros(1, 3, dtype=torch.bool), 4,
                       spatial=True, temporal=True)
    out = _grouped(blk, h, cond, ctx, sp, "frame")
    h2 = _bump(h, 0, 1, 2)                                                       # object 1, frame 2
    changed = _changed(_grouped(blk, h2, cond, ctx, sp, "frame"), out)[0]    # (O, F)
    assert changed[:, 2].all()                                               # every object of frame 2
    assert not changed[:, [0, 1, 3]].any()                                   # no other frame


def test_temporal_block_mixes_frames_not_objects():
    blk, h, cond, ctx = _block_and_inputs()
    _, tp = role_masks(torch.ones(1, 3, dtype=torch.bool), torch.ones(1, 3, dtype=torch.bool), 4,
                       spatial=True, temporal=True)
    out = _grouped(blk, h, cond, ctx, tp, "object")
    h2 = _bump(h, 0, 1, 2)
    changed = _changed(_grouped(blk, h2, cond, ctx, tp, "object"), out)[0]
    assert changed[1].all()                                                  # every frame of object 1
    assert not changed[[0, 2]].any()                                         # no other object


def test_masked_and_local_paths_agree():
    """A mask that lets no latent see another gives what running each latent alone gives."""
    blk, h, cond, ctx = _block_and_inputs()
    sp, _ = role_masks(torch.ones(1, 3, dtype=torch.bool), torch.zeros(1, 3, dtype=torch.bool), 4,
                       spatial=False, temporal=False)
    local = _grouped(blk, h, cond, ctx, sp, "frame")
    eye_but_one = sp.clone()
    eye_but_one[0, 0, 0, 1] = True                                           # forces the masked path
    masked = _grouped(blk, h, cond, ctx, eye_but_one, "frame")
    assert torch.allclose(masked[:, 1:], local[:, 1:], atol=1e-5)            # objects 1, 2 saw only themselves
    assert torch.allclose(masked[:, 0, 1:], local[:, 0, 1:], atol=1e-5)


def test_dit_routes_blocks_by_parity_and_static_objects_skip_temporal():
    net = _randomize(COM4D(dataclasses.replace(CFG, depth=2)))
    z, image, masks = _scene(O=3, F=4)
    ctx = net.encode_condition(image, masks)
    valid = torch.ones(1, 3, dtype=torch.bool)
    dynamic = torch.tensor([[True, False, True]])
    t = torch.full((1, 3, 4), 0.5)
    z2 = _bump(z, 0, 1, 2)                                                       # the STATIC object, frame 2
    z3 = _bump(z, 0, 0, 2)                                                       # a dynamic object, frame 2
    # temporal blocks only (spatial local): a static object's frames stay apart
    run = lambda x: net(x, t, ctx, valid, dynamic, spatial=False, temporal=True)  # noqa: E731
    out = run(z)
    assert _changed(run(z2), out)[0].tolist() == [[False] * 4, [False, False, True, False], [False] * 4]
    assert _changed(run(z3), out)[0].tolist() == [[True] * 4, [False] * 4, [False] * 4]
    # spatial blocks only: frame 2 of every object, nothing else
    run = lambda x: net(x, t, ctx, valid, dynamic, spatial=True, temporal=False)  # noqa: E731
    changed = _changed(run(z3), run(z))[0]
    assert changed[:, 2].all() and not changed[:, [0, 1, 3]].any()
    # padding objects are seen by nobody
    run = lambda x: net(x, t, ctx, torch.tensor([[True, True, False]]), dynamic, spatial=True, temporal=True)  # noqa: E731
    z4 = _bump(z, 0, 2)
    assert not _changed(run(z4), run(z))[0, :2].any()


def test_per_latent_timesteps():
    net = _randomize(COM4D(CFG))
    z, image, masks = _scene(O=2, F=3)
    ctx = net.encode_condition(image, masks)
    args = (ctx, torch.ones(1, 2, dtype=torch.bool), torch.ones(1, 2, dtype=torch.bool))
    t = torch.full((1, 2, 3), 0.3)
    t2 = t.clone()
    t2[0, 1, 1] = 0.9
    local = dict(spatial=False, temporal=False)
    changed = _changed(net(z, t2, *args, **local), net(z, t, *args, **local))[0]
    assert changed.tolist() == [[False] * 3, [False, True, False]]          # only that latent's time moved
    assert torch.equal(net(z, 0.3, *args, **local), net(z, t, *args, **local))  # a number is every latent's time


def test_integrate_per_latent_moves_each_latent_on_its_own_clock():
    x = torch.zeros(2, 3, 4)
    t0 = torch.tensor([[0.0, 0.5, 1.0], [0.25, 1.0, 0.0]])
    out = fm.integrate_per_latent(lambda x, t: torch.ones_like(x), x, t0, 3)
    assert torch.allclose(out, (1 - t0)[..., None].expand_as(x))             # constant unit velocity
    seen = []
    fm.integrate_per_latent(lambda x, t: seen.append(t.clone()) or torch.ones_like(x), x, t0, 2)
    assert torch.allclose(seen[1], t0 + (1 - t0) / 2)
    with pytest.raises(ValueError, match="t_start"):
        fm.integrate_per_latent(lambda x, t: x, x, t0 + 1, 2)


def test_clean_latents_unchanged_by_a_sampling_step():
    net = _randomize(COM4D(CFG))
    z, image, masks = _scene(O=2, F=4)
    ctx = net.encode_condition(image, masks)
    valid, dynamic = torch.ones(1, 2, dtype=torch.bool), torch.tensor([[True, False]])
    clean = torch.zeros(1, 2, 4, dtype=torch.bool)
    clean[0, 0, :2] = True                                                   # history frames of the dynamic object
    clean[0, 1] = True                                                       # the static object
    for method in ("euler", "heun"):
        out = fm.integrate_per_latent(lambda x, t: net(x, t, ctx, valid, dynamic), z, clean.float(), 1, method)
        assert torch.equal(out[clean], z[clean])                             # bit for bit
        assert not torch.equal(out[~clean], z[~clean])


def test_sampler_sliding_window_and_static_copies():
    net = _randomize(COM4D(CFG), std=0.1)
    net.latent_scale.fill_(1.0)
    F = CFG.train_frames + 3                                                 # longer than the window
    _, image, masks = _scene(O=3, F=F)
    dynamic = torch.tensor([[False, True, False]])
    calls = []
    forward = net.forward

    def spy(z, t, *a, **k):
        calls.append((z.shape[2], t.clone()))
        return forward(z, t, *a, **k)
    net.forward = spy
    z = sample_latents(net, image, masks, dynamic, steps=2, generator=torch.Generator().manual_seed(0))
    assert z.shape == (1, 3, F, CFG.num_latents, CFG.latent_dim) and bool(torch.isfinite(z).all())
    assert all(torch.equal(z[0, o, f], z[0, o, 0]) for o in (0, 2) for f in range(F))  # static: one latent
    assert not torch.equal(z[0, 1, 1], z[0, 1, 0])
    windows = [c for c in calls if c[0] > 1]
    assert {c[0] for c in windows} == {CFG.train_frames}                    # never more frames than trained
    first_t = [c[1] for c in windows][::2]                                   # Euler, 2 steps: t at each window start
    assert bool((first_t[0][0, 1, :1] == 1).all()) and bool((first_t[0][0, 1, 1:] == 0).all())   # frame 0 clean
    assert int((first_t[1][0, 1] == 1).sum()) >= CFG.history_frames         # later windows keep history
    assert bool((first_t[0][0, [0, 2]] == 1).all())                          # static objects are clean throughout
    # baselines run too
    stitched = sample_latents(net, image, masks, dynamic, mix=False, steps=1)
    per_frame = sample_latents(net, image, masks, dynamic, frame_by_frame=True, steps=1)
    assert stitched.shape == per_frame.shape == z.shape


# ----------------------------------------------------------------------------- bad input

def test_bad_input_gives_clear_errors():
    net = COM4D(CFG)
    net.latent_scale.fill_(1.0)
    _, image, masks = _scene(O=2, F=CFG.train_frames)
    dyn = torch.tensor([[True, False]])
    with pytest.raises(ValueError, match="no objects"):
        sample_latents(net, image, masks[:, :0], dyn[:, :0])
    empty = masks.clone()
    empty[0, 1] = 0
    with pytest.raises(ValueError, match="mask of object 1 .* covers nothing"):
        sample_latents(net, image, empty, dyn)
    many = masks[:, :1].expand(1, CFG.max_objects + 1, *masks.shape[2:])
    with pytest.raises(ValueError, match="at most max_objects=8"):
        sample_latents(net, image, many, torch.zeros(1, CFG.max_objects + 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="shorter than the window"):
        sample_latents(net, image[:, :2], masks[:, :, :2], dyn)
    with pytest.raises(ValueError, match="never trained"):
        sample_latents(COM4D(CFG), image, masks, dyn)
    with pytest.raises(ValueError, match="latents"):
        net(torch.zeros(1, 2, 3, 4), 0.5, None, None, None)
    seq = make_compositional_sequence(1, "static", num_frames=2, image_size=(32, 32), n_surface=512)
    with pytest.raises(ValueError, match="at most max_objects=1"):
        prepare_sequence(seq, dataclasses.replace(CFG, max_objects=1))
    with pytest.raises(ValueError, match="image_size"):
        prepare_sequence(seq, dataclasses.replace(CFG, image_size=64))


# ----------------------------------------------------------------------------- data, VAE overfit, training

@pytest.fixture(scope="module")
def smoke_folder():
    return course_data("compositional", "smoke", progress=False)


def test_dataset_pairs_and_never_mixed(smoke_folder, tmp_path):
    ds = make_dataset(CFG, smoke_folder, "train")
    item = ds[0]
    st, dy = item["static"], item["dynamic"]
    assert st["surface"].shape[:2] == (CFG.max_objects, 1) and dy["surface"].shape[:2] == (1, CFG.train_frames)
    assert int(st["obj_valid"].sum()) >= 1 and not st["dynamic"].any() and dy["dynamic"].all()
    assert set(torch.unique(st["occ"]).tolist()) <= {0.0, 1.0}
    s = ds.static[0]                                                         # static objects are stored once
    assert all(len(a) == 1 for a in s["surface"] + s["occ"]) and len(ds.dynamic[0]["occ"][0]) > 1
    with pytest.raises(ValueError, match="mixed sequence"):
        CompositionalDataset(smoke_folder, CFG, split="eval_mixed")


def test_vae_overfits_a_few_shapes_quickly(smoke_folder):
    """The smoke VAE fits one scene's objects and one creature frame (fresh queries every
    step, so it must fit the shapes, not the samples) well within a minute of CPU (~5 s)."""
    torch.manual_seed(0)
    ds = make_dataset(CFG, smoke_folder, "train")
    s, d = ds.static[0], ds.dynamic[0]
    first = lambda p, key: object_frames(p[key], range(len(p["names"])), [0])  # noqa: E731
    surface = torch.from_numpy(np.concatenate([first(s, "surface"), first(d, "surface")]))[None]  # (1, n, 1, N, 3)
    grid = torch.from_numpy(np.concatenate([first(s, "occ"), first(d, "occ")]))[None]             # (1, n, 1, R, R, R)
    net = COM4D(CFG)
    opt = torch.optim.Adam(net.vae.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    part = lambda q: {"surface": surface, "queries": q, "occ": grid_lookup(grid, q),  # noqa: E731
                      "obj_valid": torch.ones(surface.shape[:2], dtype=torch.bool)}
    start = time.process_time()
    first = float(vae_loss(net, part(_queries(surface, CFG.occ_points, CFG.near_std, gen)))[1]["bce"])
    for _ in range(250):
        value, logs = vae_loss(net, part(_queries(surface, CFG.occ_points, CFG.near_std, gen)))
        opt.zero_grad()
        value.backward()
        opt.step()
    assert time.process_time() - start < 60
    assert float(logs["bce"]) < 0.35 * first, (first, float(logs["bce"]))
    net.eval()
    with torch.no_grad():
        mean, _ = net.vae.encode(surface)
        solid = decode_occupancy(net, mean, CFG.occ_resolution) > 0.5
    inter = (solid & grid).flatten(3).sum(-1).float()
    union = (solid | grid).flatten(3).sum(-1).float()
    # the smoke grid is 16^3 and these objects fill 24-96 cells: 250 steps reach IoU ~0.4
    # (800 steps ~0.4-0.5); the check is that decoding finds the shapes, not chance (~0.01)
    assert float((inter / union).mean()) > 0.2
    assert len(occupancy_to_points(solid[0, 0, 0])) > 0


def test_dit_overfits_one_scene_and_one_animation_to_the_vae_floor(smoke_folder):
    """The implementation learns: trained (200 VAE + 400 DiT steps, ~15 s of CPU) on one static
    scene and one animation, sampling them (attention mixing, the animation through the
    sliding window) lands at the VAE's own reconstruction of the GT, far from the CD of
    decoding noise latents (what the sampler returns before training)."""
    torch.manual_seed(0)
    cfg = dataclasses.replace(CFG, vae_steps=200, df_start=500, steps=600, single_prob=0.0)
    ds = make_dataset(cfg, smoke_folder, "train")
    ds.static, ds.dynamic = ds.static[:1], ds.dynamic[:1]
    net = COM4D(cfg)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.0)
    for _ in range(cfg.steps):
        value, _ = loss(net, default_collate([ds[0], ds[0]]))
        opt.zero_grad()
        value.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
    net.eval()
    for p, frames in ((ds.static[0], [0]), (ds.dynamic[0], None)):
        res = evaluate_sequence(net, p, ("mix", "vae_floor"), frames=frames)
        inp = scene_inputs(p, frames)
        noise = torch.randn(*inp["surface"].shape[1:3], cfg.num_latents, cfg.latent_dim) * net.latent_scale
        chance = scene_metrics(decode_occupancy(net, noise, cfg.occ_resolution), inp["surface"][0], inp["occ"][0])
        floor = res["vae_floor"]["CD"]
        assert res["mix"]["CD"] < 1.15 * floor < chance["CD"], (res["mix"]["CD"], floor, chance["CD"])


def test_training_stages_and_evaluation_run(smoke_folder):
    torch.manual_seed(0)
    cfg = dataclasses.replace(CFG, vae_steps=2, df_start=4, steps=6)
    ds = make_dataset(cfg, smoke_folder, "train")
    batch = default_collate([ds[0], ds[1]])
    net = COM4D(cfg)
    keys = []
    for _ in range(cfg.steps):
        value, logs = loss(net, batch)
        value.backward()
        keys.append(sorted(logs))
    assert keys[0] == ["bce", "kl", "occ_acc"] and keys[2] == keys[3] == ["clean_frac", "flow_dynamic", "flow_static"]
    assert not np.isnan(float(logs["flow_static"])) and int(net.step) == cfg.steps
    assert float(net.latent_scale) > 0
    seq = make_compositional_sequence(5, "mixed", num_frames=cfg.train_frames + 1, image_size=(32, 32), n_surface=1024)
    p = prepare_sequence(seq, cfg)
    res = evaluate_sequence(net, p, seed=0)
    assert set(res) == {"mix", "stitched", "frame_by_frame", "vae_floor"}
    for m in res.values():
        assert len(m["cd_per_frame"]) == cfg.train_frames + 1 and 0 <= m["F-score@0.1"] <= 1
    assert scene_inputs(p)["masks"].shape[1] == len(p["names"])


def test_penetration_iou():
    a = torch.zeros(3, 4, 4, 4, dtype=torch.bool)
    a[0, :2] = True
    a[1, 1:3] = True                                                         # overlaps object 0 in one slab
    assert penetration_iou(a[:1]) != penetration_iou(a[:1])                 # nan: a single object
    assert penetration_iou(a[:2]) == pytest.approx(1 / 3)
    a[2, 3] = True                                                           # touches nobody
    assert penetration_iou(a) == pytest.approx((1 / 3 + 0 + 0) / 3)


def test_occupancy_to_points_and_mesh():
    occ = torch.zeros(8, 8, 8, dtype=torch.bool)
    occ[2:6, 2:6, 2:6] = True                                                # a 4^3 cube: 64 cells, 8 inside
    pts = occupancy_to_points(occ)
    assert pts.shape == (64 - 8, 3) and float(pts.abs().max()) == pytest.approx(0.375)
    assert occupancy_to_points(torch.zeros(4, 4, 4, dtype=torch.bool)).shape == (0, 3)
    pytest.importorskip("skimage")
    from fourdlib.models.com4d.model import occupancy_to_mesh
    v, f = occupancy_to_mesh(occ.float())
    assert f.shape[1] == 3 and np.abs(v).max() <= 0.5 + 1e-6                 # the cube's faces at +-0.5


def test_fourd_infer_com4d(tmp_path, capsys):
    from fourdlib.cli import main as fourd
    from fourdlib.models.com4d import save_model
    net = COM4D(CFG)
    net.latent_scale.fill_(1.0)
    ckpt = save_model(tmp_path / "run.pt", net)
    seq = make_compositional_sequence(2, "mixed", num_frames=CFG.train_frames + 1, image_size=(32, 32), n_surface=512)
    seq.save(tmp_path / "scene.npz")
    assert fourd(["infer", "com4d", str(tmp_path / "scene.npz"), "--checkpoint", str(ckpt),
                  "--out", str(tmp_path / "out")]) == 0
    r = np.load(tmp_path / "out" / "com4d.npz")
    O = int((~seq.object_background).sum())
    assert r["latents"].shape[:2] == (O, CFG.train_frames + 1) and r["occupancy"].shape[:2] == (O, CFG.train_frames + 1)
    assert len(r["points"]) == len(r["points_object"]) == len(r["points_frame"])
    short = make_compositional_sequence(2, "mixed", num_frames=2, image_size=(32, 32), n_surface=512)
    short.save(tmp_path / "short.npz")
    assert fourd(["infer", "com4d", str(tmp_path / "short.npz"), "--checkpoint", str(ckpt),
                  "--out", str(tmp_path / "out2")]) == 2
    assert "shorter than the window" in capsys.readouterr().err


def test_dataset_from_prepared_sequences():
    """CompositionalDataset.from_prepared (the notebooks' overfit: a mixed scene cut into its
    static layout and its animation) gives the same pairs and refuses what training never takes."""
    seq = make_compositional_sequence(3, "mixed", num_frames=CFG.train_frames + 1, image_size=(32, 32), n_surface=1024,
                                      num_objects=(2, 2), num_creatures=(1, 1))
    p = prepare_sequence(seq, CFG)
    still = [o for o in range(len(p["names"])) if not p["dynamic"][o]]
    mover = [o for o in range(len(p["names"])) if p["dynamic"][o]]

    def part(objects):
        return dict(surface=[p["surface"][o] for o in objects], occ=[p["occ"][o] for o in objects],
                    masks=p["masks"][objects], rgb=p["rgb"], dynamic=p["dynamic"][objects],
                    names=[p["names"][o] for o in objects])
    ds = CompositionalDataset.from_prepared(CFG, [part(still)], [part(mover)])
    item = ds[0]
    assert item["static"]["surface"].shape[:2] == (CFG.max_objects, 1)
    assert int(item["static"]["obj_valid"].sum()) == len(still)
    assert item["dynamic"]["surface"].shape[:2] == (1, CFG.train_frames) and item["dynamic"]["dynamic"].all()
    with pytest.raises(ValueError, match="dynamic object"):
        CompositionalDataset.from_prepared(CFG, [p], [part(mover)])          # the mixed scene as a "layout"
    with pytest.raises(ValueError, match="one dynamic object"):
        CompositionalDataset.from_prepared(CFG, [part(still)], [p])
    short = {**part(mover), "rgb": p["rgb"][:2]}
    with pytest.raises(ValueError, match="fewer than the window"):
        CompositionalDataset.from_prepared(CFG, [part(still)], [short])
