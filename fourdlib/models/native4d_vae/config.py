"""Native 4D VAE's configuration: one frozen dataclass, one row per scale (smoke, tiny, small, full).

`CONFIGS[scale]` is the table notebooks and runs use; `config_table()` shows it. Every field
is validated on construction: a bad value raises ValueError naming the field.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...train import runs
from ...train.loop import TrainConfig

__all__ = ["Native4DVAEConfig", "CONFIGS", "config_table", "LAMBDAS", "BLOCKS", "REPRESENTATIONS"]

LAMBDAS = (1, 2, 4)  # temporal ratios the STD/STU blocks take (the paper: "from 1 to 4")
# how the STD/STU blocks mix tokens: the paper's 4D window attention, or its "w/o ST-Attn"
# ablation (table 1, row 2): a 3D spatial sparse conv then a 1D temporal conv (model.ConvMix)
BLOCKS = ("attention", "conv")
# what the VAE encodes: the paper's coloured sparse voxels, or its table-1 baseline, a video VAE on
# the depth video's pointmaps (model.PointMapVAE: 3D convs over frames x pixels, decoded to points)
REPRESENTATIONS = ("voxels", "pointmap")

@dataclass(frozen=True)
class Native4DVAEConfig:
    # ---- data
    resolution: int = 32        # R: voxel grid cells per axis (one grid for the whole sequence)
    train_frames: int = 8       # M: frames per training sequence
    render_size: int = 32       # side of the images of the rendering loss (square)
    representation: str = "voxels"  # "voxels" (the Native 4D VAE) or "pointmap" (the PointMapVAE
                                # baseline of table 1, row 1; model.build_model picks the class)
    # ---- encoder / decoder widths
    stem_channels: int = 32     # C0: width of the full-resolution sparse convs (input and output side)
    dim: int = 64               # D: width of the STD/STU tokens
    heads: int = 4
    mlp_ratio: float = 2.0
    window: int = 4             # spatial window side, in cells of the coarse grid of each STD/STU block
    stem_down: int = 1          # spatial-only stride-2 sparse convs before the STD stack (eq. 12)
    num_std: int = 1            # STD blocks (eq. 13), mirrored by as many STU blocks (eq. 15)
    block: str = "attention"    # token mixing in STD/STU: "attention" (4D windows, the paper) or
                                # "conv" (decoupled 3D spatial + 1D temporal sparse conv, its ablation)
    temporal_ratio: int = 4     # largest lambda; each batch uses the largest of 1, 2, 4 up to it
                                # that divides every sequence's frame count (`choose_lambda`)
    latent_channels: int = 8    # C': channels of the dense KL latent (eq. 14)
    pe_max_period: float = 1000.0  # slowest period of the 4D sinusoidal encoding, in finest cells / frames
    # ---- early pruning (eq. 16)
    prune_logit: float = -0.5   # keep a site when its occupancy LOGIT > tau (= sigmoid > 0.378)
    prune_with_gt: bool = False  # True: training also keeps GT-occupied sites (teacher forcing of the
                                # structure); off, because the fine stage then never learns the
                                # incomplete structure inference gives it (see model.py)
    # ---- loss weights (eq. 22): beta_1..5 = bce, dice, rgb, render, kl
    w_bce: float = 1.0
    w_dice: float = 1.0
    w_rgb: float = 0.5
    w_render: float = 1.0
    w_kl: float = 0.001
    # ---- training
    steps: int = 2000
    batch_size: int = 1
    lr: float = 1e-3
    warmup_steps: int = 100
    weight_decay: float = 0.01

    def __post_init__(self):
        for name in ("resolution", "train_frames", "render_size", "stem_channels", "dim", "heads", "window",
                     "stem_down", "num_std", "latent_channels", "steps", "batch_size"):
            v = getattr(self, name)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                raise ValueError(f"Native4DVAEConfig.{name} must be a positive int, got {v!r}")
        if not (isinstance(self.warmup_steps, int) and self.warmup_steps >= 0):
            raise ValueError(f"Native4DVAEConfig.warmup_steps must be an int >= 0, got {self.warmup_steps!r}")
        if self.representation not in REPRESENTATIONS:
            raise ValueError(f"Native4DVAEConfig.representation must be one of {REPRESENTATIONS}, "
                             f"got {self.representation!r}")
        if self.block not in BLOCKS:
            raise ValueError(f"Native4DVAEConfig.block must be one of {BLOCKS}, got {self.block!r}")
        if self.temporal_ratio not in LAMBDAS or isinstance(self.temporal_ratio, bool):
            raise ValueError(f"Native4DVAEConfig.temporal_ratio must be one of {LAMBDAS}, got {self.temporal_ratio!r}")
        if self.train_frames % self.temporal_ratio:
            raise ValueError(f"Native4DVAEConfig.train_frames ({self.train_frames}) must be a multiple of "
                             f"temporal_ratio ({self.temporal_ratio}), or the largest ratio is never used")
        factor = 2 ** (self.stem_down + self.num_std)
        if self.resolution % factor:
            raise ValueError(f"Native4DVAEConfig.resolution ({self.resolution}) must be divisible by "
                             f"2^(stem_down + num_std) = {factor} (the dense latent grid is R / {factor})")
        if self.dim % self.heads:
            raise ValueError(f"Native4DVAEConfig.dim ({self.dim}) must be divisible by heads ({self.heads})")
        if self.dim % 8:
            raise ValueError(f"Native4DVAEConfig.dim ({self.dim}) must be a multiple of 8 "
                             "(the 4D encoding gives each of x, y, z, t an even D/4 channels)")
        for name in ("mlp_ratio", "pe_max_period", "lr"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ValueError(f"Native4DVAEConfig.{name} must be a positive number, got {v!r}")
        if isinstance(self.prune_logit, bool) or not isinstance(self.prune_logit, (int, float)):
            raise ValueError(f"Native4DVAEConfig.prune_logit must be a number (a logit), got {self.prune_logit!r}")
        if not isinstance(self.prune_with_gt, bool):
            raise ValueError(f"Native4DVAEConfig.prune_with_gt must be a bool, got {self.prune_with_gt!r}")
        for name in ("w_bce", "w_dice", "w_rgb", "w_render", "w_kl", "weight_decay"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
                raise ValueError(f"Native4DVAEConfig.{name} must be a number >= 0, got {v!r}")

    @property
    def latent_resolution(self) -> int:
        """Side of the dense latent grid: R / 2^(stem_down + num_std)."""
        return self.resolution // 2 ** (self.stem_down + self.num_std)

    def train_config(self, **overrides):
        """A fourdlib.train.TrainConfig with this row's steps, batch, lr, warm-up, decay."""
        kw = dict(steps=self.steps, batch_size=self.batch_size, lr=self.lr,
                  warmup_steps=self.warmup_steps, weight_decay=self.weight_decay)
        return TrainConfig(**{**kw, **overrides})

# One row per scale. The paper's row ("full"): 512^3 voxels, early pruning at 256^3 (so one
# stem down-sampling), 64^3 latent tokens (so two STD blocks), temporal ratio up to 4, loss
# weights (1, 1, 0.5, 1, 0.001). Not in the paper, so ours: widths, heads, window side, latent
# channels, frames per sequence, render size, steps. tiny is sized for a 2-core CPU (32^3, 8
# frames; about 1.1 s of CPU per step on one thread, so 2000 steps in about 40 min), smoke for
# seconds, small for one GPU. Batch 1 everywhere, as the paper trains: fourdlib.train.runs hands
# the loop no collate_fn, and torch's default collate takes one voxel sequence at a time.
_COLUMNS = ("resolution", "train_frames", "render_size", "stem_channels", "dim", "heads", "window",
            "stem_down", "num_std", "temporal_ratio", "latent_channels", "steps", "batch_size", "lr",
            "warmup_steps")
_TABLE = {
    #          R    M   img  C0  D    heads win stem std lam  C'  steps    batch lr    warm-up
    "smoke": (16,  2,  16,  8,  16,  2,    2,  1,   1,  2,   4,  20,      1,    1e-3, 2),
    "tiny":  (32,  8,  32,  32, 64,  4,    4,  1,   1,  4,   8,  2000,    1,    1e-3, 100),
    "small": (64,  8,  64,  32, 128, 4,    4,  1,   2,  4,   8,  30_000,  1,    5e-4, 1000),
    "full":  (512, 16, 256, 64, 512, 8,    8,  1,   2,  4,   16, 200_000, 1,    1e-4, 2000),
}
CONFIGS: dict[str, Native4DVAEConfig] = {name: Native4DVAEConfig(**dict(zip(_COLUMNS, row, strict=True)))
                                         for name, row in _TABLE.items()}

def config_table():
    """CONFIGS as a pandas DataFrame (one row per scale, every field), for notebooks."""
    return runs.config_table(CONFIGS)
