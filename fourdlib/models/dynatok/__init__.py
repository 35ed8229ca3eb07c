"""DynaTok (ICML 2026): 4D reconstruction from partial point clouds with latent tokens.

config.py    DynaTokConfig, one row per scale (CONFIGS, config_table)
model.py     the model read top to bottom: tokenizer, spatio-temporal transformer, residual
             latents Z_s = G + H_s, flow-matching decoder; loss, decode, reconstruct
evaluate.py  Acc / Comp / NC per frame, completeness by visibility region, context ablation,
             input and union references (import from fourdlib.models.dynatok.evaluate)
infer.py     completion of your own frames (complete_sequence; `fourd infer dynatok`)
course.py    the notebooks' data sets and named runs (course_data, RUNS, course_run, load_or_train), METHOD
"""
from .config import CONFIGS, DynaTokConfig, config_table
from .course import (COURSE_DATA, DATASETS, METHOD, MOVING_RECIPE, RUNS, checkpoint_paths, course_data, course_run, load_model,
                     load_or_train, make_dataset, run_spec, save_model)
from .infer import complete_sequence, read_frames, write_completion
from .model import DynaTok, decode, loss, normalize_batch, reconstruct

__all__ = ["CONFIGS", "COURSE_DATA", "DATASETS", "DynaTok", "DynaTokConfig", "METHOD", "MOVING_RECIPE", "RUNS", "checkpoint_paths",
           "complete_sequence", "config_table", "course_data", "course_run", "decode", "run_spec", "load_model", "load_or_train",
           "loss", "make_dataset", "normalize_batch", "read_frames", "reconstruct", "save_model",
           "write_completion"]
