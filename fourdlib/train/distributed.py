"""Multi-process data parallel through `torchrun`: which process am I, and on which device.

    torchrun --standalone --nproc_per_node=8 my_script.py     # one process per GPU

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE in each process's environment; `setup` reads
them, joins the process group (NCCL on CUDA, gloo on CPU) and picks the device. Run as a
plain `python my_script.py`, it is one process and no group at all. The training loop then
wraps the model in DistributedDataParallel, which averages gradients across processes.

The group stays open until the process exits, so that a script may call `train` several
times (pre-train, then fine-tune): leaving and re-joining a group under torchrun can hang.
"""
from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistEnv:
    rank: int  # this process, 0 .. world_size - 1
    world_size: int  # number of processes
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, shows the progress bar and evaluates."""
        return self.rank == 0


def setup(device: str = "auto") -> DistEnv:
    """Join torchrun's process group if launched by it, and choose this process's device.

    device: "auto" (this process's GPU if CUDA is available, else CPU), "cpu", "cuda", "cuda:1".
    Under torchrun, "cuda" means the GPU of LOCAL_RANK. A group initialised already (by the
    caller, or by an earlier call) is used as it is.
    """
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} asked for, but torch sees no CUDA GPU")
        if dev.index is None:
            dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)  # NCCL and DDP use the current device

    if not dist.is_available():  # a torch built without distributed support
        return DistEnv(0, 1, dev)
    if not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", 1)) > 1:  # under torchrun
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
        atexit.register(_leave_group)
    if dist.is_initialized():
        return DistEnv(dist.get_rank(), dist.get_world_size(), dev)
    return DistEnv(0, 1, dev)


def _leave_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def mean_over_processes(x: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """Average a tensor over all processes (identity in a single process)."""
    if env.world_size == 1:
        return x
    x = x.clone()
    dist.all_reduce(x, op=dist.ReduceOp.SUM)  # gloo has no AVG
    return x / env.world_size


def gather_objects(obj, env: DistEnv) -> list:
    """[obj of rank 0, obj of rank 1, ...] on every process (pickled; for small things only)."""
    if env.world_size == 1:
        return [obj]
    out = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DistributedDataParallel wrapper (or the model itself)."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
