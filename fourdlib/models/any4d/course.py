"""The course's Any4D runs: the data Any4D trains on per scale, the named runs (the paper's
ablations as config variants), and load-or-train under Any4D's name.

    folder = course_data("scenes", "tiny")                          # generated once, then cached
    model, history, info = course_run("scenes_allocentric", "tiny")   # loads, or trains and caches

Data set (fourdlib.data.synthetic, deterministic for the seed)
--------------------------------------------------------------
    scenes   MOVi-like scenes: a floor and 3-6 RIGID objects, some static, some sliding or
             tossed, filmed by one camera moving on half a circle: RGB-D, poses, instance
             masks, object poses. creature_prob = 0, because ViewDataset computes dense
             allocentric flow from the objects' rigid poses (exact for rigid objects only,
             checked against the generator's mesh flow on load), like Kubric MOVi.
COURSE_DATA gives its size per scale; the image size is the config row's. smoke: seconds
(5 sequences -> 4 train, 1 test). tiny: 128 sequences of 12 frames at 64 x 64. The folders
are named "any4d_<name>_<scale>_seed<seed>" (other methods ask for other sizes of the same
generator). "full" has no synthetic set: convert Kubric MOVi and pass that folder.

Runs (RUNS): "scenes_allocentric" is Any4D (allocentric flow, every input with the paper's
modality dropout); the motion-representation variants (Table 5) "scenes_egocentric" and
"scenes_points"; the modality variants (Table 4) trained on one input set each,
"scenes_images", "scenes_geometry", "scenes_doppler" (the dropout-trained
"scenes_allocentric" can also be evaluated with any subset: evaluate(..., keep=...));
"scenes_2views", trained on 2 views (Fig. S1). Names, identities, resume and committed runs
(checkpoints/any4d/) are fourdlib.train.runs' machinery.
"""
from __future__ import annotations

from ...train import runs
from .config import CONFIGS, Any4DConfig
from .model import Any4D, loss, make_dataset

__all__ = ["COURSE_DATA", "DATASETS", "RUNS", "METHOD", "course_data", "make_dataset", "run_spec", "course_run",
           "load_or_train", "load_model", "save_model", "checkpoint_paths"]

# kind of generator and its options, per course data set
DATASETS = {
    "scenes": ("scenes", {"creature_prob": 0.0}),
}
# sequences, frames per sequence, image size (the config row's) and GT surface samples (unused
# by Any4D, kept small: they cost generation time)
COURSE_DATA = {
    "smoke": dict(sequences=5, num_frames=6, image_size=(CONFIGS["smoke"].image_size,) * 2, n_surface=256),
    "tiny": dict(sequences=128, num_frames=12, image_size=(CONFIGS["tiny"].image_size,) * 2, n_surface=256),
    "small": dict(sequences=1024, num_frames=24, image_size=(CONFIGS["small"].image_size,) * 2, n_surface=1024),
}


def course_data(name: str, scale: str, *, seed: int = 0, root=None, progress: bool = True):
    """The folder of course data set `name` (see DATASETS) at `scale`, generated on first use."""
    return runs.course_dataset(f"any4d_{name}_{scale}_seed{seed}", DATASETS, COURSE_DATA, name, scale, seed=seed,
                               root=root, progress=progress,
                               convert_hint="for 'full', convert Kubric MOVi (data_scripts/README.md) "
                                            "and pass that folder instead")


# The course's named runs: data, steps per scale (default: the config's) and what differs from
# CONFIGS[scale]. The run of key K at scale X is called "X_K".
RUNS = {
    "scenes_allocentric": dict(dataset="scenes", steps={}, overrides={}),
    "scenes_egocentric": dict(dataset="scenes", steps={}, overrides={"motion": "egocentric"}),
    "scenes_points": dict(dataset="scenes", steps={}, overrides={"motion": "points"}),
    "scenes_images": dict(dataset="scenes", steps={}, overrides={"modalities": "images"}),
    "scenes_geometry": dict(dataset="scenes", steps={}, overrides={"modalities": "geometry"}),
    "scenes_doppler": dict(dataset="scenes", steps={}, overrides={"modalities": "doppler"}),
    "scenes_2views": dict(dataset="scenes", steps={}, overrides={"views": 2}),
}


def run_spec(key: str, scale: str):
    """(config, data set name, steps, run name) of the course run `key` at `scale`."""
    return runs.named_run_spec(RUNS, CONFIGS, key, scale)


def course_run(key: str, scale: str, *, seed: int = 0, device: str = "auto", progress: bool = True, **kwargs):
    """Load (or train) the course run `key` (see RUNS) at `scale` on its course data set:
    returns load_or_train's (model, history, info). kwargs go to load_or_train."""
    return runs.course_run(METHOD, key, scale, seed=seed, device=device, progress=progress, **kwargs)


METHOD = runs.Method(name="any4d", config_cls=Any4DConfig, model_cls=Any4D, loss=loss, make_dataset=make_dataset,
                     configs=CONFIGS, course_data=course_data, run_spec=run_spec)


def load_or_train(cfg: Any4DConfig, folder, name: str, **kwargs):
    """fourdlib.train.runs.load_or_train for Any4D (same arguments after the method)."""
    return runs.load_or_train(METHOD, cfg, folder, name, **kwargs)


def load_model(path, config: Any4DConfig | None = None, map_location="cpu"):
    """An Any4D rebuilt from a checkpoint's stored config, weights loaded, in eval mode."""
    return runs.load_model(path, METHOD, config, map_location)


def save_model(path, model, optimizer=None, *, step: int = 0, **fields):
    """Save an Any4D with its config (fourdlib.train.runs.save_model)."""
    return runs.save_model(path, model, METHOD, optimizer, step=step, **fields)


def checkpoint_paths(name: str):
    """Where the Any4D run `name` may be: committed (checkpoints/any4d/), then the cache."""
    return runs.checkpoint_paths(METHOD, name)
