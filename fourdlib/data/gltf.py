"""Animated glTF 2.0 assets (skinned and morph-target) -> `AnimatedMesh` -> `Sequence4D`.

trimesh loads a glTF's bind pose only, so the animation is evaluated here, following the
glTF 2.0 specification (sections "Animations", "Skins", "Morph Targets"):

1. sample every animation channel at the requested times: translation / scale / morph
   weights interpolate linearly, rotations by quaternion slerp; STEP holds the previous
   key; CUBICSPLINE is the cubic Hermite spline of (in-tangent, value, out-tangent)
   triplets; outside the keyed range the first / last key holds;
2. local node matrices T @ R @ S (or the node's fixed `matrix`), global matrices down
   the node hierarchy;
3. morph targets: position = base + sum_i w_i(t) * target_i;
4. skinning (linear blend): joint matrix j = global(joint_j) @ inverseBindMatrix_j and
   v' = sum_k w_k * joint[J_k] @ v. A skinned mesh's own node transform is ignored (the
   joints' ancestors place it); an unskinned mesh takes its node's global transform.

glTF is +Y up and nominally in metres; fourdlib is +Z up, so positions are rotated +90
degrees about x, and `scale` converts the file's units (the Fox sample is in centimetres-
like units, about 183 across: `scale=0.01` or "fit"). The applied scale is in meta.
"""
from __future__ import annotations

import base64
import warnings
from pathlib import Path

import numpy as np

from ..geometry.cameras import quaternion_to_matrix
from .animation import Y_UP_TO_Z_UP, AnimatedMesh, film, resolve_scale
from .realio import need_file
from .sequence import FormatError, Sequence4D

_COMPONENT = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16,
              5125: np.uint32, 5126: np.float32}
_NCOMP = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
_NORM = {np.int8: 127.0, np.uint8: 255.0, np.int16: 32767.0, np.uint16: 65535.0}

# Licence and attribution of the Khronos samples used in the course (from the
# PROVENANCE files of ../shared/data/real); other files get their asset.copyright.
KNOWN_ASSETS = {
    "Fox": {"licence": "CC0 1.0 (mesh) + CC-BY 4.0 (rigging and animation)",
            "attribution": "Fox: low-poly mesh by PixelMannen (CC0, opengameart.org/content/fox-and-shiba); "
                           "rigging and animation by @tomkranis (CC-BY 4.0); glTF conversion by "
                           "@AsoboStudio and @scurest. Khronos glTF-Sample-Models."},
    "CesiumMan": {"licence": "CC-BY 4.0 International with Trademark Limitations",
                  "attribution": "CesiumMan by Cesium (Khronos glTF-Sample-Assets); do not use the "
                                 "Cesium logo or trademark beyond attribution."},
    "AnimatedMorphSphere": {"licence": "CC0 1.0", "attribution": "(c) 2017 Microsoft, Khronos glTF-Sample-Assets"},
    "AnimatedMorphCube": {"licence": "CC0 1.0", "attribution": "(c) 2017 Microsoft, Khronos glTF-Sample-Assets"},
}


# ----------------------------------------------------------------------------- reading
class _Gltf:
    """A parsed glTF with its binary buffers, and typed access to accessors."""

    def __init__(self, path):
        import pygltflib

        self.path = need_file(path, "glTF file")
        try:
            self.g = pygltflib.GLTF2().load(str(self.path))
        except Exception as e:
            raise FormatError(f"{self.path}: not a readable glTF/GLB ({type(e).__name__}: {e})") from e
        if self.g is None:
            raise FormatError(f"{self.path}: not a readable glTF/GLB")
        self.buffers = [self._buffer(i, b) for i, b in enumerate(self.g.buffers)]

    def _buffer(self, i, b) -> bytes:
        if b.uri is None:  # GLB: the binary chunk
            blob = self.g.binary_blob()
            if blob is None:
                raise FormatError(f"{self.path}: buffer {i} has no uri and the file has no binary chunk")
            return bytes(blob)
        if b.uri.startswith("data:"):
            return base64.b64decode(b.uri.split(",", 1)[1])
        p = self.path.parent / b.uri
        if not p.is_file():
            raise FileNotFoundError(f"{self.path}: buffer file {b.uri!r} not found next to it (at {p})")
        return p.read_bytes()

    def accessor(self, idx: int) -> np.ndarray:
        """Accessor `idx` as (count, n) (or (count, 4, 4) for MAT4); floats as float64."""
        a = self.g.accessors[idx]
        dtype = np.dtype(_COMPONENT[a.componentType])
        n = _NCOMP[a.type]
        if a.bufferView is None:
            out = np.zeros((a.count, n), dtype)
        else:
            out = self._view(a.bufferView, a.byteOffset or 0, a.count, n, dtype, f"accessor {idx}")
        if a.sparse is not None and a.sparse.count:
            s = a.sparse
            ind = self._view(s.indices.bufferView, s.indices.byteOffset or 0, s.count, 1,
                             np.dtype(_COMPONENT[s.indices.componentType]), f"accessor {idx} sparse indices")
            val = self._view(s.values.bufferView, s.values.byteOffset or 0, s.count, n, dtype,
                             f"accessor {idx} sparse values")
            out = out.copy()
            out[ind[:, 0].astype(np.int64)] = val
        if dtype.kind == "f" or a.normalized:
            out = out.astype(np.float64)
            if a.normalized:
                out = np.maximum(out / _NORM[dtype.type], -1.0)
        if a.type == "MAT4":
            out = out.reshape(-1, 4, 4).transpose(0, 2, 1)                      # column-major
        return out

    def _view(self, view: int, offset: int, count: int, n: int, dtype, what) -> np.ndarray:
        bv = self.g.bufferViews[view]
        data = self.buffers[bv.buffer]
        item = dtype.itemsize * n
        stride = bv.byteStride or item
        start = (bv.byteOffset or 0) + offset
        end = start + stride * (count - 1) + item if count else start
        if end > (bv.byteOffset or 0) + bv.byteLength or end > len(data):
            raise FormatError(f"{self.path}: {what} reads past the end of its buffer "
                              f"(needs byte {end}, buffer has {len(data)}); truncated file?")
        arr = np.ndarray((count, n), dtype, buffer=data, offset=start, strides=(stride, dtype.itemsize))
        return arr.copy()

    def image(self, idx: int) -> np.ndarray | None:
        """Texture image `idx` as (H, W, 3) uint8, or None when it cannot be decoded."""
        import imageio.v3 as iio

        im = self.g.images[idx]
        try:
            if im.bufferView is not None:
                bv = self.g.bufferViews[im.bufferView]
                raw = self.buffers[bv.buffer][(bv.byteOffset or 0):(bv.byteOffset or 0) + bv.byteLength]
            elif im.uri and im.uri.startswith("data:"):
                raw = base64.b64decode(im.uri.split(",", 1)[1])
            else:
                raw = (self.path.parent / im.uri).read_bytes()
            a = iio.imread(raw)
        except Exception:
            return None
        if a.ndim == 2:
            a = np.repeat(a[..., None], 3, -1)
        if a.dtype != np.uint8:
            a = (a / np.iinfo(a.dtype).max * 255).astype(np.uint8) if a.dtype.kind in "ui" else \
                (np.clip(a, 0, 1) * 255).astype(np.uint8)
        return a[..., :3]


def slerp(q0, q1, s) -> np.ndarray:
    """Spherical linear interpolation of unit quaternions (..., 4) with s (...,) in [0, 1]."""
    q0 = q0 / np.linalg.norm(q0, axis=-1, keepdims=True)
    q1 = q1 / np.linalg.norm(q1, axis=-1, keepdims=True)
    d = np.sum(q0 * q1, -1)
    q1 = np.where(d[..., None] < 0, -q1, q1)                              # shortest arc
    d = np.abs(d)
    theta = np.arccos(np.clip(d, -1, 1))
    sin = np.sin(theta)
    near = sin < 1e-6                                                     # (almost) equal: lerp
    a = np.where(near, 1 - s, np.sin((1 - s) * theta) / np.where(near, 1, sin))
    b = np.where(near, s, np.sin(s * theta) / np.where(near, 1, sin))
    q = a[..., None] * q0 + b[..., None] * q1
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def sample_channel(keys, values, interpolation: str, t, rotation: bool = False) -> np.ndarray:
    """Sample one animation sampler at times t (T,).

    keys (K,) seconds; values (K, n) for LINEAR / STEP, (3K, n) for CUBICSPLINE
    (in-tangent, value, out-tangent per key). Returns (T, n).
    """
    keys = np.asarray(keys, np.float64).reshape(-1)
    t = np.asarray(t, np.float64)
    K = len(keys)
    if interpolation == "CUBICSPLINE":
        tri = values.reshape(K, 3, -1)
        a, v, b = tri[:, 0], tri[:, 1], tri[:, 2]
    else:
        v = values.reshape(K, -1)
    if K == 1:
        return np.repeat(v[:1], len(t), 0)
    if interpolation == "STEP":
        i = np.clip(np.searchsorted(keys, t, side="right") - 1, 0, K - 1)
        return v[i]
    i = np.clip(np.searchsorted(keys, t, side="right") - 1, 0, K - 2)
    dt = keys[i + 1] - keys[i]
    s = np.clip((t - keys[i]) / dt, 0.0, 1.0)
    if interpolation == "LINEAR":
        if rotation:
            return slerp(v[i], v[i + 1], s)
        return (1 - s)[:, None] * v[i] + s[:, None] * v[i + 1]
    if interpolation == "CUBICSPLINE":
        s2, s3 = s * s, s * s * s
        out = ((2 * s3 - 3 * s2 + 1)[:, None] * v[i] + (dt * (s3 - 2 * s2 + s))[:, None] * b[i]
               + (-2 * s3 + 3 * s2)[:, None] * v[i + 1] + (dt * (s3 - s2))[:, None] * a[i + 1])
        if rotation:
            out = out / np.linalg.norm(out, axis=-1, keepdims=True)
        return out
    raise FormatError(f"unknown animation interpolation {interpolation!r}")


# ------------------------------------------------------------------------- evaluation
def gltf_animations(path) -> list[dict]:
    """Name, duration and channel count of each animation in a glTF file."""
    gl = _Gltf(path)
    out = []
    for i, a in enumerate(gl.g.animations):
        t0, t1 = _time_range(gl, a)
        out.append({"index": i, "name": a.name or f"animation{i}", "start": t0, "end": t1,
                    "channels": len(a.channels)})
    return out


def _time_range(gl, anim):
    lo, hi = np.inf, -np.inf
    for s in anim.samplers:
        k = gl.accessor(s.input)
        lo, hi = min(lo, float(k.min())), max(hi, float(k.max()))
    return lo, hi


def _pick_animation(gl, animation):
    anims = gl.g.animations
    if not anims:
        raise FormatError(f"{gl.path}: has no animation (a static glTF); nothing to evaluate")
    names = [a.name or f"animation{i}" for i, a in enumerate(anims)]
    if isinstance(animation, str):
        if animation not in names:
            raise ValueError(f"{gl.path}: no animation named {animation!r}; it has {names}")
        return names.index(animation), anims[names.index(animation)]
    i = int(animation)
    if not -len(anims) <= i < len(anims):
        raise ValueError(f"{gl.path}: animation index {i} out of range; it has {len(anims)} "
                         f"animation(s): {names}")
    return i % len(anims), anims[i]


def load_gltf_animation(path, animation: int | str = 0, times=None, *, scale="auto",
                        fit_size: float = 1.0, z_up: bool = True) -> AnimatedMesh:
    """Evaluate animation `animation` (index or name) of a glTF / GLB file.

    times  None: every keyframe time of the animation; an int n: n frames evenly from its
           first to its last key; an array: those times (seconds, strictly increasing).
    scale  number, "fit" or "auto" (see `fourdlib.data.animation.resolve_scale`); the
           factor applied is `meta["scale"]`.
    z_up   rotate glTF's +Y-up frame into fourdlib's +Z-up world (default). With
           z_up=False and scale=1 you get the file's own coordinates.
    Returns an `AnimatedMesh` (all triangle primitives of all mesh nodes, merged).
    """
    gl = _Gltf(path)
    g = gl.g
    a_idx, anim = _pick_animation(gl, animation)
    t0, t1 = _time_range(gl, anim)
    if times is None:
        times = np.unique(np.concatenate([gl.accessor(s.input).reshape(-1) for s in anim.samplers]))
    elif np.isscalar(times):
        if int(times) < 1:
            raise ValueError(f"times: need at least 1 frame, got {times}")
        times = np.linspace(t0, t1, int(times)) if int(times) > 1 else np.array([t0])
    times = np.asarray(times, np.float64)
    T = len(times)

    # Per-node animated TRS (T, ...) and morph weights, starting from the rest values.
    N = len(g.nodes)
    trs = {}
    for n, node in enumerate(g.nodes):
        trs[n] = {"translation": np.tile(node.translation or [0.0, 0, 0], (T, 1)),
                  "rotation": np.tile(node.rotation or [0.0, 0, 0, 1], (T, 1)),
                  "scale": np.tile(node.scale or [1.0, 1, 1], (T, 1)), "weights": None}
    for ch in anim.channels:
        if ch.target.node is None:
            continue
        smp = anim.samplers[ch.sampler]
        keys, vals = gl.accessor(smp.input), gl.accessor(smp.output)
        path_ = ch.target.path
        trs[ch.target.node][path_] = sample_channel(keys, vals, smp.interpolation or "LINEAR", times,
                                                    rotation=path_ == "rotation")

    local = np.zeros((N, T, 4, 4))
    for n, node in enumerate(g.nodes):
        animated = any(c.target.node == n and c.target.path != "weights" for c in anim.channels)
        if node.matrix is not None and not animated:
            local[n] = np.asarray(node.matrix, np.float64).reshape(4, 4).T       # column-major
            continue
        M = np.zeros((T, 4, 4))
        M[:, :3, :3] = quaternion_to_matrix(trs[n]["rotation"], scalar_first=False) * trs[n]["scale"][:, None, :]
        M[:, :3, 3] = trs[n]["translation"]
        M[:, 3, 3] = 1
        local[n] = M
    parent = np.full(N, -1)
    for n, node in enumerate(g.nodes):
        for c in node.children or []:
            parent[c] = n
    glob: dict[int, np.ndarray] = {}

    def global_of(n):
        if n not in glob:
            glob[n] = local[n] if parent[n] < 0 else global_of(parent[n]) @ local[n]
        return glob[n]

    # Mesh nodes of the default scene (all mesh nodes when the file has no scene).
    if g.scenes:
        stack, in_scene = list(g.scenes[g.scene or 0].nodes or []), []
        while stack:
            n = stack.pop()
            in_scene.append(n)
            stack.extend(g.nodes[n].children or [])
    else:
        in_scene = list(range(N))
    mesh_nodes = sorted(n for n in in_scene if g.nodes[n].mesh is not None)
    if not mesh_nodes:
        raise FormatError(f"{gl.path}: has no mesh to animate (no node with a mesh in its scene)")

    verts, faces, colors, offset = [], [], [], 0
    for n in mesh_nodes:
        node, mesh = g.nodes[n], g.meshes[g.nodes[n].mesh]
        weights = trs[n]["weights"]
        for prim in mesh.primitives:
            tri = _triangles(gl, prim)
            if tri is None:
                continue
            pos = gl.accessor(prim.attributes.POSITION)                       # (Nv, 3)
            v = np.broadcast_to(pos, (T,) + pos.shape).copy()                 # (T, Nv, 3)
            if prim.targets:
                w = weights
                if w is None:
                    rest = node.weights or mesh.weights or [0.0] * len(prim.targets)
                    w = np.tile(rest, (T, 1))
                w = w.reshape(T, -1)
                if w.shape[1] != len(prim.targets):
                    raise FormatError(f"{gl.path}: {w.shape[1]} morph weights for {len(prim.targets)} targets")
                for i, target in enumerate(prim.targets):
                    if "POSITION" in target and target["POSITION"] is not None:
                        v += w[:, i, None, None] * gl.accessor(target["POSITION"])[None]
            if node.skin is not None:
                v = _skin(gl, g.skins[node.skin], prim, v, global_of)
            else:
                G = global_of(n)
                v = np.einsum("tij,tvj->tvi", G[:, :3, :3], v) + G[:, None, :3, 3]
            verts.append(v)
            faces.append(tri + offset)
            colors.append(_face_colors(gl, prim, tri))
            offset += v.shape[1]
    if not faces:
        raise FormatError(f"{gl.path}: has no triangle primitive (only points or lines)")
    V = np.concatenate(verts, 1)                                              # (T, Nv, 3)
    if z_up:
        V = V @ Y_UP_TO_Z_UP.T
    factor, how = resolve_scale(V, scale, fit_size)
    V = V * factor
    name = gl.path.stem
    known = KNOWN_ASSETS.get(name, {})
    anim_name = g.animations[a_idx].name or f"animation{a_idx}"
    meta = {"name": f"{name}_{anim_name}", "kind": "gltf",
            "source": str(gl.path.name), "animation": anim_name,
            "animation_index": a_idx, "animation_range_s": [t0, t1], "scale": factor,
            "scale_mode": how, "axes": "glTF +Y up rotated to +Z up" if z_up else "glTF axes (+Y up)",
            "licence": known.get("licence", "unknown: see the asset's own licence"),
            "attribution": known.get("attribution", g.asset.copyright or "")}
    return AnimatedMesh(times=times, vertices=V, faces=np.concatenate(faces),
                        face_colors=np.concatenate(colors), meta=meta)


def _triangles(gl, prim) -> np.ndarray | None:
    """(F, 3) triangle indices of a primitive (lists, strips and fans); None for points/lines."""
    mode = 4 if prim.mode is None else prim.mode
    if mode not in (4, 5, 6):
        return None
    if prim.indices is not None:
        idx = gl.accessor(prim.indices).reshape(-1).astype(np.int64)
    else:
        idx = np.arange(gl.g.accessors[prim.attributes.POSITION].count)
    if mode == 4:
        return idx[: len(idx) // 3 * 3].reshape(-1, 3)
    k = np.arange(len(idx) - 2)
    if mode == 5:  # strip: every other triangle flips to keep the winding
        odd = k % 2 == 1
        return np.stack([idx[k], np.where(odd, idx[k + 2], idx[k + 1]), np.where(odd, idx[k + 1], idx[k + 2])], 1)
    return np.stack([np.full_like(k, idx[0]), idx[k + 1], idx[k + 2]], 1)     # fan


def _skin(gl, skin, prim, v, global_of) -> np.ndarray:
    """Linear blend skinning of v (T, Nv, 3) in the mesh's bind space -> world (T, Nv, 3)."""
    attrs = prim.attributes
    J = len(skin.joints)
    ibm = (gl.accessor(skin.inverseBindMatrices) if skin.inverseBindMatrices is not None
           else np.tile(np.eye(4), (J, 1, 1)))                                # (J, 4, 4)
    joint_mats = np.stack([global_of(j) for j in skin.joints], 1) @ ibm       # (T, J, 4, 4)
    sets = [(getattr(attrs, f"JOINTS_{s}", None), getattr(attrs, f"WEIGHTS_{s}", None)) for s in range(2)]
    sets = [(j, w) for j, w in sets if j is not None and w is not None]
    if not sets:
        raise FormatError(f"{gl.path}: skinned mesh without JOINTS_0 / WEIGHTS_0")
    joints = np.concatenate([gl.accessor(j).astype(np.int64) for j, _ in sets], 1)  # (Nv, 4*s)
    weights = np.concatenate([gl.accessor(w) for _, w in sets], 1)
    if joints.max() >= J:
        raise FormatError(f"{gl.path}: JOINTS_0 index {joints.max()} but the skin has {J} joints")
    total = weights.sum(1, keepdims=True)
    weights = np.where(total > 0, weights / np.where(total > 0, total, 1), weights)
    # Blend the matrices first: (T, Nv, 3, 4) = sum_k w_k * joint_mats[:, J_k, :3]
    blend = np.einsum("vk,tvkij->tvij", weights, joint_mats[:, joints, :3, :])
    return np.einsum("tvij,tvj->tvi", blend[..., :3], v) + blend[..., 3]


def _face_colors(gl, prim, tri) -> np.ndarray:
    """(F, 3) uint8 albedo: base-colour texture at the face's mean UV x base colour factor."""
    F = len(tri)
    factor = np.ones(3)
    tex = None
    if prim.material is not None:
        pbr = gl.g.materials[prim.material].pbrMetallicRoughness
        if pbr is not None:
            if pbr.baseColorFactor:
                factor = np.asarray(pbr.baseColorFactor[:3], np.float64) ** (1 / 2.2)  # linear -> sRGB
            if pbr.baseColorTexture is not None:
                tex = pbr.baseColorTexture
    rgb = np.full((F, 3), 200.0)
    uv_acc = getattr(prim.attributes, f"TEXCOORD_{tex.texCoord or 0}", None) if tex is not None else None
    if tex is not None and uv_acc is not None and gl.g.textures[tex.index].source is not None:
        img = gl.image(gl.g.textures[tex.index].source)
        if img is not None:
            uv = gl.accessor(uv_acc)[tri].mean(1) % 1.0                       # (F, 2), repeat wrap
            H, W = img.shape[:2]
            rows = np.clip((uv[:, 1] * H).astype(int), 0, H - 1)             # glTF uv origin: top-left
            cols = np.clip((uv[:, 0] * W).astype(int), 0, W - 1)
            rgb = img[rows, cols].astype(np.float64)
    elif getattr(prim.attributes, "COLOR_0", None) is not None:
        c = gl.accessor(prim.attributes.COLOR_0)[:, :3]
        rgb = c[tri].mean(1) ** (1 / 2.2) * 255
    return np.clip(rgb * factor, 0, 255).astype(np.uint8)


def gltf_sequence(path, animation: int | str = 0, num_frames: int | None = 16,
                  image_size=(64, 64), *, scale="auto", camera=None, views: int = 1,
                  n_surface: int = 2048, depth_noise: float = 0.0, seed: int = 0) -> Sequence4D:
    """Evaluate a glTF animation and film it like a synthetic sequence (see `film`).

    num_frames frames evenly over the animation (None: its keyframe times); `camera` a
    `fourdlib.data.synthetic.CameraSpec` (default: the generator's). The sequence has RGB-D,
    partial clouds, tracked GT surface samples, visibility and exact scene flow; meta
    names the source, animation, applied scale, licence and attribution.
    """
    anim = load_gltf_animation(path, animation, num_frames, scale=scale)
    return film(anim, image_size, camera=camera, views=views, n_surface=n_surface,
                depth_noise=depth_noise, seed=seed, meta={"object": Path(path).stem})


def convert_gltf_files(files, out_dir, *, num_frames: int = 16, image_size=(64, 64), camera=None,
                       views: int = 1, scale="auto", split: str = "test", n_surface: int = 2048,
                       seed: int = 0):
    """Film every animation of each glTF / GLB file into a dataset folder (+ manifest.json).

    Real animations are few, so they default to the "test" split (evaluation on real
    motion); pass split="train" to train on them.
    """
    from tqdm.auto import tqdm

    from .dataset import write_manifest

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = sorted(Path(f) for f in files)
    if not files:
        raise FileNotFoundError("convert_gltf_files: no glTF files given")
    jobs = []
    for f in files:
        anims = gltf_animations(f)
        if not anims:
            warnings.warn(f"{f}: no animation, skipped")
        jobs += [(f, a) for a in anims]
    if not jobs:
        raise FormatError(f"none of {len(files)} glTF file(s) has an animation")
    entries = []
    for i, (path, a) in enumerate(tqdm(jobs, desc="glTF animations")):
        seq = gltf_sequence(path, a["index"], num_frames, image_size, scale=scale, camera=camera,
                            views=views, n_surface=n_surface, seed=seed + i)
        seq.meta.update(split=split)
        fname = f"{path.stem}_{a['index']:02d}.npz"
        seq.save(out_dir / fname)
        entries.append({"file": fname, "split": split, "kind": "gltf", "num_frames": seq.num_frames,
                        "source": path.name, "animation": a["name"], "licence": seq.meta["licence"]})
    info = {"source": "glTF animations", "converter": "data_scripts/convert_gltf.py", "num_frames": num_frames,
            "image_size": list(image_size), "views": views, "scale": scale, "seed": seed,
            "camera": None if camera is None else camera.to_dict()}
    return write_manifest(out_dir, entries, info)
