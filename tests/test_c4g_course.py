"""C4G as a registered method: the decoder switch, course runs through load-or-train and the
CLI, evaluation (PSNR / SSIM, the nearest-frame and union references, the floor) and
render_novel / `fourd infer c4g`."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch

from fourdlib.data.sequence import FormatError
from fourdlib.data.synthetic import generate_dataset, make_scene_sequence
from fourdlib.models import METHODS, get_method, load_model as load_any
from fourdlib.models.c4g import (C4G, CONFIGS, PixelGaussians, build_model, course, make_dataset,
                                 render_novel)
from fourdlib.models.c4g import evaluate as ev

SMOKE = CONFIGS["smoke"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """3 MOVi-like scenes of 6 frames at 32 x 32 (2 train, 1 test)."""
    path = tmp_path_factory.mktemp("scenes")
    generate_dataset(path, "scenes", 3, num_frames=6, image_size=(32, 32), n_surface=128, workers=1,
                     progress=False, test_frac=0.34)
    return path


pytestmark = pytest.mark.usefixtures("cache")  # conftest: a fresh cache, no committed runs


def _same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


# ------------------------------------------------------------------ decoder switch, registry

def test_decoder_field_picks_the_model():
    assert SMOKE.decoder == "queries"
    assert type(build_model(SMOKE)) is C4G
    assert type(build_model(dataclasses.replace(SMOKE, decoder="pixels"))) is PixelGaussians
    with pytest.raises(ValueError, match="decoder"):
        dataclasses.replace(SMOKE, decoder="pixel")


def test_registry_lists_c4g(tmp_path):
    assert "c4g" in METHODS and get_method("c4g") is course.METHOD and course.METHOD.name == "c4g"
    torch.manual_seed(0)
    model = build_model(dataclasses.replace(SMOKE, decoder="pixels"))
    path = course.save_model(tmp_path / "p.pt", model)
    again = load_any(path)                                   # the registry rebuilds the right decoder
    assert type(again) is PixelGaussians and _same_weights(model, again)


def test_run_spec_and_course_data_names(tmp_path):
    cfg, data, steps, name = course.run_spec("scenes_pixels", "tiny")
    assert cfg == dataclasses.replace(CONFIGS["tiny"], decoder="pixels") and data == "scenes"
    assert steps == CONFIGS["tiny"].steps and name == "tiny_scenes_pixels"
    assert course.run_spec("scenes_queries", "smoke")[0] == SMOKE
    with pytest.raises(ValueError, match="unknown course run"):
        course.run_spec("nope", "tiny")
    with pytest.raises(ValueError, match="Kubric"):
        course.course_data("scenes", "full", root=tmp_path)
    for scale, size in course.COURSE_DATA.items():     # frames as the config's, enough for a clip
        assert size["image_size"] == (CONFIGS[scale].image_size,) * 2
        assert size["num_frames"] > CONFIGS[scale].clip_frames


# ------------------------------------------------------------------ load or train, CLI

@pytest.mark.parametrize("decoder", ["queries", "pixels"])
def test_load_or_train_trains_then_loads_from_the_cache(folder, cache, decoder):
    cfg = dataclasses.replace(SMOKE, decoder=decoder)
    m1, h1, info1 = course.load_or_train(cfg, folder, "run", steps=2, progress=False, device="cpu")
    assert info1["source"] == "trained" and "loss" in h1 and "psnr" in h1
    m2, _, info2 = course.load_or_train(cfg, folder, "run", steps=2, progress=False, device="cpu")
    assert info2["source"] == "cache" and type(m2) is type(m1) and _same_weights(m1, m2) and not m2.training
    other = "pixels" if decoder == "queries" else "queries"   # the decoder is part of the identity
    _, _, info3 = course.load_or_train(dataclasses.replace(cfg, decoder=other), folder, "run", steps=2,
                                       progress=False, device="cpu")
    assert info3["source"] == "trained"


def test_fourd_train_c4g_run_then_course_run_loads_it(cache, capsys, monkeypatch):
    from fourdlib.cli import main

    monkeypatch.setitem(course.RUNS, "scenes_pixels", {**course.RUNS["scenes_pixels"], "steps": {"smoke": 2}})
    assert main(["train", "c4g", "--run", "scenes_pixels", "--scale", "smoke", "--device", "cpu"]) == 0
    assert "smoke_scenes_pixels: trained ->" in capsys.readouterr().out
    model, _, info = course.course_run("scenes_pixels", "smoke", device="cpu", progress=False)
    assert info["source"] == "cache" and type(model) is PixelGaussians
    assert (cache / "data" / "c4g_scenes_smoke_seed0" / "manifest.json").exists()   # not DynaTok's folder


# ------------------------------------------------------------------ metrics and references

def test_psnr_ssim_known_answers():
    torch.manual_seed(0)
    img = 0.2 + 0.6 * torch.rand(2, 16, 16, 3)
    p, s = ev.image_metrics(img, img)
    assert np.isinf(p).all() and p.min() > 0 and np.allclose(s, 1.0)
    p, s = ev.image_metrics(img + 0.1, img)                  # MSE 0.01 -> 10 log10(1 / 0.01) = 20 dB
    np.testing.assert_allclose(p, 20.0, atol=1e-4)
    assert (s < 1).all()


def test_nearest_input_frame_ties_go_to_the_earlier_input():
    near = ev.nearest_input(torch.tensor([1, 3, 4, 6, 9]), torch.tensor([0, 2, 5, 7]))
    assert near.tolist() == [0, 1, 2, 2, 3]                  # 1: 0 or 2 -> 0; 3: 2; 4: 5; 6: 5 or 7 -> 5; 9: 7


def _plane(H=32, W=32, z=2.0):
    """A fronto-parallel plane at depth z seen by a camera at the origin, with a smooth image."""
    K = torch.tensor([[32.0, 0, W / 2], [0, 32.0, H / 2], [0, 0, 1]])
    v, u = torch.meshgrid(torch.linspace(0, 1, H), torch.linspace(0, 1, W), indexing="ij")
    rgb = torch.stack([0.2 + 0.6 * u, 0.2 + 0.6 * v, 0.5 + 0.3 * u * v], -1)
    return rgb, torch.full((H, W), z), K, torch.eye(4)


def test_union_reference_renders_a_plane_of_points_back_to_its_image():
    rgb, depth, K, c2w = _plane()
    g = ev.splat_pixels(rgb[None], depth[None], K[None], c2w[None])
    assert g.count == 32 * 32
    torch.testing.assert_close(g.scales[0, 0, 0], torch.full((3,), 0.2 * 2.0 / 32.0))   # 0.2 px at depth 2
    img = ev.render_points(g, K[None], c2w[None], 32, 32)[0]
    p, s = ev.image_metrics(img[None], rgb[None])
    assert p[0] > 40 and s[0] > 0.99, (p, s)
    depth[:, :8] = 0                                          # no depth: nothing splatted, black
    g = ev.splat_pixels(rgb[None], depth[None], K[None], c2w[None])
    img = ev.render_points(g, K[None], c2w[None], 32, 32)[0]
    assert g.count == 32 * 24 and img[:, :6].abs().max() < 1e-3


def test_evaluate_columns_references_and_tables(folder):
    data = make_dataset(SMOKE, folder, split=None, train=False)
    torch.manual_seed(0)
    q, p = C4G(SMOKE), PixelGaussians(SMOKE)
    dq, dp = ev.evaluate(q, data, progress=False), ev.evaluate(p, data, progress=False)
    cols = {"sequence", "frame", "time", "gap", "nearest_frame", "pred_psnr", "pred_ssim", "pred_gaussians",
            "nearest_psnr", "nearest_ssim", "union_psnr", "union_ssim", "union_gaussians", "floor_psnr",
            "floor_ssim", "floor_gaussians"}
    assert cols <= set(dq.columns)
    # clip 4, inputs 0 and 3: every held-out frame (1, 2) of every sequence, one frame from an input
    assert len(dq) == 3 * 2 and dq["frame"].tolist() == [1, 2] * 3 and (dq["gap"] == 1).all()
    assert dq["nearest_frame"].tolist() == [0, 3] * 3
    assert (dq["pred_gaussians"] == SMOKE.num_queries).all()
    assert (dp["pred_gaussians"] == p.num_gaussians(2, 32, 32)).all()
    assert np.isfinite(dq.filter(like="_psnr").to_numpy()).all()
    ref = [c for c in dq.columns if c.split("_")[0] in ("nearest", "union", "floor")]
    pd.testing.assert_frame_equal(dq[ref], dp[ref])             # references do not depend on the model
    # the floor (the target's own pixels) beats copying another frame and stacking the inputs
    assert dq["floor_psnr"].mean() > dq["union_psnr"].mean() > dq["nearest_psnr"].mean()
    table = ev.comparison_table({"C4G": dq, "per-pixel": dp})
    assert list(table.columns) == list(ev.TABLE_COLUMNS) and len(table) == 2 + len(ev.REFERENCES)
    assert math.isclose(table.loc["C4G", "PSNR"], dq["pred_psnr"].mean())
    # a longer clip with the same inputs: larger gaps
    wide = ev.evaluate(q, data, clip_frames=6, input_frames=2, max_sequences=1, progress=False)
    assert wide["frame"].tolist() == [1, 2, 3, 4] and wide["gap"].tolist() == [1, 2, 2, 1]
    assert list(ev.gap_table({"C4G": wide}).columns) == [1, 2]
    with pytest.raises(ValueError, match="train=False"):
        ev.evaluate(q, make_dataset(SMOKE, folder, train=True), progress=False)
    with pytest.raises(ValueError, match="held out"):
        ev.evaluate(q, data, input_frames=4, progress=False)
    with pytest.raises(ValueError, match="other frames"):
        ev.comparison_table({"C4G": dq, "one": wide})


# ------------------------------------------------------------------ render_novel, fourd infer c4g

@pytest.fixture(scope="module")
def scene():
    return make_scene_sequence(0, num_frames=6, image_size=(32, 32), n_surface=128)


def test_render_novel_shapes_and_errors(scene):
    torch.manual_seed(0)
    model = C4G(SMOKE)
    K, c2w = scene.intrinsics[[2, 4], 0], scene.cam_to_world[[2, 4], 0]
    img = render_novel(model, scene, scene.times[[2, 4]], (K, c2w))
    assert img.shape == (2, 32, 32, 3) and img.dtype == np.float32 and 0 <= img.min() and img.max() <= 1
    again = render_novel(model, scene, scene.times[[2, 4]], (K[0], c2w), inputs=[0, 5])   # one shared K
    np.testing.assert_array_equal(img, again)                   # the default inputs are frames 0 and 5
    with pytest.raises(ValueError, match="times"):
        render_novel(model, scene, [[0.1]], (K[:1], c2w[:1]))
    with pytest.raises(ValueError, match="cam_to_world must be"):
        render_novel(model, scene, scene.times[[2, 4]], (K, c2w[:1]))
    bent = c2w.copy()
    bent[0, :3, :3] *= 2
    with pytest.raises(ValueError, match="rigid"):
        render_novel(model, scene, scene.times[[2, 4]], (K, bent))
    with pytest.raises(ValueError, match="inputs"):
        render_novel(model, scene, scene.times[[2]], (K[:1], c2w[:1]), inputs=[3, 1])
    with pytest.raises(FormatError, match="depth"):
        render_novel(model, dataclasses.replace(scene, depth=None), scene.times[[2]], (K[:1], c2w[:1]))
    with pytest.raises(TypeError, match="checkpoint"):
        render_novel(torch.nn.Linear(2, 2), scene, scene.times[[2]], (K[:1], c2w[:1]))


def test_fourd_infer_c4g_writes_the_held_out_frames(scene, tmp_path, capsys):
    from fourdlib.cli import main

    torch.manual_seed(0)
    ckpt = course.save_model(tmp_path / "run.pt", C4G(SMOKE))
    seq_path = tmp_path / "seq.npz"
    scene.save(seq_path)
    out = tmp_path / "out"
    assert main(["infer", "c4g", str(seq_path), "--checkpoint", str(ckpt), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.glob("frame_*.png")) == [f"frame_{f:04d}.png" for f in (1, 2, 3, 4)]
    with np.load(out / "rendered.npz") as z:
        assert z["images"].shape == (4, 32, 32, 3) and z["inputs"].tolist() == [0, 5]
    assert main(["infer", "c4g", str(seq_path), "--checkpoint", str(ckpt), "--out", str(tmp_path / "o2"),
                 "--frames", "7"]) == 2
    assert "out of range" in capsys.readouterr().err
