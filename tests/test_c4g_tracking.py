"""C4G feature lifting and point tracking: the cross-attention weights against the block's own
output, lifting a constant map, tracks through Gaussians that move by a known offset, GT tracks
on hand-made scenes (static scene + moving camera = reprojection, moving object + still
camera = its offset, and the generator's own scene flow), bad input, and the tracking table."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from einops import rearrange
from torch import nn

from fourdlib.data import capture
from fourdlib.data.synthetic import make_scene_sequence
from fourdlib.data.synthetic.primitives import make_part
from fourdlib.data.tracks import point_tracks
from fourdlib.geometry.cameras import intrinsics_from_fov, look_at, project, unproject_depth
from fourdlib.layers import Block
from fourdlib.models.c4g import (C4G, CONFIGS, ClipDataset, Gaussians, PixelGaussians, attention_weights,
                                 lift_features, model_inputs, render, tracking_table)
from fourdlib.models.c4g.evaluate import (DELTAS, TRACK_METHODS, carry_points, compositing_weights, nearest_colour,
                                          track_points, tracking_errors, tracking_summary)

SMOKE = CONFIGS["smoke"]


@pytest.fixture(scope="module")
def scene():
    """One MOVi-like scene: 4 frames of 32 x 32 RGB-D from one moving camera, with its GT mesh."""
    return make_scene_sequence(0, num_frames=4, image_size=(32, 32), n_surface=256)


@pytest.fixture(scope="module")
def views(scene):
    return ClipDataset([scene], clip_frames=4, input_frames=2, target_views=2, train=False).sequences[0]


def batch_of(scene):
    ds = ClipDataset([scene], clip_frames=4, input_frames=2, target_views=2, train=False)
    return torch.utils.data.default_collate([ds[0]])


# ------------------------------------------------------------------ attention and lifting

def test_attention_weights_reproduce_the_blocks_cross_attention():
    torch.manual_seed(0)
    blk = Block(32, 4, context_dim=32, qk_norm=True)
    x, ctx = torch.randn(2, 5, 32), torch.randn(2, 7, 32)
    A = attention_weights(blk.cross_attn, x, ctx)                             # (B, heads, Lq, Lk)
    assert A.shape == (2, 4, 5, 7) and torch.allclose(A.sum(-1), torch.ones(2, 4, 5))
    _, v = rearrange(blk.cross_attn.to_kv(ctx), "b l (two h d) -> two b h l d", two=2, h=4)
    out = blk.cross_attn.proj(rearrange(A @ v, "b h l d -> b l (h d)"))
    assert torch.allclose(out, blk.cross_attn(x, ctx), atol=1e-5)
    with pytest.raises(ValueError, match="share B"):
        attention_weights(blk.cross_attn, x, ctx[:1])


def test_decode_returns_the_last_cross_attention_and_the_same_gaussians(scene):
    torch.manual_seed(0)
    model = C4G(SMOKE).eval()
    inp = model_inputs(batch_of(scene))
    tokens = model.encoder(inp["x"], inp["times"])                            # (1, S, P, D)
    g = model.decode(tokens, inp["target_times"])
    g2, A = model.decode(tokens, inp["target_times"], return_attention=True)
    assert all(torch.equal(a, b) for a, b in zip(g, g2))
    S, P = tokens.shape[1:3]
    assert A.shape == (1, SMOKE.num_queries, S * P)
    assert torch.allclose(A.sum(-1), torch.ones(1, SMOKE.num_queries), atol=1e-5) and (A >= 0).all()
    # the hook is gone: a plain decode still returns Gaussians only
    assert isinstance(model.decode(tokens, inp["target_times"]), Gaussians)
    assert not model.dec_blocks[-1].cross_attn._forward_pre_hooks


def test_lifted_features_of_a_constant_map_are_that_constant_and_follow_the_attention():
    torch.manual_seed(0)
    B, N, S, h, w, C = 2, 6, 3, 4, 4, 5
    A = torch.rand(B, N, S * h * w).softmax(-1)
    const = torch.randn(C)
    feats = const.expand(B, S, 8 * h, 8 * w, C)                                # at pixel resolution: pooled
    assert torch.allclose(lift_features(A, feats, (h, w)), const.expand(B, N, C), atol=1e-5)
    grid = torch.randn(B, S, h, w, C)                                         # at the token grid: used as is
    want = torch.einsum("bnk,bkc->bnc", A, rearrange(grid, "b s y x c -> b (s y x) c"))
    assert torch.allclose(lift_features(A, grid, (h, w)), want, atol=1e-5)
    with pytest.raises(ValueError, match="multiple"):
        lift_features(A, torch.randn(B, S, 6, 6, C), (h, w))
    with pytest.raises(ValueError, match="tokens"):
        lift_features(A, torch.randn(B, S + 1, h, w, C), (h, w))


# ------------------------------------------------------------------ tracks through Gaussians

def _camera(eye=(0.0, -3.0, 1.0), target=(0.0, 0.0, 0.5)):
    return torch.as_tensor(intrinsics_from_fov(50, 32, 32)), look_at(torch.tensor(eye), torch.tensor(target))


def _gaussians(means, scale=0.3):
    G = means.shape[0]

    def one(a):
        return a[None, None]

    return Gaussians(one(means), one(torch.tensor([1.0, 0, 0, 0]).expand(G, 4)), one(torch.full((G, 3), scale)),
                     one(torch.full((G,), 0.9)), one(torch.rand(G, 3)), one(torch.zeros(G, 0)))


def test_compositing_weights_are_the_renderers():
    torch.manual_seed(0)
    K, c2w = _camera()
    g = _gaussians(torch.randn(5, 3) * 0.3 + torch.tensor([0.0, 0.0, 0.5]), scale=0.2)
    pixels = torch.tensor([[16, 16], [10, 20], [0, 0], [31, 5]])
    w = compositing_weights(g, K, c2w, 32, 32, pixels, chunk=2)               # chunks of 2 channels
    r = render(g, K[None, None], c2w[None, None], 32, 32)
    img, alpha = r.image[0, 0][pixels[:, 1], pixels[:, 0]], r.alpha[0, 0][pixels[:, 1], pixels[:, 0]]
    assert torch.allclose(w @ g.colors[0, 0], img, atol=1e-5)
    assert torch.allclose(w.sum(1), alpha, atol=1e-5)
    with pytest.raises(ValueError, match="outside"):
        compositing_weights(g, K, c2w, 32, 32, torch.tensor([[32, 0]]))


def test_a_gaussian_moved_by_a_known_offset_carries_the_point_by_it():
    K, c2w = _camera()
    g = _gaussians(torch.tensor([[0.0, 0.0, 0.5]]))                          # one Gaussian in the middle of the view
    x0 = torch.tensor([[0.0, -0.2, 0.5]])                                     # the surface point seen at the pixel
    pixel = project(x0, K, c2w)[0].floor().long()
    w = compositing_weights(g, K, c2w, 32, 32, pixel)
    assert float(w.sum()) > 0.5
    offset = torch.tensor([[0.3, 0.0, 0.1], [-0.2, 0.1, 0.0]])                # two other times
    x_t = carry_points(x0, w, g.means[0, 0], g.means[0, 0][None] + offset[:, None])
    assert torch.allclose(x_t, x0[None] + offset[:, None], atol=1e-6)
    # two Gaussians moving apart: the point moves by their weighted mean offset
    g2 = _gaussians(torch.tensor([[0.0, 0.0, 0.5], [0.0, 0.5, 0.5]]))
    w2 = compositing_weights(g2, K, c2w, 32, 32, pixel)
    moved = g2.means[0, 0] + torch.tensor([[1.0, 0, 0], [-1.0, 0, 0]])
    x_t = carry_points(x0, w2, g2.means[0, 0], moved[None])
    want = x0 + (w2[0, 0] - w2[0, 1]) / w2.sum() * torch.tensor([1.0, 0, 0])
    assert torch.allclose(x_t[0], want, atol=1e-6)
    # a pixel no Gaussian covers keeps its point
    assert torch.equal(carry_points(x0, torch.zeros(1, 1), g.means[0, 0], g.means[0, 0][None] + 1)[0], x0)


class _Drifting(nn.Module):
    """A stand-in model: one small Gaussian per input pixel with depth, all moving by `velocity`
    (normalised units per clip time) - the 'gaussians' track must be that motion, projected."""

    def __init__(self, velocity):
        super().__init__()
        self.velocity = nn.Parameter(torch.as_tensor(velocity, dtype=torch.float32), requires_grad=False)

    def forward(self, x, times, target_times):
        pts = x[0, ..., 3:6][x[0, ..., 6] > 0]                                # (G, 3) normalised points
        G, V = pts.shape[0], target_times.shape[1]
        means = pts[None] + target_times[0, :, None, None] * self.velocity   # (V, G, 3)

        def per_time(a):
            return a[None, None].expand(1, V, *a.shape)

        return Gaussians(means[None], per_time(torch.tensor([1.0, 0, 0, 0]).expand(G, 4)),
                         per_time(torch.full((G, 3), 0.02)), per_time(torch.ones(G)), per_time(torch.ones(G, 3)),
                         per_time(torch.zeros(G, 0)))


def test_track_points_follows_gaussians_moving_by_a_known_offset(scene, views):
    velocity = torch.tensor([0.2, -0.1, 0.05])
    inputs, frames = torch.tensor([0, 3]), torch.tensor([0, 1, 2, 3])
    pixels = torch.nonzero(views["depth"][0] > 0)[::37].flip(1)              # (Q, 2) (u, v) with depth
    pred = track_points(_Drifting(velocity), views, inputs, 0, pixels, frames, methods=["gaussians", "static"])
    inp = model_inputs({k: views[k][inputs][None] for k in ("rgb", "depth", "K", "cam_to_world", "times")}
                       | {"target_times": views["times"][frames][None]})
    t = inp["target_times"][0] - inp["target_times"][0, 0]                    # clip time since the query frame
    x0 = unproject_depth(views["depth"][0], views["K"][0], views["cam_to_world"][0])[pixels[:, 1], pixels[:, 0]]
    x_t = x0[None] + (t[:, None, None] * velocity * inp["scale"][0])          # world units
    want = project(x_t, views["K"][frames], views["cam_to_world"][frames])[0]
    assert torch.allclose(pred["gaussians"], want, atol=0.05), (pred["gaussians"] - want).abs().max()
    assert torch.allclose(pred["gaussians"][0], pixels.float() + 0.5, atol=1e-3)   # t = t0: the query pixel
    static = project(x0[None].expand(4, -1, -1), views["K"][frames], views["cam_to_world"][frames])[0]
    assert torch.allclose(pred["static"], static)


# ------------------------------------------------------------------ GT tracks

def _capture(object_motion, eyes):
    """Floor slab + a box moved by object_motion (T, 3), filmed from eyes (T, 3) at 32 x 32."""
    K = intrinsics_from_fov(50, 32, 32)
    box = make_part("box", (0.3, 0.3, 0.3), color=(200, 60, 60))
    slab = make_part("box", (2.0, 2.0, 0.05), color=(120, 120, 120))
    T = len(eyes)
    box_v = box.vertices[None] + np.array([0.0, 0.0, 0.35]) + np.asarray(object_motion)[:, None]
    slab_v = np.broadcast_to(slab.vertices, (T, *slab.vertices.shape))
    vertices = np.concatenate([box_v, slab_v], 1)
    faces = np.concatenate([box.faces, slab.faces + len(box.vertices)])
    instance = np.concatenate([np.ones(len(box.faces)), np.zeros(len(slab.faces))]).astype(np.int16)
    c2w = np.stack([look_at(np.asarray(e, np.float64), np.array([0.0, 0.0, 0.3])) for e in eyes])[:, None]
    return capture(vertices, faces, K, c2w, (32, 32), face_instance=instance, n_surface=64,
                   object_names=["floor", "box"], object_dynamic=np.array([False, True]))


def test_gt_tracks_of_a_static_scene_are_the_reprojection():
    eyes = [(0.0, -2.5, 1.5), (0.8, -2.3, 1.4), (1.5, -2.0, 1.6)]              # the camera moves, nothing else
    seq = _capture(np.zeros((3, 3)), eyes)
    tr = point_tracks(seq, 0)
    assert np.allclose(tr.uv[0], tr.pixels + 0.5, atol=1e-3) and tr.visible[0].all()
    points = unproject_depth(seq.depth[0, 0], seq.intrinsics[0, 0], seq.cam_to_world[0, 0])[tr.pixels[:, 1],
                                                                                            tr.pixels[:, 0]]
    for t in (1, 2):
        uv, _ = project(points.astype(np.float64), seq.intrinsics[t, 0].astype(np.float64),
                        seq.cam_to_world[t, 0].astype(np.float64))
        assert np.abs(tr.uv[t] - uv).max() < 1e-2                                # float32 depth vs the mesh
        assert tr.visible[t].mean() > 0.5


def test_gt_tracks_of_a_moving_object_seen_by_a_still_camera_move_by_its_offset():
    motion = np.array([[0.0, 0, 0], [0.2, 0, 0], [0.4, 0.1, 0]])
    seq = _capture(motion, [(0.0, -2.5, 1.5)] * 3)
    tr = point_tracks(seq, 0)
    on_box = tr.instance == 1
    assert on_box.any() and (~on_box).any()
    assert np.allclose(tr.points[:, on_box], tr.points[0, on_box][None] + motion[:, None], atol=1e-5)
    assert np.allclose(tr.uv[:, ~on_box], tr.uv[0, ~on_box][None], atol=1e-4)   # the floor stays put
    assert tr.visible[:, ~on_box].mean() > 0.8


def test_gt_tracks_agree_with_the_generators_scene_flow(scene):
    tr = point_tracks(scene, scene.flow_ref, scene.flow_pixels)
    assert np.allclose(tr.points, scene.flow_points[None] + scene.scene_flow, atol=1e-4)


def test_gt_tracks_refuse_bad_input(scene):
    with pytest.raises(ValueError, match="outside"):
        point_tracks(scene, 0, np.array([[32, 0]]))
    with pytest.raises(ValueError, match="query_frame"):
        point_tracks(scene, 4)
    with pytest.raises(ValueError, match="frames"):
        point_tracks(scene, 0, frames=np.array([0, 9]))
    empty = np.argwhere(scene.depth[0, 0] == 0)
    if len(empty):
        with pytest.raises(ValueError, match="sees nothing"):
            point_tracks(scene, 0, empty[:1, ::-1].copy())


# ------------------------------------------------------------------ references and the table

def test_nearest_colour_prefers_the_nearest_pixel_among_equal_colours():
    image = torch.zeros(8, 8, 3)
    image[2, 5] = torch.tensor([1.0, 0, 0])                                    # the one red pixel
    centre = torch.tensor([[1.5, 1.5], [6.5, 6.5]])
    out = nearest_colour(torch.tensor([[1.0, 0, 0], [0.0, 0, 0]]), image, centre)
    assert out.tolist() == [[5.5, 2.5], [6.5, 6.5]]                          # the red pixel; black: itself
    assert nearest_colour(torch.tensor([[1.0, 0, 0]]), image, centre[:1], window=2).tolist() == [[1.5, 1.5]]


def test_track_points_refuses_bad_input(views):
    model = C4G(SMOKE)
    inputs, frames = torch.tensor([0, 3]), torch.tensor([1, 2])
    ok = torch.nonzero(views["depth"][0] > 0)[:1].flip(1)
    with pytest.raises(ValueError, match="outside"):
        track_points(model, views, inputs, 0, torch.tensor([[0, 40]]), frames)
    with pytest.raises(ValueError, match="query_frame"):
        track_points(model, views, inputs, 7, ok, frames)
    with pytest.raises(ValueError, match="input frames"):
        track_points(model, views, inputs, 1, ok, frames)
    with pytest.raises(ValueError, match="frame indices"):
        track_points(model, views, inputs, 0, ok, torch.tensor([1, 4]))
    with pytest.raises(ValueError, match="unknown tracking method"):
        track_points(model, views, inputs, 0, ok, frames, methods=["optical flow"])
    with pytest.raises(ValueError, match="needs a C4G"):
        track_points(PixelGaussians(SMOKE), views, inputs, 0, ok, frames, methods=["features"])
    empty = torch.nonzero(views["depth"][0] == 0)[:1].flip(1)
    if len(empty):
        with pytest.raises(ValueError, match="no depth"):
            track_points(model, views, inputs, 0, empty, frames)


def test_tracking_table_columns_and_references(scene):
    torch.manual_seed(0)
    data = ClipDataset([scene], clip_frames=4, input_frames=2, target_views=2, train=False)
    errors = tracking_errors(C4G(SMOKE), data, points_per_frame=8, progress=False)
    assert {"sequence", "query_frame", "frame", "gap", "u", "v", "moving", "gt_u", "gt_v"} <= set(errors.columns)
    assert [c for c in errors.columns if c.endswith("_err")] == [f"{m}_err" for m in TRACK_METHODS]
    assert (errors["frame"] != errors["query_frame"]).all() and (errors["gap"] >= 1).all()
    still = errors[~errors["moving"]]
    assert still["static_err"].max() < 0.05      # reprojection is exact on static surfaces (float32 depth)
    table = tracking_summary(errors)
    assert table.index.names == ["points", "method"]
    assert list(table.columns) == (["EPE median (px)", "EPE mean (px)"] + [f"<{d} px" for d in DELTAS]
                                   + ["delta_avg", "pairs"])
    row = table.loc[("static scene", "zero")]
    assert 0 <= row["delta_avg"] <= 1 and row["pairs"] == len(still)
    assert np.isclose(row["EPE median (px)"], still["zero_err"].median())
    by_gap = tracking_table(C4G(SMOKE), data, by="gap", points_per_frame=8, methods=["zero", "colour"],
                            window=0, progress=False)
    assert by_gap.index.names == ["points", "method", "gap"]
    # nearest colour within a 0-px window is the query pixel itself: zero motion
    assert np.allclose(by_gap.xs("colour", level="method")["EPE mean (px)"],
                       by_gap.xs("zero", level="method")["EPE mean (px)"], equal_nan=True)
