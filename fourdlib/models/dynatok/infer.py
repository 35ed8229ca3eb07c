"""DynaTok on your own data: complete a sequence of partial point clouds.

    from fourdlib.models.dynatok import complete_sequence
    seq = complete_sequence("my_frames/", "runs/dynatok/ckpt.pt", num_points=8192)
    seq.surface_points          # (T, 8192, 3) completed clouds, world units
    seq.save("completed.npz")

or from the shell: `fourd infer dynatok my_frames/ --checkpoint ckpt.pt --out completed/`
(`fourd complete` is the same command).

Input: a Sequence4D `.npz` (its `partial_points` are used), a folder holding one, or a
folder of per-frame `.npy` (N_t, 3) arrays or `.ply` point clouds / meshes (their
vertices), sorted by name with numbers compared as numbers (frame_2 before frame_10).
Frames may hold different numbers of points: frames with more than the model's
`input_points` are randomly subsampled to it (seeded), smaller ones are padded and masked,
frames with fewer points than the model's M anchors have every point repeated (the
attention pooling is unchanged by duplicating all points, see model.py).

Output: a Sequence4D with `surface_points` = the prediction and `partial_points` = the
input (`write_completion` saves it with per-frame .ply files and a k3d HTML view). Its
predicted rows are independent samples per frame: unlike GT surface samples they do NOT
correspond across frames (meta["surface_correspondence"] = False).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import re
from pathlib import Path

import numpy as np
import torch

from ...data.sequence import FormatError, Sequence4D
from ...geometry.normalize import median_center_scale
from ...outputs import check_output_folder, infer_parser, output_folder, run_command
from .config import DynaTokConfig
from .course import load_model
from .model import DynaTok, decode

__all__ = ["read_frames", "complete_sequence", "write_completion", "check_units", "main"]

MAX_EXTENT_M = 50.0  # a frame wider than this (median over frames) is probably not in metres

FRAME_SUFFIXES = (".npy", ".ply")


def _natural_key(path: Path):
    return [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", path.name)]


def read_frames(source) -> tuple[list[np.ndarray], np.ndarray | None, dict]:
    """(frames: list of (N_t, 3) float32, times (T,) or None, meta) from a path.

    source: a Sequence4D .npz file, a folder with exactly one such file, or a folder of
    per-frame .npy / .ply files.
    """
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    if path.is_dir():
        files = sorted((p for p in path.iterdir() if p.is_file() and p.suffix.lower() in (".npz",) + FRAME_SUFFIXES),
                       key=_natural_key)
        npz = [p for p in files if p.suffix.lower() == ".npz"]
        per_frame = [p for p in files if p.suffix.lower() in FRAME_SUFFIXES]
        if npz and per_frame:
            raise FormatError(f"{path} mixes .npz and per-frame files; it must hold ONE Sequence4D .npz "
                              "or per-frame .npy / .ply files")
        if len(npz) > 1:
            raise FormatError(f"{path} holds {len(npz)} .npz files; give the Sequence4D file itself, or a "
                              "folder with only one")
        if npz:
            path = npz[0]
        elif not per_frame:
            raise FormatError(f"{path} holds no .npz, .npy or .ply files")
        else:
            return [_read_frame(p) for p in per_frame], None, {"source": str(path),
                                                             "frame_files": [p.name for p in per_frame]}
    if path.suffix.lower() != ".npz":
        raise FormatError(f"{path}: expected a Sequence4D .npz or a folder of frames")
    seq = Sequence4D.load(path)
    if seq.partial_points is None:
        raise FormatError(f"{path}: the Sequence4D has no partial_points to complete")
    return list(seq.partial_points), seq.times, {"source": str(path), "name": seq.name}


def _read_frame(path: Path) -> np.ndarray:
    if path.suffix.lower() == ".npy":
        try:
            pts = np.load(path, allow_pickle=False)
        except Exception as e:  # noqa: BLE001 - any unreadable file gets the same message
            raise FormatError(f"{path}: not a readable .npy array ({type(e).__name__}: {e})") from e
        if not isinstance(pts, np.ndarray):  # np.load opens a zip (an .npz renamed) as an archive
            pts.close()
            raise FormatError(f"{path}: an .npz archive, not one .npy array")
    else:
        import trimesh

        try:
            geom = trimesh.load(path, process=False)
        except Exception as e:  # noqa: BLE001
            raise FormatError(f"{path}: not a readable .ply ({type(e).__name__}: {e})") from e
        if not hasattr(geom, "vertices"):
            raise FormatError(f"{path}: a {type(geom).__name__}, expected one point cloud or mesh")
        pts = np.asarray(geom.vertices)
    if not (np.issubdtype(pts.dtype, np.integer) or np.issubdtype(pts.dtype, np.floating)):
        raise FormatError(f"{path}: points must be real numbers, got dtype {pts.dtype}")
    if pts.ndim != 2 or pts.shape[-1] != 3:
        raise FormatError(f"{path}: points must be (N, 3), got shape {pts.shape}")
    if len(pts) == 0:
        raise FormatError(f"{path}: the frame holds no points")
    if not np.isfinite(pts).all():
        raise FormatError(f"{path}: the points contain NaN or inf")
    return pts.astype(np.float32)


def _check_frames(frames) -> list[np.ndarray]:
    if isinstance(frames, np.ndarray) and frames.dtype != object:
        if frames.ndim != 3:
            raise ValueError(f"frames must be a list of (N_t, 3) arrays or a (T, N, 3) array, got shape {frames.shape}")
        frames = list(frames)
    out = []
    for t, f in enumerate(frames):
        f = f.detach().cpu().numpy() if isinstance(f, torch.Tensor) else np.asarray(f)
        if f.ndim != 2 or f.shape[-1] != 3:
            raise ValueError(f"frame {t} must be (N, 3), got shape {f.shape}")
        if len(f) == 0:
            raise ValueError(f"frame {t} is empty (0 points)")
        if not np.issubdtype(f.dtype, np.number):
            raise ValueError(f"frame {t} has dtype {f.dtype}, expected numbers")
        if not np.isfinite(f).all():
            raise ValueError(f"frame {t} contains NaN or inf")
        out.append(f.astype(np.float64))
    if len(out) < 2:
        raise ValueError(f"DynaTok needs at least 2 frames (it completes each frame from the others); got {len(out)}")
    return out


def _prepare(frames: list[np.ndarray], cfg: DynaTokConfig, rng: np.random.Generator):
    """Frames (normalised) -> padded (T, Nmax, 3) tensor and lengths (T,): subsample large
    frames to cfg.input_points, repeat every point of frames smaller than M."""
    out = []
    for f in frames:
        if len(f) > cfg.input_points:
            f = f[np.sort(rng.choice(len(f), cfg.input_points, replace=False))]
        elif len(f) < cfg.num_tokens:
            f = np.repeat(f, math.ceil(cfg.num_tokens / len(f)), axis=0)
        out.append(f)
    lengths = torch.tensor([len(f) for f in out])
    padded = torch.zeros(len(out), int(lengths.max()), 3)
    for t, f in enumerate(out):  # once per frame, on the host
        padded[t, : len(f)] = torch.from_numpy(f).float()
    return padded, lengths


@torch.no_grad()
def complete_sequence(frames, checkpoint, num_points: int | None = None, steps: int | None = None,
                      method: str | None = None, *, device: str = "cpu", seed: int = 0,
                      window: int | None = None, times=None, config: DynaTokConfig | None = None,
                      progress: bool = False, max_extent: float | None = MAX_EXTENT_M) -> Sequence4D:
    """Complete every frame of a partial point-cloud sequence with a trained DynaTok.

    frames      list of (N_t, 3) arrays (numpy or torch), a (T, N, 3) array, or a path
                (see `read_frames`). World units; at least 2 frames.
    checkpoint  a path written by dynatok.save_model (config stored inside), or a DynaTok.
    num_points  points per output frame (default cfg.eval_points); steps / method of the
                ODE (default cfg.sample_steps / cfg.sample_method).
    window      frames encoded together (default cfg.eval_frames). Longer sequences are cut
                into windows that all start with frame 1, the reference, so that every
                window's residuals are relative to the same frame; information crosses
                windows only through frame 1.
    config      for checkpoints without a stored config (see course.load_model).
    max_extent  refuse frames wider than this (median over frames, metres): millimetres
                given for metres would otherwise be completed silently wrong. None: no check.
    Returns a Sequence4D: surface_points (T, num_points, 3) = the completion (world units),
    partial_points = the input, times (given, from the .npz, or 0, 1, 2, ...).
    """
    meta = {}
    if isinstance(frames, (str, Path)):
        frames, file_times, meta = read_frames(frames)
        times = file_times if times is None else times
    frames = _check_frames(frames)
    if max_extent is not None:
        check_units(frames, max_extent)
    T = len(frames)
    dev = torch.device(device)
    model = checkpoint if isinstance(checkpoint, DynaTok) else load_model(checkpoint, config, map_location=dev)
    model = model.to(dev).eval()
    cfg = model.cfg
    num_points = num_points or cfg.eval_points
    window = window or cfg.eval_frames
    if window < 2:
        raise ValueError(f"window must be >= 2 frames, got {window}")

    if cfg.per_frame_center:    # norm_frame="each": every frame on its own centre, one scale
        center = np.stack([median_center_scale(f)[0] for f in frames])[:, None]    # (T, 1, 3)
        scale = median_center_scale([f - c for f, c in zip(frames, center)])[1]
    else:
        center, scale = median_center_scale(frames, ref_frame=cfg.ref_frame)      # (3,), () numpy
    normed = [(f - c) / scale for f, c in zip(frames, np.broadcast_to(center, (T, 1, 3)))]
    rng = np.random.default_rng(seed)
    padded, lengths = _prepare(normed, cfg, rng)                                   # (T, Nmax, 3), (T,)

    # windows of frames encoded together, each led by frame 0 (the reference G)
    rest = list(range(1, T))
    groups = [[0] + rest[i: i + window - 1] for i in range(0, len(rest), window - 1)]
    Z = torch.empty(T, cfg.num_tokens, cfg.dim, device=dev)
    amp = dict(device_type=dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda")
    for k, g in enumerate(groups):
        with torch.autocast(**amp):
            lat = model.encode(padded[g][None].to(dev), lengths[g][None].to(dev))
        keep = slice(0 if k == 0 else 1, None)  # frame 0's latent comes from the first window
        Z[g[keep]] = lat["Z"][0, keep].float()

    generator = torch.Generator(dev).manual_seed(seed)
    chunk = max(256, (1 << 18) // T)  # about 262k points per ODE call
    with torch.autocast(**amp):
        pts = decode(model, Z[None], num_points, steps, method, generator=generator, chunk_size=chunk,
                     progress=progress)[0]                                         # (T, P, 3)
    pts = pts.double().cpu().numpy() * scale + center
    if times is None:
        times = np.arange(T, dtype=np.float64)
    meta.update({"name": meta.get("name", "completed"), "method": "dynatok", "num_points": num_points,
                 "ode_steps": steps or cfg.sample_steps, "ode_method": method or cfg.sample_method,
                 "seed": seed, "window": window, "surface_correspondence": False,
                 "model_config": dataclasses.asdict(cfg)})
    if isinstance(checkpoint, (str, Path)):
        meta["checkpoint"] = str(checkpoint)
    return Sequence4D(times=np.asarray(times, dtype=np.float64), surface_points=pts.astype(np.float32),
                      partial_points=[f.astype(np.float32) for f in frames], meta=meta)


def write_completion(seq: Sequence4D, out, html: bool = True, view_points: int = 4096, seed: int = 0, *,
                     inputs=(), force: bool = False) -> dict:
    """Write OUT/completed.npz (the Sequence4D), OUT/frames/frame_0000.ply, ... (the predicted
    points per frame) and, with html, OUT/view.html: input and completion side by side, animated
    over time (k3d, opens offline; at most `view_points` random points per frame and panel).

    OUT must be new or empty, or (force) hold only an earlier completion's files, which are
    then replaced whole; it may not hold or lie inside `inputs` (fourdlib.outputs).
    Returns {"npz": path, "ply": [paths], "html": path or None}."""
    import trimesh

    with output_folder(out, inputs, force, tool="fourd infer dynatok") as tmp:
        seq.save(tmp / "completed.npz")
        (tmp / "frames").mkdir()
        for t, pts in enumerate(seq.surface_points):
            trimesh.PointCloud(pts).export(tmp / "frames" / f"frame_{t:04d}.ply")
        if html:
            from ... import viz

            rng = np.random.default_rng(seed)

            def thin(f):  # a view of millions of points is slow to open and no clearer
                return f if len(f) <= view_points else f[rng.choice(len(f), view_points, replace=False)]

            plot = viz.side_by_side({"input (partial)": [thin(f) for f in seq.partial_points],
                                     "DynaTok completion": [thin(f) for f in seq.surface_points]})
            viz.save_html(plot, tmp / "view.html")
    out = Path(out).expanduser().resolve()
    npz = out / "completed.npz"
    plys = [out / "frames" / f"frame_{t:04d}.ply" for t in range(len(seq.surface_points))]
    page = out / "view.html" if html else None
    return {"npz": npz, "ply": plys, "html": page}


def check_units(frames, max_extent: float = MAX_EXTENT_M) -> float:
    """The median over frames of each frame's largest bounding-box side; ValueError if it is
    above `max_extent` metres (e.g. millimetres given where metres are expected)."""
    extent = float(np.median([np.ptp(np.asarray(f), axis=0).max() for f in frames]))
    if extent > max_extent:
        raise ValueError(f"the frames are {extent:.4g} units wide (median over frames); fourdlib works in "
                         f"metres and a frame wider than {max_extent:g} m is unlikely: are these millimetres? "
                         "Convert to metres (e.g. divide by 1000), or pass --no-units-check")
    return extent


def _positive(name, least: int = 1):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a whole number, got {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"{name} must be at least {least}, got {value}")
        return value
    return parse


def build_parser(prog: str = "fourd infer dynatok") -> argparse.ArgumentParser:
    from .config import CONFIGS
    from ...train.flow_matching import METHODS

    def options(p):
        p.add_argument("--points", type=_positive("--points"), metavar="N",
                       help="points per output frame (default: the config's)")
        p.add_argument("--steps", type=_positive("--steps"), metavar="K", help="ODE steps (default: the config's)")
        p.add_argument("--method", choices=sorted(METHODS), help="ODE solver (default: the config's)")

    p = infer_parser(
        prog, "Read partial point clouds (a Sequence4D .npz, or a folder of per-frame .npy / "
        ".ply files sorted by name), complete every frame with a trained DynaTok checkpoint, and write "
        "OUT/completed.npz (a Sequence4D whose surface_points are the prediction), OUT/frames/frame_NNNN.ply "
        "and OUT/view.html (input and completion side by side, k3d). Coordinates in metres.",
        input_metavar="INPUT", input_help="a Sequence4D .npz, or a folder of frames (at least 2)",
        checkpoint_help="written by save_model / fourd train",
        force_help="replace an earlier completion in DIR (only the files it recorded; any other file makes it "
                   "refuse)",
        options=options, device_default=None, device_help="cpu, cuda or cuda:N (default: cuda if available)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--window", type=_positive("--window", 2), metavar="W",
                   help="frames encoded together, at least 2 (default: the config's)")
    p.add_argument("--config", choices=sorted(CONFIGS),
                   help="for a checkpoint written without its model config (by fourdlib.train.train)")
    p.add_argument("--no-html", action="store_true", help="do not write the k3d view OUT/view.html")
    p.add_argument("--no-units-check", action="store_true",
                   help=f"accept frames wider than {MAX_EXTENT_M:g} (median), i.e. not obviously metres")
    return p


def _device(parser, text: str | None) -> torch.device:
    if text is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(text)
    except RuntimeError:
        parser.error(f"--device {text!r} is not a device; use cpu, cuda or cuda:N")
    if dev.type not in ("cpu", "cuda"):
        parser.error(f"--device {text!r}: fourdlib runs on cpu or cuda")
    if dev.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {text!r}: this machine has no CUDA device; use --device cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        parser.error(f"--device {text!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    return dev


def main(argv=None, prog: str = "fourd infer dynatok") -> int:
    """The command line of `fourd infer dynatok` (and `fourd complete`). Every argument and the
    output folder are checked before any work; user errors print a message and return 2."""
    from .config import CONFIGS

    parser = build_parser(prog)
    args = parser.parse_args(argv)
    device = _device(parser, args.device)
    if not Path(args.input).exists():
        parser.error(f"INPUT {args.input}: no such file or folder")
    if not Path(args.checkpoint).is_file():
        parser.error(f"--checkpoint {args.checkpoint}: no such file")

    def work():
        check_output_folder(args.out, [args.input, args.checkpoint], args.force, tool="fourd infer dynatok")
        seq = complete_sequence(args.input, args.checkpoint, args.points, args.steps, args.method,
                                device=str(device), seed=args.seed, window=args.window,
                                config=CONFIGS[args.config] if args.config else None, progress=True,
                                max_extent=None if args.no_units_check else MAX_EXTENT_M)
        paths = write_completion(seq, args.out, html=not args.no_html, inputs=[args.input, args.checkpoint],
                                 force=args.force)
        T, P = seq.surface_points.shape[:2]
        return (f"completed {T} frames x {P} points -> {paths['npz']}, {len(paths['ply'])} .ply files in "
                f"{paths['ply'][0].parent}" + (f", view: {paths['html']}" if paths["html"] else ""))

    return run_command(prog, work)
