"""The Native 4D VAE on your own data: encode a sequence to its latent and decode it back to
coloured voxels.

    from fourdlib.models.native4d_vae.infer import autoencode, write_result
    result = autoencode("run.pt", "my_sequence.npz")   # {"input", "output": SequenceVoxels, "latent", ...}
    write_result(result, "recon/")                      # a NEW folder

or from the shell: `fourd infer native4d_vae my_sequence.npz --checkpoint run.pt --out recon/`

Inputs (INPUT)
--------------
- a Sequence4D `.npz` (depth video with cameras, rgb optional), or a folder holding exactly
  one: voxelised as in training (`sequence_voxels`: depth -> mesh -> voxels on one cube of
  cfg.resolution^3 cells around every frame, colours blended per voxel); view 0's cameras.
- a voxel `.npz` as this command writes it (`write_voxels`: coords (M, 4) integers (t, i, j, k),
  colors (M, 3) in [0, 1], origin (3,) and voxel_size in metres, resolution, num_frames;
  optionally cam_to_world (T, 4, 4)): used as it is, so its grid must have the model's
  resolution. The output of one run is the input of the next.
- a folder of per-frame coloured point clouds, sorted by name with numbers compared as
  numbers (frame_2 before frame_10): `.npy` (N, 3) or (N, 6) = xyz + rgb in [0, 1], or `.ply`
  (vertices, and their colours if the file has them): voxelised like `sequence_voxels` does
  with the points path (one cube around every frame's points, 2 % padding, cfg.resolution^3
  cells, mean colour per voxel). Without colours the voxels are grey (0.5).

Every input is checked before the model runs (ValueError naming the problem, `check_voxels`):
an empty voxel set, a frame without points or voxels, colours whose count differs from the
coordinates', coordinates outside the grid, duplicate voxels, colours outside [0, 1], a grid
that is not cubic or not the model's resolution, and a voxel size outside VOXEL_SIZE_RANGE
metres (e.g. millimetres given as metres: points 1000 "m" wide make 30 m voxels).

Cameras. The encoder embeds each voxel's Plücker ray from the frame's camera centre (eq. 11;
the decoder sees no camera). Sequence4D: view 0 of each frame, as in training. A voxel file
with cam_to_world: those. Otherwise (points, voxels without cameras): one fixed camera for
every frame, DEFAULT_CAMERA grid sides from the grid's centre, looking at it. The model was
trained with the data's own moving cameras, so this is an approximation.

Output (written to a new or empty folder, `fourdlib.outputs`): reconstruction.npz (the decoded
voxels, same grid, with their occupancy), input.npz (the voxels the model encoded), latent.npz
(mean (G, C', L, L, L), lam) and frames/frame_NNNN.ply (each frame's reconstructed voxel
centres with colours, for any point-cloud viewer).
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import torch

from ...data.sequence import FormatError, Sequence4D
from ...data.voxels import SequenceVoxels, sequence_voxels
from ...geometry.cameras import invert_rigid
from ...geometry.voxelize import grid_spec, voxelize_points
from ...outputs import check_output_folder, infer_parser, output_folder, run_command
from ...train.distributed import unwrap
from .config import LAMBDAS, Native4DVAEConfig
from .course import load_model
from .model import PointMapVAE, choose_lambda, frame_cameras, sequence_windows, voxel_item

__all__ = ["VOXEL_SIZE_RANGE", "DEFAULT_CAMERA", "check_voxels", "read_input", "read_voxels", "write_voxels",
           "points_to_voxels", "write_ply", "autoencode", "write_result", "main"]

VOXEL_SIZE_RANGE = (1e-4, 1.0)   # metres: 0.1 mm .. 1 m per voxel; outside it, the units are wrong
DEFAULT_CAMERA = (0.0, -2.0, 0.5)  # camera centre for inputs without cameras: grid centre + this x grid side
POINT_SUFFIXES = (".npy", ".ply")
PADDING = 0.02                   # of the points' extent, on every side (sequence_bounds' default)


# ------------------------------------------------------------------ checks
def check_voxels(vox: SequenceVoxels, resolution: int | None = None, what: str = "the voxels") -> None:
    """ValueError naming the problem if `vox` cannot be encoded (see the module docstring);
    resolution: the model's grid side, which the voxels' grid must have."""
    coords = np.asarray(vox.coords)
    if coords.ndim != 2 or coords.shape[1] != 4 or not np.issubdtype(coords.dtype, np.integer):
        raise ValueError(f"{what}: coords must be an (M, 4) integer array (t, i, j, k), got {coords.dtype} "
                         f"of shape {coords.shape}")
    M, T = len(coords), int(vox.num_frames)
    if M == 0:
        raise ValueError(f"{what}: the voxel set is empty (no frame has a voxel): nothing to encode")
    if vox.colors is not None:
        colors = np.asarray(vox.colors)
        if colors.ndim != 2 or colors.shape[1] != 3 or len(colors) != M:
            raise ValueError(f"{what}: colors must be ({M}, 3), one RGB per voxel, got shape {colors.shape} "
                             f"for {M} voxel coordinates")
        if not np.isfinite(colors).all():
            raise ValueError(f"{what}: colors contain NaN or inf")
        if colors.min() < 0 or colors.max() > 1:
            hint = " (they look like 0..255: divide by 255)" if colors.max() > 1.5 else ""
            raise ValueError(f"{what}: colors must lie in [0, 1], got {colors.min():.4g}..{colors.max():.4g}{hint}")
    if T < 1:
        raise ValueError(f"{what}: num_frames must be >= 1, got {T}")
    t = coords[:, 0]
    if t.min() < 0 or t.max() >= T:
        raise ValueError(f"{what}: frame indices {t.min()}..{t.max()} lie outside [0, {T}) (num_frames {T})")
    empty = np.setdiff1d(np.arange(T), t)
    if len(empty):
        raise ValueError(f"{what}: frame(s) {empty[:10].tolist()} have no voxel (a frame without points or "
                         "depth); drop those frames or fill them")
    res = np.asarray(vox.resolution).reshape(-1)
    if res.size != 3 or len(set(res.tolist())) != 1:
        raise ValueError(f"{what}: the grid must be cubic (the same resolution on every axis), got {res.tolist()}")
    R = int(res[0])
    if resolution is not None and R != resolution:
        raise ValueError(f"{what}: the grid has {R}^3 cells but the model works on {resolution}^3; voxelise the "
                         f"points again at {resolution} (pass points or a Sequence4D instead)")
    outside = (coords[:, 1:] < 0) | (coords[:, 1:] >= R)
    if outside.any():
        bad = coords[outside.any(1)]
        raise ValueError(f"{what}: {len(bad)} voxel(s) lie outside the {R}^3 grid (cells must be in [0, {R})), "
                         f"e.g. {bad[0].tolist()}")
    if len(np.unique(coords, axis=0)) != M:
        raise ValueError(f"{what}: some (t, i, j, k) voxels appear twice; merge them (one colour per voxel)")
    h = np.asarray(vox.voxel_size, np.float64).reshape(-1)
    if h.size not in (1, 3) or not np.isfinite(h).all() or not (h > 0).all() or np.ptp(h) > 1e-6 * h.max():
        raise ValueError(f"{what}: voxel_size must be one positive number (cubic voxels), got {h.tolist()}")
    lo, hi = VOXEL_SIZE_RANGE
    if not lo <= h[0] <= hi:
        raise ValueError(f"{what}: a voxel size of {h[0]:.4g} m is outside the plausible {lo:g}..{hi:g} m: fourdlib "
                         "works in metres; are the coordinates in millimetres (divide by 1000) or another unit?")
    if not np.isfinite(np.asarray(vox.origin, np.float64)).all() or np.asarray(vox.origin).size != 3:
        raise ValueError(f"{what}: origin must be 3 finite numbers, got {np.asarray(vox.origin).tolist()}")


# ------------------------------------------------------------------ reading
def _natural_key(path: Path):
    return [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", path.name)]


def _read_points(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """(points (N, 3) float64, colours (N, 3) in [0, 1] or None) of one frame file."""
    if path.suffix.lower() == ".npy":
        try:
            a = np.load(path, allow_pickle=False)
        except Exception as e:  # noqa: BLE001 - any unreadable file gets the same message
            raise FormatError(f"{path}: not a readable .npy array ({type(e).__name__}: {e})") from e
        if not isinstance(a, np.ndarray) or a.ndim != 2 or a.shape[1] not in (3, 6):
            raise FormatError(f"{path}: expected (N, 3) xyz or (N, 6) xyz + rgb, got "
                              f"{getattr(a, 'shape', type(a).__name__)}")
        pts, col = a[:, :3], (a[:, 3:] if a.shape[1] == 6 else None)
    else:
        import trimesh

        try:
            geom = trimesh.load(path, process=False)
        except Exception as e:  # noqa: BLE001
            raise FormatError(f"{path}: not a readable .ply ({type(e).__name__}: {e})") from e
        if not hasattr(geom, "vertices"):
            raise FormatError(f"{path}: a {type(geom).__name__}, expected one point cloud or mesh")
        pts = np.asarray(geom.vertices)
        vc = getattr(geom, "colors", None)
        if vc is None or len(vc) == 0:
            vc = getattr(getattr(geom, "visual", None), "vertex_colors", None)
        col = None if vc is None or len(vc) != len(pts) else np.asarray(vc)[:, :3] / 255.0
    if len(pts) == 0:
        raise ValueError(f"{path}: the frame holds no points (a frame without points cannot be encoded)")
    if not np.isfinite(pts).all():
        raise ValueError(f"{path}: the points contain NaN or inf")
    return pts.astype(np.float64), None if col is None else col.astype(np.float64)


def points_to_voxels(frames, colors=None, resolution: int = 32) -> SequenceVoxels:
    """Per-frame points [(N_t, 3)] (and colours [(N_t, 3)] in [0, 1] or None) -> voxels on one
    cube of resolution^3 cells around every frame's points (padding 2 % per side), the mean
    colour per voxel; a frame without points or colours of another length is a ValueError."""
    frames = [np.asarray(f, np.float64) for f in frames]
    if not frames:
        raise ValueError("points_to_voxels: no frames")
    for t, f in enumerate(frames):
        if f.ndim != 2 or f.shape[1] != 3:
            raise ValueError(f"frame {t}: points must be (N, 3), got shape {f.shape}")
        if len(f) == 0:
            raise ValueError(f"frame {t} holds no points (a frame without points cannot be encoded)")
        if colors is not None and colors[t] is not None and len(colors[t]) != len(f):
            raise ValueError(f"frame {t}: {len(colors[t])} colours for {len(f)} points; give one per point")
    allp = np.concatenate(frames)
    lo, hi = allp.min(0), allp.max(0)
    centre, side = (lo + hi) / 2, max(float((hi - lo).max()) * (1 + 2 * PADDING), 1e-6)
    box = np.stack([centre - side / 2, centre + side / 2])
    origin, size, res = grid_spec(resolution=resolution, bounds=box)
    coords, cols = [], []
    have_col = colors is not None and all(c is not None for c in colors)
    for t, f in enumerate(frames):
        v = voxelize_points(f, colors[t] if have_col else None, resolution=res.numpy(), bounds=box, outside="drop")
        coords.append(np.concatenate([np.full((len(v.coords), 1), t), v.coords], 1))
        cols.append(v.colors if have_col else np.full((len(v.coords), 3), 0.5, np.float32))
    c = np.concatenate(coords).astype(np.int64)
    return SequenceVoxels(c, np.clip(np.concatenate(cols), 0, 1).astype(np.float32), np.ones(len(c), np.int64),
                          origin.numpy(), size.numpy(), res.numpy(), len(frames))


def write_voxels(path, vox: SequenceVoxels, **extra) -> Path:
    """One .npz of a SequenceVoxels (+ extra arrays, e.g. cam_to_world, occupancy): what
    `read_voxels` and `fourd infer native4d_vae` read."""
    colors = vox.colors if vox.colors is not None else np.full((len(vox.coords), 3), 0.5, np.float32)
    np.savez_compressed(path, coords=np.asarray(vox.coords, np.int64), colors=np.asarray(colors, np.float32),
                        counts=np.asarray(vox.counts, np.int64), origin=np.asarray(vox.origin, np.float64),
                        voxel_size=np.asarray(vox.voxel_size, np.float64).reshape(-1)[:1],
                        resolution=np.asarray(vox.resolution, np.int64).reshape(-1),
                        num_frames=np.int64(vox.num_frames),
                        **{k: np.asarray(v) for k, v in extra.items() if v is not None})
    return Path(path)


def read_voxels(path) -> tuple[SequenceVoxels, np.ndarray | None]:
    """(voxels, cam_to_world (T, 4, 4) or None) of a voxel .npz (see `write_voxels`)."""
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in ("coords", "colors", "origin", "voxel_size", "resolution") if k not in z]
        if missing:
            raise FormatError(f"{path}: a voxel file needs coords, colors, origin, voxel_size and resolution; "
                              f"missing {missing}")
        coords, colors = z["coords"], z["colors"]
        T = int(z["num_frames"]) if "num_frames" in z else (int(coords[:, 0].max()) + 1 if coords.size else 0)
        h = np.asarray(z["voxel_size"], np.float64).reshape(-1)
        vox = SequenceVoxels(coords, colors, np.ones(len(coords), np.int64), np.asarray(z["origin"], np.float64),
                             np.broadcast_to(h, (3,)).copy() if h.size == 1 else h,
                             np.broadcast_to(np.asarray(z["resolution"]).reshape(-1), (3,)).copy()
                             if np.asarray(z["resolution"]).size == 1 else np.asarray(z["resolution"]), T)
        c2w = np.asarray(z["cam_to_world"], np.float64) if "cam_to_world" in z else None
    if c2w is not None and c2w.shape != (T, 4, 4):
        raise FormatError(f"{path}: cam_to_world must be ({T}, 4, 4), one camera per frame, got {c2w.shape}")
    return vox, c2w


def read_input(source, resolution: int) -> tuple[SequenceVoxels, np.ndarray | None, dict]:
    """(voxels, cam_to_world (T, 4, 4) or None, meta) from INPUT (see the module docstring),
    checked with `check_voxels`."""
    if isinstance(source, Sequence4D):
        seq, path = source, None
    else:
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"no such file or folder: {path}")
        seq = None
        if path.is_dir():
            files = sorted((p for p in path.iterdir()
                            if p.is_file() and p.suffix.lower() in (".npz",) + POINT_SUFFIXES), key=_natural_key)
            npz = [p for p in files if p.suffix.lower() == ".npz"]
            per_frame = [p for p in files if p.suffix.lower() in POINT_SUFFIXES]
            if npz and per_frame:
                raise FormatError(f"{path} mixes .npz and per-frame files; it must hold ONE .npz or per-frame "
                                  ".npy / .ply point clouds")
            if len(npz) > 1:
                raise FormatError(f"{path} holds {len(npz)} .npz files; give the file itself, or a folder with one")
            if not files:
                raise FormatError(f"{path} holds no .npz, .npy or .ply files")
            if per_frame:
                read = [_read_points(p) for p in per_frame]
                cols = [c for _, c in read]
                vox = points_to_voxels([p for p, _ in read], cols if all(c is not None for c in cols) else None,
                                       resolution)
                check_voxels(vox, resolution, what=str(path))
                return vox, None, {"source": str(path), "kind": "points", "frame_files": [p.name for p in per_frame]}
            path = npz[0]
        if path.suffix.lower() != ".npz":
            raise FormatError(f"{path}: expected a Sequence4D or voxel .npz, or a folder of per-frame point clouds")
        with np.load(path, allow_pickle=False) as z:
            is_voxels = "coords" in z.files
        if is_voxels:
            vox, c2w = read_voxels(path)
            check_voxels(vox, resolution, what=str(path))
            return vox, c2w, {"source": str(path), "kind": "voxels"}
        seq = Sequence4D.load(path)
    if seq.depth is None or seq.cam_to_world is None or seq.intrinsics is None:
        raise FormatError(f"{path or 'the sequence'}: a Sequence4D needs depth, intrinsics and cam_to_world "
                          "to be voxelised")
    vox = sequence_voxels(seq, resolution=resolution)
    check_voxels(vox, resolution, what=str(path or seq.name or "the sequence"))
    return vox, np.asarray(seq.cam_to_world[:, 0], np.float64), {"source": str(path) if path else seq.name,
                                                                  "kind": "sequence", "sequence": seq}


def write_ply(path, points: np.ndarray, colors: np.ndarray) -> Path:
    """A binary PLY point cloud: points (N, 3) as float32 x, y, z, colours (N, 3) in [0, 1] as
    uchar red, green, blue (N = 0 is a valid, empty file)."""
    rows = np.zeros(len(points), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                                        ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    for i, k in enumerate("xyz"):
        rows[k] = np.asarray(points)[:, i]
    rgb = (np.clip(np.asarray(colors, np.float64), 0, 1) * 255).round().astype(np.uint8).reshape(-1, 3)
    for i, k in enumerate(("red", "green", "blue")):
        rows[k] = rgb[:, i]
    header = ("ply\nformat binary_little_endian 1.0\n"
              f"element vertex {len(rows)}\n"
              "property float x\nproperty float y\nproperty float z\n"
              "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n")
    with open(path, "wb") as f:
        f.write(header.encode("ascii"))
        f.write(rows.tobytes())
    return Path(path)


# ------------------------------------------------------------------ the model
def _model(checkpoint, device) -> torch.nn.Module:
    model = None
    if isinstance(checkpoint, (str, Path)):
        if not Path(checkpoint).is_file():
            raise FileNotFoundError(f"checkpoint {checkpoint}: no such file")
        model = load_model(checkpoint, map_location=device)
    elif isinstance(checkpoint, torch.nn.Module) and isinstance(getattr(unwrap(checkpoint), "cfg", None),
                                                                Native4DVAEConfig):
        model = unwrap(checkpoint)
    if isinstance(model, PointMapVAE):
        raise ValueError(f"checkpoint {checkpoint if isinstance(checkpoint, (str, Path)) else ''} is a PointMapVAE "
                         "(the table-1 baseline): it encodes a depth video's pointmaps, not voxels; autoencode runs "
                         "the voxel VAE (score the baseline with native4d_vae.evaluate.evaluate)")
    if model is not None:
        return model
    raise TypeError(f"checkpoint must be a path written by native4d_vae.save_model or a Native4DVAE, "
                    f"got {type(checkpoint).__name__}")


def _default_cameras(vox: SequenceVoxels, render_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One camera for every frame, DEFAULT_CAMERA grid sides from the grid's centre, looking at
    it (+z up); K a pinhole of render_size^2 pixels (used by no inference step)."""
    side = float(np.asarray(vox.voxel_size).reshape(-1)[0]) * int(np.asarray(vox.resolution).reshape(-1)[0])
    centre = np.asarray(vox.origin, np.float64) + side / 2
    eye = centre + side * np.asarray(DEFAULT_CAMERA)
    fwd = (centre - eye) / np.linalg.norm(centre - eye)
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    c2w = np.eye(4)
    c2w[:3, :3], c2w[:3, 3] = np.stack([right, down, fwd], 1), eye    # OpenCV axes: x right, y down, z forward
    T = vox.num_frames
    K = torch.tensor([[render_size, 0, render_size / 2], [0, render_size, render_size / 2], [0, 0, 1.0]])
    return torch.as_tensor(np.broadcast_to(c2w, (T, 4, 4)).copy(), dtype=torch.float64), K.expand(T, 3, 3)


@torch.no_grad()
def autoencode(checkpoint, source, *, device: str = "cpu", threshold: float = 0.5, lam: int | None = None) -> dict:
    """Encode INPUT with a trained Native 4D VAE (latent mean) and decode it with the model's
    own pruning, in windows of the model's training length (cfg.train_frames frames).

    checkpoint  a path written by native4d_vae.save_model / fourd train native4d_vae, or the model
    source      a Sequence4D, its .npz, a voxel .npz or a folder (see the module docstring)
    threshold   occupancy above which a decoded voxel is kept
    lam         temporal ratio (1, 2 or 4; default: the largest up to cfg.temporal_ratio
                dividing every window's frame count, as in training)
    Returns {"input": SequenceVoxels encoded, "output": SequenceVoxels decoded (same grid),
    "occupancy" (M_out,), "latent" (G, C', L, L, L) numpy, "lam", "cam_to_world" (T, 4, 4) or
    None (default camera), "meta"}.
    """
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be in (0, 1), got {threshold!r}")
    dev = torch.device(device)
    model = _model(checkpoint, dev).to(dev).eval()
    cfg = model.cfg
    vox, c2w, meta = read_input(source, cfg.resolution)
    T = vox.num_frames
    if "sequence" in meta:
        w2c, K = frame_cameras(meta.pop("sequence"), cfg.render_size)
    elif c2w is not None:
        w2c, K = invert_rigid(torch.as_tensor(c2w)), _default_cameras(vox, cfg.render_size)[1]
    else:
        c2w_t, K = _default_cameras(vox, cfg.render_size)
        w2c = invert_rigid(c2w_t)
    # windows of the training length: the model has never seen a frame time beyond them
    batch = {k: v.to(dev) for k, v in sequence_windows(voxel_item(vox, w2c.float(), K.float()), cfg.train_frames).items()}
    lam = choose_lambda(batch["num_frames"], cfg.temporal_ratio) if lam is None else lam
    if lam not in LAMBDAS or any(int(n) % lam for n in batch["num_frames"]):
        raise ValueError(f"lam must be one of {LAMBDAS} and divide the frames of every window of "
                         f"{cfg.train_frames} ({batch['num_frames'].tolist()}), got {lam!r}")
    out = model(batch, lam=lam, sample=False, gt_pruning=False)
    occ = torch.sigmoid(out["occ_logit"])
    keep = occ > threshold
    coords = out["sites"].coords[keep].cpu().numpy().astype(np.int64)
    colors = ((out["rgb"][keep] + 1) / 2).clamp(0, 1).float().cpu().numpy()
    recon = SequenceVoxels(coords, colors, np.ones(len(coords), np.int64), np.asarray(vox.origin, np.float64),
                           np.asarray(vox.voxel_size, np.float64), np.asarray(vox.resolution), T)
    return {"input": vox, "output": recon, "occupancy": occ[keep].float().cpu().numpy(),
            "latent": out["mean"].float().cpu().numpy(), "lam": lam, "cam_to_world": c2w, "meta": meta}


def write_result(result: dict, out, *, inputs=(), force: bool = False) -> dict:
    """Write OUT/reconstruction.npz, OUT/input.npz, OUT/latent.npz and OUT/frames/frame_NNNN.ply
    (see the module docstring). OUT must be new or empty, or (force) hold only an earlier run's
    files; it may not hold or lie inside `inputs` (fourdlib.outputs). Returns the paths."""
    rec, vox = result["output"], result["input"]
    with output_folder(out, inputs, force, tool="fourd infer native4d_vae") as tmp:
        write_voxels(tmp / "reconstruction.npz", rec, occupancy=result["occupancy"],
                     cam_to_world=result["cam_to_world"])
        write_voxels(tmp / "input.npz", vox, cam_to_world=result["cam_to_world"])
        np.savez_compressed(tmp / "latent.npz", mean=result["latent"], lam=np.int64(result["lam"]))
        (tmp / "frames").mkdir()
        h, origin = float(np.asarray(rec.voxel_size).reshape(-1)[0]), np.asarray(rec.origin, np.float64)
        for t in range(rec.num_frames):
            rows = rec.coords[:, 0] == t
            write_ply(tmp / "frames" / f"frame_{t:04d}.ply", origin + (rec.coords[rows, 1:] + 0.5) * h,
                      rec.colors[rows])
    out = Path(out).expanduser().resolve()
    return {"reconstruction": out / "reconstruction.npz", "input": out / "input.npz", "latent": out / "latent.npz",
            "ply": [out / "frames" / f"frame_{t:04d}.ply" for t in range(rec.num_frames)]}


# ------------------------------------------------------------------ fourd infer native4d_vae
def build_parser(prog: str = "fourd infer native4d_vae") -> argparse.ArgumentParser:
    def options(p):
        p.add_argument("--threshold", type=float, default=0.5, help="occupancy above which a voxel is kept")
        p.add_argument("--lam", type=int, choices=LAMBDAS, help="temporal ratio (default: as in training)")

    return infer_parser(
        prog, "Encode a sequence with a trained Native 4D VAE and decode it back to coloured "
        "voxels: OUT/reconstruction.npz, OUT/input.npz (the voxels encoded), OUT/latent.npz and "
        "OUT/frames/frame_NNNN.ply. INPUT: a Sequence4D .npz (depth video + cameras), a voxel .npz written by "
        "this command, or a folder of per-frame .npy / .ply point clouds (metres).",
        input_metavar="INPUT", input_help="a Sequence4D or voxel .npz, or a folder (see above)",
        checkpoint_help="written by save_model / fourd train",
        force_help="replace an earlier run's outputs in DIR (only the files it recorded; any other file makes it "
                   "refuse)",
        options=options)


def main(argv=None, prog: str = "fourd infer native4d_vae") -> int:
    """The command line of `fourd infer native4d_vae`; the output folder is checked before
    any work, and user errors print a message and return 2."""
    args = build_parser(prog).parse_args(argv)

    def work():
        check_output_folder(args.out, [args.input, args.checkpoint], args.force, tool="fourd infer native4d_vae")
        result = autoencode(args.checkpoint, args.input, device=args.device, threshold=args.threshold, lam=args.lam)
        paths = write_result(result, args.out, inputs=[args.input, args.checkpoint], force=args.force)
        rec = result["output"]
        return (f"autoencoded {rec.num_frames} frames ({len(result['input'].coords)} voxels in, {len(rec.coords)} "
                f"out, latent {tuple(result['latent'].shape)}, lambda {result['lam']}) -> "
                f"{paths['reconstruction'].parent}")

    return run_command(prog, work)
