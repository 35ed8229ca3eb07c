"""What the shared training loop costs over a bare PyTorch loop, per step.

    python benchmarks/bench_train_loop.py [--device cpu|cuda] [--steps 200]

Both loops run the same model, DataLoader, AdamW and gradient clipping; `train` adds the
lr schedule, logging, the resumable data order and (here) a checkpoint every 50 steps.
"""
from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fourdlib.train import TrainConfig, make_optimizer, train


def make(width: int, seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                          nn.Linear(width, 64))
    g = torch.Generator().manual_seed(seed)
    data = TensorDataset(torch.randn(4096, 64, generator=g), torch.randn(4096, 64, generator=g))
    return model, data


def loss_fn(model, batch):
    x, y = batch
    return F.mse_loss(model(x), y)


def bare(width: int, cfg: TrainConfig, device: str) -> float:
    model, data = make(width)
    model.to(device)
    opt = make_optimizer(model, cfg)
    loader = DataLoader(data, batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(0))
    batches = (b for _ in iter(int, 1) for b in loader)  # epochs without end
    t0 = time.perf_counter()
    for _ in range(cfg.steps):
        x, y = (t.to(device) for t in next(batches))
        loss = loss_fn(model, (x, y))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / cfg.steps


def looped(width: int, cfg: TrainConfig) -> float:
    model, data = make(width)
    t0 = time.perf_counter()
    train(model, loss_fn, data, cfg, resume=False)
    if cfg.device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / cfg.steps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for width in (32, 512):
            cfg = TrainConfig(steps=args.steps, batch_size=64, warmup_steps=10, device=args.device,
                              amp="off", ckpt_every=50, ckpt_path=str(Path(tmp) / "c.pt"), progress=False)
            # best of 3, alternating, so first-use imports and a busy machine count least
            t_bare, t_loop = math.inf, math.inf
            for _ in range(3):
                t_bare, t_loop = min(t_bare, bare(width, cfg, args.device)), min(t_loop, looped(width, cfg))
            print(f"{args.device} width {width:4d}: bare {1e3 * t_bare:6.2f} ms/step, train() "
                  f"{1e3 * t_loop:6.2f} ms/step (+{1e3 * (t_loop - t_bare):.2f} ms, "
                  f"checkpoint every 50 steps included)")


if __name__ == "__main__":
    main()
