"""Training: the loop all methods share (AdamW, warm-up + cosine, bf16, DDP via torchrun,
exact resume) and its checkpoints (atomic, weights_only, checked on load)."""
from .checkpoint import CheckpointError, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .distributed import DistEnv
from .loop import TrainConfig, lr_at, make_optimizer, seed_everything, train

__all__ = ["CheckpointError", "DistEnv", "TrainConfig", "load_checkpoint", "lr_at", "make_optimizer",
           "rng_state", "save_checkpoint", "seed_everything", "set_rng_state", "train"]
