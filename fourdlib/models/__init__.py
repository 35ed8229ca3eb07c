"""fourdlib.models: one package per method, the same file names in each.

    <method>/config.py    the config dataclass, one row per scale (CONFIGS)
    <method>/model.py     the model read top to bottom, its loss and sampler
    <method>/evaluate.py  the paper's evaluation protocol
    <method>/infer.py     the method on your own data (`fourd infer <method>`)
    <method>/course.py    the notebooks' data sets and named runs; METHOD (for fourdlib.train.runs)

METHODS names every method's package; `get_method(name)` imports it and returns its
METHOD, `load_model(path)` rebuilds whichever method a checkpoint holds. Packages are
imported on demand so that `fourd --help` does not pay for torch.
"""
from __future__ import annotations

import importlib

__all__ = ["METHODS", "get_method", "load_model"]

METHODS = {
    "dynatok": "fourdlib.models.dynatok",
    "c4g": "fourdlib.models.c4g",
    "native4d_vae": "fourdlib.models.native4d_vae",
    "com4d": "fourdlib.models.com4d",
    "any4d": "fourdlib.models.any4d",
}


def get_method(name: str):
    """The fourdlib.train.runs.Method of method `name` (a key of METHODS)."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose from {sorted(METHODS)}")
    return importlib.import_module(METHODS[name]).METHOD


def load_model(path, map_location="cpu"):
    """Whichever method's model a checkpoint written by fourdlib.train.runs.save_model holds."""
    runs = importlib.import_module("fourdlib.train.runs")
    checkpoint = importlib.import_module("fourdlib.train.checkpoint")
    state = checkpoint.load_checkpoint(path, map_location=map_location)
    stored = state.get("model_config")
    name = stored.get("name") if isinstance(stored, dict) else None
    if name not in METHODS:
        raise checkpoint.CheckpointError(f"checkpoint at {path} names method {name!r}, which fourdlib does not "
                                         f"have (methods: {sorted(METHODS)})")
    return runs.load_model(path, get_method(name), state=state)
