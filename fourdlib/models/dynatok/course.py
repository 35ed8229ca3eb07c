"""The course's DynaTok runs: the data each config trains on, which data sets the notebooks
use per scale, and load-or-train under DynaTok's name.

    folder = course_data("static", "tiny")                    # generated once, then cached
    model, history, info = load_or_train(cfg, folder, "tiny_static_temporal", steps=1200)

Data sets of the notebooks (all from fourdlib.data.synthetic, deterministic for the seed)
---------------------------------------------------------------------------------------
    static      primitive compositions that do not move (motion=0, deform=0): only the
                camera circles them, so what frame s cannot see is exactly what another
                frame saw. The data where the temporal path MUST pay off: the notebooks'
                headline comparison (temporal vs per-frame) runs here.
    moving      primitive compositions that move rigidly and twist (the generator's defaults),
                filmed along camera paths that are not always one circle (`CameraSpec(path=
                "mixed")`: a circle, an out-and-back arc or a wandering orbit, per sequence).
                Stacking the frames smears here; the moving-shape headline's second data set.
    creatures   skinned animals with DeformingThings4D-like splits: train, unseen_motion,
                unseen_individual (the object-level table).
    scenes      MOVi-like scenes: foreground objects on a floor (the scene-level table:
                foreground only, and foreground + background).
COURSE_DATA gives their size per scale. "full" has no synthetic set: convert
DeformingThings4D or Kubric MOVi (data_scripts/README.md) and pass that folder.

Run names, identities, the committed runs in checkpoints/dynatok/ and resume are the
generic machinery of fourdlib.train.runs; `fourd train dynatok --name RUN ...` trains a
notebook's run ahead of time (also under torchrun).
"""
from __future__ import annotations


from ...data.dataset import SequenceDataset
from ...train import runs
from .config import CONFIGS, DynaTokConfig
from .model import DynaTok, loss

__all__ = ["COURSE_DATA", "DATASETS", "MOVING_RECIPE", "RUNS", "METHOD", "course_data", "make_dataset", "run_spec", "course_run",
           "load_or_train", "load_model", "save_model", "checkpoint_paths"]

# kind of generator and its options, per notebook data set
DATASETS = {
    "static": ("primitives", {"motion": 0.0, "deform": 0.0}),
    "moving": ("primitives", {"camera": {"path": "mixed"}}),
    "creatures": ("creatures", {}),
    "scenes": ("scenes", {}),
}
# sequences per data set, frames per sequence, image size and GT samples, per scale.
# smoke: seconds (CI). tiny: a few minutes of generation on 2 cores. small: one GPU node.
COURSE_DATA = {
    "smoke": dict(sequences=16, num_frames=8, image_size=(48, 48), n_surface=512),  # 16: every creature split
    "tiny": dict(sequences=48, num_frames=16, image_size=None, n_surface=None),
    "small": dict(sequences=512, num_frames=16, image_size=None, n_surface=None),
}


def course_data(name: str, scale: str, *, seed: int = 0, root=None, progress: bool = True):
    """The folder of notebook data set `name` (see DATASETS) at `scale`, generated on first use.

    root: where data sets live (default cache_dir() / "data"). Returns the folder.
    """
    return runs.course_dataset(f"{name}_{scale}_seed{seed}", DATASETS, COURSE_DATA, name, scale, seed=seed,
                               root=root, progress=progress,
                               convert_hint="for 'full', convert DeformingThings4D or Kubric MOVi "
                                            "(data_scripts/README.md) and pass that folder instead")


def make_dataset(cfg: DynaTokConfig, folder, split: str | None = None, train: bool = True, **options):
    """The SequenceDataset this config trains (train=True: cfg.train_frames, random windows
    as cfg.train_windows / cfg.train_copies say) or evaluates on (train=False:
    cfg.eval_frames, the first frames, fixed draws). options go to SequenceDataset (e.g.
    foreground_only=True)."""
    if train:  # evaluation windows stay fixed whatever the training windows were
        # the config is the run's identity: windows set beside it would train something else
        if {"windows", "copies"} & options.keys():
            raise ValueError("make_dataset: set cfg.train_windows / cfg.train_copies instead of passing "
                             "windows= / copies=, so that the run's identity records them")
        options = {**options, "windows": cfg.train_windows, "copies": cfg.train_copies}
    return SequenceDataset(folder, split=split, frames=cfg.train_frames if train else cfg.eval_frames,
                           points=cfg.input_points,
                           surface_points=cfg.train_points if train else cfg.eval_points, train=train, **options)


# The notebooks' named runs: which data, how many steps at each scale (default: the config's),
# and what differs from CONFIGS[scale]. The run of key K at scale X is called "X_K"; for tiny,
# checkpoints/dynatok/ holds it, so `course_run` loads instead of training. The static pair
# (1200 steps) keeps the tiny config as it was trained. The moving-shape pairs (creatures,
# moving primitives) train with MOVING_RECIPE and a weight average (ema), measured first by
# results/dynatok/recipe.py on a validation set: random training windows (the paper's) and
# every frame centred on its own input (a shape that travels leaves a sequence-wide cube).
MOVING_RECIPE = {"train_windows": "random", "norm_frame": "each", "ema": 0.995}
RUNS = {
    "static_temporal": dict(dataset="static", steps={}, overrides={}),
    "static_perframe": dict(dataset="static", steps={}, overrides={"temporal": False}),
    "creatures_temporal": dict(dataset="creatures", steps={"tiny": 1000}, overrides=MOVING_RECIPE),
    "creatures_perframe": dict(dataset="creatures", steps={"tiny": 1000}, overrides={**MOVING_RECIPE, "temporal": False}),
    "moving_temporal": dict(dataset="moving", steps={"tiny": 1000}, overrides=MOVING_RECIPE),
    "moving_perframe": dict(dataset="moving", steps={"tiny": 1000}, overrides={**MOVING_RECIPE, "temporal": False}),
    # Our deviation, measured after the paper's design lost to the per-frame model on moving
    # shapes: no residual latents (residual=False: every frame decoded from its own tokens after
    # the cross-frame layers, no shared frame-1 latent G). The recipe table found G, frame 1's
    # pose, to be what held DynaTok back at this budget; the records show both designs.
    "creatures_temporal_nores": dict(dataset="creatures", steps={"tiny": 1000},
                                     overrides={**MOVING_RECIPE, "residual": False}),
    "moving_temporal_nores": dict(dataset="moving", steps={"tiny": 1000}, overrides={**MOVING_RECIPE, "residual": False}),
}


def run_spec(key: str, scale: str):
    """(config, data set name, steps, run name) of the course run `key` at `scale`."""
    return runs.named_run_spec(RUNS, CONFIGS, key, scale)


def course_run(key: str, scale: str, *, seed: int = 0, device: str = "auto", progress: bool = True, **kwargs):
    """Load (or train) the course run `key` (see RUNS) at `scale` on its course data set:
    returns load_or_train's (model, history, info). kwargs go to load_or_train."""
    return runs.course_run(METHOD, key, scale, seed=seed, device=device, progress=progress, **kwargs)


METHOD = runs.Method(name="dynatok", config_cls=DynaTokConfig, model_cls=DynaTok, loss=loss,
                     make_dataset=make_dataset, configs=CONFIGS, course_data=course_data,
                     inference_fields=("eval_frames", "eval_points", "sample_steps", "sample_method"),
                     run_spec=run_spec)


def load_or_train(cfg: DynaTokConfig, folder, name: str, **kwargs):
    """fourdlib.train.runs.load_or_train for DynaTok (same arguments after the method)."""
    return runs.load_or_train(METHOD, cfg, folder, name, **kwargs)


def load_model(path, config: DynaTokConfig | None = None, map_location="cpu") -> DynaTok:
    """A DynaTok rebuilt from a checkpoint's stored config, weights loaded, in eval mode."""
    return runs.load_model(path, METHOD, config, map_location)


def save_model(path, model: DynaTok, optimizer=None, *, step: int = 0, **fields):
    """Save a DynaTok with its config (fourdlib.train.runs.save_model)."""
    return runs.save_model(path, model, METHOD, optimizer, step=step, **fields)


def checkpoint_paths(name: str):
    """Where the DynaTok run `name` may be: committed (checkpoints/dynatok/), then the cache."""
    return runs.checkpoint_paths(METHOD, name)
