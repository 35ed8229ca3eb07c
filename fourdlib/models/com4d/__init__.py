"""COM4D (CVPR 2026): compositional 4D scenes from a monocular video, learnt from static
multi-object scenes and single-object animations only (attention parsing, attention mixing).

config.py    COM4DConfig, one row per scale (CONFIGS, config_table)
data.py      compositional sequences -> per-object surfaces, solid occupancy, masks, images in
             one normalised scene frame; CompositionalDataset (static / dynamic training pairs)
model.py     the model read top to bottom: shape VAE with vecset latents and an occupancy
             decoder, conditioning encoder, the DiT whose even blocks are spatial and odd
             blocks temporal; loss (VAE, attention parsing, diffusion forcing); attention-mixing
             sampler with a history-guided sliding window; occupancy -> points / mesh
evaluate.py  CD (COM4D's convention), F-score@0.1, IoU, inter-object penetration IoU; mixing
             against stitched per-object generation and a frame-by-frame static run; the VAE's
             reconstruction of the GT as floor
infer.py     a trained model on your own frames + instance masks (generate; `fourd infer com4d`)
course.py    the course's data set and named runs (course_data, RUNS, course_run, load_or_train), METHOD
"""
from .config import CONFIGS, COM4DConfig, config_table
from .course import (COURSE_DATA, DATASETS, METHOD, RUNS, checkpoint_paths, course_data, course_run, load_model,
                     load_or_train, make_dataset, run_spec, save_model)
from .data import CompositionalDataset, prepare_sequence, scene_inputs
from .infer import generate
from .model import COM4D, decode_occupancy, loss, occupancy_to_mesh, occupancy_to_points, sample_latents

__all__ = ["CONFIGS", "COM4D", "COM4DConfig", "COURSE_DATA", "CompositionalDataset", "DATASETS", "METHOD", "RUNS",
           "checkpoint_paths", "config_table", "course_data", "course_run", "decode_occupancy", "generate", "load_model",
           "load_or_train", "loss", "make_dataset", "occupancy_to_mesh", "occupancy_to_points", "prepare_sequence",
           "run_spec", "sample_latents", "save_model", "scene_inputs"]
