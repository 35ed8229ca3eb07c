"""DynaTok's configuration: one frozen dataclass, one row per scale (smoke, tiny, small, full).

`CONFIGS[scale]` is what notebooks, the CLI and committed runs use; `config_table()` shows
them side by side. A run's identity includes every field, so changing a default changes
which committed checkpoints match (tests/test_dynatok_course.py says so when it happens).
"""
from __future__ import annotations

from dataclasses import dataclass

from ...train import flow_matching as fm
from ...train import runs
from ...train.loop import TrainConfig

__all__ = ["DynaTokConfig", "CONFIGS", "config_table"]

@dataclass(frozen=True)
class DynaTokConfig:
    # ---- data
    input_points: int = 512     # N: partial points per frame given to the tokenizer
    train_frames: int = 8       # S: frames per training window
    eval_frames: int = 16       # frames per evaluation window (the paper: 16)
    train_points: int = 512     # GT points per frame used as flow-matching targets x1
    eval_points: int = 2048     # points generated per frame at evaluation
    norm_frame: str = "all"     # "all": centre/scale from every frame's input; "first": frame 1's; "each": per-frame centres
    # training windows (SequenceDataset windows= / copies=); defaults = what the committed runs used
    train_windows: str = "consecutive"  # "random": S distinct frames drawn from the sequence (the paper's)
    train_copies: float = 0.0   # probability that a training window is S copies of one frame, in [0, 1)
    # ---- tokenizer
    num_tokens: int = 32        # M: FPS anchors = tokens per frame
    dim: int = 128              # D: token width (also the decoder's width)
    heads: int = 4
    fourier_bands: int = 6      # NeRF-style frequencies pi * 2^k, k = 0..bands-1
    tok_depth: int = 1          # self-attention layers after the anchor cross-attention
    # ---- spatio-temporal transformer
    st_depth: int = 4           # layers, alternating intra-frame / cross-frame (starting intra)
    temporal: bool = True       # False: the per-frame-only ablation (no cross-frame information)
    residual: bool = True       # Z_s = G + H_s (only with temporal=True)
    rope_scale: float = 32.0    # RoPE: one radian of the fastest pair per 1/32 of the unit distance
    rope_base: float = 100.0    # slowest wavelength 2*pi*100/32 ~ 20 units > the normalised scene
    mlp_ratio: float = 4.0      # MLP width / D in the tokenizer and the transformer
    # ---- flow-matching decoder
    dec_depth: int = 2          # cross-attention layers of the velocity network
    dec_mlp_ratio: float = 2.0  # the decoder runs once per point and ODE step: keep it lean
    prior: str = "uniform"      # x0 ~ U([-1, 1]^3), as the paper
    time_dist: str = "uniform"  # training t ~ U(0, 1)
    time_per: str = "frame"     # one t per "frame" or per "point" in training (see module doc)
    sample_steps: int = 32      # ODE steps at evaluation (Heun: 2 velocity evaluations per step)
    sample_method: str = "heun"
    # ---- training (AdamW with linear warm-up; fourdlib.train.train adds a cosine decay)
    steps: int = 2000
    batch_size: int = 4         # sequences per process (the paper: 8 per GPU)
    lr: float = 1e-3
    warmup_steps: int = 100
    weight_decay: float = 0.01
    ema: float = 0.0            # decay of the weight average evaluated instead of the last weights (0: none)

    def __post_init__(self):
        for name in ("input_points", "train_frames", "eval_frames", "train_points", "eval_points",
                     "num_tokens", "dim", "heads", "fourier_bands", "st_depth", "dec_depth",
                     "sample_steps", "steps", "batch_size"):
            v = getattr(self, name)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                raise ValueError(f"DynaTokConfig.{name} must be a positive int, got {v!r}")
        if not (isinstance(self.tok_depth, int) and self.tok_depth >= 0):
            raise ValueError(f"DynaTokConfig.tok_depth must be an int >= 0, got {self.tok_depth!r}")
        if self.num_tokens > self.input_points:
            raise ValueError(f"DynaTokConfig: num_tokens (M={self.num_tokens}) exceeds input_points "
                             f"(N={self.input_points}); FPS cannot pick more anchors than points")
        if self.dim % self.heads or (self.dim // self.heads) % 2 or self.dim // self.heads < 6:
            raise ValueError(f"DynaTokConfig: dim={self.dim} / heads={self.heads} must give an even head "
                             "dim >= 6 (3D RoPE turns at least one pair per axis)")
        choices = {"norm_frame": ("all", "first", "each"), "prior": fm.PRIORS, "time_dist": fm.TIME_DISTRIBUTIONS,
                   "time_per": ("frame", "point"), "sample_method": tuple(fm.METHODS),
                   "train_windows": ("consecutive", "random")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"DynaTokConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        c = self.train_copies  # < 1: a run must still see real windows
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not 0.0 <= c < 1.0:
            raise ValueError(f"DynaTokConfig.train_copies must be a probability in [0, 1), got {c!r}")
        if isinstance(self.ema, bool) or not isinstance(self.ema, (int, float)) or not 0 <= self.ema < 1:
            raise ValueError(f"DynaTokConfig.ema must be a decay in [0, 1) (0: no weight average), got {self.ema!r}")

    @property
    def uses_residual(self) -> bool:
        """Whether Z_s = G + H_s is built (needs cross-frame information, so temporal=True)."""
        return self.temporal and self.residual

    @property
    def ref_frame(self) -> int | None:
        """The `ref_frame` argument of fourdlib.geometry.normalize for `norm_frame`."""
        return 0 if self.norm_frame == "first" else None

    @property
    def per_frame_center(self) -> bool:
        """norm_frame="each": every frame centred on its own input (normalize_batch's per_frame)."""
        return self.norm_frame == "each"

    def train_config(self, **overrides):
        """A fourdlib.train.TrainConfig with this row's steps, batch, lr, warm-up, decay."""
        kw = dict(steps=self.steps, batch_size=self.batch_size, lr=self.lr,
                  warmup_steps=self.warmup_steps, weight_decay=self.weight_decay, ema=self.ema)
        return TrainConfig(**{**kw, **overrides})

# One row per scale. The paper's row ("full"): N = 8192 input points, M = 512 tokens, S = 8
# training frames and 16 for evaluation, AdamW at lr 1e-3 with linear warm-up, 250k steps,
# 8 sequences per GPU on 8 GPUs (torchrun: batch_size is per process). Not in the paper,
# so ours: D = 512 with 8 heads, 2 tokenizer + 12 spatio-temporal + 6 decoder layers (about
# ViT-B's width and depth), the warm-up length, 2048 GT points per frame as targets, the
# ODE steps, and coordinates aligned to frame 1 (norm_frame="first", the frame the residual
# latents refer to). ODE steps sit at the knee of accuracy + completeness against velocity
# evaluations (notebook 03 measures it: at tiny, Heun 8 is within 5 % of the best; smoke,
# small and full are not measured). tiny is sized for a 2-core CPU, small for about an hour on one GPU,
# smoke for seconds (benchmarks/bench_dynatok.py measures each).
_COLUMNS = ("input_points", "num_tokens", "dim", "heads", "tok_depth", "st_depth", "dec_depth",
            "train_frames", "eval_frames", "train_points", "eval_points", "sample_steps",
            "steps", "batch_size", "lr", "warmup_steps", "norm_frame")
_TABLE = {
    #          N     M    D    heads tok  st  dec   S  S_eval x1    eval  ode   steps   batch lr    warm-up norm
    "smoke": (128,   16,  32,  2,    1,   2,  1,    4,  4,   128,  256,  4,    20,      2,   1e-3, 2,    "first"),
    "tiny":  (512,   32,  128, 4,    1,   4,  2,    8,  16,  512,  2048, 8,    1200,    4,   1e-3, 100,  "first"),
    "small": (2048,  128, 256, 8,    2,   8,  3,    8,  16,  2048, 8192, 32,   30_000,  8,   1e-3, 1000, "first"),
    "full":  (8192,  512, 512, 8,    2,   12, 6,    8,  16,  2048, 8192, 64,   250_000, 8,   1e-3, 5000, "first"),
}
CONFIGS: dict[str, DynaTokConfig] = {name: DynaTokConfig(**dict(zip(_COLUMNS, row, strict=True)))
                                     for name, row in _TABLE.items()}

def config_table():
    """CONFIGS as a pandas DataFrame (one row per scale, every field), for notebooks."""
    return runs.config_table(CONFIGS)
