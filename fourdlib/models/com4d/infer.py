"""COM4D on your own video: a compositional 4D scene (one shape per object and frame) from RGB
frames and instance masks, with a trained checkpoint.

    from fourdlib.models.com4d.infer import generate
    r = generate("run.pt", "my_sequence.npz")         # all frames, attention mixing
    r["occupancy"].shape                              # (O, F, R, R, R) probabilities

or from the shell (`fourd infer com4d`), writing OUT/com4d.npz:

    fourd infer com4d my_sequence.npz --checkpoint run.pt --out scene/

Input: a Sequence4D (an object, its `.npz`, or a folder holding exactly one `.npz`) with rgb,
masks (view 0 is read; mask value k + 1 marks object k; the paper takes them from SAM) and
object_names; object_dynamic says which objects move (default: none) and object_background
which to leave out (the floor). The images must have the model's image_size. Refused with a
ValueError: no objects, more than max_objects, an object whose mask covers nothing in every
frame, a moving object in a sequence shorter than the window (train_frames).

Output: shapes in the model's NORMALISED scene cube [-1, 1]^3 (the model sees no depth, so it
has no metres; the course's data are normalised as data.normalize_sequence says): names,
dynamic (O,), latents (O, F, K, C), occupancy (O, F, R, R, R) float16 and the shell points of
each object and frame as one list: points (M, 3), points_object (M,), points_frame (M,).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from ...data.sequence import FormatError, read_sequence
from ...outputs import infer_parser, output_folder, run_command
from ...train.distributed import unwrap
from .config import COM4DConfig
from .course import load_model
from .data import _foreground, _image
from .model import decode_occupancy, occupancy_to_points, sample_latents

__all__ = ["read_sequence", "generate", "main"]


def _model(checkpoint, device):
    if isinstance(checkpoint, (str, Path)):
        if not Path(checkpoint).is_file():
            raise FileNotFoundError(f"checkpoint {checkpoint}: no such file")
        return load_model(checkpoint, map_location=device)
    if isinstance(checkpoint, torch.nn.Module) and isinstance(getattr(unwrap(checkpoint), "cfg", None), COM4DConfig):
        return unwrap(checkpoint)
    raise TypeError(f"checkpoint must be a path written by com4d.save_model or a COM4D model, "
                    f"got {type(checkpoint).__name__}")


@torch.no_grad()
def generate(checkpoint, sequence, *, mix: bool = True, seed: int = 0, device: str = "cpu") -> dict:
    """Generate every object of every frame of a sequence (see the module doc); numpy arrays."""
    seq = read_sequence(sequence)
    missing = [k for k in ("rgb", "masks", "object_names") if getattr(seq, k) is None]
    if missing:
        raise FormatError(f"COM4D needs rgb, masks and object_names; the sequence lacks {missing}")
    net = _model(checkpoint, torch.device(device)).to(device).eval()
    cfg = net.cfg
    fg = _foreground(seq)
    if seq.rgb.shape[2:4] != (cfg.image_size, cfg.image_size):
        raise ValueError(f"the frames are {seq.rgb.shape[2]} x {seq.rgb.shape[3]}; the model reads "
                         f"{cfg.image_size} x {cfg.image_size} (resize them and their masks)")
    dyn = seq.object_dynamic if seq.object_dynamic is not None else np.zeros(len(seq.object_names), bool)
    image = _image(seq.rgb[:, 0])[None].to(device)                                    # (1, F, 3, H, W)
    masks = torch.from_numpy(np.stack([seq.masks[:, 0] == k + 1 for k in fg]))[None].float().to(device)
    dynamic = torch.tensor([[bool(dyn[k]) for k in fg]], device=device)
    gen = torch.Generator(device=device).manual_seed(seed)
    z = sample_latents(net, image, masks, dynamic, mix=mix, generator=gen)[0]        # (O, F, K, C)
    probs = decode_occupancy(net, z)                                                   # (O, F, R, R, R)
    pts, obj, frame = [], [], []
    for o in range(probs.shape[0]):
        for f in range(probs.shape[1]):
            p = occupancy_to_points(probs[o, f] > 0.5)
            pts.append(p)
            obj.append(np.full(len(p), o, np.int32))
            frame.append(np.full(len(p), f, np.int32))
    return {"names": np.asarray([seq.object_names[k] for k in fg]), "dynamic": dynamic[0].cpu().numpy(),
            "latents": z.float().cpu().numpy(), "occupancy": probs.half().cpu().numpy(),
            "points": torch.cat(pts).cpu().numpy(), "points_object": np.concatenate(obj),
            "points_frame": np.concatenate(frame)}


# ------------------------------------------------------------------ fourd infer com4d

def build_parser(prog: str = "fourd infer com4d") -> argparse.ArgumentParser:
    def options(p):
        p.add_argument("--no-mix", action="store_true", help="the stitched baseline: every object on its own")
        p.add_argument("--seed", type=int, default=0)

    return infer_parser(
        prog, "Generate a compositional 4D scene (one shape per object and frame, attention "
        "mixing) from a Sequence4D's RGB frames and instance masks with a trained COM4D checkpoint; writes "
        "OUT/com4d.npz (see fourdlib.models.com4d.infer.generate).",
        input_metavar="SEQUENCE", input_help="a Sequence4D .npz with rgb, masks and object_names, or a folder "
                                             "holding exactly one",
        checkpoint_help="written by save_model / fourd train com4d",
        force_help="replace an earlier result in DIR (only the files it recorded)", options=options)


def main(argv=None, prog: str = "fourd infer com4d") -> int:
    """The command line of `fourd infer com4d`; user errors print a message and return 2."""
    args = build_parser(prog).parse_args(argv)

    def work():
        result = generate(args.checkpoint, args.input, mix=not args.no_mix, seed=args.seed, device=args.device)
        with output_folder(args.out, [args.input, args.checkpoint], args.force, tool=prog) as tmp:
            np.savez(tmp / "com4d.npz", **result)
        return (f"generated {len(result['names'])} objects x {result['latents'].shape[1]} frames -> "
                f"{Path(args.out).resolve() / 'com4d.npz'}")

    return run_command(prog, work)
