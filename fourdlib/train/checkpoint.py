"""Checkpoints: written atomically, read with `torch.load(weights_only=True)`, checked on load.

A fourdlib checkpoint is one `torch.save` file holding a dict of tensors and plain Python
values only (dict, list, tuple, str, int, float, bool, None), so that it loads with
`weights_only=True` (no code runs while loading):

    {"format": FORMAT, "version": VERSION, "step": int,
     "model": model.state_dict(), "optimizer": optimizer.state_dict() or None,
     ...any further plain fields: "config", "history", "rng", "data", ...}

Writing goes to a temporary file in the same folder, then `os.replace` renames it over the
old one: a crash mid-write leaves the previous checkpoint intact, never half a file.
Loading names what is wrong: missing file, truncated or corrupt bytes (the zip's CRC32s are
checked, which `torch.load` alone does not do), a foreign file (a bare state_dict), a file
holding Python objects that weights_only refuses to build (a pickle of other objects, or a
malicious one: "not a fourdlib checkpoint, possibly unsafe", found by reading the pickle's
GLOBALs, not from torch's wording), CUDA tensors where there is no CUDA (map_location="cpu",
the default, maps them; map_location=None maps them to the CPU with a warning; a CUDA
map_location is refused by name), a newer format version, or a model whose parameter names
or shapes differ from the checkpoint's (the first few names and the counts:
`load_model_state` does the same for any state dict).

The RNG helpers (`rng_state`, `set_rng_state`) live here because exact resume needs every
global random stream saved in that same plain form.
"""
from __future__ import annotations

import os
import pickle
import random
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io import atomic_write
from .distributed import unwrap

FORMAT = "fourdlib.train.checkpoint"
VERSION = 1
_PLAIN = (str, int, float, bool, type(None), bytes, torch.Tensor, torch.dtype, torch.Size)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: corrupt, truncated, foreign, too new, or for another model."""


# ----------------------------------------------------------------------------- RNG state
def rng_state() -> dict:
    """Every global random stream (python, numpy, torch CPU, CUDA) as weights_only-loadable values."""
    np_state = np.random.get_state(legacy=False)  # {'bit_generator', 'state': {'key', 'pos'}, ...}
    np_state["state"]["key"] = torch.from_numpy(np_state["state"]["key"].astype(np.int64))  # (624,)
    return {
        "python": random.getstate(),  # (version, tuple of 625 ints, gauss_next)
        "numpy": np_state,
        "torch": torch.get_rng_state(),  # uint8 tensor
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict) -> None:
    """Restore what `rng_state` returned (CUDA streams only where this machine has the same GPUs)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = dict(state["numpy"])
    np_state["state"] = dict(np_state["state"], key=np.asarray(np_state["state"]["key"], dtype=np.uint32))
    np.random.set_state(np_state)
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------- saving
def _check_plain(obj: Any, where: str) -> None:
    """Refuse at save time what `torch.load(weights_only=True)` would refuse at load time."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"checkpoint field {where} has a key of type {type(k).__name__}; use str or int")
            _check_plain(v, f"{where}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_plain(v, f"{where}[{i}]")
    elif not isinstance(obj, _PLAIN):
        raise TypeError(f"checkpoint field {where} holds a {type(obj).__name__}, which torch.load("
                        "weights_only=True) refuses; store tensors and plain types (str, int, float, "
                        "bool, None, list, tuple, dict) only, e.g. str(path) or dataclasses.asdict(cfg)")


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer | None = None, *, step: int = 0,
                    **fields: Any) -> Path:
    """Write model (+ optimizer) state, `step` and any plain `fields` to `path`, atomically.

    `model` may be wrapped in DistributedDataParallel; the unwrapped state_dict is stored.
    Returns the path written.
    """
    path, model = Path(path), unwrap(model)
    reserved = {"format", "version", "step", "model", "optimizer"} & fields.keys()
    if reserved:
        raise ValueError(f"fields {sorted(reserved)} are set by save_checkpoint itself")
    state = {"format": FORMAT, "version": VERSION, "step": int(step),
             "model": model.state_dict(),
             "optimizer": optimizer.state_dict() if optimizer is not None else None,
             **fields}
    _check_plain(state, "checkpoint")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        torch.save(state, f)
    return path


# ----------------------------------------------------------------------------- loading
_UNSAFE = "this file holds Python objects fourdlib will not load: not a fourdlib checkpoint, possibly unsafe"
_RESUME_HINT = ("It was written for a different model or config; delete it, or start over with "
                "train(..., resume=False).")


def _wants_cuda(map_location: Any) -> bool:
    """Does map_location send storages to a CUDA device? (callables: cannot tell, no)"""
    if isinstance(map_location, dict):
        return any(_wants_cuda(v) for v in map_location.values())
    if isinstance(map_location, torch.device):
        return map_location.type == "cuda"
    return isinstance(map_location, str) and map_location.startswith("cuda")


def _refused_globals(path: Path, error: Exception) -> list[str]:
    """The Python objects (module.name) in the file that torch.load(weights_only=True) will not
    build, found without running anything; empty if the failure was something else."""
    names: list[str] = []
    if zipfile.is_zipfile(path):
        try:  # a static read of the pickle's GLOBAL instructions against torch's allowlist
            names = list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
        except Exception:  # noqa: BLE001 - unreadable pickle: fall back to torch's message
            names = []
    if not names:  # torch names the global in its message ("Unsupported global: GLOBAL a.b" up
        # to 2.5, "Trying to load unsupported GLOBAL a.b whose module a is blocked" in 2.13)
        names = re.findall(r"GLOBAL\s+([\w.]+)", str(error))
    return list(dict.fromkeys(names))


def _read(path: Path, map_location: Any) -> Any:
    """torch.load(weights_only=True), with each way of failing turned into a CheckpointError
    that says what happened: not a file torch wrote, truncated, bytes changed, Python objects
    that weights_only refuses to build, or CUDA tensors where there is no CUDA."""
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"truncated or corrupt checkpoint at {path}: the file is empty")
    if _wants_cuda(map_location) and not torch.cuda.is_available():
        raise CheckpointError(f"cannot load {path} with map_location={map_location!r}: that is a CUDA "
                              "device and this machine has no CUDA (torch.cuda.is_available() is False); "
                              "pass map_location='cpu'")
    # torch.save writes a zip archive whose records carry CRC32s. torch.load does not check
    # them, and loads bytes flipped inside a tensor without a word, so zipfile checks first.
    # (A truncated file has lost the zip directory at its end: it is not a zip any more.)
    try:
        is_zip = zipfile.is_zipfile(path)
        if is_zip:
            with zipfile.ZipFile(path) as z:
                bad = z.testzip()
    except Exception as e:  # noqa: BLE001 - BadZipFile, EOFError, a name that is not UTF-8, ...
        raise CheckpointError(f"truncated or corrupt checkpoint at {path} ({size} bytes): "
                              f"{type(e).__name__}: {e}") from e
    if is_zip and bad is not None:
        raise CheckpointError(f"corrupt checkpoint at {path}: record {bad!r} fails its CRC32 "
                              "check (bytes changed after writing)")
    cuda_tags: list[str] = []
    if map_location is None and not torch.cuda.is_available():
        def map_location(storage, location):  # keep CUDA storages on the CPU, where they are read
            if str(location).startswith("cuda"):
                cuda_tags.append(location)
                return storage
            return None  # other devices: torch's default
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - classified below, the original is chained
        refused = _refused_globals(path, e) if isinstance(e, pickle.UnpicklingError) else []
        if refused:
            shown = ", ".join(refused[:5]) + (f", ... ({len(refused) - 5} more)" if len(refused) > 5 else "")
            raise CheckpointError(
                f"{path}: {_UNSAFE}. It names {shown}, which torch.load(weights_only=True) refuses to "
                "build or call (fourdlib checkpoints hold tensors and plain types only). Open it with "
                "weights_only=False only if you trust its source: unpickling can run any code."
            ) from e
        if "CUDA" in str(e) and (not torch.cuda.is_available() or "deserialize" in str(e)):
            # e.g. tensors saved on cuda:3 on a machine with one GPU, or map_location given
            # as a callable or dict that sends them to a CUDA device that is not there
            raise CheckpointError(f"cannot load {path}: it holds CUDA tensors that this machine cannot "
                                  f"place ({type(e).__name__}: {str(e).splitlines()[0][:200]}); pass "
                                  "map_location='cpu' (or a CUDA device this machine has)") from e
        detail = re.search(r"WeightsUnpickler error:\s*(.+)", str(e))  # torch's actual reason
        detail = (detail.group(1) if detail else str(e)).strip().split(". ")[0].rstrip(".")[:300]
        why = f"{type(e).__name__}: {detail}"
        hint = "" if is_zip else (" It is not a complete torch.save archive (the zip directory at "
                                  "its end is missing): was the writing process killed or the copy "
                                  "cut short, or is it another kind of file?")
        raise CheckpointError(f"truncated or corrupt checkpoint at {path} ({size} bytes); "
                              f"torch.load said: {why}.{hint}") from e
    if cuda_tags:
        warnings.warn(f"{path} holds CUDA tensors ({cuda_tags[0]}) and this machine has no CUDA: "
                      "loaded onto the CPU", UserWarning, stacklevel=3)
    return state


def _check_fits(ckpt_sd: dict, model: torch.nn.Module, path: Path, what: str = "this model",
                hint: str = _RESUME_HINT) -> None:
    """Compare names and shapes first, so a mismatch reads as one short sentence."""
    model_sd = model.state_dict()
    missing = [k for k in model_sd if k not in ckpt_sd]
    unexpected = [k for k in ckpt_sd if k not in model_sd]
    shape = lambda v: tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__  # noqa: E731
    shapes = [f"{k}: checkpoint {shape(ckpt_sd[k])} vs model {shape(model_sd[k])}"
              for k in model_sd if k in ckpt_sd and shape(ckpt_sd[k]) != shape(model_sd[k])]
    if not (missing or unexpected or shapes):
        return

    def first(items: list[str], n: int = 4) -> str:
        return ", ".join(items[:n]) + (f", ... ({len(items) - n} more)" if len(items) > n else "")

    parts = ([f"{len(missing)} missing in the checkpoint ({first(missing)})"] if missing else []) + \
            ([f"{len(unexpected)} not in the model ({first(unexpected)})"] if unexpected else []) + \
            ([f"{len(shapes)} shape mismatch(es) ({first(shapes)})"] if shapes else [])
    raise CheckpointError(f"checkpoint at {path} does not fit {what}: {'; '.join(parts)}."
                          + (f" {hint}" if hint else ""))


def load_model_state(model: torch.nn.Module, state_dict: Any, path: str | os.PathLike, *,
                     what: str = "this model", hint: str = "") -> None:
    """`model.load_state_dict(state_dict)`, with a mismatch raised as a short CheckpointError.

    A state dict for another model makes load_state_dict raise a RuntimeError that lists
    every missing and unexpected name (hundreds for a real network). This names the first
    few of each and the counts, and shortens any other RuntimeError of load_state_dict.
    `what` names the model in the message ("a DynaTok built from its config"); `hint` is
    appended (what to do about it).
    """
    model = unwrap(model)
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"checkpoint at {path}: the model state is a {type(state_dict).__name__}, "
                              "not a state dict")
    _check_fits(state_dict, model, path, what, hint)
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as e:
        text = " ".join(str(e).split())
        if len(text) > 300:
            text = f"{text[:300]} ... ({len(text) - 300} more characters)"
        raise CheckpointError(f"checkpoint at {path} does not fit {what}: {text}"
                              + (f" {hint}" if hint else "")) from e


def load_checkpoint(path: str | os.PathLike, model: torch.nn.Module | None = None,
                    optimizer: torch.optim.Optimizer | None = None, *,
                    map_location: Any = "cpu") -> dict:
    """Read a checkpoint written by `save_checkpoint`; load it into `model` / `optimizer` if given.

    Returns the whole checkpoint dict. Raises FileNotFoundError for a missing file and
    CheckpointError (with the reason) for anything else that makes it unusable.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    state = _read(path, map_location)
    if not isinstance(state, dict) or "format" not in state:
        hint = (" It looks like a bare state_dict: load it with model.load_state_dict(torch.load("
                "path, weights_only=True))." if isinstance(state, dict) and state
                and all(isinstance(v, torch.Tensor) for v in state.values()) else "")
        raise CheckpointError(f"not a fourdlib checkpoint: {path} holds a value of type "
                              f"{type(state).__name__} without the 'format' key.{hint}")
    if state["format"] != FORMAT:
        raise CheckpointError(f"not a fourdlib checkpoint: {path} has format {state['format']!r}, "
                              f"expected {FORMAT!r}")
    if not isinstance(state.get("version"), int) or state["version"] > VERSION:
        raise CheckpointError(f"checkpoint at {path} has format version {state.get('version')!r}; "
                              f"this fourdlib reads versions up to {VERSION}: upgrade fourdlib")
    for key in ("step", "model", "optimizer"):
        if key not in state:
            raise CheckpointError(f"corrupt checkpoint at {path}: the {key!r} entry is missing")
    if model is not None:
        load_model_state(model, state["model"], path, hint=_RESUME_HINT)
    if optimizer is not None:
        if state["optimizer"] is None:
            raise CheckpointError(f"checkpoint at {path} holds no optimizer state")
        try:
            optimizer.load_state_dict(state["optimizer"])
        except (ValueError, KeyError) as e:
            raise CheckpointError(f"checkpoint at {path}: optimizer state does not fit this "
                                  f"optimizer ({e})") from e
    return state
