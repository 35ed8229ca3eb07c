"""Any4D on your own RGB-D video: metric point maps, poses and scene flow of N frames in one pass.

    from fourdlib.models.any4d.infer import reconstruct
    r = reconstruct("run.pt", "my_sequence.npz")      # frames: cfg.views evenly spaced
    r["flow"].shape                                   # (N, H, W, 3) metres, on frame 0's pixels

or from the shell (`fourd infer any4d`), writing OUT/any4d.npz:

    fourd infer any4d my_sequence.npz --checkpoint run.pt --out recon/

Input: a Sequence4D (an object, its `.npz`, or a folder holding exactly one `.npz`) with rgb,
depth (z-depth in metres, 0 = no depth), intrinsics and cam_to_world; view 0 of each frame is
read. The first chosen frame is the reference: points, poses and flow are in ITS camera frame
(`reference_cam_to_world` maps them to the sequence's world). A Sequence4D carries no Doppler,
so the model reads every input of its variant but Doppler. Input checks are model.views_batch's
(images of different sizes, depth in millimetres, no depth in the reference frame, poses that
are not rigid are refused with a message).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from ...data.sequence import FormatError, read_sequence
from ...outputs import infer_parser, output_folder, run_command
from ...train.distributed import unwrap
from .config import Any4DConfig
from .course import load_model
from .model import predict, views_batch

__all__ = ["read_sequence", "reconstruct", "main"]


def _model(checkpoint, device) -> torch.nn.Module:
    if isinstance(checkpoint, (str, Path)):
        if not Path(checkpoint).is_file():
            raise FileNotFoundError(f"checkpoint {checkpoint}: no such file")
        return load_model(checkpoint, map_location=device)
    if isinstance(checkpoint, torch.nn.Module) and isinstance(getattr(unwrap(checkpoint), "cfg", None), Any4DConfig):
        return unwrap(checkpoint)
    raise TypeError(f"checkpoint must be a path written by any4d.save_model or an Any4D model, "
                    f"got {type(checkpoint).__name__}")


@torch.no_grad()
def reconstruct(checkpoint, sequence, *, frames=None, device: str = "cpu") -> dict[str, np.ndarray]:
    """Run a trained Any4D on N frames of a sequence (see the module doc).

    frames: increasing frame indices, at least 2 (default: cfg.views evenly spaced over the
    sequence, first and last included). Returns numpy arrays: frames (N,); points (N, H, W, 3)
    G = s T R D; flow (N, H, W, 3) M = s F of frame 0's pixels; depth (N, H, W) metric z-depth;
    conf (N, H, W); cam_to_world (N, 4, 4) predicted, metric, camera i -> reference camera;
    scale (); reference_cam_to_world (4, 4) the sequence's pose of the reference camera.
    """
    seq = read_sequence(sequence)
    missing = [k for k in ("rgb", "depth", "intrinsics", "cam_to_world") if getattr(seq, k) is None]
    if missing:
        raise FormatError(f"Any4D needs rgb, depth, intrinsics and cam_to_world; the sequence lacks {missing}")
    model = _model(checkpoint, torch.device(device)).to(device).eval()
    cfg = model.cfg
    T = seq.num_frames
    idx = (sorted(set(np.linspace(0, T - 1, min(cfg.views, T)).round().astype(int).tolist()))
           if frames is None else [int(f) for f in frames])
    if len(idx) < 2 or sorted(set(idx)) != idx or idx[0] < 0 or idx[-1] >= T:
        raise ValueError(f"frames must be at least 2 increasing indices in [0, {T}), got {idx}")
    H, W = seq.rgb.shape[2:4]
    if H % cfg.patch_size or W % cfg.patch_size:
        raise ValueError(f"the frames are {H} x {W}; the model needs sizes divisible by its patch size "
                         f"{cfg.patch_size} (crop or resize them, adjusting the intrinsics)")
    batch = views_batch([seq.rgb[f, 0] for f in idx], [seq.depth[f, 0] for f in idx],
                        [seq.intrinsics[f, 0] for f in idx], [seq.cam_to_world[f, 0] for f in idx])
    batch = {k: v.to(device) for k, v in batch.items()}
    keep = ("rgb",) + tuple(m for m in cfg.extra_inputs if m != "doppler")
    out = predict(model, batch, keep)
    c2w = out["cam_to_world"][0].clone()
    c2w[:, :3, 3] *= out["scale"][0]                                      # normalised -> metres
    as_np = lambda x: x[0].float().cpu().numpy()
    return {"frames": np.asarray(idx), "points": as_np(out["points"]), "flow": as_np(out["flow"]),
            "depth": as_np(out["zdepth"]), "conf": as_np(out["conf"]), "cam_to_world": c2w.float().cpu().numpy(),
            "scale": np.float32(out["scale"][0]), "reference_cam_to_world": seq.cam_to_world[idx[0], 0]}


# ------------------------------------------------------------------ fourd infer any4d

def build_parser(prog: str = "fourd infer any4d") -> argparse.ArgumentParser:
    def options(p):
        p.add_argument("--frames", type=int, nargs="+", metavar="F", help="the frames, the first is the reference "
                       "(default: the config's number of views, evenly spaced)")

    return infer_parser(
        prog, "Run a trained Any4D checkpoint on N frames of a Sequence4D and write "
        "OUT/any4d.npz (frames, points, flow, depth, conf, cam_to_world, scale, reference_cam_to_world; see "
        "fourdlib.models.any4d.infer.reconstruct).",
        input_metavar="SEQUENCE", input_help="a Sequence4D .npz with rgb, depth and cameras, or a folder holding "
                                             "exactly one",
        checkpoint_help="written by save_model / fourd train any4d",
        force_help="replace an earlier result in DIR (only the files it recorded)", options=options)


def main(argv=None, prog: str = "fourd infer any4d") -> int:
    """The command line of `fourd infer any4d`; user errors print a message and return 2."""
    args = build_parser(prog).parse_args(argv)

    def work():
        result = reconstruct(args.checkpoint, args.input, frames=args.frames, device=args.device)
        with output_folder(args.out, [args.input, args.checkpoint], args.force, tool=prog) as tmp:
            np.savez(tmp / "any4d.npz", **result)
        return f"reconstructed frames {result['frames'].tolist()} -> {Path(args.out).resolve() / 'any4d.npz'}"

    return run_command(prog, work)
