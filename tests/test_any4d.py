"""Any4D: the factored geometry (G = s T R D, ego <-> allocentric flow, Doppler, rigid flow),
the DPT head, the data, modality dropout, the model's shapes, input checks, evaluation with
its references, the course registry, and the overfit check on one small scene."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from fourdlib.data.synthetic import make_scene_sequence
from fourdlib.geometry import (allocentric_to_egocentric, compose_points, doppler_velocity, egocentric_to_allocentric,
                               invert_rigid, matrix_to_quaternion, quaternion_to_matrix, rigid_object_flow,
                               transform_points)
from fourdlib.layers import DPTHead
from fourdlib.models import METHODS, get_method
from fourdlib.models import load_model as load_any
from fourdlib.models.any4d import (CONFIGS, EXTRA_MODALITIES, METHOD, RUNS, Any4D, check_batch, compose,
                                   depth_difference_flow, evaluate, gt_factors, loss, make_dataset, modality_dropout,
                                   model_inputs, predict, predict_pairwise, run_spec, summary, views_batch,
                                   zero_flow)
from fourdlib.models.any4d import course
from fourdlib.train import train

SMOKE = CONFIGS["smoke"]


def _pose(rng, scale=1.0):
    T = np.eye(4)
    T[:3, :3] = Rotation.random(random_state=rng).as_matrix()
    T[:3, 3] = rng.normal(size=3) * scale
    return torch.tensor(T)


@pytest.fixture(scope="module")
def scene():
    """One MOVi-like scene of rigid objects: 6 frames of 32 x 32 RGB-D from one moving camera."""
    return make_scene_sequence(0, num_frames=6, image_size=(32, 32), n_surface=256, creature_prob=0.0)


def batch_of(scene, cfg=SMOKE, train=False):
    ds = make_dataset(cfg, [scene], train=train)
    return torch.utils.data.default_collate([ds[0]])


# ------------------------------------------------------------------ geometry

def test_composition_is_exact_on_a_known_case():
    """Two pixels, a camera turned 90 degrees about z and moved by (1, 2, 3), scale 2: the
    world points are s (R (r d) + t) computed by hand."""
    rays = torch.tensor([[[0.0, 0.0, 1.0], [0.6, 0.0, 0.8]]], dtype=torch.float64)     # (1, 2, 3): H=1, W=2
    depth = torch.tensor([[2.0, 5.0]], dtype=torch.float64)                            # along the ray
    T = torch.eye(4, dtype=torch.float64)
    T[:3, :3] = torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])                    # x -> y, y -> -x
    T[:3, 3] = torch.tensor([1.0, 2.0, 3.0])
    G = compose_points(torch.tensor(2.0, dtype=torch.float64), T, rays, depth)
    # pixel 0: local (0, 0, 2) -> rotated (0, 0, 2) -> + t (1, 2, 5) -> x2 (2, 4, 10)
    # pixel 1: local (3, 0, 4) -> rotated (0, 3, 4) -> + t (1, 5, 7) -> x2 (2, 10, 14)
    assert torch.equal(G, torch.tensor([[[2.0, 4.0, 10.0], [2.0, 10.0, 14.0]]], dtype=torch.float64))
    # batched: one scale per sample, numpy in -> numpy out
    G2 = compose_points(np.array([1.0, 3.0]), np.stack([T.numpy()] * 2), np.stack([rays.numpy()] * 2),
                        np.stack([depth.numpy()] * 2))
    assert isinstance(G2, np.ndarray)
    np.testing.assert_allclose(G2[1], 1.5 * G.numpy())


def test_composition_matches_the_model_factors_of_gt(scene):
    """GT factors (rays from K, depth along the ray, poses) compose back to the unprojected depth."""
    from fourdlib.geometry import unproject_depth
    b = batch_of(scene)
    gt = gt_factors(b, model_inputs(b), "allocentric")
    want = unproject_depth(b["depth"], b["K"], b["cam_to_world"])
    v = gt["valid"]
    torch.testing.assert_close(gt["points"][v], want[v], atol=1e-5, rtol=1e-5)


def test_egocentric_allocentric_round_trip():
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.normal(size=(5, 100, 3)))
    A = torch.tensor(rng.normal(size=(5, 100, 3)))
    Wr = torch.stack([_pose(rng) for _ in range(5)])
    Wt = torch.stack([_pose(rng) for _ in range(5)])
    E = allocentric_to_egocentric(A, x, Wr, Wt)
    torch.testing.assert_close(egocentric_to_allocentric(E, x, Wr, Wt), A, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(allocentric_to_egocentric(egocentric_to_allocentric(A, x, Wr, Wt), x, Wr, Wt), A,
                               atol=1e-10, rtol=1e-10)
    # by definition: E = (point at t in camera t) - (point at ref in camera ref)
    want = transform_points(invert_rigid(Wt), x + A) - transform_points(invert_rigid(Wr), x)
    torch.testing.assert_close(E, want)
    # a static point seen by a camera that only translates by c moves by -c in the camera's frame
    I = torch.eye(4, dtype=torch.float64)
    Tc = I.clone()
    Tc[:3, 3] = torch.tensor([0.5, 0.0, 0.0])
    E0 = allocentric_to_egocentric(torch.zeros(1, 3, dtype=torch.float64), torch.ones(1, 3, dtype=torch.float64), I, Tc)
    torch.testing.assert_close(E0, torch.tensor([[-0.5, 0.0, 0.0]], dtype=torch.float64))


def test_doppler_matches_its_definition():
    rng = np.random.default_rng(1)
    p = torch.tensor(rng.normal(size=(50, 3)) + [0, 0, 4])
    E = torch.tensor(rng.normal(size=(50, 3)))
    v = doppler_velocity(p, E, 0.25)
    torch.testing.assert_close(v, (p / p.norm(dim=-1, keepdim=True) * E).sum(-1) / 0.25)
    # a point straight ahead, the camera moving towards it at 2 m/s: -2 m/s; sideways motion: 0
    ahead = torch.tensor([[0.0, 0.0, 5.0]])
    assert float(doppler_velocity(ahead, torch.tensor([[0.0, 0.0, -0.5]]), 0.25)) == pytest.approx(-2.0)
    assert float(doppler_velocity(ahead, torch.tensor([[0.3, 0.0, 0.0]]), 0.25)) == pytest.approx(0.0)
    assert float(doppler_velocity(torch.zeros(1, 3), torch.ones(1, 3), 0.25)) == 0.0     # no depth: 0
    with pytest.raises(ValueError, match="dt must be positive"):
        doppler_velocity(ahead, ahead, 0.0)


def test_dataset_doppler_is_the_radial_egocentric_flow(scene):
    """The dataset's Doppler of one pixel, recomputed by hand from the scene's object poses."""
    ds = make_dataset(SMOKE, [scene], train=False)
    item = ds[0]
    t = int(item["frames"][0])
    row, col = np.argwhere(scene.depth[t, 0] > 0)[7]
    K, W0, W1 = scene.intrinsics[t, 0], scene.cam_to_world[t, 0].astype(np.float64), \
        scene.cam_to_world[t + 1, 0].astype(np.float64)
    d = scene.depth[t, 0, row, col]
    p = np.linalg.inv(K) @ np.array([col + 0.5, row + 0.5, 1.0]) * d          # camera t
    x = W0[:3, :3] @ p + W0[:3, 3]                                            # world at t
    k = scene.masks[t, 0, row, col] - 1
    P0, P1 = scene.object_poses[t, k].astype(np.float64), scene.object_poses[t + 1, k].astype(np.float64)
    x1 = (P1 @ np.linalg.inv(P0) @ np.append(x, 1))[:3]                       # world at t + 1
    p1 = np.linalg.inv(W1) @ np.append(x1, 1)                                 # camera t + 1
    dt = scene.times[t + 1] - scene.times[t]
    want = (p / np.linalg.norm(p)) @ (p1[:3] - p) / dt
    assert float(item["doppler"][0, row, col]) == pytest.approx(want, abs=1e-3)
    assert float(item["doppler"][0][torch.from_numpy(scene.depth[t, 0] == 0)].abs().max()) == 0.0


def test_rigid_flow_equals_the_generators_mesh_flow(scene):
    """Dense flow from object poses matches the generator's exact (mesh) flow at its pixels."""
    ds = make_dataset(SMOKE, [scene], train=False)
    item = ds[0]
    assert int(item["frames"][0]) == scene.flow_ref == 0
    u, v = scene.flow_pixels.T
    R0 = scene.cam_to_world[0, 0, :3, :3]
    for i, t in enumerate(item["frames"].tolist()):
        want = scene.scene_flow[t] @ R0            # world -> reference camera (a displacement)
        np.testing.assert_allclose(item["flow"][i][v, u].numpy(), want, atol=1e-4)
    assert torch.equal(item["cam_to_world"][0], torch.eye(4))
    x = rigid_object_flow(torch.zeros(2, 3), torch.tensor([-1, 0]), torch.eye(4)[None], torch.eye(4)[None])
    assert torch.equal(x, torch.zeros(2, 3))


def test_dataset_refuses_deforming_objects():
    creature = make_scene_sequence(3, num_frames=4, image_size=(32, 32), n_surface=64, creature_prob=1.0,
                                   dynamic_prob=1.0)
    with pytest.raises(ValueError, match="deforms"):
        make_dataset(dataclasses.replace(SMOKE, clip_frames=4), [creature])


def test_quaternion_round_trip():
    R = torch.tensor(Rotation.random(200, random_state=2).as_matrix())
    q = matrix_to_quaternion(R)
    assert bool((q[:, 0] >= 0).all())
    torch.testing.assert_close(quaternion_to_matrix(q), R)


# ------------------------------------------------------------------ layers

def test_dpt_head_shapes_and_gradients():
    head = DPTHead(dim=24, out_channels=5, features=16)
    layers = [torch.randn(3, 4 * 6, 24, requires_grad=True) for _ in range(4)]
    out = head(layers, grid=(4, 6), size=(32, 48))
    assert out.shape == (3, 5, 32, 48)
    out.sum().backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in layers)   # every level is used
    assert all(p.grad is not None for p in head.parameters())                    # and every weight
    with pytest.raises(ValueError, match="4 layers"):
        head(layers[:3], grid=(4, 6), size=(32, 48))
    # a patch of 14 (DINOv2): the output is resized to any (H, W), here 14 x the grid
    assert head([t.detach() for t in layers], grid=(4, 6), size=(56, 84)).shape == (3, 5, 56, 84)


# ------------------------------------------------------------------ modality dropout

def test_modality_dropout_never_drops_every_input():
    g = torch.Generator().manual_seed(0)
    draws = [modality_dropout(EXTRA_MODALITIES, 0.7, 0.5, generator=g) for _ in range(4000)]
    assert all(d[0] == "rgb" and set(d[1:]) <= set(EXTRA_MODALITIES) for d in draws)
    # images only: 0.3 + 0.7 * 0.5^4; each extra kept: 0.7 * 0.5
    assert np.mean([d == ("rgb",) for d in draws]) == pytest.approx(0.3 + 0.7 / 16, abs=0.03)
    for m in EXTRA_MODALITIES:
        assert np.mean([m in d for d in draws]) == pytest.approx(0.35, abs=0.03)
    # even when everything is dropped, the images stay
    assert modality_dropout(EXTRA_MODALITIES, 1.0, 1.0) == ("rgb",)
    assert modality_dropout((), 1.0, 0.0) == ("rgb",)
    with pytest.raises(ValueError, match="unknown inputs"):
        modality_dropout(("lidar",))


def test_encoder_refuses_a_batch_without_images(scene):
    b = batch_of(scene)
    model = Any4D(SMOKE)
    with pytest.raises(ValueError, match="must hold 'rgb'"):
        model(model_inputs(b), keep=("depth",))
    with pytest.raises(ValueError, match="only inputs of modalities"):
        Any4D(dataclasses.replace(SMOKE, modalities="images"))(model_inputs(b), keep=("rgb", "depth"))


def test_every_parameter_gets_a_gradient_whatever_is_dropped(scene):
    """Dropped inputs are multiplied by 0, not skipped, so DistributedDataParallel never sees an
    unused parameter (ranks draw their own dropout)."""
    b = batch_of(scene)
    model = Any4D(SMOKE).train()
    for keep in (("rgb",), ("rgb", "depth", "rays", "pose", "doppler")):
        model.zero_grad()
        loss(model, b, keep=keep)[0].backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None]
        assert not missing, (keep, missing)


# ------------------------------------------------------------------ model

def test_config_rows_and_validation():
    assert list(CONFIGS) == ["smoke", "tiny", "small", "full"]
    assert CONFIGS["full"].depth == 12 and CONFIGS["full"].patch_size == 14 and CONFIGS["full"].views == 4
    for bad in (dict(motion="optical"), dict(modalities="radar"), dict(views=1), dict(patch_size=7),
                dict(p_drop=1.5), dict(views=9)):
        with pytest.raises(ValueError):
            dataclasses.replace(SMOKE, **bad)


@pytest.mark.parametrize("motion", ["allocentric", "egocentric", "points"])
def test_forward_shapes(scene, motion):
    cfg = dataclasses.replace(SMOKE, motion=motion, views=3)
    b = batch_of(scene, cfg)
    model = Any4D(cfg)
    out = predict(model, b)
    B, N, H, W = 1, 3, 32, 32
    for k in ("rays", "motion", "points", "flow", "points_n", "flow_n"):
        assert out[k].shape == (B, N, H, W, 3), k
    for k in ("depth", "conf", "zdepth"):
        assert out[k].shape == (B, N, H, W), k
    assert out["cam_to_world"].shape == (B, N, 4, 4) and out["scale"].shape == (B,)
    torch.testing.assert_close(out["rays"].norm(dim=-1), torch.ones(B, N, H, W))
    assert bool((out["conf"] >= 1).all()) and bool((out["depth"] > 0).all()) and bool((out["scale"] > 0).all())
    # M = s F and G = s T R D
    torch.testing.assert_close(out["flow"], out["scale"][:, None, None, None, None] * out["flow_n"])
    torch.testing.assert_close(out["points"], compose_points(out["scale"], out["cam_to_world"], out["rays"],
                                                             out["depth"]))
    l, logs = loss(model.train(), b)
    l.backward()
    assert math.isfinite(float(l.detach())) and {"flow", "scale", "flow_epe"} <= set(logs)


def test_motion_representations_convert_to_the_same_allocentric_flow(scene):
    """GT in each representation, passed through compose with GT factors, gives the GT flow."""
    b = batch_of(scene, dataclasses.replace(SMOKE, views=3))
    inputs = model_inputs(b)
    for motion in ("allocentric", "egocentric", "points"):
        gt = gt_factors(b, inputs, motion)
        out = {"rays": gt["rays"], "depth": gt["depth"], "cam_to_world": gt["cam_to_world"],
               "motion": gt["motion"], "scale": torch.ones(1)}
        flow = compose(out, motion)["flow"]
        v = b["flow_valid"][:, None].expand(-1, 3, -1, -1)
        torch.testing.assert_close(flow[v], b["flow"][v], atol=1e-4, rtol=1e-4)


def test_scale_loss_only_where_the_gt_is_metric(scene):
    b = batch_of(scene)
    model = Any4D(SMOKE)
    for metric in (True, False):
        model.zero_grad()
        b["metric"] = torch.tensor([metric])
        _, logs = loss(model.eval(), b)
        logs_loss = loss(model.eval(), b)[0]
        logs_loss.backward()
        grad = model.scale_head.fc2.weight.grad
        assert (float(logs["scale"]) > 0) == metric
        assert (grad is not None and float(grad.abs().sum()) > 0) == metric


def test_loss_is_scale_invariant_but_for_the_scale_term(scene):
    """Scaling the scene (depth, poses, flow, Doppler) by 3 changes only the scale loss."""
    b = batch_of(scene)
    b3 = dict(b, depth=b["depth"] * 3, flow=b["flow"] * 3, doppler=b["doppler"] * 3)
    b3["cam_to_world"] = b["cam_to_world"].clone()
    b3["cam_to_world"][..., :3, 3] *= 3
    torch.manual_seed(0)
    model = Any4D(dataclasses.replace(SMOKE, modalities="images")).eval()
    _, a = loss(model, b)
    _, c = loss(model, b3)
    for k in ("rays", "depth", "points", "trans", "quat", "flow"):
        assert float(a[k]) == pytest.approx(float(c[k]), rel=1e-4, abs=1e-6), k
    assert float(c["scale"]) == pytest.approx(abs(float(a["scale"]) - math.log(3)), abs=1e-4) or \
        float(c["scale"]) == pytest.approx(float(a["scale"]) + math.log(3), abs=1e-4)


# ------------------------------------------------------------------ bad input

def test_bad_input_gives_clear_errors(scene):
    b = batch_of(scene)
    check_batch(b)
    with pytest.raises(ValueError, match="reference view .* no valid depth"):
        check_batch(dict(b, depth=torch.zeros_like(b["depth"])))
    with pytest.raises(ValueError, match="millimetres"):
        check_batch(dict(b, depth=b["depth"] * 1000))
    with pytest.raises(ValueError, match="different sizes"):
        check_batch(dict(b, depth=b["depth"][..., :16]))
    bent = b["cam_to_world"].clone()
    bent[0, 1, :3, :3] *= 1.5
    with pytest.raises(ValueError, match="not a rigid transform"):
        check_batch(dict(b, cam_to_world=bent))
    with pytest.raises(ValueError, match="finite"):
        check_batch(dict(b, depth=b["depth"] * float("nan")))
    # per-view lists of different image sizes
    rgb = [np.zeros((32, 32, 3), np.uint8), np.zeros((24, 32, 3), np.uint8)]
    depth = [np.ones((32, 32), np.float32)] * 2
    with pytest.raises(ValueError, match="different sizes"):
        views_batch(rgb, depth, [np.eye(3)] * 2, [np.eye(4)] * 2)
    ok = views_batch([np.zeros((32, 32, 3), np.uint8)] * 2, depth, [scene.intrinsics[0, 0]] * 2,
                     [scene.cam_to_world[0, 0], scene.cam_to_world[1, 0]])
    assert ok["rgb"].shape == (1, 2, 32, 32, 3) and torch.allclose(ok["cam_to_world"][0, 0], torch.eye(4), atol=1e-6)


# ------------------------------------------------------------------ evaluation and references

def test_references_and_evaluation(scene):
    b = batch_of(scene, dataclasses.replace(SMOKE, views=3))
    assert torch.equal(zero_flow(b), torch.zeros_like(b["flow"]))
    dd = depth_difference_flow(b)
    assert dd.shape == b["flow"].shape
    v = b["flow_valid"][0]
    assert float(dd[0, 0][v].abs().max()) < 1e-4        # view 0 sees itself: no motion
    # on static pixels the depth difference is (nearly) exact where the point stays visible
    static = v & ~b["dynamic"][0]
    err = (dd[0, 1:] - b["flow"][0, 1:]).norm(dim=-1)[:, static]
    assert float(err.median()) < 0.05
    ds = make_dataset(dataclasses.replace(SMOKE, views=3), [scene], train=False)
    rows = evaluate(Any4D(dataclasses.replace(SMOKE, views=3)), ds)
    assert list(rows["method"]) == ["Any4D", "zero flow", "depth difference"]
    s = summary(rows)
    assert {"epe", "apd", "tau", "epe_dyn", "abs_rel", "delta1", "abs_rel_aligned", "epe_aligned"} <= set(s.columns)
    assert 0 <= s.loc["zero flow", "tau"] <= 1 and s.loc["zero flow", "epe"] >= 0


def test_pairwise_baseline(scene):
    """predict_pairwise: N - 1 passes of (reference, view i), put together with predict's keys and
    shapes; each view's metric output is its own pass's; with N = 2 it is the N-view pass itself."""
    cfg = dataclasses.replace(SMOKE, views=3, clip_frames=6)
    b = batch_of(scene, cfg)
    torch.manual_seed(0)
    model = Any4D(cfg).eval()
    full, pair = predict(model, b), predict_pairwise(model, b)
    assert set(pair) == set(full)
    for k in full:
        assert pair[k].shape == full[k].shape, k
    # view 2's metric points and flow are those of the pass on views (0, 2) alone
    alone = predict(model, {k: (v[:, [0, 2]] if k in ("rgb", "depth", "K", "cam_to_world", "doppler", "flow",
                                                         "frames") else v) for k, v in b.items()})
    for k in ("points", "flow", "zdepth", "rays"):
        torch.testing.assert_close(pair[k][:, 2], alone[k][:, 1])
    # the assembled factors compose back to those outputs: G = s T R D, M = s F
    torch.testing.assert_close(pair["points"], compose_points(pair["scale"], pair["cam_to_world"], pair["rays"],
                                                              pair["depth"]), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pair["flow"], compose(pair, cfg.motion)["flow"], atol=1e-5, rtol=1e-5)
    # with more than two views the passes differ from the N-view pass (view 1 sees view 2 there)
    assert float((pair["flow"][:, 1] - full["flow"][:, 1]).abs().max()) > 0
    # N = 2: exactly the model
    b2 = batch_of(scene)
    one, two = predict(model, b2), predict_pairwise(model, b2)
    for k in one:
        torch.testing.assert_close(two[k], one[k], atol=0, rtol=0)
    rows = evaluate(model, make_dataset(cfg, [scene], train=False), pairwise=True, references=False)
    assert list(rows["method"]) == ["Any4D", "Any4D pairwise"]


# ------------------------------------------------------------------ registry and course

def test_registry_and_course_runs():
    assert "any4d" in METHODS and get_method("any4d") is METHOD
    cfg, data, steps, name = run_spec("scenes_points", "smoke")
    assert cfg.motion == "points" and data == "scenes" and name == "smoke_scenes_points" and steps == SMOKE.steps
    assert run_spec("scenes_2views", "tiny")[0].views == 2
    assert run_spec("scenes_images", "tiny")[0].extra_inputs == ()
    assert set(RUNS) >= {"scenes_allocentric", "scenes_egocentric", "scenes_points"}


@pytest.mark.usefixtures("cache")   # conftest: a fresh cache, no committed runs
def test_course_run_trains_caches_and_loads():
    """smoke: the course data set (rigid scenes), 20 steps through load_or_train, then the same
    run loads from the cache and through the registry, and evaluates on the test split."""
    model, history, info = course.course_run("scenes_allocentric", "smoke", device="cpu", progress=False)
    assert info["source"] == "trained" and len(history) > 0 and isinstance(model, Any4D)
    again, _, info2 = course.course_run("scenes_allocentric", "smoke", device="cpu", progress=False)
    assert info2["source"] == "cache"
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    assert isinstance(load_any(info["path"]), Any4D)
    folder = course.course_data("scenes", "smoke", progress=False)
    rows = evaluate(model, make_dataset(model.cfg, folder, split="test", train=False))
    assert set(rows["method"]) == {"Any4D", "zero flow", "depth difference"}


def test_fourd_infer_any4d(scene, tmp_path, capsys):
    """reconstruct and `fourd infer any4d` on a saved sequence; a used --out folder and a single
    frame are refused with a message (exit code 2)."""
    from fourdlib.cli import main as fourd
    from fourdlib.models.any4d.infer import reconstruct
    torch.manual_seed(0)
    ckpt = course.save_model(tmp_path / "m.pt", Any4D(SMOKE))
    seq_path = scene.save(tmp_path / "seq.npz")
    r = reconstruct(ckpt, seq_path, frames=[0, 2, 5])
    assert r["points"].shape == (3, 32, 32, 3) and r["flow"].shape == (3, 32, 32, 3)
    assert r["cam_to_world"].shape == (3, 4, 4) and r["frames"].tolist() == [0, 2, 5]
    out = tmp_path / "out"
    assert fourd(["infer", "any4d", str(seq_path), "--checkpoint", str(ckpt), "--out", str(out)]) == 0
    saved = np.load(out / "any4d.npz")
    assert saved["frames"].tolist() == [0, 5] and saved["flow"].shape == (2, 32, 32, 3)
    assert fourd(["infer", "any4d", str(seq_path), "--checkpoint", str(ckpt), "--out", str(out)]) == 2  # not empty
    assert fourd(["infer", "any4d", str(seq_path), "--checkpoint", str(ckpt), "--out", str(tmp_path / "o2"),
                  "--frames", "3"]) == 2
    assert "at least 2" in capsys.readouterr().err


# ------------------------------------------------------------------ overfit

@pytest.mark.slow
def test_any4d_overfits_one_scene(scene):
    """ONE clip of the smoke scene (2 views at 32 x 32, all inputs, no dropout), the smoke model
    widened to D = 64 and 32 DPT channels: 600 steps (about 45 s on one busy CPU thread when
    written) take the flow on moving pixels from the zero-flow reference's ~0.48 m to ~2 cm
    and the loss far below its start. Zero flow is exact on static pixels, so on ALL pixels
    it stays a strong reference (EPE ~2 cm, tau ~0.96 here): the model must beat its EPE."""
    cfg = dataclasses.replace(SMOKE, dim=64, dpt_features=32, steps=600, lr=3e-3, modality_dropout=False,
                              warmup_steps=10)
    data = make_dataset(cfg, [scene], train=False)
    batch = torch.utils.data.default_collate([data[0]])
    torch.manual_seed(0)
    model = Any4D(cfg)
    with torch.no_grad():
        l0, _ = loss(model.eval(), batch)
    train(model, loss, torch.utils.data.ConcatDataset([data] * cfg.steps),
          cfg.train_config(seed=0, device="cpu", progress=False, log_every=50))
    with torch.no_grad():
        l1, _ = loss(model.eval(), batch)
    assert float(l1) < float(l0) - 1.0, f"loss {float(l0):.3f} -> {float(l1):.3f}"   # the conf term makes it < 0
    s = summary(evaluate(model, data))
    assert s.loc["Any4D", "epe_dyn"] < 0.05, s.T
    assert s.loc["Any4D", "epe_dyn"] < 0.1 * s.loc["zero flow", "epe_dyn"], s.T
    for ref in ("zero flow", "depth difference"):
        assert s.loc["Any4D", "epe"] < s.loc[ref, "epe"] and s.loc["Any4D", "tau_dyn"] > s.loc[ref, "tau_dyn"], s.T
    assert s.loc["Any4D", "abs_rel"] < 0.05 and s.loc["Any4D", "scale_log_err"] < 0.05, s.T
