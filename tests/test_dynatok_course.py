"""Load-or-train: a run is identified by config, steps, seed and data; matching
checkpoints load (bit-identical weights), anything else trains."""
import dataclasses
import json

import pytest
import torch

from fourdlib.data.synthetic import generate_dataset
from fourdlib.models.dynatok import course as dt
from fourdlib.models.dynatok import CONFIGS


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("static")
    generate_dataset(path, "primitives", 3, num_frames=5, image_size=(32, 32), n_surface=200, workers=1,
                     progress=False, maker_options={"motion": 0.0, "deform": 0.0})
    return path


pytestmark = pytest.mark.usefixtures("cache")  # conftest: a fresh cache, no committed runs


def _same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_trains_once_then_loads_the_same_weights(folder, cache):
    cfg = CONFIGS["smoke"]
    m1, h1, info1 = dt.load_or_train(cfg, folder, "run", steps=3, progress=False, device="cpu")
    assert info1["source"] == "trained" and len(h1) >= 1 and "loss" in h1
    m2, h2, info2 = dt.load_or_train(cfg, folder, "run", steps=3, progress=False, device="cpu")
    assert info2["source"] == "cache" and _same_weights(m1, m2) and h1.equals(h2)
    assert not m2.training
    assert not list(cache.rglob("*.resume.pt"))  # the resume checkpoint is cleaned up


@pytest.mark.parametrize("change", ["config", "steps", "seed", "data"])
def test_a_different_run_under_the_same_name_retrains(folder, tmp_path, change):
    cfg = CONFIGS["smoke"]
    dt.load_or_train(cfg, folder, "run", steps=2, progress=False, device="cpu")
    kw = dict(steps=2, seed=0)
    other_folder = folder
    if change == "config":
        cfg = dataclasses.replace(cfg, temporal=False)
    elif change == "steps":
        kw["steps"] = 3
    elif change == "seed":
        kw["seed"] = 1
    else:
        other_folder = tmp_path / "moving"
        generate_dataset(other_folder, "primitives", 3, num_frames=5, image_size=(32, 32), n_surface=200,
                         workers=1, progress=False)
    _, _, info = dt.load_or_train(cfg, other_folder, "run", progress=False, device="cpu", **kw)
    assert info["source"] == "trained"


def test_committed_checkpoint_is_preferred_and_identity_ignores_the_path(folder, tmp_path, monkeypatch):
    cfg = CONFIGS["smoke"]
    m1, _, info = dt.load_or_train(cfg, folder, "run", steps=2, progress=False, device="cpu")
    repo = tmp_path / "repo_checkpoints" / "dynatok"  # checkpoints/<method>/
    repo.mkdir(parents=True)
    (repo / "run.pt").write_bytes(open(info["path"], "rb").read())
    copy = tmp_path / "copy"  # the same data in another folder: same identity
    copy.mkdir()
    for f in folder.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    m2, _, info2 = dt.load_or_train(cfg, copy, "run", steps=2, progress=False, device="cpu")
    assert info2["source"] == "repository" and _same_weights(m1, m2)


def test_a_corrupt_cached_checkpoint_is_retrained(folder, cache):
    cfg = CONFIGS["smoke"]
    _, _, info = dt.load_or_train(cfg, folder, "run", steps=2, progress=False, device="cpu")
    with open(info["path"], "r+b") as f:
        f.truncate(100)
    _, _, info2 = dt.load_or_train(cfg, folder, "run", steps=2, progress=False, device="cpu")
    assert info2["source"] == "trained"


def test_course_data_names_and_scales(tmp_path):
    with pytest.raises(ValueError, match="unknown data set"):
        dt.course_data("nope", "smoke", root=tmp_path)
    with pytest.raises(ValueError, match="convert DeformingThings4D or Kubric"):
        dt.course_data("creatures", "full", root=tmp_path)
    folder = dt.course_data("static", "smoke", root=tmp_path, progress=False)
    info = json.loads((folder / "manifest.json").read_text())["info"]
    assert info["maker_options"] == {"motion": 0.0, "deform": 0.0}
    assert info["num_sequences"] == dt.COURSE_DATA["smoke"]["sequences"]
    stamp = (folder / "manifest.json").stat().st_mtime_ns
    assert dt.course_data("static", "smoke", root=tmp_path) == folder  # cached, not regenerated
    assert (folder / "manifest.json").stat().st_mtime_ns == stamp
    smaller = {**dt.COURSE_DATA["smoke"], "sequences": 3}    # the sizes changed: generated again
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(dt.COURSE_DATA, "smoke", smaller)
        dt.course_data("static", "smoke", root=tmp_path, progress=False)
    assert json.loads((folder / "manifest.json").read_text())["info"]["num_sequences"] == 3


def test_fourd_train_writes_the_run_a_notebook_then_loads(folder, cache, capsys):
    from fourdlib.cli import main

    assert main(["train", "dynatok", "--scale", "smoke", "--data", str(folder), "--name", "cli_run",
                 "--steps", "2", "--set", "temporal=false", "--device", "cpu"]) == 0
    assert "trained ->" in capsys.readouterr().out
    cfg = dataclasses.replace(CONFIGS["smoke"], temporal=False)
    _, _, info = dt.load_or_train(cfg, folder, "cli_run", steps=2, progress=False, device="cpu")
    assert info["source"] == "cache"


def test_fourd_train_run_takes_the_course_table(cache, capsys, monkeypatch):
    """--run KEY trains exactly the run a notebook's course_run asks for (same name and
    identity), and refuses settings given beside it."""
    from fourdlib.cli import main

    monkeypatch.setitem(dt.RUNS, "creatures_perframe", {**dt.RUNS["creatures_perframe"], "steps": {"smoke": 2}})
    assert main(["train", "dynatok", "--run", "creatures_perframe", "--scale", "smoke", "--device", "cpu"]) == 0
    assert "smoke_creatures_perframe: trained ->" in capsys.readouterr().out
    _, _, info = dt.course_run("creatures_perframe", "smoke", device="cpu", progress=False)
    assert info["source"] == "cache"
    assert main(["train", "dynatok", "--run", "creatures_perframe", "--scale", "smoke", "--set", "dim=8"]) == 2
    assert "drop --set" in capsys.readouterr().err
    assert main(["train", "dynatok", "--scale", "smoke"]) == 2
    assert "--name" in capsys.readouterr().err
    assert main(["train", "dynatok", "--scale", "smoke", "--name", "x"]) == 2   # which data?
    assert "--dataset" in capsys.readouterr().err
