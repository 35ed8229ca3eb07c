"""The run machinery (fourdlib.train.runs) is generic: a toy second method, unrelated to
DynaTok, saves, loads, resumes and load-or-trains through it with no method-specific code."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from fourdlib.cli import build_parser, main as fourd
from fourdlib.models import METHODS, get_method, load_model as load_any
from fourdlib.train import CheckpointError, RunMismatchError, TrainConfig, load_checkpoint, runs


@dataclass(frozen=True)
class ToyConfig:
    hidden: int = 8
    steps: int = 6
    batch_size: int = 4
    lr: float = 1e-2
    warmup_steps: int = 1
    weight_decay: float = 0.0

    def train_config(self, **overrides):
        return TrainConfig(**{**dict(steps=self.steps, batch_size=self.batch_size, lr=self.lr,
                                     warmup_steps=self.warmup_steps, weight_decay=self.weight_decay), **overrides})


class ToyModel(nn.Module):
    def __init__(self, cfg: ToyConfig):
        super().__init__()
        self.cfg = cfg
        self.net = nn.Sequential(nn.Linear(2, cfg.hidden), nn.Tanh(), nn.Linear(cfg.hidden, 1))

    def forward(self, x):
        return self.net(x)


class ToyData(Dataset):
    """y = x0 - x1 on a fixed grid; `scale` is a dataset option (part of the run's data identity)."""

    def __init__(self, scale: float = 1.0):
        g = torch.Generator().manual_seed(0)
        self.x = torch.rand(32, 2, generator=g)
        self.y = scale * (self.x[:, :1] - self.x[:, 1:])

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i]}


def toy_loss(model, batch):
    return torch.nn.functional.mse_loss(model(batch["x"]), batch["y"])


def toy_dataset(cfg, folder, split, train=True, scale: float = 1.0):
    return ToyData(scale)


@pytest.fixture
def toy(tmp_path, monkeypatch):
    monkeypatch.setenv("FOURD_CACHE", str(tmp_path / "cache"))
    return runs.Method(name="toy", config_cls=ToyConfig, model_cls=ToyModel, loss=toy_loss,
                       make_dataset=toy_dataset, configs={"smoke": ToyConfig()}, committed=tmp_path / "committed")


@pytest.fixture
def folder(tmp_path):
    """A data folder as the machinery sees it: only its manifest's generator parameters count."""
    path = tmp_path / "data"
    path.mkdir()
    (path / "manifest.json").write_text(json.dumps({"info": {"generator": "toy", "kind": "grid", "seed": 0},
                                                    "sequences": []}))
    return path


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_save_and_load_rebuild_the_model_from_its_stored_config(toy, tmp_path):
    model = ToyModel(ToyConfig(hidden=5))
    path = runs.save_model(tmp_path / "m.pt", model, toy, step=3)
    loaded = runs.load_model(path, toy)
    assert loaded.cfg == ToyConfig(hidden=5) and _same(model, loaded) and not loaded.training
    with pytest.raises(CheckpointError, match="another config: hidden: checkpoint 5 vs given 8"):
        runs.load_model(path, toy, config=ToyConfig())
    other = dataclasses.replace(toy, name="other")
    with pytest.raises(CheckpointError, match="holds a 'toy' model, not 'other'"):
        runs.load_model(path, other)
    # the registry refuses a method it does not have, by name
    with pytest.raises(CheckpointError, match="names method 'toy', which fourdlib does not have"):
        load_any(path)


def test_load_or_train_misses_then_hits_and_every_identity_part_counts(toy, folder):
    cfg = ToyConfig()
    m1, h1, info1 = runs.load_or_train(toy, cfg, folder, "run", progress=False, device="cpu")
    assert info1["source"] == "trained" and len(h1) and h1["step"].iloc[-1] == cfg.steps
    m2, h2, info2 = runs.load_or_train(toy, cfg, folder, "run", progress=False, device="cpu")
    assert info2["source"] == "cache" and _same(m1, m2)
    state = load_checkpoint(info1["path"])
    assert state["run"] == runs.run_identity(toy, cfg, cfg.steps, 0, runs.data_identity(folder, "train"))
    assert state["train_seconds"] == pytest.approx(h1["time"].iloc[-1], abs=0.1)
    # each part of the identity: config, steps, seed, data options -> a miss (trains anew)
    for change in (dict(cfg=ToyConfig(hidden=4)), dict(steps=4), dict(seed=1), dict(scale=2.0)):
        kw = {"cfg": cfg, **change}
        _, _, info = runs.load_or_train(toy, kw.pop("cfg"), folder, "run", progress=False, device="cpu", **kw)
        assert info["source"] == "trained", change


def test_config_growth_and_inference_fields_keep_a_run(toy, folder):
    """A field added to the config after a run was saved (its default = the old behaviour),
    and the fields that only say how to sample (Method.inference_fields), do not make a
    saved run another run; a changed default of a training field does."""
    @dataclasses.dataclass(frozen=True)
    class Grown(ToyConfig):
        new_option: str = "old behaviour"
        sample_steps: int = 4

    grown = dataclasses.replace(toy, config_cls=Grown, inference_fields=("sample_steps",))
    old_model, _, info = runs.load_or_train(toy, ToyConfig(), folder, "run", progress=False, device="cpu")
    m, _, info2 = runs.load_or_train(grown, Grown(sample_steps=9), folder, "run", progress=False, device="cpu")
    assert info2["source"] == "cache" and _same(old_model, m)
    assert m.cfg.sample_steps == 9  # the loaded run samples as asked
    _, _, info3 = runs.load_or_train(grown, Grown(sample_steps=2), folder, "run", progress=False, device="cpu")
    assert info3["source"] == "cache"
    _, _, info4 = runs.load_or_train(grown, Grown(new_option="new"), folder, "run", progress=False, device="cpu")
    assert info4["source"] == "trained"


def test_committed_run_is_found_first(toy, folder):
    cfg = ToyConfig()
    m1, _, info = runs.load_or_train(toy, cfg, folder, "run", progress=False, device="cpu")
    toy.committed_dir.mkdir(parents=True)
    (toy.committed_dir / "run.pt").write_bytes(open(info["path"], "rb").read())
    m2, _, info2 = runs.load_or_train(toy, cfg, folder, "run", progress=False, device="cpu")
    assert info2["source"] == "repository" and _same(m1, m2)


def test_interrupted_run_resumes_exactly_and_counts_all_its_time(toy, folder, monkeypatch):
    """Killed after its step-100 checkpoint, a 200-step run resumes to the weights of a run never
    stopped, and its train_seconds covers both segments (the history carries the clock)."""
    cfg = ToyConfig(steps=200)
    full, _, _ = runs.load_or_train(toy, cfg, folder, "full", progress=False, device="cpu")

    class Killed(Exception):
        pass

    real_step, done = torch.optim.AdamW.step, []

    def step_then_die(self, *a, **k):
        if len(done) == 150:
            raise Killed
        done.append(1)
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "step", step_then_die)
    with pytest.raises(Killed):
        runs.load_or_train(toy, cfg, folder, "part", progress=False, device="cpu")
    monkeypatch.setattr(torch.optim.AdamW, "step", real_step)
    resume = runs.checkpoint_paths(toy, "part")[1].with_suffix(".resume.pt")
    first_segment = load_checkpoint(resume)["history"][-1]["time"]
    assert load_checkpoint(resume)["step"] == 100
    resumed, hist, info = runs.load_or_train(toy, cfg, folder, "part", progress=False, device="cpu")
    assert _same(full, resumed) and not resume.exists()
    assert info["train_seconds"] == pytest.approx(hist["time"].iloc[-1]) and info["train_seconds"] > first_segment
    assert hist["step"].iloc[0] < 100  # the first segment's log is kept


def test_resume_file_of_another_identity(toy, folder):
    """A resume file written for other data under the same name is refused; restart discards it."""
    cfg = ToyConfig(steps=8)
    resume = runs.checkpoint_paths(toy, "run")[1].with_suffix(".resume.pt")
    tc = cfg.train_config(seed=0, device="cpu", progress=False, warmup_steps=0, log_every=1,
                          ckpt_path=str(resume), ckpt_every=100)
    other = runs.run_identity(toy, cfg, cfg.steps, 0, runs.data_identity(folder, "train", scale=2.0))
    torch.manual_seed(0)
    runs.train(ToyModel(cfg), toy_loss, ToyData(2.0), dataclasses.replace(tc, steps=4), identity=other)
    with pytest.raises(RunMismatchError, match=r"data differs.*restart"):
        runs.load_or_train(toy, cfg, folder, "run", progress=False, device="cpu")
    assert resume.exists()  # refused, not deleted
    _, _, info = runs.load_or_train(toy, cfg, folder, "run", progress=False, device="cpu", restart=True)
    assert info["source"] == "trained" and not resume.exists()
    assert load_checkpoint(info["path"])["data"]["scale"] == 1.0 if "scale" in load_checkpoint(info["path"])["data"] \
        else load_checkpoint(info["path"])["run"]["data"] == runs.data_identity(folder, "train")


def test_registry_and_cli_list_the_methods(capsys):
    assert "dynatok" in METHODS and get_method("dynatok").name == "dynatok"
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        get_method("nope")
    parser = build_parser()
    for command in ("train", "infer"):
        with pytest.raises(SystemExit):
            parser.parse_args([command, "--help"])
        assert "dynatok" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        fourd(["train", "nope", "--name", "x"])
    assert e.value.code == 2 and "invalid choice: 'nope'" in capsys.readouterr().err
