"""Regenerate the committed Any4D results that the README quotes (results/any4d/*.record.json).

    .venv/bin/python results/any4d/make_records.py           # all of them
    .venv/bin/fourd results --update README.md               # then refresh the README's tables

    tiny_scenes   the committed runs (checkpoints/any4d/, via course_run: the runs the notebooks
                  load) on every held-out clip of the course `scenes` set (split "test"), all
                  inputs: Any4D (allocentric flow) in one N-view pass and as the pairwise baseline
                  (the same model on (reference, view i) pairs), the egocentric-flow and
                  points-after-motion variants (table 5's motion representation ablation), beside the trivial flow references
                  "zero flow" and "depth difference" (fourdlib.models.any4d.evaluate). Nothing
                  here is tuned on these clips.
"""
from __future__ import annotations

import time

import pandas as pd

from fourdlib import repro
from fourdlib.models.any4d import course_data, course_run, evaluate, make_dataset, summary
from fourdlib.repro.results import RESULTS_DIR, make_main, render

SCALE, SEED = "tiny", 0
RESULTS = {"tiny_scenes": ("scenes_allocentric", "scenes_egocentric", "scenes_points")}
ALLO, EGO, POINTS = "Any4D (allocentric flow)", "variant: egocentric flow", "variant: points after motion"
COLUMNS = {"EPE (m)": "epe", "APD": "apd", "τ": "tau", "EPE moving (m)": "epe_dyn", "APD moving": "apd_dyn",
           "τ moving": "tau_dyn", "EPE, GT scale (m)": "epe_aligned", "AbsRel": "abs_rel", "δ1": "delta1",
           "AbsRel, median-aligned": "abs_rel_aligned", "|log s/s*|": "scale_log_err"}


def make(name: str):
    start = time.time()
    allo_key, ego_key, points_key = RESULTS[name]
    model, _, info = course_run(allo_key, SCALE, seed=SEED)
    ego, _, info_e = course_run(ego_key, SCALE, seed=SEED)
    points, _, info_p = course_run(points_key, SCALE, seed=SEED)
    data = make_dataset(model.cfg, course_data("scenes", SCALE, seed=SEED), "test", train=False)
    rows = pd.concat([evaluate(model, data, pairwise=True).replace({"method": {"Any4D": ALLO}}),
                      evaluate(ego, data, references=False).replace({"method": {"Any4D": EGO}}),
                      evaluate(points, data, references=False).replace({"method": {"Any4D": POINTS}})])
    table = summary(rows)
    metrics = {method: {label: float(table.loc[method, col]) for label, col in COLUMNS.items()
                        if col in table and table.loc[method, col] == table.loc[method, col]}
               for method in table.index}
    per_clip = rows.pivot(index="clip", columns="method", values="epe_dyn")
    notes = [f"{ALLO}: lower EPE on moving pixels than {ref} on {int((per_clip[ALLO] < per_clip[ref]).sum())} "
             f"of {len(per_clip)} clips" for ref in ("zero flow", "depth difference", "Any4D pairwise", EGO, POINTS)]
    tau = rows.pivot(index="clip", columns="method", values="tau")
    notes += [f"{ALLO}: higher τ than {v} on {int((tau[ALLO] > tau[v]).sum())} of {len(tau)} clips" for v in (EGO, POINTS)]
    cfg = model.cfg
    caption = (f"{SCALE}, course scenes set (rigid objects, moving camera), held-out split `test`: {len(data)} clips "
               f"of {cfg.views} views at {cfg.image_size} x {cfg.image_size}, every input (RGB, depth, rays, pose, "
               f"Doppler); scene flow of the reference view's pixels to every other view, metres; EPE lower is "
               f"better, APD (mean share within 0.1 / 0.3 / 0.5 / 1.0 m) and τ (share of points after motion within "
               f"3 % of their distance) higher is better; 'moving' = pixels of moving objects. Depth: metric z-depth, "
               f"and median-aligned apart. Runs `{SCALE}_{allo_key}` ({info['train_seconds'] or 0:.0f} s of training)"
               f", `{SCALE}_{ego_key}` ({info_e['train_seconds'] or 0:.0f} s) "
               f"and `{SCALE}_{points_key}` ({info_p['train_seconds'] or 0:.0f} s).")
    path = repro.record(metrics, scale=SCALE, seed=SEED, data="course scenes set, split test",
                        notebook="results/any4d/make_records.py", variant=name, device="cpu",
                        extra={"caption": caption, "row_header": SCALE, "notes": notes},
                        path=RESULTS_DIR / "any4d" / f"{name}.record.json", start=start)
    print(f"{name}: wrote {path}\n{render(f'any4d/{name}')}")


if __name__ == "__main__":
    make_main(RESULTS, make)
