"""fourdlib.models: one readable file per method.

dynatok.py        DynaTok: per-frame tokens, spatio-temporal transformer, residual latents
                  Z_s = G + H_s, flow-matching decoder (config table CONFIGS, loss, decode,
                  reconstruct, save_model / load_model)
dynatok_infer.py  DynaTok on your own frames: complete_sequence (also `fourd complete`)
dynatok_eval.py   DynaTok evaluation: Acc / Comp / NC per frame, completeness split by
                  visibility region, the context ablation, input and union references
"""
from .dynatok import (CONFIGS, DynaTok, DynaTokConfig, config_table, decode, load_model, loss, make_dataset,
                      normalize_batch, reconstruct, save_model)
from .dynatok_eval import evaluate, summarize
from .dynatok_infer import complete_sequence, read_frames, write_completion

__all__ = ["CONFIGS", "DynaTok", "DynaTokConfig", "complete_sequence", "config_table", "decode", "evaluate", "load_model",
           "loss", "make_dataset", "normalize_batch", "read_frames", "reconstruct", "save_model",
           "summarize", "write_completion"]
