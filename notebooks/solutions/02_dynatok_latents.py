"""Solutions to the exercises of notebooks/02_dynatok_latents.ipynb.

Run: python notebooks/solutions/02_dynatok_latents.py  (seconds; fresh smoke-config models, random windows).
"""
import dataclasses

import torch

from fourdlib.layers import apply_rotary
from fourdlib.models.dynatok import CONFIGS, DynaTok

cfg = CONFIGS["smoke"]
g = torch.Generator().manual_seed(0)


def exercise_1_rope_is_relative():
    """score(rope(q, p), rope(k, p')) = score(rope(q, 0), rope(k, p' - p)) with the library's RoPE."""
    torch.manual_seed(0)
    rope = DynaTok(cfg).rope                                           # RotaryEmbedding3D of the head dim
    d = cfg.dim // cfg.heads
    q, k = torch.randn(2, 64, d, generator=g)                          # 64 query-key pairs
    p, p2 = torch.rand(2, 64, 3, generator=g) * 2 - 1                  # their anchors, normalised units
    score = lambda a, pa, b, pb: (apply_rotary(a, *rope(pa)) * apply_rotary(b, *rope(pb))).sum(-1)
    absolute = score(q, p, k, p2)                                      # (64,)
    relative = score(q, torch.zeros_like(p), k, p2 - p)
    torch.testing.assert_close(absolute, relative, atol=1e-4, rtol=1e-4)
    print(f"RoPE scores depend only on p' - p: max difference {float((absolute - relative).abs().max()):.1e}")


def exercise_2_alter_the_reference():
    """Mirroring frame 1: per-frame changes frame 1 only; temporal changes every frame (G is frame 1's output)."""
    window = torch.rand(1, cfg.eval_frames, cfg.input_points, 3, generator=g) * 2 - 1   # (1, S, N, 3)
    altered = window.clone()
    altered[:, 0, :, 0] *= -1                                          # mirror the reference frame
    for temporal in (False, True):
        torch.manual_seed(0)
        model = DynaTok(dataclasses.replace(cfg, temporal=temporal)).eval()
        with torch.no_grad():
            dZ = (model.encode(window)["Z"] - model.encode(altered)["Z"]).abs().amax((0, 2, 3))   # (S,)
        changed = (dZ > 1e-5).tolist()
        print(f"temporal={temporal}: frames whose Z changed {[s + 1 for s, c in enumerate(changed) if c]}")
        assert changed == ([True] + [False] * (len(changed) - 1) if not temporal else [True] * len(changed))


def exercise_3_attention_cost():
    """Intra-frame: S * M^2 query-key pairs; cross-frame: (S * M)^2, S times as many."""
    for S, M in ((16, 32), (32, 32)):
        frame_of = torch.arange(S).repeat_interleave(M)
        intra = int((frame_of[:, None] == frame_of[None, :]).sum())    # the block-diagonal mask's allowed pairs
        cross = (S * M) ** 2
        assert intra == S * M * M and cross // intra == S
        print(f"S={S}, M={M}: intra-frame {intra:,} pairs, cross-frame {cross:,} ({cross // intra}x)")


if __name__ == "__main__":
    exercise_1_rope_is_relative()
    exercise_2_alter_the_reference()
    exercise_3_attention_cost()
