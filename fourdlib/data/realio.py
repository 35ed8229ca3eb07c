"""Small readers shared by the real-data loaders: files that must exist, depth PNGs in
millimetres, colour images, EXR channels, and the pixel-centre shift of integer-pixel
intrinsics.

Every reader names the file and the problem when the input is not what it should be
(missing, wrong dtype, wrong units), so a loader never returns a silently wrong sequence.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .sequence import MAX_DEPTH_M, FormatError


def need_file(path, what: str) -> Path:
    """`path` as a Path, or FileNotFoundError saying which input of which dataset is missing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what}: no file at {path}")
    return path


def need_dir(path, what: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{what}: no folder at {path}")
    return path


def read_depth_mm_png(path) -> np.ndarray:
    """A uint16 depth PNG in millimetres -> (H, W) float32 metres, 0 = no measurement.

    Refuses 8-bit or colour PNGs (not a depth map) and maps whose valid values look like
    metres already (median below 20 "mm"), which a wrong export produces.
    """
    import imageio.v3 as iio

    path = need_file(path, "depth PNG")
    try:
        d = iio.imread(path)
    except Exception as e:
        raise FormatError(f"{path}: not a readable image ({type(e).__name__}: {e})") from e
    if d.ndim != 2:
        raise FormatError(f"{path}: depth PNG must be one channel, got shape {d.shape}")
    if d.dtype != np.uint16:
        raise FormatError(f"{path}: depth PNG must be uint16 millimetres, got {d.dtype} "
                          f"(an 8-bit PNG cannot hold depth)")
    valid = d[d > 0]
    if valid.size == 0:
        raise FormatError(f"{path}: depth PNG has no valid (non-zero) pixel")
    med = float(np.median(valid))
    if med < 20:  # 2 cm median: these are metres (or decimetres) stored as integers
        raise FormatError(f"{path}: median depth {med:.0f} is too small for millimetres; "
                          f"expected uint16 mm (e.g. 2900 for 2.9 m)")
    m = d.astype(np.float32) / 1000.0
    if float(np.median(m[m > 0])) > MAX_DEPTH_M:
        raise FormatError(f"{path}: median depth above {MAX_DEPTH_M} m after mm -> m")
    return m


def read_color(path) -> np.ndarray:
    """An 8-bit colour image (JPG/PNG) -> (H, W, 3) uint8 RGB."""
    import imageio.v3 as iio

    path = need_file(path, "colour image")
    try:
        c = iio.imread(path)
    except Exception as e:
        raise FormatError(f"{path}: not a readable image ({type(e).__name__}: {e})") from e
    if c.dtype != np.uint8 or c.ndim != 3 or c.shape[2] not in (3, 4):
        raise FormatError(f"{path}: expected an 8-bit RGB image, got {c.dtype} {c.shape}")
    return np.ascontiguousarray(c[..., :3])


def read_exr_channels(path, names) -> np.ndarray:
    """The named float channels of an EXR file stacked as (H, W, len(names)) float32."""
    import OpenEXR

    path = need_file(path, "EXR file")
    try:
        with OpenEXR.File(str(path), separate_channels=True) as f:
            ch = {k: np.array(v.pixels, np.float32) for k, v in f.channels().items()}
    except Exception as e:
        raise FormatError(f"{path}: not a readable EXR ({type(e).__name__}: {e})") from e
    missing = [n for n in names if n not in ch]
    if missing:
        raise FormatError(f"{path}: EXR has channels {sorted(ch)} but {missing} are missing")
    return np.stack([ch[n] for n in names], -1)


def intrinsics_integer_centres(fx, fy, cx, cy) -> np.ndarray:
    """K in fourdlib's convention for intrinsics calibrated with pixel centres at integers.

    Most toolkits (OpenCV, the DeformingThings4D renderer, DeepDeform's NeuralTracking)
    cast the ray of pixel column u through x = (u - cx) / fx; fourdlib puts pixel centres
    at u + 0.5 (see `fourdlib.data.sequence`), so the same rays need cx + 0.5, cy + 0.5.
    """
    return np.array([[fx, 0, cx + 0.5], [0, fy, cy + 0.5], [0, 0, 1]], np.float32)


def real_data_dir() -> Path | None:
    """Where the small real samples live, or None: `$FOURD_REAL_DATA`, else
    `shared/data/real` next to the repository checkout (the course's layout)."""
    import os

    env = os.environ.get("FOURD_REAL_DATA")
    path = Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data" / "real"
    return path if path.is_dir() else None
