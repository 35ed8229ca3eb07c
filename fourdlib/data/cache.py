"""Where generated data and trained runs are kept, and the course's synthetic data sets.

`cache_dir()` is $FOURD_CACHE, else ~/.cache/fourdlib. `synthetic_dataset` generates a named
data set once (fourdlib.data.synthetic is deterministic for a seed) and reuses it while its
generator parameters are unchanged, so every notebook and method asks for data by name and
scale instead of by path.
"""
from __future__ import annotations

from pathlib import Path

from ..io import cache_dir
from .dataset import read_manifest
from .synthetic import generate_dataset

__all__ = ["cache_dir", "synthetic_dataset"]


def synthetic_dataset(name: str, kind: str, *, sequences: int, num_frames: int, image_size=None,
                      n_surface=None, maker_options: dict | None = None, seed: int = 0, root=None,
                      progress: bool = True, workers: int | None = None) -> Path:
    """The folder `root/name` (default cache_dir()/data/name) holding a generated data set of
    `kind` ("primitives", "creatures", "scenes", ...), generated on first use and again
    whenever the requested generator parameters differ from the ones it was made with."""
    folder = Path(root or cache_dir() / "data") / name
    options = dict(maker_options or {})
    want = {"kind": kind, "num_sequences": sequences, "num_frames": num_frames, "maker_options": options,
            "n_surface": n_surface, "image_size": list(image_size) if image_size else None}
    exists = (folder / "manifest.json").exists()
    if exists:   # cached: reuse it unless the request has changed since
        info = read_manifest(folder).get("info", {})
        if {k: info.get(k) for k in want} == want:
            return folder
        if progress:
            print(f"{folder} was generated with other parameters; generating it again")
    # overwrite replaces only the files the earlier generation recorded in its manifest
    generate_dataset(folder, kind, sequences, num_frames=num_frames, seed=seed, image_size=image_size,
                     n_surface=n_surface, progress=progress, maker_options=options, overwrite=exists,
                     workers=workers)
    return folder
