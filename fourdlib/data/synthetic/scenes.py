"""Scene-level sequences like Kubric MOVi: a floor and several objects, some static, some
sliding, spinning or tossed through the air (and optionally a walking creature), coloured
surfaces, one moving depth camera.

The floor is object 0 and is flagged `object_background` (the "BG" of DynaTok's FG vs
FG+BG evaluation). Objects never interpenetrate: their floor footprints (a circle per
frame) are kept apart at every frame. Each object has a rigid pose per frame
(`object_poses`; for a creature, its root) and a static / dynamic flag.

The scene helpers here (`SceneObject`, `floor_object`, `place`, `film_scene`) are shared
with the compositional (COM4D-style) generator.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.spatial.transform import Rotation

from ..capture import capture
from ..sequence import Sequence4D
from .camera import CameraSpec, camera_path
from .creatures import BODY_PLANS, animate, make_creature
from .primitives import (LICENCE, Part, _check_common, apply_poses, merge_parts, random_color,
                         random_composition, random_rotation, smoothstep)

SCENE_CAMERA = CameraSpec(azimuth_span=np.pi, elevation_deg=(20.0, 50.0))  # MOVi-like: above the floor
SCENE_CREATURE_MOTIONS = ("walk", "turn", "wag", "look", "jump")


@dataclass
class SceneObject:
    """One object of a scene, already animated.

    vertices (T, Nv, 3) world positions per frame; faces (F, 3); colors (F, 3) uint8;
    weight (F,) GT sampling density per face (0: buried); poses (T, 4, 4) object-to-world.
    """

    name: str
    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray
    weight: np.ndarray
    poses: np.ndarray
    dynamic: bool
    background: bool = False

    def footprint(self):
        """Per-frame circle on the floor covering the object: centres (T, 2), radii (T,)."""
        xy = self.vertices[..., :2]
        c = 0.5 * (xy.min(1) + xy.max(1))
        return c, np.linalg.norm(xy - c[:, None], axis=-1).max(1)

    def moved(self, M) -> "SceneObject":
        """The object carried by a rigid transform M (4, 4) of the whole scene."""
        M = np.asarray(M, np.float64)
        return replace(self, vertices=self.vertices @ M[:3, :3].T + M[:3, 3], poses=M @ self.poses)


def floor_object(num_frames: int, size: float, rng: np.random.Generator, cells: int = 12,
                 density: float = 0.25) -> SceneObject:
    """A square floor at z = 0 (a checkerboard of `cells` x `cells` squares), the background.

    `density` scales its GT sampling density relative to the objects (a large floor would
    otherwise take most of the GT samples); it is recorded in the sequence meta.
    """
    g = np.linspace(-size / 2, size / 2, cells + 1)
    x, y = np.meshgrid(g, g, indexing="ij")
    v = np.stack([x.ravel(), y.ravel(), np.zeros(x.size)], 1)
    i, j = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
    a = (i * (cells + 1) + j).ravel()                                # corner (i, j) of each cell
    b, c, d = a + cells + 1, a + cells + 2, a + 1                    # (i+1, j), (i+1, j+1), (i, j+1)
    faces = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])   # counter-clockwise from +z
    base = random_color(rng, saturation=(0.0, 0.25), value=(0.55, 0.85)).astype(np.float64)
    checker = np.tile(((i + j) % 2).ravel(), 2)
    colors = np.where(checker[:, None] == 1, base * 0.8, base).astype(np.uint8)
    poses = np.tile(np.eye(4), (num_frames, 1, 1))
    return SceneObject("floor", np.broadcast_to(v, (num_frames,) + v.shape).copy(), faces, colors,
                       np.full(len(faces), float(density)), poses, dynamic=False, background=True)


def rest_on_floor(parts, num_frames: int, name: str) -> SceneObject:
    """A static object made of `parts` (object coords), lifted so that it rests on z = 0."""
    v, f, _, col, w = merge_parts(parts)
    lift = np.array([0, 0, -v[:, 2].min()])
    poses = np.tile(np.eye(4), (num_frames, 1, 1))
    poses[:, :3, 3] = lift
    return SceneObject(name, apply_poses(poses, v), f, col, w, poses, dynamic=False)


def moving_primitive(parts, times, rng: np.random.Generator, name: str) -> SceneObject:
    """An object made of `parts` that either slides along the floor while spinning about z,
    or is tossed: flies on an arc while tumbling, its centre kept above its bounding radius
    so it never enters the floor."""
    v, f, _, col, w = merge_parts(parts)
    T = len(times)
    u = (times - times[0]) / max(times[-1] - times[0], 1e-9)
    poses = np.tile(np.eye(4), (T, 1, 1))
    heading = rng.uniform(0, 2 * np.pi)
    travel = rng.uniform(0.3, 0.9) * smoothstep(u)
    poses[:, 0, 3], poses[:, 1, 3] = travel * np.cos(heading), travel * np.sin(heading)
    if rng.random() < 0.5:                                           # slide + spin about z
        poses[:, :3, :3] = Rotation.from_euler("z", (rng.uniform(-1, 1) * 2 * np.pi * u)[:, None]).as_matrix()
        poses[:, 2, 3] = -v[:, 2].min()
        kind = "slide"
    else:                                                            # toss + tumble
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        poses[:, :3, :3] = Rotation.from_rotvec(np.outer(rng.uniform(1, 3) * u, axis)).as_matrix()
        radius = np.linalg.norm(v, axis=1).max()
        poses[:, 2, 3] = radius + rng.uniform(0.2, 0.5) * 4 * u * (1 - u)
        kind = "toss"
    return SceneObject(f"{name}_{kind}", apply_poses(poses, v), f, col, w, poses, dynamic=True)


def creature_object(times, duration: float, rng: np.random.Generator, size=(0.35, 0.7),
                    motions=SCENE_CREATURE_MOTIONS) -> SceneObject:
    """A random creature (random body plan and individual) doing a random motion on the floor."""
    plan = BODY_PLANS[rng.integers(len(BODY_PLANS))]
    c = make_creature(plan, int(rng.integers(10 ** 6)), size=rng.uniform(*size))
    motion = motions[rng.integers(len(motions))]
    V, root = animate(c, motion, times, duration, int(rng.integers(2 ** 31)))
    return SceneObject(f"{c.name}_{motion}", V, c.faces, c.face_colors, c.sample_weight, root, dynamic=True)


def place(obj: SceneObject, placed: list[SceneObject], rng: np.random.Generator, bound: float,
          gap: float = 0.05, tries: int = 60) -> SceneObject | None:
    """Move `obj` to a random spot and yaw where, at every frame, its footprint stays inside
    the square [-bound, bound]^2 and `gap` metres clear of every placed object's footprint;
    None if no such spot is found in `tries` draws."""
    c0, r0 = obj.footprint()
    others = [o.footprint() for o in placed if not o.background]
    for _ in range(tries):
        M = np.eye(4)
        M[:3, :3] = Rotation.from_euler("z", rng.uniform(0, 2 * np.pi)).as_matrix()
        M[:2, 3] = rng.uniform(-1, 1, 2) * max(bound - r0[0], 0) - M[:2, :2] @ c0[0]
        cand = obj.moved(M)
        c, r = cand.footprint()
        if (np.abs(c) + r[:, None] > bound).any():
            continue
        if all((np.linalg.norm(c - oc, axis=1) > r + orr + gap).all() for oc, orr in others):
            return cand
    return None


def film_scene(objects: list[SceneObject], times, image_size, camera: CameraSpec, n_surface: int,
               rng_cam: np.random.Generator, seed_capture: int, depth_noise: float, meta: dict) -> Sequence4D:
    """Merge the objects into one animated mesh and `capture` it with one moving camera that
    frames the foreground objects (the floor is only partly in view)."""
    offsets = np.cumsum([0] + [o.vertices.shape[1] for o in objects])
    V = np.concatenate([o.vertices for o in objects], 1)            # (T, Nv, 3)
    faces = np.concatenate([o.faces + off for o, off in zip(objects, offsets)])
    inst = np.concatenate([np.full(len(o.faces), k) for k, o in enumerate(objects)])
    colors = np.concatenate([o.colors for o in objects])
    weight = np.concatenate([o.weight for o in objects])
    fg = np.concatenate([o.vertices for o in objects if not o.background], 1)
    target = 0.5 * (fg.reshape(-1, 3).min(0) + fg.reshape(-1, 3).max(0))
    K, c2w = camera_path(fg, camera, image_size, rng_cam, target=target)
    return capture(V, faces, K, c2w, image_size, times=times, face_instance=inst, face_colors=colors,
                   object_names=[o.name for o in objects],
                   object_poses=np.stack([o.poses for o in objects], 1).astype(np.float32),
                   object_dynamic=np.array([o.dynamic for o in objects]),
                   object_background=np.array([o.background for o in objects]),
                   n_surface=n_surface, surface_face_weight=weight, depth_noise=depth_noise,
                   seed=seed_capture, meta=meta)


def make_scene_sequence(seed: int, *, num_objects=(3, 6), dynamic_prob: float = 0.5,
                        creature_prob: float = 0.25, num_frames: int = 16, duration: float = 2.0,
                        image_size=(128, 128), n_surface: int = 8192, floor_size: float = 3.0,
                        floor_density: float = 0.25, camera: CameraSpec | None = None,
                        depth_noise: float = 0.0, object_scale: float = 1.0, meta: dict | None = None) -> Sequence4D:
    """A MOVi-like scene: floor (object 0, background) + 3-6 objects, each dynamic with
    probability `dynamic_prob` (a dynamic one is a walking creature with probability
    `creature_prob`, else a sliding / tossed primitive composition), at least one static
    and one dynamic. Objects are 1-3 random primitives, 0.15-0.5 m, random colours; creatures
    0.35-0.7 m; `object_scale` multiplies both (the same random draws, so 1 keeps the old scenes;
    C4G's course data use 2 on a 2 m floor so that objects cover pixels at 64 x 64).
    The camera (default SCENE_CAMERA: half a circle, elevation 20-50 degrees) frames the
    objects; the floor is sampled for GT at `floor_density` times the objects' density.
    """
    _check_common(num_frames, image_size, n_surface, duration)
    if isinstance(object_scale, bool) or not isinstance(object_scale, (int, float)) or not object_scale > 0:
        raise ValueError(f"make_scene_sequence: object_scale must be a positive number, got {object_scale!r}")
    rng, rng_cam, rng_cap = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    camera = camera or SCENE_CAMERA
    times = np.arange(num_frames) * duration / num_frames
    n = int(rng.integers(num_objects[0], num_objects[1] + 1))
    dynamic = np.sort(rng.random(n) < dynamic_prob)[::-1]           # moving ones first: they need room
    dynamic[0], dynamic[-1] = True, False                            # at least one of each
    objects = [floor_object(num_frames, floor_size, rng, density=floor_density)]
    for k in range(n):
        if dynamic[k] and rng.random() < creature_prob:
            obj = creature_object(times, duration, rng, size=(0.35 * object_scale, 0.7 * object_scale))
        else:
            parts = random_composition(rng, (1, 3), scale=rng.uniform(0.08, 0.2) * object_scale)
            parts = [_rotated(p, random_rotation(rng)) for p in parts] if not dynamic[k] else parts
            obj = moving_primitive(parts, times, rng, f"object{k}") if dynamic[k] else \
                rest_on_floor(parts, num_frames, f"object{k}")
        obj = place(obj, objects, rng, floor_size / 2)
        if obj is not None:                                          # no room left: skip it
            objects.append(obj)
    info = dict(kind="scenes", name=f"scene_{seed}", seed=int(seed), num_objects=len(objects) - 1,
                generator=dict(num_frames=num_frames, duration=duration, image_size=list(image_size),
                               n_surface=n_surface, floor_size=floor_size, floor_density=floor_density,
                               camera=camera.to_dict(), depth_noise=depth_noise, object_scale=object_scale),
                source="fourdlib.data.synthetic", licence=LICENCE)
    info.update(meta or {})
    return film_scene(objects, times, image_size, camera, n_surface, rng_cam,
                      int(rng_cap.integers(2 ** 31)), depth_noise, info)


def _rotated(p, R):
    """Part p turned by R about the object origin (a static object's resting orientation)."""
    pose = p.pose.copy()
    pose[:3, :3] = R @ pose[:3, :3]
    pose[:3, 3] = R @ pose[:3, 3]
    return Part(p.kind, p.size, pose, p.color, p.vertices @ R.T, p.faces)
