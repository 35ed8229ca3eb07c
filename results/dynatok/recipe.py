"""Which training settings close DynaTok's accuracy gap on moving creatures (issue 9's recipe table).

    .venv/bin/python results/dynatok/recipe.py train base random_windows   # train + evaluate some variants
    .venv/bin/python results/dynatok/recipe.py record                      # gather them into the record

Every variant is the tiny config with ONE setting changed, trained for the same short budget
(STEPS) on the creatures `train` split with the same seed, and scored on a **validation** set:
the unseen-motion split of the creatures generated with another seed (`course_data("creatures",
"tiny", seed=1)`), never the held-out sequences the README's records use. Each temporal variant is
also scored given only the current frame (`context="current"`): the `copies` variant saw windows
of one repeated frame in training, so its drop there is information lost, not distribution shift.
The per-frame model given copies is normalised from the copies it is fed (`norm="fed"`), the
shift that copies alone cause.

Short runs rank settings by how fast they learn, which is what an hour of CPU buys; a setting
that helps only late in training would not show here. Training two variants side by side: give
each process one thread (OMP_NUM_THREADS=1), or both run many times slower.
"""
from __future__ import annotations

import dataclasses
import sys
import time

import pandas as pd

from fourdlib import repro
from fourdlib.io import cache_dir
from fourdlib.models.dynatok import CONFIGS, course_data, load_or_train, make_dataset
from fourdlib.models.dynatok.evaluate import comparison_table, evaluate
from fourdlib.repro.results import RESULTS_DIR, render

SCALE, SEED, STEPS, VALIDATION_SEQUENCES = "tiny", 0, 300, 4
HIDDEN = "Comp: hidden here, seen elsewhere"
# variant -> (what changes from CONFIGS["tiny"], one line saying what it tests)
VARIANTS = {
    "base": ({}, "the tiny config (consecutive windows, uniform t, one t per frame, 512 targets, lr 1e-3)"),
    "random_windows": ({"train_windows": "random"}, "S frames drawn at random from the sequence (the paper's)"),
    "norm_all": ({"norm_frame": "all"}, "centre / scale from every frame's input, not frame 1's"),
    "norm_each": ({"norm_frame": "each"}, "every frame centred on its own input, one scale per sequence"),
    "norm_each_perframe": ({"norm_frame": "each", "temporal": False}, "the per-frame ablation, frames centred alike"),
    "random_each": ({"train_windows": "random", "norm_frame": "each"}, "random windows and per-frame centres together"),
    "random_each_no_residual": ({"train_windows": "random", "norm_frame": "each", "residual": False},
                                "random_each without the residual design (Z_s from frame s's tokens, no shared G)"),
    "random_each_t_per_point": ({"train_windows": "random", "norm_frame": "each", "time_per": "point"},
                                "random_each with one t per target point"),
    "logit_normal": ({"time_dist": "logit_normal"}, "training t ~ logit-normal (more weight mid-path)"),
    "t_per_point": ({"time_per": "point"}, "one t per target point instead of per frame"),
    "targets_1024": ({"train_points": 1024}, "1024 flow-matching target points per frame (512)"),
    "copies": ({"train_copies": 0.25}, "a quarter of the windows are copies of one frame"),
    "perframe": ({"temporal": False}, "the per-frame ablation at the same budget"),
}


def _evals_path(variant):
    return cache_dir() / "recipe" / f"{SCALE}_{variant}_{STEPS}steps.pkl"


def train_and_score(variant: str):
    overrides, _ = VARIANTS[variant]
    cfg = dataclasses.replace(CONFIGS[SCALE], **overrides)
    model, history, info = load_or_train(cfg, course_data("creatures", SCALE, seed=SEED),
                                         f"{SCALE}_recipe_{variant}", steps=STEPS, seed=SEED, device="cpu")
    valid = make_dataset(cfg, course_data("creatures", SCALE, seed=1), "unseen_motion", train=False)
    kw = dict(max_sequences=VALIDATION_SEQUENCES, seed=SEED)
    frames = {"all": evaluate(model, valid, **kw),
              "current": evaluate(model, valid, context="current", norm="window" if cfg.temporal else "fed", **kw)}
    path = _evals_path(variant)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.to_pickle({"frames": frames, "train_seconds": info["train_seconds"],
                  "last_loss": float(history["loss"].tail(50).mean())}, path)
    print(f"{variant}: trained {info['train_seconds']:.0f} s, wrote {path}")


def record():
    start = time.time()
    done = {v: pd.read_pickle(_evals_path(v)) for v in VARIANTS if _evals_path(v).exists()}
    if not done:
        raise SystemExit("no variant evaluated yet: run `recipe.py train VARIANT ...` first")
    table = comparison_table({v: d["frames"]["all"] for v, d in done.items()})
    given_one = comparison_table({v: d["frames"]["current"] for v, d in done.items()}, references=False)
    table.insert(2, "Comp hidden, current frame only", given_one[HIDDEN].reindex(table.index))
    table["train s"] = pd.Series({v: d["train_seconds"] for v, d in done.items()})
    table["loss (last 50 steps)"] = pd.Series({v: d["last_loss"] for v, d in done.items()})
    metrics = {row: {col: float(x) for col, x in vals.items() if x == x} for row, vals in table.iterrows()}
    notes = [f"{v}: {VARIANTS[v][1]}" for v in done] + [
        "train s: wall seconds on the shared 2-core machine (two or more jobs side by side), not a speed "
        "measurement; benchmarks/bench_dynatok.py --compile measures steps per second",
        "the per-frame rows given 'copies' are normalised from the copies (the shift copies alone cause)"]
    caption = (f"{SCALE}, creatures: every variant trained {STEPS} steps (seed {SEED}) on the train split and "
               f"scored on the validation set (creatures generated with seed 1, unseen-motion split, first "
               f"{VALIDATION_SEQUENCES} sequences); metres, lower is better (NC: higher). 'current frame only': "
               "the model given copies of the frame it completes.")
    path = repro.record(metrics, scale=SCALE, seed=SEED, data="course creatures set seed 1, split unseen_motion",
                        notebook="results/dynatok/recipe.py", variant="tiny_recipe", device="cpu",
                        extra={"caption": caption, "row_header": "variant", "notes": notes},
                        path=RESULTS_DIR / "dynatok" / "tiny_recipe.record.json", start=start)
    print(f"wrote {path}\n{render('dynatok/tiny_recipe')}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["train"] and sys.argv[2:]:
        unknown = set(sys.argv[2:]) - set(VARIANTS)
        if unknown:
            raise SystemExit(f"unknown variants {sorted(unknown)}; choose from {list(VARIANTS)}")
        for v in sys.argv[2:]:
            train_and_score(v)
    elif sys.argv[1:] == ["record"]:
        record()
    else:
        raise SystemExit(__doc__)
