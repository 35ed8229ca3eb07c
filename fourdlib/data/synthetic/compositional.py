"""Compositional sequences for COM4D, which learns from two kinds of easy data and is
evaluated on their combination:

- "static"  multi-object layouts, like 3D-FRONT: 3-6 pieces of furniture (tables, chairs,
            shelves, beds, sofas, lamps built from boxes, cylinders and cones) on a floor,
            none touching another, filmed by a moving camera. Every object is static.
- "dynamic" single objects in motion, like DeformingThings: one skinned creature doing one
            motion (see `creatures.py`), no floor.
- "mixed"   both together, for evaluation only: a furniture layout with 1-2 creatures
            moving among the pieces. Its split is always "eval_mixed", never "train".
"""
from __future__ import annotations

import numpy as np

from ..sequence import Sequence4D
from .camera import CameraSpec
from .creatures import make_creature_sequence
from .primitives import LICENCE, _check_common, make_part, random_color, rigid
from .scenes import creature_object, film_scene, floor_object, place, rest_on_floor

MODES = ("static", "dynamic", "mixed")
FURNITURE = ("table", "chair", "shelf", "bed", "sofa", "lamp", "stool")
ROOM_CAMERA = CameraSpec(azimuth_span=2 * np.pi, elevation_deg=(25.0, 60.0))


def _box(center, half, color):
    return make_part("box", half, rigid(t=center), color)


def furniture(kind: str, rng: np.random.Generator) -> list:
    """Parts of one piece of furniture of `kind`, standing on z = 0, centred, metres."""
    wood = random_color(rng, saturation=(0.3, 0.6), value=(0.35, 0.7))
    cloth = random_color(rng)
    if kind in ("table", "stool"):
        w, d = (rng.uniform(0.35, 0.6), rng.uniform(0.25, 0.45)) if kind == "table" else (0.17, 0.17)
        h, t = rng.uniform(0.4, 0.75) if kind == "table" else rng.uniform(0.3, 0.45), 0.025
        parts = [_box([0, 0, h - t], [w, d, t], wood)]
        for sx in (-1, 1):
            for sy in (-1, 1):
                parts.append(_box([sx * (w - 0.03), sy * (d - 0.03), (h - t) / 2], [0.02, 0.02, (h - t) / 2], wood))
        return parts
    if kind == "chair":
        w, h, back = rng.uniform(0.18, 0.25), rng.uniform(0.4, 0.5), rng.uniform(0.3, 0.5)
        parts = [_box([0, 0, h], [w, w, 0.03], cloth),                # legs and back reach into the seat
                 _box([-w + 0.02, 0, h - 0.03 + back / 2], [0.02, w, back / 2], wood)]
        for sx in (-1, 1):
            for sy in (-1, 1):
                parts.append(_box([sx * (w - 0.025), sy * (w - 0.025), h / 2], [0.018, 0.018, h / 2], wood))
        return parts
    if kind == "shelf":
        w, d, h = rng.uniform(0.3, 0.5), rng.uniform(0.12, 0.2), rng.uniform(0.6, 1.2)
        n = int(rng.integers(3, 6))
        parts = [_box([0, sy * (w - 0.015), h / 2], [d, 0.015, h / 2], wood) for sy in (-1, 1)]
        parts += [_box([-d + 0.01, 0, h / 2], [0.01, w, h / 2], wood)]
        parts += [_box([0, 0, (i + 0.5) * h / n], [d, w - 0.03, 0.015], wood) for i in range(n)]
        return parts
    if kind == "bed":
        w, l = rng.uniform(0.4, 0.7), rng.uniform(0.9, 1.1)
        return [_box([0, 0, 0.12], [l, w, 0.12], wood), _box([0, 0, 0.3], [l - 0.03, w - 0.03, 0.07], cloth),
                _box([-l + 0.03, 0, 0.45], [0.03, w, 0.45], wood),
                _box([-l + 0.25, 0, 0.41], [0.13, w * 0.7, 0.05], random_color(rng, value=(0.8, 1.0)))]
    if kind == "sofa":
        w, d = rng.uniform(0.5, 0.9), rng.uniform(0.3, 0.4)
        return [_box([0, 0, 0.2], [d, w, 0.2], cloth), _box([-d + 0.08, 0, 0.55], [0.08, w, 0.18], cloth),
                _box([0, w - 0.07, 0.32], [d, 0.07, 0.12], cloth), _box([0, -w + 0.07, 0.32], [d, 0.07, 0.12], cloth)]
    if kind == "lamp":
        h = rng.uniform(0.8, 1.5)
        r = rng.uniform(0.12, 0.2)
        return [make_part("cylinder", [r * 0.9, 0.02], rigid(t=[0, 0, 0.02]), wood),
                make_part("cylinder", [0.015, h / 2], rigid(t=[0, 0, h / 2]), wood),
                make_part("cone", [r, r * 1.2], rigid(t=[0, 0, h + r * 0.3]), cloth)]
    raise ValueError(f"furniture: kind must be one of {FURNITURE}, got {kind!r}")


def layout(rng: np.random.Generator, num_frames: int, room: float, num_objects=(3, 6), placed=None):
    """Furniture pieces placed on the floor of a `room` x `room` square without touching."""
    placed = list(placed or [])
    n = int(rng.integers(num_objects[0], num_objects[1] + 1))
    out = []
    for k in range(n):
        kind = FURNITURE[rng.integers(len(FURNITURE))]
        obj = place(rest_on_floor(furniture(kind, rng), num_frames, f"{kind}{k}"), placed + out, rng, room / 2)
        if obj is not None:
            out.append(obj)
    return out


def make_compositional_sequence(seed: int, mode: str = "static", *, num_frames: int = 16,
                                duration: float = 2.0, image_size=(160, 160), n_surface: int = 8192,
                                room: float = 4.0, num_objects=(3, 6), num_creatures=(1, 2),
                                floor_density: float = 0.25, camera: CameraSpec | None = None,
                                depth_noise: float = 0.0, meta: dict | None = None) -> Sequence4D:
    """One COM4D-style sequence: mode "static" (furniture layout), "dynamic" (one creature in
    motion, no floor) or "mixed" (both; evaluation only). See the module docstring."""
    if mode not in MODES:
        raise ValueError(f"make_compositional_sequence: mode must be one of {MODES}, got {mode!r}")
    _check_common(num_frames, image_size, n_surface, duration)
    info = dict(kind="compositional", mode=mode, eval_only=mode == "mixed", licence=LICENCE,
                source="fourdlib.data.synthetic")
    info.update(meta or {})
    if mode == "dynamic":
        s = make_creature_sequence(seed, num_frames=num_frames, duration=duration, image_size=image_size,
                                   n_surface=n_surface, camera=camera, depth_noise=depth_noise)
        s.meta.update(info)
        s.meta["name"] = f"compositional_dynamic_{seed}"
        return s
    rng, rng_cam, rng_cap = (np.random.default_rng(x) for x in np.random.SeedSequence(seed).spawn(3))
    camera = camera or ROOM_CAMERA
    times = np.arange(num_frames) * duration / num_frames
    objects = [floor_object(num_frames, room, rng, density=floor_density)]
    if mode == "mixed":                                            # creatures first: their paths need room
        for _ in range(int(rng.integers(num_creatures[0], num_creatures[1] + 1))):
            for _attempt in range(5):
                obj = place(creature_object(times, duration, rng), objects, rng, room / 2)
                if obj is not None:
                    objects.append(obj)
                    break
    objects += layout(rng, num_frames, room, num_objects, objects)
    info.update(name=f"compositional_{mode}_{seed}", seed=int(seed), num_objects=len(objects) - 1,
                generator=dict(num_frames=num_frames, duration=duration, image_size=list(image_size),
                               n_surface=n_surface, room=room, floor_density=floor_density,
                               camera=camera.to_dict(), depth_noise=depth_noise))
    return film_scene(objects, times, image_size, camera, n_surface, rng_cam,
                      int(rng_cap.integers(2 ** 31)), depth_noise, info)
