"""Solutions to the exercises of notebooks/07_c4g_tables.ipynb.

Run: python notebooks/solutions/07_c4g_tables.py  (seconds at FOURD_SCALE=smoke; at tiny the
committed runs are loaded and the first exercise evaluates every held-out sequence, minutes).
"""
import math
import os

import torch

from fourdlib.models.c4g import CONFIGS, course_data, course_run, make_dataset, model_inputs
from fourdlib.models.c4g.evaluate import evaluate, gap_table, tracking_errors, tracking_summary

scale = os.environ.get("FOURD_SCALE", "tiny")
cfg = CONFIGS[scale]
test = make_dataset(cfg, course_data("scenes", scale, progress=False), "test", train=False)
models = {"C4G": course_run("scenes_queries", scale, progress=False)[0],
          "per-pixel": course_run("scenes_pixels", scale, progress=False)[0]}
long_clip = min(16, min(s["rgb"].shape[0] for s in test.sequences))


def exercise_1_three_inputs():
    """A third input in the middle halves the largest gap: the far gaps disappear from the table."""
    two = gap_table({k: evaluate(m, test, clip_frames=long_clip, input_frames=2, progress=False)
                     for k, m in models.items()})
    three = gap_table({k: evaluate(m, test, clip_frames=long_clip, input_frames=3, progress=False)
                       for k, m in models.items()})
    assert three.columns.max() < two.columns.max()
    print("largest gap with 2 inputs:", two.columns.max(), "with 3:", three.columns.max())
    print("mean PSNR over gaps, 2 -> 3 inputs:",
          {k: (round(float(two.loc[k].mean()), 2), round(float(three.loc[k].mean()), 2)) for k in two.index})


def exercise_2_colour_window():
    """A 4 px window cannot reach a static point the camera moved further than 4 px; it removes
    far look-alikes. Which wins depends on the per-frame camera motion (several px at 64 x 64)."""
    full = tracking_summary(tracking_errors(models["C4G"], test, methods=["colour"], progress=False))
    near = tracking_summary(tracking_errors(models["C4G"], test, methods=["colour"], window=4, progress=False))
    for pts in ("moving objects", "static scene"):
        a, b = full.loc[(pts, "colour"), "delta_avg"], near.loc[(pts, "colour"), "delta_avg"]
        print(f"{pts}: nearest colour delta_avg, whole image {a:.3f}, 4 px window {b:.3f}")
        assert 0 <= a <= 1 and 0 <= b <= 1


def exercise_3_attention_entropy():
    """Entropy of each query's last-layer attention over the S*P tokens, against log(S*P) (uniform).
    Near-uniform attention makes every lifted feature close to the clip's mean token: the field
    then carries little that tells one surface point from another."""
    c4g = models["C4G"]
    item = test[0]
    inputs = model_inputs({k: v[None] for k, v in item.items()})
    with torch.no_grad():
        tokens = c4g.encoder(inputs["x"], inputs["times"])
        _, A = c4g.decode(tokens, inputs["target_times"], return_attention=True)   # (1, N, S*P)
    entropy = -(A * A.clamp_min(1e-12).log()).sum(-1)[0]                              # (N,)
    uniform = math.log(A.shape[-1])
    assert float(entropy.max()) <= uniform + 1e-4
    print(f"attention entropy: mean {entropy.mean():.2f} nats, uniform {uniform:.2f} "
          f"(effective tokens: {entropy.exp().mean():.0f} of {A.shape[-1]})")


if __name__ == "__main__":
    exercise_1_three_inputs()
    exercise_2_colour_window()
    exercise_3_attention_entropy()
