"""Where a result came from: the code's commit, the device, the software versions.

    git_commit()          "<sha>", "<sha>-dirty" or "unknown"
    device_name(device)   the GPU's name for a CUDA device, "cpu (N threads)" for the CPU
    versions()            {"python", "torch", "numpy", "fourdlib"}
    provenance(device)    all of the above in one dict, for a checkpoint or a record

It sits at the bottom of the package, beside ``io.py``, so that result records
(``fourdlib.repro``) and training code can both use it: it imports nothing from
fourdlib except ``__version__``, and it does not import torch. A caller that
computed with torch has imported it already; one that did not should not pay
torch's import time to read its version (that comes from the installed metadata).
"""
from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path

from . import __version__

_REPO = Path(__file__).resolve().parents[1]  # the checkout holding fourdlib/


def git_commit(repo: str | Path | None = None) -> str:
    """``git rev-parse HEAD`` of the checkout holding fourdlib (+ "-dirty"), else "unknown".

    "-dirty" means tracked files differ from the commit (untracked files do not count).
    "unknown": not a git checkout (e.g. an installed wheel), or no git.
    """
    repo = Path(repo) if repo is not None else _REPO
    try:
        run = lambda *a: subprocess.run(["git", "-C", str(repo), *a], capture_output=True, text=True,
                                        timeout=10)
        head = run("rev-parse", "HEAD")
        if head.returncode != 0:
            return "unknown"
        dirty = run("status", "--porcelain", "--untracked-files=no").stdout.strip()
        return head.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _torch():
    """torch if the caller has imported it, else None (never imports it)."""
    return sys.modules.get("torch")


def _device_type_and_index(device) -> tuple[str, int | None]:
    """("cuda", 1) for "cuda:1" / torch.device("cuda", 1) / 1; ("cpu", None) for "cpu"."""
    if isinstance(device, int) and not isinstance(device, bool):
        return "cuda", device  # torch's convention: a bare int is a CUDA ordinal
    kind = getattr(device, "type", None)
    if kind is not None:  # a torch.device
        return kind, getattr(device, "index", None)
    kind, _, index = str(device).partition(":")
    return kind, int(index) if index.isdigit() else None


def device_name(device=None) -> str:
    """A human name for the device results were computed on.

    CUDA: the GPU's name (``torch.cuda.get_device_name``), e.g. "NVIDIA H200".
    CPU: "cpu (N threads)", N = torch's intra-op threads if torch is imported, else the
    CPUs this process may run on. Other kinds (mps, xpu, ...) give their type.
    device: a torch.device, a string ("cuda", "cuda:1", "cpu"), a CUDA ordinal, or None
    for the default: CUDA if torch is imported and sees a GPU, else the CPU.
    """
    torch = _torch()
    if device is None:
        device = "cuda" if torch is not None and torch.cuda.is_available() else "cpu"
    kind, index = _device_type_and_index(device)
    if kind == "cuda":
        import torch  # a CUDA device means the caller computed with torch: it is installed

        return torch.cuda.get_device_name(index if index is not None else torch.cuda.current_device())
    if kind == "cpu":
        if torch is not None:
            threads = torch.get_num_threads()
        else:
            threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return f"cpu ({threads} threads)"
    return kind


def _installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions() -> dict:
    """{"python", "torch", "numpy", "fourdlib"} versions; None for a package not installed.

    torch and numpy: the imported module's ``__version__`` if it is imported (that is what
    ran), else the installed distribution's version, without importing it.
    """
    out = dict(python=platform.python_version())
    for name in ("torch", "numpy"):
        module = sys.modules.get(name)
        out[name] = module.__version__ if module is not None else _installed_version(name)
    out["fourdlib"] = __version__
    return out


def provenance(device=None) -> dict:
    """{"commit", "device", "python", "torch", "numpy", "fourdlib"}: git_commit(),
    device_name(device) and versions() in one dict."""
    return dict(commit=git_commit(), device=device_name(device), **versions())


__all__ = ["git_commit", "device_name", "versions", "provenance"]
