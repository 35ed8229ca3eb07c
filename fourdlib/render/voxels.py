"""Differentiable sparse-voxel rendering in plain PyTorch: cast each pixel's ray through the voxels.

A scene is V occupied cells of a regular grid (the Native 4D VAE's "dynamic coloured voxels",
one frame at a time): integer cell indices coords (V, 3) = (i, j, k), a voxel size h (metres; a
number or (3,) per axis) and an origin (3,). Cell (i, j, k) is the cube origin + [i, i+1) x
[j, j+1) x [k, k+1) times h, its centre origin + (ijk + 0.5) h: the grid of
`fourdlib.geometry.voxelize` (`grid_spec` gives its origin and voxel size). Each voxel has an
occupancy in [0, 1] (the decoder's sigmoid head) and C feature channels (colour, or any
features; depth is always rendered as well). One camera is a world-to-camera matrix (4, 4) and
intrinsics K (3, 3), with the conventions of `gaussians.py` (OpenCV axes, pixel (row i, column j)
centred at (u, v) = (j + 0.5, i + 0.5); pass `invert_rigid(cam_to_world)`).

The model (the paper's section 3.4.2: "predicted occupancy as opacity and predicted colour as
albedo"): a voxel is a solid cube. A pixel's ray x(t) = o + t d, with d the camera-space direction
((u - cx)/fx, (v - cy)/fy, 1) taken to the world, so that t IS the camera z-depth, starts at the
near plane t = near. Every voxel whose cube the ray crosses (a chord of non-zero length) is hit,
at entry depth t_in; the hits are composited front to back:
    alpha_i = occupancy_i                                    (not scaled by the chord length)
    w_i = alpha_i T_i,   T_i = prod_{j hit before i} (1 - alpha_j)
    image = sum_i w_i colour_i + (1 - alpha) background,   alpha = 1 - prod_i (1 - alpha_i)
    depth = sum_i w_i t_in_i / alpha    (expected z-depth of the cube faces seen; 0 where alpha = 0)

Why occupancy alone and not 1 - exp(-sigma * chord) (Plenoxels, SVRaster): occupancy is the
probability that the CELL is filled, and a filled cell of a voxelised surface is opaque from
every direction. So rendering the ground-truth voxels (occupancy 1) gives their exact blocky
silhouette and colours from any view, a prediction is judged against that, and there is no
density scale to choose. With chord scaling a one-voxel-thick surface turns semi-transparent at
grazing rays and corners, and occupancy 1 could never be opaque. The price: a ray that clips a
corner counts the voxel fully (hard, aliased edges; supersample pixels if that matters).

Use in the paper's rendering loss (eq. 21): render the decoded voxels (sigmoid occupancy,
colour head) into a training view, with the same background as the target image, and
    L_render = mean over the M views of || mask * (image - target) ||^2,
mask (H, W) the valid pixels (the paper's M^i; when the target is itself a render of the GT
voxels on the same background, as in the Native 4D VAE's `render_loss`, every pixel is valid
and the mask is dropped). The loss reaches occupancy (how much each hit voxel covers, and hides what is behind it) and colour.
Voxel positions are discrete cells and get no gradient; the camera is treated as a constant
(its geometry is computed without autograd).

The steps (`render_voxels` runs them):
  1. boxes      each voxel's 8 corners go to the camera; the pixel box of the projected corners
                (padded by 1e-3 px) holds every pixel whose ray meets the cube, as the cube's
                image is the convex hull of its corners. Culled: cubes entirely at z <= near,
                boxes that miss the image. A cube that crosses the near plane gets the whole image.
  2. order      voxels are sorted once by the camera depth of their centre, so that ties below
                (a ray through a shared edge) break the same way whatever the input order.
  3. tiles      the image is cut into tile_size^2 tiles; a voxel belongs to every tile with a pixel
                centre in its box. 8 x 8 by default: a voxel's box is small, and a smaller tile casts
                each ray against fewer voxels, which pays on dense frames (thousands of voxels);
                on sparse ones (a few hundred) 16 x 16 can be faster, as fewer tiles mean fewer
                loop steps (`benchmarks/bench_render_voxels.py`, notebook 11).
  4. cast       per tile, every pixel ray against every voxel of the tile: the slab test
                (t_in = max over axes of the entry t, t_out = min of the exit t; hit when
                t_out > max(t_in, near)), then a per-pixel sort of the hits by t_in (exact: the
                chords of disjoint cubes along a line do not overlap) and the compositing above.

Inside a tile everything is one batch of (pixels x voxels-of-the-tile) tensors, so memory is
O(tile_pixels x voxels_in_tile), never O(H W V). The backward pass is plain autograd, which
keeps every tile's (P, K) intermediates until backward; `checkpoint_tiles=True` recomputes each
tile in backward instead (one tile's memory at a time). No early stop: the compositing is exact
(occupancy 1 makes T exactly 0 behind it).

`render_voxels_reference` is the same image made the slow obvious way, in float64, for the
tests: march each ray in small fixed steps, look up which voxel holds each sample point,
composite each newly entered voxel once (its entry depth refined by bisection between the two
samples). It shares nothing with the slab test but the camera conventions.
"""
from __future__ import annotations

import math

import torch

from .gaussians import Rendered, _background, _fail_if, check_camera, composite_tiles

BOX_PAD = 1e-3                 # pixels added round each projected box (rounding must not drop a grazing ray)
TINY = 1e-30                   # stands in for a zero ray direction component in the slab test (float32-safe)


# ----------------------------------------------------------------------------- input checks

def _grid(voxel_size, origin, like):
    """voxel size (3,) and origin (3,) as like's dtype/device; ValueError if not positive / finite."""
    try:
        size = torch.as_tensor(voxel_size, dtype=torch.float64).reshape(-1)
        org = torch.zeros(3, dtype=torch.float64) if origin is None else \
            torch.as_tensor(origin, dtype=torch.float64).reshape(-1)
    except (TypeError, ValueError, RuntimeError) as e:
        raise ValueError(f"voxel_size, origin: expected numbers or (3,) arrays ({e})") from None
    if size.numel() == 1:
        size = size.expand(3)
    _fail_if(size.shape != (3,) or not bool(torch.isfinite(size).all()) or not bool((size > 0).all()),
             f"voxel_size: expected a positive finite number or (3,), got {size.tolist()}")
    _fail_if(org.shape != (3,) or not bool(torch.isfinite(org).all()),
             f"origin: expected a finite (3,) point, got {org.tolist()}")
    return size.to(like.dtype).to(like.device), org.to(like.dtype).to(like.device)


def check_voxels(coords, occupancy, colors, voxel_size, origin=None):
    """ValueError naming the argument if shapes, dtypes or values are wrong (an empty set is fine)."""
    if not isinstance(coords, torch.Tensor) or coords.dtype == torch.bool or coords.is_floating_point() \
            or coords.is_complex():
        got = type(coords).__name__ + (f" of {coords.dtype}" if isinstance(coords, torch.Tensor) else "")
        raise ValueError(f"coords: expected an integer torch tensor (V, 3) of cell indices (i, j, k), got {got}; "
                         "whole-number floats: pass coords.long()")
    if coords.ndim != 2 or coords.shape[1] != 3:
        raise ValueError(f"coords: expected shape (V, 3), got {tuple(coords.shape)}")
    V = coords.shape[0]
    for name, t in [("occupancy", occupancy), ("colors", colors)]:
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise ValueError(f"{name}: expected a floating-point torch tensor, got {type(t).__name__}"
                             + (f" of {t.dtype}" if isinstance(t, torch.Tensor) else ""))
    if tuple(occupancy.shape) != (V,):
        raise ValueError(f"occupancy: expected shape (V,) with V = {V} (coords {tuple(coords.shape)}), "
                         f"got {tuple(occupancy.shape)}")
    if colors.ndim != 2 or colors.shape[0] != V or colors.shape[1] == 0:
        raise ValueError(f"colors: expected shape (V, C), C >= 1, with V = {V}, got {tuple(colors.shape)}")
    for name, t in [("occupancy", occupancy), ("colors", colors)]:
        _fail_if(not torch.isfinite(t).all(), f"{name}: contains NaN or inf")
    if V and ((occupancy < 0) | (occupancy > 1)).any():
        raise ValueError(f"occupancy: must lie in [0, 1] (it is the opacity; apply the sigmoid first), got "
                         f"min {occupancy.min().item():.4g}, max {occupancy.max().item():.4g}")
    if V:                                                                        # duplicates: sort one key per cell
        c = coords.long() - coords.long().min(0).values
        span = c.max(0).values + 1
        _fail_if((span > 2 ** 20).any(), f"coords: span {span.tolist()} cells; over 2^20 per axis is not supported")
        key, order = torch.sort((c[:, 0] * span[1] + c[:, 1]) * span[2] + c[:, 2])
        dup = torch.nonzero(key[1:] == key[:-1]).squeeze(1)
        if len(dup):
            raise ValueError(f"coords: {len(dup)} duplicate cell(s), e.g. {coords[order[dup[0]]].tolist()}; "
                             "merge them first (one occupancy and colour per cell)")
    _grid(voxel_size, origin, colors)


# ----------------------------------------------------------------------------- 1: boxes

def voxel_corners(coords, voxel_size, origin=None, dtype=torch.float64):
    """World corners (V, 8, 3) of the voxels' cubes (and the cubes' lo, hi (V, 3) as the first and last)."""
    size, org = _grid(voxel_size, origin, torch.empty(0, dtype=dtype, device=coords.device))
    offsets = torch.tensor([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], dtype=dtype,
                           device=coords.device)                                # (8, 3): corner 0 = lo, 7 = hi
    return org + (coords.to(dtype)[:, None, :] + offsets) * size                 # (V, 8, 3)


@torch.no_grad()
def project_voxel_boxes(coords, voxel_size, origin, world_to_cam, K, width: int, height: int, near: float = 0.01):
    """Step 1 for one camera: pixel boxes of the voxels that may be seen.

    Returns (ids (N,) long index into the inputs, boxes (N, 4) float64 (u_min, v_min, u_max, v_max)
    padded by BOX_PAD, centre depths (N,) float64). A cube that crosses the near plane gets the box
    (-inf, -inf, inf, inf): the whole image.
    """
    T, K = world_to_cam.detach().double().to(coords.device), K.detach().double().to(coords.device)
    corners = voxel_corners(coords, voxel_size, origin) @ T[:3, :3].T + T[:3, 3]  # (V, 8, 3) camera space
    z = corners[..., 2]                                                          # (V, 8)
    in_front = (z > near).all(1)                                                 # projected corners are meaningful
    zc = z.clamp_min(near)
    u = K[0, 0] * corners[..., 0] / zc + K[0, 2]                                  # (V, 8)
    v = K[1, 1] * corners[..., 1] / zc + K[1, 2]
    boxes = torch.stack([u.amin(1) - BOX_PAD, v.amin(1) - BOX_PAD, u.amax(1) + BOX_PAD, v.amax(1) + BOX_PAD], -1)
    whole = torch.tensor([-math.inf, -math.inf, math.inf, math.inf], dtype=boxes.dtype, device=boxes.device)
    boxes = torch.where(in_front[:, None], boxes, whole)                        # (V, 4)
    keep = ((z.amax(1) > near) & (boxes[:, 2] > 0) & (boxes[:, 0] < width)
            & (boxes[:, 3] > 0) & (boxes[:, 1] < height))
    ids = torch.nonzero(keep).squeeze(1)
    return ids, boxes[ids], z[ids].mean(1)


def box_tile_ranges(boxes, width: int, height: int, tile_size: int):
    """Inclusive tile index ranges (N,) x0, x1, y0, y1 of the tiles holding a pixel CENTRE in each box.

    Pixel column j is in the box when umin <= j + 0.5 <= umax, i.e. ceil(umin - 0.5) <= j <= floor(umax - 0.5)
    (so with tile_size 1 a voxel is cast only at the pixels its box holds). Clamped to the image's tiles.
    """
    n_tx, n_ty = math.ceil(width / tile_size), math.ceil(height / tile_size)
    b = (boxes - 0.5).clamp(-1, max(width, height) + 1)                          # inf -> just off the image
    first, last = b[:, :2].ceil().long() // tile_size, b[:, 2:].floor().long() // tile_size   # (N, 2) each
    return (first[:, 0].clamp(0, n_tx - 1), last[:, 0].clamp(0, n_tx - 1),
            first[:, 1].clamp(0, n_ty - 1), last[:, 1].clamp(0, n_ty - 1))


def voxels_per_tile(coords, voxel_size, origin, world_to_cam, K, width: int, height: int, tile_size: int = 8,
                    near: float = 0.01):
    """(n_tiles_y, n_tiles_x) long: how many voxels each tile casts against (its memory is pixels x this)."""
    _, boxes, _ = project_voxel_boxes(coords, voxel_size, origin, world_to_cam, K, width, height, near)
    x0, x1, y0, y1 = box_tile_ranges(boxes, width, height, tile_size)
    tx = torch.arange(math.ceil(width / tile_size), device=boxes.device)
    ty = torch.arange(math.ceil(height / tile_size), device=boxes.device)
    in_x = (x0[:, None] <= tx) & (tx <= x1[:, None])                             # (N, n_tx)
    in_y = (y0[:, None] <= ty) & (ty <= y1[:, None])                             # (N, n_ty)
    return in_y.long().T @ in_x.long()                                           # (n_ty, n_tx)


# ----------------------------------------------------------------------------- 4: cast

def ray_box_hits(origin, dirs, lo, hi, near: float):
    """Slab test of P rays o + t d (t = camera z-depth, t >= near) against K axis-aligned cubes.

    origin (3,), dirs (P, 3), lo, hi (K, 3). Returns t_in (P, K) the entry depth (clamped to near)
    and hit (P, K) bool: the ray crosses the cube along a chord of non-zero length.
    A zero direction component becomes TINY: the slab's t's become about +-1e30 (never or always
    inside), and a ray lying exactly in a face plane keeps the cells' half-open rule [lo, hi).
    """
    inv = 1 / torch.where(dirs == 0, torch.full_like(dirs, TINY), dirs)[:, None, :]   # (P, 1, 3)
    t0, t1 = (lo - origin) * inv, (hi - origin) * inv                           # (P, K, 3) slab crossings
    t_in = torch.minimum(t0, t1).amax(-1).clamp_min(near)                       # (P, K) last slab entered
    t_out = torch.maximum(t0, t1).amin(-1)                                       # (P, K) first slab left
    return t_in, t_out > t_in


def composite_rays(origin, dirs, lo, hi, occupancy, values, near: float):
    """Cast P rays through K voxels and composite front to back.

    origin (3,), dirs (P, 3) world directions with camera z component 1, lo, hi (K, 3) the cubes,
    occupancy (K,), values (K, D). Returns (P, D + 2): sum_i w_i values_i, sum_i w_i t_in_i, then
    the accumulated alpha 1 - T.
    """
    with torch.no_grad():                                                        # geometry: no gradient
        t_in, hit = ray_box_hits(origin, dirs, lo, hi, near)                     # (P, K)
        key = torch.where(hit, t_in, torch.full_like(t_in, math.inf))
        order = key.argsort(dim=1, stable=True)                                  # (P, K) hits front to back
        depth = torch.where(hit, t_in, torch.zeros_like(t_in))                   # (P, K) 0 where missed (no 0 * inf)
    alpha = (occupancy * hit).gather(1, order)                                   # (P, K) sorted per pixel
    T_after = torch.cumprod(1 - alpha, 1)                                        # (P, K) T after hit i
    T_before = torch.cat([torch.ones_like(T_after[:, :1]), T_after[:, :-1]], 1)
    weights = torch.zeros_like(alpha).scatter(1, order, alpha * T_before)        # (P, K) back in voxel order
    return torch.cat([weights @ values, (weights * depth).sum(1, keepdim=True), 1 - T_after[:, -1:]], 1)


def render_voxels(coords, occupancy, colors, world_to_cam, K, width: int, height: int, voxel_size, origin=None,
                  near: float = 0.01, background=None, tile_size: int = 8, checkpoint_tiles: bool = False,
                  validate: bool = True) -> Rendered:
    """Render V sparse voxels into one camera; differentiable w.r.t. occupancy and colors.

    coords (V, 3) integer cells, occupancy (V,) in [0, 1], colors (V, C), world_to_cam (4, 4), K (3, 3),
    voxel_size a number or (3,), origin (3,) or None (0), background None (black), a scalar or (C,).
    Returns Rendered(image (H, W, C), depth (H, W), alpha (H, W)) in the dtype of occupancy/colors.
    No voxel in view (V = 0, all behind the camera) gives the background, alpha 0 and depth 0.
    validate=False skips the input checks (each check is a device sync on CUDA).
    """
    if validate:
        check_voxels(coords, occupancy, colors, voxel_size, origin)
        check_camera(world_to_cam, K, width, height)
        if not isinstance(tile_size, int) or isinstance(tile_size, bool) or tile_size <= 0:
            raise ValueError(f"tile_size: expected a positive int, got {tile_size!r}")
        if not (isinstance(near, (int, float)) and near > 0 and math.isfinite(near)):
            raise ValueError(f"near: expected a positive finite number, got {near!r}")
    dtype = torch.promote_types(occupancy.dtype, colors.dtype)
    occupancy, colors = occupancy.to(dtype), colors.to(dtype)
    C, dev = colors.shape[1], colors.device
    bg = _background(background, C, colors)

    # 1-2: boxes, then depth order once for the whole image; selecting a tile's voxels keeps it.
    ids, boxes, zc = project_voxel_boxes(coords.to(dev), voxel_size, origin, world_to_cam, K, width, height, near)
    order = torch.argsort(zc, stable=True)
    ids, boxes = ids[order], boxes[order]
    corners = voxel_corners(coords.to(dev)[ids], voxel_size, origin, dtype)     # (N, 8, 3)
    lo, hi = corners[:, 0], corners[:, 7]                                        # (N, 3) cubes
    occ, values = occupancy[ids], colors[ids]                                    # (N,), (N, C)
    x0, x1, y0, y1 = box_tile_ranges(boxes, width, height, tile_size)

    # Rays: camera centre and the world direction of ((u - cx)/fx, (v - cy)/fy, 1), so t is z-depth.
    T = world_to_cam.detach().to(dtype=dtype, device=dev)
    Kd = K.detach().to(dtype=dtype, device=dev)
    R = T[:3, :3]
    cam_centre = -R.T @ T[:3, 3]                                                 # (3,)

    def shade(pixels, g):  # one tile: its pixel centres (P, 2), its voxels g (K,) front to back
        d_cam = torch.stack([(pixels[:, 0] - Kd[0, 2]) / Kd[0, 0], (pixels[:, 1] - Kd[1, 2]) / Kd[1, 1],
                             torch.ones_like(pixels[:, 0])], -1)
        return composite_rays(cam_centre, d_cam @ R, lo[g], hi[g], occ[g], values[g], near)  # rows: R^T d_cam

    return composite_tiles(shade, (x0, x1, y0, y1), width, height, tile_size, C, colors, bg, checkpoint_tiles)


# ----------------------------------------------------------------------------- the slow obvious version

def render_voxels_reference(coords, occupancy, colors, world_to_cam, K, width: int, height: int, voxel_size,
                            origin=None, near: float = 0.01, background=None, step: float | None = None) -> Rendered:
    """The same image by brute-force ray marching, in float64, for the tests.

    Each pixel's ray is sampled every `step` metres of camera depth (default: the smallest voxel
    side / 1000) from the near plane (or just before the nearest voxel corner) to the farthest
    corner; each sample looks up the voxel that holds it (a dense index grid over the voxels'
    bounding box); a voxel is composited once, when the ray enters it, at the entry depth found by
    bisection between the last sample outside and the first inside. A chord shorter than `step`
    (a ray clipping a corner) can be missed. Differentiable w.r.t. occupancy and colors; slow.
    """
    f64 = dict(dtype=torch.float64, device=colors.device)
    coords = coords.to(colors.device).long()
    occupancy, colors = occupancy.to(torch.float64), colors.to(torch.float64)
    size, org = _grid(voxel_size, origin, torch.empty(0, **f64))
    bg = _background(background, colors.shape[1], colors)
    H, W, C = height, width, colors.shape[1]
    image = bg.expand(H * W, C).clone()
    depth, alpha = torch.zeros(H * W, **f64), torch.zeros(H * W, **f64)
    if len(coords) == 0:
        return Rendered(image.reshape(H, W, C), depth.reshape(H, W), alpha.reshape(H, W))

    # which voxel holds a point: a dense (-1 or index) grid over the voxels' bounding box
    cmin = coords.min(0).values
    dims = coords.max(0).values - cmin + 1
    index = torch.full(dims.tolist(), -1, dtype=torch.long, device=coords.device)
    index[tuple((coords - cmin).T)] = torch.arange(len(coords), device=coords.device)

    def voxel_at(p):                                                             # (..., 3) -> (...) index or -1
        c = torch.floor((p - org) / size).long() - cmin
        ok = ((c >= 0) & (c < dims)).all(-1)
        c = torch.minimum(c.clamp_min(0), dims - 1)
        return torch.where(ok, index[c[..., 0], c[..., 1], c[..., 2]], -1)

    Rw, t = world_to_cam[:3, :3].to(**f64), world_to_cam[:3, 3].to(**f64)
    K = K.to(**f64)
    o = -Rw.T @ t                                                                # camera centre (3,)
    z_corners = (voxel_corners(coords, size, org) @ Rw.T + t)[..., 2]            # (V, 8) camera depths
    step = float(size.min()) / 1000 if step is None else step
    z_start = max(near, z_corners.min().item() - step)                          # before every voxel, or at near
    if z_corners.max().item() <= near:                                           # everything behind the camera
        return Rendered(image.reshape(H, W, C), depth.reshape(H, W), alpha.reshape(H, W))
    n = math.ceil((z_corners.max().item() - z_start) / step) + 2
    z = z_start + step * torch.arange(n, **f64)                                  # (n,) sample depths

    v, u = torch.meshgrid(torch.arange(H, **f64) + 0.5, torch.arange(W, **f64) + 0.5, indexing="ij")
    d_cam = torch.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], torch.ones_like(u)], -1).reshape(-1, 3)
    dirs = d_cam @ Rw                                                            # (HW, 3) world, camera z = 1

    # March: the voxel of every sample, and where the voxel changes to a new one (an entry).
    pix, ks = [], []
    for p in range(H * W):
        ids = voxel_at(o + z[:, None] * dirs[p])                                 # (n,) voxel of each sample
        prev = torch.cat([ids.new_full((1,), -1), ids[:-1]])
        k = torch.nonzero((ids >= 0) & (ids != prev)).squeeze(1)                  # (m,) samples that enter a voxel
        pix.append(torch.full_like(k, p))
        ks.append(k)
    pix, ks = torch.cat(pix), torch.cat(ks)                                      # (E,) all entries, per pixel in order
    vox = voxel_at(o + z[ks, None] * dirs[pix])                                  # (E,) the voxel entered

    # Entry depth: bisection between the last sample outside the voxel (a) and the first inside (b);
    # an entry at sample 0 means the ray starts inside the voxel, at the near plane.
    a, b = z[(ks - 1).clamp_min(0)], z[ks]
    for _ in range(60):
        m = 0.5 * (a + b)
        inside = (voxel_at(o + m[:, None] * dirs[pix]) == vox) & (ks > 0)
        a, b = torch.where(inside, a, m), torch.where(inside, m, b)
    z_in = torch.where(ks > 0, b, z[ks])                                         # (E,)

    # Composite each pixel's entries front to back, one voxel at a time.
    image, depth, alpha = list(image), list(depth), list(alpha)
    for e in range(len(pix)):
        p, i = pix[e].item(), vox[e].item()
        T = 1 - alpha[p]
        image[p] = image[p] + T * occupancy[i] * (colors[i] - bg)               # over the background
        depth[p] = depth[p] + T * occupancy[i] * z_in[e]
        alpha[p] = alpha[p] + T * occupancy[i]                                   # 1 - T (1 - occ)
    image, depth, alpha = torch.stack(image), torch.stack(depth), torch.stack(alpha)
    depth = depth / alpha.clamp_min(1e-10)
    return Rendered(image.reshape(H, W, C), depth.reshape(H, W), alpha.reshape(H, W))
