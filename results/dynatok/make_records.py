"""Regenerate the committed DynaTok results that the README quotes (results/dynatok/*.record.json).

    .venv/bin/python results/dynatok/make_records.py             # all of them (~15 min on 2 cores)
    .venv/bin/python results/dynatok/make_records.py static      # one
    .venv/bin/fourd results --update README.md                   # then refresh the README's tables

Each result evaluates the committed tiny runs (checkpoints/dynatok/, via course_run: the same
runs the notebooks load) on every held-out sequence of a course data set, with the config's
sampling defaults, and records the comparison table (models, then union / input / floor /
chance rows) and per-sequence win counts. Nothing here is tuned on these sequences: the runs
and their settings were fixed before this script first evaluated them.
"""
from __future__ import annotations

import time

from fourdlib import repro
from fourdlib.models.dynatok import course_data, course_run, make_dataset
from fourdlib.models.dynatok.evaluate import comparison_table, evaluate, per_sequence_wins
from fourdlib.repro.results import RESULTS_DIR, make_main, render
from fourdlib.train.checkpoint import load_checkpoint

SCALE, SEED = "tiny", 0
HIDDEN = "comp_hidden_seen_elsewhere"
# result name -> (data set, held-out split, the pair of course runs compared, and on moving
# shapes our no-residual DynaTok: course.RUNS says why it exists)
RESULTS = {
    "tiny_static": ("static", "test", "static_temporal", "static_perframe", None),
    "tiny_creatures_unseen_motion": ("creatures", "unseen_motion", "creatures_temporal", "creatures_perframe",
                                     "creatures_temporal_nores"),
    "tiny_creatures_unseen_individual": ("creatures", "unseen_individual", "creatures_temporal",
                                         "creatures_perframe", "creatures_temporal_nores"),
    "tiny_moving": ("moving", "test", "moving_temporal", "moving_perframe", "moving_temporal_nores"),
}
NORES = "DynaTok without residual latents (residual=False, ours)"


def _wins(label, a, b, column, what):
    won, n = per_sequence_wins(a, b, column)
    return f"{label}: lower {what} than {b if isinstance(b, str) else 'the per-frame model'} on {won} of {n} sequences"


def _device(info) -> str:
    """Where a run trained, as its checkpoint recorded it (e.g. "cpu (2 threads)")."""
    return load_checkpoint(info["path"]).get("device", "an unrecorded device")


def make(name: str):
    dataset, split, temporal_key, perframe_key, nores_key = RESULTS[name]
    start = time.time()
    temporal, _, info_t = course_run(temporal_key, SCALE, seed=SEED)
    perframe, _, info_p = course_run(perframe_key, SCALE, seed=SEED)
    cfg = temporal.cfg
    data = make_dataset(cfg, course_data(dataset, SCALE, seed=SEED), split, train=False)
    kw = dict(num_points=cfg.eval_points, steps=cfg.sample_steps, method=cfg.sample_method, seed=SEED)
    frames = {"DynaTok": evaluate(temporal, data, **kw),
              "DynaTok, given only the current frame": evaluate(temporal, data, context="current", **kw),
              "per-frame ablation (temporal=False)": evaluate(perframe, data, **kw),
              # the context ablation's reference: what copies alone change (see notebook 03)
              "per-frame ablation, given copies of the current frame": evaluate(perframe, data, context="current",
                                                                                norm="fed", **kw)}
    if nores_key:
        nores, _, info_n = course_run(nores_key, SCALE, seed=SEED)
        frames[NORES] = evaluate(nores, data, **kw)
        frames[NORES + ", given only the current frame"] = evaluate(nores, data, context="current", **kw)
    table = comparison_table(frames)
    ours, pf = frames["DynaTok"], frames["per-frame ablation (temporal=False)"]
    ratio = table.loc["DynaTok", "Acc: visible"] / table.loc["input of the current frame", "Acc: visible"]
    notes = [
        _wins("DynaTok", ours, pf, HIDDEN, "completeness where hidden here but seen elsewhere"),
        _wins("DynaTok", ours, "union", HIDDEN, "completeness where hidden here but seen elsewhere"),
        _wins("DynaTok", ours, "union", "acc_visible", "accuracy on the visible region"),
        f"DynaTok's accuracy on the visible region is {ratio:.1f}x the input's "
        f"({table.loc['DynaTok', 'Acc: visible']:.4f} vs {table.loc['input of the current frame', 'Acc: visible']:.4f} m)",
    ]
    if nores_key:
        notes += [_wins("DynaTok without residual latents", frames[NORES], pf, HIDDEN,
                        "completeness where hidden here but seen elsewhere"),
                  _wins("DynaTok without residual latents", frames[NORES], "union", HIDDEN,
                        "completeness where hidden here but seen elsewhere"),
                  "DynaTok without residual latents: lower completeness where hidden here but seen elsewhere "
                  "with its window than given only the current frame (it uses the other frames) on {} of {} "
                  "sequences".format(*per_sequence_wins(frames[NORES], frames[NORES + ", given only the current frame"],
                                                        HIDDEN))]
    caption = (f"{SCALE}, {dataset} data, held-out split `{split}`: {len(data)} sequences x {cfg.eval_frames} "
               f"frames, {cfg.eval_points} points per frame, {cfg.sample_method} {cfg.sample_steps} ODE steps; "
               f"metres, lower is better (NC: higher). Runs `{SCALE}_{temporal_key}` and `{SCALE}_{perframe_key}` "
               f"({info_t['train_seconds']:.0f} s of training on {_device(info_t)} and {info_p['train_seconds']:.0f} s on "
               f"{_device(info_p)})" + (f"; `{SCALE}_{nores_key}` ({info_n['train_seconds']:.0f} s on "
                                         f"{_device(info_n)})." if nores_key else "."))
    metrics = {row: {col: float(v) for col, v in vals.items() if v == v} for row, vals in table.iterrows()}
    path = repro.record(metrics, scale=SCALE, seed=SEED, data=f"course {dataset} set, split {split}",
                        notebook="results/dynatok/make_records.py", variant=name, device="cpu",
                        extra={"caption": caption, "row_header": SCALE, "notes": notes},
                        path=RESULTS_DIR / "dynatok" / f"{name}.record.json", start=start)
    print(f"{name}: wrote {path}\n{render(f'dynatok/{name}')}")


if __name__ == "__main__":
    make_main(RESULTS, make)
