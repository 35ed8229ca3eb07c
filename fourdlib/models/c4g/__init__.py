"""C4G (2026): feed-forward 4D reconstruction with a fixed set of query Gaussians per target time.

config.py    C4GConfig, one row per scale (CONFIGS, config_table); `decoder` picks C4G's
             query Gaussians ("queries") or the per-pixel baseline ("pixels")
model.py     the model read top to bottom: clips of RGB-D frames (ClipDataset), normalised
             per-pixel inputs, video encoder, query-Gaussian decoder with time-modulated
             positions (C4G), its cross-attention weights (attention_weights) and feature
             lifting (lift_features), the pixel-aligned baseline (PixelGaussians),
             build_model; predict, render, loss
evaluate.py  novel-view PSNR / SSIM on held-out frames with the temporal gap, beside the
             nearest-input-frame and union-of-input-pixels references and a floor; point
             tracking through the Gaussians and the lifted feature field against GT tracks,
             beside static-reprojection, nearest-colour and zero-motion references
             (tracking_table; the rest: import from fourdlib.models.c4g.evaluate)
infer.py     render a trained run at your times and cameras (render_novel; `fourd infer c4g`)
course.py    the course data set and named runs (course_data, RUNS, course_run, load_or_train), METHOD
"""
from .config import CONFIGS, DECODERS, C4GConfig, config_table
from .course import (COURSE_DATA, DATASETS, METHOD, RUNS, checkpoint_paths, course_data, course_run, load_model,
                     load_or_train, run_spec, save_model)
from .evaluate import tracking_table
from .infer import render_novel
from .model import (C4G, IN_CHANNELS, ClipDataset, Gaussians, PixelGaussians, VideoEncoder, attention_weights,
                    build_model, frame_inputs, lift_features, loss, make_dataset, model_inputs, normalize_times,
                    predict, render, scene_normalization)

__all__ = ["C4G", "C4GConfig", "CONFIGS", "COURSE_DATA", "ClipDataset", "DATASETS", "DECODERS", "Gaussians",
           "IN_CHANNELS", "METHOD", "PixelGaussians", "RUNS", "VideoEncoder", "attention_weights", "build_model",
           "checkpoint_paths", "config_table", "course_data", "course_run", "frame_inputs", "lift_features",
           "load_model", "load_or_train", "loss", "make_dataset", "model_inputs", "normalize_times", "predict",
           "render", "render_novel", "run_spec", "save_model", "scene_normalization", "tracking_table"]
