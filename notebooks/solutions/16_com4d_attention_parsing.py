"""Solutions to the exercises of notebooks/16_com4d_attention_parsing.ipynb.

Run: python notebooks/solutions/16_com4d_attention_parsing.py  (seconds at any scale: random
weights, no training, no data set).
"""
import dataclasses
import os

import torch

from fourdlib.models.com4d import CONFIGS, COM4D

scale = os.environ.get("FOURD_SCALE", "tiny")
cfg = CONFIGS[scale]


def randomized(model, std=0.3, seed=0):
    """Non-zero weights everywhere: adaLN-Zero and the zero output layer make a fresh DiT the identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return model


def _inputs(net, O=3, F=None, seed=0):
    F = F or cfg.train_frames
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(1, O, F, cfg.num_latents, cfg.latent_dim, generator=g)
    image = torch.rand(1, F, 3, cfg.image_size, cfg.image_size, generator=g) * 2 - 1
    masks = (torch.rand(1, O, F, cfg.image_size, cfg.image_size, generator=g) > 0.7).float()
    with torch.no_grad():
        ctx = net.encode_condition(image, masks)
    return z, ctx


def exercise_1_padding():
    """A padding latent (obj_valid False) is a column nobody may attend to: role_masks builds the
    spatial mask from obj_valid[:, None, None, :] | eye (keys), and the temporal one only lets a
    valid dynamic object's frames see each other. So perturbing it changes only itself."""
    net = randomized(COM4D(dataclasses.replace(cfg, depth=2))).eval()
    z, ctx = _inputs(net, O=3)
    valid = torch.tensor([[True, True, False]])                       # object 2 is padding
    dynamic = torch.tensor([[True, False, True]])
    z2 = z.clone()
    z2[0, 2] += 1.0
    with torch.no_grad():
        a = net(z, 0.5, ctx, valid, dynamic)
        b = net(z2, 0.5, ctx, valid, dynamic)
    changed = (a - b).abs().amax((-1, -2))[0] > 1e-4                   # (O, F)
    assert not changed[:2].any()                                      # no valid latent noticed
    print("padding perturbed: valid latents changed:", int(changed[:2].sum()), "; padding latents changed:",
          int(changed[2].sum()))


def pairs(O, M, F, K):
    """(query, key) token pairs of one even + one odd block under COM4D's routing, and of two joint blocks."""
    even = F * (O * K) ** 2                                            # each frame: O K tokens, all to all
    odd = M * (F * K) ** 2 + (O - M) * F * K ** 2                      # movers: F K all to all; static: local
    joint = 2 * (O * F * K) ** 2
    return even + odd, joint


def exercise_2_what_parity_saves():
    full = CONFIGS["full"]
    ours, joint = pairs(8, 4, 8, full.num_latents)
    assert ours < joint
    print(f"full row (8 objects, 4 moving, 8 frames, K={full.num_latents}): {ours:,} pairs against {joint:,} "
          f"for joint attention ({joint / ours:.1f}x); it grows as F (OK)^2 + M (FK)^2, not (OFK)^2")
    small, small_joint = pairs(3, 1, 4, 2)                             # the notebook's drawing
    assert small == 4 * 36 + 64 + 2 * 4 * 4 and small_joint == 2 * 24 ** 2


def exercise_3_frames_without_frame_embeddings():
    """Same time and context in every frame: a temporal block is permutation-equivariant over
    frames unless the frame embeddings tell them apart."""
    net = randomized(COM4D(dataclasses.replace(cfg, depth=2)), std=0.3).eval()
    z, ctx = _inputs(net, O=1)
    ctx = ctx[:, :, :1].expand_as(ctx).contiguous()                   # the same context in every frame
    valid, dynamic = torch.ones(1, 1, dtype=torch.bool), torch.ones(1, 1, dtype=torch.bool)
    perm = torch.randperm(z.shape[2], generator=torch.Generator().manual_seed(1))

    def gap():
        with torch.no_grad():
            a = net(z, 0.5, ctx, valid, dynamic, spatial=False)[:, :, perm]
            b = net(z[:, :, perm], 0.5, ctx, valid, dynamic, spatial=False)
        return float((a - b).abs().max())

    with_emb = gap()
    with torch.no_grad():
        net.frame_embed.zero_()
    without = gap()
    assert without < 1e-3 * with_emb
    print(f"permuted frames: output permuted exactly without frame embeddings (max diff {without:.1e}), "
          f"not with them ({with_emb:.2f})")


if __name__ == "__main__":
    exercise_1_padding()
    exercise_2_what_parity_saves()
    exercise_3_frames_without_frame_embeddings()
