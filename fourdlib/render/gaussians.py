"""Differentiable 3D Gaussian splatting in plain PyTorch: project, tile, sort, composite.

A scene is G Gaussians, each with a mean (3,), a rotation (quaternion w, x, y, z; normalised
here, so any non-zero length will do), three scales (standard deviations along its own axes,
in metres; positive, not log-scales: a model passes `scales=log_scales.exp()`), an opacity in
[0, 1] and C feature channels (colour, or any features; depth is always rendered as well).
One camera is a world-to-camera matrix (4, 4) and intrinsics K (3, 3).

Conventions are those of `fourdlib.geometry.cameras` and `fourdlib.data.sequence`, which are
also gsplat's: OpenCV camera axes (+x right, +y down, +z forward), K = [[fx, 0, cx], [0, fy,
cy], [0, 0, 1]] in pixels, pixel (row i, column j) has its centre at (u, v) = (j + 0.5, i + 0.5).
The repository stores poses as camera-to-world; pass `invert_rigid(cam_to_world)`.

The steps (`render_gaussians` runs them, `project_gaussians` is step 1-3 alone):
  1. covariance   Sigma = R S S^T R^T, R from the quaternion, S = diag(scales)
  2. projection   mean -> camera (z = depth) -> pixels u = fx x/z + cx, v = fy y/z + cy
  3. EWA          Sigma_2d = J W Sigma W^T J^T + eps2d I: W the camera rotation, J the Jacobian of
                  the perspective map at the camera-space mean. x/z and y/z in J are clamped to
                  the frustum widened by 30 % of its half-size each side (3DGS and gsplat do
                  this) so that a Gaussian far outside the view is not smeared across it.
                  eps2d I (0.3 px^2) is a low-pass filter: nothing is thinner than about a pixel.
                  The conic is Sigma_2d^-1. Culled: z < near, det <= 0, opacity < 1/255, and boxes
                  that miss the image.
  4. tiles        the image is cut into tile_size^2 tiles; a Gaussian belongs to every tile its
                  box meets. The box is gsplat's tight one: half-sizes k sqrt(Sigma_2d[0,0]) and
                  k sqrt(Sigma_2d[1,1]) with k = sqrt(2 ln(255 opacity)) <= 3.33, exactly where
                  alpha >= 1/255. (A 3-sigma box of the largest eigenvalue, as in the 3DGS paper,
                  cuts off pixels with alpha up to 0.011, and the image would change with the
                  tile size.) So the image does not depend on the tile size.
  5. compositing  per pixel, front to back in depth order:
                    alpha_i = min(alpha_max, opacity_i exp(-1/2 d^T conic_i d)), d = pixel - mean_i
                    skipped if alpha_i < 1/255; the pixel stops before the Gaussian that would
                    bring T below min_transmittance (1e-4, as 3DGS and gsplat)
                    w_i = alpha_i T_i,   T_i = prod_{j<i} (1 - alpha_j)
                    image = sum_i w_i c_i + (1 - alpha) background,   alpha = 1 - T_final
                    depth = sum_i w_i z_i / alpha (expected z-depth of what is seen; 0 where alpha = 0)

Inside a tile everything is one batch of (pixels x Gaussians-of-the-tile) tensors, so memory is
O(tile_pixels x gaussians_in_tile), never O(H W G). The backward pass is plain autograd: no
hand-written gradient, easy to read and to change, but autograd keeps every tile's (P, K)
intermediates until backward, so the memory of a training step is the sum over tiles. With
`checkpoint_tiles=True` each tile's forward runs again in backward instead (one tile's memory
at a time, for one more forward pass). CUDA rasterisers (gsplat) write the backward by hand
and keep only each pixel's final T and last index.

`render_reference` is the same model written the slow obvious way (float64, every Gaussian at
every pixel, no tiles); the tests hold the two together. `render_gaussians_gsplat` runs gsplat
on CUDA with the same conventions (gsplat clamps alpha at 0.999: pass alpha_max=0.999 here to
compare).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch.utils.checkpoint import checkpoint

from fourdlib.geometry.cameras import quaternion_to_matrix

ALPHA_MIN = 1.0 / 255.0        # alphas below this are skipped (3DGS, gsplat)
FRUSTUM_MARGIN = 0.3           # J is evaluated inside the frustum widened by this fraction of its half-size


class Projected(NamedTuple):
    """The Gaussians that survive culling, projected into one camera (V of the G inputs)."""
    ids: torch.Tensor        # (V,)      long, index into the inputs
    means2d: torch.Tensor    # (V, 2)    pixel coordinates (u, v)
    cov2d: torch.Tensor      # (V, 2, 2) screen covariance, eps2d I included
    conics: torch.Tensor     # (V, 3)    Sigma_2d^-1 as (a, b, c) = ([0,0], [0,1], [1,1])
    depths: torch.Tensor     # (V,)      camera z
    radii: torch.Tensor      # (V, 2)    long, half-sizes of the box in pixels (x, y)
    opacities: torch.Tensor  # (V,)


class Rendered(NamedTuple):
    image: torch.Tensor      # (H, W, C)  features composited over the background
    depth: torch.Tensor      # (H, W)     expected z-depth, 0 where nothing is seen
    alpha: torch.Tensor      # (H, W)     accumulated opacity 1 - T


# ----------------------------------------------------------------------------- input checks

def _fail_if(bad, message):
    if bool(bad):
        raise ValueError(message)


def check_gaussians(means, quats, scales, opacities, colors):
    """ValueError naming the argument if shapes, values or dtypes are wrong."""
    for name, t in [("means", means), ("quats", quats), ("scales", scales), ("opacities", opacities),
                    ("colors", colors)]:
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise ValueError(f"{name}: expected a floating-point torch tensor, got {type(t).__name__}"
                             + (f" of {t.dtype}" if isinstance(t, torch.Tensor) else ""))
    G = means.shape[0] if means.ndim == 2 else -1
    for name, t, shape in [("means", means, (G, 3)), ("quats", quats, (G, 4)), ("scales", scales, (G, 3)),
                           ("opacities", opacities, (G,))]:
        if means.ndim != 2 or tuple(t.shape) != shape:
            raise ValueError(f"{name}: expected shape {('G',) + shape[1:]} with means (G, 3), got "
                             f"{tuple(t.shape)} (means {tuple(means.shape)})")
    if colors.ndim != 2 or colors.shape[0] != G:
        raise ValueError(f"colors: expected shape (G, C) with G = {G}, got {tuple(colors.shape)}")
    for name, t in [("means", means), ("quats", quats), ("scales", scales), ("opacities", opacities),
                    ("colors", colors)]:
        _fail_if(not torch.isfinite(t).all(), f"{name}: contains NaN or inf")
    if (scales <= 0).any():
        raise ValueError(f"scales: must be positive (standard deviations, not log-scales); min is {scales.min().item()}")
    _fail_if(((opacities < 0) | (opacities > 1)).any(), "opacities: must lie in [0, 1]")
    _fail_if((quats.norm(dim=-1) < 1e-12).any(), "quats: a quaternion has zero norm (no rotation)")


def check_camera(world_to_cam, K, width, height):
    """ValueError if the camera is not a rigid world-to-camera (4, 4) and a pinhole K (3, 3)."""
    if not isinstance(width, int) or not isinstance(height, int) or width <= 0 or height <= 0:
        raise ValueError(f"width, height: expected positive ints, got {width!r}, {height!r}")
    if not isinstance(world_to_cam, torch.Tensor) or tuple(world_to_cam.shape) != (4, 4):
        raise ValueError(f"world_to_cam: expected a (4, 4) tensor, got {getattr(world_to_cam, 'shape', world_to_cam)}")
    if not isinstance(K, torch.Tensor) or tuple(K.shape) != (3, 3):
        raise ValueError(f"K: expected a (3, 3) tensor, got {getattr(K, 'shape', K)}")
    T, K = world_to_cam.detach().double(), K.detach().double()
    _fail_if(not torch.isfinite(T).all(), "world_to_cam: contains NaN or inf")
    _fail_if(not torch.isfinite(K).all(), "K: contains NaN or inf")
    R = T[:3, :3]
    _fail_if((T[3] - torch.tensor([0, 0, 0, 1.0], dtype=T.dtype, device=T.device)).abs().max() > 1e-6,
             f"world_to_cam: last row must be (0, 0, 0, 1), got {T[3].tolist()}")
    det = torch.linalg.det(R).item()
    _fail_if(abs(det - 1) > 1e-3 or (R @ R.T - torch.eye(3, dtype=R.dtype, device=R.device)).abs().max() > 1e-3,
             f"world_to_cam: the rotation must be orthonormal with det 1 (got det {det:.6g}); "
             "a scaled or mirrored camera is not supported")
    _fail_if(K[0, 0] <= 0 or K[1, 1] <= 0, f"K: focal lengths must be positive, got {K[0, 0].item()}, {K[1, 1].item()}")
    _fail_if((K[2] - torch.tensor([0, 0, 1.0], dtype=K.dtype, device=K.device)).abs().max() > 1e-6
             or K[0, 1] != 0 or K[1, 0] != 0,
             f"K: expected [[fx, 0, cx], [0, fy, cy], [0, 0, 1]], got {K.tolist()}")


def _background(background, C, like):
    """(C,) background in like's dtype and device; None means black."""
    if background is None:
        return like.new_zeros(C)
    bg = torch.as_tensor(background, dtype=like.dtype, device=like.device)
    if bg.ndim == 0:
        bg = bg.expand(C)
    if tuple(bg.shape) != (C,):
        raise ValueError(f"background: expected a scalar or shape ({C},), got {tuple(bg.shape)}")
    return bg


# ----------------------------------------------------------------------------- 1-3: project

def covariance_3d(quats, scales):
    """World covariances Sigma = R S S^T R^T (G, 3, 3) from quats (G, 4) wxyz (normalised here) and scales (G, 3)."""
    RS = quaternion_to_matrix(quats) * scales[:, None, :]                   # (G, 3, 3): column k scaled by s_k
    return RS @ RS.transpose(1, 2)


def project_gaussians(means, quats, scales, opacities, world_to_cam, K, width: int, height: int,
                      near: float = 0.01, eps2d: float = 0.3) -> Projected:
    """Steps 1-3 for one camera: the visible Gaussians' pixel means, screen covariances, conics, boxes."""
    W_rot, t = world_to_cam[:3, :3].to(means.dtype), world_to_cam[:3, 3].to(means.dtype)
    K = K.to(means.dtype)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]

    # Cull behind the near plane before dividing by z: NaNs of culled Gaussians would still poison the gradients.
    z_all = (means.detach() @ W_rot.detach()[2] + t.detach()[2])            # (G,)
    ids = torch.nonzero(z_all >= near).squeeze(1)                           # gsplat culls z < near
    mean_c = means[ids] @ W_rot.T + t                                       # (V, 3) camera space
    x, y, z = mean_c.unbind(-1)
    cov_c = W_rot @ covariance_3d(quats[ids], scales[ids]) @ W_rot.T        # (V, 3, 3)

    # EWA: J = d(u, v)/d(x, y, z) at the (frustum-clamped) mean.
    lim_x = (-(cx / fx) - FRUSTUM_MARGIN * 0.5 * width / fx, (width - cx) / fx + FRUSTUM_MARGIN * 0.5 * width / fx)
    lim_y = (-(cy / fy) - FRUSTUM_MARGIN * 0.5 * height / fy, (height - cy) / fy + FRUSTUM_MARGIN * 0.5 * height / fy)
    tx = z * torch.minimum(torch.maximum(x / z, lim_x[0]), lim_x[1])
    ty = z * torch.minimum(torch.maximum(y / z, lim_y[0]), lim_y[1])
    zero = torch.zeros_like(z)
    J = torch.stack([torch.stack([fx / z, zero, -fx * tx / z ** 2], -1),
                     torch.stack([zero, fy / z, -fy * ty / z ** 2], -1)], -2)  # (V, 2, 3)
    cov2d = J @ cov_c @ J.transpose(1, 2) + eps2d * torch.eye(2, dtype=means.dtype, device=means.device)
    a, b, c = cov2d[:, 0, 0], cov2d[:, 0, 1], cov2d[:, 1, 1]
    det = a * c - b * b
    means2d = torch.stack([fx * x / z + cx, fy * y / z + cy], -1)          # (V, 2)

    # Tight box where alpha >= 1/255 (see the module docstring), then cull what misses the image.
    opac = opacities[ids]
    extend = torch.sqrt(2 * torch.log(opac.detach().clamp_min(ALPHA_MIN) / ALPHA_MIN)).clamp(max=3.33)
    radii = torch.stack([torch.ceil(extend * a.detach().clamp_min(0).sqrt()),
                         torch.ceil(extend * c.detach().clamp_min(0).sqrt())], -1)  # (V, 2)
    m = means2d.detach()
    keep = ((det.detach() > 0) & (opac.detach() >= ALPHA_MIN) & (radii > 0).any(-1)
            & (m[:, 0] + radii[:, 0] > 0) & (m[:, 0] - radii[:, 0] < width)
            & (m[:, 1] + radii[:, 1] > 0) & (m[:, 1] - radii[:, 1] < height))
    k = torch.nonzero(keep).squeeze(1)
    a, b, c, det = a[k], b[k], c[k], det[k]
    conics = torch.stack([c / det, -b / det, a / det], -1)                  # (V, 3) inverse of [[a, b], [b, c]]
    return Projected(ids[k], means2d[k], cov2d[k], conics, z[k], radii[k].long(), opac[k])


# ----------------------------------------------------------------------------- 4: tiles

def tile_ranges(proj: Projected, tile_size: int):
    """Inclusive tile index ranges (V,) x0, x1, y0, y1 of each Gaussian's box (unclamped)."""
    lo = torch.floor((proj.means2d.detach() - proj.radii) / tile_size).long()   # (V, 2)
    hi = torch.floor((proj.means2d.detach() + proj.radii) / tile_size).long()
    return lo[:, 0], hi[:, 0], lo[:, 1], hi[:, 1]


def gaussians_per_tile(proj: Projected, width: int, height: int, tile_size: int = 16):
    """(n_tiles_y, n_tiles_x) long: how many Gaussians each tile composites (its memory is pixels x this)."""
    n_tx, n_ty = math.ceil(width / tile_size), math.ceil(height / tile_size)
    x0, x1, y0, y1 = tile_ranges(proj, tile_size)
    tx = torch.arange(n_tx, device=x0.device)
    ty = torch.arange(n_ty, device=x0.device)
    in_x = (x0[:, None] <= tx) & (tx <= x1[:, None])                         # (V, n_tx)
    in_y = (y0[:, None] <= ty) & (ty <= y1[:, None])                         # (V, n_ty)
    return (in_y.long().T @ in_x.long())                                     # (n_ty, n_tx)


# ----------------------------------------------------------------------------- 5: composite

def composite_tile(pixels, means2d, conics, opacities, values, alpha_max: float = 0.99,
                   min_transmittance: float = 1e-4):
    """Front-to-back compositing of K depth-sorted Gaussians at P pixels.

    pixels (P, 2), means2d (K, 2), conics (K, 3), opacities (K,), values (K, D).
    Returns (P, D + 1): sum_i w_i values_i, then the accumulated alpha 1 - T.
    """
    d = pixels[:, None, :] - means2d[None]                                   # (P, K, 2)
    dx, dy = d[..., 0], d[..., 1]
    sigma = 0.5 * (conics[:, 0] * dx * dx + conics[:, 2] * dy * dy) + conics[:, 1] * dx * dy  # (P, K)
    alpha = (opacities * torch.exp(-sigma)).clamp(max=alpha_max)             # (P, K)
    alpha = torch.where((alpha >= ALPHA_MIN) & (sigma >= 0), alpha, torch.zeros_like(alpha))
    with torch.no_grad():                            # a pixel stops before T would fall to min_transmittance;
        alive = torch.cumprod(1 - alpha, 1) > min_transmittance   # T only falls, so alive is a prefix of each row
    alpha = alpha * alive
    T_after = torch.cumprod(1 - alpha, 1)                                     # (P, K) T after Gaussian i
    T_before = torch.cat([torch.ones_like(T_after[:, :1]), T_after[:, :-1]], 1)
    weights = alpha * T_before                                                # (P, K)
    return torch.cat([weights @ values, 1 - T_after[:, -1:]], 1)             # (P, D + 1)


def render_gaussians(means, quats, scales, opacities, colors, world_to_cam, K, width: int, height: int,
                     near: float = 0.01, background=None, eps2d: float = 0.3, tile_size: int = 16,
                     alpha_max: float = 0.99, min_transmittance: float = 1e-4,
                     checkpoint_tiles: bool = False, validate: bool = True) -> Rendered:
    """Render G Gaussians into one camera; differentiable w.r.t. every floating-point input.

    means (G, 3), quats (G, 4) wxyz, scales (G, 3) > 0, opacities (G,) in [0, 1], colors (G, C),
    world_to_cam (4, 4), K (3, 3), background None (black), a scalar or (C,).
    Returns Rendered(image (H, W, C), depth (H, W), alpha (H, W)). No Gaussian in view (all
    behind the camera, G = 0) gives the background, alpha 0 and depth 0.
    validate=False skips the input checks (each check is a device sync on CUDA).
    """
    if validate:
        check_gaussians(means, quats, scales, opacities, colors)
        check_camera(world_to_cam, K, width, height)
        if not isinstance(tile_size, int) or tile_size <= 0:
            raise ValueError(f"tile_size: expected a positive int, got {tile_size!r}")
        if not near > 0 or not eps2d >= 0 or not 0 < alpha_max < 1:
            raise ValueError(f"need near > 0, eps2d >= 0, 0 < alpha_max < 1; got {near}, {eps2d}, {alpha_max}")
    C = colors.shape[1]
    bg = _background(background, C, means)
    proj = project_gaussians(means, quats, scales, opacities, world_to_cam, K, width, height, near, eps2d)

    # Depth order once for the whole image; selecting a tile's Gaussians keeps it.
    order = torch.argsort(proj.depths.detach(), stable=True)
    proj = Projected(*(f[order] for f in proj))
    values = torch.cat([colors[proj.ids], proj.depths[:, None]], 1)        # (V, C + 1): features, then z
    x0, x1, y0, y1 = tile_ranges(proj, tile_size)

    def shade(pixels, g):  # one tile: its pixel centres (P, 2), its Gaussians g (K,) front to back
        return composite_tile(pixels, proj.means2d[g], proj.conics[g], proj.opacities[g], values[g], alpha_max,
                              min_transmittance)

    return composite_tiles(shade, (x0, x1, y0, y1), width, height, tile_size, C, means, bg, checkpoint_tiles)


def composite_tiles(shade, ranges, width: int, height: int, tile_size: int, channels: int, like: torch.Tensor,
                    background: torch.Tensor, checkpoint_tiles: bool = False) -> Rendered:
    """The tile loop every rasteriser here shares, then the background blend.

    ranges (x0, x1, y0, y1), each (N,) long: the inclusive tile columns / rows item n covers
    (items already in front-to-back order). For each tile, shade(pixels (P, 2) centres (u, v),
    ids (K,) of the items covering it, in order) -> (P, channels + 2): composited features,
    weighted depth, alpha. Memory is one tile's (P x K) at a time (all tiles' are kept for
    backward unless checkpoint_tiles, which recomputes each tile in backward instead).
    like: a tensor with the output's dtype and device.
    """
    x0, x1, y0, y1 = ranges
    rows = []
    for ty in range(math.ceil(height / tile_size)):
        row = []
        for tx in range(math.ceil(width / tile_size)):
            u0, v0 = tx * tile_size, ty * tile_size
            w, h = min(tile_size, width - u0), min(tile_size, height - v0)
            ids = torch.nonzero((x0 <= tx) & (tx <= x1) & (y0 <= ty) & (ty <= y1)).squeeze(1)  # (K,) front to back
            if len(ids) == 0:
                row.append(like.new_zeros(h, w, channels + 2))
                continue
            v, u = torch.meshgrid(torch.arange(v0, v0 + h, dtype=like.dtype, device=like.device) + 0.5,
                                  torch.arange(u0, u0 + w, dtype=like.dtype, device=like.device) + 0.5,
                                  indexing="ij")
            pixels = torch.stack([u, v], -1).reshape(-1, 2)                   # (P, 2) pixel centres
            if checkpoint_tiles and torch.is_grad_enabled():
                out = checkpoint(shade, pixels, ids, use_reentrant=False)
            else:
                out = shade(pixels, ids)
            row.append(out.reshape(h, w, channels + 2))
        rows.append(torch.cat(row, 1))
    out = torch.cat(rows, 0)                                                  # (H, W, C + 2)

    alpha = out[..., -1]
    image = out[..., :channels] + (1 - alpha)[..., None] * background
    depth = out[..., channels] / alpha.clamp_min(1e-10)
    return Rendered(image, depth, alpha)


def render_gaussians_batch(means, quats, scales, opacities, colors, world_to_cams, Ks, width: int, height: int,
                           **kwargs) -> Rendered:
    """`render_gaussians` for N cameras: world_to_cams (N, 4, 4), Ks (N, 3, 3) or one (3, 3).

    Returns Rendered with a leading camera axis: (N, H, W, C), (N, H, W), (N, H, W).
    """
    if not isinstance(world_to_cams, torch.Tensor) or tuple(world_to_cams.shape[1:]) != (4, 4) \
            or world_to_cams.ndim != 3:
        raise ValueError(f"world_to_cams: expected (N, 4, 4), got {getattr(world_to_cams, 'shape', world_to_cams)}")
    N = world_to_cams.shape[0]
    if isinstance(Ks, torch.Tensor) and Ks.ndim == 2:
        Ks = Ks.expand(N, 3, 3)
    if not isinstance(Ks, torch.Tensor) or Ks.shape != (N, 3, 3):
        raise ValueError(f"Ks: expected (3, 3) or ({N}, 3, 3), got {getattr(Ks, 'shape', Ks)}")
    outs = [render_gaussians(means, quats, scales, opacities, colors, world_to_cams[i], Ks[i], width, height, **kwargs)
            for i in range(N)]
    return Rendered(*(torch.stack(parts) for parts in zip(*outs)))


# ----------------------------------------------------------------------------- the slow obvious version

def render_reference(means, quats, scales, opacities, colors, world_to_cam, K, width: int, height: int,
                     near: float = 0.01, background=None, eps2d: float = 0.3, alpha_max: float = 0.99,
                     min_transmittance: float = 1e-4) -> Rendered:
    """The same image computed the obvious way, in float64, for the tests.

    Each Gaussian is projected on its own; then every Gaussian is tried at every pixel, front
    to back, with no tiles, boxes or off-screen culling. Only z < near and a degenerate screen
    covariance are skipped, as in `render_gaussians`. Differentiable, but slow: small scenes only.
    """
    f64 = dict(dtype=torch.float64, device=means.device)
    means, quats, scales, opacities, colors = (t.to(torch.float64) for t in (means, quats, scales, opacities, colors))
    Rw, t = world_to_cam[:3, :3].to(**f64), world_to_cam[:3, 3].to(**f64)
    K = K.to(**f64)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    bg = _background(background, colors.shape[1], means)

    splats = []                                                               # (depth, mean2d, conic, opacity, colour)
    for i in range(means.shape[0]):
        x, y, z = Rw @ means[i] + t
        if z < near:
            continue
        q = quats[i] / quats[i].norm()
        qw, qx, qy, qz = q
        R = torch.stack([torch.stack([1 - 2 * (qy * qy + qz * qz), 2 * (qx * qy - qw * qz), 2 * (qx * qz + qw * qy)]),
                         torch.stack([2 * (qx * qy + qw * qz), 1 - 2 * (qx * qx + qz * qz), 2 * (qy * qz - qw * qx)]),
                         torch.stack([2 * (qx * qz - qw * qy), 2 * (qy * qz + qw * qx), 1 - 2 * (qx * qx + qy * qy)])])
        Sigma = R @ torch.diag(scales[i] ** 2) @ R.T                         # world covariance
        xz = x / z
        yz = y / z
        xz = xz.clamp(-cx / fx - 0.15 * width / fx, (width - cx) / fx + 0.15 * width / fx)
        yz = yz.clamp(-cy / fy - 0.15 * height / fy, (height - cy) / fy + 0.15 * height / fy)
        J = torch.stack([torch.stack([fx / z, 0 * z, -fx * xz / z]),
                         torch.stack([0 * z, fy / z, -fy * yz / z])])        # (2, 3)
        cov2d = J @ Rw @ Sigma @ Rw.T @ J.T + eps2d * torch.eye(2, **f64)
        if torch.linalg.det(cov2d) <= 0:
            continue
        mean2d = torch.stack([fx * x / z + cx, fy * y / z + cy])
        splats.append((z, mean2d, torch.linalg.inv(cov2d), opacities[i], colors[i]))
    splats.sort(key=lambda s: s[0].item())                                    # front to back

    v, u = torch.meshgrid(torch.arange(height, **f64) + 0.5, torch.arange(width, **f64) + 0.5, indexing="ij")
    pix = torch.stack([u, v], -1).reshape(-1, 2)                              # (HW, 2)
    T = torch.ones(len(pix), **f64)
    done = torch.zeros(len(pix), dtype=torch.bool, device=means.device)
    feat = torch.zeros(len(pix), colors.shape[1], **f64)
    depth = torch.zeros(len(pix), **f64)
    for z, mean2d, conic, opacity, colour in splats:
        d = pix - mean2d                                                      # (HW, 2)
        sigma = 0.5 * ((d @ conic) * d).sum(-1)
        alpha = torch.clamp(opacity * torch.exp(-sigma), max=alpha_max)
        use = (alpha >= ALPHA_MIN) & (sigma >= 0) & ~done
        done = done | (use & (T * (1 - alpha) <= min_transmittance))        # this pixel is finished
        a = torch.where(use & ~done, alpha, torch.zeros_like(alpha))
        feat = feat + (a * T)[:, None] * colour
        depth = depth + a * T * z
        T = T * (1 - a)
    alpha = 1 - T
    image = feat + T[:, None] * bg
    depth = depth / alpha.clamp_min(1e-10)
    return Rendered(image.reshape(height, width, -1), depth.reshape(height, width), alpha.reshape(height, width))


# ----------------------------------------------------------------------------- gsplat (CUDA)

def gsplat_available() -> bool:
    """True when gsplat is installed and CUDA is present (its rasteriser needs CUDA)."""
    import importlib.util
    return importlib.util.find_spec("gsplat") is not None and torch.cuda.is_available()


def render_gaussians_gsplat(means, quats, scales, opacities, colors, world_to_cam, K, width: int, height: int,
                            near: float = 0.01, background=None, eps2d: float = 0.3, tile_size: int = 16) -> Rendered:
    """`render_gaussians` through `gsplat.rasterization` (CUDA tensors, float32), same conventions and outputs.

    gsplat clamps alpha at 0.999 (ours defaults to 0.99) and has no checkpointing or validation.
    """
    import gsplat  # imported here: optional, and it compiles its CUDA code on first use

    C = colors.shape[1]
    bg = _background(background, C, means)
    rgb, alphas, _ = gsplat.rasterization(
        means, quats, scales, opacities, colors, world_to_cam[None].to(means.dtype), K[None].to(means.dtype),
        width, height, near_plane=near, eps2d=eps2d, tile_size=tile_size, backgrounds=bg[None],
        render_mode="RGB+ED", packed=False, rasterize_mode="classic")
    return Rendered(rgb[0, ..., :C], rgb[0, ..., C], alphas[0, ..., 0])
