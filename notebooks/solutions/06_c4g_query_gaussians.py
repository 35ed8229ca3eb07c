"""Solutions to the exercises of notebooks/06_c4g_query_gaussians.ipynb.

Run: python notebooks/solutions/06_c4g_query_gaussians.py  (seconds at FOURD_SCALE=smoke: the
smoke runs train in a few seconds; at tiny the committed runs are loaded).
"""
import os

import torch

from fourdlib.metrics import psnr
from fourdlib.models.c4g import CONFIGS, Gaussians, course_data, course_run, make_dataset, model_inputs, render

scale = os.environ.get("FOURD_SCALE", "tiny")
cfg = CONFIGS[scale]


def exercise_1_budgets_at_full_scale():
    """16 frames x 256 x 256 pixels at stride 1: over a million Gaussians against 32,768 queries."""
    full = CONFIGS["full"]
    per_pixel = full.input_frames * full.image_size ** 2                     # stride 1
    floats = 3 + 4 + 3 + 1 + 3                                               # mean, quat, scale, opacity, rgb
    assert per_pixel == 16 * 256 * 256 == 1_048_576
    assert per_pixel == 32 * full.num_queries                               # 32x the query budget
    print(f"per-pixel: {per_pixel:,} Gaussians ({per_pixel * floats * 4 / 2**20:.0f} MB fp32) per target time; "
          f"C4G: {full.num_queries:,} ({full.num_queries * floats * 4 / 2**20:.1f} MB)")


def _clip():
    folder = course_data("scenes", scale, progress=False)
    test = make_dataset(cfg, folder, "test", train=False)
    item = test[0]
    return {k: v[None] for k, v in item.items()}


def exercise_2_extrapolation():
    """Positions still move outside [0, 1], by amounts nothing controls: training never asked for
    a time outside the first..last input, so the offsets there are whatever the MLP extrapolates
    (compare a trained run with an untrained one: neither is told what happens there)."""
    model, _, _ = course_run("scenes_queries", scale, progress=False)
    inputs = model_inputs(_clip())
    with torch.no_grad():
        tokens = model.encoder(inputs["x"], inputs["times"])
        times = torch.tensor([[-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0]])
        means = model.decode(tokens, times).means[0]                          # (7, N, 3)
    moved = (means - means[2]).norm(dim=-1).mean(-1)                         # mean distance from the t = 0 positions
    inside, far_out = float(moved[4]), float(moved[[0, 6]].max())
    print("mean distance from the t = 0 positions at t =", [round(t, 1) for t in times[0].tolist()], ":",
          [round(float(m), 4) for m in moved])
    assert far_out > 0 and inside > 0
    # not asserted: far_out > inside. An MLP may saturate; the point is that nothing trains it there.


def exercise_3_time_blind_per_pixel():
    """Decode each source frame's Gaussians at its OWN time (no motion to the target time) and
    render them all at the target camera: the difference to the full model is what the per-pixel
    baseline's time offsets do."""
    model, _, _ = course_run("scenes_pixels", scale, progress=False)
    batch = _clip()
    inputs = model_inputs(batch)
    S, H, W = batch["rgb"].shape[1:4]
    with torch.no_grad():
        full = model(inputs["x"], inputs["times"], inputs["target_times"])              # (1, V, S*G_s, ...)
        own = model(inputs["x"], inputs["times"], inputs["times"])                      # (1, S, S*G_s, ...): at each input's time
        G_s = full.means.shape[2] // S
        pick = torch.arange(S).repeat_interleave(G_s)                                   # source frame of each Gaussian
        blind_means = own.means[0, pick, torch.arange(S * G_s)]                        # each at its own frame's time
        V = full.means.shape[1]
        blind = full._replace(means=blind_means[None, None].expand(1, V, -1, -1))
        scores = {}
        for name, g in (("with time offsets", full), ("time-blind", blind)):
            img = render(g.to_world(inputs["center"], inputs["scale"]), batch["target_K"],
                         batch["target_cam_to_world"], H, W).image[0]
            scores[name] = float(psnr(img, batch["target_rgb"][0]).mean())
    print("per-pixel baseline on the held-out frames, PSNR (dB):", {k: round(v, 2) for k, v in scores.items()})
    assert all(v == v for v in scores.values())


if __name__ == "__main__":
    exercise_1_budgets_at_full_scale()
    exercise_2_extrapolation()
    exercise_3_time_blind_per_pixel()
