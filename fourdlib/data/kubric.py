"""Kubric MOVi (Greff et al., CVPR 2022) examples -> `Sequence4D`.

MOVi-A..F are TFDS datasets (`tfds.load("movi_e/256x256", data_dir="gs://kubric-public/tfds")`).
`data_scripts/convert_kubric.py` dumps TFDS examples to `.npz` files with flat keys
("camera/positions", "metadata/depth_range", ...); this module converts one such example.

What the MOVi feature spec says (github.com/google-research/kubric, challenges/movi/README.md
and movi_*.py), and how each item is mapped:

- video (T, H, W, 3) uint8 RGB -> rgb.
- depth (T, H, W, 1) uint16: the *distance from the camera centre* (along the ray, not the
  z-depth), scaled to metadata/depth_range: d = raw / 65535 * (max - min) + min. We turn it
  into z-depth: z = d / |K^-1 (u, v, 1)| at each pixel centre. A float depth is taken as
  already decoded distances.
- segmentations (T, H, W, 1): 0 = background (the floor / dome), k + 1 = instance k. Same
  as fourdlib masks; the background becomes one extra object "background" (index K,
  object_background True), so floor points keep an object id.
- camera/focal_length and camera/sensor_width in mm, principal point at the image centre,
  square pixels: fx = fy = focal_length / sensor_width * W, (cx, cy) = (W / 2, H / 2);
  Kubric's own `z_to_depth` puts pixel centres at i + 0.5 like fourdlib.
- camera/positions (T, 3), camera/quaternions (T, 4): Kubric objects store quaternions as
  (w, x, y, z) (pyquaternion, `kubric.core.objects.Object3D`), and a camera looks down its
  -z axis with +y up (Blender). OpenCV axes: cam_to_world = [R | p] @ diag(1, -1, -1, 1).
- instances/positions (K, T, 3), instances/quaternions (K, T, 4) (w, x, y, z): rigid
  object-to-world poses -> object_poses. The scene flow of the reference frame's visible
  points follows from them exactly (x_t = P_k(t) P_k(ref)^-1 x; background points stay).
- World: Blender / PyBullet units (metres), +z up, floor at z = 0. 24 frames at 12 fps.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..geometry.cameras import depth_to_points, invert_rigid, quaternion_to_matrix, unproject_depth
from .realio import need_file
from .sequence import FormatError, Sequence4D

MOVI_FPS = 12.0
MOVI_LICENCE = ("Kubric code: Apache 2.0; MOVi data: see the terms in github.com/google-research/kubric "
                "(not restated here)")
MOVI_CITATION = "Greff et al. Kubric: A Scalable Dataset Generator. CVPR 2022."
REQUIRED = ("video", "depth", "segmentations", "camera/focal_length", "camera/sensor_width",
            "camera/positions", "camera/quaternions", "instances/positions", "instances/quaternions")
# Blender camera axes (x right, y up, looking down -z) -> OpenCV (x right, y down, +z forward)
BLENDER_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])


def flatten(example: Mapping, prefix: str = "") -> dict[str, np.ndarray]:
    """Nested dict of arrays (a TFDS example) -> flat {"camera/positions": array, ...}."""
    out = {}
    for k, v in example.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "/"))
        else:
            out[key] = np.asarray(v)
    return out


def _pose(R, t) -> np.ndarray:
    P = np.zeros(R.shape[:-2] + (4, 4))
    P[..., :3, :3], P[..., :3, 3], P[..., 3, 3] = R, t, 1
    return P


def load_movi_npz(path) -> dict[str, np.ndarray]:
    """An example written by `data_scripts/convert_kubric.py export` (flat keys)."""
    path = need_file(path, "MOVi example .npz")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as e:
        raise FormatError(f"{path}: not a readable .npz ({type(e).__name__}: {e})") from e


def movi_to_sequence(example: Mapping, *, flow_ref: int = 0, max_depth: float | None = None,
                     fps: float = MOVI_FPS, name: str | None = None) -> Sequence4D:
    """One MOVi example (nested TFDS dict or flat npz dict) -> `Sequence4D`.

    max_depth  drop pixels farther than this (metres) from depth and partial clouds, e.g.
               the far dome / sky (default: keep all).
    """
    ex = flatten(example)
    missing = [k for k in REQUIRED if k not in ex]
    if missing:
        raise FormatError(f"MOVi example: missing {missing}; have {sorted(ex)}. Export with "
                          f"data_scripts/convert_kubric.py (keys like 'camera/positions')")
    video = ex["video"]
    if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
        raise FormatError(f"MOVi video: expected (T, H, W, 3) uint8, got {video.dtype} {video.shape}")
    T, H, W, _ = video.shape
    raw = ex["depth"].reshape(T, H, W) if ex["depth"].size == T * H * W else None
    if raw is None:
        raise FormatError(f"MOVi depth: expected (T, H, W, 1) = {(T, H, W, 1)}, got {ex['depth'].shape}")
    if raw.dtype == np.uint16:
        if "metadata/depth_range" not in ex:
            raise FormatError("MOVi depth is uint16 but metadata/depth_range is missing: cannot decode it")
        lo, hi = (float(x) for x in ex["metadata/depth_range"])
        dist = raw / 65535.0 * (hi - lo) + lo
    elif raw.dtype.kind == "f":
        dist = raw.astype(np.float64)
    else:
        raise FormatError(f"MOVi depth: dtype {raw.dtype}; expected uint16 (+ depth_range) or float")

    f_mm, sw_mm = float(np.ravel(ex["camera/focal_length"])[0]), float(np.ravel(ex["camera/sensor_width"])[0])
    fx = f_mm / sw_mm * W
    K = np.array([[fx, 0, W / 2], [0, fx, H / 2], [0, 0, 1]], np.float32)
    # Ray distance -> z-depth: the pixel-centre ray at z = 1 has length |K^-1 (u, v, 1)|.
    ray_len = np.linalg.norm(unproject_depth(np.ones((H, W), np.float32), K), axis=-1)   # (H, W)
    depth = (dist / ray_len).astype(np.float32)
    if max_depth is not None:
        depth[depth > max_depth] = 0

    cam_p, cam_q = ex["camera/positions"], ex["camera/quaternions"]
    if cam_p.shape != (T, 3) or cam_q.shape != (T, 4):
        raise FormatError(f"MOVi camera: positions {cam_p.shape} / quaternions {cam_q.shape}, "
                          f"expected ({T}, 3) / ({T}, 4)")
    c2w = _pose(quaternion_to_matrix(cam_q), cam_p) @ BLENDER_TO_OPENCV                # (T, 4, 4)

    pos, quat = ex["instances/positions"], ex["instances/quaternions"]
    if pos.ndim != 3 or pos.shape[1:] != (T, 3) or quat.shape != pos.shape[:2] + (4,):
        raise FormatError(f"MOVi instances: positions {pos.shape} / quaternions {quat.shape}, expected "
                          f"(K, {T}, 3) / (K, {T}, 4)")
    nK = len(pos)
    obj_poses = _pose(quaternion_to_matrix(quat), pos).transpose(1, 0, 2, 3)             # (T, K, 4, 4)
    obj_poses = np.concatenate([obj_poses, np.broadcast_to(np.eye(4), (T, 1, 4, 4))], 1)  # + background
    seg = ex["segmentations"].reshape(T, H, W).astype(np.int64)
    if seg.max() > nK:
        raise FormatError(f"MOVi segmentations: id {seg.max()} but only {nK} instances")
    masks = np.where(seg == 0, nK + 1, seg).astype(np.int16)                             # background = object K
    masks[depth == 0] = 0
    names = [f"instance{k}" for k in range(nK)]
    for key in ("instances/asset_id", "instances/shape_label"):
        if key in ex and len(ex[key]) == nK:
            names = [_text(v) for v in ex[key]]
            break
    moved = (np.linalg.norm(pos - pos[:, :1], axis=-1).max(1) > 1e-3) | \
        (np.abs(np.abs(np.sum(quat * quat[:, :1], -1)) - 1).max(1) > 1e-6)

    partial, pix = zip(*[depth_to_points(depth[t], K, c2w[t]) for t in range(T)])
    colors = [video[t][p[:, 1], p[:, 0]] for t, p in enumerate(pix)]
    inst = [(masks[t][p[:, 1], p[:, 0]] - 1).astype(np.int16) for t, p in enumerate(pix)]
    if any(len(p) == 0 for p in partial):
        raise FormatError("MOVi: a frame has no valid depth pixel (max_depth too small?)")

    # Exact allocentric scene flow of the reference frame's points from the rigid poses.
    x0, k0 = partial[flow_ref].astype(np.float64), inst[flow_ref].astype(np.int64)
    rel = obj_poses @ invert_rigid(obj_poses[flow_ref])[None]                            # (T, K+1, 4, 4)
    A = rel[:, k0]                                                                        # (T, P, 4, 4)
    x_t = np.einsum("tpij,pj->tpi", A[..., :3, :3], x0) + A[..., :3, 3]
    video_name = _text(ex["metadata/video_name"]) if "metadata/video_name" in ex else None
    return Sequence4D(
        times=np.arange(T) / fps, rgb=video[:, None], depth=depth[:, None], masks=masks[:, None],
        intrinsics=np.broadcast_to(K, (T, 1, 3, 3)).copy(), cam_to_world=c2w[:, None],
        object_names=names + ["background"], object_poses=obj_poses,
        object_dynamic=np.append(moved, False), object_background=np.append(np.zeros(nK, bool), True),
        partial_points=list(partial), partial_colors=colors, partial_instance=inst,
        flow_ref=flow_ref, flow_points=x0, flow_pixels=pix[flow_ref], scene_flow=x_t - x0,
        flow_valid=np.ones(x_t.shape[:2], bool),
        meta={"name": name or f"movi_{video_name or 'example'}", "kind": "kubric_movi",
              "source": "Kubric MOVi (TFDS)", "video_name": video_name, "fps": fps,
              "depth_note": "MOVi depth is distance to the camera centre; converted to z-depth",
              "flow_note": "scene flow derived from the rigid instance poses",
              "licence": MOVI_LICENCE, "citation": MOVI_CITATION})


def _text(v) -> str:
    v = np.asarray(v).item() if np.ndim(v) == 0 else v
    return v.decode() if isinstance(v, bytes) else str(v)


# Keys kept when exporting a TFDS example (the rest, e.g. ragged bounding boxes, is not needed).
EXPORT_KEYS = REQUIRED + ("metadata/depth_range", "metadata/video_name", "metadata/num_frames",
                          "metadata/height", "metadata/width", "instances/asset_id", "instances/shape_label",
                          "instances/is_dynamic", "instances/scale", "camera/field_of_view")


def convert_movi_files(files, out_dir, *, max_depth: float | None = None, fps: float = MOVI_FPS):
    """Convert exported MOVi `.npz` examples into a dataset folder (`.npz` + manifest.json).

    The split of each example is the one stored at export ("export/split"), else "train".
    """
    from pathlib import Path

    from tqdm.auto import tqdm

    from .dataset import write_manifest

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = sorted(Path(f) for f in files)
    if not files:
        raise FileNotFoundError("convert_movi_files: no .npz files given")
    entries, dataset = [], None
    for path in tqdm(files, desc="MOVi"):
        ex = load_movi_npz(path)
        try:
            seq = movi_to_sequence(ex, max_depth=max_depth, fps=fps, name=f"movi_{path.stem}")
        except FormatError as e:
            raise FormatError(f"{path}: {e}") from e
        split = _text(ex["export/split"]) if "export/split" in ex else "train"
        dataset = _text(ex["export/dataset"]) if "export/dataset" in ex else dataset
        seq.meta.update(split=split)
        fname = f"{path.stem}.npz"
        seq.save(out_dir / fname)
        entries.append({"file": fname, "split": split, "kind": "kubric_movi", "num_frames": seq.num_frames,
                        "source": path.name, "num_objects": len(seq.object_names) - 1})
    info = {"source": f"Kubric MOVi ({dataset or 'TFDS export'})", "converter": "data_scripts/convert_kubric.py",
            "max_depth": max_depth, "fps": fps, "licence": MOVI_LICENCE, "citation": MOVI_CITATION}
    return write_manifest(out_dir, entries, info)
