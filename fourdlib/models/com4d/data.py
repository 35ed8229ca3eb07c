"""COM4D's data: compositional sequences (fourdlib.data.synthetic.compositional) turned into
per-object tensors laid out (objects, frames, ...).

    prepare_sequence(seq, cfg)      one Sequence4D -> per-object surfaces, solid occupancy
                                    grids, masks and images, in normalised coordinates
    CompositionalDataset(folder)    training pairs: one static multi-object scene (F = 1) and
                                    one single-object animation window (O = 1) per item
                                    (.from_prepared: the same from prepared sequences)
    scene_inputs(prepared, ...)     the model's inputs for any sequence (mixed ones included)

Normalisation: one centre and scale per sequence, from the box around the foreground
objects' GT surfaces over all frames (centre of the box, longest half-side -> 0.9), so every
object is in [-1, 1]^3 in the SAME scene frame: objects keep their layout, which is what the
spatial blocks reason about. Background objects (the floor) are left out: COM4D generates
objects, not the room shell.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...data.dataset import read_manifest
from ...data.sequence import Sequence4D
from ...geometry.voxelize import fill_voxels, voxelize_mesh, voxels_to_dense
from .config import COM4DConfig

__all__ = ["normalize_sequence", "prepare_sequence", "object_frames", "grid_lookup", "CompositionalDataset",
           "scene_inputs"]

EXTENT = 0.9  # the longest half-side of a normalised sequence


def normalize_sequence(seq: Sequence4D) -> tuple[np.ndarray, float]:
    """(centre (3,), scale): x_normalised = (x - centre) / scale, from the foreground surface."""
    fg = _foreground(seq)
    if seq.surface_points is None or seq.surface_instance is None:
        raise ValueError(f"COM4D needs surface_points and surface_instance (sequence {seq.meta.get('name')!r})")
    pts = seq.surface_points[:, np.isin(seq.surface_instance, fg)].reshape(-1, 3)
    lo, hi = pts.min(0), pts.max(0)
    return (lo + hi) / 2, float((hi - lo).max() / 2 / EXTENT)


def _foreground(seq: Sequence4D) -> list[int]:
    if not seq.object_names:
        raise ValueError(f"sequence {seq.meta.get('name')!r} has no objects (object_names is empty)")
    bg = seq.object_background if seq.object_background is not None else np.zeros(len(seq.object_names), bool)
    fg = [k for k in range(len(seq.object_names)) if not bg[k]]
    if not fg:
        raise ValueError(f"sequence {seq.meta.get('name')!r} has no foreground object (only background)")
    return fg


def prepare_sequence(seq: Sequence4D, cfg: COM4DConfig, seed: int = 0) -> dict:
    """Per-object tensors of one sequence, normalised (see the module docstring).

    Returns: surface and occ, lists of O numpy arrays, one per object: (T_o, N, 3) float32 GT
    surface samples (N = cfg.surface_points, drawn with replacement) and (T_o, R, R, R) bool
    solid voxels over [-1, 1]^3 (R = cfg.occ_resolution), where T_o = T for a dynamic object
    and 1 for a static one (stored once; `object_frames` reads any frame); masks (O, T, H, W)
    bool (view 0), rgb (T, H, W, 3) uint8, dynamic (O,) bool, names, center, scale.
    Raises ValueError for no objects, more than cfg.max_objects, missing fields.
    """
    fg = _foreground(seq)
    if len(fg) > cfg.max_objects:
        raise ValueError(f"sequence {seq.meta.get('name')!r} has {len(fg)} objects; the model takes at most "
                         f"max_objects={cfg.max_objects}")
    for name in ("mesh_vertices", "mesh_instance", "rgb", "masks"):
        if getattr(seq, name) is None:
            raise ValueError(f"COM4D needs the sequence field {name!r} (sequence {seq.meta.get('name')!r})")
    if seq.rgb.shape[2:4] != (cfg.image_size, cfg.image_size):
        raise ValueError(f"images are {seq.rgb.shape[2:4]} but the config wants {cfg.image_size}^2; generate the "
                         "data at the config's image_size")
    center, scale = normalize_sequence(seq)
    rng = np.random.default_rng(seed)
    T, R = seq.num_frames, cfg.occ_resolution
    dyn_flags = seq.object_dynamic if seq.object_dynamic is not None else np.zeros(len(seq.object_names), bool)
    verts = ((seq.mesh_vertices - center) / scale).astype(np.float32)                     # (T, Nv, 3)
    surface, occ, masks = [], [], []
    for k in fg:
        pts = (seq.surface_points[:, seq.surface_instance == k] - center) / scale          # (T, n_k, 3)
        if pts.shape[1] == 0:
            raise ValueError(f"object {seq.object_names[k]!r} has no GT surface samples")
        frames = range(T) if dyn_flags[k] else range(1)                                   # a static object once
        surface.append(pts[list(frames)][:, rng.integers(0, pts.shape[1], cfg.surface_points)].astype(np.float32))
        faces = seq.mesh_faces[seq.mesh_instance == k]
        occ.append(np.stack([_solid(verts[t], faces, R) for t in frames]))                 # (T_o, R, R, R)
        masks.append(seq.masks[:, 0] == k + 1)                                            # (T, H, W)
    return dict(surface=surface, occ=occ, masks=np.stack(masks),
                rgb=seq.rgb[:, 0], dynamic=np.asarray([bool(dyn_flags[k]) for k in fg]),
                names=[seq.object_names[k] for k in fg], center=center.astype(np.float32), scale=scale)


def object_frames(arrays: list, objects, frames) -> np.ndarray:
    """Stack per-object arrays (T_o, ...) (prepare_sequence's surface / occ) at `frames`:
    -> (len(objects), len(frames), ...); a static object (T_o = 1) is the same in every frame."""
    return np.stack([arrays[o][[f if len(arrays[o]) > 1 else 0 for f in frames]] for o in objects])


def _solid(vertices: np.ndarray, faces: np.ndarray, R: int) -> np.ndarray:
    """Solid occupancy (R, R, R) bool of one closed mesh over [-1, 1]^3 (surface voxels, filled)."""
    vox = voxelize_mesh(vertices, faces, resolution=R, bounds=(-1.0, 1.0), outside="drop")
    return voxels_to_dense(fill_voxels(vox.coords, R), R)


def grid_lookup(grid: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Occupancy of points x (..., Q, 3) in solid grids (..., R, R, R) over [-1, 1]^3 -> (..., Q) float.

    Points outside the cube are empty."""
    R = grid.shape[-1]
    cell = torch.floor((x + 1) / 2 * R).long()                                  # (..., Q, 3)
    inside = ((cell >= 0) & (cell < R)).all(-1)
    c = cell.clamp(0, R - 1)
    flat = grid.reshape(*grid.shape[:-3], R ** 3)
    idx = (c[..., 0] * R + c[..., 1]) * R + c[..., 2]                           # (..., Q)
    return (torch.gather(flat, -1, idx) & inside).float()


def _queries(surface: torch.Tensor, n: int, std: float, gen: torch.Generator) -> torch.Tensor:
    """n occupancy queries per object-frame: half uniform in [-1, 1]^3, half near the surface.
    surface (..., N, 3) -> (..., n, 3)."""
    lead = surface.shape[:-2]
    n_near = n // 2
    uniform = torch.rand(*lead, n - n_near, 3, generator=gen) * 2 - 1
    pick = torch.randint(0, surface.shape[-2], (*lead, n_near), generator=gen)
    near = torch.gather(surface, -2, pick[..., None].expand(*lead, n_near, 3))
    near = near + std * torch.randn(near.shape, generator=gen)
    return torch.cat([uniform, near], -2)


def _image(rgb: np.ndarray) -> torch.Tensor:
    """(..., H, W, 3) uint8 -> (..., 3, H, W) float in [-1, 1]."""
    return torch.from_numpy(rgb).float().div(127.5).sub(1).movedim(-1, -3)


class CompositionalDataset(torch.utils.data.Dataset):
    """Training pairs for attention parsing: item i = {"static": scene, "dynamic": animation}.

    static   one multi-object layout at one random frame (the camera moves, the objects
             do not): O = max_objects slots (obj_valid marks the real ones), F = 1.
    dynamic  one creature, a random window of cfg.train_frames consecutive frames: O = 1, F = W.
    Each holds surface (O, F, N, 3), queries (O, F, Q, 3) with occ labels (O, F, Q), image
    (F, 3, H, W) in [-1, 1], masks (O, F, H, W) float, obj_valid (O,), dynamic (O,) bool.
    For the VAE stage, "dynamic" animations are also shrunk by a random factor in
    [cfg.dynamic_scale, 1] and moved inside the cube ("vae_surface", "vae_queries", "vae_occ"),
    so that the VAE sees creatures at the sizes they have inside a room; the DiT's tensors
    are not (the image would not show it). Mixed sequences are refused.
    Every sequence is prepared once, in memory (`prepare_sequence`).
    """

    def __init__(self, folder, cfg: COM4DConfig, split: str = "train", seed: int = 0):
        self.cfg = cfg
        entries = [e for e in read_manifest(folder)["sequences"] if e["split"] == split]
        if not entries:
            raise ValueError(f"{folder}: no sequences in split {split!r}")
        self.static, self.dynamic = [], []
        for i, e in enumerate(entries):
            mode = e.get("mode")
            if mode == "mixed" or e.get("eval_only"):
                raise ValueError(f"{e['file']} is a mixed sequence: COM4D never trains on one")
            if mode not in ("static", "dynamic"):
                raise ValueError(f"{e['file']} is not a compositional static/dynamic sequence (mode {mode!r})")
            seq = Sequence4D.load(Path(folder) / e["file"])
            if mode == "dynamic" and seq.num_frames < cfg.train_frames:
                raise ValueError(f"{e['file']} has {seq.num_frames} frames, fewer than the window "
                                 f"train_frames={cfg.train_frames}")
            (self.static if mode == "static" else self.dynamic).append(prepare_sequence(seq, cfg, seed + i))
        if not self.static or not self.dynamic:
            raise ValueError(f"split {split!r} of {folder} needs static AND dynamic sequences, got "
                             f"{len(self.static)} and {len(self.dynamic)}")

    @classmethod
    def from_prepared(cls, cfg: COM4DConfig, static: list, dynamic: list) -> "CompositionalDataset":
        """The same pairs from sequences already prepared (prepare_sequence's dicts): `static`
        layouts (every object static) and `dynamic` single animations (one dynamic object with at
        least cfg.train_frames frames). For a notebook's overfit on a handful of sequences."""
        for p in static:
            if bool(np.any(p["dynamic"])):
                raise ValueError(f"static layout {p['names']} has a dynamic object")
        for p in dynamic:
            if len(p["names"]) != 1 or not bool(p["dynamic"][0]):
                raise ValueError(f"an animation must hold one dynamic object, got {p['names']} (dynamic "
                                 f"{list(p['dynamic'])})")
            if p["rgb"].shape[0] < cfg.train_frames:
                raise ValueError(f"animation {p['names']} has {p['rgb'].shape[0]} frames, fewer than the window "
                                 f"train_frames={cfg.train_frames}")
        if not static or not dynamic:
            raise ValueError(f"need static AND dynamic sequences, got {len(static)} and {len(dynamic)}")
        ds = cls.__new__(cls)
        ds.cfg, ds.static, ds.dynamic = cfg, list(static), list(dynamic)
        return ds

    def __len__(self) -> int:
        return max(len(self.static), len(self.dynamic))

    def __getitem__(self, i: int) -> dict:
        cfg = self.cfg
        gen = torch.Generator().manual_seed(int(torch.randint(0, 2 ** 31, (1,)).item()))  # follows the loop's seed
        s = self.static[i % len(self.static)]
        d = self.dynamic[i % len(self.dynamic)]
        # static: one frame, all objects, padded to max_objects
        T = s["rgb"].shape[0]
        t = int(torch.randint(0, T, (1,), generator=gen))
        O, M = len(s["names"]), cfg.max_objects
        static = self._item(s, [t], range(O), gen)
        pad = M - O
        for key, v in static.items():
            if key != "image":
                static[key] = torch.cat([v, v.new_zeros(pad, *v.shape[1:])]) if pad else v
        static["obj_valid"] = torch.arange(M) < O
        # dynamic: a window of W consecutive frames of the one creature
        W = cfg.train_frames
        t0 = int(torch.randint(0, d["rgb"].shape[0] - W + 1, (1,), generator=gen))
        dynamic = self._item(d, list(range(t0, t0 + W)), [0], gen)
        dynamic["obj_valid"] = torch.ones(1, dtype=torch.bool)
        # the VAE's shrunk copy of the animation (see the class docstring)
        k = cfg.dynamic_scale + (1 - cfg.dynamic_scale) * float(torch.rand((), generator=gen))
        off = (torch.rand(3, generator=gen) * 2 - 1) * EXTENT * (1 - k)
        dynamic["vae_surface"] = dynamic["surface"] * k + off
        dynamic["vae_queries"] = _queries(dynamic["vae_surface"], cfg.occ_points, cfg.near_std, gen)
        grid = torch.from_numpy(object_frames(d["occ"], [0], range(t0, t0 + W)))     # (1, W, R, R, R)
        dynamic["vae_occ"] = grid_lookup(grid, (dynamic["vae_queries"] - off) / k)
        return {"static": static, "dynamic": dynamic}

    def _item(self, p: dict, frames: list[int], objects, gen) -> dict:
        objects = list(objects)
        surface = torch.from_numpy(object_frames(p["surface"], objects, frames))      # (O, F, N, 3)
        queries = _queries(surface, self.cfg.occ_points, self.cfg.near_std, gen)      # (O, F, Q, 3)
        grid = torch.from_numpy(object_frames(p["occ"], objects, frames))             # (O, F, R, R, R)
        return dict(surface=surface, queries=queries, occ=grid_lookup(grid, queries),
                    image=_image(p["rgb"][frames]),                                   # (F, 3, H, W)
                    masks=torch.from_numpy(p["masks"][objects][:, frames]).float(),   # (O, F, H, W)
                    dynamic=torch.from_numpy(p["dynamic"][objects]))


def scene_inputs(p: dict, frames=None) -> dict:
    """Batch-of-one model inputs of a prepared sequence (any mode), frames (default all):
    image (1, F, 3, H, W), masks (1, O, F, H, W), dynamic (1, O), obj_valid (1, O), and the GT
    surface (1, O, F, N, 3) and occupancy grids (1, O, F, R, R, R) for evaluation."""
    frames = list(range(p["rgb"].shape[0])) if frames is None else list(frames)
    return dict(image=_image(p["rgb"][frames])[None],
                masks=torch.from_numpy(p["masks"][:, frames]).float()[None],
                dynamic=torch.from_numpy(p["dynamic"])[None],
                obj_valid=torch.ones(1, len(p["names"]), dtype=torch.bool),
                surface=torch.from_numpy(object_frames(p["surface"], range(len(p["names"])), frames))[None],
                occ=torch.from_numpy(object_frames(p["occ"], range(len(p["names"])), frames))[None])
