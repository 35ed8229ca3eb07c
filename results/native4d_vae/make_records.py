"""Regenerate the committed Native 4D VAE results that the README quotes
(results/native4d_vae/*.record.json).

    .venv/bin/python results/native4d_vae/make_records.py                  # all of them
    .venv/bin/python results/native4d_vae/make_records.py unseen_motion    # one
    .venv/bin/fourd results --update README.md                             # then refresh the README's tables

Each result autoencodes every sequence of one held-out split of the course `creatures` set with
the committed tiny runs (checkpoints/native4d_vae/, via course_run: the same runs the notebooks
load) and records fourdlib.models.native4d_vae.evaluate's comparison table: the runs, then the
trivial codec at the latent's size and the voxelisation floor, plus per-sequence win counts.
Nothing here is tuned on these sequences (threshold 0.5 and the pruning cut are the config's).
"""
from __future__ import annotations

import time

from fourdlib import repro
from fourdlib.models.native4d_vae import course_data, course_run, make_dataset
from fourdlib.models.native4d_vae.evaluate import comparison_table, evaluate
from fourdlib.repro.frames import per_sequence_wins
from fourdlib.repro.results import RESULTS_DIR, make_main, render

SCALE, SEED = "tiny", 0
NATIVE = "Native 4D VAE (ST window attention)"
MODELS = {NATIVE: "creatures_native",
          "w/o ST-Attn (decoupled 3D + 1D sparse conv)": "creatures_decoupled",
          "w/o render loss": "creatures_no_render",
          "PointMapVAE (3D-conv video VAE on pointmaps)": "creatures_pointmap"}
RESULTS = {"tiny_unseen_motion": "unseen_motion", "tiny_unseen_individual": "unseen_individual"}


def make(name: str):
    split = RESULTS[name]
    start = time.time()
    runs = {label: course_run(key, SCALE, seed=SEED) for label, key in MODELS.items()}
    cfg = runs[NATIVE][0].cfg
    data = make_dataset(cfg, course_data("creatures", SCALE, seed=SEED), split, train=False)
    frames = {label: evaluate(model, data) for label, (model, _, _) in runs.items()}
    table = comparison_table(frames)
    metrics = {row: {col: float(v) for col, v in vals.items() if v == v} for row, vals in table.iterrows()}
    ours = frames[NATIVE]
    notes = []
    for col, what, hib in (("cd_l1", "CD-L1", False), ("precision@0.001", "Pre@0.001", True),
                           ("recall@0.005", "Recall@0.005", True), ("recall@0.001", "Recall@0.001", True),
                           ("iou", "IoU", True), ("psnr", "novel-view PSNR", True)):
        for other, b in (("the trivial codec", "codec"), *((k, v) for k, v in frames.items() if k != NATIVE)):
            won, n = per_sequence_wins(ours, b, col, higher_is_better=hib)
            notes.append(f"{NATIVE}: {'higher' if hib else 'lower'} {what} than {other} on {won} of {n} sequences")
    caption = (f"{SCALE}, course creatures set, held-out split `{split}`: {len(data)} sequences of "
               f"{int(data[0]['num_frames'][0])} frames voxelised at {cfg.resolution}^3 (one grid per sequence), "
               f"autoencoded in windows of {cfg.train_frames} frames as trained (latent {cfg.latent_resolution}^3 x "
               f"{cfg.latent_channels} per group of lambda = {cfg.temporal_ratio} frames; the PointMapVAE's latent the same "
               f"number of values: its decoded points voxelised on the same grid). Precision / recall at the paper's thresholds scaled to our voxel (5.12 / 1.024 / "
               f"0.512 voxels; higher is better), CD-L1 in voxels (lower is better), IoU with the GT voxels, PSNR "
               f"(dB) of a render from a view orbited 90 degrees from the frame's camera; voxels per frame "
               f"(GT: the floor's). Runs " + ", ".join(
                   f"`{SCALE}_{key}` ({runs[label][2]['train_seconds'] or 0:.0f} s of training)"
                   for label, key in MODELS.items()) + ".")
    path = repro.record(metrics, scale=SCALE, seed=SEED, data=f"course creatures set, split {split}",
                        notebook="results/native4d_vae/make_records.py", variant=name, device="cpu",
                        extra={"caption": caption, "row_header": SCALE, "notes": notes},
                        path=RESULTS_DIR / "native4d_vae" / f"{name}.record.json", start=start)
    print(f"{name}: wrote {path}\n{render(f'native4d_vae/{name}')}")


if __name__ == "__main__":
    make_main(RESULTS, make)
