"""k3d views of point clouds, meshes, sparse voxels and Gaussians, still or animated.

Every `show_*` function takes numpy arrays or torch tensors and returns a `k3d.Plot`.
It never displays anything itself: a notebook cell that ends in the plot shows it, and
`fourdlib.viz.save_html(plot, path)` writes it as a standalone page, so a headless
papermill run never waits on a widget.

Time: a single frame (N, 3) is a still picture. A sequence, either a (T, N, 3) array or
a list of T arrays (N_t, 3) whose counts may differ (partial clouds), is animated the
k3d way: every animated trait is a dict keyed by time, {"0.0": frame0, "1.0": frame1,
...}. The key of frame t is t itself, so the plot's time slider reads in frames, and
`plot.time_speed = fps` plays `fps` frames per second. Frames are shown as they are,
without blending (`time_interpolation=False`): partial clouds have no point-to-point
correspondence, and a blend would invent motion. The last frame is repeated at time T so
that the playback loop shows it as long as the others (k3d shows the frame at or before
the current time, and the loop wraps at the last key).

Colours: `colors` are per point, (N, 3) floats in [0, 1] or integers in 0..255; `values`
colour by a number (error, attention, time) through a colormap shared by all frames,
drawn by k3d itself, so the view gets a colour bar; `color` is one packed 0xRRGGBB for
everything. Give at most one of the three.
"""
from __future__ import annotations

import html
from typing import Any, Mapping, Sequence

import k3d
import numpy as np
from k3d.colormaps import matplotlib_color_maps
from k3d.helpers import pack_colors

from ..geometry.cameras import quaternion_to_matrix

DEFAULT_FPS = 4.0  # frames per second of the playback loop: slow enough to follow a motion
# Default colour of each panel / object: the matplotlib "tab10" palette, packed 0xRRGGBB.
PALETTE = (0x1F77B4, 0xFF7F0E, 0x2CA02C, 0xD62728, 0x9467BD, 0x8C564B, 0xE377C2, 0x7F7F7F)


# ----------------------------------------------------------------------------- inputs

def to_numpy(x: Any) -> np.ndarray:
    """numpy view of an array-like or a torch tensor (any device, bf16 included)."""
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch here
        x = x.detach().cpu()
        x = x.float() if x.is_floating_point() else x
        return x.numpy()
    return np.asarray(x)


def _check_finite(a: np.ndarray, name: str) -> None:
    if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or inf")


def as_frames(x: Any, name: str = "points") -> list[np.ndarray]:
    """A cloud (N, 3), a sequence (T, N, 3) or a list of T clouds (N_t, 3) -> list of float32 (N_t, 3).

    Refuses an empty sequence, an empty frame, a wrong shape and NaN/inf, naming the frame.
    """
    if isinstance(x, (list, tuple)):
        frames = [to_numpy(f) for f in x]
    else:
        a = to_numpy(x)
        if a.ndim == 2:
            frames = [a]
        elif a.ndim == 3:
            frames = list(a)
        else:
            raise ValueError(f"{name} must be (N, 3), (T, N, 3) or a list of (N_t, 3); got shape {a.shape}")
    if len(frames) == 0:
        raise ValueError(f"{name} is an empty sequence (no frames)")
    out = []
    for t, f in enumerate(frames):
        where = f"{name}" if len(frames) == 1 else f"{name} frame {t}"
        if f.ndim != 2 or f.shape[1] != 3:
            raise ValueError(f"{where} must have shape (N, 3); got {f.shape}")
        if len(f) == 0:
            raise ValueError(f"{where} is empty (0 points)")
        if not np.issubdtype(f.dtype, np.number):
            raise ValueError(f"{where} must be numeric; got dtype {f.dtype}")
        f = f.astype(np.float32)
        _check_finite(f, where)
        out.append(f)
    return out


def _per_frame(x: Any, counts: Sequence[int], name: str, ndim: int) -> np.ndarray | list[np.ndarray] | None:
    """Per-point data (`ndim` = dims of one frame's array) for frames with `counts` points.

    One array shared by every frame stays one array (static in k3d); a (T, ...) array or a
    list of T arrays gives one array per frame. Row counts must match the frames'.
    """
    if x is None:
        return None
    if isinstance(x, (list, tuple)):
        items = [to_numpy(a) for a in x]
    else:
        a = to_numpy(x)
        if a.ndim == ndim:
            items = None
            shared = a
        elif a.ndim == ndim + 1:
            items = list(a)
        else:
            raise ValueError(f"{name} has shape {a.shape}; expected {ndim} dims for one frame or {ndim + 1} for a sequence")
    if items is None:
        for t, n in enumerate(counts):
            if len(shared) != n:
                raise ValueError(f"{name} has {len(shared)} rows but frame {t} has {n} points")
        return shared
    if len(items) != len(counts):
        raise ValueError(f"{name} has {len(items)} frames but the points have {len(counts)}")
    for t, (a, n) in enumerate(zip(items, counts)):
        if a.ndim != ndim or len(a) != n:
            raise ValueError(f"{name} frame {t} has shape {a.shape} but that frame has {n} points")
    return items


def _map(fn, x):
    """Apply fn to one shared array or to each frame's array."""
    return fn(x) if isinstance(x, np.ndarray) else [fn(a) for a in x]


def _series(x: np.ndarray | list[np.ndarray]) -> np.ndarray | dict[str, np.ndarray]:
    """One array stays static; a list of T > 1 frames becomes k3d's {"t": frame} dict.

    Frame t sits at time t; the last frame is repeated at time T so that the playback loop
    (which wraps at the last key) shows it for a whole frame too.
    """
    if isinstance(x, np.ndarray):
        return x
    if len(x) == 1:
        return x[0]
    series = {str(float(t)): a for t, a in enumerate(x)}
    series[str(float(len(x)))] = x[-1]
    return series


# ----------------------------------------------------------------------------- colours

def colormap(cmap: str = "viridis") -> np.ndarray:
    """k3d's matplotlib colormap `cmap` as a (K, 4) table of (value in [0, 1], r, g, b)."""
    names = {n.lower(): n for n in dir(matplotlib_color_maps) if not n.startswith("_")}
    if cmap.lower() not in names:
        raise ValueError(f"unknown colormap {cmap!r}; try one of viridis, inferno, turbo, coolwarm, rdbu")
    return np.asarray(getattr(matplotlib_color_maps, names[cmap.lower()]), np.float32).reshape(-1, 4)


def _value_range(values: np.ndarray | list[np.ndarray], value_range=None) -> list[float]:
    if value_range is not None:
        lo, hi = (float(v) for v in value_range)
        if not hi > lo:
            raise ValueError(f"value_range must be (low, high) with high > low; got {value_range}")
        return [lo, hi]
    arrays = [values] if isinstance(values, np.ndarray) else values
    lo = min(float(a.min()) for a in arrays)
    hi = max(float(a.max()) for a in arrays)
    return [lo, hi] if hi > lo else [lo - 0.5, lo + 0.5]  # a constant value: centre of the map


def color_by(values: Any, cmap: str = "viridis", value_range=None) -> np.ndarray:
    """(N,) values -> (N, 3) float RGB in [0, 1] through `cmap`, linear between `value_range`.

    The same table and mapping k3d uses for `values=`, for when an RGB array is wanted
    (e.g. to mix colourings, or for another viewer). Values outside the range are clamped.
    """
    v = to_numpy(values).astype(np.float64)
    if v.ndim != 1:
        raise ValueError(f"values must have shape (N,); got {v.shape}")
    if len(v) == 0:
        raise ValueError("values is empty")
    _check_finite(v, "values")
    lo, hi = _value_range(v, value_range)
    table = colormap(cmap)
    s = np.clip((v - lo) / (hi - lo), 0.0, 1.0)
    return np.stack([np.interp(s, table[:, 0], table[:, c]) for c in (1, 2, 3)], axis=1)


def color_by_time(frames: Any, cmap: str = "viridis") -> list[np.ndarray]:
    """One colour per frame, from the start of `cmap` (frame 0) to its end (frame T-1).

    Returns a list of T (N_t, 3) float RGB arrays, ready for `colors=`; concatenated with
    the frames, it draws a whole sequence in one still picture with time as colour.
    """
    frames = as_frames(frames)
    T = len(frames)
    per_frame = color_by(np.arange(T, dtype=np.float64), cmap, (0, max(T - 1, 1)))  # (T, 3)
    return [np.repeat(per_frame[t][None], len(f), axis=0) for t, f in enumerate(frames)]


def _pack(c: np.ndarray, name: str = "colors") -> np.ndarray:
    """(N, 3) floats in [0, 1] or integers in 0..255 -> packed uint32 0xRRGGBB."""
    if c.ndim != 2 or c.shape[1] != 3:
        raise ValueError(f"{name} must have shape (N, 3); got {c.shape}")
    if np.issubdtype(c.dtype, np.floating):
        _check_finite(c, name)
        if c.min() < -1e-6 or c.max() > 1 + 1e-6:
            raise ValueError(f"{name} are floats in [{c.min():g}, {c.max():g}]; floats must be in [0, 1] "
                             "(pass uint8 for 0..255)")
        c = np.clip(c, 0.0, 1.0)
    elif np.issubdtype(c.dtype, np.integer):
        if c.min() < 0 or c.max() > 255:
            raise ValueError(f"{name} are integers in [{c.min()}, {c.max()}]; integers must be in 0..255")
    else:
        raise ValueError(f"{name} must be float or integer; got dtype {c.dtype}")
    packed, _ = pack_colors(c)
    return packed


def _check_values(v: np.ndarray, name: str = "values") -> np.ndarray:
    v = v.astype(np.float32)
    _check_finite(v, name)
    return v


def _gather(x, index):
    """Per-item data (one shared array or one per frame) -> per-vertex data x[index].

    index: None (data are already per vertex), one array, or one array per frame."""
    if index is None:
        return x
    if isinstance(index, np.ndarray):
        return _map(lambda a: a[index], x)
    xs = [x] * len(index) if isinstance(x, np.ndarray) else x
    return [a[i] for a, i in zip(xs, index)]


def _coloring(colors, values, color, counts, cmap, value_range, default_color, index=None) -> dict:
    """k3d keyword arguments for one of `colors`, `values` or `color` (at most one).

    `index` maps per-item data to the vertices that draw the item (voxels, ellipsoids)."""
    if sum(x is not None for x in (colors, values, color)) > 1:
        raise ValueError("give at most one of color, colors and values")
    if colors is not None:
        packed = _map(_pack, _per_frame(colors, counts, "colors", ndim=2))
        return {"colors": _series(_gather(packed, index))}
    if values is not None:
        vals = _map(_check_values, _per_frame(values, counts, "values", ndim=1))
        return {"attribute": _series(_gather(vals, index)), "color_map": colormap(cmap),
                "color_range": _value_range(vals, value_range)}
    return {"color": int(default_color if color is None else color)}


# ----------------------------------------------------------------------------- plots

def new_plot(**kwargs) -> k3d.Plot:
    """A k3d plot with the course's defaults: world +z up (the Sequence4D convention)."""
    kwargs.setdefault("camera_up_axis", "z")
    return k3d.plot(**kwargs)


def _bbox(frames: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    lo = np.min([f.min(0) for f in frames], axis=0)
    hi = np.max([f.max(0) for f in frames], axis=0)
    return lo, hi


def auto_point_size(frames: list[np.ndarray]) -> float:
    """About half the mean spacing of points spread over the bounding box's diagonal."""
    lo, hi = _bbox(frames)
    diag = float(np.linalg.norm(hi - lo))
    if diag == 0.0:
        return 0.01  # a single point (or all points equal): 1 cm
    n = float(np.median([len(f) for f in frames]))
    return float(np.clip(0.5 * diag / np.sqrt(n), diag / 1000, diag / 20))


def _animate(plot: k3d.Plot, n_frames: int, fps: float) -> None:
    """Play frames at `fps` frames per second, shown as they are (no blending)."""
    if n_frames > 1:
        if not fps > 0:
            raise ValueError(f"fps must be > 0; got {fps}")
        plot.time_interpolation = False
        plot.time_speed = float(fps)


def show_points(points: Any, colors: Any = None, values: Any = None, color: int | None = None,
                cmap: str = "viridis", value_range=None, point_size: float | None = None,
                shader: str = "flat", name: str | None = None, plot: k3d.Plot | None = None,
                offset=None, fps: float = DEFAULT_FPS) -> k3d.Plot:
    """A point cloud (N, 3) or an animated sequence ((T, N, 3) or a list of (N_t, 3)).

    colors: (N, 3) per point (shared by all frames) or one per frame; values: (N,) or one
    per frame, coloured through `cmap` over `value_range` (default: min..max over all
    frames); color: one packed 0xRRGGBB. point_size defaults to `auto_point_size`.
    offset (3,) moves the drawing (not the data), e.g. to set clouds side by side.
    shader "flat" draws discs in exactly the given colour; "3d" draws shaded balls.
    Adds to `plot` when given, and returns the plot.
    """
    frames = as_frames(points, "points")
    counts = [len(f) for f in frames]
    style = _coloring(colors, values, color, counts, cmap, value_range, PALETTE[0])
    extra = {} if offset is None else {"translation": [float(v) for v in to_numpy(offset).reshape(3)]}
    size = auto_point_size(frames) if point_size is None else float(point_size)
    if not size > 0:
        raise ValueError(f"point_size must be > 0; got {point_size}")
    plot = new_plot() if plot is None else plot
    _animate(plot, len(frames), fps)
    plot += k3d.points(positions=_series(frames), point_size=size, shader=shader, name=name, **style, **extra)
    return plot


def show_mesh(vertices: Any, faces: Any, colors: Any = None, values: Any = None, color: int | None = None,
              cmap: str = "viridis", value_range=None, wireframe: bool = False, opacity: float = 1.0,
              name: str | None = None, plot: k3d.Plot | None = None, offset=None,
              fps: float = DEFAULT_FPS) -> k3d.Plot:
    """A triangle mesh: vertices (Nv, 3), or (T, Nv, 3) / a list of T for a deforming mesh
    with fixed topology, and faces (F, 3) integer indices into the vertices.

    colors / values are per vertex, like `show_points`. Drawn two-sided, so that open
    surfaces and flipped faces are visible too.
    """
    frames = as_frames(vertices, "vertices")
    nv = len(frames[0])
    if any(len(f) != nv for f in frames):
        raise ValueError(f"every frame of vertices must have the same count (fixed topology); got {[len(f) for f in frames]}")
    f = to_numpy(faces)
    if f.ndim != 2 or f.shape[1] != 3 or len(f) == 0:
        raise ValueError(f"faces must have shape (F, 3) with F > 0; got {f.shape}")
    if not np.issubdtype(f.dtype, np.integer):
        raise ValueError(f"faces must be integer indices; got dtype {f.dtype}")
    if f.min() < 0 or f.max() >= nv:
        raise ValueError(f"faces index vertices in [{f.min()}, {f.max()}] but there are {nv} vertices")
    style = _coloring(colors, values, color, [nv] * len(frames), cmap, value_range, PALETTE[0])
    extra = {} if offset is None else {"translation": [float(v) for v in to_numpy(offset).reshape(3)]}
    plot = new_plot() if plot is None else plot
    _animate(plot, len(frames), fps)
    plot += k3d.mesh(vertices=_series(frames), indices=f.astype(np.uint32), wireframe=wireframe,
                     opacity=float(opacity), side="double", flat_shading=False, name=name, **style, **extra)
    return plot


# The 6 faces of the unit cube [0, 1]^3: outward direction and 4 corners, counter-clockwise
# seen from outside (so that the triangles (0, 1, 2), (0, 2, 3) face outwards).
_CUBE_DIRS = np.array([[-1, 0, 0], [1, 0, 0], [0, -1, 0], [0, 1, 0], [0, 0, -1], [0, 0, 1]])
_CUBE_QUADS = np.array([[[0, 0, 0], [0, 0, 1], [0, 1, 1], [0, 1, 0]],   # x = 0
                        [[1, 0, 0], [1, 1, 0], [1, 1, 1], [1, 0, 1]],   # x = 1
                        [[0, 0, 0], [1, 0, 0], [1, 0, 1], [0, 0, 1]],   # y = 0
                        [[0, 1, 0], [0, 1, 1], [1, 1, 1], [1, 1, 0]],   # y = 1
                        [[0, 0, 0], [0, 1, 0], [1, 1, 0], [1, 0, 0]],   # z = 0
                        [[0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]]],  # z = 1
                       np.float32)


def voxel_mesh(coords: np.ndarray, voxel_size: float, origin) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Surface of a set of integer voxels: only the faces between a voxel and empty space.

    Voxel (i, j, k) covers origin + [ijk, ijk + 1) * voxel_size (like pixel i covering
    [i, i + 1)). Returns vertices (4K, 3) float32, triangles (2K, 3) and, per vertex, the
    index of its voxel (4K,), for K exposed faces. Faces between two voxels are left out:
    they cannot be seen, and a solid block would otherwise cost six faces per voxel.
    """
    coords = np.asarray(coords).astype(np.int64)                                    # (M, 3)
    lo = coords.min(0) - 1
    dims = coords.max(0) - lo + 2                 # room for every neighbour
    key = np.ravel_multi_index((coords - lo).T, dims)
    if len(np.unique(key)) != len(key):
        raise ValueError("coords contain the same voxel twice")
    voxel, corners = [], []
    for d, quad in zip(_CUBE_DIRS, _CUBE_QUADS):
        exposed = np.nonzero(~np.isin(np.ravel_multi_index((coords + d - lo).T, dims), key))[0]  # (k,)
        voxel.append(exposed)
        corners.append(coords[exposed][:, None, :] + quad[None])                     # (k, 4, 3)
    voxel = np.concatenate(voxel)                                                    # (K,)
    vertices = (np.asarray(origin, np.float32) + np.concatenate(corners) * voxel_size).reshape(-1, 3)
    quad_tris = np.array([[0, 1, 2], [0, 2, 3]])
    faces = (quad_tris[None] + 4 * np.arange(len(voxel))[:, None, None]).reshape(-1, 3)
    return vertices.astype(np.float32), faces, np.repeat(voxel, 4)


def show_voxels(coords: Any, colors: Any = None, values: Any = None, color: int | None = None,
                voxel_size: float = 1.0, origin=(0.0, 0.0, 0.0), cmap: str = "viridis", value_range=None,
                name: str | None = None, plot: k3d.Plot | None = None, offset=None,
                fps: float = DEFAULT_FPS) -> k3d.Plot:
    """Sparse voxels: integer coords (M, 3), or a list of T (M_t, 3) / (T, M, 3) animated.

    Voxel (i, j, k) is the cube origin + [ijk, ijk + 1) * voxel_size in world units. colors
    (M, 3) / values (M,) are per voxel. Drawn as the mesh of the exposed cube faces
    (`voxel_mesh`): unlike k3d's own voxel objects it takes any RGB colour per voxel and
    can be animated with a varying count.
    """
    frames = as_frames(coords, "coords")
    for t, c in enumerate(frames):
        if not np.array_equal(c, np.round(c)):
            raise ValueError(f"coords{'' if len(frames) == 1 else f' frame {t}'} must be integer voxel indices")
    if not voxel_size > 0:
        raise ValueError(f"voxel_size must be > 0; got {voxel_size}")
    origin = to_numpy(origin).astype(np.float32).reshape(3)
    meshes = [voxel_mesh(c, float(voxel_size), origin) for c in frames]
    # each voxel's colour / value goes to the corners of its faces
    style = _coloring(colors, values, color, [len(c) for c in frames], cmap, value_range, PALETTE[0],
                      index=[voxel for _, _, voxel in meshes])
    extra = {} if offset is None else {"translation": [float(v) for v in to_numpy(offset).reshape(3)]}
    plot = new_plot() if plot is None else plot
    _animate(plot, len(frames), fps)
    plot += k3d.mesh(vertices=_series([v for v, _, _ in meshes]),
                     indices=_series([f.astype(np.uint32) for _, f, _ in meshes]),
                     flat_shading=True, name=name, **style, **extra)
    return plot


def show_gaussians(means: Any, scales: Any, rotations: Any = None, colors: Any = None,
                   opacities: Any = None, style: str = "points", name: str | None = None,
                   plot: k3d.Plot | None = None, offset=None, fps: float = DEFAULT_FPS) -> k3d.Plot:
    """3D Gaussians: means (G, 3), scales (G, 3) standard deviations (exp of the log-scales
    a model stores), rotations (G, 4) quaternions (w, x, y, z), colors (G, 3), opacities (G,)
    in [0, 1]. means may be a sequence (T, G, 3) / list; the others are shared or per frame.

    k3d has no Gaussian primitive, so:
      style="points": a disc per Gaussian, 2 x its largest standard deviation wide, with
        its opacity; fast for any count, ignores the rotation and the anisotropy;
      style="ellipsoids": the 1-sigma ellipsoid of each Gaussian (scaled, rotated
        icosphere, 42 vertices), translucent by opacity; shows shape, for <= 20,000 Gaussians.
    """
    if style not in ("points", "ellipsoids"):
        raise ValueError(f"style must be 'points' or 'ellipsoids'; got {style!r}")
    frames = as_frames(means, "means")
    counts = [len(m) for m in frames]
    T = len(frames)

    def check_scales(s):
        if s.shape[1:] != (3,):
            raise ValueError(f"scales must have shape (G, 3); got {s.shape}")
        s = s.astype(np.float32)
        _check_finite(s, "scales")
        if s.min() <= 0:
            raise ValueError(f"scales must be positive standard deviations (exp of log-scales); got min {s.min():g}")
        return s

    def check_opacities(o):
        o = o.astype(np.float32)
        _check_finite(o, "opacities")
        if o.min() < 0 or o.max() > 1:
            raise ValueError(f"opacities must be in [0, 1] (after the sigmoid); got [{o.min():g}, {o.max():g}]")
        return o

    scales = _map(check_scales, _per_frame(scales, counts, "scales", 2))
    if opacities is not None:
        opacities = _map(check_opacities, _per_frame(opacities, counts, "opacities", 1))
    extra = {} if offset is None else {"translation": [float(v) for v in to_numpy(offset).reshape(3)]}
    plot = new_plot() if plot is None else plot
    _animate(plot, T, fps)

    if style == "points":
        coloring = _coloring(colors, None, None, counts, "viridis", None, PALETTE[0])
        sizes = _series(_map(lambda s: 2.0 * s.max(axis=1), scales))  # (G,) disc diameters
        op = {} if opacities is None else {"opacities": _series(opacities)}
        plot += k3d.points(positions=_series(frames), point_sizes=sizes, point_size=1.0, shader="flat",
                           name=name, **coloring, **op, **extra)
    else:  # ellipsoids
        import trimesh
        if max(counts) > 20_000:
            raise ValueError(f"{max(counts)} Gaussians are too many to draw as ellipsoids; use style='points'")

        def rotation(q):
            if q.shape[1:] != (4,):
                raise ValueError(f"rotations must be (G, 4) quaternions (w, x, y, z); got {q.shape}")
            q = q.astype(np.float64)
            _check_finite(q, "rotations")
            if (np.linalg.norm(q, axis=1) == 0).any():
                raise ValueError("rotations contain a zero quaternion")
            return quaternion_to_matrix(q).astype(np.float32)

        def each_frame(x):  # shared -> the same array for every frame
            return [x] * T if isinstance(x, np.ndarray) else x

        if rotations is None:
            R = [np.broadcast_to(np.eye(3, dtype=np.float32), (n, 3, 3)) for n in counts]
        else:
            R = each_frame(_map(rotation, _per_frame(rotations, counts, "rotations", 2)))
        sphere = trimesh.creation.icosphere(subdivisions=1)
        unit = np.asarray(sphere.vertices, np.float32)                                  # (V, 3)
        V = len(unit)
        verts = [(m[:, None, :] + np.einsum("gij,gj,vj->gvi", r, s, unit)).reshape(-1, 3).astype(np.float32)
                 for m, r, s in zip(frames, R, each_frame(scales))]                       # T x (G*V, 3)

        def tiled(n):  # the sphere's triangles for n Gaussians, and the Gaussian of each vertex
            faces = np.asarray(sphere.faces)[None] + V * np.arange(n)[:, None, None]  # (n, F, 3)
            return faces.reshape(-1, 3).astype(np.uint32), np.repeat(np.arange(n), V)

        if len(set(counts)) == 1:  # a fixed count: one static topology
            faces, owner = tiled(counts[0])
        else:
            faces, owner = (list(x) for x in zip(*(tiled(n) for n in counts)))
        coloring = _coloring(colors, None, None, counts, "viridis", None, PALETTE[0], index=owner)
        op = {} if opacities is None else {"opacities": _series(_map(lambda o: np.repeat(o, V), opacities)),
                                           "alpha_mode": "blend"}
        plot += k3d.mesh(vertices=_series(verts), indices=_series(faces), flat_shading=False,
                         name=name, **coloring, **op, **extra)
    return plot


def show_flow(origins: Any, vectors: Any, values: Any = None, color: int | None = None,
              cmap: str = "viridis", value_range=None, head_size: float | None = None,
              line_width: float | None = None, name: str | None = None,
              plot: k3d.Plot | None = None) -> k3d.Plot:
    """Scene flow (or any 3D vectors) as arrows from `origins` (N, 3) to origins + vectors.

    values (N,): colour each arrow through `cmap` (e.g. its end-point error); color: one
    packed 0xRRGGBB for all. Arrow heads and lines scale with the median arrow length.
    """
    o, v = to_numpy(origins).astype(np.float32), to_numpy(vectors).astype(np.float32)
    if o.ndim != 2 or o.shape[1] != 3 or o.shape != v.shape:
        raise ValueError(f"origins and vectors must both be (N, 3); got {o.shape} and {v.shape}")
    if len(o) == 0:
        raise ValueError("no arrows to draw (empty origins)")
    _check_finite(o, "origins")
    _check_finite(v, "vectors")
    if values is not None and color is not None:
        raise ValueError("give at most one of color and values")
    if values is not None:
        vals = _check_values(to_numpy(values).reshape(-1), "values")
        if len(vals) != len(o):
            raise ValueError(f"values has {len(vals)} entries for {len(o)} arrows")
        packed = _pack(color_by(vals, cmap, value_range), "values")
    else:
        packed = np.full(len(o), int(PALETTE[0] if color is None else color), np.uint32)
    scale = float(np.median(np.linalg.norm(v, axis=1))) or auto_point_size([o])
    plot = new_plot() if plot is None else plot
    plot += k3d.vectors(o, v, colors=np.repeat(packed, 2).astype(np.uint32), name=name,
                        head_size=head_size or 2.0 * scale, line_width=line_width or 0.05 * scale)
    return plot


def side_by_side(panels: Mapping[str, Any], colors: Mapping[str, Any] | None = None,
                 values: Mapping[str, Any] | None = None, cmap: str = "viridis", value_range=None,
                 spacing: float | None = None, point_size: float | None = None,
                 fps: float = DEFAULT_FPS, plot: k3d.Plot | None = None, aspect: float | None = 1.5) -> k3d.Plot:
    """Point clouds or sequences next to each other along +x, labelled, in one plot.

    panels: {"input": seq, "prediction": seq, "GT": seq}, left to right, each a cloud or a
    sequence; all share the plot's one time axis (frame t of each at time t).
    colors / values: optional {label: ...} per panel as in `show_points`; `values` share one
    colour range over all panels (so equal errors look equal). Panels without either get a
    palette colour. spacing: x distance between panels (default: 1.1 x the larger of the x and y extents).
    The data keep their coordinates; only the drawing is moved.
    aspect: width / height of the canvas the view is framed for: the camera looks at the
    row from the front, slightly from above, just far enough for the whole row to fit, so
    each panel fills its share of the width (k3d's own fit frames the row's bounding
    sphere, which leaves a wide row small in the middle). None: k3d's automatic fit.
    """
    if len(panels) == 0:
        raise ValueError("panels is empty")
    colors, values = dict(colors or {}), dict(values or {})
    for key in list(colors) + list(values):
        if key not in panels:
            raise ValueError(f"colors/values given for {key!r}, which is not a panel ({list(panels)})")
        if key in colors and key in values:
            raise ValueError(f"panel {key!r} has both colors and values; give one")
    frames = {label: as_frames(p, f"panel {label!r}") for label, p in panels.items()}
    lo, hi = _bbox([f for fs in frames.values() for f in fs])
    # Space panels by the larger horizontal extent: a shape long along y seen at an angle
    # would otherwise overlap its neighbour on screen.
    width = float(np.max(hi[:2] - lo[:2]))
    extent = float(np.max(hi - lo)) or 1.0
    if spacing is None:
        spacing = 1.1 * width if width > 0 else extent
    if not spacing > 0:
        raise ValueError(f"spacing must be > 0; got {spacing}")
    if values:  # one colour range over every panel's values
        values = {label: _map(_check_values, _per_frame(v, [len(f) for f in frames[label]], f"values[{label!r}]", 1))
                  for label, v in values.items()}
        value_range = _value_range([a for v in values.values() for a in ([v] if isinstance(v, np.ndarray) else v)],
                                   value_range)
    size = point_size or min(auto_point_size(f) for f in frames.values())
    plot = new_plot() if plot is None else plot
    for k, (label, fs) in enumerate(frames.items()):
        offset = (k * spacing, 0.0, 0.0)
        style = {}
        if label in colors:
            style["colors"] = colors[label]
        elif label in values:
            style.update(values=values[label], value_range=value_range, cmap=cmap)
        else:
            style["color"] = PALETTE[k % len(PALETTE)]
        show_points(fs, point_size=size, name=label, plot=plot, offset=offset, fps=fps, **style)
        centre = [(lo[0] + hi[0]) / 2 + k * spacing, (lo[1] + hi[1]) / 2, hi[2] + 0.1 * extent]
        plot += k3d.text(html.escape(label), position=centre, reference_point="cb", is_html=True,
                         color=0x222222, label_box=False, name=f"{label} label")
    if aspect is not None:
        _frame_row(plot, lo, hi + np.array([(len(frames) - 1) * spacing, 0.0, 0.15 * extent]), aspect)
    return plot


def _frame_row(plot: k3d.Plot, lo: np.ndarray, hi: np.ndarray, aspect: float, elevation_deg: float = 15.0) -> None:
    """Point the camera at the box [lo, hi] from the front (-y), `elevation_deg` above, at the
    distance where the box's width and height fit a canvas of this aspect (k3d's camera_fov
    is the vertical field of view)."""
    if not aspect > 0:
        raise ValueError(f"aspect must be > 0 (canvas width / height), got {aspect}")
    size = np.maximum(hi - lo, 1e-6)
    target = (lo + hi) / 2
    tan_v = np.tan(np.radians(plot.camera_fov) / 2)
    dist = 1.12 * max(size[0] / 2 / (tan_v * aspect), size[2] / 2 / tan_v) + size[1] / 2
    el = np.radians(elevation_deg)
    eye = target + dist * np.array([0.0, -np.cos(el), np.sin(el)])
    plot.camera_auto_fit = False
    plot.camera = [*map(float, eye), *map(float, target), 0.0, 0.0, 1.0]
