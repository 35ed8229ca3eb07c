"""DeformingThings4D (Li et al., 4DComplete, ICCV 2021): the toolkit's rendered example and
the dataset's `.anime` mesh animations.

The toolkit example (`code/example/` of github.com/rabbityl/DeformingThings4D) is what the
toolkit's Blender script `anime_renderer.py` writes for one animation:

  depth/NNNN.png          uint16 z-depth in millimetres (0 = background), 600 x 500
  cam_intr.txt            3x3 K; the script casts pixel u's ray through (u - cx) / fx,
                          i.e. pixel centres at integer coordinates
  cam_extr.txt            4x4 camera-to-world with OpenCV axes: the script saves
                          `blender_to_opencv(camera.matrix_world)` = matrix_world @
                          diag(1, -1, -1, 1), Blender's world is +z up and in metres
                          (the camera sits at (2, -2, 2) looking at (0, 0, 1)), so this
                          is exactly fourdlib's `cam_to_world`
  sflow/SSSS_TTTT.exr     scene flow of frame S's visible points to frame T, float32
                          metres in the (OpenCV) camera frame; written by cv2.imwrite,
                          so x, y, z sit in the EXR channels B, G, R

`.anime` files (the dataset itself) hold one animated mesh:

  int32 nf, nv, nt | float32 vertices (nv, 3) of frame 0 | int32 faces (nt, 3)
  | float32 offsets (nf - 1, nv, 3):  vertices of frame i = vertices + offsets[i - 1]

in the same +z-up world units the toolkit renders as metres (its depth PNGs store those
units x 1000), so `scale=1.0` keeps them. Frame rate: the dataset does not state one; we
assume 30 fps (Mixamo's default, where the humanoids come from) and make it a parameter.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..geometry.cameras import depth_to_points
from .animation import AnimatedMesh, film, resolve_scale
from .realio import intrinsics_integer_centres, need_dir, need_file, read_depth_mm_png, read_exr_channels
from .sequence import FormatError, Sequence4D

DT4D_LICENCE = ("DeformingThings4D Terms of Use (non-commercial research / teaching); toolkit code "
                "under a non-commercial Creative Commons licence")
DT4D_CITATION = ("Li, Takehara, Taketomi, Zheng, Niessner. 4DComplete: Non-Rigid Motion Estimation "
                 "Beyond the Observable Surface. ICCV 2021.")
DEFAULT_FPS = 30.0


def _read_matrix(path, shape, what) -> np.ndarray:
    path = need_file(path, what)
    try:
        m = np.loadtxt(path, dtype=np.float64)
    except ValueError as e:
        raise FormatError(f"{path}: not a text matrix ({e})") from e
    if m.shape != shape:
        raise FormatError(f"{path}: expected a {shape[0]}x{shape[1]} matrix, got shape {m.shape}")
    return m


def load_dt4d_example(folder, fps: float = DEFAULT_FPS, flow: str | None = None) -> Sequence4D:
    """The DeformingThings4D toolkit example as a `Sequence4D`.

    Frames are the depth PNGs (e.g. 18..22) at times frame / fps. `flow` names one EXR in
    sflow/ (default: the only source frame found there); its source frame becomes
    `flow_ref`, its foreground points `flow_points` (world), and the scene flow is valid
    at the reference frame and at each target frame that has an EXR, False elsewhere.
    The EXR flow is camera-frame; it is rotated into the world (allocentric) with the
    camera's rotation, which is the inverse of what the toolkit applied when writing it.
    """
    folder = need_dir(folder, "DeformingThings4D example")
    depth_dir = need_dir(folder / "depth", "DeformingThings4D example depth")
    files = sorted(depth_dir.glob("*.png"))
    if not files:
        raise FileNotFoundError(f"{depth_dir}: no depth PNGs")
    ids = np.array([int(p.stem) for p in files])
    depth = np.stack([read_depth_mm_png(p) for p in files])[:, None]          # (T, 1, H, W)
    T, _, H, W = depth.shape
    Kt = _read_matrix(folder / "cam_intr.txt", (3, 3), "DeformingThings4D intrinsics")
    K = intrinsics_integer_centres(Kt[0, 0], Kt[1, 1], Kt[0, 2], Kt[1, 2])
    c2w = _read_matrix(folder / "cam_extr.txt", (4, 4), "DeformingThings4D extrinsics")
    # The toolkit renders with a static camera; one pose for every frame.
    c2w_t = np.broadcast_to(c2w.astype(np.float32), (T, 1, 4, 4)).copy()
    intr = np.broadcast_to(K, (T, 1, 3, 3)).copy()
    partial, pix = zip(*[depth_to_points(depth[t, 0], K, c2w) for t in range(T)])

    # Scene flow: sflow/SSSS_TTTT.exr, camera frame, channels (B, G, R) = (x, y, z).
    exrs = sorted((folder / "sflow").glob("*.exr")) if (folder / "sflow").is_dir() else []
    pairs = []
    for p in exrs:
        m = re.fullmatch(r"(\d+)_(\d+)", p.stem)
        if m is None:
            raise FormatError(f"{p}: scene-flow files must be named SOURCE_TARGET.exr (e.g. 0018_0022.exr)")
        pairs.append((p, int(m.group(1)), int(m.group(2))))
    if flow is not None:
        pairs = [q for q in pairs if q[0].name == flow or q[0].stem == flow]
        if not pairs:
            raise FileNotFoundError(f"{folder / 'sflow'}: no scene-flow file {flow!r}")
    kw = {}
    if pairs:
        sources = sorted({s for _, s, _ in pairs})
        if len(sources) > 1:
            raise ValueError(f"{folder / 'sflow'}: flows from several source frames {sources}; "
                             f"pick one with flow='SSSS_TTTT.exr'")
        src = sources[0]
        if src not in ids:
            raise FileNotFoundError(f"{folder}: scene flow starts at frame {src} but depth/{src:04d}.png is missing")
        ref = int(np.nonzero(ids == src)[0][0])
        pixels = pix[ref]                                                      # (P, 2) int (u, v)
        R = c2w[:3, :3]
        scene_flow = np.zeros((T, len(pixels), 3), np.float32)
        valid = np.zeros((T, len(pixels)), bool)
        valid[ref] = True
        for p, _, tgt in pairs:
            if tgt not in ids:
                raise FileNotFoundError(f"{p}: target frame {tgt} has no depth PNG in {depth_dir}")
            f_cam = read_exr_channels(p, ["B", "G", "R"])                      # (H, W, 3) = x, y, z
            if f_cam.shape[:2] != (H, W):
                raise FormatError(f"{p}: flow is {f_cam.shape[:2]} but depth is {(H, W)}")
            f = f_cam[pixels[:, 1], pixels[:, 0]]                              # (P, 3) camera frame
            ok = np.isfinite(f).all(1)
            t = int(np.nonzero(ids == tgt)[0][0])
            scene_flow[t] = np.where(ok[:, None], f, 0) @ R.T                  # to world
            valid[t] = ok
        kw = dict(flow_ref=ref, flow_points=partial[ref], flow_pixels=pixels, scene_flow=scene_flow,
                  flow_valid=valid)
    return Sequence4D(
        times=ids / fps, depth=depth, intrinsics=intr, cam_to_world=c2w_t,
        masks=(depth > 0).astype(np.int16), object_names=["character"],
        object_dynamic=np.array([True]), object_background=np.array([False]),
        partial_points=list(partial), partial_instance=[np.zeros(len(p), np.int16) for p in partial],
        meta={"name": f"dt4d_example_{ids[0]:04d}_{ids[-1]:04d}", "kind": "dt4d_example",
              "source": "DeformingThings4D toolkit example (github.com/rabbityl/DeformingThings4D, code/example)",
              "frames": ids.tolist(), "fps": fps, "fps_note": "assumed; the dataset states no frame rate",
              "licence": DT4D_LICENCE, "citation": DT4D_CITATION}, **kw)


# ------------------------------------------------------------------------------ .anime
def read_anime(path) -> tuple[np.ndarray, np.ndarray]:
    """A DeformingThings4D `.anime` file -> (vertices (nf, nv, 3) float32, faces (nt, 3) int32)."""
    path = need_file(path, "DeformingThings4D .anime file")
    raw = path.read_bytes()
    if len(raw) < 12:
        raise FormatError(f"{path}: {len(raw)} bytes, too short for the .anime header (3 int32)")
    nf, nv, nt = (int(x) for x in np.frombuffer(raw, np.int32, 3))
    if nf < 1 or nv < 3 or nt < 1:
        raise FormatError(f"{path}: header says {nf} frames, {nv} vertices, {nt} triangles; not an .anime file?")
    want = 12 + 4 * (nv * 3 + nt * 3 + (nf - 1) * nv * 3)
    if len(raw) != want:
        raise FormatError(f"{path}: header says {nf} frames x {nv} vertices + {nt} triangles = {want} bytes, "
                          f"file has {len(raw)} ({'truncated' if len(raw) < want else 'extra data'})")
    o = 12
    v0 = np.frombuffer(raw, np.float32, nv * 3, o).reshape(nv, 3)
    o += 4 * nv * 3
    faces = np.frombuffer(raw, np.int32, nt * 3, o).reshape(nt, 3)
    o += 4 * nt * 3
    offsets = np.frombuffer(raw, np.float32, (nf - 1) * nv * 3, o).reshape(nf - 1, nv, 3)
    if faces.min() < 0 or faces.max() >= nv:
        raise FormatError(f"{path}: face indices outside [0, {nv})")
    verts = np.concatenate([v0[None], v0[None] + offsets], 0)
    if not np.isfinite(verts).all():
        raise FormatError(f"{path}: NaN or inf vertex positions")
    return verts, faces.copy()


def write_anime(path, vertices, faces) -> Path:
    """Write (nf, nv, 3) vertices and (nt, 3) faces as an `.anime` file (the inverse of `read_anime`)."""
    vertices = np.asarray(vertices, np.float32)
    faces = np.asarray(faces, np.int32)
    path = Path(path)
    with open(path, "wb") as f:
        np.array([len(vertices), vertices.shape[1], len(faces)], np.int32).tofile(f)
        vertices[0].tofile(f)
        faces.tofile(f)
        (vertices[1:] - vertices[0]).tofile(f)
    return path


def load_anime(path, *, fps: float = DEFAULT_FPS, frames=None, scale=1.0, fit_size: float = 1.0) -> AnimatedMesh:
    """An `.anime` file as an `AnimatedMesh` (+z up; `scale` 1.0 keeps DT4D's metre-like units).

    frames: None for all, else indices or a slice of the file's frames (times = index / fps).
    """
    verts, faces = read_anime(path)
    idx = np.arange(len(verts)) if frames is None else np.arange(len(verts))[frames]
    if np.size(idx) == 0:
        raise ValueError(f"{path}: frame selection {frames!r} is empty ({len(verts)} frames)")
    idx = np.atleast_1d(idx)
    factor, how = resolve_scale(verts[idx], scale, fit_size)
    name = Path(path).stem                                                     # objectID_actionID
    return AnimatedMesh(times=idx / fps, vertices=verts[idx].astype(np.float64) * factor, faces=faces,
                        meta={"name": name, "kind": "dt4d", "source": Path(path).name,
                              "frames": idx.tolist(), "fps": fps, "scale": factor, "scale_mode": how,
                              "licence": DT4D_LICENCE, "citation": DT4D_CITATION})


def anime_sequence(path, image_size=(64, 64), *, frames=None, fps: float = DEFAULT_FPS, scale=1.0,
                   camera=None, views: int = 1, n_surface: int = 2048, depth_noise: float = 0.0,
                   seed: int = 0) -> Sequence4D:
    """Film an `.anime` animation like a synthetic sequence (see `film`; `camera` a CameraSpec)."""
    anim = load_anime(path, fps=fps, frames=frames, scale=scale)
    obj = anim.meta["name"].split("_")[0]
    return film(anim, image_size, camera=camera, views=views, n_surface=n_surface,
                depth_noise=depth_noise, seed=seed, meta={"object": obj})


# ------------------------------------------------------------------- dataset conversion
def assign_split(name: str, split_by: str, test_fraction: float, seed: int = 0) -> str:
    """'train' or 'test' for an animation named objectID_actionID, deterministically.

    split_by "individual": whole objects are held out (unseen individual);
             "motion":     actions are held out per object (unseen motion of a seen object);
             "random":     animations are held out at random.
    """
    import zlib

    obj, _, action = name.partition("_")
    key = {"individual": obj, "motion": name, "random": name}.get(split_by)
    if key is None:
        raise ValueError(f"split_by must be 'individual', 'motion' or 'random', got {split_by!r}")
    if split_by == "motion" and not action:
        raise ValueError(f"{name!r}: cannot split by motion, the name has no _actionID part")
    u = (zlib.crc32(f"{seed}:{key}".encode()) & 0xFFFFFFFF) / 2**32                  # stable hash in [0, 1)
    return "test" if u < test_fraction else "train"


def convert_anime_files(files, out_dir, *, frames: int = 16, step: int = 1, clips: int | None = 1,
                        image_size=(64, 64), camera=None, views: int = 1, scale=1.0, fps: float = DEFAULT_FPS,
                        split_by: str = "individual", test_fraction: float = 0.1, n_surface: int = 2048,
                        seed: int = 0) -> Path:
    """Convert `.anime` files into a dataset folder (one `.npz` per clip + manifest.json).

    Each animation is cut into clips of `frames` frames taken every `step` frames of the
    file (at most `clips` clips per animation, None for all); each clip is filmed by
    the synthetic generator's moving depth camera (`camera`: a CameraSpec, default the
    generator's; `views` cameras per frame; see `film`). Returns the manifest path.
    """
    from tqdm.auto import tqdm

    from .dataset import write_manifest

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = sorted(Path(f) for f in files)
    if not files:
        raise FileNotFoundError("convert_anime_files: no .anime files given")
    entries = []
    for i, path in enumerate(tqdm(files, desc="DT4D .anime")):
        verts, _ = read_anime(path)
        span = (frames - 1) * step + 1
        if len(verts) < span:
            raise ValueError(f"{path}: {len(verts)} frames, fewer than one clip of {frames} frames x step {step}")
        starts = range(0, len(verts) - span + 1, span)
        for c, s in enumerate(list(starts)[:clips]):
            seq = anime_sequence(path, image_size, frames=slice(s, s + span, step), fps=fps, scale=scale,
                                 camera=camera, views=views, n_surface=n_surface, seed=seed + 1000 * i + c)
            split = assign_split(path.stem, split_by, test_fraction, seed)
            seq.meta.update(split=split, clip=c)
            fname = f"{path.stem}_{c:03d}.npz"
            seq.save(out_dir / fname)
            obj, _, action = path.stem.partition("_")
            entries.append({"file": fname, "split": split, "kind": "dt4d", "num_frames": seq.num_frames,
                            "source": path.name, "object": obj, "action": action,
                            "frames": seq.meta["frames"]})
    info = {"source": "DeformingThings4D .anime", "converter": "data_scripts/convert_dt4d.py",
            "frames": frames, "step": step, "clips": clips, "image_size": list(image_size), "views": views,
            "camera": None if camera is None else camera.to_dict(),
            "scale": scale, "fps": fps, "split_by": split_by, "test_fraction": test_fraction, "seed": seed,
            "licence": DT4D_LICENCE, "citation": DT4D_CITATION}
    return write_manifest(out_dir, entries, info)
