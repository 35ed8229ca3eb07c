"""The single moving depth camera of every synthetic sequence.

The papers' partial-observation setting: one depth camera whose viewpoint moves over the
sequence, so a single frame misses whole parts (its back side, self-occlusion) while the
union over frames covers most of the surface. By default (`path="circle"`) the camera
circles the target by `azimuth_span` radians (a full circle) and its elevation swings once
between `elevation_deg[0]` and `elevation_deg[1]`, so the underside and the top are each seen
in some frames. Real captures are rarely one smooth circle: `path="arc"` sweeps out and back
over half the span (the far side is never seen), `path="wander"` orbits at a varying speed
that can stop and reverse, its elevation swinging irregularly, and `path="mixed"` draws one
of the three per sequence from the seed. It looks at the object's centre in every frame and, unless a distance is
fixed, stands just far enough for the object to fill `fill` of the image (zoom to fit),
which keeps thin creatures at a few thousand depth points per frame. With these defaults
about 55-60 % of the GT surface of a creature or primitive composition is "hidden in this
frame but seen in another" (benchmarks/bench_generator.py prints the figures).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ...geometry.cameras import intrinsics_from_fov, look_at


PATHS = ("circle", "arc", "wander")


@dataclass
class CameraSpec:
    """Trajectory of the one moving camera (azimuth in radians, the other angles in degrees).

    azimuth_span   how far the camera travels around the target over the sequence
                   (2*pi: a full circle; frame t is at azimuth_start + span * t / T).
    elevation_deg  (low, high): the elevation swings once between them over the sequence,
                   from a random phase. Negative = looking up from below.
    fov_deg        vertical field of view.
    fill           when `distance` is None, each frame's distance is fitted so that the
                   object's projection just spans this fraction of the image (0.9: a 5 %
                   margin on each side), i.e. the camera zooms to fit the object.
    distance       fixed camera-to-target distance in metres, or None (fitted per frame).
    random_start   draw the starting azimuth, the direction of travel and the elevation
                   phase from the seed (else: azimuth 0, counter-clockwise, lowest first).
    path           "circle" | "arc" | "wander" | "mixed" (see the module docstring).
    """

    azimuth_span: float = 2 * np.pi
    elevation_deg: tuple[float, float] = (-20.0, 50.0)
    fov_deg: float = 50.0
    fill: float = 0.9
    distance: float | None = None
    random_start: bool = True
    path: str = "circle"

    def __post_init__(self):
        if self.path not in PATHS + ("mixed",):
            raise ValueError(f"CameraSpec: path must be one of {PATHS + ('mixed',)}, got {self.path!r}")
        lo, hi = self.elevation_deg
        if not -89 <= lo <= hi <= 89:
            raise ValueError(f"CameraSpec: elevation_deg must be (low, high) within [-89, 89] degrees, "
                             f"got {self.elevation_deg}")
        if not 1 < self.fov_deg < 170:
            raise ValueError(f"CameraSpec: fov_deg must be in (1, 170) degrees, got {self.fov_deg}")
        if not 0 < self.fill <= 1:
            raise ValueError(f"CameraSpec: fill must be in (0, 1], got {self.fill}")
        if self.distance is not None and not self.distance > 0:
            raise ValueError(f"CameraSpec: distance must be positive metres or None, got {self.distance}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["elevation_deg"] = list(d["elevation_deg"])
        return d


def camera_path(vertices, spec: CameraSpec, image_size, rng: np.random.Generator, target=None):
    """Intrinsics K (3, 3) and poses cam_to_world (T, 1, 4, 4) of the one moving camera.

    vertices (T, Nv, 3): what the camera must frame (the object, or a scene's foreground).
    target (3,) or (T, 3): the point looked at; default each frame's bounding-box centre,
    so the camera follows a moving object.
    """
    vertices = np.asarray(vertices, np.float64)
    T = len(vertices)
    H, W = image_size
    if target is None:
        target = 0.5 * (vertices.min(1) + vertices.max(1))
    target = np.broadcast_to(np.asarray(target, np.float64), (T, 3))
    start = rng.uniform(0, 2 * np.pi) if spec.random_start else 0.0
    sign = rng.choice([-1.0, 1.0]) if spec.random_start else 1.0
    phase = rng.uniform(0, 2 * np.pi) if spec.random_start else -np.pi / 2
    u = np.arange(T) / T                                             # no repeated view on a full circle
    lo, hi = np.deg2rad(spec.elevation_deg)
    path = spec.path if spec.path != "mixed" else PATHS[int(rng.integers(len(PATHS)))]
    if path == "circle":
        az = start + sign * spec.azimuth_span * u
        el = 0.5 * (lo + hi) + 0.5 * (hi - lo) * np.sin(2 * np.pi * u + phase)
    elif path == "arc":                                              # out over half the span and back
        az = start + sign * 0.5 * spec.azimuth_span * np.sin(np.pi * u) ** 2
        el = 0.5 * (lo + hi) + 0.5 * (hi - lo) * np.sin(2 * np.pi * u + phase)
    else:  # wander: speed 1 + a sin(.) with a > 1 stops and turns back for a while
        a, k, phase2 = rng.uniform(1.0, 1.6), rng.integers(1, 4), rng.uniform(0, 2 * np.pi)
        az = start + sign * spec.azimuth_span * (u - a * (np.cos(2 * np.pi * k * u + phase2) - np.cos(phase2))
                                                 / (2 * np.pi * k))
        k2 = rng.integers(2, 4)                                      # elevation swings 2-3 times, unevenly
        swing = 0.6 * np.sin(2 * np.pi * u + phase) + 0.4 * np.sin(2 * np.pi * k2 * u + phase2)
        el = 0.5 * (lo + hi) + 0.5 * (hi - lo) * swing
    back = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], 1)   # target -> eye
    c2w = look_at(target + back, target).astype(np.float64)         # (T, 4, 4), unit distance for now
    K = intrinsics_from_fov(spec.fov_deg, H, W)
    if spec.distance is not None:
        dist = np.full(T, float(spec.distance))
    else:  # smallest distance at which every vertex projects inside `fill` of the image
        rel = np.einsum("tvi,tij->tvj", vertices - target[:, None], c2w[:, :3, :3])   # camera axes
        tan_x = spec.fill * (W / 2) / K[0, 0]
        tan_y = spec.fill * (H / 2) / K[1, 1]
        need = np.maximum(np.abs(rel[..., 0]) / tan_x, np.abs(rel[..., 1]) / tan_y) - rel[..., 2]
        dist = need.max(1)                                           # (T,)
    c2w[:, :3, 3] = target + back * dist[:, None]
    return K, c2w[:, None].astype(np.float32)
