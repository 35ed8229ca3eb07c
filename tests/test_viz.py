"""Views: k3d objects and plotly traces built right, bad input refused, and what a person
sees in a browser (headless Chromium screenshots; skipped where Chromium is absent)."""
import re

import numpy as np
import pandas as pd
import pytest
import torch
import trimesh

from fourdlib import viz

RNG = np.random.default_rng(0)


def cloud(n=200, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 3)).astype(np.float32)


def only(plot, kind):
    objs = [o for o in plot.objects if o.type == kind]
    assert len(objs) == 1
    return objs[0]


# ----------------------------------------------------------------------------- k3d objects

def test_still_cloud_keeps_positions_and_packs_colours():
    p = cloud(3)
    plot = viz.show_points(p, colors=np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]))
    pts = only(plot, "Points")
    np.testing.assert_array_equal(pts.positions, p)
    np.testing.assert_array_equal(pts.colors, [0xFF0000, 0x00FF00, 0x0000FF])
    assert plot.get_time_series_times() == []  # a still picture has no time axis
    # the same colours given as uint8 pack the same way
    pts8 = only(viz.show_points(p, colors=np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)), "Points")
    np.testing.assert_array_equal(pts8.colors, pts.colors)


def test_sequence_of_partial_clouds_is_a_time_series():
    counts = [100, 130, 80]
    seq = [cloud(n, seed=t) for t, n in enumerate(counts)]
    plot = viz.show_points(seq, colors=[np.full((n, 3), 0.5) for n in counts], fps=5)
    pts = only(plot, "Points")
    # frame t at time t, the last one repeated at time T so that the loop shows it a whole frame
    assert list(pts.positions) == ["0.0", "1.0", "2.0", "3.0"]
    for t in range(3):
        np.testing.assert_array_equal(pts.positions[str(float(t))], seq[t])
        assert len(pts.colors[str(float(t))]) == counts[t]
    np.testing.assert_array_equal(pts.positions["3.0"], seq[2])
    assert plot.get_time_series_times() == [0.0, 1.0, 2.0, 3.0]
    assert plot.time_speed == 5.0 and plot.time_interpolation is False


def test_array_sequence_with_shared_colours_keeps_colours_static():
    seq = np.stack([cloud(50, seed=t) for t in range(4)])  # (T, N, 3)
    pts = only(viz.show_points(seq, colors=np.ones((50, 3))), "Points")
    assert len(pts.positions) == 5
    assert isinstance(pts.colors, np.ndarray) and pts.colors.shape == (50,)


def test_values_use_one_colour_range_over_all_frames():
    seq = [cloud(40, seed=t) for t in range(3)]
    vals = [np.full(40, float(t)) for t in range(3)]  # frame t has value t everywhere
    pts = only(viz.show_points(seq, values=vals, cmap="inferno"), "Points")
    assert list(pts.color_range) == [0.0, 2.0]
    np.testing.assert_array_equal(pts.attribute["1.0"], vals[1])
    np.testing.assert_allclose(np.asarray(pts.color_map).reshape(-1, 4), viz.colormap("inferno"))


def test_torch_input_and_point_size():
    t = torch.tensor(cloud(100), dtype=torch.bfloat16)
    plot = viz.show_points(t, values=t[:, 0])
    pts = only(plot, "Points")
    np.testing.assert_array_equal(pts.positions, t.float().numpy())
    # the auto size is half the spacing of N points spread over the box's diagonal
    p = t.float().numpy()
    diag = np.linalg.norm(p.max(0) - p.min(0))
    assert pts.point_size == pytest.approx(0.5 * diag / np.sqrt(100), rel=1e-5)


def test_color_by_matches_viridis():
    rgb = viz.color_by(np.array([0.0, 5.0, 10.0]), "viridis")
    # matplotlib's viridis at 0, 0.5 and 1 (published values, not computed here)
    np.testing.assert_allclose(rgb, [[0.267004, 0.004874, 0.329415], [0.127568, 0.566949, 0.550556],
                                     [0.993248, 0.906157, 0.143936]], atol=4e-3)
    # clamped outside an explicit range
    np.testing.assert_allclose(viz.color_by(np.array([-1.0, 2.0]), value_range=(0, 1)), rgb[[0, 2]], atol=1e-6)


def test_color_by_time_gives_one_colour_per_frame():
    seq = [cloud(n) for n in (10, 20, 30)]
    cols = viz.color_by_time(seq, "viridis")
    assert [c.shape for c in cols] == [(10, 3), (20, 3), (30, 3)]
    np.testing.assert_allclose(cols[0][0], viz.color_by(np.array([0.0, 1.0]))[0], atol=1e-6)
    np.testing.assert_allclose(cols[2][-1], viz.color_by(np.array([0.0, 1.0]))[1], atol=1e-6)
    assert all(np.ptp(c, axis=0).max() == 0 for c in cols)  # constant within a frame


def test_side_by_side_panels_share_time_and_values_range():
    seq = [cloud(30, seed=t) for t in range(3)]
    err = [np.linspace(0, 1, 30) for _ in range(3)]
    plot = viz.side_by_side({"input": seq, "prediction": [s * 2 for s in seq], "GT": seq[0]},
                            values={"prediction": [e * 3 for e in err]}, spacing=10.0)
    points = [o for o in plot.objects if o.type == "Points"]
    labels = [o for o in plot.objects if o.type == "Text"]
    assert [o.name for o in points] == ["input", "prediction", "GT"]
    assert sorted(o.text for o in labels) == sorted(["input", "prediction", "GT"])
    # panels are moved by the drawing's transform, the data keep their coordinates
    np.testing.assert_array_equal(points[1].positions["2.0"], seq[2] * 2)
    np.testing.assert_allclose([np.asarray(o.model_matrix).reshape(4, 4)[0, 3] for o in points], [0, 10, 20])
    assert list(points[1].color_range) == [0.0, 3.0]
    assert plot.get_time_series_times() == [0.0, 1.0, 2.0, 3.0]


def test_mesh_time_series_and_vertex_values():
    s = trimesh.creation.icosphere(subdivisions=1)
    v = np.asarray(s.vertices, np.float32)
    verts = np.stack([v, v * 2])  # (T, Nv, 3)
    m = only(viz.show_mesh(verts, s.faces, values=v[:, 2]), "Mesh")
    assert list(m.vertices) == ["0.0", "1.0", "2.0"]
    np.testing.assert_array_equal(m.vertices["1.0"], v * 2)
    np.testing.assert_array_equal(m.indices, s.faces)
    np.testing.assert_array_equal(m.attribute, v[:, 2])


def test_voxel_mesh_is_the_closed_surface_of_the_voxels():
    origin = np.array([1.0, 1.0, 1.0])
    verts, faces, owner = viz.voxel_mesh(np.array([[2, 0, 1]]), 0.5, origin)
    np.testing.assert_allclose(verts.min(0), [2.0, 1.0, 1.5])  # voxel ijk covers origin + [ijk, ijk+1) * size
    np.testing.assert_allclose(verts.max(0), [2.5, 1.5, 2.0])
    cube = trimesh.Trimesh(verts, faces)  # merges the corners the faces share
    assert cube.is_watertight and cube.volume == pytest.approx(0.125)  # positive: faces point outwards
    # a 2 x 2 x 2 block: the 24 faces between voxels are left out, 24 outer faces remain
    block = np.stack(np.meshgrid(*[np.arange(2)] * 3, indexing="ij"), -1).reshape(-1, 3)
    verts, faces, owner = viz.voxel_mesh(block, 1.0, np.zeros(3))
    assert len(faces) == 2 * 24 and len(owner) == len(verts) == 4 * 24
    box = trimesh.Trimesh(verts, faces)
    assert box.is_watertight and box.volume == pytest.approx(8.0)
    assert np.bincount(owner, minlength=8).tolist() == [3 * 4] * 8  # each corner voxel shows 3 faces
    with pytest.raises(ValueError, match="same voxel twice"):
        viz.voxel_mesh(np.array([[0, 0, 0], [0, 0, 0]]), 1.0, np.zeros(3))


def test_show_voxels_animated_with_varying_count():
    frames = [np.array([[0, 0, 0]]), np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0]])]
    colors = [np.array([[1.0, 0, 0]]), np.array([[0, 0, 1.0], [0, 1.0, 0], [0, 1.0, 0]])]
    m = only(viz.show_voxels(frames, colors=colors, voxel_size=0.1), "Mesh")
    assert list(m.vertices) == ["0.0", "1.0", "2.0"]
    assert len(m.vertices["0.0"]) == 6 * 4 and len(m.indices["0.0"]) == 6 * 2
    # an L of 3 voxels: 18 faces, less 2 x 2 hidden between neighbours
    assert len(m.indices["1.0"]) == 14 * 2 and m.indices["1.0"].max() == 14 * 4 - 1
    np.testing.assert_array_equal(m.colors["0.0"], [0xFF0000] * 24)  # a voxel's colour on its faces' corners
    # frame 1: voxel 0 (blue, one neighbour) shows 5 faces; the green ones 4 (two neighbours) + 5
    assert sorted(np.unique(m.colors["1.0"], return_counts=True)[1].tolist()) == [5 * 4, 9 * 4]


def test_gaussians_as_points_and_ellipsoids():
    means = np.array([[0.0, 0, 0], [1.0, 1, 1]])
    scales = np.array([[1.0, 2.0, 3.0], [0.1, 0.1, 0.1]])
    c45 = np.cos(np.pi / 4)
    quats = np.array([[c45, 0, 0, c45], [1.0, 0, 0, 0]])  # (w, x, y, z): 90 deg about z, identity
    pts = only(viz.show_gaussians(means, scales, quats, opacities=np.array([0.5, 1.0])), "Points")
    np.testing.assert_allclose(pts.point_sizes, [6.0, 0.2], rtol=1e-6)  # 2 x largest sigma
    np.testing.assert_allclose(pts.opacities, [0.5, 1.0])
    mesh = only(viz.show_gaussians(means, scales, quats, colors=np.array([[1.0, 0, 0], [0, 0, 1.0]]),
                                   style="ellipsoids"), "Mesh")
    V = len(mesh.vertices) // 2
    np.testing.assert_array_equal(mesh.colors, [0xFF0000] * V + [0x0000FF] * V)  # a colour per ellipsoid
    v = np.asarray(mesh.vertices).reshape(2, -1, 3)
    # every vertex of Gaussian 0 lies on its 1-sigma ellipsoid: |S^-1 R^T (v - mu)| = 1,
    # with R the 90-degree turn about z written out by hand
    R = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
    np.testing.assert_allclose(np.linalg.norm((v[0] @ R) / scales[0], axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm((v[1] - means[1]) / scales[1], axis=1), 1.0, atol=1e-5)


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("points, match", [
    (np.zeros((0, 3)), "empty"),
    ([cloud(5), np.zeros((0, 3))], "frame 1 is empty"),
    ([], "empty sequence"),
    (np.array([[0.0, np.nan, 0]]), "NaN"),
    (np.zeros((5, 2)), r"shape \(N, 3\)"),
])
def test_bad_points_are_refused(points, match):
    with pytest.raises(ValueError, match=match):
        viz.show_points(points)


def test_bad_colours_and_values_are_refused():
    p = cloud(10)
    with pytest.raises(ValueError, match="colors has 9 rows but frame 0 has 10 points"):
        viz.show_points(p, colors=np.ones((9, 3)))
    with pytest.raises(ValueError, match=r"floats must be in \[0, 1\]"):
        viz.show_points(p, colors=np.full((10, 3), 255.0))
    with pytest.raises(ValueError, match="values contains NaN"):
        viz.show_points(p, values=np.full(10, np.nan))
    with pytest.raises(ValueError, match="at most one of"):
        viz.show_points(p, colors=np.ones((10, 3)), values=np.ones(10))
    with pytest.raises(ValueError, match="unknown colormap"):
        viz.show_points(p, values=np.ones(10), cmap="nope")
    with pytest.raises(ValueError, match="values has 2 frames but the points have 3"):
        viz.show_points([p, p, p], values=[np.ones(10)] * 2)


def test_bad_mesh_voxels_gaussians_are_refused():
    with pytest.raises(ValueError, match="faces index vertices"):
        viz.show_mesh(cloud(3), np.array([[0, 1, 3]]))
    with pytest.raises(ValueError, match="same count"):
        viz.show_mesh([cloud(3), cloud(4)], np.array([[0, 1, 2]]))
    with pytest.raises(ValueError, match="integer voxel indices"):
        viz.show_voxels(np.array([[0.5, 0, 0]]))
    with pytest.raises(ValueError, match="scales must be positive"):
        viz.show_gaussians(cloud(2), np.array([[1.0, 1, 1], [-1, 1, 1]]))
    with pytest.raises(ValueError, match="opacities must be in"):
        viz.show_gaussians(cloud(2), np.ones((2, 3)), opacities=np.array([0.5, 2.0]))
    with pytest.raises(ValueError, match="zero quaternion"):
        viz.show_gaussians(cloud(2), np.ones((2, 3)), np.zeros((2, 4)), style="ellipsoids")


# ----------------------------------------------------------------------------- plotly

def test_plot_curves_skips_unlogged_steps_and_picks_log_axis():
    history = [{"step": s, "loss": 10.0 * 0.9 ** s} | ({"val_loss": 20.0 * 0.9 ** s} if s % 10 == 0 else {})
               for s in range(100)]
    fig = viz.plot_curves(history, keys=("loss", "val_loss"))
    loss, val = fig.data
    assert (loss.name, val.name) == ("loss", "val_loss")
    np.testing.assert_array_equal(val.x, np.arange(0, 100, 10))
    np.testing.assert_allclose(val.y, 20.0 * 0.9 ** np.arange(0, 100, 10))
    assert fig.layout.yaxis.type == "log"  # 10 .. 3e-4 spans over two decades
    flat = viz.plot_curves(pd.DataFrame({"step": [0, 1, 2], "acc": [0.5, 0.6, 0.7]}), keys="acc")
    assert flat.layout.yaxis.type != "log"
    with pytest.raises(ValueError, match="no column 'psnr'"):
        viz.plot_curves(history, keys="psnr")
    with pytest.raises(ValueError, match="loss is inf at step 1"):
        viz.plot_curves([{"step": 0, "loss": 1.0}, {"step": 1, "loss": float("inf")}])


def test_plot_bars_paper_vs_ours():
    df = pd.DataFrame({"method": ["A", "A", "B", "B"], "source": ["paper", "ours"] * 2,
                       "chamfer": [0.1, 0.12, 0.2, np.nan]})
    fig = viz.plot_bars(df, x="method", y="chamfer", color="source")
    by_name = {t.name: t for t in fig.data}
    assert set(by_name) == {"paper", "ours"}
    np.testing.assert_allclose(by_name["paper"].y, [0.1, 0.2])
    assert fig.layout.barmode == "group" and fig.layout.template.layout.paper_bgcolor == "white"
    with pytest.raises(ValueError, match="no column 'psnr'"):
        viz.plot_bars(df, x="method", y="psnr")


# ----------------------------------------------------------------------------- HTML

def test_save_html_is_self_contained(tmp_path):
    still = viz.save_html(viz.show_points(cloud(20)), tmp_path / "a" / "still.html")
    moving = viz.save_html(viz.show_points([cloud(20), cloud(30)]), tmp_path / "moving.html")
    curve = viz.save_html(viz.plot_curves([{"step": 0, "loss": 1.0}, {"step": 1, "loss": 0.5}]), tmp_path / "c.html")
    for page in (still, moving, curve):
        text = page.read_text()
        assert not re.search(r"""<(script|link)[^>]*(src|href)=["']?https?:""", text)  # nothing fetched online
        assert viz.html.READY_ATTRIBUTE in text
    assert "startAutoPlay" in moving.read_text() and "startAutoPlay" not in still.read_text()
    assert curve.stat().st_size > 1_000_000  # plotly.js itself is inside
    plot = viz.show_points(cloud(5))
    plot.snapshot_type = "inline"
    with pytest.raises(ValueError, match="offline"):
        viz.save_html(plot, tmp_path / "x.html")
    with pytest.raises(TypeError, match="k3d.Plot or a plotly Figure"):
        viz.save_html(np.zeros(3), tmp_path / "x.html")


# ----------------------------------------------------------------------------- as a person sees it

needs_chromium = pytest.mark.skipif(viz.find_chromium() is None, reason="Chromium not installed")
slow = pytest.mark.slow  # each opens a page in Chromium: 3-10 s


def screenshot(view, tmp_path, name):
    """The view as a person sees it: (600, 800, 3) RGB of the scene area of a screenshot."""
    import imageio.v3 as iio
    png = viz.screenshot_html(viz.save_html(view, tmp_path / f"{name}.html"), tmp_path / f"{name}.png", size=(800, 600))
    img = iio.imread(png)[..., :3].astype(int)
    assert img.shape == (600, 800, 3)
    assert img.std() > 5, "the page is blank"
    return img


def near(img, rgb, tol=60):
    return np.abs(img - np.array(rgb)).max(-1) <= tol


def scene(img):
    """Crop away k3d's menu (top right), colour bar (bottom left) and axes helper (bottom right)."""
    out = img.copy()
    out[:110, 560:] = 255
    out[400:, :110] = 255
    out[480:, 680:] = 255
    return out


@slow
@needs_chromium
def test_browser_draws_red_points(tmp_path):
    img = scene(screenshot(viz.show_points(cloud(1500), color=0xFF0000), tmp_path, "red"))
    red = near(img, (255, 0, 0))
    ys, xs = np.nonzero(red)
    assert red.sum() > 1000, f"only {red.sum()} red pixels"
    assert np.ptp(xs) > 100 and np.ptp(ys) > 100  # a cloud, not a dot


@slow
@needs_chromium
def test_browser_draws_animated_side_by_side_left_to_right(tmp_path):
    seq = [cloud(300 + 50 * t, seed=t) * 0.5 for t in range(4)]
    plot = viz.side_by_side({"input": seq, "prediction": [s + 0.1 for s in seq], "GT": seq})
    img = scene(screenshot(plot, tmp_path, "side"))
    centres = []
    for rgb in (0x1F77B4, 0xFF7F0E, 0x2CA02C):  # the palette colours of the three panels
        mask = near(img, ((rgb >> 16) & 255, (rgb >> 8) & 255, rgb & 255), tol=40)
        assert mask.sum() > 200, f"panel colour {rgb:06x}: only {mask.sum()} pixels"
        centres.append(np.nonzero(mask)[1].mean())
    assert centres[0] < centres[1] < centres[2], centres  # input | prediction | GT
    # framed for the canvas: the row spans most of its width (k3d's own fit left it a third)
    drawn = np.nonzero((img < 200).any(-1))[1]
    assert np.ptp(drawn) > 0.6 * img.shape[1], f"the row spans only {np.ptp(drawn)} of {img.shape[1]} pixels"


@slow
@needs_chromium
def test_browser_draws_mesh_coloured_by_value(tmp_path):
    s = trimesh.creation.icosphere(subdivisions=3)
    v = np.asarray(s.vertices)
    img = scene(screenshot(viz.show_mesh(v, s.faces, values=v[:, 0], cmap="viridis"), tmp_path, "mesh"))
    yellow = (img[..., 0] > 150) & (img[..., 1] > 150) & (img[..., 2] < 100)   # viridis high: +x
    purple = (img[..., 2] > img[..., 1] + 20) & (img[..., 2] > 60)             # viridis low: -x
    assert yellow.sum() > 1000 and purple.sum() > 300, (yellow.sum(), purple.sum())
    assert np.nonzero(yellow)[1].mean() > np.nonzero(purple)[1].mean() + 50


@slow
@needs_chromium
def test_browser_draws_voxels_in_their_colours(tmp_path):
    ijk = np.stack(np.meshgrid(np.arange(6), np.arange(3), np.arange(3), indexing="ij"), -1).reshape(-1, 3)
    colors = np.where(ijk[:, :1] < 3, [[1.0, 0, 0]], [[0, 0, 1.0]])  # x < 3 red, else blue
    img = scene(screenshot(viz.show_voxels(ijk, colors=colors, voxel_size=0.1), tmp_path, "voxels"))
    red = (img[..., 0] > 120) & (img[..., 1] < 60) & (img[..., 2] < 60)
    blue = (img[..., 2] > 120) & (img[..., 0] < 60) & (img[..., 1] < 60)
    assert red.sum() > 2000 and blue.sum() > 2000, (red.sum(), blue.sum())
    assert np.nonzero(red)[1].mean() < np.nonzero(blue)[1].mean()


@slow
@needs_chromium
def test_browser_draws_training_curve(tmp_path):
    fig = viz.plot_curves([{"step": s, "loss": 1.0 / (1 + s)} for s in range(200)])
    img = screenshot(fig, tmp_path, "curve")
    line = near(img, (0x1F, 0x77, 0xB4), tol=40)
    xs = np.nonzero(line)[1]
    assert line.sum() > 300 and np.ptp(xs) > 400, (line.sum(), np.ptp(xs) if len(xs) else 0)


@slow
@needs_chromium
def test_screenshot_times_out_clearly(tmp_path):
    page = tmp_path / "plain.html"
    page.write_text("<html><body>no ready mark</body></html>")
    with pytest.raises(TimeoutError, match="not ready"):
        viz.screenshot_html(page, tmp_path / "plain.png", timeout_s=4)


def test_show_flow_builds_coloured_arrows():
    rng = np.random.default_rng(0)
    o, v = rng.random((20, 3)), rng.normal(size=(20, 3)) * 0.1
    err = np.linspace(0, 1, 20)
    plot = viz.show_flow(o, v, values=err, cmap="viridis", value_range=(0, 1))
    arrows = plot.objects[-1]
    assert np.allclose(arrows.origins, o) and np.allclose(arrows.vectors, v)
    cols = np.asarray(arrows.colors)
    assert len(cols) == 40 and (cols[0::2] == cols[1::2]).all()  # tail and head share a colour
    expected = viz.color_by(err, "viridis", (0, 1))
    rgb = np.stack([(cols[0::2] >> 16) & 255, (cols[0::2] >> 8) & 255, cols[0::2] & 255], 1)
    assert np.abs(rgb / 255 - expected).max() < 1 / 255 + 1e-6
    with pytest.raises(ValueError, match="must both be"):
        viz.show_flow(o, v[:5])
    with pytest.raises(ValueError, match="values has 3 entries for 20 arrows"):
        viz.show_flow(o, v, values=err[:3])
    with pytest.raises(ValueError, match="empty"):
        viz.show_flow(np.zeros((0, 3)), np.zeros((0, 3)))


def test_plot_images_grid_titles_and_bad_input():
    import torch

    from fourdlib.viz import plot_images
    a, b = np.zeros((4, 5, 3)), torch.ones(4, 5, 3) * 2  # b out of range: clipped for display only
    fig = plot_images({"GT": a, "ours": b, "third": a}, cols=2)
    assert [ann.text for ann in fig.layout.annotations] == ["GT", "ours", "third"]
    assert len(fig.data) == 3 and fig.data[1].z.max() == 255 and fig.data[0].z.max() == 0
    assert fig.layout.height == 2 * 200 + 30          # two rows
    with pytest.raises(ValueError, match="expected \\(H, W, 3\\)"):
        plot_images([np.zeros((4, 5))])
    with pytest.raises(ValueError, match="NaN"):
        plot_images([np.full((2, 2, 3), np.nan)])
    with pytest.raises(ValueError, match="2 titles for 1 images"):
        plot_images([a], titles=["x", "y"])
