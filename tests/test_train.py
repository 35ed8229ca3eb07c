"""fourdlib.train: lr schedule, optimisation, exact resume, 2-process DDP, checkpoint errors."""
from __future__ import annotations

import argparse
import importlib.util
import math
import random
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import IterableDataset, TensorDataset

from fourdlib.train import (CheckpointError, RunMismatchError, TrainConfig, load_checkpoint, lr_at, make_optimizer,
                            rng_state, save_checkpoint, seed_everything, train)

# The toy problem (data, model, loss) is shared with the script the DDP test runs under torchrun.
WORKER = Path(__file__).with_name("ddp_worker.py")
_spec = importlib.util.spec_from_file_location("ddp_worker", WORKER)
toy = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(toy)


def noisy_mse(model, batch):
    """A loss that draws from python's and numpy's RNGs (the model's dropout draws from torch's),
    so a resume that forgot any of the three streams would end with different weights."""
    x, y = batch
    scale = random.uniform(0.5, 1.5)
    jitter = torch.from_numpy(np.random.standard_normal(tuple(y.shape)).astype(np.float32)).to(y.device)
    return scale * F.mse_loss(model(x), y + 0.05 * jitter)


def params_equal(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(p.cpu(), q.cpu()) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def without_time(history):
    return [{k: v for k, v in h.items() if k != "time"} for h in history]


# ----------------------------------------------------------------------------- schedule
def test_lr_schedule_warmup_then_cosine():
    cfg = TrainConfig(steps=101, warmup_steps=10, lr=1.0, min_lr_ratio=0.1)
    # warm-up: lr * (step + 1) / 10
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(4, cfg) == pytest.approx(0.5)
    assert lr_at(9, cfg) == pytest.approx(1.0)
    # cosine over steps 10 .. 100 (90 steps) from 1.0 to 0.1
    assert lr_at(10, cfg) == pytest.approx(1.0)
    assert lr_at(55, cfg) == pytest.approx(0.55)  # halfway: (1 + 0.1) / 2
    assert lr_at(32.5, cfg) == pytest.approx(0.1 + 0.9 * (1 + math.sqrt(0.5)) / 2)  # a quarter
    assert lr_at(100, cfg) == pytest.approx(0.1)  # the last step is at min_lr
    lrs = np.array([lr_at(s, cfg) for s in range(101)])
    assert (np.diff(lrs[:10]) > 0).all() and (np.diff(lrs[10:]) < 0).all()
    assert lr_at(0, TrainConfig(steps=5, warmup_steps=0, lr=0.3)) == pytest.approx(0.3)


def test_config_errors():
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match="warmup_steps .* must be below steps"):
        TrainConfig(steps=10, warmup_steps=10)
    with pytest.raises(ValueError, match="amp must be one of .*fp16 needs a GradScaler"):
        TrainConfig(amp="fp16")
    with pytest.raises(ValueError, match="min_lr_ratio"):
        TrainConfig(min_lr_ratio=2.0)


# ----------------------------------------------------------------------------- optimisation
def test_training_reaches_least_squares_solution():
    """A linear model trained full-batch must land on the closed-form least-squares fit."""
    data = toy.make_data()
    x, y = data.tensors
    xb = torch.cat([x, torch.ones(len(x), 1)], 1).double()
    sol = torch.linalg.lstsq(xb, y.double()).solution  # (DIM + 1, 2): weights, then bias
    torch.manual_seed(0)
    model = nn.Linear(toy.DIM, 2)
    cfg = TrainConfig(steps=400, batch_size=len(data), lr=0.05, warmup_steps=10, weight_decay=0.0,
                      log_every=50, progress=False)
    history = train(model, lambda m, b: F.mse_loss(m(b[0]), b[1]), data, cfg)
    torch.testing.assert_close(model.weight.detach().double(), sol[:-1].T, atol=2e-3, rtol=0)
    torch.testing.assert_close(model.bias.detach().double(), sol[-1], atol=2e-3, rtol=0)
    assert [h["step"] for h in history] == list(range(50, 401, 50))
    best = ((xb @ sol - y.double()) ** 2).mean().item()  # the least-squares residual
    assert history[-1]["loss"] == pytest.approx(best, rel=1e-3)
    assert all(h["lr"] == pytest.approx(lr_at(h["step"] - 1, cfg)) for h in history)


def test_weight_decay_only_on_matrices():
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    groups = make_optimizer(model, TrainConfig(weight_decay=0.1)).param_groups
    decayed = {id(p) for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decayed == {id(model[0].weight)}


@pytest.mark.parametrize("amp, dtype", [("bf16", torch.bfloat16), ("off", torch.float32), ("auto", torch.float32)])
def test_autocast_modes_on_cpu(amp, dtype):
    seen = []

    def loss_fn(model, batch):
        pred = model(batch[0])
        seen.append(pred.dtype)
        return F.mse_loss(pred.float(), batch[1])

    data = toy.make_data()
    model = toy.make_model()
    before = toy.mse(model, data.tensors)[0].item()  # loss on the whole set, in fp32
    train(model, loss_fn, data, TrainConfig(steps=60, batch_size=8, lr=3e-2, warmup_steps=2, amp=amp,
                                            progress=False))
    assert set(seen) == {dtype}  # "auto" is off on CPU
    assert model[0].weight.dtype == torch.float32  # autocast leaves the weights in fp32
    assert toy.mse(model, data.tensors)[0].item() < 0.2 * before


def test_bad_inputs_give_clear_errors():
    cfg = TrainConfig(steps=3, batch_size=8, warmup_steps=1, progress=False)
    tiny = TensorDataset(torch.randn(3, toy.DIM), torch.randn(3, 2))
    with pytest.raises(ValueError, match="3 samples, fewer than one batch"):
        train(toy.make_model(), toy.mse, tiny, cfg)

    class Stream(IterableDataset):
        def __iter__(self):
            yield from ()
    with pytest.raises(TypeError, match="map-style Dataset"):
        train(toy.make_model(), toy.mse, Stream(), cfg)
    with pytest.raises(TypeError, match="loss_fn must return a scalar tensor"):
        train(toy.make_model(), lambda m, b: (m(b[0]) - b[1]) ** 2, toy.make_data(), cfg)
    with pytest.raises(TypeError, match=r"logs must be scalars, got shapes \{'err': \(8, 2\)\}"):
        train(toy.make_model(), lambda m, b: (F.mse_loss(m(b[0]), b[1]), {"err": m(b[0]) - b[1]}),
              toy.make_data(), TrainConfig(steps=3, batch_size=8, warmup_steps=1, log_every=1, progress=False))
    x, y = toy.make_data().tensors
    y = y.clone()
    y[5] = float("nan")
    with pytest.raises(FloatingPointError, match="loss is nan at step 1"):
        train(toy.make_model(), toy.mse, TensorDataset(x, y), TrainConfig(steps=3, batch_size=48, warmup_steps=1,
                                                                         log_every=1, progress=False))


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@needs_cuda
def test_cuda_uses_bf16_autocast_by_default():
    seen = []

    def loss_fn(model, batch):
        pred = model(batch[0])
        seen.append((pred.dtype, pred.device.type))
        return F.mse_loss(pred.float(), batch[1])
    train(toy.make_model(), loss_fn, toy.make_data(), TrainConfig(steps=3, batch_size=8, warmup_steps=1,
                                                                  device="cuda", progress=False))
    assert set(seen) == {(torch.bfloat16, "cuda")}


# ----------------------------------------------------------------------------- resume
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
def test_resume_is_exact(tmp_path, device):
    """Stopped at step 13 (last checkpoint: step 10, in the middle of an epoch) and resumed,
    training ends with the same weights, optimizer state and history as a run never stopped."""
    data = toy.make_data()  # 48 samples / batch 8 = 6 batches an epoch: step 10 is mid-epoch 1
    base = dict(steps=20, batch_size=8, lr=1e-2, warmup_steps=3, log_every=1, ckpt_every=5, progress=False,
                device=device)

    full = toy.make_model(dropout=0.3)
    full_cfg = TrainConfig(**base, ckpt_path=str(tmp_path / "full.pt"))
    full_history = train(full, noisy_mse, data, full_cfg)

    cfg = TrainConfig(**base, ckpt_path=str(tmp_path / "run.pt"))

    def crashing(model, batch, calls=[0]):  # noqa: B006 - counts calls across steps
        calls[0] += 1
        if calls[0] == 13:
            raise toy.Interrupt("killed at step 13")
        return noisy_mse(model, batch)

    with pytest.raises(toy.Interrupt):
        train(toy.make_model(dropout=0.3), crashing, data, cfg)
    assert load_checkpoint(cfg.ckpt_path)["step"] == 10
    shutil.copy(cfg.ckpt_path, tmp_path / "step10.pt")

    resumed = toy.make_model(seed=123, dropout=0.3)  # other initial weights: the file must win
    assert not params_equal(resumed, full)
    history = train(resumed, noisy_mse, data, cfg)
    assert params_equal(resumed, full)
    assert without_time(history) == without_time(full_history)
    assert [h["step"] for h in history] == list(range(1, 21))
    opt_a = load_checkpoint(full_cfg.ckpt_path)["optimizer"]["state"]
    opt_b = load_checkpoint(cfg.ckpt_path)["optimizer"]["state"]
    assert all(torch.equal(opt_a[i][k], opt_b[i][k]) for i in opt_a for k in opt_a[i])

    # Done already: train() loads the final weights and returns at once.
    again = toy.make_model(seed=7, dropout=0.3)
    assert without_time(train(again, noisy_mse, data, cfg)) == without_time(full_history)
    assert params_equal(again, full)

    # The comparison can fail: the same resume with other RNG states ends elsewhere.
    state = load_checkpoint(tmp_path / "step10.pt")
    seed_everything(999)
    tampered = {k: v for k, v in state.items() if k not in ("format", "version", "step", "model", "optimizer")}
    tampered["rng"] = [rng_state()]
    other = toy.make_model(dropout=0.3)
    opt = make_optimizer(other, cfg)
    load_checkpoint(tmp_path / "step10.pt", other, opt)
    save_checkpoint(tmp_path / "tampered.pt", other, opt, step=10, **tampered)
    train(other, noisy_mse, data, TrainConfig(**base, ckpt_path=str(tmp_path / "tampered.pt")))
    assert not params_equal(other, full)


def test_resume_with_changed_config_is_refused(tmp_path):
    """A resumed run must be the same run: other settings are refused (they used to only warn,
    and the file then recorded the new settings), and resume=False starts over."""
    base = dict(steps=6, batch_size=8, lr=1e-2, warmup_steps=1, progress=False, ckpt_path=str(tmp_path / "c.pt"))
    train(toy.make_model(), toy.mse, toy.make_data(), TrainConfig(**base), identity={"data": "a"})
    before = Path(base["ckpt_path"]).read_bytes()
    with pytest.raises(RunMismatchError, match=r"steps 6 -> 8; lr 0.01 -> 0.02.*resume=False"):
        train(toy.make_model(), toy.mse, toy.make_data(), TrainConfig(**{**base, "steps": 8, "lr": 2e-2}),
              identity={"data": "a"})
    with pytest.raises(RunMismatchError, match="data differs"):  # same settings, another run identity
        train(toy.make_model(), toy.mse, toy.make_data(), TrainConfig(**base), identity={"data": "b"})
    assert Path(base["ckpt_path"]).read_bytes() == before  # the refused runs wrote nothing
    train(toy.make_model(), toy.mse, toy.make_data(), TrainConfig(**{**base, "steps": 8, "lr": 2e-2}), resume=False)
    assert load_checkpoint(base["ckpt_path"])["step"] == 8


def test_ema_weights_are_the_average_and_resume_exactly(tmp_path):
    """ema > 0: the model train() leaves behind holds the weight average (not the last weights),
    equal to an average recomputed by hand from the raw weights of every step, and a run
    stopped and resumed ends with the same average as one never stopped."""
    data = toy.make_data()
    base = dict(steps=12, batch_size=8, lr=1e-2, warmup_steps=2, progress=False, ckpt_every=4, ema=0.9)
    raw_steps = []

    def recording(model, batch):  # the raw weights before each step's update
        raw_steps.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return toy.mse(model, batch)

    full = toy.make_model()
    train(full, recording, data, TrainConfig(**base, ckpt_path=str(tmp_path / "full.pt")))
    final_raw = load_checkpoint(tmp_path / "full.pt")["model"]   # the file keeps the raw weights
    raw = raw_steps[1:] + [final_raw]                             # weights after steps 1..12
    avg = {k: v.float().clone() for k, v in raw_steps[0].items()}
    for step, w in enumerate(raw):
        d = min(0.9, (1 + step) / (10 + step))
        avg = {k: d * avg[k] + (1 - d) * w[k].float() for k in avg}
    assert all(torch.allclose(full.state_dict()[k], avg[k], atol=1e-6) for k in avg)
    assert not all(torch.equal(full.state_dict()[k], final_raw[k]) for k in avg)  # it is not the last weights

    cfg = TrainConfig(**base, ckpt_path=str(tmp_path / "run.pt"))

    def crashing(model, batch, calls=[0]):  # noqa: B006 - counts calls across steps
        calls[0] += 1
        if calls[0] == 7:
            raise toy.Interrupt("killed at step 7")
        return toy.mse(model, batch)

    with pytest.raises(toy.Interrupt):
        train(toy.make_model(), crashing, data, cfg)
    resumed = toy.make_model(seed=5)
    train(resumed, toy.mse, data, cfg)
    assert params_equal(resumed, full)
    train(toy.make_model(), toy.mse, data, TrainConfig(**{**base, "ema": 0.0}, ckpt_path=str(tmp_path / "e.pt")))
    with pytest.raises(RunMismatchError, match="ema"):  # a file written without the average is not this run
        train(toy.make_model(), toy.mse, data, TrainConfig(**base, ckpt_path=str(tmp_path / "e.pt")))
    with pytest.raises(ValueError, match="ema"):
        TrainConfig(ema=1.0)


def test_eval_hook_runs_in_eval_mode_and_leaves_training_unchanged():
    calls = []

    def eval_fn(model, step):
        calls.append((step, model.training, torch.is_grad_enabled()))
        # draws from every RNG: none of it may leak into the training run
        return {"score": float(step), "noise": torch.rand(()).item() + np.random.rand() + random.random()}

    cfg = TrainConfig(steps=12, batch_size=8, lr=1e-2, warmup_steps=2, log_every=4, eval_every=5,
                      progress=False)
    with_eval, plain = toy.make_model(dropout=0.3), toy.make_model(dropout=0.3)
    history = train(with_eval, noisy_mse, toy.make_data(), cfg, eval_fn=eval_fn)
    train(plain, noisy_mse, toy.make_data(), cfg)
    assert calls == [(5, False, False), (10, False, False), (12, False, False)]
    assert params_equal(with_eval, plain)
    assert with_eval.training
    assert [(h["step"], h.get("eval/score"), "loss" in h) for h in history] == [
        (4, None, True), (5, 5.0, False), (8, None, True), (10, 10.0, False), (12, 12.0, True)]


# ----------------------------------------------------------------------------- 2 processes
def test_two_processes_match_one(tmp_path):
    """torchrun, 2 processes x batch 3 (gloo, CPU) must train the same weights as 1 process x batch 6."""
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node=2", str(WORKER), str(tmp_path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]

    start = toy.make_model()
    single = toy.make_model()
    history = train(single, toy.mse, toy.make_data(), TrainConfig(**{**toy.CFG, "batch_size": 2 * toy.CFG["batch_size"]}))
    for name, w in single.state_dict().items():
        assert torch.equal(ranks[0]["model"][name], ranks[1]["model"][name])  # DDP keeps ranks equal
        torch.testing.assert_close(ranks[0]["model"][name], w, rtol=1e-5, atol=1e-6)
        assert (w - start.state_dict()[name]).abs().max() > 1e-2  # it did move: not a trivial match
    # losses / grad norms are averaged over processes: the same numbers as one process
    for a, b in zip(ranks[0]["history"], history):
        assert a["step"] == b["step"]
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        assert a["mse_x2"] == pytest.approx(b["mse_x2"], rel=1e-5)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4)

    # exact resume under DDP, with dropout: both processes' RNG streams were saved
    for r in ranks:
        assert all(torch.equal(r["drop_full"][k], r["drop_resumed"][k]) for k in r["drop_full"])
    ckpt = load_checkpoint(tmp_path / "ddp_ckpt.pt")
    assert len(ckpt["rng"]) == 2 and not torch.equal(ckpt["rng"][0]["torch"], ckpt["rng"][1]["torch"])
    # a loss_fn calling model.module(...) skips DDP's gradient averaging: caught at step 1
    for r in ranks:
        assert "gradients differ between processes" in r["bypass_error"]


# ----------------------------------------------------------------------------- checkpoints
@pytest.fixture
def good_ckpt(tmp_path):
    model = toy.make_model()
    opt = make_optimizer(model, TrainConfig())
    toy.mse(model, toy.make_data()[:8])[0].backward()
    opt.step()
    return save_checkpoint(tmp_path / "good.pt", model, opt, step=3, history=[{"step": 3, "loss": 1.0}]), model


def test_checkpoint_round_trip(good_ckpt):
    path, model = good_ckpt
    fresh = toy.make_model(seed=5)
    opt = make_optimizer(fresh, TrainConfig())
    state = load_checkpoint(path, fresh, opt)
    assert state["step"] == 3 and state["history"] == [{"step": 3, "loss": 1.0}]
    assert params_equal(fresh, model)
    assert len(opt.state) == len(list(model.parameters()))


def test_corrupt_truncated_and_foreign_checkpoints(good_ckpt, tmp_path):
    path, model = good_ckpt
    raw = path.read_bytes()
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nope.pt")

    bad = tmp_path / "bad.pt"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(CheckpointError, match="truncated or corrupt checkpoint at .*bad.pt"):
        load_checkpoint(bad)
    bad.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt .*zip directory at its end is missing"):
        load_checkpoint(bad)
    bad.write_bytes(b"")
    with pytest.raises(CheckpointError, match="the file is empty"):
        load_checkpoint(bad)

    # Flip bytes inside a tensor record: the archive still opens, torch.load alone would
    # return wrong weights, the CRC32 check refuses it.
    with zipfile.ZipFile(path) as z:
        info = next(i for i in z.infolist() if "/data/" in i.filename and i.file_size > 16)
    name_len, extra_len = np.frombuffer(raw[info.header_offset + 26: info.header_offset + 30], "<u2")
    start = info.header_offset + 30 + int(name_len) + int(extra_len)
    flipped = bytearray(raw)
    flipped[start: start + 4] = bytes(b ^ 0xFF for b in flipped[start: start + 4])
    bad.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="corrupt checkpoint .* fails its CRC32 check"):
        load_checkpoint(bad)

    torch.save(model.state_dict(), bad)  # a bare state_dict: valid torch file, not ours
    with pytest.raises(CheckpointError, match=r"not a fourdlib checkpoint.*'format'.*model.load_state_dict"):
        load_checkpoint(bad)
    torch.save(argparse.Namespace(lr=1.0), bad)  # an object weights_only refuses to build
    with pytest.raises(CheckpointError, match=r"not a fourdlib checkpoint.*argparse.Namespace.*weights_only"):
        load_checkpoint(bad)
    torch.save({"format": "someone.else", "model": {}}, bad)
    with pytest.raises(CheckpointError, match="has format 'someone.else'"):
        load_checkpoint(bad)
    torch.save({**torch.load(path, weights_only=True), "version": 99}, bad)
    with pytest.raises(CheckpointError, match="format version 99; .* upgrade fourdlib"):
        load_checkpoint(bad)


def test_checkpoint_of_another_model(good_ckpt, tmp_path):
    path, _ = good_ckpt  # Linear(4, 16), Tanh, Dropout, Linear(16, 2)
    wider = nn.Sequential(nn.Linear(toy.DIM, 32), nn.Tanh(), nn.Dropout(0.0), nn.Linear(32, 2))
    with pytest.raises(CheckpointError, match=r"does not fit this model: 3 shape mismatch\(es\) "
                                              r"\(0.weight: checkpoint \(16, 4\) vs model \(32, 4\)"):
        load_checkpoint(path, wider)
    deeper = nn.Sequential(*toy.make_model(), nn.Linear(2, 2))
    with pytest.raises(CheckpointError, match=r"2 missing in the checkpoint \(4.weight, 4.bias\)"):
        load_checkpoint(path, deeper)
    # train() resuming from a file another model wrote says how to start over
    shutil.copy(path, tmp_path / "run.pt")
    cfg = TrainConfig(steps=5, batch_size=8, warmup_steps=1, progress=False, ckpt_path=str(tmp_path / "run.pt"))
    with pytest.raises(CheckpointError, match="resume=False"):
        train(wider, toy.mse, toy.make_data(), cfg)
    train(wider, toy.mse, toy.make_data(), cfg, resume=False)  # overwrites it
    assert load_checkpoint(cfg.ckpt_path, wider)["step"] == 5


def test_checkpoint_write_is_atomic(good_ckpt, monkeypatch):
    path, model = good_ckpt
    before = path.read_bytes()

    def dies_midway(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full")
    monkeypatch.setattr(torch, "save", dies_midway)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, step=4)
    monkeypatch.undo()
    assert sorted(p.name for p in path.parent.iterdir()) == ["good.pt"]  # no temp file left
    assert path.read_bytes() == before and load_checkpoint(path)["step"] == 3


def test_checkpoint_refuses_what_weights_only_cannot_load(tmp_path):
    with pytest.raises(TypeError, match=r"checkpoint.extra.where holds a PosixPath"):
        save_checkpoint(tmp_path / "x.pt", toy.make_model(), extra={"where": tmp_path})
    with pytest.raises(ValueError, match=r"\['format'\] are set by save_checkpoint"):
        save_checkpoint(tmp_path / "x.pt", toy.make_model(), format="mine")
    assert not (tmp_path / "x.pt").exists()


class _RunsACommand:
    """Pickles as a call of os.system: what a malicious "checkpoint" carries. torch.save only
    records the call (pickle asks __reduce__ what to call); weights_only never makes it."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        import os
        return (os.system, (self.command,))


@pytest.mark.parametrize("zip_format", [True, False])
def test_checkpoint_with_a_blocked_global_is_called_unsafe_not_corrupt(good_ckpt, tmp_path, zip_format):
    _, model = good_ckpt
    marker = tmp_path / "the-payload-ran"
    bad = tmp_path / "payload.pt"
    torch.save({"format": "fourdlib.train.checkpoint", "version": 1, "step": 0, "model": model.state_dict(),
                "optimizer": None, "extra": _RunsACommand(f"touch {marker}")}, bad,
               _use_new_zipfile_serialization=zip_format)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(bad, model)
    msg = str(info.value)
    assert "this file holds Python objects fourdlib will not load: not a fourdlib checkpoint, possibly unsafe" in msg
    assert "posix.system" in msg and str(bad) in msg
    assert "truncated" not in msg and "corrupt" not in msg
    assert not marker.exists()


def test_cuda_checkpoint_on_a_machine_without_cuda(good_ckpt, tmp_path, monkeypatch):
    """A checkpoint written on a GPU tags each storage "cuda:0"; made here by letting
    torch.save tag CPU storages that way (what it records is all torch.load sees)."""
    path, model = good_ckpt
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # also on a machine with a GPU
    with monkeypatch.context() as m:
        m.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        save_checkpoint(tmp_path / "gpu.pt", model, step=7)
    with zipfile.ZipFile(tmp_path / "gpu.pt") as z:
        pkl = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    assert b"cuda:0" in pkl and b"cpu" not in pkl
    # the default map_location="cpu" maps it; map_location=None (keep devices) maps it too, and says so
    state = load_checkpoint(tmp_path / "gpu.pt", model)
    assert state["step"] == 7 and state["model"]["0.weight"].device.type == "cpu"
    with pytest.warns(UserWarning, match="holds CUDA tensors.*no CUDA.*loaded onto the CPU"):
        state = load_checkpoint(tmp_path / "gpu.pt", map_location=None)
    assert state["model"]["0.weight"].device.type == "cpu"
    # asking for CUDA where there is none is named as that, not as a damaged file
    for where in ("cuda", torch.device("cuda:0")):
        with pytest.raises(CheckpointError, match=r"map_location=.*cuda.*this machine has no CUDA.*"
                                                  r"map_location='cpu'") as info:
            load_checkpoint(tmp_path / "gpu.pt", map_location=where)
        assert "truncated" not in str(info.value) and "corrupt" not in str(info.value)


def test_state_dict_mismatch_names_a_few_keys_and_the_counts(tmp_path):
    from fourdlib.train.checkpoint import load_model_state

    wide = nn.Sequential(*[nn.Linear(3, 3) for _ in range(80)])  # 160 parameter names
    other = nn.Sequential(*[nn.Sequential(nn.Linear(3, 3)) for _ in range(75)])  # 150 other names
    save_checkpoint(tmp_path / "other.pt", other)
    for load in (lambda: load_checkpoint(tmp_path / "other.pt", wide),
                 lambda: load_model_state(wide, load_checkpoint(tmp_path / "other.pt")["model"],
                                          tmp_path / "other.pt", what="a 80-layer model")):
        with pytest.raises(CheckpointError) as info:
            load()
        msg = str(info.value)
        assert "160 missing in the checkpoint (0.weight, 0.bias, 1.weight, 1.bias, ... (156 more))" in msg
        assert "150 not in the model (0.0.weight, 0.0.bias, 1.0.weight, 1.0.bias, ... (146 more))" in msg
        assert len(msg) < 600, len(msg)
    # what load_state_dict alone would raise (a RuntimeError naming every key) is shortened too
    class Picky(nn.Linear):
        def _load_from_state_dict(self, state_dict, prefix, *args):
            raise RuntimeError("custom check failed: " + ", ".join(f"name{i}" for i in range(300)))

    net = nn.Sequential(Picky(2, 2))
    sd = nn.Sequential(nn.Linear(2, 2)).state_dict()
    with pytest.raises(CheckpointError, match=r"does not fit a 1-layer model: .*custom check failed") as info:
        load_model_state(net, sd, tmp_path / "x.pt", what="a 1-layer model")
    assert len(str(info.value)) < 600
