"""Solutions to the exercises of notebooks/15_any4d_tables.ipynb.

Run: python notebooks/solutions/15_any4d_tables.py  (under a minute at FOURD_SCALE=smoke, where the
run trains for seconds; about a minute at tiny, where the committed run is loaded).
"""
import os

import pandas as pd
import torch
from torch.utils.data import default_collate

from fourdlib.models.any4d import course_data, course_run, evaluate, make_dataset, predict, summary
from fourdlib.models.any4d.evaluate import flow_scores, zero_flow

scale = os.environ.get("FOURD_SCALE", "tiny")
model = course_run("scenes_allocentric", scale, progress=False)[0]
test = make_dataset(model.cfg, course_data("scenes", scale, progress=False), "test", train=False)
rows = evaluate(model, test)


def exercise_1_scale():
    """EPE with the model's own metric scale against EPE with the GT-consistent scale: the
    difference is what the scale head costs."""
    s = summary(rows).loc["Any4D", ["epe", "epe_aligned", "scale_log_err"]]
    print(s.round(4).to_dict())
    assert s["epe"] >= 0 and s["epe_aligned"] >= 0 and s["scale_log_err"] >= 0
    return s


def exercise_2_hard_clips():
    """The hardest clips on moving pixels are those where objects move far: the moving-pixel EPE
    of a model that predicts ~zero flow is ~the GT flow's own magnitude there."""
    ours = rows[rows["method"] == "Any4D"].set_index("clip")
    stats = []
    for i in ours.index:
        item = test[i]
        dyn = item["dynamic"] & item["flow_valid"]
        mag = item["flow"][1:].norm(dim=-1)[:, dyn]                  # (N-1, moving pixels)
        stats.append({"clip": i, "moving share": float(dyn.float().mean()),
                      "GT flow on moving pixels (m)": float(mag.mean()) if mag.numel() else float("nan")})
    table = pd.DataFrame(stats).set_index("clip").join(ours[["epe_dyn"]]).sort_values("epe_dyn", ascending=False)
    print(table.head().round(3))
    corr = table[["GT flow on moving pixels (m)", "epe_dyn"]].corr().iloc[0, 1]
    print(f"correlation of moving-pixel EPE with the GT flow's magnitude: {corr:.2f}")
    return table


def exercise_3_mask_oracle():
    """GT flow where the model's flow exceeds 1 cm, zero elsewhere: what a motion mask alone is worth."""
    out = []
    for i in range(len(test)):
        batch = default_collate([test[i]])
        pred = predict(model, batch)["flow"]
        moving = pred.norm(dim=-1, keepdim=True) > 0.01
        oracle = torch.where(moving, batch["flow"], torch.zeros_like(pred))
        out.append({"oracle": flow_scores(oracle, batch)["epe_dyn"], "zero flow": flow_scores(zero_flow(batch), batch)["epe_dyn"],
                    "mask share": float(moving.float().mean())})
    table = pd.DataFrame(out).mean()
    print(table.round(4).to_dict())
    assert table["oracle"] <= table["zero flow"] + 1e-6      # GT flow on any mask can only help over zero
    return table


if __name__ == "__main__":
    exercise_1_scale()
    exercise_2_hard_clips()
    exercise_3_mask_oracle()
