"""Solutions to the exercises of notebooks/17_com4d_diffusion_forcing_and_mixing.ipynb.

Run: python notebooks/solutions/17_com4d_diffusion_forcing_and_mixing.py  (seconds at
FOURD_SCALE=smoke; random-weight models, no training).
"""
import dataclasses
import math
import os

import torch

from fourdlib.models.com4d import CONFIGS, COM4D, sample_latents
from fourdlib.train import flow_matching as fm

scale = os.environ.get("FOURD_SCALE", "tiny")
cfg = CONFIGS[scale] if scale in ("smoke", "tiny") else CONFIGS["tiny"]
W = cfg.train_frames


def randomized(model, std=0.1, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    model.latent_scale.fill_(1.0)
    return model.eval()


def scene(O, T, seed=0):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(1, T, 3, cfg.image_size, cfg.image_size, generator=g) * 2 - 1
    masks = (torch.rand(1, O, T, cfg.image_size, cfg.image_size, generator=g) > 0.7).float()
    return image, masks


def spy_calls(net, *args, **kwargs):
    calls = []
    forward = net.forward
    net.forward = lambda z, t, *a, **k: calls.append((tuple(z.shape[1:3]), t.clone())) or forward(z, t, *a, **k)
    try:
        z = sample_latents(net, *args, **kwargs)
    finally:
        del net.forward
    return z, calls


def windows_formula(T, W, H):
    """The first window generates frames 1..W-1, every later one W - H new frames (the last one
    is shifted back to end at frame T - 1): 1 + ceil((T - W) / (W - H)) windows for T >= W."""
    return 1 + math.ceil((T - W) / (W - H))


def exercise_1_how_much_history():
    T = 2 * W + 3
    image, masks = scene(1, T)
    rows = []
    for H in range(1, W):
        net = randomized(COM4D(dataclasses.replace(cfg, history_frames=H, depth=2)))
        _, calls = spy_calls(net, image, masks, torch.ones(1, 1, dtype=torch.bool), steps=1)
        windows = sum(1 for (O, F), _ in calls if F > 1)
        assert windows == windows_formula(T, W, H), (H, windows)
        rows.append((H, windows))
    print(f"T={T}, W={W}: windows per history length H:", rows,
          "-- more history costs more windows (W - H new frames each) and buys a longer clean context")


def exercise_2_no_history_jumps():
    """Regenerate the second window with its history frames as fresh noise: the overlap frames
    then differ from what the first window produced, a jump at the boundary. With the clean
    history (what sample_latents does) they are the first window's frames, bit for bit."""
    T, H = 2 * W, cfg.history_frames
    net = randomized(COM4D(dataclasses.replace(cfg, depth=2)))
    image, masks = scene(1, T, seed=1)
    dyn, valid = torch.ones(1, 1, dtype=torch.bool), torch.ones(1, 1, dtype=torch.bool)
    z = sample_latents(net, image, masks, dyn, steps=4, generator=torch.Generator().manual_seed(0))   # (1, 1, T, K, C)
    with torch.no_grad():
        ctx = net.encode_condition(image, masks)
    start = max(0, min(W - H, T - W))                        # the second window, as sample_latents places it
    frames = list(range(start, start + W))
    overlap = [f for f in frames if f < W]                   # frames the first window already generated

    def second_window(keep_history):
        clean = torch.tensor([f in overlap and keep_history for f in frames])[None, None]
        noise = torch.randn(1, 1, W, *z.shape[-2:], generator=torch.Generator().manual_seed(5))
        x = torch.where(clean[..., None, None], z[:, :, frames], noise)
        velocity = lambda x, t: net(x, t, ctx[:, :, frames], valid, dyn)   # noqa: E731
        with torch.no_grad():
            return fm.integrate_per_latent(velocity, x, clean.float(), 4)

    kept = second_window(True)[:, :, :len(overlap)]
    fresh = second_window(False)[:, :, :len(overlap)]
    same = float((kept - z[:, :, overlap]).abs().max())
    jump = float((fresh - z[:, :, overlap]).abs().mean())
    assert same == 0.0 and jump > 0
    print(f"overlap frames {overlap}: with clean history they are the first window's (max diff {same}); "
          f"regenerated from noise they move by {jump:.3f} on average: a jump at the window boundary")


def exercise_3_what_static_objects_cost():
    """Generated latents: O in frame 0 + M (T - 1) for the movers; DiT latent evaluations:
    steps * (O + windows * O * W): static objects still pass through every window, clean, as
    context for the spatial blocks. Frame by frame generates (and evaluates) steps * O * T."""
    O, M, T, steps = 3, 1, 2 * W + 2, 2
    image, masks = scene(O, T, seed=2)
    dynamic = torch.tensor([[True] * M + [False] * (O - M)])
    net = randomized(COM4D(dataclasses.replace(cfg, depth=2)))
    _, calls = spy_calls(net, image, masks, dynamic, steps=steps)
    evaluations = sum(o * f for (o, f), _ in calls)
    generated = sum(int((t < 1).sum()) for (_, _), t in calls[::steps])   # first call of each solve
    windows = windows_formula(T, W, cfg.history_frames)
    assert generated == O + M * (T - 1)
    assert evaluations == steps * (O + windows * O * W)
    _, calls_fbf = spy_calls(net, image, masks, dynamic, steps=steps, frame_by_frame=True)
    assert sum(o * f for (o, f), _ in calls_fbf) == steps * O * T
    print(f"O={O}, M={M}, T={T}: mixing generates {generated} latents (frame by frame {O * T}) with "
          f"{evaluations} DiT latent evaluations (frame by frame {steps * O * T})")


if __name__ == "__main__":
    exercise_1_how_much_history()
    exercise_2_no_history_jumps()
    exercise_3_what_static_objects_cost()
