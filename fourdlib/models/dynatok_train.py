"""The course's DynaTok runs: which data each scale trains on, and load-or-train.

    folder = course_data("static", "tiny")                    # generated once, then cached
    model, history, info = load_or_train(cfg, folder, "tiny_static_temporal", steps=1200)

Data sets of the notebooks (all from fourdlib.data.synthetic, deterministic for the seed)
---------------------------------------------------------------------------------------
    static      primitive compositions that do not move (motion=0, deform=0): only the
                camera circles them, so what frame s cannot see is exactly what another
                frame saw. The data where the temporal path MUST pay off: the notebooks'
                headline comparison (temporal vs per-frame) runs here.
    creatures   skinned animals with DeformingThings4D-like splits: train, unseen_motion,
                unseen_individual (the object-level table).
    scenes      MOVi-like scenes: foreground objects on a floor (the scene-level table:
                foreground only, and foreground + background).
COURSE_DATA gives their size per scale. "full" has no synthetic set: convert
DeformingThings4D or Kubric MOVi (data_scripts/README.md) and pass that folder.

Load or train
-------------
A training run is named (e.g. "tiny_static_temporal") and identified by what it depends
on: the model config, the number of steps, the seed, and the data's generator parameters
(not its path: the generator is deterministic, so the same parameters give the same data
anywhere). `load_or_train` looks for a checkpoint with that name, first among the ones
committed to the repository (`checkpoints/dynatok/`, so that a student's laptop loads
instead of training), then in the cache (`$FOURD_CACHE`, default ~/.cache/fourdlib); it
loads one whose identity matches and trains (and caches) otherwise. An interrupted
training resumes from its last checkpoint. `fourd train dynatok --name RUN ...` trains a
run ahead of time, also under torchrun on several GPUs (rank 0 writes the checkpoint).
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import pandas as pd
import torch

from ..data.dataset import read_manifest
from ..train import TrainConfig, train
from ..train.checkpoint import CheckpointError, load_checkpoint
from .dynatok import DynaTok, DynaTokConfig, load_model, loss, make_dataset, save_model

__all__ = ["COURSE_DATA", "DATASETS", "cache_dir", "course_data", "data_identity", "checkpoint_paths",
           "load_or_train"]

REPO_CHECKPOINTS = Path(__file__).resolve().parents[2] / "checkpoints" / "dynatok"

# kind of generator and its options, per notebook data set
DATASETS = {
    "static": ("primitives", {"motion": 0.0, "deform": 0.0}),
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


def cache_dir() -> Path:
    """Where generated data and trained checkpoints are kept: $FOURD_CACHE, else ~/.cache/fourdlib."""
    path = Path(os.environ.get("FOURD_CACHE") or Path.home() / ".cache" / "fourdlib")
    path.mkdir(parents=True, exist_ok=True)
    return path


def course_data(name: str, scale: str, *, seed: int = 0, root=None, progress: bool = True) -> Path:
    """The folder of notebook data set `name` (see DATASETS) at `scale`, generated on first use.

    root: where data sets live (default cache_dir() / "data"). Returns the folder.
    """
    from ..data.synthetic import generate_dataset

    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose from {sorted(DATASETS)}")
    if scale not in COURSE_DATA:
        raise ValueError(f"no synthetic {name!r} data for scale {scale!r} (have {sorted(COURSE_DATA)}); "
                         "for 'full', convert DeformingThings4D or Kubric MOVi (data_scripts/README.md) "
                         "and pass that folder instead")
    kind, options = DATASETS[name]
    size = COURSE_DATA[scale]
    folder = Path(root or cache_dir() / "data") / f"{name}_{scale}_seed{seed}"
    want = {"kind": kind, "num_sequences": size["sequences"], "num_frames": size["num_frames"],
            "maker_options": options, "n_surface": size["n_surface"],
            "image_size": list(size["image_size"]) if size["image_size"] else None}
    if (folder / "manifest.json").exists():   # cached: reuse it unless COURSE_DATA has changed since
        info = read_manifest(folder).get("info", {})
        if {k: info.get(k) for k in want} != want:
            if progress:
                print(f"{folder} was generated with other sizes; generating it again")
            (folder / "manifest.json").unlink()
    if not (folder / "manifest.json").exists():
        generate_dataset(folder, kind, size["sequences"], num_frames=size["num_frames"], seed=seed,
                         image_size=size["image_size"], n_surface=size["n_surface"], progress=progress,
                         maker_options=options, overwrite=folder.exists(),
                         workers=1 if scale == "smoke" else None)  # smoke: no process start-up
    return folder


def data_identity(folder, split: str | None = "train", **dataset_options) -> dict:
    """What a run's data is, independent of where it lives: the manifest's generator
    parameters (or its file list for converted data), the split and the dataset options."""
    manifest = read_manifest(folder)
    info = manifest.get("info", {})
    keys = ("generator", "kind", "num_sequences", "num_frames", "seed", "image_size", "n_surface",
            "maker_options", "test_frac", "mixed_frac", "split_options")
    ident = {k: info[k] for k in keys if k in info}
    if "generator" not in info:  # converted real data: the files and their splits are its identity
        ident["files"] = sorted([e["file"], e["split"]] for e in manifest["sequences"])
    return json.loads(json.dumps({**ident, "split": split, **dataset_options}))  # plain, comparable


def checkpoint_paths(name: str) -> list[Path]:
    """Where a run called `name` may be: committed to the repository, then the cache."""
    return [REPO_CHECKPOINTS / f"{name}.pt", cache_dir() / "checkpoints" / "dynatok" / f"{name}.pt"]


def _mismatch(state: dict, cfg: DynaTokConfig, steps: int, seed: int, data: dict) -> str | None:
    """None if the checkpoint `state` is this run, else why not."""
    want = dataclasses.asdict(cfg)
    stored = {k: v for k, v in (state.get("model_config") or {}).items() if k != "name"}
    if stored != want:
        diff = sorted(k for k in set(stored) | set(want) if stored.get(k) != want.get(k))
        return f"another model config ({', '.join(diff)})"
    if state.get("step") != steps or state.get("seed") != seed:
        return f"{state.get('step')} steps / seed {state.get('seed')}, not {steps} / {seed}"
    if state.get("data") != data:
        return "trained on other data"
    return None


def load_or_train(cfg: DynaTokConfig, folder, name: str, *, steps: int | None = None, split: str = "train",
                  seed: int = 0, device: str = "auto", progress: bool = True, retrain: bool = False,
                  **dataset_options):
    """Load the run `name` if a matching checkpoint exists, else train it and cache it.

    cfg, steps (default cfg.steps), seed, and the data (folder, split, dataset_options such
    as foreground_only=True) identify the run. Returns (model in eval mode on CPU, history
    DataFrame with step / loss / lr / h_rel / time, info dict: "source" = "repository",
    "cache" or "trained", "path", "train_seconds").
    """
    steps = int(steps or cfg.steps)
    data = data_identity(folder, split, **dataset_options)
    if not retrain:
        for path in checkpoint_paths(name):
            if not path.exists():
                continue
            try:
                state = load_checkpoint(path)
                why = _mismatch(state, cfg, steps, seed, data)
            except CheckpointError as e:  # truncated or foreign: train anew, and say why
                why = str(e)
            if why is None:
                source = "repository" if path.parent == REPO_CHECKPOINTS else "cache"
                if progress:
                    print(f"{name}: loaded {steps} trained steps from {path} ({source}; trained in "
                          f"{state.get('train_seconds', float('nan')):.0f} s on {state.get('device', '?')})")
                return (load_model(path), pd.DataFrame(state.get("history", [])),
                        {"source": source, "path": str(path), "train_seconds": state.get("train_seconds"),
                         "commit": state.get("commit")})
            if progress:
                print(f"{name}: {path} does not match this run ({why}); training instead")
    path = checkpoint_paths(name)[1]
    if progress:
        print(f"{name}: training {steps} steps -> {path}")
    torch.manual_seed(seed)
    model = DynaTok(cfg)
    dataset = make_dataset(cfg, folder, split, train=True, **dataset_options)
    tc: TrainConfig = cfg.train_config(steps=steps, seed=seed, device=device, progress=progress,
                                       warmup_steps=min(cfg.warmup_steps, steps // 10),
                                       log_every=max(1, min(25, steps // 20)),
                                       ckpt_path=str(path.with_suffix(".resume.pt")),
                                       ckpt_every=max(100, steps // 10))
    t0 = time.time()
    history = train(model, loss, dataset, tc)
    seconds = time.time() - t0
    if torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_rank() > 0:
        return model.eval(), pd.DataFrame(history), {"source": "trained", "path": None, "train_seconds": seconds}
    from ..repro import git_commit

    dev = next(model.parameters()).device
    device_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    model = model.cpu().eval()
    save_model(path, model, step=steps, seed=seed, data=data, history=history, train_seconds=round(seconds, 1),
               device=device_name, commit=git_commit(), train_config=dataclasses.asdict(tc))
    Path(tc.ckpt_path).unlink(missing_ok=True)
    return model, pd.DataFrame(history), {"source": "trained", "path": str(path), "train_seconds": seconds,
                                          "commit": git_commit()}
