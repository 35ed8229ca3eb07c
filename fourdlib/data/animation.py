"""An animated triangle mesh from a file (glTF, DeformingThings4D `.anime`), and filming it
into a `Sequence4D` with the synthetic generator's moving depth camera
(`fourdlib.data.synthetic.camera`) and `fourdlib.data.capture`, so that real animations and
synthetic creatures give partial clouds made the same way.

Files come in their own units and axes; `AnimatedMesh` is always in fourdlib's world
(metres, +z up), and records the scale it applied in `meta["scale"]`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .capture import capture
from .sequence import FormatError, Sequence4D

# Rotation taking a +Y-up asset (glTF, most DCC exports) to fourdlib's +Z-up world:
# +90 degrees about x, (x, y, z) -> (x, -z, y).
Y_UP_TO_Z_UP = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], np.float64)


@dataclass
class AnimatedMesh:
    """T frames of one fixed-topology mesh.

    times          (T,) seconds, strictly increasing.
    vertices       (T, Nv, 3) world positions, metres, +z up.
    faces          (F, 3) int triangles.
    face_colors    (F, 3) uint8 albedo, or None (capture renders grey).
    meta           source, licence, applied scale, ...
    """

    times: np.ndarray
    vertices: np.ndarray
    faces: np.ndarray
    face_colors: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.times = np.asarray(self.times, np.float64)
        self.vertices = np.asarray(self.vertices, np.float64)
        self.faces = np.asarray(self.faces, np.int64)
        if self.vertices.ndim != 3 or self.vertices.shape[-1] != 3:
            raise FormatError(f"vertices: expected (T, Nv, 3), got {self.vertices.shape}")
        if len(self.times) != len(self.vertices):
            raise FormatError(f"times has {len(self.times)} frames, vertices {len(self.vertices)}")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3 or len(self.faces) == 0:
            raise FormatError(f"faces: expected (F, 3) with F >= 1, got {self.faces.shape}")
        if self.faces.min() < 0 or self.faces.max() >= self.vertices.shape[1]:
            raise FormatError(f"faces: indices outside [0, {self.vertices.shape[1]})")
        if not np.isfinite(self.vertices).all():
            raise FormatError("vertices: NaN or inf in the animated mesh")
        if np.any(np.diff(self.times) <= 0):
            raise FormatError("times: must be strictly increasing")


def resolve_scale(vertices, scale, fit_size: float = 1.0) -> tuple[float, str]:
    """The factor to apply to `vertices` (T, Nv, 3) given in file units.

    scale = a number: use it (1.0 when the file is in metres, 0.01 for centimetres).
    scale = "fit":    make the first frame's bounding-box diagonal `fit_size` metres.
    scale = "auto":   1.0 when the first frame's diagonal is a plausible size in metres
                      (5 cm to 50 m), else "fit" (e.g. the Fox glTF, about 183 units).
    Returns (factor, how it was chosen).
    """
    diag = float(np.linalg.norm(np.ptp(np.asarray(vertices[0]), axis=0)))
    if not diag > 0:
        raise FormatError("mesh has zero extent in its first frame")
    if isinstance(scale, str):
        if scale == "auto":
            if 0.05 <= diag <= 50:
                return 1.0, f"auto: file units taken as metres (diagonal {diag:.3g})"
            scale = "fit"
        if scale == "fit":
            return fit_size / diag, f"fit: first-frame bounding-box diagonal {diag:.4g} -> {fit_size} m"
        raise ValueError(f"scale must be a number, 'auto' or 'fit', got {scale!r}")
    scale = float(scale)
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    return scale, "given"


def film(anim: AnimatedMesh, image_size=(64, 64), *, camera=None, views: int = 1,
         n_surface: int = 2048, depth_noise: float = 0.0, seed: int = 0,
         meta: dict | None = None) -> Sequence4D:
    """Film `anim` with the synthetic generator's moving depth camera into a `Sequence4D`.

    camera  a `fourdlib.data.synthetic.CameraSpec` (default: the generator's default: a
            full circle around the object, elevation swinging between -20 and 50 degrees,
            zoomed so the object fills 90 % of the image), so real animations give partial
            clouds exactly like synthetic ones. `views` > 1 adds cameras with independent
            random trajectories (view v draws from seed (seed, v)).
    """
    from .synthetic.camera import CameraSpec, camera_path

    if views < 1:
        raise ValueError(f"views must be >= 1, got {views}")
    spec = CameraSpec() if camera is None else camera
    K, c2w = zip(*[camera_path(anim.vertices, spec, image_size, np.random.default_rng([seed, v]))
                   for v in range(views)])
    m = dict(anim.meta)
    m.update(meta or {})
    m.update(camera=spec.to_dict(), views=views, image_size=list(image_size), depth_noise=depth_noise,
             seed=seed)
    return capture(anim.vertices, anim.faces, np.stack(K), np.concatenate(c2w, 1), image_size,
                   times=anim.times, face_colors=anim.face_colors,
                   object_names=[str(m.get("object", "object"))], n_surface=n_surface,
                   depth_noise=depth_noise, seed=seed, meta=m)
