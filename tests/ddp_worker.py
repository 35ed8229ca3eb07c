"""The toy problem of tests/test_train.py, and the script it runs under torchrun:

    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/ddp_worker.py OUT_DIR

Each process trains the same model with the gloo backend on CPU and writes what it ends
with to OUT_DIR/rank{r}.pt; test_train.py compares that with a single process.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from fourdlib.train import TrainConfig, train

N_SAMPLES, DIM = 48, 4
# per process; test_train.py runs one process with batch_size 2 x 3 and compares
CFG = dict(steps=12, batch_size=3, lr=1e-2, warmup_steps=2, log_every=1, progress=False)


def make_data(seed: int = 0) -> TensorDataset:
    """y = x @ A + b + noise: a regression a small MLP fits in a few dozen steps."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N_SAMPLES, DIM, generator=g)
    a, b = torch.randn(DIM, 2, generator=g), torch.randn(2, generator=g)
    y = x @ a + b + 0.1 * torch.randn(N_SAMPLES, 2, generator=g)
    return TensorDataset(x, y)


def make_model(seed: int = 0, dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(DIM, 16), nn.Tanh(), nn.Dropout(dropout), nn.Linear(16, 2))


def mse(model, batch):
    x, y = batch
    loss = F.mse_loss(model(x), y)
    return loss, {"mse_x2": 2 * loss}


class Interrupt(Exception):
    """Stands for a crash or a kill in the middle of training."""


def interrupted_at(n_calls: int):
    """A loss_fn that raises on its n-th call, i.e. at step n (1-based), before that step's update."""
    calls = [0]

    def loss_fn(model, batch):
        calls[0] += 1
        if calls[0] == n_calls:
            raise Interrupt(f"stopped at step {n_calls}")
        return mse(model, batch)
    return loss_fn


def main(out: Path) -> None:
    # 1) uninterrupted, two processes: train() joins torchrun's process group
    model = make_model()
    history = train(model, mse, make_data(), TrainConfig(**CFG))
    rank = dist.get_rank()

    # 2) with dropout, the same run stopped after the checkpoint at step 6 and resumed (the
    #    checkpoint holds both processes' RNG states; dropout makes them matter). Every call
    #    reuses the group: train() leaves it open until the process exits.
    ckpt = out / "ddp_ckpt.pt"
    dcfg = TrainConfig(**CFG, ckpt_every=6, ckpt_path=str(ckpt))
    drop_full = make_model(dropout=0.3)
    train(drop_full, mse, make_data(), TrainConfig(**CFG))
    try:
        train(make_model(dropout=0.3), interrupted_at(9), make_data(), dcfg)
    except Interrupt:
        pass
    drop_resumed = make_model(seed=123, dropout=0.3)  # fresh weights: they must come from the file
    train(drop_resumed, mse, make_data(), dcfg)

    # 3) a loss_fn that bypasses DDP's forward must be caught, not train two diverging models
    bypass_error = ""
    try:
        train(make_model(), lambda m, b: F.mse_loss(m.module(b[0]), b[1]), make_data(), TrainConfig(**CFG))
    except RuntimeError as e:
        bypass_error = str(e)

    torch.save({"model": model.state_dict(), "history": history,
                "drop_full": drop_full.state_dict(), "drop_resumed": drop_resumed.state_dict(),
                "bypass_error": bypass_error},
               out / f"rank{rank}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
