"""Regenerate the committed C4G results that the README quotes (results/c4g/*.record.json).

    .venv/bin/python results/c4g/make_records.py            # all of them (a few minutes on 2 cores)
    .venv/bin/python results/c4g/make_records.py gaps       # one
    .venv/bin/fourd results --update README.md              # then refresh the README's tables

Each result evaluates the two committed tiny runs (checkpoints/c4g/, via course_run: the same
runs the notebooks load), C4G's query Gaussians and the per-pixel baseline on the same encoder,
on every held-out sequence of the course `scenes` set (split "test"), beside the references of
fourdlib.models.c4g.evaluate (the nearest input frame copied, every input pixel splatted, the
target's own pixels splatted as a floor). Nothing here is tuned on these sequences.

    tiny_scenes   the training clip layout: 8-frame clips, 4 input frames, every other frame a target
    tiny_gaps     large temporal gaps: 16-frame clips from 2 input frames (the first and the last),
                  targets up to 7 frames from the nearest input, PSNR per gap
    tiny_tracking point tracking through the Gaussians (and C4G's lifted feature field) on the
                  training clip layout, against exact GT tracks, beside the static / nearest-colour /
                  zero-motion references (evaluate.tracking_table)
"""
from __future__ import annotations

import time

from fourdlib import repro
from fourdlib.models.c4g import course_data, course_run, make_dataset
from fourdlib.models.c4g.evaluate import comparison_table, evaluate, gap_table, tracking_errors, tracking_summary
from fourdlib.repro.frames import per_sequence_wins
from fourdlib.repro.results import RESULTS_DIR, make_main, render

SCALE, SEED = "tiny", 0
MODELS = {"C4G (query Gaussians)": "scenes_queries", "per-pixel Gaussians (same encoder)": "scenes_pixels"}
# result name -> (clip_frames, input_frames); None: the config's
RESULTS = {"tiny_scenes": (None, None), "tiny_gaps": (16, 2), "tiny_tracking": (None, None)}


def make(name: str):
    clip, inputs = RESULTS[name]
    start = time.time()
    runs = {label: course_run(key, SCALE, seed=SEED) for label, key in MODELS.items()}
    cfg = next(iter(runs.values()))[0].cfg
    data = make_dataset(cfg, course_data("scenes", SCALE, seed=SEED), "test", train=False)
    if name == "tiny_tracking":
        return make_tracking(name, runs, data, start)
    frames = {label: evaluate(model, data, clip_frames=clip, input_frames=inputs) for label, (model, _, _) in runs.items()}
    table = comparison_table(frames)
    metrics = {row: {col: float(v) for col, v in vals.items() if v == v} for row, vals in table.iterrows()}
    gaps = gap_table(frames)
    ours, pix = frames["C4G (query Gaussians)"], frames["per-pixel Gaussians (same encoder)"]
    notes = []
    for other, b in (("the per-pixel baseline", pix), ("the nearest input frame", "nearest"),
                     ("the union of input pixels", "union")):
        won, n = per_sequence_wins(ours, b, "psnr", higher_is_better=True)
        notes.append(f"C4G: higher PSNR than {other} on {won} of {n} sequences")
    notes += [f"PSNR (dB) by gap {', '.join(str(g) for g in gaps.columns)} (frames to the nearest input): {k} "
              + ", ".join(f"{gaps.loc[k, g]:.2f}" for g in gaps.columns) for k in gaps.index]
    S = inputs or cfg.input_frames
    caption = (f"{SCALE}, course scenes set, held-out split `test`: {len(data)} sequences, "
               f"{clip or cfg.clip_frames}-frame clips from {S} input frames, every other frame of the clip a "
               f"target (a new time and a new camera), {cfg.image_size} x {cfg.image_size} pixels; PSNR (dB) and "
               f"SSIM higher is better; Gaussians per target time. Runs "
               + " and ".join(f"`{SCALE}_{key}` ({runs[label][2]['train_seconds'] or 0:.0f} s of training)"
                              for label, key in MODELS.items()) + ".")
    extra = {"caption": caption, "row_header": SCALE, "notes": notes,
             "gap_psnr": {str(k): {str(g): float(v) for g, v in row.items()} for k, row in gaps.iterrows()}}
    path = repro.record(metrics, scale=SCALE, seed=SEED, data="course scenes set, split test",
                        notebook="results/c4g/make_records.py", variant=name, device="cpu", extra=extra,
                        path=RESULTS_DIR / "c4g" / f"{name}.record.json", start=start)
    print(f"{name}: wrote {path}\n{render(f'c4g/{name}')}\n\nPSNR by gap (frames to the nearest input):\n"
          f"{gaps.round(2).to_string()}")


def make_tracking(name, runs, data, start):
    """Tracking rows: each model's Gaussians (and C4G's feature field), then the references once."""
    (c4g, _, _), (pix, _, _) = runs["C4G (query Gaussians)"], runs["per-pixel Gaussians (same encoder)"]
    errors = tracking_errors(c4g, data, seed=SEED)
    pix_err = tracking_errors(pix, data, methods=["gaussians"], seed=SEED)
    errors["per_pixel_gaussians_err"] = pix_err["gaussians_err"].to_numpy()   # same queries, same order
    labels = {"gaussians": "C4G: its Gaussians' motion", "features": "C4G: lifted feature field",
              "per_pixel_gaussians": "per-pixel baseline: its Gaussians' motion",
              "static": "reference: reproject, nothing moves", "colour": "reference: nearest colour",
              "zero": "reference: zero motion"}
    table = tracking_summary(errors)
    metrics = {f"{points}: {label}": {k: float(v) for k, v in table.loc[(points, method)].items() if k != "pairs"}
               for points in ("moving objects", "static scene") for method, label in labels.items()}
    by_gap = tracking_summary(errors, by="gap")["delta_avg"]
    moving = by_gap.loc["moving objects"].unstack("gap")
    caption = (f"{SCALE}, course scenes set, held-out split `test`: {len(data)} sequences, point tracking from every "
               f"input frame of the first clip to every other frame of it, against exact GT tracks (the meshes "
               f"carried to frame t, visible by a depth test); {int(table['pairs'].iloc[0])} (query, frame) pairs on "
               f"moving objects, {int(table.loc['static scene', 'pairs'].iloc[0])} on the static scene. End-point "
               f"error in pixels of the {data[0]['rgb'].shape[1]} x {data[0]['rgb'].shape[2]} frames, and the "
               f"fraction within 1 / 2 / 4 / 8 px (delta_avg: their mean, higher is better).")
    notes = ["delta_avg on moving objects by gap (frames): " + "; ".join(
        f"{labels[m]} " + ", ".join(f"{g}: {moving.loc[m, g]:.2f}" for g in moving.columns) for m in moving.index)]
    path = repro.record(metrics, scale=SCALE, seed=SEED, data="course scenes set, split test",
                        notebook="results/c4g/make_records.py", variant=name, device="cpu",
                        extra={"caption": caption, "row_header": SCALE, "notes": notes},
                        path=RESULTS_DIR / "c4g" / f"{name}.record.json", start=start)
    print(f"{name}: wrote {path}\n{render(f'c4g/{name}')}")


if __name__ == "__main__":
    make_main(RESULTS, make)
