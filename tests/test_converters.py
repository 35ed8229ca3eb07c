"""Loaders and converters on small files written here in each format (no real data needed):
glTF evaluation against hand-computed poses, DeformingThings4D `.anime` and toolkit
folders, DeepDeform flow files, Kubric MOVi examples rendered without fourdlib, and the
clear errors every bad input must raise."""
from __future__ import annotations

import importlib.util
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from fourdlib.data import FormatError, Sequence4D

ROOT = Path(__file__).resolve().parents[1]


def _script(name):
    """Import data_scripts/<name>.py as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "data_scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ============================================================================ glTF
class GltfBuilder:
    """Write small glTF 2.0 files with pygltflib: accessors into one binary buffer."""

    def __init__(self):
        import pygltflib as g

        self.g = g
        self.gltf = g.GLTF2(asset=g.Asset(version="2.0"), scenes=[g.Scene(nodes=[])], scene=0)
        self.blob = bytearray()

    def acc(self, arr, type_, ctype=5126) -> int:
        dtype = {5126: np.float32, 5125: np.uint32, 5123: np.uint16, 5121: np.uint8}[ctype]
        a = np.ascontiguousarray(arr, dtype)
        while len(self.blob) % 4:
            self.blob.append(0)
        self.gltf.bufferViews.append(self.g.BufferView(buffer=0, byteOffset=len(self.blob), byteLength=a.nbytes))
        self.blob += a.tobytes()
        self.gltf.accessors.append(self.g.Accessor(bufferView=len(self.gltf.bufferViews) - 1, componentType=ctype,
                                                   count=len(a), type=type_))
        return len(self.gltf.accessors) - 1

    def node(self, root=False, **kw) -> int:
        self.gltf.nodes.append(self.g.Node(**kw))
        i = len(self.gltf.nodes) - 1
        if root:
            self.gltf.scenes[0].nodes.append(i)
        return i

    def animation(self, channels, name="anim"):
        """channels: list of (node, path, keys, values (K or 3K, n), interpolation)."""
        samplers, chans = [], []
        for node, path, keys, values, interp in channels:
            vals = np.asarray(values, np.float32)
            type_ = {1: "SCALAR", 3: "VEC3", 4: "VEC4"}[vals.shape[1]] if vals.ndim == 2 else "SCALAR"
            samplers.append(self.g.AnimationSampler(input=self.acc(np.asarray(keys, np.float32), "SCALAR"),
                                                    output=self.acc(vals, type_), interpolation=interp))
            chans.append(self.g.AnimationChannel(sampler=len(samplers) - 1,
                                                 target=self.g.AnimationChannelTarget(node=node, path=path)))
        self.gltf.animations.append(self.g.Animation(name=name, samplers=samplers, channels=chans))

    def save(self, path: Path, binary: bool) -> Path:
        if binary:
            self.gltf.buffers = [self.g.Buffer(byteLength=len(self.blob))]
            self.gltf.set_binary_blob(bytes(self.blob))
            self.gltf.save_binary(str(path))
        else:
            bin_name = path.with_suffix(".bin").name
            (path.parent / bin_name).write_bytes(bytes(self.blob))
            self.gltf.buffers = [self.g.Buffer(byteLength=len(self.blob), uri=bin_name)]
            self.gltf.save(str(path))
        return path


def _quat_z(deg):
    a = np.deg2rad(deg) / 2
    return [0.0, 0.0, np.sin(a), np.cos(a)]                                 # glTF (x, y, z, w)


def _skinned_bar(tmp_path, interp="LINEAR", binary=True, mesh_node_offset=(0, 0, 0)):
    """A bar along +x from 0 to 2, joints at x=0 and x=1; joint1 turns 0 -> 90 deg about z.

    Vertex weights: x <= 1 -> joint0 only, x = 2 -> joint1 only. The skinned mesh node has
    a translation that the spec says to ignore."""
    b = GltfBuilder()
    g = b.g
    # a prism: the strip 0-1-2-3-4 at z = 0 and its copy 5..9 at z = 0.3, closed by side quads
    strip = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [2, 0.1, 0], [1, 0.1, 0]], np.float32)
    pos = np.concatenate([strip, strip + [0, 0, 0.3]])
    tri = np.array([[0, 1, 4], [1, 2, 3], [1, 3, 4]])
    sides = [[i, (i + 1) % 5, (i + 1) % 5 + 5] for i in range(5)] + [[i, (i + 1) % 5 + 5, i + 5] for i in range(5)]
    faces = np.concatenate([tri[:, ::-1], tri + 5, sides]).astype(np.uint32)
    joints = np.array(([[0, 0, 0, 0]] * 2 + [[1, 0, 0, 0]] * 2 + [[0, 0, 0, 0]]) * 2, np.uint8)
    weights = np.array([[1, 0, 0, 0]] * 10, np.float32)
    prim = g.Primitive(attributes=g.Attributes(POSITION=b.acc(pos, "VEC3"), JOINTS_0=b.acc(joints, "VEC4", 5121),
                                               WEIGHTS_0=b.acc(weights, "VEC4")),
                       indices=b.acc(faces.reshape(-1), "SCALAR", 5125))
    b.gltf.meshes.append(g.Mesh(primitives=[prim]))
    j1 = b.node(translation=[1.0, 0, 0])
    j0 = b.node(root=True, children=[j1])
    ibm = np.stack([np.eye(4), np.linalg.inv(np.array([[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]]))])
    ibm_acc = b.acc(ibm.transpose(0, 2, 1).reshape(2, 16), "MAT4")           # column-major
    b.gltf.skins.append(g.Skin(joints=[j0, j1], inverseBindMatrices=ibm_acc))
    b.node(root=True, mesh=0, skin=0, translation=list(mesh_node_offset))
    if interp == "CUBICSPLINE":   # (in-tangent, value, out-tangent) per key, tangents zero
        vals = [[0, 0, 0, 0], _quat_z(0), [0, 0, 0, 0], [0, 0, 0, 0], _quat_z(90), [0, 0, 0, 0]]
    else:
        vals = [_quat_z(0), _quat_z(90)]
    b.animation([(j1, "rotation", [0.0, 1.0], vals, interp)], name="bend")
    return b.save(tmp_path / ("bar.glb" if binary else "bar.gltf"), binary)


def test_gltf_skinning_matches_hand_computed_pose(tmp_path):
    from fourdlib.data.gltf import load_gltf_animation

    for binary in (True, False):   # .glb and .gltf + external .bin
        path = _skinned_bar(tmp_path, binary=binary, mesh_node_offset=(5, 5, 5))
        a = load_gltf_animation(path, "bend", [0.0, 0.25, 1.0, 2.0], scale=1.0, z_up=False)
        c, s = np.cos(np.pi / 8), np.sin(np.pi / 8)
        # vertex 2 = (2, 0, 0) rides joint1 (at x=1): 22.5 deg at t=0.25 (slerp: constant angular
        # speed; a normalised lerp would give 20.6 deg), 90 deg at t=1,
        # held after the last key; vertex 3 = (2, 0.1, 0) likewise; vertex 1 stays.
        np.testing.assert_allclose(a.vertices[0, 2], [2, 0, 0], atol=1e-6)
        np.testing.assert_allclose(a.vertices[1, 2], [1 + c, s, 0], atol=1e-6)
        np.testing.assert_allclose(a.vertices[1, 3], [1 + c - 0.1 * s, s + 0.1 * c, 0], atol=1e-6)
        np.testing.assert_allclose(a.vertices[2, 2], [1, 1, 0], atol=1e-6)
        np.testing.assert_allclose(a.vertices[3], a.vertices[2], atol=1e-6)
        np.testing.assert_allclose(a.vertices[:, 1], [[1, 0, 0]] * 4, atol=1e-6)
        np.testing.assert_allclose(a.vertices[1, 7], a.vertices[1, 2] + [0, 0, 0.3], atol=1e-6)


def test_gltf_step_and_cubicspline(tmp_path):
    from fourdlib.data.gltf import load_gltf_animation, sample_channel

    step = load_gltf_animation(_skinned_bar(tmp_path, "STEP"), 0, [0.5, 0.99, 1.0], scale=1.0, z_up=False)
    np.testing.assert_allclose(step.vertices[:2, 2], [[2, 0, 0]] * 2, atol=1e-6)    # holds the first key
    np.testing.assert_allclose(step.vertices[2, 2], [1, 1, 0], atol=1e-6)
    # Hermite basis by hand: zero tangents at s=0.25 give v0 + (3s^2 - 2s^3)(v1 - v0) = 0.15625;
    # an out-tangent b0 = 1 alone gives dt * (s^3 - 2 s^2 + s) = 2 * 0.125 at s = 0.5, dt = 2.
    vals = np.array([[0.0], [0.0], [0.0], [0.0], [1.0], [0.0]])                      # (a0, v0, b0, a1, v1, b1)
    assert sample_channel([0, 2], vals, "CUBICSPLINE", [0.5])[0, 0] == pytest.approx(0.15625)
    vals = np.array([[0.0], [0.0], [1.0], [0.0], [0.0], [0.0]])
    assert sample_channel([0, 2], vals, "CUBICSPLINE", [1.0])[0, 0] == pytest.approx(0.25)
    cubic = load_gltf_animation(_skinned_bar(tmp_path, "CUBICSPLINE"), 0, [0.0, 1.0], scale=1.0, z_up=False)
    np.testing.assert_allclose(cubic.vertices[1, 2], [1, 1, 0], atol=1e-6)


def _morph_triangle(tmp_path, animate=True, with_mesh=True):
    """One triangle under a parent node translated by (0, 1, 0), own scale 2; two morph
    targets with weights animated LINEAR from (0, 0) at t=0 to (1, 0.5) at t=2."""
    b = GltfBuilder()
    g = b.g
    if with_mesh:
        pos = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
        d1 = np.array([[0, 0, 1], [0, 0, 0], [0, 0, 0]], np.float32)
        d2 = np.array([[0, 0, 0], [0, 0, 2], [0, 0, 0]], np.float32)
        prim = g.Primitive(attributes=g.Attributes(POSITION=b.acc(pos, "VEC3")),
                           targets=[{"POSITION": b.acc(d1, "VEC3")}, {"POSITION": b.acc(d2, "VEC3")}])
        b.gltf.meshes.append(g.Mesh(primitives=[prim], weights=[0.0, 0.0]))
        child = b.node(mesh=0, scale=[2.0, 2.0, 2.0])
    else:
        child = b.node()
    b.node(root=True, children=[child], translation=[0.0, 1.0, 0.0])
    if animate:
        b.animation([(child, "weights", [0.0, 2.0], np.array([0, 0, 1, 0.5])[:, None], "LINEAR")], name="morph")
    return b.save(tmp_path / "morph.gltf", binary=False)


def test_gltf_morph_targets_hierarchy_and_axes(tmp_path):
    from fourdlib.data.gltf import load_gltf_animation

    path = _morph_triangle(tmp_path)
    a = load_gltf_animation(path, "morph", [1.0], scale=1.0, z_up=False)
    # t=1: weights (0.5, 0.25) -> local (0,0,0.5), (1,0,0.5), (0,1,0); x2 scale, + (0, 1, 0)
    np.testing.assert_allclose(a.vertices[0], [[0, 1, 1], [2, 1, 1], [0, 3, 0]], atol=1e-6)
    z = load_gltf_animation(path, "morph", [1.0], scale=1.0)                        # +Y up -> +Z up
    np.testing.assert_allclose(z.vertices[0], [[0, -1, 1], [2, -1, 1], [0, 0, 3]], atol=1e-6)
    fit = load_gltf_animation(path, "morph", [0.0, 1.0], scale="fit", fit_size=1.0)
    assert np.linalg.norm(np.ptp(fit.vertices[0], 0)) == pytest.approx(1.0)
    assert fit.meta["scale"] == pytest.approx(1 / np.sqrt(8))                      # diagonal of a 2x2 square


def test_gltf_sequence_and_converter(tmp_path):
    from fourdlib.data.gltf import gltf_sequence

    path = _skinned_bar(tmp_path)
    seq = gltf_sequence(path, 0, num_frames=3, image_size=(24, 24), n_surface=64, seed=0)
    assert seq.num_frames == 3 and seq.depth.shape == (3, 1, 24, 24)
    assert seq.meta["animation"] == "bend" and seq.meta["scale"] == 1.0
    # the GT mesh is the evaluated animation, rotated to +z up
    np.testing.assert_allclose(seq.mesh_vertices[-1, 2], [1, 0, 1], atol=1e-5)
    out = _script("convert_gltf").main([str(path), str(tmp_path / "ds"), "--frames", "3", "--image-size", "16"])
    m = json.loads(out.read_text())
    assert [e["animation"] for e in m["sequences"]] == ["bend"]
    assert Sequence4D.load(tmp_path / "ds" / m["sequences"][0]["file"]).num_frames == 3


def test_gltf_errors(tmp_path):
    from fourdlib.data.gltf import load_gltf_animation

    with pytest.raises(FormatError, match="has no animation"):
        load_gltf_animation(_morph_triangle(tmp_path, animate=False))
    path = _skinned_bar(tmp_path)
    with pytest.raises(ValueError, match="index 3 out of range"):
        load_gltf_animation(path, 3)
    with pytest.raises(ValueError, match="no animation named 'walk'"):
        load_gltf_animation(path, "walk")
    with pytest.raises(FormatError, match="no mesh"):
        load_gltf_animation(_morph_triangle(tmp_path, with_mesh=False))
    with pytest.raises(FileNotFoundError, match="glTF file"):
        load_gltf_animation(tmp_path / "nope.glb")
    trunc = tmp_path / "trunc.gltf"                                             # .bin cut short
    _morph_triangle(tmp_path).rename(trunc)
    (tmp_path / "morph.bin").write_bytes((tmp_path / "morph.bin").read_bytes()[:20])
    with pytest.raises(FormatError, match="truncated"):
        load_gltf_animation(trunc)
    with pytest.raises(ValueError, match="scale must be"):
        load_gltf_animation(path, scale="huge")


# ==================================================================== DT4D .anime
def _write_anime_by_spec(path, verts, faces):
    """.anime from the DeformingThings4D README: int32 nf, nv, nt; float32 frame-0 vertices;
    int32 faces; float32 offsets of frames 1.. from frame 0."""
    nf, nv, _ = verts.shape
    with open(path, "wb") as f:
        f.write(struct.pack("<3i", nf, nv, len(faces)))
        f.write(verts[0].astype("<f4").tobytes())
        f.write(faces.astype("<i4").tobytes())
        f.write((verts[1:] - verts[:1]).astype("<f4").tobytes())
    return path


def _breathing_sphere(n_frames=6):
    import trimesh

    ico = trimesh.creation.icosphere(subdivisions=2)
    radii = 0.5 + 0.1 * np.sin(np.linspace(0, np.pi, n_frames))
    verts = radii[:, None, None] * ico.vertices[None] + np.array([0, 0, 0.6])
    return verts.astype(np.float32), np.asarray(ico.faces, np.int32), radii


def test_anime_read_and_dataset_conversion(tmp_path):
    from fourdlib.data.dt4d import read_anime

    verts, faces, radii = _breathing_sphere(8)
    src = tmp_path / "dt4d" / "animals" / "blob_breathe"
    src.mkdir(parents=True)
    _write_anime_by_spec(src / "blob_breathe.anime", verts, faces)
    _write_anime_by_spec(src.parent / "other_breathe.anime", verts[::-1].copy(), faces)
    v, f = read_anime(src / "blob_breathe.anime")
    np.testing.assert_allclose(v, verts, atol=1e-6)
    np.testing.assert_array_equal(f, faces)

    out = tmp_path / "out"
    _script("convert_dt4d").main([str(tmp_path / "dt4d"), str(out), "--frames", "3", "--step", "2", "--clips", "0",
                                  "--image-size", "32", "--split-by", "individual", "--test-fraction", "0.5"])
    m = json.loads((out / "manifest.json").read_text())
    # 8 frames, clips of 3 frames every 2nd frame span 5 frames: one clip per animation
    assert len(m["sequences"]) == 2 and m["info"]["split_by"] == "individual"
    e = next(e for e in m["sequences"] if e["object"] == "blob")
    assert e["frames"] == [0, 2, 4] and e["action"] == "breathe" and e["split"] in ("train", "test")
    seq = Sequence4D.load(out / e["file"])
    np.testing.assert_allclose(seq.mesh_vertices, verts[[0, 2, 4]], atol=1e-6)       # scale 1: DT4D units kept
    np.testing.assert_allclose(seq.times, np.array([0, 2, 4]) / 30.0)
    for t, r in zip(range(3), radii[[0, 2, 4]]):
        # every observed point lies on that frame's (inscribed, polyhedral) sphere
        d = np.linalg.norm(seq.partial_points[t] - [0, 0, 0.6], axis=1)
        assert d.max() <= r * 1.0001 and d.min() >= 0.95 * r


def test_split_assignment_is_by_object_for_unseen_individuals():
    from fourdlib.data.dt4d import assign_split

    names = [f"obj{i}_{act}" for i in range(200) for act in ("run", "jump", "idle")]
    ind = {n: assign_split(n, "individual", 0.2) for n in names}
    for i in range(200):                                                   # all motions of one object together
        assert len({ind[f"obj{i}_{a}"] for a in ("run", "jump", "idle")}) == 1
    frac = np.mean([s == "test" for s in ind.values()])
    assert 0.1 < frac < 0.3
    mot = {n: assign_split(n, "motion", 0.2) for n in names}
    assert any(len({mot[f"obj{i}_{a}"] for a in ("run", "jump", "idle")}) == 2 for i in range(200))
    with pytest.raises(ValueError, match="split_by"):
        assign_split("a_b", "species", 0.1)


def test_anime_errors(tmp_path):
    from fourdlib.data.dt4d import read_anime

    verts, faces, _ = _breathing_sphere(3)
    path = _write_anime_by_spec(tmp_path / "a.anime", verts, faces)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(FormatError, match="truncated"):
        read_anime(path)
    (tmp_path / "b.anime").write_bytes(b"\x01\x00")
    with pytest.raises(FormatError, match="too short"):
        read_anime(tmp_path / "b.anime")
    with pytest.raises(FileNotFoundError, match=".anime"):
        read_anime(tmp_path / "missing.anime")


# ============================================================ DT4D toolkit folder
def _rot(ax, ay):
    cx, sx, cy, sy = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay)
    return np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]]) @ np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])


def _fake_dt4d_example(folder: Path, flow_world, depth_png=None, exr_channels=("B", "G", "R")):
    """A toolkit-style folder: frames 3 and 5 of a square patch 2 m in front of a posed camera,
    flow 3 -> 5 given in the world, written camera-frame with x, y, z in B, G, R."""
    import imageio.v3 as iio
    import OpenEXR

    (folder / "depth").mkdir(parents=True)
    (folder / "sflow").mkdir()
    H, W = 30, 40
    d = np.zeros((H, W), np.uint16)
    d[10:20, 12:28] = 2000
    for fid in (3, 5):
        iio.imwrite(folder / "depth" / f"{fid:04d}.png", d if depth_png is None else depth_png)
    np.savetxt(folder / "cam_intr.txt", np.array([[50.0, 0, 20], [0, 50, 15], [0, 0, 1]]))
    c2w = np.eye(4)
    c2w[:3, :3], c2w[:3, 3] = _rot(0.3, -0.5), [1, 2, 3]
    np.savetxt(folder / "cam_extr.txt", c2w)
    f_cam = np.asarray(flow_world) @ c2w[:3, :3]                            # R^T f
    img = np.zeros((H, W, 3), np.float32)
    img[d > 0] = f_cam
    ch = {n: img[..., i].copy() for i, n in enumerate(("B", "G", "R")) if n in exr_channels}
    with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}, ch) as f:
        f.write(str(folder / "sflow" / "0003_0005.exr"))
    return c2w


def test_dt4d_example_loader_on_a_made_up_folder(tmp_path):
    from fourdlib.data.dt4d import load_dt4d_example

    flow_world = np.array([0.1, -0.2, 0.3])
    c2w = _fake_dt4d_example(tmp_path / "ex", flow_world)
    seq = load_dt4d_example(tmp_path / "ex", fps=10)
    np.testing.assert_allclose(seq.times, [0.3, 0.5])
    assert seq.flow_ref == 0 and seq.flow_valid.all()
    np.testing.assert_allclose(seq.scene_flow[1], np.broadcast_to(flow_world, (160, 3)), atol=1e-6)
    np.testing.assert_allclose(seq.cam_to_world[0, 0], c2w, atol=1e-6)
    # points: 2 m along the camera's +z (OpenCV axes), toolkit pixel (u) ray through (u - cx)/fx
    cam = (seq.flow_points - c2w[:3, 3]) @ c2w[:3, :3]
    np.testing.assert_allclose(cam[:, 2], 2.0, atol=1e-6)
    u = seq.flow_pixels[:, 0]
    np.testing.assert_allclose(cam[:, 0], (u - 20) / 50 * 2.0, atol=1e-5)


def test_dt4d_example_errors(tmp_path):
    from fourdlib.data.dt4d import load_dt4d_example

    _fake_dt4d_example(tmp_path / "a", [0, 0, 0.1], exr_channels=("B", "G"))
    with pytest.raises(FormatError, match=r"\['R'\] are missing"):
        load_dt4d_example(tmp_path / "a")
    _fake_dt4d_example(tmp_path / "b", [0, 0, 0.1], depth_png=np.full((30, 40), 200, np.uint8))
    with pytest.raises(FormatError, match="must be uint16 millimetres"):
        load_dt4d_example(tmp_path / "b")
    _fake_dt4d_example(tmp_path / "c", [0, 0, 0.1], depth_png=np.full((30, 40), 3, np.uint16))
    with pytest.raises(FormatError, match="too small for millimetres"):
        load_dt4d_example(tmp_path / "c")
    _fake_dt4d_example(tmp_path / "d", [0, 0, 0.1])
    (tmp_path / "d" / "cam_extr.txt").unlink()
    with pytest.raises(FileNotFoundError, match="extrinsics"):
        load_dt4d_example(tmp_path / "d")
    with pytest.raises(FileNotFoundError, match="no folder"):
        load_dt4d_example(tmp_path / "nothing")


# ======================================================================= DeepDeform
def test_deepdeform_flow_file_reader_and_errors(tmp_path):
    from fourdlib.data.deepdeform import read_flow_file

    flow = np.random.default_rng(0).normal(size=(3, 4, 5)).astype(np.float32)     # [C, H, W]
    flow[:, 1, 2] = np.inf
    good = tmp_path / "x.sflow"
    good.write_bytes(struct.pack("<III", 5, 4, 3) + flow.tobytes())
    a = read_flow_file(good, channels=3)
    assert a.shape == (4, 5, 3) and np.isnan(a[1, 2]).all()
    np.testing.assert_array_equal(a[0, 0], flow[:, 0, 0])
    (tmp_path / "t.sflow").write_bytes(good.read_bytes()[:-8])
    with pytest.raises(FormatError, match="truncated"):
        read_flow_file(tmp_path / "t.sflow")
    (tmp_path / "h.sflow").write_bytes(struct.pack("<III", 5, 4, 0) + flow.tobytes())
    with pytest.raises(FormatError, match="bad header"):
        read_flow_file(tmp_path / "h.sflow")
    with pytest.raises(FormatError, match="3 channels, expected 2"):
        read_flow_file(good, channels=2)
    with pytest.raises(FileNotFoundError, match="flow file"):
        read_flow_file(tmp_path / "none.sflow")


def test_deepdeform_missing_intrinsics_and_bad_mask(tmp_path):
    import imageio.v3 as iio

    from fourdlib.data.deepdeform import load_deepdeform, read_mask

    iio.imwrite(tmp_path / "m.png", np.array([[0, 65535], [65535, 0]], np.uint16))
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png"), [[False, True], [True, False]])
    iio.imwrite(tmp_path / "g.png", np.array([[0, 300], [65535, 0]], np.uint16))
    with pytest.raises(FormatError, match="binary mask"):
        read_mask(tmp_path / "g.png")

    (tmp_path / "seq" / "depth").mkdir(parents=True)
    iio.imwrite(tmp_path / "seq" / "depth" / "000000.png", np.full((8, 8), 1500, np.uint16))
    with pytest.raises(FileNotFoundError, match="intrinsics"):
        load_deepdeform(tmp_path / "seq")


# ======================================================================= Kubric MOVi
def _make_movi_example(T=4, H=40, W=48, r=0.5):
    """A MOVi-style example made without fourdlib: a sphere rolling and spinning on the floor
    z = 0, filmed by a moving Blender-convention camera (looks down -z, +y up, quaternion
    (w, x, y, z)); depth = uint16 ray distance over metadata/depth_range, as MOVi stores it."""
    from scipy.spatial.transform import Rotation

    f_mm, sw_mm = 35.0, 32.0
    fx = f_mm / sw_mm * W
    t = np.arange(T)
    centres = np.stack([0.3 * t - 0.4, 0.2 + 0.1 * t, np.full(T, r)], 1)
    theta = 0.4 * t + 0.3                                                     # spin about z
    obj_q = np.stack([np.cos(theta / 2), 0 * theta, 0 * theta, np.sin(theta / 2)], 1)
    cam_p, cam_q, dist, seg = [], [], [], []
    v, u = np.meshgrid(np.arange(H) + 0.5, np.arange(W) + 0.5, indexing="ij")
    for i in range(T):
        a = 0.5 + 0.15 * i
        eye = np.array([6 * np.cos(a), 6 * np.sin(a), 3.0])
        front = -eye / np.linalg.norm(eye)
        right = np.cross(front, [0, 0, 1.0])
        right /= np.linalg.norm(right)
        R = np.stack([right, np.cross(right, front), -front], 1)
        x, y, z, w = Rotation.from_matrix(R).as_quat()                        # scipy: scalar last
        cam_p.append(eye)
        cam_q.append([w, x, y, z])
        d = np.stack([(u - W / 2) / fx, -(v - H / 2) / fx, -np.ones_like(u)], -1) @ R.T
        d /= np.linalg.norm(d, axis=-1, keepdims=True)
        s_floor = np.where(d[..., 2] < 0, -eye[2] / np.minimum(d[..., 2], -1e-12), np.inf)
        oc = eye - centres[i]
        b = d @ oc
        disc = b * b - (oc @ oc - r * r)
        s_sph = np.where(disc > 0, -b - np.sqrt(np.maximum(disc, 0)), np.inf)
        dist.append(np.minimum(s_floor, s_sph))
        seg.append((s_sph < s_floor).astype(np.uint8))
    dist = np.stack(dist)
    lo, hi = dist.min(), dist.max()
    video = np.zeros((T, H, W, 3), np.uint8)
    video[..., 0] = 200 * np.stack(seg)
    ex = {"video": video, "depth": np.round((dist - lo) / (hi - lo) * 65535).astype(np.uint16)[..., None],
          "segmentations": np.stack(seg)[..., None],
          "metadata": {"depth_range": np.array([lo, hi], np.float32), "video_name": np.array("fake0")},
          "camera": {"focal_length": np.array(f_mm, np.float32), "sensor_width": np.array(sw_mm, np.float32),
                     "positions": np.array(cam_p, np.float32), "quaternions": np.array(cam_q, np.float32)},
          "instances": {"positions": centres[None].astype(np.float32),
                        "quaternions": obj_q[None].astype(np.float32), "asset_id": np.array(["ball"])}}
    return ex, centres, theta, r


def test_movi_converter_geometry_and_flow(tmp_path):
    from fourdlib.data.kubric import flatten

    ex, centres, theta, r = _make_movi_example()
    (tmp_path / "npz").mkdir()
    np.savez(tmp_path / "npz" / "ex0.npz", **flatten(ex), **{"export/split": np.array("validation")})
    out = _script("convert_kubric").main(["convert", str(tmp_path / "npz"), str(tmp_path / "ds")])
    m = json.loads(out.read_text())
    assert m["sequences"][0]["split"] == "validation"
    seq = Sequence4D.load(tmp_path / "ds" / m["sequences"][0]["file"])
    assert seq.object_names == ["ball", "background"] and seq.object_dynamic.tolist() == [True, False]
    assert seq.object_background.tolist() == [False, True]
    for t in range(seq.num_frames):
        p, k = seq.partial_points[t], seq.partial_instance[t]
        # floor points on z = 0 and ball points on the ball: only right if the depth was
        # turned from ray distance into z-depth and the camera from Blender into OpenCV axes
        assert np.abs(p[k == 1, 2]).max() < 2e-3
        assert np.abs(np.linalg.norm(p[k == 0] - centres[t], axis=1) - r).max() < 2e-3
        assert (k == 0).sum() > 20
    # scene flow from the instance poses: the ball's points turn about z by theta_t - theta_0
    x0, k0 = seq.flow_points, seq.partial_instance[seq.flow_ref]
    for t in range(seq.num_frames):
        a = theta[t] - theta[0]
        Rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
        want = np.where((k0 == 0)[:, None], (x0 - centres[0]) @ Rz.T + centres[t], x0)
        np.testing.assert_allclose(x0 + seq.scene_flow[t], want, atol=1e-4)


def test_movi_errors(tmp_path):
    from fourdlib.data.kubric import flatten, load_movi_npz, movi_to_sequence

    ex, *_ = _make_movi_example(T=2, H=8, W=8)
    flat = flatten(ex)
    del flat["camera/quaternions"]
    np.savez(tmp_path / "bad.npz", **flat)
    with pytest.raises(FormatError, match=r"missing \['camera/quaternions'\]"):
        movi_to_sequence(load_movi_npz(tmp_path / "bad.npz"))
    flat = flatten(ex)
    del flat["metadata/depth_range"]
    with pytest.raises(FormatError, match="depth_range is missing"):
        movi_to_sequence(flat)
    with pytest.raises(FileNotFoundError, match="MOVi example"):
        load_movi_npz(tmp_path / "none.npz")
