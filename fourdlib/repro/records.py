"""Result records: one JSON file per notebook result, written by one call.

A notebook ends with::

    from fourdlib import repro
    repro.record({"Unseen Motion": {"Acc": acc, "Comp": comp, "NC": nc}},
                 scale=scale, seed=seed, data="synthetic creatures 64×16",
                 table="dynatok/object_level")

and tests, the course summary and the paper tables read these files, never the
cells' printed output.

Where the file goes
-------------------
``fourd course`` / ``fourd run`` (fourdlib.course) set, for each notebook,
  FOURD_RECORD_DIR  the run folder, where the executed notebook is written,
  FOURD_NOTEBOOK    the notebook's name without ".ipynb" (e.g. "03_dynatok"),
  FOURD_OUTPUT_DIR  a folder for the notebook's other outputs (HTML views, figures),
  FOURD_STARTED_AT  when the notebook was started (for runtime_s),
so the record lands next to the executed notebook as ``<notebook>.record.json``,
or ``<notebook>[.<table>][.<variant>].record.json`` when it names a table and/or a
variant (characters other than letters, digits and ``._=-`` become "-"): one
notebook may record several results, even a "DynaTok" row in two tables.
Run by hand (JupyterLab, nbval, plain ``python``), the notebook name comes from
Jupyter's JPY_SESSION_NAME (or "interactive"), and the notebook's results go where a run
belongs, never beside the notebook (where git would see them): the run folder
``interactive_dir()``, which is

  ``runs/interactive/`` of the fourdlib checkout (the folder holding ``fourdlib/`` and
  ``notebooks/``: an editable install; ``runs/`` is git-ignored, and ``fourd course``
  puts its runs beside it), else
  ``<cache>/runs/interactive/`` ($FOURD_CACHE, else ~/.cache/fourdlib: an installed wheel),

laid out like a course run: records as ``<notebook>….record.json`` in it (so
``load_records(interactive_dir())`` reads them) and views in ``<notebook>/``
(``output_dir()``). A rerun overwrites the previous one. The runner's variables above
take precedence; ``path=`` overrides both for a record.

What a record holds
-------------------
notebook, variant, table, scale, seed, data, metrics, extra, commit (``git rev-parse
HEAD`` of the fourdlib checkout, "-dirty" if tracked files changed, "unknown" outside
git), runtime_s (since ``start=`` if given, else since the runner started the
notebook, else since ``fourdlib.repro`` was imported),
created (UTC), and the software/device: python, torch, fourdlib versions, device,
gpu (the GPU's name when the device is CUDA, else null). Commit, versions and GPU
name come from ``fourdlib.provenance``. No host or user names.

Metric values must be numbers: numpy / torch scalars are converted; NaN and inf
(a diverged run is a legitimate result) are written as null with a warning.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
import sys
import time
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import atomic_write, cache_dir
from ..provenance import device_name, git_commit, versions
from .registry import get_table

RECORD_DIR_ENV = "FOURD_RECORD_DIR"
NOTEBOOK_ENV = "FOURD_NOTEBOOK"
OUTPUT_DIR_ENV = "FOURD_OUTPUT_DIR"
STARTED_ENV = "FOURD_STARTED_AT"  # time.time() when the runner started the notebook
RECORD_SUFFIX = ".record.json"
SCHEMA = 1
INTERACTIVE = "interactive"  # run folder (and notebook name) of a notebook run by hand

# The checkout holding fourdlib/ (an editable install) when it also holds notebooks/.
_CHECKOUT = Path(__file__).resolve().parents[2]

# Outside the runner, runtime_s counts from this module's import: in a notebook
# that imports fourdlib at the top, (almost) the start of its run.
_IMPORTED_AT = time.time()

# Fields of a record; a metric may not reuse these names (they are columns of
# load_records()).
META_FIELDS = ("notebook", "variant", "table", "scale", "seed", "data", "commit", "runtime_s",
               "created", "device", "gpu", "python", "torch", "fourdlib", "path")


class Timer:
    """Wall-clock timer for ``record(..., start=timer)``; ``.elapsed`` is seconds so far."""

    def __init__(self):
        self.start = time.time()

    @property
    def elapsed(self) -> float:
        return time.time() - self.start

    def __repr__(self):
        return f"Timer({self.elapsed:.1f} s)"


def timer() -> Timer:
    """Start a timer; pass it as ``record(..., start=t)`` to time only part of a notebook."""
    return Timer()


# ----------------------------------------------------------------------------- helpers

def to_jsonable(value, *, name: str = "value"):
    """Convert numpy / torch scalars and arrays, Paths and tuples to JSON types.

    NaN and ±inf become None with a warning naming ``name``; anything else that
    JSON cannot hold raises TypeError naming ``name``.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if not math.isfinite(v):
            warnings.warn(f"{name} is {v}; it is recorded as null", RuntimeWarning, stacklevel=3)
            return None
        return v
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v, name=f"{name}/{k}") for k, v in value.items()}
    torch = sys.modules.get("torch")  # only if the caller already imported it
    if torch is not None and isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        value = value.float().numpy() if value.dtype == torch.bfloat16 else value.numpy()
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return to_jsonable(value.item(), name=name)
        return [to_jsonable(v, name=f"{name}[{i}]") for i, v in enumerate(value.tolist())]
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, name=f"{name}[{i}]") for i, v in enumerate(value)]
    raise TypeError(f"{name} has type {type(value).__name__}, which a JSON record cannot hold; "
                    "convert it to a number, string, list or dict")


def _metrics_jsonable(metrics: Mapping) -> dict:
    """Metrics are numbers (or None), possibly nested in dicts by setting."""
    if not isinstance(metrics, Mapping):
        raise TypeError(f"metrics must be a dict of name -> number, got {type(metrics).__name__}")
    if not metrics:
        raise ValueError("metrics is empty: there is nothing to record")
    out = {}
    for k, v in metrics.items():
        if not isinstance(k, str) or not k:
            raise TypeError(f"metric names must be non-empty strings, got {k!r}")
        if k in META_FIELDS:
            raise ValueError(f"metric name {k!r} clashes with a record field; rename it")
        if isinstance(v, Mapping):
            out[k] = _metrics_jsonable(v)
            continue
        x = to_jsonable(v, name=f"metric {k!r}")
        if isinstance(x, list) and len(x) == 1:  # a one-element tensor/array is a scalar
            x = x[0]
        if x is not None and (isinstance(x, bool) or not isinstance(x, (int, float))):
            raise TypeError(f"metric {k!r} must be a number, got {x!r}; put curves and text in extra=")
        out[k] = x
    return out


def flatten_metrics(metrics: Mapping, prefix: str = "") -> dict:
    """``{"Unseen Motion": {"Acc": 1}}`` -> ``{"Unseen Motion/Acc": 1}``."""
    flat = {}
    for k, v in metrics.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            flat.update(flatten_metrics(v, key + "/"))
        else:
            flat[key] = v
    return flat


def describe_data(data) -> str:
    """A one-line description of a record's ``data`` (a string, or a dict with "name")."""
    if isinstance(data, str):
        if not data.strip():
            raise ValueError("data must describe the data set, e.g. 'synthetic creatures 64×16'")
        return data
    if isinstance(data, Mapping):
        if not data:
            raise ValueError("data must describe the data set; got an empty dict")
        rest = ", ".join(f"{k}={v}" for k, v in data.items() if k != "name")
        if "name" in data:
            return f"{data['name']} ({rest})" if rest else str(data["name"])
        return rest
    raise TypeError(f"data must be a string or a dict describing the data set, got {type(data).__name__}")


def current_notebook() -> str | None:
    """The running notebook's name (no ".ipynb") if the runner or Jupyter says it."""
    name = os.environ.get(NOTEBOOK_ENV)
    if name:
        return name
    session = os.environ.get("JPY_SESSION_NAME", "")  # set by jupyter_server for each kernel
    if session.endswith(".ipynb"):
        return Path(session).stem
    return None


def interactive_dir() -> Path:
    """The run folder of notebooks run by hand (module docstring); not created here.

    ``runs/interactive/`` of the fourdlib checkout, else ``<cache>/runs/interactive/``.
    """
    if (_CHECKOUT / "fourdlib").is_dir() and (_CHECKOUT / "notebooks").is_dir():
        return _CHECKOUT / "runs" / INTERACTIVE
    return cache_dir(create=False) / "runs" / INTERACTIVE


def output_dir(notebook: str | None = None) -> Path:
    """The folder where a notebook writes its views (HTML, figures); created if needed.

    Under ``fourd course`` it is ``<run>/<notebook>/`` (the run's index.html links
    every HTML file in it); by hand it is ``interactive_dir()/<notebook>/``.
    """
    env = os.environ.get(OUTPUT_DIR_ENV)
    path = Path(env) if env else interactive_dir() / (notebook or current_notebook() or INTERACTIVE)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._=-]+", "-", text).strip("-")
    if not slug:
        raise ValueError(f"variant {text!r} has no usable characters for a file name")
    return slug


def _environment(device) -> dict:
    """The record's device, gpu (a CUDA device's name, else None) and software versions."""
    torch = sys.modules.get("torch")  # a notebook that computed with torch has imported it
    if device is None:
        device = "cuda" if torch is not None and torch.cuda.is_available() else "cpu"
    kind = getattr(device, "type", None) or str(device).partition(":")[0]
    cuda = kind == "cuda" and torch is not None and torch.cuda.is_available()  # never fail a record here
    v = versions()
    return dict(device=str(device), gpu=device_name(device) if cuda else None,
                python=v["python"], torch=v["torch"], fourdlib=v["fourdlib"])


# ----------------------------------------------------------------------------- write / read

def record(metrics: Mapping, *, scale: str, seed: int, data, notebook: str | None = None,
           table: str | None = None, variant: str | None = None, device=None,
           extra: Mapping | None = None, path: str | Path | None = None,
           start: Timer | float | None = None) -> Path:
    """Write a notebook's result record (JSON) and return its path.

    metrics: ``{name: number}``, or ``{setting: {name: number}}`` to match a paper
        table with several settings ("Unseen Motion" / "Unseen Indiv.").
    scale, seed, data: the run's scale ("smoke"/"tiny"/"small"/"full"), seed, and a
        description of the data (string, or dict with a "name").
    table: the paper table these numbers reproduce (``fourdlib.repro.list_tables()``);
        its metric names must match the table's columns.
    variant: name of this result when a notebook records several (an ablation row).
    device: the device the numbers were computed on (default: cuda if available).
    extra: anything else JSON-able (curves, configs, text).
    path: write exactly here instead of the default place (module docstring).
    start: a ``timer()`` or a ``time.time()`` value; default: when the runner started the
        notebook (FOURD_STARTED_AT), else when fourdlib.repro was imported.
    """
    if not isinstance(scale, str) or not scale:
        raise ValueError(f"scale must be a non-empty string like 'tiny', got {scale!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {seed!r}")
    describe_data(data)  # validates
    metrics_json = _metrics_jsonable(metrics)
    if table is not None:
        table = get_table(table).id  # unknown id -> KeyError now, not at summary time
    if isinstance(start, Timer):
        started = start.start
    elif start is not None:
        started = float(start)
    else:
        started = float(os.environ.get(STARTED_ENV) or _IMPORTED_AT)

    notebook = notebook or current_notebook()
    if path is None:
        folder = Path(os.environ.get(RECORD_DIR_ENV) or interactive_dir())
        stem = notebook or INTERACTIVE
        # the table is part of the name: one notebook may record a "DynaTok" row in two tables
        parts = [stem] + [_slug(x) for x in (table, variant) if x]
        path = folder / f"{'.'.join(parts)}{RECORD_SUFFIX}"
    path = Path(path)

    rec = dict(
        schema=SCHEMA, notebook=notebook or "interactive", variant=variant, table=table,
        scale=scale, seed=int(seed), data=to_jsonable(data, name="data"),
        metrics=metrics_json, extra=to_jsonable(dict(extra or {}), name="extra"),
        commit=git_commit(), runtime_s=round(time.time() - started, 3),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **_environment(device),
    )
    with atomic_write(path, "w", encoding="utf-8") as f:  # a reader never sees half a record
        f.write(json.dumps(rec, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    return path


def read_record(path: str | Path) -> dict:
    """One record as a dict; a file that is not a record raises ValueError naming it."""
    path = Path(path)
    try:
        rec = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None
    missing = [k for k in ("notebook", "scale", "seed", "data", "metrics", "commit", "runtime_s")
               if k not in rec]
    if missing:
        raise ValueError(f"{path} is not a fourdlib record (missing {', '.join(missing)})")
    return rec


def load_records(run_dir: str | Path, *, long: bool = False) -> pd.DataFrame:
    """Every ``*.record.json`` under ``run_dir`` (recursively) as a DataFrame.

    Wide (default): one row per record; columns are the record fields (META_FIELDS,
    ``data`` as its one-line description) followed by one column per metric, nested
    metrics flattened to "setting/metric". ``long=True``: one row per metric value
    (notebook, variant, table, scale, seed, data, metric, value).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"no such folder: {run_dir}")
    rows = []
    for p in sorted(run_dir.rglob(f"*{RECORD_SUFFIX}")):
        rec = read_record(p)
        meta = {k: rec.get(k) for k in META_FIELDS}
        meta.update(data=describe_data(rec["data"]), path=str(p))
        rows.append((meta, flatten_metrics(rec["metrics"])))
    if long:
        cols = ["notebook", "variant", "table", "scale", "seed", "data", "metric", "value"]
        recs = [dict({k: m[k] for k in cols[:6]}, metric=k, value=np.nan if v is None else v)
                for m, metrics in rows for k, v in metrics.items()]
        return pd.DataFrame.from_records(recs, columns=cols)
    metric_cols = list(dict.fromkeys(k for _, metrics in rows for k in metrics))
    recs = [dict(m, **{k: metrics.get(k, np.nan) for k in metric_cols}) for m, metrics in rows]
    df = pd.DataFrame.from_records(recs, columns=list(META_FIELDS) + metric_cols)
    for k in metric_cols:  # null (NaN in the run) -> NaN, so the column stays numeric
        df[k] = pd.to_numeric(df[k], errors="coerce")
    return df


__all__ = ["record", "timer", "Timer", "load_records", "read_record", "output_dir", "git_commit",
           "describe_data", "to_jsonable", "flatten_metrics", "current_notebook", "interactive_dir",
           "RECORD_DIR_ENV", "NOTEBOOK_ENV", "OUTPUT_DIR_ENV", "STARTED_ENV", "RECORD_SUFFIX"]
