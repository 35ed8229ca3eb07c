"""Native 4D VAE as a registered method: the decoupled-conv ablation, course runs through
load-or-train and the CLI, evaluation (CD / precision / recall / IoU / PSNR beside the trivial
codec and the floor) and autoencode / `fourd infer native4d_vae` with its input checks."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from fourdlib.data.synthetic import generate_dataset, make_creature_sequence
from fourdlib.data.voxels import SequenceVoxels, sequence_voxels
from fourdlib.models import METHODS, get_method, load_model as load_any
from fourdlib.models.native4d_vae import (CONFIGS, Native4DVAE, as_batch, collate, course, loss, make_dataset,
                                          window_item)
from fourdlib.models.native4d_vae import evaluate as ev
from fourdlib.models.native4d_vae import infer
from fourdlib.models.native4d_vae.model import PointMapVAE, temporal_neighbours

SMOKE = CONFIGS["smoke"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The smoke creatures: 16 sequences of 4 frames at 32 x 32, every split."""
    path = tmp_path_factory.mktemp("creatures")
    size = course.COURSE_DATA["smoke"]
    generate_dataset(path, "creatures", size["sequences"], num_frames=size["num_frames"],
                     image_size=size["image_size"], n_surface=size["n_surface"], workers=1, progress=False)
    return path


pytestmark = pytest.mark.usefixtures("cache")  # conftest: a fresh cache, no committed runs


@pytest.fixture(scope="module")
def creature():
    return make_creature_sequence(3, num_frames=4, image_size=(32, 32), n_surface=64)


def _same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


# ------------------------------------------------------------------ registry, runs, the conv ablation

def test_registry_rebuilds_either_block(tmp_path):
    assert "native4d_vae" in METHODS and get_method("native4d_vae") is course.METHOD
    assert course.METHOD.name == "native4d_vae"
    torch.manual_seed(0)
    model = Native4DVAE(dataclasses.replace(SMOKE, block="conv"))
    again = load_any(course.save_model(tmp_path / "m.pt", model))
    assert type(again) is Native4DVAE and again.cfg.block == "conv" and _same_weights(model, again)
    with pytest.raises(ValueError, match="block"):
        dataclasses.replace(SMOKE, block="convolution")
    cfg = course.run_spec("creatures_pointmap", "smoke")[0]                # the PointMapVAE baseline
    assert cfg == dataclasses.replace(SMOKE, representation="pointmap")
    pm = course.METHOD.model_cls(cfg)
    again = load_any(course.save_model(tmp_path / "pm.pt", pm))
    assert type(again) is PointMapVAE and _same_weights(pm, again)


def test_run_spec_names_and_overrides(tmp_path):
    cfg, data, steps, name = course.run_spec("creatures_decoupled", "tiny")
    assert cfg == dataclasses.replace(CONFIGS["tiny"], block="conv") and data == "creatures"
    assert steps == CONFIGS["tiny"].steps and name == "tiny_creatures_decoupled"
    assert course.run_spec("creatures_no_render", "smoke")[0] == dataclasses.replace(SMOKE, w_render=0.0)
    assert course.run_spec("creatures_native", "smoke")[0] == SMOKE
    with pytest.raises(ValueError, match="unknown course run"):
        course.run_spec("nope", "tiny")
    with pytest.raises(ValueError, match="convert"):
        course.course_data("creatures", "full", root=tmp_path)
    for scale, size in course.COURSE_DATA.items():       # sequences longer than a training window
        assert size["num_frames"] > CONFIGS[scale].train_frames


def test_temporal_neighbours_stay_in_their_sequence():
    # two sequences of 2 frames (global frames 0, 1 | 2, 3), one cell each frame, a cell missing in frame 1
    coords = torch.tensor([[0, 1, 1, 1], [0, 2, 2, 2], [1, 1, 1, 1], [2, 1, 1, 1], [3, 1, 1, 1], [3, 2, 2, 2]])
    t = torch.tensor([0.0, 1.0, 0.0, 1.0])
    assert temporal_neighbours(coords, t, 1).tolist() == [2, -1, -1, 4, -1, -1]    # frame 1 -> 2 crosses sequences
    assert temporal_neighbours(coords, t, -1).tolist() == [-1, -1, 0, -1, 3, -1]


def test_conv_block_trains_like_the_attention_block(folder):
    data = make_dataset(SMOKE, folder, "train")
    batch = collate([data[0]])
    for block in ("attention", "conv"):
        torch.manual_seed(0)
        # GT structure kept: an untrained decoder prunes (nearly) every site, leaving the final heads no input
        model = Native4DVAE(dataclasses.replace(SMOKE, block=block, prune_with_gt=True)).train()
        total, logs = loss(model, batch)
        total.backward()
        assert torch.isfinite(total) and all(p.grad is not None for p in model.parameters() if p.requires_grad)
        out = model.eval()(batch)
        assert out["mean"].shape == (1, SMOKE.latent_channels, *(SMOKE.latent_resolution,) * 3)  # 2 frames, lambda 2
    conv = Native4DVAE(dataclasses.replace(SMOKE, block="conv"))
    assert not any("attn" in k for k in conv.state_dict()) and any("temporal" in k for k in conv.state_dict())


# ------------------------------------------------------------------ data

def test_dataset_windows_and_the_default_collate(folder):
    train = make_dataset(SMOKE, folder, "train")
    full = train.full_item(0)
    assert int(full["num_frames"]) == 4 and full["world_to_cam"].shape == (4, 4, 4)
    torch.manual_seed(0)
    starts = set()
    for _ in range(20):
        item = train[0]
        assert int(item["num_frames"]) == SMOKE.train_frames and item["coords"][:, 0].max() < SMOKE.train_frames
        starts.add(next(s for s in range(3)
                        if torch.equal(window_item(full, s, 2)["world_to_cam"], item["world_to_cam"])))
    assert len(starts) > 1                                         # random window starts
    held = make_dataset(SMOKE, folder, "unseen_motion", train=False)
    assert int(held[0]["num_frames"]) == 4 and torch.equal(held[0]["coords"], held[0]["coords"])
    stacked = torch.utils.data.default_collate([train.full_item(1)])   # what the loop's DataLoader yields
    b = as_batch(stacked)
    assert all(torch.equal(b[k], collate([train.full_item(1)])[k]) for k in b)
    with pytest.raises(ValueError, match="batch_size"):
        make_dataset(dataclasses.replace(SMOKE, batch_size=2), folder, "train")


# ------------------------------------------------------------------ load or train, CLI

@pytest.mark.parametrize("overrides", [{}, {"block": "conv"}])
def test_load_or_train_trains_then_loads_from_the_cache(folder, overrides):
    cfg = dataclasses.replace(SMOKE, **overrides)
    m1, h1, info1 = course.load_or_train(cfg, folder, "run", steps=2, progress=False, device="cpu")
    assert info1["source"] == "trained" and {"loss", "bce", "render", "iou"} <= set(h1.columns)
    m2, _, info2 = course.load_or_train(cfg, folder, "run", steps=2, progress=False, device="cpu")
    assert info2["source"] == "cache" and _same_weights(m1, m2) and not m2.training and m2.cfg == cfg
    _, _, info3 = course.load_or_train(dataclasses.replace(cfg, w_render=0.0), folder, "run", steps=2,
                                       progress=False, device="cpu")
    assert info3["source"] == "trained"                            # the loss weights are part of the identity


def test_fourd_train_run_then_course_run_loads_it(cache, capsys, monkeypatch):
    from fourdlib.cli import main

    key = "creatures_no_render"
    monkeypatch.setitem(course.RUNS, key, {**course.RUNS[key], "steps": {"smoke": 2}})
    assert main(["train", "native4d_vae", "--run", key, "--scale", "smoke", "--device", "cpu"]) == 0
    assert f"smoke_{key}: trained ->" in capsys.readouterr().out
    model, _, info = course.course_run(key, "smoke", device="cpu", progress=False)
    assert info["source"] == "cache" and model.cfg.w_render == 0.0
    assert (cache / "data" / "native4d_creatures_smoke_seed0" / "manifest.json").exists()


# ------------------------------------------------------------------ evaluation and references

def test_thresholds_scale_the_papers_to_our_voxel():
    assert ev.thresholds(ev.PAPER_VOXEL) == pytest.approx({"0.005": 0.005, "0.001": 0.001, "0.0005": 0.0005})
    h = 0.03
    assert list(ev.thresholds(h).values()) == pytest.approx([5.12 * h, 1.024 * h, 0.512 * h])


def _moving_blob(T=4, R=16):
    """A 3 x 3 x 3 block that moves one cell per frame, with a colour per frame."""
    coords, colors = [], []
    for t in range(T):
        r = torch.arange(3)
        cells = torch.stack(torch.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3) + 2 + t
        coords.append(torch.cat([torch.full((27, 1), t), cells], 1))
        colors.append(torch.full((27, 3), 0.2 * t))
    return torch.cat(coords), torch.cat(colors)


def test_trivial_codec():
    coords, colors = _moving_blob()
    still = coords[coords[:, 0] == 0]
    const = torch.cat([torch.cat([torch.full((27, 1), t), still[:, 1:]], 1) for t in range(4)])
    ccol = colors[:27].repeat(4, 1)
    spatial = ev.trivial_codec(const, ccol, 4, 1, 4)              # constant in time: lambda changes nothing
    for lam in (2, 4):
        c, col = ev.trivial_codec(const, ccol, 4, lam, 4)
        assert torch.equal(c, spatial[0]) and torch.equal(col, spatial[1])
    c, col = ev.trivial_codec(coords, colors, 4, 1, 1)            # lambda 1, factor 1: the input itself
    assert torch.equal(c, coords) and torch.equal(col, colors)
    c, col = ev.trivial_codec(coords, colors, 4, 2, 1)            # frame 1 repeats frame 0, frame 3 frame 2
    for k, src in ((1, 0), (3, 2)):
        assert torch.equal(c[c[:, 0] == k, 1:], coords[coords[:, 0] == src, 1:])
        assert torch.equal(col[c[:, 0] == k], colors[coords[:, 0] == src])
    c, _ = ev.trivial_codec(coords, colors, 4, 1, 4)              # blocky: whole 4^3 coarse cells
    assert len(c) % 64 == 0 and (c[:, 1:] % 4 == 0).sum() > 0


def test_orbit_camera_keeps_the_distance_and_turns_the_view():
    from fourdlib.geometry.cameras import invert_rigid

    c2w = torch.eye(4)
    c2w[:3, 3] = torch.tensor([0.0, -2.0, 0.0])
    w2c = invert_rigid(c2w)
    moved = invert_rigid(ev.orbit_camera(w2c, [0.0, 0.0, 0.0], 90.0))
    torch.testing.assert_close(moved[:3, 3], torch.tensor([2.0, 0.0, 0.0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(ev.orbit_camera(w2c, [0.0, 0.0, 0.0], 360.0), w2c, atol=1e-6, rtol=0)


def test_evaluate_columns_references_and_tables(folder):
    data = make_dataset(SMOKE, folder, "unseen_individual", train=False)
    torch.manual_seed(0)
    model = Native4DVAE(SMOKE)
    df = ev.evaluate(model, data, surface_points=512, max_sequences=2, progress=False)
    assert len(df) == 2 * 4 and df["frame"].tolist() == [0, 1, 2, 3] * 2 and (df["lam"] == 2).all()
    names = ["cd_l1", "cd_l1_vox", "iou", "voxels", "psnr"] + [f"{m}@{t}" for t in ("0.005", "0.001", "0.0005")
                                                                for m in ("precision", "recall", "fscore")]
    assert {f"{x}_{n}" for x in ("pred", "codec", "floor") for n in names} <= set(df.columns)
    assert {"sequence", "file", "split", "voxel_size", "gt_voxels"} <= set(df.columns)
    assert (df["floor_iou"] == 1).all() and df["floor_psnr"].isna().all()
    assert (df["floor_voxels"] == df["gt_voxels"]).all()
    assert (df["floor_cd_l1"] <= df["codec_cd_l1"]).all()          # the floor is below the trivial codec
    assert (df["floor_precision@0.001"] >= df["codec_precision@0.001"]).all()
    assert np.isfinite(df["codec_psnr"]).all()
    np.testing.assert_allclose(df["floor_cd_l1_vox"], df["floor_cd_l1"] / df["voxel_size"])
    assert (df["floor_cd_l1_vox"] < 1).all()                       # voxel centres lie within a voxel of the surface
    table = ev.comparison_table({"untrained": df})
    assert list(table.columns) == [*ev.TABLE_COLUMNS, "empty frames"] and len(table) == 1 + len(ev.REFERENCES)
    assert math.isclose(table.iloc[1]["CD-L1 (voxels)"], df["codec_cd_l1_vox"].mean())
    # a frame decoded to no voxel: CD over the others, counted in "empty frames", never inf
    one_empty = df.copy()
    one_empty.loc[0, ["pred_voxels", "pred_cd_l1_vox"]] = [0, float("inf")]
    one_empty.loc[1:, "pred_voxels"] = one_empty.loc[1:, "pred_voxels"].clip(lower=1)
    row = ev.comparison_table({"m": one_empty}).loc["m"]
    assert row["empty frames"] == 1 / len(df)
    assert math.isclose(row["CD-L1 (voxels)"], one_empty.loc[1:, "pred_cd_l1_vox"].mean())
    by = ev.summarize(df, by="split")
    assert list(by.index) == ["unseen_individual"] and by["frames"].iloc[0] == 8
    # the PointMapVAE floor: the GT pointmap voxelised (one point per pixel), not the mesh's voxels
    assert (df["naive_voxels"] > 0).all() and df["naive_iou"].mean() < 1
    assert len(table) == 4 and "PointMapVAE floor" in table.index[-1]
    # a PointMapVAE on the same (voxel-only) dataset: its pointmaps are made on the fly, same rows
    torch.manual_seed(0)
    pm = course.METHOD.model_cls(dataclasses.replace(SMOKE, representation="pointmap"))
    with torch.no_grad():
        pm.head[-1].bias[6] = 5.0                                           # every pixel kept: non-empty output
    dpm = ev.evaluate(pm, data, surface_points=512, max_sequences=2, progress=False)
    assert dpm[["file", "frame"]].equals(df[["file", "frame"]]) and (dpm["pred_voxels"] > 0).all()
    assert (dpm["lam"] == SMOKE.temporal_ratio).all()
    assert dpm["naive_voxels"].equals(df["naive_voxels"])
    with pytest.raises(ValueError, match="train=False"):
        ev.evaluate(model, make_dataset(SMOKE, folder, "train"), progress=False)
    with pytest.raises(ValueError, match="other frames"):
        ev.comparison_table({"a": df, "b": df.iloc[:4]})


# ------------------------------------------------------------------ autoencode, fourd infer native4d_vae

@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    model = Native4DVAE(SMOKE)
    with torch.no_grad():                                         # keep every pruned site: a non-empty output
        model.prune_head[0].bias.fill_(5.0)
        model.occ_head.bias.fill_(5.0)
    return course.save_model(tmp_path_factory.mktemp("ckpt") / "run.pt", model)


def test_infer_refuses_a_pointmap_checkpoint(tmp_path, creature):
    pm = course.METHOD.model_cls(dataclasses.replace(SMOKE, representation="pointmap"))
    path = course.save_model(tmp_path / "pm.pt", pm)
    with pytest.raises(ValueError, match="PointMapVAE"):
        infer.autoencode(path, creature)


def test_autoencode_a_sequence(ckpt, creature):
    r = infer.autoencode(ckpt, creature)
    vox, rec = r["input"], r["output"]
    assert vox.num_frames == rec.num_frames == 4 and r["lam"] == 2 and r["latent"].shape[0] == 2
    assert len(rec.coords) > 0 and rec.colors.shape == (len(rec.coords), 3) and (rec.coords[:, 1:] < 16).all()
    np.testing.assert_array_equal(vox.coords, sequence_voxels(creature, resolution=16).coords)


def test_fourd_infer_writes_a_fresh_folder_and_refuses_an_existing_one(ckpt, creature, tmp_path, capsys):
    from fourdlib.cli import main

    seq_path = tmp_path / "seq.npz"
    creature.save(seq_path)
    out = tmp_path / "out"
    assert main(["infer", "native4d_vae", str(seq_path), "--checkpoint", str(ckpt), "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} >= {"reconstruction.npz", "input.npz", "latent.npz", "frames"}
    assert sorted(p.name for p in (out / "frames").iterdir()) == [f"frame_{t:04d}.ply" for t in range(4)]
    rec, c2w = infer.read_voxels(out / "reconstruction.npz")
    assert c2w.shape == (4, 4, 4) and rec.num_frames == 4
    # the written input is an input again, and gives the same output
    again = infer.autoencode(ckpt, out / "input.npz")
    np.testing.assert_array_equal(again["output"].coords, rec.coords)
    (out / "mine.txt").write_text("keep")                            # an existing folder is refused
    before = sorted(p.name for p in out.rglob("*"))
    assert main(["infer", "native4d_vae", str(seq_path), "--checkpoint", str(ckpt), "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err and sorted(p.name for p in out.rglob("*")) == before


def _voxel_file(path, coords, colors=None, voxel_size=0.05, resolution=16, num_frames=None):
    coords = np.asarray(coords, np.int64).reshape(-1, 4)
    colors = np.full((len(coords), 3), 0.5, np.float32) if colors is None else colors
    T = num_frames if num_frames is not None else int(coords[:, 0].max()) + 1 if len(coords) else 2
    vox = SequenceVoxels(coords, colors, np.ones(len(coords), np.int64), np.zeros(3), np.full(3, voxel_size),
                         np.full(3, resolution), T)
    return infer.write_voxels(path, vox)


GOOD = [[t, i, 5, 5] for t in range(2) for i in range(4, 8)]


@pytest.mark.parametrize("case, match", [
    ("empty", "empty"),
    ("frame without voxels", r"frame\(s\) \[1\] have no voxel"),
    ("colour count", r"colors must be \(8, 3\)"),
    ("outside the grid", "outside the 16\\^3 grid"),
    ("negative cell", "outside the 16\\^3 grid"),
    ("millimetres", "millimetres"),
    ("other resolution", "model works on 16"),
    ("duplicates", "twice"),
    ("colours 0-255", "divide by 255"),
])
def test_bad_voxel_files_are_refused_with_a_clear_error(ckpt, tmp_path, case, match):
    path = tmp_path / "v.npz"
    coords = np.array(GOOD)
    if case == "empty":
        _voxel_file(path, np.zeros((0, 4)), num_frames=2)
    elif case == "frame without voxels":
        _voxel_file(path, coords[coords[:, 0] == 0], num_frames=2)
    elif case == "colour count":
        _voxel_file(path, coords, colors=np.full((5, 3), 0.5, np.float32))
    elif case == "outside the grid":
        _voxel_file(path, np.concatenate([coords, [[1, 16, 5, 5]]]))
    elif case == "negative cell":
        _voxel_file(path, np.concatenate([coords, [[1, -1, 5, 5]]]))
    elif case == "millimetres":
        _voxel_file(path, coords, voxel_size=30.0)                # 30 mm voxels given as metres
    elif case == "other resolution":
        _voxel_file(path, coords, resolution=32)
    elif case == "duplicates":
        _voxel_file(path, np.concatenate([coords, coords[:1]]))
    elif case == "colours 0-255":
        _voxel_file(path, coords, colors=np.full((8, 3), 128.0, np.float32))
    with pytest.raises(ValueError, match=match):
        infer.autoencode(ckpt, path)


def test_point_folders_voxelise_and_bad_frames_are_refused(ckpt, creature, tmp_path, capsys):
    from fourdlib.cli import main

    frames = tmp_path / "frames"
    frames.mkdir()
    for t, (p, c) in enumerate(zip(creature.partial_points, creature.partial_colors)):
        np.save(frames / f"frame_{t}.npy", np.concatenate([p, np.asarray(c, np.float32)], 1))
    r = infer.autoencode(ckpt, frames)
    assert r["input"].num_frames == 4 and r["cam_to_world"] is None and len(r["output"].coords) > 0
    # millimetres given as metres: a creature 1000 "m" long makes voxels far above 1 m
    mm = tmp_path / "mm"
    mm.mkdir()
    for t, p in enumerate(creature.partial_points):
        np.save(mm / f"frame_{t}.npy", p * 1000)
    with pytest.raises(ValueError, match="millimetres"):
        infer.autoencode(ckpt, mm)
    np.save(mm / "frame_2.npy", np.zeros((0, 3)))                  # a frame without points
    assert main(["infer", "native4d_vae", str(mm), "--checkpoint", str(ckpt), "--out", str(tmp_path / "o")]) == 2
    assert "no points" in capsys.readouterr().err and not (tmp_path / "o").exists()
    with pytest.raises(ValueError, match="colours for"):
        infer.points_to_voxels([np.zeros((4, 3))], [np.zeros((3, 3))], 16)


def test_sequence_frames_without_surface_are_refused(ckpt, creature):
    depth = creature.depth.copy()
    depth[1] = 0                                                  # frame 1 sees nothing:
    with pytest.raises(ValueError, match="frame 1 has no valid pixel"):   # Sequence4D's own check
        dataclasses.replace(creature, depth=depth)
    depth[1, 0, 16, 16] = 1.0                                     # one pixel: no triangle, so no voxel
    with pytest.raises(ValueError, match=r"frame\(s\) \[1\] have no voxel"):
        infer.autoencode(ckpt, dataclasses.replace(creature, depth=depth))
