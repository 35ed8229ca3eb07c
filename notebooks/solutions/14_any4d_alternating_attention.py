"""Solutions to the exercises of notebooks/14_any4d_alternating_attention.ipynb.

Run: python notebooks/solutions/14_any4d_alternating_attention.py  (a few seconds; nothing is trained).
"""
import dataclasses

import numpy as np
import torch

from fourdlib.data.synthetic import make_scene_sequence
from fourdlib.models.any4d import CONFIGS, EXTRA_MODALITIES, make_dataset, modality_dropout, model_inputs


def exercise_1_attention_cost():
    """M + 1 tokens per view (patches + the scale token), N views. Frame-wise: N (M+1)² scores;
    global: (N (M+1))² = N times as many. At full (518 / 14 = 37 -> 1369 patches, N = 4) a global
    layer scores 4x the pairs of a frame-wise one; all-global layers would cost 2N / (N + 1) = 1.6x
    the attention of the alternating stack (half its layers are frame-wise)."""
    for scale in ("tiny", "full"):
        cfg = CONFIGS[scale]
        M = (cfg.image_size // cfg.patch_size) ** 2
        frame = cfg.views * (M + 1) ** 2
        glob = (cfg.views * (M + 1)) ** 2
        assert glob == cfg.views * frame
        alternating = cfg.depth // 2 * (frame + glob)
        print(f"{scale}: M = {M} patches per view, N = {cfg.views}: frame-wise {frame:,} scores, global {glob:,} "
              f"({glob // frame}x); {cfg.depth} alternating layers {alternating:,}, all global {cfg.depth * glob:,} "
              f"({cfg.depth * glob / alternating:.2f}x)")


def exercise_2_dropout_at_other_probabilities():
    """All four extras kept: p_mm (1 - p_drop)^4. None kept: (1 - p_mm) + p_mm p_drop^4."""
    p_mm, p_drop, n = 0.5, 0.25, 40_000
    g = torch.Generator().manual_seed(0)
    draws = [modality_dropout(EXTRA_MODALITIES, p_mm, p_drop, generator=g) for _ in range(n)]
    all_kept = np.mean([len(d) == 5 for d in draws])
    none_kept = np.mean([d == ("rgb",) for d in draws])
    want_all, want_none = p_mm * (1 - p_drop) ** 4, (1 - p_mm) + p_mm * p_drop ** 4
    assert abs(all_kept - want_all) < 0.01 and abs(none_kept - want_none) < 0.01
    print(f"(p_multimodal, p_drop) = ({p_mm}, {p_drop}): all four kept {all_kept:.3f} (formula {want_all:.3f}), "
          f"none kept {none_kept:.3f} (formula {want_none:.3f})")


def exercise_3_which_input_carries_the_scale():
    """Scaling the scene by 3: depth is divided by its own mean (unchanged) but depth_scale = log mean
    grows by log 3; pose: quaternion and translation / mean distance unchanged, its last entry
    (log distance) grows by log 3; Doppler (m/s) triples; rays and RGB do not change. So the metric
    cue enters through depth_scale, the pose's log distance and Doppler; images alone carry none."""
    seq = make_scene_sequence(0, num_frames=6, image_size=(32, 32), n_surface=256, creature_prob=0.0)
    cfg = CONFIGS["smoke"]
    batch = torch.utils.data.default_collate([make_dataset(cfg, [seq], train=False)[0]])
    b3 = dict(batch, depth=batch["depth"] * 3, doppler=batch["doppler"] * 3)
    b3["cam_to_world"] = batch["cam_to_world"].clone()
    b3["cam_to_world"][..., :3, 3] *= 3
    a, b = model_inputs(batch), model_inputs(b3)
    change = {k: float((b[k] - a[k]).abs().max()) for k in a}
    print("max change of each input when the scene is scaled by 3:", {k: round(v, 4) for k, v in change.items()})
    for k in ("rgb", "rays", "depth"):
        assert change[k] < 1e-5, k
    assert abs(float((b["depth_scale"] - a["depth_scale"]).mean()) - np.log(3)) < 1e-5
    assert abs(float((b["pose"][..., 7] - a["pose"][..., 7]).mean()) - np.log(3)) < 1e-5
    assert change["pose"] == float((b["pose"][..., 7] - a["pose"][..., 7]).abs().max())   # only the log distance
    torch.testing.assert_close(b["doppler"][..., 0], 3 * a["doppler"][..., 0])
    images_only = dataclasses.replace(cfg, modalities="images")
    assert images_only.extra_inputs == ()     # the images-only model reads only "rgb", which did not change
    print("the images-only model's input is unchanged: it can only guess s from what the images show")


if __name__ == "__main__":
    exercise_1_attention_cost()
    exercise_2_dropout_at_other_probabilities()
    exercise_3_which_input_carries_the_scale()
