"""Geometry: cameras and rays, ray casting, FPS, normals, median normalisation, voxels.

Every check compares with an independent computation (a naive loop, a dense grid, an
analytic depth) or a hand-made case with a known answer.
"""
import numpy as np
import pytest
import torch
import trimesh

from fourdlib.geometry import (camera_rays, denormalize_points, estimate_normals, farthest_point_sample,
                               fill_voxels, fps_points, gather_points, intrinsics_from_fov, look_at,
                               median_center_scale, normalize_points, plucker, project, transform_points,
                               unproject_depth, voxelize_mesh, voxelize_points, voxels_to_dense,
                               voxels_to_points)
from fourdlib.geometry import fps as fps_module
from fourdlib.geometry.fps import farthest_point_sample_torch
from fourdlib.geometry.raycast import Raycaster

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _fibonacci_sphere(n, radius=1.0, center=(0, 0, 0)):
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    phi = np.pi * (1 + 5 ** 0.5) * i
    r = np.sqrt(1 - z ** 2)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], 1) * radius + np.asarray(center)


# ------------------------------------------------------------------------------- cameras

def _camera(eye=(2.0, -1.5, 1.2), target=(0.1, 0.2, 0.3), H=12, W=16):
    return intrinsics_from_fov(50, H, W), look_at(np.array(eye), np.array(target)), H, W


def test_unproject_then_project_returns_pixel_centres_and_depth():
    K, c2w, H, W = _camera()
    depth = np.random.default_rng(0).uniform(0.5, 4.0, (H, W)).astype(np.float32)
    pts = unproject_depth(depth, K, c2w)                                       # (H, W, 3) world
    uv, z = project(pts.reshape(-1, 3), K, c2w)
    v, u = np.mgrid[:H, :W]
    np.testing.assert_allclose(uv, np.stack([u, v], -1).reshape(-1, 2) + 0.5, atol=1e-3)
    np.testing.assert_allclose(z, depth.reshape(-1), rtol=1e-5)
    # and by hand for one pixel, in the camera frame: x = (u - cx) / fx * d
    cam = transform_points(np.linalg.inv(c2w.astype(np.float64)), pts.reshape(-1, 3).astype(np.float64))
    r, c = 3, 7
    np.testing.assert_allclose(cam[r * W + c], [(c + 0.5 - K[0, 2]) / K[0, 0] * depth[r, c],
                                                (r + 0.5 - K[1, 2]) / K[1, 1] * depth[r, c], depth[r, c]], rtol=1e-4)


def test_rays_reach_the_z_depth_point():
    K, c2w, H, W = _camera()
    depth = np.random.default_rng(1).uniform(0.5, 4.0, (H, W)).astype(np.float32)
    o, d = camera_rays(K, c2w, H, W)
    np.testing.assert_allclose(np.linalg.norm(d, axis=-1), 1, atol=1e-6)
    axis = c2w[:3, 2]                                                          # optical axis in world
    hit = o + d * (depth / (d @ axis))[..., None]                              # z-depth -> distance
    np.testing.assert_allclose(hit, unproject_depth(depth, K, c2w), atol=1e-4)


def test_plucker_moment_is_the_same_for_any_point_on_the_line():
    rng = np.random.default_rng(2)
    o, d = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    t = rng.normal(size=(50, 1)) * 3
    a, b = plucker(o, d), plucker(o + t * d, 2.5 * d)                          # other point, other length
    np.testing.assert_allclose(a, b, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(a[:, :3], axis=1), 1)
    dn = d / np.linalg.norm(d, axis=1, keepdims=True)
    np.testing.assert_allclose(a[:, 3:], np.cross(o, dn), atol=1e-12)
    assert isinstance(plucker(torch.as_tensor(o), torch.as_tensor(d)), torch.Tensor)


def test_look_at_gives_opencv_axes_looking_at_the_target():
    eye, target = np.array([3.0, 1.0, 2.0]), np.array([-0.5, 0.4, 0.1])
    T = look_at(eye, target).astype(np.float64)
    R = T[:3, :3]
    np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-6)
    assert np.linalg.det(R) == pytest.approx(1, abs=1e-6)
    np.testing.assert_allclose(T[:3, 3], eye, atol=1e-6)
    fwd = (target - eye) / np.linalg.norm(target - eye)
    np.testing.assert_allclose(R[:, 2], fwd, atol=1e-6)                        # +z looks at the target
    assert abs(R[:, 0] @ [0, 0, 1]) < 1e-6                                     # +x right: horizontal
    assert R[:, 1] @ [0, 0, 1] < 0                                             # +y down: against world up
    K = intrinsics_from_fov(60, 30, 40)
    uv, z = project(target[None], K, T)                                        # target at the principal point
    np.testing.assert_allclose(uv[0], [20, 15], atol=1e-3)
    assert z[0] == pytest.approx(np.linalg.norm(target - eye), rel=1e-5)
    # a point to the camera's right projects to the right (u grows), one above projects up
    uv2, _ = project(np.stack([target + 0.1 * R[:, 0], target + [0, 0, 0.1]]), K, T)
    assert uv2[0, 0] > 20 and uv2[1, 1] < 15
    # batched (torch) equals one at a time
    eyes, targets = torch.tensor([[3.0, 1, 2], [0, -2, 1]]), torch.tensor([[-0.5, 0.4, 0.1], [0, 0, 0]])
    Tb = look_at(eyes, targets)
    assert isinstance(Tb, torch.Tensor) and Tb.shape == (2, 4, 4)
    assert torch.allclose(Tb[1], look_at(eyes[1], targets[1]))
    # straight down: still a valid rotation looking down
    Td = look_at(np.array([0.0, 0, 3]), np.zeros(3)).astype(np.float64)
    np.testing.assert_allclose(Td[:3, 2], [0, 0, -1], atol=1e-6)
    np.testing.assert_allclose(Td[:3, :3].T @ Td[:3, :3], np.eye(3), atol=1e-6)


# ------------------------------------------------------------------------------ raycast

def test_cast_view_depth_of_a_plane_matches_the_analytic_depth():
    K, c2w, H, W = _camera(eye=(0.3, -2.0, 1.5), target=(0.0, 0.0, 0.0), H=10, W=14)
    V = np.array([[-5, -5, 0], [5, -5, 0], [5, 5, 0], [-5, 5, 0]], float)      # floor z = 0
    F = np.array([[0, 1, 2], [0, 2, 3]])
    hits = Raycaster(V, F).cast_view(K, c2w, H, W)
    o, d = camera_rays(K.astype(np.float64), c2w.astype(np.float64), H, W)
    t = -o[..., 2] / d[..., 2]                                                 # ray hits z = 0 at distance t
    zdepth = t * (d @ c2w[:3, 2].astype(np.float64))
    assert hits.hit.all()
    np.testing.assert_allclose(hits.depth, zdepth, rtol=1e-4)
    np.testing.assert_allclose(hits.points[..., 2], 0, atol=1e-4)


def test_cast_view_depth_of_a_sphere_matches_the_analytic_depth():
    R, c = 0.8, np.array([0.1, 0.2, 0.3])
    mesh = trimesh.creation.icosphere(4, R)
    K, c2w, H, W = _camera(eye=(2.5, 0.5, 1.0), target=c, H=16, W=16)
    hits = Raycaster(mesh.vertices + c, mesh.faces).cast_view(K, c2w, H, W)
    o, d = camera_rays(K.astype(np.float64), c2w.astype(np.float64), H, W)
    oc = o - c                                                                 # |oc + t d| = R
    b = (oc * d).sum(-1)
    disc = b ** 2 - ((oc ** 2).sum(-1) - R ** 2)
    t = -b - np.sqrt(np.maximum(disc, 0))
    zdepth = t * (d @ c2w[:3, 2].astype(np.float64))
    clear_hit, clear_miss = disc > 0.05 * R ** 2, disc < 0                     # away from the silhouette
    assert clear_hit.sum() > 20 and clear_miss.sum() > 20
    assert hits.hit[clear_hit].all() and not hits.hit[clear_miss].any()
    # the mesh is inscribed in the sphere: at most its sagitta (~R * 1e-3 at 4 subdivisions) deeper
    err = hits.depth[clear_hit] - zdepth[clear_hit]
    assert err.min() > -1e-4 and err.max() < 0.005 * R
    assert (hits.depth[~hits.hit] == 0).all() and (hits.face[~hits.hit] == -1).all()


def test_points_visible_and_misses():
    mesh = trimesh.creation.icosphere(3, 1.0)
    K, c2w, H, W = _camera(eye=(4.0, 0.0, 0.0), target=(0, 0, 0), H=32, W=32)
    pts = np.array([[1.0, 0, 0], [-1.0, 0, 0], [0.6, 0.0, 0.8], [0.6, -0.8, 0], [0.0, 0.0, -1.0]])
    pts = pts / np.linalg.norm(pts, axis=1, keepdims=True) * 0.999            # just inside the faces
    rc = Raycaster(mesh.vertices, mesh.faces)
    vis = rc.points_visible(pts, K, c2w, H, W, tol=1e-2)
    assert vis.tolist() == [True, False, True, True, False]                    # front, back, up, side, bottom
    assert not rc.points_visible(np.array([[5.0, 0, 0]]), K, c2w, H, W)[0]     # behind the camera
    face, dist, _, _ = rc.cast_rays([[4.0, 0, 0], [4.0, 0, 0]], [[-1.0, 0, 0], [1.0, 0, 0]])
    assert face[1] == -1 and face[0] >= 0
    assert dist[0] == pytest.approx(3.0, abs=2e-3)


# ---------------------------------------------------------------------------------- FPS

def _naive_fps(x, k, start):
    """Farthest point sampling by the definition, one cloud (N, 3) float64."""
    picked = [start]
    d = np.full(len(x), np.inf)
    for _ in range(k - 1):
        d = np.minimum(d, ((x - x[picked[-1]]) ** 2).sum(1))
        picked.append(int(np.argmax(d)))
    return picked


def test_fps_matches_a_naive_implementation():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 300, 3))
    idx = farthest_point_sample(torch.as_tensor(x), 40)
    assert idx.shape == (3, 40) and idx.dtype == torch.long
    for b in range(3):
        assert idx[b].tolist() == _naive_fps(x[b], 40, 0)
    idx7 = farthest_point_sample(x, 40, start=7)                               # numpy in, numpy out
    assert isinstance(idx7, np.ndarray) and idx7[1].tolist() == _naive_fps(x[1], 40, 7)
    one = farthest_point_sample(torch.as_tensor(x[2], dtype=torch.float32), 40)   # (N, 3) -> (k,)
    assert one.shape == (40,) and one.tolist() == _naive_fps(x[2], 40, 0)
    xb = torch.as_tensor(x[0]).bfloat16()                                     # half precision in, float32 inside
    assert farthest_point_sample(xb, 40).tolist() == _naive_fps(xb.double().numpy(), 40, 0)


def test_fps_random_start_is_seeded_and_lengths_exclude_padding():
    rng = np.random.default_rng(1)
    lengths = torch.tensor([300, 120, 64])
    x = torch.as_tensor(rng.normal(size=(3, 300, 3)))
    x[1, 120:] = 50.0                                                          # far padding: FPS would love it
    x[2, 64:] = float("nan")                                                   # NaN padding is ignored too
    g = lambda: torch.Generator().manual_seed(5)
    idx = farthest_point_sample(x, 32, start="random", generator=g(), lengths=lengths)
    assert torch.equal(idx, farthest_point_sample(x, 32, start="random", generator=g(), lengths=lengths))
    assert (idx < lengths[:, None]).all()
    for b in range(3):
        n = int(lengths[b])
        assert idx[b].tolist() == _naive_fps(x[b, :n].numpy(), 32, int(idx[b, 0]))
    starts = farthest_point_sample(x, 1, start="random", generator=torch.Generator().manual_seed(0), lengths=lengths)
    assert (starts[:, 0] < lengths).all()


def test_fps_spreads_points_better_than_a_random_subset():
    rng = np.random.default_rng(2)
    x = rng.uniform(size=(2000, 3))
    k = 64

    def min_gap(p):
        d = np.linalg.norm(p[:, None] - p[None], axis=-1)
        return d[np.triu_indices(len(p), 1)].min()

    fps_gap = min_gap(x[farthest_point_sample(x, k)])
    rand_gaps = [min_gap(x[rng.choice(len(x), k, replace=False)]) for _ in range(10)]
    assert fps_gap > max(rand_gaps)
    pts, idx = fps_points(torch.as_tensor(x)[None], k)
    assert torch.equal(pts[0], torch.as_tensor(x)[idx[0]])


def test_gather_points_takes_features_too():
    feats = torch.arange(2 * 5 * 4).reshape(2, 5, 4)
    idx = torch.tensor([[4, 0], [2, 2]])
    out = gather_points(feats, idx)
    assert torch.equal(out, torch.stack([feats[0, [4, 0]], feats[1, [2, 2]]]))


def test_fps_errors():
    x = torch.zeros(2, 10, 3)
    with pytest.raises(ValueError, match="k=11 but the cloud has only 10"):
        farthest_point_sample(x, 11)
    with pytest.raises(ValueError, match="shortest cloud has only 4 valid"):
        farthest_point_sample(x, 5, lengths=[10, 4])
    with pytest.raises(ValueError, match="empty"):
        farthest_point_sample(torch.zeros(0, 3), 1)
    y = torch.rand(10, 3)
    y[3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        farthest_point_sample(y, 2)
    with pytest.raises(ValueError, match="shape"):
        farthest_point_sample(torch.zeros(10), 2)
    with pytest.raises(ValueError, match="outside the valid points"):
        farthest_point_sample(x, 2, start=10)
    with pytest.raises(ValueError, match="lengths must lie"):
        farthest_point_sample(x, 2, lengths=[10, 0])
    with pytest.raises(ValueError, match="positive int"):
        farthest_point_sample(x, 0)
    for fps in (farthest_point_sample, farthest_point_sample_torch):          # one check helper for both
        with pytest.raises(ValueError, match="start must be None"):
            fps(x, 2, start="first")
        with pytest.raises(ValueError, match="lengths has 3 entries"):
            fps(x, 2, lengths=[10, 10, 10])


@pytest.fixture
def fpsample_calls(monkeypatch):
    """Counts the clouds that go through fpsample (the compiled CPU path)."""
    calls = []
    real = fps_module.fpsample.fps_sampling

    def spy(pc, n, start_idx=None):
        calls.append(pc.shape)
        return real(pc, n, start_idx=start_idx)

    monkeypatch.setattr(fps_module.fpsample, "fps_sampling", spy)
    return calls


@pytest.mark.parametrize("B, N, D, k", [(1, 8192, 3, 512), (4, 700, 3, 64), (3, 300, 1, 30), (2, 300, 7, 40)])
def test_fps_compiled_path_equals_the_torch_reference(B, N, D, k, fpsample_calls):
    g = torch.Generator().manual_seed(N + D)
    x = torch.randn(B, N, D, generator=g)
    lengths = torch.randint(k, N + 1, (B,), generator=g)
    lengths[0] = N
    padded = x.masked_fill((torch.arange(N)[None] >= lengths[:, None])[..., None], float("nan"))
    starts = (torch.rand(B, generator=g) * lengths).long()
    gen = lambda: torch.Generator().manual_seed(3)
    for pts, kw in [(x, {}), (x, {"start": 0}), (x, {"start": "random", "generator": gen()}),
                    (padded, {"lengths": lengths}), (padded, {"lengths": lengths, "start": starts}),
                    (padded, {"lengths": lengths, "start": "random", "generator": gen()})]:
        ref = farthest_point_sample_torch(pts, k, **{**kw, "generator": gen()})
        assert torch.equal(farthest_point_sample(pts, k, **kw), ref), kw
    assert len(fpsample_calls) == 6 * B and {s[1] for s in fpsample_calls} == {D}
    assert sorted(s[0] for s in fpsample_calls[-B:]) == sorted(lengths.tolist())   # valid rows only
    assert torch.equal(farthest_point_sample(x[0], k), farthest_point_sample_torch(x[0], k))   # (N, D) -> (k,)


def test_fps_breaks_ties_by_the_lowest_index_on_both_paths():
    grid = torch.stack(torch.meshgrid(*[torch.arange(4.0)] * 3, indexing="ij"), -1).reshape(-1, 3)
    dup = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 0, 0], [1, 0, 0]])         # 2 distinct points, k = 4
    same = torch.ones(5, 3)                                                      # one distinct point
    rng = np.random.default_rng(3)
    quantised = torch.as_tensor(np.round(rng.uniform(size=(3000, 3)) * 12), dtype=torch.float32)
    for x, k, start in [(grid, 20, 0), (grid, 64, 5), (dup, 4, 0), (dup, 4, 3), (same, 5, 3),
                        (quantised, 200, 0), (torch.zeros(1, 3), 1, 0)]:
        want = _naive_fps(x.double().numpy(), k, start)
        assert farthest_point_sample(x, k, start=start).tolist() == want
        assert farthest_point_sample_torch(x, k, start=start).tolist() == want
    assert farthest_point_sample(dup, 4).tolist() == [0, 1, 0, 0]               # repeats once distances are 0
    assert farthest_point_sample(same, 5, start=3).tolist() == [3, 0, 0, 0, 0]
    x = torch.rand(50, 3, generator=torch.Generator().manual_seed(0))
    assert sorted(farthest_point_sample(x, 50, start=7).tolist()) == list(range(50))   # k == N: every point once


def test_fps_picks_the_same_points_when_shuffled_or_duplicated():
    x = torch.randn(1000, 3, generator=torch.Generator().manual_seed(4))
    idx = farthest_point_sample(x, 64, start=10)
    # every point twice: ties go to the first copy, so the indices themselves are unchanged
    assert torch.equal(farthest_point_sample(torch.cat([x, x]), 64, start=10), idx)
    assert torch.equal(farthest_point_sample(torch.cat([x, x])[None], 64, start=10, lengths=[1000])[0], idx)
    perm = torch.randperm(1000, generator=torch.Generator().manual_seed(5))
    start = int((perm == 10).nonzero())
    assert torch.equal(perm[farthest_point_sample(x[perm], 64, start=start)], idx)


def test_fps_float64_numpy_and_integer_inputs(fpsample_calls):
    rng = np.random.default_rng(6)
    x64 = rng.normal(size=(2, 400, 3))
    # float64 keeps the torch loop (fpsample would round to float32): exact in float64
    out = farthest_point_sample(x64, 32, start=5)
    assert isinstance(out, np.ndarray) and out.dtype == np.int64 and out.shape == (2, 32)
    assert [out[b].tolist() for b in range(2)] == [_naive_fps(x64[b], 32, 5) for b in range(2)]
    assert torch.equal(farthest_point_sample(torch.as_tensor(x64), 32, start=5), torch.as_tensor(out))
    # a cloud far from the origin, where float32 could not tell the points apart
    far = 1e6 + rng.uniform(size=(300, 3)) * 1e-3
    assert farthest_point_sample(far, 20).tolist() == _naive_fps(far, 20, 0)
    assert fpsample_calls == []
    # numpy float32 and integer clouds take the compiled path and agree with the reference
    x32 = x64.astype(np.float32)
    out32 = farthest_point_sample(x32, 32, start=5)
    assert isinstance(out32, np.ndarray) and out32.dtype == np.int64
    assert np.array_equal(out32, farthest_point_sample_torch(x32, 32, start=5))
    xi = rng.integers(-50, 50, size=(500, 3))
    assert np.array_equal(farthest_point_sample(xi, 40), farthest_point_sample_torch(xi, 40))
    assert len(fpsample_calls) == 3
    # the same call twice gives the same picks (no hidden random start)
    assert np.array_equal(farthest_point_sample(x32, 32), farthest_point_sample(x32, 32))


@cuda
def test_cameras_on_cuda_match_cpu():
    eye, target = torch.tensor([[3.0, 1, 2], [0, 0, 3]]), torch.tensor([[-0.5, 0.4, 0.1], [0, 0, 0]])
    T = look_at(eye.cuda(), target.cuda())
    assert T.is_cuda and torch.allclose(T.cpu(), look_at(eye, target), atol=1e-6)
    K = torch.as_tensor(intrinsics_from_fov(50, 8, 8))
    o, d = camera_rays(K.cuda(), T.cuda(), 8, 8)
    o0, d0 = camera_rays(K, look_at(eye, target), 8, 8)
    assert torch.allclose(d.cpu(), d0, atol=1e-5) and torch.allclose(o.cpu(), o0)


@cuda
def test_fps_cuda_matches_cpu():
    x = torch.randn(4, 4096, 3, generator=torch.Generator().manual_seed(0))
    lengths = torch.tensor([4096, 3000, 100, 4096])
    cpu = farthest_point_sample(x, 64, lengths=lengths)
    gpu = farthest_point_sample(x.cuda(), 64, lengths=lengths.cuda())
    assert gpu.is_cuda and torch.equal(cpu, gpu.cpu())


# ------------------------------------------------------------------------------ normals

def test_normals_of_a_sphere_are_radial_and_outward():
    c = np.array([0.3, -0.2, 1.0])
    x = _fibonacci_sphere(2000, 0.5, c).astype(np.float32)
    radial = (x - c) / 0.5
    n = estimate_normals(x, k=16)
    assert n.dtype == np.float32 and n.shape == x.shape
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1, atol=1e-5)
    assert np.abs((n * radial).sum(1)).min() > 0.99
    out = estimate_normals(x, k=16, orient_towards="outward")
    assert (out * radial).sum(1).min() > 0.99
    inward = estimate_normals(x, orient_towards=np.broadcast_to(c, x.shape))  # (N, 3) viewpoints at the centre
    assert (inward * radial).sum(1).max() < -0.99


def test_normals_of_a_plane_face_the_camera():
    rng = np.random.default_rng(0)
    normal = np.array([1.0, 2.0, 2.0]) / 3
    u = np.cross(normal, [0, 0, 1.0]); u /= np.linalg.norm(u)
    v = np.cross(normal, u)
    x = rng.uniform(-1, 1, (500, 2)) @ np.stack([u, v]) + [0.5, 0.5, 0.5]
    eye = np.array([0.5, 0.5, 0.5]) - 3 * normal                               # camera on the -normal side
    n = estimate_normals(x, k=10, orient_towards=eye)
    np.testing.assert_allclose(n, np.broadcast_to(-normal, n.shape), atol=1e-6)
    nt = estimate_normals(torch.as_tensor(x), k=10, orient_towards=torch.as_tensor(eye), backend="torch")
    assert isinstance(nt, torch.Tensor) and nt.dtype == torch.float64
    np.testing.assert_allclose(nt.numpy(), n, atol=1e-6)


def test_normals_torch_backend_agrees_with_kdtree():
    x = torch.as_tensor(_fibonacci_sphere(700, 1.0), dtype=torch.float32)
    a = estimate_normals(x, k=12, orient_towards="outward", backend="kdtree")
    b = estimate_normals(x, k=12, orient_towards="outward", backend="torch")
    assert (a * b).sum(1).min() > 0.9999


def test_normals_errors():
    with pytest.raises(ValueError, match="at least 3 points"):
        estimate_normals(np.zeros((2, 3)))
    x = np.random.default_rng(0).normal(size=(50, 3))
    x[4, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        estimate_normals(x)
    with pytest.raises(ValueError, match=r"must be \(N, 3\)"):
        estimate_normals(np.zeros((10, 2)))
    with pytest.raises(ValueError, match="k must be an int >= 3"):
        estimate_normals(np.random.default_rng(0).normal(size=(50, 3)), k=2)
    with pytest.raises(ValueError, match="orient_towards"):
        estimate_normals(np.random.default_rng(0).normal(size=(50, 3)), orient_towards="inward")
    with pytest.raises(ValueError, match="orient_towards must be"):
        estimate_normals(np.random.default_rng(0).normal(size=(50, 3)), orient_towards=np.zeros((4, 3)))


@cuda
def test_normals_cuda_matches_cpu():
    x = torch.as_tensor(_fibonacci_sphere(3000), dtype=torch.float32)
    a = estimate_normals(x, orient_towards="outward")
    b = estimate_normals(x.cuda(), orient_towards="outward")
    assert b.is_cuda and (a * b.cpu()).sum(1).min() > 0.999


# ------------------------------------------------------------------------ normalisation

def _frames(seed=0, T=4):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(50 + 7 * t, 3)) * [1.0, 0.5, 2.0] + [0.3 * t, 1.0, -2.0] for t in range(T)]


def test_normalisation_uses_pooled_medians():
    frames = _frames()
    out, c, s = normalize_points(frames)
    pooled = np.concatenate(frames)
    np.testing.assert_allclose(c, np.median(pooled, axis=0))                  # numpy's median, independent
    np.testing.assert_allclose(s, np.median(np.linalg.norm(pooled - c, axis=1)))
    for f, o in zip(frames, out):
        np.testing.assert_allclose(o, (f - c) / s)
    assert np.median(np.linalg.norm(np.concatenate(out), axis=1)) == pytest.approx(1.0)
    c0, s0 = median_center_scale(frames, ref_frame=0)
    np.testing.assert_allclose(c0, np.median(frames[0], axis=0))


def test_normalisation_is_invariant_to_scale_and_shift_and_inverts():
    frames = _frames(1)
    a, b = 3.7, np.array([10.0, -4.0, 0.25])
    x, _, _ = normalize_points(frames)
    y, c, s = normalize_points([a * f + b for f in frames])
    for u, v in zip(x, y):
        np.testing.assert_allclose(u, v, atol=1e-12)
    back = denormalize_points(y, c, s)
    for f, g in zip(frames, back):
        np.testing.assert_allclose(g, a * f + b, atol=1e-12)
    stacked = torch.as_tensor(np.stack([f[:50] for f in frames]))             # (T, N, 3) torch
    z, ct, st = normalize_points(stacked)
    assert isinstance(z, torch.Tensor) and z.shape == stacked.shape
    assert torch.allclose(denormalize_points(z, ct, st), stacked)


def test_one_scale_per_sequence_keeps_the_motion_and_applies_to_gt():
    rng = np.random.default_rng(2)
    shape = rng.normal(size=(80, 3))
    partial = [shape[rng.choice(80, 40, replace=False)] + [t, 0, 0] for t in range(3)]   # moves +1 in x per frame
    gt = [shape + [t, 0, 0] for t in range(3)]
    inp, c, s = normalize_points(partial)
    gt_n, c2, s2 = normalize_points(gt, c, s)                                  # the input's numbers, not GT's
    assert c2 is c and s2 is s
    for t in range(3):
        np.testing.assert_allclose(gt_n[t] - gt_n[0], np.broadcast_to([t / s, 0, 0], (80, 3)), atol=1e-12)
        np.testing.assert_allclose(gt_n[t], (gt[t] - c) / s)
    _, cg, _ = normalize_points(gt)
    assert not np.allclose(cg, c)                                              # GT's own centre would differ


def test_normalisation_is_robust_to_outliers():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1000, 3))
    outliers = rng.normal(size=(80, 3)) * 1000.0 + 500.0                       # 8 % flying pixels far away
    c, s = median_center_scale(np.concatenate([x, outliers]))
    c0, s0 = median_center_scale(x)
    assert np.abs(c - c0).max() < 0.2 and abs(s / s0 - 1) < 0.2
    mean_shift = np.abs(np.concatenate([x, outliers]).mean(0) - x.mean(0)).max()
    assert mean_shift > 20                                                     # what a mean-based centre would do


def test_normalisation_errors():
    with pytest.raises(ValueError, match="empty list"):
        normalize_points([])
    with pytest.raises(ValueError, match="no points"):
        normalize_points([np.zeros((0, 3))])
    bad = np.ones((10, 3))
    bad[2, 2] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        normalize_points(bad)
    with pytest.raises(ValueError, match="scale is 0"):
        normalize_points(np.zeros((10, 3)))
    with pytest.raises(ValueError, match=r"frame 1 must be \(N, 3\)"):
        normalize_points([np.zeros((4, 3)), np.zeros((4, 2))])
    with pytest.raises(ValueError, match="both center and scale"):
        normalize_points(np.ones((4, 3)), center=np.zeros(3))
    with pytest.raises(ValueError, match="ref_frame=5"):
        median_center_scale(_frames(), ref_frame=5)


# ------------------------------------------------------------------------------- voxels

def test_voxelize_points_matches_a_python_loop():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (400, 3))
    col = rng.uniform(0, 255, (400, 3))
    vox = voxelize_points(x, col, resolution=5, bounds=(-1, 1))
    expect = {}
    for p, c in zip(x, col):
        key = tuple(min(int(np.floor((v + 1) / 0.4)), 4) for v in p)
        expect.setdefault(key, []).append(c)
    keys = sorted(expect)
    assert vox.coords.tolist() == [list(k) for k in keys]                      # sorted (i, j, k)
    assert vox.counts.tolist() == [len(expect[k]) for k in keys]
    np.testing.assert_allclose(vox.colors, [np.mean(expect[k], 0) for k in keys], rtol=1e-5)
    assert vox.colors.dtype == np.float32 and vox.coords.dtype == np.int64


def test_voxelize_points_unbounded_grid_and_centres():
    rng = np.random.default_rng(1)
    x = torch.as_tensor(rng.normal(size=(300, 3)) * 2)
    vox = voxelize_points(x, voxel_size=0.25)
    assert isinstance(vox.coords, torch.Tensor) and vox.colors is None
    expect = np.unique(np.floor(x.numpy() / 0.25).astype(int), axis=0)         # world-origin-aligned cells
    assert np.array_equal(vox.coords.numpy(), expect) and (vox.coords < 0).any()
    assert int(vox.counts.sum()) == 300
    centres = voxels_to_points(vox.coords, voxel_size=0.25)
    np.testing.assert_allclose(centres.numpy(), (expect + 0.5) * 0.25, atol=1e-6)
    again = voxelize_points(centres, voxel_size=0.25)                          # centres fall in their own cells
    assert torch.equal(again.coords, vox.coords)


def test_voxelize_points_bounds_edges_and_outside():
    pts = np.array([[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0], [0.0, 0.0, 0.0]])     # both corners of the box
    vox = voxelize_points(pts, resolution=4, bounds=[[-1, -1, -1], [1, 1, 1]])
    assert vox.coords.tolist() == [[0, 0, 0], [2, 2, 2], [3, 3, 3]]            # the max corner joins the last cell
    far = np.vstack([pts, [[1.5, 0, 0]]])
    with pytest.raises(ValueError, match="1 of 4 points lie outside bounds"):
        voxelize_points(far, resolution=4, bounds=(-1, 1))
    dropped = voxelize_points(far, resolution=4, bounds=(-1, 1), outside="drop")
    assert dropped.coords.tolist() == vox.coords.tolist()
    aniso = voxelize_points(np.array([[0.55, 0.55, 0.55]]), resolution=(2, 4, 8), bounds=(0, 1))
    assert aniso.coords.tolist() == [[1, 2, 4]]
    snapped = voxelize_points(np.array([[0.95, 0.0, 0.0]]), voxel_size=0.3, bounds=(0, 1))  # ceil(1/0.3) = 4 cells
    assert snapped.coords.tolist() == [[3, 0, 0]]


def test_voxelize_errors():
    x = np.zeros((5, 3))
    with pytest.raises(ValueError, match="exactly one of voxel_size or resolution"):
        voxelize_points(x, voxel_size=0.1, resolution=8, bounds=(-1, 1))
    with pytest.raises(ValueError, match="exactly one of voxel_size or resolution"):
        voxelize_points(x)
    with pytest.raises(ValueError, match="resolution needs bounds"):
        voxelize_points(x, resolution=8)
    with pytest.raises(ValueError, match="max > min"):
        voxelize_points(x, resolution=8, bounds=(1, -1))
    with pytest.raises(ValueError, match="bounds must be"):
        voxelize_points(x, resolution=8, bounds=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="resolution must be positive int"):
        voxelize_points(x, resolution=0, bounds=(-1, 1))
    with pytest.raises(ValueError, match="resolution must be positive int"):
        voxelize_points(x, resolution=7.5, bounds=(-1, 1))
    with pytest.raises(ValueError, match="voxel_size must be finite and > 0"):
        voxelize_points(x, voxel_size=-0.1)
    with pytest.raises(ValueError, match="empty"):
        voxelize_points(np.zeros((0, 3)), voxel_size=0.1)
    with pytest.raises(ValueError, match="NaN"):
        voxelize_points(np.full((2, 3), np.nan), voxel_size=0.1)
    with pytest.raises(ValueError, match=r"colors must be \(5, C\)"):
        voxelize_points(x, np.zeros((4, 3)), voxel_size=0.1)
    with pytest.raises(ValueError, match="outside must be"):
        voxelize_points(x, voxel_size=0.1, outside="clip")
    V, F = np.eye(3), np.array([[0, 1, 2]])
    with pytest.raises(ValueError, match="faces index vertices outside"):
        voxelize_mesh(V, np.array([[0, 1, 3]]), voxel_size=0.1)
    with pytest.raises(ValueError, match="no faces"):
        voxelize_mesh(V, np.zeros((0, 3), int), voxel_size=0.1)
    with pytest.raises(ValueError, match="vertices lie outside bounds"):
        voxelize_mesh(V * 2, F, resolution=8, bounds=(-1, 1))
    with pytest.raises(ValueError, match="not both"):
        voxelize_mesh(V, F, vertex_colors=V, face_colors=V[:1], voxel_size=0.1)
    with pytest.raises(ValueError, match="NaN"):
        voxelize_mesh(V * np.nan, F, voxel_size=0.1)


def test_voxelize_mesh_of_a_cube_is_its_shell():
    box = trimesh.creation.box(extents=[1.1, 1.1, 1.1])                        # faces at +-0.55: mid-cell
    vox = voxelize_mesh(box.vertices, box.faces, resolution=20, bounds=(-1, 1))
    i, j, k = np.meshgrid(*[np.arange(20)] * 3, indexing="ij")                 # cells 4.5 .. 15.5 in grid units
    inside = (i >= 4) & (i <= 15) & (j >= 4) & (j <= 15) & (k >= 4) & (k <= 15)
    shell = inside & ((i == 4) | (i == 15) | (j == 4) | (j == 15) | (k == 4) | (k == 15))
    assert vox.coords.tolist() == np.argwhere(shell).tolist()
    solid = fill_voxels(vox.coords, 20)                                        # surface, then filled
    assert solid.tolist() == np.argwhere(inside).tolist()
    free = voxelize_mesh(box.vertices, box.faces, voxel_size=0.1)              # unbounded grid from the world origin
    assert np.array_equal(free.coords, vox.coords - 10)


def test_voxelize_mesh_of_a_sphere_matches_a_dense_computation():
    R, c, res = 0.7, np.array([0.031, -0.017, 0.052]), 24
    mesh = trimesh.creation.icosphere(3, R)
    V, F = mesh.vertices + c, mesh.faces
    vox = voxelize_mesh(V, F, resolution=res, bounds=(-1, 1))
    # The mesh lies between the radii r_in (closest face plane) and R (its vertices).
    tri = mesh.vertices[F]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    r_in = np.min(np.abs((n * tri[:, 0]).sum(1)) / np.linalg.norm(n, axis=1))
    h = 2 / res
    lo = np.stack(np.meshgrid(*[np.arange(res)] * 3, indexing="ij"), -1) * h - 1  # (res, res, res, 3) cell minima
    near = np.linalg.norm(np.clip(c, lo, lo + h) - c, axis=-1)                 # closest point of each cell
    far = np.linalg.norm(np.maximum(np.abs(c - lo), np.abs(c - lo - h)), axis=-1)
    must = (near < r_in) & (far > R)                  # has points inside and outside the surface
    may = (near <= R + 1e-9) & (far >= r_in - 1e-9)   # could touch the shell at all
    got = voxels_to_dense(vox.coords, res)
    assert must.sum() > 0.6 * got.sum()
    assert not (must & ~got).any(), "holes in the voxel surface"
    assert not (got & ~may).any()
    filled = voxels_to_dense(fill_voxels(vox.coords, res), res)
    assert filled[near < r_in].all() and not filled[near > R].any()            # watertight: nothing leaks


def test_voxelize_mesh_large_flat_square_has_no_holes():
    V = np.array([[-1, -1, 0.013], [1, -1, 0.013], [1, 1, 0.013], [-1, 1, 0.013]])
    F = np.array([[0, 1, 2], [0, 2, 3]])
    vox = voxelize_mesh(V, F, resolution=64, bounds=(-1, 1))
    layer = int(np.floor((0.013 + 1) / (2 / 64)))
    expect = np.stack(np.meshgrid(np.arange(64), np.arange(64), [layer], indexing="ij"), -1).reshape(-1, 3)
    assert vox.coords.tolist() == expect.tolist()
    on_face = voxelize_mesh(V * [1, 1, 0], F, resolution=64, bounds=(-1, 1))   # z = 0 is a cell face
    assert set(on_face.coords[:, 2].tolist()) == {32}                          # one layer, like floor() for points
    clipped = voxelize_mesh(V * [3, 3, 1], F, resolution=64, bounds=(-1, 1), outside="drop")
    assert np.array_equal(clipped.coords, vox.coords)                          # a bigger square, cut to the box


def test_voxelize_mesh_tilted_plane_matches_dense_and_chunking():
    a, b, z0, res = 0.3137, -0.1712, 0.0413, 32   # z = a x + b y + z0, never exactly on a cell edge
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float)
    V = np.column_stack([corners, a * corners[:, 0] + b * corners[:, 1] + z0])
    F = np.array([[0, 1, 2], [0, 2, 3]])
    vox = voxelize_mesh(V, F, resolution=res, bounds=(-1, 1))
    h = 2 / res
    i, j = np.meshgrid(np.arange(res), np.arange(res), indexing="ij")
    zs = np.stack([a * (-1 + (i + di) * h) + b * (-1 + (j + dj) * h) + z0 for di in (0, 1) for dj in (0, 1)])
    kmin, kmax = np.floor((zs.min(0) + 1) / h).astype(int), np.floor((zs.max(0) + 1) / h).astype(int)
    expect = sorted((ii, jj, kk) for ii in range(res) for jj in range(res)
                    for kk in range(kmin[ii, jj], kmax[ii, jj] + 1))
    assert [tuple(r) for r in vox.coords.tolist()] == expect
    small = voxelize_mesh(V, F, resolution=res, bounds=(-1, 1), max_pieces=300)  # many passes, same answer
    assert np.array_equal(small.coords, vox.coords) and np.array_equal(small.counts, vox.counts)


def test_voxelize_mesh_thin_sliver_leaves_no_holes():
    V = np.array([[0.05, 0.1, 0.12], [0.93, 0.81, 0.64], [0.93, 0.8102, 0.6401]])
    F = np.array([[0, 1, 2]])
    res = 50
    vox = voxelize_mesh(torch.as_tensor(V), torch.as_tensor(F), resolution=res, bounds=(0, 1))
    t = np.linspace(0, 1, 20001)[:, None]
    line = V[0] + t * (V[1] - V[0])                                            # dense samples of the long edge
    seen = np.unique(np.floor(line * res).astype(int), axis=0)
    got = {tuple(r) for r in vox.coords.tolist()}
    assert {tuple(r) for r in seen} <= got                                     # every cell it passes through
    centres = (vox.coords.numpy() + 0.5) / res                                 # and nothing far from it
    d = V[1] - V[0]
    s = np.clip(((centres - V[0]) @ d) / (d @ d), 0, 1)[:, None]
    assert np.linalg.norm(centres - (V[0] + s * d), axis=1).max() < np.sqrt(3) / 2 / res + 1e-3


def test_voxelize_mesh_colours_are_averages():
    V = np.array([[0, 0, 0.5], [1, 0, 0.5], [1, 1, 0.5], [0, 1, 0.5]], float)
    F = np.array([[0, 1, 2], [0, 2, 3]])                                       # diagonal x = y splits them
    red_blue = np.array([[255.0, 0, 0], [0, 0, 255.0]])
    vox = voxelize_mesh(V + [0, 0, 0.01], F, face_colors=red_blue, resolution=10, bounds=(0, 1))
    i, j = vox.coords[:, 0], vox.coords[:, 1]
    np.testing.assert_allclose(vox.colors[i > j + 1], np.broadcast_to([255, 0, 0], ((i > j + 1).sum(), 3)), atol=1e-3)
    np.testing.assert_allclose(vox.colors[j > i + 1], np.broadcast_to([0, 0, 255], ((j > i + 1).sum(), 3)), atol=1e-3)
    diag = vox.colors[i == j]                                                  # half and half by area
    np.testing.assert_allclose(diag[:, 0] + diag[:, 2], 255, atol=1e-3)
    assert np.all((diag[:, 0] > 50) & (diag[:, 2] > 50))
    # vertex colours = position: a voxel's colour is a blend of surface points that touch it
    box = trimesh.creation.box(extents=[1.1, 1.3, 0.9])
    vox = voxelize_mesh(box.vertices, box.faces, vertex_colors=box.vertices, resolution=16, bounds=(-1, 1))
    centre = vox.coords * (2 / 16) - 1 + 1 / 16
    assert np.linalg.norm(vox.colors - centre, axis=1).max() <= np.sqrt(3) / 16 + 1e-5
    i, j, k = vox.coords.T                       # the +x face (x = 0.55, cell 12) far from the other faces
    mid = (i == 12) & (j >= 4) & (j <= 11) & (k >= 6) & (k <= 9)
    assert mid.sum() == 32 and np.allclose(vox.colors[mid, 0], 0.55, atol=1e-6)


@cuda
def test_voxelize_cuda_matches_cpu():
    mesh = trimesh.creation.icosphere(3, 0.8)
    a = voxelize_mesh(mesh.vertices, mesh.faces, vertex_colors=mesh.vertices, resolution=40, bounds=(-1, 1))
    b = voxelize_mesh(torch.as_tensor(mesh.vertices).cuda(), torch.as_tensor(mesh.faces).cuda(),
                      vertex_colors=torch.as_tensor(mesh.vertices).cuda(), resolution=40, bounds=(-1, 1))
    assert np.array_equal(a.coords, b.coords.cpu().numpy())
    np.testing.assert_allclose(a.colors, b.colors.cpu().numpy(), atol=1e-4)
    x = torch.rand(1000, 3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(voxelize_points(x, resolution=16, bounds=(0, 1)).coords,
                       voxelize_points(x.cuda(), resolution=16, bounds=(0, 1)).coords.cpu())
