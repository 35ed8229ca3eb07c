"""Solutions to the exercises of notebooks/10_native4d_windows.ipynb.

Run: python notebooks/solutions/10_native4d_windows.py  (a few seconds at FOURD_SCALE=smoke or tiny: an
untrained model on one window of the course creatures; nothing is trained).
"""
import dataclasses
import os

import pandas as pd
import torch
import torch.nn.functional as F

from fourdlib.models.native4d_vae import CONFIGS, Native4DVAE, choose_lambda, collate, course_data, make_dataset, window_item
from fourdlib.models.native4d_vae.model import frame_times, voxel_inputs
from fourdlib.sparse import SparseTensor, dense_to_sparse

scale = os.environ.get("FOURD_SCALE", "tiny")
cfg = CONFIGS[scale]
data = make_dataset(cfg, course_data("creatures", scale, progress=False), "train", train=False)
plans = [e["body_plan"] for e in data.entries]
item = data[plans.index("quadruped") if "quadruped" in plans else 0]     # the notebook's creature


def model(config=cfg):
    torch.manual_seed(0)
    return Native4DVAE(config).eval()                                    # untrained: windows do not depend on weights


@torch.no_grad()
def stem(vae, batch):
    """The fine tokens the first STD block sees (Native4DVAE.encode's first lines) and the frame times."""
    coords = batch["coords"]
    n = int(batch["num_frames"].sum())
    offsets = F.pad(torch.bincount(coords[:, 0], minlength=n).cumsum(0), (1, 0))
    x = SparseTensor(coords, vae.enc_in(voxel_inputs(batch, vae.cfg.resolution)), offsets)
    for res, down in zip(vae.enc_res, vae.enc_down):
        x = down(res(x))
    return x, frame_times(batch["num_frames"])


def window_label(coords, lam, side):
    return torch.cat([coords[:, :1] // lam, coords[:, 1:] // side], 1)


def exercise_1_window_size():
    """A larger window holds more keys and there are fewer windows: attention computes a larger share of
    global attention's scores. At W = the coarse grid's side every group is one window: full attention
    within each group of lambda frames (the share is then that of attention within groups only)."""
    batch = collate([window_item(item, 0, cfg.train_frames)])
    lam = choose_lambda(batch["num_frames"], cfg.temporal_ratio)
    s = 2 ** cfg.stem_down
    coarse_side = cfg.resolution // (2 * s)
    rows = {}
    for w in sorted({max(1, cfg.window // 2), cfg.window, min(2 * cfg.window, coarse_side), coarse_side}):
        vae = model(dataclasses.replace(cfg, window=w))
        x, t = stem(vae, batch)
        std = vae.std[0]
        seen = {}
        hook = std.block.attn.register_forward_pre_hook(lambda m, a, kw: seen.update(kw), with_kwargs=True)
        with torch.no_grad():
            xc_coords = std.down(x).coords
            std(x, t, lam)
        hook.remove()
        q_lab, f_lab = window_label(xc_coords, lam, w), window_label(x.coords, lam, 2 * w)
        labels, number = torch.unique(torch.cat([q_lab, f_lab]), dim=0, return_inverse=True)
        q = torch.bincount(number[:len(q_lab)], minlength=len(labels))
        k = torch.bincount(number[len(q_lab):], minlength=len(labels)) + q
        assert torch.equal(seen["cu_seqlens"], F.pad(q.cumsum(0), (1, 0)))            # the library's windows
        assert torch.equal(seen["context_cu_seqlens"], F.pad(k.cumsum(0), (1, 0)))
        q, k = q.double(), k.double()
        rows[w] = {"windows": len(labels), "keys per window": float(k.mean()),
                   "share of global scores": float((q * k).sum() / (q.sum() * k.sum()))}
        groups = int(batch["num_frames"].sum()) // lam
        if w == coarse_side:
            assert len(labels) == groups                                   # one window per group of frames
    table = pd.DataFrame.from_dict(rows, orient="index").rename_axis("W")
    print(table.round(3))
    assert table["windows"].is_monotonic_decreasing and table["share of global scores"].is_monotonic_increasing
    return table


def exercise_2_subframe_times():
    """With every frame at time 0 the lambda copies of a token are identical, the attention in each frame
    sees identical queries and keys, and the up-conv writes identical children: the lambda frames of a
    group decode to the same thing. Only the time channels of the 4D encoding tell them apart."""
    batch = collate([window_item(item, 0, cfg.train_frames)])
    lam = choose_lambda(batch["num_frames"], cfg.temporal_ratio)
    assert lam > 1, "this exercise needs lambda > 1"
    vae = model()
    t = frame_times(batch["num_frames"])
    with torch.no_grad():
        mean, _ = vae.encode(batch, lam)
        dec = vae.dec_in(mean)
        tokens = dense_to_sparse(dec, torch.ones_like(dec[:, 0], dtype=torch.bool),
                                 stride=2 ** (cfg.stem_down + cfg.num_std))
        for i in reversed(range(1, cfg.num_std)):
            tokens = vae.stu[i](tokens, t[::lam], 1)
        spread = {}
        for label, times in (("true times", t), ("all times 0", torch.zeros_like(t))):
            out = vae.stu[0](tokens, times, lam)
            # every frame holds the same cells (all children of the dense latent): sort each frame by cell
            per_frame = []
            for f in range(out.batch_size):
                rows = (out.coords[:, 0] == f).nonzero()[:, 0]
                c = out.coords[rows, 1:]
                key = (c[:, 0] * 4096 + c[:, 1]) * 4096 + c[:, 2]
                order = rows[torch.argsort(key)]
                per_frame.append((out.coords[order, 1:], out.feats[order]))
            assert all(torch.equal(per_frame[0][0], c) for c, _ in per_frame)    # same sites in every frame
            feats = torch.stack([f for _, f in per_frame]).view(out.batch_size // lam, lam, *per_frame[0][1].shape)
            spread[label] = float((feats - feats[:, :1]).abs().max())             # sub-frame k vs sub-frame 0
    print({k: f"{v:.2e}" for k, v in spread.items()}, "(max |sub-frame k - sub-frame 0| at the same site)")
    assert spread["all times 0"] < 1e-5 < spread["true times"]
    return spread


def exercise_3_lambda_compression():
    """STD outputs one token per coarse cell occupied in ANY of a group's lambda frames. A moving creature
    occupies different cells in different frames, so the union of lambda frames is larger than one
    frame's set: tokens fall by less than lambda. Bounds: n(1) / lambda <= n(lambda) <= n(1) (a union is
    at least the mean of its parts and at most their sum)."""
    batch = collate([window_item(item, 0, 4)])                             # 4 frames: every lambda divides it
    vae = model()
    x, t = stem(vae, batch)
    n = {}
    with torch.no_grad():
        for lam in (1, 2, 4):
            n[lam] = len(vae.std[0](x, t, lam).coords)
    table = pd.DataFrame({"tokens": n, "per input frame": {k: v / 4 for k, v in n.items()},
                          "drop vs lambda = 1": {k: n[1] / v for k, v in n.items()}}).rename_axis("lambda")
    print(table.round(2))
    assert n[1] >= n[2] >= n[4]
    assert all(n[1] / lam <= n[lam] <= n[1] for lam in (1, 2, 4))
    return table


if __name__ == "__main__":
    exercise_1_window_size()
    exercise_2_subframe_times()
    exercise_3_lambda_compression()
