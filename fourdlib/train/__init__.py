"""Training: the loop all methods share (AdamW, warm-up + cosine, bf16, DDP via torchrun,
exact resume), its checkpoints (atomic, weights_only, checked on load), named runs
(checkpoints that carry their config, load-or-train) and flow matching.

loop.py           train, TrainConfig, lr_at, make_optimizer, seed_everything
checkpoint.py     save_checkpoint / load_checkpoint, RNG state for exact resume
runs.py           Method, save_model / load_model, run identity, load_or_train
distributed.py    the torchrun environment (DistEnv)
flow_matching.py  priors, time distributions, the loss and ODE integrators
"""
from .checkpoint import CheckpointError, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .distributed import DistEnv
from .loop import RunMismatchError, TrainConfig, lr_at, make_optimizer, seed_everything, train

__all__ = ["CheckpointError", "DistEnv", "RunMismatchError", "TrainConfig", "load_checkpoint", "lr_at",
           "make_optimizer", "rng_state", "save_checkpoint", "seed_everything", "set_rng_state", "train"]
