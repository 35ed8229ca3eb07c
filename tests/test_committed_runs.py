"""Every committed run (checkpoints/<method>/*.pt) loads with today's code and has the identity
the notebooks compute today, else course_run would silently retrain it instead of loading it:
its name is "<scale>_<key of the method's course.RUNS>", and its config, steps, seed and data
are that entry's; it carries its provenance (history, training time, device, commit)."""
from __future__ import annotations

import dataclasses
import importlib

import pytest
import torch

from fourdlib.models import METHODS, get_method, load_model
from fourdlib.train.checkpoint import load_checkpoint

COMMITTED = [(name, path) for name in sorted(METHODS) if get_method(name).committed_dir.exists()
             for path in sorted(get_method(name).committed_dir.glob("*.pt"))]


@pytest.mark.skipif(not COMMITTED, reason="no checkpoints committed under checkpoints/")
@pytest.mark.parametrize("name, path", COMMITTED, ids=[f"{n}/{p.stem}" for n, p in COMMITTED])
def test_committed_run_loads_and_is_what_the_notebooks_ask_for(name, path):
    method, course = get_method(name), importlib.import_module(METHODS[name] + ".course")
    assert path.stat().st_size <= 10 * 2**20, f"{path.name} is over the 10 MB a committed run may weigh"
    model = load_model(path)
    assert model.cfg.__class__ is method.config_cls
    assert all(torch.isfinite(p).all() for p in model.parameters())
    state = load_checkpoint(path)
    scale, key = path.stem.split("_", 1)
    assert key in course.RUNS, f"{path.name} is not a course run (RUNS has {sorted(course.RUNS)})"
    expected, dataset, steps, run_name = course.run_spec(key, scale)
    assert run_name == path.stem
    how_to_sample = {k: getattr(expected, k) for k in method.inference_fields}   # not part of a run
    assert dataclasses.replace(model.cfg, **how_to_sample) == expected, \
        f"{path.name}: config differs from what RUNS[{key!r}] asks for; retrain and recommit it"
    assert state["step"] == steps and state["seed"] == 0
    kind, options = course.DATASETS[dataset]
    data, size = state["data"], course.COURSE_DATA[scale]
    assert (data["kind"], data["num_sequences"], data["num_frames"], data["maker_options"], data["split"]) == \
        (kind, size["sequences"], size["num_frames"], options, "train")
    for field in ("history", "train_seconds", "device", "commit"):
        assert state[field], f"{path.name} lacks its provenance field {field!r}"
