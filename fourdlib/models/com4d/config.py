"""COM4D's configuration: one frozen dataclass, one row per scale (smoke, tiny, small, full).

`CONFIGS[scale]` is what tests, the CLI and runs use; `config_table()` shows the rows side
by side. Lengths are in NORMALISED units: every sequence is centred on the box of its
foreground objects' surfaces over all frames and scaled so that its longest half-side is
0.9 (model.normalize_sequence), so objects live in [-1, 1]^3 as TripoSG's do.

One run trains the whole model in stages chosen by the step (model.loss reads the model's
step counter): steps [0, vae_steps) the shape VAE alone; then the DiT with attention
parsing (alternating static-scene and single-animation batches); from df_start on, with
diffusion forcing (clean history latents). Training never sees a mixed sample.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...train import flow_matching as fm
from ...train import runs
from ...train.loop import TrainConfig

__all__ = ["COM4DConfig", "CONFIGS", "config_table"]


@dataclass(frozen=True)
class COM4DConfig:
    # ---- data (model.CompositionalDataset)
    image_size: int = 64          # H = W of the conditioning frames (the course data's size)
    max_objects: int = 8          # O limit per scene (the paper caps parts at 8); more is a ValueError
    train_frames: int = 8         # W: frames per training window and per sampling window (paper: 8)
    history_frames: int = 4       # clean frames a sliding window keeps from the previous one
    surface_points: int = 1024    # GT surface samples per object and frame given to the VAE encoder
    occ_points: int = 1024        # occupancy queries per object and frame (half uniform, half near the surface)
    occ_resolution: int = 32      # GT solid voxel grid over [-1, 1]^3 that labels the queries
    near_std: float = 0.03        # std of the near-surface query offsets
    dynamic_scale: float = 0.35   # single animations are shrunk by a random factor in [this, 1] (see model doc)
    # ---- shape VAE (vecset latents: K tokens of C channels per object and frame)
    num_latents: int = 32         # K
    latent_dim: int = 8           # C
    vae_dim: int = 64             # width of the VAE's transformer
    vae_heads: int = 4
    vae_enc_depth: int = 1        # self-attention layers after the FPS cross-attention
    vae_dec_depth: int = 2        # self-attention layers on the latents before the occupancy queries
    fourier_bands: int = 6
    kl_weight: float = 1e-3
    # ---- conditioning encoder (a small CNN over RGB + one object's mask)
    patch_size: int = 8           # the image becomes (H/p) x (W/p) tokens
    # ---- DiT (even blocks spatial, odd blocks temporal)
    dim: int = 128                # D
    heads: int = 4
    depth: int = 6                # blocks; an even number gives as many spatial as temporal blocks
    mlp_ratio: float = 4.0
    time_dist: str = "logit_normal"
    single_prob: float = 0.3      # degenerate samples (one object / one frame), as the paper's 0.3
    history_prob: float = 0.5     # diffusion forcing: share of samples given clean history latents
    motion_embed: bool = True     # static/dynamic embeddings (False: the paper's ablation without them)
    diffusion_forcing: bool = True  # False: no clean-history fine-tuning (the ablation); df_start is then unused
    sample_steps: int = 16        # Euler steps per window at sampling
    sample_method: str = "euler"
    eval_resolution: int = 32     # occupancy grid decoded for meshes, points and IoU
    # ---- training (AdamW with linear warm-up; fourdlib.train.train adds a cosine decay)
    vae_steps: int = 600          # steps of the VAE stage
    df_start: int = 1600          # first step of diffusion-forcing fine-tuning (>= vae_steps)
    steps: int = 2000             # all stages together
    batch_size: int = 4
    lr: float = 1e-3
    warmup_steps: int = 50
    weight_decay: float = 0.01
    ema: float = 0.0

    def __post_init__(self):
        for name in ("image_size", "max_objects", "train_frames", "surface_points", "occ_points",
                     "occ_resolution", "num_latents", "latent_dim", "vae_dim", "vae_heads", "fourier_bands",
                     "patch_size", "dim", "heads", "depth", "sample_steps", "eval_resolution", "steps",
                     "batch_size"):
            v = getattr(self, name)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                raise ValueError(f"COM4DConfig.{name} must be a positive int, got {v!r}")
        for name in ("vae_enc_depth", "vae_dec_depth", "history_frames", "vae_steps", "df_start"):
            v = getattr(self, name)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 0):
                raise ValueError(f"COM4DConfig.{name} must be an int >= 0, got {v!r}")
        if self.num_latents > self.surface_points:
            raise ValueError(f"COM4DConfig: num_latents (K={self.num_latents}) exceeds surface_points "
                             f"({self.surface_points}); FPS cannot pick more anchors than points")
        if self.history_frames >= self.train_frames:
            raise ValueError(f"COM4DConfig: history_frames ({self.history_frames}) must be below train_frames "
                             f"({self.train_frames}), or a sliding window never advances")
        if self.image_size % self.patch_size:
            raise ValueError(f"COM4DConfig: image_size {self.image_size} is not a multiple of patch_size "
                             f"{self.patch_size}")
        for d, h, what in ((self.dim, self.heads, "dim/heads"), (self.vae_dim, self.vae_heads, "vae_dim/vae_heads")):
            if d % h:
                raise ValueError(f"COM4DConfig: {what} = {d}/{h} is not an integer head width")
        if not self.vae_steps <= self.df_start <= self.steps:
            raise ValueError(f"COM4DConfig: need vae_steps <= df_start <= steps, got {self.vae_steps}, "
                             f"{self.df_start}, {self.steps}")
        choices = {"time_dist": fm.TIME_DISTRIBUTIONS, "sample_method": ("euler", "heun")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"COM4DConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name in ("single_prob", "history_prob", "ema"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
                raise ValueError(f"COM4DConfig.{name} must lie in [0, 1), got {v!r}")
        for name in ("motion_embed", "diffusion_forcing"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"COM4DConfig.{name} must be a bool, got {getattr(self, name)!r}")
        if not 0 < self.dynamic_scale <= 1:
            raise ValueError(f"COM4DConfig.dynamic_scale must lie in (0, 1], got {self.dynamic_scale!r}")

    def train_config(self, **overrides):
        """A fourdlib.train.TrainConfig with this row's steps, batch, lr, warm-up, decay."""
        kw = dict(steps=self.steps, batch_size=self.batch_size, lr=self.lr,
                  warmup_steps=self.warmup_steps, weight_decay=self.weight_decay, ema=self.ema)
        return TrainConfig(**{**kw, **overrides})


# One row per scale. The paper's row ("full") keeps its facts: 8 parts / 8 frames per path,
# 21 DiT blocks, 20k DiT steps at batch 50 (steps - vae_steps). TripoSG's VAE (K = 2048
# latents of C = 64) and DiT (width 2048) were pretrained and cannot be downloaded; ours are
# trained here from scratch, so their sizes and the VAE's steps are ours. tiny: 2.4M
# parameters (a checkpoint under 10 MB); its 3600 steps at batch 4 take about half an hour
# on one CPU thread (two runs side by side on 2 cores). smoke: seconds.
_COLUMNS = ("image_size", "train_frames", "history_frames", "surface_points", "occ_points", "occ_resolution",
            "num_latents", "latent_dim", "vae_dim", "vae_enc_depth", "vae_dec_depth", "dim", "heads", "depth", "mlp_ratio",
            "sample_steps", "eval_resolution", "vae_steps", "df_start", "steps", "batch_size", "lr", "warmup_steps")
_TABLE = {
    #          img  W  hist surf  occ   occR  K    C   vD   ve vd  D     H   L   mlp  ode evR  vae     df      steps   batch lr    warm
    "smoke": (32,  4, 2,   256,  256,  16,   16,  4,  32,  1, 1,  32,   2,  2,  2.0, 4,  16,  20,     30,     40,     2,    1e-3, 2),
    "tiny":  (64,  8, 4,   1024, 1024, 32,   32,  8,  64,  1, 2,  128,  4,  6,  2.0, 16, 32,  1500,   3000,   3600,   4,    1e-3, 50),
    "small": (128, 8, 4,   2048, 2048, 64,   128, 16, 256, 2, 4,  256,  8,  12, 4.0, 32, 64,  20_000, 40_000, 50_000, 16,   3e-4, 1000),
    "full":  (256, 8, 4,   4096, 4096, 64,   512, 32, 512, 2, 6,  512,  8,  21, 4.0, 50, 64,  50_000, 65_000, 70_000, 50,   1e-4, 2000),
}
CONFIGS: dict[str, COM4DConfig] = {name: COM4DConfig(**dict(zip(_COLUMNS, row, strict=True)))
                                   for name, row in _TABLE.items()}


def config_table():
    """CONFIGS as a pandas DataFrame (one row per scale, every field), for notebooks."""
    return runs.config_table(CONFIGS)
