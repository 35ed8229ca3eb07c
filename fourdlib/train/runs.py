"""Named training runs, written once for every method: checkpoints that carry their config,
and load-or-train.

A method describes itself with a `Method` (its name, config class, model class, loss and
how a config makes its dataset); everything below works for any method from that alone.

    model = load_model("run.pt", METHOD)                   # rebuilt from the stored config
    model, history, info = load_or_train(METHOD, cfg, folder, "tiny_static_temporal")

Checkpoints that carry their config: `save_model` stores {"name": method.name,
**asdict(cfg)} under "model_config", so `load_model` rebuilds the model without being told
its size, and refuses another method's checkpoint by name.

A run's identity is what its weights depend on: the method, the model config, the number of
steps, the seed, and the data's generator parameters (`data_identity`, not its path: the
generator is deterministic, so the same parameters give the same data anywhere).
`load_or_train` looks for a checkpoint of that name, first among the runs committed to the
repository (`checkpoints/<method>/`, so that a laptop loads instead of training), then in
the cache (`$FOURD_CACHE`); it loads one whose identity matches, and trains (and caches)
otherwise. An interrupted training resumes from `<name>.resume.pt`, which stores the same
identity: a resume file of another run is refused (RunMismatchError names what differs)
unless `restart=True`, so a run is never continued on other data or settings.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from ..data.cache import cache_dir
from ..data.dataset import read_manifest
from ..provenance import device_name, git_commit
from .checkpoint import CheckpointError, load_checkpoint, load_model_state, save_checkpoint
from .distributed import unwrap
from .loop import RunMismatchError, train

__all__ = ["Method", "RunMismatchError", "unwrap", "count_parameters", "save_model", "load_model",
           "config_from_checkpoint", "data_identity", "run_identity", "checkpoint_paths", "load_or_train",
           "config_table", "course_dataset", "named_run_spec", "course_run", "REPO_CHECKPOINTS"]

REPO_CHECKPOINTS = Path(__file__).resolve().parents[2] / "checkpoints"


@dataclass(frozen=True)
class Method:
    """What the run machinery needs to know about a method.

    name          stored in checkpoints; the CLI's method name; checkpoints/<name>/ holds its runs
    config_cls    a frozen dataclass; config.train_config(**overrides) -> TrainConfig
    model_cls     model_cls(cfg) -> nn.Module (with .cfg)
    loss          loss(model, batch) -> loss or (loss, logs), for fourdlib.train.train
    make_dataset  make_dataset(cfg, folder, split, train=True, **options) -> a torch Dataset
    configs       scale -> config (one row per scale)
    course_data   course_data(name, scale) -> folder of the notebooks' data set `name`
    committed     folder of committed runs (default REPO_CHECKPOINTS / name)
    inference_fields  config fields that choose how a trained model is USED (points sampled,
                  ODE steps), not what it learns: left out of a run's identity, and a
                  loaded run takes them from the config asked for, so changing a sampling
                  default does not force retraining the committed runs
    run_spec      run_spec(key, scale) -> (config, course data set, steps, run name): the
                  notebooks' named runs (`fourd train METHOD --run KEY`)
    """

    name: str
    config_cls: type
    model_cls: Callable[..., nn.Module]
    loss: Callable
    make_dataset: Callable
    configs: Mapping[str, Any]
    course_data: Callable | None = None
    committed: Path | None = None
    inference_fields: tuple[str, ...] = ()
    run_spec: Callable | None = None

    @property
    def committed_dir(self) -> Path:
        return Path(self.committed) if self.committed is not None else REPO_CHECKPOINTS / self.name


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------- config in the checkpoint
def save_model(path, model: nn.Module, method: Method, optimizer=None, *, step: int = 0, **fields) -> Path:
    """save_checkpoint with the model's config stored as a plain dict under "model_config"
    ({"name": method.name, **asdict(cfg)}), so that `load_model` can rebuild the model."""
    net = unwrap(model)
    return save_checkpoint(path, net, optimizer, step=step,
                           model_config={"name": method.name, **dataclasses.asdict(net.cfg)}, **fields)


def config_from_checkpoint(state: dict, method: Method, path, config=None):
    """The config a checkpoint was written with (checked against `config` if both exist).

    config is needed only for checkpoints without "model_config" (e.g. written by
    fourdlib.train.train directly). Raises CheckpointError for another method's checkpoint,
    a stored config the class refuses, or a mismatch with `config`.
    """
    stored = state.get("model_config")
    if stored is None:
        if config is None:
            raise CheckpointError(f"checkpoint at {path} stores no model config (it was not written by "
                                  f"save_model); pass the {method.config_cls.__name__} of the run that wrote it")
        return config
    if not isinstance(stored, dict) or stored.get("name") != method.name:
        name = stored.get("name") if isinstance(stored, dict) else type(stored).__name__
        raise CheckpointError(f"checkpoint at {path} holds a {name!r} model, not {method.name!r}")
    fields = {k: v for k, v in stored.items() if k != "name"}
    try:
        cfg = method.config_cls(**fields)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint at {path}: its model config does not make a "
                              f"{method.config_cls.__name__} ({e}); was it written by another fourdlib "
                              "version?") from e
    if config is not None and config != cfg:
        diff = [f"{k}: checkpoint {getattr(cfg, k)!r} vs given {getattr(config, k)!r}"
                for k in fields if getattr(cfg, k) != getattr(config, k)]
        raise CheckpointError(f"checkpoint at {path} was written with another config: {'; '.join(diff)}")
    return cfg


def load_model(path, method: Method, config=None, map_location="cpu", *, state: dict | None = None) -> nn.Module:
    """Build `method`'s model from a checkpoint's stored config and load its weights (eval mode).

    state: the already-loaded checkpoint dict (to read a file once). Raises CheckpointError
    for a truncated or foreign file, another method's checkpoint, or a config mismatch.
    """
    if state is None:
        state = load_checkpoint(path, map_location=map_location)
    cfg = config_from_checkpoint(state, method, path, config)
    model = method.model_cls(cfg)
    load_model_state(model, state["model"], path, what=f"a {method.model_cls.__name__} built from its config")
    return model.eval()


# ----------------------------------------------------------------------------- identity
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


def run_identity(method: Method, cfg, steps: int, seed: int, data: dict) -> dict:
    """Everything a run's weights depend on, as plain values (stored in its checkpoints)."""
    config = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in method.inference_fields}
    return json.loads(json.dumps({"method": method.name, "model_config": config,
                                  "steps": int(steps), "seed": int(seed), "data": data}))


def _identity_of(state: dict, method: Method | None = None) -> dict:
    """The identity a final checkpoint records (also for runs saved before "run" existed).

    With `method`, the stored model config is completed with the defaults of fields added
    to the config class after the run was saved: a new field whose default keeps the old
    behaviour does not invalidate committed runs (a changed default does)."""
    stored = dict(state.get("model_config") or {})
    name = stored.pop("name", None)
    if method is not None and name == method.name:
        known = {f.name for f in dataclasses.fields(method.config_cls)}
        try:
            if set(stored) <= known:
                stored = dataclasses.asdict(method.config_cls(**stored))
        except (TypeError, ValueError):
            pass  # an invalid stored config stays as it is and so differs
        stored = {k: v for k, v in stored.items() if k not in method.inference_fields}
    return {"method": name, "model_config": stored, "steps": state.get("step"),
            "seed": state.get("seed"), "data": state.get("data")}


def _differing(a: dict | None, b: dict | None) -> list[str]:
    a, b = a or {}, b or {}
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def _difference(have: dict, want: dict) -> str | None:
    """None if two identities are equal, else what differs, in words."""
    if have["method"] != want["method"]:
        return f"a {have['method']!r} run, not {want['method']!r}"
    if have["model_config"] != want["model_config"]:
        a, b = have["model_config"], want["model_config"]
        return "another model config (" + ", ".join(f"{k}: {a.get(k)!r} vs {b.get(k)!r}"
                                                      for k in _differing(a, b)[:6]) + ")"
    if have["steps"] != want["steps"] or have["seed"] != want["seed"]:
        return f"{have['steps']} steps / seed {have['seed']}, not {want['steps']} / {want['seed']}"
    if have["data"] != want["data"]:
        return f"trained on other data ({', '.join(_differing(have['data'], want['data']))} differ)"
    return None


def checkpoint_paths(method: Method, name: str) -> list[Path]:
    """Where a run called `name` may be: committed to the repository, then the cache."""
    return [method.committed_dir / f"{name}.pt", cache_dir() / "checkpoints" / method.name / f"{name}.pt"]


# ----------------------------------------------------------------------------- load or train
def config_table(configs: Mapping) -> pd.DataFrame:
    """A method's CONFIGS as a DataFrame (one row per scale, every field), for notebooks."""
    return pd.DataFrame({name: dataclasses.asdict(c) for name, c in configs.items()}).T


def course_dataset(folder_name: str, datasets: Mapping, sizes: Mapping, name: str, scale: str, *, seed: int = 0,
                   root=None, progress: bool = True, convert_hint: str = ""):
    """A method's course data set `name` at `scale` (generated on first use, then cached).

    datasets: name -> (generator kind, maker options); sizes: scale -> dict(sequences,
    num_frames, image_size, n_surface). folder_name: the cache folder (e.g. "scenes_tiny_seed0";
    two methods that want other sizes of one generator need other names). convert_hint: what
    to say for a scale without synthetic data (e.g. which real data set to convert).
    """
    from ..data.cache import synthetic_dataset
    if name not in datasets:
        raise ValueError(f"unknown data set {name!r}; choose from {sorted(datasets)}")
    if scale not in sizes:
        raise ValueError(f"no synthetic {name!r} data for scale {scale!r} (have {sorted(sizes)})" +
                         (f"; {convert_hint}" if convert_hint else ""))
    kind, options = datasets[name]
    size = sizes[scale]
    return synthetic_dataset(folder_name, kind, sequences=size["sequences"], num_frames=size["num_frames"],
                             image_size=size["image_size"], n_surface=size["n_surface"], maker_options=options,
                             seed=seed, root=root, progress=progress,
                             workers=1 if scale == "smoke" else None)  # smoke: no process start-up


def named_run_spec(table: Mapping, configs: Mapping, key: str, scale: str):
    """(config, course data set, steps, run name "<scale>_<key>") of a method's named run.

    table: key -> dict(dataset=..., steps={scale: steps} (default the config's), overrides={...}
    fields that differ from configs[scale])."""
    if key not in table:
        raise ValueError(f"unknown course run {key!r}; choose from {sorted(table)}")
    if scale not in configs:
        raise ValueError(f"unknown scale {scale!r}; choose from {sorted(configs)}")
    spec = table[key]
    cfg = dataclasses.replace(configs[scale], **spec["overrides"])
    return cfg, spec["dataset"], spec["steps"].get(scale, cfg.steps), f"{scale}_{key}"


def course_run(method: Method, key: str, scale: str, *, seed: int = 0, device: str = "auto", progress: bool = True,
               **kwargs):
    """Load (or train) `method`'s named run `key` at `scale` on its course data set:
    load_or_train's (model, history, info). kwargs go to load_or_train."""
    if method.run_spec is None or method.course_data is None:
        raise ValueError(f"method {method.name!r} has no named course runs")
    cfg, dataset, steps, name = method.run_spec(key, scale)
    folder = method.course_data(dataset, scale, seed=seed, progress=progress)
    return load_or_train(method, cfg, folder, name, steps=steps, seed=seed, device=device, progress=progress,
                         **kwargs)


def load_or_train(method: Method, cfg, folder, name: str, *, steps: int | None = None, split: str = "train",
                  seed: int = 0, device: str = "auto", progress: bool = True, retrain: bool = False,
                  restart: bool = False, ckpt_every: int | None = None, **dataset_options):
    """Load the run `name` if a checkpoint with its identity exists, else train it and cache it.

    cfg, steps (default cfg.steps), seed, and the data (folder, split, dataset_options) identify
    the run. retrain: ignore existing checkpoints (and any resume file) and train anew.
    restart: discard a resume file of another identity instead of refusing it.
    ckpt_every: steps between resume checkpoints (default a tenth of the run, at least 100).
    Returns (model in eval mode on CPU, history DataFrame with step / loss / lr / ... / time,
    info dict: "source" = "repository", "cache" or "trained", "path", "train_seconds", "commit").
    """
    steps = int(steps or cfg.steps)
    data = data_identity(folder, split, **dataset_options)
    want = run_identity(method, cfg, steps, seed, data)
    if not retrain:
        for path in checkpoint_paths(method, name):
            if not path.exists():
                continue
            try:
                state = load_checkpoint(path)
                why = _difference(_identity_of(state, method), want)
            except CheckpointError as e:  # truncated or foreign: train anew, and say why
                why = str(e)
            if why is None:
                source = "repository" if path.parent == method.committed_dir else "cache"
                if progress:
                    print(f"{name}: loaded {steps} trained steps from {path} ({source}; trained in "
                          f"{state.get('train_seconds') or float('nan'):.0f} s on {state.get('device', '?')})")
                model = load_model(path, method, state=state)
                if method.inference_fields:  # how to sample is the caller's choice, not the run's
                    model.cfg = dataclasses.replace(model.cfg, **{k: getattr(cfg, k) for k in method.inference_fields})
                return (model, pd.DataFrame(state.get("history", [])),
                        {"source": source, "path": str(path), "train_seconds": state.get("train_seconds"),
                         "commit": state.get("commit")})
            if progress:
                print(f"{name}: {path} does not match this run ({why}); training instead")
    path = checkpoint_paths(method, name)[1]
    resume = path.with_suffix(".resume.pt")
    if progress:
        print(f"{name}: training {steps} steps -> {path}")
    torch.manual_seed(seed)
    model = method.model_cls(cfg)
    dataset = method.make_dataset(cfg, folder, split, train=True, **dataset_options)
    tc = cfg.train_config(steps=steps, seed=seed, device=device, progress=progress,
                          warmup_steps=min(cfg.warmup_steps, steps // 10),
                          log_every=max(1, min(25, steps // 20)),
                          ckpt_path=str(resume), ckpt_every=ckpt_every or max(100, steps // 10))
    history = train(model, method.loss, dataset, tc, identity=want, resume=not (restart or retrain))
    seconds = history[-1]["time"] if history else 0.0  # accumulated over resumed segments
    if torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_rank() > 0:
        return model.eval(), pd.DataFrame(history), {"source": "trained", "path": None, "train_seconds": seconds}
    dev = next(model.parameters()).device
    commit = git_commit()
    model = model.cpu().eval()
    save_model(path, model, method, step=steps, seed=seed, data=data, history=history,
               train_seconds=round(seconds, 1), device=device_name(dev), commit=commit,
               train_config=dataclasses.asdict(tc), run=want)
    resume.unlink(missing_ok=True)
    return model, pd.DataFrame(history), {"source": "trained", "path": str(path), "train_seconds": seconds,
                                          "commit": commit}
