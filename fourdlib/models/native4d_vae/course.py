"""The course's Native 4D VAE runs: the data the VAE trains on per scale, the named runs (the
native VAE and two of the paper's table-1 ablations), and load-or-train under its name.

    folder = course_data("creatures", "tiny")                   # generated once, then cached
    model, history, info = course_run("creatures_native", "tiny")   # loads, or trains and caches

Data sets (fourdlib.data.synthetic, deterministic for the seed)
---------------------------------------------------------------
    creatures   skinned animals (six body plans, six motions) filmed by one moving RGB-D
                camera, with DeformingThings4D-like splits: train, unseen_motion (seen
                individuals, motions they never perform in train), unseen_individual (held-out
                individuals doing seen motions). The VAE reads each frame's depth video as
                coloured voxels (depth -> mesh -> voxels, model.sequence_item), one grid per
                sequence; evaluation runs on the two held-out splits.
    scenes      MOVi-like scenes (a floor and several static and moving objects, a moving
                camera): the scene-level content of the paper's 4D-Dyn; no course run uses it yet.
COURSE_DATA gives their size per scale. The VAE trains on windows of cfg.train_frames
consecutive frames of a sequence (random starts) and is evaluated on whole sequences, so the
sequences are longer than a window. tiny: 96 sequences of 16 frames at 64 x 64 (about 0.5 s
per sequence to generate and 0.25 s to voxelise at 32^3 on one core); 2000 steps of the tiny
config take about 1.1 s of CPU each on one thread (about 40 min; see CONFIGS). The folders are named
"native4d_<name>_<scale>_seed<seed>" (DynaTok's creatures have other sizes). "full" has no
synthetic set: convert real data (data_scripts/README.md) and pass that folder.

Runs (RUNS; the run of key K at scale X is called "X_K"):
    creatures_native      the Native 4D VAE as the paper builds it (CONFIGS[scale])
    creatures_decoupled   "w/o ST-Attn" (table 1, row 2): the STD/STU blocks mix tokens with a 3D
                          spatial sparse conv then a 1D temporal conv instead of 4D window
                          attention (cfg.block = "conv"); everything else the same
    creatures_no_render   "w/o render loss" (table 1, row 3): the rendering term's weight is 0
    creatures_pointmap    the PointMapVAE baseline (table 1, row 1; model.PointMapVAE): a 3D-conv
                          video VAE on the depth video's pointmaps, latent of the same size
One Method covers all four (the config says which); names, identities, committed runs
(checkpoints/native4d_vae/) and resume are fourdlib.train.runs' generic machinery, and
`fourd train native4d_vae --run creatures_native --scale tiny` trains a run ahead of time.
"""
from __future__ import annotations

from ...train import runs
from .config import CONFIGS, Native4DVAEConfig
from .model import build_model, loss, make_dataset

__all__ = ["COURSE_DATA", "DATASETS", "RUNS", "METHOD", "course_data", "make_dataset", "run_spec", "course_run",
           "load_or_train", "load_model", "save_model", "checkpoint_paths"]

# kind of generator and its options, per course data set
DATASETS = {
    "creatures": ("creatures", {}),
    "scenes": ("scenes", {}),
}
# sequences, frames per sequence, image size and GT surface samples per scale. The VAE reads the
# depth video only (n_surface is kept small: the samples are for 3D views). Frames per sequence
# exceed the config's train_frames, so that training windows start anywhere.
# smoke: seconds (CI; 16 sequences: every creature split). small: one GPU.
COURSE_DATA = {
    "smoke": dict(sequences=16, num_frames=4, image_size=(32, 32), n_surface=64),
    "tiny": dict(sequences=96, num_frames=16, image_size=(64, 64), n_surface=256),
    "small": dict(sequences=1024, num_frames=16, image_size=(128, 128), n_surface=1024),
}


def course_data(name: str, scale: str, *, seed: int = 0, root=None, progress: bool = True):
    """The folder of course data set `name` (see DATASETS) at `scale`, generated on first use.

    root: where data sets live (default cache_dir() / "data"). Returns the folder.
    """
    return runs.course_dataset(f"native4d_{name}_{scale}_seed{seed}", DATASETS, COURSE_DATA, name, scale,
                               seed=seed, root=root, progress=progress,
                               convert_hint="for 'full', convert real RGB-D data (data_scripts/README.md) "
                                            "and pass that folder instead")


# The course's named runs: which data, steps per scale (default: the config's) and what differs
# from CONFIGS[scale].
RUNS = {
    "creatures_native": dict(dataset="creatures", steps={}, overrides={}),
    "creatures_decoupled": dict(dataset="creatures", steps={}, overrides={"block": "conv"}),
    "creatures_no_render": dict(dataset="creatures", steps={}, overrides={"w_render": 0.0}),
    "creatures_pointmap": dict(dataset="creatures", steps={}, overrides={"representation": "pointmap"}),
}


def run_spec(key: str, scale: str):
    """(config, data set name, steps, run name) of the course run `key` at `scale`."""
    return runs.named_run_spec(RUNS, CONFIGS, key, scale)


def course_run(key: str, scale: str, *, seed: int = 0, device: str = "auto", progress: bool = True, **kwargs):
    """Load (or train) the course run `key` (see RUNS) at `scale` on its course data set:
    returns load_or_train's (model, history, info). kwargs go to load_or_train."""
    return runs.course_run(METHOD, key, scale, seed=seed, device=device, progress=progress, **kwargs)


# model_cls is build_model: cfg.representation picks the class (Native4DVAE or the PointMapVAE
# baseline), cfg.block the token mixing, cfg.w_render the loss, so one method covers every run
# and a checkpoint of any is rebuilt from its stored config.
METHOD = runs.Method(name="native4d_vae", config_cls=Native4DVAEConfig, model_cls=build_model, loss=loss,
                     make_dataset=make_dataset, configs=CONFIGS, course_data=course_data, run_spec=run_spec)


def load_or_train(cfg: Native4DVAEConfig, folder, name: str, **kwargs):
    """fourdlib.train.runs.load_or_train for the Native 4D VAE (same arguments after the method)."""
    return runs.load_or_train(METHOD, cfg, folder, name, **kwargs)


def load_model(path, config: Native4DVAEConfig | None = None, map_location="cpu"):
    """A Native4DVAE (or PointMapVAE) rebuilt from a checkpoint's stored config, weights loaded, in eval mode."""
    return runs.load_model(path, METHOD, config, map_location)


def save_model(path, model, optimizer=None, *, step: int = 0, **fields):
    """Save a Native4DVAE with its config (fourdlib.train.runs.save_model)."""
    return runs.save_model(path, model, METHOD, optimizer, step=step, **fields)


def checkpoint_paths(name: str):
    """Where the Native 4D VAE run `name` may be: committed (checkpoints/native4d_vae/), then the cache."""
    return runs.checkpoint_paths(METHOD, name)
