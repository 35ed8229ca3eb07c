"""Solutions to the exercises of notebooks/18_com4d_tables.ipynb.

Run: python notebooks/solutions/18_com4d_tables.py  (about a minute at FOURD_SCALE=smoke, where the
run trains for seconds; a few minutes at tiny, where the committed run is loaded and a few held-out
mixed scenes are sampled several times).
"""
import dataclasses
import os

import numpy as np
import pandas as pd
import torch

from fourdlib.data import Sequence4D
from fourdlib.data.dataset import read_manifest
from fourdlib.models.com4d import course_data, course_run, decode_occupancy, prepare_sequence, sample_latents, scene_inputs
from fourdlib.models.com4d.evaluate import evaluate_split, scene_metrics

scale = os.environ.get("FOURD_SCALE", "tiny")
model = course_run("compositional", scale, progress=False)[0]
cfg = model.cfg
folder = course_data("compositional", scale, progress=False)
N = 2 if scale == "smoke" else 5             # held-out mixed scenes used (the exercises' "first five")
entries = [e for e in read_manifest(folder)["sequences"] if e["split"] == "eval_mixed"][:N]
scenes = [prepare_sequence(Sequence4D.load(folder / e["file"]), cfg, i) for i, e in enumerate(entries)]


def exercise_1_seeds():
    """Three sampling seeds: the spread of each method's penetration IoU across seeds, beside the
    difference between the methods. A difference smaller than the spread is not a finding."""
    rows = []
    for s in (0, 1, 2):
        t = evaluate_split(model, folder, "eval_mixed", methods=("mix", "stitched"), seed=s, max_sequences=N)
        rows += [{"seed": s, "method": m, "penetration IoU": g["penetration IoU"].mean(), "CD": g["CD"].mean()}
                 for m, g in t.groupby("method")]
    table = pd.DataFrame(rows).pivot(index="seed", columns="method")
    print(table.round(4))
    spread = table.std()
    gap = (table[("penetration IoU", "mix")] - table[("penetration IoU", "stitched")]).mean()
    print(f"mean mixing - stitched penetration IoU {gap:+.4f}; spread over seeds {spread.round(4).to_dict()}")
    again = evaluate_split(model, folder, "eval_mixed", methods=("mix",), seed=0, max_sequences=N)["CD"].mean()
    assert np.isclose(again, table.loc[0, ("CD", "mix")], equal_nan=True)    # a seed reproduces itself exactly
    return table


def exercise_2_solver():
    """More Euler steps or Heun: if CD barely moves, the DiT (not the ODE solver) is the limit."""
    rows = {}
    for label, kw in {"euler 16": dict(steps=16), "euler 32": dict(steps=32), "heun 8": dict(steps=8, method="heun")}.items():
        cds = []
        for p in scenes:
            inp = scene_inputs(p)
            z = sample_latents(model, inp["image"], inp["masks"], inp["dynamic"],
                               generator=torch.Generator().manual_seed(0), **kw)[0]
            m = scene_metrics(decode_occupancy(model, z, inp["occ"].shape[-1]), inp["surface"][0], inp["occ"][0])
            cds.append(m["CD"])
        rows[label] = {"CD": float(np.nanmean(cds))}
    table = pd.DataFrame.from_dict(rows, orient="index")
    print(table.round(4))
    assert np.isfinite(table["CD"]).all() or scale == "smoke"
    return table


def exercise_3_history():
    """Less history (H = 1 instead of H = 4): the first window is the same (frame 0 clean, the
    same noise), so frames 0..W-1 are identical; only the later frames can drift more."""
    def curves(h):
        model.cfg = dataclasses.replace(cfg, history_frames=h)
        try:
            out = []
            for p in scenes:
                inp = scene_inputs(p)
                z = sample_latents(model, inp["image"], inp["masks"], inp["dynamic"],
                                   generator=torch.Generator().manual_seed(0))[0]
                out.append(scene_metrics(decode_occupancy(model, z, inp["occ"].shape[-1]), inp["surface"][0],
                                         inp["occ"][0])["cd_per_frame"])
            return np.nanmean(np.stack(out), 0)
        finally:
            model.cfg = cfg
    W = cfg.train_frames
    c4, c1 = curves(cfg.history_frames), curves(1)
    table = pd.DataFrame({f"H={cfg.history_frames}": [c4[:W].mean(), c4[W:].mean()], "H=1": [c1[:W].mean(), c1[W:].mean()]},
                         index=[f"frames 0-{W - 1}", f"frames {W}-"])
    print(table.round(4))
    assert np.allclose(c4[:W], c1[:W], equal_nan=True), "the first window does not depend on the history length"
    return table


if __name__ == "__main__":
    exercise_1_seeds()
    exercise_2_solver()
    exercise_3_history()
