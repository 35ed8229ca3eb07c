"""C4G (2026): feed-forward 4D reconstruction with a fixed set of query Gaussians per target time.

config.py    C4GConfig, one row per scale (CONFIGS, config_table)
model.py     the model read top to bottom: clips of RGB-D frames (ClipDataset), normalised
             per-pixel inputs, video encoder, query-Gaussian decoder with time-modulated
             positions (C4G), the pixel-aligned baseline (PixelGaussians); predict, render, loss

Not yet here: evaluate.py, infer.py, course.py (so C4G is not in fourdlib.models.METHODS,
whose entries need course.py's METHOD).
"""
from .config import CONFIGS, C4GConfig, config_table
from .model import (C4G, IN_CHANNELS, ClipDataset, Gaussians, PixelGaussians, VideoEncoder, frame_inputs, loss,
                    make_dataset, model_inputs, normalize_times, predict, render, scene_normalization)

__all__ = ["C4G", "C4GConfig", "CONFIGS", "ClipDataset", "Gaussians", "IN_CHANNELS", "PixelGaussians", "VideoEncoder",
           "config_table", "frame_inputs", "loss", "make_dataset", "model_inputs", "normalize_times", "predict",
           "render", "scene_normalization"]
