"""Solutions to the exercises of notebooks/04_dynatok_tables.ipynb.

Run: python notebooks/solutions/04_dynatok_tables.py  (seconds; the paper's table and one small static sequence).
"""
import numpy as np

from fourdlib import metrics, repro
from fourdlib.data.synthetic import make_primitive_sequence

# a static composition of primitives that only the camera circles, as the course's "static" data
seq = make_primitive_sequence(0, num_frames=8, image_size=(64, 64), n_surface=1024, motion=0.0, deform=0.0)
regions = seq.visibility_regions()                                    # {region: (T, N) bool}


def exercise_1_paper_ablation():
    """Per-frame Only's Comp is ~12x Full's; Comp is not monotone in M (the table's notes say so)."""
    table = repro.get_table("dynatok/ablation").to_frame()
    comp = table["Comp ↓"]
    ratio = comp["Per-frame Only"] / comp["Geometry-Motion (Full)"]
    by_m = [float(comp[f"M={m} tokens"]) for m in (128, 256, 512)]
    assert 11 < ratio < 12.5
    assert not (by_m[0] >= by_m[1] >= by_m[2])                         # 0.032, 0.026, 0.030
    print(f"paper: Per-frame Only's Comp is {ratio:.1f}x Full's; Comp for M = 128/256/512: {by_m}")
    print("notes:", repro.get_table("dynatok/ablation").notes[:160], "...")


def region_completeness(cloud, t):
    """Completeness of frame t's GT by `cloud`, overall and per region (regions that are empty are skipped)."""
    gt = seq.surface_points[t]
    per_region = {name: (metrics.completeness(cloud, gt, mask=m[t]), int(m[t].sum()))
                  for name, m in regions.items() if m[t].any()}
    return metrics.completeness(cloud, gt), per_region


def exercise_2_input_by_region():
    """The regions partition the GT: the counts-weighted mean of the regions is the overall number."""
    overall, per_region = region_completeness(seq.partial_points[0], 0)
    recombined = sum(c * n for c, n in per_region.values()) / sum(n for _, n in per_region.values())
    assert abs(recombined - overall) < 1e-9
    assert per_region["visible"][0] < 0.25 * per_region["hidden_seen_elsewhere"][0]
    print("input of frame 0, completeness by region (m):", {k: round(c, 4) for k, (c, _) in per_region.items()},
          f"overall {overall:.4f}")


def exercise_3_union_reference():
    """Stacking all frames fixes 'hidden here, seen elsewhere' (static shape); 'never seen' stays open."""
    union = np.concatenate(seq.partial_points)                         # (sum N_t, 3)
    _, single = region_completeness(seq.partial_points[0], 0)
    _, stacked = region_completeness(union, 0)
    assert stacked["hidden_seen_elsewhere"][0] < 0.2 * single["hidden_seen_elsewhere"][0]
    assert stacked["hidden_seen_elsewhere"][0] < 2 * stacked["visible"][0]   # about as good as the visible part
    assert stacked["never_seen"][0] > 3 * stacked["visible"][0]             # only a shape prior can fill it
    print("union of all frames, completeness of frame 0 by region (m):",
          {k: round(c, 4) for k, (c, _) in stacked.items()})


if __name__ == "__main__":
    exercise_1_paper_ablation()
    exercise_2_input_by_region()
    exercise_3_union_reference()
