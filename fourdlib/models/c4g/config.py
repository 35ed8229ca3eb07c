"""C4G's configuration: one frozen dataclass, one row per scale (smoke, tiny, small, full).

`CONFIGS[scale]` is what notebooks and tests use; `config_table()` shows the rows side by
side. Lengths (`min_scale`, `max_scale`) are in NORMALISED scene units: one unit is the
median distance of the input frames' depth points to their median (see
`fourdlib.geometry.normalize`), so the same numbers fit a table-top and a room.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...train import runs
from ...train.loop import TrainConfig

__all__ = ["C4GConfig", "CONFIGS", "DECODERS", "config_table"]

DECODERS = ("queries", "pixels")  # C4G's query Gaussians, the per-pixel baseline (model.build_model)

@dataclass(frozen=True)
class C4GConfig:
    # ---- data (model.ClipDataset)
    image_size: int = 64        # H = W of every frame (the generator's images are square)
    clip_frames: int = 8        # T: consecutive frames of a sequence per training clip
    input_frames: int = 4       # S: frames the encoder sees, evenly spaced over the clip (first and last included)
    target_views: int = 4       # V: frames of the clip rendered for the loss (each its own camera and time)
    # ---- video encoder (a small ViT over the S frames)
    patch_size: int = 8         # p: each frame is cut into (H/p) x (W/p) patches, one token each
    dim: int = 128              # D: token width, encoder and decoder
    heads: int = 4
    enc_depth: int = 4          # layers, alternating frame-wise / global attention (starting frame-wise)
    mlp_ratio: float = 4.0
    time_freq: float = 16.0     # times in [0, 1] are multiplied by this before the sinusoids (fastest: 16 rad per clip)
    # ---- query-Gaussian decoder
    num_queries: int = 256      # N: Gaussians per target time, whatever the number of frames or pixels
    dec_depth: int = 2          # layers: self-attention between queries, cross-attention to all frames' tokens, MLP
    feature_dim: int = 0        # extra channels per Gaussian (feature lifting later); 0: none
    min_scale: float = 0.005    # Gaussian standard deviations lie in [min_scale, max_scale] (normalised units)
    max_scale: float = 0.5
    # ---- per-pixel baseline (model.PixelGaussians)
    pixel_stride: int = 2       # one Gaussian per stride x stride pixels of every input frame (1: per pixel)
    # ---- which decoder the run trains (model.build_model): "queries" = C4G, "pixels" = the
    # PixelGaussians baseline on the same encoder. A config field, not a second model class in
    # the registry, so that both are one method whose runs, identities and checkpoints differ
    # by this field only (num_queries is unused by "pixels", pixel_stride by "queries").
    decoder: str = "queries"
    # ---- loss
    depth_weight: float = 0.1   # weight of the depth L1 (normalised units) beside the RGB L1; 0: RGB only
    # ---- training (AdamW with linear warm-up; fourdlib.train.train adds a cosine decay)
    steps: int = 2000
    batch_size: int = 2         # clips per process
    lr: float = 1e-3
    warmup_steps: int = 100
    weight_decay: float = 0.01

    def __post_init__(self):
        for name in ("image_size", "clip_frames", "input_frames", "target_views", "patch_size", "dim", "heads",
                     "enc_depth", "num_queries", "dec_depth", "pixel_stride", "steps", "batch_size"):
            v = getattr(self, name)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                raise ValueError(f"C4GConfig.{name} must be a positive int, got {v!r}")
        for name in ("feature_dim", "warmup_steps"):
            v = getattr(self, name)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 0):
                raise ValueError(f"C4GConfig.{name} must be an int >= 0, got {v!r}")
        for name in ("mlp_ratio", "time_freq", "min_scale", "max_scale", "lr"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ValueError(f"C4GConfig.{name} must be a positive number, got {v!r}")
        for name in ("depth_weight", "weight_decay"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
                raise ValueError(f"C4GConfig.{name} must be a number >= 0, got {v!r}")
        if self.decoder not in DECODERS:
            raise ValueError(f"C4GConfig.decoder must be one of {DECODERS}, got {self.decoder!r}")
        if self.input_frames > self.clip_frames:
            raise ValueError(f"C4GConfig.input_frames ({self.input_frames}) exceeds clip_frames ({self.clip_frames})")
        if self.target_views > self.clip_frames:
            raise ValueError(f"C4GConfig.target_views ({self.target_views}) exceeds clip_frames ({self.clip_frames})")
        if self.image_size % self.patch_size:
            raise ValueError(f"C4GConfig.patch_size ({self.patch_size}) must divide image_size ({self.image_size})")
        if self.patch_size % self.pixel_stride:
            raise ValueError(f"C4GConfig.pixel_stride ({self.pixel_stride}) must divide patch_size ({self.patch_size})")
        if self.dim % self.heads:
            raise ValueError(f"C4GConfig.heads ({self.heads}) must divide dim ({self.dim})")
        if not self.min_scale < self.max_scale:
            raise ValueError(f"C4GConfig.max_scale ({self.max_scale}) must exceed min_scale ({self.min_scale})")
        if not self.warmup_steps < self.steps:
            raise ValueError(f"C4GConfig.warmup_steps ({self.warmup_steps}) must be below steps ({self.steps})")

    def train_config(self, **overrides):
        """A fourdlib.train.TrainConfig with this row's steps, batch, lr, warm-up, decay."""
        kw = dict(steps=self.steps, batch_size=self.batch_size, lr=self.lr,
                  warmup_steps=self.warmup_steps, weight_decay=self.weight_decay)
        return TrainConfig(**{**kw, **overrides})

# One row per scale. The project page gives no sizes (no number in its text), so every row is
# ours: "full" is a ViT-B-sized encoder (D = 768, 12 layers, patch 16) and enough queries for
# a scene at 256 x 256, the size a pretrained VGGT-like backbone would replace (model.py says
# how). tiny is sized for a 2-core CPU (64 x 64 frames, 8-frame clips, 4 input frames, a
# stride-4 baseline of 4 x 16 x 16 = 1024 Gaussians against C4G's 256) and trained for 2000
# steps: the two committed runs trained side by side on one CPU thread each, within the hour
# (checkpoints/c4g/README.md has their times). small (one GPU) and smoke (seconds) are not timed.
_COLUMNS = ("image_size", "clip_frames", "input_frames", "target_views", "patch_size", "dim", "heads",
            "enc_depth", "num_queries", "dec_depth", "pixel_stride", "steps", "batch_size", "lr", "warmup_steps")
_TABLE = {
    #          HxW  clip S   V   patch D    heads enc  N       dec stride steps    batch lr    warm-up
    "smoke": (32,   4,   2,  2,  8,    32,  2,    2,   64,     1,  2,     20,      1,    1e-3, 2),
    "tiny":  (64,   8,   4,  4,  8,    128, 4,    4,   256,    2,  4,     2000,    2,    1e-3, 100),
    "small": (128,  16,  8,  4,  8,    384, 6,    8,   4096,   4,  1,     30_000,  8,    5e-4, 1000),
    "full":  (256,  32,  16, 8,  16,   768, 12,   12,  32_768, 6,  1,     200_000, 4,    2e-4, 5000),
}
CONFIGS: dict[str, C4GConfig] = {name: C4GConfig(**dict(zip(_COLUMNS, row, strict=True)))
                                 for name, row in _TABLE.items()}

def config_table():
    """CONFIGS as a pandas DataFrame (one row per scale, every field), for notebooks."""
    return runs.config_table(CONFIGS)
