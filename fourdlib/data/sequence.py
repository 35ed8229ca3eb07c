"""`Sequence4D`: the one data format every method in the course reads.

Conventions (written once, here; everything in fourdlib follows them)
---------------------------------------------------------------------
Units       metres for every length; seconds for `times`.
World frame right-handed, +z up. The synthetic generator puts the floor at z=0.
Camera      OpenCV axes: +x right, +y down, +z forward (looking direction).
            Pixel (u, v) = (column, row); the centre of the top-left pixel is (0.5, 0.5)
            in continuous image coordinates, i.e. pixel index i covers [i, i+1).
Intrinsics  K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] in pixels.
Poses       `cam_to_world` maps camera coordinates to world: x_w = R @ x_c + t.
            `object_poses` map object coordinates to world the same way.
Depth       z-depth (distance along the camera's +z axis, not along the ray), float32
            metres, 0 where the pixel sees nothing. A depth map whose median is above
            `MAX_DEPTH_M` is taken for millimetres and refused.
Images      rgb uint8 (T, V, H, W, 3); masks int16 (T, V, H, W) holding 0 where no
            object is seen and k + 1 where object k is seen.
Frames      T frames at `times` (T,), strictly increasing. Each frame has V views
            (V = 1 for a single moving depth camera).

Fields (every one but `times` is optional; `None` means "not available")
-----------------------------------------------------------------------
times            (T,)            float64 seconds.
surface_points   (T, N, 3)       complete GT surface samples in world coordinates.
surface_normals  (T, N, 3)       unit outward normals of those samples.
    Row i is the same material point in every frame where the source knows it
    (synthetic data, glTF): a method must never take this as input, it is for
    evaluation, scene flow and visibility.
surface_instance (N,)            int16 object index of each surface sample.
surface_visible  (T, N)          bool: sample i is seen by a camera of frame t
    (in front of the camera, inside the image, not occluded). From this, evaluation
    splits completeness into "visible here", "hidden here but seen in another
    frame" (~vis[t] & vis.any(0)) and "never seen" (~vis.any(0)).
mesh_vertices    (T, Nv, 3)      GT mesh per frame (fixed topology), world coordinates.
mesh_faces       (F, 3)          int32 triangle indices into mesh_vertices.
mesh_instance    (F,)            int16 object index of each face.
rgb, depth, masks                per-view images, see above.
intrinsics       (T, V, 3, 3)    float32.
cam_to_world     (T, V, 4, 4)    float32, rigid (orthonormal R, det +1, last row 0 0 0 1).
object_names     list of K str.
object_poses     (T, K, 4, 4)    float32 object-to-world, rigid.
object_dynamic   (K,)            bool: the object moves (or deforms) during the sequence.
object_background (K,)           bool: floor / walls, the "BG" of FG+BG evaluations.
partial_points   list of T arrays (N_t, 3) float32, world coordinates: what a depth
    sensor gives, back-projected from `depth`. Unordered, varying count, no
    correspondence across frames. A frame with no points is refused.
partial_colors   list of T arrays (N_t, 3) uint8 (optional, needs `partial_points`).
partial_instance list of T arrays (N_t,) int16 object index, -1 if unknown.
flow_ref         int: the reference frame of the scene flow.
flow_points      (P, 3)          float32 world positions of the reference frame's
                                 observed points (back-projected from its depth).
flow_pixels      (P, 2)          int32 (u, v) pixel of each flow point in view 0 of
                                 frame `flow_ref` (optional).
scene_flow       (T, P, 3)       float32 allocentric scene flow: world-frame motion of
    each reference point from frame `flow_ref` to frame t (zero at t = flow_ref).
flow_valid       (T, P)          bool: where the flow is known (real data often has one
                                 target frame only).
meta             dict of JSON-serialisable values: name, kind, source, licence,
                 generator settings, split, ...

Construction validates every field (`Sequence4D.validate`), so an instance that exists
is well formed; `save` / `load` round-trip exactly through one uncompressed `.npz`.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_write

MAX_DEPTH_M = 100.0  # a depth map with a larger median is almost surely in millimetres
ROT_TOL = 1e-3  # tolerance on R^T R = I for float32 poses
FORMAT_VERSION = 1


class FormatError(ValueError):
    """A `Sequence4D` field is missing, malformed, or in the wrong units."""


# field name -> (dtype kind, shape pattern); "T", "V", "H", "W", "N", "K", "P", "Nv", "F"
# are sizes that must agree across fields, ints are fixed sizes.
_ARRAY_FIELDS: dict[str, tuple[str, tuple]] = {
    "times": ("f", ("T",)),
    "surface_points": ("f", ("T", "N", 3)),
    "surface_normals": ("f", ("T", "N", 3)),
    "surface_instance": ("i", ("N",)),
    "surface_visible": ("b", ("T", "N")),
    "mesh_vertices": ("f", ("T", "Nv", 3)),
    "mesh_faces": ("i", ("F", 3)),
    "mesh_instance": ("i", ("F",)),
    "rgb": ("u", ("T", "V", "H", "W", 3)),
    "depth": ("f", ("T", "V", "H", "W")),
    "masks": ("i", ("T", "V", "H", "W")),
    "intrinsics": ("f", ("T", "V", 3, 3)),
    "cam_to_world": ("f", ("T", "V", 4, 4)),
    "object_poses": ("f", ("T", "K", 4, 4)),
    "object_dynamic": ("b", ("K",)),
    "object_background": ("b", ("K",)),
    "flow_points": ("f", ("P", 3)),
    "flow_pixels": ("i", ("P", 2)),
    "scene_flow": ("f", ("T", "P", 3)),
    "flow_valid": ("b", ("T", "P")),
}
_DTYPES = {
    "times": np.float64, "surface_instance": np.int16, "surface_visible": np.bool_,
    "mesh_faces": np.int32, "mesh_instance": np.int16, "rgb": np.uint8,
    "masks": np.int16, "object_dynamic": np.bool_, "object_background": np.bool_,
    "flow_pixels": np.int32, "flow_valid": np.bool_,
}  # every other array field is float32
_LIST_FIELDS = ("partial_points", "partial_colors", "partial_instance")
_NEEDS = {  # field -> fields it cannot exist without
    "surface_normals": ("surface_points",), "surface_instance": ("surface_points",),
    "surface_visible": ("surface_points",), "mesh_faces": ("mesh_vertices",),
    "mesh_vertices": ("mesh_faces",), "mesh_instance": ("mesh_faces",),
    "intrinsics": ("depth",), "cam_to_world": ("intrinsics",),
    "depth": ("intrinsics", "cam_to_world"), "rgb": ("intrinsics",), "masks": ("intrinsics",),
    "object_poses": ("object_names",), "object_dynamic": ("object_names",),
    "object_background": ("object_names",), "scene_flow": ("flow_points",),
    "flow_points": ("scene_flow",), "flow_valid": ("scene_flow",),
    "flow_pixels": ("scene_flow",), "partial_colors": ("partial_points",),
    "partial_instance": ("partial_points",),
}


@dataclass(eq=False)
class Sequence4D:
    """T frames of 4D data in one world frame. See the module docstring for conventions."""

    times: np.ndarray
    surface_points: np.ndarray | None = None
    surface_normals: np.ndarray | None = None
    surface_instance: np.ndarray | None = None
    surface_visible: np.ndarray | None = None
    mesh_vertices: np.ndarray | None = None
    mesh_faces: np.ndarray | None = None
    mesh_instance: np.ndarray | None = None
    rgb: np.ndarray | None = None
    depth: np.ndarray | None = None
    masks: np.ndarray | None = None
    intrinsics: np.ndarray | None = None
    cam_to_world: np.ndarray | None = None
    object_names: list[str] | None = None
    object_poses: np.ndarray | None = None
    object_dynamic: np.ndarray | None = None
    object_background: np.ndarray | None = None
    partial_points: list[np.ndarray] | None = None
    partial_colors: list[np.ndarray] | None = None
    partial_instance: list[np.ndarray] | None = None
    flow_ref: int = 0
    flow_points: np.ndarray | None = None
    flow_pixels: np.ndarray | None = None
    scene_flow: np.ndarray | None = None
    flow_valid: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        # Cast to the canonical dtypes first (a float64 point array is fine, an
        # int depth map is not: dtype *kinds* are checked in validate()).
        for name, (kind, _) in _ARRAY_FIELDS.items():
            a = getattr(self, name)
            if a is None:
                continue
            a = np.asarray(a)
            _check_kind(name, a, kind)
            # astype keeps a 0-d array 0-d (ascontiguousarray would make it (1,)), so that
            # validate() refuses it instead of reading a scalar as one frame
            setattr(self, name, a.astype(_DTYPES.get(name, np.float32), order="C", copy=False))
        for name in _LIST_FIELDS:
            frames = getattr(self, name)
            if frames is None:
                continue
            if isinstance(frames, np.ndarray) and frames.dtype != object:
                frames = list(frames)  # a (T, N, 3) array is T frames of N points
            dtype = {"partial_points": np.float32, "partial_colors": np.uint8,
                     "partial_instance": np.int16}[name]
            kind = {"partial_points": "f", "partial_colors": "u", "partial_instance": "i"}[name]
            out = []
            for t, f in enumerate(frames):
                f = np.asarray(f)
                _check_kind(f"{name}[{t}]", f, kind)
                out.append(f.astype(dtype, order="C", copy=False))
            setattr(self, name, out)
        if self.object_names is not None:
            self.object_names = [str(n) for n in self.object_names]
        self.flow_ref = int(self.flow_ref)
        self.meta = dict(self.meta)
        self.validate()

    # ------------------------------------------------------------------ sizes
    @property
    def num_frames(self) -> int:
        return len(self.times)

    @property
    def name(self) -> str:
        return str(self.meta.get("name", "sequence"))

    def __len__(self) -> int:
        return self.num_frames

    def __repr__(self) -> str:
        have = [f for f in self.fields()
                if f not in ("times", "flow_ref", "meta") and getattr(self, f) is not None]
        return f"Sequence4D(name={self.name!r}, T={self.num_frames}, fields={have})"

    @staticmethod
    def fields() -> list[str]:
        return [f.name for f in dataclasses.fields(Sequence4D)]

    # ------------------------------------------------------------- validation
    def validate(self) -> "Sequence4D":
        """Raise `FormatError` naming the field and the problem; return self if fine."""
        if self.times.ndim != 1 or len(self.times) == 0:
            raise FormatError(f"times: expected shape (T,) with T >= 1, got {self.times.shape}")
        T = len(self.times)
        sizes: dict[str, int] = {"T": T}
        for name, (_, pattern) in _ARRAY_FIELDS.items():
            a = getattr(self, name)
            if a is None:
                continue
            if a.ndim != len(pattern):
                raise FormatError(f"{name}: expected {len(pattern)} dims {_fmt(pattern)}, got shape {a.shape}")
            for dim, (want, got) in enumerate(zip(pattern, a.shape)):
                if isinstance(want, int):
                    if got != want:
                        raise FormatError(f"{name}: dim {dim} must be {want}, got shape {a.shape}")
                elif want in sizes and sizes[want] != got:
                    what = "frame count" if want == "T" else f"size {want}"
                    raise FormatError(
                        f"{name}: {what} is {got} but other fields say {sizes[want]} "
                        f"(shape {a.shape}, expected {_fmt(pattern)}){' - missing frame?' if want == 'T' else ''}")
                else:
                    sizes[want] = got
            if a.dtype.kind == "f" and not np.isfinite(a).all():
                bad = int((~np.isfinite(a)).sum())
                raise FormatError(f"{name}: {bad} non-finite values (NaN or inf); mark invalid "
                                  f"entries with a validity field instead")
        for name, needs in _NEEDS.items():
            if getattr(self, name) is not None:
                for n in needs:
                    if getattr(self, n) is None:
                        raise FormatError(f"{name} is given but {n} is missing")
        if np.any(np.diff(self.times) <= 0):
            raise FormatError("times: must be strictly increasing (seconds)")
        self._validate_geometry(sizes)
        self._validate_partial(T)
        return self

    def _validate_geometry(self, sizes):
        if self.surface_normals is not None:
            n = np.linalg.norm(self.surface_normals, axis=-1)
            if np.abs(n - 1).max() > 1e-3:
                raise FormatError(f"surface_normals: must be unit length (norms range "
                                  f"{n.min():.3g}..{n.max():.3g})")
        if self.mesh_faces is not None and self.mesh_faces.size:
            nv = self.mesh_vertices.shape[1]
            if self.mesh_faces.min() < 0 or self.mesh_faces.max() >= nv:
                raise FormatError(f"mesh_faces: indices must lie in [0, {nv}), got "
                                  f"[{self.mesh_faces.min()}, {self.mesh_faces.max()}]")
        if self.depth is not None:
            if (self.depth < 0).any():
                raise FormatError("depth: negative values; use 0 for pixels with no measurement")
            valid = self.depth[self.depth > 0]
            if valid.size == 0:
                raise FormatError("depth: no valid pixel (all zero) in any frame")
            med = float(np.median(valid))
            if med > MAX_DEPTH_M:
                raise FormatError(f"depth: median {med:.1f} looks like millimetres; depth must be in "
                                  f"metres (divide by 1000)")
            for t in range(self.depth.shape[0]):
                if not (self.depth[t] > 0).any():
                    raise FormatError(f"depth: frame {t} has no valid pixel")
        if self.intrinsics is not None:
            K = self.intrinsics
            if (K[..., 0, 0] <= 0).any() or (K[..., 1, 1] <= 0).any():
                raise FormatError("intrinsics: focal lengths fx, fy must be positive (pixels)")
            if np.abs(K[..., 2, :] - np.array([0, 0, 1], np.float32)).max() > 1e-6 or \
                    np.abs(K[..., 1, 0]).max() > 1e-6 or np.abs(K[..., 0, 1]).max() > 1e-3 * np.abs(K[..., 0, 0]).max():
                raise FormatError("intrinsics: expected [[fx,0,cx],[0,fy,cy],[0,0,1]]")
            for n, c in (("H", 1), ("W", 0)):
                if n in sizes and (K[..., c, 2] > 4 * sizes[n]).any():
                    raise FormatError(f"intrinsics: principal point far outside the {n}={sizes[n]} image; "
                                      f"are intrinsics for another resolution?")
        for name in ("cam_to_world", "object_poses"):
            P = getattr(self, name)
            if P is not None:
                _check_rigid(name, P)
        if self.masks is not None and self.object_names is not None:
            if self.masks.max(initial=0) > len(self.object_names) or self.masks.min(initial=0) < 0:
                raise FormatError(f"masks: values must be 0 (nothing) or k+1 for object k < "
                                  f"{len(self.object_names)}, got range [{self.masks.min()}, {self.masks.max()}]")
        if self.object_names is not None:
            K = len(self.object_names)
            for name in ("object_poses", "object_dynamic", "object_background"):
                a = getattr(self, name)
                if a is not None and sizes.get("K", K) != K:
                    raise FormatError(f"{name}: {sizes['K']} objects but object_names has {K}")
            for name in ("surface_instance", "mesh_instance"):
                a = getattr(self, name)
                if a is not None and a.size and (a.min() < -1 or a.max() >= K):
                    raise FormatError(f"{name}: object index out of range [-1, {K})")
        if self.scene_flow is not None:
            if not 0 <= self.flow_ref < sizes["T"]:
                raise FormatError(f"flow_ref: {self.flow_ref} is not a frame index in [0, {sizes['T']})")
            ref = self.scene_flow[self.flow_ref]
            if self.flow_valid is not None:
                ref = ref[self.flow_valid[self.flow_ref]]
            if ref.size and np.abs(ref).max() > 1e-6:
                raise FormatError("scene_flow: must be zero at the reference frame flow_ref")

    def _validate_partial(self, T):
        if self.partial_points is None:
            return
        if len(self.partial_points) != T:
            raise FormatError(f"partial_points: {len(self.partial_points)} frames but times has {T} "
                              f"(missing frame?)")
        for t, p in enumerate(self.partial_points):
            if p.ndim != 2 or p.shape[1] != 3:
                raise FormatError(f"partial_points[{t}]: expected shape (N_t, 3), got {p.shape}")
            if len(p) == 0:
                raise FormatError(f"partial_points[{t}]: frame {t} has no points")
            if not np.isfinite(p).all():
                raise FormatError(f"partial_points[{t}]: {int((~np.isfinite(p)).any(1).sum())} points "
                                  f"with NaN or inf")
        for name in ("partial_colors", "partial_instance"):
            frames = getattr(self, name)
            if frames is None:
                continue
            if len(frames) != T:
                raise FormatError(f"{name}: {len(frames)} frames but times has {T}")
            for t, (f, p) in enumerate(zip(frames, self.partial_points)):
                want = (len(p), 3) if name == "partial_colors" else (len(p),)
                if f.shape != want:
                    raise FormatError(f"{name}[{t}]: expected shape {want}, got {f.shape}")

    # -------------------------------------------------------------- disk I/O
    def save(self, path: str | os.PathLike, compress: bool = False) -> Path:
        """Write one `.npz` atomically (temp file + rename); exact round trip.

        `compress=True` makes files 3-5x smaller and saving slower (loading barely changes).
        """
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(".npz")
        arrays: dict[str, np.ndarray] = {}
        for name in _ARRAY_FIELDS:
            a = getattr(self, name)
            if a is not None:
                arrays[name] = a
        for name in _LIST_FIELDS:
            frames = getattr(self, name)
            if frames is not None:  # ragged: concatenate + per-frame counts
                arrays[f"{name}__data"] = np.concatenate(frames, 0)
                arrays[f"{name}__counts"] = np.array([len(f) for f in frames], np.int64)
        header = {"format": "fourdlib.Sequence4D", "version": FORMAT_VERSION,
                  "flow_ref": self.flow_ref, "object_names": self.object_names, "meta": self.meta}
        arrays["__header__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
        with atomic_write(path) as f:
            (np.savez_compressed if compress else np.savez)(f, **arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Sequence4D":
        """Read a file written by `save`; validates, and names the problem if it cannot.

        Raises FileNotFoundError for a missing file and FormatError (naming the file and
        the field) for anything else: not an .npz, no or a malformed header, per-frame
        counts of a ragged field that do not describe its data, or a field that fails
        validation.
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no sequence file at {path}")
        try:
            with np.load(path, allow_pickle=False) as z:
                files = set(z.files)
                if "__header__" not in files:
                    raise FormatError(f"{path}: an .npz but not a Sequence4D file (no __header__)")
                arrays = {n: z[n] for n in files}
            for n, a in arrays.items():
                if not isinstance(a, np.ndarray):  # np.load hands back a member that is no .npy as bytes
                    raise FormatError(f"{path}: {n}: not an .npy array (a damaged or foreign member)")
        except FormatError:
            raise
        except Exception as e:  # truncated zip, not a zip, a damaged or pickled member, ...
            raise FormatError(f"{path}: not a readable Sequence4D .npz ({type(e).__name__}: {e})") from e
        try:
            header = _read_header(arrays["__header__"])
            kw: dict[str, Any] = {n: arrays[n] for n in _ARRAY_FIELDS if n in arrays}
            if "times" not in kw:
                raise FormatError("times is missing")
            T = np.shape(kw["times"])[0] if np.ndim(kw["times"]) == 1 else None
            point_counts = None
            for name in _LIST_FIELDS:
                counts = _ragged_counts(arrays, name, T)
                if counts is None:
                    continue
                if name == "partial_points":
                    point_counts = counts
                elif point_counts is not None and not np.array_equal(counts, point_counts):
                    raise FormatError(f"{name}__counts: the counts {_head(counts)} differ from "
                                      f"partial_points__counts {_head(point_counts)} (one entry per point)")
                kw[name] = np.split(arrays[f"{name}__data"], np.cumsum(counts)[:-1])
            return cls(flow_ref=header.get("flow_ref", 0), object_names=header.get("object_names"),
                       meta=header.get("meta", {}), **kw)
        except FormatError as e:
            raise FormatError(f"{path}: {e}") from e

    # ------------------------------------------------------------- utilities
    def frames(self, idx) -> "Sequence4D":
        """A new sequence holding the frames `idx` (list, slice or array of indices)."""
        idx = np.arange(self.num_frames)[idx]
        if idx.size == 0:
            raise ValueError("frames: empty selection")
        kw: dict[str, Any] = {}
        for name, (_, pattern) in _ARRAY_FIELDS.items():
            a = getattr(self, name)
            kw[name] = None if a is None else (a[idx] if pattern[0] == "T" else a)
        for name in _LIST_FIELDS:
            frames = getattr(self, name)
            kw[name] = None if frames is None else [frames[i] for i in idx]
        flow_ref = self.flow_ref
        if self.scene_flow is not None:
            if self.flow_ref in idx:
                flow_ref = int(np.nonzero(idx == self.flow_ref)[0][0])
            else:  # the reference frame was dropped: the flow no longer has an anchor
                for n in ("flow_points", "flow_pixels", "scene_flow", "flow_valid"):
                    kw[n] = None
                flow_ref = 0
        return Sequence4D(flow_ref=flow_ref, object_names=self.object_names,
                          meta=dict(self.meta), **kw)

    def visibility_regions(self) -> dict[str, np.ndarray] | None:
        """(T, N) bool masks 'visible', 'hidden_seen_elsewhere', 'never_seen' (or None)."""
        if self.surface_visible is None:
            return None
        vis = self.surface_visible
        ever = vis.any(0, keepdims=True)
        return {"visible": vis, "hidden_seen_elsewhere": ~vis & ever,
                "never_seen": np.broadcast_to(~ever, vis.shape).copy()}


def read_sequence(source) -> Sequence4D:
    """A Sequence4D from an object, an .npz file, or a folder holding exactly one .npz."""
    if isinstance(source, Sequence4D):
        return source
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    if path.is_dir():
        npz = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".npz")
        if len(npz) != 1:
            raise FormatError(f"{path} holds {len(npz)} .npz files; give the Sequence4D file itself, or a "
                              "folder with exactly one")
        path = npz[0]
    return Sequence4D.load(path)


def _read_header(raw: np.ndarray) -> dict:
    """The JSON header of a saved sequence, with the type of every entry checked."""
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise FormatError(f"__header__: expected the JSON header as uint8 bytes, got {raw.dtype} {raw.shape}")
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise FormatError(f"__header__: not valid UTF-8 JSON ({e})") from e
    if not isinstance(header, dict):
        raise FormatError(f"__header__: expected a JSON object, got {type(header).__name__}")
    if header.get("format") != "fourdlib.Sequence4D":
        raise FormatError(f"__header__: format is {header.get('format')!r}, not a Sequence4D")
    if "version" not in header:
        raise FormatError("__header__: version is missing")
    for key in ("version", "flow_ref"):
        v = header.get(key, 0)
        if not isinstance(v, int) or isinstance(v, bool):
            raise FormatError(f"__header__: {key} must be an integer, got {type(v).__name__} {v!r}")
    if header["version"] > FORMAT_VERSION:
        raise FormatError(f"written by a newer fourdlib (format version {header['version']}; this one "
                          f"reads up to {FORMAT_VERSION}): upgrade fourdlib")
    names = header.get("object_names")
    if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise FormatError(f"__header__: object_names must be a list of strings or null, got "
                          f"{type(names).__name__} {str(names)[:60]}")
    if not isinstance(header.get("meta", {}), dict):
        raise FormatError(f"__header__: meta must be a JSON object, got {type(header['meta']).__name__}")
    return header


def _ragged_counts(arrays: dict, name: str, T: int | None) -> np.ndarray | None:
    """The checked per-frame counts of the ragged field `name` (None if it is not stored).

    `name__counts` must be T non-negative integers adding up to the rows of `name__data`:
    np.split would otherwise give the last frame whatever remains, without a word.
    """
    data, counts = arrays.get(f"{name}__data"), arrays.get(f"{name}__counts")
    if data is None and counts is None:
        return None
    if counts is None:
        raise FormatError(f"{name}__data is stored without {name}__counts (the points per frame)")
    if data is None:
        raise FormatError(f"{name}__counts is stored without {name}__data")
    if counts.ndim != 1:
        raise FormatError(f"{name}__counts: expected shape (T,), got {counts.shape}")
    if counts.dtype.kind not in "iu":
        raise FormatError(f"{name}__counts: expected integer counts, got {counts.dtype}")
    if T is not None and len(counts) != T:
        raise FormatError(f"{name}__counts: {len(counts)} counts but times has {T} frames")
    if (counts < 0).any():
        t = int(np.flatnonzero(counts < 0)[0])
        raise FormatError(f"{name}__counts: negative count {int(counts[t])} (frame {t})")
    if data.ndim == 0:
        raise FormatError(f"{name}__data: expected one row per point, got a scalar")
    rows = data.shape[0]
    if int(counts.sum()) != rows:
        raise FormatError(f"{name}__counts: the counts add up to {int(counts.sum())} but {name}__data "
                          f"holds {rows} rows; the file is damaged or was not written by Sequence4D.save")
    return counts.astype(np.int64)


def _head(a: np.ndarray, n: int = 6) -> str:
    items = ", ".join(str(int(x)) for x in a[:n])
    return f"[{items}{', ...' if len(a) > n else ''}]"


def _fmt(pattern) -> str:
    return "(" + ", ".join(str(p) for p in pattern) + ")"


def _check_kind(name, a, kind):
    ok = {"f": "fiu", "i": "iu", "u": "u", "b": "b"}[kind]
    if a.dtype.kind not in ok:
        raise FormatError(f"{name}: dtype {a.dtype} is not allowed here (expected "
                          f"{ {'f': 'floating point', 'i': 'integer', 'u': 'uint8', 'b': 'bool'}[kind]})")
    if kind == "u" and a.dtype != np.uint8:
        raise FormatError(f"{name}: expected uint8 colours in 0..255, got {a.dtype}")


def _check_rigid(name, P):
    if not np.isfinite(P).all():
        raise FormatError(f"{name}: NaN or inf in poses")
    bottom = P[..., 3, :]
    if np.abs(bottom - np.array([0, 0, 0, 1], np.float32)).max() > 1e-6:
        raise FormatError(f"{name}: last row of each 4x4 pose must be [0, 0, 0, 1]")
    R = P[..., :3, :3].astype(np.float64)
    err = np.abs(np.swapaxes(R, -1, -2) @ R - np.eye(3)).max()
    if err > ROT_TOL:
        raise FormatError(f"{name}: rotation part is not orthonormal (max |R^T R - I| = {err:.3g}); "
                          f"poses must be rigid with no scale")
    if (np.linalg.det(R) < 0).any():
        raise FormatError(f"{name}: rotation has determinant -1 (a reflection)")
    if np.abs(P[..., :3, 3]).max() > 1e4:
        raise FormatError(f"{name}: translation above 10 km; are poses in millimetres? (metres expected)")
