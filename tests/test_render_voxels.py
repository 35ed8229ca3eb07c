"""The sparse-voxel rasteriser: against the brute-force ray marcher, gradcheck, one cube by hand.

Scenes are tiny (12 x 10 pixels, a few dozen voxels of a 5^3 grid) and in float64 unless said
otherwise, so that differences are the algorithm's, not rounding's.
"""
import functools
import itertools

import pytest
import torch

from fourdlib.geometry import intrinsics_from_fov, invert_rigid, look_at
from fourdlib.render.voxels import render_voxels, render_voxels_reference, voxels_per_tile

F64 = torch.float64
H, W = 10, 12
BG = (0.1, 0.2, 0.3)

# name: (eye, target, voxel size); the grid is centred on the origin
CAMERAS = {
    "outside": ((0.35, -1.15, 0.45), (0.05, 0.0, -0.05), 0.2),
    "inside": ((0.07, -0.13, 0.04), (0.5, 0.6, 0.2), 0.2),          # the camera sits in the grid: near-plane cubes
    "anisotropic": ((-0.8, -0.95, 0.7), (0.0, 0.0, 0.0), (0.15, 0.2, 0.25)),
}


def _camera(eye, target, H=H, W=W, dtype=F64):
    """world_to_cam (4, 4), K (3, 3) of a look-at camera (OpenCV axes), re-orthonormalised in float64."""
    c2w = torch.as_tensor(look_at(list(eye), list(target))).double()
    U, _, Vh = torch.linalg.svd(c2w[:3, :3])                                  # look_at is float32
    c2w[:3, :3] = U @ Vh
    return invert_rigid(c2w).to(dtype), torch.as_tensor(intrinsics_from_fov(60, H, W)).to(dtype)


def _scene(seed=0, R=5, fill=0.35, C=3, voxel_size=0.2):
    """A random sparse subset of an R^3 grid centred on the world origin, in random order.

    Returns coords (V, 3), occupancy (V,) (some exactly 0 and 1), colors (V, C), grid kwargs.
    """
    g = torch.Generator().manual_seed(seed)
    cells = torch.stack(torch.meshgrid(*[torch.arange(R)] * 3, indexing="ij"), -1).reshape(-1, 3)
    coords = cells[torch.rand(len(cells), generator=g) < fill]
    coords = coords[torch.randperm(len(coords), generator=g)] - 2           # negative indices too
    V = len(coords)
    occ = torch.rand(V, generator=g, dtype=F64)
    occ[::5], occ[1::7] = 1.0, 0.0
    colors = torch.rand(V, C, generator=g, dtype=F64)
    size = torch.as_tensor(voxel_size, dtype=F64).expand(3)
    origin = (-0.5 * size).tolist()                                          # cell 0 is centred on the origin
    return coords, occ, colors, dict(voxel_size=voxel_size, origin=origin)


@functools.lru_cache(maxsize=None)
def _reference(seed, camera):
    eye, target, size = CAMERAS[camera]
    coords, occ, colors, grid = _scene(seed, voxel_size=size)
    w2c, K = _camera(eye, target)
    return render_voxels_reference(coords, occ, colors, w2c, K, W, H, **grid, background=BG)


def _close(out, ref, atol):
    assert out.image.shape == ref.image.shape and out.depth.shape == ref.depth.shape == out.alpha.shape
    err = {"image": (out.image - ref.image).abs().max().item(), "alpha": (out.alpha - ref.alpha).abs().max().item()}
    seen = ref.alpha > 1e-6
    err["depth"] = (out.depth[seen] - ref.depth[seen]).abs().max().item()
    for name, e in err.items():
        assert e <= atol, f"{name}: max abs difference {e:.3g} > {atol}"


# ----------------------------------------------------------------------------- the reference

@pytest.mark.parametrize("camera", list(CAMERAS))
@pytest.mark.parametrize("tile_size", [16, 5, 3, 1])
@pytest.mark.parametrize("seed", [0, 1])
def test_equals_bruteforce_reference(seed, tile_size, camera):
    eye, target, size = CAMERAS[camera]
    coords, occ, colors, grid = _scene(seed, voxel_size=size)
    w2c, K = _camera(eye, target)
    out = render_voxels(coords, occ, colors, w2c, K, W, H, **grid, background=BG, tile_size=tile_size)
    ref = _reference(seed, camera)
    assert out.image.shape == (H, W, 3) and out.depth.shape == (H, W) and out.alpha.shape == (H, W)
    assert (ref.alpha > 0).float().mean() > 0.3 and (ref.alpha == 1).any()  # the grid covers much of the image
    _close(out, ref, 1e-5)


def test_float32_matches_the_reference():
    coords, occ, colors, grid = _scene(0)
    occ, colors = occ.float(), colors.float()
    w2c, K = _camera(*CAMERAS["outside"][:2], dtype=torch.float32)
    out = render_voxels(coords, occ, colors, w2c, K, W, H, **grid, background=BG, tile_size=5)
    assert out.image.dtype == torch.float32
    _close(out, _reference(0, "outside"), 1e-4)


# ----------------------------------------------------------------------------- gradients

def _grads(fn, coords, occ, colors, grid, w2c, K, **kw):
    out = fn(coords, occ, colors, w2c, K, W, H, **grid, background=BG, **kw)
    loss = (out.image * torch.tensor([0.3, 1.0, -0.5], dtype=F64)).sum() + out.depth.sum() + out.alpha.sum()
    return torch.autograd.grad(loss, (occ, colors))


def test_gradients_equal_reference():
    coords, occ, colors, grid = _scene(2, R=4, fill=0.3)
    occ, colors = occ.clamp(0.05, 1.0).requires_grad_(), colors.requires_grad_()   # depth / alpha: alpha > 0
    w2c, K = _camera(*CAMERAS["outside"][:2])
    g_ref = _grads(render_voxels_reference, coords, occ, colors, grid, w2c, K)
    g = _grads(render_voxels, coords, occ, colors, grid, w2c, K, tile_size=4)
    assert g[0].abs().sum() > 0 and g[1].abs().sum() > 0
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-7)


def test_checkpointed_tiles_give_the_same_gradients():
    """(The first torch.utils.checkpoint call in a process imports torch._dynamo: seconds, once.)"""
    coords, occ, colors, grid = _scene(3, R=4, fill=0.3)
    occ, colors = occ.clamp(0.05, 1.0).requires_grad_(), colors.requires_grad_()
    w2c, K = _camera(*CAMERAS["outside"][:2])
    for a, b in zip(_grads(render_voxels, coords, occ, colors, grid, w2c, K, tile_size=4),
                    _grads(render_voxels, coords, occ, colors, grid, w2c, K, tile_size=4, checkpoint_tiles=True)):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)


def test_gradcheck():
    """gradcheck w.r.t. occupancy and colours on 6 x 5 pixels (2 x 2 tiles, the last ones partial),
    four voxels in two layers so that pixels see one, two or three of them."""
    coords = torch.tensor([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    occ = torch.tensor([0.3, 0.6, 0.45, 0.7], dtype=F64, requires_grad=True)
    colors = torch.rand(4, 2, dtype=F64, generator=torch.Generator().manual_seed(7)).requires_grad_()
    w2c, K = _camera((0.7, -0.5, 0.9), (0.4, 0.4, 0.4), H=5, W=6)
    grid = dict(voxel_size=0.4, origin=(0.0, 0.0, 0.0))
    bg = torch.tensor([0.2, 0.7], dtype=F64)

    def fn(o, c):
        return tuple(render_voxels(coords, o, c, w2c, K, 6, 5, **grid, background=bg, tile_size=4))

    alpha = fn(occ, colors)[2]
    assert (alpha > 0).float().mean() > 0.3 and (alpha > 0.75).any()       # several voxels behind each other
    assert torch.autograd.gradcheck(fn, (occ, colors), eps=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------- what a picture needs

def _axis_scene(order):
    """On the optical axis of the identity camera: an opaque red cube at z 2..2.5 before a blue one
    (occupancy 0.7) at z 4..4.5; a green cube off to the side."""
    coords = torch.tensor([[0, 0, 4], [0, 0, 8], [3, 1, 5]])
    occ = torch.tensor([1.0, 0.7, 0.8], dtype=F64)
    colors = torch.tensor([[1, 0, 0.0], [0, 0, 1.0], [0, 1, 0.0]], dtype=F64)
    return coords[order], occ[order], colors[order]


def test_opaque_near_voxel_hides_far_one_in_any_input_order():
    K = torch.tensor([[8.0, 0, 6.0], [0, 8.0, 5.0], [0, 0, 1]], dtype=F64)
    w2c = torch.eye(4, dtype=F64)
    grid = dict(voxel_size=0.5, origin=(-0.25, -0.25, 0.0))
    outs = [render_voxels(*_axis_scene(list(p)), w2c, K, W, H, **grid, tile_size=5)
            for p in itertools.permutations(range(3))]
    for o in outs[1:]:
        for a, b in zip(o, outs[0]):
            assert torch.equal(a, b)
    out = outs[0]
    red = (out.image - torch.tensor([1, 0, 0.0], dtype=F64)).abs().amax(-1) < 1e-12
    assert red.sum() >= 4 and out.alpha[red].eq(1).all()
    torch.testing.assert_close(out.depth[red], torch.full_like(out.depth[red], 2.0))
    assert out.image[..., 2].max() == 0                                      # no blue anywhere: it is all behind red
    ref = render_voxels_reference(*_axis_scene([2, 0, 1]), w2c, K, W, H, **grid)
    _close(out, ref, 1e-5)


@pytest.mark.parametrize("order", [[0, 1], [1, 0]])
def test_order_is_per_ray_not_per_voxel(order):
    """Two cubes side by side at the same depth (x 0.2..0.4 red and opaque, 0.4..0.6 blue; z 1..1.2):
    their centres tie in depth, yet the ray of column 7 (x/z = 0.35) enters red first and crosses
    their shared face into blue. Only a per-ray sort gets it right in both input orders."""
    K = torch.tensor([[20.0, 0, 0.5], [0, 20.0, 5.0], [0, 0, 1]], dtype=F64)
    coords = torch.tensor([[1, 0, 0], [2, 0, 0]])[order]
    occ = torch.tensor([1.0, 0.9], dtype=F64)[order]
    colors = torch.tensor([[1, 0, 0.0], [0, 0, 1.0]], dtype=F64)[order]
    grid = dict(voxel_size=0.2, origin=(0.0, -0.1, 1.0))
    out = render_voxels(coords, occ, colors, torch.eye(4, dtype=F64), K, W, H, **grid, tile_size=4)
    assert torch.equal(out.image[5, 7], torch.tensor([1, 0, 0.0], dtype=F64))
    assert out.image[5, 8, 2] == 0.9                                         # beyond the shared face: blue only
    _close(out, render_voxels_reference(coords, occ, colors, torch.eye(4, dtype=F64), K, W, H, **grid), 1e-5)


@pytest.mark.parametrize("occupancy", [1.0, 0.35])
def test_single_voxel_head_on_covers_its_projected_square(occupancy):
    """A cube [-0.5, 0.5]^2 x [2.2, 3.2] in front of the identity camera: its image is its front face,
    the square |u - cx|, |v - cy| < f 0.5 / 2.2. cx, cy on a pixel centre: that pixel's ray is (0, 0, 1)."""
    f, cx, cy, z0 = 10.0, 5.5, 4.5, 2.2
    K = torch.tensor([[f, 0, cx], [0, f, cy], [0, 0, 1]], dtype=F64)
    colour = torch.tensor([[0.9, 0.4, 0.1]], dtype=F64)
    out = render_voxels(torch.tensor([[0, 0, 0]]), torch.tensor([occupancy], dtype=F64), colour,
                        torch.eye(4, dtype=F64), K, W, H, voxel_size=1.0, origin=(-0.5, -0.5, z0), background=BG,
                        tile_size=4)
    v, u = torch.meshgrid(torch.arange(H, dtype=F64) + 0.5, torch.arange(W, dtype=F64) + 0.5, indexing="ij")
    half = f * 0.5 / z0                                                      # 2.27 px: no pixel centre on an edge
    inside = ((u - cx).abs() < half) & ((v - cy).abs() < half)
    assert inside.sum() == 25 and inside[4, 5]                               # 5 x 5 pixels, the axis pixel among them
    torch.testing.assert_close(out.alpha, inside.double() * occupancy, atol=1e-12, rtol=0)
    torch.testing.assert_close(out.depth, inside.double() * z0, atol=1e-12, rtol=0)
    expect = torch.where(inside[..., None], occupancy * colour[0] + (1 - occupancy) * torch.tensor(BG, dtype=F64),
                         torch.tensor(BG, dtype=F64))
    torch.testing.assert_close(out.image, expect, atol=1e-12, rtol=0)


def test_empty_grid_and_voxels_behind_the_camera_give_the_background():
    w2c, K = torch.eye(4, dtype=F64), torch.tensor([[10.0, 0, 6], [0, 10, 5], [0, 0, 1]], dtype=F64)
    bg = torch.tensor(BG, dtype=F64)
    empty = (torch.zeros(0, 3, dtype=torch.long), torch.zeros(0, dtype=F64), torch.zeros(0, 3, dtype=F64))
    behind = (torch.tensor([[0, 0, -3], [1, 0, -2]]), torch.ones(2, dtype=F64), torch.ones(2, 3, dtype=F64))
    for scene in (empty, behind):
        for fn in (render_voxels, render_voxels_reference):
            out = fn(*scene, w2c, K, W, H, voxel_size=0.5, background=bg)
            assert torch.equal(out.image, bg.expand(H, W, 3)), fn.__name__
            assert out.alpha.abs().max() == 0 and out.depth.abs().max() == 0


def test_voxels_per_tile_counts_only_overlapping_voxels():
    eye, target, size = CAMERAS["outside"]
    coords, _, _, grid = _scene(0, voxel_size=size)
    w2c, K = _camera(eye, target)
    per_tile = voxels_per_tile(coords, grid["voxel_size"], grid["origin"], w2c, K, W, H, tile_size=4)
    assert per_tile.shape == (3, 3) and per_tile.max() <= len(coords) and per_tile.min() < per_tile.max()


# ----------------------------------------------------------------------------- bad input

def _good():
    coords = torch.tensor([[0, 0, 0], [1, 0, 0]])
    return dict(coords=coords, occupancy=torch.tensor([0.5, 1.0]), colors=torch.rand(2, 3),
                world_to_cam=torch.eye(4), K=torch.tensor([[10.0, 0, 6], [0, 10, 5], [0, 0, 1]]),
                width=W, height=H, voxel_size=0.5, origin=(0.0, 0.0, 2.0))


BAD = [
    ("coords", torch.tensor([[0.0, 0, 0], [1, 0, 0]]), "integer"),
    ("coords", torch.tensor([[0.5, 0, 0], [1, 0, 0]]), "integer"),
    ("coords", [[0, 0, 0], [1, 0, 0]], "integer"),
    ("coords", torch.tensor([[0, 0], [1, 0]]), r"\(V, 3\)"),
    ("coords", torch.tensor([[1, 0, 0], [1, 0, 0]]), "duplicate"),
    ("occupancy", torch.tensor([0.5]), "occupancy"),
    ("occupancy", torch.tensor([0.5, float("nan")]), "NaN"),
    ("occupancy", torch.tensor([0.5, 1.2]), r"\[0, 1\]"),
    ("occupancy", torch.tensor([-0.1, 0.5]), r"\[0, 1\]"),
    ("occupancy", torch.tensor([0, 1]), "floating"),
    ("colors", torch.rand(2), r"\(V, C\)"),
    ("colors", torch.rand(3, 3), r"\(V, C\)"),
    ("colors", torch.tensor([[0.1, float("inf"), 0.2]] * 2), "colors: contains NaN or inf"),
    ("voxel_size", 0.0, "voxel_size"),
    ("voxel_size", -0.1, "voxel_size"),
    ("voxel_size", float("nan"), "voxel_size"),
    ("voxel_size", (0.1, 0.2), "voxel_size"),
    ("origin", (0.0, 1.0), "origin"),
    ("origin", (0.0, float("nan"), 1.0), "origin"),
    ("world_to_cam", torch.eye(3), "world_to_cam"),
    ("world_to_cam", torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0])), "orthonormal"),
    ("K", torch.tensor([[-10.0, 0, 6], [0, 10, 5], [0, 0, 1]]), "focal"),
    ("K", torch.eye(4), "K"),
    ("width", 0, "width"),
    ("height", 5.0, "height"),
    ("tile_size", 0, "tile_size"),
    ("near", 0.0, "near"),
    ("background", (0.1, 0.2), "background"),
]


@pytest.mark.parametrize("field, value, match", BAD, ids=[f"{f}-{i}" for i, (f, _, _) in enumerate(BAD)])
def test_bad_input_raises(field, value, match):
    args = _good()
    render_voxels(**args)                                                     # the good input renders
    args[field] = value
    with pytest.raises(ValueError, match=match):
        render_voxels(**args)
