"""The training loop every method shares: one function, `train`, readable in one sitting.

Each method owns its model and its loss; the loop owns the optimisation:

    def loss_fn(model, batch):             # batch: what the DataLoader yields, on the device
        pred = model(batch["x"])           # call model(...): under DDP, forward syncs gradients
        loss = F.mse_loss(pred, batch["y"])
        return loss, {"mse": loss}         # or just `loss`; the dict's values are logged

    torch.manual_seed(0); model = MyModel()            # the caller seeds the initialisation
    cfg = TrainConfig(steps=2000, lr=1e-3, batch_size=8, ckpt_path="runs/a/ckpt.pt")
    history = train(model, loss_fn, dataset, cfg, eval_fn=my_eval)
    pd.DataFrame(history).plot(x="step", y="loss")    # or plotly: px.line(df, x="step", y="loss")

What it does, nanoGPT-style: AdamW (weight decay on matrices only), linear warm-up then
cosine decay of the learning rate (`lr_at`), gradient clipping, bf16 autocast on CUDA,
a tqdm bar, `eval_fn(model, step) -> dict` every `eval_every` steps and at the end,
checkpoints every `ckpt_every` steps and at the end, exact resume, and data parallel over
processes started by `torchrun` (see `fourdlib.train.distributed`).

Exact resume: run `train` again with the same config and it continues from `cfg.ckpt_path`
to the same weights, bit for bit, as a run that was never stopped. Three things make that
hold: the learning rate is a pure function of the step; the data order is a pure function
of (seed, epoch) (a DistributedSampler), so a resumed run skips the batches of the current
epoch already seen; and every global RNG (python, numpy, torch, CUDA) is saved and
restored. For it to hold with `num_workers > 0`, a dataset that draws random augmentations
should draw them from a generator seeded by the sample index.

Batch size is per process: the global batch is `batch_size * world_size` (DynaTok's
"8 sequences per GPU" on 8 GPUs is batch_size=8 and a global batch of 64).
"""
from __future__ import annotations

import dataclasses
import math
import random
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, IterableDataset
from torch.utils.data.distributed import DistributedSampler
from tqdm.auto import tqdm

from . import distributed
from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state

AMP_MODES = ("auto", "bf16", "off")
# Fields that change nothing in the trajectory: changing them before a resume is fine.
_BOOKKEEPING = {"log_every", "eval_every", "ckpt_every", "ckpt_path", "num_workers", "progress", "device"}


@dataclass
class TrainConfig:
    steps: int = 1000  # optimizer steps (not epochs)
    batch_size: int = 8  # per process; global batch = batch_size * world size
    lr: float = 3e-4  # peak learning rate, reached at the end of warm-up
    min_lr_ratio: float = 0.1  # the cosine ends at lr * min_lr_ratio on the last step
    warmup_steps: int = 100  # linear warm-up from lr / warmup_steps to lr
    weight_decay: float = 0.01  # AdamW's decoupled decay, on weight matrices only
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0  # clip the global gradient norm to this; 0 = no clipping
    ema: float = 0.0  # decay of an exponential moving average of the weights (0: none); the
    #                   model train() leaves behind holds the average (see `EMA`)
    seed: int = 0  # data order and the RNGs the loop seeds (process r uses seed + r)
    device: str = "auto"  # "auto" (CUDA if available), "cpu", "cuda", "cuda:1"
    amp: str = "auto"  # "auto": bf16 autocast on CUDA, off on CPU; "bf16": always; "off"
    log_every: int = 10  # history gets that step's loss / lr / grad norm every log_every steps
    eval_every: int = 0  # call eval_fn every eval_every steps (0: only at the end)
    ckpt_every: int = 0  # write a checkpoint every ckpt_every steps (0: only at the end)
    ckpt_path: str | None = None  # None: no checkpoints, no resume
    num_workers: int = 0  # DataLoader worker processes
    progress: bool = True  # tqdm bar (rank 0 only)

    def __post_init__(self):
        if self.ckpt_path is not None:
            self.ckpt_path = str(self.ckpt_path)  # a Path would not load with weights_only=True
        self.betas = tuple(self.betas)
        for name in ("steps", "batch_size", "log_every"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f"TrainConfig.{name} must be an int >= 1, got {getattr(self, name)!r}")
        for name in ("warmup_steps", "eval_every", "ckpt_every", "num_workers"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 0):
                raise ValueError(f"TrainConfig.{name} must be an int >= 0, got {getattr(self, name)!r}")
        if not self.warmup_steps < self.steps:
            raise ValueError(f"TrainConfig.warmup_steps ({self.warmup_steps}) must be below steps ({self.steps})")
        if not self.lr > 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"TrainConfig needs lr > 0 and 0 <= min_lr_ratio <= 1, got lr={self.lr}, "
                             f"min_lr_ratio={self.min_lr_ratio}")
        if not 0 <= self.ema < 1:
            raise ValueError(f"TrainConfig.ema must be in [0, 1) (0: no averaging), got {self.ema!r}")
        if self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError("TrainConfig.weight_decay and grad_clip must be >= 0")
        if self.amp not in AMP_MODES:
            raise ValueError(f"TrainConfig.amp must be one of {AMP_MODES}, got {self.amp!r} "
                             "(fp16 needs a GradScaler and is not supported; use bf16)")


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate of step `step` (0-based): linear warm-up, then cosine decay to lr * min_lr_ratio.

    Warm-up: lr * (step + 1) / warmup_steps for step < warmup_steps, so the last warm-up step
    is at lr. Decay: from lr at step warmup_steps to min_lr at the last step, steps - 1.
    """
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    min_lr = cfg.lr * cfg.min_lr_ratio
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - 1 - cfg.warmup_steps)  # 0 -> 1
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))) * (cfg.lr - min_lr)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices (linear, conv, embedding weights) but not on
    biases and norm gains, which decay would only pull towards zero for no benefit."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)


class EMA:
    """Exponential moving average of a model's parameters and float buffers, in float32.

    Flow-matching and diffusion decoders sample visibly sharper from averaged weights: the
    last steps' noise in the weights blurs the velocity field. The decay ramps up as
    min(decay, (1 + step) / (10 + step)), so early averages do not keep the random init.
    """

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().float().clone() for k, v in model.state_dict().items()
                       if v.dtype.is_floating_point}

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for k, v in model.state_dict().items():
            if k in self.shadow:
                self.shadow[k].mul_(d).add_(v.detach().float(), alpha=1 - d)

    def copy_to(self, model: torch.nn.Module) -> None:
        """Put the averaged weights into `model` (in its dtypes)."""
        state = model.state_dict()
        model.load_state_dict({k: self.shadow[k].to(v.dtype) if k in self.shadow else v
                               for k, v in state.items()})


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global RNGs (the streams dropout & co. draw from)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # CPU and every CUDA device


def _batches(data: Dataset, cfg: TrainConfig, env: distributed.DistEnv, start_step: int,
             collate_fn: Callable | None, pin_memory: bool):
    """Yield batches forever, starting at global step `start_step`.

    The order of epoch e depends only on (seed, e): DistributedSampler shuffles with
    seed + e and hands process r every world_size-th sample, so a resumed run sees the same
    batches by skipping the ones of the current epoch already consumed. Each DataLoader gets
    its own generator: left without one, it would draw its worker seed from the global torch
    RNG and shift the dropout stream at every epoch start.
    """
    sampler = DistributedSampler(data, num_replicas=env.world_size, rank=env.rank,
                                 shuffle=True, seed=cfg.seed, drop_last=True)
    per_epoch = len(sampler) // cfg.batch_size
    if per_epoch == 0:
        raise ValueError(f"the dataset has {len(data)} samples, fewer than one batch of "
                         f"batch_size x processes = {cfg.batch_size} x {env.world_size}")
    epoch, skip = divmod(start_step, per_epoch)
    while True:
        sampler.set_epoch(epoch)
        order = list(sampler)[skip * cfg.batch_size:]  # sample indices, this process, this epoch
        gen = torch.Generator().manual_seed(int(np.random.SeedSequence([cfg.seed, epoch, env.rank])
                                                .generate_state(1)[0]))
        yield from DataLoader(data, batch_size=cfg.batch_size, sampler=order, drop_last=True,
                              collate_fn=collate_fn, num_workers=cfg.num_workers,
                              pin_memory=pin_memory, generator=gen)
        epoch, skip = epoch + 1, 0


def _to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor in a (nested dict / list / tuple) batch to `device`."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def _evaluate(eval_fn: Callable, model: torch.nn.Module, step: int) -> dict:
    """eval_fn(model, step) in eval mode without gradients. The RNG streams are put back
    afterwards, so evaluating (or how often) never changes the training run."""
    state, was_training = rng_state(), model.training
    model.eval()
    try:
        with torch.no_grad():
            metrics = eval_fn(model, step)
    finally:
        model.train(was_training)
        set_rng_state(state)
    if not isinstance(metrics, dict):
        raise TypeError(f"eval_fn must return a dict of numbers, got {type(metrics).__name__}")
    return {f"eval/{k}": float(v) for k, v in metrics.items()}


def _check_grads_in_sync(model: torch.nn.Module, env: distributed.DistEnv) -> None:
    """After the first backward under DDP every process must hold the same gradients. They
    do not if loss_fn bypassed DDP's forward (e.g. model.module(...) or model.loss(...)),
    and then each process would silently train its own model."""
    total = sum(p.grad.double().sum() for p in model.parameters() if p.grad is not None)
    sums = torch.stack(distributed.gather_objects(torch.as_tensor(total).cpu(), env))
    if not torch.allclose(sums, sums[0], rtol=1e-5, atol=1e-8):
        raise RuntimeError("gradients differ between processes after backward: loss_fn must call "
                           "model(...) (the DDP-wrapped model's forward), which is what averages "
                           f"gradients across processes (per-process gradient sums: {sums.tolist()})")


class RunMismatchError(RuntimeError):
    """A checkpoint to resume from belongs to another run (other settings, data or identity)."""


def _check_same_run(state: dict, cfg: TrainConfig, data_now: dict, identity: dict | None, path: str):
    """Refuse to continue a checkpoint that another run wrote: a resumed run must be the same run."""
    old_cfg, old_data = state.get("config", {}), state.get("data", {})
    changed = [f"{k} {old_cfg[k]!r} -> {v!r}" for k, v in dataclasses.asdict(cfg).items()
               if k not in _BOOKKEEPING and k in old_cfg and old_cfg[k] != v]
    changed += [f"{k} {old_data[k]!r} -> {v!r}" for k, v in data_now.items()
                if k in old_data and old_data[k] != v]
    if identity is not None and state.get("run") != identity:
        old = state.get("run")
        if not isinstance(old, dict):
            changed.append("the file records no run identity")
        else:
            changed += [f"{k} differs" for k in sorted(set(old) | set(identity)) if old.get(k) != identity.get(k)]
    if changed:
        raise RunMismatchError(f"{path} holds another run ({'; '.join(changed)}): continuing it would not be "
                               "this run. Start over with resume=False (`fourd train ... --restart`), or "
                               "use another run name")


def train(model: torch.nn.Module, loss_fn: Callable, data: Dataset, cfg: TrainConfig,
          eval_fn: Callable | None = None, *, resume: bool = True,
          collate_fn: Callable | None = None, identity: dict | None = None) -> list[dict]:
    """Train `model` in place for `cfg.steps` optimizer steps and return the history.

    model     an nn.Module, already initialised (seed its construction yourself).
    loss_fn   loss_fn(model, batch) -> loss, or (loss, {name: scalar to log}). Call
              model(...) inside: under DDP that forward is what averages gradients.
    data      a map-style torch Dataset (it needs __len__ for an exactly resumable order).
    eval_fn   eval_fn(model, step) -> {name: number}, in eval mode and under torch.no_grad,
              stored in the history as "eval/<name>". Under DDP it runs on rank 0 only
              while the others wait at the next step (keep it under NCCL's 10 min timeout).
    resume    if cfg.ckpt_path exists, continue from it (False: start over and overwrite). A
              checkpoint written with other settings (TrainConfig fields that change the
              trajectory, the data's length, or another `identity`) raises RunMismatchError.
    collate_fn  passed to the DataLoader (e.g. for point clouds of varying size).
    identity  plain dict naming the run (method, model config, data, ...), stored in every
              checkpoint as "run" and compared on resume (fourdlib.train.runs sets it).

    Returns the history: a list of dicts, one per logged or evaluated step, with "step"
    (optimizer steps done), "time" (seconds of training), and/or the logs of that step
    ("loss", "lr", "grad_norm" before clipping, loss_fn's extra logs; averaged over
    processes) and/or "eval/..." metrics. `pandas.DataFrame(history)` makes it a table.
    """
    if isinstance(data, IterableDataset) or not hasattr(data, "__len__"):
        raise TypeError("train() needs a map-style Dataset (__len__ and __getitem__) so that "
                        "the data order can be resumed exactly")
    env = distributed.setup(cfg.device)
    device = env.device
    use_bf16 = cfg.amp == "bf16" or (cfg.amp == "auto" and device.type == "cuda"
                                     and torch.cuda.is_bf16_supported())  # Ampere and later
    model.to(device)
    optimizer = make_optimizer(model, cfg)

    # ---- start fresh, or continue from the checkpoint --------------------------------
    step, history = 0, []
    seed_everything(cfg.seed + env.rank)  # dropout masks differ between processes
    ckpt = Path(cfg.ckpt_path) if cfg.ckpt_path else None
    data_info = {"dataset_len": len(data), "world_size": env.world_size}
    ema = EMA(model, cfg.ema) if cfg.ema else None
    if resume and ckpt is not None and ckpt.exists():
        state = load_checkpoint(ckpt, model, optimizer)
        _check_same_run(state, cfg, data_info, identity, str(ckpt))
        step, history = state["step"], list(state.get("history", []))
        if ema is not None:
            if not isinstance(state.get("ema"), dict) or set(state["ema"]) != set(ema.shadow):
                raise RunMismatchError(f"{ckpt} holds no matching weight average for ema={cfg.ema}: "
                                       "it is not this run; start over (resume=False)")
            ema.shadow = {k: v.to(device).float() for k, v in state["ema"].items()}
        rngs = state.get("rng", [])
        if len(rngs) == env.world_size:
            set_rng_state(rngs[env.rank])  # every process continues its own streams
        else:
            warnings.warn(f"{ckpt} holds RNG states of {len(rngs)} process(es), this run has "
                          f"{env.world_size}: RNG streams reseeded, resume is not exact")
            seed_everything(cfg.seed + env.rank + 1_000_003 * step)
    starts = distributed.gather_objects(step, env)
    if len(set(starts)) > 1:  # e.g. a checkpoint folder that not every node can see
        raise RuntimeError(f"processes would start at different steps {starts}: every process must "
                           f"read the same checkpoint {ckpt} (a folder shared by all nodes)")
    if step >= cfg.steps:
        if ema is not None:
            ema.copy_to(model)
        return history

    ddp_model = (DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                         else None) if env.world_size > 1 else model)
    batches = _batches(data, cfg, env, step, collate_fn, pin_memory=device.type == "cuda")
    bar = tqdm(total=cfg.steps, initial=step, desc="train", dynamic_ncols=True,
               disable=not (cfg.progress and env.is_main))
    t0 = time.perf_counter() - (history[-1]["time"] if history else 0.0)
    first_step = step
    model.train()

    # ---- the loop ----------------------------------------------------------------------
    while step < cfg.steps:
        lr = lr_at(step, cfg)  # a function of the step only: nothing to save for resume
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = _to_device(next(batches), device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            out = loss_fn(ddp_model, batch)
        loss, logs = out if isinstance(out, tuple) else (out, {})
        if not (isinstance(loss, torch.Tensor) and loss.ndim == 0):
            raise TypeError(f"loss_fn must return a scalar tensor (or (loss, dict)), got "
                            f"{type(loss).__name__} {getattr(loss, 'shape', '')}")
        loss.backward()
        if step == first_step and env.world_size > 1:
            _check_grads_in_sync(model, env)
        # clip_grad_norm_ returns the norm before clipping; max_norm=inf only measures it
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip or math.inf)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.update(model, step)
        step += 1
        bar.update()

        record = {}
        if step % cfg.log_every == 0 or step == cfg.steps:
            # one all-reduce for every logged number; .item() syncs with the GPU only here
            extra = [torch.as_tensor(v, device=device).detach().float() for v in logs.values()]
            if any(t.ndim for t in extra):
                raise TypeError(f"loss_fn's logs must be scalars, got shapes "
                                f"{ {k: tuple(t.shape) for k, t in zip(logs, extra)} }")
            values = torch.stack([loss.detach().float(), grad_norm.detach().float(), *extra])
            values = distributed.mean_over_processes(values, env).tolist()
            names = ["loss", "grad_norm", *logs]
            record = {"loss": values[0], "lr": lr, **dict(zip(names[1:], values[1:]))}
            if not math.isfinite(record["loss"]):
                raise FloatingPointError(f"loss is {record['loss']} at step {step} (lr {lr:.3g}); "
                                         "lower lr, check the data for NaNs, or clip gradients")
            bar.set_postfix(loss=f"{record['loss']:.4g}", lr=f"{lr:.2e}")
        if eval_fn is not None and env.is_main and (
                (cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.steps):
            record.update(_evaluate(eval_fn, model, step))
        if record:
            history.append({"step": step, **record, "time": time.perf_counter() - t0})

        if ckpt is not None and ((cfg.ckpt_every and step % cfg.ckpt_every == 0) or step == cfg.steps):
            rngs = distributed.gather_objects(rng_state(), env)  # every process's streams
            if env.is_main:
                save_checkpoint(ckpt, model, optimizer, step=step, config=dataclasses.asdict(cfg),
                                history=history, rng=rngs, data=data_info,
                                **({"run": identity} if identity is not None else {}),
                                **({"ema": ema.shadow} if ema is not None else {}))
    bar.close()
    if env.world_size > 1:
        torch.distributed.barrier()  # the last checkpoint is on disk before any process goes on
    if ema is not None:
        ema.copy_to(model)  # the checkpoint keeps the raw weights (for resume) and the average
    return history
