"""The course's COM4D runs: the compositional data per scale, the named runs, and
load-or-train under COM4D's name.

    folder = course_data("compositional", "tiny")            # generated once, then cached
    model, history, info = course_run("compositional", "tiny")  # loads, or trains and caches

Data set (fourdlib.data.synthetic.compositional, deterministic for the seed)
---------------------------------------------------------------------------
    compositional   "static" furniture layouts (3-6 pieces on a floor, a moving camera) and
                    "dynamic" single creatures in motion: split "train" / "test"; "mixed"
                    layouts with 1-2 moving creatures among the furniture: split "eval_mixed",
                    never trained on (the object and motion combinations of a mixed scene
                    were never seen together). The floor is background and not generated.
COURSE_DATA gives its size per scale; the images are the config row's image_size. Frames per
sequence exceed the window (train_frames) so that evaluation exercises the sliding window.
"full" has no synthetic set (3D-FRONT and DeformingThings4D cannot be downloaded here).

Runs (RUNS): "compositional" is COM4D; "no_motion_embed" and "no_forcing" are the paper's
ablation rows (without static/dynamic embeddings, without diffusion-forcing fine-tuning).
`fourd train com4d --run compositional --scale tiny` trains one ahead of time.
"""
from __future__ import annotations

from ...train import runs
from .config import CONFIGS, COM4DConfig
from .data import CompositionalDataset
from .model import COM4D, loss

__all__ = ["COURSE_DATA", "DATASETS", "RUNS", "METHOD", "course_data", "make_dataset", "run_spec", "course_run",
           "load_or_train", "load_model", "save_model", "checkpoint_paths"]

DATASETS = {
    "compositional": ("compositional", {}),
}
# sequences (20 % mixed, the rest half static / half dynamic; 20 % of all indices held out as
# "test"), frames, image size (the config row's) and GT surface samples per sequence.
# smoke: seconds. tiny: a run of 3600 steps trained in about 32 minutes on one CPU thread.
COURSE_DATA = {
    "smoke": dict(sequences=12, num_frames=6, image_size=(CONFIGS["smoke"].image_size,) * 2, n_surface=1024),
    "tiny": dict(sequences=120, num_frames=16, image_size=(CONFIGS["tiny"].image_size,) * 2, n_surface=4096),
    "small": dict(sequences=1200, num_frames=24, image_size=(CONFIGS["small"].image_size,) * 2, n_surface=8192),
}


def course_data(name: str, scale: str, *, seed: int = 0, root=None, progress: bool = True):
    """The folder of course data set `name` (see DATASETS) at `scale`, generated on first use."""
    return runs.course_dataset(f"com4d_{name}_{scale}_seed{seed}", DATASETS, COURSE_DATA, name, scale, seed=seed,
                               root=root, progress=progress,
                               convert_hint="3D-FRONT and DeformingThings4D have no converter here yet")


def make_dataset(cfg: COM4DConfig, folder, split: str | None = "train", train: bool = True, **options):
    """The CompositionalDataset of a split (static/dynamic pairs; see data.py). `train` is
    accepted for fourdlib.train.runs; evaluation reads sequences through evaluate.py."""
    if options:
        raise ValueError(f"COM4D's dataset takes no options, got {sorted(options)}")
    return CompositionalDataset(folder, cfg, split=split or "train")


# The course's named runs: data, steps per scale (default: the config's), config changes.
RUNS = {
    "compositional": dict(dataset="compositional", steps={}, overrides={}),
    "no_motion_embed": dict(dataset="compositional", steps={}, overrides={"motion_embed": False}),
    "no_forcing": dict(dataset="compositional", steps={}, overrides={"diffusion_forcing": False}),
}


def run_spec(key: str, scale: str):
    """(config, data set name, steps, run name) of the course run `key` at `scale`."""
    return runs.named_run_spec(RUNS, CONFIGS, key, scale)


def course_run(key: str, scale: str, *, seed: int = 0, device: str = "auto", progress: bool = True, **kwargs):
    """Load (or train) the course run `key` (see RUNS) at `scale`: load_or_train's (model, history, info)."""
    return runs.course_run(METHOD, key, scale, seed=seed, device=device, progress=progress, **kwargs)


METHOD = runs.Method(name="com4d", config_cls=COM4DConfig, model_cls=COM4D, loss=loss, make_dataset=make_dataset,
                     configs=CONFIGS, course_data=course_data,
                     inference_fields=("sample_steps", "sample_method", "eval_resolution"), run_spec=run_spec)


def load_or_train(cfg: COM4DConfig, folder, name: str, **kwargs):
    """fourdlib.train.runs.load_or_train for COM4D (same arguments after the method)."""
    return runs.load_or_train(METHOD, cfg, folder, name, **kwargs)


def load_model(path, config: COM4DConfig | None = None, map_location="cpu") -> COM4D:
    """A COM4D rebuilt from a checkpoint's stored config, weights loaded, in eval mode."""
    return runs.load_model(path, METHOD, config, map_location)


def save_model(path, model: COM4D, optimizer=None, *, step: int = 0, **fields):
    """Save a COM4D with its config (fourdlib.train.runs.save_model)."""
    return runs.save_model(path, model, METHOD, optimizer, step=step, **fields)


def checkpoint_paths(name: str):
    """Where the COM4D run `name` may be: committed (checkpoints/com4d/), then the cache."""
    return runs.checkpoint_paths(METHOD, name)
