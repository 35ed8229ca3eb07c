"""Solutions to the exercises of notebooks/11_native4d_rasteriser.ipynb.

Run: python notebooks/solutions/11_native4d_rasteriser.py  (a few seconds at FOURD_SCALE=smoke, under a
minute at tiny: renders of one frame of the course creatures, and two small fits by Adam).
"""
import os

import pandas as pd
import torch

from fourdlib.metrics import psnr
from fourdlib.models.native4d_vae import CONFIGS, course_data, make_dataset
from fourdlib.models.native4d_vae.evaluate import orbit_camera, voxel_centers
from fourdlib.render.voxels import render_voxels

scale = os.environ.get("FOURD_SCALE", "tiny")
cfg = CONFIGS[scale]
data = make_dataset(cfg, course_data("creatures", scale, progress=False), "train", train=False)
plans = [e["body_plan"] for e in data.entries]
item = data[plans.index("quadruped") if "quadruped" in plans else 0]     # the notebook's creature
f = 0                                                                    # and its frame
keep = item["coords"][:, 0] == f
c3, gt_rgb = item["coords"][keep, 1:], item["colors"][keep]
h, origin = float(item["voxel_size"][f]), item["origin"][f]
steps = 25 if scale == "smoke" else 60
fit_size = 2 * cfg.render_size


def camera(degrees=0.0, size=64):
    """Frame f's camera orbited by `degrees` about +z through its voxels' centroid, at size^2 (the notebook's)."""
    centre = voxel_centers(c3, origin, h).mean(0)
    w2c = orbit_camera(item["world_to_cam"][f], centre, degrees)
    K = item["K"][f].clone()
    K[:2] *= size / cfg.render_size
    return w2c, K


def render(coords, occupancy, colours, degrees=0.0, size=64):
    w2c, K = camera(degrees, size)
    return render_voxels(coords, occupancy, colours, w2c, K, size, size, h, origin, validate=False)


def exercise_1_chord_alpha(occupancy=0.99, size=64):
    """With alpha = 1 - (1 - o)^(chord / h), a ray that crosses a one-voxel-thick surface along a short
    chord (at a silhouette edge, a cube's corner or edge, a grazing angle) sees the surface as partly
    transparent, although every voxel is (almost) surely filled. With alpha = o every hit counts fully.
    Here the two rules are made the brute-force way: every ray against every voxel (slab test), in float64."""
    w2c, K = camera(0.0, size)
    w2c, K = w2c.double(), K.double()
    R, t = w2c[:3, :3], w2c[:3, 3]
    o_cam = -R.T @ t
    v, u = torch.meshgrid(torch.arange(size, dtype=torch.float64) + 0.5, torch.arange(size, dtype=torch.float64) + 0.5,
                          indexing="ij")
    d = torch.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], torch.ones_like(u)], -1).reshape(-1, 3) @ R
    lo = origin.double() + c3.double() * h                                # (V, 3) cubes
    hi = lo + h
    with torch.no_grad():
        inv = 1 / torch.where(d == 0, torch.full_like(d, 1e-30), d)[:, None, :]
        t0, t1 = (lo - o_cam) * inv, (hi - o_cam) * inv                  # (P, V, 3)
        t_in = torch.minimum(t0, t1).amax(-1).clamp_min(0.01)
        t_out = torch.maximum(t0, t1).amin(-1)
        hit = t_out > t_in                                                # (P, V)
        chord = (t_out - t_in).clamp_min(0) * d.norm(dim=1, keepdim=True)   # metres inside each cube
    order = torch.where(hit, t_in, torch.inf).argsort(1)
    o = torch.tensor(occupancy, dtype=torch.float64)
    alphas = {"alpha = occupancy": torch.where(hit, o, 0.0),
              "alpha = 1 - exp(-sigma chord)": torch.where(hit, 1 - (1 - o) ** (chord / h), 0.0)}
    acc = {}
    for name, a in alphas.items():
        a = a.gather(1, order)
        acc[name] = (1 - torch.prod(1 - a, 1)).reshape(size, size)
    lib = render(c3, torch.full((len(c3),), occupancy, dtype=torch.float64), gt_rgb.double(), 0.0, size).alpha
    print("max |ours - library| alpha:", float((acc["alpha = occupancy"] - lib).abs().max()))
    assert (acc["alpha = occupancy"] - lib).abs().max() < 1e-9            # our occupancy rule is the library's
    silhouette = acc["alpha = occupancy"] > 0
    row = {name: {"silhouette pixels with alpha < 0.9": float((a[silhouette] < 0.9).float().mean()),
                  "min alpha on the silhouette": float(a[silhouette].min())} for name, a in acc.items()}
    # where: the see-through pixels lie on the outline (a neighbour outside the silhouette) far more often
    weak = (acc["alpha = 1 - exp(-sigma chord)"] < 0.9) & silhouette
    pad = torch.nn.functional.pad(silhouette[None, None].float(), (1, 1, 1, 1))
    outline = silhouette & (torch.nn.functional.max_pool2d(1 - pad, 3, 1)[0, 0] > 0)
    share = float((weak & outline).sum() / weak.sum().clamp_min(1))
    table = pd.DataFrame(row).T
    print(table.round(3))
    print(f"{share:.0%} of the chord rule's see-through pixels are on the outline (outline: "
          f"{float(outline.sum() / silhouette.sum()):.0%} of the silhouette)")
    assert row["alpha = occupancy"]["silhouette pixels with alpha < 0.9"] == 0.0
    assert row["alpha = 1 - exp(-sigma chord)"]["silhouette pixels with alpha < 0.9"] > 0
    return table


def fit(occupancy, colours, params, lr, coords, views, targets):
    opt = torch.optim.Adam(params, lr=lr)
    for _ in range(steps):
        loss = torch.stack([(render(coords, occupancy(), colours(), d, fit_size).image - t).pow(2).mean()
                            for d, t in zip(views, targets)]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss.item()


def exercise_2_carving(views=(0, 120, 240)):
    """Extra cells in front of the surface in some view, or outside the silhouette, add grey where the
    target shows the creature's colour or the black background: their occupancy is driven to 0. Cells
    that no ray reaches past an opaque surface keep whatever they had: the rendering loss cannot carve
    what no view sees (the VAE has BCE / Dice on the voxels for that). Here nearly every extra cell is
    carved: at the start everything is half transparent, so every cell is seen; the few (if any) left undecided
    are those hidden once the surface in front of them became opaque."""
    offsets = torch.stack(torch.meshgrid(*[torch.arange(-1, 2)] * 3, indexing="ij"), -1).reshape(-1, 3)
    grown = torch.unique((c3[:, None] + offsets).reshape(-1, 3), dim=0)
    grown = grown[((grown >= 0) & (grown < cfg.resolution)).all(1)]
    key = lambda c: (c[:, 0] * cfg.resolution + c[:, 1]) * cfg.resolution + c[:, 2]
    is_gt = torch.isin(key(grown), key(c3))
    extra = grown[~is_gt]
    coords = torch.cat([c3, extra])                                       # GT cells first, then the extra ones
    colours = torch.cat([gt_rgb, torch.full((len(extra), 3), 0.5)])
    with torch.no_grad():
        targets = [render(c3, torch.ones(len(c3)), gt_rgb, d, fit_size).image for d in views]
    logit = torch.zeros(len(coords), requires_grad=True)
    loss = fit(lambda: torch.sigmoid(logit), lambda: colours, [logit], 0.2, coords, views, targets)
    occ = torch.sigmoid(logit.detach())
    gt_occ, ex_occ = occ[:len(c3)], occ[len(c3):]
    row = {"GT cells": len(c3), "extra cells": len(extra), "final loss": loss,
           "GT: mean occupancy": float(gt_occ.mean()), "extra: mean occupancy": float(ex_occ.mean()),
           "extra carved (< 0.1)": float((ex_occ < 0.1).float().mean()),
           "extra left undecided (0.1..0.9)": float(((ex_occ >= 0.1) & (ex_occ <= 0.9)).float().mean()),
           "extra kept (> 0.9)": float((ex_occ > 0.9).float().mean())}
    print(pd.Series(row).round(3).to_string())
    assert row["extra: mean occupancy"] < row["GT: mean occupancy"]
    assert row["extra carved (< 0.1)"] > 0.3
    return row


def exercise_3_views(held_out=90):
    """One view (what render_loss uses: the frame's own camera) reaches only the voxels that camera
    sees (about 60% here); every added view reaches more (a voxel reached stays reached, as each set
    of views holds the previous one), and the held-out view's PSNR rises with the fraction reached.
    Which views matter more than how many: the opposite camera (180) adds the most."""
    ones = torch.ones(len(c3))
    with torch.no_grad():
        held_target = render(c3, ones, gt_rgb, held_out, fit_size).image
    rows = {}
    for views in [(0,), (0, 180), (0, 180, 60, 240), (0, 180, 60, 240, 120, 300)]:   # each set holds the previous
        with torch.no_grad():
            targets = [render(c3, ones, gt_rgb, d, fit_size).image for d in views]
        rgb = torch.full_like(gt_rgb, 0.5).requires_grad_()

        def clamped():
            with torch.no_grad():
                rgb.clamp_(0, 1)
            return rgb

        fit(lambda: ones, clamped, [rgb], 0.05, c3, views, targets)
        rgb = clamped().detach()
        with torch.no_grad():
            p = float(psnr(render(c3, ones, rgb, held_out, fit_size).image.clamp(0, 1), held_target, data_range=1.0))
        rows[len(views)] = {"voxels reached": float(((rgb - 0.5).abs().amax(1) > 1e-6).float().mean()),
                            "held-out PSNR (dB)": p}
    table = pd.DataFrame(rows).T.rename_axis("views")
    print(table.round(3))
    assert table["voxels reached"].is_monotonic_increasing
    assert table["held-out PSNR (dB)"].iloc[-1] > table["held-out PSNR (dB)"].iloc[0]
    return table


if __name__ == "__main__":
    exercise_1_chord_alpha()
    exercise_2_carving()
    exercise_3_views()
