"""C4G on your own RGB-D video: render novel views at chosen times and cameras.

    from fourdlib.models.c4g.infer import render_novel
    images = render_novel("run.pt", "my_sequence.npz", times=[0.4, 0.9], cameras=(K, cam_to_world))
    images.shape                 # (2, H, W, 3) float32 in [0, 1]

or from the shell (`fourd infer c4g`): render the sequence's own frames that the model did not
see as input, at their cameras and times, and write PNGs:

    fourd infer c4g my_sequence.npz --checkpoint run.pt --out rendered/

Input: a Sequence4D (an object, its `.npz`, or a folder holding exactly one `.npz`) with
rgb, depth (z-depth in metres, 0 = no depth), intrinsics and cam_to_world; view 0 of each
frame is read, as in training (model.ClipDataset). The model sees `inputs` of its frames
(default: cfg.input_frames frames evenly spaced over the whole sequence, first and last
included, as the training clips place them); times are in the sequence's seconds, and a
time between the first and last input is an interpolation (outside: extrapolation, which
training never asked for). Works for both decoders (C4G and the per-pixel baseline).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from ...data.sequence import read_sequence
from ...outputs import infer_parser, output_folder, run_command
from ...train.distributed import unwrap
from .config import C4GConfig
from .course import load_model
from .model import _views, predict, render

__all__ = ["read_sequence", "input_frames", "render_novel", "main"]


def input_frames(num_frames: int, count: int) -> list[int]:
    """`count` frame indices evenly spaced over num_frames frames, first and last included
    (all frames if there are fewer)."""
    if num_frames < 1:
        raise ValueError(f"the sequence has no frames ({num_frames})")
    return sorted(set(np.linspace(0, num_frames - 1, min(count, num_frames)).round().astype(int).tolist()))


def _model(checkpoint, device) -> torch.nn.Module:
    if isinstance(checkpoint, (str, Path)):
        if not Path(checkpoint).is_file():
            raise FileNotFoundError(f"checkpoint {checkpoint}: no such file")
        return load_model(checkpoint, map_location=device)
    if isinstance(checkpoint, torch.nn.Module) and isinstance(getattr(unwrap(checkpoint), "cfg", None), C4GConfig):
        return unwrap(checkpoint)
    raise TypeError(f"checkpoint must be a path written by c4g.save_model or a C4G / PixelGaussians model, "
                    f"got {type(checkpoint).__name__}")


def _cameras(cameras, V: int):
    """(K (V, 3, 3), cam_to_world (V, 4, 4)) from (K, cam_to_world); one K (3, 3) is shared."""
    if not (isinstance(cameras, (tuple, list)) and len(cameras) == 2):
        raise ValueError("cameras must be a pair (K, cam_to_world): K (V, 3, 3) or (3, 3), cam_to_world (V, 4, 4)")
    K, c2w = (torch.as_tensor(np.asarray(c, dtype=np.float64)).float() for c in cameras)
    if K.shape == (3, 3):
        K = K.expand(V, 3, 3)
    if K.shape != (V, 3, 3):
        raise ValueError(f"cameras: K must be (3, 3) or (V={V}, 3, 3) for {V} times, got {tuple(K.shape)}")
    if c2w.shape != (V, 4, 4):
        raise ValueError(f"cameras: cam_to_world must be (V={V}, 4, 4) for {V} times, got {tuple(c2w.shape)}")
    if not (torch.isfinite(K).all() and torch.isfinite(c2w).all()):
        raise ValueError("cameras: K and cam_to_world must be finite")
    if not ((K[:, 0, 0] > 0).all() and (K[:, 1, 1] > 0).all()):
        raise ValueError("cameras: K must have positive focal lengths K[0, 0], K[1, 1] (pixels)")
    R = c2w[:, :3, :3]
    rigid = torch.allclose(R @ R.transpose(1, 2), torch.eye(3).expand(V, 3, 3), atol=1e-3) and \
        torch.allclose(c2w[:, 3], torch.tensor([0.0, 0.0, 0.0, 1.0]).expand(V, 4), atol=1e-6) and \
        bool((torch.linalg.det(R) > 0).all())
    if not rigid:
        raise ValueError("cameras: every cam_to_world must be a rigid transform (rotation + translation, last "
                         "row 0 0 0 1)")
    return K, c2w


@torch.no_grad()
def render_novel(checkpoint, sequence, times, cameras, *, inputs=None, size=None,
                 device: str = "cpu") -> np.ndarray:
    """Render a trained C4G (or per-pixel baseline) at V target times and cameras.

    checkpoint  a path written by c4g.save_model / fourd train c4g, or the model itself
    sequence    a Sequence4D, its .npz, or a folder with exactly one .npz (see the module doc)
    times       (V,) target times in the sequence's seconds
    cameras     (K, cam_to_world): K (V, 3, 3) or one (3, 3), in pixels of the output size;
                cam_to_world (V, 4, 4), OpenCV axes, metres
    inputs      frame indices the model sees (default: cfg.input_frames evenly spaced)
    size        (H, W) of the output (default: the input frames'); must match K's pixels
    Returns images (V, H, W, 3) float32 in [0, 1] (black where no Gaussian is seen).
    """
    seq = read_sequence(sequence)
    frames = _views(seq, seq.name or "the sequence")        # FormatError names missing fields
    T, H0, W0 = frames["rgb"].shape[:3]
    dev = torch.device(device)
    model = _model(checkpoint, dev).to(dev).eval()
    cfg = model.cfg
    if H0 % cfg.patch_size or W0 % cfg.patch_size:
        raise ValueError(f"the sequence's frames are {H0} x {W0}; the model needs sizes divisible by its patch "
                         f"size {cfg.patch_size} (crop or resize the frames, adjusting the intrinsics)")
    idx = input_frames(T, cfg.input_frames) if inputs is None else [int(i) for i in inputs]
    if not idx or sorted(set(idx)) != idx or idx[0] < 0 or idx[-1] >= T:
        raise ValueError(f"inputs must be increasing frame indices in [0, {T}), got {list(inputs)}")
    times = np.asarray(times, dtype=np.float64)
    if times.ndim != 1 or len(times) == 0 or not np.isfinite(times).all():
        raise ValueError(f"times must be a non-empty 1-D array of finite seconds, got shape {times.shape}")
    V = len(times)
    K, c2w = _cameras(cameras, V)
    H, W = (H0, W0) if size is None else (int(size[0]), int(size[1]))
    if H < 1 or W < 1:
        raise ValueError(f"size must be positive (H, W), got {size}")
    sel = torch.tensor(idx)
    batch = {key: frames[key][sel][None].to(dev) for key in ("rgb", "depth", "K", "cam_to_world", "times")}
    if not bool((batch["depth"] > 0).any()):
        raise ValueError(f"input frames {idx} have no depth (all zero): C4G needs depth to place the scene")
    batch["target_times"] = torch.from_numpy(times).float()[None].to(dev)
    g = predict(model, batch)                                                   # (1, V, G, ...) world units
    out = render(g, K[None].to(dev), c2w[None].to(dev), H, W)
    return out.image[0, ..., :3].clamp(0, 1).float().cpu().numpy()


# ------------------------------------------------------------------ fourd infer c4g
def build_parser(prog: str = "fourd infer c4g") -> argparse.ArgumentParser:
    def options(p):
        p.add_argument("--inputs", type=int, nargs="+", metavar="F", help="frames the model sees (default: the "
                       "config's input_frames, evenly spaced)")
        p.add_argument("--frames", type=int, nargs="+", metavar="F", help="frames to render (default: every frame "
                       "not among the inputs)")

    return infer_parser(
        prog, "Render a trained C4G (or per-pixel baseline) checkpoint at the cameras and "
        "times of a Sequence4D's own frames that the model does not see as input, and write OUT/frame_NNNN.png "
        "(rendered), OUT/gt_NNNN.png (the sequence's frame) and OUT/rendered.npz (images, frames, times, "
        "inputs).",
        input_metavar="SEQUENCE", input_help="a Sequence4D .npz with rgb, depth and cameras, or a folder holding "
                                             "exactly one",
        checkpoint_help="written by save_model / fourd train c4g",
        force_help="replace an earlier rendering in DIR (only the files it recorded)", options=options)


def main(argv=None, prog: str = "fourd infer c4g") -> int:
    """The command line of `fourd infer c4g`; user errors print a message and return 2."""
    import imageio.v3 as iio

    args = build_parser(prog).parse_args(argv)

    def work():
        seq = read_sequence(args.input)
        T = seq.num_frames
        model = _model(args.checkpoint, torch.device(args.device))
        inputs = args.inputs or input_frames(T, model.cfg.input_frames)
        frames = args.frames or [f for f in range(T) if f not in inputs]
        if not frames:
            raise ValueError("no frame to render: every frame is an input; give --frames")
        bad = [f for f in frames if not 0 <= f < T]
        if bad:
            raise ValueError(f"--frames {bad} out of range: the sequence has {T} frames")
        views = _views(seq, args.input)
        cameras = (views["K"][frames].numpy(), views["cam_to_world"][frames].numpy())
        images = render_novel(model, seq, seq.times[frames], cameras, inputs=inputs, device=args.device)
        with output_folder(args.out, [args.input, args.checkpoint], args.force, tool=prog) as tmp:
            for f, img in zip(frames, images):
                iio.imwrite(tmp / f"frame_{f:04d}.png", (img * 255).round().astype(np.uint8))
                iio.imwrite(tmp / f"gt_{f:04d}.png", (views["rgb"][f].numpy() * 255).round().astype(np.uint8))
            np.savez(tmp / "rendered.npz", images=images, frames=np.asarray(frames),
                     times=np.asarray(seq.times)[frames], inputs=np.asarray(inputs))
        return f"rendered {len(frames)} frames (inputs {list(inputs)}) -> {Path(args.out).resolve()}"

    return run_command(prog, work)
