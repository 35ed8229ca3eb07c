"""Real-data loaders on the samples in ../shared/data/real (skipped when that folder is absent).

The reference numbers come from each sample's PROVENANCE.md: independent measurements
made with someone else's scripts when the samples were collected, so agreeing with them
checks our glTF evaluation, our reading of the DeformingThings4D EXR channel order and
camera extrinsics, and our DeepDeform units and pixel convention.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REAL = Path(os.environ.get("FOURD_REAL_DATA", Path(__file__).resolve().parents[2] / "shared/data/real"))
pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason=f"real-data samples not found at {REAL}")


def _displacements(path, animation, times):
    """Mean and max vertex displacement from times[0] to each later time, in file units."""
    from fourdlib.data.gltf import load_gltf_animation

    a = load_gltf_animation(REAL / path, animation, times, scale=1.0, z_up=False)
    d = np.linalg.norm(a.vertices[1:] - a.vertices[:1], axis=-1)             # (T - 1, Nv)
    return d.mean(1), d.max(1)


def test_fox_skinning_matches_provenance():
    # PROVENANCE: Walk, mean 12.6 (max 42) from t=0 to 0.35; 0.43 to t=0.7 (the loop closes)
    mean, mx = _displacements("khronos_fox/Fox.glb", "Walk", [0.0, 0.35, 0.7])
    assert mean[0] == pytest.approx(12.6, abs=0.06) and mx[0] == pytest.approx(42, abs=0.6)
    assert mean[1] == pytest.approx(0.43, abs=0.006)


def test_cesiumman_skinning_matches_provenance():
    # PROVENANCE: 0.156 m from t=0.0417 to 1.0, 0.0066 m to t=2.0 (the walk cycle closes)
    mean, _ = _displacements("khronos_cesiumman/CesiumMan.glb", 0, [0.0417, 1.0, 2.0])
    assert mean[0] == pytest.approx(0.156, abs=0.0006)
    assert mean[1] == pytest.approx(0.0066, abs=0.00006)


def test_morph_sphere_matches_provenance():
    # PROVENANCE: 0.37 from t=0 to 1.8, 0.66 (max 2.37) to t=3.6
    mean, mx = _displacements("khronos_morph/AnimatedMorphSphere/AnimatedMorphSphere.gltf", "Globe",
                              [0.0, 1.8, 3.6])
    assert mean[0] == pytest.approx(0.37, abs=0.006)
    assert mean[1] == pytest.approx(0.66, abs=0.006) and mx[1] == pytest.approx(2.37, abs=0.006)


def test_gltf_world_frame_and_scale():
    from fourdlib.data.gltf import gltf_animations, load_gltf_animation

    assert [a["name"] for a in gltf_animations(REAL / "khronos_fox/Fox.glb")] == ["Survey", "Walk", "Run"]
    man = load_gltf_animation(REAL / "khronos_cesiumman/CesiumMan.glb", 0, 3)
    ext = np.ptp(man.vertices[0], axis=0)
    assert man.meta["scale"] == 1.0 and 1.3 < ext[2] < 1.6 and ext[:2].max() < 1.0   # ~1.5 m tall along +z
    assert man.vertices[0, :, 2].min() == pytest.approx(0, abs=0.02)                   # feet on the floor
    fox = load_gltf_animation(REAL / "khronos_fox/Fox.glb", "Walk", 3, scale=0.01)     # cm-like units -> m
    assert 0.7 < np.ptp(fox.vertices[0, :, 2]) < 0.9 and fox.meta["scale"] == 0.01
    auto = load_gltf_animation(REAL / "khronos_fox/Fox.glb", "Walk", 3)                 # ~183 across: fit 1 m
    assert np.linalg.norm(np.ptp(auto.vertices[0], 0)) == pytest.approx(1.0)
    assert auto.meta["scale_mode"].startswith("fit")
    assert "tomkranis" in auto.meta["attribution"] and "CC-BY 4.0" in auto.meta["licence"]


def test_gltf_sequence_renders_the_animation():
    from fourdlib.data.gltf import gltf_sequence

    seq = gltf_sequence(REAL / "khronos_fox/Fox.glb", "Walk", num_frames=4, image_size=(48, 48),
                        n_surface=256, seed=0)
    assert seq.num_frames == 4 and seq.rgb.shape == (4, 1, 48, 48, 3)
    assert all(len(p) > 50 for p in seq.partial_points)
    assert seq.meta["source"] == "Fox.glb" and seq.meta["animation"] == "Walk"
    # textured: the fox is orange, so the observed colours are red-dominant on average
    c = np.concatenate(seq.partial_colors).astype(float).mean(0)
    assert c[0] > c[2] + 30


def _depth_agreement(seq, target, flow, mask=None):
    """Warp flow_points by `flow`, project into the target camera and compare z with the
    target depth at that pixel. Returns (median |dz| in mm, fraction landing on valid depth)."""
    x = seq.flow_points + flow
    if mask is not None:
        x = x[mask]
    K, c2w = seq.intrinsics[target, 0].astype(np.float64), seq.cam_to_world[target, 0].astype(np.float64)
    cam = (x - c2w[:3, 3]) @ c2w[:3, :3]                                      # world -> camera
    uv = cam[:, :2] / cam[:, 2:] * [K[0, 0], K[1, 1]] + [K[0, 2], K[1, 2]]
    col, row = np.floor(uv[:, 0]).astype(int), np.floor(uv[:, 1]).astype(int)   # pixel i covers [i, i+1)
    H, W = seq.depth.shape[-2:]
    inside = (col >= 0) & (col < W) & (row >= 0) & (row < H) & (cam[:, 2] > 0)
    d = seq.depth[target, 0][row[inside], col[inside]]
    on = d > 0
    return float(np.median(np.abs(cam[inside, 2][on] - d[on]))) * 1000, on.sum() / len(x)


def test_dt4d_example_flow_lands_on_target_depth():
    from fourdlib.data.dt4d import load_dt4d_example

    seq = load_dt4d_example(REAL / "deformingthings4d_example")
    assert seq.meta["frames"] == [18, 19, 20, 21, 22] and seq.flow_ref == 0
    assert seq.depth.shape == (5, 1, 500, 600)
    assert np.median(seq.depth[seq.depth > 0]) == pytest.approx(2.9, abs=0.1)        # PROVENANCE: ~2.9 m
    assert seq.flow_valid[[0, 4]].all() and not seq.flow_valid[1:4].any()
    # extrinsics are camera-to-world with OpenCV axes: the camera sits at (2, -2, 2) (the
    # toolkit's Blender script), its +z axis points at the character and its +y axis down
    c2w = seq.cam_to_world[0, 0]
    np.testing.assert_allclose(c2w[:3, 3], [2, -2, 2], atol=1e-6)
    to_obj = seq.flow_points.mean(0) - c2w[:3, 3]
    assert np.degrees(np.arccos(c2w[:3, 2] @ to_obj / np.linalg.norm(to_obj))) < 15
    assert c2w[2, 1] < -0.5                                                   # camera +y has world -z
    T = 4
    mm, frac = _depth_agreement(seq, T, seq.scene_flow[T])
    still, _ = _depth_agreement(seq, T, 0 * seq.scene_flow[T])
    R = c2w[:3, :3].astype(np.float64)
    rgb = (seq.scene_flow[T] @ R)[:, ::-1] @ R.T                              # naive R, G, B = x, y, z
    swapped, _ = _depth_agreement(seq, T, rgb)
    print(f"DT4D: median |dz| {mm:.2f} mm on {frac:.1%} of points; no motion {still:.1f} mm; "
          f"RGB order {swapped:.1f} mm")
    assert mm < 3.0 and frac > 0.9                                            # PROVENANCE: 1.6 mm, 97 %
    assert still > 10 * mm and swapped > 10 * mm                              # PROVENANCE: 47 mm, 280 mm


def test_deepdeform_flow_lands_on_target_depth():
    from fourdlib.data.deepdeform import load_deepdeform, read_flow_file

    seq = load_deepdeform(REAL / "deepdeform_shirt/train_seq258")
    assert seq.meta["flow_pair"] == [0, 110] and seq.rgb.shape == (2, 1, 480, 640, 3)
    assert np.median(seq.depth[seq.depth > 0]) == pytest.approx(2.1, abs=0.15)       # PROVENANCE: ~2.1 m
    assert seq.flow_valid[1].sum() == 54688                                   # PROVENANCE: valid px
    assert (seq.cam_to_world == np.eye(4)).all()
    m = seq.flow_valid[1]
    mm, frac = _depth_agreement(seq, 1, seq.scene_flow[1], m)
    still, _ = _depth_agreement(seq, 1, 0 * seq.scene_flow[1], m)
    print(f"DeepDeform: median |dz| {mm:.2f} mm on {frac:.1%} of points; no motion {still:.1f} mm")
    assert mm < 5.0 and frac > 0.9                                            # PROVENANCE: 3.2 mm
    assert still > 10 * mm
    # the warped points project where the GT optical flow says (PROVENANCE: median 0.45 px)
    of = read_flow_file(REAL / "deepdeform_shirt/train_seq258/optical_flow/shirt_000000_000110.oflow", 2)
    px = seq.flow_pixels[m]
    x = seq.flow_points[m] + seq.scene_flow[1][m]
    K = seq.intrinsics[1, 0]
    uv = x[:, :2] / x[:, 2:] * [K[0, 0], K[1, 1]] + [K[0, 2], K[1, 2]]
    o = of[px[:, 1], px[:, 0]]
    ok = np.isfinite(o).all(1)
    err = np.linalg.norm(uv[ok] - (px[ok] + 0.5 + o[ok]), axis=1)
    assert np.median(err) < 1.0


def test_deepdeform_mask_covers_the_flow():
    from fourdlib.data.deepdeform import load_deepdeform, read_mask

    mask = read_mask(REAL / "deepdeform_shirt/train_seq258/mask/000000_shirt.png")       # uint16 0 / 65535
    seq = load_deepdeform(REAL / "deepdeform_shirt/train_seq258")
    px = seq.flow_pixels[seq.flow_valid[0]]
    assert mask.dtype == bool and mask[px[:, 1], px[:, 0]].mean() > 0.9


def test_deepdeform_plain_rgbd():
    from fourdlib.data.deepdeform import load_deepdeform

    seq = load_deepdeform(REAL / "deepdeform_shirt/test_seq017")
    assert seq.meta["frames"] == [300, 600] and seq.scene_flow is None
    np.testing.assert_allclose(seq.times, [10.0, 20.0])
    K = seq.intrinsics[0, 0]
    np.testing.assert_allclose(K[0], [575.548, 0, 323.672], atol=1e-3)       # cx + 0.5: pixel centres
    assert all(len(p) > 100_000 for p in seq.partial_points)
    assert seq.partial_colors[0].shape == seq.partial_points[0].shape


# ---------------------------------------------------------------- DeepDeform at a model's size

SHIRT = REAL / "deepdeform_shirt/train_seq258"


def test_deepdeform_pair_keeps_rays_and_flow():
    from fourdlib.data.deepdeform import deepdeform_pair, load_deepdeform
    from fourdlib.geometry.cameras import unproject_depth

    p = deepdeform_pair(SHIRT, 64)
    seq, full = p.sequence, load_deepdeform(SHIRT)
    assert seq.rgb.shape == (2, 1, 64, 64, 3) and p.flow.shape == (64, 64, 3) and p.mask.shape == (64, 64)
    x0, y0, side, _ = seq.meta["resample"]["crop_xywh"]
    k = seq.meta["resample"]["block"]
    assert (x0, y0, side, k) == (96, 16, 448, 7)                              # 640 x 480 -> 448 = 7 x 64
    # intrinsics: output pixel (j, i) sees along the ray of full-res pixel (x0 + k j + k // 2, y0 + k i + k // 2)
    centres = np.s_[y0 + k // 2:y0 + side:k, x0 + k // 2:x0 + side:k]
    rays = unproject_depth(np.ones((64, 64), np.float32), seq.intrinsics[0, 0])
    rays_full = unproject_depth(np.ones((480, 640), np.float32), full.intrinsics[0, 0])[centres]
    np.testing.assert_allclose(rays, rays_full, atol=1e-6)
    np.testing.assert_array_equal(seq.depth[:, 0], full.depth[:, 0][:, centres[0], centres[1]])
    # RGB is the block mean
    block = full.rgb[1, 0, y0 + 7 * 10:y0 + 7 * 11, x0 + 7 * 20:x0 + 7 * 21].reshape(-1, 3).mean(0)
    np.testing.assert_allclose(seq.rgb[1, 0, 10, 20], block, atol=0.5)
    # the resampled GT flow still carries source points onto the resampled target depth
    # (full resolution: 3.2 mm median; here every target pixel is one of 7 x 7, so a few mm more)
    m = seq.flow_valid[1]
    assert m.sum() == np.isfinite(p.flow).all(-1)[seq.depth[0, 0] > 0].sum() > 1000
    mm, frac = _depth_agreement(seq, 1, seq.scene_flow[1], m)
    dz = _dz(seq, 1, seq.scene_flow[1], m)
    still, _ = _depth_agreement(seq, 1, 0 * seq.scene_flow[1], m)
    print(f"DeepDeform 64 x 64: median |dz| {mm:.1f} mm, {np.mean(dz < 0.03):.0%} within 3 cm; "
          f"no motion {still:.0f} mm")
    assert mm < 10 and frac > 0.9 and np.mean(dz < 0.03) > 0.8
    assert still > 10 * mm


def _dz(seq, target, flow, mask):
    """|z - target depth| (m) of the warped points, 1.0 (a miss) for those landing off the image or depth."""
    x = (seq.flow_points + flow)[mask]
    K = seq.intrinsics[target, 0].astype(np.float64)                         # identity poses: camera = world
    uv = x[:, :2] / x[:, 2:] * [K[0, 0], K[1, 1]] + [K[0, 2], K[1, 2]]
    col, row = np.floor(uv).astype(int).T
    H, W = seq.depth.shape[-2:]
    inside = (col >= 0) & (col < W) & (row >= 0) & (row < H)
    d = np.zeros(len(x), np.float32)
    d[inside] = seq.depth[target, 0][row[inside], col[inside]]
    return np.where(d > 0, np.abs(x[:, 2] - d), 1.0)


def test_evaluate_deepdeform_rows_and_zero_flow():
    import torch

    from fourdlib.data.deepdeform import deepdeform_pair
    from fourdlib.models.any4d import CONFIGS, Any4D, evaluate_deepdeform

    cfg = CONFIGS["smoke"]
    torch.manual_seed(0)
    rows, maps = evaluate_deepdeform(Any4D(cfg), SHIRT, return_maps=True)
    assert list(rows.method) == ["Any4D", "Any4D (GT-scale aligned)", "zero flow", "depth difference"]
    assert rows[["epe", "apd", "tau"]].notna().all().all() and rows.apd.between(0, 1).all()
    # zero flow's EPE is the mean GT flow norm on the scored pixels (GT flow, depth, shirt mask)
    p = deepdeform_pair(SHIRT, cfg.image_size)
    scored = np.isfinite(p.flow).all(-1) & (p.sequence.depth[0, 0] > 0) & p.mask
    assert scored.sum() > 100 and (maps["scored"] == scored).all()
    zero = rows.set_index("method").loc["zero flow"]
    assert zero.epe == pytest.approx(np.linalg.norm(p.flow[scored], axis=-1).mean(), rel=1e-5)
    assert maps["pred_flow"].shape == maps["points"].shape == (cfg.image_size, cfg.image_size, 3)


def _copy_shirt(dst, skip=()):
    """The shirt sequence's files copied (writable: the samples are read-only) without `skip`."""
    import shutil

    for f in SHIRT.rglob("*"):
        rel = f.relative_to(SHIRT)
        if f.is_file() and not any(str(rel).startswith(s) for s in skip):
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, dst / rel)
    return dst


def test_deepdeform_pair_refuses_bad_input(tmp_path):
    from fourdlib.data.deepdeform import deepdeform_pair
    from fourdlib.data.sequence import FormatError
    from fourdlib.models.any4d import CONFIGS, Any4D, evaluate_deepdeform

    with pytest.raises(FileNotFoundError, match="no scene flow"):
        deepdeform_pair(_copy_shirt(tmp_path / "noflow", skip=("scene_flow",)), 64)
    with pytest.raises(FileNotFoundError, match="000000_shirt.png"):
        deepdeform_pair(_copy_shirt(tmp_path / "nomask", skip=("mask",)), 64)
    with pytest.raises(FileNotFoundError, match="000110.png"):
        deepdeform_pair(_copy_shirt(tmp_path / "notarget", skip=("depth/000110",)), 64)
    small = _copy_shirt(tmp_path / "small")
    sflow = small / "scene_flow/shirt_000000_000110.sflow"
    sflow.write_bytes(np.array([320, 240, 3], np.uint32).tobytes() + np.zeros(320 * 240 * 3, np.float32).tobytes())
    with pytest.raises(FormatError, match="flow is"):
        deepdeform_pair(small, 64)
    with pytest.raises(ValueError, match="size must be"):
        deepdeform_pair(SHIRT, 481)
    with pytest.raises(ValueError, match="patch size"):
        evaluate_deepdeform(Any4D(CONFIGS["smoke"]), SHIRT, size=36)
