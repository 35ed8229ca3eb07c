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

At a model's input size: `deepdeform_pair(folder, size)` crops and resamples a flow pair
(source, target, GT scene flow, object mask) without blending across depth edges.

Cameras: DeepDeform gives no camera poses. The GT scene flow is the motion relative to the
camera (source camera frame), and it carries source points onto the target depth in the
same camera frame, so we take world = that camera frame and cam_to_world = identity for
every frame; any motion of the sensor is part of the scene flow. Frame rate: 30 fps
(Structure-Sensor-style capture; assumed, a parameter).
"""
from __future__ import annotations

import re
import struct
from typing import NamedTuple

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
    if flow:
        pair = next((p for p in _flow_pairs(folder) if p[2] in frames and p[3] in frames), None)
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


class DeepDeformPair(NamedTuple):
    """A DeepDeform source/target pair at a model's input size (`deepdeform_pair`).

    sequence  Sequence4D of 2 frames (source, target), 1 view, identity poses; its scene flow
              fields hold the source's valid-depth pixels (flow_valid: finite GT there).
    flow      (size, size, 3) float32 GT scene flow of the source pixels, metres, source camera
              frame, NaN where there is no GT.
    mask      (size, size) bool object mask of the source frame.
    """
    sequence: Sequence4D
    flow: np.ndarray
    mask: np.ndarray


def _flow_pairs(folder) -> list[tuple]:
    """(path, object, source, target) of every scene_flow/OBJ_S_T.sflow of a sequence folder."""
    sdir = folder / "scene_flow"
    found = []
    for p in sorted(sdir.glob("*.sflow")) if sdir.is_dir() else []:
        m = re.fullmatch(r"(.+)_(\d+)_(\d+)", p.stem)
        if m:
            found.append((p, m.group(1), int(m.group(2)), int(m.group(3))))
    return found


def deepdeform_pair(folder, size: int, pair: str | None = None) -> DeepDeformPair:
    """A DeepDeform flow pair cropped and resampled to `size` x `size` pixels.

    pair: the stem of a scene_flow/OBJ_SSSSSS_TTTTTT.sflow file (default: the folder's only one).
    Reads source and target colour and depth, the GT scene flow and the source's object mask
    (mask/SSSSSS_OBJ.png).

    Crop: the centred square of side k * size with k the largest ODD integer such that
    k * size fits the shorter side (640 x 480 -> 448 x 448 for size 64, k = 7; the whole 480
    for size 32, k = 15). Each output pixel is then a k x k block of source pixels, and with k
    odd the block's centre is the centre of one source pixel, so the output pixel's ray is
    exactly that pixel's ray (with 480 / 64 = 7.5 no source pixel would sit on it).
    Resampling: RGB is the block's mean (area averaging: an image, blending is fine). Depth,
    GT flow and mask are those of the block's CENTRE pixel (nearest): an average across a
    depth edge is a point in mid-air, a median of depths would no longer belong to the pixel
    whose GT flow we keep, and the centre pixel keeps depth, flow and mask of one and the same
    surface point on the output pixel's exact ray.
    Intrinsics (fourdlib's convention, pixel i covers [i, i+1), which `load_deepdeform`
    already applied to DeepDeform's integer pixel centres): the crop shifts cx, cy by its
    offset, the k-fold shrink divides fx, fy, cx, cy by k. Exact, because continuous image
    coordinates scale with the pixel edges (in DeepDeform's integer-centre convention the
    same map reads cx' = (cx + 0.5 - x0) / k - 0.5).

    Refuses (FileNotFoundError / FormatError / ValueError, naming the file): a folder without
    scene_flow/*.sflow, several pairs without `pair`, missing frames or mask, a flow or mask
    of another size than the depth, a size larger than the shorter image side.
    """
    folder = need_dir(folder, "DeepDeform sequence")
    size = int(size)
    pairs = _flow_pairs(folder)
    if not pairs:
        raise FileNotFoundError(f"{folder}: no scene flow (no scene_flow/OBJ_SSSSSS_TTTTTT.sflow file); "
                                "deepdeform_pair needs a pair with GT scene flow")
    if pair is None:
        if len(pairs) > 1:
            raise ValueError(f"{folder}: {len(pairs)} scene flow pairs {[p[0].stem for p in pairs]}; "
                             "choose one with pair=")
        path, obj, src, tgt = pairs[0]
    else:
        chosen = [p for p in pairs if p[0].stem == pair]
        if not chosen:
            raise FileNotFoundError(f"{folder}: no scene_flow/{pair}.sflow (pairs: {[p[0].stem for p in pairs]})")
        path, obj, src, tgt = chosen[0]
    full = load_deepdeform(folder, [src, tgt], flow=False)                 # checks colour vs depth sizes
    H, W = full.depth.shape[2:]
    flow = read_flow_file(path, channels=3)
    if flow.shape[:2] != (H, W):
        raise FormatError(f"{path}: flow is {flow.shape[:2]} but the depth maps are {(H, W)}")
    mask_path = folder / "mask" / f"{src:06d}_{obj}.png"
    mask = read_mask(mask_path)
    if mask.shape != (H, W):
        raise FormatError(f"{mask_path}: mask is {mask.shape} but the depth maps are {(H, W)}")
    if not 1 <= size <= min(H, W):
        raise ValueError(f"size must be in [1, {min(H, W)}] (the shorter image side), got {size}")
    k = min(H, W) // size
    k -= 1 - k % 2                                                         # odd: a centre pixel exists
    side = k * size
    x0, y0 = (W - side) // 2, (H - side) // 2
    c = k // 2                                                             # centre pixel within a block

    def centre(a):  # (H, W, ...) -> (size, size, ...): each block's centre pixel
        return a[y0 + c:y0 + side:k, x0 + c:x0 + side:k]

    rgb = full.rgb[:, 0, y0:y0 + side, x0:x0 + side].astype(np.float64)
    rgb = rgb.reshape(2, size, k, size, k, 3).mean((2, 4)).round().astype(np.uint8)   # block means
    depth = np.stack([centre(full.depth[t, 0]) for t in range(2)])
    flow, mask = centre(flow), centre(mask)
    K = full.intrinsics[0, 0].astype(np.float64).copy()
    K[0, 2] -= x0
    K[1, 2] -= y0
    K[:2] /= k
    K = K.astype(np.float32)
    for t, f in enumerate((src, tgt)):
        if not (depth[t] > 0).any():
            raise FormatError(f"{folder}: frame {f} has no valid depth in the {side} x {side} centre crop")
    partial, pix = zip(*[depth_to_points(depth[t], K) for t in range(2)])
    pixels = pix[0]
    f0 = flow[pixels[:, 1], pixels[:, 0]]
    ok = np.isfinite(f0).all(1)
    scene_flow = np.zeros((2, len(pixels), 3), np.float32)
    scene_flow[1] = np.where(ok[:, None], f0, 0)
    eye = np.eye(4, dtype=np.float32)
    seq = Sequence4D(
        times=full.times, rgb=rgb[:, None], depth=depth[:, None], intrinsics=np.broadcast_to(K, (2, 1, 3, 3)).copy(),
        cam_to_world=np.broadcast_to(eye, (2, 1, 4, 4)).copy(), partial_points=list(partial),
        partial_colors=[rgb[t][p[:, 1], p[:, 0]] for t, p in enumerate(pix)],
        flow_ref=0, flow_points=partial[0], flow_pixels=pixels, scene_flow=scene_flow,
        flow_valid=np.stack([ok, ok]),
        meta={**full.meta, "name": f"deepdeform_{folder.name}_{size}", "flow_pair": [src, tgt], "flow_object": obj,
              "resample": {"crop_xywh": [int(x0), int(y0), int(side), int(side)], "block": int(k), "size": size,
                           "rgb": "block mean", "depth, flow, mask": "block centre pixel"}})
    return DeepDeformPair(seq, flow, mask)
