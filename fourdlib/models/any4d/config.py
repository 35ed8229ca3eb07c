"""Any4D's configuration: one frozen dataclass, one row per scale (smoke, tiny, small, full).

`CONFIGS[scale]` is what notebooks and tests use; `config_table()` shows the rows side by
side. The variants of the paper's ablations are config fields, so that each is one run of
the same method: `motion` (Table 5: what the motion head predicts), `modalities` (Table 4:
which inputs besides the images) and `views` (Fig. S1: the number of training views).
"""
from __future__ import annotations

from dataclasses import dataclass

from ...train import runs
from ...train.loop import TrainConfig

__all__ = ["Any4DConfig", "CONFIGS", "MOTIONS", "MODALITY_SETS", "EXTRA_MODALITIES", "config_table"]

# what the motion head predicts for view i (model.py, "Motion representations"):
#   allocentric  scene flow of the reference pixels, world (= reference camera) frame (Any4D)
#   egocentric   the same motion in camera i's frame (E = W_i^-1 x_i - x_0)
#   points       the reference pixels' 3D points after motion, world frame (flow = P_i - G_0)
MOTIONS = ("allocentric", "egocentric", "points")
EXTRA_MODALITIES = ("depth", "rays", "pose", "doppler")   # inputs besides RGB, each droppable
# Table 4's rows: images only; + geometry (depth, rays, poses); + Doppler; all
MODALITY_SETS = {
    "images": (),
    "geometry": ("depth", "rays", "pose"),
    "doppler": ("doppler",),
    "all": EXTRA_MODALITIES,
}


@dataclass(frozen=True)
class Any4DConfig:
    # ---- data (model.ViewDataset)
    image_size: int = 64        # H = W of every frame (the generator's images are square)
    clip_frames: int = 8        # a window of consecutive frames of a sequence ...
    views: int = 4              # N: ... of which N evenly spaced frames are the views (first = reference)
    # ---- inputs
    modalities: str = "all"     # a key of MODALITY_SETS: which inputs besides RGB the model has
    modality_dropout: bool = True   # training: drop inputs at random (model.modality_dropout)
    p_multimodal: float = 0.7   # the paper's probability of conditioning on more than images (per batch)
    p_drop: float = 0.5         # then each extra input is dropped independently with this probability
    # ---- transformer (a small ViT trained from scratch; model.py says how DINOv2 plugs in)
    patch_size: int = 8         # p: (H/p) x (W/p) patch tokens per view
    dim: int = 128              # D
    heads: int = 4
    depth: int = 4              # layers, alternating frame-wise / global attention (frame-wise first)
    mlp_ratio: float = 4.0
    dpt_features: int = 64      # channels of the DPT heads' fused maps
    # ---- outputs
    motion: str = "allocentric"  # a key of MOTIONS
    # ---- loss
    dynamic_weight: float = 10.0  # flow loss weight on pixels of moving objects (the paper's 10x)
    conf_alpha: float = 0.2     # confidence-weighted point loss c * e - alpha * log c (DUSt3R)
    flow_weight: float = 1.0
    scale_weight: float = 1.0
    # ---- training (AdamW with linear warm-up; fourdlib.train.train adds a cosine decay)
    steps: int = 2000
    batch_size: int = 2
    lr: float = 1e-3
    warmup_steps: int = 100
    weight_decay: float = 0.01

    def __post_init__(self):
        for name in ("image_size", "clip_frames", "views", "patch_size", "dim", "heads", "depth", "dpt_features",
                     "steps", "batch_size"):
            v = getattr(self, name)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                raise ValueError(f"Any4DConfig.{name} must be a positive int, got {v!r}")
        if not (isinstance(self.warmup_steps, int) and self.warmup_steps >= 0):
            raise ValueError(f"Any4DConfig.warmup_steps must be an int >= 0, got {self.warmup_steps!r}")
        for name in ("mlp_ratio", "lr", "dynamic_weight"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ValueError(f"Any4DConfig.{name} must be a positive number, got {v!r}")
        for name in ("conf_alpha", "flow_weight", "scale_weight", "weight_decay"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
                raise ValueError(f"Any4DConfig.{name} must be a number >= 0, got {v!r}")
        for name in ("p_multimodal", "p_drop"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise ValueError(f"Any4DConfig.{name} must be a probability in [0, 1], got {v!r}")
        if self.motion not in MOTIONS:
            raise ValueError(f"Any4DConfig.motion must be one of {MOTIONS}, got {self.motion!r}")
        if self.modalities not in MODALITY_SETS:
            raise ValueError(f"Any4DConfig.modalities must be one of {tuple(MODALITY_SETS)}, got {self.modalities!r}")
        if not 2 <= self.views <= self.clip_frames:
            raise ValueError(f"Any4DConfig.views ({self.views}) must be in [2, clip_frames={self.clip_frames}]: "
                             "scene flow needs a reference and at least one other view")
        if self.image_size % self.patch_size:
            raise ValueError(f"Any4DConfig.patch_size ({self.patch_size}) must divide image_size ({self.image_size})")
        if self.image_size // self.patch_size < 2:
            raise ValueError("Any4DConfig: the DPT head needs a patch grid of at least 2 x 2")
        if self.dim % self.heads:
            raise ValueError(f"Any4DConfig.heads ({self.heads}) must divide dim ({self.dim})")
        if self.dpt_features % 2:
            raise ValueError(f"Any4DConfig.dpt_features must be even, got {self.dpt_features}")
        if not self.warmup_steps < self.steps:
            raise ValueError(f"Any4DConfig.warmup_steps ({self.warmup_steps}) must be below steps ({self.steps})")

    @property
    def extra_inputs(self) -> tuple[str, ...]:
        """The inputs besides RGB this variant reads (MODALITY_SETS[modalities])."""
        return MODALITY_SETS[self.modalities]

    def train_config(self, **overrides):
        """A fourdlib.train.TrainConfig with this row's steps, batch, lr, warm-up, decay."""
        kw = dict(steps=self.steps, batch_size=self.batch_size, lr=self.lr,
                  warmup_steps=self.warmup_steps, weight_decay=self.weight_decay)
        return TrainConfig(**{**kw, **overrides})


# One row per scale. "full" is the paper's: 518-pixel images (DINOv2 ViT-L/14's patch 14,
# width 1024), 12 alternating-attention blocks, 4 training views (Fig. S1: 2-view training
# does not generalise to many views); its lr and steps are ours (the text we have gives
# none). tiny is sized for a 2-core CPU (64 x 64, 4 views, 64 tokens per view, 1.4 M
# parameters): one step of batch 4 with every input takes 0.5 s on one idle CPU thread and
# about twice that on a busy one, so 3000 steps fit in an hour with two runs side by side (the
# committed runs' checkpoints say how long each took).
# smoke proves the mechanics in seconds; small is one GPU (not timed).
_COLUMNS = ("image_size", "clip_frames", "views", "patch_size", "dim", "heads", "depth", "dpt_features",
            "steps", "batch_size", "lr", "warmup_steps")
_TABLE = {
    #          HxW  clip N  patch D     heads layers dpt  steps    batch lr    warm-up
    "smoke": (32,   4,   2, 8,    32,   2,    2,     16,  20,      1,    1e-3, 2),
    "tiny":  (64,   8,   4, 8,    128,  4,    4,     32,  3000,    4,    1e-3, 200),
    "small": (224,  16,  4, 14,   384,  6,    8,     128, 30_000,  8,    3e-4, 1000),
    "full":  (518,  32,  4, 14,   1024, 16,   12,    256, 200_000, 4,    1e-4, 5000),
}
CONFIGS: dict[str, Any4DConfig] = {name: Any4DConfig(**dict(zip(_COLUMNS, row, strict=True)))
                                   for name, row in _TABLE.items()}


def config_table():
    """CONFIGS as a pandas DataFrame (one row per scale, every field), for notebooks."""
    return runs.config_table(CONFIGS)
