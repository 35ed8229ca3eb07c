"""The Gaussian rasteriser: against the slow reference, an analytic Gaussian, gradcheck, gsplat.

Scenes are tiny (16 x 12 pixels, a few dozen Gaussians) and in float64 unless said otherwise,
so that differences are the algorithm's, not rounding's.
"""
import math

import pytest
import torch

from fourdlib.geometry import intrinsics_from_fov, invert_rigid, look_at
from fourdlib.render import (gaussians_per_tile, gsplat_available, project_gaussians, render_gaussians,
                             render_gaussians_batch, render_gaussians_gsplat, render_reference)

F64 = torch.float64
H, W = 12, 16


def _camera(eye=(0.3, -2.5, 0.8), target=(0.0, 0.0, 0.0), H=H, W=W, dtype=F64):
    """world_to_cam (4, 4), K (3, 3) of a look-at camera (OpenCV axes)."""
    w2c = invert_rigid(torch.as_tensor(look_at(list(eye), list(target))).to(dtype))
    return w2c, torch.as_tensor(intrinsics_from_fov(50, H, W)).to(dtype)


def _scene(G=24, C=4, seed=0, dtype=F64, spread=1.0, opacity=(0.05, 0.95)):
    """Random Gaussians round the origin: means, quats, scales, opacities, colors."""
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(G, 3, generator=g, dtype=dtype) * 2 - 1) * spread
    quats = torch.randn(G, 4, generator=g, dtype=dtype)                    # not unit: normalised inside
    scales = torch.rand(G, 3, generator=g, dtype=dtype) * 0.5 + 0.06
    lo, hi = opacity
    opacities = torch.rand(G, generator=g, dtype=dtype) * (hi - lo) + lo
    colors = torch.rand(G, C, generator=g, dtype=dtype)
    return means, quats, scales, opacities, colors


def _close(a, b, atol):
    for name, x, y in zip(("image", "depth", "alpha"), a, b):
        assert x.shape == y.shape, name
        err = (x.double() - y.double()).abs().max().item()
        assert err <= atol, f"{name}: max abs difference {err:.3g} > {atol}"


# ----------------------------------------------------------------------------- the reference

@pytest.mark.parametrize("tile_size", [16, 5, 7, 1])
@pytest.mark.parametrize("seed", [0, 1])
def test_equals_bruteforce_reference(seed, tile_size):
    scene = _scene(seed=seed)
    w2c, K = _camera()
    bg = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=F64)
    out = render_gaussians(*scene, w2c, K, W, H, background=bg, tile_size=tile_size)
    ref = render_reference(*scene, w2c, K, W, H, background=bg)
    assert out.image.shape == (H, W, 4) and out.depth.shape == (H, W) and out.alpha.shape == (H, W)
    assert out.alpha.mean() > 0.4                                           # the scene covers the image
    _close(out, ref, 1e-5)


def test_equals_reference_where_alpha_clamps_and_pixels_saturate():
    """Stacked opaque Gaussians: alpha hits alpha_max and T falls below min_transmittance."""
    G = 12
    scene = list(_scene(G=G, seed=3, spread=0.2, opacity=(0.97, 1.0)))
    scene[0][:, 1] = torch.linspace(-0.5, 0.5, G, dtype=F64)               # layers along the view axis
    scene[2] = scene[2] + 0.4                                               # large: each covers the image
    w2c, K = _camera()
    for alpha_max in (0.99, 0.999):
        out = render_gaussians(*scene, w2c, K, W, H, tile_size=5, alpha_max=alpha_max)
        ref = render_reference(*scene, w2c, K, W, H, alpha_max=alpha_max)
        _close(out, ref, 1e-5)
    never_stop = render_gaussians(*scene, w2c, K, W, H, tile_size=5, alpha_max=alpha_max, min_transmittance=0)
    assert (never_stop.image - out.image).abs().max() > 0                   # some pixels did stop early


def _grads(fn, scene, **kw):
    w2c, K = _camera()
    img, depth, alpha = fn(*scene, w2c, K, W, H, **kw)
    loss = (img * torch.linspace(0, 1, 4, dtype=F64)).sum() + depth.sum() + alpha.sum()
    return torch.autograd.grad(loss, scene)


def test_gradients_equal_reference():
    scene = [t.requires_grad_() for t in _scene(G=10, seed=4)]
    for g_ref, g in zip(_grads(render_reference, scene), _grads(render_gaussians, scene, tile_size=5)):
        torch.testing.assert_close(g, g_ref, atol=1e-9, rtol=1e-7)


def test_checkpointed_tiles_give_the_same_gradients():
    """(The first torch.utils.checkpoint call in a process imports torch._dynamo: seconds, once.)"""
    scene = [t.requires_grad_() for t in _scene(G=10, seed=4)]
    for g_plain, g in zip(_grads(render_gaussians, scene, tile_size=5),
                          _grads(render_gaussians, scene, tile_size=5, checkpoint_tiles=True)):
        torch.testing.assert_close(g, g_plain, atol=1e-12, rtol=1e-10)


# ----------------------------------------------------------------------------- one Gaussian, by hand

def test_one_gaussian_renders_the_analytic_2d_gaussian():
    H1, W1, f, cx, cy = 40, 48, 40.0, 22.3, 19.1
    K = torch.tensor([[f, 0, cx], [0, f, cy], [0, 0, 1]], dtype=F64)
    c2w = torch.as_tensor(look_at([1.0, -2.0, 0.5], [0.0, 0.5, 0.2])).double()
    U, _, Vh = torch.linalg.svd(c2w[:3, :3])                                # look_at is float32: re-orthonormalise
    c2w[:3, :3] = U @ Vh
    w2c = invert_rigid(c2w)
    # Head on: the Gaussian's third axis along the camera's z, rotated by 0.5 rad in the image plane.
    mean_c, theta, s = torch.tensor([0.1, -0.02, 2.0], dtype=F64), 0.5, torch.tensor([0.25, 0.12, 0.02], dtype=F64)
    R_c = torch.tensor([[math.cos(theta), -math.sin(theta), 0], [math.sin(theta), math.cos(theta), 0], [0, 0, 1]],
                       dtype=F64)
    R_w = c2w[:3, :3] @ R_c
    mean_w = c2w[:3, :3] @ mean_c + c2w[:3, 3]
    # the quaternion of R_w (w > 0 branch is fine: R_w is not a half-turn here)
    w = 0.5 * torch.sqrt(1 + R_w.trace())
    quat = torch.stack([w, (R_w[2, 1] - R_w[1, 2]) / (4 * w), (R_w[0, 2] - R_w[2, 0]) / (4 * w),
                        (R_w[1, 0] - R_w[0, 1]) / (4 * w)])
    opacity = 0.8

    x, y, z = mean_c
    J = torch.tensor([[f / z, 0, -f * x / z ** 2], [0, f / z, -f * y / z ** 2]], dtype=F64)
    for eps2d in (0.0, 0.3):
        cov2d = J @ R_c @ torch.diag(s ** 2) @ R_c.T @ J.T + eps2d * torch.eye(2, dtype=F64)
        mu = torch.stack([f * x / z + cx, f * y / z + cy])
        out = render_gaussians(mean_w[None], quat[None], s[None], torch.tensor([opacity], dtype=F64),
                               torch.ones(1, 1, dtype=F64), w2c, K, W1, H1, eps2d=eps2d, tile_size=16)

        # pixel by pixel: alpha = opacity exp(-d^T cov2d^-1 d / 2) where it is >= 1/255, else 0
        v, u = torch.meshgrid(torch.arange(H1, dtype=F64) + 0.5, torch.arange(W1, dtype=F64) + 0.5, indexing="ij")
        d = torch.stack([u, v], -1) - mu
        expect = opacity * torch.exp(-0.5 * ((d @ torch.linalg.inv(cov2d)) * d).sum(-1))
        expect = torch.where(expect >= 1 / 255, expect, torch.zeros_like(expect))
        torch.testing.assert_close(out.alpha, expect, atol=1e-10, rtol=0)
        torch.testing.assert_close(out.depth[out.alpha > 0], torch.full_like(out.depth[out.alpha > 0], z.item()))

        # image moments: centre at the projected mean, covariance cov2d (corrected for the
        # cut at alpha = 1/255: a 2D Gaussian kept where r^2 <= k has E[r^2] = 2 - k e^{-k/2} / (1 - e^{-k/2}))
        m = out.alpha / out.alpha.sum()
        p = torch.stack([u, v], -1)
        centre = (m[..., None] * p).sum((0, 1))
        q = p - centre
        cov = (m[..., None, None] * q[..., :, None] * q[..., None, :]).sum((0, 1))
        k = 2 * math.log(255 * opacity)
        shrink = (2 - k * math.exp(-k / 2) / (1 - math.exp(-k / 2))) / 2
        assert (centre - mu).abs().max() < 0.02, (centre, mu)
        torch.testing.assert_close(cov / shrink, cov2d, rtol=0.02, atol=0.02)


def test_projection_gives_the_box_where_alpha_exceeds_1_over_255():
    scene = _scene(seed=5)
    w2c, K = _camera()
    p = project_gaussians(scene[0], scene[1], scene[2], scene[3], w2c, K, W, H)
    k = torch.sqrt(2 * torch.log(255 * p.opacities))
    torch.testing.assert_close(p.radii.double(), torch.ceil(k[:, None] * torch.stack(
        [p.cov2d[:, 0, 0], p.cov2d[:, 1, 1]], -1).sqrt()))
    torch.testing.assert_close(torch.linalg.inv(p.cov2d)[:, [0, 0, 1], [0, 1, 1]], p.conics)
    per_tile = gaussians_per_tile(p, W, H, tile_size=8)
    assert per_tile.shape == (2, 2) and per_tile.max() <= len(p.ids)


# ----------------------------------------------------------------------------- gradients

@pytest.mark.parametrize("Wg, Hg, tile_size, fast", [(3, 3, 2, False), (8, 6, 4, True)])
def test_gradcheck(Wg, Hg, tile_size, fast):
    """gradcheck w.r.t. means, quats, scales, opacities, colours; the full Jacobian on 3 x 3
    pixels (2 x 2 tiles, the last ones partial), gradcheck's fast random projections on 8 x 6."""
    scene = list(_scene(G=3, C=2, seed=6, spread=0.3, opacity=(0.3, 0.8)))
    scene[2] = scene[2] + 0.3                                               # large: alpha far above 1/255 everywhere
    w2c, K = _camera(H=6, W=8)
    K[0] *= Wg / 8                                                           # the same view at Wg x Hg pixels
    K[1] *= Hg / 6
    inputs = tuple(t.clone().requires_grad_() for t in scene)
    bg = torch.tensor([0.2, 0.7], dtype=F64)

    def fn(*args):
        return tuple(render_gaussians(*args, w2c, K, Wg, Hg, tile_size=tile_size, background=bg))

    assert render_gaussians(*scene, w2c, K, Wg, Hg).alpha.min() > 0.02     # every pixel sees them, far above 1/255
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5, fast_mode=fast)


# ----------------------------------------------------------------------------- what a picture needs

def _two_gaussians(order):
    """An opaque red Gaussian at z = 2 in front of a larger blue one at z = 4, on the optical axis."""
    means = torch.tensor([[0, 0, 2.0], [0, 0, 4.0]], dtype=F64)
    quats = torch.tensor([[1, 0, 0, 0.0]] * 2, dtype=F64)
    scales = torch.tensor([[0.8] * 3, [2.0] * 3], dtype=F64)
    opacities = torch.tensor([1.0, 1.0], dtype=F64)
    colors = torch.tensor([[1, 0, 0.0], [0, 0, 1.0]], dtype=F64)
    return [t[order] for t in (means, quats, scales, opacities, colors)]


def test_near_opaque_gaussian_hides_far_one_whatever_the_input_order():
    K = torch.as_tensor(intrinsics_from_fov(50, H, W)).double()
    w2c = torch.eye(4, dtype=F64)
    a = render_gaussians(*_two_gaussians([0, 1]), w2c, K, W, H)
    b = render_gaussians(*_two_gaussians([1, 0]), w2c, K, W, H)
    _close(a, b, 1e-12)
    centre = a.image[H // 2, W // 2]
    assert centre[0] > 0.98 and centre[2] < 0.02                           # red, 1 % of blue behind alpha 0.99
    assert abs(a.depth[H // 2, W // 2] - 2.0) < 0.05


def test_gaussians_behind_the_camera_or_near_plane_are_culled():
    K = torch.as_tensor(intrinsics_from_fov(50, H, W)).double()
    w2c = torch.eye(4, dtype=F64)
    front = _two_gaussians([0])
    behind = [torch.tensor([[0, 0, -2.0], [0.1, 0, 0.005]], dtype=F64), torch.tensor([[1, 0, 0, 0.0]] * 2, dtype=F64),
              torch.full((2, 3), 0.5, dtype=F64), torch.ones(2, dtype=F64), torch.ones(2, 3, dtype=F64)]
    both = [torch.cat([f, b]).requires_grad_() for f, b in zip(front, behind)]
    out = render_gaussians(*both, w2c, K, W, H, near=0.01)
    _close(out, render_gaussians(*front, w2c, K, W, H), 1e-12)
    out.image.sum().backward()
    assert all(torch.isfinite(t.grad).all() and (t.grad[1:] == 0).all() for t in both)

    # a camera that sees nothing, and an empty scene: the background, alpha 0, depth 0 (documented)
    bg = torch.tensor([0.3, 0.5, 0.7], dtype=F64)
    for scene in ([t.detach()[1:] for t in both], [t[:0] for t in front]):
        empty = render_gaussians(*scene, w2c, K, W, H, background=bg)
        assert (empty.image == bg).all() and (empty.alpha == 0).all() and (empty.depth == 0).all()


def test_tile_size_does_not_change_the_image_float32():
    scene = _scene(G=40, seed=7, dtype=torch.float32)
    w2c, K = _camera(dtype=torch.float32)
    outs = [render_gaussians(*scene, w2c, K, W, H, tile_size=t) for t in (16, 64, 6, 4, 3)]
    for o in outs[1:]:
        _close(o, outs[0], 1e-6)


def test_batch_over_cameras_equals_one_by_one():
    scene = _scene(seed=8)
    cams = [_camera(eye=e) for e in [(0.3, -2.5, 0.8), (2.5, 1.0, 0.5), (-1.0, 2.0, 2.0)]]
    w2cs, Ks = torch.stack([c[0] for c in cams]), torch.stack([c[1] for c in cams])
    batch = render_gaussians_batch(*scene, w2cs, Ks, W, H, tile_size=8)
    shared_K = render_gaussians_batch(*scene, w2cs, Ks[0], W, H, tile_size=8)
    assert batch.image.shape == (3, H, W, 4) and batch.depth.shape == (3, H, W)
    for i, (w2c, K) in enumerate(cams):
        one = render_gaussians(*scene, w2c, K, W, H, tile_size=8)
        _close([x[i] for x in batch], one, 0)
        _close([x[i] for x in shared_K], one, 0)


# ----------------------------------------------------------------------------- bad input

def _bad(field, value):
    def make():
        scene = dict(zip(("means", "quats", "scales", "opacities", "colors"), _scene(G=4, seed=9)))
        w2c, K = _camera()
        kw = dict(world_to_cam=w2c, K=K, width=W, height=H)
        if callable(value):
            target = scene if field in scene else kw
            target[field] = value(target[field])
        else:
            kw[field] = value
        return scene, kw
    return make


def _nan_at(t):
    t = t.clone()
    t.view(-1)[1] = float("nan")
    return t


def _set(index, v):
    def f(t):
        t = t.clone()
        t[index] = v
        return t
    return f


@pytest.mark.parametrize("make, match", [
    (_bad("means", lambda t: t[:, :2]), "means"),
    (_bad("quats", lambda t: t[:3]), "quats"),
    (_bad("colors", lambda t: t[:3]), "colors"),
    (_bad("opacities", lambda t: t[:, None]), "opacities"),
    (_bad("means", lambda t: t.long()), "means"),
    (_bad("means", _nan_at), "means: contains NaN"),
    (_bad("colors", _nan_at), "colors: contains NaN"),
    (_bad("scales", _set(0, 0.0)), "scales: must be positive"),
    (_bad("scales", _set((1, 2), -0.1)), "scales: must be positive"),
    (_bad("opacities", _set(2, 1.5)), "opacities"),
    (_bad("opacities", _set(2, -0.1)), "opacities"),
    (_bad("quats", _set(1, 0.0)), "quats: a quaternion has zero norm"),
    (_bad("world_to_cam", lambda T: torch.diag(torch.tensor([1, 1, -1, 1.0], dtype=F64)) @ T), "det"),
    (_bad("world_to_cam", lambda T: torch.diag(torch.tensor([2, 2, 2, 1.0], dtype=F64)) @ T), "det"),
    (_bad("world_to_cam", _nan_at), "world_to_cam: contains NaN"),
    (_bad("world_to_cam", lambda T: T[:3]), "world_to_cam"),
    (_bad("world_to_cam", _set((3, 0), 0.5)), "last row"),
    (_bad("K", _set((0, 0), -10.0)), "focal"),
    (_bad("K", _set((2, 2), 2.0)), "K: expected"),
    (_bad("width", 0), "width"),
    (_bad("height", 12.0), "width, height"),
    (_bad("tile_size", 0), "tile_size"),
    (_bad("near", 0.0), "near"),
    (_bad("background", torch.zeros(3, dtype=F64)), "background"),
])
def test_bad_input_raises(make, match):
    scene, kw = make()
    with pytest.raises(ValueError, match=match):
        render_gaussians(**scene, **kw)


def test_bad_batch_cameras_raise():
    scene = _scene(G=4, seed=9)
    w2c, K = _camera()
    with pytest.raises(ValueError, match="world_to_cams"):
        render_gaussians_batch(*scene, w2c, K, W, H)
    with pytest.raises(ValueError, match="Ks"):
        render_gaussians_batch(*scene, w2c[None].repeat(2, 1, 1), K[None].repeat(3, 1, 1), W, H)


# ----------------------------------------------------------------------------- gsplat

def test_projection_equals_gsplat_torch_reference():
    """gsplat's own torch projection (CPU) gives the same means, conics and depths (conventions, EWA, clamp)."""
    impl = pytest.importorskip("gsplat.cuda._torch_impl")
    means, quats, scales, opacities, _ = _scene(G=60, seed=11, spread=2.5)  # some off-screen, where J is clamped
    w2c, K = _camera()
    p = project_gaussians(means, quats, scales, opacities, w2c, K, W, H)
    covars, _ = impl._quat_scale_to_covar_preci(quats, scales, compute_preci=False, triu=False)
    _, means2d, depths, conics, _ = impl._fully_fused_projection(means, covars, w2c[None], K[None], W, H, eps2d=0.3)
    x_over_z, y_over_z = ((p.means2d - K[:2, 2]) / K[[0, 1], [0, 1]]).unbind(-1)  # J clamps beyond 0.65 W / fx
    assert len(p.ids) > 20 and ((x_over_z.abs() > 0.65 * W / K[0, 0]) | (y_over_z.abs() > 0.65 * H / K[1, 1])).any()
    torch.testing.assert_close(p.means2d, means2d[0, p.ids])
    torch.testing.assert_close(p.conics, conics[0, p.ids])
    torch.testing.assert_close(p.depths, depths[0, p.ids])




@pytest.mark.skipif(not gsplat_available(), reason="needs gsplat and CUDA")
def test_equals_gsplat_on_cuda():
    dev = torch.device("cuda")
    Hg, Wg = 48, 64
    scene = [t.to(dev) for t in _scene(G=300, C=5, seed=10, dtype=torch.float32, opacity=(0.05, 0.99))]
    w2c, K = (t.to(dev) for t in _camera(H=Hg, W=Wg, dtype=torch.float32))
    bg = torch.tensor([0.1, 0.2, 0.3, 0.0, 1.0], device=dev)
    ours = render_gaussians(*scene, w2c, K, Wg, Hg, background=bg, alpha_max=0.999)
    theirs = render_gaussians_gsplat(*scene, w2c, K, Wg, Hg, background=bg)
    assert ours.alpha.mean() > 0.5
    torch.testing.assert_close(theirs.image, ours.image, atol=1e-4, rtol=0)
    torch.testing.assert_close(theirs.alpha, ours.alpha, atol=1e-4, rtol=0)
    torch.testing.assert_close(theirs.depth, ours.depth, atol=1e-4, rtol=1e-4)   # metres: 1e-4 relative
