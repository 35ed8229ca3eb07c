"""Synthetic 4D data, deterministic for a seed, standing in for the papers' datasets.

- `make_creature_sequence`   skinned creatures (6 body plans x 6 motions), like DeformingThings4D;
                             `creature_split_plan` gives train / unseen_motion / unseen_individual.
- `make_primitive_sequence`  random compositions of primitives, one per seed: no category prior.
- `make_scene_sequence`      MOVi-like scenes: floor + static and moving objects, moving camera.
- `make_compositional_sequence`  COM4D: static furniture layouts, single creatures in motion,
                             and (evaluation only) both together.
- `generate_dataset`         a dataset folder (npz files + manifest.json with splits); the CLI is
                             data_scripts/generate_synthetic.py.

Every sequence is filmed by `fourdlib.data.capture.capture` with ONE moving depth camera
(`CameraSpec`: a full circle of azimuth, elevation swinging between -20 and 50 degrees by
default), so a single frame misses whole parts while the union of frames covers most of
the surface; `Sequence4D.surface_visible` records which frames see each GT sample.
"""
from .camera import CameraSpec, camera_path
from .compositional import FURNITURE, MODES, furniture, make_compositional_sequence
from .creatures import (BODY_PLANS, MOTIONS, Creature, Skeleton, animate, creature_split_plan,
                        forward_kinematics, linear_blend_skinning, make_creature,
                        make_creature_sequence, motion_angles, skin_weights)
from .generate import KINDS, dataset_plan, generate_dataset, sequence_seed
from .primitives import Part, make_part, make_primitive_sequence, merge_parts, random_composition
from .scenes import make_scene_sequence

__all__ = [
    "BODY_PLANS", "FURNITURE", "KINDS", "MODES", "MOTIONS", "CameraSpec", "Creature", "Part", "Skeleton",
    "animate", "camera_path", "creature_split_plan", "dataset_plan", "forward_kinematics", "furniture",
    "generate_dataset", "linear_blend_skinning", "make_compositional_sequence", "make_creature",
    "make_creature_sequence", "make_part", "make_primitive_sequence", "make_scene_sequence",
    "merge_parts", "motion_angles", "random_composition", "sequence_seed", "skin_weights",
]
