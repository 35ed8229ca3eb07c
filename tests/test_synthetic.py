"""Tests of the synthetic 4D generator (fourdlib.data.synthetic).

Properties checked against independent computations: LBS against hand-made poses,
partial clouds against the GT mesh (trimesh's closest-point query), visibility against
the partial clouds, masks against the objects' own meshes, and the split rules.
"""
from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from pykdtree.kdtree import KDTree
from scipy.spatial.transform import Rotation

from fourdlib.data.capture import capture, points_on_mesh, sample_surface
from fourdlib.data.dataset import write_manifest
from fourdlib.data.sequence import FormatError, Sequence4D
from fourdlib.data.synthetic import (BODY_PLANS, MOTIONS, CameraSpec, Skeleton, animate,
                                     creature_split_plan, dataset_plan, forward_kinematics,
                                     generate_dataset, linear_blend_skinning, make_compositional_sequence,
                                     make_creature, make_creature_sequence, make_part,
                                     make_primitive_sequence, make_scene_sequence, merge_parts,
                                     motion_angles, skin_weights)

torch.set_num_threads(1)
SMALL = dict(num_frames=4, image_size=(48, 48), n_surface=512)


def _mesh_distance(seq: Sequence4D, t: int, points, faces_mask=None) -> np.ndarray:
    """Distance from points (N, 3) to the GT mesh of frame t (optionally a subset of faces)."""
    faces = seq.mesh_faces if faces_mask is None else seq.mesh_faces[faces_mask]
    mesh = trimesh.Trimesh(seq.mesh_vertices[t], faces, process=False)
    _, d, _ = trimesh.proximity.closest_point(mesh, np.asarray(points, np.float64))
    return d


def _arrays(seq: Sequence4D) -> dict:
    out = {}
    for f in Sequence4D.fields():
        v = getattr(seq, f)
        if isinstance(v, np.ndarray):
            out[f] = v
        elif isinstance(v, list) and v and isinstance(v[0], np.ndarray):
            out[f] = np.concatenate(v)
    return out


# ------------------------------------------------------------------------ skinning
def test_fk_two_joint_chain_hand_computed():
    sk = Skeleton(["a", "b"], np.array([-1, 0]), np.array([[0.0, 0, 0], [1.0, 0, 0]]),
                  [dict(role="spine"), dict(role="spine")])
    euler = np.zeros((1, 2, 3))
    euler[0, 0, 0] = np.pi / 2                                      # yaw the root by 90 degrees
    A = forward_kinematics(sk, euler, np.eye(4)[None])
    tip = A[0, 1] @ np.array([2.0, 0, 0, 1])                         # a point 1 m beyond joint b
    np.testing.assert_allclose(tip[:3], [0, 2, 0], atol=1e-12)
    euler[0, 1, 1] = np.pi / 2                                      # and pitch joint b by 90 degrees
    A = forward_kinematics(sk, euler, np.eye(4)[None])
    # b's frame: pitch about y turns +x into -z, then the root yaw keeps z: (0,1,0) + (0,0,-1)
    np.testing.assert_allclose((A[0, 1] @ [2.0, 0, 0, 1])[:3], [0, 1, -1], atol=1e-12)


@pytest.fixture(scope="module")
def quadruped():
    return make_creature("quadruped", 11)


def test_weights_are_convex_and_sparse(quadruped):
    w = quadruped.weights
    assert w.shape == (len(quadruped.vertices), len(quadruped.skeleton))
    assert (w >= 0).all()
    np.testing.assert_allclose(w.sum(1), 1, atol=1e-12)
    assert ((w > 0).sum(1) <= 4).all()


def test_skin_weights_follow_own_part():
    a = make_part("capsule", [0.3, 0.05], np.eye(4))                    # along z, around joint 0
    pose = np.eye(4)
    pose[:3, 3] = [0, 0, 0.6]
    b = make_part("capsule", [0.3, 0.05], pose)                         # continues it, joint 1
    w = skin_weights(np.array([[0, 0, -0.35], [0, 0, 0.95], [0.05, 0, 0.3]]), [a, b], np.array([0, 1]), 2)
    assert w[0, 0] > 0.99 and w[1, 1] > 0.99                           # far ends: one bone each
    assert 0.3 < w[2, 0] < 0.7                                          # the joint between: blended


def test_lbs_identity_pose_is_rest_mesh(quadruped):
    J = len(quadruped.skeleton)
    A = forward_kinematics(quadruped.skeleton, np.zeros((2, J, 3)), np.tile(np.eye(4), (2, 1, 1)))
    V = linear_blend_skinning(quadruped.vertices, quadruped.weights, A)
    np.testing.assert_allclose(V, np.broadcast_to(quadruped.vertices, V.shape), atol=1e-12)


def test_lbs_root_motion_is_rigid(quadruped):
    J = len(quadruped.skeleton)
    M = np.eye(4)
    M[:3, :3] = Rotation.from_euler("xyz", [0.3, -0.5, 1.1]).as_matrix()
    M[:3, 3] = [0.4, -1.0, 0.2]
    V = linear_blend_skinning(quadruped.vertices, quadruped.weights,
                              forward_kinematics(quadruped.skeleton, np.zeros((1, J, 3)), M[None]))
    np.testing.assert_allclose(V[0], quadruped.vertices @ M[:3, :3].T + M[:3, 3], atol=1e-12)


def test_lbs_one_joint_rotates_its_vertices_about_the_joint(quadruped):
    sk = quadruped.skeleton
    j = sk.names.index("knee_fl")
    euler = np.zeros((1, len(sk), 3))
    euler[0, j] = [0.2, 0.7, -0.1]
    V = linear_blend_skinning(quadruped.vertices, quadruped.weights,
                              forward_kinematics(sk, euler, np.eye(4)[None]))[0]
    R = Rotation.from_euler("ZYX", euler[0, j]).as_matrix()
    subtree = {j}
    for k in range(len(sk)):                                            # parents come first
        if sk.parents[k] in subtree:
            subtree.add(k)
    # every joint of the subtree turns rigidly about joint j, the rest stays: the blend is
    # (1 - s) v + s (R (v - c) + c) with s the vertex's total weight on the subtree
    s = quadruped.weights[:, sorted(subtree)].sum(1, keepdims=True)
    v, c = quadruped.vertices, sk.rest[j]
    np.testing.assert_allclose(V, (1 - s) * v + s * ((v - c) @ R.T + c), atol=1e-9)
    assert (s > 0.99).sum() > 20 and (s < 1e-6).sum() > len(v) / 2      # the lower leg moves, the rest not


@pytest.mark.parametrize("plan", BODY_PLANS)
def test_every_body_plan_does_every_motion(plan):
    c = make_creature(plan, 5)
    assert 0.5 <= np.ptp(c.vertices, 0).max() <= 1.5 + 1e-9           # metres, as documented
    assert abs(c.vertices[:, 2].min()) < 1e-9                          # stands on z = 0
    times = np.arange(6) / 3
    rest_moved = []
    for m in MOTIONS:
        V, root = animate(c, m, times, 2.0, seed=1)
        assert V.shape == (6,) + c.vertices.shape and np.isfinite(V).all()
        assert np.abs(V[0] - V).max() > 0.01                            # it moves
        rest_moved.append(np.abs(V - c.vertices).max())
        assert np.abs(V).max() < 10                                     # and stays near the origin
    # motions differ from one another
    angles = [motion_angles(c, m, times, 2.0, seed=1)[0] for m in MOTIONS]
    assert all(np.abs(angles[i] - angles[k]).max() > 0.05 for i in range(6) for k in range(i))


# ----------------------------------------------------------------------- sequences
@pytest.fixture(scope="module")
def creature_seq():
    return make_creature_sequence(3, "quadruped", "walk", **SMALL)


@pytest.fixture(scope="module")
def primitive_seq():
    return make_primitive_sequence(3, **SMALL)


@pytest.fixture(scope="module")
def scene_seq():
    return make_scene_sequence(2, num_frames=4, image_size=(64, 64), n_surface=1024, creature_prob=0.0)


def test_creature_sequence_is_deterministic(creature_seq):
    again = _arrays(make_creature_sequence(3, "quadruped", "walk", **SMALL))
    a = _arrays(creature_seq)
    assert a.keys() == again.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], again[k], err_msg=k)
    other = make_creature_sequence(4, "quadruped", "walk", **SMALL)
    assert not np.array_equal(other.cam_to_world, creature_seq.cam_to_world)
    assert not np.array_equal(other.surface_points, creature_seq.surface_points)


def test_primitive_and_scene_sequences_are_deterministic(primitive_seq, scene_seq):
    scene = dict(num_frames=4, image_size=(64, 64), n_surface=1024, creature_prob=0.0)
    for seq, make, seed in ((primitive_seq, lambda s: make_primitive_sequence(s, **SMALL), 3),
                            (scene_seq, lambda s: make_scene_sequence(s, **scene), 2)):
        again = _arrays(make(seed))
        for k, v in _arrays(seq).items():
            np.testing.assert_array_equal(v, again[k], err_msg=k)
        assert not np.array_equal(make(seed + 1).surface_points, seq.surface_points)


@pytest.mark.parametrize("which", ["creature_seq", "primitive_seq", "scene_seq"])
def test_partial_points_lie_on_the_gt_mesh(which, request):
    seq = request.getfixturevalue(which)
    rng = np.random.default_rng(0)
    for t in (0, seq.num_frames - 1):
        p = seq.partial_points[t]
        p = p[rng.choice(len(p), min(300, len(p)), replace=False)]
        d = _mesh_distance(seq, t, p)
        assert d.max() < 1e-3, f"{which} frame {t}: partial point {d.max() * 1000:.2f} mm off the GT mesh"


def test_gt_samples_avoid_faces_buried_in_another_part():
    # two overlapping balls: with merge_parts' weights no GT sample lies inside the other ball
    pose = np.eye(4)
    pose[:3, 3] = [0.12, 0, 0]
    v, f, _, _, weight = merge_parts([make_part("ellipsoid", [0.1] * 3), make_part("ellipsoid", [0.1] * 3, pose)])
    rng = np.random.default_rng(0)
    for w, expect_inside in ((None, True), (weight, False)):
        face, bary = sample_surface(v, f, 4000, rng, w)
        p = points_on_mesh(v, f, face, bary)
        inside = (np.linalg.norm(p, axis=1) < 0.09) | (np.linalg.norm(p - pose[:3, 3], axis=1) < 0.09)
        assert inside.any() == expect_inside


@pytest.mark.parametrize("plan", BODY_PLANS)
def test_creature_gt_samples_are_on_the_outer_surface(plan):
    c = make_creature(plan, 11)
    face, bary = sample_surface(c.vertices, c.faces, 4000, np.random.default_rng(0), c.sample_weight)
    p = points_on_mesh(c.vertices, c.faces, face, bary)
    part_of_vertex = np.repeat(np.arange(len(c.parts)), [len(q.vertices) for q in c.parts])
    own = part_of_vertex[c.faces[face, 0]]
    inside = np.full(len(p), np.inf)                                     # level in the other parts
    for k, part in enumerate(c.parts):
        inside[own != k] = np.minimum(inside[own != k], part.level(p[own != k]))
    assert (inside < 0.9).mean() < 0.002, f"{plan}: {(inside < 0.9).mean():.2%} of GT samples inside the body"
    # and without the weights many samples would be: the test can fail
    face, bary = sample_surface(c.vertices, c.faces, 4000, np.random.default_rng(0))
    p_all, own_all = points_on_mesh(c.vertices, c.faces, face, bary), part_of_vertex[c.faces[face, 0]]
    lv = np.min([np.where(own_all != k, q.level(p_all), np.inf) for k, q in enumerate(c.parts)], 0)
    assert (lv < 0.9).mean() > 0.02


@pytest.mark.parametrize("kind", ["creature", "primitive"])
def test_one_frame_sees_clearly_less_than_the_union(kind):
    kw = dict(num_frames=8, image_size=(48, 48), n_surface=1024)
    seqs = ([make_creature_sequence(s, plan, "walk", **kw) for s, plan in enumerate(("quadruped", "bird"))]
            if kind == "creature" else [make_primitive_sequence(s, **kw) for s in range(2)])
    for seq in seqs:
        vis = seq.surface_visible
        union = vis.any(0).mean()
        per_frame = vis.mean(1)
        assert union >= 0.8, f"{seq.name}: the frames together see only {union:.2f} of the surface"
        assert per_frame.mean() <= 0.7 * union, f"{seq.name}: one frame sees {per_frame.mean():.2f} of {union:.2f}"
        hidden_seen = (~vis & vis.any(0)).mean()
        assert hidden_seen >= 0.3


def test_visible_samples_are_near_the_partial_cloud(creature_seq):
    # an independent check of the visibility record: what a frame sees is in its depth map
    for t in range(creature_seq.num_frames):
        vis = creature_seq.surface_visible[t]
        d, _ = KDTree(creature_seq.partial_points[t].astype(np.float64)).query(
            creature_seq.surface_points[t][vis].astype(np.float64))
        pixel = creature_seq.depth[t, 0][creature_seq.depth[t, 0] > 0].max() / creature_seq.intrinsics[t, 0, 0, 0]
        assert np.quantile(d, 0.95) < 3 * pixel


def test_scene_flow_carries_points_onto_later_meshes(creature_seq):
    seq = creature_seq
    assert np.abs(seq.scene_flow[-1]).max() > 0.01
    for t in range(1, seq.num_frames):
        moved = seq.flow_points + seq.scene_flow[t]
        assert _mesh_distance(seq, t, moved[::7]).max() < 1e-4


def test_camera_orbits_the_object(creature_seq):
    V = creature_seq.mesh_vertices
    c = creature_seq.cam_to_world[:, 0, :3, 3] - 0.5 * (V.min(1) + V.max(1))    # camera about its target
    az = np.unwrap(np.arctan2(c[:, 1], c[:, 0]))
    assert np.abs(az[-1] - az[0]) == pytest.approx(2 * np.pi * 3 / 4, abs=1e-3)   # T=4 frames of a full circle


def _azimuths(spec, seed, T=32):
    """Camera azimuth (unwrapped, radians) about a fixed target, per frame."""
    from fourdlib.data.synthetic import camera_path
    V = np.random.default_rng(0).uniform(-0.3, 0.3, (1, 50, 3)).repeat(T, 0)      # a still object
    _, c2w = camera_path(V, spec, (64, 64), np.random.default_rng(seed))
    c = c2w[:, 0, :3, 3] - 0.5 * (V.min(1) + V.max(1))
    return np.unwrap(np.arctan2(c[:, 1], c[:, 0])), np.arcsin(c[:, 2] / np.linalg.norm(c, axis=1))


def test_camera_paths_that_are_not_one_circle():
    az, el = _azimuths(CameraSpec(path="arc"), seed=1)
    travel = np.abs(az - az[0])
    assert travel.max() == pytest.approx(np.pi, abs=0.05)          # out over half the circle ...
    assert travel[-1] < 0.2                                         # ... and back near the start
    az, el = _azimuths(CameraSpec(path="wander"), seed=1)
    steps = np.sign(np.diff(az))
    assert (steps > 0).any() and (steps < 0).any()                  # it stops and turns back
    lo, hi = np.deg2rad(CameraSpec().elevation_deg)
    assert lo - 1e-4 <= el.min() and el.max() <= hi + 1e-4
    az, _ = _azimuths(CameraSpec(path="circle"), seed=1)
    assert np.allclose(np.diff(az), np.diff(az)[0], atol=1e-4)      # the circle: constant speed
    # "mixed" draws the kind from the seed: several kinds over seeds, the same for a seed
    speeds = [np.diff(_azimuths(CameraSpec(path="mixed"), seed=s)[0]) for s in range(12)]
    circles = sum(np.allclose(v, v[0], atol=1e-4) for v in speeds)
    assert 0 < circles < 12
    assert np.array_equal(_azimuths(CameraSpec(path="mixed"), seed=3)[0], _azimuths(CameraSpec(path="mixed"), seed=3)[0])
    with pytest.raises(ValueError, match="path must be one of"):
        CameraSpec(path="spiral")


def test_maker_options_can_hold_the_camera_as_a_dict():
    a = make_primitive_sequence(2, num_frames=3, image_size=(32, 32), n_surface=64, camera={"path": "arc"})
    b = make_primitive_sequence(2, num_frames=3, image_size=(32, 32), n_surface=64, camera=CameraSpec(path="arc"))
    assert np.array_equal(a.cam_to_world, b.cam_to_world)
    assert a.meta["generator"]["camera"]["path"] == "arc"

# ----------------------------------------------------------------------- scenes
def test_scene_objects_static_and_dynamic(scene_seq):
    s = scene_seq
    assert s.object_background[0] and not s.object_background[1:].any()
    assert s.object_dynamic[1:].any() and not s.object_dynamic[1:].all()
    for k in range(len(s.object_names)):
        faces = s.mesh_faces[s.mesh_instance == k]
        vk = s.mesh_vertices[:, np.unique(faces)]                         # (T, n, 3)
        moved = np.abs(vk - vk[:1]).max()
        assert (moved > 1e-3) == bool(s.object_dynamic[k]), s.object_names[k]
        # object_poses carry the object rigidly (no creatures in this scene)
        P = s.object_poses[:, k].astype(np.float64)
        local = (vk[0] - P[0, :3, 3]) @ P[0, :3, :3]
        for t in range(s.num_frames):
            np.testing.assert_allclose(local @ P[t, :3, :3].T + P[t, :3, 3], vk[t], atol=1e-4)


def test_scene_masks_match_objects(scene_seq):
    s = scene_seq
    from fourdlib.geometry.cameras import unproject_depth
    t = 1
    pts = unproject_depth(s.depth[t, 0], s.intrinsics[t, 0], s.cam_to_world[t, 0])
    seen = 0
    for k in range(len(s.object_names)):
        sel = s.masks[t, 0] == k + 1
        if sel.sum() < 5:
            continue
        seen += 1
        d = _mesh_distance(s, t, pts[sel][:200], faces_mask=s.mesh_instance == k)
        assert d.max() < 1e-3, f"mask of {s.object_names[k]} shows another object"
    assert seen >= 3
    assert ((s.masks[t, 0] > 0) == (s.depth[t, 0] > 0)).all()


def test_scene_objects_do_not_touch(scene_seq):
    s = scene_seq
    for t in range(s.num_frames):
        verts = [s.mesh_vertices[t, np.unique(s.mesh_faces[s.mesh_instance == k])]
                 for k in range(1, len(s.object_names))]
        for i in range(len(verts)):
            for j in range(i + 1, len(verts)):
                d, _ = KDTree(verts[i].astype(np.float64)).query(verts[j].astype(np.float64))
                assert d.min() > 0.02
    fg = s.mesh_vertices[:, np.unique(s.mesh_faces[s.mesh_instance > 0])]
    assert fg[..., 2].min() > -1e-6                                         # nothing below the floor


@pytest.mark.parametrize("mode", ["static", "dynamic", "mixed"])
def test_compositional_modes(mode):
    s = make_compositional_sequence(1, mode, num_frames=3, image_size=(48, 48), n_surface=512)
    if mode == "static":
        assert s.object_background[0] and not s.object_dynamic.any() and len(s.object_names) >= 3
    elif mode == "dynamic":
        assert len(s.object_names) == 1 and s.object_dynamic.all() and s.meta["body_plan"] in BODY_PLANS
    else:
        assert s.meta["eval_only"] and s.object_dynamic.any() and (~s.object_dynamic[1:]).any()
    assert s.meta["mode"] == mode and s.meta["kind"] == "compositional"


# ------------------------------------------------------------------------- splits
def test_creature_splits_are_disjoint_the_right_way():
    plan = creature_split_plan(64, seed=0)
    assert len(plan) == 64
    by = {s: [e for e in plan if e["split"] == s] for s in ("train", "unseen_motion", "unseen_individual")}
    assert all(len(v) > 0 for v in by.values())
    train_ind = {e["individual"] for e in by["train"]}
    assert not train_ind & {e["individual"] for e in by["unseen_individual"]}
    for e in by["unseen_motion"]:
        assert e["individual"] in train_ind
        assert e["motion"] not in {x["motion"] for x in by["train"] if x["individual"] == e["individual"]}
    assert {e["motion"] for e in by["unseen_individual"]} <= {e["motion"] for e in by["train"]}
    assert {e["body_plan"] for e in by["unseen_individual"]} <= {e["body_plan"] for e in by["train"]}
    assert {e["body_plan"] for e in plan} == set(BODY_PLANS)
    assert len({(e["individual"], e["motion"]) for e in by["train"] + by["unseen_motion"]}) == \
        len(by["train"]) + len(by["unseen_motion"])                   # no pair twice
    assert plan == creature_split_plan(64, seed=0) and plan != creature_split_plan(64, seed=1)


def test_compositional_plan_keeps_mixed_out_of_train():
    plan = dataset_plan("compositional", 20, seed=0)
    modes = [p["kwargs"]["mode"] for p in plan]
    assert sorted(set(modes)) == ["dynamic", "mixed", "static"]
    assert all((p["split"] == "eval_mixed") == (p["kwargs"]["mode"] == "mixed") for p in plan)


# ------------------------------------------------------------------------ datasets
def test_generate_dataset_writes_a_manifest_and_loads(tmp_path):
    path = generate_dataset(tmp_path / "d", "creatures", 4, num_frames=3, seed=1, image_size=(32, 32),
                            n_surface=256, workers=1, progress=False)
    m = json.loads(path.read_text())
    assert len(m["sequences"]) == 4 and m["info"]["kind"] == "creatures"
    for e in m["sequences"]:
        s = Sequence4D.load(tmp_path / "d" / e["file"])
        assert s.num_frames == 3 and s.meta["split"] == e["split"] and s.meta["licence"] == "synthetic (fourdlib)"
    with pytest.raises(FileExistsError, match="already holds a dataset"):
        generate_dataset(tmp_path / "d", "creatures", 4, workers=1, progress=False)


def test_generate_dataset_same_with_two_workers(tmp_path):
    kw = dict(num_frames=2, seed=3, image_size=(24, 24), n_surface=64, progress=False)
    a = json.loads(generate_dataset(tmp_path / "a", "primitives", 3, workers=1, **kw).read_text())
    b = json.loads(generate_dataset(tmp_path / "b", "primitives", 3, workers=2, **kw).read_text())
    for ea, eb in zip(a["sequences"], b["sequences"]):
        assert ea["file"] == eb["file"]
        sa, sb = Sequence4D.load(tmp_path / "a" / ea["file"]), Sequence4D.load(tmp_path / "b" / eb["file"])
        np.testing.assert_array_equal(sa.surface_points, sb.surface_points)
        np.testing.assert_array_equal(sa.depth, sb.depth)


def test_cli_writes_a_dataset(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "generate_synthetic", Path(__file__).resolve().parents[1] / "data_scripts" / "generate_synthetic.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    cli.main(["--kind", "scenes", "--num", "2", "--frames", "2", "--size", "32", "40", "--surface", "128", "--compress",
              "--workers", "1", "--out", str(tmp_path / "s")])
    m = json.loads((tmp_path / "s" / "manifest.json").read_text())
    s = Sequence4D.load(tmp_path / "s" / m["sequences"][0]["file"])
    assert s.depth.shape[-2:] == (32, 40) and m["info"]["compressed"] is True


def _generator_cli():
    spec = importlib.util.spec_from_file_location(
        "generate_synthetic", Path(__file__).resolve().parents[1] / "data_scripts" / "generate_synthetic.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    return cli


@pytest.mark.parametrize("args, match", [
    (["--kind", "primitives", "--test-frac", "1.5"], r"--test-frac: must be in \[0, 1\), got 1.5"),
    (["--kind", "primitives", "--test-frac", "-0.5"], r"--test-frac: must be in \[0, 1\), got -0.5"),
    (["--kind", "primitives", "--test-frac", "1"], r"--test-frac: must be in \[0, 1\)"),
    (["--kind", "primitives", "--test-frac", "nan"], r"--test-frac: must be in \[0, 1\), got nan"),
    (["--kind", "compositional", "--mixed-frac", "1.2"], r"--mixed-frac: must be in \[0, 1\)"),
    (["--kind", "primitives", "--workers", "-2"], r"--workers: must be >= 1, got -2"),
    (["--kind", "primitives", "--workers", "0"], r"--workers: must be >= 1, got 0"),
    (["--kind", "primitives", "--num", "0"], r"--num: must be >= 1, got 0"),
    (["--kind", "primitives", "--frames", "-3"], r"--frames: must be >= 1, got -3"),
    (["--kind", "primitives", "--size", "4"], r"--size: image sides must be >= 8 pixels, got 4"),
    (["--kind", "primitives", "--size", "32", "0"], r"--size: image sides must be >= 8 pixels"),
    (["--kind", "primitives", "--size", "8", "8", "8"], r"--size takes one number"),
    (["--kind", "primitives", "--surface", "0"], r"--surface: must be >= 1, got 0"),
    (["--kind", "creatures", "--unseen-individual-frac", "1.5"], r"--unseen-individual-frac: must be in \[0, 1\)"),
    (["--kind", "creatures", "--motions-per-individual", "0"], r"--motions-per-individual: .*must be in \[1, "),
    (["--kind", "scenes", "--static"], r"--static applies to --kind primitives only"),
    (["--kind", "primitives", "--motions-per-individual", "2"], r"apply to --kind creatures only"),
])
def test_cli_refuses_bad_arguments_before_any_work(tmp_path, capsys, args, match):
    out = tmp_path / "new" / "set"
    with pytest.raises(SystemExit) as info:
        _generator_cli().main(args + ["--out", str(out)])
    assert info.value.code == 2  # argparse's usage error, not a traceback
    err = capsys.readouterr().err
    assert re.search(match, err), err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # no folder made, not even its parent


def test_cli_refuses_an_existing_dataset_and_a_file_as_out(tmp_path, capsys):
    cli = _generator_cli()
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "manifest.json").write_text(json.dumps({"info": {}, "sequences": []}))
    with pytest.raises(SystemExit) as info:
        cli.main(["--kind", "primitives", "--num", "1", "--out", str(tmp_path / "d")])
    assert info.value.code == 2 and "already holds a dataset" in capsys.readouterr().err
    (tmp_path / "f").write_text("a file")
    with pytest.raises(SystemExit) as info:
        cli.main(["--kind", "primitives", "--num", "1", "--out", str(tmp_path / "f")])
    assert info.value.code == 2 and "is a file" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "f"]


def test_generate_dataset_validates_before_touching_the_disk(tmp_path):
    for kwargs, match in ((dict(test_frac=1.5), r"test_frac must be in \[0, 1\)"),
                          (dict(test_frac=-0.5), r"test_frac must be in \[0, 1\)"),
                          (dict(workers=-2), r"workers must be >= 1"),
                          (dict(mixed_frac=1.0), r"mixed_frac must be in \[0, 1\)"),
                          (dict(num_frames=0), r"num_frames must be >= 1"),
                          (dict(image_size=(4, 4)), r"image_size"),
                          (dict(n_surface=0), r"n_surface must be >= 1")):
        with pytest.raises(ValueError, match=match):
            generate_dataset(tmp_path / "x" / "y", "primitives", 2, progress=False, **kwargs)
    with pytest.raises(ValueError, match=r"unseen_individual_frac must be in \[0, 1\)"):
        generate_dataset(tmp_path / "x", "creatures", 2, progress=False, unseen_individual_frac=2.0)
    assert list(tmp_path.iterdir()) == []
    # a plan leaves at least one train sequence whatever the rounding
    for n in (2, 3, 5):
        assert any(p["split"] == "train" for p in dataset_plan("primitives", n, test_frac=0.9))


def test_overwrite_removes_only_what_the_generator_recorded(tmp_path):
    kw = dict(num_frames=2, image_size=(24, 24), n_surface=64, workers=1, progress=False)
    folder = tmp_path / "d"
    first = json.loads(generate_dataset(folder, "scenes", 3, **kw).read_text())
    old_files = [e["file"] for e in first["sequences"]]
    (folder / "mine.npz").write_bytes(b"the user's own file")  # not recorded: never touched
    (folder / "notes.txt").write_text("notes")
    seq = Sequence4D.load(folder / old_files[0])
    seq.save(folder / "kept_sequence.npz")
    path = _generator_cli().main(["--kind", "primitives", "--num", "2", "--frames", "2", "--size", "24",
                                  "--surface", "64", "--workers", "1", "--out", str(folder), "--overwrite"])
    second = json.loads((folder / "manifest.json").read_text())
    new_files = [e["file"] for e in second["sequences"]]
    assert second["info"]["kind"] == "primitives" and len(new_files) == 2
    assert {e["kind"] for e in second["sequences"]} == {"primitives"}
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        new_files + ["manifest.json", "mine.npz", "notes.txt", "kept_sequence.npz"])
    assert (folder / "mine.npz").read_bytes() == b"the user's own file"
    for f in new_files:
        assert Sequence4D.load(folder / f).meta["kind"] == "primitives"
    assert path == folder / "manifest.json"
    # a manifest another tool wrote is not the generator's to clear
    write_manifest(tmp_path / "other", [{"file": "x.npz", "split": "train"}], {"source": "a converter"})
    (tmp_path / "other" / "x.npz").write_bytes(b"converted")
    with pytest.raises(FileExistsError, match="not written by fourdlib.data.synthetic"):
        generate_dataset(tmp_path / "other", "primitives", 1, overwrite=True, **kw)
    assert (tmp_path / "other" / "x.npz").read_bytes() == b"converted"


def test_failed_generation_leaves_no_folder_and_the_old_dataset(tmp_path, monkeypatch):
    from fourdlib.data.synthetic import generate as gen

    kw = dict(num_frames=2, image_size=(24, 24), n_surface=64, workers=1, progress=False)

    def broken(*args, **kwargs):
        raise RuntimeError("maker failed")
    monkeypatch.setitem(gen._MAKERS, "primitives", broken)
    with pytest.raises(RuntimeError, match="maker failed"):
        generate_dataset(tmp_path / "new", "primitives", 2, **kw)
    assert not (tmp_path / "new").exists()
    monkeypatch.undo()
    before = generate_dataset(tmp_path / "d", "primitives", 2, **kw).read_text()
    names = sorted(p.name for p in (tmp_path / "d").iterdir())
    monkeypatch.setitem(gen._MAKERS, "primitives", broken)
    with pytest.raises(RuntimeError, match="maker failed"):
        generate_dataset(tmp_path / "d", "primitives", 3, overwrite=True, **kw)
    assert (tmp_path / "d" / "manifest.json").read_text() == before  # the old dataset is intact
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == names


# -------------------------------------------------------------------------- errors
def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="body_plan must be one of"):
        make_creature("dragon", 0)
    with pytest.raises(ValueError, match="motion must be one of"):
        make_creature_sequence(0, "bird", "moonwalk", **SMALL)
    with pytest.raises(ValueError, match="positive sizes in metres"):
        make_part("box", [0.1, -0.2, 0.1])
    with pytest.raises(ValueError, match="kind must be one of"):
        make_part("teapot", [0.1, 0.1])
    with pytest.raises(ValueError, match="elevation_deg"):
        CameraSpec(elevation_deg=(50, -20))
    with pytest.raises(ValueError, match="image_size"):
        make_primitive_sequence(0, image_size=(4, 4))
    with pytest.raises(ValueError, match="kind must be one of"):
        dataset_plan("clouds", 3)
    with pytest.raises(ValueError, match="at least one train motion"):
        creature_split_plan(8, motions_per_individual=2, unseen_motions_per_individual=2)
    with pytest.raises(ValueError, match="mode must be one of"):
        make_compositional_sequence(0, "party")
    v, f, *_ = merge_parts([make_part("ellipsoid", [0.1, 0.1, 0.1])])
    with pytest.raises(FormatError, match="surface_face_weight"):
        capture(v[None], f, np.eye(3), np.eye(4)[None, None], (8, 8), surface_face_weight=-np.ones(len(f)))


def test_static_primitives_do_not_move_and_maker_options_reach_the_maker(tmp_path):
    seq = make_primitive_sequence(3, num_frames=4, image_size=(32, 32), n_surface=128, motion=0.0, deform=0.0)
    # GT samples are material points: a static object keeps them where they are
    assert np.abs(seq.surface_points - seq.surface_points[0]).max() < 1e-6
    moving = make_primitive_sequence(3, num_frames=4, image_size=(32, 32), n_surface=128)
    assert np.abs(moving.surface_points - moving.surface_points[0]).max() > 1e-2
    with pytest.raises(ValueError, match="motion and deform must be >= 0"):
        make_primitive_sequence(3, num_frames=2, motion=-1.0)
    path = generate_dataset(tmp_path / "s", "primitives", 2, num_frames=3, image_size=(32, 32), n_surface=64,
                            workers=1, progress=False, maker_options={"motion": 0.0, "deform": 0.0})
    m = json.loads(path.read_text())
    assert m["info"]["maker_options"] == {"motion": 0.0, "deform": 0.0}
    s = Sequence4D.load(tmp_path / "s" / m["sequences"][0]["file"])
    assert s.meta["generator"]["motion"] == 0.0
    assert np.abs(s.surface_points - s.surface_points[0]).max() < 1e-6
