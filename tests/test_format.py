"""Sequence4D: validation errors name the field, save/load is exact, capture() and the
torch Dataset behave."""
import json
import zipfile

import numpy as np
import pytest
import torch
import trimesh

from fourdlib.data import (FormatError, Sequence4D, SequenceDataset, capture, read_manifest,
                           write_manifest)
from fourdlib.data.synthetic import CameraSpec, camera_path
from fourdlib.geometry import intrinsics_from_fov


def _blob_sequence(T=6, size=40, seed=0):
    """A sphere that stretches and drifts, filmed by one orbiting camera."""
    m = trimesh.creation.icosphere(2, 0.4)
    V = np.stack([m.vertices * [1 + 0.3 * np.sin(t), 1, 1] + [0.05 * t, 0, 0.5] for t in range(T)])
    spec = CameraSpec(azimuth_span=np.pi, elevation_deg=(20, 30), distance=2.0, random_start=False)
    K, cams = camera_path(V, spec, (size, size), np.random.default_rng(seed))
    return capture(V, m.faces, K, cams, (size, size), n_surface=512, seed=seed,
                   meta={"name": "blob"}), m


@pytest.fixture(scope="module")
def blob():
    return _blob_sequence()


def test_round_trip_is_exact(blob, tmp_path):
    seq, _ = blob
    for compress in (False, True):
        path = seq.save(tmp_path / f"s{compress}", compress=compress)
        back = Sequence4D.load(path)
        for name in Sequence4D.fields():
            a, b = getattr(seq, name), getattr(back, name)
            if isinstance(a, np.ndarray):
                assert a.dtype == b.dtype and np.array_equal(a, b), name
            elif isinstance(a, list) and a and isinstance(a[0], np.ndarray):
                assert len(a) == len(b) and all(np.array_equal(x, y) and x.dtype == y.dtype
                                                for x, y in zip(a, b)), name
            else:
                assert a == b, name


def test_capture_partial_points_lie_on_the_mesh(blob):
    seq, m = blob
    for t in (0, 3, 5):
        mesh = trimesh.Trimesh(seq.mesh_vertices[t], seq.mesh_faces, process=False)
        _, dist, _ = trimesh.proximity.closest_point(mesh, seq.partial_points[t][::5])
        assert dist.max() < 1e-4
    # GT samples are tracked: the same rows are barycentric points of the same faces.
    mesh0 = trimesh.Trimesh(seq.mesh_vertices[0], seq.mesh_faces, process=False)
    _, dist, _ = trimesh.proximity.closest_point(mesh0, seq.surface_points[0])
    assert dist.max() < 1e-5


def test_capture_scene_flow_lands_on_later_surfaces(blob):
    seq, _ = blob
    last = seq.num_frames - 1
    mesh = trimesh.Trimesh(seq.mesh_vertices[last], seq.mesh_faces, process=False)
    moved = seq.flow_points + seq.scene_flow[last]
    _, dist, _ = trimesh.proximity.closest_point(mesh, moved[::7])
    assert dist.max() < 1e-4
    _, still, _ = trimesh.proximity.closest_point(mesh, seq.flow_points[::7])
    assert np.median(still) > 100 * dist.max() + 1e-3  # the object really moved


def test_one_frame_sees_less_than_all_frames(blob):
    seq, _ = blob
    per_frame = seq.surface_visible.mean(1)
    union = seq.surface_visible.any(0).mean()
    assert per_frame.max() < 0.75 * union
    regions = seq.visibility_regions()
    total = sum(r.astype(int) for r in regions.values())
    assert (total == 1).all()  # the three regions partition every (frame, sample)


def test_visibility_matches_what_the_depth_camera_sees(blob):
    """A sample marked visible projects onto a pixel whose depth agrees with it."""
    seq, _ = blob
    from fourdlib.geometry import project
    t = 2
    p = seq.surface_points[t][seq.surface_visible[t]]
    uv, z = project(p, seq.intrinsics[t, 0], seq.cam_to_world[t, 0])
    px = np.clip(np.floor(uv).astype(int), 0, seq.depth.shape[-1] - 1)
    d = seq.depth[t, 0][px[:, 1], px[:, 0]]
    # A 40 px view of a 0.8 m sphere at ~2 m: one pixel spans ~4 cm, and the pixel-centre
    # ray hits the curved surface up to a pixel away from the sample.
    assert np.median(np.abs(d - z)) < 0.025
    q = seq.surface_points[t][~seq.surface_visible[t]]
    uvq, zq = project(q, seq.intrinsics[t, 0], seq.cam_to_world[t, 0])
    inside = (uvq >= 0).all(1) & (uvq < seq.depth.shape[-1]).all(1)
    pxq = np.floor(uvq[inside]).astype(int)
    dq = seq.depth[t, 0][pxq[:, 1], pxq[:, 0]]
    assert np.median(zq[inside] - dq) > 0.1  # hidden samples lie well behind the depth map


@pytest.mark.parametrize("change, match", [
    (dict(times=np.array([0.0, 1.0, 1.0])), "strictly increasing"),
    (dict(surface_points=np.zeros((2, 5, 3))), "frame count is 2 but other fields say 3"),
    (dict(surface_points=np.zeros((3, 5, 2))), r"surface_points: dim 2 must be 3"),
    (dict(partial_points=[np.zeros((4, 3))] * 2), "2 frames but times has 3"),
    (dict(partial_points=[np.zeros((4, 3)), np.zeros((0, 3)), np.zeros((4, 3))]), "frame 1 has no points"),
    (dict(partial_points=[np.zeros((4, 3)), np.full((4, 3), np.nan), np.zeros((4, 3))]), r"partial_points\[1\].*NaN"),
    (dict(surface_points=np.full((3, 5, 3), np.nan)), "surface_points: 45 non-finite"),
    (dict(depth_mm=True), "looks like millimetres"),
    (dict(rotation=np.diag([1.0, 2.0, 1.0])), "not orthonormal"),
    (dict(rotation=np.diag([1.0, 1.0, -1.0])), "determinant -1"),
    (dict(surface_normals=np.ones((3, 5, 3))), "unit length"),
    (dict(rgb=np.zeros((3, 1, 8, 8, 3), np.float32)), "uint8"),
    (dict(scene_flow=np.ones((3, 4, 3))), "scene_flow is given but flow_points is missing"),
    (dict(intrinsics_only=True), "intrinsics is given but depth is missing"),
])
def test_bad_input_names_the_problem(change, match):
    T = 3
    kw = dict(times=np.arange(T, dtype=float), partial_points=[np.zeros((4, 3))] * T,
              surface_points=np.zeros((T, 5, 3)))
    depth = np.full((T, 1, 8, 8), 2.0, np.float32)
    K = np.broadcast_to(intrinsics_from_fov(60, 8, 8), (T, 1, 3, 3))
    c2w = np.broadcast_to(np.eye(4, dtype=np.float32), (T, 1, 4, 4)).copy()
    if change.pop("depth_mm", False):
        kw.update(depth=depth * 1000, intrinsics=K, cam_to_world=c2w)
    if "rotation" in change:
        c2w[1, 0, :3, :3] = change.pop("rotation")
        kw.update(depth=depth, intrinsics=K, cam_to_world=c2w)
    if change.pop("intrinsics_only", False):
        kw.update(intrinsics=K)
    kw.update(change)
    with pytest.raises(FormatError, match=match):
        Sequence4D(**kw)


def test_load_refuses_truncated_and_foreign_files(blob, tmp_path):
    seq, _ = blob
    path = seq.save(tmp_path / "good.npz")
    data = path.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match="not a readable Sequence4D"):
        Sequence4D.load(tmp_path / "trunc.npz")
    np.savez(tmp_path / "foreign.npz", points=np.zeros((3, 3)))
    with pytest.raises(FormatError, match="not a Sequence4D file"):
        Sequence4D.load(tmp_path / "foreign.npz")
    with pytest.raises(FileNotFoundError):
        Sequence4D.load(tmp_path / "missing.npz")
    # A file whose content breaks validation is refused on load, naming the file and field.
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    arrays = {n[:-4]: np.load(tmp_path / "good.npz")[n[:-4]] for n in members}
    arrays["depth"] = arrays["depth"] * 1000
    np.savez(tmp_path / "mm.npz", **arrays)
    with pytest.raises(FormatError, match=r"mm.npz: depth: median .* millimetres"):
        Sequence4D.load(tmp_path / "mm.npz")


def _small_sequence():
    T = 3
    return Sequence4D(times=np.arange(T, dtype=float), partial_points=[np.zeros((4 + t, 3)) for t in range(T)],
                      partial_instance=[np.zeros(4 + t, np.int16) for t in range(T)],
                      surface_points=np.zeros((T, 5, 3)), object_names=["a"], meta={"name": "small"})


def _rewrite(src, dst, header=None, **changes):
    """Copy the .npz `src` to `dst` with arrays changed (None drops one) or the header replaced."""
    with np.load(src) as z:
        arrays = {k: z[k] for k in z.files}
    if header is not None:
        h = header(json.loads(bytes(arrays["__header__"]).decode()))
        arrays["__header__"] = np.frombuffer(json.dumps(h).encode(), np.uint8)
    arrays.update(changes)
    np.savez(dst, **{k: v for k, v in arrays.items() if v is not None})
    return dst


@pytest.mark.parametrize("change, match", [
    # ragged fields: the per-frame counts must describe the data exactly (7 + 5 + 6 = 15 points)
    (dict(partial_points__counts=np.array([4, 5, 2])), r"partial_points__counts: the counts add up to 11 "
                                                       r"but partial_points__data holds 15"),
    (dict(partial_points__counts=np.array([4, 5, 60])), r"partial_points__counts: .*69 .* 15"),
    (dict(partial_points__counts=np.array([-1, 10, 6])), r"partial_points__counts: negative count -1 "
                                                         r"\(frame 0\)"),
    (dict(partial_points__counts=np.array([9, 6])), r"partial_points__counts: 2 counts but times has 3 frames"),
    (dict(partial_points__counts=np.array([4.0, 5.0, 6.0])), r"partial_points__counts: .*integer.*float64"),
    (dict(partial_points__counts=np.array([[4, 5, 6]])), r"partial_points__counts: expected shape \(T,\)"),
    (dict(partial_instance__counts=np.array([4, 6, 5])), r"partial_instance__counts: the counts .*"
                                                         r"differ from partial_points__counts"),
    (dict(partial_instance__counts=None), r"partial_instance__data is stored without partial_instance__counts"),
    (dict(partial_instance__data=None), r"partial_instance__counts is stored without partial_instance__data"),
    (dict(partial_points__data=np.zeros(15)), r"partial_points\[0\]: expected shape \(N_t, 3\)"),
    # the JSON header
    (dict(header=lambda h: [h]), r"__header__: expected a JSON object, got list"),
    (dict(header=lambda h: "text"), r"__header__: expected a JSON object, got str"),
    (dict(header=lambda h: {**h, "version": "1"}), r"__header__: version must be an integer, got str '1'"),
    (dict(header=lambda h: {**h, "version": True}), r"__header__: version must be an integer, got bool"),
    (dict(header=lambda h: {**h, "flow_ref": "zero"}), r"__header__: flow_ref must be an integer, got str"),
    (dict(header=lambda h: {**h, "meta": [1, 2]}), r"__header__: meta must be a JSON object, got list"),
    (dict(header=lambda h: {**h, "object_names": "a"}), r"__header__: object_names must be a list of "
                                                         r"strings or null, got str"),
    (dict(header=lambda h: {**h, "object_names": [1]}), r"__header__: object_names must be a list of strings"),
    (dict(header=lambda h: {k: v for k, v in h.items() if k != "version"}), r"__header__: version is missing"),
    (dict(__header__=np.ones(3)), r"__header__: expected the JSON header as uint8 bytes, got float64"),
    (dict(times=np.float64(1.0)), r"times: expected shape \(T,\) with T >= 1, got \(\)"),
])
def test_load_checks_counts_and_header_types(tmp_path, change, match):
    good = _small_sequence().save(tmp_path / "good.npz")
    header = change.pop("header", None)
    bad = _rewrite(good, tmp_path / "bad.npz", header=header, **change)
    with pytest.raises(FormatError, match=match) as info:
        Sequence4D.load(bad)
    assert str(info.value).startswith(f"{bad}: ")  # names the file too
    assert Sequence4D.load(good).partial_points[2].shape == (6, 3)  # the original still loads


def test_frames_selection_keeps_flow_anchor(blob):
    seq, _ = blob
    sub = seq.frames([0, 2, 4])
    assert sub.num_frames == 3 and np.array_equal(sub.scene_flow[2], seq.scene_flow[4])
    no_ref = seq.frames([1, 2])
    assert no_ref.scene_flow is None and no_ref.partial_points is not None


def _dataset_folder(tmp_path):
    entries = []
    for i in range(3):
        seq, _ = _blob_sequence(T=6, size=32, seed=i)
        seq.save(tmp_path / f"s{i}.npz")
        entries.append({"file": f"s{i}.npz", "split": "train" if i < 2 else "test", "kind": "blob"})
    write_manifest(tmp_path, entries, {"made_by": "test"})
    return tmp_path


def test_dataset_windows_and_subsampling(tmp_path):
    folder = _dataset_folder(tmp_path)
    assert read_manifest(folder)["info"]["made_by"] == "test"
    ds = SequenceDataset(folder, split="train", frames=4, points=300, surface_points=100)
    assert len(ds) == 2
    torch.manual_seed(0)
    a = ds[0]
    assert a["partial"].shape == (4, 300, 3) and a["surface"].shape == (4, 100, 3)
    assert a["visible"].shape == (4, 100) and a["frames"].tolist() == list(range(a["frames"][0], a["frames"][0] + 4))
    seq = ds.sequence(0)
    # Sampled partial points come from the right frames' clouds.
    for s, t in enumerate(a["frames"].tolist()):
        src = {tuple(p) for p in seq.partial_points[t].tolist()}
        assert all(tuple(p) in src for p in a["partial"][s].tolist()[:50])
    torch.manual_seed(0)
    b = ds[0]
    assert torch.equal(a["partial"], b["partial"])  # reproducible under a seed
    ev = SequenceDataset(folder, split="test", frames=4, points=300, train=False)
    assert torch.equal(ev[0]["partial"], ev[0]["partial"]) and ev[0]["frames"][0] == 0
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert batch["partial"].shape == (2, 4, 300, 3)


def test_dataset_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no manifest.json"):
        SequenceDataset(tmp_path)
    folder = _dataset_folder(tmp_path)
    with pytest.raises(ValueError, match="no sequences for split='val'.*splits here: \\['test', 'train'\\]"):
        SequenceDataset(folder, split="val")
    with pytest.raises(ValueError, match="fewer than the window"):
        SequenceDataset(folder, frames=10)[0]
    (tmp_path / "manifest.json").write_text(json.dumps({"sequences": {}}))
    with pytest.raises(FormatError, match="expected"):
        read_manifest(tmp_path)


def test_dataset_foreground_only_drops_background_points_and_samples(tmp_path):
    from fourdlib.data.synthetic import generate_dataset

    generate_dataset(tmp_path / "sc", "scenes", 1, num_frames=3, image_size=(48, 48), n_surface=400,
                     workers=1, progress=False, test_frac=0.0)
    full = SequenceDataset(tmp_path / "sc", frames=3, points=200, surface_points=None, train=False)
    fg = SequenceDataset(tmp_path / "sc", frames=3, points=200, surface_points=None, train=False,
                         foreground_only=True)
    seq = full.sequence(0)
    fg_objects = np.flatnonzero(~seq.object_background)
    on_fg = np.isin(seq.surface_instance, fg_objects)
    assert 0 < on_fg.sum() < len(on_fg)  # the scene has both
    a, b = full[0], fg[0]
    assert b["surface"].shape[1] == on_fg.sum() and a["surface"].shape[1] == len(on_fg)
    assert torch.equal(b["surface"], a["surface"][:, torch.from_numpy(on_fg)])
    # every foreground partial point is one of the frame's foreground-labelled points
    for s in range(3):
        src = seq.partial_points[s][np.isin(seq.partial_instance[s], fg_objects)]
        assert {tuple(p) for p in b["partial"][s].tolist()} <= {tuple(p) for p in src.tolist()}
    # training batches need the same number of GT rows from every sequence: fewer foreground
    # samples than asked for are repeated, never padded with background or zeros
    many = SequenceDataset(tmp_path / "sc", frames=3, points=200, surface_points=int(on_fg.sum()) + 50,
                           train=True, foreground_only=True)[0]
    assert many["surface"].shape[1] == on_fg.sum() + 50
    fg_rows = {tuple(p) for p in b["surface"][0].tolist()}
    assert {tuple(p) for p in many["surface"][0].tolist()} <= fg_rows
    bare = Sequence4D(times=seq.times, partial_points=seq.partial_points, surface_points=seq.surface_points)
    bare.save(tmp_path / "bare" / "b.npz")
    write_manifest(tmp_path / "bare", [{"file": "b.npz", "split": "train"}], {})
    with pytest.raises(FormatError, match="foreground_only needs object_background"):
        SequenceDataset(tmp_path / "bare", frames=2, foreground_only=True)[0]
