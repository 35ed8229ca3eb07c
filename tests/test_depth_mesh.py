"""Depth map -> mesh (`fourdlib.geometry.depth_mesh`) and depth video -> dynamic coloured
voxels (`fourdlib.data.voxels`), the Native 4D VAE's preprocessing (Sec. 3.1, fig. 3)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fourdlib.data.voxels import SequenceVoxels, sequence_bounds, sequence_voxels
from fourdlib.geometry import depth_to_mesh, intrinsics_from_fov, look_at, voxelize_mesh

H, W = 12, 16


def _K(f=100.0, h=H, w=W):
    return np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]], np.float32)


def _areas(v, f):
    t = v[f].astype(np.float64)                                                # (F, 3, 3)
    return 0.5 * np.linalg.norm(np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]), axis=-1)


# ------------------------------------------------------------------------------ depth_to_mesh

def test_fronto_plane_gives_full_grid_facing_the_camera():
    K = _K()
    v, f, c = depth_to_mesh(np.full((H, W), 2.0, np.float32), K)
    assert isinstance(v, np.ndarray) and v.dtype == np.float32 and v.shape == (H * W, 3)
    assert f.dtype == np.int64 and f.shape == (2 * (H - 1) * (W - 1), 3) and c is None
    assert np.allclose(v[:, 2], 2.0)
    # the triangles tile the rectangle spanned by the pixel centres, without overlap
    assert _areas(v, f).sum() == pytest.approx((W - 1) * 2 / 100 * (H - 1) * 2 / 100, rel=1e-5)
    t = v[f]
    n = np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0])
    assert (n[:, 2] < 0).all()                                                 # normals toward the camera (-z)


def test_tilted_plane_in_world_lies_on_the_plane_and_is_covered():
    # world plane z = 0.1 seen from above at 35-75 degrees of elevation: no triangle is stretched
    c2w = look_at(np.array([0.0, -1.0, 1.5]), np.array([0.0, 0.0, 0.1]))
    K = intrinsics_from_fov(50, H, W)
    Kt, c = torch.as_tensor(K, dtype=torch.float64), torch.as_tensor(c2w, dtype=torch.float64)
    v_, u_ = torch.meshgrid(torch.arange(H, dtype=torch.float64) + 0.5, torch.arange(W, dtype=torch.float64) + 0.5,
                            indexing="ij")
    ray = torch.stack([(u_ - Kt[0, 2]) / Kt[0, 0], (v_ - Kt[1, 2]) / Kt[1, 1], torch.ones_like(u_)], -1)  # (H, W, 3)
    ray_w = ray @ c[:3, :3].T                                                  # z = 1 ray in world axes
    depth = ((0.1 - c[2, 3]) / ray_w[..., 2]).float().numpy()                 # z-depth where the ray meets z = 0.1
    v, f, _ = depth_to_mesh(depth, K, c2w)
    assert len(f) == 2 * (H - 1) * (W - 1)
    assert np.abs(v[:, 2] - 0.1).max() < 1e-5
    # the mesh covers the quadrilateral of the four corner pixels' points (lines map to lines)
    X = v.reshape(H, W, 3).astype(np.float64)
    a, b, cc, d = X[0, 0], X[0, -1], X[-1, 0], X[-1, -1]
    quad = 0.5 * (np.linalg.norm(np.cross(b - a, d - a)) + np.linalg.norm(np.cross(d - a, cc - a)))
    assert _areas(v, f).sum() == pytest.approx(quad, rel=1e-4)


@pytest.mark.parametrize("footprints, kept", [(3, True), (6, False)])
def test_depth_step_is_cut_by_the_footprint_rule(footprints, kept):
    # left half at 1 m, right half `footprints` pixel footprints (1 cm each at f = 100) behind it
    depth = np.ones((H, W), np.float32)
    depth[:, W // 2:] += footprints * 0.01
    v, f, _ = depth_to_mesh(depth, _K())                                       # default max_edge_ratio = 4
    z = v[f][..., 2]                                                           # (F, 3)
    across = z.max(1) - z.min(1) > 1e-6
    if kept:  # a small step reads as a slope and stays connected
        assert len(f) == 2 * (H - 1) * (W - 1) and across.sum() == 2 * (H - 1)
    else:     # both sides stay whole, nothing joins them
        assert across.sum() == 0
        assert len(f) == 2 * (H - 1) * (W - 2)
        assert (z[:, 0] < 1.01).sum() == 2 * (H - 1) * (W // 2 - 1)
    # math.inf keeps every triangle of valid pixels
    assert len(depth_to_mesh(depth, _K(), max_edge_ratio=np.inf)[1]) == 2 * (H - 1) * (W - 1)


def test_large_real_scale_jump_is_cut():
    depth = np.full((H, W), 2.0, np.float32)
    depth[:, :5] = 1.0                                                         # 1 m jump at 2 cm footprints
    v, f, _ = depth_to_mesh(depth, _K())
    z = v[f][..., 2]
    assert (z.max(1) == z.min(1)).all() and len(f) == 2 * (H - 1) * (W - 2)


def test_missing_and_masked_pixels_make_no_faces():
    K = _K()
    depth = np.full((H, W), 2.0, np.float32)
    depth[5, 7] = 0.0                                                          # one hole
    v, f, _ = depth_to_mesh(depth, K)
    assert len(v) == H * W - 1 and (v[:, 2] > 0).all()
    # each of the 4 quads around the hole keeps the one triangle that avoids it
    assert len(f) == 2 * (H - 1) * (W - 1) - 4

    mask = np.ones((H, W), bool)
    mask[:, :6] = False
    v, f, _ = depth_to_mesh(np.full((H, W), 2.0, np.float32), K, mask=mask)
    u = v[:, 0] / v[:, 2] * K[0, 0] + K[0, 2]                                  # back to pixel columns
    assert u.min() > 6 and len(f) == 2 * (H - 1) * (W - 6 - 1)

    v, f, c = depth_to_mesh(np.zeros((H, W), np.float32), K, rgb=np.zeros((H, W, 3), np.uint8))
    assert v.shape == (0, 3) and f.shape == (0, 3) and c.shape == (0, 3)      # empty, not an error


def test_numpy_in_numpy_out_torch_in_torch_out_and_colours():
    depth = np.full((H, W), 2.0, np.float32)
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 0] = 255
    v, f, c = depth_to_mesh(depth, _K(), np.eye(4, dtype=np.float32), rgb)
    assert all(isinstance(x, np.ndarray) for x in (v, f, c))
    assert c.dtype == np.float32 and np.allclose(c, [1, 0, 0])
    vt, ft, ct = depth_to_mesh(torch.from_numpy(depth), torch.from_numpy(_K()), rgb=torch.from_numpy(rgb) / 255.0)
    assert all(isinstance(x, torch.Tensor) for x in (vt, ft, ct))
    assert np.allclose(vt.numpy(), v) and np.array_equal(ft.numpy(), f) and np.allclose(ct.numpy(), c)


@pytest.mark.parametrize("kw, match", [
    (dict(depth=np.ones((1, H, W), np.float32)), r"depth must be one \(H, W\)"),
    (dict(depth=np.full((H, W), np.nan, np.float32)), "NaN"),
    (dict(depth=-np.ones((H, W), np.float32)), "negative"),
    (dict(depth=np.ones((H, W), np.uint16)), "float map in metres"),
    (dict(K=np.eye(4)), "K must be a 3x3"),
    (dict(K=np.diag([0.0, 1.0, 1.0])), "positive focal"),
    (dict(cam_to_world=np.eye(3)), "cam_to_world must be a 4x4"),
    (dict(cam_to_world=2 * np.eye(4)), "rigid"),
    (dict(rgb=np.zeros((H, W), np.uint8)), r"rgb must be \(H, W, 3\)"),
    (dict(rgb=np.full((H, W, 3), 2.0)), r"rgb must lie in \[0, 1\]"),
    (dict(mask=np.ones((H, W + 1), bool)), r"mask must be \(H, W\)"),
    (dict(max_edge_ratio=1.0), "max_edge_ratio must be > 1"),
])
def test_bad_input_names_the_problem(kw, match):
    args = dict(depth=np.ones((H, W), np.float32), K=_K()) | kw
    with pytest.raises(ValueError, match=match):
        depth_to_mesh(**args)


# ------------------------------------------------------------------------------ sequence_voxels

def _synthetic(kind):
    from fourdlib.data.synthetic import make_creature_sequence, make_primitive_sequence, make_scene_sequence

    make = {"primitives": make_primitive_sequence, "creature": make_creature_sequence, "scene": make_scene_sequence}
    return make[kind](0 if kind != "creature" else 2, num_frames=2, image_size=(64, 64))


def _dense(coords, res):
    g = torch.zeros(tuple(int(r) for r in res), dtype=torch.bool)
    g[tuple(torch.as_tensor(coords).T)] = True
    return g


def _dilate(g, r):
    """Cells within Chebyshev distance r of an occupied one (a cube dilation is separable)."""
    x = g[None, None].float()
    for k in ((2 * r + 1, 1, 1), (1, 2 * r + 1, 1), (1, 1, 2 * r + 1)):
        x = F.max_pool3d(x, k, 1, tuple(n // 2 for n in k))
    return x[0, 0] > 0


@pytest.mark.parametrize("kind", ["primitives", "creature", "scene"])
def test_mesh_path_fills_holes_of_the_points_path_and_stays_on_the_surface(kind):
    seq = _synthetic(kind)
    R = 128                                                                    # voxels ~2x finer than the pixel spacing
    mesh = sequence_voxels(seq, resolution=R, method="mesh")
    pts = sequence_voxels(seq, resolution=R, method="points")
    assert np.array_equal(mesh.origin, pts.origin) and np.array_equal(mesh.voxel_size, pts.voxel_size)
    for t in range(seq.num_frames):
        m, p = _dense(mesh.frame(t).coords, mesh.resolution), _dense(pts.frame(t).coords, pts.resolution)
        # coverage of the GT surface samples the camera saw: their own voxel is occupied
        # (the points path leaves holes between pixels), or one within a voxel of it
        vis = seq.surface_points[t][seq.surface_visible[t]]
        cell = torch.as_tensor(np.floor((vis - mesh.origin) / mesh.voxel_size).astype(np.int64))
        cell = tuple(cell[((cell >= 0) & (cell < R)).all(1)].T)
        cov_m, cov_p = m[cell].float().mean(), p[cell].float().mean()
        assert cov_m > 2 * cov_p and cov_m > 0.5, (kind, t, float(cov_m), float(cov_p))
        assert _dilate(m, 1)[cell].float().mean() >= _dilate(p, 1)[cell].float().mean()
        assert m.sum() > 2 * p.sum()
        # every mesh voxel lies within 2 voxels of the GT surface (no curtains across depth edges)
        gt = voxelize_mesh(seq.mesh_vertices[t], seq.mesh_faces, resolution=R, bounds=mesh.bounds, outside="drop")
        near = _dilate(_dense(gt.coords, mesh.resolution), 2)
        assert bool(near[m].all()), f"{kind} frame {t}: {int((~near[m]).sum())} mesh voxels off the surface"


@pytest.mark.parametrize("method", ["mesh", "points"])
def test_colours_blend_in_unit_range_and_keep_a_constant_colour(method):
    seq = _synthetic("primitives")
    sv = sequence_voxels(seq, resolution=48, method=method)
    assert sv.colors.dtype == np.float32 and sv.colors.shape == (len(sv.coords), 3)
    assert sv.colors.min() >= 0 and sv.colors.max() <= 1 and sv.colors.std() > 0.01
    const = np.broadcast_to(np.array([51, 153, 204], np.uint8), seq.rgb.shape).copy()
    sv = sequence_voxels(dataclasses.replace(seq, rgb=const), resolution=48, method=method)
    assert np.allclose(sv.colors, np.array([51, 153, 204]) / 255, atol=1e-5)


def test_one_grid_for_the_sequence_and_sparse_tensor_layout():
    seq = _synthetic("primitives")
    sv = sequence_voxels(seq, resolution=32)
    assert isinstance(sv, SequenceVoxels) and sv.num_frames == 2
    assert np.allclose(sv.bounds, sequence_bounds(seq)) and np.allclose(sv.voxel_size, sv.voxel_size[0])
    c = sv.coords
    assert c.dtype == np.int64 and c.shape[1] == 4 and (np.diff(c[:, 0]) >= 0).all()
    assert (c[:, 1:] >= 0).all() and (c[:, 1:] < 32).all() and set(np.unique(c[:, 0])) == {0, 1}
    st = sv.to_sparse()                                                        # frame t = sample b
    assert st.batch_size == 2 and torch.equal(st.coords, torch.from_numpy(c))
    assert torch.equal(st.feats, torch.from_numpy(sv.colors))
    for t in range(2):
        cells, feats = st.sample(t)
        assert np.array_equal(cells.numpy(), sv.frame(t).coords)
    # voxel centres come back inside the grid's box, next to the data
    ctr = sv.centers()
    assert (ctr > sv.bounds[0]).all() and (ctr < sv.bounds[1]).all()


def test_explicit_bounds_crop_or_refuse():
    seq = _synthetic("primitives")
    full = sequence_bounds(seq)
    half = full.copy()
    half[1, 0] = full.mean(0)[0]                                               # keep x below the centre
    with pytest.raises(ValueError, match="outside bounds"):
        sequence_voxels(seq, resolution=16, bounds=half)
    for method in ("mesh", "points"):
        sv = sequence_voxels(seq, resolution=16, bounds=half, method=method, outside="drop")
        assert len(sv.coords) and (sv.coords[:, 1:] < 16).all()
    with pytest.raises(ValueError, match="method must be one of"):
        sequence_voxels(seq, method="poisson")
    with pytest.raises(ValueError, match="no depth"):
        sequence_voxels(dataclasses.replace(seq, depth=None, intrinsics=None, cam_to_world=None, rgb=None,
                                            masks=None))


def test_nothing_inside_the_bounds_gives_empty_frames():
    # Sequence4D refuses a frame without valid pixels, but cropping can still empty a frame
    seq = _synthetic("primitives")
    far = sequence_bounds(seq) + 100.0
    for method in ("mesh", "points"):
        sv = sequence_voxels(seq, resolution=16, bounds=far, method=method, outside="drop")
        assert sv.coords.shape == (0, 4) and sv.colors.shape == (0, 3) and sv.num_frames == 2
        assert sv.to_sparse().offsets.tolist() == [0, 0, 0]


# ------------------------------------------------------------------------------ real samples

@pytest.mark.parametrize("sample", ["deepdeform", "dt4d"])
def test_real_frame_voxelises_like_its_points(sample):
    from fourdlib.data.realio import real_data_dir

    real = real_data_dir()
    if real is None:
        pytest.skip("real-data samples (../shared/data/real) not found")
    if sample == "deepdeform":
        from fourdlib.data.deepdeform import load_deepdeform
        seq = load_deepdeform(real / "deepdeform_shirt" / "train_seq258", frames=[0], flow=False)
    else:
        from fourdlib.data.dt4d import load_dt4d_example
        seq = load_dt4d_example(real / "deformingthings4d_example").frames([0])
    R = 64                                                                     # voxels far larger than a pixel
    mesh = sequence_voxels(seq, resolution=R, method="mesh")
    pts = sequence_voxels(seq, resolution=R, method="points")
    m, p = _dense(mesh.coords[:, 1:], mesh.resolution), _dense(pts.coords[:, 1:], pts.resolution)
    assert bool(_dilate(p, 1)[m].all())                                        # the mesh invents nothing
    assert float(m[p].float().mean()) > 0.95                                   # and drops little
    if seq.rgb is None:
        assert mesh.colors is None
    else:
        assert mesh.colors.min() >= 0 and mesh.colors.max() <= 1
        assert np.abs(mesh.colors.mean(0) - pts.colors.mean(0)).max() < 0.05
