"""DeepDeform (Bozic et al., CVPR 2020): real RGB-D sequences of deforming objects, some
frame pairs with ground-truth optical and scene flow.

One sequence folder (as in the dataset and NeuralTracking's `example_data/`):

  color/NNNNNN.jpg                 8-bit RGB, 640 x 480, aligned with depth
  depth/NNNNNN.png                 uint16 z-depth in millimetres, 0 = no measurement
  intrinsics.txt                   4x4, K in its top-left 3x3; pixel centres at integer
                                   coordinates (NeuralTracking back-projects x = (u - cx) z / fx)
  mask/NNNNNN_OBJ.png              uint16 0 / 65535 object mask of a source frame
  scene_flow/OBJ_SSSSSS_TTTTTT.sflow   float32 scene flow, metres, source camera frame
  optical_flow/OBJ_SSSSSS_TTTTTT.oflow float32 optical flow (du, dv), pixels

`.sflow` / `.oflow`: a header of three uint32 (width, height, channels) then float32 values
laid out [channels, height, width]; pixels without GT are NaN or inf.

Cameras: DeepDeform gives no camera poses. The GT scene flow is the motion relative to the
camera (source camera frame), and it carries source points onto the target depth in the
same camera frame, so we take world = that camera frame and cam_to_world = identity for
every frame; any motion of the sensor is part of the scene flow. Frame rate: 30 fps
(Structure-Sensor-style capture; assumed, a parameter).
"""
from __future__ import annotations

import re
import struct

import numpy as np

from ..geometry.cameras import depth_to_points
from .realio import intrinsics_integer_centres, need_dir, need_file, read_color, read_depth_mm_png
from .sequence import FormatError, Sequence4D

DEEPDEFORM_LICENCE = "DeepDeform Terms of Use (research / non-commercial); NeuralTracking code MIT"
DEEPDEFORM_CITATION = ("Bozic, Zollhoefer, Theobalt, Niessner. DeepDeform: Learning Non-rigid RGB-D "
                       "Reconstruction with Semi-supervised Data. CVPR 2020.")


def read_flow_file(path, channels: int | None = None) -> np.ndarray:
    """A DeepDeform `.sflow` / `.oflow` file -> (H, W, C) float32, NaN where there is no GT."""
    path = need_file(path, "DeepDeform flow file")
    raw = path.read_bytes()
    if len(raw) < 12:
        raise FormatError(f"{path}: {len(raw)} bytes, too short for the flow header (3 uint32)")
    w, h, c = struct.unpack("<III", raw[:12])
    if not (0 < w <= 1 << 14 and 0 < h <= 1 << 14 and 0 < c <= 4):
        raise FormatError(f"{path}: bad header (width {w}, height {h}, channels {c}); not a DeepDeform flow file?")
    if channels is not None and c != channels:
        raise FormatError(f"{path}: {c} channels, expected {channels}")
    want = 12 + 4 * w * h * c
    if len(raw) != want:
        raise FormatError(f"{path}: header says {c}x{h}x{w} float32 = {want} bytes, file has {len(raw)} "
                          f"({'truncated' if len(raw) < want else 'extra data'})")
    a = np.frombuffer(raw, np.float32, w * h * c, 12).reshape(c, h, w).transpose(1, 2, 0).copy()
    a[~np.isfinite(a).all(-1)] = np.nan                                       # one invalid marker
    return a


def read_mask(path) -> np.ndarray:
    """A DeepDeform object mask PNG -> (H, W) bool.

    The files hold uint16 0 / 65535 (not 0 / 1 as the dataset README says); 8-bit 0 / 255
    and 0 / 1 masks are accepted too, anything else is refused.
    """
    import imageio.v3 as iio

    path = need_file(path, "DeepDeform mask")
    try:
        m = iio.imread(path)
    except Exception as e:  # noqa: BLE001 - imageio raises many types for unreadable files
        raise FormatError(f"{path}: not a readable image ({type(e).__name__}: {e})") from e
    if m.ndim != 2:
        raise FormatError(f"{path}: a mask must have one channel, got shape {m.shape}")
    vals = np.unique(m)
    top = np.iinfo(m.dtype).max if m.dtype.kind in "ui" else None
    if top is None or not set(vals.tolist()) <= {0, 1, top}:
        raise FormatError(f"{path}: expected a binary mask (0 and 1 or {top}), got values {vals[:8].tolist()}")
    return m > 0


def read_intrinsics_4x4(path) -> np.ndarray:
    """DeepDeform's 4x4 intrinsics.txt -> K (3, 3) in fourdlib's pixel-centre convention."""
    path = need_file(path, "DeepDeform intrinsics")
    try:
        m = np.loadtxt(path, dtype=np.float64)
    except ValueError as e:
        raise FormatError(f"{path}: not a text matrix ({e})") from e
    if m.shape != (4, 4):
        raise FormatError(f"{path}: expected a 4x4 matrix, got shape {m.shape}")
    return intrinsics_integer_centres(m[0, 0], m[1, 1], m[0, 2], m[1, 2])


def load_deepdeform(folder, frames=None, *, fps: float = 30.0, flow: bool = True) -> Sequence4D:
    """A DeepDeform sequence folder as a `Sequence4D` (one static camera, world = camera).

    frames  frame ids to load (default: every depth PNG). When `flow` and scene_flow/
            holds a file OBJ_S_T.sflow with S and T among the frames, S becomes `flow_ref`:
            `flow_points` are all valid-depth pixels of S, `flow_valid` marks the pixels
            with finite GT flow (at S and T; False at other frames).
    """
    folder = need_dir(folder, "DeepDeform sequence")
    depth_dir = need_dir(folder / "depth", "DeepDeform depth")
    if frames is None:
        frames = sorted(int(p.stem) for p in depth_dir.glob("*.png"))
        if not frames:
            raise FileNotFoundError(f"{depth_dir}: no depth PNGs")
    frames = [int(f) for f in frames]
    K = read_intrinsics_4x4(folder / "intrinsics.txt")
    depth = np.stack([read_depth_mm_png(depth_dir / f"{f:06d}.png") for f in frames])[:, None]
    rgb = np.stack([read_color(folder / "color" / f"{f:06d}.jpg") for f in frames])[:, None]
    if rgb.shape[2:4] != depth.shape[2:4]:
        raise FormatError(f"{folder}: colour {rgb.shape[2:4]} and depth {depth.shape[2:4]} differ in size")
    T = len(frames)
    eye = np.eye(4, dtype=np.float32)
    partial, pix = zip(*[depth_to_points(depth[t, 0], K) for t in range(T)])
    colors = [rgb[t, 0][p[:, 1], p[:, 0]] for t, p in enumerate(pix)]

    kw, pair = {}, None
    sdir = folder / "scene_flow"
    if flow and sdir.is_dir():
        for p in sorted(sdir.glob("*.sflow")):
            m = re.fullmatch(r"(.+)_(\d+)_(\d+)", p.stem)
            if m and int(m.group(2)) in frames and int(m.group(3)) in frames:
                pair = (p, m.group(1), int(m.group(2)), int(m.group(3)))
                break
    if pair is not None:
        p, obj, src, tgt = pair
        ref, t_idx = frames.index(src), frames.index(tgt)
        sf = read_flow_file(p, channels=3)                                     # (H, W, 3) metres
        if sf.shape[:2] != depth.shape[2:]:
            raise FormatError(f"{p}: flow is {sf.shape[:2]} but depth is {depth.shape[2:]}")
        pixels = pix[ref]
        f = sf[pixels[:, 1], pixels[:, 0]]                                     # (P, 3)
        ok = np.isfinite(f).all(1)
        scene_flow = np.zeros((T, len(pixels), 3), np.float32)
        scene_flow[t_idx] = np.where(ok[:, None], f, 0)                        # camera = world
        valid = np.zeros((T, len(pixels)), bool)
        valid[ref], valid[t_idx] = ok, ok
        kw = dict(flow_ref=ref, flow_points=partial[ref], flow_pixels=pixels, scene_flow=scene_flow,
                  flow_valid=valid)
    return Sequence4D(
        times=np.asarray(frames, np.float64) / fps, rgb=rgb, depth=depth,
        intrinsics=np.broadcast_to(K, (T, 1, 3, 3)).copy(),
        cam_to_world=np.broadcast_to(eye, (T, 1, 4, 4)).copy(),
        partial_points=list(partial), partial_colors=colors,
        meta={"name": f"deepdeform_{folder.name}", "kind": "deepdeform", "source": f"DeepDeform {folder.name}",
              "frames": frames, "fps": fps, "flow_pair": None if pair is None else [pair[2], pair[3]],
              "flow_object": None if pair is None else pair[1],
              "cameras": "no poses in DeepDeform: world = the (static) camera frame, identity poses",
              "licence": DEEPDEFORM_LICENCE, "citation": DEEPDEFORM_CITATION}, **kw)
