"""Solutions to the exercises of notebooks/12_native4d_tables.ipynb.

Run: python notebooks/solutions/12_native4d_tables.py  (under a minute at FOURD_SCALE=smoke; a few
minutes at tiny, where the committed run is loaded and the unseen-motion split evaluated three times).
"""
import dataclasses
import os

import pandas as pd

from fourdlib.models.native4d_vae import CONFIGS, course_data, course_run, make_dataset
from fourdlib.models.native4d_vae import evaluate as ev
from fourdlib.models.native4d_vae.model import choose_lambda, occupancy_iou

scale = os.environ.get("FOURD_SCALE", "tiny")
cfg = CONFIGS[scale]
model = course_run("creatures_native", scale, progress=False)[0]
data = make_dataset(cfg, course_data("creatures", scale, progress=False), "unseen_motion", train=False)
N = 2 if scale == "smoke" else None          # sequences evaluated (None: all)


def fscore(p, r):
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def exercise_1_threshold():
    """Raising the occupancy threshold keeps fewer voxels: precision can only gain what recall loses.
    The F-score at 1.024 voxels says which trade is best for this run."""
    rows = {}
    for th in (0.3, 0.5, 0.7):
        df = ev.evaluate(model, data, threshold=th, novel_view_deg=None, max_sequences=N, progress=False)
        p, r = df["pred_precision@0.001"].mean(), df["pred_recall@0.001"].mean()
        rows[th] = {"voxels": df["pred_voxels"].mean(), "Pre@0.001": p, "Recall@0.001": r, "F@0.001": fscore(p, r)}
    table = pd.DataFrame.from_dict(rows, orient="index")
    print(table.round(3))
    assert table["voxels"].is_monotonic_decreasing           # a higher threshold never adds a voxel
    print(f"best F-score at threshold {table['F@0.001'].idxmax()}")
    return table


def exercise_2_pruning():
    """A lower prune logit keeps more coarse cells, so the decoder proposes more voxels (and the final
    head decides); a higher one removes surface that no later stage can bring back."""
    rows = {}
    for tau in (-2.0, cfg.prune_logit, 1.0):
        model.cfg = dataclasses.replace(cfg, prune_logit=tau)
        df = ev.evaluate(model, data, novel_view_deg=None, max_sequences=N, progress=False)
        rows[tau] = {"voxels": df["pred_voxels"].mean(), "Recall@0.005": df["pred_recall@0.005"].mean(),
                     "IoU": df["pred_iou"].mean()}
    model.cfg = cfg
    table = pd.DataFrame.from_dict(rows, orient="index")
    print(table.round(3))
    assert table["voxels"].is_monotonic_decreasing            # pruning more never decodes more
    return table


def exercise_3_codec():
    """The codec at the latent's grid and lambda (the notebook's), at a twice finer grid, and without
    temporal compression: a finer codec stores more numbers than the latent does, so it is no longer a
    fair 'same size' reference; it shows how much of the codec's error is spatial and how much temporal."""
    factor = cfg.resolution // cfg.latent_resolution
    rows = {}
    for label, f, lam in (("latent grid, λ", factor, None), ("2x finer grid, λ", max(1, factor // 2), None),
                          ("latent grid, λ = 1", factor, 1)):
        vals = []
        for i in range(len(data) if N is None else min(N, len(data))):
            item = data[i]
            T = int(item["num_frames"][0])
            lam_i = lam or choose_lambda(item["num_frames"], cfg.temporal_ratio)
            c, _ = ev.trivial_codec(item["coords"], item["colors"], T, lam_i, f)
            for t in range(T):
                vals.append(occupancy_iou(c[c[:, 0] == t], item["coords"][item["coords"][:, 0] == t]))
        rows[label] = {"codec IoU": sum(vals) / len(vals)}
    table = pd.DataFrame.from_dict(rows, orient="index")
    print(table.round(3))
    assert table.loc["2x finer grid, λ", "codec IoU"] >= table.loc["latent grid, λ", "codec IoU"]
    assert table.loc["latent grid, λ = 1", "codec IoU"] >= table.loc["latent grid, λ", "codec IoU"]
    return table


if __name__ == "__main__":
    exercise_1_threshold()
    exercise_2_pruning()
    exercise_3_codec()
