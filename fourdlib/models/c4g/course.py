"""The course's C4G runs: the data C4G trains on per scale, the named runs (C4G's query
Gaussians and the per-pixel baseline on the same encoder), and load-or-train under C4G's name.

    folder = course_data("scenes", "tiny")                     # generated once, then cached
    model, history, info = course_run("scenes_queries", "tiny")   # loads, or trains and caches

Data set (fourdlib.data.synthetic, deterministic for the seed)
--------------------------------------------------------------
    scenes   MOVi-like scenes: a floor and 3-6 objects, some static, some moving (sliding,
             tossed, walking creatures), filmed by one camera moving on half a circle, RGB-D
             with known cameras: what C4G's encoder reads (model.ClipDataset). Objects are
             twice the generator's default size on a 2 m floor (DATASETS), so that they cover
             pixels at the course's 64 x 64.
COURSE_DATA gives its size per scale. The frames are square at the config's image_size (the
model itself runs at any size divisible by the patch; the course trains at the row's), and
hold num_frames > clip_frames frames, so training clips start anywhere in a sequence. tiny:
128 sequences of 16 frames at 64 x 64 (about 0.5 s and 2.5 MB per sequence on one core);
training time is the config's (CONFIGS["tiny"]: 2000 steps, sized to fit in about an hour on
2 CPU cores), not the data's. The folders are named "c4g_<name>_<scale>_seed<seed>", apart
from DynaTok's "scenes_<scale>_seed<seed>": the two methods want other sizes of the same
generator, and one folder asked for with two sizes would be generated again at every switch.
"full" has no synthetic set: convert Kubric MOVi (data_scripts/README.md) and pass that folder.

Runs (RUNS): "scenes_queries" is C4G, "scenes_pixels" the pixel-aligned baseline it replaces
(cfg.decoder = "pixels": same encoder, config and data; only the decoder differs). Names,
identities, committed runs (checkpoints/c4g/) and resume are fourdlib.train.runs' generic
machinery; `fourd train c4g --run scenes_queries --scale tiny` trains a run ahead of time.
"""
from __future__ import annotations


from ...train import runs
from .config import CONFIGS, C4GConfig
from .model import build_model, loss, make_dataset

__all__ = ["COURSE_DATA", "DATASETS", "RUNS", "METHOD", "course_data", "make_dataset", "run_spec", "course_run",
           "load_or_train", "load_model", "save_model", "checkpoint_paths"]

# kind of generator and its options, per course data set
# scenes: objects twice the generator's default size on a 2 m floor (about 12 % of the pixels
# instead of 2 %): at 64 x 64 the default objects are 2-8 pixels wide and neither C4G nor the
# per-pixel baseline rendered them at tiny, even when overfitting one scene (README, C4G section)
DATASETS = {
    "scenes": ("scenes", {"object_scale": 2.0, "floor_size": 2.0}),
}
# sequences, frames per sequence and GT surface samples per scale; the image size is the config
# row's (so data and model cannot disagree). C4G reads no surface samples: n_surface is kept
# small because generating them costs time, and they are there only for 3D views.
# smoke: seconds (CI; 5 sequences -> 4 train, 1 test). small: one GPU.
COURSE_DATA = {
    "smoke": dict(sequences=5, num_frames=6, image_size=(CONFIGS["smoke"].image_size,) * 2, n_surface=256),
    "tiny": dict(sequences=128, num_frames=16, image_size=(CONFIGS["tiny"].image_size,) * 2, n_surface=1024),
    "small": dict(sequences=1024, num_frames=32, image_size=(CONFIGS["small"].image_size,) * 2, n_surface=4096),
}


def course_data(name: str, scale: str, *, seed: int = 0, root=None, progress: bool = True):
    """The folder of course data set `name` (see DATASETS) at `scale`, generated on first use.

    root: where data sets live (default cache_dir() / "data"). Returns the folder.
    """
    return runs.course_dataset(f"c4g_{name}_{scale}_seed{seed}", DATASETS, COURSE_DATA, name, scale, seed=seed,
                               root=root, progress=progress,
                               convert_hint="for 'full', convert Kubric MOVi (data_scripts/README.md) "
                                            "and pass that folder instead")


# The course's named runs: which data, steps per scale (default: the config's) and what differs
# from CONFIGS[scale]. The run of key K at scale X is called "X_K" (as DynaTok's).
RUNS = {
    "scenes_queries": dict(dataset="scenes", steps={}, overrides={}),
    "scenes_pixels": dict(dataset="scenes", steps={}, overrides={"decoder": "pixels"}),
}


def run_spec(key: str, scale: str):
    """(config, data set name, steps, run name) of the course run `key` at `scale`."""
    return runs.named_run_spec(RUNS, CONFIGS, key, scale)


def course_run(key: str, scale: str, *, seed: int = 0, device: str = "auto", progress: bool = True, **kwargs):
    """Load (or train) the course run `key` (see RUNS) at `scale` on its course data set:
    returns load_or_train's (model, history, info). kwargs go to load_or_train."""
    return runs.course_run(METHOD, key, scale, seed=seed, device=device, progress=progress, **kwargs)


# model_cls is build_model: cfg.decoder picks C4G or PixelGaussians, so one method covers both
# runs and a checkpoint of either is rebuilt from its stored config.
METHOD = runs.Method(name="c4g", config_cls=C4GConfig, model_cls=build_model, loss=loss,
                     make_dataset=make_dataset, configs=CONFIGS, course_data=course_data, run_spec=run_spec)


def load_or_train(cfg: C4GConfig, folder, name: str, **kwargs):
    """fourdlib.train.runs.load_or_train for C4G (same arguments after the method)."""
    return runs.load_or_train(METHOD, cfg, folder, name, **kwargs)


def load_model(path, config: C4GConfig | None = None, map_location="cpu"):
    """A C4G or PixelGaussians (cfg.decoder) rebuilt from a checkpoint's stored config, weights
    loaded, in eval mode."""
    return runs.load_model(path, METHOD, config, map_location)


def save_model(path, model, optimizer=None, *, step: int = 0, **fields):
    """Save a C4G or PixelGaussians with its config (fourdlib.train.runs.save_model)."""
    return runs.save_model(path, model, METHOD, optimizer, step=step, **fields)


def checkpoint_paths(name: str):
    """Where the C4G run `name` may be: committed (checkpoints/c4g/), then the cache."""
    return runs.checkpoint_paths(METHOD, name)
