"""Primitive parts (ellipsoid, capsule, box, cylinder, cone, torus) and random compositions.

A `Part` is a triangle mesh from `trimesh.creation` together with the analytic shape it
approximates. The analytic "level" function (< 1 inside, 1 on the surface, > 1 outside)
answers "is this point inside another part?" exactly and fast, which the generator uses
twice:
- GT surface samples are drawn only from faces that are NOT inside another part (faces
  buried where two parts overlap are never seen and are not part of the outer surface);
- creature skin weights decay with each bone's level (see `creatures.py`).

`make_primitive_sequence` films one random composition of 2-5 primitives, unique per
seed, moving rigidly and twisting slightly: a shape family with no category prior, which
a model can only complete from what the other frames saw.
"""
from __future__ import annotations

import colorsys
import functools
from dataclasses import dataclass

import numpy as np
import trimesh
from scipy.spatial.transform import Rotation

from ..capture import capture
from ..sequence import Sequence4D
from .camera import CameraSpec, camera_path

KINDS = ("ellipsoid", "capsule", "box", "cylinder", "cone", "torus")
INSIDE_MARGIN = 0.05  # a face with a corner at level < 1 - margin in another part is buried
LICENCE = "synthetic (fourdlib)"


@dataclass
class Part:
    """One primitive in object coordinates.

    kind  one of KINDS; size holds its parameters in metres:
          ellipsoid (a, b, c) semi-axes | capsule (half_length, radius) along local z |
          box (hx, hy, hz) half extents | cylinder (radius, half_height) along z |
          cone (radius, height), base at local z = -height/2, apex at +height/2 |
          torus (major_radius, minor_radius) around z.
    pose  (4, 4) part-to-object rigid transform.
    color (3,) uint8 albedo.
    vertices (n, 3), faces (m, 3): the mesh, already in object coordinates.
    """

    kind: str
    size: np.ndarray
    pose: np.ndarray
    color: np.ndarray
    vertices: np.ndarray
    faces: np.ndarray

    def level(self, points) -> np.ndarray:
        """Analytic level of object-space points (N, 3): < 1 inside, 1 on the surface, > 1 outside."""
        p = (np.asarray(points, np.float64) - self.pose[:3, 3]) @ self.pose[:3, :3]   # to part frame
        x, y, z = p[:, 0], p[:, 1], p[:, 2]
        s = self.size
        if self.kind == "ellipsoid":
            return np.sqrt((x / s[0]) ** 2 + (y / s[1]) ** 2 + (z / s[2]) ** 2)
        if self.kind == "capsule":                                   # distance to the axis segment / r
            zc = np.clip(z, -s[0], s[0])
            return np.sqrt(x ** 2 + y ** 2 + (z - zc) ** 2) / s[1]
        if self.kind == "box":
            return np.max(np.abs(p) / s, axis=1)
        if self.kind == "cylinder":
            return np.maximum(np.hypot(x, y) / s[0], np.abs(z) / s[1])
        if self.kind == "cone":                                      # inside: rho/r + z'/h <= 1, z' >= 0
            zb = z + s[1] / 2                                        # height above the base
            return np.maximum(np.hypot(x, y) / s[0] + zb / s[1], 1 - zb / s[1])
        if self.kind == "torus":
            return np.hypot(np.hypot(x, y) - s[0], z) / s[1]
        raise ValueError(f"Part.level: unknown kind {self.kind!r}")


def make_part(kind: str, size, pose=None, color=(180, 180, 180), detail: int = 0) -> Part:
    """Build a `Part` of `kind` (see `Part`) with its mesh placed by `pose` (4, 4).

    `detail` 0 (coarse: 320 faces for an ellipsoid, 144 for a capsule) or 1 (fine: 1280, 256).
    """
    if kind not in KINDS:
        raise ValueError(f"make_part: kind must be one of {KINDS}, got {kind!r}")
    size = np.asarray(size, np.float64)
    want = 3 if kind in ("ellipsoid", "box") else 2
    if size.shape != (want,) or not (size > 0).all():
        raise ValueError(f"make_part: {kind} needs {want} positive sizes in metres, got {size.tolist()}")
    pose = np.eye(4) if pose is None else np.asarray(pose, np.float64)
    if detail not in (0, 1):
        raise ValueError(f"make_part: detail must be 0 or 1, got {detail}")
    sec = (12, 16)[detail]
    c = trimesh.creation
    if kind == "ellipsoid":
        m = _unit_sphere(detail + 2)
        v = m.vertices * size
    elif kind in ("capsule", "cylinder", "cone"):                   # revolved profiles (r, z)
        r, h = (size[1], size[0]) if kind == "capsule" else (size[0], size[1] / (2 if kind == "cone" else 1))
        if kind == "capsule":
            arc = np.linspace(-np.pi / 2, 0, sec // 3 + 1)
            cap = np.stack([r * np.cos(arc), r * np.sin(arc) - h], 1)        # pole -> equator
            profile = np.concatenate([cap, _split([r, -h], [r, h], r)[1:-1], cap[::-1] * [1, -1]])
        elif kind == "cylinder":
            profile = np.concatenate([[[0, -h]], _split([r, -h], [r, h], r), [[0, h]]])
        else:
            profile = np.concatenate([[[0, -h]], _split([r, -h], [0, h], r)])
        m = c.revolve(profile, sections=sec)
        v = m.vertices
    elif kind == "box":
        m = c.box(extents=2 * size)
        for _ in range(detail + 1):                                  # split faces: boxes can bend
            m = m.subdivide()
        v = m.vertices
    else:  # torus
        m = c.torus(size[0], size[1], major_sections=2 * sec, minor_sections=sec // 2)
        v = m.vertices
    v = v @ pose[:3, :3].T + pose[:3, 3]
    return Part(kind, size, pose, np.asarray(color, np.uint8), v, np.asarray(m.faces, np.int64))


def _split(a, b, step: float):
    """Points from a to b (profile coordinates) at most 1.5 * step apart (at most 6 pieces):
    no face of a revolved part spans its whole length, since such a face would reach deep
    into a neighbouring part (see merge_parts) and bend badly when skinned or twisted."""
    n = int(np.clip(np.ceil(np.linalg.norm(np.subtract(b, a)) / (1.5 * step)), 1, 6))
    return np.linspace(a, b, n + 1)


@functools.lru_cache(maxsize=4)
def _unit_sphere(subdivisions: int) -> trimesh.Trimesh:
    """Cached: trimesh builds icospheres slowly, and every creature needs a dozen."""
    return trimesh.creation.icosphere(subdivisions=subdivisions)


def merge_parts(parts: list[Part]):
    """Concatenate parts into one mesh.

    Returns vertices (Nv, 3), faces (F, 3), face_part (F,), face_colors (F, 3) uint8 and
    sample_weight (F,) float: 0 for faces buried inside another part, 1 otherwise. Pass
    sample_weight to `capture` so that GT surface samples lie on the outer surface only.
    A face counts as buried when its centroid is inside another part's analytic shape
    (level < 1), or one of its corners is clearly inside (level < 1 - INSIDE_MARGIN): faces
    straddling the seam where two parts meet are dropped too, so the GT samples keep off
    the hidden inside, at the price of a thin unsampled band along the seams.
    """
    if not parts:
        raise ValueError("merge_parts: no parts")
    offsets = np.cumsum([0] + [len(p.vertices) for p in parts])
    vertices = np.concatenate([p.vertices for p in parts])
    faces = np.concatenate([p.faces + o for p, o in zip(parts, offsets)])
    face_part = np.concatenate([np.full(len(p.faces), i) for i, p in enumerate(parts)])
    face_colors = np.concatenate([np.broadcast_to(p.color, (len(p.faces), 3)) for p in parts])
    centroids = vertices[faces].mean(1)                                  # (F, 3)
    buried = np.zeros(len(faces), bool)
    for i, p in enumerate(parts):
        corner = p.level(vertices)[faces].min(1)                         # (F,) deepest corner
        buried |= (face_part != i) & ((p.level(centroids) < 1) | (corner < 1 - INSIDE_MARGIN))
    return vertices, faces, face_part, face_colors.astype(np.uint8), (~buried).astype(np.float64)


def random_color(rng: np.random.Generator, saturation=(0.35, 0.85), value=(0.45, 0.95)) -> np.ndarray:
    """A random saturated colour (3,) uint8."""
    rgb = colorsys.hsv_to_rgb(rng.random(), rng.uniform(*saturation), rng.uniform(*value))
    return (np.array(rgb) * 255).astype(np.uint8)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random rotation matrix (3, 3)."""
    return Rotation.random(random_state=rng).as_matrix()


def rigid(R=None, t=None) -> np.ndarray:
    """4x4 rigid transform from rotation R (3, 3) and translation t (3,)."""
    T = np.eye(4)
    if R is not None:
        T[:3, :3] = R
    if t is not None:
        T[:3, 3] = t
    return T


def random_primitive(rng: np.random.Generator, scale: float = 0.25, kinds=KINDS, pose=None,
                     color=None, detail: int = 0) -> Part:
    """One primitive of random kind and proportions, about `scale` metres in radius."""
    kind = kinds[rng.integers(len(kinds))]
    r = scale * rng.uniform(0.5, 1.0, 3)
    size = {"ellipsoid": r, "box": r * 0.8, "capsule": [r[0], r[1] * 0.6], "cylinder": [r[0] * 0.7, r[1]],
            "cone": [r[0] * 0.8, 2 * r[1]], "torus": [r[0], r[0] * rng.uniform(0.2, 0.45)]}[kind]
    return make_part(kind, size, pose, random_color(rng) if color is None else color, detail)


def random_composition(rng: np.random.Generator, num_parts=(2, 5), scale: float = 0.25,
                       detail: int = 0) -> list[Part]:
    """2-5 random primitives, randomly rotated, each centred on a surface point of an
    earlier one so that the composition is one connected object; centred at the origin."""
    n = int(rng.integers(num_parts[0], num_parts[1] + 1))
    parts = [random_primitive(rng, scale, pose=rigid(random_rotation(rng)), detail=detail)]
    for _ in range(n - 1):
        host = parts[rng.integers(len(parts))]
        anchor = host.vertices[rng.integers(len(host.vertices))]     # a point on an earlier part
        s = scale * rng.uniform(0.5, 0.9)
        parts.append(random_primitive(rng, s, pose=rigid(random_rotation(rng), anchor), detail=detail))
    centre = 0.5 * (np.min([p.vertices.min(0) for p in parts], 0) + np.max([p.vertices.max(0) for p in parts], 0))
    return [_translate(p, -centre) for p in parts]


def _translate(p: Part, d) -> Part:
    pose = p.pose.copy()
    pose[:3, 3] += d
    return Part(p.kind, p.size, pose, p.color, p.vertices + d, p.faces)


def smoothstep(u):
    """0 -> 1 with zero slope at both ends (u clipped to [0, 1])."""
    u = np.clip(u, 0, 1)
    return u * u * (3 - 2 * u)


def twist(vertices, angle):
    """Twist object-space vertices (Nv, 3) about the z axis, a smooth non-rigid deformation.

    angle (T,) radians: in frame t a vertex turns by angle[t] * (z - z_min) / height -
    angle[t] / 2, so the bottom and top turn by -angle/2 and +angle/2. Returns (T, Nv, 3).
    """
    z = vertices[:, 2]
    h = max(np.ptp(z), 1e-6)
    a = np.asarray(angle)[:, None] * (z - z.min())[None] / h - np.asarray(angle)[:, None] / 2  # (T, Nv)
    c, s = np.cos(a), np.sin(a)
    x, y = vertices[:, 0], vertices[:, 1]
    return np.stack([c * x - s * y, s * x + c * y, np.broadcast_to(z, a.shape)], -1)


def rigid_motion(rng: np.random.Generator, times, max_angle: float = np.pi, max_shift: float = 0.3):
    """A smooth rigid motion (T, 4, 4): rotation about a random axis by up to `max_angle`
    and a translation up to `max_shift` metres over the sequence, identity at t = 0."""
    u = smoothstep((times - times[0]) / max(times[-1] - times[0], 1e-9))
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = rng.uniform(0.3, 1.0) * max_angle * rng.choice([-1, 1])
    shift = rng.normal(size=3)
    shift *= rng.uniform(0.2, 1.0) * max_shift / np.linalg.norm(shift)
    R = Rotation.from_rotvec((u * angle)[:, None] * axis).as_matrix()   # (T, 3, 3)
    M = np.tile(np.eye(4), (len(times), 1, 1))
    M[:, :3, :3] = R
    M[:, :3, 3] = u[:, None] * shift
    return M


def apply_poses(poses, vertices):
    """Vertices (Nv, 3) or (T, Nv, 3) moved by poses (T, 4, 4) -> (T, Nv, 3)."""
    return np.einsum("tij,tvj->tvi", poses[:, :3, :3], np.broadcast_to(vertices, (len(poses),) + vertices.shape[-2:])) \
        + poses[:, None, :3, 3]


def make_primitive_sequence(seed: int, *, num_frames: int = 16, duration: float = 2.0,
                            image_size=(128, 128), n_surface: int = 4096, num_parts=(2, 5),
                            scale: float = 0.3, deform: float = 0.5, motion: float = 1.0,
                            camera: CameraSpec | dict | None = None, depth_noise: float = 0.0,
                            meta: dict | None = None) -> Sequence4D:
    """A random composition of 2-5 primitives (one object, unique per seed), moving rigidly
    and twisting by up to `deform` radians, filmed by one orbiting depth camera.

    motion scales the rigid motion (rotation up to motion * 180 degrees, shift up to
    motion * 0.3 m); motion=0 and deform=0 give a static object that only the camera
    circles, where every frame's hidden side is exactly what another frame saw.
    camera: a CameraSpec or its fields as a dict (what a data set's maker_options can hold,
    e.g. {"path": "mixed"}). Deterministic for `seed`. Sizes in metres: each primitive is about `scale` m in radius.
    """
    if not motion >= 0 or not deform >= 0:
        raise ValueError(f"motion and deform must be >= 0, got motion={motion}, deform={deform}")
    _check_common(num_frames, image_size, n_surface, duration)
    ss = np.random.SeedSequence(seed)
    rng_shape, rng_motion, rng_cam, rng_cap = (np.random.default_rng(s) for s in ss.spawn(4))
    camera = CameraSpec(**camera) if isinstance(camera, dict) else camera or CameraSpec()
    times = np.arange(num_frames) * duration / num_frames
    parts = random_composition(rng_shape, num_parts, scale)
    verts, faces, _, colors, weight = merge_parts(parts)
    poses = rigid_motion(rng_motion, times, np.pi * motion, 0.3 * motion)   # (T, 4, 4)
    tw = rng_motion.uniform(-1, 1) * deform * smoothstep(times / max(times[-1], 1e-9))
    V = apply_poses(poses, twist(verts, tw))                         # (T, Nv, 3)
    K, c2w = camera_path(V, camera, image_size, rng_cam)            # follows and frames the object
    info = dict(kind="primitives", name=f"primitives_{seed}", seed=int(seed),
                num_parts=len(parts), part_kinds=[p.kind for p in parts], twist=float(tw[-1]),
                generator=dict(num_frames=num_frames, duration=duration, image_size=list(image_size),
                               n_surface=n_surface, scale=scale, deform=deform, motion=motion, camera=camera.to_dict(),
                               depth_noise=depth_noise),
                source="fourdlib.data.synthetic", licence=LICENCE)
    info.update(meta or {})
    return capture(V, faces, K, c2w, image_size, times=times, face_colors=colors,
                   object_names=["composition"], object_poses=poses[:, None].astype(np.float32),
                   object_dynamic=np.ones(1, bool), object_background=np.zeros(1, bool),
                   n_surface=n_surface, surface_face_weight=weight, depth_noise=depth_noise,
                   seed=int(rng_cap.integers(2 ** 31)), meta=info)


def _check_common(num_frames, image_size, n_surface, duration):
    if int(num_frames) < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if len(image_size) != 2 or min(image_size) < 8:
        raise ValueError(f"image_size must be (H, W) with both >= 8 pixels, got {image_size}")
    if int(n_surface) < 1:
        raise ValueError(f"n_surface must be >= 1, got {n_surface}")
    if not duration > 0:
        raise ValueError(f"duration must be > 0 seconds, got {duration}")
