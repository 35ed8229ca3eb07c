"""Native 4D VAE speed: training steps/s and autoencoded sequences/s, per block (ST window
attention vs the decoupled sparse conv of the "w/o ST-Attn" ablation).

    python benchmarks/bench_native4d.py                          # CPU, tiny
    python benchmarks/bench_native4d.py --scales smoke tiny --threads 1
    python benchmarks/bench_native4d.py --device cuda --scales tiny small

Input: the voxels of one synthetic creature sequence (the course's kind of data, depth ->
mesh -> voxels at the config's resolution), cfg.train_frames frames, its cameras. Training
step: the full loss (BCE + Dice with the pruning stage, colour, rendering, KL) with the decoder
on its own pruning, backward, AdamW step, from the committed run's weights where there is one
(an untrained decoder prunes nearly everything and would time an empty decoder; without a
committed run the model is untrained and keeps the GT structure). "sites (train)" is how many
sites the step decoded. Encode
/ decode: the latent mean and the decoder with its own pruning (`reconstruct`), in sequences
of train_frames frames per second. Best of --repeats after a warm-up; the load average is
printed (on a shared machine the figures are pessimistic). The paper's own code is not public,
so there is no library to put beside it; bench_sparse.py compares the sparse conv with dense
conv3d and bench_render_voxels.py times the rasteriser.
"""
from __future__ import annotations

import argparse
import dataclasses
import os

import torch

from fourdlib.data.synthetic import make_creature_sequence
from fourdlib.models.native4d_vae import (CONFIGS, Native4DVAE, checkpoint_paths, collate, load_model, loss,
                                          reconstruct, run_spec, sequence_item)
from fourdlib.train.runs import count_parameters
from timing import best_time  # benchmarks/timing.py


RUN_OF_BLOCK = {"attention": "creatures_native", "conv": "creatures_decoupled"}


def bench(scale, block, device, repeats):
    cfg = dataclasses.replace(CONFIGS[scale], block=block)
    seq = make_creature_sequence(0, num_frames=cfg.train_frames, image_size=(64, 64), n_surface=64)
    batch = {k: v.to(device) for k, v in collate([sequence_item(seq, cfg.resolution, cfg.render_size)]).items()}
    # an untrained decoder prunes (nearly) every site, which would time an empty decoder: take the
    # committed run's weights where there is one, else keep the GT structure while training
    path = checkpoint_paths(run_spec(RUN_OF_BLOCK[block], scale)[3])[0]
    if path.exists():
        model, source = load_model(path).to(device), f"committed {path.name}"
    else:
        torch.manual_seed(0)
        model, source = Native4DVAE(dataclasses.replace(cfg, prune_with_gt=True)).to(device), "untrained, GT structure"
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def train_step():
        total, logs = loss(model.train(), batch)
        total.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return int(logs["sites"])

    t_train, sites = best_time(train_step, repeats, sync)
    t_rec, (coords, _) = best_time(lambda: reconstruct(model.eval(), batch), repeats, sync)
    return {"scale": scale, "block": block, "weights": source, "params": count_parameters(model),
            "voxels in": len(batch["coords"]), "sites (train)": sites, "voxels out": len(coords), "train steps/s": 1 / t_train, "sequences/s (autoencode)": 1 / t_rec}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", nargs="+", default=["tiny"], choices=sorted(CONFIGS))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"device {device}, {torch.get_num_threads()} CPU threads, load average {os.getloadavg()[0]:.1f}")
    rows = [bench(s, b, device, args.repeats) for s in args.scales for b in ("attention", "conv")]
    cols = list(rows[0])
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(f"{r[c]:.2f}" if isinstance(r[c], float) else str(r[c]) for c in cols))


if __name__ == "__main__":
    main()
