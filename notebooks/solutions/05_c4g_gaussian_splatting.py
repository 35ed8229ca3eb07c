"""Solutions to the exercises of notebooks/05_c4g_gaussian_splatting.ipynb.

Run: python notebooks/solutions/05_c4g_gaussian_splatting.py  (seconds).
"""
import math
import time

import torch

from fourdlib.geometry import intrinsics_from_fov, invert_rigid, look_at, pixel_centers
from fourdlib.render import gaussians_per_tile, project_gaussians, render_gaussians

f64 = torch.float64
H, W = 96, 128
K = torch.as_tensor(intrinsics_from_fov(60, H, W), dtype=f64)                      # the notebook's camera
world_to_cam = invert_rigid(torch.as_tensor(look_at([1.2, -2.6, 1.4], [0.0, 0.0, 0.3]), dtype=f64))
background = torch.tensor([0.15, 0.15, 0.15], dtype=f64)


def random_scene(G, seed=0, spread=0.6, opacity=(0.35, 0.95)):
    """G random Gaussians round the origin (as in section 2): means, quats, scales, opacities, colours."""
    g = torch.Generator().manual_seed(seed)
    lo, hi = opacity
    return ((torch.rand(G, 3, generator=g, dtype=f64) * 2 - 1) * spread, torch.randn(G, 4, generator=g, dtype=f64),
            torch.rand(G, 3, generator=g, dtype=f64) * 0.3 + 0.05,
            torch.rand(G, generator=g, dtype=f64) * (hi - lo) + lo,
            torch.rand(G, 3, generator=g, dtype=f64))


def back_to_front(scene, bg, width=W, height=H):
    """The "over" operator from the farthest Gaussian to the nearest: C <- alpha c + (1 - alpha) C."""
    means, quats, scales, opacities, colors = scene
    proj = project_gaussians(means, quats, scales, opacities, world_to_cam, K, width, height)
    pix = pixel_centers(height, width, dtype=f64).reshape(-1, 2)                   # (P, 2)
    image = bg.expand(len(pix), -1).clone()                                         # start from the background
    for i in torch.argsort(proj.depths, descending=True).tolist():                  # farthest first
        d = pix - proj.means2d[i]
        a, b, c = proj.conics[i]
        alpha = (proj.opacities[i] * torch.exp(-0.5 * (a * d[:, 0] ** 2 + c * d[:, 1] ** 2) - b * d[:, 0] * d[:, 1]))
        alpha = alpha.clamp(max=0.99)
        alpha = torch.where(alpha >= 1 / 255, alpha, 0.0)
        image = alpha[:, None] * colors[proj.ids[i]] + (1 - alpha[:, None]) * image
    return image.reshape(height, width, -1)


def exercise_1_back_to_front():
    """Back to front = front to back without the early stop; only front to back knows when to stop."""
    scene = random_scene(8)
    full = render_gaussians(*scene, world_to_cam, K, W, H, background=background, min_transmittance=0.0).image
    diff = float((back_to_front(scene, background) - full).abs().max())
    assert diff < 1e-12, diff
    # Now a stack of nearly opaque Gaussians: front to back stops before the Gaussian that would bring T
    # below 1e-4. What it leaves out is at most the light T still left then, and T * (1 - 0.99) > 1e-4 fails
    # there, so T < 1e-4 / (1 - 0.99) = 0.01 (the rest of T still goes to the background).
    means, quats, scales, _, colors = random_scene(6, seed=1, spread=0.05)
    opaque = (means, quats, scales + 0.2, torch.full((6,), 0.99, dtype=f64), colors)
    stop = render_gaussians(*opaque, world_to_cam, K, W, H, background=background).image          # 1e-4
    ours = back_to_front(opaque, background)
    dropped = float((stop - ours).abs().max())
    assert 0 < dropped <= 1e-4 / (1 - 0.99), dropped
    print(f"back to front = front to back without the stop (max |Δ| {diff:.1e}); stopping at T = 1e-4 changes "
          f"a pixel of the stacked opaque Gaussians by {dropped:.1e} (at most 1e-4 / (1 - 0.99) = 0.01).\n"
          "Front to back knows T, the light still left, after each Gaussian, so it can stop when nothing behind "
          "can show; back to front only learns at the very end how much of each layer gets covered.")


def exercise_2_mip_filter():
    """The 0.3 filter spreads a small Gaussian at full opacity; scaling the opacity as Mip-Splatting does
    gives back its true total alpha, o * 2 pi sqrt(det Sigma'_0)."""
    z, sigma_px = 3.0, 0.3                                                          # 0.3 px wide on screen
    identity = torch.eye(4, dtype=f64)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    mean = torch.tensor([[(70.3 - cx) * z / fx, (40.6 - cy) * z / fy, z]], dtype=f64)
    quat = torch.tensor([[1.0, 0, 0, 0]], dtype=f64)
    scales = torch.full((1, 3), float(sigma_px * z / fx), dtype=f64)
    o = torch.tensor([0.9], dtype=f64)
    colour = torch.ones(1, 3, dtype=f64)
    cov0 = project_gaussians(mean, quat, scales, o, identity, K, W, H, eps2d=0.0).cov2d[0]   # Sigma'_0, no filter
    cov = project_gaussians(mean, quat, scales, o, identity, K, W, H, eps2d=0.3).cov2d[0]    # Sigma'
    integral = float(o * 2 * math.pi * torch.linalg.det(cov0).sqrt())              # the Gaussian's true total alpha
    plain = float(render_gaussians(mean, quat, scales, o, colour, identity, K, W, H).alpha.sum())
    o_mip = o * (torch.linalg.det(cov0) / torch.linalg.det(cov)).sqrt()              # Mip-Splatting's 2D filter
    mip = float(render_gaussians(mean, quat, scales, o_mip, colour, identity, K, W, H).alpha.sum())
    assert plain > 2 * integral                                                     # the filter adds light ...
    assert abs(mip / integral - 1) < 0.05, (mip, integral)                          # ... the compensation takes it back
    print(f"summed alpha of a 0.3 px Gaussian: true {integral:.3f}, with the 0.3 filter {plain:.3f}, "
          f"with Mip-Splatting's opacity scaling {mip:.3f} (opacity {float(o):.2f} -> {float(o_mip):.3f})")


def exercise_3_tile_size():
    """Smaller tiles: fewer pixel x Gaussian pairs, the same image, more tiles to loop over."""
    size = 64
    Kf = torch.as_tensor(intrinsics_from_fov(40, size, size), dtype=f64)
    g = torch.Generator().manual_seed(0)
    G = 300
    depth = 2.75 + 0.5 * torch.rand(G, generator=g, dtype=f64)                   # like the notebook's fit
    uv = torch.rand(G, 2, generator=g, dtype=f64) * size
    means = torch.cat([(uv - Kf[:2, 2]) / Kf[0, 0] * depth[:, None], depth[:, None]], 1)   # camera = world
    scene = (means, torch.randn(G, 4, generator=g, dtype=f64),
             torch.rand(G, 3, generator=g, dtype=f64) * 0.04 + 0.01, torch.rand(G, generator=g, dtype=f64) * 0.9 + 0.05,
             torch.rand(G, 3, generator=g, dtype=f64))
    cam = torch.eye(4, dtype=f64)
    proj = project_gaussians(*scene[:4], cam, Kf, size, size)
    rows, images = [], {}
    for tile in (4, 8, 16, 32, size):
        counts = gaussians_per_tile(proj, size, size, tile)                        # (tiles y, tiles x)
        pairs = int(counts.sum()) * tile * tile                                     # tiles are whole: 64 = k * tile
        start = time.perf_counter()
        images[tile] = render_gaussians(*scene, cam, Kf, size, size, tile_size=tile).image
        rows.append((tile, counts.numel(), pairs, time.perf_counter() - start))
    for tile, img in images.items():
        assert float((img - images[size]).abs().max()) < 1e-12, tile               # the same image for every tile size
    pairs = [r[2] for r in rows]
    assert all(a <= b for a, b in zip(pairs, pairs[1:]))                 # nested tiles: smaller never costs more
    assert pairs[0] < pairs[-1]
    print("tile  tiles  pixel x Gaussian pairs  seconds (one render, this machine)")
    for tile, n, p, sec in rows:
        print(f"{tile:4d}  {n:5d}  {p:22,d}  {sec:.3f}")
    fastest = min(rows, key=lambda r: r[3])[0]
    print(f"fewest pairs: tile size {rows[0][0]}; fastest on this machine: {fastest}. Every tile costs a step of the "
          "Python loop here (a thread block on a GPU), so the smallest tiles are not the fastest; 3DGS and gsplat "
          "use 16 x 16, one thread block of 256 pixels.")


if __name__ == "__main__":
    exercise_1_back_to_front()
    exercise_2_mip_filter()
    exercise_3_tile_size()
